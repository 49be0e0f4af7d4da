"""The inpainting methods, in one registry: each one's name, label, description and networks.

:data:`METHODS` is the only list of methods: ``strdiff inpaint --method`` and ``strdiff evaluate
--methods`` take their choices and ``--help`` text from it, :func:`strdiff_edu.evaluate.evaluate`
its table labels and descriptions, the benchmarks and the demo the networks each method needs.
The diffusion samplers (those with networks) are built by :func:`strdiff_edu.sampling.build_sampler`,
any method by :func:`strdiff_edu.evaluate.make_method`.

Table 2 cases (our reading of the paper's resampling ablation, :data:`strdiff_edu.evaluate.TABLE2_CASES`):
A = IR-SDE + RePaint, B = resampling always accepted, C = no resampling, D = adaptive resampling.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence, Tuple


@dataclass(frozen=True)
class Method:
    """One inpainting method: ``name`` (the CLI's), ``label`` (tables and figures),
    ``description`` (``--help``, ``results.json``) and the ``networks`` it loads (none for the
    non-learned baselines)."""
    name: str
    label: str
    description: str
    networks: Tuple[str, ...] = ()

    @property
    def is_sampler(self) -> bool:
        """A diffusion sampler (it needs trained networks), not a baseline."""
        return bool(self.networks)


_STRDIFF = ("texture", "structure")
_RESAMPLE = ("texture", "structure", "discriminator")

#: Every method, by name, in the order the CLI lists them.
METHODS: Dict[str, Method] = {m.name: m for m in (
    Method("irsde", "IR-SDE", "IR-SDE", ("irsde",)),
    Method("irsde-repaint", "IR-SDE + RePaint", "IR-SDE + RePaint resampling (Table 2 case A)", ("irsde",)),
    Method("strdiff", "StrDiffusion", "StrDiffusion, no resampling (case C)", _STRDIFF),
    Method("strdiff-always", "StrDiffusion + resampling (no D)",
           "StrDiffusion, resampling always accepted, no discriminator (case B)", _STRDIFF),
    Method("strdiff-resample", "StrDiffusion + adaptive resampling",
           "StrDiffusion, adaptive resampling (case D)", _RESAMPLE),
    Method("strdiff-paper-rule", "StrDiffusion + resampling (paper rule)",
           "StrDiffusion, adaptive resampling with the paper's threshold rule", _RESAMPLE),
    Method("irsde-ode", "IR-SDE (ODE)", "IR-SDE, reverse ODE", ("irsde",)),
    Method("strdiff-ode", "StrDiffusion (ODE)", "StrDiffusion, reverse ODE, no resampling", _STRDIFF),
    Method("strdiff-cheap", "StrDiffusion (cheap, Part VI)",
           "StrDiffusion, no resampling, shorter structure stage (Part VI; weights/cpu-cheap)", _STRDIFF),
    Method("biharmonic", "biharmonic", "biharmonic (scikit-image)"),
    Method("harmonic", "harmonic fill",
           "harmonic fill (push-pull + Jacobi; the anchor of the x0-harmonic networks)"),
    Method("fill", "anchor fill (harmonic + biharmonic)",
           "mean of the harmonic and biharmonic fills (the anchor of the shipped x0-fill networks)"),
    Method("telea", "Telea", "Telea (OpenCV, optional)"),
)}
#: The names of the diffusion samplers (the methods with networks).
SAMPLERS: Tuple[str, ...] = tuple(n for n, m in METHODS.items() if m.is_sampler)


def get_method(name: str) -> Method:
    """The registry entry of ``name``; an unknown name raises ``ValueError`` listing the choices."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None


def needed_networks(methods: Sequence[str]) -> Tuple[str, ...]:
    """The networks ``methods`` load between them, each once, in first-use order."""
    out = []
    for name in methods:
        for n in get_method(name).networks:
            if n not in out:
                out.append(n)
    return tuple(out)


__all__ = ["Method", "METHODS", "SAMPLERS", "get_method", "needed_networks"]
