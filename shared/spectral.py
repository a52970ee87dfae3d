"""Spectral volumes: per-pixel Fourier motion (SPEC section 1), speed, magnitude and exact loops.

Pure numpy; imported by the backend and, vendored, by the Blender add-on (live displacement needs it there).

Conventions (SPEC section 1):
- a motion texture is float32 (T, 2, H, W): F_t(p) = displacement in pixels of pixel p of I0 at frame t,
  channel 0 = x (right), channel 1 = y (down).
- a spectral volume is float32 (K, 4, H, W): S_k = rfft_t(F)[k] for k = 0..K-1 (numpy's unnormalised forward
  FFT, so amplitudes grow with T), channels CHANNELS = (Re x, Im x, Re y, Im y). It always travels with the
  clip's `fps` and `T`; term k has frequency k * fps / T Hz.
- displacement of a frame is always taken relative to frame 0 (F_t - F_0) so that frame 0 reproduces I0.

The inverse is evaluated in closed form at any real time t (in frames of the clip):
    F(t) = Re sum_k a_k exp(2 pi i k t / T),   a_0 = S_0 / T, a_k = 2 S_k / T (k = T/2 when T is even: S_k / T),
which equals irfft(S zero-padded, n=T)[t] at integer t. F(t) - F(0) does not depend on the DC term.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

K_DEFAULT = 16
CHANNELS = ("re_x", "im_x", "re_y", "im_y")


# --------------------------------------------------------------------------------------------------------
# packing: (K, 4, H, W) float <-> (K, 2, H, W) complex


def to_complex(spectral: np.ndarray) -> np.ndarray:
    """(..., 4, H, W) real channels (Re x, Im x, Re y, Im y) -> (..., 2, H, W) complex (x, y)."""
    s = np.asarray(spectral)
    if s.shape[-3] != 4:
        raise ValueError(f"spectral volume needs 4 channels on axis -3, got shape {s.shape}")
    return s[..., 0::2, :, :].astype(np.float64) + 1j * s[..., 1::2, :, :].astype(np.float64)


def from_complex(coeffs: np.ndarray, dtype=np.float32) -> np.ndarray:
    """(..., 2, H, W) complex (x, y) -> (..., 4, H, W) real channels (Re x, Im x, Re y, Im y)."""
    c = np.asarray(coeffs)
    out = np.empty(c.shape[:-3] + (4,) + c.shape[-2:], dtype=dtype)
    out[..., 0::2, :, :] = c.real
    out[..., 1::2, :, :] = c.imag
    return out


# --------------------------------------------------------------------------------------------------------
# motion texture <-> spectral volume


def motion_to_spectral(motion: np.ndarray, K: int = K_DEFAULT) -> np.ndarray:
    """Motion texture (T, 2, H, W) -> spectral volume (K, 4, H, W) float32 (first K rfft terms along time)."""
    m = np.asarray(motion, dtype=np.float64)
    if m.ndim != 4 or m.shape[1] != 2:
        raise ValueError(f"motion must be (T, 2, H, W), got {m.shape}")
    T = m.shape[0]
    if K > T // 2 + 1:
        raise ValueError(f"K={K} exceeds the {T // 2 + 1} rfft terms of T={T}")
    spectrum = np.fft.rfft(m, axis=0)[:K]
    return from_complex(spectrum)


def spectral_to_motion(spectral: np.ndarray, T: int) -> np.ndarray:
    """Spectral volume (K, 4, H, W) -> motion texture (T, 2, H, W) float32 (irfft, terms above K are zero)."""
    c = to_complex(spectral)
    K = c.shape[0]
    if K > T // 2 + 1:
        raise ValueError(f"K={K} exceeds the {T // 2 + 1} rfft terms of T={T}")
    full = np.zeros((T // 2 + 1,) + c.shape[1:], dtype=np.complex128)
    full[:K] = c
    return np.fft.irfft(full, n=T, axis=0).astype(np.float32)


def term_amplitudes(K: int, T: int) -> np.ndarray:
    """a_k / S_k for the closed-form inverse: 1/T for DC (and Nyquist), 2/T otherwise."""
    w = np.full(K, 2.0 / T)
    w[0] = 1.0 / T
    if T % 2 == 0 and K > T // 2:
        w[T // 2] = 1.0 / T
    return w


def evaluate_terms(coeffs: np.ndarray, cycles_per_frame: np.ndarray, times: np.ndarray,
                   relative: bool = True, dtype=np.float32) -> np.ndarray:
    """Sum of cosines: Re sum_k coeffs_k exp(2 pi i f_k t) at each time, minus its value at t=0 if relative.

    coeffs: complex (K, 2, H, W) amplitudes; cycles_per_frame: (K,) f_k; times: (n,) real frame times.
    Returns (n, 2, H, W).
    """
    times = np.atleast_1d(np.asarray(times, dtype=np.float64))
    f = np.asarray(cycles_per_frame, dtype=np.float64)
    phase = np.exp(2j * np.pi * np.outer(times, f))            # (n, K)
    if relative:
        phase = phase - 1.0
    K, two, H, W = coeffs.shape
    flat = coeffs.reshape(K, two * H * W)
    # Re(sum_k phase_nk c_k) = Re(phase) @ Re(c) - Im(phase) @ Im(c): one real matmul over [Re c; Im c],
    # on contiguous float32 (strided complex views are ~10x slower in BLAS).
    basis = np.concatenate([phase.real, -phase.imag], axis=1).astype(np.float32)        # (n, 2K)
    stacked = np.concatenate([flat.real, flat.imag], axis=0).astype(np.float32)         # (2K, 2HW)
    out = basis @ stacked
    return out.reshape(len(times), two, H, W).astype(dtype, copy=False)


def displacement_at(spectral: np.ndarray, T: int, times, speed: float = 1.0, magnitude: float = 1.0,
                    relative: bool = True) -> np.ndarray:
    """Displacement (n, 2, H, W) at real times (in frames of the clip), closed form.

    speed scales time (2 = twice as fast), magnitude scales amplitude. relative=True gives F_t - F_0, the
    field to render with so that t=0 reproduces I0 (SPEC section 1).
    """
    c = to_complex(spectral)
    K = c.shape[0]
    a = c * term_amplitudes(K, T)[:, None, None, None] * magnitude
    f = np.arange(K) / T
    return evaluate_terms(a, f, np.asarray(times, dtype=np.float64) * speed, relative=relative)


# --------------------------------------------------------------------------------------------------------
# exact loops


@dataclass(frozen=True)
class Loop:
    """A motion that repeats exactly every `frames` scene frames.

    coeffs: complex (M, 2, H, W) amplitudes; cycles: (M,) integer cycles per loop. Displacement at scene
    frame n is Re sum_m coeffs_m (exp(2 pi i cycles_m n / frames) - 1); every term has an integer number of
    cycles, so position and velocity at n = frames equal those at n = 0 to float precision.
    """

    coeffs: np.ndarray
    cycles: np.ndarray
    frames: int

    def displacement(self, scene_frames, magnitude: float = 1.0) -> np.ndarray:
        """(n, 2, H, W) displacement at scene frames (any reals; frame 0 is the start of the loop)."""
        if len(self.cycles) == 0:
            n = len(np.atleast_1d(scene_frames))
            return np.zeros((n,) + self.coeffs.shape[1:], np.float32)
        return evaluate_terms(self.coeffs * magnitude, self.cycles / self.frames, scene_frames)


def make_loop(spectral: np.ndarray, T: int, fps: float, loop_frames: int, scene_fps: float,
              speed: float = 1.0, max_energy_gain: float = 4.0) -> Loop:
    """Snap every term to the nearest whole number of cycles per loop of `loop_frames` at `scene_fps`.

    Term k oscillates at k * fps / T * speed Hz, i.e. k * fps * speed * loop_frames / (T * scene_fps) cycles per
    loop; that is rounded to an integer m_k. Terms with the same m_k are summed (they become one oscillation);
    terms that collapse to m_k = 0 would be a frozen offset and are dropped; per pixel, the kept terms are
    scaled so the oscillation energy (sum of |a|^2) is what it was, by at most `max_energy_gain` in amplitude.
    The loop length and scene fps are the user's, independent of the model's fps and T.
    """
    if loop_frames < 1:
        raise ValueError(f"loop_frames must be >= 1, got {loop_frames}")
    if fps <= 0 or scene_fps <= 0 or speed <= 0:
        raise ValueError("fps, scene_fps and speed must be positive")
    c = to_complex(spectral)
    K = c.shape[0]
    a = c * term_amplitudes(K, T)[:, None, None, None]
    cycles = np.rint(np.arange(K) * fps * speed * loop_frames / (T * scene_fps)).astype(np.int64)
    # A loop of L frames can only show up to L/2 cycles (Nyquist of the scene's frame rate).
    cycles = np.minimum(cycles, loop_frames // 2)
    kept_m = sorted(set(int(m) for m in cycles[1:] if m > 0))
    if not kept_m:
        return Loop(np.zeros((0,) + a.shape[1:], np.complex128), np.zeros(0, np.int64), loop_frames)
    merged = np.stack([a[1:][cycles[1:] == m].sum(axis=0) for m in kept_m])
    energy_before = (np.abs(a[1:]) ** 2).sum(axis=(0, 1))
    energy_after = (np.abs(merged) ** 2).sum(axis=(0, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.sqrt(np.where(energy_after > 0, energy_before / energy_after, 1.0))
    gain = np.clip(gain, 0.0, max_energy_gain)
    return Loop(merged * gain[None, None], np.asarray(kept_m, np.int64), loop_frames)


def scene_frame_times(scene_frames, fps: float, scene_fps: float, speed: float = 1.0) -> np.ndarray:
    """Scene frame numbers (relative to the start frame) -> clip frame times for `displacement_at`."""
    return np.asarray(scene_frames, dtype=np.float64) * (fps / scene_fps) * speed


# --------------------------------------------------------------------------------------------------------
# frequency-adaptive normalisation (SPEC section 2, paper Eq. 4)


@dataclass(frozen=True)
class NormStats:
    """Per-frequency scale s_k: the `percentile` of |coefficient| (each real scalar) over a training set."""

    scales: np.ndarray  # (K,) float32
    percentile: float = 95.0

    def to_dict(self) -> dict:
        return {"scales": [float(s) for s in self.scales], "percentile": float(self.percentile)}

    @classmethod
    def from_dict(cls, d: dict) -> "NormStats":
        scales = np.asarray(d["scales"], dtype=np.float32)
        if scales.ndim != 1 or not np.all(np.isfinite(scales)) or np.any(scales <= 0):
            raise ValueError("normalisation scales must be a 1-D list of positive finite numbers")
        return cls(scales, float(d.get("percentile", 95.0)))


def compute_norm_stats(volumes, percentile: float = 95.0, values_per_volume: int = 20_000,
                       seed: int = 0) -> NormStats:
    """Per-frequency percentile of |S_k| (each real scalar) over an iterable of spectral volumes (K, 4, H, W).

    Each volume contributes a uniform random subsample of at most `values_per_volume` values per frequency,
    so memory stays small for a data set of any size streamed from disk.
    """
    rng = np.random.default_rng(seed)
    pools: list[list[np.ndarray]] | None = None
    for vol in volumes:
        per = np.abs(np.asarray(vol, dtype=np.float32)).reshape(np.shape(vol)[0], -1)
        if pools is None:
            pools = [[] for _ in range(per.shape[0])]
        if per.shape[1] > values_per_volume:
            per = per[:, rng.choice(per.shape[1], values_per_volume, replace=False)]
        for k, vals in enumerate(per):
            pools[k].append(vals)
    if pools is None:
        raise ValueError("no spectral volumes given")
    scales = np.array([np.percentile(np.concatenate(p), percentile) for p in pools], dtype=np.float32)
    # A frequency with no motion at all in the data would divide by zero: give it a tiny positive scale.
    return NormStats(np.maximum(scales, 1e-6), percentile)


def normalize(spectral: np.ndarray, stats: NormStats) -> np.ndarray:
    """S' = sign(S) sqrt(|S / s_k|) per real scalar; spectral (..., K, 4, H, W)."""
    s = np.asarray(spectral, dtype=np.float32)
    scale = stats.scales.reshape((-1, 1, 1, 1))
    return (np.sign(s) * np.sqrt(np.abs(s) / scale)).astype(np.float32)


