"""A plain (not editable) install works on its own: the wheel carries the shipped cpu weights, and
the installed package finds them and runs ``strdiff inpaint`` from any folder, outside the checkout."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from strdiff_edu import locations

ROOT = Path(__file__).resolve().parents[1]
MAX_WEIGHTS_MB = 25


def _setuptools_config() -> dict:
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_pyproject_lists_every_code_package_and_maps_the_weights():
    cfg = _setuptools_config()
    code = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "strdiff_edu").rglob("__init__.py")}
    assert code and code <= set(cfg["packages"]), f"add {sorted(code - set(cfg['packages']))} to pyproject.toml"
    assert cfg["package-dir"]["strdiff_edu._weights"] == "weights"
    assert "strdiff_edu._weights.cpu" in cfg["packages"]


def test_weights_root_prefers_the_variable_then_the_checkout(monkeypatch, tmp_path):
    monkeypatch.delenv(locations.WEIGHTS_ENV, raising=False)
    assert locations.checkout_root() == ROOT
    assert locations.weights_root() == ROOT / "weights"
    monkeypatch.setenv(locations.WEIGHTS_ENV, str(tmp_path))
    assert locations.weights_root() == tmp_path


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True, cwd=out)
    (whl,) = out.glob("strdiff_edu-*.whl")
    return whl


def test_the_wheel_carries_the_cpu_weights_within_the_size_limit(wheel):
    with zipfile.ZipFile(wheel) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        manifest = json.loads(zf.read("strdiff_edu/_weights/cpu/manifest.json"))
    for entry in manifest.values():
        assert f"strdiff_edu/_weights/cpu/{entry['file']}" in infos
    weights = sum(i.file_size for n, i in infos.items() if n.startswith("strdiff_edu/_weights/"))
    assert weights <= MAX_WEIGHTS_MB * 2**20
    assert not any(n.startswith(("weights/", "book/", "runs/", "tests/")) for n in infos)


def test_the_installed_package_finds_its_weights_and_inpaints_from_another_folder(wheel, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in (locations.WEIGHTS_ENV, "STRDIFF_PROFILE")}
    env.update(PYTHONPATH=str(site), OMP_NUM_THREADS="1")
    probe = ("import json, strdiff_edu, strdiff_edu.locations as L, strdiff_edu.checkpoint as C;"
             "from strdiff_edu.weights import Weights; w = Weights.find(profile='cpu');"
             "print(json.dumps([strdiff_edu.__file__, str(L.checkout_root()), str(L.weights_root()),"
             "str(w.folder), sorted(C.verify_folder(w.folder))]))")
    got = json.loads(subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env, check=True,
                                    capture_output=True, text=True).stdout)
    package = site / "strdiff_edu"
    assert got[0] == str(package / "__init__.py")          # the installed copy, not the checkout
    assert got[1] == "None" and got[2] == str(package / "_weights")
    assert got[3] == str(package / "_weights" / "cpu")
    assert got[4] == ["discriminator", "irsde", "structure", "texture"]    # every sha256 checks out

    from PIL import Image
    import numpy as np
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((48, 48, 3)) * 255).astype(np.uint8)).save(elsewhere / "photo.png")
    hole = np.zeros((48, 48), np.uint8)
    hole[16:32, 16:32] = 255                                  # white = hole
    Image.fromarray(hole).save(elsewhere / "mask.png")
    run = subprocess.run([sys.executable, "-m", "strdiff_edu.cli", "inpaint", "photo.png", "mask.png", "-o",
                          "out.png", "--method", "irsde", "--no-progress"], cwd=elsewhere, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert Image.open(elsewhere / "out.png").size == (48, 48)

    env[locations.WEIGHTS_ENV] = str(tmp_path / "nowhere")      # a wrong variable: one clear line
    bad = subprocess.run([sys.executable, "-m", "strdiff_edu.cli", "inpaint", "photo.png", "mask.png", "-o",
                          "out2.png", "--no-progress"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and not (elsewhere / "out2.png").exists()
    lines = [l for l in bad.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and str(tmp_path / "nowhere") in lines[0], bad.stderr
