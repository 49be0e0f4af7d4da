"""The fast path changes results only within tolerance; batched sampling agrees with one image at a
time where it must; the sampler's device-side decisions count calls like the formula says."""
import json

import pytest
import torch

from strdiff_edu.tools import bench
from strdiff_edu.fast import FastPath, fast_sampler, fold_spectral_norm, prepare_network
from strdiff_edu.models import build_network
from strdiff_edu.evaluate import sample_in_batches
from strdiff_edu.methods import build
from strdiff_edu.resampling import Resampling, ResamplingSchedule, expected_nfe, resampled_times
from strdiff_edu.sampling import StrDiffusionSampler
from strdiff_edu.sde import MeanRevertingSDE

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {n: build_network(n, "tiny").eval() for n in ("texture", "structure", "irsde", "discriminator")}


def _inputs(network, batch=3, seed=0):
    return bench.network_inputs(network, "tiny", batch, "cpu", torch.Generator().manual_seed(seed))


def _images(b=2, size=32):
    return bench.synthetic_batch(size, b, "cpu")


def test_folding_spectral_norm_is_exact_and_leaves_the_original_alone(nets):
    network = "texture"             # SPADE's convolutions are the spectrally normalised ones
    net = nets[network]
    args = _inputs(network)
    with torch.no_grad():
        before = net(*args)
        folded = prepare_network(net, FastPath(fold_spectral_norm=True))
        after = folded(*args)
        again = net(*args)          # the original still works (torch shares the parametrised class)
    assert sum(1 for m in folded.modules() if hasattr(m, "parametrizations")) == 0
    assert sum(1 for m in net.modules() if hasattr(m, "parametrizations")) > 0
    assert torch.allclose(before, after, atol=1e-6, rtol=1e-5)
    assert torch.equal(before, again)


def test_fold_counts_the_parametrisations(nets):
    import copy
    net = copy.deepcopy(nets["texture"])
    n = sum(len(m.parametrizations) for m in net.modules() if hasattr(m, "parametrizations"))
    assert n > 0 and fold_spectral_norm(net) == n


@pytest.mark.parametrize("switch,tol", [("channels_last", 1e-5), ("bf16", 0.1)])
@pytest.mark.parametrize("network", ["texture", "structure", "discriminator"])
def test_switches_change_outputs_only_within_tolerance(nets, network, switch, tol):
    args = _inputs(network)
    with torch.inference_mode():
        ref = nets[network](*args)
        out = prepare_network(nets[network], FastPath(**{switch: True}))(*args)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    rel = float((out - ref).abs().max() / ref.abs().max())
    assert rel < tol, f"{switch} moved {network}'s output by {rel:.3g} of its scale"
    if switch == "bf16":
        assert rel > 0      # autocast really ran in bfloat16


def test_torch_compile_matches_eager(nets):
    args = _inputs("discriminator", batch=2)
    with torch.inference_mode():
        ref = nets["discriminator"](*args)
        out = prepare_network(nets["discriminator"], FastPath(compile=True))(*args)
    assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4)


def test_batched_discriminator_scores_equal_one_image_at_a_time(nets):
    d = nets["discriminator"]
    y, x, t = _inputs("discriminator", batch=4)
    with torch.no_grad():
        batched = d(y, x, t, stddev_group=1).reshape(-1)
        single = torch.cat([d(y[i:i + 1], x[i:i + 1], t[i:i + 1]).reshape(-1) for i in range(4)])
        coupled = d(y, x, t).reshape(-1)         # the training-time group of 4 couples the batch
    # random-initialised logits are small (the last convolution starts near zero): compare relatively
    assert torch.allclose(batched, single, rtol=1e-5, atol=0)
    assert not torch.allclose(coupled, single, rtol=1e-3, atol=0)


@pytest.mark.parametrize("method", ["irsde", "strdiff", "strdiff-resample"])
def test_fast_sampler_matches_the_plain_sampler(nets, method):
    sde = MeanRevertingSDE(T=8)
    schedule = ResamplingSchedule(8, u_max=3, u_min=1, jump=2, re=2)
    s = build(method, nets=nets, sde=sde, fast=False, schedule=schedule, canny_sigma=1.0)
    img, known = _images()
    a = s.sample(img, known, generator=torch.Generator().manual_seed(0))
    b = fast_sampler(s, FastPath(fold_spectral_norm=True, channels_last=True)).sample(
        img, known, generator=torch.Generator().manual_seed(0))
    assert (a.image - b.image).abs().max() < 1e-4
    assert {k: v.tolist() for k, v in a.nfe.items()} == {k: v.tolist() for k, v in b.nfe.items()}


