"""A folder of trained networks, as one object: :class:`Weights`.

A weights folder (``weights/cpu``, or what ``strdiff train --export DIR`` writes) holds
``manifest.json`` and one checkpoint per network (``texture.pt``, ``structure.pt``,
``discriminator.pt``, ``irsde.pt``; :data:`strdiff_edu.checkpoint.NETWORK_FILES`). Every
checkpoint carries its config; :class:`Weights` reads the manifest once and knows the folder's
SDE, image size and profile, and loads the networks it is asked for on a device::

    w = Weights.find()                               # the shipped weights of the profile (cpu)
    nets, configs = w.load(["texture", "structure"], device="cpu")
    sampler = strdiff_edu.methods.build("strdiff", w)   # the same, in one call

Every loaded checkpoint is checked against the folder: its sha256 against the manifest, its SDE
against the folder's, its weights for NaN (a :class:`~strdiff_edu.checkpoint.CheckpointError`
names the mismatch and the fix).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Tuple, Union

from . import checkpoint as ckpt_io
from .checkpoint import CheckpointError
from .locations import weights_root
from .sde import MeanRevertingSDE


def load_network(source, network: str, device="cpu", expect: Optional[Dict[str, Any]] = None,
                 use_ema: bool = True):
    """Load one trained network from a checkpoint file or a weights folder.

    Returns ``(module in eval mode, checkpoint config)``. ``expect`` (e.g. ``{"sde": sde.config()}``)
    must match the checkpoint's config, or a :class:`~strdiff_edu.checkpoint.CheckpointError`
    names the mismatch. ``use_ema``: the EMA weights when the checkpoint has them.
    """
    from . import models

    path = Path(source)
    folder = None
    if path.is_dir():
        folder, path = path, ckpt_io.network_path(path, network)
        ckpt_io.verify_network_file(folder, network)    # the manifest's sha256, before unpacking
    ck = ckpt_io.load_checkpoint(path, expect=expect, network=network)
    if folder is not None:
        ckpt_io.check_folder_agrees(folder, network, ck["config"])
    sde = MeanRevertingSDE(**ck["config"]["sde"]) if "sde" in ck["config"] else None
    net = models.build_network(network, models.config_from_dict(ck["config"]["model"]), sde)
    key = "ema" if use_ema and ck.get("ema") is not None else "model"
    ckpt_io.check_finite(ck[key], path, key)
    try:
        net.load_state_dict(ck[key])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: its {key} weights do not fit the {network} network its "
                              f"config describes ({str(exc).splitlines()[0]}); re-export it") from None
    return net.to(device).eval(), ck["config"]


class Weights:
    """The trained networks of one folder: ``folder``, ``configs`` (``{network: checkpoint
    config}`` from the manifest), ``sde`` (the SDE they were trained with), ``image_size``,
    ``profile``, ``networks`` (the names present) and ``multiple`` (what an image's sides must
    divide: the largest downsampling factor of the U-Nets)."""

    def __init__(self, folder: Union[str, Path]):
        self.folder = Path(folder)
        mf = self.folder / "manifest.json"
        if not mf.is_file():
            raise CheckpointError(f"{self.folder} holds no trained weights (no manifest.json): run `make weights` "
                                  "(about an hour on 2 CPU cores), pass --checkpoint DIR or set STRDIFF_WEIGHTS")
        manifest = ckpt_io.read_manifest(self.folder) or {}
        self.configs: Dict[str, dict] = {k: v.get("config", {}) for k, v in manifest.items()}
        if not self.configs:
            raise CheckpointError(f"{mf} lists no network; export one into {self.folder} (strdiff train --export) "
                                  "or pass another --checkpoint")
        s = next(iter(self.configs.values())).get("sde", {})
        if not all(k in s for k in ("T", "max_sigma", "eps", "schedule")):
            raise CheckpointError(f"{mf} records no SDE (T, max_sigma, eps, schedule) for its networks; "
                                  "re-export them (strdiff train --export DIR --force)")
        self.sde = MeanRevertingSDE(T=int(s["T"]), max_sigma=float(s["max_sigma"]), eps=float(s["eps"]),
                                    schedule=s["schedule"])

    @classmethod
    def find(cls, folder: Union[str, Path, None] = None, profile: Optional[str] = None) -> "Weights":
        """``folder`` when given; else the shipped weights of ``profile`` (default: the active
        profile, ``STRDIFF_PROFILE``) under :func:`strdiff_edu.locations.weights_root`, and the
        ``cpu`` profile's when that profile has none (only ``cpu`` is shipped)."""
        if folder:
            return cls(folder)
        from .profiles import get_profile

        name, root = get_profile(profile).name, weights_root()
        for candidate in (root / name, root / "cpu"):
            if (candidate / "manifest.json").is_file():
                return cls(candidate)
        shipped = sorted(p.parent.name for p in root.glob("*/manifest.json"))
        raise CheckpointError(f"no trained weights in {root / name} or {root / 'cpu'} (available: "
                              f"{', '.join(shipped) or 'none'}): run `make weights` (about an hour on 2 CPU "
                              "cores), pass --checkpoint DIR or set STRDIFF_WEIGHTS")

    @property
    def networks(self) -> Tuple[str, ...]:
        """The networks whose checkpoint the folder holds."""
        return tuple(n for n in self.configs if ckpt_io.network_path(self.folder, n).is_file())

    @property
    def image_size(self) -> int:
        return int(next(iter(self.configs.values()))["image_size"])

    @property
    def profile(self) -> str:
        return str(next(iter(self.configs.values())).get("preset", self.folder.name))

    @property
    def multiple(self) -> int:
        from .models import config_from_dict

        return max([config_from_dict(c["model"]).downsampling_factor for c in self.configs.values()
                    if "model" in c] + [1])

    def load(self, networks: Iterable[str], device="cpu",
             sde: Optional[MeanRevertingSDE] = None) -> Tuple[Dict[str, Any], Dict[str, dict]]:
        """Load ``networks`` on ``device``, each checked against ``sde`` (default: the folder's; pass
        the SDE a caller expects, e.g. its profile's, to have a mismatch refused by name). Returns
        ``(nets, configs)``, both by network name."""
        sde = sde or self.sde
        nets, configs = {}, {}
        for name in networks:
            if not ckpt_io.network_path(self.folder, name).is_file():
                raise CheckpointError(f"{ckpt_io.network_path(self.folder, name)} is missing: this method needs "
                                      f"the {name} network; train it (make weights) or pick another --checkpoint")
            nets[name], configs[name] = load_network(self.folder, name, device, expect={"sde": sde.config()})
        return nets, configs

    def __repr__(self) -> str:
        return f"Weights({str(self.folder)!r}: {', '.join(self.networks)}; T={self.sde.T}, {self.image_size} px)"


__all__ = ["Weights", "load_network"]
