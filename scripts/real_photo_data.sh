# Sourced by scripts/eval_real_photos.sh and scripts/train_real_calibrated.sh: the data both use, each made only
# if missing. Needs PY and GID_LOOPS set; run from the repository root.
# - runs/data/loops/{train,val}: windows of the gid_loops clips (5 per clip, every 30 frames over the loop), split by
#   scene in backend/data/gid_loops_split.json (the 4 held-out scenes are never trained on); lite samples at
#   256x160, T = 150;
# - runs/data/synth_{train,test}: 3,000 training scenes and 32 held-out test scenes of the calibrated generator;
# - runs/data/synth_{closeup,field}_test: 8 held-out scenes of each kind made only on request (session 13).
# - runs/data/synth_val: 16 held-out synthetic scenes (seed 700000; not the test set) that the placement and spread
#   studies choose settings on (scripts/placement_strength.py, scripts/spread_study.py).
split() { $PY -c "import json,sys; print(' '.join('$GID_LOOPS/' + f for f in json.load(open('backend/data/gid_loops_split.json'))[sys.argv[1]]))" "$1"; }
[ -d runs/data/loops/train ] || $PY -m backend.cli data from-video $(split train) --out runs/data/loops/train --stride 30 --wrap
[ -d runs/data/loops/val ] || $PY -m backend.cli data from-video $(split val) --out runs/data/loops/val --stride 30 --wrap
[ -d runs/data/synth_train ] || $PY -m backend.cli data synth --out runs/data/synth_train --count 3000 --seed 0 --lite --workers 2
[ -d runs/data/synth_test ] || $PY -m backend.cli data synth --out runs/data/synth_test --count 32 --seed 900000 --lite --workers 2
[ -d runs/data/synth_val ] || $PY -m backend.cli data synth --out runs/data/synth_val --count 16 --seed 700000 --lite --workers 2
[ -d runs/data/synth_closeup_test ] || $PY -m backend.cli data synth --out runs/data/synth_closeup_test --count 8 --seed 510000 --kind closeup --lite --workers 2
[ -d runs/data/synth_field_test ] || $PY -m backend.cli data synth --out runs/data/synth_field_test --count 8 --seed 610000 --kind field --lite --workers 2
