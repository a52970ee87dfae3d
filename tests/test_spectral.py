import numpy as np
import pytest

from shared import spectral as sp


def band_limited_motion(T, K, H=6, W=5, seed=0):
    """A random motion texture with no energy above term K-1 (so K terms represent it exactly)."""
    rng = np.random.default_rng(seed)
    full = np.zeros((T // 2 + 1, 2, H, W), np.complex128)
    full[:K] = rng.normal(size=(K, 2, H, W)) + 1j * rng.normal(size=(K, 2, H, W))
    full[0] = full[0].real
    return np.fft.irfft(full, n=T, axis=0).astype(np.float64) * T


@pytest.mark.parametrize("T", [150, 149, 32, 33])
def test_round_trip_band_limited(T):
    motion = band_limited_motion(T, 16)
    spectral = sp.motion_to_spectral(motion, K=16)
    assert spectral.shape == (16, 4, 6, 5) and spectral.dtype == np.float32
    back = sp.spectral_to_motion(spectral, T)
    assert np.max(np.abs(back - motion)) <= 1e-5 * max(1.0, np.abs(motion).max())


def test_channel_order_is_re_x_im_x_re_y_im_y():
    T = 40
    t = np.arange(T)
    motion = np.zeros((T, 2, 1, 1))
    motion[:, 0, 0, 0] = np.cos(2 * np.pi * 3 * t / T)       # x: cosine -> real
    motion[:, 1, 0, 0] = np.sin(2 * np.pi * 3 * t / T)       # y: sine -> negative imaginary
    s = sp.motion_to_spectral(motion, K=8)[3, :, 0, 0]
    np.testing.assert_allclose(s, [T / 2, 0, 0, -T / 2], atol=1e-4)


@pytest.mark.parametrize("T", [150, 151])
def test_closed_form_matches_irfft_and_frame_zero(T):
    motion = band_limited_motion(T, 16, seed=1)
    spectral = sp.motion_to_spectral(motion)
    times = np.arange(T)
    absolute = sp.displacement_at(spectral, T, times, relative=False)
    np.testing.assert_allclose(absolute, sp.spectral_to_motion(spectral, T), atol=1e-4)
    relative = sp.displacement_at(spectral, T, times)
    np.testing.assert_allclose(relative, absolute - absolute[:1], atol=1e-4)
    assert np.all(relative[0] == 0)


def test_analytic_single_cosine_at_real_times():
    T, fps, amp, k = 150, 30.0, 2.5, 4                     # 0.8 Hz
    t = np.arange(T)
    motion = np.zeros((T, 2, 2, 3))
    motion[:, 0] = amp * np.cos(2 * np.pi * k * t / T + 0.3)[:, None, None]
    spectral = sp.motion_to_spectral(motion)
    times = np.array([0.0, 0.5, 17.25, 100.9, 149.99])
    got = sp.displacement_at(spectral, T, times, relative=False)[:, 0, 0, 0]
    want = amp * np.cos(2 * np.pi * k * times / T + 0.3)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # speed 2 = the same curve at twice the rate; magnitude scales it
    fast = sp.displacement_at(spectral, T, times, speed=2.0, magnitude=0.5, relative=False)[:, 0, 0, 0]
    np.testing.assert_allclose(fast, 0.5 * amp * np.cos(2 * np.pi * k * 2 * times / T + 0.3), atol=1e-5)


@pytest.mark.parametrize("loop_frames,scene_fps,speed", [(48, 24.0, 1.0), (37, 25.0, 1.3), (150, 30.0, 0.7),
                                                        (7, 24.0, 1.0)])
def test_exact_loop_closes(loop_frames, scene_fps, speed):
    T, fps = 150, 30.0
    spectral = sp.motion_to_spectral(band_limited_motion(T, 16, seed=2))
    loop = sp.make_loop(spectral, T, fps, loop_frames, scene_fps, speed)
    assert np.all(loop.cycles == np.round(loop.cycles)) and np.all(loop.cycles > 0)
    d = loop.displacement([0.0, 1.0, loop_frames, loop_frames + 1.0])
    assert np.max(np.abs(d[2] - d[0])) <= 1e-4          # position at L equals position at 0
    assert np.max(np.abs((d[3] - d[2]) - (d[1] - d[0]))) <= 1e-4   # and so does the velocity
    assert np.abs(d[1]).max() > 0


def test_loop_keeps_energy_and_matches_original_when_already_periodic():
    T, fps = 150, 30.0
    spectral = sp.motion_to_spectral(band_limited_motion(T, 16, seed=3))
    # 150 frames at 30 fps is already a whole number of cycles of every term: the loop is the original
    loop = sp.make_loop(spectral, T, fps, loop_frames=150, scene_fps=30.0)
    frames = np.arange(0, 150, 7.0)
    np.testing.assert_allclose(loop.displacement(frames), sp.displacement_at(spectral, T, frames), atol=1e-4)
    # a short loop merges/drops terms but keeps each pixel's oscillation energy
    short = sp.make_loop(spectral, T, fps, loop_frames=24, scene_fps=24.0)
    c = sp.to_complex(spectral)[1:] * 2 / T
    before = (np.abs(c) ** 2).sum(axis=(0, 1))
    after = (np.abs(short.coeffs) ** 2).sum(axis=(0, 1))
    np.testing.assert_allclose(after, before, rtol=1e-6)


def test_loop_too_short_for_any_term_is_still():
    spectral = sp.motion_to_spectral(band_limited_motion(150, 2, seed=4))   # only 0.2 Hz
    loop = sp.make_loop(spectral, 150, 30.0, loop_frames=2, scene_fps=24.0)
    assert np.all(loop.displacement([0, 1, 2]) == 0)


def test_normalisation_round_trip_and_stats():
    rng = np.random.default_rng(5)
    vols = [rng.normal(size=(16, 4, 8, 8)).astype(np.float32) * (np.arange(16)[:, None, None, None] + 1)
            for _ in range(10)]
    stats = sp.compute_norm_stats(vols)
    assert stats.scales.shape == (16,) and np.all(np.diff(stats.scales) > 0)
    # 95th percentile of |N(0, s^2)| is 1.96 s
    np.testing.assert_allclose(stats.scales / (np.arange(16) + 1), 1.96, rtol=0.08)
    n = sp.normalize(vols[0], stats)
    np.testing.assert_allclose(sp.denormalize(n, stats), vols[0], rtol=1e-5, atol=1e-6)
    again = sp.NormStats.from_dict(stats.to_dict())
    np.testing.assert_array_equal(again.scales, stats.scales)
    with pytest.raises(ValueError):
        sp.NormStats.from_dict({"scales": [1.0, -1.0]})


def test_resample_scales_vectors_and_keeps_constant_fields():
    s = np.zeros((16, 4, 20, 32), np.float32)
    s[:, 0] = 1.0      # Re x
    s[:, 3] = 2.0      # Im y
    big = sp.resample_spectral(s, (64, 30))
    assert big.shape == (16, 4, 30, 64)
    np.testing.assert_allclose(big[:, 0], 2.0, atol=1e-6)   # x doubled with the width
    np.testing.assert_allclose(big[:, 3], 3.0, atol=1e-6)   # y times 1.5 with the height
    small = sp.resample_spectral(s, (8, 5))
    np.testing.assert_allclose(small[:, 0], 0.25, atol=1e-6)


def test_resize_field_linear_ramp():
    x = np.arange(16, dtype=np.float32)
    field = np.zeros((2, 8, 16), np.float32)
    field[0] = x[None, :]
    out = sp.resize_field(field, (32, 8))
    # a ramp stays a ramp (interior), vectors double
    inner = out[0, 0, 2:-2]
    assert np.allclose(np.diff(inner), 1.0, atol=1e-5)


def test_displacement_for_frames_loop_and_plain():
    T, fps = 150, 30.0
    spectral = sp.motion_to_spectral(band_limited_motion(T, 16, seed=6))
    plain = sp.displacement_for_frames(spectral, T, fps, [0, 12, 24], scene_fps=24.0, speed=1.0)
    np.testing.assert_allclose(plain, sp.displacement_at(spectral, T, [0, 15, 30]), atol=1e-4)
    looped = sp.displacement_for_frames(spectral, T, fps, [0, 48], scene_fps=24.0, loop_frames=48)
    assert np.abs(looped[1] - looped[0]).max() <= 1e-4
