"""One training loop for StrDiffusion's four networks (``strdiff train --stage ...``).

Stages (the official order is structure, texture, discriminator; they are independent):

* ``structure``      — structure noise network on the gray -> masked-edge SDE, target Eq. 10;
* ``texture``        — SPADE-guided texture network, target Eq. 4 (or Eq. 11), guided by the
  oracle structure x*_{t-1} (official) or by the trained structure network's step (option);
* ``texture-irsde``  — the IR-SDE baseline: the same U-Net without structure, target Eq. 4;
* ``discriminator``  — time-conditioned discriminator on analytic ideal states (no network).

What the loop guarantees: every batch, mask, time step and noise draw is a pure function of
(seed, step, rank), so ``--resume`` continues *exactly* where an interrupted run stopped;
checkpoints are written atomically every ``checkpoint_every`` steps and on exit / SIGTERM /
Ctrl-C; the EMA weights are the ones exported and used for samples; the metrics go to
``metrics.csv`` and ``loss.png``; ``torchrun`` gives DDP (NCCL on GPUs, gloo on CPUs).
"""
from __future__ import annotations

import collections
import copy
import csv
import dataclasses
import functools
import json
import os
import signal
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn

from . import checkpoint as ckpt_io
from .errors import Interrupted, TrainingDiverged, UsageError
from .losses import clean_matching_loss, discriminator_loss, ideal_target, reverse_matching_loss
from .profiles import Profile, get_profile
from .models.config import PREDICTIONS
from .sde import MeanRevertingSDE
from .weights import load_network

STAGES = ("structure", "texture", "texture-irsde", "discriminator")
NETWORK_OF_STAGE = {"structure": "structure", "texture": "texture",
                    "texture-irsde": "irsde", "discriminator": "discriminator"}


@dataclass
class TrainConfig:
    """Every knob of a training run; each field is a ``strdiff train --<field>`` flag."""

    stage: str = "structure"
    preset: Optional[str] = None          # None: $STRDIFF_PROFILE
    data: str = "embedded"                # "embedded" or a folder of images
    out: str = ""                         # run folder; default runs/<stage>-<preset>
    steps: int = 200
    batch_size: int = 0                   # 0: the profile's batch size
    lr: float = 1e-4
    lr_milestones: Tuple[float, ...] = (0.25, 0.5, 0.75)   # fractions of `steps` (official: 2M/4M/6M of 8M)
    lr_gamma: float = 0.5
    ema_decay: float = 0.995
    ema_every: int = 10
    grad_clip: float = 0.0                # 0: off (official: off)
    hole_weight: float = 10.0             # official: the hole counts 10x in the L1 loss
    colour_weight: float = 0.0            # clean-state predictions: weight of the hole's mean-colour L1 (0: off)
    target: str = "eq4"                   # "eq4" (official) or "eq11" (Part II)
    prediction: str = "noise"             # what the U-Net predicts: models.config.PREDICTIONS ("noise" official)
    crops_per_scene: int = 0              # embedded data: seeded crops per training scene (0: the profile's)
    structure_weight: float = -1.0        # omega of Eq. 11; < 0: the derived default
    structure_source: str = "oracle"      # texture / discriminator: "oracle" x*_{t-1} (official) or "network"
    structure_checkpoint: str = ""        # folder or file of the trained structure network
    t_min: int = 2                        # official: t ~ U{2..T}; 1 also trains the last step
    triplet_weight: float = 1.0           # discriminator: the paper's balance parameter (official 1)
    pairing: str = "gray2edge"
    model_variant: str = ""               # a slimmer U-Net, models.config.MODEL_VARIANTS ("small", "micro")
    edge_source: str = "known"            # terminal edges from known pixels (default) or "full" (official)
    bins: str = "paper"                   # mask-ratio bins drawn in training
    seed: int = 0
    checkpoint_every: int = 100
    snapshot_every: int = 0               # also keep <out>/step_<N>.pt every N steps (0: off), for curves
    sample_every: int = 0                 # 0: only at the end
    log_every: int = 10
    bf16: bool = True                     # autocast to bfloat16 on CUDA (ignored on CPU)
    device: str = ""                      # "": pick CUDA when present
    progress: bool = True
    init_from: str = ""                   # start from these trained weights (file or folder; same config)

    def resolved_out(self, prof: Profile) -> Path:
        return Path(self.out or f"runs/{self.stage}-{prof.name}")


