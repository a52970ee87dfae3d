#!/usr/bin/env bash
# Issue 20, session 11: the shipped motion model's recipe, from scratch data to a checkpoint folder.
#   bash scripts/train_real_calibrated.sh RUN [MINUTES_STAGE1] [MINUTES_STAGE2] [SEMANTIC] [TILES] [NEW_KINDS]
# 1. the real gid_loops windows (split by backend/data/gid_loops_split.json; the 4 held-out scenes are never used
#    in training) and 3,000 synthetic scenes of the calibrated generator (backend/data/wind.py, synth.py);
# 2. normalisation scales of the new data (the spectra moved to the lowest terms and grew 2-4x);
# 3. the shipped VAE with those scales, stage 1 fine-tuned from the shipped U-Net with the real windows at
#    sampling weight 0.3 (listed first, so the latent cache holds all of them from step 0), then stage 2
#    (frequency attention) fine-tuned from the shipped one;
# 4. RUN/ckpt = vae/ + ldm/ (the stage-2 U-Net) + the shipped placement/, a checkpoint `gid eval --checkpoint` and `gid animate` read.
# SEMANTIC=1 adds the ESPNet vegetation/terrain/sky condition (MotionConfig.semantic_classes).
# TILES=1 (session 12) splits the real weight between the full windows and their close-up tiles
# (runs/data/loops/train_tiles: the clips at 512x320 cut into 256x160 tiles, scripts/real_photo_data.sh).
# NEW_KINDS=1 (session 13) gives 0.2 of the synthetic weight to the kinds the default draw never makes (`gid data
# synth --kind`): 400 close-ups (large flower heads before an out-of-focus background) and 400 fields of grain in
# a strong wind (the whole frame moves), two common kinds of photo that the five scene kinds do not show.
# PHOTO_TEXTURE=1 (environment, session 17) adds the first 1,500 training scenes again with real photo texture
# (`gid data synth --photo-texture`, backend/data/photo_texture.py: patches cut from the real training windows,
# moving ones over the moving pixels, still ones elsewhere; the motion unchanged) and gives them half the weight
# of the synthetic scenes.
# DEPTH=1 (environment, session 18; the default since the shipped weights of session 19 have it) gives the denoiser
# the mobilePyDNet inverse-depth condition (MotionConfig.depth_condition); DEPTH=0 trains without it, which needs an
# INIT checkpoint trained without it too (the shipped U-Net's conv_in has the depth input).
# The shipped weights of session 19: PHOTO_TEXTURE=1 bash scripts/train_real_calibrated.sh RUN 42 7 0 0 1
# (at 1 thread beside another run of the same length on the 2 cores).
# PHOTOMETRIC=P (environment, session 14) jitters the colours of that share of conditioning pictures
# (`--photometric`, backend/motion/photometric.py); INIT=DIR starts both stages from another checkpoint's ldm/
# (default: the shipped one), e.g. to fine-tune a finished run further.
# Session 11 ran two of these side by side at 1 thread each (45 + 8 min on 2 shared cores); on a GPU give
# --device cuda, more minutes, and larger batches: nothing else changes.
set -euo pipefail
RUN=${1:?usage: train_real_calibrated.sh RUN [MINUTES_STAGE1] [MINUTES_STAGE2] [SEMANTIC]}
M1=${2:-45}
M2=${3:-8}
SEMANTIC=${4:-0}
TILES=${5:-0}
NEW_KINDS=${6:-0}
GID_LOOPS=${GID_LOOPS:-/work/shared/data/gid_loops}
export PYTHONPATH=$PWD GID_THREADS=${GID_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PY:-.venv/bin/python}
PHOTOMETRIC=${PHOTOMETRIC:-0}
INIT=${INIT:-backend/weights/default/ldm}
source scripts/real_photo_data.sh
[ -f runs/norm_calibrated.json ] || $PY -m backend.cli data stats runs/data/synth_train runs/data/loops/train \
    --max-samples 800 --out runs/norm_calibrated.json
mkdir -p "$RUN"
if [ ! -d "$RUN/vae" ]; then
    cp -r backend/weights/default/vae "$RUN/vae"
    $PY - "$RUN" "$SEMANTIC" "${DEPTH:-1}" <<'PY'
