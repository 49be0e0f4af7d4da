"""The inpainting methods, in one registry: each one's name, label, description, networks and builder.

:data:`METHODS` is the only list of methods: ``strdiff inpaint --method`` and ``strdiff evaluate
--methods`` take their choices and ``--help`` text from it, :func:`strdiff_edu.evaluate.evaluate`
its table labels and descriptions, the benchmarks and the demo the networks each method needs.
Every method is built by the one factory :func:`build` (each entry's ``builder``), from networks
loaded by :class:`strdiff_edu.weights.Weights`; ``build("strdiff", Weights.find())`` does both.

Table 2 cases (our reading of the paper's resampling ablation, :data:`strdiff_edu.evaluate.TABLE2_CASES`):
A = IR-SDE + RePaint, B = resampling always accepted, C = no resampling, D = adaptive resampling.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

from .baselines import BiharmonicInpainter, HarmonicInpainter, TeleaInpainter
from .profiles import PRESETS
from .resampling import RePaint, Resampling, ResamplingSchedule, resampling_schedule
from .sampling import IRSDESampler, StrDiffusionSampler
from .sde import MeanRevertingSDE
from .weights import Weights

#: The method ``strdiff inpaint`` uses unless told otherwise, and whether the samplers re-impose
#: the known pixels after every reverse step and how much of the reverse SDE's noise they keep by
#: default: chosen on the validation split (``benchmarks/quality.py select``; numbers in
#: ``benchmarks/results/validation_cpu.json``).
DEFAULT_METHOD = "strdiff"
DEFAULT_REIMPOSE = True
DEFAULT_NOISE_SCALE = 0.0
#: ``strdiff-cheap`` (book Part VI, benchmarks/cost_quality.py): StrDiffusion without resampling
#: run with the structure network of ``weights/cpu-cheap``, slimmed by the named variant
#: ``CHEAP_STRUCTURE_VARIANT`` (models.config.MODEL_VARIANTS): at most 1.5x the network FLOPs of
#: IR-SDE at the same T. Its early stage is ``t >= floor(CHEAP_SWITCH_FRACTION * T)``.
CHEAP_SWITCH_FRACTION = 0.4
CHEAP_STRUCTURE_VARIANT = "small"


def _irsde(nets, sde, configs, name, schedule, reimpose, noise_scale, **_):
    return IRSDESampler(nets["irsde"], sde, stochastic=name != "irsde-ode",
                        repaint=RePaint(schedule) if name == "irsde-repaint" else None, reimpose=reimpose,
                        noise_scale=noise_scale)


_RULES = {"strdiff-always": "always", "strdiff-resample": "official", "strdiff-paper-rule": "paper"}


def _strdiff(nets, sde, configs, name, schedule, reimpose, noise_scale, mode="corrected",
             canny_sigma=None, threshold=0.0, prefer="lower"):
    cfg = (configs or {}).get("texture", {})
    pairing = cfg.get("structure", {}).get("pairing", "gray2edge")
    if canny_sigma is None:
        canny_sigma = PRESETS[cfg["preset"]].canny_sigma if cfg.get("preset") in PRESETS else 2.0
    rule = _RULES.get(name)
    resampling = Resampling(schedule, rule=rule, threshold=threshold, prefer=prefer) if rule else None
    return StrDiffusionSampler(nets["texture"], nets["structure"], sde, discriminator=nets.get("discriminator"),
                               resampling=resampling, mode=mode,
                               switch_fraction=CHEAP_SWITCH_FRACTION if name == "strdiff-cheap" else schedule.switch_fraction,
                               pairing=pairing, canny_sigma=canny_sigma, stochastic=name != "strdiff-ode",
                               reimpose=reimpose, noise_scale=noise_scale)


@dataclass(frozen=True)
class Method:
    """One inpainting method: ``name`` (the CLI's), ``label`` (tables and figures),
    ``description`` (``--help``, ``results.json``), the ``networks`` it loads (none for the
    non-learned baselines) and its ``builder`` (called by :func:`build`)."""
    name: str
    label: str
    description: str
    networks: Tuple[str, ...] = ()
    builder: Optional[Callable] = None

    @property
    def is_sampler(self) -> bool:
        """A diffusion sampler (it needs trained networks), not a baseline."""
        return bool(self.networks)


_STRDIFF = ("texture", "structure")
_RESAMPLE = ("texture", "structure", "discriminator")

#: Every method, by name, in the order the CLI lists them.
METHODS: Dict[str, Method] = {m.name: m for m in (
    Method("irsde", "IR-SDE", "IR-SDE", ("irsde",), _irsde),
    Method("irsde-repaint", "IR-SDE + RePaint", "IR-SDE + RePaint resampling (Table 2 case A)", ("irsde",), _irsde),
    Method("strdiff", "StrDiffusion", "StrDiffusion, no resampling (case C)", _STRDIFF, _strdiff),
    Method("strdiff-always", "StrDiffusion + resampling (no D)",
           "StrDiffusion, resampling always accepted, no discriminator (case B)", _STRDIFF, _strdiff),
    Method("strdiff-resample", "StrDiffusion + adaptive resampling",
           "StrDiffusion, adaptive resampling (case D)", _RESAMPLE, _strdiff),
    Method("strdiff-paper-rule", "StrDiffusion + resampling (paper rule)",
           "StrDiffusion, adaptive resampling with the paper's threshold rule", _RESAMPLE, _strdiff),
    Method("irsde-ode", "IR-SDE (ODE)", "IR-SDE, reverse ODE", ("irsde",), _irsde),
    Method("strdiff-ode", "StrDiffusion (ODE)", "StrDiffusion, reverse ODE, no resampling", _STRDIFF, _strdiff),
    Method("strdiff-cheap", "StrDiffusion (cheap, Part VI)",
           "StrDiffusion, no resampling, with the slimmed structure network of weights/cpu-cheap (Part VI)", _STRDIFF, _strdiff),
    Method("biharmonic", "biharmonic", "biharmonic (scikit-image)", (),
           lambda **_: BiharmonicInpainter()),
    Method("harmonic", "harmonic fill",
           "harmonic fill (push-pull + Jacobi; the anchor of the x0-harmonic networks)", (),
           lambda **_: HarmonicInpainter(kind="harmonic")),
    Method("fill", "anchor fill (harmonic + biharmonic)",
           "mean of the harmonic and biharmonic fills (the anchor of the shipped x0-fill networks)", (),
           lambda **_: HarmonicInpainter(kind="fill")),
    Method("telea", "Telea", "Telea (OpenCV, optional)", (), lambda **_: TeleaInpainter()),
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


def build(method: str, weights: Optional[Weights] = None, *, device="cpu", nets: Optional[dict] = None,
          sde: Optional[MeanRevertingSDE] = None, configs: Optional[dict] = None, schedule: Optional[ResamplingSchedule] = None,
          reimpose: Optional[bool] = None, noise_scale: Optional[float] = None, fast: bool = True, **options):
    """The one factory: ``method`` (a name of :data:`METHODS`) as an object with
    ``.sample(image, known, generator=..., progress=...)``.

    ``weights``: a :class:`~strdiff_edu.weights.Weights` folder; the networks the method needs are
    loaded from it on ``device`` (the baselines need none). Or pass them loaded: ``nets`` and
    ``configs`` by role (what :meth:`~strdiff_edu.weights.Weights.load` returns; given roles
    replace the folder's, e.g. another snapshot of the texture network) and ``sde``, the SDE they
    were trained with (default: the folder's). Sampler settings (the baselines ignore them): ``schedule`` (default
    :func:`~strdiff_edu.resampling.resampling_schedule` (T)); ``reimpose`` (default
    :data:`DEFAULT_REIMPOSE`): re-impose the texture's known pixels after every reverse step;
    ``noise_scale`` (default :data:`DEFAULT_NOISE_SCALE`; 1 is the reverse SDE): the factor on the
    reverse steps' noise term; ``mode``, ``canny_sigma``, ``threshold``, ``prefer`` for
    StrDiffusion (:class:`~strdiff_edu.sampling.StrDiffusionSampler`, :class:`~strdiff_edu.resampling.Resampling`).
    ``fast``: run the networks through :func:`strdiff_edu.fast.fast_sampler` with
    ``FastPath.for_device`` of their device: on a CPU only the exact spectral-norm folding, on
    CUDA also bf16 and channels-last (results then differ from float32 by bf16 rounding; Part VI)."""
    m = get_method(method)
    if not m.is_sampler:
        return m.builder()
    nets, configs = dict(nets or {}), dict(configs or {})
    if weights is not None:
        todo = [n for n in m.networks if n not in nets]     # a missing file: Weights.load names it
        loaded, loaded_cfg = weights.load(todo, device)
        nets, configs = {**loaded, **nets}, {**loaded_cfg, **configs}
        sde = sde or weights.sde
    missing = [n for n in m.networks if n not in (nets or {})]
    if missing:
        raise ValueError(f"{method} needs the {', '.join(missing)} network(s): load them with "
                         f"strdiff_edu.weights.Weights(folder).load({list(m.networks)})")
    if sde is None:
        raise ValueError(f"{method} needs the SDE its networks were trained with (Weights(folder).sde)")
    noise_scale = DEFAULT_NOISE_SCALE if noise_scale is None else float(noise_scale)
    if noise_scale < 0:
        raise ValueError(f"noise_scale must be >= 0, got {noise_scale}")
    sampler = m.builder(nets=nets, sde=sde, configs=configs, name=method,
                        schedule=schedule or resampling_schedule(sde.T),
                        reimpose=DEFAULT_REIMPOSE if reimpose is None else reimpose, noise_scale=noise_scale,
                        **options)
    if fast:
        from .fast import FastPath, fast_sampler

        device = next(iter(next(iter(nets.values())).parameters())).device
        sampler = fast_sampler(sampler, FastPath.for_device(device))
    return sampler


__all__ = ["Method", "METHODS", "SAMPLERS", "DEFAULT_METHOD", "DEFAULT_REIMPOSE", "DEFAULT_NOISE_SCALE",
           "CHEAP_SWITCH_FRACTION", "CHEAP_STRUCTURE_VARIANT", "build", "get_method", "needed_networks"]