# ----------------------------------------------------------------------------- networks
def build_network(network: str, prof: Profile, model_overrides: Optional[Dict[str, Any]] = None,
                  variant: str = ""):
    """(module, config dict) for ``network`` in the profile's preset (slimmed by ``variant``)."""
    from . import models

    cfg = models.model_config(prof.name, network, variant)
    if model_overrides:
        cfg = dataclasses.replace(cfg, **model_overrides)
    return models.build_network(network, cfg, prof.sde.build()), cfg.to_dict()


def checkpoint_config(network: str, model_cfg: Dict[str, Any], sde: MeanRevertingSDE, prof: Profile,
                      cfg: TrainConfig) -> Dict[str, Any]:
    """What a checkpoint must agree with to be loaded: the SDE, the widths, image size, structure."""
    return {
        "network": network,
        "preset": prof.name,
        "image_size": prof.image_size,
        "sde": sde.config(),
        "model": model_cfg,
        "structure": {"pairing": cfg.pairing, "edge_source": cfg.edge_source},
    }


# ----------------------------------------------------------------------------- data
class BatchSource:
    """Deterministic batches: images, masks and structure pairs as pure functions of
    (seed, step, rank). Augmentation as the official loaders: flips and 90-degree transposes."""

    def __init__(self, prof: Profile, cfg: TrainConfig):
        from . import data, masks

        self.prof, self.cfg = prof, cfg
        size = prof.image_size
        if cfg.data == "embedded":
            self.images = _embedded_train_set(size, cfg.crops_per_scene or prof.train_crops)
        else:
            self.images = data.ImageFolder(cfg.data, size=size)
        if len(self.images) == 0:
            raise UsageError(f"--data {cfg.data}: no training images found; pass a folder of images or 'embedded'")
        self.bins = masks.parse_bins(cfg.bins)
        self._masks = masks

    def batch(self, step: int, batch_size: int, rank: int = 0) -> Dict[str, torch.Tensor]:
        from .structure import structure_pair

        rng = np.random.default_rng([self.cfg.seed, step, rank, 7])
        idx = rng.integers(0, len(self.images), batch_size)
        imgs, known = [], []
        for i in idx:
            img = self.images[int(i)]
            if rng.random() < 0.5:
                img = img.flip(-1)
            if rng.random() < 0.5:
                img = img.flip(-2)
            if rng.random() < 0.5:
                img = img.transpose(-1, -2)
            imgs.append(img)
            b = self.bins[int(rng.integers(0, len(self.bins)))]
            hole = self._masks.free_form_mask(self.prof.image_size, b, rng)
            known.append(self._masks.to_known(hole))
        image = torch.stack(imgs).float()
        known = torch.stack(known).float().reshape(batch_size, 1, *image.shape[-2:])
        pair = structure_pair(image, known, self.cfg.pairing, sigma=self.prof.canny_sigma_train,
                              edge_source=self.cfg.edge_source)
        return {"image": image, "known": known, "x0": pair.initial, "mu_x": pair.terminal_mean}


@functools.lru_cache(maxsize=4)
def _embedded_train_set(size: int, crops_per_scene: int):
    """The embedded training crops, rendered once per process (a few seconds)."""
    from . import data

    return data.EmbeddedDataset("train", size=size, crops_per_scene=crops_per_scene)


def _step_generator(seed: int, step: int, rank: int, device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(np.random.default_rng([seed, step, rank, 11]).integers(0, 2 ** 62)))
    return g


# ----------------------------------------------------------------------------- one step per stage
#: The stages whose network is fed the structure x_{t-1} (the oracle Eq. 10 state or, with
#: ``structure_source="network"``, the trained structure network's reverse step).
STRUCTURE_GUIDED_STAGES = ("texture", "discriminator")


