"""The add-on's control math (blender_addon/fields.py, numpy only): direction bias, speed integration,
UV conversion, time resampling. The add-on's live path and its bake both rely on these being exact."""
from __future__ import annotations

import numpy as np
import pytest

from blender_addon import fields
from shared import spectral as sp

T, FPS = 150, 30.0


def _spectral(h=6, w=8, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None, None]
    m = np.zeros((T, 2, h, w), np.float32)
    for k in (2, 3, 5):
        m[:, 0] += rng.normal() * np.sin(2 * np.pi * k * t / T + rng.uniform(0, 6, (h, w)))
        m[:, 1] += rng.normal() * np.sin(2 * np.pi * k * t / T + rng.uniform(0, 6, (h, w)))
    return sp.motion_to_spectral(m)


def _plan(frames, start, **kw):
    n = len(frames)
    base = dict(frames=np.asarray(frames), cyclic=False, start=start, loop_frames=0, speed=1.0,
                speed_animated=False, tau=(np.asarray(frames) - start).astype(float), magnitude=np.ones(n),
                direction=np.zeros(n), bias=np.zeros(n), ambient_weight=np.ones(n), poke_weight=np.ones(n))
    base.update(kw)
    return fields.Plan(**base)


def test_direction_bias_projects_onto_the_direction():
    f = np.random.default_rng(1).normal(size=(3, 2, 4, 5)).astype(np.float32)
    assert fields.apply_direction(f, 0.0, 0.0) is f
    horiz = fields.apply_direction(f, 0.0, 1.0)
    assert np.allclose(horiz[:, 0], f[:, 0], atol=1e-6) and np.allclose(horiz[:, 1], 0.0, atol=1e-6)
    up = fields.apply_direction(f, np.pi / 2, 1.0)            # 90 deg = up in the image = -y
    assert np.allclose(up[:, 0], 0.0, atol=1e-6) and np.allclose(up[:, 1], f[:, 1], atol=1e-6)
    half = fields.apply_direction(f, 0.0, 0.5)
    assert np.allclose(half[:, 1], 0.5 * f[:, 1], atol=1e-6)


def test_direction_bias_on_spectra_commutes_with_evaluation():
    s = _spectral()
    times = np.arange(0, 40, 3.0)
    a = sp.displacement_at(fields.apply_direction_spectral(s, 0.7, 0.8), T, times)
    b = fields.apply_direction(sp.displacement_at(s, T, times), 0.7, 0.8)
    assert np.allclose(a, b, atol=1e-4)


def test_speed_integration_and_animated_speed_path():
    frames = np.arange(-3, 10)
    tau = fields.integrate_speed(frames, 2, lambda f: 2.0)
    assert np.allclose(tau, 2.0 * (frames - 2))
    # a constant "animated" speed moves exactly like the static speed
    s = _spectral()
    static = fields.ambient(s, T, FPS, 24.0, _plan(frames, 2, speed=1.5), slice(None))
    tau = fields.integrate_speed(frames, 2, lambda f: 1.5)
    animated = fields.ambient(s, T, FPS, 24.0, _plan(frames, 2, speed_animated=True, tau=tau), slice(None))
    assert np.allclose(static, animated, atol=1e-4)
    # a loop with animated speed 1 equals the static loop
    loop_static = fields.ambient(s, T, FPS, 24.0, _plan(frames, 2, loop_frames=48), slice(None))
    loop_anim = fields.ambient(s, T, FPS, 24.0, _plan(frames, 2, loop_frames=48, speed_animated=True,
                                                      tau=fields.integrate_speed(frames, 2, lambda f: 1.0)),
                               slice(None))
    assert np.allclose(loop_static, loop_anim, atol=1e-4)


def test_controlled_combines_weights_magnitude_mask_and_pokes():
    s = _spectral()
    frames = np.arange(1, 9)
    n = len(frames)
    mask = np.zeros((6, 8), np.float32)
    mask[:, 4:] = 1.0
    pokes = np.ones((n, 2, 6, 8), np.float32)
    plan = _plan(frames, 1, magnitude=np.full(n, 2.0), ambient_weight=np.full(n, 0.5), poke_weight=np.full(n, 3.0))
    out = fields.controlled(s, T, FPS, FPS, plan, slice(None), mask, pokes)
    amb = sp.displacement_for_frames(s, T, FPS, frames - 1, FPS)
    assert np.allclose(out[..., 4:], (amb + 3.0)[..., 4:], atol=1e-4)     # 2 * 0.5 * ambient + 3 * pokes
    assert np.all(out[..., :4] == 0.0)
    assert np.all(fields.controlled(s, T, FPS, FPS, plan, slice(0, 1))[0] == 0.0)   # frame start = still


