"""Warm starts (`--init-from`) and the optional hole-colour term of the clean-state loss."""
import numpy as np
import pytest
import torch

from strdiff_edu import checkpoint as ckpt_io
from strdiff_edu.losses import clean_matching_loss, hole_colour_l1, masked_l1
from strdiff_edu.train import TrainConfig, train


def test_hole_colour_l1_matches_a_numpy_computation():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(3, 3, 8, 8, generator=g), torch.rand(3, 3, 8, 8, generator=g)
    known = (torch.rand(3, 1, 8, 8, generator=g) > 0.4).float()
    known[2] = 1.0                                     # an image without a hole adds 0
    p, q, k = pred.numpy(), target.numpy(), known.numpy()
    per = []
    for i in range(3):
        hole = k[i, 0] == 0
        per.append(np.abs(p[i][:, hole].mean(1) - q[i][:, hole].mean(1)) if hole.any() else np.zeros(3))
    assert hole_colour_l1(pred, target, known).item() == pytest.approx(np.mean(per), rel=1e-5)
    # the term only sees the hole's mean: a zero-mean change inside the hole leaves it unchanged
    bump = torch.zeros_like(pred)
    bump[0, :, 0, 0], bump[0, :, 7, 7] = 0.3, -0.3
    known0 = torch.ones_like(known)
    known0[0, :, 0, 0] = known0[0, :, 7, 7] = 0
    assert hole_colour_l1(pred + bump, pred, known0).item() == pytest.approx(0.0, abs=1e-7)
    total = clean_matching_loss(pred, target, known, 10.0, colour_weight=2.0)
    assert total.item() == pytest.approx((masked_l1(pred, target, known) + 2 * hole_colour_l1(pred, target, known)).item())


def _cfg(tmp_path, name, **kw):
    base = dict(stage="texture-irsde", preset="tiny", steps=3, prediction="x0", out=str(tmp_path / name),
                checkpoint_every=1, ema_every=1, progress=False, lr=1e-3)
    base.update(kw)
    return TrainConfig(**base)


def test_init_from_continues_the_step_count_from_the_given_weights(tmp_path):
    train(_cfg(tmp_path, "a"))
    first = ckpt_io.load_checkpoint(tmp_path / "a" / "last.pt")
    summary = train(_cfg(tmp_path, "b", steps=5, init_from=str(tmp_path / "a" / "last.pt"), colour_weight=1.0))
    assert summary["steps"] == 5
    second = ckpt_io.load_checkpoint(tmp_path / "b" / "last.pt")
    assert [r["step"] for r in second["history"]] == [4, 5]     # two new steps, numbered after the first run's
    moved = [not torch.equal(first["ema"][k], second["ema"][k]) for k in first["ema"] if first["ema"][k].is_floating_point()]
    assert any(moved)


def test_init_from_refuses_other_configurations_and_spent_step_counts(tmp_path):
    train(_cfg(tmp_path, "a"))
    with pytest.raises(ckpt_io.CheckpointError, match="prediction"):
        train(_cfg(tmp_path, "b", prediction="x0-fill", init_from=str(tmp_path / "a" / "last.pt")))
    with pytest.raises(ValueError, match="--steps above 3"):
        train(_cfg(tmp_path, "c", steps=3, init_from=str(tmp_path / "a" / "last.pt")))
    with pytest.raises(ValueError, match="colour-weight"):
        train(_cfg(tmp_path, "d", prediction="noise", colour_weight=1.0))
