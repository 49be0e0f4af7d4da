"""Samplers: IR-SDE, StrDiffusion with and without adaptive resampling, RePaint-style resampling.

Every sampler is a small object holding its networks and settings and nothing else (no state
survives a call). They share one interface::

    result = sampler.sample(image, known, generator=g, progress=True, callback=None,
                            return_trajectory=False)

* ``image`` (B, 3, H, W) in [0, 1]: the masked image or the full image: only ``image * known``
  is ever read, so passing the ground truth cannot leak its hole into the result.
* ``known`` (B or 1, 1, H, W), 1 = known pixel, 0 = hole.
* ``generator``: a ``torch.Generator`` on the images' device; the same seed gives the same result.
* ``callback(info)``: called after every reverse step with a :class:`StepInfo`.
* returns a :class:`SampleResult` whose ``image`` is the **final merge**
  ``known * image + (1 - known) * sample``: the known pixels come back exactly.

``sampler.networks`` names the networks by role (``irsde``; ``structure``, ``texture``,
``discriminator``) and ``sampler.with_networks({...})`` gives a copy running others in those
roles (:class:`Sampler`): how the fast path and the benchmarks reach them.

All the SDE arithmetic is :class:`~strdiff_edu.sde.MeanRevertingSDE`'s (``prior_sample``,
``reverse_step``, ``reverse_ode_step``, ``forward_step``, ``sample_transition``,
``sample_marginal``); this module only orchestrates.

**StrDiffusion (book: Part V, {ref}`eq-structure-guided-step`).** With the structure x (one
channel) and the texture y (RGB):

* start: ``y_T = mu + lambda z`` and ``x_T = mu_x + lambda z'``; ``mu = image * known``;
  ``mu_x`` is the structure's terminal mean computed **from the known pixels only**
  (:func:`strdiff_edu.structure.structure_pair` with ``edge_source="known"``);
* early stage, ``t = T .. floor(0.4 T)``: paste into ``x_t``'s known region a sample of the
  structure's forward marginal started at the structure of the *visible* pixels
  (``x0_known = gray(image) * known`` for the gray2edge pairing), take the structure step
  ``x_t -> x_{t-1}``, then the texture step ``y_t -> y_{t-1}`` guided by ``x_{t-1}``; at the
  resampling times run the adaptive resampling (below);
* late stage, ``t < floor(0.4 T)``: the texture step guided by the current texture's own gray
  map (``late_guide="gray"``, rgb2gray weights, as in training) or its RGB mean
  (``late_guide="mean"``, the official code);
* merge with the known pixels.

**Adaptive resampling (paper Eq. 17, Sec. 2.4.2; book: {ref}`eq-adaptive-resampling`).** At a
resampled time ``t`` with jump length ``r``, up to ``u_max - 1`` iterations of: re-noise the
current structure candidate ``r`` levels (t-1 -> t+r-1), denoise it back ``r`` reverse steps
(pasting the known structure before each), recompute the texture step from the same ``y_t``
guided by the new structure, and score the pair with the discriminator. Four rules:

* ``rule="official"`` (the official code): resampled times are the early-stage ``t`` with
  ``t % jump == 0``, ``r = min(re, T + 1 - t)``; keep a reference score ``D_n`` of the current
  pair; a candidate is accepted when its score is lower (``prefer="lower"``; ``"higher"`` flips
  it); a rejected candidate is averaged into the current pair while ``i < u_min``, and the loop
  stops at the first rejection with ``i >= u_min``;
* ``rule="paper"`` (the paper's text and its Fig. 2): at **every** early-stage step, while the
  current pair scores below ``threshold`` (a config value: the paper's number is unknown),
  re-noise the structure **one level** (``r = 1``: x_{t-1} -> x_t) and denoise it again; every
  candidate replaces the current pair; at most ``u_max - 1`` candidates per step (the paper
  gives no cap);
* ``rule="scheduled-threshold"`` (a hybrid): the official schedule and jump (``t % jump == 0``,
  ``r`` levels) with the paper's threshold criterion;
* ``rule="always"``: no discriminator; the official schedule, every candidate accepted for a
  fixed ``u_min`` iterations (the RePaint-like ablation, Table 2 case B).

**Official quirks.** ``mode="corrected"`` (default) fixes four things the official sampler
does; ``mode="official"`` reproduces each:

1. the re-noising is Euler–Maruyama with theta one index low (``forward_step(x, mu_x, k - 1)``
   for the step k-1 -> k); the corrected sampler draws from the exact transition of the SDE
   (:meth:`~strdiff_edu.sde.MeanRevertingSDE.sample_transition`);
2. the known structure pasted at every level (main loop and resampling) is one sample from
   level ``t - 1``, where the corrected sampler pastes a fresh level-k sample at level k;
3. the reference score ``D_n`` is not refreshed after an acceptance or an average (corrected:
   it becomes the accepted candidate's score, or the averaged pair's score, which costs one more
   discriminator call per average);
4. the discriminator is fed the texture with its hole zeroed, ``y * known`` (it was trained on
   full textures; corrected: ``y``).

The official late-stage guide is the RGB mean (``late_guide`` defaults to ``"mean"`` in official
mode, ``"gray"`` otherwise).

**Network-call counts** (per image; the ``nfe`` field). With ``E = T - floor(0.4 T) + 1`` early
steps, ``R`` the resampled times, ``r_t`` their jump lengths and ``k_t`` the iterations run at
``t`` (official rule: the first ``i >= u_min`` whose candidate is rejected, else ``u_max - 1``):

* structure:     ``N_S = E + sum_{t in R} k_t r_t``
* texture:       ``N_Y = T + sum_{t in R} k_t``
* discriminator: ``N_D = |R| + sum_{t in R} k_t`` (one reference score per resampled time, one
  per candidate; the official code also scores the pair at every early step, ``E + sum k_t``,
  without using the score), plus, in corrected mode, one per early-rejection average.

Under ``rule="paper"`` every early step is a resampled time with ``r_t = 1``, so
``N_S = E + sum k_t``, ``N_Y = T + sum k_t`` and ``N_D = E + sum k_t``.

IR-SDE makes ``T`` texture calls; with RePaint resampling ``T + sum_{t in R} n r_t`` where ``n``
is the number of repeats. The discriminator scores one image at a time (as the official batch-1
test), so the minibatch-stddev feature is the constant of a batch of one and a score never
depends on which other images share the batch.

**Deterministic variant.** ``stochastic=False`` replaces every reverse Euler–Maruyama step by the
probability-flow ODE step (:meth:`~strdiff_edu.sde.MeanRevertingSDE.reverse_ode_step`). It is not
deterministic given the start: the prior draws, the known-structure paste (a draw of the
structure's forward marginal at every early step and resampling level), the resampling's
re-noising and, with ``reimpose``, the known-pixel re-imposition remain random.
"""
from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch

