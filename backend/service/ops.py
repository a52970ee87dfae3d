"""The ops the service answers: argument schemas (validated before any work) and dispatch to library code.

Every op has a validator, run in the socket thread the moment a request arrives: it checks every argument
(presence, no extras, type, dtype/shape, finiteness, ranges, size limits) and returns the normalised arguments,
or raises ProtocolError with the matching error code. Ops that do work also have a runner, called on the one
worker thread with the validated arguments, the worker's `Models` and a `JobContext`.

Ops (arrays as in PROTOCOL.md; `?` = optional, `=` = default):
    ping      {}                                            -> {version, protocol, device, models, busy, ...}
    predict   {image: uint8 (H,W,3), seed=0, samples=1 (1..16), steps? (1..1000), loop=false, guidance?,
               placement? (0..1: how far motion moves towards the picture's texture; absent = the model's)}
              -> {spectral: float16 (N,K,4,h,w), fps, T, size: [W,H]}
    render    {image: uint8 (H,W,3), spectral: float16|float32 (K,4,h,w), fps, T, times: float32 (n,) scene
               frames, scene_fps? (=fps), speed=1, magnitude=1, loop_frames=0, mode="ibr"|"splat",
               displacement? float16|float32 (n,2,h',w') pixels of its own grid, relative to frame 0, one per
               time: rendered instead of evaluating `spectral` (which then only sets the splat metric),
               velocity? float16|float32 (2,hv,wv) px/frame of its own grid + fluid_mask uint8 (H,W) (>= 128 =
               fluid) + loop_frames (2..2400): an Eulerian (fluid) loop of loop_frames frames inside the mask;
               `spectral` (and then fps, T) becomes optional: with it the scene is mixed, without it every pixel
               outside the mask is the image exactly}
              -> {frames: uint8 (n,H,W,3)}    (n*H*W*3 bounded: ask in chunks of `times`)
    simulate  {spectral: float16|float32 (K,4,h,w), fps, T, pokes: [{frame, x, y, dx, dy, duration=1,
               kind="push"|"drag"}] (pixels of the spectral grid, clip frames), start=0, count (1..10000),
               damping=0.05 (or K-1 ratios), rayleigh? [alpha, beta], mass=1, stiffness=1, normalize_modes=false}
              -> {displacement: float16 (count,2,h,w)}    (work bounded by count, modes, grid and pokes, not by
              start: `simulate_work`; damping ratios, also rayleigh's, in [0, 1000]; a non-finite or
              beyond-float16 result is an error, never zeros)
    depth     {image: uint8 (H,W,3)}                        -> {depth: float32 (H,W) inverse depth in [0, 1],
              1 = nearest, relative (mobilePyDNet + guided upsampling, backend/priors/depth.py)}
    cancel    {target: id}                                  -> {cancelled: bool}   (only the caller's own jobs)
Test-only (exist only with `gid serve --test-ops`; they exercise the transport without any model):
    _test_sleep     {steps (1..10000), delay=0 (seconds per step, 0..10)} -> {steps}
    _test_spectral  {width, height, K=16, samples=1, seed=0} -> a random float16 spectral volume, like predict
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from shared import protocol
from shared.protocol import INTERNAL, INVALID_ARGUMENT, TOO_LARGE, ProtocolError

from ..jobs import JobContext

log = logging.getLogger("gid.ops")

REQUIRED = object()
FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class OpLimits:
    """Server-side bounds on what one request may ask for (beyond the envelope limits of shared.protocol)."""

    max_pixels: int = 16_000_000            # image and spectral grid: H * W
    max_reply_bytes: int = 1 << 30          # largest array a reply may carry (frames, displacement)
    max_times: int = 10_000                 # frames per render / simulate request
    max_samples: int = 16
    max_steps: int = 1000
    max_pokes: int = 1000
    # simulate: work bounded by what is asked for, whatever the start frame (see `simulate_work`)
    max_simulate_work: int = 4_000_000_000   # frames x modes x (grid pixels + 16) + poke boundaries x modes
    max_calibration_work: int = 200_000_000  # push pokes x T (one FFT of the clip's period per push)


# --------------------------------------------------------------------------------------------------------
# argument checking


def _bad(op: str, message: str, code: str = INVALID_ARGUMENT) -> ProtocolError:
    return ProtocolError(code, f"{op}: {message}")


class Args:
    """Reads one op's argument map; every getter checks type and range, `finish` refuses leftover keys."""

    def __init__(self, op: str, raw: dict):
        self.op = op
        self.raw = raw
        self.seen: set = set()

    def _get(self, name: str, default):
        self.seen.add(name)
        if name in self.raw and self.raw[name] is not None:
            return self.raw[name]
        if default is REQUIRED:
            raise _bad(self.op, f"missing argument {name!r}")
        return default

    def integer(self, name: str, default=REQUIRED, lo: int | None = None, hi: int | None = None):
        v = self._get(name, default)
        if v is None:
            return None
        if not isinstance(v, int) or isinstance(v, bool):
            raise _bad(self.op, f"{name!r} must be an integer, got {type(v).__name__}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise _bad(self.op, f"{name!r} must be in [{lo}, {hi}], got {v}")
        return int(v)

    def number(self, name: str, default=REQUIRED, lo: float | None = None, hi: float | None = None,
               positive: bool = False):
        v = self._get(name, default)
        if v is None:
            return None
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise _bad(self.op, f"{name!r} must be a number, got {type(v).__name__}")
        v = float(v)
        if not np.isfinite(v):
            raise _bad(self.op, f"{name!r} must be finite, got {v}")
        if positive and v <= 0:
            raise _bad(self.op, f"{name!r} must be > 0, got {v}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise _bad(self.op, f"{name!r} must be in [{lo}, {hi}], got {v}")
        return v

    def boolean(self, name: str, default=REQUIRED) -> bool:
        v = self._get(name, default)
        if not isinstance(v, bool):
            raise _bad(self.op, f"{name!r} must be true or false, got {type(v).__name__}")
        return v

    def choice(self, name: str, choices: tuple, default=REQUIRED) -> str:
        v = self._get(name, default)
        if not isinstance(v, str) or v not in choices:
            raise _bad(self.op, f"{name!r} must be one of {list(choices)}, got {str(v)[:40]!r}")
        return v

    def string(self, name: str, max_len: int = protocol.MAX_ID_LEN, default=REQUIRED) -> str:
        v = self._get(name, default)
        if not isinstance(v, str) or not 0 < len(v) <= max_len:
            raise _bad(self.op, f"{name!r} must be a string of 1..{max_len} characters")
        return v

    def array(self, name: str, dtypes: tuple, ndim: int, default=REQUIRED) -> np.ndarray:
        v = self._get(name, default)
        if not isinstance(v, np.ndarray):
            raise _bad(self.op, f"{name!r} must be an array (see PROTOCOL.md), got {type(v).__name__}")
        if v.dtype.name not in dtypes:
            raise _bad(self.op, f"{name!r} must have dtype {' or '.join(dtypes)}, got {v.dtype.name}")
        if v.ndim != ndim:
            raise _bad(self.op, f"{name!r} must have {ndim} dimensions, got shape {list(v.shape)}")
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            raise _bad(self.op, f"{name!r} contains NaN or infinite values")
        return v

    def finish(self) -> None:
        extra = set(self.raw) - self.seen
        if extra:
            raise _bad(self.op, f"unexpected argument(s) {sorted(map(str, extra))[:8]}")


def _image(a: Args, limits: OpLimits, name: str = "image") -> np.ndarray:
    img = a.array(name, ("uint8",), 3)
    h, w, c = img.shape
    if c != 3 or h < 1 or w < 1:
        raise _bad(a.op, f"{name!r} must be (H, W, 3) RGB with H, W >= 1, got shape {list(img.shape)}")
    if h * w > limits.max_pixels:
        raise _bad(a.op, f"{name!r} of {w}x{h} = {h * w} pixels exceeds the server's limit of "
                         f"{limits.max_pixels}", TOO_LARGE)
    return img


def _spectral(a: Args, limits: OpLimits, T: int) -> np.ndarray:
    s = a.array("spectral", ("float16", "float32"), 4)
    K, c, h, w = s.shape
    if c != 4 or K < 1 or h < 1 or w < 1:
        raise _bad(a.op, f"'spectral' must be (K, 4, h, w) with K, h, w >= 1, got shape {list(s.shape)}")
    if K > T // 2 + 1:
        raise _bad(a.op, f"'spectral' has K={K} terms but a clip of T={T} frames has only {T // 2 + 1}")
    if h * w > limits.max_pixels:
        raise _bad(a.op, f"'spectral' grid of {w}x{h} exceeds the server's limit of {limits.max_pixels} pixels",
                   TOO_LARGE)
    return s


def _clip(a: Args) -> tuple[float, int]:
    fps = a.number("fps", lo=1e-3, hi=10_000.0)
    T = a.integer("T", lo=2, hi=1_000_000)
    return fps, T


def _reply_bound(a: Args, limits: OpLimits, nbytes: int, what: str, hint: str) -> None:
    bound = min(limits.max_reply_bytes, protocol.DEFAULT_LIMITS.max_array_bytes)
    if nbytes > bound:
        raise _bad(a.op, f"the reply would carry {what} of {nbytes} bytes, more than the {bound} allowed per "
                         f"reply; {hint}", TOO_LARGE)


# --------------------------------------------------------------------------------------------------------
# validators: (args, limits) -> normalised args


def validate_ping(raw: dict, limits: OpLimits) -> dict:
    a = Args("ping", raw)
    a.finish()
    return {}


def validate_cancel(raw: dict, limits: OpLimits) -> dict:
    a = Args("cancel", raw)
    target = a.string("target")
    a.finish()
    return {"target": target}


def validate_predict(raw: dict, limits: OpLimits) -> dict:
    a = Args("predict", raw)
    out = {
        "image": _image(a, limits),
        "seed": a.integer("seed", 0, lo=0, hi=2**63 - 1),
        "samples": a.integer("samples", 1, lo=1, hi=limits.max_samples),
        "steps": a.integer("steps", None, lo=1, hi=limits.max_steps),
        "loop": a.boolean("loop", False),
        "guidance": a.number("guidance", None, lo=0.0, hi=100.0),
        "placement": a.number("placement", None, lo=0.0, hi=1.0),
    }
    a.finish()
    return out


def validate_depth(raw: dict, limits: OpLimits) -> dict:
    a = Args("depth", raw)
    out = {"image": _image(a, limits)}
    a.finish()
    h, w = out["image"].shape[:2]
    _reply_bound(a, limits, h * w * 4, "a float32 depth map", "send a smaller picture")
    if min(h, w) < 8:
        raise _bad("depth", f"'image' of {w}x{h} is too small (at least 8x8)")
    return out


def validate_render(raw: dict, limits: OpLimits) -> dict:
    a = Args("render", raw)
    image = _image(a, limits)
    fluid = a._get("velocity", None) is not None
    has_spectral = not fluid or a._get("spectral", None) is not None
    fps, T = _clip(a) if has_spectral else (a.number("fps", 30.0, lo=1e-3, hi=10_000.0),
                                            a.integer("T", 150, lo=2, hi=1_000_000))
    spectral = _spectral(a, limits, T) if has_spectral else None
    times = _times(a, limits)
    out = {
        "image": image, "spectral": spectral, "fps": fps, "T": T, "times": times,
        "scene_fps": a.number("scene_fps", fps, lo=1e-3, hi=10_000.0),
        "speed": a.number("speed", 1.0, lo=0.0, hi=1000.0, positive=True),
        "magnitude": a.number("magnitude", 1.0, lo=-1000.0, hi=1000.0),
        "loop_frames": a.integer("loop_frames", 0, lo=0, hi=10_000_000),
        "mode": a.choice("mode", ("ibr", "splat"), "ibr"),
        "displacement": _render_displacement(a, limits, len(times)),
        "velocity": None, "fluid_mask": None,
    }
    if fluid:
        out["velocity"], out["fluid_mask"] = _render_fluid(a, limits, image.shape[:2], out["loop_frames"])
        if out["displacement"] is not None:
            raise _bad(a.op, "'displacement' and 'velocity' cannot be combined")
    elif a._get("fluid_mask", None) is not None:
        raise _bad(a.op, "'fluid_mask' needs 'velocity'")
    a.finish()
    h, w = image.shape[:2]
    _reply_bound(a, limits, len(times) * h * w * 3, f"{len(times)} frames of {w}x{h}",
                 "ask for fewer `times` per request (in chunks)")
    return out


def _render_fluid(a: Args, limits: OpLimits, size_hw: tuple[int, int], loop_frames: int):
    """velocity (2, hv, wv) float32 and fluid mask bool (H, W) of an Eulerian loop; bounds checked."""
    from shared.eulerian import MAX_LOOP_FRAMES, MAX_SPEED

    v = a.array("velocity", ("float16", "float32"), 3)
    if v.shape[0] != 2 or min(v.shape[1:]) < 2:
        raise _bad(a.op, f"'velocity' must be (2, h, w) with h, w >= 2, got shape {list(v.shape)}")
    if v.shape[1] * v.shape[2] > limits.max_pixels:
        raise _bad(a.op, f"'velocity' grid of {v.shape[2]}x{v.shape[1]} exceeds the server's limit of "
                         f"{limits.max_pixels} pixels", TOO_LARGE)
    v = v.astype(np.float32)
    # px/frame of the velocity's grid, measured in the image's pixels
    scale = np.array([size_hw[1] / v.shape[2], size_hw[0] / v.shape[1]], np.float32).reshape(2, 1, 1)
    if float(np.sqrt(((v * scale) ** 2).sum(0)).max()) > MAX_SPEED:
        raise _bad(a.op, f"'velocity' exceeds {MAX_SPEED:g} px/frame (in the image's pixels)")
    m = a.array("fluid_mask", ("uint8",), 2)
    if m.shape != tuple(size_hw):
        raise _bad(a.op, f"'fluid_mask' must be (H, W) = {list(size_hw)} like the image, got {list(m.shape)}")
    if not (m >= 128).any():
        raise _bad(a.op, "'fluid_mask' is empty: no pixel >= 128 (fluid)")
    if not 2 <= loop_frames <= MAX_LOOP_FRAMES:
        raise _bad(a.op, f"a fluid loop needs 'loop_frames' in 2..{MAX_LOOP_FRAMES}, got {loop_frames}")
    return v, m >= 128


def _render_displacement(a: Args, limits: OpLimits, n: int) -> np.ndarray | None:
    """Optional per-frame fields (n, 2, h, w), one per entry of `times`; None when absent."""
    if a._get("displacement", None) is None:
        return None
    d = a.array("displacement", ("float16", "float32"), 4)
    m, c, h, w = d.shape
    if m != n or c != 2 or h < 1 or w < 1:
        raise _bad(a.op, f"'displacement' must be (n, 2, h, w) with n = len(times) = {n} and h, w >= 1, "
                         f"got shape {list(d.shape)}")
    if h * w > limits.max_pixels:
        raise _bad(a.op, f"'displacement' grid of {w}x{h} exceeds the server's limit of {limits.max_pixels} "
                         "pixels", TOO_LARGE)
    if np.abs(d.astype(np.float32)).max() > 1e6:
        raise _bad(a.op, "'displacement' must be at most 1e6 pixels in magnitude")
    return d


def _times(a: Args, limits: OpLimits) -> np.ndarray:
    raw = a._get("times", REQUIRED)
    if isinstance(raw, list):
        if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in raw):
            raise _bad(a.op, "'times' must be a float32 array or a list of numbers")
        times = np.asarray(raw, dtype=np.float64)
    else:
        times = a.array("times", ("float32", "float16"), 1).astype(np.float64)
    if times.ndim != 1 or not 1 <= len(times) <= limits.max_times:
        raise _bad(a.op, f"'times' must hold 1..{limits.max_times} frame times, got {times.size}",
                   TOO_LARGE if times.size > limits.max_times else INVALID_ARGUMENT)
    if not np.isfinite(times).all() or np.abs(times).max() > 1e9:
        raise _bad(a.op, "'times' must be finite frame numbers (|t| <= 1e9)")
    return times


POKE_KEYS = {"frame", "x", "y", "dx", "dy", "duration", "kind"}


def _pokes(a: Args, limits: OpLimits, h: int, w: int) -> list[dict]:
    raw = a._get("pokes", [])
    if not isinstance(raw, list) or len(raw) > limits.max_pokes:
        raise _bad(a.op, f"'pokes' must be a list of at most {limits.max_pokes} maps")
    pokes = []
    for i, p in enumerate(raw):
        if not isinstance(p, dict) or not {"frame", "x", "y", "dx", "dy"} <= set(p) <= POKE_KEYS:
            raise _bad(a.op, f"pokes[{i}] must be a map with frame, x, y, dx, dy and optional duration, kind")
        pa = Args(f"{a.op}: pokes[{i}]", p)
        poke = {"frame": pa.integer("frame", lo=0, hi=10**9),
                "x": pa.number("x", lo=0.0, hi=float(w - 1)), "y": pa.number("y", lo=0.0, hi=float(h - 1)),
                "dx": pa.number("dx", lo=-1e6, hi=1e6), "dy": pa.number("dy", lo=-1e6, hi=1e6),
                "duration": pa.integer("duration", 1, lo=1, hi=1_000_000),
                "kind": pa.choice("kind", ("push", "drag"), "push")}
        pa.finish()
        pokes.append(poke)
    return pokes


def _damping(a: Args, K: int):
    v = a._get("damping", 0.05)
    if isinstance(v, list):
        if len(v) != K - 1 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            raise _bad(a.op, f"'damping' must be one number or a list of {K - 1} numbers (one per mode)")
        xi = [float(x) for x in v]
        if not all(np.isfinite(x) and 0.0 <= x <= 1e3 for x in xi):
            raise _bad(a.op, "'damping' ratios must be finite and in [0, 1000]")
        return xi
    return a.number("damping", 0.05, lo=0.0, hi=1e3)


def validate_simulate(raw: dict, limits: OpLimits) -> dict:
    a = Args("simulate", raw)
    fps, T = _clip(a)
    spectral = _spectral(a, limits, T)
    K, _, h, w = spectral.shape
    rayleigh = a._get("rayleigh", None)
    if rayleigh is not None:
        if (not isinstance(rayleigh, list) or len(rayleigh) != 2
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) and x >= 0
                           for x in rayleigh)):
            raise _bad(a.op, "'rayleigh' must be [alpha, beta], two finite numbers >= 0")
        rayleigh = (float(rayleigh[0]), float(rayleigh[1]))
    out = {
        "spectral": spectral, "fps": fps, "T": T, "pokes": _pokes(a, limits, h, w),
        "start": a.integer("start", 0, lo=0, hi=10**9),   # any start costs the same; 1e9 keeps phases exact
        "count": a.integer("count", lo=1, hi=limits.max_times),
        "damping": _damping(a, K), "rayleigh": rayleigh,
        "mass": a.number("mass", 1.0, lo=0.0, hi=1e6, positive=True),
        "stiffness": a.number("stiffness", 1.0, lo=0.0, hi=1e6, positive=True),
        "normalize_modes": a.boolean("normalize_modes", False),
    }
    a.finish()
    _reply_bound(a, limits, out["count"] * 2 * h * w * 2, f"{out['count']} float16 fields of {w}x{h}",
                 "ask for a smaller `count` per request (in chunks, advancing `start`)")
    if rayleigh is not None:
        _check_rayleigh(a, rayleigh, fps, T, K, out["mass"], out["stiffness"])
    work, calibration = simulate_work(out["count"], K, h, w, out["pokes"], T)
    if work > limits.max_simulate_work:
        raise _bad(a.op, f"{out['count']} frames of {K - 1} modes on a {w}x{h} grid is {work} units of work, more "
                         f"than the {limits.max_simulate_work} allowed; ask for fewer frames per request",
                   TOO_LARGE)
    if calibration > limits.max_calibration_work:
        raise _bad(a.op, f"calibrating {calibration // T} pushes over a clip of T={T} frames is {calibration} "
                         f"units of work, more than the {limits.max_calibration_work} allowed; send fewer pokes",
                   TOO_LARGE)
    return out


