#!/usr/bin/env bash
# The shipped motion model's recipe (scripts/train_real_calibrated.sh with PHOTO_TEXTURE=1 DEPTH=1 NEW_KINDS=1) run
# from scratch data on one GPU inside a fixed wall-clock budget (a lent machine's 10-minute call), plus the first
# `gid bench --sections gpu`. Everything is made on the machine: the real windows from the gid_loops training clips
# (from-video, one process per clip), the synthetic scenes (more than the CPU run's cache ever held), the latent
# cache (read in threads), stage 1 and stage 2 with time limits taken from what is left of the budget.
#   BUDGET_S=540 OUT=DIR GID_LOOPS=DIR bash scripts/gpu_recipe_run.sh
# Writes to OUT: run.log (this script), bench_gpu.json, stage1.tar (RUN/ldm as soon as stage 1 ends),
# ckpt.tar (vae/ + ldm/ + placement/: a checkpoint `gid eval --checkpoint` reads), logs.tar. The figures are
# measured afterwards on the CPU machine with scripts/eval_real_photos.sh (CKPT=...): the eval sets never travel.
# Knobs (environment): DEVICE (cuda), N_SYNTH (1200), N_TEX (600), N_KIND (250), BATCH (256), LR (3e-4),
# BATCH2 (4), BENCH (1), WORKERS (nproc), PY (python3), CLIPS (the split's training clips).
# Session 20 ran it on an H200 (BUDGET_S=555, defaults): 4.1 min of stage 1 = 1,624 steps at batch 256 with the GPU
# 10-15% busy (host-bound; two host costs were removed after it, see the model card "Session 20"): a next run can
# raise BATCH (1024) and N_SYNTH; its figures equalled the CPU-trained shipped weights (not shipped).
set -uo pipefail
T0=$(date +%s)
BUDGET=${BUDGET_S:-540}
left() { echo $((BUDGET - ($(date +%s) - T0))); }
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
GID_LOOPS=${GID_LOOPS:-.gpu/gid_loops}
OUTDIR=${OUT:-runs/gpu_out}
RUN=${RUN:-runs/gpu_run}
D=${DATA:-runs/gpu_data}
W=${WORKERS:-$(nproc)}
N_SYNTH=${N_SYNTH:-1200}
N_TEX=${N_TEX:-600}
N_KIND=${N_KIND:-250}
BATCH=${BATCH:-256}
LR=${LR:-3e-4}
BATCH2=${BATCH2:-4}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$OUTDIR" "$RUN" "$D"
exec > >(tee -a "$OUTDIR/run.log") 2>&1
say() { echo "[$(($(date +%s) - T0)) s] $*"; }
say "budget $BUDGET s, device $DEVICE, $W cores; $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null)"
$PY -c "import sys, torch, numpy, diffusers, cv2; print(sys.version.split()[0], 'torch', torch.__version__, 'numpy', numpy.__version__, 'diffusers', diffusers.__version__, 'cv2', cv2.__version__)"

smi_pid=
if command -v nvidia-smi > /dev/null; then     # load and memory through the run: is training launch-bound?
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 10 > "$RUN/smi.log" 2>&1 & smi_pid=$!
fi
# 1. the GPU bench (render paths and one predict), beside the CPU-bound data making (it leaves it 2 cores)
bench_pid=
if [ "${BENCH:-1}" = 1 ]; then
    timeout 150 $PY -m backend.cli bench --json "$OUTDIR/bench_gpu.json" --sections gpu --device "$DEVICE" \
        > "$RUN/bench.log" 2>&1 & bench_pid=$!
fi
# 2. data: real training windows (the split's train clips), synthetic scenes of each kind, then textured ones
train_clips=${CLIPS:-}          # a shorter list for a dry run on a small machine
[ -n "$train_clips" ] || train_clips=$($PY -c "import json; print(' '.join('$GID_LOOPS/' + f for f in json.load(open('backend/data/gid_loops_split.json'))['train']))")
gen=$((W > 6 ? W - 2 : 2))
$PY -m backend.cli data from-video $train_clips --out "$D/loops/train" --stride 30 --wrap --workers 16 \
    > "$RUN/data_video.log" 2>&1 & video_pid=$!
$PY -m backend.cli data synth --out "$D/synth_train" --count "$N_SYNTH" --seed 0 --lite --workers $((gen / 2)) \
    --min-free-gb 3 > "$RUN/data_synth.log" 2>&1
$PY -m backend.cli data synth --out "$D/synth_closeup" --count "$N_KIND" --seed 500000 --kind closeup --lite \
    --workers $((gen / 2)) --min-free-gb 3 > "$RUN/data_closeup.log" 2>&1
$PY -m backend.cli data synth --out "$D/synth_field" --count "$N_KIND" --seed 600000 --kind field --lite \
    --workers $((gen / 2)) --min-free-gb 3 > "$RUN/data_field.log" 2>&1
wait $video_pid || { say "from-video failed"; tail -n 20 "$RUN/data_video.log"; }
say "real windows: $(tail -n 1 "$RUN/data_video.log")"
$PY -m backend.cli data synth --out "$D/synth_textured" --count "$N_TEX" --seed 0 --lite --workers "$gen" \
    --photo-texture "$D/loops/train" --photo-texture-share 1 --min-free-gb 3 > "$RUN/data_textured.log" 2>&1
