"""The networks: official parameter counts, shapes, conditioning, flags, configs, autocast."""
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from strdiff_edu.models import (NETWORKS, PRESET_NAMES, SPADE, ConditionalUNet,
                                DiscriminatorConfig, UNetConfig, build_discriminator,
                                build_irsde_net, build_network, build_structure_net,
                                build_texture_net, config_from_dict, count_parameters,
                                minibatch_stddev, model_config)
from strdiff_edu.models.layers import (BlurDownsample, LinearAttention, pad_to_multiple,
                                       sinusoidal_embedding)
from strdiff_edu.models.spade import SPADEResBlock

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = {"texture": 3, "structure": 1, "irsde": 3}


def inputs_for(network, batch, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(1, 100, (batch,), generator=g)
    if network == "discriminator":
        return (torch.randn(batch, 3, h, w, generator=g), torch.rand(batch, 1, h, w, generator=g), t)
    c = CHANNELS[network]
    args = (torch.randn(batch, c, h, w, generator=g), torch.randn(batch, c, h, w, generator=g), t)
    return args + ((torch.rand(batch, 1, h, w, generator=g),) if network == "texture" else ())


def meta_count(network, cfg):
    with torch.device("meta"):
        return count_parameters(build_network(network, cfg))


# ---------------------------------------------------------------------------------- paper sizes

@pytest.mark.parametrize("network, expected", [
    ("texture", 163_333_763), ("structure", 137_133_825), ("discriminator", 12_741_377),
    ("irsde", 137_147_523),   # the texture U-Net without its SPADE blocks (notes, Sec. 5.3)
])
def test_paper_preset_reproduces_official_parameter_counts(network, expected):
    assert meta_count(network, model_config("paper", network)) == expected


def test_paper_spade_blocks_and_small_discriminator_counts():
    # The four SPADE blocks (128, 256, 512, 1024 channels) hold 26,186,240 parameters, and the
    # ngf=32 discriminator the official texture script instantiates has 3,376,769.
    with torch.device("meta"):
        net = build_texture_net(model_config("paper", "texture"))
    spade = sum(p.numel() for name, p in net.named_parameters() if ".spade." in name)
    assert spade == 26_186_240
    assert meta_count("discriminator", model_config("paper", "discriminator").replace(ngf=32)) == 3_376_769


def test_spectral_norm_adds_buffers_not_parameters():
    cfg = model_config("paper", "texture")
    assert meta_count("texture", cfg) == meta_count("texture", cfg.replace(spectral_norm=False))


def test_cpu_preset_fits_the_size_budget():
    total = sum(meta_count(n, model_config("cpu", n)) for n in NETWORKS)
    assert total * 4 <= 25e6
    for n in NETWORKS:
        assert 2e5 <= meta_count(n, model_config("cpu", n)) <= 2e6


def test_no_group_or_batch_norm_anywhere():
    with torch.device("meta"):
        net = build_texture_net(model_config("paper", "texture"))
    assert not [m for m in net.modules() if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d))]


# ------------------------------------------------------------------------------ shapes, dtypes

@pytest.mark.parametrize("preset", ["tiny", "cpu"])
@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("size", ["preset", (30, 34)])
def test_output_shapes_and_dtypes(preset, network, size):
    torch.manual_seed(0)
    net = build_network(network, preset)
    h, w = (net.config.image_size,) * 2 if size == "preset" else size
    args = inputs_for(network, 2, h, w)
    with torch.no_grad():
        out = net(*args)
    expected = (2, 1) if network == "discriminator" else args[0].shape
    assert out.shape == expected and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_odd_sizes_are_reflect_padded_then_cropped():
    # The output for a 30x34 image is the output for its reflect-padded 32x36 version, cropped.
    torch.manual_seed(0)
    net = build_texture_net(model_config("tiny", "texture")).eval()
    assert net.config.downsampling_factor == 4
    y, mu, t, s = inputs_for("texture", 1, 30, 34)
    pad = lambda z: F.pad(z, (0, 2, 0, 2), mode="reflect")
    with torch.no_grad():
        small = net(y, mu, t, s)
        big = net(pad(y), pad(mu), t, pad(s))
    torch.testing.assert_close(small, big[..., :30, :34])
    assert pad_to_multiple(torch.zeros(1, 1, 3, 2), 8).shape == (1, 1, 8, 8)   # replicate fallback


