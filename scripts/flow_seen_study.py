"""Where the motion is, as optical flow sees it: the real-photo energy correlation measured like its truth.

The real scenes' truth is not the motion itself but what dense flow (backend/data/flow.py, OpenCV DIS) extracts
from a video; a prediction is a motion. To compare like with like, each motion (every predicted sample, and the
truth itself as a control) is rendered into the scene's T frames from its first picture (a backward warp,
I_t(x) = I_0(x - D_t(x)): close enough for motions of a few pixels) and measured again by the same flow
extraction. Printed per data folder, mean over scenes and samples:

- raw: energy-map correlation of the prediction with the truth (what `gid eval` reports);
- seen: the same with the prediction measured by flow (M(pred) against the truth);
- both seen: M(pred) against M(truth) (both measured the same number of times);
- ceiling: M(truth) against the truth (what a perfect prediction would score as `seen`).

On synthetic scenes the truth is exact; on real windows it is already one flow measurement of a rendered video.
Samples come from the cache of `scripts/consensus_study.py` (predicted and cached when missing) and go through
the shipped placement stage exactly as `predict` runs it.

    python scripts/flow_seen_study.py --data runs/data/synth_val runs/data/loops/val [--max-scenes 16]
        [--samples 4] [--blur 0 0.015625 0.03125] [--json OUT]

--blur adds rows with the prediction's energy map blurred (Gaussian, sigma a fraction of the width) before the
raw correlation: how much of the raw figure is the truth's spatial resolution.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from backend.data.flow import window_motion                  # noqa: E402
from backend.data.samples import list_samples                # noqa: E402
from backend.eval import metrics                              # noqa: E402
from backend.eval.evaluate import load_scene, pick_scenes, write_json_atomic     # noqa: E402
from backend.motion.predictor import MotionPredictor          # noqa: E402  (type of the model)
from consensus_study import add_pool_arguments, parse_pool_arguments, pool_of   # noqa: E402
from shared.spectral import motion_to_spectral, resample_spectral      # noqa: E402


def render_frames(image: np.ndarray, spectral: np.ndarray, T: int) -> np.ndarray:
    """uint8 (H, W, 3) and a motion (K, 4, H, W) -> uint8 (T, H, W, 3): frame t = the picture warped by D_t."""
    h, w = image.shape[:2]
    disp = metrics.motion_texture(spectral, T)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([cv2.remap(image, xs - d[0], ys - d[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
                     for d in disp])


def flow_seen_energy(image: np.ndarray, spectral: np.ndarray, T: int) -> np.ndarray:
    """The energy map (H, W) of what flow extracts from the motion rendered: the truth's own measurement."""
    motion, _ = window_motion(render_frames(image, spectral, T))
    return metrics.energy_map(motion_to_spectral(motion, spectral.shape[0]), T)


def blurred(energy: np.ndarray, sigma_frac: float) -> np.ndarray:
    return cv2.GaussianBlur(energy, (0, 0), sigma_frac * energy.shape[1]) if sigma_frac > 0 else energy


def study_scene(model: MotionPredictor, scene, raw: np.ndarray, blurs) -> dict:
    H, W = scene.image.shape[:2]
    K, T = scene.spectral.shape[0], int(scene.T)
    e_true = metrics.energy_map(scene.spectral, T)
    e_true_seen = flow_seen_energy(scene.image, scene.spectral, T)
    out = {"ceiling": metrics.correlation(e_true_seen, e_true, scene.valid), "raw": [], "seen": [],
           "both_seen": [], **{f"raw_blur_{b:g}": [] for b in blurs}}
    for pred in resample_spectral(model.place(scene.image, raw).astype(np.float32), (W, H))[:, :K]:
        e_pred = metrics.energy_map(pred, T)
        e_seen = flow_seen_energy(scene.image, pred, T)
        out["raw"].append(metrics.correlation(e_pred, e_true, scene.valid))
        out["seen"].append(metrics.correlation(e_seen, e_true, scene.valid))
        out["both_seen"].append(metrics.correlation(e_seen, e_true_seen, scene.valid))
        for b in blurs:
            out[f"raw_blur_{b:g}"].append(metrics.correlation(blurred(e_pred, b), e_true, scene.valid))
    return {k: float(np.mean(v)) for k, v in out.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_pool_arguments(ap)
    ap.add_argument("--max-scenes", type=int, default=16)
    ap.add_argument("--blur", type=float, nargs="*", default=[])
    args, model = parse_pool_arguments(ap, argv)
    results = {}
    for folder in map(Path, args.data):
        per_scene = {}
        for path in pick_scenes(list_samples([folder]), args.max_scenes, True):
            scene = load_scene(path)
            raw = pool_of(model, scene, args.pool, args.seed, Path(args.cache) / folder.name)[:args.samples]
            per_scene[scene.name] = row = study_scene(model, scene, raw, args.blur)
            print(f"  {folder.name}/{scene.name}: " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
        keys = next(iter(per_scene.values())).keys()
        agg = {k: float(np.mean([r[k] for r in per_scene.values()])) for k in keys}
        results[str(folder)] = {"aggregate": agg, "scenes": per_scene}
        print(f"== {folder} ({len(per_scene)} scenes x {args.samples} samples): "
              + "  ".join(f"{k} {v:.3f}" for k, v in agg.items()), flush=True)
    if args.json:
        write_json_atomic(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
