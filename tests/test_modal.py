"""shared.modal: exact modal dynamics answering pokes (SPEC section 6, issue 8)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from shared import modal, spectral

T, FPS, K = 150, 30.0, 16


def single_mode_volume(k: int, h: int = 12, w: int = 16, amp: float = 2.0) -> np.ndarray:
    """Spectral volume whose only motion is term k, along x, amplitude growing to the right (px)."""
    t = np.arange(T)
    xx = np.arange(w)[None, :] * np.ones((h, 1))
    motion = np.zeros((T, 2, h, w))
    motion[:, 0] = amp * (xx / (w - 1))[None] * np.cos(2 * np.pi * k * t / T)[:, None, None]
    return spectral.motion_to_spectral(motion, K)


def random_volume(seed: int = 0, h: int = 10, w: int = 14) -> np.ndarray:
    """Smooth random motion with an amplitude spectrum falling with frequency, as in real scenes."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    motion = np.zeros((T, 2, h, w))
    for k in range(1, K):
        shape = rng.normal(size=(2, h, w)) * math.exp(-k / 3)
        motion += shape[None] * np.cos(2 * np.pi * k * t / T + rng.uniform(0, 2 * np.pi))[:, None, None, None]
    return spectral.motion_to_spectral(motion, K)


def prony(x: np.ndarray) -> tuple[float, float]:
    """Fit x[n+1] = a1 x[n] + a2 x[n-1] (exact for a sampled damped sinusoid) -> (damped freq, decay) per frame."""
    A = np.stack([x[1:-1], x[:-2]], axis=1)
    a1, a2 = np.linalg.lstsq(A, x[2:], rcond=None)[0]
    r = math.sqrt(-a2)
    return math.acos(a1 / (2 * r)), -math.log(r)


@pytest.mark.parametrize("xi,mass,stiffness", [(0.02, 1.0, 1.0), (0.1, 0.5, 2.0), (0.3, 2.0, 1.0)])
def test_single_mode_impulse_is_damped_sinusoid_of_theory(xi, mass, stiffness):
    k = 5
    S = single_mode_volume(k)
    D = modal.simulate(S, FPS, T, [{"frame": 3, "x": 15, "y": 5, "dx": 1.0, "dy": 0.0}], start=0, count=400,
                       damping=xi, mass=mass, stiffness=stiffness)
    x = D[5:, 0, 5, 15].astype(np.float64)            # free response after the one-frame push
    assert np.abs(x).max() > 0.05
    w = 2 * np.pi * k / T * math.sqrt(stiffness / mass)
    wd, decay = prony(x)
    assert abs(wd - w * math.sqrt(1 - xi * xi)) / (w * math.sqrt(1 - xi * xi)) < 0.01
    assert abs(decay - xi * w) / (xi * w) < 0.02


def test_rayleigh_damping_sets_each_mode_ratio():
    k = 4
    alpha, beta = 0.3, 0.01
    S = single_mode_volume(k)
    D = modal.simulate(S, FPS, T, [{"frame": 0, "x": 15, "y": 5, "dx": 1.0, "dy": 0.0}], count=400,
                       rayleigh=(alpha, beta))
    w_s = 2 * np.pi * k * FPS / T
    xi = 0.5 * (alpha / w_s + beta * w_s)
    _, decay = prony(D[2:, 0, 5, 15].astype(np.float64))
    assert abs(decay - xi * w_s / FPS) / (xi * w_s / FPS) < 0.02


def rk4_reference(omega: float, xi: float, force: np.ndarray, substeps: int = 400) -> np.ndarray:
    """Independent fine-step RK4 of q'' + 2 xi w q' + w^2 q = force[frame]; returns q at each frame start."""
    q, v, h = 0.0, 0.0, 1.0 / substeps
    out = [q]
    for f in force[:-1]:
        for _ in range(substeps):
            def acc(qq, vv):
                return f - 2 * xi * omega * vv - omega * omega * qq
            k1q, k1v = v, acc(q, v)
            k2q, k2v = v + h / 2 * k1v, acc(q + h / 2 * k1q, v + h / 2 * k1v)
            k3q, k3v = v + h / 2 * k2v, acc(q + h / 2 * k2q, v + h / 2 * k2v)
            k4q, k4v = v + h * k3v, acc(q + h * k3q, v + h * k3v)
            q += h / 6 * (k1q + 2 * k2q + 2 * k3q + k4q)
            v += h / 6 * (k1v + 2 * k2v + 2 * k3v + k4v)
        out.append(q)
    return np.array(out)


