"""Building blocks shared by the noise U-Nets and the discriminator.

Everything here is device- and dtype-agnostic: no module creates tensors on a fixed device, and
the normalisations compute their statistics in float32 and hand back the input's dtype, so the
blocks run unchanged on CPU, CUDA, the meta device and under ``torch.autocast`` (bf16).

What follows the official code (StrDiffusion, which inherits its U-Net from IR-SDE; the
discriminator from Denoising-Diffusion-GAN) is stated per block; the code is our own.
"""
from __future__ import annotations

import math
from typing import Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

TimeLike = Union[int, torch.Tensor]


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------

def timesteps_for_batch(t: TimeLike, batch: int, device: torch.device) -> torch.Tensor:
    """``t`` as a float32 vector of length ``batch`` on ``device``.

    Accepts a Python int, a 0-d tensor, or any tensor with ``batch`` elements (e.g. ``(B,)`` or
    ``(B, 1, 1, 1)``). A single value is broadcast to the whole batch.
    """
    t = torch.as_tensor(t, device=device).reshape(-1).to(torch.float32)
    if t.numel() == 1:
        return t.expand(batch)
    if t.numel() != batch:
        raise ValueError(f"t has {t.numel()} entries but the batch has {batch}")
    return t


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer-style embedding of (integer) time steps: ``[sin(t w_k), cos(t w_k)]``.

    ``w_k = exp(-k ln(max_period) / (dim/2 - 1))`` for ``k = 0 .. dim/2 - 1``, the form used by
    both IR-SDE's U-Net (dim 64 in the paper preset) and DDGAN's discriminator (dim 256).
    Computed in float32 whatever the autocast state; returns ``(B, dim)``.
    """
    if dim % 2 or dim < 4:
        raise ValueError(f"the sinusoidal embedding needs an even dim >= 4, got {dim}")
    half = dim // 2
    k = torch.arange(half, device=t.device, dtype=torch.float32)
    freqs = torch.exp(-math.log(max_period) / (half - 1) * k)
    angles = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of ``t`` followed by a two-layer MLP.

    ``sin/cos(dim_in) -> Linear(dim_in, dim_hidden) -> act -> Linear(dim_hidden, dim_out)
    [-> act]``. The U-Nets use GELU and no final activation (IR-SDE); the discriminator uses
    LeakyReLU(0.2) and applies it once more on the output (DDGAN).
    """

    def __init__(self, dim_in: int, dim_hidden: int, dim_out: int, act: nn.Module,
                 act_on_output: bool = False):
        super().__init__()
        self.dim_in = dim_in
        self.mlp = nn.Sequential(nn.Linear(dim_in, dim_hidden), act, nn.Linear(dim_hidden, dim_out))
        self.out_act = act if act_on_output else nn.Identity()

    def forward(self, t: TimeLike, batch: int, device: torch.device) -> torch.Tensor:
        emb = sinusoidal_embedding(timesteps_for_batch(t, batch, device), self.dim_in)
        return self.out_act(self.mlp(emb.to(self.mlp[0].weight.dtype)))


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------