for f in synth closeup field textured; do say "$f: $(tail -n 1 "$RUN/data_$f.log")"; done
df -h "$D" | tail -n 1
# 3. the shipped VAE with the calibrated normalisation, depth condition on (as shipped)
if [ ! -d "$RUN/vae" ]; then
    cp -r backend/weights/default/vae "$RUN/vae"
    $PY - "$RUN" <<'PY'
import json, sys
run = sys.argv[1]
d = json.load(open("runs/norm_calibrated.json"))
json.dump({"scales": d["scales"], "percentile": d["percentile"]}, open(f"{run}/vae/norm_stats.json", "w"), indent=2)
c = json.load(open(f"{run}/vae/config.json"))
c["depth_condition"] = True
c["checkpoint_every"] = 1000        # a state every ~1 min here, not every 100 steps
json.dump(c, open(f"{run}/vae/config.json", "w"), indent=2)
PY
fi
DATA="$D/loops/train $D/synth_train $D/synth_textured $D/synth_closeup $D/synth_field"
WEIGHTS="0.3 0.25 0.25 0.1 0.1"
MAX=$((N_SYNTH + N_TEX + 2 * N_KIND + 200))
# 4. stage 1: what is left, less ~40 s for the cache scan, ~90 s for stage 2 and 30 s to pack
M1=$($PY -c "print(max(0.5, ($(left) - 160) / 60))")
say "stage 1: $M1 min, batch $BATCH, lr $LR, cache up to $MAX samples"
$PY -m backend.cli train ldm --data $DATA --weights $WEIGHTS --out "$RUN" --init-from backend/weights/default/ldm \
    --steps 200000 --time-limit "$M1" --batch "$BATCH" --lr "$LR" --threads "$W" --eval-every 1000 \
    --max-samples "$MAX" --initial-samples "$MAX" --scan-samples 0 --device "$DEVICE" > "$RUN/stage1.log" 2>&1
s1=$?
if [ $s1 != 0 ] && [ "$(left)" -gt 200 ]; then       # e.g. an op that fails in bf16: again in float32
    say "stage 1 exit $s1: again without autocast"; tail -n 5 "$RUN/stage1.log"
    GID_AUTOCAST=off $PY -m backend.cli train ldm --data $DATA --weights $WEIGHTS --out "$RUN" \
        --init-from backend/weights/default/ldm --steps 200000 --time-limit "$($PY -c "print(($(left) - 150) / 60)")" \
        --batch "$BATCH" --lr "$LR" --threads "$W" --eval-every 1000 --max-samples "$MAX" --initial-samples "$MAX" \
        --scan-samples 0 --device "$DEVICE" > "$RUN/stage1b.log" 2>&1
    s1=$?
fi
say "stage 1 exit $s1; $(grep -a -o '{"val_loss[^}]*}' "$RUN/stage1.log" | tail -n 1)"
tar -cf "$OUTDIR/stage1.tar" -C "$RUN" ldm/config.json ldm/model.safetensors ldm/norm_stats.json ldm/log.jsonl 2>/dev/null
# 5. stage 2 (frequency attention) in what is left; on failure the shipped attention is paired with stage 1
M2=$($PY -c "print(max(0.3, ($(left) - 45) / 60))")
say "stage 2: $M2 min, batch $BATCH2"
$PY -m backend.cli train ldm-freq --data $DATA --weights $WEIGHTS --out "$RUN" --init-from backend/weights/default/ldm \
    --steps 50000 --time-limit "$M2" --batch "$BATCH2" --threads "$W" --eval-every 1000 --max-samples "$MAX" \
    --initial-samples -1 --scan-samples 0 --device "$DEVICE" > "$RUN/stage2.log" 2>&1
s2=$?
if [ $s2 != 0 ]; then
    say "stage 2 exit $s2: pairing stage 1 with the shipped frequency attention"
    rm -rf "$RUN/ldm_freq"
    $PY -m backend.cli train ldm-freq --data $DATA --out "$RUN" --init-from backend/weights/default/ldm --steps 0 \
        --initial-samples -1 --scan-samples 0 --device "$DEVICE" >> "$RUN/stage2.log" 2>&1
fi
say "stage 2 exit $s2; $(grep -a -o '{"val_loss[^}]*}' "$RUN/stage2.log" | tail -n 1)"
rm -rf "$RUN/ckpt" && mkdir -p "$RUN/ckpt/ldm" && cp -r "$RUN/vae" "$RUN/ckpt/vae"
cp "$RUN"/ldm_freq/{config.json,model.safetensors,norm_stats.json} "$RUN/ckpt/ldm/"
cp -r backend/weights/default/placement "$RUN/ckpt/placement"
tar -cf "$OUTDIR/ckpt.tar" -C "$RUN" ckpt
[ -z "$bench_pid" ] || wait "$bench_pid" || say "bench exit $?"
[ -z "$smi_pid" ] || kill "$smi_pid"
tar -cf "$OUTDIR/logs.tar" -C "$RUN" --exclude=latents --exclude='*.pt' --exclude='*.safetensors' --exclude=ckpt \
    --exclude=vae . 2>/dev/null
say "done"
