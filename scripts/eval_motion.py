"""Measure the motion model against held-out truth with phase-invariant figures (model brief bars).

    .venv/bin/python scripts/eval_motion.py --data runs/data/synth_test --out runs/eval_motion_synth.json
    .venv/bin/python scripts/eval_motion.py --data runs/data/loops/val --out runs/eval_motion_loops.json

Per scene (all at the truth's grid; valid pixels only where the sample has a `valid` mask):
  (a) energy_corr: Pearson correlation of the energy map (mean |F_t - F_0| over T frames), predicted vs true,
      averaged over the N samples;
  (b) amp_err: mean_{k,axis,p} | |S_k| - |S_k_true| |, vs the no-motion baseline (= mean |S_true|) and the
      training-set mean-amplitude volume (per k, axis, pixel mean of |S| over training samples);
      also vs the literal training-set mean spectral volume (complex mean, phases cancel);
  (c) amp_ratio: mean |S_pred| / mean |S_true|;
  best-of-N endpoint error (for information), and predict wall time.
Ratios are aggregated as ratio of means over the scenes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.motion.datacache import list_samples  # noqa: E402
from backend.motion.metrics import (amplitude_error, amplitudes, correlation, endpoint_error,  # noqa: E402
                                    energy_map, mean_amplitude)
from shared.spectral import resample_spectral  # noqa: E402


def training_means(folders: list[str], size: tuple[int, int], n: int, K: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean amplitude volume (K, 2, H, W), mean spectral volume (K, 4, H, W)) over n training samples."""
    files = list_samples(folders)
    files = files[:: max(1, len(files) // n)][:n]
    amp, vol = None, None
    for p in files:
        with np.load(p, allow_pickle=False) as z:
            s = resample_spectral(z["spectral"][:K], size)
        amp = amplitudes(s) if amp is None else amp + amplitudes(s)
        vol = s.astype(np.float64) if vol is None else vol + s
    if amp is None:
        raise ValueError(f"no training samples in {folders}")
    return amp / len(files), (vol / len(files)).astype(np.float32)


def evaluate(args) -> dict:
    import torch
    from backend.motion.predictor import MotionPredictor
    if args.threads:
        torch.set_num_threads(args.threads)
    predictor = MotionPredictor.load(args.checkpoint, device=args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    files = list_samples(args.data)[: args.limit or None]
    if not files:
        raise ValueError(f"no samples in {args.data}")
    K = predictor.config.K
    baselines = None
    rows = []
    for i, p in enumerate(files):
        with np.load(p, allow_pickle=False) as z:
            image, true = z["image"], z["spectral"][:K]
            T = int(z["T"])
            mask = z["valid"].astype(bool) if "valid" in z.files else None
        H, W = true.shape[-2:]
        if baselines is None and args.train_data:
            baselines = training_means(args.train_data, (W, H), args.train_count, K)
        t0 = time.perf_counter()
        pred = predictor.predict(image, seed=args.seed + i, samples=args.samples, steps=args.steps,
                                 sampler=args.sampler)
        dt = time.perf_counter() - t0
        preds = [resample_spectral(s, (W, H)) for s in pred.spectral]
        e_true = energy_map(true, T)
        sel = (lambda e: e[mask]) if mask is not None else (lambda e: e)
        row = {
            "file": p.name, "predict_s": dt,
            "energy_corr": float(np.mean([correlation(sel(energy_map(s, T)), sel(e_true)) for s in preds])),
            "amp_err": float(np.mean([amplitude_error(s, true, mask) for s in preds])),
            "no_motion_err": mean_amplitude(true, mask),
            "pred_amp": float(np.mean([mean_amplitude(s, mask) for s in preds])),
            "true_amp": mean_amplitude(true, mask),
            "best_epe": float(min(endpoint_error(s, true, T, mask) for s in preds)),
            "no_motion_epe": float(endpoint_error(np.zeros_like(true), true, T, mask)),
        }
        if baselines is not None:
            row["train_mean_amp_err"] = amplitude_error(baselines[0], true, mask)
            row["train_mean_volume_err"] = amplitude_error(baselines[1], true, mask)
        rows.append(row)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)

    def mean(key):
        return float(np.mean([r[key] for r in rows])) if key in rows[0] else None

    summary = {
        "data": [str(d) for d in args.data], "scenes": len(rows), "samples_per_scene": args.samples,
        "steps": pred.steps, "sampler": args.sampler or predictor.config.sampler, "checkpoint": str(predictor.checkpoint),
        "energy_corr": mean("energy_corr"),
        "amp_err": mean("amp_err"), "no_motion_err": mean("no_motion_err"),
        "amp_err_ratio_vs_no_motion": mean("amp_err") / mean("no_motion_err"),
        "train_mean_amp_err": mean("train_mean_amp_err"), "train_mean_volume_err": mean("train_mean_volume_err"),
        "amp_ratio": mean("pred_amp") / mean("true_amp"),
        "best_of_n_epe": mean("best_epe"), "no_motion_epe": mean("no_motion_epe"),
        "predict_s_mean": mean("predict_s"),
    }
    summary["bars"] = {
        "a_energy_corr_ge_0.7": summary["energy_corr"] >= 0.7,
        "b_amp_err_le_0.6x_no_motion": summary["amp_err_ratio_vs_no_motion"] <= 0.6,
        "b_amp_err_below_train_mean": (summary["train_mean_amp_err"] is not None
                                       and summary["amp_err"] < summary["train_mean_amp_err"]
                                       and summary["amp_err"] < summary["train_mean_volume_err"]),
        "c_amp_ratio_in_0.67_1.5": 0.67 <= summary["amp_ratio"] <= 1.5,
    }
    return {"summary": summary, "scenes": rows, "model": predictor.info()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", default=["runs/data/synth_test"])
    ap.add_argument("--train-data", nargs="*", default=["runs/data/synth_train"],
                    help="folders for the training-set mean baselines (none: skip)")
    ap.add_argument("--train-count", type=int, default=200)
    ap.add_argument("--checkpoint", default=None, help="folder with vae/ and ldm/ (default: shipped weights)")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--sampler", default=None, choices=["ddim", "dpm++"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="JSON file for the full result")
    args = ap.parse_args(argv)
    result = evaluate(args)
    text = json.dumps(result, indent=2)
    if args.out:
        from backend.train.common import atomic_write_text
        atomic_write_text(Path(args.out), text)
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
