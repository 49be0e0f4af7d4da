"""Structure conditioning of the texture network (paper Eq. 12): SPADE with positional norm.

A feature map ``F`` (B, C, h, w) is modulated by the structure map ``S`` (B, 1, H, W), which is
first resized to ``(h, w)`` with nearest-neighbour interpolation::

    SPADE(F, S) = PONO(F) * (1 + gamma(S)) + beta(S)
    gamma, beta = conv3(16 -> C)(ReLU(conv3(1 -> 16)(S)))       (one shared hidden conv)

``PONO`` normalises each pixel across channels and has no learned affine. Two SPADE norms and
two 3x3 convs (spectral-normalised by default) form a residual block::

    F + conv_b(LReLU_0.2(SPADE_b(conv_a(LReLU_0.2(SPADE_a(F, S))), S)))

Follows the official code: PONO instead of SPADE's usual BatchNorm, hidden width 16, spectral
norm on the two block convs only, biases everywhere, no learned shortcut, weights initialised
N(0, 0.02) with zero biases. Differences: the variance is the population variance (the official
PONO may use the unbiased one; for C >= 128 channels the two agree to < 1 %); the hidden width
and spectral norm are configurable. Spectral norm is torch's parametrisation: it adds buffers
(the power-iteration vectors), not parameters, so the parameter count does not change.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from .layers import conv2d, positional_normalize


class SPADE(nn.Module):
    """Spatially-adaptive denormalisation of ``channels`` features by a ``label_channels`` map
    (paper Eq. 12; book: {ref}`eq-spade`): PONO(F) * (1 + gamma(S)) + beta(S)."""

    def __init__(self, channels: int, label_channels: int = 1, hidden: int = 16, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.shared = nn.Sequential(conv2d(label_channels, hidden, 3), nn.ReLU())
        self.to_gamma = conv2d(hidden, channels, 3)
        self.to_beta = conv2d(hidden, channels, 3)

    def modulation(self, structure: torch.Tensor, size) -> tuple:
        """(gamma, beta) predicted from the structure map nearest-resized to ``size``."""
        s = F.interpolate(structure, size=tuple(size), mode="nearest")
        hidden = self.shared(s)
        return self.to_gamma(hidden), self.to_beta(hidden)

    def forward(self, features: torch.Tensor, structure: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.modulation(structure.to(features.dtype), features.shape[-2:])
        return positional_normalize(features, self.eps) * (1 + gamma) + beta


class SPADEResBlock(nn.Module):
    """Residual block of two SPADE-modulated 3x3 convs; keeps channels and resolution."""

    def __init__(self, channels: int, label_channels: int = 1, hidden: int = 16,
                 spectral_norm: bool = True, init_std: float = 0.02):
        super().__init__()
        self.norm_a = SPADE(channels, label_channels, hidden)
        self.norm_b = SPADE(channels, label_channels, hidden)
        self.conv_a = conv2d(channels, channels, 3)
        self.conv_b = conv2d(channels, channels, 3)
        self.act = nn.LeakyReLU(0.2)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, init_std)
                nn.init.zeros_(module.bias)
        if spectral_norm:
            self.conv_a = _spectral_norm(self.conv_a)
            self.conv_b = _spectral_norm(self.conv_b)

    def forward(self, features: torch.Tensor, structure: torch.Tensor) -> torch.Tensor:
        h = self.conv_a(self.act(self.norm_a(features, structure)))
        h = self.conv_b(self.act(self.norm_b(h, structure)))
        return features + h
