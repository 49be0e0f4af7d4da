"""Network configurations and the per-preset sizes (``tiny``, ``cpu``, ``gpu``, ``paper``).

Two dataclasses describe every network of the project:

* :class:`UNetConfig` for the three noise networks (texture with SPADE, structure, and the
  IR-SDE baseline), which share one U-Net implementation;
* :class:`DiscriminatorConfig` for the time-conditioned discriminator.

Both serialise to a plain ``dict`` of JSON types (``to_dict``) and rebuild from it
(``from_dict`` / :func:`config_from_dict`), so checkpoints can store them.

:func:`model_config` returns the configuration of one network for one preset. The ``paper``
preset is the official configuration (nf=64, depth=4, ngf=64 at 256x256) and reproduces its
parameter counts exactly: texture 163,333,763; structure 137,133,825; discriminator 12,741,377.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, Tuple

NETWORKS = ("texture", "structure", "irsde", "discriminator")
#: What a U-Net's head predicts (book: {ref}`eq-clean-parameterization`): the noise (official),
#: the clean state x_0, or x_0 as a fill of mu's known pixels plus a learned correction (the
#: harmonic fill, or the mean of the harmonic and biharmonic fills).
PREDICTIONS = ("noise", "x0", "x0-harmonic", "x0-fill")
ANCHORED = ("x0-harmonic", "x0-fill")


def _tuple_fields(cls, data: dict) -> dict:
    """Turn lists back into tuples for the fields annotated as tuples (JSON has no tuples)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names - {"type"}
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k != "type"}


