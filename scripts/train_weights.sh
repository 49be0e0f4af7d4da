#!/usr/bin/env bash
# Reproduce the shipped weights of one preset (default: cpu) on the embedded default data, on a CPU.
#
# Two lanes run side by side, one CPU thread each (two torch processes with two threads each on
# two cores run many times slower):
#   lane A: the texture network (StrDiffusion), 5600 steps;
#   lane B: the structure network (3500 steps), then the IR-SDE baseline (2400 steps), then the
#           parameterisation ablation: the IR-SDE network predicting noise (official) and x0,
#           800 steps each, to compare with an 800-step IR-SDE run predicting x0 as a harmonic
#           fill plus a correction (x0-harmonic; the shipped weights' first 800 steps were that).
# The recipe (book Part IV): the networks predict the clean state (texture and IR-SDE as a fill
# of the known pixels -- the mean of the harmonic and biharmonic fills -- plus a correction,
# structure as plain x0) with Eq. 5's weight gamma_t = 1/(x0
# coefficient), i.e. L1 on x0; constant learning rate 4e-4 with gradient clipping and an EMA of
# decay 0.999, so that every snapshot of every run follows the same schedule; t ~ U{1..T};
# 400 seeded crops per training scene. The discriminator is trained on analytic states only
# (no network in its loss): `STAGE_DISC=1` retrains it too (800 steps, lane B).
# Resumable: rerunning continues every run from runs/weights-<preset>/<run>/last.pt.
#
# Usage: scripts/train_weights.sh [preset]      (make weights)
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET=${1:-cpu}
PY=${PY:-.venv/bin/python}
OUT=${OUT:-weights/$PRESET}
RUNS=${RUNS:-runs/weights-$PRESET}
SCALE=${SCALE:-1}          # multiply every step count (e.g. SCALE=0.01 for a smoke run)
mkdir -p "$OUT" "$RUNS"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "training $PRESET on the CPU (two lanes, one thread each): the recipe the shipped weights/cpu were"
  echo "trained with (manifest.json, 'trained_on'); on a GPU, scripts/gpu_train.sh trains all four at once"
fi
steps() { "$PY" -c "print(max(2, int(round($1 * $SCALE))))"; }
COMMON=(--preset "$PRESET" --lr 4e-4 --grad-clip 1.0 --lr-milestones 1.0 --ema-every 1
        --ema-decay 0.999 --t-min 1 --crops-per-scene 400 --checkpoint-every 100 --seed 0 --resume --force)
run() {  # name stage steps [extra flags]
  local name=$1 stage=$2 n; n=$(steps "$3"); shift 3
  echo "== $name ($stage): $n steps"
  OMP_NUM_THREADS=1 "$PY" -m strdiff_edu.cli train --stage "$stage" --steps "$n" \
    --out "$RUNS/$name" "${COMMON[@]}" "$@"
}
lane_a() {
  run texture texture 5600 --prediction x0-fill --snapshot-every "$(steps 800)" --export "$OUT"
}
lane_b() {
  run structure structure 3500 --prediction x0 --export "$OUT"
  run irsde texture-irsde 2400 --prediction x0-fill --snapshot-every "$(steps 800)" --export "$OUT"
  run ablation-irsde-noise texture-irsde 800 --prediction noise
  run ablation-irsde-x0 texture-irsde 800 --prediction x0
  if [ "${STAGE_DISC:-0}" = 1 ]; then
    run discriminator discriminator 800 --export "$OUT"
  fi
}
lane_a > "$RUNS/lane_a.log" 2>&1 &
A=$!
lane_b > "$RUNS/lane_b.log" 2>&1 &
B=$!
trap 'kill -TERM $A $B 2>/dev/null; wait' INT TERM
echo "training in two lanes; logs: $RUNS/lane_a.log, $RUNS/lane_b.log"
wait $A; wait $B
"$PY" -c "from strdiff_edu.checkpoint import verify_folder; import json; print(json.dumps(verify_folder('$OUT'), indent=1)[:2000])"
