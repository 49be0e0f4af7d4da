"""`strdiff train --export` never destroys trained weights."""
import hashlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _train(tmp_path, *args):
    cmd = [sys.executable, "-m", "strdiff_edu.cli", "train", "--stage", "structure", "--preset", "tiny",
           "--batch-size", "1", "--crops-per-scene", "2", "--no-progress", "--out", str(tmp_path / "run"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_export_refuses_untrained_and_existing_weights(tmp_path):
    folder = tmp_path / "w"
    r = _train(tmp_path, "--steps", "0", "--export", str(folder))
    assert r.returncode == 2 and "--steps to at least 1" in r.stderr and "Traceback" not in r.stderr
    assert not (folder / "structure.pt").exists()
    r = _train(tmp_path, "--steps", "2", "--export", str(folder))
    assert r.returncode == 0, r.stderr[-1500:]
    first = _sha(folder / "structure.pt")
    r = _train(tmp_path, "--steps", "3", "--resume", "--export", str(folder))
    assert r.returncode == 2 and "--force" in r.stderr and "Traceback" not in r.stderr
    assert _sha(folder / "structure.pt") == first                      # untouched
    r = _train(tmp_path, "--steps", "3", "--resume", "--export", str(folder), "--force")
    assert r.returncode == 0, r.stderr[-1500:]
    assert _sha(folder / "structure.pt") != first
