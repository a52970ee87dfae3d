"""MotionPredictor contract: load a checkpoint folder, any size/aspect, greyscale/RGBA, clear rejections.

The checkpoint here is an untrained small model written in the shipped layout (vae/, ldm/): these tests are
about the API and the image handling, not about motion quality (`gid eval` measures that).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from backend.motion.config import get_preset
from backend.motion.predictor import MotionPredictor, letterbox
from backend.motion.unet import FrequencyUNet
from backend.motion.vae import SpectralVAE
from backend.train.common import atomic_write_text, save_module

SMALL = dict(work_size=(32, 16), vae_channels=(8, 8), unet_channels=(16, 32), unet_groups=8,
             image_encoder_channels=(8,), cond_channels=8, freq_attention_heads=2, freq_attention_levels=(0, 1),
             sample_steps=2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("ckpt")
    cfg = get_preset("tiny").replace(**SMALL)
    stats = {"scales": [1.0] * cfg.K, "percentile": 95.0}
    unet = FrequencyUNet(cfg)
    unet.enable_freq_attention()
    for part, model in (("vae", SpectralVAE(cfg)), ("ldm", unet)):
        cfg.save(root / part / "config.json")
        atomic_write_text(root / part / "norm_stats.json", json.dumps(stats))
        save_module(root / part / "model.safetensors", model)
    return root


@pytest.fixture(scope="module")
def predictor(checkpoint):
    return MotionPredictor.load(checkpoint, device="cpu")


def test_info_and_default_prediction(predictor):
    info = predictor.info()
    assert info["freq_attention"] is True and info["K"] == 16 and info["work_size"] == [32, 16]
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 80, 3), dtype=np.uint8)       # same aspect as the working size
    p = predictor.predict(image, seed=1, samples=2)
    assert p.spectral.shape == (2, 16, 4, 16, 32) and p.spectral.dtype == np.float32
    assert p.size == (80, 40) and p.fps == 30.0 and p.T == 150
    np.testing.assert_array_equal(predictor.predict(image, seed=1, samples=2).spectral, p.spectral)


@pytest.mark.parametrize("shape", [(100, 30), (30, 100, 3), (50, 50, 4), (9, 8, 1), (123, 457, 3)])
def test_any_size_aspect_and_channel_count(predictor, shape):
    image = np.full(shape, 128, np.uint8)
    p = predictor.predict(image, steps=1)
    h, w = p.spectral.shape[-2:]
    H, W = shape[:2]
    assert p.size == (W, H)
    assert abs(w / h - W / H) <= max(W / H, H / W) * 0.35 + 1 / min(w, h)   # motion grid keeps the aspect
    assert np.isfinite(p.spectral).all()


def test_letterbox_keeps_aspect_and_centres():
    canvas, (x0, y0, w, h) = letterbox(np.zeros((100, 100, 3), np.uint8), (32, 16))
    assert canvas.shape == (16, 32, 3) and (w, h) == (16, 16) and (x0, y0) == (8, 0)


def test_bad_images_are_rejected_clearly(predictor):
    with pytest.raises(ValueError, match="at least 8"):
        predictor.predict(np.zeros((1, 1, 3), np.uint8))
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (20000, 20000, 3))   # a view: no 1.2 GB allocation
    with pytest.raises(ValueError, match="megapixels"):
        predictor.predict(huge)
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict(np.zeros((16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        predictor.predict(np.zeros((16, 16, 2), np.uint8))
    with pytest.raises(ValueError, match="numpy"):
        predictor.predict([[0]])
    with pytest.raises(ValueError, match="samples"):
        predictor.predict(np.zeros((16, 16, 3), np.uint8), samples=0)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="incomplete"):
        MotionPredictor.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="incomplete"):
        MotionPredictor.load_autoencoder(tmp_path)


def test_vae_alone_autoencodes_like_the_model_and_cannot_predict(checkpoint, predictor):
    """load_autoencoder: a run's vae/ before a denoiser exists round-trips motion exactly as the whole model."""
    vae_only = MotionPredictor.load_autoencoder(checkpoint / "vae", device="cpu")
    spectral = np.random.default_rng(0).normal(0, 0.5, (16, 4, 40, 64)).astype(np.float32)
    np.testing.assert_allclose(vae_only.autoencode(spectral), predictor.autoencode(spectral), rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="VAE alone"):
        vae_only.predict(np.zeros((40, 64, 3), np.uint8))


def test_checkpoint_resized_to_another_working_size(checkpoint, tmp_path):
    """scripts/resize_motion_checkpoint.py: same weights on a grid twice as large; motion is in pixels of that
    grid, so the normalisation scales double (the normalised values, and so the latents, keep their range)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from resize_motion_checkpoint import resize_part
    from shared.spectral import normalize, NormStats
    for part in ("vae", "ldm"):
        assert resize_part(checkpoint / part, tmp_path / "big" / part, (64, 32)) == 2.0
    big = MotionPredictor.load(tmp_path / "big", device="cpu")
    assert big.info()["work_size"] == [64, 32]
    stats = big.pipeline.stats
    np.testing.assert_allclose(stats.scales, 2.0)
    motion = np.random.default_rng(0).normal(size=(16, 4, 16, 32)).astype(np.float32)
    np.testing.assert_allclose(normalize(2 * motion, stats), normalize(motion, NormStats(stats.scales / 2, 95.0)),
                               rtol=1e-6)
    assert big.predict(np.zeros((32, 64, 3), np.uint8), steps=1).spectral.shape == (1, 16, 4, 32, 64)
    with pytest.raises(ValueError, match="aspect"):
        resize_part(checkpoint / "vae", tmp_path / "odd", (64, 16))
    with pytest.raises(FileExistsError):
        resize_part(checkpoint / "vae", tmp_path / "big" / "vae", (64, 32))
    assert not (tmp_path / "odd").exists()
