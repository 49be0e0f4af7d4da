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
  resampling times run the adaptive resampling
  (:func:`strdiff_edu.resampling.adaptive_resample`, whose module documents the four rules, the
  official code's quirks that ``mode="official"`` reproduces, and the network-call counts);
* late stage, ``t < floor(0.4 T)``: the texture step guided by the current texture's own gray
  map (``late_guide="gray"``, rgb2gray weights, as in training) or its RGB mean
  (``late_guide="mean"``, the official code);
* merge with the known pixels.

**Deterministic variant.** ``stochastic=False`` replaces every reverse Euler–Maruyama step by the
probability-flow ODE step (:meth:`~strdiff_edu.sde.MeanRevertingSDE.reverse_ode_step`). It is not
deterministic given the start: the prior draws, the known-structure paste (a draw of the
structure's forward marginal at every early step and resampling level), the resampling's
re-noising and, with ``reimpose``, the known-pixel re-imposition remain random.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch

from .resampling import RePaint, Resampling, adaptive_resample, paper_rule_times, resampled_times, switch_step
from .sde import MeanRevertingSDE
from .structure import edge_map, grayscale, structure_pair

MODES = ("corrected", "official")
LATE_GUIDES = ("gray", "mean")


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

    def _reverse(self, v, noise, mean, t, generator):
        """One reverse step of the sampler's SDE: Euler–Maruyama with ``noise_scale`` on its noise
        term, or the probability-flow ODE step when not ``stochastic``."""
        if self.stochastic:
            return self.sde.reverse_step(v, noise, mean, t, generator=generator, noise_scale=self.noise_scale)
        return self.sde.reverse_ode_step(v, noise, mean, t)


# ----------------------------------------------------------------------------- IR-SDE
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
        return self._reverse(y, self._nets["irsde"](y, mu, t), mu, t, generator)

    @torch.inference_mode()
    def sample(self, image: torch.Tensor, known: torch.Tensor, generator: Optional[torch.Generator] = None,
               progress: bool = False, callback: Optional[Callable[[StepInfo], None]] = None,
               return_trajectory: bool = False) -> SampleResult:
        start = time.perf_counter()
        image, known = check_inputs(image, known)
        self._check_devices(image)
        sde, B = self.sde, image.shape[0]
        mu = image * known
        count = _Counter(B, image.device, ("irsde",))
        traj = _Trajectory(return_trajectory)
        times = dict(resampled_times(sde.T, self.repaint.schedule)) if self.repaint else {}
        y = sde.prior_sample(mu, generator)
        traj.add(sde.T, y)
        bar = _progress(sde.T, "IR-SDE" + (" + RePaint" if self.repaint else ""), progress)
        for t in range(sde.T, 0, -1):
            if self.repaint:
                y = known * sde.sample_marginal(mu, mu, t, generator) + (1 - known) * y
            y_prev = self._step(y, mu, t, generator)
            count.add("irsde")
            if t in times:
                r = times[t]
                for _ in range(self.repaint.n):
                    z = y_prev
                    for k in range(t, t + r):             # lift level t-1 -> t+r-1
                        z = sde.forward_step(z, mu, k, generator)
                    for k in range(t + r - 1, t - 1, -1):  # back down to level t-1
                        z = known * sde.sample_marginal(mu, mu, k, generator) + (1 - known) * z
                        z = self._step(z, mu, k, generator)
                        count.add("irsde")
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
        of the whole batch with masks; default: on a CPU yes, on CUDA no (see :func:`~strdiff_edu.resampling.adaptive_resample`).
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

    def structure_step(self, x, mu_x, t, generator):
        return self._reverse(x, self._nets["structure"](x, mu_x, t), mu_x, t, generator)

    def texture_step(self, y, mu, t, guide, generator):
        return self._reverse(y, self._nets["texture"](y, mu, t, guide), mu, t, generator)

    def renoise(self, x, mu_x, t, r, generator):
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

    def score(self, y, x, known, t) -> torch.Tensor:
        """Discriminator logits (B,), each image scored as if alone in its batch (the official
        batch-1 test): one batched call with a minibatch-stddev group of 1 when the discriminator
        takes ``stddev_group`` (ours does), else one call per image."""
        if self.mode == "official":
            y = y * known
        disc = self._nets["discriminator"]
        if self._disc_takes_group:
            return disc(y, x, t, stddev_group=1).reshape(-1).float()
        return torch.cat([disc(y[i:i + 1], x[i:i + 1], t).reshape(1).float() for i in range(y.shape[0])])

    def score_calls(self, batch: int) -> int:
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
                x_prev = self.structure_step(x_in, mu_x, t, generator)
                count.add("structure")
                y_prev = self.texture_step(y, mu, t, x_prev, generator)
                count.add("texture")
                if t in times:
                    y_prev, x_prev, entry = adaptive_resample(self, t, times[t], y, x_prev, y_prev, mu, mu_x, x0k,
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
                y = self.texture_step(y, mu, t, self._late_guide(y), generator)
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