def positional_normalize(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Normalise every pixel across channels: ``(x - mean_c) / sqrt(var_c + eps)``.

    This is positional normalisation (PONO, Li et al. 2019) and also what IR-SDE calls a
    channel "LayerNorm" before its gain. Statistics use the population variance and are
    computed in float32; the result has ``x``'s dtype.
    """
    x32 = x.float()
    mean = x32.mean(dim=1, keepdim=True)
    var = x32.var(dim=1, keepdim=True, unbiased=False)
    return ((x32 - mean) * torch.rsqrt(var + eps)).to(x.dtype)


class ChannelLayerNorm(nn.Module):
    """Per-pixel normalisation across channels with a learned gain ``g`` (no bias).

    As in IR-SDE: ``eps`` is 1e-5 for float32 inputs and 1e-3 for lower precision.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = 1e-5 if x.dtype == torch.float32 else 1e-3
        return positional_normalize(x, eps) * self.gain.to(x.dtype)


# --------------------------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------------------------

class LinearAttention(nn.Module):
    """Linear (efficient) attention over all pixels, O(HW) in memory.

    Queries get a softmax over their feature dimension, keys a softmax over positions; the
    context ``K V^T / (H W)`` is a ``dim_head x dim_head`` matrix per head (the values are
    divided by the number of pixels, as in IR-SDE's code). Projections are 1x1 convs
    (qkv without bias, output with bias) and the output passes through a channel LayerNorm,
    as in IR-SDE's U-Net (4 heads x 32 dims in the paper preset).
    """

    def __init__(self, channels: int, heads: int = 4, dim_head: int = 32):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(channels, 3 * hidden, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(hidden, channels, 1), ChannelLayerNorm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = (z.reshape(b, self.heads, self.dim_head, h * w)
                   for z in self.to_qkv(x).chunk(3, dim=1))
        q = q.softmax(dim=-2) * self.dim_head ** -0.5
        k = k.softmax(dim=-1)
        v = v / (h * w)                                        # as IR-SDE: the context is a mean over pixels
        context = torch.einsum("bhdn,bhen->bhde", k, v)       # (b, heads, d, e)
        out = torch.einsum("bhde,bhdn->bhen", context, q)      # (b, heads, e, n)
        return self.to_out(out.reshape(b, self.heads * self.dim_head, h, w))


class AttentionBlock(nn.Module):
    """``x + LinearAttention(ChannelLayerNorm(x))`` (IR-SDE's Residual(PreNorm(...)))."""

    def __init__(self, channels: int, heads: int, dim_head: int):
        super().__init__()
        self.norm = ChannelLayerNorm(channels)
        self.attn = LinearAttention(channels, heads, dim_head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attn(self.norm(x))


# --------------------------------------------------------------------------------------------
# Convolutions, residual block, resampling
# --------------------------------------------------------------------------------------------

def conv2d(c_in: int, c_out: int, kernel: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    """A convolution that keeps the resolution for stride 1 (padding ``kernel // 2``)."""
    return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=bias)


class TimeResBlock(nn.Module):
    """Residual block modulated by the time embedding, with no normalisation layer.

    ``h = SiLU(conv3(x) * (1 + a) + b)`` with ``(a, b) = Linear(SiLU(t_emb))``, then
    ``h = SiLU(conv3(h))``; output ``h + shortcut(x)`` where the shortcut is a 1x1 conv only when
    the channel count changes. All convs are bias-free. This is IR-SDE's ResBlock; like it, and
    unlike the DDPM U-Net, there is no GroupNorm.
    """

    def __init__(self, c_in: int, c_out: int, time_dim: int):
        super().__init__()
        self.act = nn.SiLU()
        self.time_to_scale_shift = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 2 * c_out))
        self.conv1 = conv2d(c_in, c_out, 3, bias=False)
        self.conv2 = conv2d(c_out, c_out, 3, bias=False)
        self.shortcut = conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.time_to_scale_shift(t_emb)[:, :, None, None].chunk(2, dim=1)
        h = self.act(self.conv1(x) * (1 + scale) + shift)
        h = self.act(self.conv2(h))
        return h + self.shortcut(x)


class Downsample(nn.Module):
    """Halve the resolution with a 4x4 stride-2 convolution (with bias), as IR-SDE does."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour x2, then a 3x3 convolution (with bias)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = conv2d(c_in, c_out, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class BlurDownsample(nn.Module):
    """Anti-aliased x2 downsampling with the separable FIR filter ``[1, 3, 3, 1]``.

    DDGAN (after StyleGAN2) does this with a custom CUDA op (upfirdn2d). Here it is a depthwise
    convolution with the normalised 4x4 outer product, zero padding 1 on each side and stride 2,
    which gives the same result for even sizes (the kernel is symmetric, so flipping it for a
    true convolution changes nothing).
    """

    def __init__(self, taps: Tuple[float, ...] = (1.0, 3.0, 3.0, 1.0)):
        super().__init__()
        k1 = torch.tensor(taps, dtype=torch.float32)
        k2 = torch.outer(k1, k1)
        self.register_buffer("kernel", (k2 / k2.sum())[None, None], persistent=False)
        self.pad = (len(taps) - 2) // 2   # (k - factor) split evenly: 1 for four taps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        weight = self.kernel.to(device=x.device, dtype=x.dtype).expand(c, 1, -1, -1)
        return F.conv2d(F.pad(x, [self.pad] * 4), weight, stride=2, groups=c)


# --------------------------------------------------------------------------------------------
# Arbitrary image sizes
# --------------------------------------------------------------------------------------------

def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the last two dims on the bottom/right up to a multiple of ``multiple``.

    Reflect padding as in IR-SDE; replicate padding where the image is too small to reflect
    (reflect needs the pad to be smaller than the side).
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)