class AlwaysOne(torch.nn.Module):
    """A discriminator scoring every pair 1: under the official rule nothing ever scores lower,
    so every resampled time runs exactly u_min iterations."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(()))
        self.batches = []

    def forward(self, y, x, t, stddev_group=None):
        self.batches.append(y.shape[0])
        return torch.ones(y.shape[0], 1)


class ZeroNoise(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, mu, t, structure=None):
        return torch.zeros_like(x)


@pytest.mark.parametrize("early_exit,compact", [(True, False), (False, False), (True, True), (False, True)])
def test_device_side_decisions_count_like_the_formula(early_exit, compact):
    T, schedule = 12, ResamplingSchedule(12, u_max=5, u_min=2, jump=3, re=2)
    disc = AlwaysOne()
    sampler = StrDiffusionSampler(ZeroNoise(), ZeroNoise(), MeanRevertingSDE(T=T), discriminator=disc,
                                  resampling=Resampling(schedule), canny_sigma=1.0, early_exit=early_exit,
                                  compact=compact)
    img, known = _images(b=3)
    r = sampler.sample(img, known, generator=torch.Generator().manual_seed(0))
    times = resampled_times(T, schedule)
    # every candidate is rejected: the first u_min - 1 are averaged in and the average rescored
    want = expected_nfe(T, schedule, {t: schedule.u_min for t, _ in times},
                        averages={t: schedule.u_min - 1 for t, _ in times})
    assert {n: v.tolist() for n, v in r.nfe.items()} == {n: [want[n]] * 3 for n in want}
    assert set(disc.batches) == {3}          # one batched call per scoring, never per image
    n_times = len(resampled_times(T, schedule))
    # masked without early exit: stopped images are still computed (but neither counted nor changed)
    iterations = schedule.u_min if (early_exit or compact) else schedule.u_max - 1
    assert r.calls["texture"] == T + n_times * iterations
    assert all(int(e["iterations"].max()) == schedule.u_min for e in r.resampling)


def test_compacted_and_masked_resampling_take_the_same_decisions():
    """With scores that depend only on which image is scored and how often (not on the random
    draws), both ways of running the candidates accept, reject and stop the same images at the
    same iterations, and count the same calls per image."""
    class ByImage(torch.nn.Module):    # image 0 always improves, image 1 never, image 2 alternates
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(()))
            self.seen = [0, 0, 0]

        def forward(self, y, x, t, stddev_group=None):
            out = []
            # the image's id, written into pixel (0, 0) as 0, 100 or 1000 (the reverse steps of the
            # zero-noise stub shrink it by up to half, never across the 30 / 300 thresholds)
            for value in y[:, 0, 0, 0].tolist():
                image = 0 if value < 30 else 1 if value < 300 else 2
                self.seen[image] += 1
                n = self.seen[image]
                out.append([-float(n), 1.0, (-1.0) ** n][image])
            return torch.tensor(out).reshape(-1, 1)

    # u_max - 1 - u_min = 2: the masked run scores a stopped image twice more per resampled time
    # (ignored), which keeps image 2's alternation in step with the compacted run
    T, schedule = 10, ResamplingSchedule(10, u_max=5, u_min=2, jump=5, re=1)
    img, known = _images(b=3)
    img[:, 0, 0, 0] = torch.tensor([0.0, 100.0, 1000.0])
    known[:, :, 0, 0] = 1
    runs = {}
    for compact in (False, True):
        sampler = StrDiffusionSampler(ZeroNoise(), ZeroNoise(), MeanRevertingSDE(T=T), discriminator=ByImage(),
                                      resampling=Resampling(schedule), canny_sigma=1.0, compact=compact)
        r = sampler.sample(img, known, generator=torch.Generator().manual_seed(0))
        runs[compact] = ([(e["iterations"].tolist(), e["accepted"].tolist()) for e in r.resampling],
                         {n: v.tolist() for n, v in r.nfe.items()})
    assert runs[False] == runs[True]
    iterations = [its for its, _ in runs[True][0]]
    assert all(its[0] == schedule.u_max - 1 and its[1] == schedule.u_min for its in iterations)


def test_sample_in_batches_covers_every_image_and_is_deterministic(nets):
    s = build("strdiff", nets=nets, sde=MeanRevertingSDE(T=6), canny_sigma=1.0, fast=False)
    img, known = _images(b=5)
    a = sample_in_batches(s, img, known, batch_size=2, generator=torch.Generator().manual_seed(1))
    b = sample_in_batches(s, img, known, batch_size=2, generator=torch.Generator().manual_seed(1))
    assert a.image.shape == img.shape and torch.equal(a.image, b.image)
    assert torch.equal(a.image * known, img * known)
    assert a.nfe["texture"].tolist() == [6] * 5 and a.calls["texture"] == 3 * 6
    with pytest.raises(ValueError, match="batch_size"):
        sample_in_batches(s, img, known, batch_size=0)
    # one generator per batch, made from the batch's first index: batch [2:4] is the same as alone
    per_batch = sample_in_batches(s, img, known, batch_size=2, generator=lambda i: torch.Generator().manual_seed(i))
    alone = s.sample(img[2:4], known[2:4], generator=torch.Generator().manual_seed(2))
    assert torch.equal(per_batch.image[2:4], alone.image) and not torch.equal(per_batch.image, a.image)


def test_benchmark_runs_and_reports(tmp_path):
    out = tmp_path / "bench.json"
    runs = [("irsde", 6, 1, FastPath()), ("strdiff-resample", 6, 2, FastPath(fold_spectral_norm=True))]
    r = bench.run("tiny", "cpu", sections=("peak", "networks", "samplers", "checks"), T=6, batch=1,
                  sampler_runs=runs, out=out, log=lambda s: None)
    assert r["errors"] == {}
    saved = json.loads(out.read_text())
    nets_rows = saved["sections"]["networks"]
    assert {row["network"] for row in nets_rows} == {"texture", "structure", "irsde", "discriminator"}
    assert all(row["forward_images_per_s"] > 0 and row["gflops_forward"] > 0 for row in nets_rows)
    rows = saved["sections"]["samplers"]
    assert rows[0]["nfe_per_image"] == {"irsde": 6.0}
    assert rows[1]["nfe_per_image"]["structure"] >= 6 - 2 + 1         # at least the early steps
    for row in rows:   # time inside the networks is clocked: it cannot exceed the wall time
        assert 0 < row["network_seconds"] <= row["seconds_per_batch"]
        assert row["overhead_fraction"] >= 0
    assert saved["sections"]["checks"]["discriminator_batched_vs_single"] < 1e-5
    text = bench.tables(r)
    assert "| irsde | 6 | 1 | plain |" in text and "strdiff-resample" in text


def test_sampler_timing_counts_each_network_in_its_own_role():
    from strdiff_edu.models.summary import measure
    rows = bench.sampler_timing([("irsde", 4, 2, FastPath()), ("strdiff", 4, 2, FastPath())], "tiny", "cpu")
    irsde, strdiff = rows
    assert irsde["nfe_per_image"] == {"irsde": 4.0} and irsde["batched_calls"] == {"irsde": 4}
    g = {n: measure("tiny", n)["gflops"] for n in ("irsde", "texture", "structure")}
    assert g["irsde"] != g["texture"]       # so counting IR-SDE's calls as texture calls would show
    assert irsde["network_gflops_per_image"] == pytest.approx(4 * g["irsde"])
    early = 4 - 1 + 1                       # t = 4 .. floor(0.4 * 4) = 1
    assert strdiff["nfe_per_image"] == {"structure": early, "texture": 4.0}
    assert strdiff["network_gflops_per_image"] == pytest.approx(early * g["structure"] + 4 * g["texture"])
    assert "| irsde | 4 | 2 | plain |" in bench.tables({"environment": {"device": "cpu", "torch": "x", "threads": 1},
                                                         "preset": "tiny", "T": 4, "sections": {"samplers": rows}})


def test_bench_cli_parses_and_rejects_unknown_plans():
    from strdiff_edu.cli import build_parser
    args = build_parser().parse_args(["bench", "--plan", "cpu", "--sections", "peak,networks", "--out", "x.json"])
    assert args.plan == "cpu" and args.sections == "peak,networks"
    with pytest.raises(ValueError, match="unknown plan"):
        bench.plan("huge", "cpu")


def test_build_uses_the_exact_cpu_fast_path_by_default(nets):
    sde = MeanRevertingSDE(T=6)
    img, known = _images()
    fast = build("strdiff", nets=nets, sde=sde, canny_sigma=1.0)
    exact = build("strdiff", nets=nets, sde=sde, canny_sigma=1.0, fast=False)
    assert fast.networks["texture"] is not nets["texture"] and exact.networks["texture"] is nets["texture"]
    a = fast.sample(img, known, generator=torch.Generator().manual_seed(0)).image
    b = exact.sample(img, known, generator=torch.Generator().manual_seed(0)).image
    assert (a - b).abs().max() < 1e-5
