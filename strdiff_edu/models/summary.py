"""Size and cost of the networks: parameters and FLOPs per preset, counted on the meta device.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on meta tensors at the
preset's resolution, batch 1: 2 FLOPs per multiply-add of convolutions, matrix products and
einsums, nothing for element-wise operations and normalisations (the convention of the reference
count of the official networks at 256x256: about 835 / 760 / 189 GFLOPs). "MB" is the float32
weight size, 4 bytes per parameter, in units of 10^6 bytes.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from . import NETWORKS, PRESET_NAMES, build_network, count_parameters, model_config


def example_inputs(network: str, cfg, batch: int = 1, device="meta"):
    """Arguments of one forward pass of ``network`` at the config's image size."""
    s = cfg.image_size
    t = torch.zeros(batch, dtype=torch.long, device=device)
    if network == "discriminator":
        return (torch.zeros(batch, 3, s, s, device=device),
                torch.zeros(batch, 1, s, s, device=device), t)
    c = cfg.image_channels
    args = (torch.zeros(batch, c, s, s, device=device), torch.zeros(batch, c, s, s, device=device), t)
    if cfg.spade:
        args += (torch.zeros(batch, 1, s, s, device=device),)
    return args


def _count(network: str, cfg):
    with torch.device("meta"):
        net = build_network(network, cfg)
    with FlopCounterMode(display=False) as counter:
        net(*example_inputs(network, cfg))
    return count_parameters(net), counter.get_total_flops() / 1e9


def forward_gflops(network: str, cfg) -> float:
    """GFLOPs of one forward pass (batch 1) of ``network`` built from ``cfg`` (a config or a
    preset name) at the config's ``image_size``; multiply by a sampler's calls per image
    (:func:`strdiff_edu.sampling.expected_nfe`) for the network cost of one image."""
    if isinstance(cfg, str):
        cfg = model_config(cfg, network)
    return _count(network, cfg)[1]


def measure(preset: str, network: str, variant: str = "") -> dict:
    """Parameters, float32 megabytes and forward GFLOPs (batch 1) of one network (optionally a
    named slimmer ``variant``, see :data:`~strdiff_edu.models.config.MODEL_VARIANTS`)."""
    cfg = model_config(preset, network, variant)
    params, gflops = _count(network, cfg)
    return dict(preset=preset, network=network, size=cfg.image_size, params=params,
                mb=params * 4 / 1e6, gflops=gflops)


def summary_rows(presets=PRESET_NAMES, networks=NETWORKS):
    """One :func:`measure` row per (preset, network)."""
    return [measure(p, n) for p in presets for n in networks]
