"""benchmarks/colour_probe.py: the hole-colour probe starts at its fill, learns, and scores ties
as 'no worse'."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from strdiff_edu import metrics as M
from strdiff_edu.fill import harmonic_fill
from strdiff_edu.masks import free_form_mask, to_known

ROOT = Path(__file__).resolve().parents[1]


def probe_module():
    spec = importlib.util.spec_from_file_location("colour_probe", ROOT / "benchmarks" / "colour_probe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def pool(n: int, seed: int):
    """Images whose hole colour is predictable from the context: a flat colour outside, that
    colour plus 0.2 inside (a smooth fill cannot know the step, a learner can)."""
    rng = np.random.default_rng(seed)
    known = torch.stack([to_known(free_form_mask(64, (0.3, 0.4), rng)[None])[0] for _ in range(n)])
    outside = torch.from_numpy(rng.uniform(0.1, 0.6, (n, 3, 1, 1)).astype(np.float32))
    x = outside.expand(n, 3, 64, 64) + 0.2 * (1 - known)
    return x, known, harmonic_fill(x * known, known)


def test_untrained_probe_is_its_fill():
    probe = probe_module()
    x, k, f = pool(4, 0)
    with torch.no_grad():
        out = probe.ColourNet()(x * k, k, f)
    torch.testing.assert_close(out, M.hole_mean_colour(f, k), rtol=0, atol=0)
    # the flat outside makes the smooth fill miss the step by its full size
    assert torch.allclose((out - M.hole_mean_colour(x, k)).norm(dim=1), torch.full((4,), 0.2 * 3 ** 0.5), atol=1e-3)


@pytest.mark.slow
def test_probe_learns_a_predictable_colour():
    probe = probe_module()
    train, test = pool(64, 1), pool(16, 2)
    fill_err = M.hole_colour_error(test[2], test[0], test[1])
    net, curve = probe.train(train, steps=150, batch=16, seed=0, test=test + (fill_err,), eval_every=150)
    share, err, _ = probe.share_no_worse(net, test + (fill_err,))
    assert err < 0.5 * float(fill_err.mean()) and share == 1.0 and curve[-1][0] == 150


@pytest.mark.slow
def test_probe_cli_with_no_training_ties_biharmonic(tmp_path):
    out = tmp_path / "probe.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "colour_probe.py"), "--out", str(out),
                    "--train-per-scene", "2", "--test-per-scene", "2", "--steps", "0"],
                   check=True, capture_output=True, cwd=ROOT)
    res = json.loads(out.read_text())
    # zero steps: the probe is biharmonic itself, so every pair is a tie and counts as no worse
    assert res["summary"]["probe"]["share_no_worse_than_biharmonic"] == 1.0
    assert res["summary"]["probe"]["mean_error"] == res["summary"]["biharmonic"]["mean_error"]
    assert sum(f["n_pairs"] for f in res["folds"]) == 2 * res["meta"]["training_scenes"]