def simulate_work(count: int, K: int, h: int, w: int, pokes: list, T: int) -> tuple[int, int]:
    """(work, calibration) of a simulate request, in Python ints (never overflow).

    shared.modal jumps over frames before `start` (one step per poke boundary), so the start frame costs
    nothing; what remains is stepping and synthesising `count` frames of K-1 modes on an h x w grid, the jumps,
    and one FFT of length T per push poke for its force calibration.
    """
    modes = max(K - 1, 0)
    work = count * modes * (h * w + 16) + 64 * len(pokes) * modes
    calibration = sum(1 for p in pokes if p["kind"] == "push") * T
    return work, calibration


def _check_rayleigh(a: Args, rayleigh: tuple, fps: float, T: int, K: int, mass: float, stiffness: float) -> None:
    """Rayleigh damping gives xi_k = (alpha / w_k + beta w_k) / 2: refuse ratios beyond shared.modal's range."""
    from shared.modal import MAX_DAMPING_RATIO

    alpha, beta = rayleigh
    w_s = 2 * np.pi * np.arange(1, K) / T * fps * np.sqrt(stiffness / mass)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        xi = 0.5 * (alpha / w_s + beta * w_s)
    if not np.all(np.isfinite(xi)) or np.any(xi > MAX_DAMPING_RATIO):
        raise _bad(a.op, f"'rayleigh' [alpha, beta] = [{alpha:g}, {beta:g}] gives damping ratios up to "
                         f"{float(np.max(xi)):g}; they must stay in [0, {MAX_DAMPING_RATIO:g}]")


