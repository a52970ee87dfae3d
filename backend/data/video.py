"""Real video -> (image, spectral volume) samples: windows, dense flow from the first frame, filters, FFT.

Time base. A window covers `window / fps` seconds (150 frames at 30 fps = 5 s) and is cut at the video's own
frame rate: N = round(window * video_fps / fps) video frames (145 at 29 fps). Frames are never interpolated;
the motion of the N frames is Fourier transformed and, since both describe the same 5 s, term k is the same
frequency k / 5 s either way, so the spectral volume is converted to the 30 fps clip exactly by scaling the
unnormalised FFT by window / N; the sample stores fps = 30, T = window. With `full`, the sample also stores the
N real frames and their motion, and then keeps the video's true fps and T = N (spectral unscaled), so that
frames, motion and spectral agree.

Short clips and loops. With `wrap` (for seamless loops such as gid_loops), windows start every `stride`
frames over the whole clip and run past its end periodically (frame i is i mod L): a loop has no seam, and
every start gives a real first frame I0 with its real motion. Without `wrap`, windows must fit in the video;
a video shorter than N frames gives one window of its available length L (T stored as the true length).

Filters (each drop is logged with its reason): too few valid pixels; too large motion; camera motion, i.e.
the least-moving 30 % of the valid pixels (the background of a still-camera clip) move together by more
than `max_camera_px` at some frame.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from shared.spectral import K_DEFAULT, motion_to_spectral

from .flow import FlowConfig, window_motion
from .samples import sample_path, write_npz_atomic


@dataclass(frozen=True)
class VideoConfig:
    size: tuple[int, int] = (256, 160)
    window: int = 150
    stride: int = 10
    fps: float = 30.0
    wrap: bool = False
    full: bool = False
    K: int = K_DEFAULT
    min_valid: float = 0.5            # fraction of pixels
    max_motion_frac: float = 0.12     # 99th percentile of |displacement| over the window, fraction of width
    max_camera_px: float = 0.6        # global motion of the least-moving pixels at 256 px width


def read_video(path: str | Path, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """All frames, resized to size = (W, H) (area filter), as uint8 RGB (L, H, W, 3); and the video's fps."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open video {path}")
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 0.0
    frames = []
    while True:
        ok, im = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(cv2.resize(im, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    cap.release()
    if not frames:
        raise ValueError(f"{path}: no frames could be decoded")
    if fps <= 0:
        raise ValueError(f"{path}: the video reports no frame rate")
    return np.stack(frames), fps


def window_starts(length: int, n: int, stride: int, wrap: bool) -> list[int]:
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if wrap:
        return list(range(0, length, stride))
    if length <= n:
        return [0]
    return list(range(0, length - n + 1, stride))


def check_window(motion: np.ndarray, valid: np.ndarray, cfg: VideoConfig) -> str | None:
    """Reason to drop the window, or None."""
    h, w = valid.shape
    if valid.mean() < cfg.min_valid:
        return f"too few valid pixels ({valid.mean():.0%} < {cfg.min_valid:.0%})"
    mag = np.sqrt((motion**2).sum(axis=1))                       # (N, H, W)
    p99 = float(np.percentile(mag[:, valid], 99))
    if p99 > cfg.max_motion_frac * w:
        return f"too large motion (p99 {p99:.1f} px > {cfg.max_motion_frac * w:.1f} px)"
    mean_mag = mag.mean(axis=0)[valid]
    calm = mean_mag <= np.percentile(mean_mag, 30)
    glob = np.median(motion[:, :, valid][:, :, calm], axis=2)   # (N, 2)
    cam = float(np.sqrt((glob**2).sum(axis=1)).max())
    limit = cfg.max_camera_px * w / 256.0
    if cam > limit:
        return f"camera motion (background moves {cam:.2f} px > {limit:.2f} px)"
    return None


def process_window(frames: np.ndarray, vfps: float, cfg: VideoConfig, flow_cfg: FlowConfig = FlowConfig()):
    """(sample dict or None, drop reason or None, stats dict) for one window of frames (N, H, W, 3)."""
    motion, valid = window_motion(frames, flow_cfg)
    reason = check_window(motion, valid, cfg)
    n = frames.shape[0]
    spectral = motion_to_spectral(motion, cfg.K)
    mag = np.sqrt((motion**2).sum(axis=1)).mean(axis=0)
    stats = {"valid": float(valid.mean()), "mean_px": float(mag[valid].mean()) if valid.any() else 0.0}
    if reason:
        return None, reason, stats
    if cfg.full:
        out = {"image": frames[0], "spectral": spectral, "valid": valid, "fps": np.float32(vfps),
               "T": np.int32(n), "frames": frames, "motion": motion}
    else:
        T = int(round(n * cfg.fps / vfps))
        out = {"image": frames[0], "spectral": (spectral * (T / n)).astype(np.float32), "valid": valid,
               "fps": np.float32(cfg.fps), "T": np.int32(T)}
    return out, None, stats


def _video_windows(vi: int, video, cfg: VideoConfig, folder: Path, record: dict) -> list[tuple[str, dict, str]]:
    """Every window of video number `vi` not yet made or dropped -> [(key, windows.json entry, log line)]; writes
    the samples. One video per call, so that workers each take whole videos (a video is read once)."""
    frames, vfps = read_video(video, cfg.size)
    L = len(frames)
    n = int(round(cfg.window * vfps / cfg.fps))
    starts = window_starts(L, n, cfg.stride, cfg.wrap)
    if L > 10000:
        raise ValueError(f"{video}: {L} frames; sample numbering allows at most 10000 per video")
    done = []
    if not cfg.wrap and L < n:
        done.append(("", {}, f"from-video: {video}: {L} frames < window {n}: one window of {L} frames"))
        n = L
    for s in starts:
        idx = vi * 10000 + s          # by start frame: reruns with another stride reuse windows
        key = f"{idx:06d}"
        path = sample_path(folder, idx)
        if path.exists() or record.get(key, {}).get("dropped"):
            continue
        sel = np.arange(s, s + n) % L
        t0 = time.perf_counter()
        sample, reason, stats = process_window(frames[sel], vfps, cfg)
        entry = {"video": str(video), "start": int(s), "frames": int(n), "video_fps": vfps, **stats,
                 "seconds": round(time.perf_counter() - t0, 2)}
        if reason:
            entry["dropped"] = reason
            line = f"from-video: {Path(video).name} start {s}: dropped: {reason}"
        else:
            write_npz_atomic(path, sample)
            line = (f"from-video: {Path(video).name} start {s} -> {path.name} (valid {stats['valid']:.0%}, "
                    f"mean {stats['mean_px']:.2f} px, {entry['seconds']} s)")
        done.append((key, entry, line))
    return done


def run_from_video(videos, out, size=(256, 160), window=150, stride=10, fps=30.0, wrap=False, full=False,
                   log=print, workers: int = 1) -> dict:
    """Write DIR/sample_%06d.npz (index = 10000 * video number + start frame) and DIR/windows.json.
    `workers` > 1 extracts that many videos at once in worker processes (the flow of a window is single-core
    work: 16 clips on 16 cores take the time of one); the samples are the same either way."""
    cfg = VideoConfig(size=tuple(size), window=window, stride=stride, fps=fps, wrap=wrap, full=full)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    index_path = folder / "windows.json"
    record = json.loads(index_path.read_text()) if index_path.exists() else {}
    t_start = time.perf_counter()
    made = dropped = 0

    def keep(results: list[tuple[str, dict, str]]) -> None:
        nonlocal made, dropped
        for key, entry, line in results:
            log(line)
            if not key:
                continue
            dropped += "dropped" in entry
            made += "dropped" not in entry
            record[key] = entry
        _write_json_atomic(index_path, record)       # after each video: an interrupted run resumes

    if workers > 1 and len(videos) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        # spawn, not fork: OpenCV's thread pool does not survive a fork
        with ProcessPoolExecutor(min(workers, len(videos)), mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_video_windows, vi, video, cfg, folder, record) for vi, video in enumerate(videos)]
            for future in futures:
                keep(future.result())
    else:
        for vi, video in enumerate(videos):
            keep(_video_windows(vi, video, cfg, folder, record))
    el = time.perf_counter() - t_start
    rate = (made + dropped) / el * 60 if el > 0 else 0.0
    log(f"from-video: {made} samples, {dropped} dropped in {el:.0f} s ({rate:.2f} windows/min)")
    from .contact import write_contact_sheet
    write_contact_sheet(folder)
    return {"made": made, "dropped": dropped, "seconds": el, "windows_per_min": rate}


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)
