"""A fast, parameter-free fill of an image's holes: the anchor of the clean-state networks.

:func:`harmonic_fill` fills the hole of ``image * known`` with a smooth interpolation of the
known pixels in two stages, both batched torch operations on any device:

1. **push-pull** (a masked Gaussian-pyramid fill): average the known pixels down a pyramid of
   2x2 blocks until every block has a known pixel, then come back up, keeping at each level the
   blocks that had known pixels and taking the coarser level's (bilinearly upsampled) colour for
   the others;
2. ``iterations`` **Jacobi sweeps of Laplace's equation** inside the hole (each hole pixel
   becomes the mean of its four neighbours, the known pixels stay fixed), which smooths the
   pyramid's seams towards the harmonic interpolant.

It is not the method of the book (it knows nothing about images beyond smoothness) but, averaged
with scikit-image's biharmonic fill (:func:`anchor_fill`), the *anchor* of the ``x0-fill``
parameterisation (:mod:`strdiff_edu.models.unet`; ``x0-harmonic`` uses the harmonic fill alone):
the network predicts the clean image as this fill plus a learned correction, so an untrained
correction already gives a smooth fill rather than a black hole. On the embedded evaluation split it scores
22.5 dB / 0.778 SSIM at 64 px (16 sweeps), against scikit-image's biharmonic fill at
21.9 dB / 0.784 (``benchmarks/results/quality_cpu.json`` has the measured rows).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_ITERATIONS = 16


def push_pull(image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The push-pull pyramid fill of the hole of ``image`` ((B, C, H, W); ``known`` (B or 1, 1,
    H, W), 1 = known). Known pixels are returned unchanged; an image with no known pixel comes
    back as zeros."""
    known = known.to(image.dtype).expand(image.shape[0], 1, *image.shape[-2:])
    levels = []
    value, weight = image * known, known
    while min(value.shape[-2:]) > 1:
        levels.append((value, weight))
        # ceil_mode keeps odd sizes; sums of the 2x2 blocks (avg * 4 over the valid part)
        value = F.avg_pool2d(value, 2, ceil_mode=True) * 4
        weight = F.avg_pool2d(weight, 2, ceil_mode=True) * 4
    fill = value / weight.clamp_min(1e-8)
    for value, weight in reversed(levels):
        up = F.interpolate(fill, size=value.shape[-2:], mode="bilinear", align_corners=False)
        confidence = weight.clamp(0, 1)
        fill = confidence * (value / weight.clamp_min(1e-8)) + (1 - confidence) * up
    return known * image + (1 - known) * fill


def harmonic_fill(image: torch.Tensor, known: torch.Tensor,
                  iterations: int = DEFAULT_ITERATIONS) -> torch.Tensor:
    """:func:`push_pull` followed by ``iterations`` Jacobi sweeps of Laplace's equation in the
    hole (replicate padding at the border). Returns a tensor like ``image`` whose known pixels
    equal ``image``'s exactly. Computed in float32 whatever the input dtype."""
    if image.ndim != 4 or known.ndim != 4 or known.shape[1] != 1:
        raise ValueError(f"image must be (B, C, H, W) and known (B, 1, H, W); got "
                         f"{tuple(image.shape)} and {tuple(known.shape)}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    dtype = image.dtype
    image, known = image.float(), known.float().expand(image.shape[0], 1, *image.shape[-2:])
    out = push_pull(image, known)
    channels = image.shape[1]
    kernel = torch.tensor([[0.0, 0.25, 0.0], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]],
                          device=image.device).expand(channels, 1, 3, 3)
    hole = 1 - known
    for _ in range(iterations):
        neighbours = F.conv2d(F.pad(out, (1, 1, 1, 1), mode="replicate"), kernel, groups=channels)
        out = out + hole * (neighbours - out)
    return out.to(dtype)


def biharmonic_array(image, hole):
    """scikit-image's biharmonic inpainting of one (H, W, C) float array where ``hole`` (H, W) is
    True; an image without a hole comes back unchanged."""
    from skimage.restoration import inpaint_biharmonic

    return inpaint_biharmonic(image, hole, channel_axis=-1) if hole.any() else image


def biharmonic_fill(image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """:func:`biharmonic_array` of every image of the batch, on the CPU in float64, returned as
    float32 on ``image``'s device; known pixels are returned unchanged."""
    import numpy as np

    known = known.float().expand(image.shape[0], 1, *image.shape[-2:])
    arr = (image.detach().float() * known).cpu().permute(0, 2, 3, 1).numpy().astype(np.float64)
    holes = (known[:, 0] < 0.5).cpu().numpy()
    out = np.stack([biharmonic_array(arr[i], holes[i]) for i in range(arr.shape[0])])
    filled = torch.from_numpy(out).to(image.device, torch.float32).permute(0, 3, 1, 2)
    return known * image.float() + (1 - known) * filled


def anchor_fill(image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The anchor of the ``x0-fill`` networks: the mean of :func:`harmonic_fill` and
    :func:`biharmonic_fill`. On the validation split (crops of the training scenes) the mean
    scores above both fills in PSNR and SSIM (the harmonic fill is better in PSNR, the biharmonic
    one in SSIM); of the biharmonic weights 0, 0.2, 0.4, 0.5, 0.6, 0.8 and 1, equal weights gave
    the best PSNR (``benchmarks/results/validation_cpu.json``, ``anchor_weights``: two crops per
    training scene, four masks each)."""
    return 0.5 * (harmonic_fill(image, known).float() + biharmonic_fill(image, known))


def known_from_masked(mu: torch.Tensor) -> torch.Tensor:
    """The known-pixel mask implied by a masked image ``mu = image * known``: 1 where any channel
    is non-zero. (A known pixel that is exactly black in every channel reads as a hole: it is then
    filled from its neighbours, which changes the anchor there and nothing else.)"""
    return (mu != 0).any(dim=1, keepdim=True).to(mu.dtype)
