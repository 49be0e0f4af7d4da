"""Cost against quality of cheaper StrDiffusion variants (Part VI, book/part6_performance/02_cost_quality.md).

For every variant (IR-SDE; shipped StrDiffusion; a shorter structure stage; slimmer structure
networks; fewer adaptive-resampling iterations) this script runs :func:`strdiff_edu.evaluate.evaluate`
on the frozen eval split (16 crops x 4 mask bins at 64 px, cpu-preset weights, T = 100) for several
sampling seeds and records

* PSNR / SSIM per bin and averaged over bins, per seed, with mean and spread over seeds, and the
  paired difference to shipped StrDiffusion (same seeds = same noise, per image and bin);
* network calls per image (measured: the adaptive resampling's counts depend on the data) and
  network GFLOPs per image = sum over networks of calls x GFLOPs of one forward pass (batch 1,
  :func:`strdiff_edu.models.summary.forward_gflops`), and its ratio to IR-SDE at the same T;
* the same arithmetic at the paper preset (256 px, T = 400) for the variants without resampling,
  whose call counts do not depend on the data.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cost_quality.py                  # CPU
    .venv/bin/python benchmarks/cost_quality.py --device cuda                      # one GPU

The slim structure networks are trained first when their folder is missing (``--train-missing``,
about 12 minutes each on one CPU thread, see ``train_structure``): ``small`` is shipped in
``weights/cpu-cheap``; ``micro`` goes to ``runs/cheap/weights-micro``. Writes
``benchmarks/results/cost_quality.json``. This is a benchmark, not a test. The committed results
took 6.0 minutes on one H100 (``--device cuda``, 3 seeds, 13 variants); on two shared CPU cores a
smoke run (``--images 1 --bins 1 --seeds 0``) took 0.5-1.5 minutes per variant, the full run
was not made there.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from strdiff_edu import data, get_profile  # noqa: E402
from strdiff_edu.checkpoint import network_path  # noqa: E402
from strdiff_edu.evaluate import evaluate  # noqa: E402
from strdiff_edu.masks import PAPER_BINS, bin_name  # noqa: E402
from strdiff_edu.models import config_from_dict, model_config  # noqa: E402
from strdiff_edu.models.summary import forward_gflops  # noqa: E402
from strdiff_edu.resampling import ResamplingSchedule, expected_nfe, resampling_schedule  # noqa: E402
from strdiff_edu.weights import Weights  # noqa: E402

#: Where each structure network lives (a checkpoint folder holding structure.pt).
STRUCTURES = {"shipped": ROOT / "weights" / "cpu", "small": ROOT / "weights" / "cpu-cheap",
              "micro": ROOT / "runs" / "cheap" / "weights-micro"}
#: The official T = 100 resampling constants (u_max 25, u_min 4, jump 2, re 2).
OFFICIAL = dict(u_max=25, u_min=4, jump=2, re=2)

#: name -> (label, method, structure, switch_fraction, resampling constants or None)
VARIANTS = {
    "irsde": ("IR-SDE", "irsde", "shipped", 0.4, None),
    "strdiff": ("StrDiffusion (shipped)", "strdiff", "shipped", 0.4, None),
    "strdiff-sf0.6": ("StrDiffusion, early stage 40 %", "strdiff", "shipped", 0.6, None),
    "strdiff-sf0.8": ("StrDiffusion, early stage 20 %", "strdiff", "shipped", 0.8, None),
    "small": ("small structure net", "strdiff", "small", 0.4, None),
    "small-sf0.6": ("small structure net, early stage 40 %", "strdiff", "small", 0.6, None),
    "small-sf0.8": ("small structure net, early stage 20 %", "strdiff", "small", 0.8, None),
    "micro": ("micro structure net", "strdiff", "micro", 0.4, None),
    "micro-sf0.6": ("micro structure net, early stage 40 %", "strdiff", "micro", 0.6, None),
    "resample-u3": ("resampling, at most 2 iterations", "strdiff-resample", "shipped", 0.4,
                    dict(u_max=3, u_min=1, jump=2, re=2)),
    "resample-u3-j6": ("resampling, at most 2 iterations, every 6th step", "strdiff-resample", "shipped", 0.4,
                       dict(u_max=3, u_min=1, jump=6, re=2)),
    "small-resample-u3": ("small structure net + resampling, at most 2 iterations", "strdiff-resample", "small",
                          0.4, dict(u_max=3, u_min=1, jump=2, re=2)),
    # last: the slowest (up to 24 iterations at each of 31 resampled times)
    "resample": ("adaptive resampling (official 25/4/2/2)", "strdiff-resample", "shipped", 0.4, OFFICIAL),
}


def assemble(structure_folder: Path, base: Path, dest: Path) -> Path:
    """A checkpoint folder with ``base``'s texture / IR-SDE / discriminator and the structure
    network of ``structure_folder`` (copies, links resolved)."""
    dest.mkdir(parents=True, exist_ok=True)
    for n in ("texture", "irsde", "discriminator"):
        shutil.copyfile(network_path(base, n), network_path(dest, n))
    shutil.copyfile(network_path(structure_folder, "structure"), network_path(dest, "structure"))
    manifest = json.loads((base / "manifest.json").read_text())
    manifest["structure"] = json.loads((structure_folder / "manifest.json").read_text())["structure"]
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return dest


def train_structure(variant: str, folder: Path, steps: int = 2000) -> None:
    """Train a slim structure network at the cpu preset with the shipped weights' recipe
    (scripts/train_weights.sh) and export its EMA weights into ``folder``."""
    from strdiff_edu.train import TrainConfig, export_weights, train

    run = ROOT / "runs" / "cheap" / f"structure-{variant}"
    cfg = TrainConfig(stage="structure", preset="cpu", model_variant=variant, steps=steps, out=str(run),
                      lr=5e-4, grad_clip=1.0, lr_milestones=(0.6, 0.85), ema_every=1, ema_decay=0.998,
                      checkpoint_every=250, seed=0, progress=False)
    train(cfg, resume=True)
    export_weights(run, folder, "structure")


def summarise(per_seed: list) -> dict:
    """per_seed: evaluate() entries of one method -> per-bin and average mean/std over seeds."""
    out = {}
    bins = list(per_seed[0]["bins"])
    for b in bins + ["average"]:
        for metric in ("psnr", "ssim"):
            vals = [np.mean([r["bins"][k][metric] for k in bins]) if b == "average" else r["bins"][b][metric]
                    for r in per_seed]
            out.setdefault(b, {})[f"{metric}_mean"] = float(np.mean(vals))
            out[b][f"{metric}_std"] = float(np.std(vals))
            out[b][f"{metric}_per_seed"] = [float(v) for v in vals]
    return out


def per_image(per_seed: list, metric: str) -> np.ndarray:
    """(seeds, bins x images) of one metric."""
    return np.array([[v for b in r["bins"] for v in r["bins"][b][f"{metric}_all"]] for r in per_seed])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names of VARIANTS")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--images", type=int, default=16, help="eval images per bin (of 16)")
    p.add_argument("--bins", type=int, default=len(PAPER_BINS), help="the first BINS mask bins (smoke tests)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--train-missing", action="store_true", help="train a slim structure network whose folder is missing")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cost_quality.json"))
    args = p.parse_args(argv)
    names = [v for v in args.variants.split(",") if v]
    unknown = set(names) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    base = Weights.find(profile="cpu").folder
    for s in {VARIANTS[n][2] for n in names}:
        if not (STRUCTURES[s] / "structure.pt").exists():
            if not args.train_missing:
                p.error(f"{STRUCTURES[s]} has no structure.pt; pass --train-missing to train it")
            train_structure(s, STRUCTURES[s])

    images, masks = data.eval_pairs(get_profile("cpu").image_size)
    images = images[:args.images]
    masks = {b: m[:args.images] for b, m in list(masks.items())[:args.bins]}
    t_start = time.time()
    result = {"meta": {"command": "python benchmarks/cost_quality.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                       "machine": f"{platform.machine()}, {args.device}"
                                  + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else
                                     f", {torch.get_num_threads()} threads") + f", torch {torch.__version__}",
                       "seeds": args.seeds, "n_images": int(images.shape[0]),
                       "bins": [bin_name(b) for b in masks], "weights": "weights/cpu (texture, IR-SDE, "
                       "discriminator) + the variant's structure network", "image_size": int(images.shape[-1]),
                       "structures": {k: str(v.relative_to(ROOT)) for k, v in STRUCTURES.items()}},
              "variants": {}}
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        folders = {s: assemble(STRUCTURES[s], base, Path(tmp) / s) for s in {VARIANTS[n][2] for n in names}}
        for name in names:
            label, method, structure, switch, rs = VARIANTS[name]
            folder = folders[structure]
            t0 = time.time()
            schedule = None
            if switch is not None or rs is not None:
                schedule = ResamplingSchedule(100, **(rs or OFFICIAL), switch_fraction=switch if switch is not None else 0.4)
            per_seed = []
            for seed in args.seeds:
                res = evaluate([method], images, masks, checkpoint=folder, seed=seed, device=args.device,
                               progress=False, fid=False, schedule=schedule)
                per_seed.append(res["methods"][method])
            T = res["meta"]["T"]
            configs = {k: v["config"]["model"] for k, v in json.loads((folder / "manifest.json").read_text()).items()}
            gflops = {n: forward_gflops(n, config_from_dict(configs[n])) for n in configs}
            calls_seed = [{n: float(np.mean([r["bins"][b]["nfe_per_image"].get(n, 0.0) for b in r["bins"]]))
                           for n in per_seed[0]["bins"][next(iter(per_seed[0]["bins"]))]["nfe_per_image"]}
                          for r in per_seed]
            calls = {n: float(np.mean([c[n] for c in calls_seed])) for n in calls_seed[0]}
            if method.startswith("irsde"):  # the IR-SDE sampler counts its network as "texture"
                calls = {"irsde": calls.pop("texture", 0.0), **calls}
            used = {n: c for n, c in calls.items() if c > 0}
            runs[name] = per_seed
            result["variants"][name] = {
                "label": label, "method": method, "structure": structure,
                "structure_nf": configs["structure"]["nf"],
                "structure_attention": configs["structure"]["attention"],
                "switch_fraction": switch,
                "resampling": rs, "T": T,
                "calls_per_image": used,
                "gflops_per_forward": {n: gflops[n] for n in used},
                "gflops_per_image": float(sum(c * gflops[n] for n, c in used.items())),
                "summary": summarise(per_seed),
                "seconds": round(time.time() - t0, 1),
            }
            s = result["variants"][name]["summary"]["average"]
            print(f"{name:20s} PSNR {s['psnr_mean']:.3f} ± {s['psnr_std']:.3f}  SSIM {s['ssim_mean']:.4f} ± "
                  f"{s['ssim_std']:.4f}  GFLOPs/image {result['variants'][name]['gflops_per_image']:.1f}  "
                  f"calls {used}  ({time.time() - t0:.0f} s)", flush=True)
            write(result, runs, args.out, t_start)   # after every variant: a timeout keeps what ran
    write(result, runs, args.out, t_start)
    return 0


def write(result: dict, runs: dict, out, t_start: float) -> None:
    """Add the comparisons (ratio to IR-SDE, paired differences to StrDiffusion, the cheap method) and
    write the JSON."""

    ref_flops = result["variants"].get("irsde", {}).get("gflops_per_image")
    for name, v in result["variants"].items():
        if ref_flops:
            v["flops_vs_irsde"] = v["gflops_per_image"] / ref_flops
        if "strdiff" in runs and name != "strdiff":
            for metric in ("psnr", "ssim"):
                d = per_image(runs[name], metric) - per_image(runs["strdiff"], metric)
                per_pair = d.mean(0)  # average over seeds, one value per (bin, image)
                v[f"delta_{metric}_vs_strdiff"] = {"mean": float(d.mean()), "per_seed": [float(x) for x in d.mean(1)],
                                                   "stderr_pairs": float(per_pair.std(ddof=1) / np.sqrt(per_pair.size))}
    if "paper_arithmetic" not in result:
        result["paper_arithmetic"] = paper_arithmetic()
    result["cheap"] = cheap_summary(result)
    result["meta"]["minutes"] = round((time.time() - t_start) / 60, 2)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out} ({result['meta']['minutes']} min so far)", flush=True)


def cheap_summary(result: dict) -> dict:
    """The ``strdiff-cheap`` method: which measured variant has its settings, its FLOPs ratio to
    IR-SDE, and whether its quality is within the seed spread of shipped StrDiffusion (paired
    mean difference >= minus the spread over seeds of StrDiffusion's bin-averaged score)."""
    from strdiff_edu.methods import CHEAP_STRUCTURE_VARIANT, CHEAP_SWITCH_FRACTION

    out = {"method": "strdiff-cheap", "structure_variant": CHEAP_STRUCTURE_VARIANT,
           "switch_fraction": CHEAP_SWITCH_FRACTION, "weights": "weights/cpu-cheap", "budget_vs_irsde": 1.5}
    same = [n for n, (_, m, s, sf, rs) in VARIANTS.items()
            if m == "strdiff" and rs is None and s == (CHEAP_STRUCTURE_VARIANT or "shipped")
            and sf == CHEAP_SWITCH_FRACTION and n in result["variants"]]
    ref = result["variants"].get("strdiff")
    if not same or ref is None:
        return out
    v = result["variants"][same[0]]
    out["variant"] = same[0]
    out["flops_vs_irsde"] = v.get("flops_vs_irsde")
    checks = {}
    for metric in ("psnr", "ssim"):
        spread = ref["summary"]["average"][f"{metric}_std"]
        delta = v[f"delta_{metric}_vs_strdiff"]["mean"]
        out[f"delta_{metric}"], out[f"strdiff_{metric}_seed_std"] = delta, spread
        checks[metric] = delta >= -spread
    out["within_seed_spread"] = bool(all(checks.values()))
    out["within_budget"] = bool(out["flops_vs_irsde"] is not None and out["flops_vs_irsde"] <= 1.5)
    return out


def paper_arithmetic(presets=("cpu", "paper")) -> dict:
    """GFLOPs per image of the variants without resampling (their calls do not depend on the
    data) and of the official adaptive resampling's cheapest case (u_min iterations everywhere),
    from the call-count formula and each preset's forward GFLOPs."""
    out = {}
    for preset in presets:
        prof = get_profile(preset)
        T = prof.sde.T
        g = {n: forward_gflops(n, preset) for n in ("texture", "structure", "irsde", "discriminator")}
        g.update({f"structure-{v}": forward_gflops("structure", model_config(preset, "structure", v))
                  for v in ("small", "micro")})
        rows = {"irsde": T * g["irsde"]}
        for s_name, s_key in (("", "structure"), ("small ", "structure-small"), ("micro ", "structure-micro")):
            for sf in (0.4, 0.6, 0.8):
                n = expected_nfe(T, ResamplingSchedule(T, 6, 3, 5, 5, switch_fraction=sf), {})
                rows[f"{s_name}strdiff sf{sf}"] = n["structure"] * g[s_key] + n["texture"] * g["texture"]
        rp = resampling_schedule(T)
        from strdiff_edu.resampling import resampled_times
        n = expected_nfe(T, rp, {t: rp.u_min for t, _ in resampled_times(T, rp)})
        rows["strdiff-resample (u_min everywhere)"] = (n["structure"] * g["structure"] + n["texture"] * g["texture"]
                                                       + n["discriminator"] * g["discriminator"])
        out[preset] = {"T": T, "image_size": prof.image_size, "gflops_per_forward": g,
                       "gflops_per_image": rows, "vs_irsde": {k: v / rows["irsde"] for k, v in rows.items()}}
    return out


if __name__ == "__main__":
    raise SystemExit(main())
