"""Quality of the shipped weights: choosing the defaults on the validation split, scoring the
final weights on the evaluation split, and inpainting 256 px photographs.

    .venv/bin/python benchmarks/quality.py select --weights weights/cpu --runs runs/weights-cpu \
        --out benchmarks/results/validation_cpu.json      # sampler variants + parameterisation ablation
    .venv/bin/python benchmarks/quality.py eval --weights weights/cpu \
        --out benchmarks/results/quality_cpu.json         # eval split: Table 1 rows and the targets
    .venv/bin/python benchmarks/quality.py photo256 --weights weights/cpu \
        --out benchmarks/results/inpaint256_cpu.json      # 256 px photos: seconds and quality
    .venv/bin/python benchmarks/quality.py colour val_seed0.json val_seed1.json \
        --out benchmarks/results/hole_colour_validation_cpu.json   # the hole-colour statistic taken apart

``select`` works on :func:`strdiff_edu.data.validation_pairs` (crops of the training scenes, never
the evaluation scenes): the default method's variants (reverse SDE or ODE, with or without
re-imposing the known pixels) and, when ``--runs`` holds them, the three parameterisations of the
IR-SDE network at equal steps (``ablation-irsde-noise``, ``ablation-irsde-x0`` and the
``irsde`` run's snapshot, same schedule). ``eval`` scores the methods on the evaluation split
(16 crops x 4 bins, whole merged image) and checks the targets: mean PSNR and SSIM at least
biharmonic's, and the hole's mean-colour error no worse than biharmonic's on at least 80 % of the
images. ``photo256`` renders the evaluation crops at 256 px with masks drawn at 256 px and runs
``strdiff inpaint``'s path (inpainting at the networks' size, pasting back at 256 px).
Every sub-command writes one JSON; ``--parts`` runs a subset (to split the work over processes).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strdiff_edu import data as D  # noqa: E402
from strdiff_edu import metrics as M  # noqa: E402
from strdiff_edu.device import make_generator  # noqa: E402
from strdiff_edu.evaluate import LABELS, inpaint_image  # noqa: E402
from strdiff_edu.masks import bin_name  # noqa: E402
from strdiff_edu.methods import build as build_method  # noqa: E402
from strdiff_edu.methods import DEFAULT_METHOD, DEFAULT_NOISE_SCALE, DEFAULT_REIMPOSE, get_method  # noqa: E402
from strdiff_edu.sampling import IRSDESampler  # noqa: E402
from strdiff_edu.weights import Weights, load_network  # noqa: E402

#: (name, method, sampler options) of the default-method candidates compared in ``select``.
VARIANTS = (
    ("strdiff", "strdiff", {"reimpose": False, "noise_scale": 1.0}),
    ("strdiff+reimpose", "strdiff", {"reimpose": True, "noise_scale": 1.0}),
    ("strdiff-ode", "strdiff-ode", {"reimpose": False}),
    ("strdiff-ode+reimpose", "strdiff-ode", {"reimpose": True}),
    ("strdiff-resample+reimpose", "strdiff-resample", {"reimpose": True, "noise_scale": 1.0}),
    ("strdiff+reimpose+noise0", "strdiff", {"reimpose": True, "noise_scale": 0.0}),
    ("strdiff+reimpose+noise0.5", "strdiff", {"reimpose": True, "noise_scale": 0.5}),
)
BASELINES = ("biharmonic", "harmonic", "fill")
ANCHOR_WEIGHTS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)
ABLATION_RUNS = {"noise": "ablation-irsde-noise/last.pt", "x0": "ablation-irsde-x0/last.pt",
                 "x0-harmonic": "irsde/step_{step:06d}.pt"}


def score(out: torch.Tensor, truth: torch.Tensor, known: torch.Tensor) -> dict:
    p, s = M.psnr(out, truth), M.ssim(out, truth)
    c = M.hole_colour_error(out, truth, known)
    return {"psnr": float(p.mean()), "ssim": float(s.mean()),
            "psnr_all": [round(float(v), 4) for v in p], "ssim_all": [round(float(v), 5) for v in s],
            "hole_colour_error_all": [round(float(v), 5) for v in c],
            "hole_mean_all": [[round(float(v), 5) for v in row] for row in M.hole_mean_colour(out.float(), known)],
            "truth_hole_mean_all": [[round(float(v), 5) for v in row]
                                    for row in M.hole_mean_colour(truth.float(), known)]}


def run_sampler(sampler, images, masks, seed: int) -> dict:
    """All image-mask pairs of all bins in one batch (one generator per call: common random
    numbers across methods)."""
    n = images.shape[0]
    all_images = images.repeat(len(masks), 1, 1, 1)
    all_known = torch.cat(list(masks.values()))
    t0 = time.perf_counter()
    r = sampler.sample(all_images, all_known, generator=make_generator(seed))
    secs = time.perf_counter() - t0
    rows = {bin_name(b): score(r.image[k * n:(k + 1) * n], images, known)
            for k, (b, known) in enumerate(masks.items())}
    return {"bins": rows, "mean": summarize(rows), "seconds_per_image": secs / all_images.shape[0]}


def summarize(rows: dict) -> dict:
    psnr = [v for r in rows.values() for v in r["psnr_all"]]
    ssim = [v for r in rows.values() for v in r["ssim_all"]]
    return {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim))}


def build(method: str, weights, options=None, **nets):
    """``method`` with the networks of ``weights`` (``nets``: other checkpoints in some roles)."""
    loaded = {role: load_network(path, role, expect={"sde": weights.sde.config()})[0] for role, path in nets.items()}
    return build_method(method, weights, nets=loaded, **(options or {}))


def steps_of(path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["step"])


def meta(args, split: str, n: int) -> dict:
    return {"split": split, "n_images": n, "weights": str(args.weights), "seed": args.seed,
            "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "convention": "RGB in [0, 1], whole merged image, no border crop; SSIM Gaussian sigma 1.5"}


# ----------------------------------------------------------------------------- select
def cmd_select(args) -> dict:
    weights = Weights(args.weights)
    images, masks = D.validation_pairs(weights.image_size, args.crops_per_scene)
    res = {"meta": meta(args, "validation", images.shape[0]), "methods": {}, "ablation": {}}
    parts = set(args.parts.split(","))
    if "baselines" in parts:
        for m in BASELINES:
            res["methods"][m] = {"label": LABELS[m], **run_sampler(build(m, weights), images, masks, args.seed)}
    if "variants" in parts:
        for name, method, opts in VARIANTS:
            if name not in args.variants.split(","):
                continue
            print(f"validation: {name}", flush=True)
            res["methods"][name] = {"method": method, "options": opts,
                                    **run_sampler(build(method, weights, opts), images, masks, args.seed)}
    if "anchor-weights" in parts:   # the weight w of w * biharmonic + (1 - w) * harmonic (anchor_fill: 0.5)
        from strdiff_edu.fill import biharmonic_fill, harmonic_fill

        rows = {}
        for w in ANCHOR_WEIGHTS:
            per_bin = {}
            for b, known in masks.items():
                out = w * biharmonic_fill(images * known, known) + (1 - w) * harmonic_fill(images * known, known)
                per_bin[bin_name(b)] = score(out.clamp(0, 1), images, known)
            rows[str(w)] = {"bins": per_bin, "mean": summarize(per_bin)}
        res["anchor_weights"] = {"crops_per_scene": args.crops_per_scene, "rows": rows}
    if args.texture_snapshots:    # the default method with the texture network of other checkpoints
        opts = {"reimpose": DEFAULT_REIMPOSE, "noise_scale": DEFAULT_NOISE_SCALE}
        for path in map(Path, args.texture_snapshots.split(",")):
            name = f"{path.parent.name}@{steps_of(path)}"
            print(f"validation: {name}", flush=True)
            res["methods"][name] = {"method": DEFAULT_METHOD, "options": opts, "checkpoint": str(path),
                                    **run_sampler(build(DEFAULT_METHOD, weights, opts, texture=path),
                                                  images, masks, args.seed)}
    if "biharmonic" in res["methods"]:   # the hole-colour target's statistic, per method
        for name, row in res["methods"].items():
            row["hole_colour_share_no_worse"] = share_no_worse(row, res["methods"]["biharmonic"])
    if "ablation" in parts and args.runs:
        for pred, rel in ABLATION_RUNS.items():
            path = Path(args.runs) / rel.format(step=args.ablation_step)
            if not path.exists():
                print(f"ablation: {path} missing; skipped", flush=True)
                continue
            net, cfg = load_network(path, "irsde", expect={"sde": weights.sde.config()})
            steps = steps_of(path)
            print(f"ablation: irsde {pred} ({steps} steps)", flush=True)
            res["ablation"][pred] = {"checkpoint": str(path), "steps": steps,
                                     **run_sampler(IRSDESampler(net, weights.sde), images, masks, args.seed)}
    return res


# ----------------------------------------------------------------------------- eval
def cmd_eval(args) -> dict:
    weights = Weights(args.weights)
    images, masks = D.eval_pairs(weights.image_size)
    res = {"meta": meta(args, "eval", images.shape[0]), "methods": {}}
    reimpose = {k: v for k, v in (("reimpose", args.reimpose), ("noise_scale", args.noise_scale)) if v is not None}
    for m in args.methods.split(","):
        print(f"eval: {m}", flush=True)
        res["methods"][m] = {"label": LABELS.get(m, m), "options": reimpose if get_method(m).is_sampler else {},
                             **run_sampler(build(m, weights, reimpose), images, masks, args.seed)}
    if args.texture_snapshot:      # StrDiffusion with the texture network of a snapshot (equal steps)
        path = Path(args.texture_snapshot)
        steps = steps_of(path)
        name = f"strdiff@{steps}"
        print(f"eval: {name}", flush=True)
        res["methods"][name] = {"label": f"StrDiffusion, texture network at {steps} steps", "options": reimpose,
                                **run_sampler(build(args.default, weights, reimpose, texture=path),
                                              images, masks, args.seed)}
    res["targets"] = targets(res, args.default)
    return res


def targets(res: dict, default: str) -> dict:
    """The quality targets of the default method against biharmonic, per bin and overall."""
    if default not in res["methods"] or "biharmonic" not in res["methods"]:
        return {}
    ours, bih = res["methods"][default], res["methods"]["biharmonic"]
    share = share_no_worse(ours, bih)
    return {"method": default,
            "psnr": {"ours": ours["mean"]["psnr"], "biharmonic": bih["mean"]["psnr"],
                     "met": ours["mean"]["psnr"] >= bih["mean"]["psnr"]},
            "ssim": {"ours": ours["mean"]["ssim"], "biharmonic": bih["mean"]["ssim"],
                     "met": ours["mean"]["ssim"] >= bih["mean"]["ssim"]},
            "hole_colour": {"share_no_worse": share, "met": share >= 0.8}}


def share_no_worse(row: dict, biharmonic: dict) -> float:
    """Share of the images whose hole mean-colour error is at most biharmonic's."""
    ours = [v for r in row["bins"].values() for v in r["hole_colour_error_all"]]
    bih = [v for r in biharmonic["bins"].values() for v in r["hole_colour_error_all"]]
    return float(np.mean([a <= b for a, b in zip(ours, bih)]))


