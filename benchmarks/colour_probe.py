"""How well can anything learned from the training scenes predict a hole's mean colour?

The hole-colour target asks that the default method's hole mean colour be no further from the
truth than scikit-image's biharmonic fill's on at least 80 % of the images. This probe trains a
network whose *only* job is that number: a small CNN that reads the masked image, the mask and a
fill (``--base``: biharmonic by default, or the harmonic fill) and predicts the hole's mean colour
as the fill's plus a learned correction (zero at the start), trained on the metric itself (the L2
distance of mean colours) on a pool of crops and masks. It is not an inpainting method; it gauges
what a model trained on these photographs can learn about this one statistic.

Generalisation is measured the way the evaluation split measures it, on scenes the network never
saw: the 13 training scenes are split into folds, each fold's scenes are held out in turn, and the
held-out pairs (crops x masks of the paper's four bins) are scored against biharmonic's hole
colour. ``--extra DIR`` adds every image in DIR as one more training scene (never held out), to
see whether more photographs move the number.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/colour_probe.py \
        --out benchmarks/results/colour_probe.json [--extra DIR] [--base harmonic]

The extra photographs measured in ``benchmarks/results/colour_probe_*_extra.json`` are the 12
photos of Debian's ``mate-backgrounds`` (GPL-2+; ``apt-get download mate-backgrounds``,
``dpkg-deb -x``, folder ``usr/share/backgrounds/mate/nature``); they are not part of the
embedded data and train no shipped network.

Each fold also records the held-out share every ``--eval-every`` steps (a curve, not a choice).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strdiff_edu import data as D  # noqa: E402
from strdiff_edu import metrics as M  # noqa: E402
from strdiff_edu.fill import biharmonic_fill, harmonic_fill  # noqa: E402
from strdiff_edu.masks import PAPER_BINS, free_form_mask, to_known  # noqa: E402

SIZE = 64


def crop(a: np.ndarray, rng: np.random.Generator, min_side: float = 0.35) -> torch.Tensor:
    """A random square crop (side uniform in [min_side, 1] x the shorter side, random position
    and flip) of an (H, W, 3) uint8 array, resized to SIZE (bicubic): (3, SIZE, SIZE) in [0, 1]."""
    h, w = a.shape[:2]
    side = int(rng.uniform(min_side, 1.0) * min(h, w))
    top, left = int(rng.uniform(0, h - side)), int(rng.uniform(0, w - side))
    img = Image.fromarray(a[top:top + side, left:left + side]).resize((SIZE, SIZE), Image.BICUBIC)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)


def pairs(sources, n: int, rng: np.random.Generator):
    """``n`` (image, known) pairs cycling over a scene's sources, bins cycling over the paper's."""
    images, known = [], []
    for i in range(n):
        images.append(crop(sources[i % len(sources)], rng))
        known.append(to_known(free_form_mask(SIZE, PAPER_BINS[i % len(PAPER_BINS)], rng)[None])[0])
    return torch.stack(images), torch.stack(known)


class ColourNet(nn.Module):
    """Masked image, mask and a fill (7 channels) -> the hole mean colour, as the fill's hole
    mean plus a learned correction."""

    def __init__(self, width: int = 32):
        super().__init__()
        c = [7, width, 2 * width, 3 * width, 4 * width]
        self.convs = nn.ModuleList(nn.Conv2d(c[i], c[i + 1], 3, stride=2, padding=1) for i in range(4))
        self.head = nn.Sequential(nn.Linear(2 * c[-1] + 6, 128), nn.SiLU(), nn.Linear(128, 3))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, image, known, fill):
        hole_mean = M.hole_mean_colour(fill, known)
        known_mean = (image * known).sum((2, 3)) / known.sum((2, 3)).clamp_min(1)
        h = torch.cat([image * known, known, fill], 1)
        for conv in self.convs:
            h = F.silu(conv(h))
        feats = torch.cat([h.mean((2, 3)), h.amax((2, 3)), hole_mean, known_mean], 1)
        return hole_mean + self.head(feats)


def share_no_worse(net, test) -> tuple:
    """(share of the test pairs whose probe error is at most biharmonic's, the probe's mean
    error, its per-pair errors)."""
    x, k, f, bih_err = test
    with torch.no_grad():
        err = (net(x * k, k, f) - M.hole_mean_colour(x, k)).norm(dim=1)
    return float((err <= bih_err).float().mean()), float(err.mean()), err


def train(pool, steps: int, batch: int, seed: int, test, eval_every: int):
    """The probe trained on ``pool``; returns it and its held-out curve [(step, share, error)]."""
    images, known, fill = pool
    torch.manual_seed(seed)
    curve = []
    net = ColourNet()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(0, images.shape[0], (batch,), generator=g)
        x, k, f = images[idx], known[idx], fill[idx]
        if torch.rand((), generator=g) < 0.5:        # vertical flips on top of the crops' own
            x, k, f = x.flip(2), k.flip(2), f.flip(2)
        pred = net(x * k, k, f)
        loss = (pred - M.hole_mean_colour(x, k)).norm(dim=1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % eval_every == 0:
            share, err, _ = share_no_worse(net.eval(), test)
            curve.append((step + 1, round(share, 3), round(err, 4)))
            net.train()
    return net.eval(), curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--extra", default=None, help="a folder of photographs, each one more training scene")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--train-per-scene", type=int, default=600)
    ap.add_argument("--test-per-scene", type=int, default=48)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base", choices=("biharmonic", "harmonic"), default="biharmonic")
    ap.add_argument("--eval-every", type=int, default=500)
    args = ap.parse_args()
    t0 = time.time()
    torch.set_num_threads(1)
    scenes, _ = D.default_split()
    arrays = {s: [D.load_source(n) for n in s] for s in scenes}
    extra = []
    if args.extra:
        extra = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(Path(args.extra).iterdir())
                 if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    rng = np.random.default_rng(args.seed)
    train_pool = {s: pairs(arrays[s], args.train_per_scene, rng) for s in scenes}
    extra_pool = [pairs([a], args.train_per_scene, rng) for a in extra]
    test_pool = {s: pairs(arrays[s], args.test_per_scene, rng) for s in scenes}
    fill_of = biharmonic_fill if args.base == "biharmonic" else harmonic_fill

    def filled(p):
        return p + (torch.cat([fill_of(p[0][i:i + 64] * p[1][i:i + 64], p[1][i:i + 64])
                               for i in range(0, p[0].shape[0], 64)]),)

    train_pool = {s: filled(p) for s, p in train_pool.items()}
    extra_pool = [filled(p) for p in extra_pool]
    test_pool = {s: filled(p) for s, p in test_pool.items()}
    folds = [scenes[i::args.folds] for i in range(args.folds)]
    rows, per_fold = {"probe": [], "biharmonic": [], "harmonic": []}, []
    for fi, held in enumerate(folds):
        parts = [train_pool[s] for s in scenes if s not in held] + extra_pool
        pool = tuple(torch.cat([p[j] for p in parts]) for j in range(3))
        x, k, f = (torch.cat([test_pool[s][j] for s in held]) for j in range(3))
        bih = f if args.base == "biharmonic" else biharmonic_fill(x * k, k)
        bih_err = M.hole_colour_error(bih, x, k)
        test = (x, k, f, bih_err)
        net, curve = train(pool, args.steps, args.batch, args.seed + fi, test, args.eval_every)
        share, probe_err, per_pair = share_no_worse(net, test)
        err = {"probe": per_pair, "biharmonic": bih_err,
               "harmonic": M.hole_colour_error(harmonic_fill(x * k, k), x, k)}
        for name, e in err.items():
            rows[name].append(e)
        per_fold.append({"held_out": ["+".join(s) for s in held], "n_pairs": int(x.shape[0]),
                         "probe_share_no_worse": round(share, 3),
                         "probe_mean_error": round(probe_err, 4),
                         "biharmonic_mean_error": round(float(err["biharmonic"].mean()), 4),
                         "curve_step_share_error": curve})
        print(per_fold[-1], flush=True)
    e = {k: torch.cat(v) for k, v in rows.items()}
    summary = {name: {"mean_error": round(float(v.mean()), 4),
                      "share_no_worse_than_biharmonic": round(float((v <= e["biharmonic"]).float().mean()), 3)}
               for name, v in e.items()}
    out = {"meta": {"command": " ".join(["benchmarks/colour_probe.py"] + sys.argv[1:]),
                    "base": args.base, "training_scenes": len(scenes), "extra_scenes": len(extra),
                    "train_pairs_per_scene": args.train_per_scene, "test_pairs_per_scene": args.test_per_scene,
                    "steps": args.steps, "batch": args.batch, "folds": args.folds,
                    "torch": torch.__version__, "threads": 1, "wall_s": round(time.time() - t0, 1)},
           "summary": summary, "folds": per_fold}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
