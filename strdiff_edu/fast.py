"""The fast path: switches that make the same networks run faster, each checked to change the
results only within a tolerance (``tests/test_fast.py``, and on a GPU ``benchmarks/gpu_check.sh``).

    fast = FastPath.for_device(device)                  # bf16 + channels_last on CUDA, plain on CPU
    sampler = fast_sampler(build(...), fast)    # the same sampler, faster networks

The switches (all off in ``FastPath()``):

* ``fold_spectral_norm``: spectral normalisation (SPADE's convolutions) divides each weight by
  its largest singular value, estimated by power iteration; at inference that estimate is frozen,
  so the division is folded once into a plain weight instead of being recomputed at every call.
* ``bf16``: run the networks under ``torch.autocast`` in bfloat16 (their outputs come back as
  float32; all SDE arithmetic stays in float32). Meant for CUDA; on a CPU it is correct (its speed
  there was not measured).
* ``channels_last``: NHWC memory layout for the convolutions (what tensor cores want).
* ``compile``: ``torch.compile`` each network; ``compile_mode="reduce-overhead"`` also captures
  CUDA graphs, meant for small batches where per-call launch overhead weighs (on an H100 it gave
  3 % over plain compile at batch 8; batch 1 was not measured).

The samplers themselves already run under ``torch.inference_mode`` and keep their per-image
decisions and call counts on the device (see :mod:`strdiff_edu.sampling`). Nothing here touches
the caller's networks: :func:`prepare_network` works on a copy.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torch.nn.utils import parametrize


@dataclass(frozen=True)
class FastPath:
    """Which inference switches to use (module docstring)."""

    fold_spectral_norm: bool = False
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False
    compile_mode: Optional[str] = None      # None (default), "reduce-overhead" (CUDA graphs), "max-autotune"

    @classmethod
    def for_device(cls, device, compile: bool = False) -> "FastPath":
        """The recommended switches: everything on CUDA (compile only on request: compiling and
        timing the paper texture network took 19-28 s on an H100); only the spectral-norm folding on a CPU."""
        cuda = torch.device(device).type == "cuda"
        return cls(fold_spectral_norm=True, bf16=cuda, channels_last=cuda, compile=compile and cuda)

    def label(self) -> str:
        parts = [name for name in ("fold_spectral_norm", "bf16", "channels_last") if getattr(self, name)]
        if self.compile:
            parts.append(f"compile({self.compile_mode or 'default'})")
        return "+".join(parts) or "plain"


def fold_spectral_norm(net: nn.Module) -> int:
    """Replace every spectral-norm parametrisation of ``net`` by the plain weight it currently
    produces (in place); returns how many were folded. Only for inference: training needs the
    power iteration."""
    folded = 0
    for module in list(net.modules()):
        if parametrize.is_parametrized(module):
            _own_class(module)
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
                folded += 1
    return folded


def _own_class(module: nn.Module) -> None:
    """Give a parametrised module a class of its own. torch creates one ``Parametrized<Module>``
    class per parametrised module and ``copy.deepcopy`` shares it between original and copy;
    removing a parametrisation deletes the property from that class, which would break the
    original when folding a copy."""
    cls = type(module)
    namespace = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    module.__class__ = type(cls.__name__, cls.__bases__, namespace)


class FastNetwork(nn.Module):
    """Wraps a network: inputs to channels_last, the call under bf16 autocast, output to float32."""

    def __init__(self, net: nn.Module, bf16: bool, channels_last: bool):
        super().__init__()
        self.net, self.bf16, self.channels_last = net, bf16, channels_last

    def forward(self, *args, **kwargs):
        if self.channels_last:
            args = tuple(a.contiguous(memory_format=torch.channels_last)
                         if isinstance(a, torch.Tensor) and a.ndim == 4 else a for a in args)
        device_type = next(self.net.parameters()).device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.net(*args, **kwargs)
        return out.float().contiguous()


def prepare_network(net: Optional[nn.Module], fast: FastPath) -> Optional[nn.Module]:
    """A copy of ``net`` in eval mode, without gradients, with the switches of ``fast`` applied."""
    if net is None:
        return None
    net = copy.deepcopy(net).eval().requires_grad_(False)
    if fast.fold_spectral_norm:
        fold_spectral_norm(net)
    if fast.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if fast.bf16 or fast.channels_last:
        net = FastNetwork(net, fast.bf16, fast.channels_last)
    if fast.compile:
        net = torch.compile(net, mode=fast.compile_mode, dynamic=False)
    return net


def fast_sampler(sampler, fast: FastPath):
    """A copy of ``sampler`` (:meth:`~strdiff_edu.sampling.Sampler.with_networks`) running
    :func:`prepare_network` copies of each of its ``networks``."""
    return sampler.with_networks({role: prepare_network(net, fast) for role, net in sampler.networks.items()})


__all__ = ["FastPath", "FastNetwork", "fold_spectral_norm", "prepare_network", "fast_sampler"]
