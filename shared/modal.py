"""Interactive dynamics from one image: image-space modal dynamics driven by pokes (SPEC section 6, issue 8).

Pure numpy; imported by the backend's `simulate` op and, vendored, by the Blender add-on.

Model (Davis, Chen, Durand 2015; GID section 6)
- Modes: term k = 1..K-1 of a spectral volume is a complex mode shape phi_k (2, h, w) with nominal angular
  frequency w_k0 = 2 pi k / T rad per clip frame (= 2 pi k fps / T rad/s). The DC term is not a mode.
  phi_k is the term's closed-form amplitude (`spectral.term_amplitudes`: 2 S_k / T), i.e. the ambient oscillation
  of that frequency in pixels; `normalize_modes=True` rescales every phi_k to the same RMS instead.
- Each mode is a damped oscillator with complex coordinate q_k:
      q_k'' + 2 xi_k w_k q_k' + w_k^2 q_k = f_k / m,     w_k = w_k0 sqrt(stiffness / mass),
  and the displacement is D_t(p) = Re sum_k phi_k(p) q_k(t). Re q and Im q follow the same real equation, so
  each k is two real modes with shapes Re phi_k and -Im phi_k, each driven by its own projection of the force.
- Damping ratio xi: one value for all modes, one per mode (K-1 values), or Rayleigh xi_k = (alpha / w_k +
  beta w_k) / 2 with w_k in rad/s. Zero damping rings forever; any xi >= 0 works, including critical (1) and
  over-damped (> 1).
- Integration is exact: the force is constant over each frame, and one frame of the damped oscillator is the
  closed-form state transition (no explicit Euler), so any length is stable and accurate. Between poke
  boundaries the force is constant, so n frames are one transition of length n: frames before the requested
  ones are jumped over, and the cost follows the frames asked for and the pokes, not the start frame.

Force scaling (so that a 1 px poke moves about 1 px)
A poke {frame f, x, y, dx, dy, duration n} pushes with d = (dx, dy) at pixel p = (x, y) of the spectral grid
during frames [f, f + n) (one frame = one time unit). Its force on mode k is f_k = g * phi_k(p)^* . d: the
direction is the modal projection (each real mode shape driven by its own projection of d, so the response at p
leans along d), and the scalar gain g normalises modal participation. g is chosen so that a ONE-FRAME push on
the nominal system (mass 1, stiffness 1, undamped) makes p swing with a peak of exactly
      |d| * min(1, sqrt(P(p) / P_ref)) pixels,   P(p) = sum_k |phi_k(p)|^2,  P_ref = 99th percentile of P,
found from the closed-form one-frame response at p over one slow period (`nominal_kick_response`). So a 1 px
poke where the scene moves most answers with a 1 px swing, a half-as-mobile pixel with 0.5 px, a still rock not
at all; this does not depend on the units or overall amplitude of the spectral volume. The physical parameters
then act as physics: damping lowers and shortens the swing, heavier mass answers less (1/m) and slower,
stiffer answers faster and smaller, a longer push delivers more impulse (up to n times for slow modes).

Drag and release ({"kind": "drag", ...}): the point p is pulled to displacement d over `duration` frames
(smoothstep, zero velocity at both ends) and let go. The held shape is the static equilibrium of the force
direction that displaces p by d (a 2x2 solve; least squares where p can move along one axis only); from
release on, the modes ring freely from that state. Displacement before the drag frame is exactly zero.

Pokes superpose linearly. Frame 0 is rest (no motion); output frames are start .. start+count-1 in clip frames
(at `fps`); map them to an image size with `to_image_size` (vectors rescaled).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .spectral import resize_field, term_amplitudes, to_complex

# --------------------------------------------------------------------------------------------------------
# modes


@dataclass(frozen=True)
class ModalBasis:
    """Modes of a spectral volume.

    shapes: complex (M, 2, h, w) mode shapes phi_k in pixels (M = K-1, DC dropped); omega0: (M,) nominal angular
    frequency in rad per clip frame; k: (M,) term indices; fps, T: the clip the spectral volume describes;
    p_ref: participation reference (99th percentile of sum_k |phi_k(p)|^2).
    """

    shapes: np.ndarray
    omega0: np.ndarray
    k: np.ndarray
    fps: float
    T: int
    p_ref: float

    @property
    def size(self) -> tuple[int, int]:
        """(w, h) of the spectral grid."""
        return int(self.shapes.shape[-1]), int(self.shapes.shape[-2])

    def participation(self) -> np.ndarray:
        """(h, w) sum_k |phi_k(p)|^2."""
        return (np.abs(self.shapes) ** 2).sum(axis=(0, 1))

    def sample(self, x: float, y: float) -> np.ndarray:
        """Bilinear phi_k at real pixel position (x, y) -> complex (M, 2)."""
        w, h = self.size
        x0 = min(int(math.floor(x)), w - 2) if w > 1 else 0
        y0 = min(int(math.floor(y)), h - 2) if h > 1 else 0
        fx = x - x0 if w > 1 else 0.0
        fy = y - y0 if h > 1 else 0.0
        x1 = min(x0 + 1, w - 1)
        y1 = min(y0 + 1, h - 1)
        s = self.shapes
        return ((1 - fy) * ((1 - fx) * s[:, :, y0, x0] + fx * s[:, :, y0, x1])
                + fy * ((1 - fx) * s[:, :, y1, x0] + fx * s[:, :, y1, x1]))


def modes_from_spectral(spectral: np.ndarray, fps: float, T: int, normalize_modes: bool = False) -> ModalBasis:
    """Spectral volume (K, 4, h, w) -> ModalBasis (terms 1..K-1 as modes).

    normalize_modes: rescale every mode shape to unit RMS over the image (all frequencies take part equally)
    instead of the ambient amplitude spectrum (which favours the slow, large modes as the scene does).
    """
    s = np.asarray(spectral)
    if s.ndim != 4 or s.shape[1] != 4:
        raise ValueError(f"spectral volume must be (K, 4, h, w), got shape {s.shape}")
    if s.shape[0] < 2:
        raise ValueError(f"spectral volume needs K >= 2 terms (term 0 is not a mode), got K={s.shape[0]}")
    if not np.all(np.isfinite(s)):
        raise ValueError("spectral volume contains NaN or infinite values")
    if not (isinstance(T, (int, np.integer)) and T >= 2):
        raise ValueError(f"T must be an integer >= 2, got {T!r}")
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    K = s.shape[0]
    if K > T // 2 + 1:
        raise ValueError(f"K={K} exceeds the {T // 2 + 1} rfft terms of T={T}")
    c = to_complex(s) * term_amplitudes(K, int(T))[:, None, None, None]
    shapes = c[1:]
    if normalize_modes:
        rms = np.sqrt((np.abs(shapes) ** 2).mean(axis=(1, 2, 3)))
        shapes = np.where(rms[:, None, None, None] > 0, shapes / np.where(rms > 0, rms, 1.0)[:, None, None, None],
                          0.0)
    k = np.arange(1, K)
    participation = (np.abs(shapes) ** 2).sum(axis=(0, 1))
    p_ref = float(np.percentile(participation, 99.0))
    if p_ref <= 0:
        p_ref = float(participation.max())
    return ModalBasis(shapes=shapes, omega0=2 * np.pi * k / float(T), k=k, fps=float(fps), T=int(T), p_ref=p_ref)


# --------------------------------------------------------------------------------------------------------
# one frame of a damped oscillator, exactly


@dataclass(frozen=True)
class Transition:
    """Exact one-step map of q'' + 2 xi w q' + w^2 q = u (u constant over the step), per mode (M,).

    (q, v) <- (a_qq (q - u/w^2) + a_qv v + u/w^2,  a_vq (q - u/w^2) + a_vv v).
    """

    a_qq: np.ndarray
    a_qv: np.ndarray
    a_vq: np.ndarray
    a_vv: np.ndarray
    omega: np.ndarray

    def step(self, q: np.ndarray, v: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        eq = u / self.omega ** 2
        y = q - eq
        return self.a_qq * y + self.a_qv * v + eq, self.a_vq * y + self.a_vv * v


def oscillator_transition(omega: np.ndarray, xi: np.ndarray, h: float = 1.0) -> Transition:
    """Closed-form state transition over time h for under-, critically and over-damped oscillators.

    With e = exp(-xi w h) and wd = w sqrt(1 - xi^2), the homogeneous solution is
        q(h) = e [(C + xi w S) q0 + S v0],    v(h) = e [-w^2 S q0 + (C - xi w S) v0],
    C = cos(wd h), S = sin(wd h)/wd (under-damped); C = 1, S = h (critical); C = cosh(g h), S = sinh(g h)/g with
    g = w sqrt(xi^2 - 1) (over-damped). e*C and e*S are formed from exponentials that never overflow.
    """
    w = np.asarray(omega, dtype=np.float64)
    xi = np.broadcast_to(np.asarray(xi, dtype=np.float64), w.shape)
    disc = 1.0 - xi * xi
    decay = xi * w * h
    root = w * np.sqrt(np.abs(disc))
    arg = root * h
    series = arg < 1e-6                      # critical (or within round-off of it): series of sin/sinh
    under = ~series & (disc > 0)
    safe_root = np.where(series, 1.0, root)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        e = np.exp(-decay)
        sign = np.where(disc >= 0, 1.0, -1.0)
        eC_series = e * (1.0 - sign * arg * arg / 2.0)
        eS_series = e * h * (1.0 - sign * arg * arg / 6.0)
        eC_under = e * np.cos(arg)
        eS_under = e * np.sin(arg) / safe_root
        # over-damped: exp(-(xi w -+ g) h), both exponents <= 0
        slow = np.exp(np.minimum(-decay + arg, 0.0))
        fast = np.exp(-decay - arg)
        eC_over = 0.5 * (slow + fast)
        eS_over = 0.5 * (slow - fast) / safe_root
    eC = np.where(series, eC_series, np.where(under, eC_under, eC_over))
    eS = np.where(series, eS_series, np.where(under, eS_under, eS_over))
    xw = xi * w
    return Transition(a_qq=eC + xw * eS, a_qv=eS, a_vq=-w * w * eS, a_vv=eC - xw * eS, omega=w)


# --------------------------------------------------------------------------------------------------------
# pokes


@dataclass(frozen=True)
class Poke:
    """A validated poke: push (kind="push") or drag-and-release (kind="drag"), in spectral-grid pixels."""

    frame: int
    x: float
    y: float
    dx: float
    dy: float
    duration: int = 1
    kind: str = "push"


def _number(d: dict, key: str, i: int, default=None) -> float:
    if key not in d:
        if default is None:
            raise ValueError(f"poke {i}: missing '{key}'")
        return default
    try:
        value = float(d[key])
    except (TypeError, ValueError):
        raise ValueError(f"poke {i}: '{key}' must be a number, got {d[key]!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"poke {i}: '{key}' must be finite, got {value}")
    return value


def _integer(d: dict, key: str, i: int, default=None) -> int:
    value = _number(d, key, i, default)
    if value != int(value):
        raise ValueError(f"poke {i}: '{key}' must be a whole number of frames, got {value}")
    return int(value)


def parse_pokes(pokes: Iterable[dict], size: tuple[int, int]) -> list[Poke]:
    """Check poke dicts {frame, x, y, dx, dy, duration=1, kind="push"} against a (w, h) grid."""
    w, h = size
    out = []
    for i, d in enumerate(pokes):
        if isinstance(d, Poke):
            d = d.__dict__
        if not isinstance(d, dict):
            raise ValueError(f"poke {i}: must be a dict, got {type(d).__name__}")
        frame = _integer(d, "frame", i)
        x, y = _number(d, "x", i), _number(d, "y", i)
        dx, dy = _number(d, "dx", i), _number(d, "dy", i)
        duration = _integer(d, "duration", i, 1)
        kind = d.get("kind", "push")
        if frame < 0:
            raise ValueError(f"poke {i}: frame must be >= 0 (frame 0 is the rest state), got {frame}")
        if duration < 1:
            raise ValueError(f"poke {i}: duration must be >= 1 frame, got {duration}")
        if not (0.0 <= x <= w - 1 and 0.0 <= y <= h - 1):
            raise ValueError(f"poke {i}: pixel ({x}, {y}) is outside the {w}x{h} spectral grid "
                             f"(x in [0, {w - 1}], y in [0, {h - 1}])")
        if kind not in ("push", "drag"):
            raise ValueError(f"poke {i}: kind must be 'push' or 'drag', got {kind!r}")
        out.append(Poke(frame, x, y, dx, dy, duration, kind))
    return out


MAX_DAMPING_RATIO = 1e3   # far past critical (1): nothing moves any more; larger ratios only lose precision


@dataclass(frozen=True)
class Dynamics:
    """Physical parameters: per-mode damping ratio xi (M,), mass and stiffness scale."""

    xi: np.ndarray
    mass: float
    stiffness: float

    def omega(self, basis: ModalBasis) -> np.ndarray:
        return basis.omega0 * math.sqrt(self.stiffness / self.mass)


def make_dynamics(basis: ModalBasis, damping: float | Sequence[float] = 0.05, mass: float = 1.0,
                  stiffness: float = 1.0, rayleigh: tuple[float, float] | None = None) -> Dynamics:
    """Validate parameters. rayleigh=(alpha [1/s], beta [s]) overrides damping: xi_k = (alpha/w_k + beta w_k)/2."""
    for name, value in (("mass", mass), ("stiffness", stiffness)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    M = len(basis.omega0)
    if rayleigh is not None:
        alpha, beta = (float(v) for v in rayleigh)
        if not (np.isfinite(alpha) and np.isfinite(beta) and alpha >= 0 and beta >= 0):
            raise ValueError(f"rayleigh (alpha, beta) must be finite and >= 0, got {rayleigh!r}")
        w_s = basis.omega0 * math.sqrt(stiffness / mass) * basis.fps      # rad/s
        xi = 0.5 * (alpha / w_s + beta * w_s)
    else:
        xi = np.asarray(damping, dtype=np.float64)
        if xi.ndim == 0:
            xi = np.full(M, float(xi))
        elif xi.shape != (M,):
            raise ValueError(f"damping must be one number or {M} numbers (one per mode k=1..{M}), "
                             f"got shape {xi.shape}")
    if not np.all(np.isfinite(xi)) or np.any(xi < 0) or np.any(xi > MAX_DAMPING_RATIO):
        worst = xi[~(np.isfinite(xi) & (xi >= 0) & (xi <= MAX_DAMPING_RATIO))][:4]
        raise ValueError(f"damping ratios must be finite and in [0, {MAX_DAMPING_RATIO:g}] (rayleigh gives "
                         f"xi_k = (alpha / w_k + beta w_k) / 2), got {worst}")
    return Dynamics(xi=xi, mass=float(mass), stiffness=float(stiffness))


def nominal_kick_response(basis: ModalBasis, phi_p: np.ndarray, d: np.ndarray) -> float:
    """Peak |D_t(p)| over one slow period after a one-frame push with f_k = phi_k(p)^* . d (unit gain).

    Nominal system (mass 1, stiffness 1, undamped), exact one-frame force:
    q_k(t) = f_k / w_k^2 (cos(w_k (t - 1)) - cos(w_k t)) for t >= 1. With w_k = 2 pi k / T this is periodic in T,
    and D_t(p) = Re sum_k b_k (e^{-i w_k} - 1) e^{i w_k t}, b_k = Re(f_k phi_k(p)) / w_k^2: one inverse FFT of
    length T gives every t of the period (memory O(T), not O(T M)).
    """
    f = np.conj(phi_p) @ d                                               # (M,)
    w = basis.omega0
    b = (f[:, None] * phi_p).real / (w * w)[:, None]                     # (M, 2)
    spectrum = np.zeros((2, basis.T), np.complex128)
    spectrum[:, basis.k] = (b * (np.exp(-1j * w) - 1.0)[:, None]).T
    disp = np.fft.ifft(spectrum, axis=1).real * basis.T                  # (2, T)
    return float(np.sqrt((disp ** 2).sum(axis=0)).max())


def modal_force(basis: ModalBasis, poke: Poke) -> np.ndarray:
    """Complex (M,) force f_k = g phi_k(p)^* . d of a push poke, with the gain g calibrated at p.

    g makes a one-frame push on the nominal undamped system peak at |d| * min(1, sqrt(P(p) / P_ref)) px at p
    (see the module docstring).
    """
    phi_p = basis.sample(poke.x, poke.y)                                  # (M, 2)
    d = np.array([poke.dx, poke.dy])
    peak = nominal_kick_response(basis, phi_p, d)
    if peak <= 0:
        return np.zeros(len(basis.omega0), np.complex128)
    p_local = float((np.abs(phi_p) ** 2).sum())
    target = math.hypot(poke.dx, poke.dy) * min(1.0, math.sqrt(p_local / basis.p_ref))
    return (target / peak) * (np.conj(phi_p) @ d)


def drag_state(basis: ModalBasis, dyn: Dynamics, poke: Poke) -> np.ndarray:
    """Complex (M,) modal coordinates holding pixel p at displacement d (static equilibrium, min-effort force).

    The holding force acts along g_k = phi_k(p)^*: q_k = g_k . lam / (m w_k^2), displacement at p is A lam with
    A = sum_k Re(phi_k(p) phi_k(p)^H) / (m w_k^2) (2x2, symmetric PSD); lam = A^+ d (least squares if singular).
    """
    phi_p = basis.sample(poke.x, poke.y)                                  # (M, 2)
    w = dyn.omega(basis)
    gain = 1.0 / (dyn.mass * w * w)                                       # (M,)
    A = np.einsum("m,mi,mj->ij", gain, phi_p, np.conj(phi_p)).real
    d = np.array([poke.dx, poke.dy])
    if not np.any(A):
        return np.zeros(len(w), np.complex128)
    lam = np.linalg.pinv(A, rcond=1e-9) @ d
    return gain * (np.conj(phi_p) @ lam)


# --------------------------------------------------------------------------------------------------------
# simulation


@dataclass
class _Schedule:
    """What the pokes do, by frame: force changes, drag releases (state injections) and drag holds."""

    force_delta: dict      # frame -> complex (M,) added to the force from that frame on
    inject: dict           # frame -> complex (M,) added to the state at that frame
    holds: list            # (frame, duration, q_hold) of drags: shown during [frame, frame + duration)

    def breakpoints(self) -> list[int]:
        return sorted(set(self.force_delta) | set(self.inject))


def _schedule(basis: ModalBasis, dyn: Dynamics, pokes: Sequence[Poke], end: int) -> _Schedule:
    M = len(basis.omega0)
    force_delta: dict = {}
    inject: dict = {}
    holds = []

    def add(table: dict, frame: int, value: np.ndarray) -> None:
        if frame < end:
            table[frame] = table.get(frame, np.zeros(M, np.complex128)) + value

    for p in pokes:
        if p.frame >= end:
            continue
        if p.kind == "push":
            f = modal_force(basis, p) / dyn.mass
            add(force_delta, p.frame, f)
            add(force_delta, p.frame + p.duration, -f)
        else:
            q_hold = drag_state(basis, dyn, p)
            holds.append((p.frame, p.duration, q_hold))
            add(inject, p.frame + p.duration, q_hold)
    return _Schedule(force_delta, inject, holds)


def modal_window(basis: ModalBasis, dyn: Dynamics, pokes: Sequence[Poke], start: int, count: int,
                 ctx=None, chunk: int | None = None):
    """Modal coordinates for frames start .. start+count-1 from rest at frame 0, in chunks of frames.

    Yields (t0, z, q, v) with z, q, v complex (n, M) for frames t0 .. t0+n-1 (see `modal_trajectory`). Frames
    before `start` are never stored: the force is constant between pokes' start and end frames, and n frames of
    the oscillator under a constant force are one exact transition of length n, so reaching `start` costs one
    step per poke boundary, whatever `start` is. Memory is O(chunk * M), work O((count + pokes) * M).
    """
    M = len(basis.omega0)
    end = start + count
    sched = _schedule(basis, dyn, pokes, end)
    omega = dyn.omega(basis)
    transitions: dict = {}

    def transition(h: int) -> Transition:
        if h not in transitions:
            transitions[h] = oscillator_transition(omega, dyn.xi, float(h))
        return transitions[h]

    zero = np.zeros(M, np.complex128)
    q = sched.inject.get(0, zero).copy()
    v = zero.copy()
    u = sched.force_delta.get(0, zero).copy()         # force acting during [t, t + 1)
    t = 0
    for b in sched.breakpoints():                     # jump from boundary to boundary up to `start`
        if b <= 0:
            continue
        if b > start:
            break
        q, v = transition(b - t).step(q, v, u)
        q = q + sched.inject.get(b, zero)
        u = u + sched.force_delta.get(b, zero)
        t = b
    if t < start:
        q, v = transition(start - t).step(q, v, u)
        t = start
    one = transition(1)
    chunk = chunk or max(1, min(count, (1 << 20) // max(M, 1)))
    report_every = max(1, count // 20)
    for c0 in range(start, end, chunk):
        n = min(chunk, end - c0)
        qs = np.empty((n, M), np.complex128)
        vs = np.empty((n, M), np.complex128)
        for i in range(n):
            qs[i], vs[i] = q, v
            if ctx is not None and (t - start) % report_every == 0:
                ctx.step("simulate", (t - start) / count)
            if t + 1 < end:
                q, v = one.step(q, v, u)
                t += 1
                q = q + sched.inject.get(t, zero)
                u = u + sched.force_delta.get(t, zero)
        z = qs.copy()
        for frame, duration, q_hold in sched.holds:   # held drags: shown, not in the oscillator state
            lo, hi = max(frame, c0), min(frame + duration, c0 + n)
            if lo < hi:
                s = (np.arange(lo, hi) - frame) / duration
                z[lo - c0:hi - c0] += (s * s * (3 - 2 * s))[:, None] * q_hold[None, :]
        yield c0, z, qs, vs


def modal_trajectory(basis: ModalBasis, dyn: Dynamics, pokes: Sequence[Poke], n_frames: int,
                     ctx=None, start: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Modal coordinates for frames start .. n_frames-1 from rest at frame 0 (all of them: O(n_frames M) memory).

    Returns (z, q, v): z complex (n, M) the coordinates that make the displacement (q plus held drags),
    q and v (n, M) the free oscillator state (position, velocity per frame) used for energy checks.
    """
    parts = list(modal_window(basis, dyn, pokes, start, n_frames - start, ctx))
    if not parts:
        empty = np.zeros((0, len(basis.omega0)), np.complex128)
        return empty, empty.copy(), empty.copy()
    return tuple(np.concatenate([part[i] for part in parts]) for i in (1, 2, 3))


