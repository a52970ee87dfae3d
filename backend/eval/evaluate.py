"""`gid eval`: the model and the baselines on held-out scenes, per scene and aggregated (issue 9).

Methods: "ours" (the motion model, N samples; absent with a clear reason when no model loads), "ours_unplaced"
(the same samples before the placement stage, when the model has one: motion/placement.py), "no_motion",
"train_mean" (training-set mean amplitude, `baselines.mean_amplitude_spectral`), "smooth_noise" (matched
amplitude, `baselines.smooth_noise`). "truth" carries only the figures that describe motion by itself (motion
amount, loop seams). Rendering with TRUE motion (ibr and splat, plus the still image as a floor) is scored by
PSNR/SSIM against the scene's real frames when the scene has them.

Everything is seeded; the JSON records versions, seeds and the command, so figures can be regenerated.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from backend.data.samples import list_samples
from shared.spectral import displacement_for_frames, resample_spectral

from . import baselines, metrics

METHODS = ("ours", "ours_unplaced", "no_motion", "train_mean", "semantic_prior", "texture_prior", "smooth_noise",
           "resimulated", "resimulated_amount", "resimulated_hidden", "model_grid", "model_vae", "model_vae_hidden", "model_refine")
# Synthetic scenes only (they carry their generation seed): the same scene re-simulated under an independent
# wind, i.e. what a PERFECT sampler would output. "resimulated_amount" is also told the true overall amount
# (its k >= 1 amplitudes rescaled to the truth's sum). They are the ceiling of the phase-invariant figures.
# "resimulated_hidden" also redraws the natural frequencies the picture does not show (`synth.prepare`,
# freq_jitter): the ceiling of a perfect sampler that knows only the image.
# With a model: the truth itself taken onto the model's working grid ("model_grid") and also through its VAE
# ("model_vae"), and, when the model has an image-guided refiner, through VAE and refiner ("model_refine"), then
# back: the best any sample of this model can score (a sampler that found the truth's latents exactly).
# "model_vae_hidden" takes "resimulated_hidden" through the same grid and VAE: what a perfect image-only denoiser
# paired with this model's VAE would score, i.e. the ceiling of a better-trained U-Net on today's VAE.
# "texture_prior" (issue 20): the semantic prior's amount and spectrum, placed by the picture's blurred gradient
# magnitude (`baselines.texture_prior`): where-it-moves from texture alone.
# "semantic_prior" (issue 20): motion amount per pixel from ESPNet's class maps alone, fitted on the training
# data, with the training set's mean spectrum (`backend.priors.semantic_amount`): what a model must beat to
# show it sees more in a picture than which classes it contains.
ORACLE_WIND_SEED = 7
HIDDEN_FREQ_JITTER = 0.4
LOOP_FRAMES = 60              # scene frames of the loop checked for seams (2 s at 30 fps)
RENDER_FRAMES = 6             # frames per scene scored for rendering (evenly spaced over the clip)
NAN_AWARE = {"still_ratio"}   # figures that a scene may lack (NaN); the aggregate averages the others


@dataclass
class Scene:
    """One held-out sample: image uint8 (H, W, 3), spectral (K, 4, H, W), valid (H, W), frames (T, H, W, 3) or None."""

    name: str
    image: np.ndarray
    spectral: np.ndarray
    valid: np.ndarray
    fps: float
    T: int
    frames: np.ndarray | None
    seed: int | None = None        # generation seed of a synthetic scene (None: real clip or older file)
    kind: str | None = None        # the kind a synthetic scene was asked for by name (None: the seed's own draw)


def load_scene(path: Path) -> Scene:
    with np.load(path, allow_pickle=False) as z:
        keys = set(z.files)
        missing = {"image", "spectral", "fps", "T"} - keys
        if missing:
            raise ValueError(f"{path}: not a sample file, missing {sorted(missing)}")
        image = z["image"]
        spectral = z["spectral"].astype(np.float32)
        valid = z["valid"].astype(bool) if "valid" in keys else np.ones(image.shape[:2], bool)
        frames = z["frames"] if "frames" in keys else None
        seed = int(z["seed"]) if "seed" in keys else None
        kind = str(z["kind"]) if "kind" in keys else None
        return Scene(path.stem, image, spectral, valid, float(z["fps"]), int(z["T"]), frames, seed, kind)


def pick_scenes(files: Sequence[Path], max_scenes: int | None, spread: bool = False) -> list[Path]:
    """The first `max_scenes` files, or with `spread` that many evenly spaced over the list (real-clip sets hold
    several windows per clip in a row: spread picks across clips); all of them when max_scenes is None."""
    files = list(files)
    if max_scenes is None:
        return files
    if not spread or max_scenes >= len(files):
        return files[:max_scenes]
    return [files[i] for i in np.unique(np.linspace(0, len(files) - 1, max_scenes).round().astype(int))]


def write_json_atomic(path: str | Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, allow_nan=True)
    os.replace(tmp, path)


def versions() -> dict:
    import cv2
    out = {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
           "platform": platform.platform()}
    try:
        import torch
        out["torch"] = torch.__version__
    except ImportError:
        pass
    try:
        from backend import __version__
        out["gid"] = __version__
    except ImportError:
        pass
    return out


# --------------------------------------------------------------------------------------------------------
# components that may or may not have landed: load them, or say why not


def load_predictor(checkpoint: str | None, device: str) -> tuple[object | None, dict]:
    """(MotionPredictor or None, {"status": "ok", "info"} | {"status": "missing", "why"})."""
    try:
        from backend.motion.predictor import MotionPredictor
    except ImportError as exc:
        return None, {"status": "missing", "why": f"no motion model: backend.motion.predictor not importable ({exc})"}
    try:
        model = MotionPredictor.load(checkpoint_dir=checkpoint, device=device)
    except Exception as exc:        # noqa: BLE001 - any load failure is reported, never faked
        where = checkpoint or "default weights"
        return None, {"status": "missing", "why": f"no motion model: loading {where} failed: {exc}"}
    try:
        info = model.info()
    except Exception as exc:        # noqa: BLE001
        info = {"info_error": str(exc)}
    return model, {"status": "ok", "checkpoint": checkpoint or "default", "info": info}


def load_renderer(device: str) -> tuple[object | None, dict]:
    try:
        from backend.render.api import Renderer
    except ImportError as exc:
        return None, {"status": "missing", "why": f"backend.render.api not importable ({exc})"}
    try:
        r = Renderer.load(device=device)
    except Exception as exc:        # noqa: BLE001
        return None, {"status": "missing", "why": f"renderer failed to load: {exc}"}
    return r, {"status": "ok"}


def ensure_synth_test(folder: Path, count: int = 32, seed: int = 900000) -> None:
    """Generate the held-out synthetic scenes with the data library's own command when the folder is empty."""
    if folder.is_dir() and any(folder.glob("sample_*.npz")):
        return
    from backend import cli
    if "backend.data.cli" not in cli.SUBCOMMANDS:
        raise RuntimeError(f"{folder} has no scenes and `gid data synth` is not available to make them")
    rc = cli.main(["data", "synth", "--out", str(folder), "--count", str(count), "--seed", str(seed)])
    if rc:
        raise RuntimeError(f"`gid data synth --out {folder} --count {count} --seed {seed}` failed (exit {rc})")


