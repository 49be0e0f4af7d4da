"""Samplers: merge, no leakage, the structure's known region, sizes, determinism, call counts,
official quirks, and loading official checkpoints (synthetic state dicts only; nothing downloaded)."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from strdiff_edu import official
from strdiff_edu.models import build_network
from strdiff_edu.methods import build
from strdiff_edu.resampling import (RePaint, Resampling, ResamplingSchedule, expected_nfe, resampled_times,
                                     resampling_schedule, switch_step)
from strdiff_edu.sampling import IRSDESampler, StrDiffusionSampler
from strdiff_edu.sde import MeanRevertingSDE
from strdiff_edu.structure import structure_pair


pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- stubs
class ZeroNoise(nn.Module):
    """A noise network predicting zero; counts its calls."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.calls = 0

    def forward(self, x, mu, t, structure=None):
        self.calls += 1
        return torch.zeros_like(x)


class ScriptedDisc(nn.Module):
    """Returns the next value of a scripted list at every call; records its inputs."""

    def __init__(self, values):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.values = list(values)
        self.inputs = []

    def forward(self, y, x, t):
        self.inputs.append((y.clone(), x.clone(), t))
        return torch.full((y.shape[0], 1), float(self.values.pop(0)))


def _image(b=2, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(b, 3, h, w, generator=g)
    img = torch.nn.functional.avg_pool2d(img, 5, 1, 2)  # some structure for Canny
    known = torch.ones(b, 1, h, w)
    known[:, :, h // 4: 3 * h // 4, w // 3: 2 * w // 3] = 0
    return img, known


@pytest.fixture(scope="module")
def tiny_nets():
    torch.manual_seed(0)
    return {n: build_network(n, "tiny").eval() for n in ("texture", "structure", "irsde", "discriminator")}


LIGHT = ResamplingSchedule(10, u_max=3, u_min=1, jump=2, re=2)


# ----------------------------------------------------------------------------- merge and leakage
@pytest.mark.parametrize("method", ["irsde", "irsde-repaint", "strdiff", "strdiff-resample", "strdiff-ode"])
def test_known_pixels_exact_and_hole_content_never_read(tiny_nets, method):
    sde = MeanRevertingSDE(T=10)
    sampler = build(method, nets=tiny_nets, sde=sde, fast=False, schedule=LIGHT, canny_sigma=1.0)
    img, known = _image()
    r1 = sampler.sample(img, known, generator=torch.Generator().manual_seed(3))
    assert torch.equal(r1.image * known, img * known)          # bit-exact known pixels
    assert r1.image.min() >= 0 and r1.image.max() <= 1
    assert not torch.equal(r1.image, img)                       # the hole was filled, not copied
    # the same call with a different (e.g. ground-truth) hole content gives the same result
    other = torch.where(known > 0.5, img, torch.rand_like(img))
    r2 = sampler.sample(other, known, generator=torch.Generator().manual_seed(3))
    assert torch.equal(r1.image, r2.image)


def test_output_size_equals_input_for_odd_sizes(tiny_nets):
    sde = MeanRevertingSDE(T=4)
    img, known = _image(1, 29, 37)
    for method in ("irsde", "strdiff-resample"):
        r = build(method, nets=tiny_nets, sde=sde, fast=False, schedule=ResamplingSchedule(4, 3, 1, 2, 2), canny_sigma=1.0).sample(
            img, known, generator=torch.Generator().manual_seed(0))
        assert r.image.shape == img.shape and r.raw.shape == img.shape
        if r.structure is not None:
            assert r.structure.shape == (1, 1, 29, 37)


def test_deterministic_under_a_seed(tiny_nets):
    sde = MeanRevertingSDE(T=6)
    img, known = _image()
    s = build("strdiff-resample", nets=tiny_nets, sde=sde, fast=False, schedule=ResamplingSchedule(6, 3, 1, 2, 2), canny_sigma=1.0)
    a = s.sample(img, known, generator=torch.Generator().manual_seed(5))
    b = s.sample(img, known, generator=torch.Generator().manual_seed(5))
    c = s.sample(img, known, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a.image, b.image) and torch.equal(a.structure, b.structure)
    assert [e["accepted"].tolist() for e in a.resampling] == [e["accepted"].tolist() for e in b.resampling]
    assert not torch.equal(a.image, c.image)


def test_samplers_show_their_networks_by_role_and_swap_them_on_a_copy(tiny_nets):
    sde = MeanRevertingSDE(T=3)
    irsde = build("irsde", nets=tiny_nets, sde=sde, fast=False, schedule=ResamplingSchedule(3, 3, 1, 2, 2))
    plain = build("strdiff", nets={k: v for k, v in tiny_nets.items() if k != "discriminator"}, sde=sde, fast=False,
                          schedule=ResamplingSchedule(3, 3, 1, 2, 2))
    full = build("strdiff-resample", nets=tiny_nets, sde=sde, fast=False, schedule=ResamplingSchedule(3, 3, 1, 2, 2))
    assert irsde.networks == {"irsde": tiny_nets["irsde"]}
    assert plain.networks == {"structure": tiny_nets["structure"], "texture": tiny_nets["texture"]}
    assert full.networks == {n: tiny_nets[n] for n in ("structure", "texture", "discriminator")}
    stub = ZeroNoise()
    swapped = full.with_networks({"texture": stub})
    assert swapped.networks["texture"] is stub and full.networks["texture"] is tiny_nets["texture"]
    img, known = _image(1)
    swapped.sample(img, known, generator=torch.Generator().manual_seed(0))
    assert stub.calls >= sde.T                   # the copy runs the network it was given
    with pytest.raises(ValueError, match="no discriminator network"):
        plain.with_networks({"discriminator": tiny_nets["discriminator"]})
    with pytest.raises(ValueError, match="no texture network"):
        irsde.with_networks({"texture": stub})


def test_bad_inputs_are_refused(tiny_nets):
    sde = MeanRevertingSDE(T=3)
    s = build("strdiff", nets=tiny_nets, sde=sde, fast=False, schedule=ResamplingSchedule(3, 3, 1, 2, 2))
    img, known = _image()
    with pytest.raises(ValueError, match="all hole"):
        s.sample(img, torch.zeros_like(known))
    with pytest.raises(ValueError, match="resize the mask"):
        s.sample(img, known[..., :20])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        s.sample(img[:, :1], known)
    with pytest.raises(ValueError, match="needs the discriminator"):
        StrDiffusionSampler(tiny_nets["texture"], tiny_nets["structure"], sde,
                            resampling=Resampling(resampling_schedule(100)))


# ----------------------------------------------------------------------------- the structure's known region
def test_structure_known_region_follows_the_forward_marginal():
    """Fed to the structure network at level t, the known pixels of x_t are N(m_t, sigma_bar_t^2)
    with m_t = mu_x + (x0_known - mu_x) exp(-theta_bar_t), x0_known = rgb2gray(visible pixels)."""
    from skimage.color import rgb2gray

    sde = MeanRevertingSDE(T=20)
    img, known = _image(4, 32, 32, seed=1)
    sampler = StrDiffusionSampler(ZeroNoise(), ZeroNoise(), sde, canny_sigma=1.0)
    seen = {}
    sampler.sample(img, known, generator=torch.Generator().manual_seed(0),
                   callback=lambda info: seen.__setitem__(info.t, info.structure_in) if info.stage == "early" else None)
    assert min(seen) == math.floor(0.4 * 20) and max(seen) == 20
    gray = torch.from_numpy(np.stack([rgb2gray(im.permute(1, 2, 0).numpy()) for im in img * known]))[:, None].float()
    x0k = gray * known
    mu_x = structure_pair(img * known, known, "gray2edge", sigma=1.0).terminal_mean
    kn = known.expand_as(mu_x) > 0.5
    z_all = []
    for t, x_in in seen.items():
        e = math.exp(-float(sde.thetas_cumsum[t]) * sde.dt)
        std = sde.lam * math.sqrt(1 - e * e)
        mean = mu_x + (x0k - mu_x) * e
        z_all.append(((x_in - mean) / std)[kn])
    z = torch.cat(z_all)
    assert z.numel() > 20000
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02
    # the hole is not pasted: it carries the sampler's own state, not the marginal
    x_in = seen[20]
    assert not torch.allclose(x_in[~kn], mu_x[~kn], atol=0.05)


# ----------------------------------------------------------------------------- network-call counts
SCHEDULE = ResamplingSchedule(20, u_max=5, u_min=2, jump=4, re=2)


def _scores_for(script, schedule, refresh):
    """The discriminator outputs that produce a decision script under the official rule
    (accept = lower score); returns (scores, iterations per t, accepted per t, averages per t).
    With ``refresh`` (corrected mode) an early rejection is averaged in and the averaged pair is
    scored again: that score (0.5 above the old reference) becomes the reference."""
    scores, k, acc, avg = [], {}, {}, {}
    for t, decisions in script.items():
        cur = 0.0
        scores.append(cur)
        k[t], acc[t], avg[t] = 0, 0, 0
        for i, accept in enumerate(decisions, start=1):
            if i > schedule.u_max - 1:
                break
            k[t] += 1
            val = cur - 1.0 if accept else cur + 1.0
            scores.append(val)
            if accept:
                acc[t] += 1
                if refresh:
                    cur = val
            elif i >= schedule.u_min:
                break
            else:
                avg[t] += 1
                if refresh:
                    cur += 0.5
                    scores.append(cur)
    return scores, k, acc, avg


@pytest.mark.parametrize("mode", ["corrected", "official"])
def test_call_counts_match_the_formula_for_scripted_decisions(mode):
    T = SCHEDULE.T
    switch = math.floor(0.4 * T)                                  # 8
    times = [t for t in range(T, switch - 1, -1) if t % SCHEDULE.jump == 0]   # 20, 16, 12, 8
    assert times == [t for t, _ in resampled_times(T, SCHEDULE)]
    script = {20: [False, True, True, False], 16: [True, True, True, True, True], 12: [False, False], 8: [True, False, True]}
    scores, k, acc, avg = _scores_for(script, SCHEDULE, refresh=(mode == "corrected"))
    rescored = avg if mode == "corrected" else {}
    assert sum(rescored.values()) == (2 if mode == "corrected" else 0)     # t = 20 and t = 12
    disc = ScriptedDisc(scores)
    s_net, y_net = ZeroNoise(), ZeroNoise()
    sampler = StrDiffusionSampler(y_net, s_net, MeanRevertingSDE(T=T), discriminator=disc,
                                  resampling=Resampling(SCHEDULE), mode=mode, canny_sigma=1.0)
    img, known = _image(1)
    r = sampler.sample(img, known, generator=torch.Generator().manual_seed(0))
    # the formula, written out: E early steps, r_t = min(re, T + 1 - t), k_t iterations
    E = T - switch + 1
    r_t = {t: min(SCHEDULE.re, T + 1 - t) for t in times}
    assert r_t[20] == 1 and r_t[8] == 2
    want = {"structure": E + sum(k[t] * r_t[t] for t in times),
            "texture": T + sum(k.values()),
            "discriminator": len(times) + sum(k.values()) + sum(rescored.values())}
    assert {n: int(v[0]) for n, v in r.nfe.items()} == want
    assert (s_net.calls, y_net.calls) == (want["structure"], want["texture"])
    assert disc.values == []                                       # every scripted score was used
    assert expected_nfe(T, SCHEDULE, k, averages=rescored) == want
    assert {e["t"]: int(e["averaged"][0]) for e in r.resampling} == avg
    assert {e["t"]: int(e["iterations"][0]) for e in r.resampling} == k
    assert {e["t"]: int(e["accepted"][0]) for e in r.resampling} == acc


def test_scheduled_threshold_rule_resamples_while_below_threshold():
    """The hybrid: the official schedule (t % jump == 0, r levels) with the paper's criterion."""
    T, schedule = 10, ResamplingSchedule(10, u_max=4, u_min=1, jump=5, re=2)   # times 10 and 5
    # t=10: ref -1 (below 0) -> -2 -> 0.5 stops after 2 iterations; t=5: ref 1 -> no resampling
    disc = ScriptedDisc([-1.0, -2.0, 0.5, 1.0])
    sampler = StrDiffusionSampler(ZeroNoise(), ZeroNoise(), MeanRevertingSDE(T=T), discriminator=disc,
                                  resampling=Resampling(schedule, rule="scheduled-threshold", threshold=0.0),
                                  canny_sigma=1.0)
    r = sampler.sample(*_image(1), generator=torch.Generator().manual_seed(0))
    assert [int(e["iterations"][0]) for e in r.resampling] == [2, 0]
    assert int(r.nfe["structure"][0]) == (T - 4 + 1) + 2 * 1   # r_10 = 1
    assert int(r.nfe["discriminator"][0]) == 2 + 2 and disc.values == []
    k = {e["t"]: int(e["iterations"][0]) for e in r.resampling}
    assert expected_nfe(T, schedule, k, rule="scheduled-threshold") == {n: int(v[0]) for n, v in r.nfe.items()}


def test_paper_rule_renoises_one_level_at_every_early_step_while_below_threshold():
    """The paper's rule (text and Fig. 2): at every early step t >= floor(0.4 T), while the pair
    scores below the threshold, x_{t-1} -> x_t (one level) and denoise again; capped at u_max - 1."""
    T = 10                                                   # early steps 10, 9, ..., 4 (E = 7)
    schedule = ResamplingSchedule(10, u_max=4, u_min=1, jump=5, re=3)  # jump and re must not matter
    script = {10: [-1.0, -2.0, 0.5], 9: [1.0], 8: [-1.0, -1.0, -1.0, -1.0], 7: [0.0], 6: [2.0],
              5: [-3.0, 4.0], 4: [5.0]}                      # t=8 hits the cap of u_max - 1 = 3
    sde = RecordingSDE(T=T)
    disc = ScriptedDisc([v for vals in script.values() for v in vals])
    s_net, y_net = ZeroNoise(), ZeroNoise()
    sampler = StrDiffusionSampler(y_net, s_net, sde, discriminator=disc,
                                  resampling=Resampling(schedule, rule="paper", threshold=0.0), canny_sigma=1.0)
    r = sampler.sample(*_image(1), generator=torch.Generator().manual_seed(0))
    want_k = {10: 2, 9: 0, 8: 3, 7: 0, 6: 0, 5: 1, 4: 0}
    assert {e["t"]: int(e["iterations"][0]) for e in r.resampling} == want_k
    assert all(e["r"] == 1 for e in r.resampling)
    assert all(int(e["accepted"][0]) == want_k[e["t"]] for e in r.resampling)   # every candidate replaces
    assert sde.transition_ks == [10, 10, 8, 8, 8, 5]         # x_{t-1} -> x_t: one level, theta_t
    E, K = 7, sum(want_k.values())
    want = {"structure": E + K, "texture": T + K, "discriminator": E + K}
    assert {n: int(v[0]) for n, v in r.nfe.items()} == want
    assert (s_net.calls, y_net.calls) == (want["structure"], want["texture"]) and disc.values == []
    assert expected_nfe(T, schedule, want_k, rule="paper") == want


def test_repaint_counts_and_irsde_nfe():
    T, schedule = 12, ResamplingSchedule(12, u_max=4, u_min=3, jump=4, re=3)   # switch 4: times 12 (r=1), 8, 4 (r=3)
    net = ZeroNoise()
    r = IRSDESampler(net, MeanRevertingSDE(T=T), repaint=RePaint(schedule)).sample(
        *_image(1), generator=torch.Generator().manual_seed(0))
    assert int(r.nfe["irsde"][0]) == net.calls == T + 3 * (1 + 3 + 3)
    net2 = ZeroNoise()
    IRSDESampler(net2, MeanRevertingSDE(T=T)).sample(*_image(1), generator=torch.Generator().manual_seed(0))
    assert net2.calls == T


# ----------------------------------------------------------------------------- official quirks
class RecordingSDE(MeanRevertingSDE):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.forward_ks, self.transition_ks, self.paste_levels = [], [], []

    def forward_step(self, x, mu, t, generator=None):
        self.forward_ks.append(int(t))
        return super().forward_step(x, mu, t, generator)

    def sample_transition(self, x_prev, mu, t, generator=None):
        self.transition_ks.append(int(t))
        return super().sample_transition(x_prev, mu, t, generator)

    def sample_marginal(self, x0, mu, t, generator=None):
        self.paste_levels.append(int(t))
        return super().sample_marginal(x0, mu, t, generator)


@pytest.mark.parametrize("mode", ["corrected", "official"])
def test_official_mode_reproduces_each_quirk(mode):
    schedule = ResamplingSchedule(10, u_max=3, u_min=2, jump=5, re=2)   # times 10 (r=1) and 5 (r=2)
    sde = RecordingSDE(T=10)
    # t=10: -1 is accepted; -0.5 beats the stale 0 (official) but not the refreshed -1 (corrected);
    # t=5: two rejections (the first averaged since i < u_min, the second stops); corrected mode
    # scores the averaged pair (0.8), the new reference
    scores = [0.0, -1.0, -0.5, 0.0, 1.0, 2.0]
    disc = ScriptedDisc(scores if mode == "official" else scores[:5] + [0.8] + scores[5:])
    sampler = StrDiffusionSampler(ZeroNoise(), ZeroNoise(), sde, discriminator=disc,
                                  resampling=Resampling(schedule), mode=mode, canny_sigma=1.0)
    img, known = _image(1)
    r = sampler.sample(img, known, generator=torch.Generator().manual_seed(0))
    official_mode = mode == "official"
    # 1. re-noising: steps k-1 -> k are the exact transition at k (corrected) or an
    #    Euler–Maruyama step with theta_{k-1} (official)
    lifts = [10] * 2 + [5, 6] * 2            # t=10: r=1, two iterations; t=5: r=2, two iterations
    assert sde.forward_ks == ([k - 1 for k in lifts] if official_mode else [])
    assert sde.transition_ks == ([] if official_mode else lifts)
    # 2. the known structure: level t at level t (corrected) or one level-(t-1) sample (official)
    if official_mode:   # main loop t = 10..4 only, always level t-1; none inside the resampling
        assert sde.paste_levels == [9, 8, 7, 6, 5, 4, 3]
    else:               # main loop level t, resampling levels t+r-1..t per iteration
        assert sde.paste_levels == [10, 10, 10, 9, 8, 7, 6, 5, 6, 5, 6, 5, 4]
    # 3. stale score
    assert int(r.resampling[0]["accepted"][0]) == (2 if official_mode else 1)
    assert int(r.resampling[1]["accepted"][0]) == 0 and disc.values == []
    # 3b. after the early-rejection average: the averaged pair is scored (corrected) or not (official)
    resc = [float(v[0]) for v in r.resampling[1]["rescored"]]
    assert int(r.resampling[1]["averaged"][0]) == 1
    assert (all(math.isnan(v) for v in resc) if official_mode else resc[0] == pytest.approx(0.8))
    assert len(disc.inputs) == (6 if official_mode else 7)
    # 4. the discriminator sees the texture with its hole zeroed (official) or whole (corrected)
    hole = known < 0.5
    zeroed = [bool((y[hole.expand_as(y)] == 0).all()) for y, _, _ in disc.inputs]
    assert all(zeroed) if official_mode else not any(zeroed)
    # late-stage guide: RGB mean (official) vs rgb2gray (corrected)
    assert sampler.late_guide == ("mean" if official_mode else "gray")


def test_reverse_ode_variant_follows_the_ode_step():
    sde = MeanRevertingSDE(T=6)
    img, known = _image(1)
    r = IRSDESampler(ZeroNoise(), sde, stochastic=False).sample(img, known, generator=torch.Generator().manual_seed(0),
                                                               return_trajectory=True)
    ys = r.trajectory["texture"]
    assert r.trajectory["t"] == list(range(6, -1, -1)) and ys.shape[0] == 7
    mu = img * known
    for i, t in enumerate(range(6, 0, -1)):
        assert torch.allclose(ys[i + 1], sde.reverse_ode_step(ys[i], torch.zeros_like(mu), mu, t))


def test_one_switch_step_bounds_the_main_loop_and_the_resampling(tiny_nets):
    T = 10
    schedule = ResamplingSchedule(T, u_max=3, u_min=1, jump=2, re=1, switch_fraction=0.6)   # early: t >= 6
    rs = Resampling(schedule, rule="always")
    assert not hasattr(rs, "mode")              # the sampler's mode is the only one
    img, known = _image(1)

    def resampled_at(**kw):
        s = StrDiffusionSampler(tiny_nets["texture"], tiny_nets["structure"], MeanRevertingSDE(T=T),
                                resampling=rs, canny_sigma=1.0, **kw)
        stages = []
        r = s.sample(img, known, generator=torch.Generator().manual_seed(0), callback=lambda i: stages.append(i.stage))
        return s.switch_step, stages.count("early"), [e["t"] for e in r.resampling]

    assert switch_step(T, 0.6) == schedule.switch_step(T) == 6
    assert resampled_at() == (6, T - 6 + 1, [10, 8, 6])           # the schedule's boundary by default
    assert resampled_at(switch_fraction=0.8) == (8, T - 8 + 1, [10, 8])   # the sampler's own, when given


def test_schedules_hold_the_official_constants():
    consts = lambda s: (s.u_max, s.u_min, s.jump, s.re)  # noqa: E731
    assert consts(resampling_schedule(400)) == (6, 3, 5, 5)
    assert consts(resampling_schedule(100)) == (25, 4, 2, 2)
    assert len(resampled_times(400, resampling_schedule(400))) == 49     # t = 160, 165, ..., 400
    with pytest.warns(UserWarning, match="retune"):
        assert resampling_schedule(200).T == 200


# ----------------------------------------------------------------------------- official checkpoints
# Official names and shapes at nf=64, depth=4 (texture) and ngf=64 (discriminator), written out by hand.
OFFICIAL_FACTS = {
    "texture": {"init_conv.weight": (64, 6, 7, 7), "time_mlp.1.weight": (256, 64), "time_mlp.3.weight": (256, 256),
                "downs.0.0.mlp.1.weight": (128, 256), "downs.0.0.block1.proj.weight": (64, 64, 3, 3),
                "downs.0.2.fn.norm.g": (1, 64, 1, 1), "downs.0.2.fn.fn.to_qkv.weight": (384, 64, 1, 1),
                "downs.0.2.fn.fn.to_out.1.g": (1, 64, 1, 1), "downs.0.3.weight": (128, 64, 4, 4),
                "downs.3.3.weight": (1024, 512, 3, 3), "downs.0.4.conv_0.weight_orig": (128, 128, 3, 3),
                "downs.3.4.norm_1.mlp_gamma.weight": (1024, 16, 3, 3), "downs.0.4.norm_0.mlp_shared.0.weight": (16, 1, 3, 3),
                "mid_attn.fn.fn.to_qkv.weight": (384, 1024, 1, 1), "ups.0.0.res_conv.weight": (1024, 1536, 1, 1),
                "ups.0.3.1.weight": (512, 1024, 3, 3), "ups.3.3.weight": (64, 128, 3, 3),
                "final_res_block.block1.proj.weight": (64, 128, 3, 3), "final_conv.weight": (3, 64, 3, 3)},
    "structure": {"init_conv.weight": (64, 2, 7, 7), "final_conv.weight": (1, 64, 3, 3)},
    "discriminator": {"t_embed.main.0.weight": (256, 256), "start_conv.weight": (128, 4, 1, 1),
                      "conv1.conv1.0.weight": (128, 128, 3, 3), "conv2.dense_t1.weight": (256, 256),
                      "conv4.skip.0.weight": (512, 512, 1, 1), "final_conv.weight": (512, 513, 3, 3),
                      "end_linear.weight": (1, 512)},
}
OFFICIAL_PARAMS = {"texture": 163_333_763, "structure": 137_133_825, "discriminator": 12_741_377}


@pytest.mark.parametrize("network", ["texture", "structure", "discriminator"])
def test_official_names_and_shapes_map_onto_the_paper_preset(network):
    with torch.device("meta"):
        net = build_network(network, "paper")
        synthetic = {("module." + k): v for k, v in official.to_official_state_dict(net, network).items()}
        for key, shape in OFFICIAL_FACTS[network].items():
            assert tuple(synthetic["module." + key].shape) == shape, key
        converted = official.convert_official_state_dict(synthetic, network, net)
    assert set(converted) == set(net.state_dict())
    learnable = {k for k, _ in net.named_parameters()}
    assert sum(v.numel() for k, v in converted.items() if k in learnable) == OFFICIAL_PARAMS[network]


def test_official_state_dict_values_land_in_the_right_layers(tmp_path):
    """A synthetic official file with distinct values (tiny widths, same layout) loads exactly."""
    torch.manual_seed(1)
    ours = build_network("texture", "tiny")
    source = {k: torch.randn_like(v) for k, v in official.to_official_state_dict(ours, "texture").items()}
    torch.save({"state_dict": {"module." + k: v for k, v in source.items()}}, tmp_path / "tex.pth")
    net = official.load_official(tmp_path / "tex.pth", "texture", preset="tiny")
    sd = net.state_dict()
    assert torch.equal(sd["head_conv.weight"], source["final_conv.weight"])
    assert torch.equal(sd["encoder.0.spade.conv_b.parametrizations.weight.original"], source["downs.0.4.conv_1.weight_orig"])
    assert torch.equal(sd["decoder.0.block1.shortcut.weight"], source["ups.0.0.res_conv.weight"])
    bad = dict(source)
    bad["final_conv.weight"] = torch.zeros(3, 8, 5, 5)
    bad.pop("init_conv.weight")
    with pytest.raises(ValueError, match=r"missing init_conv.weight.*final_conv.weight: shape"):
        official.convert_official_state_dict(bad, "texture", build_network("texture", "tiny"))


@pytest.mark.parametrize("rule", ["official", "scheduled-threshold"])
def test_logged_reference_score_is_the_initial_one(rule):
    """The log's first score per resampled time is the score before any candidate, even after
    acceptances update the reference (on the CPU, ``.cpu()`` alone would alias it)."""
    schedule = ResamplingSchedule(10, u_max=3, u_min=1, jump=10, re=2)   # one time, t = 10
    disc = ScriptedDisc([-0.5, -1.0, -2.0])    # both candidates: lower (official) / below 0 (paper)
    sampler = StrDiffusionSampler(ZeroNoise(), ZeroNoise(), MeanRevertingSDE(T=10), discriminator=disc,
                                  resampling=Resampling(schedule, rule=rule), canny_sigma=1.0)
    r = sampler.sample(*_image(1), generator=torch.Generator().manual_seed(0))
    entry = r.resampling[0]
    assert int(entry["accepted"][0]) == 2
    assert [float(s[0]) for s in entry["scores"]] == [-0.5, -1.0, -2.0]


@pytest.mark.parametrize("mode", ["corrected", "official"])
def test_resampling_renoise_is_the_exact_transition_in_corrected_mode(mode):
    """Lifting level t-1 -> t+r-1 (T = 100, t = 60, r = 2): the corrected sampler's weight on
    (x_{t-1} - mu_x) is the closed form w = exp(-theta_bar_{t+r-1}) / exp(-theta_bar_{t-1}), so a
    state drawn from the marginal at t-1 keeps exp(-theta_bar_{t+r-1}) = 0.1822 of (x_0 - mu_x),
    and its spread is the r-step std lambda sqrt(1 - w^2); the official Euler–Maruyama lift with
    theta one index low gives 0.1819 (Euler–Maruyama with the right index: 0.1813)."""
    sde = MeanRevertingSDE(T=100)
    sampler = StrDiffusionSampler(ZeroNoise(), ZeroNoise(), sde, mode=mode)
    t, r = 60, 2
    exact = float(sde.mean_weights[t + r - 1] / sde.mean_weights[t - 1])
    em = lambda shift: math.prod(1 - float(sde.thetas[k - shift]) * sde.dt for k in range(t, t + r))  # noqa: E731
    from_x0 = lambda w: round(w * float(sde.mean_weights[t - 1]), 4)  # noqa: E731
    assert (from_x0(exact), from_x0(em(0)), from_x0(em(1))) == (0.1822, 0.1813, 0.1819)
    a, b, mu = torch.full((1, 1, 1, 1), 3.0), torch.full((1, 1, 1, 1), -1.0), torch.zeros(1, 1, 1, 1)
    lift = lambda x: sampler.renoise(x, mu, t, r, torch.Generator().manual_seed(5))  # noqa: E731
    weight = float((lift(a) - lift(b)) / (a - b))            # same draws: the noise cancels
    assert weight == pytest.approx(em(1) if mode == "official" else exact, abs=1e-6)
    if mode == "corrected":
        x = torch.zeros(200000, 1, 1, 1)
        spread = float(sampler.renoise(x, torch.zeros_like(x), t, r, torch.Generator().manual_seed(6)).std())
        assert spread == pytest.approx(sde.lam * math.sqrt(1 - exact ** 2), rel=0.01)


def test_official_mode_takes_mu_x_from_the_known_pixel_edges():
    """Both modes compute the terminal structure from the known pixels only: changing the hole's
    content leaves (x0_known, mu_x) unchanged (the official test loader's full-image Canny would not)."""
    img, known = _image(1)
    other = img * known + (1 - known) * torch.rand(img.shape, generator=torch.Generator().manual_seed(9))
    for mode in ("corrected", "official"):
        sampler = StrDiffusionSampler(ZeroNoise(), ZeroNoise(), MeanRevertingSDE(T=10), mode=mode, canny_sigma=1.0)
        (xa, ma), (xb, mb) = sampler.structure_ends(img, known), sampler.structure_ends(other, known)
        assert torch.equal(xa, xb) and torch.equal(ma, mb)
    full = structure_pair(img, known, "gray2edge", sigma=1.0, edge_source="full").terminal_mean
    full_other = structure_pair(other, known, "gray2edge", sigma=1.0, edge_source="full").terminal_mean
    assert not torch.equal(full, full_other)         # what the official loader's edges would do
