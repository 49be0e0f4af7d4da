"""The ``strdiff`` command-line tool.

    strdiff info                      # version, active profile, device
    strdiff schedule --preset paper   # the SDE's schedule table (Delta, exp(-theta_bar), sigma_bar)
    strdiff book                      # execute the notebooks and render the book offline
    strdiff data info                 # the embedded dataset: scenes, split, sizes, credits
    strdiff data masks --out masks/   # free-form masks per hole-ratio bin (PNG, white = hole)
    strdiff data prepare places2 ...  # real datasets (data_scripts/prepare.py)
    strdiff inpaint IMAGE MASK -o OUT # inpaint one file (mask: white = hole) with the shipped weights
    strdiff evaluate --methods ...    # eval split x mask bins x methods -> tables and figure grids
    strdiff demo                      # the main demo (make demo): writes _build/demo/

Every profile field can be overridden (``--T 400 --max-sigma 0.2 --image-size 64`` ...);
``--preset`` wins over ``$STRDIFF_PROFILE``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import __version__
from .profiles import PRESETS, apply_overrides, as_dict, flat_fields, get_profile

REPO_ROOT = Path(__file__).resolve().parents[1]


def _add_profile_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=list(PRESETS), default=None,
                        help="profile preset (default: $STRDIFF_PROFILE, else cpu)")
    group = parser.add_argument_group("profile overrides")
    for name, typ in flat_fields():
        typ = {"int": int, "float": float, "str": str}.get(typ if isinstance(typ, str) else typ.__name__, str)
        group.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None,
                           help=f"override the preset's {name}")


def _profile_from_args(args):
    overrides = {name: getattr(args, name) for name, _ in flat_fields()}
    return apply_overrides(get_profile(args.preset), overrides)


FAST_HELP = ("run the networks exactly as trained (float32, live spectral norm); by default they run "
             "through the fast path: spectral norm folded (exact), and on CUDA bf16 + channels-last")


def cmd_info(args) -> int:
    from .device import describe_device, pick_device

    prof = _profile_from_args(args)
    print(f"strdiff_edu {__version__}")
    print(f"profile: {prof.name}   (set with --preset or $STRDIFF_PROFILE)")
    print(json.dumps(as_dict(prof), indent=2))
    print("device:", describe_device(pick_device(verbose=False)))
    return 0


def cmd_schedule(args) -> int:
    prof = _profile_from_args(args)
    sde = prof.sde.build()
    print(sde)
    print(f"{'t':>5} {'theta_t':>10} {'exp(-theta_bar_t)':>18} {'sigma_bar_t*255':>16}")
    steps = sorted({1, max(1, sde.T // 10), int(0.4 * sde.T), sde.T // 2, int(0.8 * sde.T), sde.T})
    for t in steps:
        print(f"{t:>5} {float(sde.thetas[t]):>10.5f} {float(sde.mean_weights[t]):>18.5f} "
              f"{float(sde.marginal_stds[t]) * 255:>16.3f}")
    return 0


def cmd_book(args) -> int:
    script = REPO_ROOT / "scripts" / "build_book.sh"
    if not script.exists():
        print(f"error: {script} not found; `strdiff book` needs a source checkout of strdiff_edu "
              "(pip install -e .)", file=sys.stderr)
        return 2
    env = dict(os.environ)
    if args.preset:
        env["STRDIFF_PROFILE"] = args.preset
    return subprocess.call([str(script), "--check" if args.check else "--execute"], env=env)


def cmd_data(args) -> int:
    from . import data as D
    from . import masks as M

    prof = get_profile(args.preset)
    if args.data_command == "info":
        size = args.size or prof.image_size
        tr, ev = D.default_split()
        print(f"embedded dataset at {size} px (profile {prof.name}): "
              f"{len(tr)} training scenes x {prof.train_crops} crops = {len(tr) * prof.train_crops} "
              f"training images; {len(ev)} eval scenes, {len(D.FROZEN_EVAL_CROPS)} frozen eval images")
        print("train scenes:", ", ".join("+".join(g) for g in tr))
        print("eval scenes: ", ", ".join("+".join(g) for g in ev))
        print()
        print(D.credits_table())
        return 0
    if args.data_command == "masks":
        from tqdm.auto import tqdm

        size = args.size or prof.image_size
        bins = M.parse_bins(args.bins)
        out = Path(args.out)
        entries = D.read_manifest(out)
        for b in bins:
            holes = M.masks_for_bin(size, b, args.per_bin, seed=args.seed, progress=True)
            for i, hole in enumerate(tqdm(holes, desc=f"write {M.bin_name(b)}", leave=False)):
                rel = f"{M.bin_name(b)}/{i:05d}.png"
                M.save_mask(hole, out / rel)
                entries[rel] = D.sha256_file(out / rel)
            r = holes.reshape(len(holes), -1).mean(1)
            print(f"bin {M.bin_name(b)} %: {len(holes)} masks, hole ratio mean {r.mean():.3f} "
                  f"(min {r.min():.3f}, max {r.max():.3f})")
        D.write_manifest(out, entries)
        print(f"masks written to {out} (white = hole), manifest {out / D.MANIFEST}")
        return 0
    script = REPO_ROOT / "data_scripts" / "prepare.py"
    if not script.exists():
        print(f"error: {script} not found; `strdiff data prepare` needs a source checkout",
              file=sys.stderr)
        return 2
    return subprocess.call([sys.executable, str(script), *args.rest])


def _usage_errors(func):
    """Turn the expected user errors (bad files, wrong checkpoint) into one clear line, exit 2."""
    def run(args):
        from .checkpoint import CheckpointError

        try:
            return func(args)
        except (CheckpointError, FileNotFoundError, ImportError) as exc:
            print(f"strdiff: error: {exc}", file=sys.stderr)
            return 2
    return run


@_usage_errors
def cmd_train(args) -> int:
    from .checkpoint import network_path
    from .train import NETWORK_OF_STAGE, config_from_args, export_weights, train

    cfg = config_from_args(args)
    if args.export:   # checked before any training: never lose a run to a refused export
        target = network_path(args.export, NETWORK_OF_STAGE[cfg.stage])
        if cfg.steps < 1:
            print("strdiff: error: --export needs a trained network: set --steps to at least 1", file=sys.stderr)
            return 2
        if target.exists() and not args.force:
            print(f"strdiff: error: {target} already holds trained weights; pass --force to replace them "
                  "(or --export another folder)", file=sys.stderr)
            return 2
    summary = train(cfg, resume=args.resume)
    if summary.get("world_size", 1) > 1 and int(os.environ.get("RANK", "0")) != 0:
        return 0
    print(json.dumps(summary, indent=2))
    if args.export:
        if summary["steps"] != cfg.steps or summary["steps"] < 1:
            print(f"not exported: the run stopped at step {summary['steps']} of {cfg.steps}; continue it "
                  "with --resume", file=sys.stderr)
            return 1
        path = export_weights(summary["out"], args.export, NETWORK_OF_STAGE[cfg.stage])
        print(f"exported the EMA weights to {path}")
    return 0


def _default_checkpoint(args, prof) -> Path:
    return Path(args.checkpoint) if args.checkpoint else REPO_ROOT / "weights" / prof.name


@_usage_errors
def cmd_inpaint(args) -> int:
    from .device import pick_device
    from .evaluate import inpaint_file

    prof = _profile_from_args(args)
    sde = prof.sde.build()
    folder = _default_checkpoint(args, prof)
    if args.method not in ("biharmonic", "harmonic", "fill", "telea") and not (folder / "manifest.json").is_file():
        print(f"strdiff: error: no trained weights in {folder}: run `make weights` or pass --checkpoint DIR",
              file=sys.stderr)
        return 2
    summary = inpaint_file(args.image, args.mask, args.output, folder, sde, method=args.method,
                           black_hole=args.black_hole, seed=prof.seed, device=pick_device(verbose=False),
                           mode=args.mode, progress=not args.no_progress, structure_out=args.structure_out,
                           fast=not args.no_fast, full_resolution=args.full_resolution, reimpose=args.reimpose,
                           noise_scale=args.noise_scale)
    print(json.dumps(summary))
    return 0


@_usage_errors
def cmd_evaluate(args) -> int:
    import torch

    from . import data as D
    from . import masks as MK
    from .device import pick_device
    from .evaluate import evaluate, sde_of_checkpoint, write_report

    prof = _profile_from_args(args)
    folder = _default_checkpoint(args, prof)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bins = MK.parse_bins(args.bins)
    sde = None
    size = args.image_size or prof.image_size
    if (folder / "manifest.json").is_file():
        sde, info = sde_of_checkpoint(folder)
        size = args.image_size or int(next(iter(info.values())).get("image_size", size))
    if args.data == "embedded":
        images, masks = D.eval_pairs(size, bins)
    else:
        folder_ds = D.ImageFolder(args.data, size=size)
        images = torch.stack([folder_ds[i] for i in range(len(folder_ds))])
        masks = {b: MK.to_known(MK.masks_for_bin(size, b, len(images), seed=D.EVAL_MASK_SEED)) for b in bins}
    if args.n_images:
        images = images[:args.n_images]
        masks = {b: m[:args.n_images] for b, m in masks.items()}
    res = evaluate(methods, images, masks, checkpoint=folder, sde=sde, device=pick_device(verbose=False),
                   seed=prof.seed, batch_size=args.batch_size or 16, mode=args.mode,
                   fid=True if args.fid else "auto" if args.fid is None else False, fast=not args.no_fast)
    paths = write_report(res, args.out)
    from .evaluate import table1_markdown

    print(table1_markdown(res))
    print("written:", ", ".join(str(p) for p in paths.values()))
    return 0


@_usage_errors
def cmd_bench(args) -> int:
    from .bench import main as bench_main

    return bench_main(args=args)


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(out=args.out, checkpoint=args.checkpoint, preset=args.preset, n_images=args.n_images,
             seed=args.seed, progress=not args.no_progress)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strdiff", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"strdiff_edu {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="version, active profile and device")
    _add_profile_args(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("schedule", help="print the mean-reverting SDE's schedule table")
    _add_profile_args(p)
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("book", help="execute the notebooks and render the book to _build/html")
    p.add_argument("--preset", choices=list(PRESETS), default=None,
                   help="profile the notebooks run with (default: $STRDIFF_PROFILE, else tiny)")
    p.add_argument("--check", action="store_true", help="only validate the book (no execution)")
    p.set_defaults(func=cmd_book)

    p = sub.add_parser("train", help="train one network: --stage structure|texture|texture-irsde|discriminator",
                       description="Train one of StrDiffusion's networks. Every field of "
                       "strdiff_edu.train.TrainConfig is a flag; torchrun gives DDP.")
    from .train import add_train_args

    add_train_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("data", help="embedded data, mask sets and real-dataset preparation")
    dsub = p.add_subparsers(dest="data_command", required=True)
    q = dsub.add_parser("info", help="the embedded dataset's scenes, split, sizes and credits")
    q.add_argument("--preset", choices=list(PRESETS), default=None)
    q.add_argument("--size", type=int, default=None, help="image side (default: the profile's)")
    q.set_defaults(func=cmd_data)
    q = dsub.add_parser("masks", help="write seeded free-form masks per hole-ratio bin")
    q.add_argument("--preset", choices=list(PRESETS), default=None)
    q.add_argument("--out", required=True, help="output folder (one sub-folder per bin)")
    q.add_argument("--bins", default="paper", help="'paper', 'nvidia' or percent ranges like '10-20,40-50'")
    q.add_argument("--per-bin", type=int, default=100, help="masks per bin (default 100)")
    q.add_argument("--size", type=int, default=None, help="mask side (default: the profile's image size)")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=cmd_data)
    q = dsub.add_parser("prepare", help="prepare Paris StreetView, CelebA, Places2, NVIDIA masks or a folder "
                        "(arguments go to data_scripts/prepare.py; try `strdiff data prepare list`)",
                        add_help=False)
    q.add_argument("rest", nargs=argparse.REMAINDER)
    q.set_defaults(func=cmd_data, preset=None)

    from .sampling import DEFAULT_METHOD, DEFAULT_NOISE_SCALE, DEFAULT_REIMPOSE, MODES
    from .evaluate import METHODS as EVAL_METHODS

    p = sub.add_parser("inpaint", help="inpaint one image file with a mask file (white = hole)",
                       description="Inpaint IMAGE (any size; RGB, gray or RGBA) where MASK is white "
                       "(the NVIDIA / official convention; --black-hole for masks whose kept pixels are "
                       "white). Uses weights/<preset> unless --checkpoint DIR is given; the checkpoint's T "
                       "must equal the profile's (--T).")
    p.add_argument("image")
    p.add_argument("mask")
    p.add_argument("-o", "--output", required=True, help="output image file (PNG)")
    p.add_argument("--checkpoint", default="", help="checkpoint folder (default weights/<preset>)")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=list(EVAL_METHODS),
                   help=f"(default {DEFAULT_METHOD}) " + "; ".join(f"{k}: {v}" for k, v in EVAL_METHODS.items()))
    p.add_argument("--mode", default="corrected", choices=list(MODES), help="'official' reproduces the official sampler's quirks")
    p.add_argument("--reimpose", default=None, action=argparse.BooleanOptionalAction,
                   help=f"re-impose the known pixels after every reverse step (default {DEFAULT_REIMPOSE})")
    p.add_argument("--noise-scale", type=float, default=None,
                   help=f"factor on the reverse SDE's noise term (default {DEFAULT_NOISE_SCALE}: chosen on the "
                        "validation split; 1 is the reverse SDE itself)")
    p.add_argument("--full-resolution", action="store_true",
                   help="inpaint at the file's size; by default a photo whose shorter side exceeds 1.5x the "
                        "networks' training size is inpainted at that size and the hole pasted back at full size")
    p.add_argument("--black-hole", action="store_true", help="the mask file marks holes black (kept pixels white)")
    p.add_argument("--structure-out", default="", help="also write the sampled structure map here")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-fast", action="store_true", help=FAST_HELP)
    _add_profile_args(p)
    p.set_defaults(func=cmd_inpaint)

    p = sub.add_parser("evaluate", help="methods x mask bins on the eval split: JSON, markdown tables, figure grids")
    p.add_argument("--methods", default="irsde,strdiff,strdiff-resample,biharmonic",
                   help="comma-separated, from: " + ", ".join(EVAL_METHODS))
    p.add_argument("--checkpoint", default="", help="checkpoint folder (default weights/<preset>)")
    p.add_argument("--data", default="embedded", help="'embedded' (the frozen eval split) or a folder of images")
    p.add_argument("--bins", default="paper", help="'paper', 'nvidia' or percent ranges like '10-20,40-50'")
    p.add_argument("--n-images", type=int, default=0, help="use the first N images (0: all)")
    p.add_argument("--mode", default="corrected", choices=list(MODES))
    p.add_argument("--fid", default=None, action=argparse.BooleanOptionalAction,
                   help="FID/KID with local Inception weights (default: when they are installed)")
    p.add_argument("--out", default="_build/evaluate", help="output folder")
    _add_profile_args(p)
    p.add_argument("--no-fast", action="store_true", help=FAST_HELP)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("demo", help="the main demo: all methods on the eval split, tables and figures in _build/demo")
    p.add_argument("--checkpoint", default="", help="checkpoint folder (default weights/<preset>, else weights/cpu)")
    p.add_argument("--preset", choices=list(PRESETS), default=None)
    p.add_argument("--n-images", type=int, default=0, help="eval images per bin (default: the demo's subset)")
    p.add_argument("--out", default="", help="output folder (default _build/demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="benchmarks: network throughput, training MFU, sampler seconds and calls, "
                                     "fast-path accuracy (tables + JSON)")
    from .bench import add_arguments as add_bench_arguments
    add_bench_arguments(p)
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:  # bad settings: one clear line, not a traceback
        parser.exit(2, f"strdiff: error: {exc}\n")


if __name__ == "__main__":
    sys.exit(main())
