"""Sample consensus (backend/motion/consensus.py): pure numpy, on hand-made volumes with known energy maps."""
import numpy as np
import pytest

from backend.motion.consensus import apply_consensus, pool_energy, term_amplitudes
from backend.motion.metrics import correlation, energy_map
from shared.spectral import displacement_for_frames

T = 150


def blob_volume(rng, centre, K=6, size=(48, 32), amp=2.0, sigma=10.0):
    """One volume whose motion sits mostly in a Gaussian blob at `centre` (x, y), random phases per term; a little
    everywhere (as in a sample: a gain can scale motion a sample has, never make it where the sample has none)."""
    W, H = size
    y, x = np.mgrid[0:H, 0:W]
    blob = np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2) / (2 * sigma ** 2)) + 0.02
    vol = np.zeros((K, 4, H, W), np.float32)
    for k in range(1, K):
        phase = rng.uniform(0, 2 * np.pi, 2)
        a = amp / k
        vol[k, 0], vol[k, 1] = a * np.cos(phase[0]) * blob, a * np.sin(phase[0]) * blob
        vol[k, 2], vol[k, 3] = a * np.cos(phase[1]) * blob, a * np.sin(phase[1]) * blob
    return vol


def test_strength_zero_is_the_samples_as_drawn():
    rng = np.random.default_rng(0)
    pool = np.stack([blob_volume(rng, (12, 16)), blob_volume(rng, (36, 16))])
    np.testing.assert_array_equal(apply_consensus(pool, T, 0.0), pool)


def test_consensus_moves_an_outlier_towards_the_pool():
    rng = np.random.default_rng(1)
    # Three samples agree the motion is on the left; one puts it on the right.
    agree = [blob_volume(rng, (12, 16)) for _ in range(3)]
    outlier = blob_volume(rng, (34, 16))
    pool = np.stack(agree + [outlier])
    target = pool_energy(pool, T)
    before = correlation(energy_map(outlier, T), target)
    moved = apply_consensus(pool, T, 1.0)
    after = correlation(energy_map(moved[3], T), target)
    assert after > before + 0.3
    # Each sample keeps its own overall amount (mean energy) ...
    for a, b in zip(pool, moved):
        assert energy_map(b, T).mean() == pytest.approx(energy_map(a, T).mean(), rel=1e-3)
    # ... and a per-pixel positive gain keeps every pixel's direction and phase: the ratio of any two channels is
    # unchanged wherever the sample moved.
    m = np.abs(outlier[1, 0]) > 1e-3
    np.testing.assert_allclose((moved[3, 1, 2] / moved[3, 1, 0])[m], (outlier[1, 2] / outlier[1, 0])[m], rtol=1e-4)


def test_loops_stay_exact():
    rng = np.random.default_rng(2)
    pool = np.stack([blob_volume(rng, (12 + 8 * i, 16)) for i in range(3)])
    moved = apply_consensus(pool, T, 0.7)
    frames = np.arange(62)
    d = displacement_for_frames(moved[0], T, 30.0, frames, loop_frames=60)
    np.testing.assert_allclose(d[60], d[0], atol=1e-4)


def test_a_separate_pool_and_bad_input():
    rng = np.random.default_rng(3)
    pool = np.stack([blob_volume(rng, (12, 16)) for _ in range(4)])
    one = blob_volume(rng, (34, 16))[None]
    moved = apply_consensus(one, T, 1.0, pool=pool)
    assert correlation(energy_map(moved[0], T), pool_energy(pool, T)) > 0.5
    with pytest.raises(ValueError, match="strength"):
        apply_consensus(pool, T, 1.5)
    with pytest.raises(ValueError, match="differ"):
        apply_consensus(one, T, 1.0, pool=pool[..., :20])
    with pytest.raises(ValueError, match="pool"):
        pool_energy(pool[0], T)


def test_per_term_consensus_moves_each_terms_amplitude_towards_the_pool_mean():
    rng = np.random.default_rng(4)
    pool = np.stack([blob_volume(rng, (12 + 6 * i, 16), amp=1.0 + i) for i in range(4)])
    target = term_amplitudes(pool).mean(axis=0)
    moved = apply_consensus(pool, T, 1.0, per_term=True)
    amp = term_amplitudes(moved)
    # Where no gain hits the 1/8..8 clip, every sample's |a_k| is the pool mean exactly; everywhere it is closer.
    before = np.abs(term_amplitudes(pool) - target).mean()
    after = np.abs(amp - target).mean()
    assert after < 0.2 * before
    half = apply_consensus(pool, T, 0.5, per_term=True)
    assert after < np.abs(term_amplitudes(half) - target).mean() < before
    # phases and directions kept: the x/y channel ratio of a term is unchanged
    m = np.abs(pool[2, 3, 0]) > 1e-3
    np.testing.assert_allclose((half[2, 3, 2] / half[2, 3, 0])[m], (pool[2, 3, 2] / pool[2, 3, 0])[m], rtol=1e-4)
    np.testing.assert_array_equal(apply_consensus(pool, T, 0.0, per_term=True), pool)
