"""Non-learned inpainting baselines from well-kept libraries, behind the samplers' interface.

* :class:`BiharmonicInpainter`: scikit-image's ``restoration.inpaint_biharmonic`` (a smooth
  biharmonic fill of the hole, per channel).
* :class:`HarmonicInpainter`: :func:`strdiff_edu.fill.harmonic_fill` (push-pull + Jacobi sweeps,
  batched torch), the anchor of the ``x0-harmonic`` networks; with ``kind="fill"``
  :func:`strdiff_edu.fill.anchor_fill`, the mean of the harmonic and biharmonic fills, the anchor
  of the shipped ``x0-fill`` networks. Shown on their own so that a table says how much the
  diffusion model adds to its anchor.
* :class:`TeleaInpainter`: OpenCV's ``cv2.inpaint(..., cv2.INPAINT_TELEA)`` (fast marching).
  OpenCV is an **optional** extra (``pip install opencv-python-headless``); without it
  :func:`telea_available` is ``False`` and the tables simply leave the method out.

Both take and return float tensors (B, 3, H, W) in [0, 1] with the mask (B or 1, 1, H, W),
1 = known, and return a :class:`~strdiff_edu.sampling.SampleResult` (no network calls) whose
known pixels equal the input's exactly.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np
import torch

from .sampling import SampleResult, StepInfo, check_inputs, merge_known


def telea_available() -> bool:
    """Whether OpenCV (``cv2``) can be imported."""
    try:
        import cv2  # noqa: F401
    except Exception:
        return False
    return True


class _PerImage:
    name = "baseline"

    def _fill(self, img: np.ndarray, hole: np.ndarray) -> np.ndarray:  # (H, W, 3) float, (H, W) bool
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, image: torch.Tensor, known: torch.Tensor, generator: Optional[torch.Generator] = None,
               progress: bool = False, callback: Optional[Callable[[StepInfo], None]] = None,
               return_trajectory: bool = False) -> SampleResult:
        """Same signature as the diffusion samplers; ``generator``, ``callback`` and
        ``return_trajectory`` are accepted and ignored (the fill is deterministic, one step)."""
        from tqdm.auto import tqdm

        start = time.perf_counter()
        image, known = check_inputs(image, known)
        masked = (image * known).cpu().permute(0, 2, 3, 1).numpy().astype(np.float64)
        holes = (known[:, 0] < 0.5).cpu().numpy()
        out = np.stack([self._fill(masked[i], holes[i]) for i in
                        tqdm(range(image.shape[0]), desc=self.name, disable=not progress, leave=False)])
        raw = torch.from_numpy(out).permute(0, 3, 1, 2).to(image.device, image.dtype)
        return SampleResult(image=merge_known(image, known, raw), raw=raw, seconds=time.perf_counter() - start)


class BiharmonicInpainter(_PerImage):
    """scikit-image's biharmonic inpainting, one image at a time."""

    name = "biharmonic"

    def _fill(self, img, hole):
        from .fill import biharmonic_array

        return biharmonic_array(img, hole)


class HarmonicInpainter:
    """The harmonic fill of :mod:`strdiff_edu.fill` (``kind="harmonic"``, batched, on the images'
    device) or the anchor fill, its mean with the biharmonic fill (``kind="fill"``)."""

    def __init__(self, iterations: Optional[int] = None, kind: str = "harmonic"):
        from .fill import DEFAULT_ITERATIONS

        if kind not in ("harmonic", "fill"):
            raise ValueError(f"kind must be 'harmonic' or 'fill', got {kind!r}")
        self.iterations = DEFAULT_ITERATIONS if iterations is None else iterations
        self.kind = self.name = kind

    @torch.no_grad()
    def sample(self, image: torch.Tensor, known: torch.Tensor, generator: Optional[torch.Generator] = None,
               progress: bool = False, callback: Optional[Callable[[StepInfo], None]] = None,
               return_trajectory: bool = False) -> SampleResult:
        """Same signature as the diffusion samplers (the extra arguments are ignored)."""
        from .fill import anchor_fill, harmonic_fill

        start = time.perf_counter()
        image, known = check_inputs(image, known)
        known = known.expand(image.shape[0], *known.shape[1:])
        if self.kind == "fill":
            raw = anchor_fill(image * known, known).to(image.dtype)
        else:
            raw = harmonic_fill(image * known, known, self.iterations)
        return SampleResult(image=merge_known(image, known, raw), raw=raw, seconds=time.perf_counter() - start)


class TeleaInpainter(_PerImage):
    """OpenCV's Telea fast-marching inpainting (8-bit, ``radius`` pixels); needs ``cv2``."""

    name = "telea"

    def __init__(self, radius: int = 3):
        if not telea_available():
            raise ImportError("OpenCV is not installed: `pip install opencv-python-headless` to use Telea "
                              "(an optional baseline)")
        self.radius = radius

    def _fill(self, img, hole):
        import cv2

        u8 = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
        filled = cv2.inpaint(np.ascontiguousarray(u8), hole.astype(np.uint8) * 255, self.radius, cv2.INPAINT_TELEA)
        return filled.astype(np.float64) / 255.0
