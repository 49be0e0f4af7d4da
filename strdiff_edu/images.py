"""Small image helpers for the early chapters: one bundled photo and a box mask.

The embedded training/evaluation data lives in :mod:`strdiff_edu.data` (a later part);
these helpers only need scikit-image's bundled sample photos (public domain or CC0; see the
book's data credits) and no download.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

SAMPLE_IMAGES = ("astronaut", "chelsea", "coffee", "rocket")


def open_image_file(path, what: str = "image") -> Image.Image:
    """Open and fully decode an image file with Pillow.

    A missing file raises ``FileNotFoundError``; an unreadable one (truncated, not an image)
    raises ``ValueError`` naming the file and the fix. ``what`` names the file's role in messages.
    """
    from pathlib import Path

    from PIL import UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot read {what} file {path}: {exc}. Is it a PNG/JPEG/BMP/TIFF image? "
                         "Re-export or delete it.") from None


def sample_image(name: str = "astronaut", size: int = 64) -> torch.Tensor:
    """A bundled scikit-image photo as a float tensor (3, size, size) in [0, 1].

    The photo is centre-cropped to a square, then resized with Pillow's bicubic filter.
    """
    import skimage.data

    if name not in SAMPLE_IMAGES:
        raise ValueError(f"unknown sample image {name!r}; choose one of {', '.join(SAMPLE_IMAGES)}")
    rgb = getattr(skimage.data, name)()
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = Image.fromarray(rgb[top:top + side, left:left + side]).resize((size, size), Image.BICUBIC)
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
