"""Benchmarks: network throughput and FLOP/s, training-step MFU, sampler seconds and calls per image,
the sampler's own overhead, and the fast path's accuracy (``strdiff bench``, ``benchmarks/run.py``).

Every number comes from the run that prints it, and every comparison is a ratio of two numbers
measured in the same run on the same device. Conventions:

* **FLOPs** are the analytic forward count of :mod:`strdiff_edu.models.summary` (2 per
  multiply-add, batch 1, times the batch); a training step counts 3x the forward (forward +
  backward w.r.t. activations and weights). **Achieved FLOP/s** = FLOPs / measured seconds.
* **MFU** = achieved training FLOP/s / the device's *measured* dense bf16 matrix-multiply
  throughput (:func:`matmul_throughput`), not a datasheet peak.
* **Sampler overhead** = (sampler seconds - the seconds its network calls take) / network
  seconds, where the network seconds are the batched calls the sampler made times each network's
  measured seconds per call at the same batch size and precision (measured in the same run).
* Networks are random-initialised: speed does not depend on the weights, but the number of
  adaptive-resampling iterations does (an untrained discriminator's decisions), so the resampling
  rows' call counts are those of random weights.
* Timings include a warm-up; CUDA timings synchronise before reading the clock.
"""
from __future__ import annotations

import contextlib
import json
import math
import platform
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

from ..fast import FastPath, prepare_network
from ..models import build_network, model_config
from ..models.summary import measure
from ..profiles import get_profile

SAMPLER_METHODS = ("irsde", "irsde-repaint", "strdiff", "strdiff-resample")
NETWORK_NAMES = ("texture", "structure", "irsde", "discriminator")


# ----------------------------------------------------------------------------- timing
def synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_per_call(fn: Callable[[], object], device, min_seconds: float = 0.3, max_calls: int = 100,
                  warmup: int = 2, after_warmup: Optional[Callable[[], object]] = None) -> float:
    """Seconds per call of ``fn``: ``warmup`` calls, one timed call to size the run, then enough
    calls to last about ``min_seconds`` (at least 2, at most ``max_calls``)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    if after_warmup is not None:
        after_warmup()
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    first = time.perf_counter() - t0
    n = int(min(max_calls, max(2, math.ceil(min_seconds / max(first, 1e-6)))))
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    synchronize(device)
    return (time.perf_counter() - t0) / n


class Budget:
    """A wall-clock budget: sections ask ``allows(seconds)`` before starting."""

    def __init__(self, seconds: Optional[float]):
        self.deadline = None if seconds is None else time.perf_counter() + seconds

    def left(self) -> float:
        return math.inf if self.deadline is None else self.deadline - time.perf_counter()

    def allows(self, seconds: float) -> bool:
        return self.left() > seconds


class PeakMemory:
    """CUDA memory allocated at the peak of the calls after ``reset()``, above what was allocated
    at the reset (the weights, made before): the working memory of the calls. Reset after the
    warm-up, so cuDNN's algorithm search (which tries large workspaces) is not counted."""

    def __init__(self, device):
        self.cuda = torch.device(device).type == "cuda"
        self.device, self.base = device, 0

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)

    def mb(self) -> Optional[float]:
        if not self.cuda:
            return None
        return (torch.cuda.max_memory_allocated(self.device) - self.base) / 2**20


# ----------------------------------------------------------------------------- pieces
def matmul_throughput(device, dtype=torch.bfloat16, n: Optional[int] = None, min_seconds: float = 0.5) -> dict:
    """Measured dense matrix-multiply throughput (TFLOP/s) of ``n x n`` products: the device's
    practical peak for MFU. Default ``n``: 8192 on CUDA, 1024 on a CPU."""
    device = torch.device(device)
    n = n or (8192 if device.type == "cuda" else 1024)
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    sec = time_per_call(lambda: a @ b, device, min_seconds=min_seconds, max_calls=200)
    return {"dtype": str(dtype).replace("torch.", ""), "n": n, "seconds": sec, "tflops": 2 * n**3 / sec / 1e12}


