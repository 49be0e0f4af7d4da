"""Named presets (``tiny``, ``cpu``, ``gpu``, ``paper``) and how one is picked.

One environment variable, ``STRDIFF_PROFILE``, selects the preset everywhere (notebooks, the
CLI, the tests); an explicit ``preset=`` argument or ``--preset`` flag wins over it.

* ``tiny``  — CI and nbval: seconds per notebook, 32-pixel images.
* ``cpu``   — a laptop: minutes per notebook.
* ``gpu``   — one GPU: sized for each notebook to run well under 30 minutes on an H100 (not yet timed).
* ``paper`` — the full reproduction (Places2 setting, T=400, 256-pixel images): days, run as
  scripts rather than notebooks.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields, replace
from typing import Optional

ENV_VAR = "STRDIFF_PROFILE"
DEFAULT_PROFILE = "cpu"


@dataclass(frozen=True)
class SDEConfig:
    """Hyper-parameters of :class:`strdiff_edu.sde.MeanRevertingSDE`.

    ``max_sigma`` is lambda in image units; the official YAML's ``max_sigma: 30`` is 30/255.
    """

    T: int = 100
    max_sigma: float = 30 / 255
    eps: float = 0.005
    schedule: str = "cosine"

    def build(self):
        from .sde import MeanRevertingSDE

        return MeanRevertingSDE(T=self.T, max_sigma=self.max_sigma, eps=self.eps,
                                schedule=self.schedule)


@dataclass(frozen=True)
class Profile:
    """Sizes used by the book and the command-line tool for one compute budget."""

    name: str
    image_size: int          # side of the square images
    n_paths: int             # Monte-Carlo sample paths in simulation checks
    sim_steps: int           # Euler–Maruyama steps of the continuous-time demos
    batch_size: int
    seed: int = 0
    sde: SDEConfig = field(default_factory=SDEConfig)
    # Data, structure and masks (Part III). Canny's sigma is in pixels of the profile's images:
    # the official 2 (test) / 3 (training) at 256 px would erase most edges of 32-64 px crops.
    canny_sigma: float = 2.0          # structure maps at evaluation / inference
    canny_sigma_train: float = 3.0    # structure maps in training
    train_crops: int = 16             # seeded crops per training scene of the embedded data
    mask_samples: int = 64            # masks per bin for mask statistics


PRESETS = {
    "tiny": Profile("tiny", image_size=32, n_paths=4000, sim_steps=200, batch_size=4,
                    sde=SDEConfig(T=100), canny_sigma=1.0, canny_sigma_train=1.0,
                    train_crops=8, mask_samples=48),
    "cpu": Profile("cpu", image_size=64, n_paths=20000, sim_steps=1000, batch_size=8,
                   sde=SDEConfig(T=100), canny_sigma=1.0, canny_sigma_train=1.5,
                   train_crops=32, mask_samples=200),
    "gpu": Profile("gpu", image_size=128, n_paths=200000, sim_steps=2000, batch_size=16,
                   sde=SDEConfig(T=100), canny_sigma=1.5, canny_sigma_train=2.25,
                   train_crops=128, mask_samples=1000),
    # Places2 training in the official code: T=400, 256x256 crops, Canny sigma 3 (train) / 2 (test).
    "paper": Profile("paper", image_size=256, n_paths=200000, sim_steps=4000, batch_size=8,
                     sde=SDEConfig(T=400), canny_sigma=2.0, canny_sigma_train=3.0,
                     train_crops=256, mask_samples=2000),
}


def profile_name(preset: Optional[str] = None) -> str:
    """The active preset's name: ``preset`` if given, else ``$STRDIFF_PROFILE``, else ``cpu``."""
    name = preset or os.environ.get(ENV_VAR) or DEFAULT_PROFILE
    name = name.strip().lower()
    if name not in PRESETS:
        source = "preset argument" if preset else f"${ENV_VAR}"
        raise ValueError(f"unknown profile {name!r} (from the {source}); "
                         f"choose one of: {', '.join(PRESETS)}")
    return name


def get_profile(preset: Optional[str] = None, **overrides) -> Profile:
    """The active :class:`Profile`, with optional field overrides.

    >>> get_profile("tiny").image_size
    32
    >>> get_profile("tiny", T=400).sde.T   # SDE fields can be overridden by name too
    400
    """
    prof = PRESETS[profile_name(preset)]
    return apply_overrides(prof, overrides)


def apply_overrides(prof: Profile, overrides: dict) -> Profile:
    """Return ``prof`` with fields replaced; SDE fields (T, max_sigma, eps, schedule) are
    accepted by their own names. Unknown names raise with the list of valid ones."""
    top = {f.name for f in fields(Profile)} - {"sde", "name"}
    sde_names = {f.name for f in fields(SDEConfig)}
    top_kw, sde_kw = {}, {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key in top:
            top_kw[key] = value
        elif key in sde_names:
            sde_kw[key] = value
        else:
            raise ValueError(f"unknown setting {key!r}; valid: {', '.join(sorted(top | sde_names))}")
    if sde_kw:
        top_kw["sde"] = replace(prof.sde, **sde_kw)
    return replace(prof, **top_kw) if top_kw else prof


def flat_fields():
    """(name, type, default-from-cpu-preset) of every overridable setting, for the CLI."""
    out = []
    for f in fields(Profile):
        if f.name in ("name", "sde"):
            continue
        out.append((f.name, f.type))
    for f in fields(SDEConfig):
        out.append((f.name, f.type))
    return out


def as_dict(prof: Profile) -> dict:
    return dataclasses.asdict(prof)
