#!/usr/bin/env bash
# One device call: train the four networks of a preset on one GPU for a wall budget, then write
# the EMA weights, manifest.json (hardware, minutes, steps, images seen, img/s, MFU) and curves.csv
# to OUTDIR (7 files; see scripts/gpu_train.py).
#
#   scripts/gpu_train.sh OUTDIR [BUDGET_SECONDS] [PRESET] [BATCH]     (defaults 450, cpu, 32)
#
# Runs from the source tree with the machine's own python3 + torch. Packages it lacks (numpy,
# tqdm, PyWavelets, scikit-image's dependencies) are unpacked from the wheels in .gpu_wheels/
# (`make gpu-wheels` here first).
set -u
OUT=${1:?usage: scripts/gpu_train.sh OUTDIR [BUDGET_SECONDS] [PRESET] [BATCH]}
BUDGET=${2:-450}
PRESET=${3:-cpu}
BATCH=${4:-32}
PY=${PYTHON:-python3}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
SITE=$(mktemp -d)
for pair in numpy:numpy tqdm:tqdm pywt:pywavelets skimage:scikit_image; do
  mod=${pair%%:*}; whl_name=${pair##*:}
  if ! $PY -c "import $mod" 2>/dev/null; then
    whl=$(ls .gpu_wheels/${whl_name}-*.whl 2>/dev/null | head -n 1)
    if [ -n "$whl" ]; then
      $PY -m zipfile -e "$whl" "$SITE" && echo "using $mod from $whl"
    else
      echo "missing $mod and no wheel in .gpu_wheels/ (run make gpu-wheels)"
    fi
  fi
done
export PYTHONPATH="$PWD:$SITE"
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null
timeout $((${BUDGET%.*} + 150)) $PY -W ignore scripts/gpu_train.py --preset "$PRESET" --budget-s "$BUDGET" --measure-presets "${MEASURE:-gpu,paper}" \
  --batch-size "$BATCH" --out "$OUT" --ckpt-dir "${CKPT_DIR:-/tmp/strdiff-gpu-$PRESET}" 2>&1 | tail -n 60
