"""Inpainting masks: free-form brush strokes targeted at a hole-ratio bin, and mask files.

Conventions (the paper's and the official code's):

* **in tensors**, a mask is (1, H, W) or (B, 1, H, W) float with **1 = known pixel, 0 = hole**;
* **in files** (PNG), **white = hole**, black = known (the NVIDIA irregular-mask set and the
  official StrDiffusion loader). Some mask sets use the other convention (IR-SDE's and
  RePaint's files mark kept pixels white): load them with ``black_hole=True``.

The generators return boolean NumPy *hole* arrays (True = hole) drawn with Pillow, and take a
``numpy.random.Generator`` (or an int seed), so every mask is reproducible from its seed.
:func:`to_known` turns them into the tensor convention.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageDraw

Bin = Tuple[float, float]
RngLike = Union[int, np.random.Generator, None]

#: The paper's evaluation bins (hole ratio 10-20 %, ..., 40-50 %).
PAPER_BINS: Tuple[Bin, ...] = ((0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5))
#: The NVIDIA irregular-mask test bins (Liu et al. 2018): (0.01, 0.1], (0.1, 0.2], ..., (0.5, 0.6].
NVIDIA_BINS: Tuple[Bin, ...] = ((0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6))
BIN_SETS = {"paper": PAPER_BINS, "nvidia": NVIDIA_BINS}

#: DeepFill v2's free-form brush parameters at 256 x 256 (widths in pixels; scaled with size).
DEEPFILL = dict(min_vertices=4, max_vertices=12, mean_angle=2 * math.pi / 5,
                angle_range=2 * math.pi / 15, min_width=12, max_width=40, min_strokes=1, max_strokes=4)

#: A loaded mask with more hole than this fraction triggers a warning (likely inverted).
INVERTED_WARNING_RATIO = 0.6


def _rng(rng: RngLike) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        raise ValueError("pass a seed or a numpy.random.Generator: masks are never drawn from "
                         "hidden global state")
    return np.random.default_rng(rng)


def bin_name(bin: Bin) -> str:
    """A bin as a folder/label name, e.g. ``(0.1, 0.2)`` -> ``"10-20"`` (percent)."""
    lo, hi = bin
    return f"{round(lo * 100):02d}-{round(hi * 100):02d}"


def parse_bins(spec: Union[str, Sequence[Bin]]) -> Tuple[Bin, ...]:
    """``"paper"``, ``"nvidia"``, a list of pairs, or a string like ``"10-20,40-50"`` (percent)."""
    if isinstance(spec, str):
        if spec in BIN_SETS:
            return BIN_SETS[spec]
        try:
            out = []
            for part in spec.split(","):
                lo, hi = part.strip().split("-")
                out.append((float(lo) / 100, float(hi) / 100))
        except ValueError:
            raise ValueError(f"cannot read bins {spec!r}: use 'paper', 'nvidia' or percent ranges "
                             "like '10-20,40-50'") from None
        spec = out
    bins = tuple((float(lo), float(hi)) for lo, hi in spec)
    for lo, hi in bins:
        if not 0 <= lo < hi <= 1:
            raise ValueError(f"a hole-ratio bin must satisfy 0 <= lo < hi <= 1, got ({lo}, {hi})")
    return bins


def in_bin(ratio: float, bin: Bin) -> bool:
    """Whether a hole ratio lies in the bin ``(lo, hi]`` (NVIDIA's convention)."""
    return bin[0] < ratio <= bin[1]


def hole_ratio(mask: torch.Tensor) -> torch.Tensor:
    """Fraction of hole pixels of a tensor mask (1 = known), per image: (B,) for (B, 1, H, W),
    a scalar for (1, H, W) (book: {ref}`eq-hole-ratio`)."""
    if mask.ndim == 3:
        return 1 - mask.float().mean()
    return 1 - mask.float().flatten(1).mean(1)


def to_known(hole: np.ndarray) -> torch.Tensor:
    """A boolean hole array (H, W) or (N, H, W) as a float mask tensor (1, H, W) or
    (N, 1, H, W) with 1 = known, 0 = hole."""
    t = torch.from_numpy(~np.asarray(hole, dtype=bool)).float()
    return t[None] if t.ndim == 2 else t[:, None]


# --------------------------------------------------------------------------- generators
def _stroke(draw: ImageDraw.ImageDraw, size: int, rng: np.random.Generator, width_scale: float,
            length_scale: float, p: dict) -> None:
    """Draw one DeepFill-v2 brush stroke: a polyline of random vertices with round joints."""
    s = size / 256.0
    avg_radius = math.sqrt(2) * size / 8 * length_scale
    n_vertex = int(rng.integers(p["min_vertices"], p["max_vertices"] + 1))
    angle_min = p["mean_angle"] - rng.uniform(0, p["angle_range"])
    angle_max = p["mean_angle"] + rng.uniform(0, p["angle_range"])
    width = max(1, int(round(rng.uniform(p["min_width"], p["max_width"]) * s * width_scale)))
    x, y = rng.uniform(0, size), rng.uniform(0, size)
    vertices = [(x, y)]
    for i in range(n_vertex):
        angle = rng.uniform(angle_min, angle_max)
        if i % 2 == 0:
            angle = 2 * math.pi - angle
        r = float(np.clip(rng.normal(avg_radius, avg_radius / 2), 0, 2 * avg_radius))
        x = float(np.clip(x + r * math.cos(angle), 0, size - 1))
        y = float(np.clip(y + r * math.sin(angle), 0, size - 1))
        vertices.append((x, y))
    draw.line(vertices, fill=1, width=width)
    rad = width / 2
    for vx, vy in vertices:
        draw.ellipse((vx - rad, vy - rad, vx + rad, vy + rad), fill=1)


def brush_stroke_mask(size: int, rng: RngLike, n_strokes: Optional[int] = None,
                      width_scale: float = 1.0, length_scale: float = 1.0,
                      params: Optional[dict] = None) -> np.ndarray:
    """A free-form brush-stroke hole (H, W) bool, True = hole, with DeepFill v2's parameters
    (:data:`DEEPFILL`: 1-4 strokes of 4-12 vertices, widths 12-40 px at 256 px, scaled with
    ``size``), then a random horizontal and vertical flip.

    Plain DeepFill strokes mostly give 5-30 % holes; :func:`free_form_mask` reaches a chosen bin.
    """
    rng = _rng(rng)
    p = dict(DEEPFILL, **(params or {}))
    if size < 8:
        raise ValueError(f"masks need at least 8 x 8 pixels, got size={size}")
    if n_strokes is None:
        n_strokes = int(rng.integers(p["min_strokes"], p["max_strokes"] + 1))
    img = Image.new("1", (size, size), 0)
    draw = ImageDraw.Draw(img)
    for _ in range(n_strokes):
        _stroke(draw, size, rng, width_scale, length_scale, p)
    hole = np.asarray(img, dtype=bool)
    if rng.random() < 0.5:
        hole = hole[:, ::-1]
    if rng.random() < 0.5:
        hole = hole[::-1, :]
    return np.ascontiguousarray(hole)


def bin_scales(bin: Bin) -> Tuple[float, float]:
    """(width_scale, length_scale) of the brush for a target bin: widths grow like the square
    root of the bin's mid-ratio relative to DeepFill's typical 15 %, so large-hole bins are
    reached with a handful of thick strokes rather than dozens of thin ones."""
    mid = 0.5 * (bin[0] + bin[1])
    return float(np.clip(math.sqrt(mid / 0.15), 0.5, 2.0)), float(np.clip(0.6 + mid, 0.6, 1.2))


def free_form_mask(size: int, bin: Bin, rng: RngLike, max_tries: int = 50) -> np.ndarray:
    """A brush-stroke hole (H, W) bool, True = hole, whose hole ratio lies in ``bin = (lo, hi]``.

    The brush width and stroke length are scaled to the bin (:func:`bin_scales`) and strokes
    are added one at a time until the ratio passes ``lo``; a stroke that would overshoot ``hi``
    is redrawn thinner and shorter (up to 6 times), and a failed attempt restarts, so even the
    40-60 % bins are reached in a few tries rather than by rejection. Deterministic given the
    seed/generator. Raises ``RuntimeError`` after ``max_tries`` failed attempts (only for bins
    narrower than a stroke at tiny sizes).
    """
    rng = _rng(rng)
    lo, hi = parse_bins([bin])[0]
    if (hi - lo) * size * size < 4:
        raise ValueError(f"bin {bin} holds fewer than 4 pixels at size {size}; widen it")
    width_scale, length_scale = bin_scales((lo, hi))
    n_pix = size * size
    for _ in range(max_tries):
        hole = np.zeros((size, size), dtype=bool)
        ok = True
        while hole.sum() / n_pix <= lo:
            for shrink in range(7):
                f = 0.6 ** shrink
                stroke = brush_stroke_mask(size, rng, n_strokes=1, width_scale=width_scale * f,
                                           length_scale=length_scale * max(f, 0.3))
                new = hole | stroke
                if new.sum() / n_pix <= hi:
                    hole = new
                    break
            else:
                ok = False
                break
        ratio = hole.sum() / n_pix
        if ok and lo < ratio <= hi:
            return hole
    raise RuntimeError(f"no mask in bin {bin_name((lo, hi))} % at size {size} after {max_tries} "
                       "attempts; use a larger size or a wider bin")


def mask_seed(base_seed: int, bin: Bin, index: int) -> Tuple[int, int, int, int]:
    """The seed of the ``index``-th mask of a bin: a tuple for ``numpy.random.default_rng``,
    independent of how many masks other bins hold."""
    return (int(base_seed), round(bin[0] * 1000), round(bin[1] * 1000), int(index))


def masks_for_bin(size: int, bin: Bin, n: int, seed: int = 0, progress: bool = False) -> np.ndarray:
    """``n`` free-form holes (n, H, W) bool for one bin; mask ``i`` is drawn from
    ``mask_seed(seed, bin, i)``, so a longer list starts with the shorter one."""
    from tqdm.auto import tqdm

    out = np.zeros((n, size, size), dtype=bool)
    for i in tqdm(range(n), desc=f"masks {bin_name(bin)} %", disable=not progress, leave=False):
        out[i] = free_form_mask(size, bin, np.random.default_rng(mask_seed(seed, bin, i)))
    return out


# --------------------------------------------------------------------------- files
def save_mask(mask: Union[torch.Tensor, np.ndarray], path: Union[str, Path]) -> Path:
    """Write a mask as a 1-bit PNG with **white = hole**. Accepts a tensor (1, H, W) or (H, W)
    with 1 = known, or a boolean NumPy hole array (True = hole)."""
    path = Path(path)
    if isinstance(mask, torch.Tensor):
        m = mask.detach().cpu()
        if m.ndim == 3:
            m = m[0]
        hole = (m < 0.5).numpy()
    else:
        hole = np.asarray(mask, dtype=bool)
    if hole.ndim != 2:
        raise ValueError(f"save_mask expects one mask (H, W) or (1, H, W), got shape {hole.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(hole.astype(np.uint8) * 255).convert("1").save(path)
    return path


def load_mask(path: Union[str, Path], size: Optional[int] = None, black_hole: bool = False,
              allow_empty: bool = False) -> torch.Tensor:
    """Read a mask file as a float tensor (1, H, W) with 1 = known, 0 = hole.

    * In the file, **white = hole** (NVIDIA, official StrDiffusion); ``black_hole=True`` reads
      files whose kept pixels are white (IR-SDE, RePaint).
    * Colour and gray files are converted to gray; a non-binary file (anti-aliased, JPEG) is
      thresholded at mid-gray with a warning.
    * ``size`` resizes to ``size`` x ``size`` with nearest-neighbour (never blurring the edge).
    * More than 60 % hole raises a warning: the file probably uses the other convention.
    * A mask with no hole or no known pixel raises :class:`~strdiff_edu.errors.UsageError` (a
      ``ValueError``) unless ``allow_empty`` (a library option; the command line has no use for
      an empty mask).
    * The file is read as a viewer shows it (EXIF orientation applied; 16-bit scaled to 8 bits).
    """
    from .errors import UsageError
    from .images import open_image_file

    path = Path(path)
    gray = np.asarray(open_image_file(path, "mask").convert("L"))
    values = np.unique(gray)
    if not set(values.tolist()) <= {0, 255}:
        warnings.warn(f"mask {path.name} is not binary ({len(values)} gray levels); thresholded "
                      "at 128 (>= 128 is white)", stacklevel=2)
    white = gray >= 128
    if size is not None and white.shape != (size, size):
        white = np.asarray(Image.fromarray(white.astype(np.uint8) * 255)
                           .resize((size, size), Image.NEAREST)) >= 128
    hole = ~white if black_hole else white
    ratio = float(hole.mean())
    hint = "pass --black-hole (black_hole=True)" if not black_hole else "leave out --black-hole (black_hole=False)"
    if not allow_empty and ratio == 0:
        raise UsageError(f"mask {path} has no hole pixel: nothing to inpaint (holes are "
                         f"{'black' if black_hole else 'white'}); check that it is the right mask file"
                         + ("" if black_hole else ", or pass --black-hole (black_hole=True) if its holes are black"))
    if not allow_empty and ratio == 1:
        raise UsageError(f"mask {path} is all hole: no known pixel to inpaint from; if its kept pixels are "
                         f"{'black' if black_hole else 'white'}, {hint}")
    if ratio > INVERTED_WARNING_RATIO:
        convention = "black" if black_hole else "white"
        warnings.warn(f"mask {path.name} is {ratio:.0%} hole ({convention} = hole): is the mask "
                      f"inverted? Try: {hint}", stacklevel=2)
    return torch.from_numpy(~hole).float()[None]


#: The file types a mask folder may hold: the image types plus GIF (:func:`~strdiff_edu.images.list_image_files`).
MASK_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class MaskFolder(torch.utils.data.Dataset):
    """Masks from a folder of image files (recursive), each item a (1, size, size) tensor with
    1 = known; see :func:`load_mask` for the file convention and checks. ``bin`` keeps only the
    masks whose hole ratio (after resizing) lies in ``(lo, hi]``."""

    def __init__(self, root: Union[str, Path], size: int, black_hole: bool = False,
                 bin: Optional[Bin] = None):
        self.size, self.black_hole = size, black_hole
        from .images import list_image_files

        files = list_image_files(root, what="mask", extensions=MASK_EXTENSIONS)
        if bin is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                files = [f for f in files if in_bin(float(hole_ratio(self._load(f))), bin)]
            if not files:
                raise FileNotFoundError(f"no mask under {root} has a hole ratio in {bin_name(bin)} %")
        self.files = files

    def _load(self, f):
        return load_mask(f, self.size, black_hole=self.black_hole, allow_empty=True)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        return load_mask(self.files[i], self.size, black_hole=self.black_hole)
