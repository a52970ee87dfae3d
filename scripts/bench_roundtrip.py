"""Round trip through `gid serve` vs the same call in-process.

1. transport: a 512x288 spectral volume (K=16, float16, 18.9 MB), made by the test-only `_test_spectral` op,
   through the server vs calling the same op function in-process; plus a ping round trip.
2. render: 48 frames at 512x288 (uint8, 21 MB) with the `splat` renderer (no weights needed): the request
   carries the image and a float16 spectral volume, the reply the frames; vs `Renderer.render` in-process.

    .venv/bin/python scripts/bench_roundtrip.py [--device cpu] [--repeats 5] [--json runs/bench_roundtrip.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.service.client import Client, start_local_server, stop_local_server  # noqa: E402
from backend.jobs import JobContext  # noqa: E402
from backend.service.ops import OPS, Models, OpLimits  # noqa: E402

W, H, K, N_FRAMES = 512, 288, 16, 48


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up (first call loads models / allocates)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def interleaved(server_fn, local_fn, repeats: int) -> tuple[list[float], list[float]]:
    server_fn(), local_fn()  # warm-up
    server, local = [], []
    for _ in range(repeats):
        for fn, out in ((server_fn, server), (local_fn, local)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return server, local


def scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W]
    image = np.stack([(xx * 255 // W), (yy * 255 // H), ((xx ^ yy) & 255)], -1).astype(np.uint8)
    spectral = np.zeros((K, 4, H, W), np.float32)
    for k in range(1, 5):  # a few low-frequency terms, a few pixels of sway, smooth in space
        spectral[k, rng.integers(4)] = 150.0 * 2.0 / k * np.sin(xx / 40.0 + k) * np.cos(yy / 30.0)
    return image, spectral.astype(np.float16)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    ap.add_argument("--repeats", type=int, default=3, help="render repeats (spectral: 5x as many)")
    ap.add_argument("--json", default=str(ROOT / "runs" / "bench_roundtrip.json"))
    ap.add_argument("--quick", action="store_true", help="render 12 frames instead of 48 (for gid bench --quick)")
    args = ap.parse_args()
    n_frames = 12 if args.quick else N_FRAMES

    from backend.device import describe, pick_device
    device = describe(pick_device(args.device))
    image, spectral = scene()
    times = np.arange(n_frames, dtype=np.float32)
    render_args = {"image": image, "spectral": spectral, "fps": 30.0, "T": 150, "times": times, "mode": "splat"}

    # in-process: the same functions the worker runs, minus the sockets
    models = Models(args.device)
    spec_validated = OPS["_test_spectral"].validate({"width": W, "height": H, "K": K}, OpLimits())
    renderer = models.renderer()

    log = Path(tempfile.gettempdir()) / f"gid_bench_serve_{os.getpid()}.log"
    proc, endpoint = start_local_server("--test-ops", "--device", args.device, log_file=log)
    try:
        with Client(endpoint, timeout=600) as c:
            ping = timed(lambda: c.ping(), 50)
            spec_args = {"width": W, "height": H, "K": K}
            out = c.request("render", render_args)["frames"]
            assert out.shape == (n_frames, H, W, 3) and out.dtype == np.uint8
            # Interleaved (server, in-process) pairs: slow drifts of a shared machine's load hit both alike.
            spec_server, spec_local = interleaved(
                lambda: c.request("_test_spectral", spec_args),
                lambda: OPS["_test_spectral"].run(spec_validated, models, JobContext()), 5 * args.repeats)
            render_server, render_local = interleaved(
                lambda: c.request("render", render_args),
                lambda: renderer.render(image, spectral.astype(np.float32), 30.0, 150, times, mode="splat",
                                        ctx=JobContext()), args.repeats)
    finally:
        stop_local_server(proc)

    med = statistics.median
    result = {
        "device": device, "repeats": args.repeats,
        "ping_ms": round(med(ping) * 1e3, 3),
        "spectral": {"bytes": K * 4 * H * W * 2, "server_s": round(med(spec_server), 4),
                     "local_s": round(med(spec_local), 4),
                     "transport_ms": round((med(spec_server) - med(spec_local)) * 1e3, 2)},
        "render": {"frames": n_frames, "bytes_out": n_frames * H * W * 3, "server_s": round(med(render_server), 4),
                   "local_s": round(med(render_local), 4),
                   "ratio": round(med(render_server) / med(render_local), 4),
                   "overhead_ms": round((med(render_server) - med(render_local)) * 1e3, 2)},
    }
    result["spectral"]["ratio"] = round(med(spec_server) / med(spec_local), 3)
    print(f"device {device}; medians of {args.repeats}")
    print(f"ping round trip                      {result['ping_ms']:8.3f} ms")
    s = result["spectral"]
    print(f"spectral {W}x{H} K={K} f16 ({s['bytes'] / 1e6:.1f} MB): server {s['server_s'] * 1e3:8.2f} ms, "
          f"in-process {s['local_s'] * 1e3:8.2f} ms, transport {s['transport_ms']:.2f} ms")
    r = result["render"]
    print(f"render {n_frames} frames {W}x{H} splat:      server {r['server_s']:8.3f} s,  "
          f"in-process {r['local_s']:8.3f} s,  ratio {r['ratio']:.3f}x (overhead {r['overhead_ms']:.1f} ms)")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result, indent=2))
        os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
