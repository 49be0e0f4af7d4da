"""Dataset tooling: downloads, archives and the sha256 manifests of prepared image folders.

What ``strdiff data prepare`` (:mod:`strdiff_edu.tools.prepare`) and ``strdiff data masks`` run to turn
Paris StreetView, CelebA, Places2 or the NVIDIA masks into folders of square PNGs with a
``manifest.sha256`` (``sha256sum`` format): resumable, verified, and never touching the network
unless asked. The method itself reads such folders with :class:`strdiff_edu.data.ImageFolder`.
"""
from __future__ import annotations

import os
import socket
import tarfile
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from PIL import Image, UnidentifiedImageError

from ..checkpoint import sha256_file
from ..images import square_resize

class NetworkUnavailable(RuntimeError):
    """A download failed because the server could not be reached."""


MANIFEST = "manifest.sha256"


def read_sha256_manifest(root: Union[str, Path]) -> Dict[str, str]:
    """``{relative path: sha256}`` from ``root/manifest.sha256`` (``sha256sum`` format)."""
    path = Path(root) / MANIFEST
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                digest, rel = line.split(None, 1)
                out[rel.lstrip("*")] = digest
    return out


def write_sha256_manifest(root: Union[str, Path], entries: Dict[str, str]) -> Path:
    """Write ``root/manifest.sha256`` (sorted; checkable with ``sha256sum -c``), atomically.
    (A checkpoint folder's ``manifest.json`` is :func:`strdiff_edu.checkpoint.write_manifest`.)"""
    from ..checkpoint import atomic_write_bytes

    path = Path(root) / MANIFEST
    atomic_write_bytes(path, "".join(f"{d}  {rel}\n" for rel, d in sorted(entries.items())).encode())
    return path


def verify_sha256_manifest(root: Union[str, Path], progress: bool = True) -> List[str]:
    """The files of ``root``'s manifest that are missing or whose hash differs (empty = OK)."""
    from tqdm.auto import tqdm

    root = Path(root)
    entries = read_sha256_manifest(root)
    if not entries:
        raise FileNotFoundError(f"no {MANIFEST} in {root}; prepare the dataset first")
    bad = []
    for rel, digest in tqdm(sorted(entries.items()), desc="verify", disable=not progress):
        p = root / rel
        if not p.is_file() or sha256_file(p) != digest:
            bad.append(rel)
    return bad


def download(url: str, dest: Union[str, Path], sha256: Optional[str] = None, progress: bool = True,
             timeout: float = 30.0, manual_hint: str = "") -> Path:
    """Download ``url`` to ``dest``, resuming a partial ``dest.part`` when the server allows
    (HTTP range requests), checking ``sha256`` when given. ``file://`` URLs work too.

    An existing ``dest`` with the right hash is kept. An unreachable server raises
    :class:`NetworkUnavailable` with ``manual_hint`` (e.g. "download it by hand and pass
    --from DIR").
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and (sha256 is None or sha256_file(dest) == sha256):
        return dest
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "strdiff_edu"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # the partial file is already complete
            resp = None
        else:
            raise RuntimeError(f"download of {url} failed: HTTP {exc.code} {exc.reason}. {manual_hint}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NetworkUnavailable(f"cannot reach {url} ({reason}): the network is not reachable "
                                 f"from this machine. {manual_hint}".strip()) from None
    if resp is not None:
        with resp:
            resumed = start > 0 and getattr(resp, "status", None) == 206
            if not resumed:
                start = 0
            length = resp.headers.get("Content-Length")
            total = int(length) + start if length else None
            with open(part, "ab" if resumed else "wb") as f, \
                    tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=dest.name,
                         disable=not progress) as bar:
                for block in iter(lambda: resp.read(1 << 20), b""):
                    f.write(block)
                    bar.update(len(block))
    if sha256 is not None:
        got = sha256_file(part)
        if got != sha256:
            part.unlink()
            raise RuntimeError(f"{dest.name}: sha256 {got} does not match the expected {sha256}; "
                               "the partial download was deleted, run again")
    os.replace(part, dest)
    return dest


def extract_archive(archive: Union[str, Path], dest: Union[str, Path]) -> Path:
    """Extract a .zip or .tar[.gz] into ``dest`` (refusing members that escape it); skipped
    when ``dest/.extracted`` says this archive was already extracted."""
    archive, dest = Path(archive), Path(dest)
    stamp = dest / ".extracted"
    if stamp.exists() and stamp.read_text() == archive.name:
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()

    def safe(name: str) -> None:
        if not (root / name).resolve().is_relative_to(root):
            raise ValueError(f"{archive}: member {name!r} would be written outside {dest}")

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for n in z.namelist():
                safe(n)
            z.extractall(dest)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            members = t.getmembers()
            for m in members:
                safe(m.name)
                if m.issym() or m.islnk():
                    raise ValueError(f"{archive}: links are not extracted ({m.name})")
            t.extractall(dest, members=members)
    else:
        raise ValueError(f"{archive} is neither a zip nor a tar archive")
    stamp.write_text(archive.name)
    return dest


def prepare_images(items: Sequence[Tuple[Path, str]], out: Union[str, Path], size: int = 256,
                   convert: Optional[Callable[[Image.Image], Image.Image]] = None,
                   progress: bool = True) -> Dict[str, int]:
    """Convert images to ``size`` x ``size`` PNGs under ``out`` and keep ``out/manifest.sha256``.

    ``items`` are (source file, output relative path) pairs. Resumable: an output already in
    the manifest with a matching file is skipped; the manifest is saved every 200 files and at
    the end. ``convert`` maps a Pillow image to the output image (default: centre square crop +
    bicubic resize to RGB). Unreadable sources are skipped with a warning.
    Returns counts ``{"written", "skipped", "failed"}``.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    convert = convert or (lambda im: square_resize(im, size))
    manifest = read_sha256_manifest(out)
    counts = {"written": 0, "skipped": 0, "failed": 0}
    for k, (src, rel) in enumerate(tqdm(items, desc=f"prepare {out.name}", disable=not progress)):
        dst = out / rel
        if rel in manifest and dst.is_file():
            counts["skipped"] += 1
            continue
        try:
            with Image.open(src) as im:
                im.load()
                res = convert(im)
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            warnings.warn(f"skipping unreadable image {src}: {exc}")
            counts["failed"] += 1
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".tmp")
        res.save(tmp, format="PNG")
        os.replace(tmp, dst)
        manifest[rel] = sha256_file(dst)
        counts["written"] += 1
        if k % 200 == 199:
            write_sha256_manifest(out, manifest)
    write_sha256_manifest(out, manifest)
    return counts
