"""The benchmark entry point: prints markdown tables and writes a JSON (see strdiff_edu.tools.bench).

    .venv/bin/python benchmarks/run.py                                   # tiny preset, CPU: a smoke run
    .venv/bin/python benchmarks/run.py --preset cpu --out benchmarks/results/cpu.json
    python benchmarks/run.py --preset paper --device cuda --plan gpu --out OUT/gpu.json   # what gpu_check.sh runs

The same as ``strdiff bench``. ``--plan`` picks what to measure: ``smoke`` (tiny sizes, short), ``cpu`` (the cpu preset: networks,
training steps, every sampler at T=100 with and without the fast path) or ``gpu`` (the paper
preset at 256 px: matmul peak, networks fp32 vs the fast path, training MFU, samplers at T=100 and
T=400 at batch 1 and 8, fast-path accuracy, torch.compile). ``--budget`` (seconds) skips what would
not fit; a section that fails is recorded in the JSON's ``errors`` and the others still run.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strdiff_edu.tools import bench  # noqa: E402

if __name__ == "__main__":
    sys.exit(bench.main())
