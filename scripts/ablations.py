"""The ablations of Part V, at the scale a CPU allows (``make ablations``).

1. Structure pairings (paper Fig. 8): gray2edge (default), gray2gray, edge2edge, edge2gray. Each
   pairing needs its own structure and texture networks: both are trained from scratch at a
   small preset, then StrDiffusion (no resampling) is evaluated on the frozen eval split.
2. Resampling cases A-D (paper Table 2), with the shipped cpu weights:
   A = IR-SDE + RePaint-style resampling, B = StrDiffusion resampling every time (no
   discriminator), C = StrDiffusion without resampling, D = adaptive resampling (the paper's
   letters, Sec. 3.4).

Every evaluation is repeated over several sampling seeds; the JSON records per-seed means and
their spread. The result is committed (book/part5_inference/ablations.json) and read by the
book under nbval, which never retrains.

    .venv/bin/python scripts/ablations.py                 # everything (see --help for sizes)
    .venv/bin/python scripts/ablations.py --skip-pairings # only cases A-D
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from strdiff_edu import data, get_profile  # noqa: E402
from strdiff_edu.evaluate import TABLE2_CASES as CASES  # noqa: E402  (the paper's letters, Sec. 3.4)
from strdiff_edu.evaluate import evaluate  # noqa: E402
from strdiff_edu.masks import PAPER_BINS, bin_name  # noqa: E402
from strdiff_edu.structure import PAIRINGS  # noqa: E402
from strdiff_edu.train import TrainConfig, export_weights, train  # noqa: E402
from strdiff_edu.weights import Weights  # noqa: E402


def summarise(runs):
    """runs: list over seeds of evaluate() results for one method -> per-bin mean/std over seeds."""
    out = {}
    for b in runs[0]["bins"]:
        psnr = [r["bins"][b]["psnr"] for r in runs]
        ssim = [r["bins"][b]["ssim"] for r in runs]
        out[b] = {"psnr_mean": float(np.mean(psnr)), "psnr_std": float(np.std(psnr)),
                  "ssim_mean": float(np.mean(ssim)), "ssim_std": float(np.std(ssim)),
                  "psnr_per_seed": psnr, "ssim_per_seed": ssim}
    allp = [np.mean([r["bins"][b]["psnr"] for b in r["bins"]]) for r in runs]
    alls = [np.mean([r["bins"][b]["ssim"] for b in r["bins"]]) for r in runs]
    out["average"] = {"psnr_mean": float(np.mean(allp)), "psnr_std": float(np.std(allp)),
                      "ssim_mean": float(np.mean(alls)), "ssim_std": float(np.std(alls))}
    return out


def run_eval(methods, images, masks, checkpoint, seeds):
    per_method = {m: [] for m in methods}
    for seed in seeds:
        res = evaluate(methods, images, masks, checkpoint=checkpoint, seed=seed, progress=False, fid=False)
        for m in methods:
            per_method[m].append(res["methods"][m])
        nfe = {m: res["methods"][m]["bins"][next(iter(res["methods"][m]["bins"]))]["nfe_per_image"] for m in methods}
        secs = {m: float(np.mean([v["seconds_per_image"] for v in res["methods"][m]["bins"].values()])) for m in methods}
    return {m: {"summary": summarise(runs), "nfe_per_image": nfe[m], "seconds_per_image": secs[m]}
            for m, runs in per_method.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny", help="preset of the pairing networks (default tiny)")
    p.add_argument("--structure-steps", type=int, default=800)
    p.add_argument("--texture-steps", type=int, default=800)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--images", type=int, default=8, help="eval images per bin (of 16)")
    p.add_argument("--case-images", type=int, default=4, help="eval images per bin for cases A-D")
    p.add_argument("--runs", default=str(ROOT / "runs" / "ablations"))
    p.add_argument("--out", default=str(ROOT / "book" / "part5_inference" / "ablations.json"))
    p.add_argument("--skip-pairings", action="store_true")
    p.add_argument("--skip-cases", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {}
    if args.skip_pairings and "pairings" in result and "meta" not in result["pairings"]:
        result["pairings"]["meta"] = result.get("meta")   # how the kept pairings were made
    result["meta"] = {"command": "python scripts/ablations.py " + " ".join(argv or sys.argv[1:]),
                      "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
                      "seeds": args.seeds, "bins": [bin_name(b) for b in PAPER_BINS]}
    t_start = time.time()

    if not args.skip_pairings:
        prof = get_profile(args.preset)
        images, masks = data.eval_pairs(prof.image_size)
        images = images[:args.images]
        masks = {b: m[:args.images] for b, m in masks.items()}
        pairings = {}
        for pairing in PAIRINGS:
            t0 = time.time()
            folder = Path(args.runs) / pairing / "weights"
            for stage, steps in (("structure", args.structure_steps), ("texture", args.texture_steps)):
                run = Path(args.runs) / pairing / stage
                cfg = TrainConfig(stage=stage, preset=args.preset, steps=steps, out=str(run), pairing=pairing,
                                  lr=5e-4, grad_clip=1.0, lr_milestones=(0.6, 0.85), ema_every=1,
                                  ema_decay=0.995, checkpoint_every=200, progress=False)
                summary = train(cfg, resume=True)
                export_weights(run, folder, stage)
                print(f"[{pairing}] {stage}: {summary['steps']} steps, loss {summary['final_loss']:.4f}")
            ev = run_eval(["strdiff"], images, masks, folder, args.seeds)["strdiff"]
            ev["train_minutes"] = round((time.time() - t0) / 60, 2)
            pairings[pairing] = ev
            print(f"[{pairing}] PSNR {ev['summary']['average']['psnr_mean']:.2f} "
                  f"SSIM {ev['summary']['average']['ssim_mean']:.4f}")
        result["pairings"] = {"preset": args.preset, "image_size": prof.image_size, "n_images": args.images,
                              "structure_steps": args.structure_steps, "texture_steps": args.texture_steps,
                              "prediction": "noise", "results": pairings, "meta": dict(result["meta"])}

    if not args.skip_cases:
        weights = Weights.find(profile="cpu").folder
        images, masks = data.eval_pairs(get_profile("cpu").image_size)
        images = images[:args.case_images]
        masks = {b: m[:args.case_images] for b, m in masks.items()}
        cases = run_eval(list(CASES.values()), images, masks, weights, args.seeds)
        from strdiff_edu.checkpoint import verify_folder

        result["cases"] = {"weights": "weights/cpu", "n_images": args.case_images,
                           "weights_sha256": {k: v["sha256"][:12] for k, v in verify_folder(weights).items()},
                           "results": {case: {"method": m, **cases[m]} for case, m in CASES.items()}}
        for case, m in CASES.items():
            s = cases[m]["summary"]["average"]
            print(f"case {case} ({m}): PSNR {s['psnr_mean']:.2f} ± {s['psnr_std']:.2f}, "
                  f"SSIM {s['ssim_mean']:.4f}; NFE {cases[m]['nfe_per_image']}")

    result["meta"]["minutes"] = round((time.time() - t_start) / 60, 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