from .methods import SAMPLERS
from .sde import MeanRevertingSDE
from .structure import edge_map, grayscale, structure_pair

MODES = ("corrected", "official")
RULES = ("official", "paper", "scheduled-threshold", "always")
THRESHOLD_RULES = ("paper", "scheduled-threshold")
LATE_GUIDES = ("gray", "mean")


# ----------------------------------------------------------------------------- schedules
def switch_step(T: int, switch_fraction: float = 0.4) -> int:
    """The last early-stage step: the early (structure-guided) stage is ``t >= floor(switch_fraction
    * T)``, at least ``t >= 1``."""
    return max(1, int(math.floor(switch_fraction * T)))


@dataclass(frozen=True)
class ResamplingSchedule:
    """The adaptive-resampling constants of one T (official code, ``sde_utils.py``).

    ``u_max``: at most ``u_max - 1`` iterations per resampled time; ``u_min``: at least that many
    before a rejection stops the loop; resampled times are the early-stage ``t`` with
    ``t % jump == 0``; ``re``: jump length (clipped to ``T + 1 - t``); ``switch_fraction``: the
    early stage is ``t >= floor(switch_fraction * T)``.
    """

    T: int
    u_max: int
    u_min: int
    jump: int
    re: int
    switch_fraction: float = 0.4

    def __post_init__(self):
        if not (1 <= self.u_min <= self.u_max - 1):
            raise ValueError(f"need 1 <= u_min <= u_max - 1, got u_min={self.u_min}, u_max={self.u_max}")
        if self.jump < 1 or self.re < 1:
            raise ValueError(f"jump and re must be >= 1, got jump={self.jump}, re={self.re}")
        if not 0 < self.switch_fraction <= 1:
            raise ValueError(f"switch_fraction must lie in (0, 1], got {self.switch_fraction}")

    def switch_step(self, T: int) -> int:
        """:func:`switch_step` of ``T`` at this schedule's ``switch_fraction``."""
        return switch_step(T, self.switch_fraction)


#: The official constants: Places2 at T=400 (the active values) and the T=100 comment.
RESAMPLING_SCHEDULES: Dict[int, ResamplingSchedule] = {
    400: ResamplingSchedule(400, u_max=6, u_min=3, jump=5, re=5),
    100: ResamplingSchedule(100, u_max=25, u_min=4, jump=2, re=2),
}


def resampling_schedule(T: int) -> ResamplingSchedule:
    """The schedule for ``T``; for a T without one, the schedule of the nearest tabulated T (with a
    warning: the official README asks to retune the four constants for every T)."""
    if T in RESAMPLING_SCHEDULES:
        return RESAMPLING_SCHEDULES[T]
    nearest = min(RESAMPLING_SCHEDULES, key=lambda k: abs(math.log(k / T)))
    warnings.warn(f"no resampling schedule for T={T}; using the T={nearest} constants "
                  "(retune u_max/u_min/jump/re for this T)", stacklevel=2)
    return replace(RESAMPLING_SCHEDULES[nearest], T=T)


@dataclass(frozen=True)
class Resampling:
    """How the adaptive resampling runs (see the module docstring); the sampler's ``mode``
    decides which of the official quirks it reproduces."""

    schedule: ResamplingSchedule
    rule: str = "official"
    prefer: str = "lower"       # official rule: accept a candidate scoring lower (official) or higher
    threshold: float = 0.0      # paper / scheduled-threshold rules: resample while the logit is below this

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"unknown resampling rule {self.rule!r}; choose one of {', '.join(RULES)}")
        if self.prefer not in ("lower", "higher"):
            raise ValueError(f"prefer must be 'lower' or 'higher', got {self.prefer!r}")


def resampled_times(T: int, schedule: ResamplingSchedule, switch: Optional[int] = None) -> List[Tuple[int, int]]:
    """``[(t, r_t), ...]`` in sampling order: early-stage t with ``t % jump == 0`` and their
    jump lengths ``r_t = min(re, T + 1 - t)``; the early stage ends at ``switch`` (default: the
    schedule's :meth:`~ResamplingSchedule.switch_step`)."""
    lo = schedule.switch_step(T) if switch is None else switch
    return [(t, min(schedule.re, T + 1 - t)) for t in range(T, lo - 1, -1) if t % schedule.jump == 0]


def paper_rule_times(T: int, switch_step: int) -> List[Tuple[int, int]]:
    """``[(t, 1), ...]``: the paper rule looks at every early-stage step, one level up."""
    return [(t, 1) for t in range(T, switch_step - 1, -1)]


