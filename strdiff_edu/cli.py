"""The ``strdiff`` command-line tool.

    strdiff info                      # version, active profile, device
    strdiff schedule --preset paper   # the SDE's schedule table (Delta, exp(-theta_bar), sigma_bar)
    strdiff book                      # execute the notebooks and render the book offline
    strdiff data info                 # the embedded dataset: scenes, split, sizes, credits
    strdiff data masks --out masks/   # free-form masks per hole-ratio bin (PNG, white = hole)
    strdiff data prepare places2 ...  # real datasets (strdiff_edu.tools.prepare)
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
from .errors import Interrupted, UsageError, describe
from .profiles import PRESETS, apply_overrides, as_dict, flat_fields, get_profile

REPO_ROOT = Path(__file__).resolve().parents[1]


#: The profile settings each sub-command reads (its ``--help`` offers only these; ``info`` all).
SDE_FIELDS = ("T", "max_sigma", "eps", "schedule")
PROFILE_FIELDS_USED = {"schedule": SDE_FIELDS, "inpaint": ("seed",) + SDE_FIELDS,
                       "evaluate": ("image_size", "batch_size", "seed")}


def _add_profile_args(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--preset", choices=list(PRESETS), default=None,
                        help="profile preset (default: $STRDIFF_PROFILE, else cpu)")
    group = parser.add_argument_group("profile overrides")
    used = PROFILE_FIELDS_USED.get(command)
    for name, typ in flat_fields():
        if used is not None and name not in used:
            continue
        typ = {"int": int, "float": float, "str": str}.get(typ if isinstance(typ, str) else typ.__name__, str)
        group.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None,
                           help=f"override the preset's {name}")


def _profile_from_args(args):
    overrides = {name: getattr(args, name, None) for name, _ in flat_fields()}
    for name, value in overrides.items():
        if value is not None and name in PROFILE_RANGES:
            check_range("--" + name.replace("_", "-"), value, *PROFILE_RANGES[name])
    return apply_overrides(get_profile(args.preset), overrides)


# ----------------------------------------------------------------------------- checks before work
SEED_MAX = 2 ** 32 - 1
#: (low, high, low_open, high_open) of every profile override that has a range (None: unbounded).
PROFILE_RANGES = {"image_size": (8, 4096, False, False), "n_paths": (1, None, False, False),
                  "sim_steps": (1, None, False, False), "batch_size": (1, None, False, False),
                  "seed": (0, SEED_MAX, False, False), "canny_sigma": (0, None, True, False),
                  "canny_sigma_train": (0, None, True, False), "train_crops": (1, None, False, False),
                  "mask_samples": (1, None, False, False), "T": (2, 10000, False, False),
                  "max_sigma": (0, None, True, False), "eps": (0, 1, True, True)}
#: Output image formats ``strdiff inpaint -o`` writes (by extension).
IMAGE_OUTPUT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _interval(lo, hi, lo_open=False, hi_open=False) -> str:
    if hi is None:
        return f"{'>' if lo_open else '>='} {lo}"
    return "in " + (f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}" if (lo_open or hi_open)
                    else f"{lo}..{hi}")


def check_range(flag: str, value, lo=None, hi=None, lo_open=False, hi_open=False):
    """Refuse ``value`` outside [lo, hi] (open ends where asked), naming ``flag`` and the range."""
    import math

    bad = isinstance(value, float) and not math.isfinite(value)
    if lo is not None:
        bad = bad or (value <= lo if lo_open else value < lo)
    if hi is not None:
        bad = bad or (value >= hi if hi_open else value > hi)
    if bad:
        raise UsageError(f"{flag} must be {_interval(lo, hi, lo_open, hi_open)}, got {value}")
    return value


def _nearest_existing(path: Path) -> Path:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return p if p.exists() else Path(".")


def check_output_dir(flag: str, path) -> Path:
    """A folder the command will write into: not a file, not under a file, writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is an existing file, not a folder; pass a folder path")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise UsageError(f"{flag} {path} lies under {base}, which is a file; pass a folder path")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: {base} is not writable; pick a folder you can write to")
    return path


