"""The training loop: it learns, resumes exactly, runs under DDP, and its checkpoints are checked."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from strdiff_edu import checkpoint as ck
from strdiff_edu import get_profile
from strdiff_edu.losses import reverse_matching_loss
from strdiff_edu.train import BatchSource, StageLoss, TrainConfig, build_network, train
from strdiff_edu.weights import load_network

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny():
    prof = get_profile("tiny")
    return prof, prof.sde.build()


def test_overfitting_one_sample_lowers_the_loss_tenfold(tiny):
    """One sample, one t: the Eq. 10 matching loss falls >= 10x. (IR-SDE's U-Net has no
    normalisation and must learn a gain of ~1/sigma_bar from a small init: it takes ~150 steps.)"""
    prof, sde = tiny
    b = BatchSource(prof, TrainConfig(preset="tiny")).batch(0, 1)
    g = torch.Generator().manual_seed(1)
    t = torch.tensor([sde.T])
    noise = torch.randn(b["x0"].shape, generator=g)
    x_t = sde.add_noise(b["x0"], b["mu_x"], t, noise)
    ideal = sde.ideal_reverse_state(x_t, b["x0"], b["mu_x"], t)
    torch.manual_seed(0)
    net, _ = build_network("structure", prof)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(150):
        loss = reverse_matching_loss(sde, net(x_t, b["mu_x"], t), x_t, b["mu_x"], t, ideal, b["known"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-10:]) < losses[0] / 10, (losses[0], losses[-10:])


@pytest.mark.parametrize("stage", ["structure", "texture", "texture-irsde", "discriminator"])
def test_every_stage_runs_and_writes_its_outputs(tmp_path, stage):
    cfg = TrainConfig(stage=stage, preset="tiny", steps=3, batch_size=2, out=str(tmp_path / stage),
                      checkpoint_every=2, log_every=1, progress=False)
    summary = train(cfg)
    out = Path(summary["out"])
    assert summary["steps"] == 3 and summary["final_loss"] > 0
    assert (out / "last.pt").exists() and (out / "metrics.csv").exists() and (out / "loss.png").exists()
    assert len((out / "metrics.csv").read_text().strip().splitlines()) == 4
    network = {"texture-irsde": "irsde"}.get(stage, stage)
    net, config = load_network(out / "last.pt", network)
    assert config["sde"]["T"] == 100 and not net.training


class _InterruptAt:
    """A batch source that raises KeyboardInterrupt when asked for a given step (Ctrl-C)."""

    def __init__(self, source, step):
        self.source, self.step = source, step

    def batch(self, step, batch_size, rank=0):
        if step == self.step:
            raise KeyboardInterrupt
        return self.source.batch(step, batch_size, rank)


def test_resume_equals_uninterrupted_training(tmp_path):
    common = dict(stage="texture", preset="tiny", steps=6, batch_size=2, checkpoint_every=100,
                  ema_every=1, lr_milestones=(0.5,), progress=False)
    full = train(TrainConfig(out=str(tmp_path / "full"), **common))
    cfg = TrainConfig(out=str(tmp_path / "cut"), **common)
    source = BatchSource(get_profile("tiny"), cfg)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, batch_source=_InterruptAt(source, 4))
    assert ck.load_checkpoint(tmp_path / "cut" / "last.pt")["step"] == 4  # saved on interruption
    resumed = train(cfg, resume=True)
    assert resumed["steps"] == full["steps"] == 6
    a = ck.load_checkpoint(tmp_path / "full" / "last.pt")
    b = ck.load_checkpoint(tmp_path / "cut" / "last.pt")
    for key in ("model", "ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs after resume"
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]


def test_checkpoint_for_another_T_or_size_is_refused(tmp_path):
    train(TrainConfig(stage="structure", preset="tiny", steps=1, batch_size=1, out=str(tmp_path),
                      progress=False))
    with pytest.raises(ck.CheckpointError, match="sde.T = 100 in the checkpoint but 400 here"):
        load_network(tmp_path / "last.pt", "structure", expect={"sde": {"T": 400}})
    with pytest.raises(ck.CheckpointError, match="image_size = 32 in the checkpoint but 64 here"):
        load_network(tmp_path / "last.pt", "structure", expect={"image_size": 64})
    with pytest.raises(ck.CheckpointError, match="holds the 'structure' network"):
        load_network(tmp_path / "last.pt", "texture")


def test_structure_network_source_needs_a_checkpoint(tiny):
    prof, sde = tiny
    with pytest.raises(ValueError, match="needs the trained structure network"):
        StageLoss("texture", sde, TrainConfig(structure_source="network"))
    with pytest.raises(ValueError, match="t_min"):
        StageLoss("structure", sde, TrainConfig(t_min=0))


def test_discriminator_trains_on_network_structures(tmp_path, tiny):
    """--stage discriminator --structure-source network loads the structure network (it used to
    crash with a TypeError: the network was only loaded for the texture stage)."""
    prof, sde = tiny
    common = dict(preset="tiny", steps=2, batch_size=2, checkpoint_every=2, log_every=1, progress=False)
    structure = train(TrainConfig(stage="structure", out=str(tmp_path / "structure"), **common))
    summary = train(TrainConfig(stage="discriminator", out=str(tmp_path / "disc"), structure_source="network",
                                structure_checkpoint=str(Path(structure["out"]) / "last.pt"), **common))
    assert summary["steps"] == 2 and summary["final_loss"] > 0
    with pytest.raises(ValueError, match="needs the trained structure network"):
        StageLoss("discriminator", sde, TrainConfig(stage="discriminator", structure_source="network"))
    with pytest.raises(ValueError, match="applies to the texture and discriminator stages"):
        StageLoss("structure", sde, TrainConfig(structure_source="network"))


def test_ddp_two_processes_on_cpu(tmp_path):
    """torchrun with the gloo backend: two ranks train and end with identical weights."""
    env = dict(os.environ, STRDIFF_PROFILE="tiny", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "strdiff_edu.cli", "train", "--stage", "structure", "--steps", "2", "--batch-size", "1",
           "--out", str(tmp_path), "--no-progress"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["ddp_consistent"] is True


def test_a_trained_texture_network_moves_toward_the_structure_it_is_given():
    """Train a tiny SPADE texture network where the hole's content is only in the structure (an
    all-hole mask over per-pixel random gray images, large t): perturbing the structure must move
    the predicted reverse mean *in the same direction*, pixel by pixel."""
    from strdiff_edu.models import build_network as build

    torch.set_num_threads(max(1, torch.get_num_threads()))
    torch.manual_seed(0)
    prof = get_profile("tiny")
    sde, size = prof.sde.build(), 16
    net = build("texture", "tiny")
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)

    def batch(n):
        gray = torch.rand(n, 1, size, size, generator=g)
        y0 = gray.expand(n, 3, size, size).clone()
        known = torch.zeros(n, 1, size, size)
        return y0, known, y0 * known, gray

    for _ in range(300):
        y0, known, mu, x0 = batch(8)
        t = torch.randint(40, sde.T + 1, (8,), generator=g)
        y_t = sde.sample_marginal(y0, mu, t, generator=g)
        ideal = sde.ideal_reverse_state(y_t, y0, mu, t)
        loss = reverse_matching_loss(sde, net(y_t, mu, t, x0), y_t, mu, t, ideal, known, hole_weight=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    y0, known, mu, x0 = batch(16)
    t = torch.full((16,), 70)
    y_t = sde.sample_marginal(y0, mu, t, generator=g)
    delta = 0.1 * torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        base = sde.reverse_step(y_t, net(y_t, mu, t, x0), mu, t, stochastic=False)
        moved = sde.reverse_step(y_t, net(y_t, mu, t, x0 + delta), mu, t, stochastic=False)
    shift = (moved - base).mean(1, keepdim=True)
    corr = torch.corrcoef(torch.stack([shift.flatten(), delta.flatten()]))[0, 1].item()
    assert corr > 0.05, f"prediction change does not follow the structure change (corr {corr:.3f})"


def test_training_leaves_the_plotting_backend_alone(tmp_path):
    """Library code must not switch matplotlib's backend (it silenced every later figure of the
    notebook that trained a network)."""
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("pdf")  # any backend other than Agg, which a careless library would select
    try:
        train(TrainConfig(stage="structure", preset="tiny", steps=1, batch_size=1, out=str(tmp_path),
                          progress=False))
        assert matplotlib.get_backend() == "pdf"
    finally:
        matplotlib.use(before)