import json, sys
run, semantic, depth = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
d = json.load(open("runs/norm_calibrated.json"))
json.dump({"scales": d["scales"], "percentile": d["percentile"]}, open(f"{run}/vae/norm_stats.json", "w"), indent=2)
c = json.load(open(f"{run}/vae/config.json"))
if semantic:
    c["semantic_classes"] = ["vegetation", "terrain", "sky"]
c["depth_condition"] = depth
json.dump(c, open(f"{run}/vae/config.json", "w"), indent=2)
PY
fi
DATA="runs/data/loops/train runs/data/synth_train"
WEIGHTS="0.3 0.7"
if [ "$TILES" = 1 ]; then
    [ -f runs/data/loops/train_hr/windows.json ] || $PY -m backend.cli data from-video $(split train) \
        --out runs/data/loops/train_hr --size 512x320 --stride 30 --wrap
    [ -d runs/data/loops/train_tiles ] || $PY -m backend.cli data tile runs/data/loops/train_hr \
        --out runs/data/loops/train_tiles
    DATA="runs/data/loops/train runs/data/loops/train_tiles runs/data/synth_train"
    WEIGHTS="0.15 0.15 0.7"
fi
if [ "$NEW_KINDS" = 1 ]; then
    [ -f runs/data/synth_closeup/sample_000399.npz ] || $PY -m backend.cli data synth --out runs/data/synth_closeup \
        --count 400 --seed 500000 --kind closeup --lite --workers 2
    [ -f runs/data/synth_field/sample_000399.npz ] || $PY -m backend.cli data synth --out runs/data/synth_field \
        --count 400 --seed 600000 --kind field --lite --workers 2
    DATA="$DATA runs/data/synth_closeup runs/data/synth_field"
    WEIGHTS="${WEIGHTS% 0.7} 0.5 0.1 0.1"
fi
if [ "${PHOTO_TEXTURE:-0}" = 1 ]; then
    [ -f runs/data/synth_textured/sample_001499.npz ] || $PY -m backend.cli data synth --out runs/data/synth_textured \
        --count 1500 --seed 0 --lite --workers 2 --photo-texture runs/data/loops/train --photo-texture-share 1
    DATA="${DATA/runs\/data\/synth_train/runs/data/synth_train runs/data/synth_textured}"
    WEIGHTS=$($PY -c "import sys; w = sys.argv[1].split(); i = sys.argv[2].split().index('runs/data/synth_train'); \
w[i:i + 1] = [str(float(w[i]) / 2)] * 2; print(' '.join(w))" "$WEIGHTS" "${DATA/runs\/data\/synth_textured /}")
fi
echo "data: $DATA"; echo "weights: $WEIGHTS"
$PY -m backend.cli train ldm --data $DATA --weights $WEIGHTS --out "$RUN" --init-from "$INIT" \
    --photometric "$PHOTOMETRIC" --steps 40000 --time-limit "$M1" --batch 32 --lr 3e-4 --threads "$GID_THREADS" --eval-every 500 \
    --max-samples 1500 --initial-samples 300 --scan-samples 20
$PY -m backend.cli train ldm-freq --data $DATA --weights $WEIGHTS --out "$RUN" --init-from "$INIT" \
    --photometric "$PHOTOMETRIC" --steps 20000 --time-limit "$M2" --batch 1 --threads "$GID_THREADS" --eval-every 500 --max-samples 1500 \
    --initial-samples -1 --scan-samples 0
rm -rf "$RUN/ckpt" && mkdir -p "$RUN/ckpt/ldm" && cp -r "$RUN/vae" "$RUN/ckpt/vae"
cp "$RUN"/ldm_freq/{config.json,model.safetensors,norm_stats.json} "$RUN/ckpt/ldm/"
# the shipped placement stage (config only: the texture map, backend/motion/placement.py) goes with it
[ ! -d backend/weights/default/placement ] || cp -r backend/weights/default/placement "$RUN/ckpt/placement"
echo "checkpoint: $RUN/ckpt"
