"""The networks of StrDiffusion: three noise U-Nets (one implementation) and the discriminator.

Configurations (:mod:`.config`)
    ``model_config(preset, network)`` -> :class:`UNetConfig` or :class:`DiscriminatorConfig`,
    for ``preset`` in ``tiny | cpu | gpu | paper`` and ``network`` in
    ``texture | structure | irsde | discriminator``. Configs serialise with ``cfg.to_dict()``
    and come back with ``UNetConfig.from_dict(d)`` / ``DiscriminatorConfig.from_dict(d)`` or,
    without knowing the type, :func:`config_from_dict`. Every built network keeps its config as
    ``net.config``.

Builders (each checks that the config fits the role)
    ``build_texture_net(cfg)``   -> ``net(y_t, mu, t, structure)``: noise (B, 3, H, W); SPADE.
    ``build_structure_net(cfg)`` -> ``net(x_t, mu, t)``: noise (B, 1, H, W).
    ``build_irsde_net(cfg)``     -> ``net(y_t, mu, t)``: noise (B, 3, H, W); the IR-SDE baseline.
    ``build_discriminator(cfg)`` -> ``disc(y, x, t)``: logits (B, 1).
    ``build_network(network, cfg_or_preset)`` dispatches on the role name.

``t`` is an int or an integer tensor ``(B,)``; images may have any height and width (they are
reflect-padded to the downsampling factor and cropped back). The networks follow the input's
device and dtype and run under ``torch.autocast`` (e.g. bf16).

Modules: :mod:`.layers` (time embedding, time-modulated ResBlock, channel norms, linear
attention, resampling), :mod:`.spade` (structure conditioning, paper Eq. 12), :mod:`.unet`,
:mod:`.discriminator`.
"""
from __future__ import annotations

from typing import Union

from torch import nn

from .config import (NETWORKS, PREDICTIONS, PRESET_NAMES, DiscriminatorConfig, UNetConfig, config_from_dict,
                     model_config)
from .discriminator import TimeConditionedDiscriminator, minibatch_stddev
from .spade import SPADE, SPADEResBlock
from .unet import ConditionalUNet


def _check(cfg, cls, network: str, **expected) -> None:
    if not isinstance(cfg, cls):
        raise TypeError(f"the {network} network needs a {cls.__name__}, got {type(cfg).__name__}")
    for name, value in expected.items():
        if getattr(cfg, name) != value:
            raise ValueError(f"the {network} network needs {name}={value!r}, "
                             f"the config has {getattr(cfg, name)!r}")


def build_texture_net(cfg: UNetConfig, sde=None) -> ConditionalUNet:
    """The structure-conditioned texture noise network (RGB, SPADE); ``sde`` is needed by the
    clean-state predictions (``cfg.prediction != "noise"``)."""
    _check(cfg, UNetConfig, "texture", image_channels=3, spade=True)
    return ConditionalUNet(cfg, sde)


def build_structure_net(cfg: UNetConfig, sde=None) -> ConditionalUNet:
    """The structure noise network (one channel, no SPADE)."""
    _check(cfg, UNetConfig, "structure", image_channels=1, spade=False)
    return ConditionalUNet(cfg, sde)


def build_irsde_net(cfg: UNetConfig, sde=None) -> ConditionalUNet:
    """The IR-SDE baseline texture network (RGB, no SPADE)."""
    _check(cfg, UNetConfig, "irsde", image_channels=3, spade=False)
    return ConditionalUNet(cfg, sde)


def build_discriminator(cfg: DiscriminatorConfig, sde=None) -> TimeConditionedDiscriminator:
    """The time-conditioned discriminator on texture (+) structure (``sde`` is ignored)."""
    _check(cfg, DiscriminatorConfig, "discriminator")
    return TimeConditionedDiscriminator(cfg)


BUILDERS = {"texture": build_texture_net, "structure": build_structure_net,
            "irsde": build_irsde_net, "discriminator": build_discriminator}


def build_network(network: str, cfg: Union[str, UNetConfig, DiscriminatorConfig], sde=None) -> nn.Module:
    """Build ``network`` from a config or from a preset name: ``build_network("texture", "cpu")``.
    ``sde`` (a :class:`~strdiff_edu.sde.MeanRevertingSDE`) is required by U-Nets whose
    ``prediction`` is a clean state."""
    if network not in BUILDERS:
        raise ValueError(f"unknown network {network!r}; choose one of {list(NETWORKS)}")
    if isinstance(cfg, str):
        cfg = model_config(cfg, network)
    return BUILDERS[network](cfg, sde)


def count_parameters(net: nn.Module) -> int:
    """Number of learnable scalars (spectral norm's power-iteration vectors are buffers)."""
    return sum(p.numel() for p in net.parameters())


__all__ = [
    "UNetConfig", "DiscriminatorConfig", "model_config", "config_from_dict", "NETWORKS", "PREDICTIONS",
    "PRESET_NAMES", "ConditionalUNet", "TimeConditionedDiscriminator", "SPADE", "SPADEResBlock",
    "minibatch_stddev", "build_texture_net", "build_structure_net", "build_irsde_net",
    "build_discriminator", "build_network", "BUILDERS", "count_parameters",
]
