"""The clean-state parameterisations, the harmonic fill, the official attention and the
working-resolution inpainting: each checked against an independent computation."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from strdiff_edu import official
from strdiff_edu.fill import harmonic_fill, known_from_masked, push_pull
from strdiff_edu.losses import clean_matching_loss, masked_l1
from strdiff_edu.metrics import hole_colour_error
from strdiff_edu.models import build_network, model_config
from strdiff_edu.models.layers import LinearAttention
from strdiff_edu.sde import MeanRevertingSDE
from strdiff_edu.train import StageLoss, TrainConfig


# ----------------------------------------------------------------------------- attention
def _official_linear_attention(x, w_qkv, w_out, b_out, g_out, heads, dim_head):
    """IR-SDE's LinearAttention written from its formula with plain loops over heads (no einsum):
    q softmax over features, k softmax over pixels, q scaled by dim_head^-1/2, v divided by H*W,
    context = k v^T, out = context^T q, then 1x1 conv and channel LayerNorm (gain g; eps 1e-5 for
    float32, 1e-3 otherwise, as IR-SDE's LayerNorm)."""
    b, c, h, w = x.shape
    qkv = F.conv2d(x, w_qkv).reshape(b, 3, heads, dim_head, h * w)
    outs = []
    for i in range(b):
        per_head = []
        for hd in range(heads):
            q = torch.softmax(qkv[i, 0, hd], dim=0) * dim_head ** -0.5        # (d, n)
            k = torch.softmax(qkv[i, 1, hd], dim=1)                           # (d, n)
            v = qkv[i, 2, hd] / (h * w)                                       # (e, n)
            context = k @ v.T                                                 # (d, e)
            per_head.append(context.T @ q)                                    # (e, n)
        outs.append(torch.cat(per_head).reshape(heads * dim_head, h, w))
    y = F.conv2d(torch.stack(outs), w_out, b_out)
    mean = y.mean(1, keepdim=True)
    var = y.var(1, keepdim=True, unbiased=False)
    eps = 1e-5 if y.dtype == torch.float32 else 1e-3
    return (y - mean) / torch.sqrt(var + eps) * g_out


def test_linear_attention_matches_the_official_formula():
    torch.manual_seed(0)
    attn = LinearAttention(6, heads=2, dim_head=3).double()
    with torch.no_grad():
        attn.to_out[1].gain.copy_(torch.rand_like(attn.to_out[1].gain) + 0.5)
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    ref = _official_linear_attention(x, attn.to_qkv.weight, attn.to_out[0].weight, attn.to_out[0].bias,
                                     attn.to_out[1].gain, 2, 3)
    assert torch.allclose(attn(x), ref, atol=1e-10)


def test_linear_attention_hand_worked_case_includes_the_pixel_count():
    """One head, dim_head 1, two pixels: softmax over one feature is 1, so q = 1 (times 1^-1/2);
    k = softmax over the two pixels of the key logits; v / (H W) = v / 2. With identity
    projections the pre-norm output at every pixel is sum_n k_n v_n / 2."""
    attn = LinearAttention(1, heads=1, dim_head=1).double()
    keys, values = torch.tensor([0.0, math.log(3.0)]), torch.tensor([2.0, 6.0])
    x = torch.zeros(1, 1, 1, 2, dtype=torch.float64)
    captured = {}
    attn.to_out[0].register_forward_hook(lambda m, i, o: captured.setdefault("in", i[0]))

    def qkv(_):   # q (any), k, v for the two pixels
        return torch.stack([torch.zeros(2), keys, values]).reshape(1, 3, 1, 2).double()

    attn.to_qkv.forward = qkv
    attn(x)
    k = torch.softmax(keys, 0)                                     # 1/4, 3/4
    expected = float((k * values).sum() / 2)                       # (0.5 + 4.5) / 2 = 2.5
    assert expected == pytest.approx(2.5)
    assert torch.allclose(captured["in"], torch.full((1, 1, 1, 2), expected, dtype=torch.float64))


def test_loaded_official_state_dict_computes_the_official_attention(tmp_path):
    """An official-format file loaded through load_official: its middle attention block computes
    the official formula on the file's own tensors (read by their official names)."""
    torch.manual_seed(3)
    ours = build_network("texture", "tiny")
    source = {k: torch.randn_like(v) for k, v in official.to_official_state_dict(ours, "texture").items()}
    torch.save({"state_dict": {"module." + k: v for k, v in source.items()}}, tmp_path / "tex.pth")
    net = official.load_official(tmp_path / "tex.pth", "texture", preset="tiny").double()
    cfg = net.config
    width = cfg.widths[cfg.depth]
    x = torch.randn(1, width, 4, 4, dtype=torch.float64)
    g = lambda k: source[k].double()  # noqa: E731
    normed = x - x.mean(1, keepdim=True)
    normed = normed / torch.sqrt(x.var(1, keepdim=True, unbiased=False) + 1e-3) * g("mid_attn.fn.norm.g")
    ref = x + _official_linear_attention(normed, g("mid_attn.fn.fn.to_qkv.weight"), g("mid_attn.fn.fn.to_out.0.weight"),
                                         g("mid_attn.fn.fn.to_out.0.bias"), g("mid_attn.fn.fn.to_out.1.g"),
                                         cfg.attn_heads, cfg.attn_dim_head)
    assert torch.allclose(net.mid_attn(x), ref, atol=1e-5)   # the norms compute in float32


# ----------------------------------------------------------------------------- the harmonic fill
def test_harmonic_fill_keeps_known_pixels_and_reproduces_a_linear_ramp():
    """A linear function is harmonic: filled from its own known pixels it comes back (the Jacobi
    sweeps converge to it); the known pixels are untouched."""
    h = w = 16
    yy, xx = torch.meshgrid(torch.arange(h) / h, torch.arange(w) / w, indexing="ij")
    ramp = (0.2 + 0.5 * xx + 0.1 * yy).expand(1, 3, h, w).clone()
    known = torch.ones(1, 1, h, w)
    known[..., 5:11, 4:12] = 0
    out = harmonic_fill(ramp * known, known, iterations=2000)
    assert torch.equal(out * known, ramp * known)
    assert (out - ramp).abs().max() < 1e-3
    assert (push_pull(ramp * known, known) - ramp).abs().max() < 0.1   # the start is already close


def test_harmonic_fill_against_a_direct_laplace_solve():
    """The fill converges to the solution of the discrete Laplace equation in the hole (replicate
    border), solved here directly as a linear system with numpy."""
    rng = np.random.default_rng(0)
    h = w = 10
    img = rng.random((h, w))
    hole = np.zeros((h, w), bool)
    hole[2:8, 3:7] = True
    idx = {p: i for i, p in enumerate(zip(*np.nonzero(hole)))}
    A, rhs = np.zeros((len(idx), len(idx))), np.zeros(len(idx))
    for (r, c), i in idx.items():
        A[i, i] = 1.0
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            rr, cc = min(max(r + dr, 0), h - 1), min(max(c + dc, 0), w - 1)
            if (rr, cc) in idx:
                A[i, idx[(rr, cc)]] -= 0.25
            else:
                rhs[i] += 0.25 * img[rr, cc]
    sol = img.copy()
    sol[hole] = np.linalg.solve(A, rhs)[[idx[p] for p in zip(*np.nonzero(hole))]]
    known = torch.from_numpy(~hole).float()[None, None]
    out = harmonic_fill(torch.from_numpy(img).float()[None, None] * known, known, iterations=3000)
    assert np.abs(out[0, 0].double().numpy() - sol).max() < 1e-4


def test_known_from_masked_reads_the_hole():
    mu = torch.rand(2, 3, 8, 8) + 0.1
    known = (torch.rand(2, 1, 8, 8) > 0.4).float()
    assert torch.equal(known_from_masked(mu * known), known)


# ----------------------------------------------------------------------------- x0 parameterisations
@pytest.mark.parametrize("prediction", ["x0", "x0-harmonic"])
def test_clean_prediction_and_returned_noise_agree_with_the_marginal(prediction):
    """The noise a clean-state network returns is the one that maps its x0_hat onto x_t under the
    SDE's marginal (book: eq-clean-parameterization), at per-sample t."""
    sde = MeanRevertingSDE(T=20)
    torch.manual_seed(0)
    net = build_network("irsde", model_config("tiny", "irsde").replace(prediction=prediction), sde).double()
    y = torch.rand(3, 3, 16, 16, dtype=torch.float64)
    known = (torch.rand(3, 1, 16, 16) > 0.3).double()
    mu = y * known
    t = torch.tensor([1, 7, 20])
    y_t = sde.sample_marginal(y, mu, t, generator=torch.Generator().manual_seed(1))
    x0_hat = net(y_t, mu, t, clean=True)
    noise = net(y_t, mu, t)
    assert torch.allclose(sde.add_noise(x0_hat.double(), mu, t, noise), y_t, atol=1e-9)


def test_harmonic_anchor_is_the_prediction_of_a_zero_correction():
    sde = MeanRevertingSDE(T=10)
    net = build_network("irsde", model_config("tiny", "irsde").replace(prediction="x0-harmonic"), sde)
    with torch.no_grad():
        net.head_conv.weight.zero_()
        net.head_conv.bias.zero_()
    y = torch.rand(2, 3, 16, 16) + 0.05
    known = (torch.rand(2, 1, 16, 16) > 0.5).float()
    x0_hat = net(torch.rand_like(y), y * known, 5, clean=True)
    assert torch.allclose(x0_hat, harmonic_fill(y * known, known), atol=1e-6)


def test_noise_network_implied_clean_state_and_refusals():
    sde = MeanRevertingSDE(T=10)
    net = build_network("irsde", "tiny", sde)
    y, mu = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    eps = net(y, mu, 4)
    x0 = net(y, mu, 4, clean=True)
    assert torch.allclose(sde.add_noise(x0, mu, 4, eps), y, atol=1e-4)
    with pytest.raises(ValueError, match="needs the SDE"):
        build_network("irsde", model_config("tiny", "irsde").replace(prediction="x0"))
    with pytest.raises(ValueError, match="RGB network"):
        model_config("tiny", "structure").replace(prediction="x0-harmonic")
    with pytest.raises(ValueError, match="unknown prediction"):
        model_config("tiny", "structure").replace(prediction="v")


def test_clean_loss_is_l1_on_x0_and_training_uses_it():
    """The x0 loss is the hole-weighted L1 on x0; StageLoss with a clean-state network computes it
    on the network's own prediction (recomputed here independently)."""
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    known = (torch.rand(2, 1, 8, 8) > 0.5).float()
    assert torch.isclose(clean_matching_loss(a, b, known, 10.0), masked_l1(a, b, known, 10.0))
    sde = MeanRevertingSDE(T=10)
    cfg = TrainConfig(stage="texture-irsde", preset="tiny", prediction="x0-harmonic", t_min=1)
    net = build_network("irsde", model_config("tiny", "irsde").replace(prediction="x0-harmonic"), sde)
    img = torch.rand(2, 3, 16, 16)
    kn = (torch.rand(2, 1, 16, 16) > 0.4).float()
    batch = {"image": img, "known": kn, "x0": img[:, :1], "mu_x": img[:, :1] * kn}
    loss, _ = StageLoss("texture-irsde", sde, cfg)(net, batch, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    t = torch.randint(1, 11, (2,), generator=g)
    y_t = sde.sample_marginal(img, img * kn, t, generator=g)
    expected = masked_l1(net(y_t, img * kn, t, clean=True), img, kn, 10.0)
    assert torch.isclose(loss, expected)
    with pytest.raises(ValueError, match="eq11 needs --prediction noise"):
        StageLoss("texture", sde, TrainConfig(stage="texture", prediction="x0", target="eq11"))


# ----------------------------------------------------------------------------- evaluation helpers
def test_hole_colour_error_sees_a_dark_fill():
    truth = torch.full((1, 3, 8, 8), 0.5)
    known = torch.ones(1, 1, 8, 8)
    known[..., 2:6, 2:6] = 0
    dark = truth * known
    assert hole_colour_error(truth, truth, known).item() == 0
    assert hole_colour_error(dark, truth, known).item() == pytest.approx(0.5 * math.sqrt(3), rel=1e-6)


def test_working_size_and_paste_back():
    from strdiff_edu.baselines import HarmonicInpainter
    from strdiff_edu.evaluate import inpaint_image, working_size

    assert working_size(64, 64, 64) == (64, 64)
    assert working_size(96, 80, 64) == (96, 80)            # within 1.5x: unchanged
    assert working_size(256, 256, 64) == (64, 64)
    assert working_size(3000, 4000, 64) == (64, 85)
    img = torch.rand(1, 3, 256, 256)
    known = torch.ones(1, 1, 256, 256)
    known[..., 100:140, 60:200] = 0
    out, _, r = inpaint_image(HarmonicInpainter(), img, known, 64)
    assert out.shape == img.shape and r.image.shape[-2:] == (64, 64)
    assert torch.equal(out * known, img * known)
    assert out[..., 100:140, 60:200].std() > 0     # the hole was filled, not left black


def test_fill_anchor_is_the_mean_of_harmonic_and_scikit_image_biharmonic():
    from skimage.restoration import inpaint_biharmonic

    from strdiff_edu.fill import anchor_fill, biharmonic_fill

    torch.manual_seed(2)
    y = torch.rand(2, 3, 16, 16)
    known = (torch.rand(2, 1, 16, 16) > 0.4).float()
    ref = np.stack([inpaint_biharmonic((y[i] * known[i]).permute(1, 2, 0).double().numpy(),
                                       known[i, 0].numpy() < 0.5, channel_axis=-1) for i in range(2)])
    bh = biharmonic_fill(y * known, known)
    assert np.abs(bh.permute(0, 2, 3, 1).double().numpy() - ref).max() < 1e-6
    assert torch.allclose(anchor_fill(y * known, known), 0.5 * (bh + harmonic_fill(y * known, known)), atol=1e-6)


def test_cached_anchor_gives_the_same_samples_as_a_fresh_one():
    """The anchor cache (same mu tensor, eval mode) changes nothing: two samplers, one with a
    network whose cache is cleared before every call, give identical images."""
    from strdiff_edu.sampling import IRSDESampler

    sde = MeanRevertingSDE(T=8)
    torch.manual_seed(0)
    net = build_network("irsde", model_config("tiny", "irsde").replace(prediction="x0-fill"), sde).eval()

    class Fresh(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *a, **k):
            self.inner._anchor_cache = None
            return self.inner(*a, **k)

    y = torch.rand(2, 3, 16, 16)
    known = (torch.rand(2, 1, 16, 16) > 0.4).float()
    a = IRSDESampler(net, sde).sample(y, known, generator=torch.Generator().manual_seed(3)).image
    b = IRSDESampler(Fresh(net), sde).sample(y, known, generator=torch.Generator().manual_seed(3)).image
    assert torch.equal(a, b)


def test_noise_scale_scales_the_reverse_noise_term():
    sde = MeanRevertingSDE(T=10)
    x, eps, mu = torch.rand(2, 3, 8, 8), torch.randn(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    mean = sde.reverse_step(x, eps, mu, 5, stochastic=False)
    full = sde.reverse_step(x, eps, mu, 5, generator=torch.Generator().manual_seed(0))
    half = sde.reverse_step(x, eps, mu, 5, generator=torch.Generator().manual_seed(0), noise_scale=0.5)
    assert torch.allclose(half - mean, 0.5 * (full - mean), atol=1e-6)
    assert torch.equal(sde.reverse_step(x, eps, mu, 5, noise_scale=0.0), mean)


def test_validation_split_uses_training_scenes_only_and_other_crops():
    from strdiff_edu import data

    tr, ev = data.default_split()
    eval_sources = {s for scene in ev for s in scene}
    val = [c for scene in tr for c in data.scene_crops(scene, 1, data.VALIDATION_SEED)]
    train = {c for scene in tr for c in data.scene_crops(scene, 400, 0)}
    assert all(c.source not in eval_sources for c in val)
    assert not set(val) & train
    images, masks = data.validation_pairs(16)
    assert images.shape == (len(tr), 3, 16, 16) and set(masks) == set(data.PAPER_BINS)
