"""backend.eval.metrics and baselines on analytic cases (issue 9)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from backend.eval import baselines, metrics
from shared import spectral

T, K = 30, 8


def oscillation(h: int = 12, w: int = 20, seed: int = 0) -> np.ndarray:
    """A spectral volume of a few smooth oscillations, amplitude varying over the image."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    motion = np.zeros((T, 2, h, w))
    for k in (1, 2, 4):
        motion[:, 0] += (2.0 / k) * np.cos(2 * np.pi * k * t / T + rng.uniform(0, 6))[:, None, None] * xx[None]
        motion[:, 1] += (1.0 / k) * np.sin(2 * np.pi * k * t / T + rng.uniform(0, 6))[:, None, None] * yy[None]
    return spectral.motion_to_spectral(motion, K)


def test_identical_prediction_is_perfect():
    s = oscillation()
    f = metrics.motion_figures(s, s, T)
    assert f["amplitude_error_px"] == 0 and f["epe_px"] == 0 and f["log_power_distance"] == 0
    assert f["amplitude_ratio"] == pytest.approx(1.0)
    assert f["energy_correlation"] == pytest.approx(1.0)
    assert f["motion_amount_px"] == pytest.approx(metrics.motion_amount(s, T))


def test_scaled_prediction_gives_known_figures():
    s = oscillation()
    c = 2.5
    pred = c * s
    assert metrics.amplitude_ratio(pred, s, T) == pytest.approx(c, rel=1e-5)
    # | |c a| - |a| | = (c - 1) |a|
    assert metrics.amplitude_error(pred, s, T) == pytest.approx((c - 1) * metrics.amplitudes_px(s, T).mean(),
                                                                rel=1e-5)
    per_k = metrics.log_power_distance(pred, s, T)["per_k"]          # k = 1..7; only 1, 2, 4 move
    expect = [2 * math.log10(c) if k in (1, 2, 4) else 0.0 for k in range(1, K)]
    assert per_k == pytest.approx(expect, abs=1e-4)
    assert metrics.correlation(metrics.energy_map(pred, T), metrics.energy_map(s, T)) == pytest.approx(1.0)
    # EPE of c F vs F is (c - 1) * mean ||F||: the motion amount.
    assert metrics.endpoint_error(pred, s, T) == pytest.approx((c - 1) * metrics.motion_amount(s, T), rel=1e-4)
    assert metrics.motion_amount(pred, T) == pytest.approx(c * metrics.motion_amount(s, T), rel=1e-5)


def test_amplitudes_are_pixels_of_swing():
    t = np.arange(T)
    motion = np.zeros((T, 2, 2, 3))
    motion[:, 1] = 0.7 * np.cos(2 * np.pi * 3 * t / T + 0.4)[:, None, None]
    a = metrics.amplitudes_px(spectral.motion_to_spectral(motion, K), T)
    assert a[2, 1] == pytest.approx(np.full((2, 3), 0.7), abs=1e-5)        # term k=3 -> index 2 (DC dropped)
    assert a[:, 0].max() < 1e-6


def test_phase_shift_keeps_phase_invariant_figures_but_not_epe():
    s = oscillation()
    c = spectral.to_complex(s) * np.exp(1j * np.arange(K) * 1.3)[:, None, None, None]
    shifted = spectral.from_complex(c)
    assert metrics.amplitude_error(shifted, s, T) < 1e-5
    assert metrics.log_power_distance(shifted, s, T)["mean"] < 1e-5
    assert metrics.endpoint_error(shifted, s, T) > 0.1


def test_best_and_mean_of_samples():
    s = oscillation()
    preds = np.stack([s, 2 * s, 0 * s])
    e = metrics.endpoint_error_samples(preds, s, T)
    amount = metrics.motion_amount(s, T)
    assert e["best"] == 0 and e["mean"] == pytest.approx(2 * amount / 3, rel=1e-4)


