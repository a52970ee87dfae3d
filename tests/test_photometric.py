"""Photometric jitter of the denoiser's conditioning pictures (backend/motion/photometric.py, issue 20)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.motion.photometric import jitter_pictures


def _pictures(n: int = 6) -> torch.Tensor:
    """Textured colour pictures with a sharp vertical edge at x = 20 (the place geometry must keep)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.5, (n, 3, 24, 40)).astype(np.float32)
    x[:, 1, :, 20:] += 0.45                                   # green on the right of the edge
    return torch.from_numpy(x.clip(0, 1))


def test_jitter_keeps_geometry_and_range_and_changes_colour():
    x = _pictures()
    y = jitter_pictures(x, np.random.default_rng(1), 1.0)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert float((y - x).abs().mean()) > 0.02                 # every picture was changed
    # the edge stays where it was: the strongest column step of each jittered picture is still at x = 20
    step = (y[:, :, :, 1:] - y[:, :, :, :-1]).abs().sum((1, 2))
    assert (step.argmax(1) == 19).all()
    # colours differ between pictures: the means of the green-side chroma spread out
    green_side = y[:, :, :, 20:].mean((2, 3))
    assert float(green_side.std(0).max()) > 0.02


def test_jitter_probability_and_determinism():
    x = _pictures(200)
    assert torch.equal(jitter_pictures(x, np.random.default_rng(0), 0.0), x)
    a = jitter_pictures(x, np.random.default_rng(5), 0.5)
    b = jitter_pictures(x, np.random.default_rng(5), 0.5)
    assert torch.equal(a, b)                                 # same rng, same batch (resumed runs repeat)
    changed = ((a - x).abs().flatten(1).max(1).values > 1e-6).float().mean()
    assert 0.35 < float(changed) < 0.65                      # about half of the pictures
    assert not torch.equal(a, jitter_pictures(x, np.random.default_rng(6), 0.5))


def test_jitter_rejects_bad_input():
    with pytest.raises(ValueError, match="probability"):
        jitter_pictures(_pictures(), np.random.default_rng(0), 1.5)
    with pytest.raises(ValueError, match="N, 3, H, W"):
        jitter_pictures(torch.zeros(2, 4, 8, 8), np.random.default_rng(0), 0.5)


def test_make_batch_jitters_pictures_not_motion(tmp_path):
    from backend.motion.train_ldm import LatentCache, make_batch
    from backend.motion.vae import SpectralVAE
    from shared.spectral import NormStats
    from tests.motion_fixtures import write_dataset
    from tests.test_motion_model import small_config
    cfg = small_config()
    vae = SpectralVAE(cfg).eval().requires_grad_(False)
    stats = NormStats(np.ones(cfg.K, np.float32), 95.0)
    folder = write_dataset(tmp_path / "d", 4, seed=1, size=(32, 16))
    cache = LatentCache([str(folder)], vae, cfg, stats, max_samples=10, holdout_every=0, split="train",
                        device=torch.device("cpu"))
    cache.scan()
    plain = make_batch(cache, 1, 8, np.random.default_rng(3), None, torch.device("cpu"))
    jittered = make_batch(cache, 1, 8, np.random.default_rng(3), None, torch.device("cpu"), photometric=1.0)
    assert torch.equal(plain[0], jittered[0]) and torch.equal(plain[1], jittered[1])   # same latents and terms
    assert float((plain[2] - jittered[2]).abs().mean()) > 0.01                         # pictures jittered
