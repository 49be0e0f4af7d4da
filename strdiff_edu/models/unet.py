"""The conditional noise U-Net shared by the texture, structure and IR-SDE networks.

One implementation, three roles (see :func:`strdiff_edu.models.model_config`):

* **texture** ``net(y_t, mu, t, structure)``: RGB, with SPADE structure conditioning (Eq. 12);
* **structure** ``net(x_t, mu, t)``: one channel, no SPADE;
* **IR-SDE baseline** ``net(y_t, mu, t)``: RGB, no SPADE.

Each returns the noise of the mean-reverting SDE at integer step ``t`` (same shape as ``x_t``).
What the head itself predicts is ``cfg.prediction`` (book: {ref}`eq-clean-parameterization`):

* ``"noise"`` (official): the head's output is the noise;
* ``"x0"``: the head predicts the clean state ``x0_hat``; the noise is derived from it,
  ``(x_t - mu - (x0_hat - mu) exp(-theta_bar_t)) / sigma_bar_t`` (the SDE's marginal solved for
  the noise), so samplers and losses see a noise network either way;
* ``"x0-harmonic"`` / ``"x0-fill"``: ``x0_hat = fill(mu) + head output``, a fill of ``mu``'s known
  pixels (:func:`strdiff_edu.fill.harmonic_fill`, or :func:`strdiff_edu.fill.anchor_fill`, the
  mean of the harmonic and biharmonic fills) also fed as a third input group.

:meth:`ConditionalUNet.predict_clean` gives ``x0_hat`` for every parameterisation (for
``"noise"`` the clean state implied by the predicted noise).

Layout (widths ``C_i = nf * channel_mults[i]``; paper preset ``C = 64, 128, 256, 512`` and a
1024-wide bottleneck; ``T_e = time_mult * nf``)::

    input  [x_t - mu, mu] (2 * image_channels; anchored predictions: + the fill), reflect-padded to a multiple of 2**(depth-1)
    init   7x7 conv -> C_0                                    (kept for the head)
    encoder level i = 0 .. depth-1
           ResBlock(C_i)            -> skip
           ResBlock(C_i), Attention -> skip
           i < depth-1: 4x4 stride-2 conv C_i -> C_{i+1} (bias)   [halves the resolution]
           i = depth-1: 3x3 stride-1 conv C_i -> C_depth (no bias) [only widens]
           SPADEResBlock(C_{i+1}, structure)                      [texture network only]
    middle ResBlock, Attention, ResBlock at C_depth
    decoder level i = depth-1 .. 0
           concat skip, ResBlock(C_{i+1} + C_i -> C_{i+1})
           concat skip, ResBlock(C_{i+1} + C_i -> C_{i+1}), Attention
           i > 0: nearest x2 + 3x3 conv C_{i+1} -> C_i (bias);  i = 0: 3x3 conv (no bias)
    head   concat init features, ResBlock(2 C_0 -> C_0), 3x3 conv (bias) -> image_channels
    output cropped back to the input's H x W

This is the official ``ConditionalUNet`` (IR-SDE's U-Net plus StrDiffusion's SPADE blocks)
layer for layer; with the ``paper`` preset the parameter counts are exactly the official ones.
Where it differs:

* the paper says the network has neither GroupNorm nor attention; the official code (and this
  one by default) has no GroupNorm but keeps linear attention at every level and in the
  middle. ``attention=False`` gives the paper's description;
* the official code pads to a multiple of ``2**depth`` (16), one more factor of two than the
  network downsamples; we pad to ``2**(depth-1)`` (8), which is all the layout needs. For
  sizes that are multiples of 16 (256x256) the two are identical;
* the structure map is padded like the image before SPADE resizes it, so that it stays aligned
  with the features;
* widths, depth, attention heads, SPADE hidden width and spectral norm are configurable.
"""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn

from ..fill import anchor_fill, harmonic_fill, known_from_masked
from .config import ANCHORED, UNetConfig
from .layers import (AttentionBlock, Downsample, TimeEmbedding, TimeLike, TimeResBlock, Upsample,
                     conv2d, pad_to_multiple)
from .spade import SPADEResBlock


def _attention_or_identity(cfg: UNetConfig, channels: int) -> nn.Module:
    if cfg.attention:
        return AttentionBlock(channels, cfg.attn_heads, cfg.attn_dim_head)
    return nn.Identity()


