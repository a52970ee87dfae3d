"""What any motion model of a given VAE could score on bar (b) of issue 5, measured without sampling a model.

    python scripts/bar_b_ceilings.py --data runs/data/synth_test --checkpoint backend/weights/default runs/cand15 \
        --draws 6 --json runs/ceilings.json

Bar (b): amplitude error (mean over k >= 1, axis and pixel of | |S_k(p)| - |S_k_true(p)| |) <= 0.6x that of no
motion. Every held-out synthetic scene carries its generation seed, so it can be re-simulated `--draws` times:
- "fresh": the same physics under a fresh wind (a perfect sampler: only the phase of the wind is new);
- "hidden": also with every natural frequency the picture does not show redrawn (`synth.resimulate`,
  freq_jitter 0.4, as `gid eval`'s resimulated_hidden): a perfect sampler that knows only the image.
Each is scored as a sample (mean over the draws) and as the per-pixel median amplitude of the draws (the
L1-optimal point estimate: what a model outputting the conditional median rather than a sample would score).
With `--checkpoint`, the truth, the hidden draws and their median also go through each model's working grid and
VAE (`MotionPredictor.autoencode`), so "hidden_vae" is what a perfectly trained denoiser on that VAE would score.
A checkpoint may be a VAE alone (a run's vae/, before a denoiser is trained on it).
Figures are ratios of the errors summed over scenes to no motion's, as `gid eval` aggregates.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.data.samples import list_samples  # noqa: E402
from backend.data.synth import resimulate  # noqa: E402
from backend.eval import metrics  # noqa: E402
from backend.eval.evaluate import (HIDDEN_FREQ_JITTER, ORACLE_WIND_SEED, load_scene,  # noqa: E402
                                   resimulation_config, write_json_atomic)
from shared.spectral import from_complex, resample_spectral, to_complex  # noqa: E402


def median_amplitude(volumes: list[np.ndarray]) -> np.ndarray:
    """Per (k, axis, pixel) median of |S| over the volumes, phase 0 (the figure is phase-invariant)."""
    amp = np.median(np.abs(to_complex(np.stack(volumes))), axis=0)
    return from_complex(amp.astype(np.complex128)).astype(np.float32)


def scene_errors(scene, draws: int, predictors: dict) -> dict[str, float]:
    """Amplitude errors in pixels of every reference on one scene (no motion's under "no_motion")."""
    H, W = scene.image.shape[:2]
    K = scene.spectral.shape[0]
    cfg = resimulation_config(scene)

    def err(volume: np.ndarray) -> float:
        return metrics.amplitude_error(volume, scene.spectral, scene.T, scene.valid)

    fresh = [resimulate(scene.seed, cfg, wind_seed=ORACLE_WIND_SEED + d) for d in range(draws)]
    hidden = [resimulate(scene.seed, cfg, wind_seed=ORACLE_WIND_SEED + d, freq_jitter=HIDDEN_FREQ_JITTER)
              for d in range(draws)]
    hidden_median = median_amplitude(hidden)
    out = {"no_motion": err(np.zeros_like(scene.spectral)),
           "fresh": float(np.mean([err(v) for v in fresh])), "fresh_median": err(median_amplitude(fresh)),
           "hidden": float(np.mean([err(v) for v in hidden])), "hidden_median": err(hidden_median)}
    for name, predictor in predictors.items():
        def through(volume: np.ndarray) -> np.ndarray:
            return resample_spectral(predictor.autoencode(volume), (W, H))[:K]
        out[f"{name}:truth_vae"] = err(through(scene.spectral))
        out[f"{name}:hidden_vae"] = float(np.mean([err(through(v)) for v in hidden]))
        out[f"{name}:hidden_median_vae"] = err(through(hidden_median))
    return out


def run(data: list[str], checkpoints: list[str], draws: int, max_scenes: int | None, device: str) -> dict:
    from backend.motion.predictor import MotionPredictor
    predictors = {}
    for c in map(Path, checkpoints):
        # a whole model (vae/ + ldm/), or a VAE alone (RUN/vae, or RUN with only vae/): its ceiling before any
        # denoiser is trained on it
        predictors[c.name] = (MotionPredictor.load(c, device=device) if (c / "ldm").is_dir() else
                              MotionPredictor.load_autoencoder(c / "vae" if (c / "vae").is_dir() else c, device))
    if len(predictors) != len(checkpoints):
        raise ValueError("checkpoints must have distinct folder names (they label the figures)")
    files = list_samples(data)[:max_scenes]
    scenes = []
    for f in files:
        scene = load_scene(Path(f))
        if scene.seed is None:
            raise ValueError(f"{f}: no generation seed (only synthetic scenes can be re-simulated)")
        errors = scene_errors(scene, draws, predictors)
        scenes.append({"name": scene.name, "errors_px": errors})
        print(f"{scene.name}: " + ", ".join(f"{k} {v / errors['no_motion']:.3f}" for k, v in errors.items()
                                            if k != "no_motion"), flush=True)
    if not scenes:
        raise FileNotFoundError(f"no sample_*.npz in {', '.join(data)}")
    total = {k: float(np.sum([s["errors_px"][k] for s in scenes])) for k in scenes[0]["errors_px"]}
    ratios = {k: v / total["no_motion"] for k, v in total.items() if k != "no_motion"}
    return {"kind": "bar-b-ceilings", "data": data, "checkpoints": checkpoints, "draws": draws,
            "wind_seeds": [ORACLE_WIND_SEED + d for d in range(draws)], "freq_jitter": HIDDEN_FREQ_JITTER,
            "vs_no_motion": ratios, "scenes": scenes}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", required=True, help="folders of synthetic sample_*.npz (with seeds)")
    ap.add_argument("--checkpoint", nargs="*", default=[],
                    help="motion model folders (or a run's vae/ alone) whose VAE to take them through")
    ap.add_argument("--draws", type=int, default=6, help="re-simulations per scene")
    ap.add_argument("--max-scenes", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args(argv)
    if args.draws < 1:
        ap.error("--draws must be >= 1")
    try:
        result = run(args.data, args.checkpoint, args.draws, args.max_scenes, args.device)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"bar (b), error / no motion's over {len(result['scenes'])} scenes (bar <= 0.6):")
    for k, v in result["vs_no_motion"].items():
        print(f"  {k:32s} {v:.3f}")
    if args.json:
        write_json_atomic(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