def validate_test_sleep(raw: dict, limits: OpLimits) -> dict:
    a = Args("_test_sleep", raw)
    out = {"steps": a.integer("steps", lo=1, hi=10_000), "delay": a.number("delay", 0.0, lo=0.0, hi=10.0)}
    a.finish()
    return out


def validate_test_spectral(raw: dict, limits: OpLimits) -> dict:
    a = Args("_test_spectral", raw)
    out = {"width": a.integer("width", lo=1, hi=8192), "height": a.integer("height", lo=1, hi=8192),
           "K": a.integer("K", 16, lo=1, hi=64), "samples": a.integer("samples", 1, lo=1, hi=limits.max_samples),
           "seed": a.integer("seed", 0, lo=0, hi=2**32 - 1)}
    a.finish()
    _reply_bound(a, limits, out["samples"] * out["K"] * 4 * out["width"] * out["height"] * 2,
                 "a spectral volume", "ask for a smaller one")
    return out


# --------------------------------------------------------------------------------------------------------
# models: loaded lazily, once, by the worker thread


class ModelUnavailable(Exception):
    """No model of this kind can be loaded (weights missing, module not there yet)."""


class Models:
    """The worker's models. Loaded on first use and kept; `status()` is safe to call from any thread."""

    def __init__(self, device: str = "auto", checkpoint: str | None = None):
        self.device = device
        self.checkpoint = checkpoint
        self._motion = None
        self._renderer = None
        self._lock = threading.Lock()
        self._status: dict[str, dict] = {"motion": {"state": "not_loaded"}, "render": {"state": "not_loaded"}}

    def fluid_motion(self, args: dict):
        """The integrated fluid loop of a render request; the last one is kept, so a bake asking in chunks
        integrates once (keyed by a digest of velocity, mask and loop length)."""
        import hashlib

        from ..render.fluid import FluidMotion

        h = hashlib.blake2b(digest_size=16)
        for part in (args["velocity"], args["fluid_mask"]):
            h.update(str(part.shape).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        key = (h.hexdigest(), int(args["loop_frames"]))
        cached = getattr(self, "_fluid_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, FluidMotion.prepare(args["velocity"], args["fluid_mask"], args["loop_frames"]))
            self._fluid_cache = cached
        return cached[1]

    def _set(self, part: str, **status) -> None:
        with self._lock:
            self._status[part] = status

    def status(self) -> dict:
        with self._lock:
            return {k: dict(v) for k, v in self._status.items()}

    def _load(self, part: str, loader: Callable[[], Any]):
        t0 = time.perf_counter()
        self._set(part, state="loading")
        try:
            model = loader()
        except (ImportError, FileNotFoundError, ValueError, RuntimeError, OSError) as exc:
            # Not cached: weights may appear later (training in progress); loading again is cheap when absent.
            self._set(part, state="unavailable", error=f"{type(exc).__name__}: {exc}"[:500])
            raise ModelUnavailable(f"{type(exc).__name__}: {exc}") from exc
        info = {}
        try:
            info = _plain(model.info())
        except Exception as exc:  # info() is diagnostics only; a failure there must not lose the model
            info = {"info_error": str(exc)[:200]}
        self._set(part, state="loaded", info=info, load_seconds=round(time.perf_counter() - t0, 3))
        log.info("%s model loaded in %.2f s: %s", part, time.perf_counter() - t0, info)
        return model

    def motion(self):
        if self._motion is None:
            def load():
                from ..motion.predictor import MotionPredictor
                return MotionPredictor.load(checkpoint_dir=self.checkpoint, device=self.device)
            self._motion = self._load("motion", load)
        return self._motion

    def renderer(self):
        if self._renderer is None:
            def load():
                from ..render.api import Renderer
                return Renderer.load(checkpoint_dir=self._part_dir("render"), device=self.device)
            self._renderer = self._load("render", load)
        return self._renderer

    def _part_dir(self, part: str):
        """`checkpoint` is a weights root laid out like backend/weights/default (<root>/<part>/); None = default."""
        return None if self.checkpoint is None else str(Path(self.checkpoint) / part)


def _plain(obj, depth: int = 0):
    """Make model info msgpack-safe (str keys, plain numbers, short strings)."""
    if depth > 6:
        return str(obj)[:200]
    if isinstance(obj, dict):
        return {str(k): _plain(v, depth + 1) for k, v in list(obj.items())[:64]}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, depth + 1) for v in list(obj)[:64]]
    if isinstance(obj, (bool, int, float)) or obj is None:
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)[:200]


