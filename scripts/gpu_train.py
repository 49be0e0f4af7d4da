"""Train all four networks of a preset at once, on one device, for a wall-clock budget.

    PYTHONPATH=. python3 scripts/gpu_train.py --preset cpu --budget-s 480 --out OUT   # one GPU call
    .venv/bin/python scripts/gpu_train.py --preset tiny --budget-s 20 --device cpu --out /tmp/g  # smoke

The recipe is the CPU one of ``scripts/train_weights.sh`` (clean-state predictions, L1 on x0,
constant learning rate with clipping, EMA 0.999, t ~ U{1..T}) with a larger batch; the four
networks (structure, texture, IR-SDE, discriminator) take one step each in turn, so they share
the device for the whole budget and end together. Every ``--checkpoint-s`` seconds each network's
full training state is saved to ``--ckpt-dir`` (resumable with ``--resume``); at the end the EMA
weights are written to ``--out`` as a weights folder (``strdiff ... --checkpoint OUT``), with

* ``manifest.json``: per network the config, steps, images seen, images/s, the FLOPs of one
  training step (``torch.utils.flop_counter`` over forward and backward) and, for the run, the
  hardware, minutes, the measured bf16 dense-matmul peak and the MFU (achieved FLOP/s over it);
* ``curves.csv``: step, seconds and loss of every network every ``--log-every`` steps;
* ``presets.json`` (with ``--measure-presets gpu,paper``): after training, seconds per training
  step, images/s and MFU of every network at those presets (``strdiff_edu.tools.bench``), what a reader
  planning a longer run needs.

At most 7 files, each well under 16 MiB at the cpu preset (the weights are 1.3-6 MB each).
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strdiff_edu import checkpoint as ckpt_io  # noqa: E402
from strdiff_edu.profiles import get_profile  # noqa: E402
from strdiff_edu.train import (NETWORK_OF_STAGE, BatchSource, StageLoss, TrainConfig,  # noqa: E402
                               _step_generator, build_network, checkpoint_config, ema_decay_at, ema_update)

#: stage -> what its network predicts (the shipped recipe)
RECIPE = {"structure": "x0", "texture": "x0-fill", "texture-irsde": "x0-fill", "discriminator": "noise"}


class Lane:
    """One network's training state: model, EMA, optimiser, loss and data (pure functions of step)."""

    def __init__(self, stage: str, prof, args, device):
        self.stage, self.network = stage, NETWORK_OF_STAGE[stage]
        self.cfg = TrainConfig(stage=stage, preset=prof.name, prediction=RECIPE[stage], lr=args.lr,
                               grad_clip=args.grad_clip, ema_decay=args.ema_decay, ema_every=1, t_min=1,
                               crops_per_scene=args.crops_per_scene, seed=args.seed,
                               batch_size=args.batch_size)
        self.sde = prof.sde.build()
        torch.manual_seed(args.seed)
        overrides = {"prediction": self.cfg.prediction} if self.network != "discriminator" else None
        self.model, model_cfg = build_network(self.network, prof, overrides)
        self.model.to(device)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        betas = (0.5, 0.99) if stage == "discriminator" else (0.9, 0.99)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=args.lr, betas=betas)
        self.loss_fn = StageLoss(stage, self.sde, self.cfg)
        self.source = BatchSource(prof, self.cfg)
        self.ck_config = checkpoint_config(self.network, model_cfg, self.sde, prof, self.cfg)
        self.device, self.step, self.seconds, self.last_loss = device, 0, 0.0, float("nan")
        self.flops_per_step = None

    def batch(self):
        return {k: v.to(self.device, non_blocking=True) for k, v in
                self.source.batch(self.step, self.cfg.batch_size).items()}

    def train_step(self, bf16: bool) -> None:
        t0 = time.perf_counter()
        b = self.batch()
        gen = _step_generator(self.cfg.seed, self.step, 0, self.device)
        self.model.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = self.loss_fn(self.model, b, gen)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{self.stage}: loss became {loss.item()} at step {self.step}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.step += 1
        ema_update(self.ema, self.model, ema_decay_at(self.cfg, self.step))
        self.last_loss = loss.detach()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - t0

    def count_flops(self, bf16: bool) -> float:
        """FLOPs of one training step (forward + backward) by ``torch.utils.flop_counter``; the
        step is run on a copy so that the training state does not change."""
        from torch.utils.flop_counter import FlopCounterMode

        model = copy.deepcopy(self.model)
        b = self.batch()
        gen = _step_generator(self.cfg.seed, self.step, 0, self.device)
        with FlopCounterMode(display=False) as counter:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                loss, _ = self.loss_fn(model, b, gen)
            loss.backward()
        self.flops_per_step = float(counter.get_total_flops())
        return self.flops_per_step

    def state(self) -> dict:
        return {"network": self.network, "config": self.ck_config, "step": self.step,
                "model": self.model.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.opt.state_dict(), "wall_s": self.seconds,
                "train": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self.cfg).items()}}

    def load(self, ck: dict) -> None:
        self.model.load_state_dict(ck["model"])
        self.ema.load_state_dict(ck["ema"])
        self.opt.load_state_dict(ck["optimizer"])
        self.step, self.seconds = int(ck["step"]), float(ck.get("wall_s", 0.0))