def expected_nfe(T: int, schedule: ResamplingSchedule, iterations: Dict[int, int], rule: str = "official",
                 averages: Optional[Dict[int, int]] = None) -> Dict[str, int]:
    """The call-count formula of the module docstring (book: {ref}`eq-resampling-nfe`), for
    ``iterations[t] = k_t`` at every resampled time (0 or missing: no resampling there).

    ``rule``: ``"official"`` / ``"always"`` count one reference score per time with ``k_t > 0``;
    the threshold rules score every resampled time (``"paper"``: every early step, ``r_t = 1``).
    ``averages[t]``: early-rejection averages rescored in corrected mode (one call each)."""
    lo = schedule.switch_step(T)
    E = T - lo + 1
    times = paper_rule_times(T, lo) if rule == "paper" else resampled_times(T, schedule, lo)
    ks = {t: iterations.get(t, 0) for t, _ in times}
    refs = len(times) if rule in THRESHOLD_RULES else sum(1 for t, _ in times if ks[t] > 0)
    return {"structure": E + sum(ks[t] * r for t, r in times),
            "texture": T + sum(ks.values()),
            "discriminator": refs + sum(ks.values()) + sum((averages or {}).values())}


# ----------------------------------------------------------------------------- results
@dataclass
class StepInfo:
    """What a per-step callback receives: the step just taken (``t -> t - 1``), the stage
    (``"early"``: structure-guided; ``"late"``: guided by the texture's own gray map;
    ``"texture"``: IR-SDE), the states after the step and, in the early stage, the structure
    state fed to the structure network at level t (``structure_in``, known region pasted)."""

    t: int
    stage: str
    texture: torch.Tensor
    structure: Optional[torch.Tensor] = None
    structure_in: Optional[torch.Tensor] = None


@dataclass
class SampleResult:
    """A sampler's output.

    * ``image``: (B, 3, H, W), the merge ``known * input + (1 - known) * sample``, clamped to [0, 1];
    * ``raw``: the unmerged final sample ``y_0`` (not clamped);
    * ``structure``: the structure at the end of the early stage (B, 1, H, W), or ``None``;
    * ``trajectory``: with ``return_trajectory=True``, ``{"t": [T, ..., 0], "texture": (S, B, 3,
      H, W), "structure": (S', B, 1, H, W) or None}`` on the CPU (structure only in the early stage);
    * ``nfe``: per-image network evaluations, ``{network: (B,) int64}``;
    * ``calls``: batched forward calls per network (what costs time);
    * ``resampling``: one entry per resampled time: ``{"t", "r", "iterations" (B,), "accepted"
      (B,), "averaged" (B,), "scores": [(B,): the reference, then one per candidate],
      "rescored": [(B,) per candidate of the official rule: the score of the averaged pair, which
      becomes the reference in corrected mode; nan where there was no average]}``;
    * ``seconds``: wall time of the call.
    """

    image: torch.Tensor
    raw: torch.Tensor
    structure: Optional[torch.Tensor] = None
    trajectory: Optional[dict] = None
    nfe: Dict[str, torch.Tensor] = field(default_factory=dict)
    calls: Dict[str, int] = field(default_factory=dict)
    resampling: List[dict] = field(default_factory=list)
    seconds: float = 0.0