# ----------------------------------------------------------------------------- photo256
def cmd_photo256(args) -> dict:
    weights = Weights(args.weights)
    train_size = weights.image_size
    images, masks = D.eval_pairs(args.size)
    if args.n_images:
        images = images[:args.n_images]
        masks = {b: m[:args.n_images] for b, m in masks.items()}
    multiple = weights.multiple
    res = {"meta": {**meta(args, f"eval at {args.size} px", images.shape[0]), "working_size": train_size},
           "methods": {}}
    for m in args.methods.split(","):
        sampler = build(m, weights, {k: v for k, v in (("reimpose", args.reimpose),
                                                      ("noise_scale", args.noise_scale)) if v is not None})
        rows, secs = {}, []
        for k, (b, known) in enumerate(masks.items()):
            outs = []
            for i in range(images.shape[0]):
                t0 = time.perf_counter()
                out, _, _ = inpaint_image(sampler, images[i:i + 1], known[i:i + 1], train_size, multiple,
                                          generator=make_generator(args.seed + 100 * k + i))
                secs.append(time.perf_counter() - t0)
                outs.append(out)
            rows[bin_name(b)] = score(torch.cat(outs), images, known)
            print(f"photo256: {m} {bin_name(b)}: {rows[bin_name(b)]['psnr']:.2f} dB, "
                  f"{np.mean(secs):.1f} s/image so far", flush=True)
        res["methods"][m] = {"label": LABELS.get(m, m), "bins": rows, "mean": summarize(rows),
                             "seconds_per_image": float(np.mean(secs)), "seconds_max": float(np.max(secs))}
    return res


