"""`gid bench --device cuda`, section "gpu": what the GPU path (backend/render/batch.py) buys, in one run.

Per size (512x288, 1920x1080, 3840x2160, 7680x4320) and mode (splat, ibr): frames/s of the plain
`Renderer.render` and of the batched path (frames per low-resolution call, autocast, compile), their ratio; the
batched path with the full-resolution warp on the host instead of the device (render/sharp_device.py) and how
many pixels agree; the largest pixel difference autocast makes against float32 (levels of 255), and the peak GPU
memory; optionally (--compile BACKEND) the batched path with torch.compile, its first call (compile time)
reported apart. Then one predict (the model's default steps) in float32 and under autocast. Every number is
measured here, side by side, after a warm-up call; nothing is assumed. The CPU runs the same code (tests use tiny
sizes with device="cpu").
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np

GPU_SIZES = ((512, 288), (1920, 1080), (3840, 2160), (7680, 4320))
GRID = (256, 144)               # the spectral volume's grid (as predicted); the renderer resizes its fields


def _frames_for(W: int, H: int, quick: bool) -> int:
    n = 24 if W * H <= 2_100_000 else 16
    return max(2, n // 4) if quick else n


def _timed(fn: Callable[[], object], sync: Callable[[], None]) -> tuple[float, object]:
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - t0, out


def bench_gpu(device_name: str, quick: bool, checkpoint: str | None = None, compile_backend: str | None = None,
              sizes=None, frames: int | None = None, predict_steps: int | None = None) -> dict:
    import torch

    from backend.device import autocast, describe
    from backend.render.api import Renderer
    from backend.render.batch import BatchRenderer, GpuOptions

    from .bench import _bench_spectral, _missing, _row

    renderer = Renderer.load(device=device_name)
    dev = renderer.device
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    fast = BatchRenderer(renderer, GpuOptions.for_device(dev))
    exact = BatchRenderer(renderer, dataclasses.replace(fast.options, amp=None))      # the fp32 reference
    host = BatchRenderer(renderer, dataclasses.replace(fast.options, device_warp=False))   # warp with OpenCV
    compiled = (BatchRenderer(renderer, GpuOptions.for_device(dev, compile=compile_backend))
                if compile_backend else None)
    spectral = _bench_spectral(*GRID)
    rng = np.random.default_rng(0)
    rows, data = [], {"device": describe(dev), "options": {
        "batch": fast.options.batch, "amp": str(fast.options.amp),
        "compile": compile_backend}}
    for W, H in sizes or GPU_SIZES:
        image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        n = frames or _frames_for(W, H, quick)
        times = np.arange(1, n + 1, dtype=np.float64)
        for mode in renderer.info()["modes"]:
            key = f"{mode}_{W}x{H}"
            args = (image, spectral, 30.0, 150)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            # warm-ups: kernels, autotuning, allocator
            renderer.render(*args, times[:1], mode=mode)
            fast.render(*args, times[:1], mode=mode)
            t_plain, _ = _timed(lambda: renderer.render(*args, times, mode=mode), sync)
            t_fast, got = _timed(lambda: fast.render(*args, times, mode=mode), sync)
            t_host, on_host = _timed(lambda: host.render(*args, times, mode=mode), sync)
            ref = exact.render(*args, times, mode=mode)
            entry = {"frames": n, "plain_fps": n / t_plain, "batched_fps": n / t_fast,
                     "ratio": t_plain / t_fast,
                     "host_warp_fps": n / t_host, "warp_ratio": t_host / t_fast,
                     "warp_max_diff": int(np.abs(got.astype(np.int16) - on_host).max()),
                     "warp_equal": float((got == on_host).mean()),
                     "amp_max_diff": int(np.abs(got.astype(np.int16) - ref).max()),
                     "amp_mean_diff": float(np.abs(got.astype(np.int16) - ref).mean())}
            if compiled is not None:
                t_first, _ = _timed(lambda: compiled.render(*args, times, mode=mode), sync)
                t_comp, _ = _timed(lambda: compiled.render(*args, times, mode=mode), sync)
                entry.update(compiled_fps=n / t_comp, compile_first_call_s=t_first)
            if cuda:
                entry["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
            data[key] = entry
            extra = (f"; compiled {entry['compiled_fps']:.1f} frames/s "
                     f"(first call {entry['compile_first_call_s']:.1f} s)" if compiled is not None else "")
            mem = f"; peak {entry['peak_gpu_mb'] / 1024:.2f} GB" if cuda else ""
            rows.append(_row(f"{mode} {W}x{H}, {n} frames",
                             f"batched {entry['batched_fps']:.1f} frames/s vs plain {entry['plain_fps']:.1f} "
                             f"({entry['ratio']:.2f}x); host warp {entry['host_warp_fps']:.1f} frames/s "
                             f"(device warp {entry['warp_ratio']:.2f}x, {entry['warp_equal']:.1%} pixels equal); "
                             f"autocast vs fp32 max {entry['amp_max_diff']} levels"
                             f"{extra}{mem}"))
    from .evaluate import load_predictor

    predictor, status = load_predictor(checkpoint, device_name)
    if predictor is None:
        data["predict"] = _missing(status["why"])
        rows.append(_row("predict", f"missing: {status['why']}"))
    else:
        image = rng.integers(0, 255, (288, 512, 3), dtype=np.uint8)
        predictor.predict(image, seed=0, samples=1, steps=predict_steps)                      # warm-up
        t32, _ = _timed(lambda: predictor.predict(image, seed=0, samples=1, steps=predict_steps), sync)

        def amp_predict():
            with autocast(predictor.device):
                return predictor.predict(image, seed=0, samples=1, steps=predict_steps)

        amp_predict()
        tamp, _ = _timed(amp_predict, sync)
        data["predict"] = {"fp32_s": t32, "autocast_s": tamp,
                           "steps": int(predict_steps or predictor.config.sample_steps)}
        rows.append(_row(f"predict 512x288, {data['predict']['steps']} steps",
                         f"{tamp:.2f} s with autocast, {t32:.2f} s fp32 ({t32 / tamp:.2f}x)"))
    return {"status": "ok", "data": data, "rows": rows}