def denormalize(normalized: np.ndarray, stats: NormStats) -> np.ndarray:
    """Inverse of `normalize`: S = sign(S') S'^2 s_k."""
    n = np.asarray(normalized, dtype=np.float32)
    scale = stats.scales.reshape((-1, 1, 1, 1))
    return (np.sign(n) * n * n * scale).astype(np.float32)


# --------------------------------------------------------------------------------------------------------
# resampling to another image size


def _linear_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of a triangle filter, widened when shrinking (anti-aliased, pixel centres aligned)."""
    scale = n_in / n_out
    support = max(1.0, scale)
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    x = np.arange(n_in)
    w = np.maximum(0.0, 1.0 - np.abs(x[None, :] - centres[:, None]) / support)
    row_sum = w.sum(axis=1, keepdims=True)
    # Near the borders, clamp-to-edge: put missing weight on the nearest pixel.
    empty = row_sum[:, 0] == 0
    if np.any(empty):
        nearest = np.clip(np.rint(centres[empty]).astype(int), 0, n_in - 1)
        w[np.where(empty)[0], nearest] = 1.0
        row_sum = w.sum(axis=1, keepdims=True)
    return w / row_sum


def resize_planes(planes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (..., H, W) planes to size = (W, H) with linear interpolation (area-like when shrinking)."""
    w_out, h_out = int(size[0]), int(size[1])
    p = np.asarray(planes, dtype=np.float32)
    h_in, w_in = p.shape[-2:]
    if (h_in, w_in) == (h_out, w_out):
        return p.copy()
    ry = _linear_weights(h_in, h_out).astype(np.float32)
    rx = _linear_weights(w_in, w_out).astype(np.float32)
    # Two plain 2-D GEMMs over all planes at once (a batched matmul of small matrices is many times slower).
    lead = p.shape[:-2]
    flat = p.reshape(-1, w_in) @ rx.T                                        # (N*h_in, w_out)
    flat = flat.reshape(-1, h_in, w_out).transpose(0, 2, 1).reshape(-1, h_in) @ ry.T   # (N*w_out, h_out)
    return np.ascontiguousarray(flat.reshape(-1, w_out, h_out).transpose(0, 2, 1)).reshape(lead + (h_out, w_out))


