"""Object spread (backend/motion/spread.py) against placement strength, side by side on the same samples.

For each scene: the cached pool of unplaced samples of `scripts/consensus_study.py` (predicted and cached when
missing), its first S samples through the placement stage exactly as `predict` runs it, at every placement
strength x spread radius asked for (the checkpoint's placement config with those two fields replaced). Printed per
data folder: energy-map correlation, amount, log power distance (and its shape part), amplitude error over the
no-motion one, still/moving. Session 16 chose the shipped spread and strength with it on synth_val (held-out
synthetic scenes, not the test set) by the session-12 rule: the largest strength that keeps bar (a) (>= 0.7).

    python scripts/spread_study.py --data runs/data/synth_val runs/data/loops/val --strengths 0.5 0.75 1 \
        --spreads 0 0.0625 0.09375 [--max-scenes 16 --spread-scenes] [--samples 4] [--json OUT]

--blurs S1 S2 ... (session 17) adds, for each variant, the energy then blurred across edges (a Gaussian of sigma
S x the grid's width, applied as one positive gain per pixel, clipped like placement's, mean energy kept): not a
product option (it spills motion past every edge), the measure of what the real truth's smoothness is worth.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from backend.data.samples import list_samples                # noqa: E402
from backend.eval import metrics                              # noqa: E402
from backend.eval.evaluate import load_scene, pick_scenes, write_json_atomic     # noqa: E402
from backend.motion.placement import GAIN_LIMIT, PlacementNet      # noqa: E402
from consensus_study import FIGURES, add_pool_arguments, parse_pool_arguments, pool_of, score   # noqa: E402


def blurred_energy(spectral: np.ndarray, T: int, sigma_frac: float) -> np.ndarray:
    """(K, 4, H, W) -> the same with its energy map moved to its Gaussian blur (sigma a fraction of the width)."""
    import cv2
    if sigma_frac <= 0:
        return spectral
    e = metrics.energy_map(spectral, T)
    gain = np.clip(cv2.GaussianBlur(e, (0, 0), sigma_frac * e.shape[1]) / (e + 1e-3 * e.mean() + 1e-12),
                   1 / GAIN_LIMIT, GAIN_LIMIT)
    gain *= e.mean() / max(float((e * gain).mean()), 1e-12)
    return (spectral * gain[None, None]).astype(np.float32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_pool_arguments(ap)
    ap.add_argument("--strengths", type=float, nargs="+", default=[0.5, 0.75, 1.0])
    ap.add_argument("--spreads", type=float, nargs="+", default=[0.0, 0.0625])
    ap.add_argument("--blurs", type=float, nargs="+", default=[0.0])
    ap.add_argument("--max-scenes", type=int, default=None)
    ap.add_argument("--spread-scenes", action="store_true", help="pick the scenes spread over each folder")
    args, model = parse_pool_arguments(ap, argv)
    if model.placement is None or model.placement.config.source != "texture":
        ap.error("the checkpoint needs a texture placement stage (placement/config.json)")
    base = model.placement.config
    nets = {(s, r): PlacementNet(dataclasses.replace(base, strength=s, spread=r)).eval()
            for s, r in itertools.product(args.strengths, args.spreads)}
    variants = list(itertools.product(nets, args.blurs))
    results = {}
    for folder in map(Path, args.data):
        rows = {v: [] for v in variants}
        paths = pick_scenes(list_samples([folder]), args.max_scenes, args.spread_scenes)
        for path in paths:
            scene = load_scene(path)
            raw = pool_of(model, scene, args.pool, args.seed, Path(args.cache) / folder.name)[:args.samples]
            truth_tex = metrics.motion_texture(scene.spectral, scene.T)
            no_motion = metrics.amplitude_error(np.zeros_like(scene.spectral), scene.spectral, scene.T, scene.valid)
            for (s, r), net in nets.items():
                model.placement = net
                placed = model.place(scene.image, raw)
                for b in args.blurs:
                    moved = np.stack([blurred_energy(one, model.config.T, b) for one in placed])
                    rows[((s, r), b)].append(score(moved, scene, truth_tex, no_motion))
        agg = {v: {f: float(np.nanmean([r[f] for r in rs])) for f in FIGURES} for v, rs in rows.items()}
        results[str(folder)] = {f"strength {s:g} spread {r:g}" + (f" blur {b:g}" if b else ""): a
                                for ((s, r), b), a in agg.items()}
        print(f"\n== {folder} ({len(paths)} scenes x {args.samples} samples)")
        print(f"{'strength':>9}{'spread':>8}{'blur':>8}" + "".join(f"{f[:14]:>16}" for f in FIGURES))
        for ((s, r), b), a in agg.items():
            print(f"{s:>9.2f}{r:>8.4f}{b:>8.4f}" + "".join(f"{a[f]:>16.3f}" for f in FIGURES), flush=True)
    if args.json:
        write_json_atomic(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