@pytest.mark.parametrize("xi", [0.0, 0.4, 1.0, 1.0 + 1e-9, 2.5])
def test_exact_transition_matches_fine_rk4_in_every_damping_regime(xi):
    omega = 0.7                                          # rad/frame: a coarse step, where Euler would drift
    force = np.zeros(40)
    force[2:6] = 1.0
    force[20] = -3.0
    trans = modal.oscillator_transition(np.array([omega]), np.array([xi]))
    q, v, qs = np.zeros(1), np.zeros(1), [0.0]
    for f in force[:-1]:
        q, v = trans.step(q, v, np.array([f]))
        qs.append(float(q[0]))
    np.testing.assert_allclose(qs, rk4_reference(omega, xi, force), atol=1e-8)


def test_energy_never_grows_without_force():
    S = random_volume(1)
    basis = modal.modes_from_spectral(S, FPS, T)
    rng = np.random.default_rng(2)
    xi = rng.uniform(0.0, 1.5, len(basis.omega0))
    xi[:3] = 0.0                                         # undamped modes keep their energy exactly
    dyn = modal.make_dynamics(basis, damping=xi, mass=1.3, stiffness=0.8)
    pokes = modal.parse_pokes([{"frame": 5, "x": 3, "y": 4, "dx": 1, "dy": -2, "duration": 4},
                               {"frame": 30, "x": 10.5, "y": 2.25, "dx": -1, "dy": 0.5},
                               {"frame": 50, "x": 7, "y": 7, "dx": 1.5, "dy": 1, "duration": 10, "kind": "drag"}],
                              basis.size)
    _, q, v = modal.modal_trajectory(basis, dyn, pokes, 600)
    E = modal.modal_energy(q, v, dyn.omega(basis), dyn.mass)
    forced = np.zeros(600, bool)
    forced[5:9] = forced[30] = True                      # E[t+1] may grow only if a force acts during [t, t+1)
    forced[59] = True                                    # the drag is let go at frame 60
    grow = E[1:] - E[:-1]
    assert E[-1] > 0
    assert np.all(grow[~forced[:-1]] <= 1e-12 * E.max())
    undamped = modal.modal_energy(q[100:, :3], v[100:, :3], dyn.omega(basis)[:3], dyn.mass)
    np.testing.assert_allclose(undamped, undamped[0], rtol=1e-9)


def test_pokes_superpose_linearly():
    S = random_volume(3)
    p1 = {"frame": 4, "x": 2, "y": 3, "dx": 1.0, "dy": 0.5, "duration": 3}
    p2 = {"frame": 17, "x": 11.5, "y": 6, "dx": -0.7, "dy": 2.0}
    p3 = {"frame": 9, "x": 6, "y": 1, "dx": 0.4, "dy": -0.3, "duration": 5, "kind": "drag"}
    kw = dict(start=2, count=120, damping=0.08)
    both = modal.simulate(S, FPS, T, [p1, p2, p3], **kw)
    parts = sum(modal.simulate(S, FPS, T, [p], **kw) for p in (p1, p2, p3))
    np.testing.assert_allclose(both, parts, atol=1e-5 * np.abs(both).max())
    triple = modal.simulate(S, FPS, T, [dict(p2, dx=3 * p2["dx"], dy=3 * p2["dy"])], **kw)
    np.testing.assert_allclose(triple, 3 * modal.simulate(S, FPS, T, [p2], **kw), atol=1e-5)


def test_ten_thousand_frames_stay_finite():
    S = random_volume(4, h=6, w=8)
    D = modal.simulate(S, FPS, T, [{"frame": 0, "x": 3, "y": 2, "dx": 5, "dy": 5, "duration": 40}],
                       start=0, count=10_000, damping=0.0, stiffness=50.0)
    assert np.all(np.isfinite(D))
    assert np.abs(D[-100:]).max() > 0                    # undamped: still ringing, not blown up or lost


@pytest.mark.parametrize("kind", ["push", "drag"])
def test_nothing_moves_before_the_poke(kind):
    S = random_volume(5)
    D = modal.simulate(S, FPS, T, [{"frame": 12, "x": 5, "y": 5, "dx": 1, "dy": 1, "duration": 4, "kind": kind}],
                       count=60)
    assert np.all(D[:13] == 0.0)                         # up to and including the poke frame: exactly zero
    assert np.abs(D[14]).max() > 0
    assert not np.any(modal.simulate(S, FPS, T, [], count=10))