# --------------------------------------------------------------------------------------------------------
# runners: (validated args, models, ctx) -> result map; called on the worker thread only


def _to_float16(a: np.ndarray, what: str, code: str) -> np.ndarray:
    """float16 for the wire, or ProtocolError(code): a NaN, an infinity or a value beyond float16's range is never
    sent as a number it is not (they were zeroed or clipped once)."""
    a = np.asarray(a, np.float32)
    finite = np.isfinite(a)
    if not finite.all():
        raise ProtocolError(code, f"{what} has {int(a.size - finite.sum())} non-finite values (NaN or infinite); "
                                  "nothing is sent")
    if a.size and np.abs(a).max() > FLOAT16_MAX:
        raise ProtocolError(code, f"{what} reaches {float(np.abs(a).max()):.4g}, beyond float16's "
                                  f"{FLOAT16_MAX:g}; nothing is sent")
    return a.astype(np.float16)


def run_predict(args: dict, models: Models, ctx: JobContext) -> dict:
    try:
        predictor = models.motion()
    except ModelUnavailable as exc:
        raise ProtocolError(INVALID_ARGUMENT, f"predict: no motion model loaded: {exc}") from None
    with _autocast_on(getattr(predictor, "device", None)):       # mixed precision on CUDA, none on the CPU
        pred = predictor.predict(args["image"], seed=args["seed"], samples=args["samples"], steps=args["steps"],
                                 loop=args["loop"], guidance=args["guidance"], ctx=ctx,
                                 placement=args["placement"])
    spectral = np.asarray(pred.spectral)
    if spectral.ndim != 5 or spectral.shape[2] != 4:
        raise RuntimeError(f"motion predictor returned spectral of shape {spectral.shape}, not (N,K,4,h,w)")
    h, w = args["image"].shape[:2]
    return {"spectral": _to_float16(spectral, "predict: the predicted spectral volume", INTERNAL),
            "fps": float(pred.fps), "T": int(pred.T), "size": [int(w), int(h)]}