def measured_peak(device) -> dict:
    from strdiff_edu.tools.bench import matmul_throughput

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return matmul_throughput(device, dtype=dtype, min_seconds=0.5)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--budget-s", type=float, default=480.0, help="training wall-clock budget (seconds)")
    ap.add_argument("--out", required=True, help="weights folder to write (EMA weights, manifest, curves)")
    ap.add_argument("--ckpt-dir", default="", help="full training states (default runs/gpu-<preset>)")
    ap.add_argument("--checkpoint-s", type=float, default=60.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--ema-decay", type=float, default=0.999)
    ap.add_argument("--crops-per-scene", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--stages", default="structure,texture,texture-irsde,discriminator")
    ap.add_argument("--device", default="", help="cuda (default when present) or cpu")
    ap.add_argument("--no-bf16", action="store_true")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--measure-presets", default="", help="comma-separated presets to time after training "
                    "(e.g. gpu,paper): seconds per step and img/s per network")
    ap.add_argument("--measure-batch", type=int, default=16)
    args = ap.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    bf16 = device.type == "cuda" and not args.no_bf16
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    prof = get_profile(args.preset)
    out = Path(args.out)
    ckpt_dir = Path(args.ckpt_dir or f"runs/gpu-{prof.name}")
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    t_setup = time.perf_counter()
    lanes = [Lane(s, prof, args, device) for s in args.stages.split(",")]
    if args.resume:
        for lane in lanes:
            path = ckpt_dir / f"{lane.network}.pt"
            if path.exists():
                lane.load(ckpt_io.load_checkpoint(path, map_location=device, expect=lane.ck_config,
                                                  network=lane.network))
                print(f"resuming {lane.stage} at step {lane.step}")
    peak = measured_peak(device)
    flops = {lane.stage: lane.count_flops(bf16) for lane in lanes}
    print(f"device {device}; peak {peak['tflops']:.1f} TFLOP/s ({peak['dtype']}); "
          f"GFLOPs per step: " + ", ".join(f"{k} {v / 1e9:.1f}" for k, v in flops.items()), flush=True)
    setup_s = time.perf_counter() - t_setup

    rows, t0, last_ckpt = [], time.perf_counter(), time.perf_counter()
    start_steps = {lane.stage: lane.step for lane in lanes}

    def save_states():
        for lane in lanes:
            ckpt_io.save_checkpoint(ckpt_dir / f"{lane.network}.pt", lane.state())

    try:
        while time.perf_counter() - t0 < args.budget_s:
            for lane in lanes:
                lane.train_step(bf16)
                if lane.step % args.log_every == 0:
                    rows.append({"network": lane.network, "step": lane.step,
                                 "seconds": round(time.perf_counter() - t0, 2), "loss": float(lane.last_loss)})
            if time.perf_counter() - last_ckpt >= args.checkpoint_s:
                save_states()
                last_ckpt = time.perf_counter()
                print(f"{time.perf_counter() - t0:6.0f} s: " + ", ".join(
                    f"{lane.stage} {lane.step}" for lane in lanes), flush=True)
    except KeyboardInterrupt:
        print("interrupted: saving the training states", flush=True)
    wall = time.perf_counter() - t0
    save_states()

    hardware = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads")
    total_flops = sum(flops[lane.stage] * (lane.step - start_steps[lane.stage]) for lane in lanes)
    run = {"hardware": hardware, "device": str(device), "torch": torch.__version__, "bf16": bf16,
           "minutes": round(wall / 60, 2), "setup_s": round(setup_s, 1),
           "peak_tflops": round(peak["tflops"], 2), "peak_dtype": peak["dtype"],
           "achieved_tflops": round(total_flops / wall / 1e12, 4),
           "mfu": round(total_flops / wall / 1e12 / peak["tflops"], 5),
           "batch_size": args.batch_size, "recipe": RECIPE}
    entries = {}
    for lane in lanes:
        done = lane.step - start_steps[lane.stage]
        ckpt_io.save_checkpoint(ckpt_io.network_path(out, lane.network),
                                {"network": lane.network, "config": lane.ck_config, "model": lane.ema.state_dict(),
                                 "step": lane.step, "train": lane.state()["train"]})
        entries[lane.network] = {
            "config": lane.ck_config, "steps": lane.step, "images_seen": lane.step * args.batch_size,
            "wall_s": round(lane.seconds, 1), "images_per_s": round(done * args.batch_size / max(lane.seconds, 1e-9), 1),
            "train_gflops_per_step": round(flops[lane.stage] / 1e9, 3),
            "final_loss": float(lane.last_loss), "trained_on": run}
    ckpt_io.write_manifest(out, entries)
    with open(out / "curves.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["network", "step", "seconds", "loss"])
        w.writeheader()
        w.writerows(rows)
    if args.measure_presets:
        from strdiff_edu.tools.bench import training_step_throughput

        timings = {"device": hardware, "batch": args.measure_batch, "peak_tflops": peak["tflops"], "rows": []}
        for preset in args.measure_presets.split(","):
            for network in ("structure", "texture", "irsde", "discriminator"):
                try:
                    timings["rows"].append(training_step_throughput(
                        network, preset, device, args.measure_batch, bf16=bf16, channels_last=device.type == "cuda",
                        steps=5, peak_tflops=peak["tflops"]))
                except Exception as exc:   # e.g. out of memory at the paper preset: recorded, not fatal
                    timings["rows"].append({"network": network, "preset": preset, "error": repr(exc)[:300]})
                print(json.dumps(timings["rows"][-1]), flush=True)
        (out / "presets.json").write_text(json.dumps(timings, indent=1) + "\n")
    print(json.dumps({"run": run, "steps": {k: v["steps"] for k, v in entries.items()},
                      "images_per_s": {k: v["images_per_s"] for k, v in entries.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
