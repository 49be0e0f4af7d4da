"""The ``strdiff`` command-line tool.

    strdiff info                      # version, active profile, device
    strdiff schedule --preset paper   # the SDE's schedule table (Delta, exp(-theta_bar), sigma_bar)
    strdiff book                      # execute the notebooks and render the book offline

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
