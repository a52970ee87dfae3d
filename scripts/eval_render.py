"""Rendering quality with ground-truth motion, and throughput.

Quality: on the held-out synthetic scenes (`runs/data/synth_test/`, full samples), frame t of the clip is
rendered from frame 0 and the TRUE motion F_t (metric W = mean_t ||F_t||) by
  - backward: plain backward warping, I0 sampled at p - F_t(p) (cv2.remap, bilinear, border replicate);
  - splat_before / ibr_before: the forward-splat paths before issue 25 (splat preview = pixel-space softmax
    splat + push-pull fill; the IBR network, shipped default weights or --weights DIR);
  - splat / ibr: what `Renderer.render` does now (render.sharp: I0 backward-warped with bicubic + gain
    correction along the inverted flow; the preview / network only fill disocclusions), given the true
    fields of the five frames (its metric: their mean norm);
and compared with the true frame t for t in 15, 45, 75, 105, 135: mean PSNR (dB) and SSIM, and sharpness =
Laplacian energy of the rendered frame / the true frame's in the 20% most-moving pixels (mean over frames).

Throughput (--throughput): frames/s of `Renderer.render` at 512x288 on this machine (everything included:
displacement from the spectral volume, resize, splat / network), for each mode, and the peak RSS. Both
wall-clock frames/s and CPU-time frames/s (frames per second of this process's own CPU time: what the
work costs on a core it has to itself; on a shared, oversubscribed machine the wall figure mostly
measures the other jobs).

    python scripts/eval_render.py [--data runs/data/synth_test] [--weights DIR] [--throughput] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.render.metrics import psnr, ssim  # noqa: E402
from backend.render.preview import splat_metric, splat_preview  # noqa: E402

TIMES = (15, 45, 75, 105, 135)


def backward_warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """I0 (H, W, 3) uint8 sampled at p - F_t(p); flow (2, H, W)."""
    H, W = img.shape[:2]
    gx, gy = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    return cv2.remap(img, gx - flow[0], gy - flow[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255.0


def quantise(x: torch.Tensor) -> torch.Tensor:
    """What the user gets: uint8 frames."""
    return (x.clamp(0, 1) * 255).round() / 255


def evaluate_quality(data: Path, weights: str | None, limit: int, threads: int = 0) -> dict:
    from backend.data.samples import list_samples, load_sample
    from backend.render.api import Renderer
    from backend.render.ibr import render_full_size
    renderer = Renderer.load(weights, device="cpu")
    if torch.get_num_threads() != threads and threads:
        torch.set_num_threads(threads)
    from backend.eval.metrics import laplacian_energy, moving_mask
    methods = ["backward", "splat_before", "splat"] + (["ibr_before", "ibr"] if renderer.model is not None else [])
    if renderer.model is None:
        print(f"note: no IBR weights ({renderer.load_error}); evaluating backward and splat only")
    scores = {m: {"psnr": [], "ssim": [], "sharpness": []} for m in methods}
    per_t = {m: {t: [] for t in TIMES} for m in methods}
    paths = list_samples([data])[:limit] if limit else list_samples([data])
    for path in paths:
        s = load_sample(path, keys=("frames", "motion"))
        if "frames" not in s:
            continue
        frames = np.asarray(s["frames"])
        motion = np.asarray(s["motion"], np.float32)
        rel = motion - motion[0]
        W_mean = torch.from_numpy(np.sqrt((rel ** 2).sum(axis=1)).mean(axis=0))[None, None]
        H, W = frames.shape[1:3]
        z = splat_metric(W_mean, (W, H))
        img0 = to_tensor(frames[0])
        times = [t for t in TIMES if t < len(frames)]
        mask = moving_mask(W_mean[0, 0].numpy())
        now = {m: renderer.render(frames[0], None, 30.0, 150, np.asarray(times, np.float64), mode=m,
                                  displacement=rel[times]) for m in ("splat", "ibr") if m in methods}
        for j, t in enumerate(times):
            target = to_tensor(frames[t])
            flow = torch.from_numpy(rel[t])[None]
            with torch.no_grad():
                out = {"backward": to_tensor(backward_warp(frames[0], rel[t])),
                       "splat_before": quantise(splat_preview(img0, flow, z))}
                if "ibr" in methods:
                    out["ibr_before"] = quantise(render_full_size(renderer.model, img0, flow, z))
            out.update({m: to_tensor(v[j]) for m, v in now.items()})
            true_energy = laplacian_energy(frames[t], mask)
            for m in methods:
                p = float(psnr(out[m], target)[0])
                scores[m]["psnr"].append(p)
                scores[m]["ssim"].append(float(ssim(out[m], target)[0]))
                got = (out[m][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                scores[m]["sharpness"].append(laplacian_energy(got, mask) / max(true_energy, 1e-12))
                per_t[m][t].append(p)
    n_scenes = len(paths)
    result = {"scenes": n_scenes, "times": list(TIMES)}
    for m in methods:
        result[m] = {"psnr": float(np.mean(scores[m]["psnr"])), "ssim": float(np.mean(scores[m]["ssim"])),
                     "sharpness": float(np.mean(scores[m]["sharpness"])),
                     "psnr_by_t": {str(t): float(np.mean(v)) for t, v in per_t[m].items() if v}}
    return result


def evaluate_throughput(weights: str | None, n: int, threads: int) -> dict:
    from backend.render.api import Renderer, throughput
    from shared.spectral import motion_to_spectral
    renderer = Renderer.load(weights, device="cpu")     # (picks all cores; --threads overrides after)
    if threads:
        torch.set_num_threads(threads)
    T, h, w = 150, 160, 256
    yy, xx = np.mgrid[0:h, 0:w]
    blob = np.exp(-(((xx - 128) / 50.0) ** 2 + ((yy - 80) / 35.0) ** 2))
    t = np.arange(T)[:, None, None]
    motion = np.stack([3 * blob * np.sin(2 * np.pi * 3 * t / T), 1.5 * blob * np.sin(2 * np.pi * 5 * t / T)], 1)
    spectral = motion_to_spectral(motion.astype(np.float32))
    image = cv2.resize((np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8), (512, 288))
    out = {"size": "512x288", "threads": torch.get_num_threads()}
    for mode in ["splat"] + (["ibr"] if renderer.model is not None else []):
        out[f"{mode}_fps"], out[f"{mode}_cpu_fps"] = throughput(renderer, image, spectral, 30.0, T, mode, n=n)
    out["load_average"] = list(__import__("os").getloadavg())
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="runs/data/synth_test")
    ap.add_argument("--weights", default=None, help="IBR weights folder (default: the shipped ones)")
    ap.add_argument("--limit", type=int, default=0, help="first N scenes only (0 = all)")
    ap.add_argument("--quality", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--throughput", action="store_true")
    ap.add_argument("--frames", type=int, default=60, help="frames timed for throughput")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict = {}
    t0 = time.time()
    if args.quality:
        q = evaluate_quality(Path(args.data), args.weights, args.limit, args.threads)
        report["quality"] = q
        print(f"rendering with true motion, {q['scenes']} scenes, t in {q['times']}")
        print(f"{'method':12} {'PSNR dB':>8} {'SSIM':>7} {'sharp':>6}   PSNR by t")
        for m in ("backward", "splat_before", "splat", "ibr_before", "ibr"):
            if m in q:
                by_t = " ".join(f"{v:6.2f}" for v in q[m]["psnr_by_t"].values())
                print(f"{m:12} {q[m]['psnr']:8.3f} {q[m]['ssim']:7.4f} {q[m]['sharpness']:6.3f}   {by_t}")
    if args.throughput:
        tp = evaluate_throughput(args.weights, args.frames, args.threads)
        report["throughput"] = tp
        print(f"throughput at {tp['size']} on CPU ({tp['threads']} threads): " +
              ", ".join(f"{k} {v:.1f}" for k, v in tp.items() if k.endswith("fps")) +
              f"; peak RSS {tp['peak_rss_mb']:.0f} MB")
    report["wall_s"] = time.time() - t0
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