def run_depth(args: dict, models: Models, ctx: JobContext) -> dict:
    from ..priors.depth import estimate_inverse_depth

    ctx.step("depth", 0.0)
    depth = estimate_inverse_depth(args["image"], device="cpu")
    ctx.step("depth", 1.0)
    return {"depth": np.ascontiguousarray(depth, np.float32)}


def run_render(args: dict, models: Models, ctx: JobContext) -> dict:
    try:
        renderer = models.renderer()
    except ModelUnavailable as exc:
        raise ProtocolError(INVALID_ARGUMENT, f"render: no renderer loaded: {exc}") from None
    if args["mode"] not in _renderer_modes(renderer):
        raise ProtocolError(INVALID_ARGUMENT, f"render: mode {args['mode']!r} has no model loaded "
                                              f"({models.status()['render'].get('info', {}).get('ibr_error')}); "
                                              f"use mode 'splat' or install trained weights")
    if args["velocity"] is not None:
        spectral = None if args["spectral"] is None else args["spectral"].astype(np.float32)
        frames = renderer.render_fluid(args["image"], models.fluid_motion(args), args["times"], spectral=spectral,
                                       fps=args["fps"], T=args["T"], scene_fps=args["scene_fps"],
                                       speed=args["speed"], magnitude=args["magnitude"], mode=args["mode"], ctx=ctx)
    else:
        render = renderer.render
        if getattr(getattr(renderer, "device", None), "type", None) == "cuda":
            # the GPU path: many frames per low-resolution call, autocast, compile (backend/render/batch.py)
            from ..render.batch import BatchRenderer
            render = BatchRenderer(renderer).render
        frames = render(args["image"], args["spectral"].astype(np.float32), args["fps"], args["T"],
                        args["times"], scene_fps=args["scene_fps"], speed=args["speed"],
                        magnitude=args["magnitude"], loop_frames=args["loop_frames"], mode=args["mode"],
                        ctx=ctx, displacement=None if args["displacement"] is None
                        else args["displacement"].astype(np.float32))
    frames = np.asarray(frames)
    h, w = args["image"].shape[:2]
    if frames.dtype != np.uint8 or frames.shape != (len(args["times"]), h, w, 3):
        raise RuntimeError(f"renderer returned {frames.dtype} {frames.shape}, expected uint8 "
                           f"{(len(args['times']), h, w, 3)}")
    return {"frames": frames}


