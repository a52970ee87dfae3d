"""`gid bench`: speed side by side in one run, as ratios, with the device and peak memory (issue 9).

Sections (each either rows of {figure, value} or {"status": "missing", "why"} when its part has not landed):
- splat: our softmax splat vs the plain index_add_ reference, reusing `scripts/bench_splat.py` (the RENDER
  engineer's; imported, not duplicated). Ratio = reference time / ours (> 1: ours faster).
- predict: predict time and endpoint error vs sampler steps (10, 25, 50, 250; quick: 10; or --predict-steps) on one
  held-out scene.
- render: frames/s of the splat preview and IBR at 256x160 and 512x288, and the sharpness of those frames
  (Laplacian energy / I0's in the 20% most-moving pixels: min, and max/min over the frames).
- roundtrip: ZeroMQ round trip vs in-process, from `scripts/bench_roundtrip.py` (the SERVICE engineer's).
- simulate: modal poke response (shared.modal) for a 150-frame clip on a 256x160 grid.
- blender: evaluation time per frame of a displaced 512x288 plane, bpy in a subprocess.
- 4k / 8k: 48 PNG frames of a 3840x2160 / 7680x4320 picture with given motion through `gid animate --spectral
  ... --mode ibr`, and the floor (read the picture, OpenCV bilinear remap along the same motion + the same PNG
  writer, no thread) in the same run: time ratio and each one's peak memory (separate processes). Skipped by
  --quick (minutes on 2 cores).
"""
from __future__ import annotations

import importlib.util
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _missing(why: str) -> dict:
    return {"status": "missing", "why": why}