def test_time_can_be_int_scalar_or_vector_and_matters():
    torch.manual_seed(0)
    net = build_irsde_net(model_config("tiny", "irsde")).eval()
    y, mu, _ = inputs_for("irsde", 3, 32, 32)
    with torch.no_grad():
        a = net(y, mu, 7)
        b = net(y, mu, torch.tensor(7))
        c = net(y, mu, torch.full((3,), 7))
        d = net(y, mu, torch.full((3,), 50))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    assert (a - d).abs().max() > 1e-4
    with pytest.raises(ValueError):
        net(y, mu, torch.tensor([1, 2]))


def test_sinusoidal_embedding_frequencies():
    emb = sinusoidal_embedding(torch.tensor([0.0, 3.0]), 64)
    assert emb.shape == (2, 64)
    k = torch.arange(32)
    torch.testing.assert_close(emb[1, :32], torch.sin(3 * torch.exp(-k * math.log(10000) / 31)))
    torch.testing.assert_close(emb[0], torch.cat([torch.zeros(32), torch.ones(32)]))


# ---------------------------------------------------------------------- structure conditioning

def test_structure_map_changes_texture_output_and_trains_spade():
    torch.manual_seed(0)
    net = build_texture_net(model_config("tiny", "texture"))
    y, mu, t, s = inputs_for("texture", 2, 32, 32)
    out = net(y, mu, t, s)
    with torch.no_grad():
        other = net(y, mu, t, torch.rand_like(s))
    # SPADE starts small (N(0, 0.02) weights, as in the official code) but not at zero.
    assert (out - other).abs().max() > 1e-6
    out.square().mean().backward()
    spade = {n: p for n, p in net.named_parameters() if ".spade." in n}
    assert len(spade) > 0
    for name, p in spade.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_structure_argument_is_required_or_refused():
    torch.manual_seed(0)
    texture = build_texture_net(model_config("tiny", "texture"))
    structure = build_structure_net(model_config("tiny", "structure"))
    y, mu, t, s = inputs_for("texture", 1, 32, 32)
    with pytest.raises(ValueError, match="structure"):
        texture(y, mu, t)
    with pytest.raises(ValueError, match="structure"):
        texture(y, mu, t, s[..., :16, :16])
    x, mux, t = inputs_for("structure", 1, 32, 32)
    with pytest.raises(ValueError, match="spade"):
        structure(x, mux, t, s)


def test_spade_is_positional_norm_when_gamma_and_beta_vanish():
    spade = SPADE(8, hidden=4)
    for conv in (spade.to_gamma, spade.to_beta):
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    features = torch.randn(2, 8, 5, 6) * 3 + 1
    out = spade(features, torch.rand(2, 1, 10, 12))
    torch.testing.assert_close(out.mean(dim=1), torch.zeros(2, 5, 6), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(dim=1, unbiased=False), torch.ones(2, 5, 6), atol=1e-3, rtol=0)
    assert count_parameters(spade) == 1 * 4 * 9 + 4 + 2 * (4 * 8 * 9 + 8)   # no norm affine


