"""User controls -> displacement fields, in numpy only (no bpy; the add-on's operators feed it values).

Every field here is (n, 2, H, W) float32 in pixels of an (H, W) image, x right, y down, relative to the start
frame (frame `start` shows the still). Motion itself always comes from `shared.spectral`
(`displacement_for_frames`, or its building blocks when speed is animated), so the live path, the bake and the
backend's renderer move identically.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .vendor import spectral as sp


@dataclass
class Plan:
    """Which scene frames a displacement sequence covers and the control values at each.

    frames: (n,) absolute scene frames written as files 1..n (file 1 shows at scene frame frames[0]);
    cyclic: the sequence repeats (exact loops); start: scene frame of motion time 0 (the still); tau: (n,) motion time in scene frames from `start` (the integral of
    speed when speed is animated, else frames - start); the other arrays are per-frame control values.
    """

    frames: np.ndarray
    cyclic: bool
    start: int
    loop_frames: int
    speed: float                 # static speed (used when speed_animated is False)
    speed_animated: bool
    tau: np.ndarray
    magnitude: np.ndarray
    direction: np.ndarray
    bias: np.ndarray
    ambient_weight: np.ndarray
    poke_weight: np.ndarray

    @property
    def count(self) -> int:
        return int(len(self.frames))


def integrate_speed(frames: np.ndarray, start: int, speed_at) -> np.ndarray:
    """tau(f) = sum of speed over the scene frames between start and f (negative before start)."""
    frames = np.asarray(frames, dtype=np.int64)
    lo, hi = int(min(frames.min(), start)), int(max(frames.max(), start))
    speeds = np.array([speed_at(f) for f in range(lo, hi + 1)], dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(speeds)])          # cum[i] = sum of speeds lo .. lo+i-1
    return cum[frames - lo] - cum[start - lo]


class Ambient:
    """The ambient motion of one spectral volume for one plan, ready to evaluate at any output size.

    Built once per apply: the loop (`shared.spectral.make_loop`, the same call `displacement_for_frames`
    makes) or the clip's own terms are computed at the volume's own grid, and their complex coefficients are
    resized to `size` with `sp.resize_field`. Evaluation and resizing are both linear, so this equals evaluating
    at the grid and resizing every frame (what the backend's renderer does), at a fraction of the cost.
    """

    def __init__(self, spectral: np.ndarray, T: int, fps: float, scene_fps: float, plan: Plan,
                 size: tuple[int, int]):
        self.plan = plan
        if plan.loop_frames > 0:
            speed = 1.0 if plan.speed_animated else plan.speed     # animated speed walks the loop at tau
            loop = sp.make_loop(spectral, T, fps, plan.loop_frames, scene_fps, speed)
            coeffs, self.cycles_per_frame = loop.coeffs, loop.cycles / plan.loop_frames
            self.time_scale = 1.0
        else:
            c = sp.to_complex(spectral)
            coeffs = c * sp.term_amplitudes(c.shape[0], T)[:, None, None, None]
            self.cycles_per_frame = np.arange(c.shape[0]) / T
            # scene frames -> clip frames (static speed scales time; animated speed is already in tau)
            self.time_scale = (fps / scene_fps) * (1.0 if plan.speed_animated else plan.speed)
        m = len(coeffs)
        self.shape = (2, size[1], size[0])
        # real and imaginary parts as contiguous float32 matrices (M, 2*H*W): one GEMM each per chunk
        self.re = sp.resize_field(coeffs.real.astype(np.float32), size).reshape(m, -1) if m else None
        self.im = sp.resize_field(coeffs.imag.astype(np.float32), size).reshape(m, -1) if m else None
        # an exact loop repeats every loop_frames: evaluate one period once when the plan is longer
        self._period = None
        if plan.loop_frames > 0 and not plan.speed_animated and plan.count > plan.loop_frames and m:
            self._period = self._evaluate(np.arange(plan.loop_frames, dtype=np.float64))

    def _evaluate(self, times: np.ndarray) -> np.ndarray:
        if self.re is None:
            return np.zeros((len(times),) + self.shape, np.float32)
        phase = 2.0 * np.pi * np.outer(times * self.time_scale, self.cycles_per_frame)   # (n, M)
        # Re sum_m a_m (exp(i phase) - 1): relative to the start frame
        out = (np.cos(phase) - 1.0).astype(np.float32) @ self.re - np.sin(phase).astype(np.float32) @ self.im
        return out.reshape((len(times),) + self.shape)

    def __call__(self, index: slice) -> np.ndarray:
        """(n, 2, H, W) ambient displacement for plan frames [index], magnitude 1, no bias or mask."""
        plan = self.plan
        if plan.speed_animated:
            return self._evaluate(plan.tau[index])
        rel = plan.frames[index] - plan.start
        if self._period is not None:
            return self._period[np.mod(rel, plan.loop_frames)]
        return self._evaluate(rel.astype(np.float64))


class PokeResponse:
    """Poke response as modal coordinates, evaluated at any output size.

    The simulation (`shared.modal`) gives complex coordinates z (n, M) per scene frame; the displacement is
    D_t = Re sum_m phi_m z_m(t) (`shared.modal.displacement_from_modes`). Mode shapes phi (M, 2, h, w) are
    resized to `size` once (linear, so this equals resizing every simulated frame), then each chunk of frames
    is one GEMM, and the stored response is a few kilobytes instead of a field per frame.
    """

    def __init__(self, z: np.ndarray, first_frame: int, shapes: np.ndarray, size: tuple[int, int]):
        self.z = np.asarray(z, np.complex128)
        self.first = int(first_frame)
        m = shapes.shape[0]
        self.shape = (2, size[1], size[0])
        re = sp.resize_field(shapes.real.astype(np.float32), size).reshape(m, -1)
        im = sp.resize_field(shapes.imag.astype(np.float32), size).reshape(m, -1)
        self.right = np.concatenate([re, im], axis=0)                     # (2M, 2*H*W)

    @property
    def last_frame(self) -> int:
        return self.first + len(self.z) - 1

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """(n, 2, H, W) at scene frames (zero outside the simulated range)."""
        idx = np.asarray(frames) - self.first
        ok = (idx >= 0) & (idx < len(self.z))
        z = np.zeros((len(idx), self.z.shape[1]), np.complex128)
        z[ok] = self.z[idx[ok]]
        left = np.concatenate([z.real, -z.imag], axis=1).astype(np.float32)
        return (left @ self.right).reshape((len(idx),) + self.shape)


def resample_time_complex(z: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Linear interpolation of (m, M) complex coordinates at real positions (clamped to [0, m-1])."""
    m = z.shape[0]
    t = np.clip(np.asarray(times, np.float64), 0.0, m - 1)
    i0 = np.floor(t).astype(np.int64)
    i1 = np.minimum(i0 + 1, m - 1)
    a = (t - i0)[:, None]
    return z[i0] * (1.0 - a) + z[i1] * a


def ambient(spectral: np.ndarray, T: int, fps: float, scene_fps: float, plan: Plan, index: slice) -> np.ndarray:
    """Ambient motion (n, 2, H, W) for plan frames [index] at the volume's own size (see `Ambient`)."""
    h, w = spectral.shape[-2:]
    return Ambient(spectral, T, fps, scene_fps, plan, (w, h))(index)


def apply_direction(fields: np.ndarray, angle, bias) -> np.ndarray:
    """f' = (1 - b) f + b (f . u) u per frame, u the unit direction (x right, y down; angle counter-clockwise
    from +x as seen in the image). angle, bias: scalars or (n,) arrays."""
    n = fields.shape[0]
    angle = np.broadcast_to(np.asarray(angle, np.float64), (n,))
    bias = np.broadcast_to(np.asarray(bias, np.float64), (n,))
    if not np.any(bias):
        return fields
    ux, uy = np.cos(angle), -np.sin(angle)
    along = fields[:, 0] * ux[:, None, None] + fields[:, 1] * uy[:, None, None]
    out = fields * (1.0 - bias)[:, None, None, None]
    out[:, 0] += (bias * ux)[:, None, None] * along
    out[:, 1] += (bias * uy)[:, None, None] * along
    return out.astype(np.float32, copy=False)


def apply_direction_spectral(spectral: np.ndarray, angle: float, bias: float) -> np.ndarray:
    """The same projection on a spectral volume (K, 4, h, w); it is linear, so it commutes with the inverse FFT."""
    if not bias:
        return spectral
    s = np.asarray(spectral, dtype=np.float32)
    re = apply_direction(s[:, [0, 2]], np.full(len(s), angle), np.full(len(s), bias))
    im = apply_direction(s[:, [1, 3]], np.full(len(s), angle), np.full(len(s), bias))
    out = np.empty_like(s)
    out[:, 0], out[:, 2], out[:, 1], out[:, 3] = re[:, 0], re[:, 1], im[:, 0], im[:, 1]
    return out


def controlled(spectral, T: int, fps: float, scene_fps: float, plan: Plan, index: slice,
               mask: np.ndarray | None = None, pokes: np.ndarray | None = None) -> np.ndarray:
    """Final displacement (n, 2, H, W) for plan frames [index]:
    mask * (ambient_weight * magnitude * direction(ambient) + poke_weight * pokes).
    spectral: a (K, 4, h, w) volume (evaluated at its own size) or a prepared `Ambient` (any size)."""
    amb = spectral if isinstance(spectral, Ambient) else Ambient(spectral, T, fps, scene_fps, plan,
                                                                 (spectral.shape[-1], spectral.shape[-2]))
    f = amb(index)
    f = apply_direction(f, plan.direction[index], plan.bias[index])
    f *= (plan.magnitude[index] * plan.ambient_weight[index])[:, None, None, None].astype(np.float32)
    if pokes is not None:
        f += pokes * plan.poke_weight[index][:, None, None, None].astype(np.float32)
    if mask is not None:
        f *= mask[None, None]
    return f.astype(np.float32, copy=False)


def to_uv_offset(fields: np.ndarray) -> np.ndarray:
    """Pixels (x right, y down) -> UV units (u right, v up) of an (H, W) image: (n, 2, H, W)."""
    h, w = fields.shape[-2:]
    out = np.empty_like(fields)
    out[:, 0] = fields[:, 0] / w
    out[:, 1] = -fields[:, 1] / h
    return out


def live_size(size: tuple[int, int], max_width: int) -> tuple[int, int]:
    """(W, H) of the displacement maps: the image's size, shrunk to at most max_width wide."""
    w, h = int(size[0]), int(size[1])
    if w <= max_width:
        return w, h
    return max_width, max(1, int(round(h * max_width / w)))
