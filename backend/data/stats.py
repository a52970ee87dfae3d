"""Data-set statistics: frequency-adaptive normalisation scales (SPEC section 2) and the mean power spectrum.

stats.json = NormStats.to_dict() ({"scales": [K], "percentile"}; load with NormStats.from_dict) plus
"count", "folders", "freq_hz" (K), "power_x", "power_y" (K: mean over samples and pixels of |S_k|^2 for the x and
y motion), "mean_moving_px" (mean over samples of the RMS displacement of pixels that move > 0.05 px).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from shared.spectral import compute_norm_stats, to_complex

from .contact import energy_map
from .samples import list_samples, load_sample


def run_stats(folders, out, plot=None, max_samples: int = 2000, seed: int = 0, log=print) -> dict:
    paths = list_samples(folders)
    if not paths:
        raise ValueError(f"no sample_*.npz files in {folders}")
    if len(paths) > max_samples:
        rng = np.random.default_rng(seed)
        paths = [paths[i] for i in sorted(rng.choice(len(paths), max_samples, replace=False))]
    power = None
    freq = None
    moving = []

    def volumes():
        nonlocal power, freq
        for i, p in enumerate(paths):
            s = load_sample(p, keys=("spectral", "fps", "T"))
            spec = np.asarray(s["spectral"], dtype=np.float32)
            c = to_complex(spec)                                           # (K, 2, H, W)
            pw = (np.abs(c) ** 2).mean(axis=(2, 3))                        # (K, 2)
            power = pw if power is None else power + pw
            if freq is None:
                freq = np.arange(spec.shape[0]) * float(s["fps"]) / float(s["T"])
            e = energy_map(spec, int(s["T"]))
            if (e > 0.05).any():
                moving.append(float(e[e > 0.05].mean()))
            if (i + 1) % 200 == 0:
                log(f"stats: {i + 1}/{len(paths)}")
            yield spec

    norm = compute_norm_stats(volumes())
    power = power / len(paths)
    result = {**norm.to_dict(), "count": len(paths), "folders": [str(f) for f in folders],
              "freq_hz": [float(f) for f in freq], "power_x": [float(v) for v in power[:, 0]],
              "power_y": [float(v) for v in power[:, 1]],
              "mean_moving_px": float(np.mean(moving)) if moving else 0.0}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out)
    log(f"stats: {len(paths)} samples -> {out}; scales " + " ".join(f"{v:.3g}" for v in norm.scales))
    if plot:
        write_power_plot(plot, np.asarray(result["freq_hz"]), power[:, 0], power[:, 1])
        log(f"stats: power spectrum plot -> {plot}")
    return result


def write_power_plot(path, freq_hz: np.ndarray, power_x: np.ndarray, power_y: np.ndarray,
                     size: tuple[int, int] = (640, 400)) -> None:
    """Mean power per frequency (log10), x in red and y in blue, as in the paper's Fig. 2 (left); DC omitted."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 70, 20, 30, 50
    f = np.asarray(freq_hz)[1:]
    curves = [(np.log10(np.maximum(np.asarray(p)[1:], 1e-12)), c, n) for p, c, n in
              ((power_x, (200, 60, 30), "x"), (power_y, (30, 60, 200), "y"))]
    lo = min(c[0].min() for c in curves)
    hi = max(c[0].max() for c in curves)
    lo, hi = np.floor(lo), np.ceil(hi) if np.ceil(hi) > np.floor(lo) else np.floor(lo) + 1

    def xy(fx, v):
        px = left + (fx - f.min()) / max(f.max() - f.min(), 1e-9) * (w - left - right)
        py = top + (hi - v) / (hi - lo) * (h - top - bottom)
        return int(round(px)), int(round(py))

    cv2.rectangle(img, (left, top), (w - right, h - bottom), (0, 0, 0), 1)
    for dec in range(int(lo), int(hi) + 1):
        _, py = xy(f.min(), dec)
        cv2.line(img, (left - 4, py), (left, py), (0, 0, 0), 1)
        cv2.putText(img, f"1e{dec}", (8, py + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for fx in f:
        px, _ = xy(fx, lo)
        cv2.line(img, (px, h - bottom), (px, h - bottom + 4), (0, 0, 0), 1)
    for fx in f[::2]:
        px, _ = xy(fx, lo)
        cv2.putText(img, f"{fx:.1f}", (px - 10, h - bottom + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "frequency (Hz)", (w // 2 - 50, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "mean power |S_k|^2 (log10)", (left, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (logp, color, name) in enumerate(curves):
        pts = np.array([xy(fx, v) for fx, v in zip(f, logp)], np.int32)
        cv2.polylines(img, [pts], False, color, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, tuple(int(v) for v in p), 3, color, -1, cv2.LINE_AA)
        cv2.putText(img, name, (w - right - 40, top + 20 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix or '.png'}")
    cv2.imwrite(str(tmp), img[..., ::-1])
    os.replace(tmp, path)
