"""Checkpoints that carry their configuration, are written atomically and load safely.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts — nothing pickled —
loaded with ``torch.load(weights_only=True)``. It records the SDE (T, schedule, lambda, eps) and
the network widths, so that loading it into a different configuration is refused with a message
naming every mismatch (the official code silently produces "white holes" when T differs).

A *checkpoint folder* (``--checkpoint DIR``) holds one file per network — ``structure.pt``,
``texture.pt``, ``irsde.pt`` (the IR-SDE baseline texture network), ``discriminator.pt`` — and a
``manifest.json``.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch

from .errors import CheckpointError

FORMAT = "strdiff_edu.checkpoint/1"
NETWORK_FILES = {
    "structure": "structure.pt",
    "texture": "texture.pt",
    "irsde": "irsde.pt",
    "discriminator": "discriminator.pt",
}


def atomic_write_bytes(path: Union[str, Path], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename, so a
    crash or interruption never leaves a half-written file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; checkpoints are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: Union[str, Path], payload: Mapping[str, Any]) -> Path:
    """Save a checkpoint dict atomically. ``payload`` must hold ``network``, ``config`` and
    ``model`` (a state dict); a ``format`` tag is added."""
    for key in ("network", "config", "model"):
        if key not in payload:
            raise ValueError(f"checkpoint payload needs a {key!r} entry")
    import io

    buf = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_checkpoint(path: Union[str, Path], map_location="cpu",
                    expect: Optional[Mapping[str, Any]] = None, network: Optional[str] = None) -> Dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``) and check it.

    ``network``: the network it must contain (e.g. ``"texture"``). ``expect``: a (possibly
    nested) dict of configuration values it must match, e.g. ``{"sde": {"T": 100}}``; every
    difference is listed in the error.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; pass a file, or use load_network(folder, name)")
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    import zipfile

    if not zipfile.is_zipfile(path):   # torch.save writes a zip archive; anything else is not ours
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated? not a torch "
                              "file?); re-export it, or restore it from a copy")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = str(exc).splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path} contains pickled Python objects and was refused (weights_only loading). "
            "strdiff_edu checkpoints hold only tensors and plain values; re-save the state dict "
            f"with strdiff_edu.checkpoint.save_checkpoint. Details: {detail}") from None
    except Exception as exc:  # truncated or not a torch file at all
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated?): {exc}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a strdiff_edu checkpoint (no '{FORMAT}' tag); "
                              "official StrDiffusion .pth files hold bare state dicts — load them "
                              "with strdiff_edu.official.load_official")
    if network is not None and ckpt.get("network") != network:
        raise CheckpointError(f"{path} holds the {ckpt.get('network')!r} network, not {network!r}")
    if expect:
        problems = config_mismatches(expect, ckpt.get("config", {}))
        if problems:
            raise CheckpointError(
                f"{path} was made for another configuration: " + "; ".join(problems) +
                ". Sample with the configuration the network was trained with (pass the same "
                "--preset / --T), or retrain.")
    return ckpt


def config_mismatches(expected: Mapping[str, Any], found: Mapping[str, Any], prefix: str = "") -> list:
    """Human-readable differences between two nested config dicts (only keys in ``expected``)."""
    out = []
    for key, want in expected.items():
        name = f"{prefix}{key}"
        if key not in found:
            out.append(f"{name} missing (expected {want!r})")
        elif isinstance(want, Mapping) and isinstance(found[key], Mapping):
            out.extend(config_mismatches(want, found[key], prefix=name + "."))
        elif isinstance(want, float) or isinstance(found[key], float):
            if not _close(want, found[key]):
                out.append(f"{name} = {found[key]!r} in the checkpoint but {want!r} here")
        elif found[key] != want:
            out.append(f"{name} = {found[key]!r} in the checkpoint but {want!r} here")
    return out


def _close(a, b) -> bool:
    try:
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))
    except (TypeError, ValueError):
        return a == b


def sha256_file(path: Union[str, Path], chunk: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file, read ``chunk`` bytes at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def network_path(folder: Union[str, Path], network: str) -> Path:
    if network not in NETWORK_FILES:
        raise ValueError(f"unknown network {network!r}; choose one of {', '.join(NETWORK_FILES)}")
    return Path(folder) / NETWORK_FILES[network]


def write_manifest(folder: Union[str, Path], entries: Mapping[str, Mapping[str, Any]]) -> Path:
    """manifest.json: per network file its sha256 plus the given metadata (config, steps, ...)."""
    folder = Path(folder)
    manifest = {}
    for network, meta in entries.items():
        path = network_path(folder, network)
        manifest[network] = {"file": path.name, "sha256": sha256_file(path), **meta}
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(folder / "manifest.json", text.encode())
    return folder / "manifest.json"


def verify_folder(folder: Union[str, Path]) -> Dict[str, Any]:
    """Check every file listed in the folder's manifest against its sha256; return the manifest."""
    folder = Path(folder)
    mf = folder / "manifest.json"
    if not mf.exists():
        raise CheckpointError(f"{folder} has no manifest.json; is it a strdiff_edu checkpoint folder?")
    manifest = json.loads(mf.read_text())
    for network, meta in manifest.items():
        path = folder / meta["file"]
        if not path.exists():
            raise CheckpointError(f"{path} listed in the manifest is missing")
        digest = sha256_file(path)
        if digest != meta["sha256"]:
            raise CheckpointError(f"{path} is corrupt or was changed: sha256 {digest[:12]}… "
                                  f"but the manifest says {meta['sha256'][:12]}…")
    return manifest