@dataclass(frozen=True)
class UNetConfig:
    """Sizes and switches of a conditional noise U-Net (texture, structure or IR-SDE).

    The network sees ``2 * image_channels`` input channels (``[x_t - mu, mu]``) and predicts
    ``image_channels`` of noise.

    * ``channel_mults``: ``depth + 1`` multipliers of ``nf``. Encoder level ``i`` works at width
      ``nf * channel_mults[i]``; the bottleneck at ``nf * channel_mults[depth]``. Every level
      but the last halves the resolution, so the total downsampling factor is
      ``2 ** (depth - 1)``; the last level only widens (3x3 conv, stride 1).
    * ``attention``: linear attention at every level and in the middle. The official code has
      it; the paper says the network has no attention.
    * ``spade`` / ``spade_hidden`` / ``spectral_norm``: the structure-conditioning blocks after
      each downsampling (texture network only), their hidden width and spectral norm on
      their convs.
    * ``time_mult``: the time-embedding width is ``time_mult * nf`` (the sinusoid has ``nf``).
    * ``image_size``: the side the preset trains at; informative (the network takes any size).
    * ``prediction``: what the head predicts, one of :data:`PREDICTIONS`. ``"noise"`` is the
      official network. ``"x0"`` predicts the clean state; ``"x0-harmonic"`` and ``"x0-fill"``
      the clean state as a fill of ``mu``'s known pixels plus a correction
      (:func:`strdiff_edu.fill.harmonic_fill`, or :func:`strdiff_edu.fill.anchor_fill`, the mean
      of the harmonic and biharmonic fills; the fill is also a third input group,
      ``3 * image_channels`` inputs); all still *return* noise, derived from the prediction, so
      every sampler works unchanged.
    """

    image_channels: int = 3
    nf: int = 64
    depth: int = 4
    channel_mults: Tuple[int, ...] = (1, 2, 4, 8, 16)
    attention: bool = True
    attn_heads: int = 4
    attn_dim_head: int = 32
    spade: bool = False
    spade_hidden: int = 16
    spectral_norm: bool = True
    structure_channels: int = 1
    time_mult: int = 4
    init_kernel: int = 7
    image_size: int = 256
    prediction: str = "noise"

    def __post_init__(self):
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {self.prediction!r}; choose one of {', '.join(PREDICTIONS)}")
        if self.prediction in ANCHORED and self.image_channels != 3:
            raise ValueError(f"prediction={self.prediction!r} needs an RGB network (the anchor fills the masked "
                             "image mu); use 'x0' for the structure network")
        if len(self.channel_mults) != self.depth + 1:
            raise ValueError(f"channel_mults needs depth + 1 = {self.depth + 1} entries, "
                             f"got {self.channel_mults}")
        if self.depth < 1:
            raise ValueError("depth must be at least 1")

    @property
    def widths(self) -> Tuple[int, ...]:
        """Channel widths of the encoder levels and, last, of the bottleneck."""
        return tuple(self.nf * m for m in self.channel_mults)

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (self.depth - 1)

    @property
    def in_channels(self) -> int:
        """``[x_t - mu, mu]``, plus the anchor for the anchored predictions."""
        return (3 if self.prediction in ANCHORED else 2) * self.image_channels

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["channel_mults"] = list(self.channel_mults)
        return {"type": "UNetConfig", **d}

    @classmethod
    def from_dict(cls, data: dict) -> "UNetConfig":
        return cls(**_tuple_fields(cls, data))

    def replace(self, **changes) -> "UNetConfig":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Sizes of the time-conditioned discriminator (DDGAN's small discriminator).

    * ``in_channels``: texture (3) + structure (1).
    * ``channel_mults``: multipliers of ``ngf``. The 1x1 input conv maps to
      ``ngf * channel_mults[0]``; down block ``k`` maps ``ngf * channel_mults[k]`` to
      ``ngf * channel_mults[k + 1]``. The first block keeps the resolution, every other block
      halves it, so the downsampling factor is ``2 ** (len(channel_mults) - 2)``.
    * ``t_emb_dim``: width of the sinusoidal time embedding and of its MLP.
    * ``stddev_group`` / ``stddev_feat``: minibatch standard deviation groups and features.
    """

    in_channels: int = 4
    ngf: int = 64
    channel_mults: Tuple[int, ...] = (2, 2, 4, 8, 8)
    t_emb_dim: int = 256
    stddev_group: int = 4
    stddev_feat: int = 1
    image_size: int = 256

    def __post_init__(self):
        if len(self.channel_mults) < 2:
            raise ValueError("channel_mults needs at least two entries (input conv + one block)")

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (len(self.channel_mults) - 2)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["channel_mults"] = list(self.channel_mults)
        return {"type": "DiscriminatorConfig", **d}

    @classmethod
    def from_dict(cls, data: dict) -> "DiscriminatorConfig":
        return cls(**_tuple_fields(cls, data))

    def replace(self, **changes) -> "DiscriminatorConfig":
        return dataclasses.replace(self, **changes)


def config_from_dict(data: dict):
    """Rebuild a :class:`UNetConfig` or :class:`DiscriminatorConfig` from its ``to_dict``."""
    kinds = {"UNetConfig": UNetConfig, "DiscriminatorConfig": DiscriminatorConfig}
    kind = data.get("type")
    if kind not in kinds:
        raise ValueError(f"config dict has type {kind!r}; expected one of {list(kinds)}")
    return kinds[kind].from_dict(data)


# --------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------

# One U-Net shape per preset; the three noise networks differ only in image channels and SPADE.
_UNET_SHAPES: Dict[str, dict] = {
    # CI: well under a second per forward pass on a CPU, 32x32.
    "tiny": dict(nf=8, depth=3, channel_mults=(1, 2, 4, 4), attn_heads=2, attn_dim_head=8,
                 spade_hidden=8, image_size=32),
    # A laptop, 64x64: 1.3-1.6 M parameters per noise network, ~0.35 s per training step at
    # batch 8 on two CPU cores; the four cpu networks together are ~20 MB as float32.
    "cpu": dict(nf=16, depth=4, channel_mults=(1, 2, 2, 4, 4), attn_heads=2, attn_dim_head=16,
                spade_hidden=16, image_size=64),
    # One GPU, 128x128.
    "gpu": dict(nf=32, depth=4, channel_mults=(1, 2, 4, 8, 8), attn_heads=4, attn_dim_head=32,
                spade_hidden=16, image_size=128),
    # The official ConditionalUNet: nf=64, depth=4, widths 64..512, bottleneck 1024, 256x256.
    "paper": dict(nf=64, depth=4, channel_mults=(1, 2, 4, 8, 16), attn_heads=4, attn_dim_head=32,
                  spade_hidden=16, image_size=256),
}

_DISC_SHAPES: Dict[str, dict] = {
    "tiny": dict(ngf=8, channel_mults=(2, 2, 4, 8), t_emb_dim=32, image_size=32),
    "cpu": dict(ngf=16, channel_mults=(2, 2, 4, 8, 8), t_emb_dim=64, image_size=64),
    "gpu": dict(ngf=32, channel_mults=(2, 2, 4, 8, 8), t_emb_dim=128, image_size=128),
    # DDGAN's small discriminator with ngf=64, as in the official discriminator training.
    "paper": dict(ngf=64, channel_mults=(2, 2, 4, 8, 8), t_emb_dim=256, image_size=256),
}

PRESET_NAMES = tuple(_UNET_SHAPES)


#: Named slimmer variants of a noise U-Net, relative to the preset's shape (Part VI, cost vs
#: quality): ``nf_divisor`` divides the base width ``nf`` (and the SPADE hidden width), the
#: other keys replace config fields. Meant for the structure network, whose input is one sparse
#: channel; the texture network trains on the oracle structure, so it pairs with any of them.
MODEL_VARIANTS: Dict[str, dict] = {
    "": {},
    # half the widths (about 1/4 of the convolution FLOPs), no attention (the paper's description)
    "small": dict(nf_divisor=2, attention=False),
    # a quarter of the widths (about 1/16 of the FLOPs; nf at least 4), no attention
    "micro": dict(nf_divisor=4, attention=False),
}


def apply_variant(cfg: UNetConfig, variant: str) -> UNetConfig:
    """``cfg`` slimmed by the named :data:`MODEL_VARIANTS` entry (``""``: unchanged).

    >>> apply_variant(model_config("cpu", "structure"), "small").nf
    8
    """
    if variant not in MODEL_VARIANTS:
        raise ValueError(f"unknown model variant {variant!r}; choose one of {list(MODEL_VARIANTS)}")
    changes = dict(MODEL_VARIANTS[variant])
    div = changes.pop("nf_divisor", 1)
    if div > 1:
        changes.update(nf=max(4, cfg.nf // div), spade_hidden=max(1, cfg.spade_hidden // div),
                       attn_dim_head=max(1, cfg.attn_dim_head // div))
    return cfg.replace(**changes)


def model_config(preset: str, network: str, variant: str = ""):
    """The configuration of ``network`` (``texture``, ``structure``, ``irsde`` or
    ``discriminator``) in ``preset`` (``tiny``, ``cpu``, ``gpu``, ``paper``), optionally slimmed
    by a named ``variant`` of :data:`MODEL_VARIANTS` (noise U-Nets only).

    >>> model_config("paper", "structure").image_channels
    1
    """
    if variant:
        if network == "discriminator":
            raise ValueError("model variants apply to the noise U-Nets, not the discriminator")
        return apply_variant(model_config(preset, network), variant)
    preset = preset.strip().lower()
    if preset not in _UNET_SHAPES:
        raise ValueError(f"unknown preset {preset!r}; choose one of {list(_UNET_SHAPES)}")
    if network == "discriminator":
        return DiscriminatorConfig(**_DISC_SHAPES[preset])
    roles = {
        "texture": dict(image_channels=3, spade=True),
        "structure": dict(image_channels=1, spade=False),
        "irsde": dict(image_channels=3, spade=False),
    }
    if network not in roles:
        raise ValueError(f"unknown network {network!r}; choose one of {list(NETWORKS)}")
    return UNetConfig(**_UNET_SHAPES[preset], **roles[network])