def _autocast_on(device):
    import contextlib

    import torch

    from ..device import autocast
    return autocast(device) if isinstance(device, torch.device) else contextlib.nullcontext()


def _renderer_modes(renderer) -> list:
    try:
        return list(renderer.info().get("modes", ["ibr", "splat"]))
    except Exception:  # info is diagnostics; let render itself decide
        return ["ibr", "splat"]


def run_simulate(args: dict, models: Models, ctx: JobContext) -> dict:
    try:
        from shared.modal import simulate
    except ImportError as exc:
        raise ProtocolError(INVALID_ARGUMENT, f"simulate: modal dynamics not available: {exc}") from None
    disp = simulate(args["spectral"].astype(np.float32), args["fps"], args["T"], args["pokes"], args["start"],
                    args["count"], damping=args["damping"], mass=args["mass"], stiffness=args["stiffness"],
                    rayleigh=args["rayleigh"], normalize_modes=args["normalize_modes"], ctx=ctx)
    return {"displacement": _to_float16(disp, "simulate: the displacement (lower dx, dy or raise damping)",
                                        INVALID_ARGUMENT)}


def run_test_sleep(args: dict, models: Models, ctx: JobContext) -> dict:
    """Test-only transport op: `steps` step boundaries `delay` seconds apart, no model."""
    n = args["steps"]
    for i in range(n):
        ctx.step("sleep", i / n)
        if args["delay"]:
            ctx.cancel_event.wait(args["delay"])  # wakes early on cancel; the next step raises Cancelled
    ctx.step("sleep", 1.0)
    return {"steps": n}