def test_one_pixel_poke_swings_about_one_pixel_where_the_scene_moves_most():
    S = random_volume(6)
    basis = modal.modes_from_spectral(S, FPS, T)
    P = basis.participation()
    y, x = np.unravel_index(np.argmax(np.where(P <= basis.p_ref, P, 0)), P.shape)
    D = modal.simulate(S, FPS, T, [{"frame": 0, "x": x, "y": y, "dx": 0.6, "dy": 0.8}], count=T + 1,
                       damping=0.0)
    peak = np.sqrt((D[:, :, y, x] ** 2).sum(axis=1)).max()
    assert 0.95 < math.sqrt(P[y, x] / basis.p_ref) <= 1.0
    assert abs(peak - math.sqrt(P[y, x] / basis.p_ref)) < 1e-3
    # Units of the spectral volume do not matter; heavier and damped answers less.
    D10 = modal.simulate(10 * S, FPS, T, [{"frame": 0, "x": x, "y": y, "dx": 0.6, "dy": 0.8}], count=T + 1,
                         damping=0.0)
    np.testing.assert_allclose(D10, D, atol=1e-5)
    heavy = modal.simulate(S, FPS, T, [{"frame": 0, "x": x, "y": y, "dx": 0.6, "dy": 0.8}], count=T + 1,
                           damping=0.2, mass=4.0)
    assert np.abs(heavy[:, :, y, x]).max() < 0.5 * peak


def test_drag_holds_the_point_then_rings_and_decays():
    S = random_volume(7)
    d = np.array([1.5, -0.75])
    D = modal.simulate(S, FPS, T, [{"frame": 10, "x": 6, "y": 4, "dx": d[0], "dy": d[1], "duration": 20,
                                    "kind": "drag"}], count=400, damping=0.3)
    np.testing.assert_allclose(D[30, :, 4, 6], d, atol=1e-4)      # let go at frame 30, from the held shape
    swing = np.sqrt((D[:, :, 4, 6] ** 2).sum(axis=1))
    assert swing[31:100].min() < 0.5 * swing[30]                 # it swings back after release
    assert swing[350:].max() < 0.05 * swing[30]                  # and decays


def test_to_image_size_rescales_vectors():
    S = single_mode_volume(3)
    D = modal.simulate(S, FPS, T, [{"frame": 0, "x": 15, "y": 5, "dx": 1, "dy": 0}], count=20)
    big = modal.to_image_size(D, (64, 48))
    assert big.shape == (20, 2, 48, 64) and big.dtype == np.float32
    assert abs(np.abs(big[:, 0]).max() / np.abs(D[:, 0]).max() - 4.0) < 0.2


def test_cancel_stops_the_simulation():
    from backend.jobs import Cancelled, JobContext
    ctx = JobContext()
    ctx.cancel_event.set()
    with pytest.raises(Cancelled):
        modal.simulate(single_mode_volume(2), FPS, T, [{"frame": 0, "x": 1, "y": 1, "dx": 1, "dy": 0}],
                       count=50, ctx=ctx)


@pytest.mark.parametrize("change,match", [
    (dict(spectral="nan"), "NaN"),
    (dict(poke=dict(dx=float("nan"))), "finite"),
    (dict(poke=dict(x=16.0)), "outside"),
    (dict(poke=dict(y=-0.5)), "outside"),
    (dict(poke=dict(duration=-1)), "duration"),
    (dict(poke=dict(duration=0)), "duration"),
    (dict(poke=dict(frame=-2)), "frame"),
    (dict(poke=dict(frame=2.5)), "whole number"),
    (dict(poke=dict(kind="kick")), "kind"),
    (dict(poke=dict(dx="left")), "number"),
    (dict(drop="y"), "missing 'y'"),
    (dict(kw=dict(damping=-0.1)), "damping"),
    (dict(kw=dict(damping=[0.1, 0.2])), "one per mode"),
    (dict(kw=dict(mass=0.0)), "mass"),
    (dict(kw=dict(stiffness=float("inf"))), "stiffness"),
    (dict(kw=dict(count=0)), "count"),
    (dict(kw=dict(start=-1)), "start"),
    (dict(kw=dict(T=20)), "exceeds"),
    (dict(kw=dict(fps=0.0)), "fps"),
    (dict(shape=(16, 3, 12, 16)), "4, h, w"),
])
def test_bad_input_is_a_clear_value_error(change, match):
    S = single_mode_volume(2)
    if change.get("spectral") == "nan":
        S = S.copy()
        S[3, 1, 2, 2] = np.nan
    if "shape" in change:
        S = np.zeros(change["shape"], np.float32)
    poke = {"frame": 1, "x": 3.0, "y": 2.0, "dx": 1.0, "dy": 0.0, "duration": 1}
    poke.update(change.get("poke", {}))
    poke.pop(change.get("drop", "_"), None)
    kw = dict(fps=FPS, T=T, count=10)
    kw.update(change.get("kw", {}))
    with pytest.raises(ValueError, match=match):
        modal.simulate(S, kw.pop("fps"), kw.pop("T"), [poke], **kw)