# --------------------------------------------------------------------------------------------------------
# one scene


def seam_figures(spectral: np.ndarray, scene: Scene) -> dict:
    """Seam pops of a LOOP_FRAMES-frame loop: the exact loop (make_loop) and the naive cut of the clip.

    ratio = mean ||D_n - D_0|| / mean frame step (metrics.loop_seam): 0 for a seamless loop.
    """
    frames = np.arange(LOOP_FRAMES + 2)
    looped = displacement_for_frames(spectral, scene.T, scene.fps, frames, loop_frames=LOOP_FRAMES)
    cut = displacement_for_frames(spectral, scene.T, scene.fps, frames)
    return {"loop_seam_ratio": metrics.loop_seam(looped, scene.valid)["ratio"],
            "cut_seam_ratio": metrics.loop_seam(cut, scene.valid)["ratio"]}


def render_figures(renderer, scene: Scene, ctx=None) -> dict:
    """PSNR/SSIM of rendering with the TRUE spectral volume vs the real frames; 'still' = I0 itself.

    sharpness: mean over the frames of the Laplacian energy of the rendered frame / the true frame's in the 20%
    most-moving pixels (1 = as crisp as the truth; resampling blur lowers it); stability: max/min of that
    ratio over the frames (1 = no pulse of sharpness as the sub-pixel phase changes)."""
    if scene.frames is None:
        return {"status": "missing", "why": "scene has no frames (lite sample)"}
    times = np.linspace(1, scene.T - 1, RENDER_FRAMES).round().astype(int)
    truth = scene.frames[times]
    H, W = scene.image.shape[:2]
    motion = metrics.energy_map(scene.spectral, scene.T)
    if motion.shape != (H, W):
        motion = cv2.resize(motion, (W, H), interpolation=cv2.INTER_LINEAR)
    mask = metrics.moving_mask(motion)
    true_energy = np.array([metrics.laplacian_energy(f, mask) for f in truth])

    def scores(frames) -> dict:
        ratio = np.array([metrics.laplacian_energy(g, mask) for g in frames]) / np.maximum(true_energy, 1e-12)
        return {"psnr": float(np.mean([metrics.psnr(g, f) for g, f in zip(frames, truth)])),
                "ssim": float(np.mean([metrics.ssim(g, f) for g, f in zip(frames, truth)])),
                "sharpness": float(ratio.mean()), "stability": float(ratio.max() / max(ratio.min(), 1e-12))}

    out: dict = {"times": times.tolist(), "still": scores([scene.image] * len(times))}
    if renderer is None:
        return out
    for mode in ("splat", "ibr"):
        try:
            got = renderer.render(scene.image, scene.spectral, scene.fps, scene.T, times.astype(np.float64),
                                  mode=mode, ctx=ctx)
        except Exception as exc:    # noqa: BLE001 - e.g. ibr without weights: say so
            out[mode] = {"status": "missing", "why": f"{type(exc).__name__}: {exc}"}
            continue
        out[mode] = scores(got)
    return out