def test_valid_mask_restricts_and_is_checked():
    s = oscillation()
    pred = s.copy()
    pred[:, :, :, :5] *= 3.0                                   # wrong only in the first 5 columns
    valid = np.ones(s.shape[-2:], bool)
    valid[:, :5] = False
    assert metrics.amplitude_error(pred, s, T, valid) == 0
    with pytest.raises(ValueError, match="no valid pixel"):
        metrics.amplitude_error(pred, s, T, np.zeros_like(valid))
    with pytest.raises(ValueError, match="resample"):
        metrics.amplitude_error(pred[..., :10], s, T)


def test_loop_seam_of_exact_loop_and_of_a_cut():
    s = oscillation()
    frames = np.arange(45 + 2)
    loop = metrics.loop_seam(spectral.displacement_for_frames(s, T, 30.0, frames, loop_frames=45))
    assert loop["seam_px"] < 1e-5 and loop["velocity_px"] < 1e-5 and loop["ratio"] < 1e-4
    cut = metrics.loop_seam(spectral.displacement_for_frames(s, T, 30.0, np.arange(17 + 2)))
    # A cut at 17 of a 30-frame period: the pop is the distance between F_17 and F_0.
    d = spectral.displacement_at(s, T, [17.0])[0]
    assert cut["seam_px"] == pytest.approx(float(np.sqrt((d.astype(np.float64) ** 2).sum(axis=0)).mean()), rel=1e-5)
    assert cut["ratio"] > 2
    assert metrics.loop_seam(np.zeros((5, 2, 3, 3)))["ratio"] == 0


def test_psnr_and_ssim():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    assert metrics.psnr(a, a) == float("inf")
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    b = np.clip(a.astype(int) + 10, 0, 255).astype(np.uint8)
    assert 25 < metrics.psnr(a, b) < 29                     # ~ 20 log10(255 / 10) = 28.1, less where clipped
    noisy = np.clip(a + rng.normal(0, 40, a.shape), 0, 255).astype(np.uint8)
    assert metrics.ssim(a, noisy) < 0.9 and metrics.ssim(a, b) > metrics.ssim(a, noisy)


def test_baselines_shapes_and_matched_amplitude(tmp_path):
    s = oscillation(seed=1)
    assert baselines.no_motion(K, (20, 12)).shape == (K, 4, 12, 20)
    noise = baselines.smooth_noise(s, T, seed=3)
    assert noise.shape == s.shape and noise.dtype == np.float32
    assert baselines.matched_amount_check(noise, s, T) == pytest.approx(1.0, rel=1e-5)
    assert not np.array_equal(noise, baselines.smooth_noise(s, T, seed=4))
    # Training-set mean: mean per-pixel amplitude, phase 0, resampled to the size asked for.
    vols = [oscillation(seed=i) for i in range(3)]
    for i, v in enumerate(vols):
        np.savez(tmp_path / f"sample_{i:06d}.npz", spectral=v, fps=np.float32(30), T=np.int32(T))
    mean, info = baselines.mean_amplitude_spectral([tmp_path], (20, 12))
    assert info == {"samples": 3, "T": T, "fps": 30.0}
    expect = np.mean([np.abs(spectral.to_complex(v)) for v in vols], axis=0)
    np.testing.assert_allclose(np.abs(spectral.to_complex(mean)), expect, rtol=1e-5)
    small, _ = baselines.mean_amplitude_spectral([tmp_path], (10, 6))
    assert small.shape == (K, 4, 6, 10)
    with pytest.raises(FileNotFoundError):
        baselines.mean_amplitude_spectral([tmp_path / "nope"], (10, 6))


def test_still_ratio_is_motion_on_still_pixels_over_moving():
    from backend.eval.metrics import STILL_PX, still_ratio
    true = np.zeros((4, 6))
    true[:, 3:] = 1.0                                   # right half moves, left half still
    assert still_ratio(true, true) == 0.0               # the truth itself: nothing on the still half
    assert still_ratio(np.ones((4, 6)), true) == 1.0    # uniform motion: as much on still as on moving pixels
    pred = np.where(true > 0, 2.0, 0.5)
    assert still_ratio(pred, true) == pytest.approx(0.25)
    # 'still' is below STILL_PX of true motion; a mask restricts both groups
    almost = np.where(true > 0, 1.0, 0.9 * STILL_PX)
    assert still_ratio(pred, almost) == pytest.approx(0.25)
    valid = np.ones((4, 6), bool)
    valid[:, :3] = False
    assert np.isnan(still_ratio(pred, true, valid))     # no still pixel left: no figure
    assert np.isnan(still_ratio(np.zeros((4, 6)), true))