def _script_module(name: str):
    """Import scripts/<name>.py as a module (scripts/ is not a package)."""
    path = ROOT / "scripts" / f"{name}.py"
    if not path.exists():
        raise ImportError(f"scripts/{name}.py has not landed")
    spec = importlib.util.spec_from_file_location(f"gid_scripts_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _best_ms(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best * 1000.0


def _row(figure: str, value, unit: str = "") -> dict:
    if isinstance(value, float):
        value = f"{value:.3g}{(' ' + unit) if unit else ''}"
    return {"figure": figure, "value": value}


def _sync(device) -> Callable[[], None]:
    import torch
    return (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)


# --------------------------------------------------------------------------------------------------------
# sections


def bench_splat(device, quick: bool, size: tuple[int, int] | None = None) -> dict:
    try:
        bs = _script_module("bench_splat")
        ref, make_inputs, ours = bs.reference_softsplat, bs.make_inputs, bs.softsplat
    except (ImportError, AttributeError) as exc:
        return _missing(f"softmax splat benchmark unavailable: {exc}")
    import torch
    W, H = size or ((256, 160) if quick else (512, 288))
    rows, data = [], {}
    for C in ((3,) if quick else (3, 64)):
        x, flow, metric = make_inputs(1, C, H, W, device)
        with torch.no_grad():
            diff = float((ref(x, flow, metric) - ours(x, flow, metric).output).abs().max())
            t_ref = _best_ms(lambda: ref(x, flow, metric), 2 if quick else 5, _sync(device))
            t_our = _best_ms(lambda: ours(x, flow, metric), 2 if quick else 5, _sync(device))
        data[f"C{C}"] = {"reference_ms": t_ref, "ours_ms": t_our, "ratio": t_ref / t_our, "max_abs_diff": diff}
        rows.append(_row(f"{W}x{H} C={C} forward: index_add_ ref / ours", f"{t_ref / t_our:.2f}x "
                         f"({t_ref:.1f} ms / {t_our:.1f} ms, max diff {diff:.1e})"))
    return {"status": "ok", "size": [W, H], "data": data, "rows": rows}


def _scene_for_predict(data_dir: Path):
    files = sorted(data_dir.glob("sample_*.npz")) if data_dir.is_dir() else []
    if not files:
        return None
    from .evaluate import load_scene
    return load_scene(files[0])


def bench_predict(device_name: str, quick: bool, checkpoint: str | None, data_dir: Path,
                  steps_list: tuple[int, ...] | None = None) -> dict:
    from .evaluate import load_predictor
    predictor, status = load_predictor(checkpoint, device_name)
    if predictor is None:
        return _missing(status["why"])
    from shared.spectral import resample_spectral
    from . import metrics
    scene = _scene_for_predict(data_dir)
    if scene is None:
        rng = np.random.default_rng(0)
        image = rng.integers(0, 255, (160, 256, 3), dtype=np.uint8)
    else:
        image = scene.image
    rows, data = [], {}
    steps_list = tuple(steps_list or ((10,) if quick else (10, 25, 50, 250)))
    base = None
    for steps in steps_list:
        t0 = time.perf_counter()
        pred = predictor.predict(image, seed=0, samples=1, steps=steps)
        dt = time.perf_counter() - t0
        entry = {"seconds": dt}
        if scene is not None:
            s = resample_spectral(np.asarray(pred.spectral, np.float32), scene.image.shape[1::-1])[0]
            s = s[:scene.spectral.shape[0]]
            entry["epe_px"] = metrics.endpoint_error(s, scene.spectral, scene.T, scene.valid)
            entry["amplitude_error_px"] = metrics.amplitude_error(s, scene.spectral, scene.T, scene.valid)
        base = base or dt
        data[str(steps)] = entry
        extra = (f", EPE {entry['epe_px']:.2f} px, amp. err {entry['amplitude_error_px']:.3f} px"
                 if "epe_px" in entry else "")
        rows.append(_row(f"predict {steps} steps", f"{dt:.2f} s ({dt / base:.2f}x of {steps_list[0]} steps){extra}"))
    return {"status": "ok", "scene": None if scene is None else scene.name, "data": data, "rows": rows}


def _bench_spectral(W: int, H: int, K: int = 16, T: int = 150) -> np.ndarray:
    """A smooth, a-few-pixel oscillation to render (not random noise: splat cost depends on the flow)."""
    from shared.spectral import motion_to_spectral
    t = np.arange(T)
    yy, xx = np.mgrid[0:H, 0:W] / max(H, W)
    motion = np.zeros((T, 2, H, W), np.float32)
    for k in (1, 2, 3, 5):
        motion[:, 0] += (3.0 / k) * np.sin(2 * np.pi * k * t / T)[:, None, None] * (xx + yy)[None]
        motion[:, 1] += (1.5 / k) * np.cos(2 * np.pi * k * t / T)[:, None, None] * yy[None]
    return motion_to_spectral(motion, K)


def bench_render(device_name: str, quick: bool) -> dict:
    from . import metrics
    try:
        from backend.render.api import Renderer
        renderer = Renderer.load(device=device_name)
    except Exception as exc:        # noqa: BLE001 - not landed or failed: say so
        return _missing(f"renderer unavailable: {type(exc).__name__}: {exc}")
    rng = np.random.default_rng(0)
    n = 2 if quick else 24
    rows, data = [], {}
    for W, H in ((256, 160), (512, 288)):
        image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        spectral = _bench_spectral(W, H)
        times = np.arange(1, n + 1, dtype=np.float64)
        for mode in ("splat", "ibr"):
            key = f"{mode}_{W}x{H}"
            try:
                if not quick:
                    renderer.render(image, spectral, 30.0, 150, times[:1], mode=mode)   # warm-up
                t0 = time.perf_counter()
                frames = renderer.render(image, spectral, 30.0, 150, times, mode=mode)
                fps = n / (time.perf_counter() - t0)
            except Exception as exc:  # noqa: BLE001 - e.g. ibr weights missing
                data[key] = _missing(f"{type(exc).__name__}: {exc}")
                rows.append(_row(f"render {mode} {W}x{H}", f"missing: {exc}"))
                continue
            data[key] = {"frames_per_s": fps, "frames": n}
            rows.append(_row(f"render {mode} {W}x{H}", f"{fps:.1f} frames/s"))
            # detail kept where it moves, and its pulse over the frames (I0 = frame 0 included)
            mask = metrics.moving_mask(metrics.energy_map(spectral, 150))
            sharp = metrics.sharpness_figures(np.concatenate([image[None], frames]), image, mask)
            data[key].update(sharpness_min=sharp["sharpness_min"], stability=sharp["stability"])
            rows.append(_row(f"render {mode} {W}x{H} sharpness (Laplacian energy / I0's, 20% most-moving px)",
                             f"min {sharp['sharpness_min']:.2f}, max/min over frames {sharp['stability']:.2f}"))
        if "frames_per_s" in data.get(f"ibr_{W}x{H}", {}):
            r = data[f"splat_{W}x{H}"]["frames_per_s"] / data[f"ibr_{W}x{H}"]["frames_per_s"]
            rows.append(_row(f"splat / ibr speed {W}x{H}", f"{r:.2f}x"))
    return {"status": "ok", "data": data, "rows": rows}


def bench_roundtrip(quick: bool, device_name: str = "auto", timeout: float = 480.0) -> dict:
    """Runs the SERVICE engineer's scripts/bench_roundtrip.py (its `main` parses argv and writes JSON) in a
    subprocess and reads its JSON; ratio = through the server / in-process."""
    script = ROOT / "scripts" / "bench_roundtrip.py"
    if not script.exists():
        return _missing("scripts/bench_roundtrip.py has not landed")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "roundtrip.json"
        cmd = [sys.executable, str(script), "--device", device_name, "--repeats", "3",
               "--json", str(out)] + (["--quick"] if quick else [])
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        except subprocess.TimeoutExpired:
            return _missing(f"scripts/bench_roundtrip.py did not finish in {timeout:.0f} s")
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-2:]
            return _missing(f"scripts/bench_roundtrip.py failed (exit {proc.returncode}): {' | '.join(tail)}")
        data = json.loads(out.read_text())
    rows = [_row("ping round trip", f"{data['ping_ms']:.2f} ms")]
    s, r = data.get("spectral", {}), data.get("render", {})
    if s:
        rows.append(_row(f"spectral volume {s['bytes'] / 1e6:.1f} MB: server / in-process",
                         f"{s['ratio']:.2f}x (transport {s['transport_ms']:.1f} ms)"))
    if r:
        rows.append(_row(f"render {r['frames']} frames: server / in-process",
                         f"{r['ratio']:.3f}x (overhead {r['overhead_ms']:.0f} ms)"))
    return {"status": "ok", "data": data, "rows": rows}


