"""Checkpoints (safe, atomic, config-checked) and the training losses."""
import json

import pytest
import torch

from strdiff_edu import checkpoint as ck
from strdiff_edu.losses import discriminator_loss, masked_l1, reverse_matching_loss
from strdiff_edu.sde import MeanRevertingSDE


def _payload(T=100):
    return {"network": "structure", "config": {"sde": MeanRevertingSDE(T=T).config(), "model": {"nf": 8}},
            "model": {"w": torch.arange(4.0)}}


def test_round_trip_and_config_check(tmp_path):
    path = ck.save_checkpoint(tmp_path / "a.pt", _payload())
    got = ck.load_checkpoint(path, expect={"sde": {"T": 100}}, network="structure")
    assert torch.equal(got["model"]["w"], torch.arange(4.0))
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed away


def test_checkpoint_with_another_T_is_refused(tmp_path):
    path = ck.save_checkpoint(tmp_path / "a.pt", _payload(T=400))
    with pytest.raises(ck.CheckpointError, match=r"sde\.T = 400 in the checkpoint but 100 here") as exc:
        ck.load_checkpoint(path, expect={"sde": MeanRevertingSDE(T=100).config()})
    assert "sde.max_sigma" not in str(exc.value)  # only real mismatches are listed


def test_wrong_network_is_refused(tmp_path):
    path = ck.save_checkpoint(tmp_path / "a.pt", _payload())
    with pytest.raises(ck.CheckpointError, match="not 'texture'"):
        ck.load_checkpoint(path, network="texture")


class Gadget:
    """Any user class: unpickling it could run arbitrary code."""


def test_checkpoint_containing_a_pickled_object_is_refused(tmp_path):
    bad = dict(_payload(), format=ck.FORMAT, extra=Gadget())
    torch.save(bad, tmp_path / "evil.pt")
    with pytest.raises(ck.CheckpointError, match="pickled Python objects"):
        ck.load_checkpoint(tmp_path / "evil.pt")


def test_corrupt_and_foreign_files_are_refused(tmp_path):
    path = ck.save_checkpoint(tmp_path / "a.pt", _payload())
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ck.CheckpointError, match="corrupt or truncated"):
        ck.load_checkpoint(tmp_path / "cut.pt")
    torch.save({"w": torch.zeros(2)}, tmp_path / "bare.pth")  # an official-style bare state dict
    with pytest.raises(ck.CheckpointError, match="not a strdiff_edu checkpoint"):
        ck.load_checkpoint(tmp_path / "bare.pth")


def test_manifest_detects_a_changed_file(tmp_path):
    ck.save_checkpoint(ck.network_path(tmp_path, "structure"), _payload())
    ck.write_manifest(tmp_path, {"structure": {"steps": 3}})
    assert json.loads((tmp_path / "manifest.json").read_text())["structure"]["steps"] == 3
    assert ck.verify_folder(tmp_path)["structure"]["file"] == "structure.pt"
    with open(ck.network_path(tmp_path, "structure"), "ab") as fh:
        fh.write(b"x")
    with pytest.raises(ck.CheckpointError, match="corrupt or was changed"):
        ck.verify_folder(tmp_path)


def test_masked_l1_weights_the_hole():
    pred, target = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    known = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    # half the pixels known (error 1): 0.5; the other half in the hole: 10 * 0.5
    assert masked_l1(pred, target, known, hole_weight=10).item() == pytest.approx(0.5 + 5.0)
    assert masked_l1(pred, target, known, hole_weight=1).item() == pytest.approx(1.0)


def test_matching_loss_is_zero_for_the_noise_that_lands_on_the_ideal_state():
    sde = MeanRevertingSDE(T=50)
    g = torch.Generator().manual_seed(0)
    x0, mu = torch.rand(2, 1, 4, 4, generator=g, dtype=torch.float64), torch.zeros(2, 1, 4, 4, dtype=torch.float64)
    t = torch.tensor([10, 40])
    xt = sde.sample_marginal(x0, mu, t, generator=g)
    ideal = sde.ideal_reverse_state(xt, x0, mu, t)
    # Invert the reverse mean for the noise: x_{t-1} = x_t - [theta (mu - x_t) + sigma^2/sigma_bar eps] dt
    th = sde.thetas[t].view(-1, 1, 1, 1); sg = sde.sigmas[t].view(-1, 1, 1, 1); sb = sde.marginal_stds[t].view(-1, 1, 1, 1)
    eps = ((xt - ideal) / sde.dt - th * (mu - xt)) * sb / sg ** 2
    known = torch.ones(2, 1, 4, 4)
    assert reverse_matching_loss(sde, eps, xt, mu, t, ideal, known).item() < 1e-6
    assert reverse_matching_loss(sde, eps + 0.1, xt, mu, t, ideal, known).item() > 1e-4


def test_discriminator_loss_terms():
    real, fake, anchor = torch.tensor([3.0]), torch.tensor([-3.0]), torch.tensor([2.5])
    total, parts = discriminator_loss(real, fake, anchor)
    assert parts["triplet"].item() == 0.0  # anchor much closer to real than to fake
    assert parts["adv_real"].item() == pytest.approx(torch.nn.functional.softplus(torch.tensor(-3.0)).item())
    _, parts = discriminator_loss(real, fake, torch.tensor([-2.5]))
    assert parts["triplet"].item() == pytest.approx(5.5 - 0.5 + 1.0, abs=1e-5)