def test_spectral_shape_distance_ignores_the_amount_and_sees_the_terms():
    s = oscillation()
    assert metrics.spectral_shape_distance(0.1 * s, s, T) < 1e-5            # a tenth of the motion, same shape
    assert metrics.log_power_distance(0.1 * s, s, T)["mean"] > 0.8   # 2 decades off at the 3 moving terms of 7
    c = spectral.to_complex(s)
    c[1:4] = c[1:4][::-1]                                                  # power moved from k = 1 to k = 3
    moved = spectral.from_complex(c)
    assert metrics.spectral_shape_distance(moved, s, T) > 0.5
    # where every term moves, the shape distance is the log power distance of the prediction rescaled to the
    # truth's total power (what the real-bar line reports as the distance "with each scene's amount right")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=s.shape).astype(np.float32), 0.1 * rng.normal(size=s.shape).astype(np.float32) * s.max()
    scale = np.sqrt(metrics.power_spectrum(a, T).sum() / metrics.power_spectrum(b, T).sum())
    assert metrics.log_power_distance(b * scale, a, T)["mean"] == pytest.approx(
        metrics.spectral_shape_distance(b, a, T), abs=1e-4)
    f = metrics.motion_figures(s, s, T)
    assert f["spectral_shape_distance"] == 0 and f["peak_term"] == 1
    assert metrics.motion_figures(moved, s, T)["peak_term"] == 3


def test_texture_energy_follows_the_pictures_detail():
    """The texture prior's map (issue 20): high on the textured half, mean 1, defined for a flat picture."""
    from backend.eval.baselines import texture_energy
    rng = np.random.default_rng(0)
    image = np.full((40, 64, 3), 128, np.uint8)
    image[:, 32:] = rng.integers(0, 255, (40, 32, 3))
    e = texture_energy(image)
    assert e.shape == (40, 64) and abs(e.mean() - 1) < 1e-9
    assert e[:, 40:].mean() > 5 * e[:, :24].mean()
    assert np.allclose(texture_energy(np.full((40, 64, 3), 9, np.uint8)), 1.0)


def test_spectrum_shape_floor_script(tmp_path):
    """scripts/spectrum_shape_floor.py: picture-agnostic spectrum shapes scored on held-out windows. With the
    held-out folder also given as the training folder, the training clips' per-term median is the held-out
    median itself, so the two lines agree; another training set scores differently."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    from tests.motion_fixtures import write_dataset
    folders = {n: str(write_dataset(tmp_path / n, c, seed=s, size=(32, 16)))
               for n, c, s in (("val", 5, 1), ("train", 6, 2), ("synth", 4, 3))}
    script = Path(__file__).resolve().parents[1] / "scripts" / "spectrum_shape_floor.py"

    def run(train: str) -> tuple[str, dict]:
        out = subprocess.run([sys.executable, str(script), "--val", folders["val"], "--train", train,
                              "--synth", folders["synth"]], capture_output=True, text=True, check=True).stdout
        pat = r"^\s+(.+?)\s+shape distance ([\d.]+)$"
        return out, {m.group(1).strip(): float(m.group(2)) for m in re.finditer(pat, out, re.M)}

    out, d = run(folders["train"])
    assert out.startswith("5 held-out windows, 6 training windows, 4 synthetic scenes") and len(d) == 5
    assert all(v > 0 for v in d.values())
    oracle = "held-out windows' own per-term median (knows the answers)"
    assert d["training clips: per-term median (log)"] != pytest.approx(d[oracle], abs=1e-4)
    _, same = run(folders["val"])
    assert same["training clips: per-term median (log)"] == pytest.approx(same[oracle], abs=1e-9)
