"""Load the official StrDiffusion checkpoints into our networks (``paper`` preset).

The official release (Places2 at T=400, Paris StreetView at T=100; see the book's Part IV) holds
bare ``state_dict`` files of four modules: the SPADE texture U-Net (``ConditionalUNet``), the
structure U-Net (``ConditionalUNets``; IR-SDE's U-Net has the same names), and DDGAN's small
time-conditioned discriminator. Our modules are the same layers under other names; this module
maps the names both ways (pure string rules, checked against every shape):

=================================================  =============================================
ours                                               official
=================================================  =============================================
``time_embedding.mlp.{0,2}``                       ``time_mlp.{1,3}`` (U-Nets), ``t_embed.main.{0,2}`` (D)
``encoder.i.block{1,2}``                           ``downs.i.{0,1}``
``encoder.i.attn.norm.gain``                       ``downs.i.2.fn.norm.g``
``encoder.i.attn.attn.to_qkv / to_out.0 / to_out.1.gain``  ``downs.i.2.fn.fn.to_qkv / to_out.0 / to_out.1.g``
``encoder.i.down[.conv]``                          ``downs.i.3``
``encoder.i.spade.{norm_a,norm_b,conv_a,conv_b}``  ``downs.i.4.{norm_0,norm_1,conv_0,conv_1}``
``...shared.0 / to_gamma / to_beta``               ``...mlp_shared.0 / mlp_gamma / mlp_beta``
``decoder.j.{block1,block2,attn}``                 ``ups.j.{0,1,2}``
``decoder.j.up.conv`` / ``decoder.j.up``           ``ups.j.3.1`` / ``ups.j.3`` (last level)
``mid_attn.norm.gain`` / ``mid_attn.attn.*``       ``mid_attn.fn.norm.g`` / ``mid_attn.fn.fn.*``
``head_block`` / ``head_conv``                     ``final_res_block`` / ``final_conv``
ResBlock ``time_to_scale_shift.1 / conv1 / conv2 / shortcut``  ``mlp.1 / block1.proj / block2.proj / res_conv``
spectral norm ``parametrizations.weight.original / .0._u / .0._v``  ``weight_orig / weight_u / weight_v``
D ``blocks.k.{conv1,conv2,time_bias,skip}``        ``conv{k+1}.{conv1.0,conv2.0,dense_t1,skip.0}``
=================================================  =============================================

A ``module.`` prefix (DataParallel) is stripped. The official discriminator file is the
``*_D.pth`` checkpoint; official files are loaded with ``weights_only=True``. Nothing here
downloads anything: fetch the files yourself (README of the official repository).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Mapping

import torch

_UNET_RULES = [
    (r"^time_embedding\.mlp\.0\.", "time_mlp.1."),
    (r"^time_embedding\.mlp\.2\.", "time_mlp.3."),
    (r"^encoder\.(\d+)\.block1\.", r"downs.\1.0."),
    (r"^encoder\.(\d+)\.block2\.", r"downs.\1.1."),
    (r"^encoder\.(\d+)\.attn\.norm\.", r"downs.\1.2.fn.norm."),
    (r"^encoder\.(\d+)\.attn\.attn\.", r"downs.\1.2.fn.fn."),
    (r"^encoder\.(\d+)\.down\.conv\.", r"downs.\1.3."),
    (r"^encoder\.(\d+)\.down\.", r"downs.\1.3."),
    (r"^encoder\.(\d+)\.spade\.", r"downs.\1.4."),
    (r"^decoder\.(\d+)\.block1\.", r"ups.\1.0."),
    (r"^decoder\.(\d+)\.block2\.", r"ups.\1.1."),
    (r"^decoder\.(\d+)\.attn\.norm\.", r"ups.\1.2.fn.norm."),
    (r"^decoder\.(\d+)\.attn\.attn\.", r"ups.\1.2.fn.fn."),
    (r"^decoder\.(\d+)\.up\.conv\.", r"ups.\1.3.1."),
    (r"^decoder\.(\d+)\.up\.", r"ups.\1.3."),
    (r"^mid_attn\.norm\.", "mid_attn.fn.norm."),
    (r"^mid_attn\.attn\.", "mid_attn.fn.fn."),
    (r"^head_block\.", "final_res_block."),
    (r"^head_conv\.", "final_conv."),
]
# applied after the prefix rules, anywhere in the key
_UNET_INNER = [
    (r"\.time_to_scale_shift\.1\.", ".mlp.1."),
    (r"\.conv1\.weight$", ".block1.proj.weight"),
    (r"\.conv2\.weight$", ".block2.proj.weight"),
    (r"\.shortcut\.", ".res_conv."),
    (r"\.gain$", ".g"),
    (r"\.norm_a\.", ".norm_0."),
    (r"\.norm_b\.", ".norm_1."),
    (r"\.conv_a\.", ".conv_0."),
    (r"\.conv_b\.", ".conv_1."),
    (r"\.shared\.0\.", ".mlp_shared.0."),
    (r"\.to_gamma\.", ".mlp_gamma."),
    (r"\.to_beta\.", ".mlp_beta."),
    (r"\.parametrizations\.weight\.original$", ".weight_orig"),
    (r"\.parametrizations\.weight\.0\._u$", ".weight_u"),
    (r"\.parametrizations\.weight\.0\._v$", ".weight_v"),
]
def _unet_key(key: str) -> str:
    for pattern, repl in _UNET_RULES:
        new, n = re.subn(pattern, repl, key)
        if n:
            key = new
            break
    if key.startswith(("downs.", "ups.", "mid_block", "mid_attn", "final_res_block")):
        # ResBlock convs are "conv1"/"conv2" in ours; the attention/SPADE names never end that way.
        for pattern, repl in _UNET_INNER:
            key = re.sub(pattern, repl, key)
    return key


def _disc_key(key: str) -> str:
    m = re.match(r"^blocks\.(\d+)\.(conv1|conv2|time_bias|skip)\.(.*)$", key)
    if m:
        k, part, rest = int(m.group(1)), m.group(2), m.group(3)
        official = {"conv1": "conv1.0", "conv2": "conv2.0", "time_bias": "dense_t1", "skip": "skip.0"}[part]
        return f"conv{k + 1}.{official}.{rest}"
    m = re.match(r"^time_embedding\.mlp\.(\d)\.(.*)$", key)
    if m:
        return f"t_embed.main.{m.group(1)}.{m.group(2)}"
    return key


def official_key(key: str, network: str) -> str:
    """The official state-dict name of one of our keys, for ``network`` in texture / structure /
    irsde / discriminator."""
    if network == "discriminator":
        return _disc_key(key)
    if network not in ("texture", "structure", "irsde"):
        raise ValueError(f"unknown network {network!r}")
    return _unet_key(key)


def official_key_map(net: torch.nn.Module, network: str) -> Dict[str, str]:
    """``{our key: official key}`` for every entry of ``net.state_dict()``; checked one-to-one."""
    mapping = {k: official_key(k, network) for k in net.state_dict()}
    if len(set(mapping.values())) != len(mapping):
        raise AssertionError("the key mapping is not one-to-one")  # a bug here, not in the file
    return mapping


def strip_prefix(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Remove DataParallel's ``module.`` prefix (and unwrap ``{"state_dict": ...}``)."""
    if "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def convert_official_state_dict(official: Mapping[str, torch.Tensor], network: str,
                                net: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """Our state dict for ``net`` from an official one; every missing, unexpected or mis-shaped
    entry is listed in the ``ValueError``."""
    official = strip_prefix(official)
    mapping = official_key_map(net, network)
    ours = net.state_dict()
    out, problems = {}, []
    for key, off in mapping.items():
        if off not in official:
            problems.append(f"missing {off} (our {key})")
            continue
        if tuple(official[off].shape) != tuple(ours[key].shape):
            problems.append(f"{off}: shape {tuple(official[off].shape)} in the file, "
                            f"{tuple(ours[key].shape)} expected")
            continue
        out[key] = official[off]
    unexpected = sorted(set(official) - set(mapping.values()))
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected entries, e.g. {', '.join(unexpected[:5])}")
    if problems:
        raise ValueError(f"this is not an official {network} checkpoint for the given configuration: "
                         + "; ".join(problems[:8]) + ("; ..." if len(problems) > 8 else "")
                         + ". The official networks are the 'paper' preset (nf=64, depth=4; D ngf=64).")
    return out


def to_official_state_dict(net: torch.nn.Module, network: str) -> Dict[str, torch.Tensor]:
    """The inverse mapping: our module's state dict under the official names (to export, or to
    build a synthetic official file in tests)."""
    return {official_key(k, network): v for k, v in net.state_dict().items()}


def load_official(path, network: str, preset: str = "paper", device="cpu") -> torch.nn.Module:
    """Build our ``preset`` network and load an official ``.pth`` file into it (eval mode).

    Sample it with the SDE of its release: ``MeanRevertingSDE(T=400)`` for Places2,
    ``T=100`` for Paris StreetView (lambda = 30/255, eps = 0.005, cosine).
    """
    from .models import build_network

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"official checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot read {path} as a weights-only torch file: {exc}") from None
    net = build_network(network, preset)
    net.load_state_dict(convert_official_state_dict(state, network, net))
    return net.to(device).eval()
