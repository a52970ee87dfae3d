"""Motion placement (backend/motion/placement.py, issue 20): the gain, the net, its trainer, the predictor hook.

The gain must keep every pixel's spectrum (a positive scalar per pixel), the picture's mean energy, and move the
energy map towards the placement map; the trainer must learn a map on data where motion follows the picture; a
checkpoint with placement/ must use it in `predict` and leave `place=False` untouched.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from backend.eval.metrics import correlation
from backend.motion.metrics import energy_map
from backend.motion.placement import (GAIN_LIMIT, PlacementConfig, PlacementNet, apply_placement, load_placement,
                                      placement_gain)
from backend.train.common import save_module
from shared.spectral import motion_to_spectral

T = 150


@pytest.fixture(scope="module")
def checkpoint_small(tmp_path_factory):
    """An untrained small motion model in the shipped layout (as test_motion_predictor's)."""
    from backend.motion.config import get_preset
    from backend.motion.unet import FrequencyUNet
    from backend.motion.vae import SpectralVAE
    from backend.train.common import atomic_write_text
    from test_motion_predictor import SMALL
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("ckpt")
    cfg = get_preset("tiny").replace(**SMALL)
    for part, model in (("vae", SpectralVAE(cfg)), ("ldm", FrequencyUNet(cfg))):
        cfg.save(root / part / "config.json")
        atomic_write_text(root / part / "norm_stats.json", json.dumps({"scales": [1.0] * cfg.K, "percentile": 95.0}))
        save_module(root / part / "model.safetensors", model)
    return root


def _volume(rng, h=20, w=32, K=16):
    t = np.arange(T)[:, None, None, None]
    amp = rng.uniform(0.2, 2.0, (1, 2, h, w))
    phase = rng.uniform(0, 2 * np.pi, (1, 2, h, w))
    motion = amp * np.sin(2 * np.pi * 3 * t / T + phase)
    return motion_to_spectral(motion - motion[:1], K)


def test_gain_keeps_each_pixels_spectrum_and_the_mean_energy_and_moves_towards_the_map():
    rng = np.random.default_rng(0)
    spectral = _volume(rng)
    where = np.ones((20, 32), np.float32)
    where[:, 16:] = 6.0                                      # "the right half moves"
    before = energy_map(spectral, T)
    for strength in (0.25, 0.5, 1.0):
        placed = apply_placement(spectral, where, T, strength)
        gain = placed[3, 0] / spectral[3, 0]                  # term 3 carries the motion at every pixel
        assert (gain > 0).all()
        np.testing.assert_allclose(placed, spectral * gain, rtol=1e-4, atol=1e-6)
        after = energy_map(placed, T)
        assert after.mean() == pytest.approx(before.mean(), rel=1e-4)
        assert correlation(after, where) > correlation(before, where) + 0.3
    np.testing.assert_array_equal(apply_placement(spectral, where, T, 0.0), spectral)


def test_gain_is_bounded_and_still_pictures_stay_still():
    energy = np.ones((10, 10))
    where = np.ones((10, 10))
    where[0, 0] = 1e9
    gain = placement_gain(energy, where, 1.0, 0.0)
    assert gain.max() / gain.min() <= GAIN_LIMIT ** 2 * 1.0001
    assert (placement_gain(np.zeros((10, 10)), where, 1.0, 2.0) == 1).all()


def test_net_shapes_and_map_of_any_aspect():
    torch.manual_seed(0)
    net = PlacementNet(PlacementConfig(size=(32, 16), channels=(8, 8, 8)))
    out = net(torch.rand(2, 3, 16, 32))
    assert out.shape == (2, 1, 16, 32)
    rng = np.random.default_rng(1)
    m = net.placement_map(rng.integers(0, 255, (90, 40, 3), dtype=np.uint8), (20, 45))
    assert m.shape == (45, 20) and m.dtype == np.float32 and m.mean() == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError):
        PlacementConfig(size=(30, 16), channels=(8, 8, 8)).validate()
    with pytest.raises(ValueError):
        PlacementConfig(strength=1.5).validate()