class StageLoss:
    """Computes one stage's loss on a batch (shared by training, the book and the tests)."""

    def __init__(self, stage: str, sde: MeanRevertingSDE, cfg: TrainConfig,
                 structure_net: Optional[nn.Module] = None):
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
        if not 1 <= cfg.t_min <= sde.T:
            raise ValueError(f"t_min must lie in 1..T={sde.T}, got {cfg.t_min}")
        if cfg.prediction != "noise" and cfg.target != "eq4" and stage == "texture":
            raise ValueError(f"--prediction {cfg.prediction} trains on the clean image (Eq. 4's x0); "
                             "--target eq11 needs --prediction noise")
        if cfg.colour_weight and cfg.prediction == "noise":
            raise ValueError("--colour-weight acts on the predicted clean state; use it with --prediction "
                             "x0, x0-harmonic or x0-fill")
        if cfg.colour_weight < 0:
            raise ValueError(f"--colour-weight must be >= 0, got {cfg.colour_weight}")
        if cfg.structure_source == "network" and stage not in STRUCTURE_GUIDED_STAGES:
            raise ValueError(f"--structure-source network applies to the {' and '.join(STRUCTURE_GUIDED_STAGES)} "
                             f"stages (they are fed a structure); the {stage} stage is not")
        if cfg.structure_source == "network" and structure_net is None:
            raise ValueError("structure_source='network' needs the trained structure network "
                             "(--structure-checkpoint weights/<preset>)")
        self.stage, self.sde, self.cfg, self.structure_net = stage, sde, cfg, structure_net

    def sample_t(self, batch_size: int, gen: torch.Generator, device) -> torch.Tensor:
        return torch.randint(self.cfg.t_min, self.sde.T + 1, (batch_size,), generator=gen, device=device)

    def structure_guide(self, b, t, gen):
        """(x_t, x_{t-1} fed to the texture network): the oracle Eq. 10 state or the network's step."""
        sde = self.sde
        x_t = sde.sample_marginal(b["x0"], b["mu_x"], t, generator=gen)
        if self.cfg.structure_source == "network":
            with torch.no_grad():
                noise = self.structure_net(x_t, b["mu_x"], t)
                x_prev = sde.reverse_step(x_t, noise.float(), b["mu_x"], t, generator=gen)
        else:
            x_prev = sde.ideal_reverse_state(x_t, b["x0"], b["mu_x"], t)
        return x_t, x_prev

    def __call__(self, model: nn.Module, b: Dict[str, torch.Tensor], gen: torch.Generator):
        sde, cfg = self.sde, self.cfg
        image, known = b["image"], b["known"]
        t = self.sample_t(image.shape[0], gen, image.device)
        clean = cfg.prediction != "noise"   # Eq. 5 with gamma_t = 1 / (x0 coefficient): L1 on x0
        if self.stage == "structure":
            x_t = sde.sample_marginal(b["x0"], b["mu_x"], t, generator=gen)
            if clean:
                loss = clean_matching_loss(model(x_t, b["mu_x"], t, clean=True), b["x0"], known, cfg.hole_weight,
                                           cfg.colour_weight)
                return loss, {"loss": loss.detach()}
            noise = model(x_t, b["mu_x"], t)
            ideal = sde.ideal_reverse_state(x_t, b["x0"], b["mu_x"], t)      # Eq. 10
            loss = reverse_matching_loss(sde, noise, x_t, b["mu_x"], t, ideal, known, cfg.hole_weight)
            return loss, {"loss": loss.detach()}
        mu = image * known
        y_t = sde.sample_marginal(image, mu, t, generator=gen)
        if self.stage == "texture-irsde":
            if clean:
                loss = clean_matching_loss(model(y_t, mu, t, clean=True), image, known, cfg.hole_weight,
                                           cfg.colour_weight)
                return loss, {"loss": loss.detach()}
            noise = model(y_t, mu, t)
            ideal = sde.ideal_reverse_state(y_t, image, mu, t)
            loss = reverse_matching_loss(sde, noise, y_t, mu, t, ideal, known, cfg.hole_weight)
            return loss, {"loss": loss.detach()}
        x_t, x_prev = self.structure_guide(b, t, gen)
        if self.stage == "texture" and clean:
            loss = clean_matching_loss(model(y_t, mu, t, x_prev, clean=True), image, known, cfg.hole_weight,
                                       cfg.colour_weight)
            return loss, {"loss": loss.detach()}
        if self.stage == "texture":
            noise = model(y_t, mu, t, x_prev)
            weight = cfg.structure_weight if cfg.structure_weight >= 0 else None
            kw = {} if weight is None else {"structure_weight": weight}
            ideal = ideal_target(sde, y_t, image, mu, t, cfg.target, x_prev, b["mu_x"], **kw)
            loss = reverse_matching_loss(sde, noise, y_t, mu, t, ideal, known, cfg.hole_weight)
            return loss, {"loss": loss.detach()}
        # discriminator: real = (y*_{t-1}, x*_{t-1}), fake = (y_t, x*_{t-1}), anchor = known part denoised
        y_prev = sde.ideal_reverse_state(y_t, image, mu, t)
        anchor = known * y_prev + (1 - known) * y_t
        d_real, d_fake, d_anchor = (model(y, x_prev, t) for y in (y_prev, y_t, anchor))
        loss, parts = discriminator_loss(d_real, d_fake, d_anchor, triplet_weight=cfg.triplet_weight)
        return loss, {"loss": loss.detach(), **parts,
                      "d_real": d_real.detach().float().mean(), "d_fake": d_fake.detach().float().mean()}