def network_inputs(network: str, preset: str, batch: int, device, generator: torch.Generator):
    """Random arguments of one forward of ``network`` (images in [0, 1], a random step t)."""
    cfg = model_config(preset, network)
    s = cfg.image_size
    T = get_profile(preset).sde.T
    t = torch.randint(1, T, (batch,), device=device, generator=generator)
    rand = lambda c: torch.rand(batch, c, s, s, device=device, generator=generator)  # noqa: E731
    if network == "discriminator":
        return (rand(3), rand(1), t)
    args = (rand(cfg.image_channels), rand(cfg.image_channels), t)
    return args + ((rand(1),) if cfg.spade else ())


def network_throughput(network: str, preset: str, device, batch: int, fast: FastPath,
                       min_seconds: float = 0.3) -> dict:
    """Forward and forward+backward images/s of one random-initialised network, its analytic
    FLOPs, the FLOP/s achieved and the peak memory (CUDA)."""
    device = torch.device(device)
    torch.manual_seed(0)
    base = build_network(network, preset).to(device)
    g = torch.Generator(device=device).manual_seed(0)
    args = network_inputs(network, preset, batch, device, g)
    gflops = measure(preset, network)["gflops"]
    row = {"network": network, "preset": preset, "batch": batch, "fast_path": fast.label(),
           "gflops_forward": gflops, "params": sum(p.numel() for p in base.parameters())}

    net = prepare_network(base, fast)
    peak = PeakMemory(device)
    with torch.inference_mode():
        sec = time_per_call(lambda: net(*args), device, min_seconds, after_warmup=peak.reset)
    row.update(forward_images_per_s=batch / sec, forward_tflops=gflops * batch / sec / 1e3,
               forward_peak_mb=peak.mb())

    # training direction: the plain network (spectral norm live), autocast/channels_last as asked
    train_net = base.train()
    if fast.channels_last:
        train_net = train_net.to(memory_format=torch.channels_last)
        args = tuple(a.contiguous(memory_format=torch.channels_last) if a.ndim == 4 else a for a in args)

    def fwd_bwd():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast.bf16):
            out = train_net(*args)
        out.float().square().mean().backward()

    sec = time_per_call(fwd_bwd, device, min_seconds, after_warmup=peak.reset)
    train_net.zero_grad(set_to_none=True)
    row.update(train_images_per_s=batch / sec, train_tflops=3 * gflops * batch / sec / 1e3,
               train_peak_mb=peak.mb())
    return row


def training_step_throughput(network: str, preset: str, device, batch: int, bf16: bool = True,
                             channels_last: bool = True, compile: bool = False, steps: int = 10,
                             peak_tflops: Optional[float] = None) -> dict:
    """Images/s of full training steps (forward, L1 loss, backward, Adam) of one network at the
    preset's size, the achieved training TFLOP/s (3x forward FLOPs) and, given the measured
    matrix-multiply peak, the MFU."""
    device = torch.device(device)
    torch.manual_seed(0)
    net = build_network(network, preset).to(device).train()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-5, betas=(0.9, 0.99))
    g = torch.Generator(device=device).manual_seed(0)
    args = network_inputs(network, preset, batch, device, g)
    if channels_last:
        args = tuple(a.contiguous(memory_format=torch.channels_last) if a.ndim == 4 else a for a in args)
    target = torch.rand_like(args[0]) if network != "discriminator" else None
    step_net = torch.compile(net) if compile else net

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = step_net(*args)
        loss = (out.float() - target).abs().mean() if target is not None else out.float().mean()
        loss.backward()
        opt.step()

    gflops = measure(preset, network)["gflops"]
    peak = PeakMemory(device)
    t_first = time.perf_counter()
    step()
    synchronize(device)
    first_step = time.perf_counter() - t_first
    sec = time_per_call(step, device, min_seconds=1.0, max_calls=steps, warmup=2, after_warmup=peak.reset)
    tflops = 3 * gflops * batch / sec / 1e3
    return {"network": network, "preset": preset, "batch": batch, "bf16": bf16, "channels_last": channels_last,
            "compile": compile, "first_step_s": first_step, "step_s": sec, "images_per_s": batch / sec,
            "train_tflops": tflops, "mfu": tflops / peak_tflops if peak_tflops else None,
            "peak_mb": peak.mb()}


