"""Sharpness of moving detail (issue 25), the resampling options side by side on the shipped sample.

The shipped sample (backend/assets/sample.jpg) animated with a given spectral volume (default: the shipped
model's motion for seed 0, predicted once and saved with `gid animate --save-spectral`), 48 frames at 24 fps
(frame 0 = I0). In the 20% of pixels that move most (mean ||F_t|| over the frames): each frame's Laplacian
energy / frame 0's (min over frames; bar >= 0.85) and max/min over the frames (bar <= 1.1), for
  - before:  the forward softmax splat at full resolution (the path before issue 25: splat preview, and the
             IBR network blended with the full-resolution splat, render.ibr.render_full_size);
  - linear / cubic / lanczos: the sharp path (render.sharp) with that cv2.remap kernel, 2x2 min/max clamp;
  - cubic+gain / lanczos+gain: the same with the per-offset Laplacian gain correction (cubic+gain ships).

With --blender: what the live display's texture sampling in Blender keeps of the still's detail when the
plane is shifted by (f, f) pixels, for Blender's Linear and Cubic image interpolation (Cubic emulated from
Blender's own coefficients: a uniform cubic B-spline in EEVEE/GPU and in Cycles).

    python scripts/eval_sharpness.py --spectral runs/sample_spectral.npz [--modes ibr splat] [--json out.json]
    python scripts/eval_sharpness.py --blender
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.eval.metrics import moving_mask, sharpness_figures  # noqa: E402

FRAMES = 48
FPS = 24.0


def before_frames(renderer, image, spectral, fps, T, mode) -> np.ndarray:
    """The pre-issue-25 path: full-resolution forward splat (+ network fill for IBR), frame 0 = I0."""
    from shared.spectral import displacement_for_frames, resize_planes
    from backend.render.api import METRIC_SAMPLES, resize_field_fast
    from backend.render.ibr import render_full_size
    from backend.render.preview import splat_metric, splat_preview
    H, W = image.shape[:2]
    period = displacement_for_frames(spectral, T, fps, np.linspace(0.0, T, METRIC_SAMPLES, endpoint=False),
                                     None, 1.0, 1.0, 0)
    z = splat_metric(torch.from_numpy(np.sqrt((period ** 2).sum(1)).mean(0)[None, None]))
    metric = torch.from_numpy(resize_planes(z.numpy(), (W, H)))
    disp = displacement_for_frames(spectral, T, fps, np.arange(FRAMES, dtype=np.float64), FPS, 1.0, 1.0, 0)
    img_t = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    out = [image]
    for i in range(1, FRAMES):
        flow = resize_field_fast(torch.from_numpy(disp[i:i + 1]), (W, H))
        with torch.no_grad():
            f = (splat_preview(img_t, flow, metric) if mode == "splat"
                 else render_full_size(renderer.model, img_t, flow, metric))
        out.append((f[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())
    return np.stack(out)


def _bspline_weights(f: float) -> list[float]:
    """Blender's cubic texture weights for taps -1, 0, 1, 2 at offset f (GPU cubic_bspline_coefficients)."""
    w3 = f ** 3 / 6.0
    w0 = -w3 + f * f * 0.5 - f * 0.5 + 1.0 / 6.0
    w1 = f ** 3 * 0.5 - f * f + 2.0 / 3.0
    return [w0, w1, 1.0 - w0 - w1 - w3, w3]


def blender_sampling(image: np.ndarray) -> dict:
    """Laplacian energy kept (vs the still) by Blender's Linear and Cubic sampling at offsets (f, f)."""
    from backend.eval.metrics import laplacian_energy
    img = image.astype(np.float32)
    inner = (slice(8, -8), slice(8, -8))
    e0 = laplacian_energy(img[inner])

    def sample(a: np.ndarray, taps: list[tuple[int, float]]) -> np.ndarray:
        for axis in (1, 0):
            a = sum(w * np.roll(a, -k, axis=axis) for k, w in taps)
        return a

    out = {}
    for f in (0.0, 0.25, 0.5):
        lin = sample(img, [(0, 1.0 - f), (1, f)])
        cub = sample(img, list(zip((-1, 0, 1, 2), _bspline_weights(f))))
        out[str(f)] = {"linear": laplacian_energy(lin[inner]) / e0, "cubic": laplacian_energy(cub[inner]) / e0}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default=str(Path(__file__).resolve().parents[1] / "backend/assets/sample.jpg"))
    ap.add_argument("--spectral", help=".npz from `gid animate --save-spectral` (first sample)")
    ap.add_argument("--blender", action="store_true", help="Blender's Linear vs Cubic texture sampling only")
    ap.add_argument("--modes", nargs="+", default=["ibr", "splat"], choices=["ibr", "splat"])
    ap.add_argument("--options", nargs="+",
                    default=["before", "linear", "cubic", "lanczos", "cubic+gain", "lanczos+gain"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.blender:
        from backend.animate import read_image
        print("Blender texture sampling of the still shifted by (f, f) px: Laplacian energy kept")
        for f, v in blender_sampling(read_image(args.image)).items():
            print(f"f = {f:4}  Linear {v['linear']:.3f}  Cubic (B-spline) {v['cubic']:.3f}")
        return 0
    if not args.spectral:
        ap.error("--spectral is required (unless --blender)")
    from shared.spectral import displacement_for_frames, resize_field
    from backend.animate import read_image, read_spectral
    from backend.render.api import Renderer
    image = read_image(args.image)
    spec, fps, T = read_spectral(args.spectral)
    spectral = spec[0]
    H, W = image.shape[:2]
    disp = displacement_for_frames(spectral, T, fps, np.arange(FRAMES, dtype=np.float64), FPS, 1.0, 1.0, 0)
    norm = np.sqrt((resize_field(disp, (W, H)) ** 2).sum(1)).mean(0)
    mask = moving_mask(norm)
    renderer = Renderer.load(device="cpu")
    report = {"image": args.image, "frames": FRAMES, "moving_px_mean": float(norm[mask].mean())}
    print(f"{Path(args.image).name} {W}x{H}, {FRAMES} frames; 20% most-moving pixels move {norm[mask].mean():.2f} px "
          "on average. Laplacian energy / frame 0's: min over frames (bar >= 0.85), max/min (bar <= 1.1)")
    for mode in args.modes:
        for opt in args.options:
            if opt == "before":
                frames = before_frames(renderer, image, spectral, fps, T, mode)
            else:
                kernel, _, gain = opt.partition("+")
                frames = renderer.render(image, spectral, fps, T, np.arange(FRAMES), scene_fps=FPS, mode=mode,
                                         kernel=kernel, gain=gain == "gain")
            f = sharpness_figures(frames, image, mask)
            report[f"{mode}_{opt}"] = f
            print(f"{mode:6} {opt:8} min {f['sharpness_min']:.3f}  mean {f['sharpness_mean']:.3f}  "
                  f"max/min {f['stability']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