def bench_simulate(quick: bool) -> dict:
    from shared import modal
    W, H = 256, 160
    spectral = _bench_spectral(W, H)
    pokes = [{"frame": 5, "x": 100.0, "y": 80.0, "dx": 1.0, "dy": 0.0, "duration": 3}]
    count = 150
    ms = _best_ms(lambda: modal.simulate(spectral, 30.0, 150, pokes, count=count), 1 if quick else 3)
    return {"status": "ok", "data": {"ms": ms, "frames": count, "grid": [W, H]},
            "rows": [_row(f"simulate poke {count} frames on {W}x{H}", f"{ms:.0f} ms ({1000 * count / ms:.0f} frames/s)")]}


BLENDER_SCRIPT = r"""
import sys, time, json, tempfile, os
import numpy as np
import bpy
W, H, N = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
bpy.ops.mesh.primitive_grid_add(x_subdivisions=W - 1, y_subdivisions=H - 1, size=2.0)
obj = bpy.context.active_object
# A displacement image sequence (float RGB, x/y in R/G), like the add-on's live displacement: N frames.
tmp = tempfile.mkdtemp()
yy, xx = np.mgrid[0:H, 0:W] / max(W, H)
for i in range(N):
    img = bpy.data.images.new(f"d{i}", W, H, alpha=True, float_buffer=True)
    px = np.zeros((H, W, 4), np.float32)
    px[..., 0] = 0.5 + 0.5 * np.sin(6.28 * (xx + i / N))
    px[..., 1] = 0.5 + 0.5 * np.cos(6.28 * (yy + i / N))
    px[..., 3] = 1
    img.pixels.foreach_set(px.ravel())
    img.filepath_raw = os.path.join(tmp, f"disp_{i + 1:04d}.exr")
    img.file_format = "OPEN_EXR"
    img.save()
seq = bpy.data.images.load(os.path.join(tmp, "disp_0001.exr"))
seq.source = "SEQUENCE"
tex = bpy.data.textures.new("gid_disp", type="IMAGE")
tex.image = seq
tex.image_user.frame_duration = N
tex.image_user.use_cyclic = True
tex.image_user.use_auto_refresh = True
mod = obj.modifiers.new("gid", "DISPLACE")
mod.texture = tex
mod.texture_coords = "UV"
mod.direction = "RGB_TO_XYZ"
mod.strength = 0.05
deps = bpy.context.evaluated_depsgraph_get()
times = []
for f in range(1, 2 * N + 1):
    t0 = time.perf_counter()
    scene.frame_set(f)
    ev = obj.evaluated_get(deps)
    m = ev.to_mesh()
    n = len(m.vertices)
    ev.to_mesh_clear()
    times.append(time.perf_counter() - t0)
print("GIDBENCH " + json.dumps({"verts": n, "ms": [1000 * t for t in times]}))
"""