# ----------------------------------------------------------------------------- EMA
@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, for parameters; buffers are copied."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


# ----------------------------------------------------------------------------- the loop
class _Stop:
    """Turns SIGTERM into a graceful stop (checkpoint, then exit) instead of a lost run."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not in the main thread (e.g. a notebook worker): no handler
            self._old = None
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
        return False


#: TrainConfig fields a ``--resume`` may change: how long and how often, not what is trained.
RESUME_MAY_CHANGE = ("steps", "lr_milestones", "checkpoint_every", "snapshot_every", "sample_every", "log_every",
                     "progress", "device", "out", "init_from", "bf16", "preset")
SEED_MAX = 2 ** 32 - 1


def validate_config(cfg: TrainConfig) -> Profile:
    """Refuse settings that cannot work, naming the flag and its valid range, before any work
    (set-up renders data and builds networks, which takes seconds to minutes). Returns the profile."""
    import math

    def bad(flag, rng, value):
        raise UsageError(f"{flag} must be {rng}, got {value}")

    prof = get_profile(cfg.preset)
    if cfg.stage not in STAGES:
        raise UsageError(f"--stage {cfg.stage!r}: choose one of {', '.join(STAGES)}")
    for name, lo in (("steps", 0), ("batch_size", 0), ("crops_per_scene", 0), ("snapshot_every", 0),
                     ("sample_every", 0), ("checkpoint_every", 1), ("ema_every", 1), ("log_every", 1)):
        if getattr(cfg, name) < lo:
            bad("--" + name.replace("_", "-"), f">= {lo}" + (" (0: the profile's)" if name in
                ("batch_size", "crops_per_scene") else " (0: off)" if lo == 0 and name != "steps" else ""),
                getattr(cfg, name))
    if not 0 <= cfg.seed <= SEED_MAX:
        bad("--seed", f"in 0..{SEED_MAX}", cfg.seed)
    for name, value in (("lr", cfg.lr), ("lr_gamma", cfg.lr_gamma), ("ema_decay", cfg.ema_decay),
                        ("grad_clip", cfg.grad_clip), ("hole_weight", cfg.hole_weight),
                        ("colour_weight", cfg.colour_weight), ("triplet_weight", cfg.triplet_weight),
                        ("structure_weight", cfg.structure_weight)):
        if not math.isfinite(value):
            bad("--" + name.replace("_", "-"), "a finite number", value)
    if not cfg.lr > 0:
        bad("--lr", "> 0", cfg.lr)
    if not cfg.lr_gamma > 0:
        bad("--lr-gamma", "> 0", cfg.lr_gamma)
    if not 0 < cfg.ema_decay < 1:
        bad("--ema-decay", "in (0, 1)", cfg.ema_decay)
    if cfg.grad_clip < 0:
        bad("--grad-clip", ">= 0 (0: off)", cfg.grad_clip)
    if not cfg.hole_weight > 0:
        bad("--hole-weight", "> 0", cfg.hole_weight)
    if cfg.colour_weight < 0:
        bad("--colour-weight", ">= 0", cfg.colour_weight)
    if cfg.triplet_weight < 0:
        bad("--triplet-weight", ">= 0", cfg.triplet_weight)
    if not all(math.isfinite(f) and f > 0 for f in cfg.lr_milestones):
        bad("--lr-milestones", "fractions of --steps above 0 (>= 1: constant)", ",".join(map(str, cfg.lr_milestones)))
    if not 1 <= cfg.t_min <= prof.sde.T:
        bad("--t-min", f"in 1..T={prof.sde.T}", cfg.t_min)
    if cfg.data != "embedded":
        data = Path(cfg.data)
        if not data.is_dir():
            raise UsageError(f"--data {cfg.data}: " + ("is a file; pass a folder of images" if data.exists()
                             else "no such folder; pass a folder of images or 'embedded'"))
        from .images import IMAGE_EXTENSIONS, list_image_files

        try:
            list_image_files(data)
        except FileNotFoundError:
            raise UsageError(f"--data {cfg.data}: no images ({', '.join(IMAGE_EXTENSIONS)}) in it or its "
                             "sub-folders; pass a folder of images or 'embedded'") from None
    try:
        from .masks import parse_bins

        parse_bins(cfg.bins)
    except ValueError as exc:
        raise UsageError(f"--bins: {exc}") from None
    for flag, value in (("--structure-checkpoint", cfg.structure_checkpoint), ("--init-from", cfg.init_from)):
        if value and not Path(value).exists():
            raise UsageError(f"{flag} {value}: no such file or folder; pass a checkpoint file or a weights folder")
    if cfg.structure_source == "network" and cfg.stage not in STRUCTURE_GUIDED_STAGES:
        raise UsageError(f"--structure-source network applies to the {' and '.join(STRUCTURE_GUIDED_STAGES)} "
                         f"stages (they are fed a structure); the {cfg.stage} stage is not")
    if cfg.structure_source == "network" and not cfg.structure_checkpoint:
        raise UsageError("--structure-source network needs --structure-checkpoint (a weights folder or .pt file)")
    _check_out(cfg.resolved_out(prof))
    return prof


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is an existing file, not a folder; pass a folder path")
    base = Path(out)
    while not base.exists() and base != base.parent:
        base = base.parent
    base = base if base.exists() else Path(".")
    if not base.is_dir():
        raise UsageError(f"--out {out} lies under {base}, which is a file; pass a folder path")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: {base} is not writable; pick a folder you can write to")


LOCK_NAME = "train.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # alive, owned by another user
        return True
    return True


class RunLock:
    """``<out>/train.lock``: one training per output folder. Holds the owner's pid and host; a
    lock whose process is gone (same host) is stale and taken over with a note."""

    def __init__(self, out: Path):
        self.path = Path(out) / LOCK_NAME
        self.held = False

    def acquire(self) -> "RunLock":
        import socket

        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    owner = json.loads(self.path.read_text() or "{}")
                except (OSError, ValueError):
                    owner = {}
                pid, host = owner.get("pid"), owner.get("host")
                if isinstance(pid, int) and (host != me["host"] or _pid_alive(pid)):
                    raise UsageError(f"--out {self.path.parent} is in use by another training (pid {pid} on "
                                     f"{host}, since {owner.get('started', '?')}); wait for it, stop it, or "
                                     f"pass another --out (a lock left by a crash on another machine: delete "
                                     f"{self.path})") from None
                print(f"removing a stale lock {self.path} (pid {pid} has ended)")
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            self.held = True
            return self
        raise UsageError(f"could not take the lock {self.path}; delete it if no training is running")

    def release(self) -> None:
        if self.held:
            try:
                owner = json.loads(self.path.read_text() or "{}")
                if owner.get("pid") == os.getpid():
                    self.path.unlink()
            except (OSError, ValueError):
                pass
            self.held = False


def clean_temporary_files(out: Path) -> list:
    """Remove what interrupted atomic writes left in a run folder (``*.tmp``); returns the names."""
    removed = []
    for p in list(Path(out).glob("*.tmp")) + list((Path(out) / "samples").glob("*.tmp")):
        p.unlink(missing_ok=True)
        removed.append(p.name)
    return removed


def resume_mismatches(saved: Dict[str, Any], cfg: TrainConfig, prof: Profile) -> list:
    """The settings a ``--resume`` changes that would make it another run (seed, data, loss ...)."""
    def norm(d):
        d = dict(d)
        d["batch_size"] = d.get("batch_size") or prof.batch_size
        d["crops_per_scene"] = d.get("crops_per_scene") or prof.train_crops
        return d

    now = norm({k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()})
    before = norm(saved)
    out = []
    for k, v in now.items():
        if k in RESUME_MAY_CHANGE or k not in before:
            continue
        if before[k] != v:
            out.append(f"--{k.replace('_', '-')} {before[k]!r} in the run, {v!r} now")
    return out


def _dist_info():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return world, rank


def train(cfg: TrainConfig, resume: bool = False, model_overrides: Optional[Dict[str, Any]] = None,
          batch_source: Optional[BatchSource] = None) -> Dict[str, Any]:
    """Run (or resume) one training stage; returns a summary dict (also written to summary.json).

    Settings are checked first (:func:`validate_config`); ``<out>/train.lock`` keeps a second
    training out of the same folder (:class:`RunLock`); leftovers of interrupted writes are
    removed. Ctrl-C saves and raises :class:`~strdiff_edu.errors.Interrupted`; SIGTERM saves and
    returns with ``summary["terminated"]`` set (the command then exits 143)."""
    prof = validate_config(cfg)
    world, rank = _dist_info()
    out = cfg.resolved_out(prof)
    lock = RunLock(out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    try:
        if rank == 0:
            clean_temporary_files(out)
        return _train(cfg, prof, world, rank, resume, model_overrides, batch_source)
    finally:
        lock.release()


def _train(cfg: TrainConfig, prof: Profile, world: int, rank: int, resume: bool,
           model_overrides: Optional[Dict[str, Any]], batch_source: Optional[BatchSource]) -> Dict[str, Any]:
    from .device import pick_device

    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    device = pick_device(cfg.device or None, verbose=rank == 0)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    out = cfg.resolved_out(prof)
    is_main = rank == 0
    sde = prof.sde.build()
    network = NETWORK_OF_STAGE[cfg.stage]
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    if network != "discriminator":
        model_overrides = {"prediction": cfg.prediction, **(model_overrides or {})}
    model, model_cfg = build_network(network, prof, model_overrides, cfg.model_variant)
    model.to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    betas = (0.5, 0.99) if cfg.stage == "discriminator" else (0.9, 0.99)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=betas)
    # fractions >= 1 (e.g. --lr-milestones 1.0) mean a constant learning rate
    milestones = [] if cfg.stage == "discriminator" else sorted({max(1, int(f * cfg.steps))
                                                                 for f in cfg.lr_milestones if f < 1})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=cfg.lr_gamma)
    ck_config = checkpoint_config(network, model_cfg, sde, prof, cfg)
    train_dict = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}

    structure_net = None
    if cfg.stage in STRUCTURE_GUIDED_STAGES and cfg.structure_source == "network":
        if not cfg.structure_checkpoint:
            raise ValueError("--structure-source network needs --structure-checkpoint")
        structure_net, _ = load_network(cfg.structure_checkpoint, "structure", device,
                                        expect={"sde": sde.config(), "image_size": prof.image_size})
    loss_fn = StageLoss(cfg.stage, sde, cfg, structure_net)

    start, history, wall_before = 0, [], 0.0
    last = out / "last.pt"
    if resume and last.exists():
        ck = ckpt_io.load_checkpoint(last, map_location=device, expect=ck_config, network=network)
        changed = resume_mismatches(ck.get("train", {}), cfg, prof)
        if changed:
            raise UsageError(f"--resume {last}: this would be another run: " + "; ".join(changed) +
                             ". Resume with the run's settings, or train into a new --out (--init-from "
                             f"{last} starts one from these weights)")
        ckpt_io.check_finite(ck["model"], last, "model")
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        # the schedule follows this run's --steps and --lr-milestones (a run extended with a larger
        # --steps keeps its milestones where the new config puts them)
        sched.milestones = collections.Counter(milestones)
        start, history = int(ck["step"]), list(ck.get("history", []))
        wall_before = float(ck.get("wall_s", 0.0))
        if is_main:
            print(f"resuming {cfg.stage} from step {start} ({last})")
    elif resume and is_main and not cfg.init_from:
        print(f"no checkpoint at {last}; starting from scratch")
    if cfg.init_from and start == 0:
        # warm start: the given weights become model and EMA; the step count continues from theirs,
        # so the batches are the ones the original run would have drawn next. Fresh optimiser.
        init_path = Path(cfg.init_from)
        if init_path.is_dir():
            init_path = ckpt_io.network_path(init_path, network)
        ck = ckpt_io.load_checkpoint(init_path, map_location=device, expect=ck_config, network=network)
        state = ck.get("ema") if ck.get("ema") is not None else ck["model"]
        model.load_state_dict(state)
        ema.load_state_dict(state)
        start = int(ck.get("step", 0))
        if start >= cfg.steps:
            raise ValueError(f"--init-from {cfg.init_from} holds {start} steps already; give --steps above {start}")
        if is_main:
            print(f"starting {cfg.stage} from the weights in {init_path} (step {start})")

    ddp_model = model
    if world > 1:
        ddp_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    source = batch_source or BatchSource(prof, cfg)
    batch_size = cfg.batch_size or prof.batch_size
    use_bf16 = cfg.bf16 and device.type == "cuda"

    def save(step, path=None):
        if not is_main:
            return
        ckpt_io.save_checkpoint(path or last, {
            "network": network, "config": ck_config, "train": train_dict, "step": step,
            "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "history": history,
            "wall_s": wall_before + time.perf_counter() - t0,   # summed over resumed segments
        })

    if is_main:
        out.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=f"train {cfg.stage}",
               disable=not (cfg.progress and is_main), mininterval=1.0)
    t0 = time.perf_counter()  # excludes the set-up above (data rendering, model building)
    done = start  # steps completed (and reflected in model / optimiser state)
    with _Stop() as stop:
        try:
            for step in bar:
                b = {k: v.to(device) for k, v in source.batch(step, batch_size, rank).items()}
                gen = _step_generator(cfg.seed, step, rank, device)
                ddp_model.train()
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    loss, metrics = loss_fn(ddp_model, b, gen)
                if not torch.isfinite(loss):
                    saved = f"the last checkpoint is {last}" if last.exists() else "no checkpoint was written"
                    raise TrainingDiverged(f"the loss became {loss.item()} at step {step + 1}; lower --lr or "
                                           f"set --grad-clip ({saved})")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                sched.step()
                done = step + 1
                if done % cfg.ema_every == 0:
                    ema_update(ema, model, ema_decay_at(cfg, done))
                row = {"step": done, "lr": sched.get_last_lr()[0], **{k: float(v) for k, v in metrics.items()}}
                history.append(row)
                if is_main and (done % cfg.log_every == 0 or done == cfg.steps):
                    bar.set_postfix(loss=f"{row['loss']:.4f}")
                if done % cfg.checkpoint_every == 0:
                    save(done)
                if cfg.snapshot_every and done % cfg.snapshot_every == 0:
                    save(done, out / f"step_{done:06d}.pt")
                if cfg.sample_every and done % cfg.sample_every == 0 and is_main:
                    write_samples(out / "samples" / f"step_{done:06d}.png", cfg.stage, ema, sde, source, device)
                if stop.requested:   # SIGTERM: save (below) and return with summary["terminated"]
                    break
        except KeyboardInterrupt:
            save(done)
            raise Interrupted(f"interrupted at step {done} of {cfg.steps}; checkpoint at {last}; continue with "
                              "--resume") from None
        finally:
            bar.close()
    step = done
    save(step)
    wall = wall_before + time.perf_counter() - t0
    summary = {"stage": cfg.stage, "preset": prof.name, "steps": step, "wall_s": round(wall, 2),
               "final_loss": float(np.mean([r["loss"] for r in history[-10:]])) if history else None,
               "device": str(device), "world_size": world, "out": str(out)}
    if stop.requested and step < cfg.steps:
        summary["terminated"] = True
    if world > 1:
        summary["ddp_consistent"] = _ranks_agree(model)
    if is_main:
        write_metrics(out, history)
        if step == cfg.steps and cfg.stage != "discriminator":
            write_samples(out / "samples" / "final.png", cfg.stage, ema, sde, source, device)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if world > 1:
        torch.distributed.barrier()
    return summary


def ema_decay_at(cfg: TrainConfig, step: int) -> float:
    """EMA decay with a warm-up: min(decay, (1 + n) / (10 + n)) after n updates, so that short
    runs (the book's tiny trainings) do not keep mostly the initial weights."""
    n = step // cfg.ema_every
    return min(cfg.ema_decay, (1 + n) / (10 + n))


def _ranks_agree(model: nn.Module) -> bool:
    flat = torch.cat([p.detach().flatten().float() for p in model.parameters()])
    digest = torch.stack([flat.sum(), (flat * flat).sum()])
    gathered = [torch.zeros_like(digest) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(gathered, digest)
    return all(torch.allclose(g, gathered[0]) for g in gathered)


# ----------------------------------------------------------------------------- outputs
def write_metrics(out: Path, history) -> None:
    """metrics.csv (one row per step) and loss.png."""
    if not history:
        return
    keys = sorted({k for r in history for k in r}, key=lambda k: (k != "step", k))
    tmp = out / "metrics.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    os.replace(tmp, out / "metrics.csv")
    # A pyplot-free Figure: saving it touches no global backend (notebooks keep inline plots).
    from matplotlib.figure import Figure

    steps = [r["step"] for r in history]
    loss = np.array([r["loss"] for r in history])
    k = max(1, len(loss) // 50)
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
    fig = Figure(figsize=(5, 3))
    ax = fig.subplots()
    ax.plot(steps, loss, alpha=0.3, label="loss")
    ax.plot(steps[k - 1:], smooth, label=f"mean of {k}")
    ax.set(xlabel="step", ylabel="loss", yscale="log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=100)


@torch.no_grad()
def write_samples(path: Path, stage: str, model: nn.Module, sde: MeanRevertingSDE, source: BatchSource,
                  device) -> None:
    """A grid: rows = a few t; columns = x_t, the network's x_{t-1}, the ideal x*_{t-1}."""
    if stage == "discriminator":
        return
    from .viz import save_grid

    b = {k: v[:1].to(device) for k, v in source.batch(10 ** 9, 1).items()}
    gen = _step_generator(0, 10 ** 9, 0, device)
    rows = []
    for frac in (0.25, 0.5, 0.75, 1.0):
        t = torch.tensor([max(1, int(frac * sde.T))], device=device)
        if stage == "structure":
            x0, mu = b["x0"], b["mu_x"]
            x_t = sde.sample_marginal(x0, mu, t, generator=gen)
            noise = model(x_t, mu, t)
        else:
            x0, mu = b["image"], b["image"] * b["known"]
            x_t = sde.sample_marginal(x0, mu, t, generator=gen)
            if stage == "texture":
                xs_t = sde.sample_marginal(b["x0"], b["mu_x"], t, generator=gen)
                noise = model(x_t, mu, t, sde.ideal_reverse_state(xs_t, b["x0"], b["mu_x"], t))
            else:
                noise = model(x_t, mu, t)
        pred = sde.reverse_step(x_t, noise.float(), mu, t, stochastic=False)
        rows.append([x_t[0], pred[0], sde.ideal_reverse_state(x_t, x0, mu, t)[0]])
    save_grid(rows, path)


def export_weights(run_dir, folder, network: str, extra: Optional[Dict[str, Any]] = None) -> Path:
    """Copy a run's EMA weights (and config) into a checkpoint folder and update manifest.json."""
    run_dir, folder = Path(run_dir), Path(folder)
    ck = ckpt_io.load_checkpoint(run_dir / "last.pt", network=network)
    path = ckpt_io.network_path(folder, network)
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
    ckpt_io.save_checkpoint(path, {"network": network, "config": ck["config"], "model": ck["ema"],
                                   "step": ck["step"], "train": ck.get("train", {})})
    if (run_dir / "metrics.csv").exists():  # the training curve travels with the weights
        ckpt_io.atomic_write_bytes(folder / f"{network}.metrics.csv", (run_dir / "metrics.csv").read_bytes())
    manifest_path = folder / "manifest.json"
    entries = {}
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        entries = {k: {kk: vv for kk, vv in v.items() if kk not in ("file", "sha256")} for k, v in old.items()
                   if ckpt_io.network_path(folder, k).exists()}
    import platform

    trained_on = {"device": summary.get("device"), "torch": torch.__version__,
                  "threads": torch.get_num_threads(), "machine": platform.machine(),
                  "processor": platform.processor() or platform.machine()}
    entries[network] = {"config": ck["config"], "steps": ck["step"], "wall_s": summary.get("wall_s"),
                        "final_loss": summary.get("final_loss"), "trained_on": trained_on, **(extra or {})}
    ckpt_io.write_manifest(folder, entries)
    return path


# ----------------------------------------------------------------------------- CLI glue
def add_train_args(parser) -> None:
    """Add one flag per TrainConfig field (``--batch-size``, ``--t-min``, ``--no-bf16`` ...)."""
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if f.type in ("bool", bool):
            parser.add_argument(flag, dest=f.name, action=argparse_bool(), default=None,
                                help=f"(default {default})")
        elif f.name == "lr_milestones":
            parser.add_argument(flag, dest=f.name, type=lambda s: tuple(float(v) for v in s.split(",")),
                                default=None, help="comma-separated fractions of --steps (default 0.25,0.5,0.75)")
        else:
            typ = {"int": int, "float": float, "str": str, "Optional[str]": str}.get(str(f.type), str)
            choices = {"stage": STAGES, "target": ("eq4", "eq11"), "structure_source": ("oracle", "network"),
                       "prediction": PREDICTIONS,
                       "edge_source": ("known", "full")}.get(f.name)
            parser.add_argument(flag, dest=f.name, type=typ, default=None, choices=choices,
                                help=f"(default {default!r})")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    parser.add_argument("--export", default="", help="after training, copy the EMA weights into this "
                        "checkpoint folder (e.g. weights/cpu) and update its manifest")
    parser.add_argument("--force", action="store_true", help="let --export replace a network the folder "
                        "already holds")


def argparse_bool():
    import argparse

    return argparse.BooleanOptionalAction


def config_from_args(args) -> TrainConfig:
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    return TrainConfig(**given)
