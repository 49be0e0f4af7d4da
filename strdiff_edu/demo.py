"""The demo (``strdiff demo``, ``make demo``): inpaint the embedded eval split with every method.

On the frozen evaluation pairs of the embedded data (:func:`strdiff_edu.data.eval_pairs`, one
seeded free-form mask per image and hole-ratio bin 10-20 %, ..., 40-50 %) and with the shipped
weights, it runs IR-SDE, StrDiffusion without resampling, StrDiffusion with adaptive resampling
(the official rule with the constants of the weights' T, :func:`strdiff_edu.resampling.resampling_schedule`)
and the non-learned baselines (biharmonic; Telea when OpenCV is installed), then writes the
figure grids and the metrics tables (PSNR / SSIM; FID needs far more images than the demo has)
into ``_build/demo/`` of the source checkout (``./strdiff_demo`` for an installed package) and
prints where they are.

Weights: ``--checkpoint DIR``, else :meth:`strdiff_edu.weights.Weights.find` (the active profile's
shipped folder, else ``cpu``'s, under :func:`strdiff_edu.locations.weights_root`: ``$STRDIFF_WEIGHTS``,
the checkout's ``weights/``, or the copy installed with the package); without any, it stops and
says to run ``make weights``. The image size and the
SDE (T) are the checkpoint's own.

Budget: at most 5 minutes on 2 CPU cores for the cpu weights (64 px, T = 100). One U-Net call
costs roughly 20-25 ms per 64 px image on two free cores (about 90 ms on one contended core), and
batching does not help on a CPU. Per image and bin, IR-SDE makes 100 calls, StrDiffusion 161, and
the adaptive resampling with the official T = 100 constants (25/4/2/2) 529-2369 (the count
depends on the discriminator's decisions; see :mod:`strdiff_edu.resampling`). So the demo uses
:data:`DEMO_IMAGES` eval images, spread over the eval scenes (``linspace`` over the 16 crops),
with all four bins: 8 image-mask pairs, about 6,000-20,000 calls. ``--n-images 4`` takes one
image per scene, ``--n-images 16`` the full split (both beyond the 5-minute budget).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from .baselines import telea_available
from .locations import checkout_root
from .resampling import ResamplingSchedule

#: Where the demo writes: the checkout's ``_build/demo``, or ``./strdiff_demo`` for an installed package.
DEFAULT_OUT = (checkout_root() / "_build" / "demo") if checkout_root() is not None else Path("strdiff_demo")
#: Eval images per bin in the demo (of 16): sized so the cpu demo stays under 5 minutes on 2 cores.
DEMO_IMAGES = 2
DEMO_METHODS = ("irsde", "strdiff", "strdiff-resample", "biharmonic", "fill")
#: Resampling schedules per checkpoint profile where they differ from the official ones of its T:
#: the ``tiny`` (CI) networks use a light schedule so that the demo runs in seconds.
DEMO_SCHEDULES = {"tiny": ResamplingSchedule(100, u_max=3, u_min=1, jump=10, re=2)}


def demo_methods() -> tuple:
    return DEMO_METHODS + (("telea",) if telea_available() else ())


def run_demo(out=None, checkpoint=None, preset: Optional[str] = None, n_images: Optional[int] = None,
             bins: str = "paper", methods: Optional[Sequence[str]] = None, seed: int = 0, device=None,
             progress: bool = True, verbose: bool = True) -> dict:
    """Run the demo; returns ``{"results": ..., "paths": {...}, "wall_s": ...}``."""
    from . import data
    from .device import pick_device
    from .evaluate import evaluate, write_report
    from .methods import needed_networks
    from .masks import parse_bins
    from .profiles import get_profile
    from .weights import Weights

    t0 = time.perf_counter()
    methods = tuple(methods or demo_methods())
    weights = Weights.find(checkpoint, preset)
    folder = weights.folder
    missing = [n for n in needed_networks(methods) if n not in weights.networks]
    if missing:
        from .checkpoint import CheckpointError

        raise CheckpointError(f"{folder} lacks the {', '.join(missing)} network(s) the demo needs; "
                              "finish `make weights` (it trains structure, texture, irsde, discriminator)")
    sde, size = weights.sde, weights.image_size
    device = device or pick_device(verbose=verbose)
    images, masks = data.eval_pairs(size, parse_bins(bins))
    n = min(n_images or DEMO_IMAGES, images.shape[0])
    pick = torch.linspace(0, images.shape[0] - 1, n).round().long()
    images = images[pick]
    masks = {b: m[pick] for b, m in masks.items()}
    if verbose:
        fallback = not checkpoint and folder.name != get_profile(preset).name
        print(f"demo: weights {folder} (T={sde.T}, {size} px), {n} eval images x {len(masks)} bins, "
              f"methods: {', '.join(methods)}"
              + (f"\ndemo: {folder.parent / get_profile(preset).name} holds no weights, so the cpu weights are used"
                 if fallback else ""))
    schedule = DEMO_SCHEDULES.get(weights.profile)
    if schedule is not None and schedule.T != sde.T:
        schedule = None
    res = evaluate(methods, images, masks, checkpoint=weights, sde=sde, device=device, seed=seed,
                   batch_size=n, fid=False, progress=progress, schedule=schedule)
    out = Path(out or DEFAULT_OUT)
    paths = write_report(res, out)
    wall = time.perf_counter() - t0
    res["meta"]["wall_s"] = round(wall, 1)
    paths = write_report(res, out)
    if verbose:
        from .evaluate import cost_markdown, table1_markdown

        print()
        print(table1_markdown(res))
        print()
        print(cost_markdown(res))
        print(f"\ndemo finished in {wall:.0f} s; outputs in {out}:")
        for k, p in paths.items():
            print(f"  {k:12s} {p}")
    return {"results": res, "paths": paths, "wall_s": wall}
