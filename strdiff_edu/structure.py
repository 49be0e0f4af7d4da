"""Structure maps: the sparse guide of StrDiffusion's structure branch.

StrDiffusion pairs the texture diffusion (RGB, ``y``) with a structure diffusion (one channel,
``x``). In the paper's default "gray2edge" pairing the structure starts at the grayscale map of
the image (t = 0) and drifts towards the *masked edge map* (the terminal mean at t = T), so the
structure gets sparser as t grows.

Conventions: images are float tensors (B, C, H, W) in [0, 1]; masks are (B, 1, H, W) with
1 = known pixel and 0 = hole. Everything here is deterministic and device-agnostic: Canny runs
in scikit-image on the CPU and the result is returned on the input's device and dtype.

**Where edges come from.** The official code runs Canny on the *full* ground-truth gray map and
multiplies the result by the mask. Canny smooths before it differentiates, so the edges next to
the hole boundary depend on the hole's content: ground truth leaks into the terminal state, and
at inference time there is no ground truth to compute it from. By default this module computes
the terminal edges from the known pixels only (scikit-image's ``canny(mask=...)``: the smoothing
is normalised by the smoothed mask and the hole never enters), in training and inference alike;
``edge_source="full"`` keeps the official variant for comparison.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
import torch

#: ITU-R BT.709 luma weights, as in ``skimage.color.rgb2gray`` (defined once, in ``sde``, where
#: the structure-guided ideal state of Eq. 11 needs them too).
from .sde import RGB_TO_GRAY as GRAY_WEIGHTS  # noqa: E402

#: The four structure pairings of the paper's ablation: (initial state, terminal mean).
PAIRINGS = ("gray2edge", "gray2gray", "edge2edge", "edge2gray")

#: Where the terminal edges are computed: from the known pixels only (default) or from the full
#: ground-truth gray map, masked afterwards (the official code).
EDGE_SOURCES = ("known", "full")

#: Canny sigma of the official code at 256 x 256: 3.0 in the training loaders, 2.0 at test time.
OFFICIAL_SIGMA_TRAIN = 3.0
OFFICIAL_SIGMA_TEST = 2.0


class StructurePair(NamedTuple):
    """The structure SDE's two ends: ``initial`` (x_0, the clean structure) and
    ``terminal_mean`` (mu_x, what the forward process reverts to; it only holds known-pixel
    information). Both (B, 1, H, W) in [0, 1]."""

    initial: torch.Tensor
    terminal_mean: torch.Tensor


def _check_image(image: torch.Tensor, name: str = "image") -> None:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (B, C, H, W), got {type(image).__name__}")
    if image.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(image.shape)}; "
                         "add a batch axis with image[None]")


def _check_mask(mask: torch.Tensor, like: torch.Tensor, name: str = "known") -> None:
    _check_image(mask, name)
    if mask.shape[1] != 1 or mask.shape[0] not in (1, like.shape[0]) or mask.shape[2:] != like.shape[2:]:
        raise ValueError(f"{name} must have shape (B or 1, 1, H, W) = (*, 1, {like.shape[2]}, "
                         f"{like.shape[3]}), got {tuple(mask.shape)}")


def grayscale(image: torch.Tensor) -> torch.Tensor:
    """The grayscale map 0.2125 R + 0.7154 G + 0.0721 B of a (B, 3, H, W) image, as (B, 1, H, W)
    (book: {ref}`eq-gray`).

    The weights are ``skimage.color.rgb2gray``'s, which the official code uses. A one-channel
    input is returned as a copy.
    """
    _check_image(image)
    if image.shape[1] == 1:
        return image.clone()
    if image.shape[1] != 3:
        raise ValueError(f"grayscale expects 1 or 3 channels, got {image.shape[1]}")
    w = torch.tensor(GRAY_WEIGHTS, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image * w).sum(dim=1, keepdim=True)


def edge_map(gray: torch.Tensor, sigma: float = 2.0, known: Optional[torch.Tensor] = None,
             edge_source: str = "known", low_threshold: Optional[float] = None,
             high_threshold: Optional[float] = None) -> torch.Tensor:
    """Canny edges of a (B, 1, H, W) gray map as a {0, 1} float tensor (B, 1, H, W)
    (book: {ref}`eq-edge`).

    Parameters
    ----------
    gray:
        Gray maps in [0, 1] (use :func:`grayscale` first for RGB).
    sigma:
        Width of Canny's Gaussian smoothing, in pixels. The official code uses 2 at test time
        and 3 in training at 256 x 256; smaller images need a smaller sigma, see
        :func:`canny_sigma` and the profiles' ``canny_sigma``.
    known:
        Optional (B or 1, 1, H, W) mask, 1 = known. Without it the edges of the whole image are
        returned. With it, the result is zero in the hole and, by default
        (``edge_source="known"``), computed from the known pixels only via scikit-image's
        ``canny(mask=known)``, so the hole's content cannot influence it.
        ``edge_source="full"`` is the official code's variant: Canny on the full gray map,
        multiplied by ``known`` afterwards (hole content leaks through the smoothing).
    low_threshold, high_threshold:
        Canny's hysteresis thresholds on the gradient magnitude; scikit-image's defaults
        (0.1 and 0.2 for float images, the official setting) when ``None``.

    The result equals ``skimage.feature.canny(gray[b, 0], sigma)`` (times the mask, or with
    ``mask=known``) for every image ``b``.
    """
    from skimage.feature import canny

    _check_image(gray, "gray")
    if gray.shape[1] != 1:
        raise ValueError(f"edge_map expects a gray map (B, 1, H, W), got {gray.shape[1]} channels; "
                         "call structure.grayscale(image) first")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    if edge_source not in EDGE_SOURCES:
        raise ValueError(f"unknown edge_source {edge_source!r}; choose one of {', '.join(EDGE_SOURCES)}")
    g = gray.detach().to("cpu", torch.float64).numpy()
    m = None
    if known is not None:
        _check_mask(known, gray)
        m = (known.detach().to("cpu") > 0.5).numpy()
    out = np.zeros(g.shape, dtype=bool)
    for b in range(g.shape[0]):
        mb = None if m is None else m[b if m.shape[0] > 1 else 0, 0]
        kwargs = dict(sigma=float(sigma), low_threshold=low_threshold, high_threshold=high_threshold)
        if mb is not None and edge_source == "known":
            out[b, 0] = canny(g[b, 0], mask=mb, **kwargs)
        else:
            e = canny(g[b, 0], **kwargs)
            out[b, 0] = e if mb is None else e & mb
    return torch.from_numpy(out).to(device=gray.device, dtype=gray.dtype)


def canny_sigma(image_size: int, phase: str = "test") -> float:
    """The official Canny sigma (3 in training, 2 at test time, both at 256 px) scaled
    linearly to ``image_size``, floored at 0.5 px.

    A linear scaling keeps the smoothing at the same fraction of the image. This is only a
    rule of thumb: the profiles store the value each preset uses (``Profile.canny_sigma``),
    chosen in Part III by matching edge densities.
    """
    base = {"train": OFFICIAL_SIGMA_TRAIN, "test": OFFICIAL_SIGMA_TEST}
    if phase not in base:
        raise ValueError(f"phase must be 'train' or 'test', got {phase!r}")
    return max(0.5, base[phase] * image_size / 256)


def edge_density(edges: torch.Tensor, known: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Fraction of edge pixels per image, (B,); over the known pixels when ``known`` is given."""
    _check_image(edges, "edges")
    if known is None:
        return edges.flatten(1).mean(1)
    _check_mask(known, edges)
    known = known.expand_as(edges)
    return (edges * known).flatten(1).sum(1) / known.flatten(1).sum(1).clamp_min(1)


