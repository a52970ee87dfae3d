"""Compare samplers (and guidances) of the motion model side by side on held-out scenes, in one run.

Issue 5's bar: the default 25-step sampler's figures (a) energy-map correlation and (b) amplitude error / no
motion within 5% of 250-step DDIM. Every run below starts from the same noise per scene (seed = scene index),
so runs with the same guidance integrate the same probability-flow ODE and their outputs should agree; the
first run is the reference.

    python scripts/bench_samplers.py [--data runs/data/synth_test] [--scenes 8] [--samples 1]
        [--runs ddim:250 dpm++:25 unipc:25 dpm++:25:loop] [--guidance G ...] [--checkpoint DIR] [--threads 2]
        [--json OUT]

With several --guidance values every run is done at each (guidance sweep: pick the guidance on held-out
TRAINING scenes, never on the test scenes). Prints per run: (a), (b), (c) amount / truth, the ratios of (a),
(b) and the amount to the reference's, the mean |difference| of the motion to the reference's over its mean
|motion| (same guidance and loop mode only), the loop gap (mean |displacement(period) - displacement(0)| over the
motion amount: what loop self-guidance, `:loop`, lowers) and seconds per predict.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.eval import baselines, metrics  # noqa: E402
from backend.eval.evaluate import load_scene, write_json_atomic  # noqa: E402
from backend.motion.pipeline import loop_loss  # noqa: E402
from backend.motion.predictor import MotionPredictor  # noqa: E402
from shared.spectral import resample_spectral  # noqa: E402


def parse_run(text: str) -> tuple[str, int, bool]:
    sampler, _, rest = text.partition(":")
    steps, _, mode = rest.partition(":")
    if not steps.isdigit() or int(steps) < 1 or mode not in ("", "loop"):
        raise argparse.ArgumentTypeError(f"a run is SAMPLER:STEPS[:loop] (e.g. dpm++:25), not {text!r}")
    return sampler, int(steps), mode == "loop"


def scene_figures(pred: np.ndarray, scene, truth_tex: np.ndarray, no_motion_error: float, config) -> dict:
    f = metrics.motion_figures(pred, scene.spectral, scene.T, scene.valid, truth_tex)
    truth_amount = metrics.motion_amount(scene.spectral, scene.T, scene.valid)
    # how far the motion is from closing over the model's loop period, per pixel of motion (loop self-guidance
    # lowers it; the exact-closure loop of `shared` is applied later and is not part of this figure)
    gap = loop_loss(torch.from_numpy(pred[None]), config.T, config.loop_period).item()
    return {"a_energy_corr": f["energy_correlation"],
            "b_error_vs_no_motion": f["amplitude_error_px"] / no_motion_error,
            "c_amount_vs_truth": f["motion_amount_px"] / truth_amount,
            "amount_px": f["motion_amount_px"],
            "loop_gap_vs_amount": gap / max(f["motion_amount_px"], 1e-12)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="runs/data/synth_test", help="folder of sample .npz files (with truth)")
    ap.add_argument("--scenes", type=int, default=8, help="first N scenes of the folder (sorted by name)")
    ap.add_argument("--samples", type=int, default=1, help="samples per scene (seeds scene index, batched)")
    ap.add_argument("--runs", type=parse_run, nargs="+", default=[("ddim", 250, False), ("dpm++", 25, False)],
                    help="SAMPLER:STEPS[:loop] ...; the first is the reference")
    ap.add_argument("--guidance", type=float, nargs="+", default=[None], help="default: the model's")
    ap.add_argument("--checkpoint", default=None, help="checkpoint dir (default: the shipped model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="write per-scene figures here")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    predictor = MotionPredictor.load(checkpoint_dir=args.checkpoint, device="cpu")
    files = sorted(Path(args.data).glob("*.npz"))[:args.scenes]
    if not files:
        raise SystemExit(f"no .npz scenes in {args.data}")
    scenes = [load_scene(f) for f in files]
    truth_tex = [metrics.motion_texture(s.spectral, s.T) for s in scenes]
    no_motion_err = [metrics.amplitude_error(baselines.no_motion(s.spectral.shape[0], s.image.shape[1::-1]),
                                             s.spectral, s.T, s.valid) for s in scenes]
    combos = [(sampler, steps, loop, g) for g in args.guidance for sampler, steps, loop in args.runs]
    print(f"{len(scenes)} scenes of {args.data}, {args.samples} sample(s) each, model guidance "
          f"{predictor.config.guidance}, reference {combos[0][0]}:{combos[0][1]}", flush=True)

    outputs: dict[tuple, list[np.ndarray]] = {}
    rows = []
    for sampler, steps, loop, g in combos:
        preds, figs, t0 = [], [], time.perf_counter()
        for i, scene in enumerate(scenes):
            p = predictor.predict(scene.image, seed=i, samples=args.samples, steps=steps, guidance=g,
                                  sampler=sampler, loop=loop)
            K = scene.spectral.shape[0]
            vols = [resample_spectral(np.asarray(v, np.float32), scene.image.shape[1::-1])[:K] for v in p.spectral]
            preds.append(np.stack(vols))
            figs.append([scene_figures(v, scene, truth_tex[i], no_motion_err[i], predictor.config) for v in vols])
        seconds = (time.perf_counter() - t0) / len(scenes)
        outputs[(sampler, steps, loop, g)] = preds
        mean = {k: float(np.mean([[f[k] for f in per] for per in figs])) for k in figs[0][0]}
        guidance = g if g is not None else predictor.config.guidance
        rows.append({"sampler": sampler, "steps": steps, "loop": loop, "guidance": guidance,
                     "seconds_per_predict": seconds, **mean,
                     "per_scene": [{"name": s.name, **{k: float(np.mean([f[k] for f in per])) for k in per[0]}}
                                   for s, per in zip(scenes, figs)]})
        print(f"  done {sampler}:{steps}{':loop' if loop else ''} guidance {guidance}: {seconds:.1f} s per predict",
              flush=True)

    ref = rows[0]
    ref_out = outputs[combos[0]]
    print(f"\n{'run':>16} {'guid':>5} {'(a) corr':>9} {'(b) err/still':>13} {'(c) amt/truth':>13} "
          f"{'(a)/ref':>8} {'(b)/ref':>8} {'amt/ref':>8} {'|diff|/ref':>10} {'loop gap':>8} {'s/pred':>7}")
    for row, combo in zip(rows, combos):
        same_ode = combo[2:] == combos[0][2:]         # same guidance, same loop mode
        diff = (float(np.mean([np.abs(a - b).mean() / max(np.abs(b).mean(), 1e-12)
                               for a, b in zip(outputs[combo], ref_out)])) if same_ode else float("nan"))
        row.update({"a_vs_ref": row["a_energy_corr"] / ref["a_energy_corr"],
                    "b_vs_ref": row["b_error_vs_no_motion"] / ref["b_error_vs_no_motion"],
                    "amount_vs_ref": row["amount_px"] / ref["amount_px"], "relative_difference_vs_ref": diff})
        name = f"{row['sampler']}:{row['steps']}" + (":loop" if row["loop"] else "")
        print(f"{name:>16} {row['guidance']:5.2f} {row['a_energy_corr']:9.3f} {row['b_error_vs_no_motion']:13.3f} "
              f"{row['c_amount_vs_truth']:13.3f} {row['a_vs_ref']:8.3f} {row['b_vs_ref']:8.3f} "
              f"{row['amount_vs_ref']:8.3f} {diff:10.3f} {row['loop_gap_vs_amount']:8.3f} "
              f"{row['seconds_per_predict']:7.1f}")
    if args.json:
        write_json_atomic(args.json, {"data": str(args.data), "scenes": len(scenes), "samples": args.samples,
                                      "checkpoint": args.checkpoint or "default", "runs": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
