#!/usr/bin/env bash
# The project's one GPU script: every check that needs CUDA, in one call (target: under 8 minutes).
#
#   benchmarks/gpu_check.sh OUTDIR [BUDGET_SECONDS] [SECTIONS]
#
# BUDGET_SECONDS (default 420) bounds the benchmark itself; SECTIONS (default: all) is a
# comma-separated subset of peak,checks,networks,training,samplers,compile.
#
# Runs from the source tree with whatever python3 + torch the GPU machine has (nothing is
# installed there). numpy and tqdm, if missing, are taken from wheels in .gpu_wheels/ (fetch them
# here with `make gpu-wheels`) and unpacked into a temporary folder. Writes to OUTDIR:
#   gpu.json   every measurement (strdiff_edu.tools.bench.run; see benchmarks/run.py --plan gpu)
#   gpu.md     the same as markdown tables
#   env.txt, nvidia-smi.txt, pip.txt   what the machine had
set -u
OUT=${1:?usage: benchmarks/gpu_check.sh OUTDIR [BUDGET_SECONDS]}
BUDGET=${2:-420}
SECTIONS=${3:-}
PY=${PYTHON:-python3}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
SITE=$(mktemp -d)
for mod in numpy tqdm; do
  if ! $PY -c "import $mod" 2>/dev/null; then
    whl=$(ls .gpu_wheels/${mod}-*.whl 2>/dev/null | head -n 1)
    if [ -n "$whl" ]; then
      $PY -m zipfile -e "$whl" "$SITE" && echo "using $mod from $whl" | tee -a "$OUT/env.txt"
    else
      echo "missing $mod and no wheel in .gpu_wheels/ (run make gpu-wheels)" | tee -a "$OUT/env.txt"
    fi
  fi
done
export PYTHONPATH="$PWD:$SITE"
{ $PY --version; $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"; nproc; } >> "$OUT/env.txt" 2>&1
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
$PY -m pip list > "$OUT/pip.txt" 2>&1
timeout $((BUDGET + 90)) $PY -W ignore benchmarks/run.py --plan gpu --device cuda --budget "$BUDGET" \
  --sections "$SECTIONS" --out "$OUT/gpu.json" > "$OUT/gpu.md" 2> "$OUT/gpu.log"
rc=$?
tail -n 80 "$OUT/gpu.md"; tail -n 20 "$OUT/gpu.log"
rm -rf "$SITE"
exit $rc