def synthesis_matrix(basis: ModalBasis) -> np.ndarray:
    """[Re phi; Im phi] as one contiguous float32 (2M, 2 h w) matrix, for `displacement_from_modes`."""
    M, two, h, w = basis.shapes.shape
    flat = basis.shapes.reshape(M, two * h * w)
    return np.concatenate([flat.real, flat.imag], axis=0).astype(np.float32)


def displacement_from_modes(basis: ModalBasis, z: np.ndarray, dtype=np.float32,
                            right: np.ndarray | None = None) -> np.ndarray:
    """D_t(p) = Re sum_k phi_k(p) z_k(t): z complex (n, M) -> (n, 2, h, w).

    One contiguous float32 matmul [Re z, -Im z] @ [Re phi; Im phi] (strided complex views are ~10x slower);
    `right`: `synthesis_matrix(basis)` when the caller evaluates many chunks.
    """
    M, two, h, w = basis.shapes.shape
    left = np.concatenate([z.real, -z.imag], axis=1).astype(np.float32)
    right = synthesis_matrix(basis) if right is None else right
    return (left @ right).reshape(len(z), two, h, w).astype(dtype, copy=False)


def simulate(spectral: np.ndarray, fps: float, T: int, pokes: Sequence[dict], start: int = 0,
             count: int = 150, damping: float | Sequence[float] = 0.05, mass: float = 1.0,
             stiffness: float = 1.0, rayleigh: tuple[float, float] | None = None,
             normalize_modes: bool = False, ctx=None) -> np.ndarray:
    """Poke response displacement, float32 (count, 2, h, w), for clip frames start .. start+count-1.

    spectral: (K, 4, h, w) with its clip's fps and T; pokes: dicts {frame, x, y, dx, dy, duration=1,
    kind="push"|"drag"} in pixels of the spectral grid and clip frames (frame 0 = rest). damping: ratio xi, one
    value or one per mode (K-1); rayleigh=(alpha, beta) overrides it. mass > 0; stiffness > 0 scales the spring
    (frequencies by sqrt(stiffness / mass)). ctx: optional backend.jobs.JobContext (progress + cancel).
    Without pokes the result is all zeros. See the module docstring for the force scaling.
    """
    basis = modes_from_spectral(spectral, fps, T, normalize_modes)
    dyn = make_dynamics(basis, damping, mass, stiffness, rayleigh)
    parsed = parse_pokes(pokes, basis.size)
    if not (isinstance(start, (int, np.integer)) and start >= 0):
        raise ValueError(f"start must be an integer >= 0, got {start!r}")
    if not (isinstance(count, (int, np.integer)) and count >= 1):
        raise ValueError(f"count must be an integer >= 1, got {count!r}")
    M, two, h, w = basis.shapes.shape
    out = np.empty((int(count), two, h, w), np.float32)
    right = synthesis_matrix(basis)
    chunk = max(1, (1 << 22) // (M + two * h * w))                # bounds the temporaries of one chunk
    for t0, z, _, _ in modal_window(basis, dyn, parsed, int(start), int(count), ctx, chunk):
        out[t0 - start:t0 - start + len(z)] = displacement_from_modes(basis, z, right=right)
    return out


def to_image_size(displacement: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Map simulated displacement (n, 2, h, w) of the spectral grid to an image of size (W, H), vectors rescaled."""
    return resize_field(displacement, size)


def modal_energy(q: np.ndarray, v: np.ndarray, omega: np.ndarray, mass: float = 1.0) -> np.ndarray:
    """(n,) total oscillator energy sum_k m (|v_k|^2 + w_k^2 |q_k|^2) / 2 per frame."""
    return 0.5 * mass * ((np.abs(v) ** 2) + (omega ** 2) * (np.abs(q) ** 2)).sum(axis=-1)