def test_spectral_norm_flag():
    torch.manual_seed(0)
    with_sn = SPADEResBlock(16, hidden=8, spectral_norm=True)
    without = SPADEResBlock(16, hidden=8, spectral_norm=False)
    assert hasattr(with_sn.conv_a, "parametrizations") and not hasattr(without.conv_a, "parametrizations")
    assert count_parameters(with_sn) == count_parameters(without)
    feats, s = torch.randn(1, 16, 8, 8), torch.rand(1, 1, 8, 8)
    for _ in range(30):   # power iterations run in training-mode forward passes
        with_sn(feats, s)
    sigma = torch.linalg.matrix_norm(with_sn.conv_a.weight.detach().flatten(1), ord=2)
    assert sigma == pytest.approx(1.0, abs=0.02)
    cfg = model_config("tiny", "texture")
    plain = build_texture_net(cfg.replace(spectral_norm=False))
    assert not any("parametrizations" in n for n, _ in plain.named_parameters())
    assert any("parametrizations" in n for n, _ in build_texture_net(cfg).named_parameters())


# ---------------------------------------------------------------------------------- attention

def test_attention_flag():
    cfg = model_config("tiny", "structure")
    with_attn, without = (build_structure_net(cfg.replace(attention=a)) for a in (True, False))
    n_attn = sum(isinstance(m, LinearAttention) for m in with_attn.modules())
    assert n_attn == 2 * cfg.depth + 1   # every encoder level, every decoder level, the middle
    assert not any(isinstance(m, LinearAttention) for m in without.modules())
    assert count_parameters(with_attn) > count_parameters(without)
    x, mu, t = inputs_for("structure", 2, 30, 34)
    with torch.no_grad():
        assert without(x, mu, t).shape == x.shape


def test_linear_attention_is_pixel_permutation_equivariant():
    torch.manual_seed(0)
    attn = LinearAttention(8, heads=2, dim_head=4)
    x = torch.randn(1, 8, 4, 5)
    perm = torch.randperm(20)
    permuted_in = x.flatten(2)[..., perm].reshape(1, 8, 4, 5)
    with torch.no_grad():
        torch.testing.assert_close(attn(permuted_in).flatten(2), attn(x).flatten(2)[..., perm])


# ------------------------------------------------------------------------------ discriminator

def _randomised_discriminator(preset="tiny"):
    torch.manual_seed(0)
    disc = build_discriminator(model_config(preset, "discriminator"))
    # DDGAN starts the last convs at ~1e-5 scale; make them matter for these tests.
    for block in disc.blocks:
        nn.init.normal_(block.conv2.weight, std=0.05)
    nn.init.normal_(disc.final_conv.weight, std=0.05)
    return disc


def test_discriminator_layout_and_time_dependence():
    disc = _randomised_discriminator()
    assert disc.config.downsampling_factor == 4
    assert [type(b.down).__name__ for b in disc.blocks] == ["Identity"] + ["BlurDownsample"] * 2
    y, x, _ = inputs_for("discriminator", 4, 32, 32)
    with torch.no_grad():
        a, b = disc(y, x, 3), disc(y, x, 90)
    assert a.shape == (4, 1) and (a - b).abs().max() > 1e-4


def test_minibatch_stddev_groups():
    single = minibatch_stddev(torch.randn(1, 6, 3, 3))
    assert single.shape == (1, 7, 3, 3)
    torch.testing.assert_close(single[:, 6], torch.full((1, 3, 3), 1e-4))
    x = torch.randn(8, 6, 3, 3)
    out = minibatch_stddev(x, group_size=4)
    # Groups are strided: samples {0, 2, 4, 6} and {1, 3, 5, 7}.
    expected_even = x[0::2].var(dim=0, unbiased=False).add(1e-8).sqrt().mean()
    torch.testing.assert_close(out[0, 6], expected_even.expand(3, 3))
    assert torch.equal(out[0, 6], out[6, 6]) and not torch.equal(out[0, 6], out[1, 6])
    assert minibatch_stddev(torch.randn(6, 6, 2, 2)).shape == (6, 7, 2, 2)   # group 3 divides 6