def bench_blender(quick: bool, timeout: float = 240.0) -> dict:
    n = 3 if quick else 12
    try:
        proc = subprocess.run([sys.executable, "-c", BLENDER_SCRIPT, "512", "288", str(n)], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return _missing(f"bpy frame evaluation did not finish in {timeout:.0f} s")
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("GIDBENCH ")), None)
    if proc.returncode != 0 or line is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return _missing(f"bpy subprocess failed (exit {proc.returncode}): {' | '.join(tail)}")
    out = json.loads(line[len("GIDBENCH "):])
    ms = out["ms"][1:]                                # the first frame loads the image sequence
    med = float(np.median(ms))
    return {"status": "ok", "data": {"vertices": out["verts"], "ms_per_frame": ms, "median_ms": med},
            "rows": [_row(f"Blender displaced 512x288 plane ({out['verts']} vertices)",
                          f"{med:.0f} ms/frame ({1000 / med:.1f} frames/s)")]}


# --------------------------------------------------------------------------------------------------------


SCALE_SIZES = {"4k": (3840, 2160), "8k": (7680, 4320)}
SCALE_FRAMES = 48
SCALE_FPS = 24.0

# The child's own peak: VmHWM is per address space and starts afresh at exec, whereas ru_maxrss keeps the
# high-water mark of the forked parent (the bench process, which held the picture).
_PEAK = r"""
import json, resource, sys, time
t0 = time.perf_counter()


def peak_mb():
    try:
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) / 1024.0
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
"""

_FLOOR_CHILD = _PEAK + r"""
from pathlib import Path
import cv2, numpy as np
from backend.animate import PngWriter, read_image, read_spectral
from shared.spectral import displacement_for_frames
img_path, npz, out, n, fps = sys.argv[1:6]
image = read_image(img_path)
spec, sfps, T = read_spectral(npz)
H, W = image.shape[:2]
disp = displacement_for_frames(spec[0], T, sfps, np.arange(int(n), dtype=np.float64), float(fps), 1.0, 1.0, 0)
gx, gy = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
writer = PngWriter(Path(out))
for d in disp:
    h, w = d.shape[-2:]
    fx = cv2.resize(d[0], (W, H), interpolation=cv2.INTER_LINEAR) * (W / w)
    fy = cv2.resize(d[1], (W, H), interpolation=cv2.INTER_LINEAR) * (H / h)
    writer.write(cv2.remap(image, gx - fx, gy - fy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_mb()}))
"""

_ANIMATE_CHILD = _PEAK + r"""
from backend.cli import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "seconds": time.perf_counter() - t0, "peak_rss_mb": peak_mb()}))
"""


def _scale_image(W: int, H: int, seed: int = 0) -> np.ndarray:
    """A picture with detail at every scale (smooth colour fields plus fine grain), uint8 (H, W, 3)."""
    import cv2
    rng = np.random.default_rng(seed)
    img = np.zeros((H, W, 3), np.float32)
    for div, amp in ((64, 90.0), (8, 40.0), (1, 25.0)):
        small = rng.standard_normal((max(2, H // div), max(2, W // div), 3)).astype(np.float32)
        img += amp * cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)
    return np.clip(img + 128.0, 0, 255).astype(np.uint8)


def _child_json(code: str, args: list[str], timeout: float) -> dict:
    import os
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=str(ROOT), env=env)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"exit {proc.returncode}: {tail}")
    return json.loads(lines[-1])