def merge_known(image: torch.Tensor, known: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
    """``known * image + (1 - known) * clamp(sample, 0, 1)``: known pixels are returned exactly."""
    known = known.to(image.dtype)
    return torch.where(known > 0.5, image, sample.clamp(0, 1))


def reimpose_known(sde: MeanRevertingSDE, y: torch.Tensor, mu: torch.Tensor, known: torch.Tensor,
                   level: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The state ``y`` at ``level`` with its known region replaced by a draw of the forward
    marginal of the known pixels, ``mu + sigma_bar_level z`` there (for the known pixels
    ``y_0 = mu``, so the marginal's mean is ``mu`` at every level; book:
    {ref}`eq-marginal`). At level 0 that is ``mu`` itself. RePaint's known-region injection, at
    every reverse step."""
    if level <= 0:
        return known * mu + (1 - known) * y
    return known * sde.sample_marginal(mu, mu, level, generator) + (1 - known) * y


def check_inputs(image: torch.Tensor, known: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Validate ``(image, known)``; return the image (float) and the mask expanded to (B, 1, H, W)."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[1] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be a (B, 3, H, W) tensor in [0, 1], got {shape}; add a batch "
                         "axis with image[None] and repeat a gray image to 3 channels")
    if not isinstance(known, torch.Tensor) or known.ndim != 4 or known.shape[1] != 1 \
            or known.shape[0] not in (1, image.shape[0]) or known.shape[2:] != image.shape[2:]:
        shape = tuple(known.shape) if isinstance(known, torch.Tensor) else type(known).__name__
        raise ValueError(f"known must be a (B or 1, 1, H, W) = (*, 1, {image.shape[2]}, {image.shape[3]}) "
                         f"mask with 1 = known, got {shape}; resize the mask to the image")
    known = (known.to(image.device) > 0.5).to(image.dtype).expand(image.shape[0], 1, *image.shape[2:])
    hole = 1 - known.flatten(1).mean(1)
    if bool((hole == 1).any()):
        raise ValueError("a mask is all hole: there is nothing to condition on; check the mask "
                         "convention (tensors: 1 = known; files: white = hole)")
    return image.float(), known.contiguous()


def _check_device(net: Optional[torch.nn.Module], like: torch.Tensor, name: str) -> None:
    if net is None:
        return
    p = next(iter(net.parameters()), None)
    if p is not None and p.device != like.device:
        raise ValueError(f"the {name} network is on {p.device} but the images are on {like.device}; "
                         f"move one of them (net.to(device))")


class _Counter:
    """Per-image network evaluations (kept on the images' device, so that counting never waits
    for the device) and batched calls (a Python int: how many times a network ran)."""

    def __init__(self, batch: int, device, names):
        self.nfe = {n: torch.zeros(batch, dtype=torch.int64, device=device) for n in names}
        self.calls = {n: 0 for n in names}

    def add(self, name: str, active: Optional[torch.Tensor] = None, n_calls: int = 1) -> None:
        """One call of ``name``; ``active`` (B,) bool: the samples whose evaluation counts."""
        self.calls[name] += n_calls
        if active is None:
            self.nfe[name] += 1
        else:
            self.nfe[name] += active.to(torch.int64)

    def result(self) -> Dict[str, torch.Tensor]:
        return {n: v.cpu() for n, v in self.nfe.items()}


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, mininterval=0.5)


class _Trajectory:
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.t: List[int] = []
        self.y: List[torch.Tensor] = []
        self.x: List[torch.Tensor] = []

    def add(self, t: int, y: torch.Tensor, x: Optional[torch.Tensor] = None) -> None:
        if not self.enabled:
            return
        self.t.append(t)
        self.y.append(y.detach().cpu())
        if x is not None:
            self.x.append(x.detach().cpu())

    def result(self) -> Optional[dict]:
        if not self.enabled:
            return None
        return {"t": self.t, "texture": torch.stack(self.y),
                "structure": torch.stack(self.x) if self.x else None}


class Sampler:
    """What every sampler shares: its networks, held by role.

    ``sampler.networks`` is ``{role: network}`` for the networks it has: ``{"irsde": ...}`` for
    :class:`IRSDESampler`; ``{"structure": ..., "texture": ...}`` plus ``"discriminator"`` when
    given, for :class:`StrDiffusionSampler`. ``sampler.with_networks({role: net})`` is a shallow
    copy that runs other networks in those roles (the fast path's copies, a timing wrapper) and
    leaves the original alone."""

    name = "sampler"

    def __init__(self, **networks: Optional[torch.nn.Module]):
        self._nets = dict(networks)

    @property
    def networks(self) -> Dict[str, torch.nn.Module]:
        return {role: net for role, net in self._nets.items() if net is not None}

    def with_networks(self, networks: Dict[str, torch.nn.Module]) -> "Sampler":
        unknown = sorted(set(networks) - set(self.networks))
        if unknown:
            raise ValueError(f"{self.name} has no {', '.join(unknown)} network; its networks are "
                             f"{', '.join(self.networks)}")
        out = copy.copy(self)
        out._nets = {**self._nets, **networks}
        return out

    def _check_devices(self, image: torch.Tensor) -> None:
        for role, net in self.networks.items():
            _check_device(net, image, role)


# ----------------------------------------------------------------------------- IR-SDE
@dataclass
class RePaint:
    """RePaint-style resampling for the IR-SDE baseline (paper Table 2, case A): at the same times
    as the adaptive resampling (``schedule``), ``repeats`` times: re-noise the whole texture ``r_t``
    forward steps and denoise it back, pasting the known region's forward marginal before every
    reverse step (RePaint's known-region injection). No discriminator."""

    schedule: ResamplingSchedule
    repeats: int = 0            # 0: the schedule's u_min

    @property
    def n(self) -> int:
        return self.repeats or self.schedule.u_min


class IRSDESampler(Sampler):
    """The IR-SDE baseline: texture-only reverse SDE from ``mu + lambda z``, ``net(y_t, mu, t)``.

    ``repaint``: optional :class:`RePaint` resampling (the texture's known region then follows the
    forward marginal of the known pixels, which for IR-SDE is ``mu + sigma_bar_t z`` since
    ``y_0 = mu`` there). ``stochastic=False``: the reverse-ODE variant. ``reimpose``: after every
    reverse step, replace the known region by a draw of its forward marginal (:func:`reimpose_known`).
    ``noise_scale``: factor on the reverse SDE's noise term (1: the SDE; 0: the reverse mean).
    """

    name = "IR-SDE"

    def __init__(self, net: torch.nn.Module, sde: MeanRevertingSDE, stochastic: bool = True,
                 repaint: Optional[RePaint] = None, reimpose: bool = False, noise_scale: float = 1.0):
        super().__init__(irsde=net)
        self.sde, self.stochastic, self.repaint = sde, stochastic, repaint
        self.reimpose, self.noise_scale = reimpose, noise_scale

    def _step(self, y, mu, t, generator):
        noise = self._nets["irsde"](y, mu, t)
        if self.stochastic:
            return self.sde.reverse_step(y, noise, mu, t, generator=generator, noise_scale=self.noise_scale)
        return self.sde.reverse_ode_step(y, noise, mu, t)

    @torch.inference_mode()
    def sample(self, image: torch.Tensor, known: torch.Tensor, generator: Optional[torch.Generator] = None,
               progress: bool = False, callback: Optional[Callable[[StepInfo], None]] = None,
               return_trajectory: bool = False) -> SampleResult:
        start = time.perf_counter()
        image, known = check_inputs(image, known)
        self._check_devices(image)
        sde, B = self.sde, image.shape[0]
        mu = image * known
        count = _Counter(B, image.device, ("texture",))
        traj = _Trajectory(return_trajectory)
        times = dict(resampled_times(sde.T, self.repaint.schedule)) if self.repaint else {}
        y = sde.prior_sample(mu, generator)
        traj.add(sde.T, y)
        bar = _progress(sde.T, "IR-SDE" + (" + RePaint" if self.repaint else ""), progress)
        for t in range(sde.T, 0, -1):
            if self.repaint:
                y = known * sde.sample_marginal(mu, mu, t, generator) + (1 - known) * y
            y_prev = self._step(y, mu, t, generator)
            count.add("texture")
            if t in times:
                r = times[t]
                for _ in range(self.repaint.n):
                    z = y_prev
                    for k in range(t, t + r):             # lift level t-1 -> t+r-1
                        z = sde.forward_step(z, mu, k, generator)
                    for k in range(t + r - 1, t - 1, -1):  # back down to level t-1
                        z = known * sde.sample_marginal(mu, mu, k, generator) + (1 - known) * z
                        z = self._step(z, mu, k, generator)
                        count.add("texture")
                    y_prev = z
            y = reimpose_known(sde, y_prev, mu, known, t - 1, generator) if self.reimpose else y_prev
            traj.add(t - 1, y)
            if callback is not None:
                callback(StepInfo(t, "texture", y))
            bar.update()
        bar.close()
        return SampleResult(image=merge_known(image, known, y), raw=y, trajectory=traj.result(),
                            nfe=count.result(), calls=count.calls, seconds=time.perf_counter() - start)


# ----------------------------------------------------------------------------- StrDiffusion
class StrDiffusionSampler(Sampler):
    """StrDiffusion's sampler: structure-guided texture denoising (book:
    {ref}`eq-structure-guided-step`), optional adaptive resampling (paper Eq. 17; book:
    {ref}`eq-adaptive-resampling`).

    Parameters
    ----------
    texture_net, structure_net:
        ``texture_net(y_t, mu, t, structure)`` and ``structure_net(x_t, mu_x, t)`` (noise).
    sde:
        The SDE both were trained with (texture and structure share it).
    discriminator:
        ``discriminator(y, x, t) -> (B, 1)`` logits; needed by the ``official`` and ``paper`` rules.
    resampling:
        A :class:`Resampling`, or ``None`` for no resampling.
    mode:
        ``"corrected"`` (default) or ``"official"`` (reproduce the official sampler's quirks; see
        the module docstring), in the main loop and in the resampling. Both modes take ``mu_x`` from the
        edges of the known pixels only; the official test loader runs Canny on the full
        ground-truth image, which ``mode="official"`` does not reproduce (it would leak the hole).
    late_guide:
        ``"gray"`` or ``"mean"``; default ``"gray"`` (corrected) / ``"mean"`` (official).
    switch_fraction:
        Early stage ``t >= floor(switch_fraction * T)`` (:func:`switch_step`); default: the
        resampling schedule's (0.4 in the official ones), 0.4 without resampling.
    pairing, canny_sigma:
        The structure pairing the networks were trained with and Canny's sigma at inference
        (the profile's ``canny_sigma``). The terminal structure uses the known pixels only.
    stochastic:
        ``False``: the reverse-ODE variant (still random: prior, known-structure paste, re-noising).
    early_exit:
        End a resampling loop once every image has stopped (one device-to-host check per
        iteration); ``False`` always runs the schedule's maximum number of iterations, with no wait
        for the device inside the sampling loop (stopped images are then computed but unchanged
        and not counted).
    reimpose:
        After every texture reverse step, replace the texture's known region by a draw of its
        forward marginal at the new level (:func:`reimpose_known`); the structure's known region
        is always re-imposed.
    noise_scale:
        Factor on the noise term of every reverse SDE step, structure and texture (1: the reverse
        SDE; 0: the reverse mean at every step). Ignored by the ODE variant.
    compact:
        Run the resampling candidates of the still-active images only (gathered by index) instead
        of the whole batch with masks; default: on a CPU yes, on CUDA no (see ``_resample``).
    """

    name = "StrDiffusion"

    def __init__(self, texture_net, structure_net, sde: MeanRevertingSDE, discriminator=None,
                 resampling: Optional[Resampling] = None, mode: str = "corrected",
                 late_guide: Optional[str] = None, switch_fraction: Optional[float] = None,
                 pairing: str = "gray2edge", canny_sigma: float = 2.0, stochastic: bool = True,
                 early_exit: bool = True, compact: Optional[bool] = None, reimpose: bool = False,
                 noise_scale: float = 1.0):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        late_guide = late_guide or ("mean" if mode == "official" else "gray")
        if late_guide not in LATE_GUIDES:
            raise ValueError(f"unknown late_guide {late_guide!r}; choose one of {', '.join(LATE_GUIDES)}")
        if switch_fraction is None:
            switch_fraction = resampling.schedule.switch_fraction if resampling is not None else 0.4
        if resampling is not None:
            if resampling.rule != "always" and discriminator is None:
                raise ValueError(f"the {resampling.rule!r} resampling rule needs the discriminator "
                                 "(load discriminator.pt) or use rule='always'")
        super().__init__(structure=structure_net, texture=texture_net, discriminator=discriminator)
        self.sde, self.resampling, self.mode, self.late_guide = sde, resampling, mode, late_guide
        self.switch_fraction, self.pairing, self.canny_sigma = switch_fraction, pairing, canny_sigma
        self.stochastic, self.early_exit, self.compact = stochastic, early_exit, compact
        self.reimpose, self.noise_scale = reimpose, noise_scale
        self._disc_takes_group = _accepts_keyword(discriminator, "stddev_group")

    # -- pieces ---------------------------------------------------------------
    @property
    def switch_step(self) -> int:
        """The last early-stage step (:func:`switch_step`): the early stage is ``t >= switch_step``."""
        return switch_step(self.sde.T, self.switch_fraction)

    def structure_ends(self, image: torch.Tensor, known: torch.Tensor):
        """``(x0_known, mu_x)``: the structure of the visible pixels (zero in the hole) and the
        terminal mean, both from ``image * known`` only."""
        masked = image * known
        pair = structure_pair(masked, known, self.pairing, sigma=self.canny_sigma, edge_source="known")
        if self.pairing.startswith("gray"):
            x0_known = grayscale(masked) * known
        else:
            x0_known = edge_map(grayscale(masked), self.canny_sigma, known=known, edge_source="known")
        return x0_known, pair.terminal_mean

    def _reverse(self, v, noise, mean, t, generator):
        if self.stochastic:
            return self.sde.reverse_step(v, noise, mean, t, generator=generator, noise_scale=self.noise_scale)
        return self.sde.reverse_ode_step(v, noise, mean, t)

    def _structure_step(self, x, mu_x, t, generator):
        return self._reverse(x, self._nets["structure"](x, mu_x, t), mu_x, t, generator)

    def _texture_step(self, y, mu, t, guide, generator):
        return self._reverse(y, self._nets["texture"](y, mu, t, guide), mu, t, generator)

    def _renoise(self, x, mu_x, t, r, generator):
        """Lift the structure from level t-1 to t+r-1: the exact transition of the SDE
        (book: {ref}`eq-transition`; corrected) or Euler–Maruyama with theta one index low
        (official quirk 1)."""
        for k in range(t, t + r):
            if self.mode == "official":
                x = self.sde.forward_step(x, mu_x, k - 1, generator)
            else:
                x = self.sde.sample_transition(x, mu_x, k, generator)
        return x

    def _late_guide(self, y):
        if self.late_guide == "mean":
            return y.mean(1, keepdim=True)
        return grayscale(y)

    def _score(self, y, x, known, t) -> torch.Tensor:
        """Discriminator logits (B,), each image scored as if alone in its batch (the official
        batch-1 test): one batched call with a minibatch-stddev group of 1 when the discriminator
        takes ``stddev_group`` (ours does), else one call per image."""
        if self.mode == "official":
            y = y * known
        disc = self._nets["discriminator"]
        if self._disc_takes_group:
            return disc(y, x, t, stddev_group=1).reshape(-1).float()
        return torch.cat([disc(y[i:i + 1], x[i:i + 1], t).reshape(1).float() for i in range(y.shape[0])])

    def _score_calls(self, batch: int) -> int:
        return 1 if self._disc_takes_group else batch

    # -- the sampler ------------------------------------------------------------
    @torch.inference_mode()
    def sample(self, image: torch.Tensor, known: torch.Tensor, generator: Optional[torch.Generator] = None,
               progress: bool = False, callback: Optional[Callable[[StepInfo], None]] = None,
               return_trajectory: bool = False) -> SampleResult:
        start = time.perf_counter()
        image, known = check_inputs(image, known)
        self._check_devices(image)
        sde, B, official = self.sde, image.shape[0], self.mode == "official"
        mu = image * known
        x0k, mu_x = self.structure_ends(image, known)
        count = _Counter(B, image.device, ("structure", "texture", "discriminator"))
        traj = _Trajectory(return_trajectory)
        rs = self.resampling
        lo = self.switch_step
        if rs is None:
            times = {}
        elif rs.rule == "paper":
            times = dict(paper_rule_times(sde.T, lo))
        else:
            times = dict(resampled_times(sde.T, rs.schedule, lo))
        log: List[dict] = []

        y = sde.prior_sample(mu, generator)
        x = sde.prior_sample(mu_x, generator)
        traj.add(sde.T, y, x)
        structure_out = None
        bar = _progress(sde.T, "StrDiffusion" + (f" + resampling ({rs.rule})" if rs else ""), progress)
        for t in range(sde.T, 0, -1):
            if t >= lo:
                # known structure: corrected = level t; official = level t-1 (used at every level)
                x_known = sde.sample_marginal(x0k, mu_x, t - 1 if official else t, generator)
                x_in = known * x_known + (1 - known) * x
                x_prev = self._structure_step(x_in, mu_x, t, generator)
                count.add("structure")
                y_prev = self._texture_step(y, mu, t, x_prev, generator)
                count.add("texture")
                if t in times:
                    y_prev, x_prev, entry = self._resample(t, times[t], y, x_prev, y_prev, mu, mu_x, x0k,
                                                           x_known, known, count, generator)
                    log.append(entry)
                if self.reimpose:
                    y_prev = reimpose_known(sde, y_prev, mu, known, t - 1, generator)
                y, x = y_prev, x_prev
                structure_out = x
                traj.add(t - 1, y, x)
                if callback is not None:
                    callback(StepInfo(t, "early", y, x, x_in))
            else:
                y = self._texture_step(y, mu, t, self._late_guide(y), generator)
                if self.reimpose:
                    y = reimpose_known(sde, y, mu, known, t - 1, generator)
                count.add("texture")
                traj.add(t - 1, y)
                if callback is not None:
                    callback(StepInfo(t, "late", y))
            bar.update()
        bar.close()
        if structure_out is not None:
            structure_out = known * x0k + (1 - known) * structure_out
        log = [{"t": e["t"], "r": e["r"], "iterations": e["iterations"].cpu(), "accepted": e["accepted"].cpu(),
                "averaged": e["averaged"].cpu(), "scores": [v.cpu() for v in e["scores"]],
                "rescored": [v.cpu() for v in e["rescored"]]} for e in log]
        return SampleResult(image=merge_known(image, known, y), raw=y, structure=structure_out,
                            trajectory=traj.result(), nfe=count.result(), calls=count.calls, resampling=log,
                            seconds=time.perf_counter() - start)

    def _resample(self, t, r, y_t, x_cur, y_cur, mu, mu_x, x0k, x_known_official, known, count, generator):
        """Adaptive resampling at step t (jump r); returns the chosen (y_{t-1}, x_{t-1}) and a log entry.

        The per-image decisions (accept, reject, average, stop) are masks applied with
        ``torch.where`` and the call counts add the mask, so an image that has stopped does not
        change and is not counted. Two ways to run the candidates:

        * masked (default on CUDA): every image of the batch runs every iteration, so nothing in
          the loop waits for the device except the check, once per iteration, that some image is
          still active (``early_exit``), which ends the loop as soon as every image has stopped;
        * compacted (``compact``; default on a CPU, where waiting costs nothing): only the active
          images run, gathered by index and scattered back, so no compute is spent on stopped
          images.
        """
        sde, rs = self.sde, self.resampling
        official = self.mode == "official"
        B, dev = y_t.shape[0], y_t.device
        compact = self.compact if self.compact is not None else dev.type == "cpu"
        iters = torch.zeros(B, dtype=torch.int64, device=dev)
        accepted = torch.zeros(B, dtype=torch.int64, device=dev)
        averaged = torch.zeros(B, dtype=torch.int64, device=dev)
        scores: List[torch.Tensor] = []
        rescored: List[torch.Tensor] = []
        use_disc = rs.rule != "always"
        ref = None
        if use_disc:
            ref = self._score(y_cur, x_cur, known, t)
            count.add("discriminator", n_calls=self._score_calls(B))
            scores.append(ref)
        active = torch.ones(B, dtype=torch.bool, device=dev)
        threshold_rule = rs.rule in THRESHOLD_RULES
        if threshold_rule:
            active = ref < rs.threshold
        n_iter = rs.schedule.u_min if rs.rule == "always" else rs.schedule.u_max - 1

        def pick(mask, a, b):   # per-image choice between two (B, ...) tensors
            return torch.where(mask.view(-1, *([1] * (a.ndim - 1))), a, b)

        for i in range(1, n_iter + 1):
            if (self.early_exit or compact) and not bool(active.any()):
                break
            idx = active.nonzero().squeeze(1) if compact else None
            rows = (lambda v: v.index_select(0, idx)) if compact else (lambda v: v)  # noqa: E731
            kn, mx = rows(known), rows(mu_x)
            z = self._renoise(rows(x_cur), mx, t, r, generator)   # re-noise: level t-1 -> t+r-1
            for k in range(t + r - 1, t - 1, -1):           # denoise: back to level t-1
                paste = rows(x_known_official) if official else sde.sample_marginal(rows(x0k), mx, k, generator)
                z = kn * paste + (1 - kn) * z
                z = self._structure_step(z, mx, k, generator)
                count.add("structure", active)
            y_new = self._texture_step(rows(y_t), rows(mu), t, z, generator)
            s = self._score(y_new, z, kn, t) if use_disc else None
            if compact:                                     # back to full-batch tensors
                z, y_new = x_cur.index_copy(0, idx, z), y_cur.index_copy(0, idx, y_new)
                if use_disc:
                    s = ref.index_copy(0, idx, s)
            count.add("texture", active)
            iters += active.to(torch.int64)
            if not use_disc:
                x_cur, y_cur = pick(active, z, x_cur), pick(active, y_new, y_cur)
                accepted += active.to(torch.int64)
                continue
            count.add("discriminator", active, n_calls=self._score_calls(int(idx.numel()) if compact else B))
            scores.append(torch.where(active, s, torch.full_like(s, float("nan"))))
            if threshold_rule:                             # every candidate replaces the pair
                x_cur, y_cur = pick(active, z, x_cur), pick(active, y_new, y_cur)
                accepted += active.to(torch.int64)
                ref = torch.where(active, s, ref)
                active = active & (s < rs.threshold)
                continue
            better = s < ref if rs.prefer == "lower" else s > ref
            acc, rej = active & better, active & ~better
            x_cur, y_cur = pick(acc, z, x_cur), pick(acc, y_new, y_cur)
            accepted += acc.to(torch.int64)
            if not official:                               # official quirk 3: the score stays stale
                ref = torch.where(acc, s, ref)
            if i < rs.schedule.u_min:                        # early rejections are averaged in
                x_cur = pick(rej, 0.5 * (x_cur + z), x_cur)
                y_cur = pick(rej, 0.5 * (y_cur + y_new), y_cur)
                averaged += rej.to(torch.int64)
                if not official:                           # official quirk 3: the score stays stale
                    ref, n = self._rescore(ref, rej, y_cur, x_cur, known, t, compact)
                    if n:
                        count.add("discriminator", rej, n_calls=n)
            else:                                          # a late rejection stops that image
                active = active & ~rej
            redone = rej if (i < rs.schedule.u_min and not official) else torch.zeros_like(rej)
            rescored.append(torch.where(redone, ref, torch.full_like(ref, float("nan"))))
        # kept on the device: sample() moves the whole log to the CPU once, at the end
        return y_cur, x_cur, {"t": t, "r": r, "iterations": iters, "accepted": accepted, "averaged": averaged,
                              "scores": scores, "rescored": rescored}

    def _rescore(self, ref, mask, y, x, known, t, compact):
        """The reference score after an average: the averaged pair's score where ``mask``, else
        ``ref``; returns ``(ref, batched calls made)``."""
        if compact:
            idx = mask.nonzero().squeeze(1)
            if idx.numel() == 0:
                return ref, 0
            s = self._score(y.index_select(0, idx), x.index_select(0, idx), known.index_select(0, idx), t)
            return ref.index_copy(0, idx, s), self._score_calls(int(idx.numel()))
        if self.early_exit and not bool(mask.any()):
            return ref, 0
        return torch.where(mask, self._score(y, x, known, t), ref), self._score_calls(y.shape[0])


def sample_in_batches(sampler, images: torch.Tensor, known: torch.Tensor, batch_size: int,
                      generator=None, progress: bool = False) -> SampleResult:
    """Run ``sampler`` over many images, ``batch_size`` at a time, and concatenate the results
    (``image``, ``raw``, ``structure``, ``nfe``; ``calls`` and ``seconds`` are summed; the
    resampling logs are concatenated in batch order).

    ``generator``: one ``torch.Generator`` serving all batches (the result depends on
    ``batch_size`` but is deterministic for a given seed and batch size), or a function of the
    batch's first index returning that batch's generator (e.g. ``lambda i: make_generator(seed +
    i)``: a batch's result then depends only on its own images and index)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if known.shape[0] == 1 and images.shape[0] > 1:
        known = known.expand(images.shape[0], *known.shape[1:])
    parts = []
    for start in range(0, images.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        gen = generator(start) if callable(generator) else generator
        parts.append(sampler.sample(images[sl], known[sl], generator=gen, progress=progress))
    cat = lambda xs: torch.cat(xs) if xs and xs[0] is not None else None  # noqa: E731
    calls: Dict[str, int] = {}
    for p in parts:
        for k, v in p.calls.items():
            calls[k] = calls.get(k, 0) + v
    return SampleResult(image=cat([p.image for p in parts]), raw=cat([p.raw for p in parts]),
                        structure=cat([p.structure for p in parts]),
                        nfe={k: torch.cat([p.nfe[k] for p in parts]) for k in parts[0].nfe},
                        calls=calls, resampling=[e for p in parts for e in p.resampling],
                        seconds=sum(p.seconds for p in parts))


def _accepts_keyword(module, name: str) -> bool:
    """Whether ``module(...)`` takes the keyword ``name`` (directly or through ``**kwargs``)."""
    import inspect

    if module is None:
        return False
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError, AttributeError):
        return False
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in params)


# ----------------------------------------------------------------------------- loading
#: The method ``strdiff inpaint`` uses unless told otherwise, and whether the samplers re-impose
#: the known pixels after every reverse step by default: chosen on the validation split
#: (``benchmarks/quality.py select``; numbers in ``benchmarks/results/validation_cpu.json``).
DEFAULT_METHOD = "strdiff"
DEFAULT_REIMPOSE = True
DEFAULT_NOISE_SCALE = 0.0
#: ``strdiff-cheap`` (book Part VI, benchmarks/cost_quality.py): StrDiffusion without resampling
#: whose early stage is ``t >= floor(CHEAP_SWITCH_FRACTION * T)``, meant for a structure network
#: slimmed by the named variant ``CHEAP_STRUCTURE_VARIANT`` (models.config.MODEL_VARIANTS; shipped
#: at the cpu preset in weights/cpu-cheap): at most 1.5x the network FLOPs of IR-SDE at the same T.
CHEAP_SWITCH_FRACTION = 0.4
CHEAP_STRUCTURE_VARIANT = "small"


def load_networks(folder, networks, sde: MeanRevertingSDE, device="cpu") -> Tuple[dict, dict]:
    """Load ``networks`` from a checkpoint folder (``weights/<preset>``), checking that each was
    trained with ``sde`` (a :class:`~strdiff_edu.checkpoint.CheckpointError` names the mismatch).
    Returns ``(nets, configs)``."""
    from .checkpoint import CheckpointError, network_path
    from .train import load_network

    folder = Path(folder)
    nets, configs = {}, {}
    for name in networks:
        if not network_path(folder, name).exists():
            raise CheckpointError(f"{network_path(folder, name)} is missing: this method needs the "
                                  f"{name} network; train it (make weights) or pick another --checkpoint")
        nets[name], configs[name] = load_network(folder, name, device, expect={"sde": sde.config()})
    return nets, configs


def build_sampler(method: str, nets: dict, sde: MeanRevertingSDE, configs: Optional[dict] = None,
                  mode: str = "corrected", schedule: Optional[ResamplingSchedule] = None,
                  canny_sigma: Optional[float] = None, threshold: float = 0.0, prefer: str = "lower",
                  reimpose: Optional[bool] = None, noise_scale: Optional[float] = None):
    """A sampler for one of the diffusion methods of :data:`strdiff_edu.methods.METHODS` from loaded
    networks (see :func:`load_networks`).

    ``canny_sigma`` defaults to the checkpoint profile's ``canny_sigma``; ``schedule``
    to :func:`resampling_schedule` (T). ``reimpose``:
    re-impose the texture's known pixels after every reverse step (:func:`reimpose_known`;
    default :data:`DEFAULT_REIMPOSE`); ``noise_scale``: the factor on the reverse SDE's noise term
    (default :data:`DEFAULT_NOISE_SCALE`; 1 is the SDE)."""
    from .profiles import PRESETS

    reimpose = DEFAULT_REIMPOSE if reimpose is None else reimpose
    noise_scale = DEFAULT_NOISE_SCALE if noise_scale is None else float(noise_scale)
    if noise_scale < 0:
        raise ValueError(f"noise_scale must be >= 0, got {noise_scale}")
    if method not in SAMPLERS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(SAMPLERS)}")
    schedule = schedule or resampling_schedule(sde.T)
    if method.startswith("irsde"):
        return IRSDESampler(nets["irsde"], sde, stochastic=method != "irsde-ode",
                            repaint=RePaint(schedule) if method == "irsde-repaint" else None, reimpose=reimpose,
                            noise_scale=noise_scale)
    cfg = (configs or {}).get("texture", {})
    pairing = cfg.get("structure", {}).get("pairing", "gray2edge")
    if canny_sigma is None:
        canny_sigma = PRESETS[cfg["preset"]].canny_sigma if cfg.get("preset") in PRESETS else 2.0
    rule = {"strdiff-always": "always", "strdiff-resample": "official", "strdiff-paper-rule": "paper"}.get(method)
    resampling = Resampling(schedule, rule=rule, threshold=threshold, prefer=prefer) if rule else None
    return StrDiffusionSampler(nets["texture"], nets["structure"], sde, discriminator=nets.get("discriminator"),
                               resampling=resampling, mode=mode,
                               switch_fraction=CHEAP_SWITCH_FRACTION if method == "strdiff-cheap" else schedule.switch_fraction,
                               pairing=pairing, canny_sigma=canny_sigma, stochastic=method != "strdiff-ode",
                               reimpose=reimpose, noise_scale=noise_scale)