def run_test_spectral(args: dict, models: Models, ctx: JobContext) -> dict:
    """Test-only transport op: a random float16 spectral volume shaped like predict's result, no model."""
    ctx.step("spectral", 0.0)
    rng = np.random.default_rng(args["seed"])
    shape = (args["samples"], args["K"], 4, args["height"], args["width"])
    spectral = rng.standard_normal(shape, dtype=np.float32).astype(np.float16)
    return {"spectral": spectral, "fps": 30.0, "T": 150, "size": [args["width"], args["height"]]}


# --------------------------------------------------------------------------------------------------------
# the table


@dataclass(frozen=True)
class OpSpec:
    name: str
    validate: Callable[[dict, OpLimits], dict]
    run: Callable[[dict, Models, JobContext], dict] | None  # None: answered by the socket thread itself
    test_only: bool = False


OPS: dict[str, OpSpec] = {spec.name: spec for spec in (
    OpSpec("ping", validate_ping, None),
    OpSpec("cancel", validate_cancel, None),
    OpSpec("predict", validate_predict, run_predict),
    OpSpec("render", validate_render, run_render),
    OpSpec("simulate", validate_simulate, run_simulate),
    OpSpec("depth", validate_depth, run_depth),
    OpSpec("_test_sleep", validate_test_sleep, run_test_sleep, test_only=True),
    OpSpec("_test_spectral", validate_test_spectral, run_test_spectral, test_only=True),
)}


def available_ops(test_ops: bool = False) -> dict[str, OpSpec]:
    return {name: spec for name, spec in OPS.items() if test_ops or not spec.test_only}