def bench_scale(name: str, device_name: str, quick: bool, frames: int = SCALE_FRAMES,
                size: tuple[int, int] | None = None, timeout: float = 1800.0) -> dict:
    """`gid animate --spectral --mode ibr` of `frames` PNG frames vs the floor, each in its own process."""
    if quick and size is None:
        return _missing(f"skipped by --quick (minutes on 2 cores): run `gid bench --sections {name}`")
    from PIL import Image
    from backend.animate import save_spectral
    W, H = size or SCALE_SIZES[name]
    rows, data = [], {"size": [W, H], "frames": frames}
    with tempfile.TemporaryDirectory(prefix=f"gid-bench-{name}-") as tmp:
        tmp = Path(tmp)
        Image.fromarray(_scale_image(W, H)).save(tmp / "picture.png", compress_level=1)   # not kept in memory
        gw = 256
        gh = max(2, round(gw * H / W))
        # the motion scales with the picture, as a predicted volume does: ~5 px of swing at 4K
        spectral = _bench_spectral(gw, gh) * np.float32(0.1)
        save_spectral(tmp / "motion.npz", spectral, 30.0, 150)
        floor = _child_json(_FLOOR_CHILD, [str(tmp / "picture.png"), str(tmp / "motion.npz"), str(tmp / "floor"),
                                           str(frames), str(SCALE_FPS)], timeout)
        ours = _child_json(_ANIMATE_CHILD, ["animate", str(tmp / "picture.png"), "-o", str(tmp / "ours"),
                                            "--spectral", str(tmp / "motion.npz"), "--mode", "ibr",
                                            "--seconds", str(frames / SCALE_FPS), "--fps", str(SCALE_FPS),
                                            "--device", device_name], timeout)
        written = len(list((tmp / "ours").glob("frame_*.png")))
    if ours.get("rc") != 0 or written != frames:
        return _missing(f"gid animate exited {ours.get('rc')} with {written} of {frames} frames")
    ratio = ours["seconds"] / floor["seconds"]
    data.update({"ours_s": ours["seconds"], "floor_s": floor["seconds"], "ratio": ratio,
                 "ours_peak_rss_mb": ours["peak_rss_mb"], "floor_peak_rss_mb": floor["peak_rss_mb"]})
    rows.append(_row(f"{name} {W}x{H}, {frames} PNG frames: gid animate --mode ibr / floor (remap + PNG)",
                     f"{ratio:.2f}x ({ours['seconds']:.1f} s / {floor['seconds']:.1f} s)"))
    rows.append(_row(f"{name} peak memory: gid animate / floor",
                     f"{ours['peak_rss_mb']:.0f} MB / {floor['peak_rss_mb']:.0f} MB"))
    return {"status": "ok", "data": data, "rows": rows}


def peak_memory_mb(device) -> dict:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0      # Linux: kB
    out = {"cpu_rss_mb": round(rss, 1)}
    if device.type == "cuda":
        import torch
        out["cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    return out


SECTIONS = ("splat", "predict", "render", "roundtrip", "simulate", "blender", "4k", "8k")
GPU_SECTION = "gpu"      # added by default when the device is CUDA (4K on a CPU would take hours)


def _bench_gpu(device_name: str, quick: bool, checkpoint: str | None, compile_backend: str | None) -> dict:
    from .bench_gpu import bench_gpu
    return bench_gpu(device_name, quick, checkpoint, compile_backend)


def run_bench(quick: bool = False, device_name: str = "auto", checkpoint: str | None = None,
              data_dir: str | Path = "runs/data/synth_test", sections=SECTIONS,
              progress: Callable[[str], None] | None = None, predict_steps: tuple[int, ...] | None = None,
              compile_backend: str | None = None) -> dict:
    from backend.device import describe, pick_device
    from .evaluate import versions
    say = progress or (lambda msg: None)
    device = pick_device(device_name)
    t_start = time.perf_counter()
    import datetime as _dt
    result: dict = {"kind": "gid-bench", "version": 1, "quick": quick,
                    "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "device": describe(device),
                    "machine": platform.processor() or platform.machine(), "versions": versions(), "sections": {}}
    runners = {
        "splat": lambda: bench_splat(device, quick),
        "predict": lambda: bench_predict(device_name, quick, checkpoint, Path(data_dir), predict_steps),
        "render": lambda: bench_render(device_name, quick),
        "roundtrip": lambda: bench_roundtrip(quick, device_name),
        "simulate": lambda: bench_simulate(quick),
        "blender": lambda: bench_blender(quick),
        "gpu": lambda: _bench_gpu(device_name, quick, checkpoint, compile_backend),   # --device cuda (bench_gpu.py)
        "4k": lambda: bench_scale("4k", device_name, quick),
        "8k": lambda: bench_scale("8k", device_name, quick),
    }
    for name in sections:
        if name not in runners:
            raise ValueError(f"unknown bench section {name!r}; known: {', '.join(SECTIONS + (GPU_SECTION,))}")
        say(f"bench {name} ...")
        t0 = time.perf_counter()
        try:
            sec = runners[name]()
        except Exception as exc:    # noqa: BLE001 - one broken part must not hide the others' figures
            sec = _missing(f"{type(exc).__name__}: {exc}")
        sec["seconds"] = round(time.perf_counter() - t0, 2)
        result["sections"][name] = sec
        say(f"bench {name}: {sec.get('status')} {sec.get('why', '')} ({sec['seconds']} s)".strip())
    mem = peak_memory_mb(device)
    result["peak_memory"] = mem
    result["peak_memory_mb"] = mem.get("cuda_mb", mem["cpu_rss_mb"])
    result["seconds"] = round(time.perf_counter() - t_start, 2)
    return result