def check_output_file(flag: str, path, extensions: Sequence[str] = IMAGE_OUTPUT_EXTENSIONS) -> Path:
    """A file the command will write: a known extension, not a folder, its folder writable."""
    raw, path = str(path), Path(path)
    if path.is_dir() or raw.endswith(("/", os.sep)):
        raise UsageError(f"{flag} {path} is a folder; give a file name such as {path / ('out' + extensions[0])}")
    if path.suffix.lower() not in extensions:
        what = "has no extension" if not path.suffix else f"has the extension {path.suffix!r}"
        raise UsageError(f"{flag} {path} {what}; use one of {', '.join(extensions)}")
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise UsageError(f"{flag} {path} lies under {base}, which is a file; pass a path in a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: {base} is not writable; pick a folder you can write to")
    return path


def check_input_file(what: str, path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{what} {path} is a folder; pass an image file")
    if not path.is_file():
        raise UsageError(f"{what} file not found: {path}")
    return path


def check_seed(flag: str, value):
    return check_range(flag, value, 0, SEED_MAX)


def check_device(prefer: Optional[str], flag: str = "--device") -> None:
    """Refuse a device that cannot be used here, before any work ($STRDIFF_DEVICE when no flag)."""
    source = flag
    if not prefer:
        prefer, source = os.environ.get("STRDIFF_DEVICE"), "$STRDIFF_DEVICE"
    if not prefer:
        return
    import torch

    try:
        device = torch.device(prefer)
    except (RuntimeError, ValueError):
        raise UsageError(f"{source} {prefer!r} is not a device; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"{source} {prefer!r}: CUDA is not available on this machine; use cpu "
                             "(or leave the device unset to pick what is there)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"{source} {prefer!r}: this machine has {torch.cuda.device_count()} CUDA "
                             f"device(s) (cuda:0..cuda:{torch.cuda.device_count() - 1})")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise UsageError(f"{source} {prefer!r}: Apple's MPS is not available here; use cpu")
    elif device.type != "cpu":
        raise UsageError(f"{source} {prefer!r}: strdiff_edu runs on cpu, cuda or mps")


def parse_methods(spec: str, flag: str = "--methods") -> list:
    from .methods import METHODS

    methods = [m.strip() for m in spec.split(",") if m.strip()]
    if not methods:
        raise UsageError(f"{flag} {spec!r} names no method; choose from {', '.join(METHODS)}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UsageError(f"{flag}: unknown method(s) {', '.join(map(repr, unknown))}; choose from {', '.join(METHODS)}")
    if len(set(methods)) != len(methods):
        raise UsageError(f"{flag} {spec!r} names a method twice; list each once")
    return methods


def check_methods_available(methods: Sequence[str], folder: Optional[Path], flag: str = "--methods") -> None:
    """Every requested method can run: its optional dependency is installed and the checkpoint
    folder holds its networks. Checked before the first method runs."""
    from .baselines import telea_available
    from .checkpoint import network_path
    from .methods import needed_networks

    if "telea" in methods and not telea_available():
        raise UsageError(f"{flag}: telea needs OpenCV, which is not installed: `pip install "
                         "opencv-python-headless`, or leave telea out")
    networks = needed_networks(methods)
    if not networks:
        return
    if folder is None or not (folder / "manifest.json").is_file():
        users = [m for m in methods if needed_networks([m])]
        raise UsageError(f"no trained weights in {folder}: run `make weights`, pass --checkpoint DIR or set "
                         f"STRDIFF_WEIGHTS (the method{'s' if len(users) > 1 else ''} {', '.join(users)} need{'' if len(users) > 1 else 's'} "
                         "trained networks)")
    missing = [n for n in networks if not network_path(folder, n).is_file()]
    if missing:
        users = [m for m in methods if set(needed_networks([m])) & set(missing)]
        raise UsageError(f"{folder} lacks the {', '.join(missing)} network{'s' if len(missing) > 1 else ''} that "
                         f"{', '.join(users)} need{'' if len(users) > 1 else 's'}; train it (make weights), pass "
                         "another --checkpoint, or leave that method out")


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
        raise UsageError(f"{script} not found; `strdiff book` needs a source checkout of strdiff_edu "
                         "(pip install -e .)")
    env = dict(os.environ)
    if args.preset:
        env["STRDIFF_PROFILE"] = args.preset
    env.setdefault("STRDIFF_PROFILE", "cpu")   # the site readers get (as `make book`); CI runs tiny
    return subprocess.call([str(script), "--check" if args.check else "--execute"], env=env)


def cmd_data(args) -> int:
    from . import data as D
    from . import masks as M

    prof = get_profile(args.preset)
    if args.data_command == "info":
        if args.size is not None:
            check_range("--size", args.size, 8, 4096)
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

        if args.size is not None:
            check_range("--size", args.size, 8, 4096)
        check_range("--per-bin", args.per_bin, 1, 100000)
        check_seed("--seed", args.seed)
        size = args.size or prof.image_size
        try:
            bins = M.parse_bins(args.bins)
        except ValueError as exc:
            raise UsageError(f"--bins: {exc}") from None
        out = check_output_dir("--out", args.out)
        from .checkpoint import sha256_file
        from .tools.datasets import MANIFEST, read_sha256_manifest, write_sha256_manifest

        entries = read_sha256_manifest(out)
        for b in bins:
            holes = M.masks_for_bin(size, b, args.per_bin, seed=args.seed, progress=True)
            for i, hole in enumerate(tqdm(holes, desc=f"write {M.bin_name(b)}", leave=False)):
                rel = f"{M.bin_name(b)}/{i:05d}.png"
                M.save_mask(hole, out / rel)
                entries[rel] = sha256_file(out / rel)
            r = holes.reshape(len(holes), -1).mean(1)
            print(f"bin {M.bin_name(b)} %: {len(holes)} masks, hole ratio mean {r.mean():.3f} "
                  f"(min {r.min():.3f}, max {r.max():.3f})")
        write_sha256_manifest(out, entries)
        print(f"masks written to {out} (white = hole), manifest {out / MANIFEST}")
        return 0
    from .tools.prepare import main as prepare_main

    return prepare_main(args.rest)


def cmd_train(args) -> int:
    from .checkpoint import network_path
    from .errors import EXIT_TERMINATED
    from .train import NETWORK_OF_STAGE, config_from_args, export_weights, train, validate_config

    cfg = config_from_args(args)
    validate_config(cfg)   # every flag, the data folder, --out and the device: before any work
    check_device(cfg.device or None)
    if args.export:   # checked before any training: never lose a run to a refused export
        check_output_dir("--export", args.export)
        target = network_path(args.export, NETWORK_OF_STAGE[cfg.stage])
        if cfg.steps < 1:
            raise UsageError("--export needs a trained network: set --steps to at least 1")
        if target.exists() and not args.force:
            raise UsageError(f"{target} already holds trained weights; pass --force to replace them "
                             "(or --export another folder)")
    summary = train(cfg, resume=args.resume)
    if summary.get("world_size", 1) > 1 and int(os.environ.get("RANK", "0")) != 0:
        return EXIT_TERMINATED if summary.get("terminated") else 0
    print(json.dumps(summary, indent=2))
    if summary.get("terminated"):
        raise Interrupted(f"terminated (SIGTERM) at step {summary['steps']} of {cfg.steps}; checkpoint at "
                          f"{Path(summary['out']) / 'last.pt'}; continue with --resume", EXIT_TERMINATED)
    if args.export:
        if summary["steps"] != cfg.steps or summary["steps"] < 1:
            print(f"not exported: the run stopped at step {summary['steps']} of {cfg.steps}; continue it "
                  "with --resume", file=sys.stderr)
            return 1
        path = export_weights(summary["out"], args.export, NETWORK_OF_STAGE[cfg.stage])
        print(f"exported the EMA weights to {path}")
    return 0


def _weights_folder(args, prof) -> Path:
    """The weights folder a command uses: ``--checkpoint``, else the profile's shipped folder (the
    ``cpu`` one when the profile has none: :meth:`strdiff_edu.weights.Weights.find`); when there is
    none, the profile's folder under the weights root (the methods that need networks then say so)."""
    from .checkpoint import CheckpointError
    from .locations import weights_root
    from .weights import Weights

    if args.checkpoint:
        return Path(args.checkpoint)
    try:
        return Weights.find(profile=prof.name).folder
    except CheckpointError:
        return weights_root() / prof.name


def cmd_inpaint(args) -> int:
    from .device import pick_device
    from .evaluate import inpaint_file

    prof = _profile_from_args(args)
    check_input_file("image", args.image)
    check_input_file("mask", args.mask)
    check_output_file("-o/--output", args.output)
    for what, given in (("image", args.image), ("mask", args.mask)):
        if Path(given).resolve() == Path(args.output).resolve():
            raise UsageError(f"-o/--output {args.output} is the input {what}; write the result to another file "
                             "(the inputs are never overwritten)")
    if args.structure_out and not args.method.startswith("strdiff"):
        raise UsageError(f"--structure-out: the {args.method} method samples no structure map; use a strdiff "
                         "method, or leave --structure-out out")
    if args.structure_out:
        check_output_file("--structure-out", args.structure_out)
        if Path(args.structure_out).absolute() == Path(args.output).absolute():
            raise UsageError("--structure-out is the same file as -o/--output; give it another name")
    if args.noise_scale is not None:
        check_range("--noise-scale", args.noise_scale, 0, 10)
    if args.max_pixels is not None:
        check_range("--max-pixels", args.max_pixels, 1)
    check_device(None)
    folder = _weights_folder(args, prof)
    check_methods_available([args.method], folder, flag="--method")
    from .methods import needed_networks
    from .weights import Weights

    weights = Weights(folder) if needed_networks([args.method]) else None
    try:
        summary = inpaint_file(args.image, args.mask, args.output, weights, method=args.method, sde=prof.sde.build(),
                               black_hole=args.black_hole, seed=prof.seed, device=pick_device(verbose=False),
                               mode=args.mode, progress=not args.no_progress, structure_out=args.structure_out,
                               fast=not args.no_fast, full_resolution=args.full_resolution, reimpose=args.reimpose,
                               noise_scale=args.noise_scale, max_pixels=args.max_pixels,
                               announce=lambda line: print(line, file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; nothing was written to {args.output}") from None
    print(json.dumps(summary))
    return 0


def cmd_evaluate(args) -> int:
    import torch

    from . import data as D
    from . import masks as MK
    from .device import pick_device
    from .evaluate import evaluate, write_report
    from .weights import Weights

    prof = _profile_from_args(args)
    folder = _weights_folder(args, prof)
    methods = parse_methods(args.methods)
    check_range("--n-images", args.n_images, 0)
    try:
        bins = MK.parse_bins(args.bins)
    except ValueError as exc:
        raise UsageError(f"--bins: {exc}") from None
    out = check_output_dir("--out", args.out)
    if args.data != "embedded" and not Path(args.data).is_dir():
        raise UsageError(f"--data {args.data}: no such folder; pass 'embedded' or a folder of images")
    check_device(None)
    check_methods_available(methods, folder)
    sde = None
    size = args.image_size or prof.image_size
    from .methods import needed_networks

    weights = None
    if needed_networks(methods):    # the networks' image size and SDE; the baselines run at the profile's
        weights = Weights(folder)
        sde, size = weights.sde, args.image_size or weights.image_size
    if args.data == "embedded":
        images, masks = D.eval_pairs(size, bins)
    else:
        folder_ds = D.ImageFolder(args.data, size=size)
        images = torch.stack([folder_ds[i] for i in range(len(folder_ds))])
        masks = {b: MK.to_known(MK.masks_for_bin(size, b, len(images), seed=D.EVAL_MASK_SEED)) for b in bins}
    if args.n_images:
        images = images[:args.n_images]
        masks = {b: m[:args.n_images] for b, m in masks.items()}
    from .evaluate import calls_per_image

    T = sde.T if sde is not None else prof.sde.T
    n_img, lo, hi = images.shape[0] * len(masks), 0, 0
    for m in methods:
        for a, b in calls_per_image(m, T).values():
            lo, hi = lo + a * n_img, hi + b * n_img
    print(f"strdiff: evaluating {images.shape[0]} images x {len(masks)} bins with {', '.join(methods)}"
          + (f": {lo:,}-{hi:,} network calls" if hi and lo != hi else f": {lo:,} network calls" if hi else ""),
          file=sys.stderr, flush=True)

    def finished(partial):   # results of every finished method are on disk as soon as it ends
        write_report(partial, out)
        from tqdm.auto import tqdm

        tqdm.write(f"{list(partial['methods'])[-1]}: done; results in {out / 'results.json'}", file=sys.stderr)

    try:
        res = evaluate(methods, images, masks, checkpoint=weights, sde=sde, device=pick_device(verbose=False),
                       seed=prof.seed, batch_size=args.batch_size or 16, mode=args.mode,
                       fid=True if args.fid else "auto" if args.fid is None else False, fast=not args.no_fast,
                       on_method_done=finished)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; the methods that finished are in {out / 'results.json'}") from None
    paths = write_report(res, out)
    from .evaluate import table1_markdown

    print(table1_markdown(res))
    print("written:", ", ".join(str(p) for p in paths.values()))
    failed = res.get("non_finite", [])
    if failed:
        from .errors import RunFailed

        raise RunFailed(f"{', '.join(failed)} produced non-finite pixels (recorded as null in "
                        f"{paths['json']}); check those networks' weights")
    return 0


BENCH_SECTIONS = ("peak", "networks", "training", "samplers", "checks", "compile")


def cmd_bench(args) -> int:
    from .tools.bench import main as bench_main

    sections = [x.strip() for x in args.sections.split(",") if x.strip()]
    if args.sections and not sections:
        raise UsageError(f"--sections {args.sections!r} names no section; choose from {', '.join(BENCH_SECTIONS)}")
    unknown = [x for x in sections if x not in BENCH_SECTIONS]
    if unknown:
        raise UsageError(f"--sections: unknown section(s) {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(BENCH_SECTIONS)}")
    args.sections = ",".join(sections)
    check_range("--threads", args.threads, 0, 1024)
    if args.budget is not None:
        check_range("--budget", args.budget, 0, None, lo_open=True)
    if args.out:
        check_output_file("--out", args.out, (".json",))
    check_device(args.device)
    return bench_main(args=args)


def cmd_demo(args) -> int:
    from .demo import run_demo

    check_range("--n-images", args.n_images, 0, 16)
    check_seed("--seed", args.seed)
    if args.out:
        check_output_dir("--out", args.out)
    check_device(None)
    run_demo(out=args.out, checkpoint=args.checkpoint, preset=args.preset, n_images=args.n_images,
             seed=args.seed, progress=not args.no_progress)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strdiff", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"strdiff_edu {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="version, active profile and device")
    _add_profile_args(p, "info")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("schedule", help="print the mean-reverting SDE's schedule table")
    _add_profile_args(p, "schedule")
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
                        "(strdiff_edu.tools.prepare; try `strdiff data prepare list`)",
                        add_help=False)
    q.add_argument("rest", nargs=argparse.REMAINDER)
    q.set_defaults(func=cmd_data, preset=None)

    from .methods import DEFAULT_METHOD, DEFAULT_NOISE_SCALE, DEFAULT_REIMPOSE, METHODS
    from .sampling import MODES

    p = sub.add_parser("inpaint", help="inpaint one image file with a mask file (white = hole)",
                       description="Inpaint IMAGE (any size; RGB, gray or RGBA) where MASK is white "
                       "(the NVIDIA / official convention; --black-hole for masks whose kept pixels are "
                       "white). Uses the profile's shipped weights (else weights/cpu) unless --checkpoint DIR "
                       "is given; the weights' T must equal the profile's (--T).")
    p.add_argument("image")
    p.add_argument("mask")
    p.add_argument("-o", "--output", required=True, help="output image file (PNG)")
    p.add_argument("--checkpoint", default="", help="weights folder (default: the profile's shipped weights, else weights/cpu)")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=list(METHODS),
                   help=f"(default {DEFAULT_METHOD}) " + "; ".join(f"{k}: {m.description}" for k, m in METHODS.items()))
    p.add_argument("--mode", default="corrected", choices=list(MODES), help="'official' reproduces the official sampler's quirks")
    p.add_argument("--reimpose", default=None, action=argparse.BooleanOptionalAction,
                   help=f"re-impose the known pixels after every reverse step (default {DEFAULT_REIMPOSE})")
    p.add_argument("--noise-scale", type=float, default=None,
                   help=f"factor on the reverse SDE's noise term (default {DEFAULT_NOISE_SCALE}: chosen on the "
                        "validation split; 1 is the reverse SDE itself)")
    p.add_argument("--full-resolution", action="store_true",
                   help="inpaint at the file's size; by default a photo whose shorter side exceeds 1.5x the "
                        "networks' training size is inpainted at that size and the hole pasted back at full size")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="largest working image (width x height) the sampler may run at (default "
                        "262144 = 512 x 512); the memory it takes grows with it")
    p.add_argument("--black-hole", action="store_true", help="the mask file marks holes black (kept pixels white)")
    p.add_argument("--structure-out", default="", help="also write the sampled structure map here")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-fast", action="store_true", help=FAST_HELP)
    _add_profile_args(p, "inpaint")
    p.set_defaults(func=cmd_inpaint)

    p = sub.add_parser("evaluate", help="methods x mask bins on the eval split: JSON, markdown tables, figure grids")
    p.add_argument("--methods", default="irsde,strdiff,strdiff-resample,biharmonic",
                   help="comma-separated, from: " + "; ".join(f"{k}: {m.description}" for k, m in METHODS.items()))
    p.add_argument("--checkpoint", default="", help="weights folder (default: the profile's shipped weights, else weights/cpu)")
    p.add_argument("--data", default="embedded", help="'embedded' (the frozen eval split) or a folder of images")
    p.add_argument("--bins", default="paper", help="'paper', 'nvidia' or percent ranges like '10-20,40-50'")
    p.add_argument("--n-images", type=int, default=0, help="use the first N images (0: all)")
    p.add_argument("--mode", default="corrected", choices=list(MODES))
    p.add_argument("--fid", default=None, action=argparse.BooleanOptionalAction,
                   help="FID/KID with local Inception weights (default: when they are installed)")
    p.add_argument("--out", default="_build/evaluate", help="output folder")
    _add_profile_args(p, "evaluate")
    p.add_argument("--no-fast", action="store_true", help=FAST_HELP)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("demo", help="the main demo: all methods on the eval split, tables and figures in _build/demo")
    p.add_argument("--checkpoint", default="", help="weights folder (default: the profile's shipped weights, else weights/cpu)")
    p.add_argument("--preset", choices=list(PRESETS), default=None)
    p.add_argument("--n-images", type=int, default=0, help="eval images per bin (default: the demo's subset)")
    p.add_argument("--out", default="", help="output folder (default: the checkout's _build/demo, "
                   "else ./strdiff_demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="benchmarks: network throughput, training MFU, sampler seconds and calls, "
                                     "fast-path accuracy (tables + JSON)")
    from .tools.bench import add_arguments as add_bench_arguments
    add_bench_arguments(p)
    p.set_defaults(func=cmd_bench)
    return parser


DEBUG_HELP = "on an error, show the full Python traceback (also $STRDIFF_DEBUG=1); accepted anywhere on the line"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command. A user error prints ``strdiff: error: <problem>; <fix>`` and returns 2; a
    bug prints one line saying so (``--debug`` shows the traceback); Ctrl-C returns 130.
    :func:`strdiff_edu.errors.describe` decides which is which."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("STRDIFF_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)
    import warnings

    show = warnings.showwarning
    if not debug:   # a warning is one line too: "strdiff: warning: <message>"
        warnings.showwarning = lambda message, *a, **k: print(f"strdiff: warning: {message}", file=sys.stderr)
    try:
        return args.func(args)
    except Exception as exc:
        if debug:
            raise
        code, line = describe(exc)
    except KeyboardInterrupt as exc:
        if debug and not isinstance(exc, Interrupted):
            raise
        code, line = describe(exc)
    finally:
        warnings.showwarning = show
    sys.stdout.flush()
    print(line, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
