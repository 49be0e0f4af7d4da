"""Seconds and network calls per image for every sampler (and the non-learned baselines).

    .venv/bin/python benchmarks/sampler_table.py                 # tiny preset, random-init networks
    .venv/bin/python benchmarks/sampler_table.py cpu --images 8  # cpu preset (64 px, T = 100)
    .venv/bin/python benchmarks/sampler_table.py cpu --checkpoint weights/cpu

Runs each method on the first ``--images`` frozen eval images with the 30-40 % masks, as one
batch, with the resampling constants of the preset's T (official: 25/4/2/2 at T = 100). With
random-initialised networks (the default when no ``--checkpoint`` is given) the adaptive
resampling's iteration counts are those of an untrained discriminator: the timings per call are
right, the number of resampling iterations is not representative of trained weights (the counts
per image lie between the formula's bounds, printed below the table). Timings depend on the
machine and on whatever else runs on it; this is a benchmark, not a test.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strdiff_edu import data, get_profile  # noqa: E402
from strdiff_edu.evaluate import LABELS  # noqa: E402
from strdiff_edu.methods import build, needed_networks  # noqa: E402
from strdiff_edu.weights import Weights  # noqa: E402
from strdiff_edu.models import build_network  # noqa: E402
from strdiff_edu.resampling import expected_nfe, resampled_times, resampling_schedule  # noqa: E402

DEFAULT_METHODS = ("irsde", "irsde-repaint", "strdiff", "strdiff-always", "strdiff-resample", "biharmonic")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("preset", nargs="?", default="tiny")
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    p.add_argument("--checkpoint", default="")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    prof = get_profile(args.preset)
    sde = prof.sde.build()
    methods = [m for m in args.methods.split(",") if m]
    if args.checkpoint:
        nets, configs = Weights(args.checkpoint).load(needed_networks(methods), sde=sde)
        source = args.checkpoint
    else:
        torch.manual_seed(0)
        nets = {n: build_network(n, prof.name).eval() for n in needed_networks(methods)}
        configs = {"texture": {"preset": prof.name, "structure": {"pairing": "gray2edge"}}}
        source = "random-init"
    images, masks = data.eval_pairs(prof.image_size)
    img, known = images[:args.images], masks[(0.3, 0.4)][:args.images]
    schedule = resampling_schedule(sde.T)
    print(f"profile {prof.name}: {prof.image_size} px, T={sde.T}, {args.images} images in one batch, "
          f"{torch.get_num_threads()} threads, networks {source}; resampling {schedule}")
    print("| method | s / image | structure | texture | discriminator | batched calls |")
    print("|---|---:|---:|---:|---:|---:|")
    for m in methods:
        sampler = build(m, nets=nets, sde=sde, configs=configs)
        t0 = time.perf_counter()
        r = sampler.sample(img, known, generator=torch.Generator().manual_seed(0), progress=False)
        sec = (time.perf_counter() - t0) / args.images
        nfe = {k: float(v.float().mean()) for k, v in r.nfe.items()}
        print(f"| {LABELS.get(m, m)} | {sec:.3f} | {nfe.get('structure', 0):.0f} | {nfe.get('texture', 0):.0f} | "
              f"{nfe.get('discriminator', 0):.0f} | {sum(r.calls.values())} |")
    times = resampled_times(sde.T, schedule)
    lo = expected_nfe(sde.T, schedule, {t: schedule.u_min for t, _ in times})
    hi = expected_nfe(sde.T, schedule, {t: schedule.u_max - 1 for t, _ in times})
    print(f"\nadaptive resampling bounds per image (k_t = u_min .. u_max - 1 at {len(times)} times): "
          f"structure {lo['structure']}-{hi['structure']}, texture {lo['texture']}-{hi['texture']}, "
          f"discriminator {lo['discriminator']}-{hi['discriminator']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
