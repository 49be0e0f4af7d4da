"""Embedded data (split by pixel content, determinism, frozen eval pairs), image folders,
the download/manifest tools and strdiff_edu.tools.prepare on small fake folders."""
import http.server
import itertools
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from strdiff_edu import data as D
from strdiff_edu.tools import datasets as DS
from strdiff_edu.masks import PAPER_BINS, hole_ratio, save_mask, free_form_mask
from strdiff_edu.images import list_image_files

ROOT = Path(__file__).resolve().parents[1]


def _thumb(x, side=24):
    g = x.astype(float).mean(2)
    h, w = g.shape
    g = g[: h - h % side, : w - w % side]
    return g.reshape(side, g.shape[0] // side, side, g.shape[1] // side).mean((1, 3))


def _independent_similarity(ta, tb, shift=3):
    """An oracle independent of the library's: correlation of area-averaged thumbnails
    (channel mean, not luma), best over shifts (numpy only)."""
    side = ta.shape[0]
    best = -1
    for dy, dx in itertools.product(range(-shift, shift + 1), repeat=2):
        pa = ta[max(0, dy):side + min(0, dy), max(0, dx):side + min(0, dx)].ravel()
        pb = tb[max(0, -dy):side + min(0, -dy), max(0, -dx):side + min(0, -dx)].ravel()
        best = max(best, np.corrcoef(pa, pb)[0, 1])
    return best


# ----------------------------------------------------------------------------- embedded set
def test_split_is_disjoint_by_pixel_content():
    tr, ev = D.default_split()
    train_src = [n for g in tr for n in g]
    eval_src = [n for g in ev for n in g]
    assert set(train_src).isdisjoint(eval_src)
    assert sorted(train_src + eval_src) == sorted(D.SOURCE_NAMES)
    # known duplicates across names/packages end up on the same side
    for a, b in [("camera", "pywt_camera"), ("chelsea", "cat"), ("motorcycle_left", "motorcycle_right")]:
        assert any({a, b} <= set(g) for g in tr + ev), (a, b)
    assert np.array_equal(D.load_source("camera"), D.load_source("pywt_camera"))
    # no training source resembles an eval source (independent similarity oracle)
    thumbs = {n: _thumb(D.load_source(n)) for n in D.SOURCE_NAMES}
    worst = max(_independent_similarity(thumbs[a], thumbs[b]) for a in train_src for b in eval_src)
    assert _independent_similarity(thumbs["motorcycle_left"], thumbs["motorcycle_right"]) > 0.85
    assert worst < 0.75, worst
    # and no training crop equals an eval crop
    train = D.EmbeddedDataset("train", 16, crops_per_scene=4).images
    evals = D.EmbeddedDataset("eval", 16).images
    dists = torch.cdist(train.flatten(1), evals.flatten(1))
    assert float(dists.min()) > 0.5


def test_grouping_on_a_fake_registry():
    rng = np.random.default_rng(0)
    base = (rng.random((40, 60, 3)) * 255).astype(np.uint8)
    base = np.asarray(Image.fromarray(base).resize((240, 160), Image.BICUBIC))
    other = np.asarray(Image.fromarray((rng.random((40, 60, 3)) * 255).astype(np.uint8))
                       .resize((240, 160), Image.BICUBIC))
    images = {
        "photo": base,
        "same_photo_other_package": base.copy(),
        "stereo_view": np.roll(base, 5, axis=1),       # the scene shifted by a few pixels
        "unrelated": other,
        "smaller_copy": np.asarray(Image.fromarray(base).resize((150, 100), Image.BILINEAR)),
    }
    groups = D.scene_groups(images)
    assert ("photo", "same_photo_other_package", "stereo_view", "smaller_copy") in groups
    assert ("unrelated",) in groups
    tr, ev = D.split_scenes(groups, ["stereo_view"])
    assert ev == [("photo", "same_photo_other_package", "stereo_view", "smaller_copy")] and tr == [("unrelated",)]
    with pytest.raises(ValueError, match="not among the sources"):
        D.split_scenes(groups, ["nope"])


def test_embedded_dataset_is_deterministic_and_in_range():
    a = D.EmbeddedDataset("train", 24, crops_per_scene=3, seed=5)
    b = D.EmbeddedDataset("train", 24, crops_per_scene=3, seed=5)
    c = D.EmbeddedDataset("train", 24, crops_per_scene=3, seed=6)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert a.images.shape == (13 * 3, 3, 24, 24) and len(a) == 39 and a[0].shape == (3, 24, 24)
    assert 0 <= float(a.images.min()) and float(a.images.max()) <= 1
    # crop i of a scene does not depend on how many crops are drawn
    more = D.EmbeddedDataset("train", 24, crops_per_scene=4, seed=5)
    assert torch.equal(more.images[:3], a.images[:3])
    with pytest.raises(ValueError, match="split"):
        D.EmbeddedDataset("test", 24)


def test_frozen_eval_list_and_pairs():
    _, ev = D.default_split()
    eval_sources = {n for g in ev for n in g}
    assert all(c.source in eval_sources for c in D.FROZEN_EVAL_CROPS)
    assert {frozenset(g) for g in ev} == {frozenset(n for n in g if any(c.source == n for c in D.FROZEN_EVAL_CROPS))
                                          or g for g in ev}
    for c in D.FROZEN_EVAL_CROPS:
        h, w = D.load_source(c.source).shape[:2]
        assert 0 <= c.top and c.top * h + c.side * min(h, w) <= h + 1
        assert 0 <= c.left and c.left * w + c.side * min(h, w) <= w + 1
    images, masks = D.eval_pairs(32)
    images2, masks2 = D.eval_pairs(32)
    assert images.shape == (len(D.FROZEN_EVAL_CROPS), 3, 32, 32) and torch.equal(images, images2)
    assert set(masks) == set(PAPER_BINS)
    for b, m in masks.items():
        assert torch.equal(m, masks2[b]) and m.shape == (len(images), 1, 32, 32)
        r = hole_ratio(m)
        assert bool(((r > b[0]) & (r <= b[1])).all()), (b, r)


def test_credits_and_facades():
    table = D.credits_table()
    for s in D.SOURCES:
        assert f"| {s.name} |" in table and s.licence in table
    f1, f2 = D.facades(3, 32, seed=1), D.facades(3, 32, seed=1)
    assert f1.shape == (3, 3, 32, 32) and torch.equal(f1, f2)
    assert not torch.equal(f1, D.facades(3, 32, seed=2))
    assert 0 <= float(f1.min()) and float(f1.max()) <= 1


# ----------------------------------------------------------------------------- folders and tools
def _write_images(folder: Path, names, size=(40, 30)):
    rng = np.random.default_rng(len(names))
    for n in names:
        p = folder / n
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)).save(p)