class EncoderLevel(nn.Module):
    """Two time-ResBlocks (each output saved as a skip), attention, down/widening conv and,
    for the texture network, a SPADE block on the result."""

    def __init__(self, cfg: UNetConfig, width: int, next_width: int, time_dim: int, last: bool):
        super().__init__()
        self.block1 = TimeResBlock(width, width, time_dim)
        self.block2 = TimeResBlock(width, width, time_dim)
        self.attn = _attention_or_identity(cfg, width)
        # The last level keeps the resolution: the official code widens with a bias-free 3x3
        # conv there instead of the 4x4 stride-2 conv (which has a bias) of the other levels.
        self.down = conv2d(width, next_width, 3, bias=False) if last else Downsample(width, next_width)
        self.spade = (SPADEResBlock(next_width, cfg.structure_channels, cfg.spade_hidden,
                                    cfg.spectral_norm) if cfg.spade else None)

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor, structure: Optional[torch.Tensor],
                skips: List[torch.Tensor]) -> torch.Tensor:
        x = self.block1(x, t_emb)
        skips.append(x)
        x = self.attn(self.block2(x, t_emb))
        skips.append(x)
        x = self.down(x)
        if self.spade is not None:
            x = self.spade(x, structure)
        return x


class DecoderLevel(nn.Module):
    """Two time-ResBlocks fed with the concatenated skips, attention, then up/narrowing conv."""

    def __init__(self, cfg: UNetConfig, width: int, wider: int, time_dim: int, first: bool):
        super().__init__()
        self.block1 = TimeResBlock(wider + width, wider, time_dim)
        self.block2 = TimeResBlock(wider + width, wider, time_dim)
        self.attn = _attention_or_identity(cfg, wider)
        # Mirror of the encoder: level 0 only narrows (bias-free 3x3 conv) since the encoder's
        # last level did not downsample.
        self.up = conv2d(wider, width, 3, bias=False) if first else Upsample(wider, width)

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor, skips: List[torch.Tensor]) -> torch.Tensor:
        x = self.block1(torch.cat([x, skips.pop()], dim=1), t_emb)
        x = self.block2(torch.cat([x, skips.pop()], dim=1), t_emb)
        return self.up(self.attn(x))