def synthetic_batch(size: int, batch: int, device, hole: float = 0.35, seed: int = 0):
    """Smooth random images (B, 3, s, s) in [0, 1] with some edges, and a centred box hole
    (``known``: 1 = known) covering about ``hole`` of the area: benchmark inputs that need no files."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(batch, 3, max(2, size // 8), max(2, size // 8), generator=g)
    img = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    img = (img + 0.3 * (torch.rand(batch, 1, size, size, generator=g) > 0.98)).clamp(0, 1)
    known = torch.ones(batch, 1, size, size)
    side = round(size * math.sqrt(hole))
    a = (size - side) // 2
    known[:, :, a:a + side, a:a + side] = 0
    return img.to(device), known.to(device)


def default_pairing() -> str:
    """gray2edge when scikit-image (Canny) is importable, else gray2gray (same network cost)."""
    import importlib.util

    return "gray2edge" if importlib.util.find_spec("skimage") is not None else "gray2gray"


class _MeteredNetwork(torch.nn.Module):
    """Counts the calls of ``net`` and the images they carry (the first argument's batch size)
    and, with ``clock``, adds the wall time of every call to ``clock[0]`` (CPU only: on a CPU a
    call's wall time is its compute time, so the sampler's overhead is measured exactly, in the
    same run). What the benchmark reports per network role, whatever the sampler counts itself."""

    def __init__(self, net, clock: Optional[list] = None):
        super().__init__()
        self.net, self.clock = net, clock
        self.calls = self.images = 0

    def forward(self, *args, **kwargs):
        self.calls += 1
        self.images += int(args[0].shape[0])
        if self.clock is None:
            return self.net(*args, **kwargs)
        t0 = time.perf_counter()
        out = self.net(*args, **kwargs)
        self.clock[0] += time.perf_counter() - t0
        return out


def sampler_timing(runs, preset: str, device, budget: Optional[Budget] = None, seed: int = 0) -> List[dict]:
    """Seconds and network calls per image of samplers at the preset's size with random-initialised
    networks, and the sampler's own overhead (module docstring).

    ``runs``: ``[(method, T, batch, FastPath), ...]``. On a CPU the time inside the networks is
    clocked call by call; on CUDA (asynchronous) it is estimated as the batched calls times each
    network's seconds per call measured at the same batch and fast path in this run. Calls are
    counted per network role (``sampler.networks``: IR-SDE's network as ``irsde``)."""
    from ..fast import fast_sampler
    from ..methods import build
    from ..resampling import resampling_schedule

    device = torch.device(device)
    budget = budget or Budget(None)
    torch.manual_seed(seed)
    needed = sorted({n for m, *_ in runs for n in _networks_of(m)})
    nets = {n: build_network(n, preset).to(device).eval() for n in needed}
    gflops = {n: measure(preset, n)["gflops"] for n in needed}
    prof = get_profile(preset)
    pairing = default_pairing()
    configs = {"texture": {"preset": preset, "structure": {"pairing": pairing}}}
    cpu = device.type == "cpu"
    per_call: Dict[tuple, float] = {}
    rows = []
    for method, T, batch, fast in runs:
        if not budget.allows(0):
            rows.append({"method": method, "T": T, "batch": batch, "skipped": "time budget"})
            continue
        sde = get_profile(preset, T=T).sde.build()
        img, known = synthetic_batch(prof.image_size, batch, device)
        with warnings_suppressed():
            schedule = resampling_schedule(T)
        sampler = fast_sampler(build(method, nets=nets, sde=sde, configs=configs, schedule=schedule,
                                     canny_sigma=prof.canny_sigma, fast=False), fast)
        if not cpu:   # per-call seconds first: this also warms up cuDNN's autotuning at this batch
            for n, net in sampler.networks.items():
                key = (n, batch, fast.label())
                if key not in per_call:
                    args = network_inputs(n, preset, batch, device, torch.Generator(device=device).manual_seed(1))
                    kwargs = {"stddev_group": 1} if n == "discriminator" else {}
                    with torch.inference_mode():
                        per_call[key] = time_per_call(lambda: net(*args, **kwargs), device, min_seconds=0.2)
        clock = [0.0]
        meters = {n: _MeteredNetwork(net, clock if cpu else None) for n, net in sampler.networks.items()}
        sampler = sampler.with_networks(meters)
        with torch.inference_mode():
            if hasattr(sampler, "structure_ends"):      # imports scikit-image's Canny outside the clock
                sampler.structure_ends(img[:1], known[:1])
            synchronize(device)
            t0 = time.perf_counter()
            sampler.sample(img, known, generator=torch.Generator(device=device).manual_seed(seed))
            synchronize(device)
            sec = time.perf_counter() - t0
        if cpu:
            network_sec, how = clock[0], "clocked"
        else:
            network_sec = sum(m.calls * per_call[(n, batch, fast.label())] for n, m in meters.items())
            how = "estimated"
        nfe = {n: m.images / batch for n, m in meters.items()}
        rows.append({"method": method, "T": T, "batch": batch, "fast_path": fast.label(), "pairing": pairing,
                     "seconds_per_image": sec / batch, "seconds_per_batch": sec,
                     "nfe_per_image": nfe, "batched_calls": {n: m.calls for n, m in meters.items()},
                     "network_seconds": network_sec, "network_seconds_method": how,
                     "seconds_per_call": {n: per_call[(n, batch, fast.label())] for n in meters
                                          if (n, batch, fast.label()) in per_call},
                     "overhead_fraction": (sec - network_sec) / network_sec if network_sec > 0 else None,
                     "network_gflops_per_image": sum(v * gflops[n] for n, v in nfe.items())})
    return rows


@contextlib.contextmanager
def warnings_suppressed():
    """Silence the 'no resampling schedule for this T' warning inside benchmarks (the row says T)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _networks_of(method: str):
    from ..methods import get_method

    return get_method(method).networks


def fast_path_checks(preset: str, device, batch: int = 4, T: int = 10) -> dict:
    """How far each switch moves the results, on random-initialised networks: maximum absolute
    output difference per network (fold, channels_last, bf16) relative to the output's scale,
    batched vs one-at-a-time discriminator scores, and the final images of a short IR-SDE and
    StrDiffusion run with every switch vs none (same seed)."""
    from ..methods import build
    from ..resampling import resampling_schedule

    device = torch.device(device)
    torch.manual_seed(0)
    out: Dict[str, dict] = {}
    switches = {"fold_spectral_norm": FastPath(fold_spectral_norm=True),
                "channels_last": FastPath(channels_last=True),
                "bf16": FastPath(bf16=True)}
    nets = {n: build_network(n, preset).to(device).eval() for n in NETWORK_NAMES}
    for n, net in nets.items():
        args = network_inputs(n, preset, batch, device, torch.Generator(device=device).manual_seed(2))
        with torch.inference_mode():
            ref = prepare_network(net, FastPath())(*args).float()
            scale = float(ref.abs().max()) or 1.0
            out[n] = {}
            for name, fp in switches.items():   # bf16 on a CPU: correct, only slower
                diff = float((prepare_network(net, fp)(*args).float() - ref).abs().max())
                out[n][name] = diff / scale
    d = nets["discriminator"]
    y, x, t = network_inputs("discriminator", preset, batch, device, torch.Generator(device=device).manual_seed(3))
    with torch.inference_mode():
        batched = d(y, x, t, stddev_group=1).reshape(-1)
        single = torch.cat([d(y[i:i + 1], x[i:i + 1], t[i:i + 1]).reshape(-1) for i in range(batch)])
    out["discriminator_batched_vs_single"] = float((batched - single).abs().max())
    prof = get_profile(preset, T=T)
    sde = prof.sde.build()
    img, known = synthetic_batch(prof.image_size, batch, device)
    configs = {"texture": {"preset": preset, "structure": {"pairing": default_pairing()}}}
    from ..fast import fast_sampler
    for m in ("irsde", "strdiff"):
        with warnings_suppressed():
            schedule = resampling_schedule(T)
        s = build(m, nets=nets, sde=sde, configs=configs, schedule=schedule, canny_sigma=prof.canny_sigma, fast=False)
        a = s.sample(img, known, generator=torch.Generator(device=device).manual_seed(0)).image
        b = fast_sampler(s, FastPath.for_device(device)).sample(
            img, known, generator=torch.Generator(device=device).manual_seed(0)).image
        out[f"{m}_final_image_max_abs_diff"] = float((a - b).abs().max())
        out[f"{m}_final_image_mean_abs_diff"] = float((a - b).abs().mean())
    return out


# ----------------------------------------------------------------------------- the run
def environment(device) -> dict:
    device = torch.device(device)
    env = {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
           "device": str(device), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["gpu_memory_gb"] = torch.cuda.get_device_properties(device).total_memory / 2**30
    else:
        env["cpu"] = platform.processor() or platform.machine()
    return env


def run(preset: str, device="cpu", sections=("peak", "networks", "samplers"), T: Optional[int] = None,
        batch: int = 4, sampler_runs=None, methods=SAMPLER_METHODS, fast_paths=None,
        train_batch: int = 8, budget_s: Optional[float] = None, out: Optional[Path] = None,
        log: Callable[[str], None] = print) -> dict:
    """Run the chosen sections and return (and, with ``out``, write after every section) the
    results. Sections: ``peak`` (matmul throughput), ``networks``, ``training`` (MFU),
    ``samplers``, ``checks`` (fast-path accuracy), ``compile``."""
    device = torch.device(device)
    budget = Budget(budget_s)
    started = time.perf_counter()
    T = T or get_profile(preset).sde.T
    if fast_paths is None:
        fast_paths = [FastPath()] + ([FastPath.for_device(device)] if device.type == "cuda" else
                                     [FastPath(fold_spectral_norm=True)])
    result = {"preset": preset, "T": T, "environment": environment(device), "sections": {}, "errors": {}}

    def save():
        if out is not None:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(json.dumps(result, indent=1, default=str) + "\n")

    def section(name, fn, need_s=0.0):
        if name not in sections:
            return
        if not budget.allows(need_s):
            result["sections"][name] = {"skipped": f"time budget ({budget.left():.0f} s left)"}
            log(f"[bench] {name}: skipped (time budget)")
            save()
            return
        t0 = time.perf_counter()
        log(f"[bench] {name} ...")
        try:
            result["sections"][name] = fn()
        except Exception as exc:  # one failing section must not lose the others' results
            result["errors"][name] = f"{type(exc).__name__}: {exc}"
            log(f"[bench] {name}: FAILED {type(exc).__name__}: {exc}")
        result.setdefault("section_seconds", {})[name] = round(time.perf_counter() - t0, 2)
        save()

    section("peak", lambda: {"bf16": matmul_throughput(device, torch.bfloat16),
                             "fp32": matmul_throughput(device, torch.float32)})
    section("networks", lambda: [network_throughput(n, preset, device, batch, fp)
                                 for fp in fast_paths for n in NETWORK_NAMES])
    peak = (result["sections"].get("peak") or {}).get("bf16", {}).get("tflops")

    def training():
        cuda = device.type == "cuda"
        return [training_step_throughput("texture", preset, device, b, bf16=cuda, channels_last=cl, peak_tflops=peak)
                for b, cl in ((train_batch, False), (train_batch, True), (2 * train_batch, True))]
    section("training", training)

    runs = sampler_runs or [(m, T, 1, fp) for fp in fast_paths for m in methods]
    section("samplers", lambda: sampler_timing(runs, preset, device, budget))
    section("checks", lambda: fast_path_checks(preset, device))

    def compile_section():
        cuda = device.type == "cuda"
        rows = [training_step_throughput("texture", preset, device, train_batch, bf16=cuda, channels_last=True,
                                         compile=True, peak_tflops=peak) if budget.allows(120)
                else {"network": "texture", "training_compile": "skipped: time budget"}]
        for mode in (None, "reduce-overhead"):
            if not budget.allows(45):
                rows.append({"compile_mode": mode, "skipped": "time budget"})
                continue
            fp = FastPath(fold_spectral_norm=True, bf16=cuda, channels_last=cuda, compile=True, compile_mode=mode)
            t0 = time.perf_counter()
            rows.append({**network_throughput("texture", preset, device, batch, fp),
                         "compile_mode": mode, "wall_s": time.perf_counter() - t0})
        return rows
    section("compile", compile_section, need_s=60)
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    save()
    return result


# ----------------------------------------------------------------------------- tables
def _fmt(v, digits=3):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def _percent(v, digits=0):
    return "—" if v is None else f"{100 * v:.{digits}f} %"


def tables(result: dict) -> str:
    """The result as markdown tables."""
    env = result["environment"]
    lines = [f"## {result['preset']} preset on {env.get('gpu', env.get('cpu', env['device']))} "
             f"(torch {env['torch']}, {env['threads']} threads), T = {result['T']}", ""]
    sec = result["sections"]
    if isinstance(sec.get("peak"), dict) and "bf16" in sec["peak"]:
        p = sec["peak"]
        lines += [f"Measured matmul peak: bf16 {p['bf16']['tflops']:.1f} TFLOP/s, fp32 {p['fp32']['tflops']:.1f} "
                  f"TFLOP/s (n = {p['bf16']['n']}).", ""]
    if isinstance(sec.get("networks"), list):
        lines += ["| network | fast path | batch | GFLOPs/fwd | fwd img/s | fwd TFLOP/s | fwd+bwd img/s | "
                  "train TFLOP/s | working MB (fwd / train) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in sec["networks"]:
            lines.append(f"| {r['network']} | {r['fast_path']} | {r['batch']} | {_fmt(r['gflops_forward'])} | "
                         f"{_fmt(r['forward_images_per_s'])} | {_fmt(r['forward_tflops'])} | "
                         f"{_fmt(r['train_images_per_s'])} | {_fmt(r['train_tflops'])} | "
                         f"{_fmt(r['forward_peak_mb'])} / {_fmt(r['train_peak_mb'])} |")
        lines.append("")
    if isinstance(sec.get("training"), list):
        lines += ["| training step | batch | bf16 | channels_last | compile | img/s | TFLOP/s | MFU |",
                  "|---|---:|---|---|---|---:|---:|---:|"]
        for r in sec["training"]:
            lines.append(f"| {r['network']} | {r['batch']} | {r['bf16']} | {r['channels_last']} | {r['compile']} | "
                         f"{_fmt(r['images_per_s'])} | {_fmt(r['train_tflops'])} | {_percent(r['mfu'])} |")
        lines.append("")
    if isinstance(sec.get("compile"), list):
        lines += ["torch.compile:", ""]
        for r in sec["compile"]:
            if "images_per_s" in r:
                lines.append(f"* training step, batch {r['batch']}: {_fmt(r['images_per_s'])} img/s, "
                             f"{_fmt(r['train_tflops'])} TFLOP/s, MFU {_percent(r['mfu'])} "
                             f"(first step, compiling: {r['first_step_s']:.0f} s)")
            elif "forward_images_per_s" in r:
                lines.append(f"* forward ({r['fast_path']}), batch {r['batch']}: {_fmt(r['forward_images_per_s'])} "
                             f"img/s, {_fmt(r['forward_tflops'])} TFLOP/s")
            else:
                lines.append(f"* {json.dumps(r)}")
        lines.append("")
    if isinstance(sec.get("samplers"), list):
        lines += ["| sampler | T | batch | fast path | s / image | " + " | ".join(NETWORK_NAMES) +
                  " | network GFLOPs / image | overhead |", "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in sec["samplers"]:
            if "skipped" in r:
                lines.append(f"| {r['method']} | {r.get('T', '')} | skipped ({r['skipped']}) |||||||||")
                continue
            nfe = r["nfe_per_image"]
            ov = r["overhead_fraction"]
            lines.append(f"| {r['method']} | {r['T']} | {r['batch']} | {r['fast_path']} | {r['seconds_per_image']:.3f} | "
                         + " | ".join(f"{nfe.get(n, 0):.0f}" for n in NETWORK_NAMES) +
                         f" | {_fmt(r['network_gflops_per_image'])} | {_percent(ov, 1)} |")
        lines.append("")
    if isinstance(sec.get("checks"), dict):
        lines += ["Fast-path accuracy (max |difference| / max |output|, random weights):", ""]
        for k, v in sec["checks"].items():
            lines.append(f"* {k}: {json.dumps(v) if isinstance(v, dict) else _fmt(v)}")
        lines.append("")
    for name, err in result.get("errors", {}).items():
        lines.append(f"**{name} failed**: {err}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plans and CLI
def plan(name: str, device) -> dict:
    """The ``run()`` keyword arguments of a named plan (``smoke``, ``cpu``, ``gpu``)."""
    device = torch.device(device)
    plain, fast = FastPath(), FastPath.for_device(device)
    methods = SAMPLER_METHODS
    if name == "smoke":
        return dict(preset="tiny", T=20, batch=2, train_batch=2,
                    sections=("peak", "networks", "training", "samplers", "checks"),
                    sampler_runs=[(m, 20, 2, fp) for fp in (plain, fast) for m in methods])
    if name == "cpu":
        return dict(preset="cpu", T=100, batch=8, train_batch=8,
                    sections=("peak", "networks", "training", "samplers", "checks"),
                    sampler_runs=[(m, 100, 1, plain) for m in ("irsde", "strdiff")]
                    + [(m, 100, 8, fp) for fp in (plain, fast) for m in methods])
    if name == "gpu":
        runs = [(m, 100, 1, plain) for m in ("irsde", "strdiff")]
        runs += [(m, 100, b, fast) for b in (1, 8) for m in methods]
        runs += [(m, 400, 1, fast) for m in methods]
        return dict(preset="paper", T=100, batch=8, train_batch=16,
                    sections=("peak", "checks", "networks", "training", "samplers", "compile"),
                    sampler_runs=runs)
    raise ValueError(f"unknown plan {name!r}: choose smoke, cpu or gpu")


PLANS = ("smoke", "cpu", "gpu")


def add_arguments(p) -> None:
    p.add_argument("--plan", default="smoke", choices=PLANS,
                   help="smoke: tiny sizes (24 s measured); cpu: the cpu preset (707 s measured, one thread); "
                        "gpu: the paper preset on CUDA (benchmarks/gpu_check.sh)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="", help="JSON path (written after every section)")
    p.add_argument("--budget", type=float, default=None, help="seconds; sections past it are skipped")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--sections", default="", help="comma-separated subset of the plan's sections "
                                                  "(peak, networks, training, samplers, checks, compile)")


def main(argv=None, args=None) -> int:
    """``strdiff bench`` / ``benchmarks/run.py``: run a plan, print the tables, write the JSON."""
    import argparse

    if args is None:
        p = argparse.ArgumentParser(description="strdiff_edu benchmarks: tables and a JSON")
        add_arguments(p)
        args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    kw = plan(args.plan, device)
    if getattr(args, "sections", ""):
        kw["sections"] = tuple(x for x in args.sections.split(",") if x)
    result = run(device=device, budget_s=args.budget, out=Path(args.out) if args.out else None, **kw)
    print(tables(result))
    if args.out:
        print(f"\nwrote {args.out}")
    return 1 if result["errors"] else 0


__all__ = ["plan", "main", "run", "tables", "matmul_throughput", "network_throughput", "training_step_throughput",
           "sampler_timing", "fast_path_checks", "synthetic_batch", "time_per_call", "Budget"]
