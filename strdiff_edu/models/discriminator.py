"""The time-conditioned discriminator of the adaptive resampling (paper Eqs. 14-16).

``disc(y, x, t)`` scores a texture ``y`` (B, 3, H, W) together with a structure ``x``
(B, 1, H, W) at integer step ``t``; it returns one logit per sample, shape ``(B, 1)``. High
means "texture and structure agree" (the real pairs of training).

Layout (DDGAN's small discriminator; widths ``ngf * channel_mults``, paper preset ngf=64)::

    input   concat(y, x), 4 channels, reflect-padded to a multiple of the downsampling factor
    time    sinusoid(t_emb_dim) -> Dense -> LReLU -> Dense -> LReLU
    start   1x1 conv -> ngf*2
    blocks  DownConvBlock 128 -> 128 (same size), 128 -> 256, 256 -> 512, 512 -> 512 (each /2)
    stddev  minibatch standard deviation: one more channel
    head    3x3 conv -> 512, LReLU, sum over pixels, Dense -> 1

Follows DDGAN (as used by the official StrDiffusion code) layer for layer; the ``paper`` preset
has exactly the official 12,741,377 parameters. Differences:

* the FIR ``[1, 3, 3, 1]`` blur-downsample is a plain depthwise convolution instead of the
  upfirdn2d CUDA op (same result);
* minibatch-stddev groups need not divide the batch: the group is the largest divisor of ``B``
  that is at most ``stddev_group`` (DDGAN uses ``min(B, 4)`` and fails when it does not divide);
* inputs of any size are reflect-padded (DDGAN assumes the training size); the pixel sum then
  also runs over the padding.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from .config import DiscriminatorConfig
from .layers import BlurDownsample, TimeEmbedding, TimeLike, conv2d, pad_to_multiple

_ZERO_INIT_SCALE = 1e-10   # DDGAN's "init_scale=0": a nearly, not exactly, zero init


def variance_scaling_init_(module: nn.Module, scale: float = 1.0) -> None:
    """DDGAN's default init: uniform with variance ``scale / fan_avg`` (= Xavier-uniform with
    gain ``sqrt(scale)``), zero bias. Applies to a Conv2d or Linear."""
    nn.init.xavier_uniform_(module.weight, gain=math.sqrt(scale))
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def minibatch_stddev(x: torch.Tensor, group_size: int = 4, n_features: int = 1,
                     eps: float = 1e-8) -> torch.Tensor:
    """Append ``n_features`` channels holding the standard deviation across a group of samples.

    Samples ``j, j + B/G, j + 2B/G, ...`` form a group (``G`` = the largest divisor of ``B`` up to
    ``group_size``). Within a group, each feature's std over the group is averaged over its
    channels and pixels and broadcast as a constant map to every member. A batch of one gets the
    constant ``sqrt(eps) = 1e-4``. Lets the discriminator see batch statistics (StyleGAN2).
    """
    b, c, h, w = x.shape
    if c % n_features:
        raise ValueError(f"{c} channels do not split into {n_features} stddev features")
    group = max(g for g in range(1, min(group_size, b) + 1) if b % g == 0)
    y = x.float().reshape(group, b // group, n_features, c // n_features, h, w)
    std = torch.sqrt(y.var(dim=0, unbiased=False) + eps)      # (B/G, F, C/F, h, w)
    std = std.mean(dim=(2, 3, 4))                              # (B/G, F)
    std = std[:, :, None, None].repeat(group, 1, h, w)         # (B, F, h, w)
    return torch.cat([x, std.to(x.dtype)], dim=1)


class DownConvBlock(nn.Module):
    """Residual block: ``LReLU -> conv3 -> + Dense(t_emb) -> LReLU -> [blur /2] -> conv3``,
    plus a bias-free 1x1 skip of the (equally downsampled) input; the sum is divided by
    ``sqrt(2)``. The second conv starts near zero, so each block starts close to its skip."""

    def __init__(self, c_in: int, c_out: int, t_emb_dim: int, downsample: bool):
        super().__init__()
        self.act = nn.LeakyReLU(0.2)
        self.conv1 = conv2d(c_in, c_out, 3)
        self.time_bias = nn.Linear(t_emb_dim, c_out)
        self.conv2 = conv2d(c_out, c_out, 3)
        self.skip = conv2d(c_in, c_out, 1, bias=False)
        self.down = BlurDownsample() if downsample else nn.Identity()
        for layer in (self.conv1, self.time_bias, self.skip):
            variance_scaling_init_(layer)
        variance_scaling_init_(self.conv2, _ZERO_INIT_SCALE)

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(x)) + self.time_bias(t_emb)[:, :, None, None]
        h = self.conv2(self.down(self.act(h)))
        return (h + self.skip(self.down(x))) / math.sqrt(2.0)


class TimeConditionedDiscriminator(nn.Module):
    """DDGAN's small time-dependent discriminator on texture (+) structure; see the module doc."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.config = cfg
        widths = [cfg.ngf * m for m in cfg.channel_mults]
        self.act = nn.LeakyReLU(0.2)
        self.time_embedding = TimeEmbedding(cfg.t_emb_dim, cfg.t_emb_dim, cfg.t_emb_dim,
                                            nn.LeakyReLU(0.2), act_on_output=True)
        self.start_conv = conv2d(cfg.in_channels, widths[0], 1)
        self.blocks = nn.ModuleList(
            DownConvBlock(widths[k], widths[k + 1], cfg.t_emb_dim, downsample=(k > 0))
            for k in range(len(widths) - 1))
        self.final_conv = conv2d(widths[-1] + cfg.stddev_feat, widths[-1], 3)
        self.end_linear = nn.Linear(widths[-1], 1)
        for layer in (*self.time_embedding.mlp[::2], self.start_conv, self.end_linear):
            variance_scaling_init_(layer)
        variance_scaling_init_(self.final_conv, _ZERO_INIT_SCALE)

    def forward(self, y: torch.Tensor, x: torch.Tensor, t: TimeLike,
                stddev_group: Optional[int] = None) -> torch.Tensor:
        """Logits ``(B, 1)``: a column, not ``(B,)``, so that e.g. ``nn.TripletMarginLoss`` treats
        each sample's logit as its own one-dimensional embedding, as the official training does.

        ``stddev_group`` overrides the config's minibatch-stddev group; ``1`` scores every sample
        as if it were alone in its batch (what the samplers use, so that a score never depends on
        which images share the batch)."""
        cfg = self.config
        if y.shape[0] != x.shape[0] or y.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"texture {tuple(y.shape)} and structure {tuple(x.shape)} must share "
                             "batch and size")
        if y.shape[1] + x.shape[1] != cfg.in_channels:
            raise ValueError(f"texture and structure channels must add up to {cfg.in_channels}")
        t_emb = self.time_embedding(t, y.shape[0], y.device)
        h = self.start_conv(pad_to_multiple(torch.cat([y, x], dim=1), cfg.downsampling_factor))
        for block in self.blocks:
            h = block(h, t_emb)
        h = minibatch_stddev(h, stddev_group or cfg.stddev_group, cfg.stddev_feat)
        h = self.act(self.final_conv(h)).sum(dim=(2, 3))
        return self.end_linear(h).to(y.dtype)