def resize_field(field: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize displacement fields (..., 2, H, W) to (W, H); vectors are rescaled to the new pixel size."""
    f = np.asarray(field, dtype=np.float32)
    h_in, w_in = f.shape[-2:]
    out = resize_planes(f, size)
    out[..., 0, :, :] *= size[0] / w_in
    out[..., 1, :, :] *= size[1] / h_in
    return out


def resample_spectral(spectral: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Spectral volume(s) (..., K, 4, H, W) at another image size (W, H); x terms scale with W, y with H."""
    s = np.asarray(spectral, dtype=np.float32)
    h_in, w_in = s.shape[-2:]
    out = resize_planes(s, size)
    out[..., 0:2, :, :] *= size[0] / w_in
    out[..., 2:4, :, :] *= size[1] / h_in
    return out


def displacement_for_frames(spectral: np.ndarray, T: int, fps: float, frames, scene_fps: float | None = None,
                            speed: float = 1.0, magnitude: float = 1.0, loop_frames: int = 0) -> np.ndarray:
    """The one place that turns user controls into displacement fields (n, 2, h, w), relative to frame 0.

    frames: scene frame numbers counted from the animation's start (reals allowed), at `scene_fps`
    (default: the clip's fps). loop_frames > 0: an exact loop of that many scene frames (`make_loop`);
    otherwise the clip's own motion, time-scaled by `speed` (periodic in T / speed clip frames).
    Used by the backend's render op and by the add-on's live displacement, so both move identically.
    """
    scene_fps = fps if scene_fps is None else scene_fps
    if loop_frames and loop_frames > 0:
        return make_loop(spectral, T, fps, int(loop_frames), scene_fps, speed).displacement(frames, magnitude)
    return displacement_at(spectral, T, scene_frame_times(frames, fps, scene_fps, speed), magnitude=magnitude)