def structure_pair(image: torch.Tensor, known: torch.Tensor, pairing: str = "gray2edge",
                   sigma: float = 2.0, edge_source: str = "known") -> StructurePair:
    """The structure SDE's (initial state, terminal mean) for one of the paper's four pairings
    (book: {ref}`eq-structure-pair`).

    ``image`` is (B, 3, H, W) RGB or (B, 1, H, W) gray in [0, 1]; ``known`` is the (B or 1, 1,
    H, W) mask, 1 = known. With ``G`` the gray map and ``E`` its Canny edges:

    * ``"gray2edge"`` (the paper's default): x_0 = G, mu_x = masked edges;
    * ``"gray2gray"``: x_0 = G, mu_x = G * known;
    * ``"edge2edge"``: x_0 = E (edges of the full image), mu_x = masked edges;
    * ``"edge2gray"``: x_0 = E, mu_x = G * known.

    The initial state is the clean target and uses the whole image; the terminal mean uses the
    known pixels only. "Masked edges" are ``edge_map(G, sigma, known, edge_source)``: computed
    from the known pixels by default, or the official full-image-then-mask variant with
    ``edge_source="full"``.
    """
    if pairing not in PAIRINGS:
        raise ValueError(f"unknown structure pairing {pairing!r}; choose one of {', '.join(PAIRINGS)}")
    _check_image(image)
    _check_mask(known, image)
    known = known.to(image.dtype)
    gray = grayscale(image)
    start, end = pairing.split("2")
    initial = gray if start == "gray" else edge_map(gray, sigma)
    if end == "gray":
        terminal = gray * known
    else:
        terminal = edge_map(gray, sigma, known=known, edge_source=edge_source)
    return StructurePair(initial, terminal)