def test_discriminator_sees_its_minibatch_group_only():
    disc = _randomised_discriminator()
    y, x, t = inputs_for("discriminator", 8, 32, 32)
    y2 = y.clone()
    y2[1] += 1.0   # change sample 1: its group is {1, 3, 5, 7}
    with torch.no_grad():
        a, b = disc(y, x, t), disc(y2, x, t)
    torch.testing.assert_close(a[0::2], b[0::2])
    assert (a[3] - b[3]).abs() > 1e-4   # same group, other sample: changed through the stddev
    with torch.no_grad():   # a batch of one: the stddev feature is a constant
        assert torch.isfinite(disc(y[:1], x[:1], t[:1])).all()


def test_blur_downsample_matches_separable_fir():
    x = torch.randn(2, 3, 8, 10)
    out = BlurDownsample()(x)
    k = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8
    rows = F.conv2d(F.pad(x, (0, 0, 1, 1)).reshape(6, 1, 10, 10), k.view(1, 1, 4, 1), stride=(2, 1))
    both = F.conv2d(F.pad(rows, (1, 1, 0, 0)), k.view(1, 1, 1, 4), stride=(1, 2))
    assert out.shape == (2, 3, 4, 5)
    torch.testing.assert_close(out, both.reshape(2, 3, 4, 5))


# ------------------------------------------------------------------------------------ configs

@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("network", NETWORKS)
def test_configs_round_trip_through_plain_dicts(preset, network):
    cfg = model_config(preset, network)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert type(cfg).from_dict(data) == cfg
    assert config_from_dict(data) == cfg


def test_rebuilt_network_loads_the_state_dict():
    torch.manual_seed(0)
    net = build_texture_net(model_config("tiny", "texture"))
    clone = build_texture_net(config_from_dict(json.loads(json.dumps(net.config.to_dict()))))
    clone.load_state_dict(net.state_dict())
    args = inputs_for("texture", 1, 32, 32)
    net.eval(), clone.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(*args), clone(*args))


def test_config_validation_and_builder_checks():
    with pytest.raises(ValueError, match="channel_mults"):
        UNetConfig(depth=3, channel_mults=(1, 2))
    with pytest.raises(ValueError, match="unknown"):
        UNetConfig.from_dict({"nf": 8, "wings": 2})
    with pytest.raises(ValueError):
        build_texture_net(model_config("tiny", "irsde"))
    with pytest.raises(ValueError):
        build_structure_net(model_config("tiny", "texture"))
    with pytest.raises(TypeError):
        build_discriminator(model_config("tiny", "texture"))
    with pytest.raises(ValueError):
        model_config("huge", "texture")
    assert isinstance(model_config("cpu", "discriminator"), DiscriminatorConfig)
    assert isinstance(build_network("irsde", "tiny"), ConditionalUNet)


# ------------------------------------------------------------------------ devices, precision

@pytest.mark.parametrize("network", NETWORKS)
def test_runs_under_bf16_autocast(network):
    torch.manual_seed(0)
    net = build_network(network, "tiny")
    args = inputs_for(network, 2, 30, 34)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(*args)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_follows_the_input_dtype_in_bf16():
    torch.manual_seed(0)
    net = build_texture_net(model_config("tiny", "texture")).to(torch.bfloat16)
    args = [a.to(torch.bfloat16) if a.is_floating_point() else a for a in inputs_for("texture", 1, 32, 32)]
    with torch.no_grad():
        out = net(*args)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_meta_device_forward_and_flop_table():
    spec = importlib.util.spec_from_file_location("model_table", ROOT / "benchmarks" / "model_table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    rows = table.table_rows(["tiny"])
    assert [r["network"] for r in rows] == list(NETWORKS)
    for r in rows:
        assert r["params"] == meta_count(r["network"], model_config("tiny", r["network"]))
        assert r["gflops"] > 0
    texture = next(r for r in rows if r["network"] == "texture")
    irsde = next(r for r in rows if r["network"] == "irsde")
    assert texture["gflops"] > irsde["gflops"]   # SPADE costs something
    assert "all four" in table.format_table(rows)
