"""Bad input and faults on the command line: every user error is one line ``strdiff: error: ...``
with exit 2, a bug says it is one (``--debug`` for the traceback), Ctrl-C / SIGTERM keep what was
done, one training per output folder, weights checked when loaded, valid results JSON.

The parametrised table below is the one the book's troubleshooting page quotes from: command,
expected exit status, a fragment of the one-line message. Placeholders: ``{ckpt}`` a tiny
checkpoint folder, ``{img}`` / ``{mask}`` a 32 x 32 image and mask, ``{tmp}`` a fresh folder,
``{file}`` an existing regular file.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from strdiff_edu import cli
from strdiff_edu.checkpoint import load_checkpoint, save_checkpoint, write_manifest
from strdiff_edu.train import TrainConfig, export_weights, train

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")
HAS_CV2 = __import__("importlib.util").util.find_spec("cv2") is not None
SEED_MAX = 2 ** 32 - 1


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A tiny checkpoint folder (the four networks after one step each) and variants of it."""
    root = tmp_path_factory.mktemp("weights")
    folder = root / "w"
    for stage, network in (("structure", "structure"), ("texture", "texture"),
                           ("texture-irsde", "irsde"), ("discriminator", "discriminator")):
        out = root / stage
        train(TrainConfig(stage=stage, preset="tiny", steps=1, batch_size=1, crops_per_scene=2, out=str(out),
                          progress=False))
        export_weights(out, folder, network)
    nodisc = root / "nodisc"
    nodisc.mkdir()
    for n in ("structure", "texture"):
        export_weights(root / n, nodisc, n)
    return folder, nodisc, root


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.uniform(0, 1, (32, 32, 3)) * 255).astype(np.uint8)).save(d / "img.png")
    Image.fromarray((rng.uniform(0, 1, (32, 40, 3)) * 255).astype(np.uint8)).save(d / "img40x32.png")
    Image.fromarray((rng.uniform(0, 1, (600, 600, 3)) * 255).astype(np.uint8)).save(d / "big.png")
    hole = np.zeros((32, 32), np.uint8)
    hole[8:16, 10:20] = 255
    Image.fromarray(hole).save(d / "mask.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(d / "empty.png")
    Image.fromarray(np.full((32, 32), 255, np.uint8)).save(d / "full.png")
    Image.fromarray(hole[:24, :24]).save(d / "small.png")
    rot = np.zeros((40, 32), np.uint8)
    rot[8:16, 10:20] = 255
    Image.fromarray(rot).save(d / "rot.png")
    hole6 = np.zeros((600, 600), np.uint8)
    hole6[100:200, 100:300] = 255
    Image.fromarray(hole6).save(d / "bigmask.png")
    (d / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    (d / "text.png").write_text("hello")
    (d / "file.txt").write_text("a regular file")
    (d / "empty_dir").mkdir()
    (d / "folder.png").mkdir()
    (d / "bogus.pt").write_bytes(b"not a checkpoint")
    _png_with_size(d / "bomb.png", 30000, 30000)
    return d


def _png_with_size(path, width, height):
    """A small PNG whose header claims ``width`` x ``height`` (a decompression bomb's header)."""
    import struct
    import zlib

    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data[12:29]               # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


def run_cli(args, capsys):
    try:
        rc = cli.main([str(a) for a in args])
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


INP = ["--no-progress", "--preset", "tiny"]
CASES = [
    # inpaint: output path, inputs, masks, methods, weights, settings
    ("inpaint {img} {mask} -o {tmp}/out --checkpoint {ckpt}", 2, "has no extension"),
    ("inpaint {img} {mask} -o {tmp}/out.xyz --checkpoint {ckpt}", 2, "has the extension '.xyz'"),
    ("inpaint {img} {mask} -o {tmp} --checkpoint {ckpt}", 2, "is a folder; give a file name"),
    ("inpaint {img} {mask} -o {file}/out.png --checkpoint {ckpt}", 2, "which is a file"),
    ("inpaint {tmp}/nope.png {mask} -o {tmp}/o.png --checkpoint {ckpt}", 2, "image file not found"),
    ("inpaint {files}/folder.png {mask} -o {tmp}/o.png --checkpoint {ckpt}", 2, "is a folder; pass an image file"),
    ("inpaint {files}/bad.png {mask} -o {tmp}/o.png --checkpoint {ckpt}", 2, "cannot read image file"),
    ("inpaint {files}/text.png {mask} -o {tmp}/o.png --checkpoint {ckpt}", 2, "cannot read image file"),
    ("inpaint {files}/bomb.png {mask} -o {tmp}/o.png --checkpoint {ckpt}", 2, "30000x30000 pixels (900 MP)"),
    ("inpaint {img} {tmp}/nope.png -o {tmp}/o.png --checkpoint {ckpt}", 2, "mask file not found"),
    ("inpaint {img} {files}/bad.png -o {tmp}/o.png --checkpoint {ckpt}", 2, "cannot read mask file"),
    ("inpaint {img} {files}/empty.png -o {tmp}/o.png --checkpoint {ckpt}", 2, "has no hole pixel"),
    ("inpaint {img} {files}/full.png -o {tmp}/o.png --checkpoint {ckpt}", 2, "all hole"),
    ("inpaint {img} {files}/small.png -o {tmp}/o.png --checkpoint {ckpt}", 2, "resize the mask"),
    ("inpaint {files}/img40x32.png {files}/rot.png -o {tmp}/o.png --checkpoint {ckpt}", 2, "rotate the mask"),
    ("inpaint {img} {mask} -o {tmp}/o.png --checkpoint {tmp}/none", 2, "no trained weights"),
    ("inpaint {img} {mask} -o {tmp}/o.png --checkpoint {nodisc} --method strdiff-resample", 2,
     "lacks the discriminator network"),
    ("inpaint {img} {mask} -o {tmp}/o.png --checkpoint {ckpt} --T 400", 2, "sde.T = 100 in the checkpoint"),
    ("inpaint {img} {mask} -o {tmp}/o.png --checkpoint {ckpt} --T 0", 2, "--T must be in 2..10000, got 0"),
    ("inpaint {img} {mask} -o {tmp}/o.png --checkpoint {ckpt} --eps 2", 2, "--eps must be in (0, 1)"),
    ("inpaint {img} {mask} -o {tmp}/o.png --checkpoint {ckpt} --seed -1", 2, "--seed must be in 0..4294967295"),
    (f"inpaint {{img}} {{mask}} -o {{tmp}}/o.png --checkpoint {{ckpt}} --seed {SEED_MAX + 1}", 2, "--seed must be"),
    ("inpaint {img} {mask} -o {tmp}/o.png --checkpoint {ckpt} --noise-scale -1", 2, "--noise-scale must be"),
    ("inpaint {img} {mask} -o {tmp}/o.png --checkpoint {ckpt} --max-pixels 0", 2, "--max-pixels must be >= 1"),
    ("inpaint {img} {mask} -o {tmp}/o.png --checkpoint {ckpt} --structure-out {tmp}/o.png", 2, "same file"),
    ("inpaint {files}/big.png {files}/bigmask.png -o {tmp}/o.png --checkpoint {ckpt} --full-resolution "
     "--method strdiff", 2, "pass --max-pixels 360000 to allow it"),
    ("inpaint {img} {mask} -o {tmp}/o.png --checkpoint {ckpt} --method bogus", 2, "invalid choice: 'bogus'"),
    ("inpaint {img} {mask} -o {tmp}/o.png --checkpoint {ckpt} --mode bogus", 2, "invalid choice: 'bogus'"),
    ("evaluate --methods fill --image-size 0 --out {tmp}/ev", 2, "--image-size must be in 8..4096"),
    ("inpaint {img} {mask} -o {tmp}/o.png --checkpoint {ckpt} --n-paths 5", 2, "unrecognized arguments: --n-paths"),
    ("inpaint {img} {mask} -o {tmp}/o.png --checkpoint {ckpt}/texture.pt", 2, "no trained weights"),
    ("inpaint {img} {mask} -o {img} --checkpoint {ckpt}", 2, "is the input image"),
    ("inpaint {img} {mask} -o {mask} --checkpoint {ckpt}", 2, "is the input mask"),
    ("inpaint {img} {mask} -o {tmp}/o.png --method fill --structure-out {tmp}/s.png", 2, "samples no structure map"),
    # evaluate: methods, sizes, folders
    ("evaluate --methods , --out {tmp}/ev --checkpoint {ckpt}", 2, "names no method"),
    ("evaluate --methods strdiff,bogus --out {tmp}/ev --checkpoint {ckpt}", 2, "unknown method(s) 'bogus'"),
    ("evaluate --methods fill,fill --out {tmp}/ev --checkpoint {ckpt}", 2, "names a method twice"),
    ("evaluate --methods fill --n-images -3 --out {tmp}/ev", 2, "--n-images must be >= 0, got -3"),
    ("evaluate --methods fill --batch-size -1 --out {tmp}/ev", 2, "--batch-size must be >= 1"),
    ("evaluate --methods fill --out {file}", 2, "is an existing file, not a folder"),
    ("evaluate --methods fill --out {file}/sub", 2, "which is a file"),
    ("evaluate --methods fill --data {tmp}/nope --out {tmp}/ev", 2, "--data"),
    ("evaluate --methods fill --bins 50-40 --out {tmp}/ev", 2, "--bins"),
    ("evaluate --methods fill --bins ten --out {tmp}/ev", 2, "--bins: cannot read bins"),
    ("evaluate --methods fill,strdiff-resample --checkpoint {nodisc} --out {tmp}/ev", 2,
     "lacks the discriminator network"),
    ("evaluate --methods fill,strdiff --checkpoint {tmp}/none --out {tmp}/ev", 2, "no trained weights"),
    # train: every range, data and output folders, checkpoints
    ("train --steps -5 --out {tmp}/r", 2, "--steps must be >= 0, got -5"),
    ("train --batch-size -1 --out {tmp}/r", 2, "--batch-size must be >= 0"),
    ("train --ema-decay 0 --out {tmp}/r", 2, "--ema-decay must be in (0, 1), got 0.0"),
    ("train --ema-decay 1.5 --out {tmp}/r", 2, "--ema-decay must be in (0, 1)"),
    ("train --ema-decay nan --out {tmp}/r", 2, "--ema-decay must be a finite number"),
    ("train --checkpoint-every 0 --out {tmp}/r", 2, "--checkpoint-every must be >= 1"),
    ("train --ema-every 0 --out {tmp}/r", 2, "--ema-every must be >= 1"),
    ("train --log-every 0 --out {tmp}/r", 2, "--log-every must be >= 1"),
    ("train --snapshot-every -1 --out {tmp}/r", 2, "--snapshot-every must be >= 0"),
    ("train --seed -1 --out {tmp}/r", 2, "--seed must be in 0..4294967295"),
    (f"train --seed {SEED_MAX + 1} --out {{tmp}}/r", 2, "--seed must be in 0..4294967295"),
    ("train --lr 0 --out {tmp}/r", 2, "--lr must be > 0"),
    ("train --lr=-1e-4 --out {tmp}/r", 2, "--lr must be > 0"),
    ("train --lr -1e-4 --out {tmp}/r", 2, "--lr: expected one argument"),
    ("train --grad-clip -1 --out {tmp}/r", 2, "--grad-clip must be >= 0"),
    ("train --t-min 0 --out {tmp}/r", 2, "--t-min must be in 1..T=100"),
    ("train --lr-milestones 0,0.5 --out {tmp}/r", 2, "--lr-milestones must be"),
    ("train --bins 90-10 --out {tmp}/r", 2, "--bins"),
    ("train --stage bogus --out {tmp}/r", 2, "invalid choice: 'bogus'"),
    ("train --data {files}/empty_dir --steps 1 --out {tmp}/r --no-progress", 2, "no images"),
    ("train --data {tmp}/nope --out {tmp}/r", 2, "--data"),
    ("train --data {file} --out {tmp}/r", 2, "is a file; pass a folder of images"),
    ("train --out {file}", 2, "is an existing file, not a folder"),
    ("train --out {file}/run", 2, "which is a file"),
    ("train --device bogus --out {tmp}/r", 2, "is not a device"),
    ("train --stage texture --structure-source network --out {tmp}/r", 2, "needs --structure-checkpoint"),
    ("train --stage structure --structure-source network --structure-checkpoint {ckpt} --out {tmp}/r", 2,
     "applies to the texture and discriminator stages"),
    ("train --stage texture --structure-source network --structure-checkpoint {tmp}/nope --out {tmp}/r", 2,
     "--structure-checkpoint"),
    ("train --stage texture --structure-source network --structure-checkpoint {files}/bogus.pt --steps 1 "
     "--out {tmp}/r --no-progress", 2, "not a readable checkpoint"),
    ("train --init-from {tmp}/nope --out {tmp}/r", 2, "--init-from"),
    ("train --steps 0 --export {tmp}/w --out {tmp}/r", 2, "--steps to at least 1"),
    ("train --steps 1 --export {file} --out {tmp}/r", 2, "--export"),
    # data masks / info
    ("data masks --out {tmp}/m --per-bin 0", 2, "--per-bin must be in 1..100000, got 0"),
    ("data masks --out {tmp}/m --size 0", 2, "--size must be in 8..4096, got 0"),
    ("data masks --out {tmp}/m --seed -3", 2, "--seed must be"),
    ("data masks --out {file}", 2, "is an existing file, not a folder"),
    ("data masks --out {tmp}/m --bins 10-20,oops", 2, "--bins: cannot read bins"),
    ("data info --size -1", 2, "--size must be in 8..4096"),
    # bench, demo, schedule
    ("bench --sections bogus", 2, "unknown section(s) 'bogus'"),
    ("bench --sections ,", 2, "names no section"),
    ("bench --threads -3", 2, "--threads must be in 0..1024"),
    ("bench --budget 0", 2, "--budget must be > 0"),
    ("bench --out {tmp}/b.txt", 2, "use one of .json"),
    ("bench --device bogus", 2, "is not a device"),
    ("demo --checkpoint {tmp}/none --out {tmp}/d", 2, "no trained weights"),
    ("demo --n-images -1 --out {tmp}/d", 2, "--n-images must be in 0..16"),
    ("demo --seed -1 --out {tmp}/d", 2, "--seed must be"),
    ("demo --out {file}", 2, "is an existing file, not a folder"),
    ("schedule --schedule cosin", 2, "unknown schedule 'cosin'"),
    ("schedule --T 1", 2, "--T must be in 2..10000"),
    ("schedule --max-sigma 0", 2, "--max-sigma must be > 0"),
    ("info --preset huge", 2, "invalid choice: 'huge'"),
]
if not HAS_CV2:
    CASES += [
        ("inpaint {img} {mask} -o {tmp}/o.png --method telea", 2, "telea needs OpenCV"),
        ("evaluate --methods fill,telea --out {tmp}/ev", 2, "telea needs OpenCV"),
    ]
if not torch.cuda.is_available():
    CASES += [("train --device cuda --out {tmp}/r", 2, "CUDA is not available"),
              ("bench --device cuda:0", 2, "CUDA is not available")]


def _fill(template, ckpt, files, tmp):
    folder, nodisc, _ = ckpt
    return template.format(ckpt=folder, nodisc=nodisc, img=files / "img.png", mask=files / "mask.png",
                           tmp=tmp, file=files / "file.txt", files=files).split()


@pytest.mark.parametrize("template,code,fragment", CASES, ids=[c[0].split(" -o")[0][:60] for c in CASES])
def test_user_error_is_one_line(template, code, fragment, ckpt, files, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STRDIFF_PROFILE", "tiny")
    monkeypatch.delenv("STRDIFF_DEVICE", raising=False)
    args = _fill(template, ckpt, files, tmp_path)
    if args[0] == "inpaint":
        args += ["--no-progress"]
    rc, out, err = run_cli(args, capsys)
    lines = [ln for ln in err.splitlines() if ln.strip() and "Warning" not in ln and not ln.startswith("  ")]
    assert rc == code, err
    assert "Traceback" not in err and "internal error" not in err
    assert fragment in lines[-1], err
    assert lines[-1].startswith(("strdiff: error: ", "usage: ", "strdiff: ")) or "error:" in lines[-1]
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "ev" / "results.json").exists()
    assert not (tmp_path / "r" / "last.pt").exists()


def test_device_from_the_environment_is_checked(files, tmp_path, capsys, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    monkeypatch.setenv("STRDIFF_DEVICE", "cuda")
    rc, _, err = run_cli(["inpaint", files / "img.png", files / "mask.png", "-o", tmp_path / "o.png",
                          "--method", "fill"], capsys)
    assert rc == 2 and "$STRDIFF_DEVICE 'cuda': CUDA is not available" in err


# ----------------------------------------------------------------------------- bugs and --debug
def test_a_bug_says_so_and_debug_shows_the_traceback(files, tmp_path, capsys, monkeypatch):
    import strdiff_edu.evaluate as E

    def broken(*a, **k):
        return {}["missing"]          # a KeyError: a bug, never a user error

    monkeypatch.setattr(E, "read_image_file", broken)
    args = ["inpaint", files / "img.png", files / "mask.png", "-o", tmp_path / "o.png", "--method", "fill"]
    rc, _, err = run_cli(args, capsys)
    assert rc == 1 and err.count("\n") == 1
    assert "internal error" in err and "KeyError" in err and "--debug" in err
    with pytest.raises(KeyError):
        cli.main([str(a) for a in args] + ["--debug"])


def test_library_errors_from_torch_are_not_passed_off_as_user_errors():
    from strdiff_edu.errors import UsageError, describe

    try:
        torch.zeros(2) + torch.zeros(3)
    except RuntimeError as exc:
        code, line = describe(exc)
    assert code == 1 and "internal error" in line
    try:
        raise UsageError("--x must be >= 1, got 0")
    except UsageError as exc:
        assert describe(exc) == (2, "strdiff: error: --x must be >= 1, got 0")
    try:
        assert 1 == 2, "an assertion"
    except AssertionError as exc:
        assert describe(exc)[0] == 1


# ----------------------------------------------------------------------------- weights checked when loaded
def _copy(src, dst):
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_changed_weight_file_is_named(ckpt, files, tmp_path, capsys):
    folder = _copy(ckpt[0], tmp_path / "w")
    ck = load_checkpoint(folder / "structure.pt")
    ck["model"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in ck["model"].items()}
    save_checkpoint(folder / "structure.pt", {k: v for k, v in ck.items() if k != "format"})
    rc, _, err = run_cli(["inpaint", files / "img.png", files / "mask.png", "-o", tmp_path / "o.png",
                          "--checkpoint", folder, "--method", "strdiff", *INP], capsys)
    assert rc == 2 and "structure.pt was changed after it was exported" in err and "re-export" in err


def test_a_broken_manifest_is_one_line(ckpt, files, tmp_path, capsys):
    folder = _copy(ckpt[0], tmp_path / "w")
    (folder / "manifest.json").write_text("{not json")
    rc, _, err = run_cli(["inpaint", files / "img.png", files / "mask.png", "-o", tmp_path / "o.png",
                          "--checkpoint", folder, "--method", "strdiff", *INP], capsys)
    assert rc == 2 and "manifest.json is not valid JSON" in err
    (folder / "manifest.json").write_text("{}")
    rc, _, err = run_cli(["evaluate", "--methods", "strdiff", "--checkpoint", folder, "--out", tmp_path / "ev",
                          "--preset", "tiny"], capsys)
    assert rc == 2 and "lists no network" in err


def test_non_finite_weights_are_refused(ckpt, files, tmp_path, capsys):
    folder = _copy(ckpt[0], tmp_path / "w")
    ck = load_checkpoint(folder / "texture.pt")
    first = next(k for k, v in ck["model"].items() if v.is_floating_point())
    ck["model"][first] = ck["model"][first].clone().fill_(float("nan"))
    save_checkpoint(folder / "texture.pt", {k: v for k, v in ck.items() if k != "format"})
    manifest = json.loads((folder / "manifest.json").read_text())
    write_manifest(folder, {k: {kk: vv for kk, vv in v.items() if kk not in ("file", "sha256")}
                            for k, v in manifest.items()})
    rc, _, err = run_cli(["inpaint", files / "img.png", files / "mask.png", "-o", tmp_path / "o.png",
                          "--checkpoint", folder, "--method", "strdiff", *INP], capsys)
    assert rc == 2 and "non-finite value(s)" in err and first in err and not (tmp_path / "o.png").exists()


def test_a_tiny_texture_network_among_cpu_networks_is_refused(ckpt, files, tmp_path, capsys):
    """The cpu structure network of weights/cpu plus a tiny-preset texture network in one folder."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    cpu = ROOT / "weights" / "cpu"
    (folder / "structure.pt").write_bytes((cpu / "structure.pt").read_bytes())
    entry = json.loads((cpu / "manifest.json").read_text())["structure"]
    write_manifest(folder, {"structure": {k: v for k, v in entry.items() if k not in ("file", "sha256")}})
    export_weights(ckpt[2] / "texture", folder, "texture")
    rc, _, err = run_cli(["inpaint", files / "img.png", files / "mask.png", "-o", tmp_path / "o.png",
                          "--checkpoint", folder, "--method", "strdiff", "--preset", "cpu", "--no-progress"], capsys)
    assert rc == 2 and "mixes networks" in err
    assert "the texture network has preset = 'tiny' but the structure network has preset = 'cpu'" in err


@pytest.mark.parametrize("name", ["cpu", "cpu-cheap"])
def test_the_shipped_weights_pass_the_checks(name):
    from strdiff_edu.weights import Weights

    folder = ROOT / "weights" / name
    if not (folder / "manifest.json").is_file():
        pytest.skip(f"no {folder}")
    weights = Weights(folder)
    nets, _ = weights.load(weights.configs)
    assert set(nets) == set(weights.configs) == set(weights.networks)


# ----------------------------------------------------------------------------- training faults
def _train_args(tmp_path, *extra):
    return ["train", "--stage", "structure", "--preset", "tiny", "--batch-size", "1", "--crops-per-scene", "2",
            "--no-progress", "--out", tmp_path / "run", *extra]


def test_nan_loss_is_one_line(tmp_path, capsys, monkeypatch):
    import strdiff_edu.train as T

    real = T.StageLoss.__call__

    def nan_loss(self, model, b, gen):
        loss, metrics = real(self, model, b, gen)
        return loss * float("nan"), metrics

    monkeypatch.setattr(T.StageLoss, "__call__", nan_loss)
    rc, _, err = run_cli(_train_args(tmp_path, "--steps", "3"), capsys)
    assert rc == 1 and "the loss became nan at step 1; lower --lr or set --grad-clip" in err
    assert "Traceback" not in err and not (tmp_path / "run" / "train.lock").exists()


def test_resume_checks_seed_and_config(tmp_path, capsys):
    assert run_cli(_train_args(tmp_path, "--steps", "1"), capsys)[0] == 0
    rc, _, err = run_cli(_train_args(tmp_path, "--steps", "2", "--resume", "--seed", "1", "--lr", "1e-3"), capsys)
    assert rc == 2 and "--seed 0 in the run, 1 now" in err and "--lr 0.0001 in the run, 0.001 now" in err
    assert "--init-from" in err
    # the same settings (and a longer run, or other logging) resume
    rc, out, err = run_cli(_train_args(tmp_path, "--steps", "2", "--resume", "--log-every", "1"), capsys)
    assert rc == 0 and "resuming structure from step 1" in out
    # a corrupt last.pt is one line
    (tmp_path / "run" / "last.pt").write_bytes(b"truncated")
    rc, _, err = run_cli(_train_args(tmp_path, "--steps", "3", "--resume"), capsys)
    assert rc == 2 and "last.pt is not a readable checkpoint" in err


def test_stale_lock_and_temporary_files(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / "train.lock").write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename}))
    (run / "last.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    rc, out, err = run_cli(_train_args(tmp_path, "--steps", "1"), capsys)
    assert rc == 0 and "removing a stale lock" in out, err
    assert not (run / "train.lock").exists() and not list(run.glob("*.tmp"))


def _default_sigint():
    # A test run started in the background (`make test &`, nohup, some CI runners) inherits
    # SIGINT ignored, and so would the child: give it the terminal's default, as a user has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(cmd, env=None):
    env = dict(os.environ, STRDIFF_PROFILE="tiny", OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "strdiff_edu.cli", *map(str, cmd)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)


def _wait_for(path, proc, timeout=240):
    end = time.time() + timeout
    while time.time() < end and not Path(path).exists():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    assert Path(path).exists()


@pytest.mark.slow
def test_busy_out_sigterm_and_ctrl_c(tmp_path, capsys):
    """A second training into a busy --out is refused; SIGTERM saves and exits 143; Ctrl-C saves
    and exits 130 with one line; both resume."""
    run = tmp_path / "run"
    proc = _start(_train_args(tmp_path, "--steps", "100000", "--checkpoint-every", "1"))
    try:
        _wait_for(run / "last.pt", proc)
        rc, _, err = run_cli(_train_args(tmp_path, "--steps", "5"), capsys)
        assert rc == 2 and f"is in use by another training (pid {proc.pid}" in err
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("strdiff: terminated (SIGTERM) at step") and "continue with --resume" in last
    assert "Traceback" not in err and not (run / "train.lock").exists()
    steps = load_checkpoint(run / "last.pt")["step"]
    assert steps >= 1 and json.loads(out[out.index("{"):])["terminated"] is True

    proc = _start(_train_args(tmp_path, "--steps", "100000", "--checkpoint-every", "1", "--resume"))
    try:
        time.sleep(1)
        end = time.time() + 240
        while time.time() < end and load_checkpoint(run / "last.pt")["step"] <= steps:
            assert proc.poll() is None
            time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert lines[-1].startswith("strdiff: interrupted at step") and "checkpoint at" in lines[-1]
    assert "--resume" in lines[-1] and "Traceback" not in err
    assert load_checkpoint(run / "last.pt")["step"] > steps


def test_ctrl_c_in_inpaint_writes_nothing(ckpt, files, tmp_path):
    out = tmp_path / "o.png"
    proc = _start(["inpaint", files / "img.png", files / "mask.png", "-o", out, "--checkpoint", ckpt[0],
                   "--method", "strdiff-resample", "--preset", "tiny"])
    try:
        end = time.time() + 240
        err = ""
        while time.time() < end:      # wait for the estimate line: the sampler is about to start
            line = proc.stderr.readline()
            err += line
            if line.startswith("strdiff: inpainting") or not line:
                break
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        rest_out, rest_err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    err += rest_err
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == f"strdiff: interrupted; nothing was written to {out}"
    assert "Traceback" not in err and not out.exists()


# ----------------------------------------------------------------------------- results, big inputs, files
def test_evaluate_writes_each_method_and_fails_on_non_finite_output(tmp_path, capsys, monkeypatch):
    from strdiff_edu.baselines import BiharmonicInpainter

    real = BiharmonicInpainter.sample

    def nan_sample(self, image, known, **kw):
        r = real(self, image, known, **kw)
        r.image = r.image * float("nan")
        return r

    monkeypatch.setattr(BiharmonicInpainter, "sample", nan_sample)
    out = tmp_path / "ev"
    rc, _, err = run_cli(["evaluate", "--methods", "fill,biharmonic", "--n-images", "1", "--bins", "10-20",
                          "--preset", "tiny", "--out", out, "--no-fid"], capsys)
    assert rc == 1 and "biharmonic produced non-finite pixels" in err.splitlines()[-1] and "null" in err
    assert "strdiff: warning: biharmonic produced 3072 non-finite pixel values" in err     # one line each
    assert "non-finite result value(s) written as null" in err and "strdiff: warning: " in err
    text = (out / "results.json").read_text()
    res = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in results.json"))
    assert res["methods"]["biharmonic"]["bins"]["10-20"]["psnr"] is None
    assert res["methods"]["fill"]["bins"]["10-20"]["psnr"] > 0
    assert "fill: done" in err                       # written when the first method finished

    def boom(self, image, known, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(BiharmonicInpainter, "sample", boom)
    out2 = tmp_path / "ev2"
    rc, _, err = run_cli(["evaluate", "--methods", "fill,biharmonic", "--n-images", "1", "--bins", "10-20",
                          "--preset", "tiny", "--out", out2, "--no-fid"], capsys)
    assert rc == 130 and "the methods that finished are in" in err
    assert list(json.loads((out2 / "results.json").read_text())["methods"]) == ["fill"]


def test_working_size_policy_and_the_pixel_limit():
    from strdiff_edu.errors import UsageError
    from strdiff_edu.evaluate import MAX_WORKING_PIXELS, check_working_size, working_size

    assert working_size(3000, 4000, 64) == (64, 85)
    assert working_size(256, 256, 256) == (256, 256)
    check_working_size(256, 256, 256, 256, full_resolution=True)        # 256 x 256 is accepted
    check_working_size(512, 512, 512, 512, full_resolution=True)
    with pytest.raises(UsageError, match="--max-pixels 12000000"):
        check_working_size(3000, 4000, 3000, 4000, full_resolution=True)
    check_working_size(3000, 4000, 3000, 4000, full_resolution=True, max_pixels=12_000_000)
    with pytest.raises(UsageError, match="crop it around the hole"):
        check_working_size(64, 20000, 64, 20000, full_resolution=False)
    assert MAX_WORKING_PIXELS == 512 * 512


def test_a_big_photo_is_inpainted_at_the_networks_size_with_an_estimate(ckpt, tmp_path, capsys):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.uniform(0, 1, (300, 400, 3)) * 255).astype(np.uint8)).save(tmp_path / "p.jpg")
    hole = np.zeros((300, 400), np.uint8)
    hole[100:140, 150:220] = 255
    Image.fromarray(hole).save(tmp_path / "m.png")
    rc, out, err = run_cli(["inpaint", tmp_path / "p.jpg", tmp_path / "m.png", "-o", tmp_path / "o.png",
                            "--checkpoint", ckpt[0], "--method", "strdiff", *INP], capsys)
    assert rc == 0, err
    assert "strdiff: inpainting 400x300 at 43x32, the networks' resolution" in err and "161 network calls" in err
    assert json.loads(out.strip().splitlines()[-1])["working_size"] == [43, 32]


def test_exif_orientation_palette_and_16_bit_files(tmp_path):
    from strdiff_edu.evaluate import read_image_file
    from strdiff_edu.masks import load_mask

    rng = np.random.default_rng(0)
    stored = (rng.uniform(0, 1, (20, 30, 3)) * 255).astype(np.uint8)       # 30 wide, 20 high as stored
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6                                                       # "rotate 90 CW to display"
    im.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    img, kind, _ = read_image_file(tmp_path / "phone.jpg")
    assert img.shape == (1, 3, 30, 20) and kind == "rgb"                   # upright, as a viewer shows it
    # a mask drawn on the displayed (upright) image, saved as a palette PNG
    hole = np.zeros((30, 20), np.uint8)
    hole[5:10, 2:8] = 1
    pal = Image.fromarray(hole, "P")
    pal.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    pal.save(tmp_path / "pal.png")
    known = load_mask(tmp_path / "pal.png")
    assert known.shape == (1, 30, 20) and float(1 - known.mean()) == pytest.approx(30 / 600)
    # a 16-bit mask and a dark 16-bit image keep their values (not clipped at 255, not brightened)
    Image.fromarray(hole.astype(np.uint16) * 65535).save(tmp_path / "m16.png")
    assert torch.equal(load_mask(tmp_path / "m16.png"), known)
    dark = np.full((8, 8), 200 * 257, np.uint16)
    dark[0, 0] = 100 * 257
    Image.fromarray(dark).save(tmp_path / "g16.png")
    g, kind, _ = read_image_file(tmp_path / "g16.png")
    assert kind == "gray" and abs(float(g[0, 0, 1, 1]) - 200 / 255) < 1e-6 and abs(float(g[0, 0, 0, 0]) - 100 / 255) < 1e-6


def test_rgba_to_jpeg_drops_alpha_with_a_warning(tmp_path):
    from strdiff_edu.evaluate import write_image_file

    with pytest.warns(UserWarning, match="JPEG has no transparency"):
        write_image_file(torch.rand(1, 3, 8, 8), tmp_path / "o.jpg", "rgba", np.full((8, 8), 200, np.uint8))
    assert Image.open(tmp_path / "o.jpg").mode == "RGB"


def test_data_masks_refuses_an_existing_file_and_writes_into_a_folder(tmp_path, capsys):
    (tmp_path / "m").write_text("x")
    rc, _, err = run_cli(["data", "masks", "--out", tmp_path / "m", "--per-bin", "1", "--size", "16",
                          "--bins", "10-20"], capsys)
    assert rc == 2 and "is an existing file" in err and (tmp_path / "m").read_text() == "x"


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical_despite_the_stale_lock(tmp_path):
    """SIGKILL leaves a stale lock (and maybe a temporary file); --resume takes the lock over and
    ends with exactly the EMA weights of an uninterrupted run."""
    common = dict(stage="structure", preset="tiny", batch_size=1, crops_per_scene=2, steps=30, checkpoint_every=1,
                  ema_every=1, progress=False)
    train(TrainConfig(out=str(tmp_path / "ref"), **common))
    run = tmp_path / "killed"
    proc = _start(["train", "--stage", "structure", "--preset", "tiny", "--batch-size", "1", "--crops-per-scene", "2",
                   "--steps", "30", "--checkpoint-every", "1", "--ema-every", "1", "--no-progress", "--out", run])
    try:
        end = time.time() + 240
        while time.time() < end:
            assert proc.poll() is None, proc.communicate()
            if (run / "last.pt").exists() and load_checkpoint(run / "last.pt")["step"] >= 3:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert (run / "train.lock").exists()
    stopped = load_checkpoint(run / "last.pt")["step"]
    assert 3 <= stopped < 30
    train(TrainConfig(out=str(run), **common), resume=True)
    ref, got = load_checkpoint(tmp_path / "ref" / "last.pt"), load_checkpoint(run / "last.pt")
    assert got["step"] == ref["step"] == 30
    assert all(torch.equal(ref["ema"][k], got["ema"][k]) for k in ref["ema"])
    assert not (run / "train.lock").exists()


@pytest.mark.parametrize("command", ["schedule", "inpaint", "evaluate"])
def test_each_subcommand_offers_only_the_profile_settings_it_reads(command):
    """``--help`` lists the overrides a sub-command uses and no other profile field; ``info``
    (which prints the whole profile) takes them all."""
    import argparse

    from strdiff_edu.cli import PROFILE_FIELDS_USED, build_parser
    from strdiff_edu.profiles import flat_fields

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    def overrides(name):
        return {a.dest for a in sub.choices[name]._actions} & {f for f, _ in flat_fields()}
    assert overrides(command) == set(PROFILE_FIELDS_USED[command])
    assert overrides("info") == {f for f, _ in flat_fields()}
    import inspect

    import strdiff_edu.cli as cli

    source = inspect.getsource(getattr(cli, f"cmd_{command}"))     # every offered setting is read
    for name in PROFILE_FIELDS_USED[command]:
        read = "prof.sde" if name in cli.SDE_FIELDS else f"prof.{name}"
        assert read in source or f"args.{name}" in source, f"{command} offers --{name} but never reads it"
    text = sub.choices[command].format_help()
    assert "--n-paths" not in text and "--train-crops" not in text and "--mask-samples" not in text