def resimulation_config(scene: Scene):
    """The generator settings that re-simulate a synthetic scene on its own grid, clip length and K."""
    from backend.data.synth import SynthConfig
    H, W = scene.image.shape[:2]
    return SynthConfig(size=(W, H), frames=scene.T, fps=scene.fps, K=scene.spectral.shape[0], lite=True)


def resimulated_candidates(scene: Scene) -> dict[str, np.ndarray]:
    """The perfect-sampler references of a synthetic scene ({} when the scene has no generation seed)."""
    if scene.seed is None:
        return {}
    from backend.data.synth import resimulate
    cfg = resimulation_config(scene)
    resim = resimulate(scene.seed, cfg, wind_seed=ORACLE_WIND_SEED, kind=scene.kind)
    amp_true = metrics.amplitudes_px(scene.spectral, scene.T).sum()
    amp_resim = metrics.amplitudes_px(resim, scene.T).sum()
    scaled = resim.copy()
    if amp_resim > 0:
        scaled[1:] *= amp_true / amp_resim           # DC left as is: it cancels in F_t - F_0
    hidden = resimulate(scene.seed, cfg, wind_seed=ORACLE_WIND_SEED, freq_jitter=HIDDEN_FREQ_JITTER,
                        kind=scene.kind)
    return {"resimulated": resim, "resimulated_amount": scaled, "resimulated_hidden": hidden}


