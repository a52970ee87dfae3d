"""Object spread (backend/motion/spread.py, issue 20): the guided filter, the gain, the predictor hook.

The spread must fill a colour region with the motion found in parts of it and stop at colour edges (where a blur
would bleed), keep every pixel's spectrum (one positive gain per pixel) and the picture's mean energy, and be off
at radius 0; a checkpoint whose placement config asks for it must apply it in `predict`.
"""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from backend.motion.metrics import energy_map
from backend.motion.placement import PlacementConfig
from backend.motion.spread import GAIN_LIMIT, apply_spread, guided_filter, spread_gain
from shared.spectral import motion_to_spectral
from test_motion_placement import checkpoint_small  # noqa: F401  (the same untrained small checkpoint)

T = 150


def _two_colour_picture(h=40, w=64):
    """Left half red (an object), right half blue (the sky): guide in [0, 1]."""
    guide = np.zeros((h, w, 3))
    guide[:, : w // 2, 0] = 0.8
    guide[:, w // 2:, 2] = 0.9
    return guide


def _volume(energy_amp, rng):
    """A volume whose pixels oscillate at term 3 with amplitude energy_amp (H, W), random phases."""
    h, w = energy_amp.shape
    t = np.arange(T)[:, None, None, None]
    phase = rng.uniform(0, 2 * np.pi, (1, 2, h, w))
    motion = energy_amp[None, None] * np.sin(2 * np.pi * 3 * t / T + phase)
    return motion_to_spectral(motion - motion[:1], 16)


def test_guided_filter_keeps_constants_and_colour_edges():
    guide = _two_colour_picture()
    np.testing.assert_allclose(guided_filter(guide, np.full((40, 64), 2.5), 4, 1e-4), 2.5, rtol=1e-6)
    step = guide[..., 0] * 10.0                                  # a map that follows the guide's edge
    out = guided_filter(guide, step, 6, 1e-4)
    np.testing.assert_allclose(out, step, atol=0.05)             # kept sharp, where a blur of radius 6 is not
    assert np.abs(cv2.blur(step, (13, 13)) - step).max() > 2.0
    with pytest.raises(ValueError):
        guided_filter(guide[..., :2], step, 4, 1e-4)
    with pytest.raises(ValueError):
        guided_filter(guide, step[:-1], 4, 1e-4)
    with pytest.raises(ValueError):
        guided_filter(guide, step, 0, 1e-4)


def test_spread_fills_the_object_and_does_not_bleed_across_its_edge():
    rng = np.random.default_rng(0)
    guide = _two_colour_picture()
    amp = np.zeros((40, 64))
    amp[:, :32] = (rng.random((40, 32)) < 0.3) * 2.0             # speckles: 30 % of the object's pixels move
    amp[:, :32] += 0.05                                          # the rest a little (a spectrum to scale)
    amp[:, 32:] = 0.01                                           # the sky nearly still
    spectral = _volume(amp, rng)
    before = energy_map(spectral, T)
    after = energy_map(apply_spread(spectral, guide, T, 8, 1e-4), T)
    inner = (slice(8, 32), slice(8, 24))                         # away from the frame's border
    assert after[inner].std() / after[inner].mean() < 0.5 * before[inner].std() / before[inner].mean()
    np.testing.assert_allclose(after.mean(), before.mean(), rtol=1e-4)      # the picture's mean energy kept
    sky = (slice(None), slice(34, 64))
    assert after[sky].mean() < 0.03 * after[:, :30].mean()       # no halo in the sky beside the object (a box
    #                                                              blur of the same radius leaves 0.05)
    assert after[sky].mean() <= GAIN_LIMIT * before[sky].mean() * 1.001


def test_gain_is_one_positive_scalar_per_pixel_so_spectra_and_loops_are_kept():
    rng = np.random.default_rng(1)
    t = np.arange(T)[:, None, None, None]
    amp = rng.uniform(0.1, 2.0, (1, 2, 20, 32))
    motion = amp * (np.sin(2 * np.pi * 2 * t / T + 1.0) + 0.5 * np.cos(2 * np.pi * 5 * t / T))
    spectral = motion_to_spectral(motion - motion[:1], 16)
    guide = rng.random((20, 32, 3))
    out = apply_spread(spectral, guide, T, 3, 1e-3)
    gain = spread_gain(energy_map(spectral, T), guide, 3, 1e-3)
    assert (gain >= 1 / GAIN_LIMIT - 1e-6).all() and (gain <= GAIN_LIMIT * 1.001).all()
    np.testing.assert_allclose(out, spectral * gain[None, None], rtol=1e-5, atol=1e-7)
    # radius 0 = off; a still picture stays still
    np.testing.assert_array_equal(apply_spread(spectral, guide, T, 0, 1e-3), spectral.astype(np.float32))
    still = np.zeros_like(spectral)
    np.testing.assert_array_equal(apply_spread(still, guide, T, 3, 1e-3), still)


def test_config_bounds_the_spread():
    assert PlacementConfig().spread == 0.0                      # old configs load with the spread off
    with pytest.raises(ValueError, match="spread"):
        PlacementConfig(source="texture", spread=0.7).validate()
    with pytest.raises(ValueError, match="spread"):
        PlacementConfig(source="texture", spread=0.1, spread_eps=0.0).validate()


def test_predictor_applies_the_spread_its_placement_config_asks_for(tmp_path, checkpoint_small):
    from backend.motion.predictor import MotionPredictor
    roots = {}
    for name, spread in (("plain", 0.0), ("spread", 1 / 16)):
        root = tmp_path / name
        shutil.copytree(checkpoint_small, root)
        (root / "placement").mkdir()
        PlacementConfig(source="texture", strength=0.5, spread=spread).save(root / "placement" / "config.json")
        roots[name] = MotionPredictor.load(root, device="cpu")
    assert roots["spread"].info()["placement_spread"] == pytest.approx(1 / 16)
    image = np.random.default_rng(3).integers(0, 255, (40, 100, 3), dtype=np.uint8)
    image[:, :50] = (200, 40, 30)                                 # two flat colour regions
    raw = roots["plain"].predict(image, seed=4, samples=2, steps=2, place=False).spectral
    plain = roots["plain"].place(image, raw)
    spread = roots["spread"].place(image, raw)
    np.testing.assert_allclose(roots["spread"].predict(image, seed=4, samples=2, steps=2).spectral, spread,
                               rtol=1e-5, atol=1e-7)
    assert not np.allclose(plain, spread)
    for a, b in zip(plain, spread):                               # the mean energy of each sample is kept
        np.testing.assert_allclose(energy_map(b, T).mean(), energy_map(a, T).mean(), rtol=1e-3)
    # strength 0 = the denoiser's own volumes, spread off too
    np.testing.assert_array_equal(roots["spread"].place(image, raw, 0.0), raw)


def test_addon_default_is_the_shipped_placement_strength():
    """The add-on sends its "Follow texture" value with every predict: its default must be the shipped one."""
    import ast
    import json
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    shipped = json.loads((root / "backend/weights/default/placement/config.json").read_text())
    tree = ast.parse((root / "blender_addon/properties.py").read_text())
    # bpy properties are annotations: `placement: FloatProperty(name=..., default=...)`
    defaults = [kw.value.value for node in ast.walk(tree) if isinstance(node, ast.AnnAssign)
                and getattr(node.target, "id", None) == "placement" and isinstance(node.annotation, ast.Call)
                for kw in node.annotation.keywords if kw.arg == "default"]
    assert defaults == [shipped["strength"]]
