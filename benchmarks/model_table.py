"""Parameters, size and FLOPs of every network in every preset.

    .venv/bin/python benchmarks/model_table.py              # all presets
    .venv/bin/python benchmarks/model_table.py tiny cpu     # some presets
    .venv/bin/python benchmarks/model_table.py --time cpu   # also time a CPU forward pass

Networks are built on the meta device (no memory, no initialisation cost) and FLOPs are counted
with ``torch.utils.flop_counter.FlopCounterMode`` on meta tensors at the preset's resolution,
batch 1. FlopCounterMode counts 2 FLOPs per multiply-add of convolutions, matrix products and
einsums, and nothing for element-wise operations and normalisations, the same convention as
the reference count of the official networks at 256x256 (about 835 / 760 / 189 GFLOPs for the
texture / structure / discriminator networks). "MB" is the float32 weight size, 4 bytes per
parameter, in units of 10^6 bytes.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a source checkout

from strdiff_edu.models import NETWORKS, PRESET_NAMES, build_network, model_config  # noqa: E402
from strdiff_edu.models.summary import example_inputs, measure  # noqa: E402


def cpu_forward_ms(preset: str, network: str, repeats: int = 3) -> float:
    """Best wall time of a batch-1 forward pass on the CPU, in milliseconds."""
    cfg = model_config(preset, network)
    net = build_network(network, cfg).eval()
    args = example_inputs(network, cfg, device="cpu")
    best = float("inf")
    with torch.no_grad():
        net(*args)   # warm-up: the first call pays for kernel selection
        for _ in range(repeats):
            start = time.perf_counter()
            net(*args)
            best = min(best, time.perf_counter() - start)
    return best * 1e3


def table_rows(presets=PRESET_NAMES, with_time: bool = False):
    rows = []
    for preset in presets:
        for network in NETWORKS:
            row = measure(preset, network)
            if with_time:
                row["ms"] = cpu_forward_ms(preset, network)
            rows.append(row)
    return rows


def format_table(rows) -> str:
    with_time = any("ms" in r for r in rows)
    head = f"{'preset':<7} {'network':<14} {'size':>5} {'params':>13} {'MB fp32':>9} {'GFLOPs':>9}"
    head += f" {'CPU ms':>9}" if with_time else ""
    lines = [head, "-" * len(head)]
    for preset in dict.fromkeys(r["preset"] for r in rows):
        group = [r for r in rows if r["preset"] == preset]
        for r in group:
            line = (f"{r['preset']:<7} {r['network']:<14} {r['size']:>5} {r['params']:>13,} "
                    f"{r['mb']:>9.2f} {r['gflops']:>9.3f}")
            if with_time:
                line += f" {r['ms']:>9.1f}"
            lines.append(line)
        total = sum(r["params"] for r in group)
        lines.append(f"{preset:<7} {'all four':<14} {'':>5} {total:>13,} {total * 4 / 1e6:>9.2f}")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="*", metavar="preset",
                        help=f"any of {', '.join(PRESET_NAMES)} (default: all)")
    parser.add_argument("--time", action="store_true",
                        help="also time a batch-1 CPU forward pass (skipped for 'paper')")
    args = parser.parse_args(argv)
    presets = args.presets or list(PRESET_NAMES)
    unknown = [p for p in presets if p not in PRESET_NAMES]
    if unknown:
        parser.error(f"unknown preset(s) {unknown}; choose from {', '.join(PRESET_NAMES)}")
    rows = []
    for preset in presets:   # the paper networks are too slow to time on a CPU
        rows += table_rows([preset], with_time=args.time and preset != "paper")
    print(format_table(rows))


if __name__ == "__main__":
    main()
