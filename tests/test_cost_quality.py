"""Part VI: slimmer structure networks (named model variants) and the ``strdiff-cheap`` method's
network-FLOPs budget (at most 1.5x IR-SDE at the same T)."""
import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from strdiff_edu import get_profile
from strdiff_edu.checkpoint import verify_folder
from strdiff_edu.locations import weights_root
from strdiff_edu.models import build_network, config_from_dict, model_config
from strdiff_edu.models.config import MODEL_VARIANTS
from strdiff_edu.models.summary import forward_gflops
from strdiff_edu.methods import CHEAP_STRUCTURE_VARIANT, CHEAP_SWITCH_FRACTION, build
from strdiff_edu.resampling import ResamplingSchedule, expected_nfe
from strdiff_edu.train import TrainConfig, train
from strdiff_edu.weights import load_network

pytestmark = pytest.mark.usefixtures("one_thread")

BUDGET = 1.5


def _calls(T: int, switch_fraction: float) -> dict:
    # resampling constants are irrelevant without resampling; only the switch matters
    return expected_nfe(T, ResamplingSchedule(T, 6, 3, 5, 5, switch_fraction=switch_fraction), {})


def _strdiff_gflops(preset: str, structure_cfg, switch_fraction: float) -> float:
    T = get_profile(preset).sde.T
    n = _calls(T, switch_fraction)
    return n["structure"] * forward_gflops("structure", structure_cfg) + n["texture"] * forward_gflops("texture", preset)


@pytest.mark.parametrize("preset", ["tiny", "cpu", "paper"])
def test_variants_slim_the_unet(preset):
    full = model_config(preset, "structure")
    for name, changes in MODEL_VARIANTS.items():
        cfg = model_config(preset, "structure", name)
        assert cfg.image_channels == 1 and cfg.depth == full.depth and cfg.channel_mults == full.channel_mults
        if name:
            assert cfg.nf == max(4, full.nf // changes["nf_divisor"]) and cfg.attention is False
    small = forward_gflops("structure", model_config(preset, "structure", "small"))
    assert small < 0.3 * forward_gflops("structure", full)
    if preset != "tiny":  # at tiny both slim variants hit the smallest width, nf = 4
        assert forward_gflops("structure", model_config(preset, "structure", "micro")) < 0.3 * small


def test_unknown_variant_and_discriminator_variant_are_refused():
    with pytest.raises(ValueError, match="unknown model variant"):
        model_config("cpu", "structure", "huge")
    with pytest.raises(ValueError, match="discriminator"):
        model_config("cpu", "discriminator", "small")


@pytest.mark.parametrize("preset", ["cpu", "paper"])
def test_cheap_preset_is_within_the_flops_budget(preset):
    """Calls from the call-count formula x forward FLOPs (FlopCounterMode on meta tensors)."""
    T = get_profile(preset).sde.T
    irsde = T * forward_gflops("irsde", preset)
    cheap = _strdiff_gflops(preset, model_config(preset, "structure", CHEAP_STRUCTURE_VARIANT), CHEAP_SWITCH_FRACTION)
    assert cheap <= BUDGET * irsde
    # the budget binds: the full StrDiffusion (full structure network, 40 % early stage) exceeds it
    assert _strdiff_gflops(preset, model_config(preset, "structure"), 0.4) > BUDGET * irsde


class FlopCounted(torch.nn.Module):
    """Runs a network and adds the FLOPs FlopCounterMode counts in its forward pass."""

    def __init__(self, net):
        super().__init__()
        self.net, self.flops = net, 0

    def forward(self, *args):
        # FlopCounterMode cannot run spectral-norm parametrizations under inference_mode
        with torch.inference_mode(False), torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = self.net(*(a.clone() if torch.is_tensor(a) else a for a in args))
        self.flops += counter.get_total_flops()
        return out


def test_counted_flops_of_a_cheap_sample_match_the_formula():
    """Count the FLOPs of every network call of one real strdiff-cheap sample (batch 1, tiny):
    they equal the formula's calls x forward FLOPs."""
    prof = get_profile("tiny")
    sde = prof.sde.build()
    torch.manual_seed(0)
    s_cfg = model_config("tiny", "structure", CHEAP_STRUCTURE_VARIANT)
    nets = {"texture": FlopCounted(build_network("texture", "tiny").eval()),
            "structure": FlopCounted(build_network("structure", s_cfg).eval())}
    sampler = build("strdiff-cheap", nets=nets, sde=sde, configs={"texture": {"preset": "tiny"}}, fast=False)
    image = torch.rand(1, 3, 32, 32)
    known = torch.ones(1, 1, 32, 32)
    known[..., 8:20, 10:24] = 0
    r = sampler.sample(image, known, generator=torch.Generator().manual_seed(0))
    counted = (nets["texture"].flops + nets["structure"].flops) / 1e9
    assert counted == pytest.approx(_strdiff_gflops("tiny", s_cfg, CHEAP_SWITCH_FRACTION), rel=1e-9)
    n = _calls(sde.T, CHEAP_SWITCH_FRACTION)
    assert int(r.nfe["structure"][0]) == n["structure"] and int(r.nfe["texture"][0]) == n["texture"]


def test_strdiff_cheap_samples_end_to_end_at_tiny():
    prof = get_profile("tiny")
    sde = prof.sde.build()
    torch.manual_seed(1)
    nets = {"texture": build_network("texture", "tiny").eval(),
            "structure": build_network("structure", model_config("tiny", "structure", CHEAP_STRUCTURE_VARIANT)).eval()}
    sampler = build("strdiff-cheap", nets=nets, sde=sde, configs={"texture": {"preset": "tiny"}}, fast=False)
    assert sampler.resampling is None and sampler.switch_fraction == CHEAP_SWITCH_FRACTION
    image = torch.rand(2, 3, 32, 32)
    known = torch.ones(2, 1, 32, 32)
    known[..., 4:28, 6:16] = 0
    r = sampler.sample(image, known, generator=torch.Generator().manual_seed(0))
    assert r.image.shape == image.shape and torch.isfinite(r.image).all()
    assert torch.equal(r.image * known, image * known)
    assert r.structure is not None and r.structure.shape == (2, 1, 32, 32)
    # same seed, same result
    again = sampler.sample(image, known, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.image, r.image)


def test_training_a_variant_records_and_reloads_its_shape(tmp_path):
    train(TrainConfig(stage="structure", preset="tiny", model_variant="small", steps=1, batch_size=1,
                      out=str(tmp_path), progress=False))
    net, cfg = load_network(tmp_path / "last.pt", "structure")
    assert cfg["model"] == model_config("tiny", "structure", "small").to_dict()
    assert net.config.attention is False


def test_shipped_cheap_weights_pair_a_slim_structure_net_with_the_shipped_texture_net():
    folder = weights_root() / "cpu-cheap"
    if not (folder / "manifest.json").exists():
        pytest.skip("weights/cpu-cheap is not in this checkout")
    manifest = verify_folder(folder)   # every listed file matches its sha256
    cpu = json.loads((weights_root() / "cpu" / "manifest.json").read_text())
    # compared as configs: a field added later (e.g. ``prediction``) takes its default when absent
    assert config_from_dict(manifest["structure"]["config"]["model"]) == model_config("cpu", "structure", CHEAP_STRUCTURE_VARIANT)
    assert manifest["structure"]["config"]["sde"] == cpu["texture"]["config"]["sde"]
    for n in ("texture", "irsde", "discriminator"):
        assert manifest[n]["sha256"] == cpu[n]["sha256"]
    assert (folder / "structure.pt").stat().st_size < 2e6