def test_image_folder(tmp_path):
    _write_images(tmp_path, ["b.png", "sub/a.jpg", "sub/deeper/c.bmp"])
    (tmp_path / "readme.txt").write_text("x")
    ds = D.ImageFolder(tmp_path, 16)
    assert [p.name for p in ds.files] == ["b.png", "a.jpg", "c.bmp"]
    assert ds[1].shape == (3, 16, 16) and 0 <= float(ds[1].min()) <= float(ds[1].max()) <= 1
    (tmp_path / "sub" / "broken.png").write_bytes(b"garbage")
    ds = D.ImageFolder(tmp_path, 16)
    with pytest.raises(ValueError, match="cannot read image .*broken.png"):
        ds[[p.name for p in ds.files].index("broken.png")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        D.ImageFolder(tmp_path / "empty", 16)
    with pytest.raises(FileNotFoundError, match="not found"):
        list_image_files(tmp_path / "missing")


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP range support (enough to test resuming)."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        data = path.read_bytes()
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            data = data[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_download_resumes_and_checks_sha256(tmp_path):
    payload = np.random.default_rng(0).bytes(300_000)
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "f.bin").write_bytes(payload)
    digest = __import__("hashlib").sha256(payload).hexdigest()
    handler = lambda *a, **k: _RangeHandler(*a, directory=str(tmp_path / "srv"), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/f.bin"
        dest = tmp_path / "dl" / "f.bin"
        dest.parent.mkdir()
        (tmp_path / "dl" / "f.bin.part").write_bytes(payload[:100_000])  # an interrupted download
        DS.download(url, dest, sha256=digest, progress=False)
        assert dest.read_bytes() == payload and not (tmp_path / "dl" / "f.bin.part").exists()
        with pytest.raises(RuntimeError, match="does not match"):
            DS.download(url, tmp_path / "dl" / "g.bin", sha256="0" * 64, progress=False)
    finally:
        server.shutdown()
    # file:// URLs ignore ranges: a stale partial file is replaced, not appended to
    (tmp_path / "dl" / "h.bin.part").write_bytes(b"stale")
    DS.download((tmp_path / "srv" / "f.bin").as_uri(), tmp_path / "dl" / "h.bin", sha256=digest, progress=False)
    assert (tmp_path / "dl" / "h.bin").read_bytes() == payload


def test_download_reports_an_unreachable_network(tmp_path):
    with pytest.raises(DS.NetworkUnavailable, match="not reachable.*--from DIR"):
        DS.download("http://127.0.0.1:9/x.tar", tmp_path / "x.tar", progress=False, timeout=5,
                   manual_hint="pass --from DIR")


def test_manifest_and_safe_extraction(tmp_path):
    _write_images(tmp_path / "src", ["a.png", "b.png"])
    items = [(tmp_path / "src" / "a.png", "train/a.png"), (tmp_path / "src" / "b.png", "eval/b.png")]
    counts = DS.prepare_images(items, tmp_path / "out", 8, progress=False)
    assert counts == {"written": 2, "skipped": 0, "failed": 0}
    assert DS.verify_sha256_manifest(tmp_path / "out", progress=False) == []
    Image.new("RGB", (8, 8)).save(tmp_path / "out" / "eval" / "b.png")
    assert DS.verify_sha256_manifest(tmp_path / "out", progress=False) == ["eval/b.png"]
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as z:
        z.writestr("../escape.txt", "x")
    with pytest.raises(ValueError, match="outside"):
        DS.extract_archive(tmp_path / "evil.zip", tmp_path / "x")
    assert not (tmp_path / "escape.txt").exists()


# ----------------------------------------------------------------------------- strdiff data prepare
@pytest.fixture()
def prepare():
    from strdiff_edu.tools import prepare as mod

    return mod


def test_prepare_paris_from_a_hand_downloaded_folder_is_resumable(tmp_path, prepare):
    src = tmp_path / "paris"
    _write_images(src, [f"paris_train_original/{i}.png" for i in range(5)])
    _write_images(tmp_path / "z", [f"paris_eval_gt/{i}_gt.png" for i in range(2)])
    with zipfile.ZipFile(src / "eval.zip", "w") as z:  # part of it as an archive
        for p in (tmp_path / "z").rglob("*.png"):
            z.write(p, p.relative_to(tmp_path / "z"))
    out = tmp_path / "data"
    assert prepare.main(["paris", "--from", str(src), "--out", str(out), "--size", "32", "--no-progress"]) == 0
    files = sorted(p.relative_to(out / "paris").as_posix() for p in (out / "paris").rglob("*.png"))
    assert len(files) == 7 and sum(f.startswith("eval/") for f in files) == 2
    assert Image.open(out / "paris" / files[0]).size == (32, 32)
    assert DS.verify_sha256_manifest(out / "paris", progress=False) == []
    (out / "paris" / files[-1]).unlink()
    counts = prepare.prepare_images(prepare.SPECS["paris"], src, out, 32, False, False)
    assert counts == {"written": 1, "skipped": 6, "failed": 0}


def test_prepare_celeba_uses_the_partition_file(tmp_path, prepare):
    src = tmp_path / "celeba"
    names = [f"{i:06d}.jpg" for i in range(1, 7)]
    _write_images(src / "img_align_celeba", names, size=(18, 22))
    (src / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(names, [0, 0, 1, 2, 2, 0])))
    out = tmp_path / "data"
    prepare.main(["celeba", "--from", str(src), "--out", str(out), "--size", "16", "--no-progress"])
    assert sorted(p.name for p in (out / "celeba" / "eval").iterdir()) == ["000004.png", "000005.png"]
    assert len(list((out / "celeba" / "train").iterdir())) == 4


def test_prepare_nvidia_masks_rebins_by_hole_ratio(tmp_path, prepare):
    src = tmp_path / "masks" / "testing_mask_dataset"
    for i, b in enumerate([(0.01, 0.1), (0.1, 0.2), (0.4, 0.5), (0.4, 0.5)]):
        save_mask(free_form_mask(64, b, i), src / f"{i:05d}.png")
    out = tmp_path / "data"
    prepare.main(["nvidia_masks", "--from", str(tmp_path / "masks"), "--out", str(out), "--size", "64",
                  "--no-progress"])
    got = sorted(p.relative_to(out / "nvidia_masks").as_posix() for p in (out / "nvidia_masks").rglob("*.png"))
    assert [g.split("/")[:2] for g in got] == [["eval", "01-10"], ["eval", "10-20"], ["eval", "40-50"], ["eval", "40-50"]]
    assert DS.verify_sha256_manifest(out / "nvidia_masks", progress=False) == []


def test_prepare_without_network_says_what_to_do(tmp_path, prepare, monkeypatch, capsys):
    monkeypatch.setitem(prepare.SPECS["places2"].urls, "val_256.tar", "http://127.0.0.1:9/val_256.tar")
    with pytest.raises(SystemExit, match="not reachable.*--from DIR"):
        prepare.main(["places2", "--out", str(tmp_path), "--no-progress"])
    with pytest.raises(SystemExit, match="no public download URL"):
        prepare.main(["paris", "--out", str(tmp_path), "--no-progress"])


def test_prepare_generic_folder(tmp_path, prepare):
    _write_images(tmp_path / "mine", ["x/1.png", "x/2.png", "validation/3.png"])
    prepare.main(["folder", "--from", str(tmp_path / "mine"), "--out", str(tmp_path / "d"), "--size", "8",
                  "--no-progress"])
    assert len(list((tmp_path / "d" / "mine" / "train").iterdir())) == 2
    assert len(list((tmp_path / "d" / "mine" / "eval").iterdir())) == 1
    assert D.ImageFolder(tmp_path / "d" / "mine", 8)[0].shape == (3, 8, 8)


def test_cli_data_commands(tmp_path, capsys):
    from strdiff_edu.cli import main
    from strdiff_edu.masks import load_mask

    assert main(["data", "info", "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "13 training scenes" in out and "camera+pywt_camera" in out and "CC-BY 2.0" in out
    assert main(["data", "masks", "--out", str(tmp_path), "--bins", "10-20,50-60", "--per-bin", "3",
                 "--size", "32"]) == 0
    files = sorted(tmp_path.rglob("*.png"))
    assert len(files) == 6 and DS.verify_sha256_manifest(tmp_path, progress=False) == []
    for f in files:
        lo, hi = (int(v) / 100 for v in f.parent.name.split("-"))
        assert lo < float(hole_ratio(load_mask(f))) <= hi