def _sample_figures(samples: np.ndarray, scene: Scene, truth_tex: np.ndarray, predict_s: float) -> dict:
    """Figures of a model's samples (N, K, 4, H, W): the mean over samples, best and mean endpoint error."""
    per = [metrics.motion_figures(s, scene.spectral, scene.T, scene.valid, truth_tex) for s in samples]
    agg = {key: float(np.mean([p[key] for p in per])) for key in per[0]}
    epes = [p["epe_px"] for p in per]
    agg.pop("epe_px")
    agg.update({"epe_best_px": float(min(epes)), "epe_mean_px": float(np.mean(epes)), "samples": len(per),
                "predict_s": predict_s})
    agg.update(seam_figures(samples[0], scene))
    return agg


def evaluate_scene(scene: Scene, predictor, mean_spectral: np.ndarray | None, samples: int, steps: int | None,
                   seed: int, renderer=None, keep_arrays: bool = False, ctx=None,
                   mean_T: int = 150, guidance: float | None = None,
                   sampler: str | None = None, refine: bool = True, semantic=None) -> tuple[dict, dict]:
    """Figures of every method on one scene -> (json dict, arrays for the report or {})."""
    H, W = scene.image.shape[:2]
    K = scene.spectral.shape[0]
    truth_tex = metrics.motion_texture(scene.spectral, scene.T)
    candidates: dict[str, np.ndarray | None] = {"no_motion": baselines.no_motion(K, (W, H))}
    # The mean was taken over clips of mean_T frames: S grows with T, rescale so the pixel amplitudes match.
    candidates["train_mean"] = (None if mean_spectral is None else
                                resample_spectral(mean_spectral, (W, H))[:K] * (scene.T / mean_T))
    if semantic is not None:
        candidates["semantic_prior"] = semantic.spectral(scene.image, scene.T, K)
        candidates["texture_prior"] = baselines.texture_prior(scene.image, scene.T, K, semantic)
    candidates["smooth_noise"] = baselines.smooth_noise(scene.spectral, scene.T, seed=seed)
    candidates.update(resimulated_candidates(scene))
    result: dict = {"name": scene.name, "size": [W, H], "T": scene.T, "fps": scene.fps, "methods": {}}
    ours = None
    if predictor is not None:
        for name, vae in (("model_grid", False), ("model_vae", True)):
            candidates[name] = resample_spectral(predictor.autoencode(scene.spectral, vae=vae), (W, H))[:K]
        if candidates.get("resimulated_hidden") is not None:
            candidates["model_vae_hidden"] = resample_spectral(
                predictor.autoencode(candidates["resimulated_hidden"]), (W, H))[:K]
        if refine and getattr(predictor.pipeline, "refiner", None) is not None:
            candidates["model_refine"] = resample_spectral(
                predictor.autoencode(scene.spectral, vae=True, image=scene.image), (W, H))[:K]
        pred = predictor.predict(scene.image, seed=seed, samples=samples, steps=steps, ctx=ctx,
                                 guidance=guidance, sampler=sampler, refine=refine, place=False)
        t0 = time.perf_counter()
        placed = predictor.place(scene.image, pred.spectral)
        predict_s = float(pred.timings.get("predict_s", float("nan"))) + time.perf_counter() - t0
        ours = resample_spectral(np.asarray(placed, np.float32), (W, H))[:, :K]
        result["methods"]["ours"] = _sample_figures(ours, scene, truth_tex, predict_s)
        if getattr(predictor, "placement", None) is not None:
            # The same samples without the placement stage: what it adds, side by side.
            unplaced = resample_spectral(np.asarray(pred.spectral, np.float32), (W, H))[:, :K]
            result["methods"]["ours_unplaced"] = _sample_figures(unplaced, scene, truth_tex, predict_s)
    for name, spec in candidates.items():
        if spec is None:
            continue
        f = metrics.motion_figures(spec, scene.spectral, scene.T, scene.valid, truth_tex)
        f["epe_best_px"] = f["epe_mean_px"] = f.pop("epe_px")
        f["samples"] = 1
        f.update(seam_figures(spec, scene))
        result["methods"][name] = f
    energy = np.sqrt((truth_tex.astype(np.float64) ** 2).sum(axis=1)).mean(axis=0)
    truth = {"motion_amount_px": float(energy[scene.valid].mean()),
             "still_fraction": float((energy[scene.valid] < metrics.STILL_PX).mean()),
             "peak_term": int(np.argmax(metrics.power_spectrum(scene.spectral, scene.T, scene.valid))) + 1}
    truth.update(seam_figures(scene.spectral, scene))
    result["methods"]["truth"] = truth
    result["rendering"] = render_figures(renderer, scene, ctx)
    arrays: dict = {}
    if keep_arrays:
        arrays = {"scene": scene, "spectral": {"truth": scene.spectral, **{k: v for k, v in candidates.items()
                                                                        if v is not None}}}
        if ours is not None:
            arrays["spectral"]["ours"] = ours[0]
    return result, arrays