def _textured_samples(folder, count, rng, size=(64, 40)):
    """Samples whose motion is where the picture is textured (a noisy square on a flat background)."""
    from backend.data.samples import sample_path, write_npz_atomic
    w, h = size
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = np.full((h, w, 3), 120, np.uint8)
        bw, bh = rng.integers(10, 24), rng.integers(8, 16)
        x0, y0 = rng.integers(0, w - bw), rng.integers(0, h - bh)
        image[y0:y0 + bh, x0:x0 + bw] = rng.integers(0, 255, (bh, bw, 3))
        motion = np.zeros((T, 2, h, w))
        motion[:, 0, y0:y0 + bh, x0:x0 + bw] = np.sin(2 * np.pi * 2 * np.arange(T) / T)[:, None, None]
        write_npz_atomic(sample_path(folder, i), {
            "image": image, "spectral": motion_to_spectral(motion, 16), "valid": np.ones((h, w), bool),
            "fps": np.float32(30), "T": np.int32(T)})
    return folder


def test_trainer_learns_where_the_motion_is(tmp_path):
    from backend.motion import train_placement
    rng = np.random.default_rng(2)
    train = _textured_samples(tmp_path / "train", 12, rng)
    val = _textured_samples(tmp_path / "val", 6, rng)
    parser = __import__("argparse").ArgumentParser()
    train_placement.add_arguments(parser)
    args = parser.parse_args(["--data", str(train), "--val", str(val), "--out", str(tmp_path / "run"),
                              "--steps", "120", "--batch", "8", "--eval-every", "60", "--threads", "1",
                              "--strength", "0.7"])
    assert train_placement.run(args) == 0
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["val_corr"][0] > 0.6, log
    net = load_placement(tmp_path / "run" / "placement")
    assert net.config.strength == 0.7 and not any(p.requires_grad for p in net.parameters())


def test_predictor_uses_a_checkpoints_placement(tmp_path, checkpoint_small):
    from backend.motion.predictor import MotionPredictor
    root = tmp_path / "ckpt"
    shutil.copytree(checkpoint_small, root)
    torch.manual_seed(0)
    cfg = PlacementConfig(size=(32, 16), channels=(8, 8, 8), strength=1.0)
    net = PlacementNet(cfg)
    (root / "placement").mkdir()
    cfg.save(root / "placement" / "config.json")
    save_module(root / "placement" / "model.safetensors", net)
    plain = MotionPredictor.load(checkpoint_small, device="cpu")
    placed = MotionPredictor.load(root, device="cpu")
    assert plain.placement is None and placed.info()["placement"] == 1.0
    image = np.random.default_rng(3).integers(0, 255, (40, 100, 3), dtype=np.uint8)
    a = placed.predict(image, seed=4, samples=2, steps=2, place=False).spectral
    b = placed.predict(image, seed=4, samples=2, steps=2).spectral
    np.testing.assert_array_equal(a, plain.predict(image, seed=4, samples=2, steps=2).spectral)
    np.testing.assert_allclose(placed.place(image, a), b, rtol=1e-6)
    assert not np.allclose(a, b)
    big = np.abs(a) > 1e-3 * np.abs(a).max()
    gain = np.abs(b).sum((1, 2), keepdims=True) / np.abs(a).sum((1, 2), keepdims=True)
    assert (gain > 0).all()
    np.testing.assert_allclose(b[big], (a * gain)[big], rtol=1e-3)        # one positive gain per pixel
    with pytest.raises(ValueError):
        placed.place(image, a[..., :-1])
    # the strength can be chosen per call: 0 = the denoiser's own, the checkpoint's (1.0 here) by default
    np.testing.assert_array_equal(placed.predict(image, seed=4, samples=2, steps=2, placement=0.0).spectral, a)
    half = placed.predict(image, seed=4, samples=2, steps=2, placement=0.5).spectral
    assert not np.allclose(half, a) and not np.allclose(half, b)
    with pytest.raises(ValueError, match="strength"):
        placed.place(image, a, 1.5)


def test_texture_source_needs_no_weights_and_matches_the_eval_baseline(tmp_path):
    from backend.eval.baselines import texture_energy
    cfg = PlacementConfig(source="texture", strength=0.5)
    (tmp_path / "placement").mkdir()
    cfg.save(tmp_path / "placement" / "config.json")
    net = load_placement(tmp_path / "placement")
    assert sum(p.numel() for p in net.parameters()) == 0
    rng = np.random.default_rng(5)
    image = np.full((160, 256, 3), 90, np.uint8)
    image[20:90, 30:120] = rng.integers(0, 255, (70, 90, 3))
    image[100:150, 150:240] = rng.integers(60, 120, (50, 90, 3))
    m = net.placement_map(image, (256, 160))
    assert correlation(m, texture_energy(image)) > 0.9
    with pytest.raises(ValueError, match="source"):
        PlacementConfig(source="depth").validate()