# --------------------------------------------------------------------------- the discrepancy measure
def boundary_bands(known: torch.Tensor, width: int = 2):
    """The two bands along a mask's boundary: ``(inner, outer)`` boolean (B, 1, H, W) tensors.

    ``inner`` holds the hole pixels within ``width`` pixels (chessboard distance) of a known
    pixel; ``outer`` the known pixels within ``width`` pixels of a hole pixel.
    """
    _check_image(known, "known")
    if width < 1:
        raise ValueError(f"width must be at least 1 pixel, got {width}")
    hole = (known < 0.5).to(torch.float32)
    k = 2 * width + 1
    near_known = torch.nn.functional.max_pool2d(1 - hole, k, stride=1, padding=width) > 0
    near_hole = torch.nn.functional.max_pool2d(hole, k, stride=1, padding=width) > 0
    inner = hole.bool() & near_known
    outer = (~hole.bool()) & near_hole
    return inner, outer


def boundary_gap(x: torch.Tensor, known: torch.Tensor, width: int = 2) -> torch.Tensor:
    """The semantic-discrepancy measure of Part III, per image (B,): the absolute difference
    between the mean of ``x`` over the outer and the inner boundary bands, averaged over
    channels (book: {ref}`eq-boundary-gap`).

    A natural image is continuous across an arbitrary mask boundary, so the gap of an unmasked
    image (or of its diffusion) is close to zero; a hole that fades to a different value opens
    a gap. ``x`` is (B, C, H, W); ``known`` is (B or 1, 1, H, W).
    """
    _check_image(x, "x")
    _check_mask(known, x)
    inner, outer = boundary_bands(known.expand(x.shape[0], 1, *x.shape[2:]), width)
    if not bool(inner.flatten(1).any(1).all()) or not bool(outer.flatten(1).any(1).all()):
        raise ValueError("boundary_gap needs a mask with both known and hole pixels in every image")
    inner, outer = inner.to(x.dtype), outer.to(x.dtype)
    mean_in = (x * inner).sum((2, 3)) / inner.sum((2, 3))
    mean_out = (x * outer).sum((2, 3)) / outer.sum((2, 3))
    return (mean_out - mean_in).abs().mean(1)
