"""The placement gain's strength, measured: the denoiser's samples moved by a placement map at several strengths.

    python scripts/placement_strength.py --data runs/data/synth_val runs/data/loops/val --placement DIR \
        [--checkpoint CKPT] [--samples 2] [--strengths 0 0.25 0.5 0.75 1] [--cache runs/pred]

For every sample folder: the model predicts each scene once without placement (cached as npz in --cache, keyed by
folder and scene, so other placements and strengths reuse the same samples), then each strength's energy-map
correlation with the truth and still/moving ratio (backend.eval.metrics) are printed as the mean over scenes and
samples, side by side. Session 12 chose the shipped strength with it on held-out synthetic scenes (synth_val, seed
700000, not the test set) as the largest that keeps bar (a) (energy correlation >= 0.7).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.data.samples import list_samples  # noqa: E402
from backend.eval.metrics import correlation, energy_map, still_ratio  # noqa: E402
from backend.motion.placement import apply_placement, load_placement  # noqa: E402
from shared.spectral import resample_spectral  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--placement", required=True, help="a placement/ folder (config.json [+ model.safetensors])")
    ap.add_argument("--checkpoint", default=None, help="motion checkpoint (default: the shipped one)")
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--strengths", nargs="+", type=float, default=[0, 0.25, 0.5, 0.75, 1.0])
    ap.add_argument("--cache", default="runs/pred", help="folder for the unplaced predictions")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    from backend.motion.predictor import MotionPredictor
    predictor = None
    net = load_placement(args.placement)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    for folder in args.data:
        rows = {s: [] for s in args.strengths}
        paths = list_samples(folder)
        for i, path in enumerate(paths):
            with np.load(path, allow_pickle=False) as z:
                image, truth, T = z["image"], z["spectral"], int(z["T"])
                valid = z["valid"] if "valid" in z.files else np.ones(image.shape[:2], bool)
            H, W = image.shape[:2]
            cached = cache / f"{Path(folder).name}_{path.stem}.npz"
            if cached.is_file():
                with np.load(cached, allow_pickle=False) as z:
                    volumes = z["spectral"]
            else:
                if predictor is None:
                    predictor = MotionPredictor.load(args.checkpoint, device="cpu")
                pred = predictor.predict(image, seed=i, samples=args.samples, place=False)
                volumes = np.stack([resample_spectral(v, (W, H)) for v in pred.spectral]).astype(np.float32)
                np.savez(cached, spectral=volumes)
            e_true = energy_map(truth, T)
            where = net.placement_map(image, (W, H))
            for volume in volumes[:args.samples]:
                for s in args.strengths:
                    e = energy_map(apply_placement(volume, where, T, s, net.config.smooth_px), T)
                    rows[s].append((correlation(e, e_true, valid), still_ratio(e, e_true, valid)))
        print(f"{folder} ({len(paths)} scenes x {args.samples} samples)")
        for s, r in rows.items():
            a = np.asarray(r, np.float64)
            print(f"  strength {s:.2f}: energy corr {a[:, 0].mean():.3f}  still/moving {np.nanmean(a[:, 1]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