def aggregate(scenes: list[dict]) -> dict:
    """Mean over scenes of every numeric figure, per method, and of the rendering scores."""
    out: dict = {}
    names = sorted({m for s in scenes for m in s["methods"]}, key=lambda m: (list(METHODS) + ["truth"]).index(m)
                   if m in METHODS or m == "truth" else 99)
    for m in names:
        rows = [s["methods"][m] for s in scenes if m in s["methods"]]
        keys = [k for k in rows[0] if isinstance(rows[0][k], (int, float))]
        # still_ratio is NaN where a scene has no still (or no moving) pixels: averaged over the scenes that have one
        out[m] = {k: float(np.nanmean([r[k] for r in rows]) if k in NAN_AWARE and
                           not np.isnan([r[k] for r in rows]).all() else np.mean([r[k] for r in rows]))
                  for k in keys if k != "samples"}
        out[m]["scenes"] = len(rows)
    render: dict = {}
    for mode in ("still", "splat", "ibr"):
        vals = [s["rendering"][mode] for s in scenes if isinstance(s.get("rendering", {}).get(mode), dict)
                and "psnr" in s["rendering"][mode]]
        if vals:
            render[mode] = {k: float(np.mean([v[k] for v in vals])) for k in ("psnr", "ssim", "sharpness",
                                                                                 "stability")
                            if all(k in v for v in vals)}
            render[mode]["scenes"] = len(vals)
        else:
            whys = {s["rendering"][mode]["why"] for s in scenes
                    if isinstance(s.get("rendering", {}).get(mode), dict) and "why" in s["rendering"][mode]}
            whys |= {s["rendering"]["why"] for s in scenes if "why" in s.get("rendering", {})}
            render[mode] = {"status": "missing", "why": "; ".join(sorted(whys)) or "renderer not available"}
    out["rendering"] = render
    return out


# --------------------------------------------------------------------------------------------------------
# the whole run