# ----------------------------------------------------------------------------- colour
def cmd_colour(args) -> dict:
    """The hole-colour statistic on the validation split, taken apart: from ``select`` files of
    the same weights at two seeds (with ``hole_mean_all``), the per-image hole mean colours of the
    truth and every method; each method's mean colour error and share of images no worse than
    biharmonic's; how far the two seeds' hole colours lie apart (the sampler's own spread); and the
    share of fills whose hole colour is moved a fraction ``w`` of the way from biharmonic's to the
    default method's (``w = 0``: biharmonic itself)."""
    a, b = (json.loads(Path(f).read_text()) for f in args.inputs)
    name = args.method

    def means(res, m, key="hole_mean_all"):
        return np.concatenate([np.array(res["methods"][m]["bins"][k][key]) for k in res["methods"][m]["bins"]])

    truth = means(a, "biharmonic", "truth_hole_mean_all")
    fills = {m: means(a, m) for m in a["methods"]}
    fills[f"{name} (seed {b['meta']['seed']})"] = means(b, name)
    err = {m: np.linalg.norm(v - truth, axis=1) for m, v in fills.items()}
    bih = err["biharmonic"]
    rows = {m: {"mean_error": float(e.mean()), "share_no_worse": float((e <= bih).mean())} for m, e in err.items()}
    ours = fills[name]
    mix = {}
    for w in (0.25, 0.5, 0.75, 1.0):
        e = np.linalg.norm(w * ours + (1 - w) * fills["biharmonic"] - truth, axis=1)
        mix[str(w)] = {"mean_error": float(e.mean()), "share_no_worse": float((e <= bih).mean())}
    return {"meta": {**a["meta"], "seeds": [a["meta"]["seed"], b["meta"]["seed"]], "method": name,
                     "inputs": [Path(f).name for f in args.inputs]},
            "methods": rows, "towards_default": mix,
            "seed_spread": float(np.linalg.norm(ours - means(b, name), axis=1).mean()),
            "per_image": {"truth": truth.round(5).tolist(), **{m: v.round(5).tolist() for m, v in fills.items()}}}