def read_manifest(folder: Path) -> Optional[Dict[str, Any]]:
    mf = folder / "manifest.json"
    if not mf.is_file():
        return None
    try:
        manifest = json.loads(mf.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{mf} is not valid JSON ({exc}); restore it, or re-export the weights "
                              "(strdiff train --export DIR --force)") from None
    if not isinstance(manifest, dict) or not all(isinstance(v, dict) for v in manifest.values()):
        raise CheckpointError(f"{mf} is not a strdiff_edu manifest (a network -> entry mapping)")
    return manifest


def verify_network_file(folder: Union[str, Path], network: str) -> None:
    """The network's file in a checkpoint folder matches the manifest's sha256 (when the folder
    has a manifest listing it); a changed or replaced file is named."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if not manifest or network not in manifest:
        return
    meta = manifest[network]
    path = folder / meta.get("file", NETWORK_FILES[network])
    if not path.exists():
        raise CheckpointError(f"{path} listed in {folder / 'manifest.json'} is missing")
    if "sha256" in meta:
        digest = sha256_file(path)
        if digest != meta["sha256"]:
            raise CheckpointError(f"{path} was changed after it was exported: sha256 {digest[:12]}… but "
                                  f"{folder / 'manifest.json'} says {meta['sha256'][:12]}…; restore the file, "
                                  "or re-export it (strdiff train --export DIR --force)")


#: Configuration fields every network of one checkpoint folder must share: the sampler combines
#: them, so a network trained for another image size, T, schedule or width set cannot join.
FOLDER_FIELDS = (("preset",), ("image_size",), ("sde", "T"), ("sde", "schedule"), ("sde", "max_sigma"),
                 ("sde", "eps"), ("structure", "pairing"), ("structure", "edge_source"))


def _field(cfg: Mapping[str, Any], path) -> Any:
    for key in path:
        if not isinstance(cfg, Mapping) or key not in cfg:
            return None
        cfg = cfg[key]
    return cfg


def check_folder_agrees(folder: Union[str, Path], network: str, config: Mapping[str, Any]) -> None:
    """Refuse a network whose config disagrees with the folder's other networks (as the manifest
    records them) in preset (the widths), image size, T, schedule or structure pairing; the
    message names both networks and the field."""
    folder = Path(folder)
    manifest = read_manifest(folder) or {}
    if network in manifest and manifest[network].get("config", {}).get("network", network) != network:
        raise CheckpointError(f"{folder / 'manifest.json'} lists a {manifest[network]['config']['network']!r} "
                              f"network under {network!r}; re-export the folder")
    for other, meta in manifest.items():
        if other == network or not (folder / meta.get("file", NETWORK_FILES.get(other, ""))).is_file():
            continue
        theirs = meta.get("config", {})
        for path in FOLDER_FIELDS:
            a, b = _field(config, path), _field(theirs, path)
            if a is None or b is None:
                continue
            same = _close(a, b) if isinstance(a, float) or isinstance(b, float) else a == b
            if not same:
                name = ".".join(path)
                raise CheckpointError(
                    f"{folder} mixes networks made for different configurations: the {network} network has "
                    f"{name} = {a!r} but the {other} network has {name} = {b!r}; use networks trained with "
                    "one preset and SDE (re-export the odd one, or use another --checkpoint)")


def check_finite(state: Mapping[str, Any], path: Union[str, Path], what: str = "model") -> None:
    """Refuse a state dict holding NaN or infinite values (a diverged run), naming the tensor."""
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            bad = int((~torch.isfinite(value)).sum())
            raise CheckpointError(f"{path}: the {what} weights hold {bad} non-finite value(s) (NaN or inf) in "
                                  f"{key}; the run that wrote them diverged: retrain, or resume from an earlier "
                                  "checkpoint")