@pytest.mark.parametrize("damping", [0.0, 0.08, 1.0, 3.0])
def test_a_late_window_equals_the_same_frames_of_the_whole_run(damping):
    """Jumping to `start` (one exact transition per poke boundary) = stepping every frame from 0."""
    S = random_volume(3)
    pokes = [{"frame": 5, "x": 3.0, "y": 2.0, "dx": 1.0, "dy": -0.5, "duration": 30},
             {"frame": 20, "x": 9.0, "y": 6.0, "dx": 0.0, "dy": 1.5, "duration": 50, "kind": "drag"},
             {"frame": 61, "x": 1.0, "y": 8.0, "dx": -2.0, "dy": 0.3},
             {"frame": 90, "x": 12.0, "y": 1.0, "dx": 0.5, "dy": 0.5, "duration": 4}]
    whole = modal.simulate(S, FPS, T, pokes, start=0, count=140, damping=damping)
    for start, count in ((0, 7), (33, 40), (60, 1), (61, 30), (139, 1)):     # inside pushes, holds, boundaries
        part = modal.simulate(S, FPS, T, pokes, start=start, count=count, damping=damping)
        np.testing.assert_allclose(part, whole[start:start + count], rtol=1e-4, atol=1e-5 * np.abs(whole).max())


def test_far_start_costs_memory_of_the_output_not_of_the_start():
    """K=101, start=400,005, count=1 (a request of ~1 KB): one frame of output, a few MB of work memory
    (stepping every frame from 0 kept 5 arrays of (start + count) x (K - 1) complex, ~3 GB)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    S = rng.normal(size=(101, 4, 2, 2)).astype(np.float32)
    pokes = [{"frame": 3, "x": 0.5, "y": 0.5, "dx": 1.0, "dy": 0.0, "duration": 2}]
    tracemalloc.start()
    try:
        far = modal.simulate(S, FPS, 200, pokes, start=400_005, count=1, damping=0.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert far.shape == (1, 2, 2, 2) and np.isfinite(far).all() and np.abs(far).max() > 0
    assert peak < 20 << 20, f"peak {peak / 2**20:.0f} MiB"
    # undamped: once the push is over the response is periodic in T = 200 frames: frame 400,005 = frame 205
    near = modal.simulate(S, FPS, 200, pokes, start=205, count=1, damping=0.0)
    np.testing.assert_allclose(far, near, rtol=1e-6, atol=1e-6 * np.abs(near).max())


def test_calibration_of_a_long_clip_needs_memory_of_one_period_only():
    """T = 1,000,000 with K = 1000 terms: the poke calibration is one FFT of T, not a (T, K-1, 2) array (32 GB)."""
    import tracemalloc

    S = np.random.default_rng(1).normal(size=(1000, 4, 1, 2)).astype(np.float32)
    tracemalloc.start()
    try:
        D = modal.simulate(S, FPS, 1_000_000, [{"frame": 0, "x": 1.0, "y": 0.0, "dx": 1.0, "dy": 0.0}], count=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.isfinite(D).all() and np.abs(D[1]).max() > 0
    assert peak < 200 << 20, f"peak {peak / 2**20:.0f} MiB"


def test_fft_calibration_matches_the_direct_sum():
    basis = modal.modes_from_spectral(random_volume(5), FPS, T)
    phi_p = basis.sample(4.3, 6.1)
    d = np.array([0.6, -0.8])
    f = np.conj(phi_p) @ d
    t = np.arange(1, T + 1, dtype=np.float64)[:, None]
    w = basis.omega0[None, :]
    q = (np.cos(w * (t - 1)) - np.cos(w * t)) / (w * w) * f[None, :]
    direct = float(np.sqrt(((q[:, :, None] * phi_p[None]).sum(axis=1).real ** 2).sum(axis=1)).max())
    assert modal.nominal_kick_response(basis, phi_p, d) == pytest.approx(direct, rel=1e-9)