def test_uv_offsets_sizes_and_time_resampling():
    f = np.zeros((1, 2, 10, 20), np.float32)
    f[:, 0], f[:, 1] = 4.0, 5.0                       # 4 px right, 5 px down
    uv = fields.to_uv_offset(f)
    assert np.allclose(uv[:, 0], 0.2) and np.allclose(uv[:, 1], -0.5)
    assert fields.live_size((512, 288), 1024) == (512, 288)
    assert fields.live_size((4096, 2160), 1024) == (1024, 540)
    z = (np.arange(5) * (1 + 2j))[:, None] * np.ones((5, 3))
    r = fields.resample_time_complex(z, np.array([0.0, 1.5, 4.0, 9.0]))
    assert np.allclose(r[:, 0], np.array([0.0, 1.5, 4.0, 4.0]) * (1 + 2j))


def test_bad_motion_files_are_refused(tmp_path):
    pytest.importorskip("bpy")
    from blender_addon import storage

    np.savez(tmp_path / "nofps.npz", spectral=np.zeros((16, 4, 4, 4), np.float32), T=150)
    with pytest.raises(ValueError, match="lacks"):
        storage.read_motion_file(str(tmp_path / "nofps.npz"))
    np.savez(tmp_path / "shape.npz", spectral=np.zeros((16, 3, 4, 4), np.float32), fps=30.0, T=150)
    with pytest.raises(ValueError, match="spectral volume must be"):
        storage.read_motion_file(str(tmp_path / "shape.npz"))
    np.savez(tmp_path / "k.npz", spectral=np.zeros((80, 4, 4, 4), np.float32), fps=30.0, T=150)
    with pytest.raises(ValueError, match="do not fit"):
        storage.read_motion_file(str(tmp_path / "k.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot read"):
        storage.read_motion_file(str(tmp_path / "junk.npz"))


@pytest.mark.parametrize("loop_frames", [0, 48])
def test_ambient_at_image_size_equals_grid_evaluation_resized(loop_frames):
    """What the backend renders: displacement_for_frames at the volume's grid, resize_field to the image."""
    s = _spectral(6, 8)
    frames = np.arange(1, 30)
    plan = _plan(frames, 1, loop_frames=loop_frames, speed=1.3)
    amb = fields.Ambient(s, T, FPS, 24.0, plan, (32, 20))(slice(None))
    ref = sp.resize_field(sp.displacement_for_frames(s, T, FPS, frames - 1, 24.0, 1.3, 1.0, loop_frames), (32, 20))
    assert amb.shape == (len(frames), 2, 20, 32)
    assert np.allclose(amb, ref, atol=1e-4)


def test_poke_response_equals_shared_simulation():
    """Modal coordinates evaluated by the add-on (resized shapes, one GEMM) = shared.modal.simulate."""
    from shared import modal

    s = _spectral(6, 8)
    pokes = [{"frame": 3, "x": 4.0, "y": 2.0, "dx": 1.0, "dy": -0.5, "duration": 2},
             {"frame": 9, "x": 1.0, "y": 4.0, "dx": 0.0, "dy": 1.0, "duration": 3, "kind": "drag"}]
    ref = modal.simulate(s, FPS, T, pokes, 0, 40, damping=0.1)
    basis = modal.modes_from_spectral(s, FPS, T)
    z, _, _ = modal.modal_trajectory(basis, modal.make_dynamics(basis, 0.1), modal.parse_pokes(pokes, basis.size), 40)
    resp = fields.PokeResponse(z, 100, basis.shapes, (8, 6))
    assert np.allclose(resp(np.arange(100, 140)), ref, atol=1e-4)
    assert np.all(resp(np.array([99, 140])) == 0.0)               # outside the simulated range
    big = fields.PokeResponse(z, 100, basis.shapes, (16, 12))(np.arange(100, 140))
    assert np.allclose(big, sp.resize_field(ref, (16, 12)), atol=1e-4)