def run_eval(data: Sequence[str | Path], samples: int = 4, steps: int | None = None, checkpoint: str | None = None,
             train_data: Sequence[str | Path] = (), seed: int = 0, device: str = "auto",
             max_scenes: int | None = None, report_scenes: int = 3, use_model: bool = True,
             use_renderer: bool = True, progress: Callable[[str], None] | None = None,
             command: list[str] | None = None, guidance: float | None = None,
             sampler: str | None = None, refine: bool = True, spread: bool = False,
             use_semantic: bool = True, semantic_fit: str | Path | None = None) -> tuple[dict, list[dict]]:
    """Evaluate every test set (folder) -> (results JSON, per-set arrays of the first `report_scenes` scenes).

    max_scenes: the first N scenes of each set, or with `spread` N scenes evenly spaced over it (real-clip sets
    hold several windows per clip in a row: spread picks across clips). A set is marked "real" when none of its
    scenes carries a generation seed (real clips), and gets the real-photo bars in the report.
    """
    if samples < 1:
        raise ValueError(f"--samples must be >= 1, got {samples}")
    say = progress or (lambda msg: None)
    predictor, model_status = (load_predictor(checkpoint, device) if use_model
                               else (None, {"status": "missing", "why": "no motion model: disabled (--no-model)"}))
    renderer, render_status = (load_renderer(device) if use_renderer
                               else (None, {"status": "missing", "why": "disabled (--no-render)"}))
    say(f"model: {model_status.get('status')} {model_status.get('why', '')}".strip())
    say(f"renderer: {render_status.get('status')} {render_status.get('why', '')}".strip())
    mean_spec, mean_T, mean_status = None, 150, {"status": "missing", "why": "no training data folder given or found"}
    train_folders = [Path(p) for p in train_data if Path(p).is_dir()]
    if train_folders:
        try:
            mean_spec, info = baselines.mean_amplitude_spectral(train_folders, (256, 160))
            mean_T = int(info["T"])
            mean_status = {"status": "ok", "folders": [str(p) for p in train_folders], **info}
        except (FileNotFoundError, ValueError) as exc:
            mean_status = {"status": "missing", "why": str(exc)}
    say(f"train_mean baseline: {mean_status.get('status')} {mean_status.get('why', '')}".strip())
    semantic, semantic_status = None, {"status": "missing", "why": "disabled"}
    if use_semantic:
        try:
            from backend.priors.semantic_amount import FIT_FILE, SemanticAmountPrior
            semantic = SemanticAmountPrior.load(semantic_fit, device="cpu")
            semantic_status = {"status": "ok", "fit": str(semantic_fit or FIT_FILE), "weights": semantic.fit["weights"],
                               "sources": {
                k: v["samples"] for k, v in semantic.fit["sources"].items()}}
        except (ImportError, FileNotFoundError, ValueError, KeyError) as exc:
            semantic_status = {"status": "missing", "why": f"{type(exc).__name__}: {exc}"}
    say(f"semantic_prior baseline: {semantic_status.get('status')} {semantic_status.get('why', '')}".strip())
    results: dict = {
        "kind": "gid-eval", "version": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command or [], "versions": versions(), "seed": seed, "samples": samples, "steps": steps,
        "guidance": guidance, "sampler": sampler, "refine": refine, "device": device, "model": model_status,
        "renderer": render_status, "train_mean": mean_status, "semantic_prior": semantic_status, "spread": spread,
        "loop_frames": LOOP_FRAMES, "sets": {},
    }
    arrays_per_set: list[dict] = []
    for folder in data:
        folder = Path(folder)
        files = pick_scenes(list_samples([folder]), max_scenes, spread)
        if not files:
            raise FileNotFoundError(f"no sample_*.npz in {folder}")
        set_name = folder.name if folder.name not in ("val", "test") else f"{folder.parent.name}_{folder.name}"
        scenes, kept = [], []
        real = True
        for i, path in enumerate(files):
            say(f"{set_name}: scene {i + 1}/{len(files)} {path.name}")
            scene = load_scene(path)
            real = real and scene.seed is None
            res, arr = evaluate_scene(scene, predictor, mean_spec, samples, steps, seed + i, renderer,
                                      keep_arrays=i < report_scenes, mean_T=mean_T, guidance=guidance,
                                      sampler=sampler, refine=refine, semantic=semantic)
            scenes.append(res)
            if arr:
                kept.append(arr)
        results["sets"][set_name] = {"folder": str(folder), "real": real, "scenes": scenes,
                                     "aggregate": aggregate(scenes)}
        arrays_per_set.append({"set": set_name, "scenes": kept})
    return results, arrays_per_set
