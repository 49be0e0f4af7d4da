"""Image files and small image helpers: reading a file as a viewer shows it, listing the image
files of a folder, one bundled photo and a box mask for the early chapters.

The embedded training/evaluation data lives in :mod:`strdiff_edu.data` (a later part);
the sample photos are scikit-image's bundled ones (public domain or CC0; see the book's data
credits), no download.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Union

import numpy as np
import torch
from PIL import Image

SAMPLE_IMAGES = ("astronaut", "chelsea", "coffee", "rocket")
#: The file types :func:`list_image_files` lists by default (Pillow reads each).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


#: The largest image file read (pixels): Pillow's decompression-bomb limit (about 89 MP, e.g.
#: 10000 x 8900). Larger files are refused before they are decoded.
MAX_FILE_PIXELS = 89_478_485


def open_image_file(path, what: str = "image") -> Image.Image:
    """Open and fully decode an image file with Pillow, the way an image viewer shows it.

    * The EXIF orientation tag is applied (a phone photo stored sideways comes out upright);
      ``info["exif_orientation"]`` keeps the tag's value (1: none).
    * 16-bit and 32-bit integer gray images (PNG / TIFF ``I;16``, ``I``) are scaled to 8 bits
      (``value / 257``), float images (``F``) from [0, 1]; palette images keep their palette
      (convert with ``.convert("RGB")`` / ``"L"`` as usual).
    * A file above :data:`MAX_FILE_PIXELS` is refused before decoding.

    A missing file raises ``FileNotFoundError``; an unreadable one (truncated, not an image, too
    large) raises :class:`~strdiff_edu.errors.UsageError` (a ``ValueError``) naming the file and
    the fix. ``what`` names the file's role in messages.
    """
    import warnings
    from pathlib import Path

    from PIL import ImageOps, UnidentifiedImageError

    from .errors import UsageError

    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{what} {path} is a folder; pass an image file")
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None       # the size check is ours, below, before decoding
        with Image.open(path) as im:
            Image.MAX_IMAGE_PIXELS = limit
            w, h = im.size
            if w * h > MAX_FILE_PIXELS:
                raise UsageError(f"{what} file {path} is {w}x{h} pixels ({w * h / 1e6:.0f} MP), above the "
                                 f"{MAX_FILE_PIXELS / 1e6:.0f} MP this tool reads; downscale it first")
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im.load()
            out = im.copy()
    except UsageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UsageError(f"{what} file {path} is too large to decode safely ({exc}); downscale it first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UsageError(f"cannot read {what} file {path}: {' '.join(str(exc).split())}. Is it a "
                         "PNG/JPEG/BMP/TIFF image? Re-export or delete it.") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    try:
        orientation = int(out.getexif().get(0x0112, 1) or 1)
    except Exception:   # a corrupt EXIF block: show the pixels as stored
        orientation = 1
    if orientation != 1:
        out = ImageOps.exif_transpose(out)
    if out.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(out, dtype=np.float64)
        out = Image.fromarray(np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8), "L")
    elif out.mode == "F":
        arr = np.asarray(out, dtype=np.float64)
        scale = 255.0 if np.nanmax(arr, initial=0) <= 1.0 else 1.0 / 257.0
        out = Image.fromarray(np.clip(np.rint(np.nan_to_num(arr) * scale), 0, 255).astype(np.uint8), "L")
    out.info["exif_orientation"] = orientation
    return out


def list_image_files(root: Union[str, Path], recursive: bool = True, what: str = "image",
                     extensions: Sequence[str] = IMAGE_EXTENSIONS) -> List[Path]:
    """The image files under ``root`` (recursive unless ``recursive=False``) whose suffix is in
    ``extensions``, sorted by their path relative to ``root`` (POSIX form, so the order is the
    same on every machine). ``what`` names the files in messages (``"image"``, ``"mask"``); a
    missing folder or one without such files raises ``FileNotFoundError``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {root}")
    it = root.rglob("*") if recursive else root.iterdir()
    files = sorted((p for p in it if p.is_file() and p.suffix.lower() in extensions),
                   key=lambda p: p.relative_to(root).as_posix())
    if not files:
        noun = "images" if what == "image" else f"{what} images"
        raise FileNotFoundError(f"no {noun} ({', '.join(extensions)}) under {root}")
    return files


def square_resize(img: Image.Image, size: int) -> Image.Image:
    """Centre-crop a Pillow image to a square and resize it to ``size`` (bicubic, RGB)."""
    img = img.convert("RGB")
    w, h = img.size
    side = min(w, h)
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    return img.crop(box).resize((size, size), Image.BICUBIC)


def sample_image(name: str = "astronaut", size: int = 64) -> torch.Tensor:
    """A bundled scikit-image photo as a float tensor (3, size, size) in [0, 1].

    The photo is centre-cropped to a square, then resized with Pillow's bicubic filter
    (:func:`square_resize`).
    """
    import skimage.data

    if name not in SAMPLE_IMAGES:
        raise ValueError(f"unknown sample image {name!r}; choose one of {', '.join(SAMPLE_IMAGES)}")
    img = square_resize(Image.fromarray(getattr(skimage.data, name)()), size)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def box_mask(size: int, hole_fraction: float = 0.4) -> torch.Tensor:
    """A (1, size, size) mask with 1 = known pixel and 0 = a centred square hole whose side is
    ``hole_fraction`` of the image side (the paper's and official code's convention: m = 1 known)."""
    if not 0 < hole_fraction < 1:
        raise ValueError(f"hole_fraction must lie in (0, 1), got {hole_fraction}")
    mask = torch.ones(1, size, size)
    side = max(1, round(size * hole_fraction))
    start = (size - side) // 2
    mask[:, start:start + side, start:start + side] = 0
    return mask
