"""Export the runs of ``scripts/train_weights.sh`` into a weights folder with a complete manifest.

    .venv/bin/python scripts/finish_weights.py --runs runs/weights-cpu --out weights/cpu

For every trained network it copies the EMA weights and training curve (``train.export_weights``)
and adds to its manifest entry: what it predicts, the images it saw, its images/s, the FLOPs of
one training step counted by ``torch.utils.flop_counter`` (forward and backward, at the run's batch
size) and the model FLOP utilisation of the run against this machine's measured single-thread
float32 matrix-multiply peak (the runs used one thread each). Folders that link to these files
(``weights/cpu-cheap``) get their manifest entries refreshed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from strdiff_edu import checkpoint as ckpt_io  # noqa: E402
from strdiff_edu.tools.bench import matmul_throughput  # noqa: E402
from strdiff_edu.profiles import get_profile  # noqa: E402
from strdiff_edu.train import BatchSource, StageLoss, TrainConfig, _step_generator, export_weights  # noqa: E402
from strdiff_edu.weights import load_network  # noqa: E402

#: the networks, each trained in the run folder of its name
NETWORKS = ("structure", "texture", "irsde", "discriminator")


def step_flops(run: Path, network: str) -> float:
    """FLOPs of one training step of the run's configuration (forward + backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    ck = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    cfg = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in ck["train"].items()})
    prof = get_profile(cfg.preset)
    net, _ = load_network(run / "last.pt", network, use_ema=False)
    net.train()
    source = BatchSource(prof, cfg)
    batch = source.batch(0, cfg.batch_size or prof.batch_size)
    loss_fn = StageLoss(cfg.stage, prof.sde.build(), cfg)
    with FlopCounterMode(display=False) as counter:
        loss, _ = loss_fn(net, batch, _step_generator(cfg.seed, 0, 0, "cpu"))
        loss.backward()
    return float(counter.get_total_flops()), cfg.batch_size or prof.batch_size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs/weights-cpu")
    ap.add_argument("--out", default="weights/cpu")
    ap.add_argument("--linked", default="weights/cpu-cheap", help="folder whose links to --out to refresh")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    peak = matmul_throughput("cpu", dtype=torch.float32, n=1024, min_seconds=1.0)
    print(f"single-thread float32 matmul peak: {peak['tflops'] * 1e3:.1f} GFLOP/s")
    out = Path(args.out)
    for network in NETWORKS:
        run = Path(args.runs) / network
        if not (run / "last.pt").exists():
            print(f"{network}: no run in {run}; the folder keeps its current file")
            continue
        flops, batch = step_flops(run, network)
        summary = json.loads((run / "summary.json").read_text())
        steps, wall = int(summary["steps"]), float(summary["wall_s"])
        extra = {"images_seen": steps * batch, "images_per_s": round(steps * batch / wall, 2),
                 "train_gflops_per_step": round(flops / 1e9, 3),
                 "mfu": round(flops * steps / wall / (peak["tflops"] * 1e12), 4),
                 "mfu_peak": f"float32 matmul, 1 thread, {peak['tflops'] * 1e3:.1f} GFLOP/s (measured)"}
        export_weights(run, out, network, extra)
        print(f"{network}: {steps} steps, {wall / 60:.1f} min, {extra['images_per_s']} img/s, "
              f"{extra['train_gflops_per_step']} GFLOP/step, MFU {extra['mfu']:.1%}")
    manifest = ckpt_io.verify_folder(out)
    linked = Path(args.linked)
    if (linked / "manifest.json").exists():
        entries = json.loads((linked / "manifest.json").read_text())
        for network in list(entries):
            path = ckpt_io.network_path(linked, network)
            if path.is_symlink() and network in manifest:
                entries[network] = {k: v for k, v in manifest[network].items() if k not in ("file", "sha256")}
            else:
                entries[network] = {k: v for k, v in entries[network].items() if k not in ("file", "sha256")}
        ckpt_io.write_manifest(linked, entries)
        ckpt_io.verify_folder(linked)
        print(f"refreshed {linked / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
