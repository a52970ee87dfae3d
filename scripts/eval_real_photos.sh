#!/usr/bin/env bash
# Real-photo figures of issue 20, from scratch: gid_loops windows (split by backend/data/gid_loops_split.json),
# the semantic-prior fit on the training split, `gid eval` on the validation scenes and a few synthetic ones,
# and the spectra by kind. Run from the repository root; GID_LOOPS points at the gid_loops clips.
# About 45 min on 2 shared cores (flow extraction ~10 s a window, eval ~1-2 min a scene with 4 samples).
# The real and the synthetic evaluations of step 4 run side by side at one thread each (JOBS=1: one after the other).
set -euo pipefail
GID_LOOPS=${GID_LOOPS:-/work/shared/data/gid_loops}
OUT=${OUT:-runs/eval_real}
export PYTHONPATH=$PWD GID_THREADS=1 OMP_NUM_THREADS=1
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
CKPT=${CKPT:-}          # a checkpoint folder (vae/ + ldm/) to measure instead of the shipped weights
CKPT_ARGS=${CKPT:+--checkpoint $CKPT}
JOBS=${JOBS:-2}
# 1-2. the real windows and the synthetic sets (made if missing)
source scripts/real_photo_data.sh
# 3. the semantic prior's class amounts (training data only)
$PY scripts/fit_semantic_prior.py --real runs/data/loops/train --synth runs/data/synth_train --max-synth 100
# 4. the model (shipped, or $CKPT), the baselines and the semantic prior: 8 validation windows spread over the 4 held-out
#    scenes (2 each), 4 samples each; and 16 synthetic test scenes, 2 samples each
real_eval() {
    $PY -m backend.cli eval --json "$OUT/loops_val.json" --data runs/data/loops/val --train-data runs/data/synth_train \
        runs/data/loops/train --samples 4 --max-scenes 8 --spread --no-render --device cpu $CKPT_ARGS
}
real_pid=
if [ "$JOBS" -gt 1 ]; then real_eval & real_pid=$!; else real_eval; fi
$PY -m backend.cli eval --json "$OUT/synth_test.json" --data runs/data/synth_test --train-data runs/data/synth_train \
    runs/data/loops/train --samples 2 --max-scenes 16 --no-render --device cpu $CKPT_ARGS
# 4b. the close-up and field scenes (held-out seeds of the two kinds made only on request), 2 samples each
$PY -m backend.cli eval --json "$OUT/new_kinds.json" --data runs/data/synth_closeup_test runs/data/synth_field_test \
    --train-data runs/data/synth_train runs/data/loops/train --samples 2 --no-render --device cpu $CKPT_ARGS
[ -z "$real_pid" ] || wait "$real_pid"
# 5. power spectra and amounts by kind: real training clips vs the synthetic training scenes
$PY -m backend.cli data stats runs/data/loops/train --out "$OUT/stats_real_train.json" --by-kind
$PY -m backend.cli data stats runs/data/synth_train --out "$OUT/stats_synth.json" --by-kind
