"""Sample consensus (backend/motion/consensus.py), measured side by side on the same samples.

For each scene: one pool of N samples of the denoiser before placement (cached in --cache as npz, keyed by folder
and scene, so reruns and other variants reuse them); the first S are scored as drawn ("drawn", = what `gid eval`
calls ours) and after consensus (energy, and per term) with pools of S and of N samples at each strength, then the
shipped placement stage, exactly as `predict` would run it. Also the samples' agreement: the mean correlation of
the energy maps of two samples of the same picture. Printed per data folder: energy-map correlation, amount, log
power distance (and its shape part), amplitude error over the no-motion one, still/moving.

    python scripts/consensus_study.py --data runs/data/synth_val runs/data/loops/val --pool 4 --samples 4 \
        --strengths 0.5 1.0 [--max-scenes 8 --spread] [--checkpoint DIR] [--cache runs/pred_consensus] [--json OUT]
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.eval import metrics                              # noqa: E402
from backend.data.samples import list_samples                # noqa: E402
from backend.eval.evaluate import load_scene, pick_scenes, write_json_atomic     # noqa: E402
from backend.motion.consensus import apply_consensus          # noqa: E402
from backend.motion.predictor import MotionPredictor          # noqa: E402
from shared.spectral import resample_spectral                 # noqa: E402

FIGURES = ("energy_correlation", "amplitude_ratio", "log_power_distance", "spectral_shape_distance",
           "amp_err_vs_no_motion", "still_ratio")


def score(volumes: np.ndarray, scene, truth_tex: np.ndarray, no_motion_err: float) -> dict:
    H, W = scene.image.shape[:2]
    K = scene.spectral.shape[0]
    per = []
    for one in resample_spectral(np.asarray(volumes, np.float32), (W, H))[:, :K]:
        f = metrics.motion_figures(one, scene.spectral, scene.T, scene.valid, truth_tex)
        f["amp_err_vs_no_motion"] = f["amplitude_error_px"] / max(no_motion_err, 1e-12)
        per.append(f)
    return {key: float(np.nanmean([p[key] for p in per])) for key in FIGURES}


def pool_of(model: MotionPredictor, scene, pool: int, seed: int, cache: Path) -> np.ndarray:
    """The scene's N unplaced samples, from the cache or predicted (and cached)."""
    path = cache / f"{scene.name}_n{pool}_s{seed}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return z["spectral"]
    t0 = time.perf_counter()
    raw = model.predict(scene.image, seed=seed, samples=pool, place=False).spectral.astype(np.float32)
    print(f"  predicted {pool} samples of {scene.name} in {time.perf_counter() - t0:.1f} s", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")          # written whole, then moved: no half file in the cache
    np.savez(tmp, spectral=raw)
    os.replace(tmp, path)
    return raw


def study_scene(model: MotionPredictor, scene, raw: np.ndarray, samples: int, strengths) -> dict:
    truth_tex = metrics.motion_texture(scene.spectral, scene.T)
    zero = np.zeros_like(scene.spectral)
    no_motion_err = metrics.amplitude_error(zero, scene.spectral, scene.T, scene.valid)
    T = model.config.T
    drawn = raw[:samples]
    energies = [metrics.energy_map(one, T) for one in raw]
    agreement = float(np.mean([metrics.correlation(a, b) for a, b in itertools.combinations(energies, 2)]
                              or [np.nan]))
    out = {"drawn": score(model.place(scene.image, drawn), scene, truth_tex, no_motion_err),
           "agreement": agreement}
    for n in sorted({samples, len(raw)}):
        for mode, per_term in (("energy", False), ("term", True)):
            for s in strengths:
                moved = apply_consensus(drawn, T, s, pool=raw[:n], per_term=per_term)
                out[f"{mode}{n}_s{s:g}"] = score(model.place(scene.image, moved), scene, truth_tex, no_motion_err)
    return out


def add_pool_arguments(ap: argparse.ArgumentParser, pool: int = 4) -> None:
    """The arguments every study on the cached sample pools takes (this script, spread_study, flow_seen_study)."""
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--pool", type=int, default=pool, help="the cached pool's size (its first --samples are used)")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default="runs/pred_consensus",
                    help="folder for the unplaced samples (one per checkpoint: the files are named by scene)")
    ap.add_argument("--json", default=None)


def parse_pool_arguments(ap: argparse.ArgumentParser, argv) -> tuple[argparse.Namespace, MotionPredictor]:
    args = ap.parse_args(argv)
    if not 1 <= args.samples <= args.pool <= 64:
        ap.error("need 1 <= --samples <= --pool <= 64")
    return args, MotionPredictor.load(checkpoint_dir=args.checkpoint, device="cpu")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_pool_arguments(ap, pool=8)
    ap.add_argument("--strengths", type=float, nargs="+", default=[0.5, 1.0])
    ap.add_argument("--max-scenes", type=int, default=None)
    ap.add_argument("--spread", action="store_true")
    args, model = parse_pool_arguments(ap, argv)
    results = {}
    for folder in map(Path, args.data):
        scenes = {}
        for path in pick_scenes(list_samples([folder]), args.max_scenes, args.spread):
            scene = load_scene(path)
            raw = pool_of(model, scene, args.pool, args.seed, Path(args.cache) / folder.name)
            scenes[path.stem] = study_scene(model, scene, raw, args.samples, args.strengths)
            print(f"{folder.name}/{path.stem}: " + "  ".join(
                f"{v}: {r['energy_correlation']:.2f}/{r['amplitude_ratio']:.2f}x"
                for v, r in scenes[path.stem].items() if isinstance(r, dict)), flush=True)
        variants = [v for v, r in next(iter(scenes.values())).items() if isinstance(r, dict)]
        agg = {v: {f: float(np.nanmean([s[v][f] for s in scenes.values()])) for f in FIGURES} for v in variants}
        agree = float(np.nanmean([s["agreement"] for s in scenes.values()]))
        results[str(folder)] = {"scenes": scenes, "aggregate": agg, "agreement": agree}
        print(f"\n== {folder} ({len(scenes)} scenes, {args.samples} samples of a pool of {args.pool}; "
              f"two samples' energy maps correlate {agree:.3f})")
        print(f"{'variant':<14}" + "".join(f"{f[:14]:>16}" for f in FIGURES))
        for v in variants:
            print(f"{v:<14}" + "".join(f"{agg[v][f]:>16.3f}" for f in FIGURES))
        print(flush=True)
    if args.json:
        write_json_atomic(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
