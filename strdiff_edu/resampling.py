"""Adaptive resampling (paper Eq. 17, Sec. 2.4.2) and RePaint: the schedules, the rules, the
resampling loop of :class:`~strdiff_edu.sampling.StrDiffusionSampler` and its call counts.

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
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Tuple

import torch

RULES = ("official", "paper", "scheduled-threshold", "always")
THRESHOLD_RULES = ("paper", "scheduled-threshold")


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


# ----------------------------------------------------------------------------- the loop
def adaptive_resample(sampler, t, r, y_t, x_cur, y_cur, mu, mu_x, x0k, x_known_official, known, count, generator):
    """Adaptive resampling of a :class:`~strdiff_edu.sampling.StrDiffusionSampler` at step t (jump
r; book: {ref}`eq-adaptive-resampling`); returns the chosen (y_{t-1}, x_{t-1}) and a log entry.

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
    sde, rs = sampler.sde, sampler.resampling
    official = sampler.mode == "official"
    B, dev = y_t.shape[0], y_t.device
    compact = sampler.compact if sampler.compact is not None else dev.type == "cpu"
    iters = torch.zeros(B, dtype=torch.int64, device=dev)
    accepted = torch.zeros(B, dtype=torch.int64, device=dev)
    averaged = torch.zeros(B, dtype=torch.int64, device=dev)
    scores: List[torch.Tensor] = []
    rescored: List[torch.Tensor] = []
    use_disc = rs.rule != "always"
    ref = None
    if use_disc:
        ref = sampler.score(y_cur, x_cur, known, t)
        count.add("discriminator", n_calls=sampler.score_calls(B))
        scores.append(ref)
    active = torch.ones(B, dtype=torch.bool, device=dev)
    threshold_rule = rs.rule in THRESHOLD_RULES
    if threshold_rule:
        active = ref < rs.threshold
    n_iter = rs.schedule.u_min if rs.rule == "always" else rs.schedule.u_max - 1

    def pick(mask, a, b):   # per-image choice between two (B, ...) tensors
        return torch.where(mask.view(-1, *([1] * (a.ndim - 1))), a, b)

    for i in range(1, n_iter + 1):
        if (sampler.early_exit or compact) and not bool(active.any()):
            break
        idx = active.nonzero().squeeze(1) if compact else None
        rows = (lambda v: v.index_select(0, idx)) if compact else (lambda v: v)  # noqa: E731
        kn, mx = rows(known), rows(mu_x)
        z = sampler.renoise(rows(x_cur), mx, t, r, generator)   # re-noise: level t-1 -> t+r-1
        for k in range(t + r - 1, t - 1, -1):           # denoise: back to level t-1
            paste = rows(x_known_official) if official else sde.sample_marginal(rows(x0k), mx, k, generator)
            z = kn * paste + (1 - kn) * z
            z = sampler.structure_step(z, mx, k, generator)
            count.add("structure", active)
        y_new = sampler.texture_step(rows(y_t), rows(mu), t, z, generator)
        s = sampler.score(y_new, z, kn, t) if use_disc else None
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
        count.add("discriminator", active, n_calls=sampler.score_calls(int(idx.numel()) if compact else B))
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
                ref, n = _rescore(sampler, ref, rej, y_cur, x_cur, known, t, compact)
                if n:
                    count.add("discriminator", rej, n_calls=n)
        else:                                          # a late rejection stops that image
            active = active & ~rej
        redone = rej if (i < rs.schedule.u_min and not official) else torch.zeros_like(rej)
        rescored.append(torch.where(redone, ref, torch.full_like(ref, float("nan"))))
    # kept on the device: sample() moves the whole log to the CPU once, at the end
    return y_cur, x_cur, {"t": t, "r": r, "iterations": iters, "accepted": accepted, "averaged": averaged,
                          "scores": scores, "rescored": rescored}

def _rescore(sampler, ref, mask, y, x, known, t, compact):
    """The reference score after an average: the averaged pair's score where ``mask``, else
    ``ref``; returns ``(ref, batched calls made)``."""
    if compact:
        idx = mask.nonzero().squeeze(1)
        if idx.numel() == 0:
            return ref, 0
        s = sampler.score(y.index_select(0, idx), x.index_select(0, idx), known.index_select(0, idx), t)
        return ref.index_copy(0, idx, s), sampler.score_calls(int(idx.numel()))
    if sampler.early_exit and not bool(mask.any()):
        return ref, 0
    return torch.where(mask, sampler.score(y, x, known, t), ref), sampler.score_calls(y.shape[0])
