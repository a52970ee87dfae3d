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


def run_stats(folders, out, plot=None, max_samples: int = 2000, seed: int = 0, log=print,
              by_kind: bool = False) -> dict:
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
    if by_kind:
        result["by_kind"] = stats_by_kind(folders)
        log(by_kind_table(result["by_kind"]))
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


# --------------------------------------------------------------------------------------------------------
# spectra by kind of scene (issue 20: how real clips move, per kind, against the synthetic scenes)

# gid_loops clips by what they show (checked by eye on their first frames); other clips by keywords in the name.
# "cloth" also holds other hanging things that swing (a glove line, paper lanterns).
CLIP_KINDS = {"1077930398_loop_28.mp4": "trees", "leaves_loop.mp4": "trees", "tree_0_loop.mp4": "trees",
              "cherryblossm_loop.mp4": "trees", "fern_loop.mp4": "trees", "8531246_loop_29.mp4": "trees",
              "6133103-loop.mp4": "trees", "grapes_loop.mp4": "trees",
              "flower_0_loop.mp4": "flowers", "pink-rose_loop.mp4": "flowers", "yellow_loop.mp4": "flowers",
              "wildflower_loop.mp4": "grass",
              "candle_0.mp4": "candles", "candle_3_loop.mp4": "candles", "23866663_loop_28.mp4": "candles",
              "cloth_loop.mp4": "cloth", "glove_loop.mp4": "cloth", "latern_loop.mp4": "cloth",
              "latern_2_loop.mp4": "cloth", "cat_loop.mp4": "other"}
KIND_KEYWORDS = (("candle", "candles"), ("flame", "candles"), ("grass", "grass"), ("wheat", "grass"),
                 ("meadow", "grass"), ("field", "grass"), ("flower", "flowers"), ("rose", "flowers"),
                 ("tree", "trees"), ("leaves", "trees"), ("leaf", "trees"), ("branch", "trees"),
                 ("cloth", "cloth"), ("flag", "cloth"), ("curtain", "cloth"), ("lantern", "cloth"))
TAIL_FROM_K = 5            # "tail" = share of the power at terms k >= 5 (>= 1 Hz for 5 s clips)


def clip_kind(video: str) -> str:
    name = Path(video).name
    if name in CLIP_KINDS:
        return CLIP_KINDS[name]
    low = name.lower()
    return next((kind for word, kind in KIND_KEYWORDS if word in low), "other")


def sample_kinds(folder: Path, paths: list[Path]) -> list[str]:
    """Kind of each sample: real clips from the folder's windows.json (video name), synthetic ones from their seed."""
    index = folder / "windows.json"
    windows = json.loads(index.read_text()) if index.is_file() else {}
    kinds = []
    for p in paths:
        key = p.stem.split("_", 1)[1]
        if key in windows:
            kinds.append(clip_kind(windows[key]["video"]))
            continue
        with np.load(p, allow_pickle=False) as z:
            if "seed" not in z.files:
                raise ValueError(f"{p}: neither in {index} nor a synthetic sample with a seed: kind unknown")
            from .scenes import kind_of_seed
            kind = str(z["kind"]) if "kind" in z.files else kind_of_seed(int(z["seed"]))
            kinds.append("synthetic " + kind)
    return kinds


def spectrum_figures(power: np.ndarray) -> dict:
    """From a mean power spectrum P(k), k = 1..K-1 (px^2): log-log slope, peak term, tail share."""
    k = np.arange(1, len(power) + 1, dtype=np.float64)
    slope = float(np.polyfit(np.log10(k), np.log10(np.maximum(power, 1e-12)), 1)[0])
    return {"slope": slope, "peak_k": int(k[int(np.argmax(power))]),
            "tail_share": float(power[TAIL_FROM_K - 1:].sum() / max(power.sum(), 1e-30))}


def stats_by_kind(folders, ref_width: int = 256) -> dict:
    """Per kind: samples, mean power spectrum of the pixel swing per term (px^2 on a ref_width-wide grid, mean over
    samples and valid pixels), its slope / peak term / tail share, and the motion amount (mean energy, px)."""
    from backend.eval.metrics import energy_map as mean_energy_map, power_spectrum
    groups: dict[str, dict] = {}
    for folder in folders:
        folder = Path(folder)
        paths = list_samples([folder])
        for p, kind in zip(paths, sample_kinds(folder, paths)):
            s = load_sample(p, keys=("spectral", "T", "valid"))
            spec = np.asarray(s["spectral"], np.float32)
            valid = np.asarray(s["valid"], bool)
            scale = ref_width / spec.shape[-1]
            g = groups.setdefault(kind, {"samples": 0, "power": 0.0, "amount": 0.0})
            g["samples"] += 1
            g["power"] = g["power"] + power_spectrum(spec, int(s["T"]), valid) * scale ** 2
            g["amount"] += float(mean_energy_map(spec, int(s["T"]))[valid].mean()) * scale
    out = {}
    for kind in sorted(groups):
        g = groups[kind]
        power = g["power"] / g["samples"]
        out[kind] = {"samples": g["samples"], "amount_px": g["amount"] / g["samples"],
                     "power_px2": [float(v) for v in power], **spectrum_figures(power)}
    return out


def by_kind_table(by_kind: dict) -> str:
    lines = ["| kind | samples | amount px | slope (log P vs log k) | peak term | tail share (k >= 5) |",
             "|---|---:|---:|---:|---:|---:|"]
    for kind, f in by_kind.items():
        lines.append(f"| {kind} | {f['samples']} | {f['amount_px']:.3f} | {f['slope']:.2f} | {f['peak_k']} | "
                     f"{f['tail_share']:.2f} |")
    return "\n".join(lines)
