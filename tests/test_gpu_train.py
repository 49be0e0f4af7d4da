"""The one GPU training script, run on the CPU at the tiny preset for a few seconds."""
import json
import subprocess
import sys
from pathlib import Path

import torch



ROOT = Path(__file__).resolve().parents[1]


def _run(out, ck, *extra):
    cmd = [sys.executable, str(ROOT / "scripts" / "gpu_train.py"), "--preset", "tiny", "--device", "cpu",
           "--budget-s", "3", "--checkpoint-s", "1", "--batch-size", "2", "--crops-per-scene", "2",
           "--out", str(out), "--ckpt-dir", str(ck), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT)


def test_gpu_training_script_writes_a_loadable_weights_folder_and_resumes(tmp_path):
    out, ck = tmp_path / "w", tmp_path / "ck"
    r = _run(out, ck)
    assert r.returncode == 0, r.stderr[-2000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["curves.csv", "discriminator.pt", "irsde.pt", "manifest.json", "structure.pt", "texture.pt"]
    assert all(p.stat().st_size < 16 * 2**20 for p in out.iterdir())
    manifest = json.loads((out / "manifest.json").read_text())
    for network in ("structure", "texture", "irsde", "discriminator"):
        entry = manifest[network]
        assert entry["steps"] >= 1 and entry["images_seen"] == 2 * entry["steps"]
        assert entry["train_gflops_per_step"] > 0 and entry["images_per_s"] > 0
        run = entry["trained_on"]
        assert 0 < run["mfu"] < 1.5 and run["peak_tflops"] > 0 and run["minutes"] > 0
    assert manifest["texture"]["config"]["model"]["prediction"] == "x0-fill"
    assert manifest["structure"]["config"]["model"]["prediction"] == "x0"
    sde_cfg = manifest["texture"]["config"]["sde"]
    from strdiff_edu.sde import MeanRevertingSDE
    from strdiff_edu.weights import Weights

    nets, _ = Weights(out).load(("texture", "structure", "irsde", "discriminator"), sde=MeanRevertingSDE(**sde_cfg))
    assert set(nets) == {"texture", "structure", "irsde", "discriminator"}
    first = manifest["texture"]["steps"]
    r2 = _run(out, ck, "--resume")
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert "resuming texture at step" in r2.stdout
    assert json.loads((out / "manifest.json").read_text())["texture"]["steps"] > first
    assert torch.load(ck / "texture.pt", weights_only=True)["step"] > first