class ConditionalUNet(nn.Module):
    """Noise-prediction U-Net of the mean-reverting SDE; see the module docstring for the layout.

    ``forward(x_t, mu, t, structure=None)``: ``x_t`` and ``mu`` are ``(B, image_channels, H, W)``
    with any ``H, W``; ``t`` an int or integer tensor ``(B,)``; ``structure`` a ``(B, 1, H, W)``
    map, required when ``cfg.spade`` and refused otherwise. Returns the predicted noise with the
    shape and dtype of ``x_t``.
    """

    def __init__(self, cfg: UNetConfig, sde=None):
        super().__init__()
        if cfg.prediction != "noise" and sde is None:
            raise ValueError(f"a network with prediction={cfg.prediction!r} needs the SDE (sde=...) to turn "
                             "its clean-state prediction into noise")
        self.config = cfg
        self.sde = sde  # a MeanRevertingSDE (plain object, no tensors of the module); None for "noise"
        self._anchor_cache = None
        widths = cfg.widths
        time_dim = cfg.time_mult * cfg.nf
        self.time_embedding = TimeEmbedding(cfg.nf, time_dim, time_dim, nn.GELU())
        # Bias-free, like every "default" conv of the official U-Net; the decoder's output is
        # concatenated with these features before the head.
        self.init_conv = conv2d(cfg.in_channels, widths[0], cfg.init_kernel, bias=False)
        self.encoder = nn.ModuleList(
            EncoderLevel(cfg, widths[i], widths[i + 1], time_dim, last=(i == cfg.depth - 1))
            for i in range(cfg.depth))
        mid = widths[cfg.depth]
        self.mid_block1 = TimeResBlock(mid, mid, time_dim)
        self.mid_attn = _attention_or_identity(cfg, mid)
        self.mid_block2 = TimeResBlock(mid, mid, time_dim)
        self.decoder = nn.ModuleList(
            DecoderLevel(cfg, widths[i], widths[i + 1], time_dim, first=(i == 0))
            for i in reversed(range(cfg.depth)))
        self.head_block = TimeResBlock(2 * widths[0], widths[0], time_dim)
        self.head_conv = conv2d(widths[0], cfg.image_channels, 3, bias=True)

    def _head(self, x_t: torch.Tensor, mu: torch.Tensor, t: TimeLike,
              structure: Optional[torch.Tensor], anchor: Optional[torch.Tensor]) -> torch.Tensor:
        """The raw head output (noise, x0 or the correction to the anchor), shape of ``x_t``."""
        cfg = self.config
        if x_t.shape != mu.shape or x_t.shape[1] != cfg.image_channels:
            raise ValueError(f"x_t {tuple(x_t.shape)} and mu {tuple(mu.shape)} must both be "
                             f"(B, {cfg.image_channels}, H, W)")
        batch, _, height, width = x_t.shape
        multiple = cfg.downsampling_factor
        if cfg.spade:
            if structure is None:
                raise ValueError("this network is structure-conditioned: pass structure (B, 1, H, W)")
            if structure.shape != (batch, cfg.structure_channels, height, width):
                raise ValueError(f"structure must be {(batch, cfg.structure_channels, height, width)}, "
                                 f"got {tuple(structure.shape)}")
            structure = pad_to_multiple(structure, multiple)
        elif structure is not None:
            raise ValueError("this network has no SPADE blocks (spade=False); do not pass structure")

        t_emb = self.time_embedding(t, batch, x_t.device)
        inputs = [x_t - mu, mu] + ([anchor.to(x_t.dtype)] if anchor is not None else [])
        x = self.init_conv(pad_to_multiple(torch.cat(inputs, dim=1), multiple))
        init_features = x
        skips: List[torch.Tensor] = []
        for level in self.encoder:
            x = level(x, t_emb, structure, skips)
        x = self.mid_block2(self.mid_attn(self.mid_block1(x, t_emb)), t_emb)
        for level in self.decoder:
            x = level(x, t_emb, skips)
        x = self.head_block(torch.cat([x, init_features], dim=1), t_emb)
        return self.head_conv(x)[..., :height, :width]

    def anchor(self, mu: torch.Tensor) -> Optional[torch.Tensor]:
        """The fill of ``mu``'s known pixels for the anchored predictions, else None.

        It depends on ``mu`` alone, which a sampler passes unchanged at every step, so the last
        one is remembered in eval mode (for the same tensor object at the same in-place version): a cache,
        not state — the result is the same with or without it."""
        pred = self.config.prediction
        if pred not in ANCHORED:
            return None
        version = None if mu.is_inference() else mu._version   # inference tensors have no version
        cached = self._anchor_cache
        if cached is not None and cached[0] is mu and cached[1] == version and not self.training:
            return cached[2]
        fill = harmonic_fill if pred == "x0-harmonic" else anchor_fill
        with torch.no_grad():
            out = fill(mu.detach(), known_from_masked(mu.detach())).to(mu.dtype)
        self._anchor_cache = (mu, version, out)
        return out

    def predict_clean(self, x_t: torch.Tensor, mu: torch.Tensor, t: TimeLike,
                      structure: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The predicted clean state ``x0_hat`` (book: {ref}`eq-clean-parameterization`), float32.

        For ``prediction='noise'`` it is the clean state implied by the predicted noise,
        ``mu + (x_t - mu - sigma_bar_t noise) / exp(-theta_bar_t)`` (which needs an SDE: pass one
        at construction to use this on a noise network)."""
        anchor = self.anchor(mu)
        out = self._head(x_t, mu, t, structure, anchor).float()
        pred = self.config.prediction
        if pred == "x0":
            return out
        if pred in ANCHORED:
            return anchor.float() + out
        if self.sde is None:
            raise ValueError("predict_clean on a noise network needs the SDE: build it with sde=...")
        x_t32, mu32 = x_t.float(), mu.float()
        t_ = _as_index(t, x_t32)
        return mu32 + (x_t32 - mu32 - self.sde.marginal_std(t_, x_t32) * out) / self.sde.mean_weight(t_, x_t32)

    def forward(self, x_t: torch.Tensor, mu: torch.Tensor, t: TimeLike,
                structure: Optional[torch.Tensor] = None, clean: bool = False) -> torch.Tensor:
        """The noise at step ``t`` (every parameterisation); ``clean=True``: :meth:`predict_clean`
        instead (a keyword of ``forward`` so that DDP sees the call)."""
        if clean:
            return self.predict_clean(x_t, mu, t, structure)
        if self.config.prediction == "noise":
            return self._head(x_t, mu, t, structure, None).to(x_t.dtype)
        x0_hat = self.predict_clean(x_t, mu, t, structure)
        # noise = (x_t - mean_t(x0_hat)) / sigma_bar_t, in float32 (sigma_bar_1 is ~1e-2)
        noise = self.sde.noise_from_state(x_t.float(), x0_hat, mu.float(), _as_index(t, x_t))
        return noise.to(x_t.dtype)


def _as_index(t: TimeLike, like: torch.Tensor):
    """``t`` as the SDE's coefficient lookups take it: a Python int or an integer (B,) tensor."""
    if isinstance(t, torch.Tensor) and t.numel() > 1:
        return t.reshape(-1).to(device=like.device, dtype=torch.int64)
    return int(t)