def cmd_merge(args) -> dict:
    """Several JSON files of one sub-command (run in parallel processes) as one: methods and
    ablation rows are united; the targets are recomputed for ``--default``."""
    parts = [json.loads(Path(f).read_text()) for f in args.inputs]
    res = {"meta": {**parts[0]["meta"], "merged_from": [Path(f).name for f in args.inputs],
                    "wall_s_parts": [p["meta"].get("wall_s") for p in parts]}, "methods": {}}
    for p in parts:
        res["methods"].update(p.get("methods", {}))
        if p.get("ablation"):
            res.setdefault("ablation", {}).update(p["ablation"])
        if p.get("anchor_weights"):
            res["anchor_weights"] = p["anchor_weights"]
    if parts[0]["meta"]["split"] == "eval":
        res["targets"] = targets(res, args.default)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("colour", help="the hole-colour statistic taken apart (two select files, two seeds)")
    c.add_argument("inputs", nargs=2)
    c.add_argument("--method", default="strdiff+reimpose+noise0", help="the default method's row in them")
    c.add_argument("--out", required=True)
    c.add_argument("--threads", type=int, default=0)
    m = sub.add_parser("merge")
    m.add_argument("inputs", nargs="+")
    m.add_argument("--out", required=True)
    m.add_argument("--default", default="strdiff")
    m.add_argument("--threads", type=int, default=0)
    for name in ("select", "eval", "photo256"):
        p = sub.add_parser(name)
        p.add_argument("--weights", default="weights/cpu")
        p.add_argument("--out", required=True)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
        if name == "select":
            p.add_argument("--runs", default="", help="runs/weights-<preset>: for the parameterisation ablation")
            p.add_argument("--ablation-step", type=int, default=800)
            p.add_argument("--crops-per-scene", type=int, default=1)
            p.add_argument("--parts", default="baselines,variants,ablation,anchor-weights")
            p.add_argument("--variants", default=",".join(v[0] for v in VARIANTS))
            p.add_argument("--texture-snapshots", default="",
                           help="comma-separated texture checkpoints scored with the default method")
        else:
            p.add_argument("--methods", default="biharmonic,harmonic,fill,irsde,strdiff,strdiff-resample")
            p.add_argument("--reimpose", action=argparse.BooleanOptionalAction, default=None,
                           help="(default: the library's DEFAULT_REIMPOSE)")
            p.add_argument("--noise-scale", type=float, default=None, help="(default: DEFAULT_NOISE_SCALE)")
        if name == "eval":
            p.add_argument("--default", default="strdiff", help="the method the targets are checked for")
            p.add_argument("--texture-snapshot", default="", help="a texture checkpoint (e.g. runs/.../step_004000.pt)")
        if name == "photo256":
            p.add_argument("--size", type=int, default=256)
            p.add_argument("--n-images", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    res = {"select": cmd_select, "eval": cmd_eval, "photo256": cmd_photo256, "merge": cmd_merge,
           "colour": cmd_colour}[args.cmd](args)
    res["meta"]["wall_s"] = round(time.perf_counter() - t0, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out}")
    for name, m in res.get("methods", {}).items():
        if "mean" not in m:      # colour rows
            print(f"  {name:28s} hole colour error {m['mean_error']:.4f}, no worse than biharmonic on "
                  f"{m['share_no_worse']:.0%}")
            continue
        print(f"  {name:28s} {m['mean']['psnr']:6.2f} dB  SSIM {m['mean']['ssim']:.4f}  "
              f"{m.get('seconds_per_image', 0):.2f} s/image")
    for w, m in res.get("anchor_weights", {}).get("rows", {}).items():
        print(f"  anchor weight of biharmonic {w:>4}   {m['mean']['psnr']:6.2f} dB  SSIM {m['mean']['ssim']:.4f}")
    for name, m in res.get("ablation", {}).items():
        print(f"  irsde {name:22s} {m['mean']['psnr']:6.2f} dB  SSIM {m['mean']['ssim']:.4f}")
    if res.get("targets"):
        print("  targets:", json.dumps(res["targets"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
