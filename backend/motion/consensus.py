"""Sample consensus: how a picture moves, agreed by several samples of the denoiser (measured, not shipped).

Why (issue 20): if one sample's errors were mostly the sampler's noise, the mean over a pool of samples of the
same picture would be closer to the truth than any one of them, and moving each sample towards it would help.
Session 15 measured it (scripts/consensus_study.py, model card): the samples of a picture agree with each other
(energy maps correlate 0.86 on synthetic scenes, 0.78 on real photos) far more than with the truth (0.70 / 0.41),
so the errors are the model's bias, and consensus changes the figures by at most a few hundredths.

Two modes, both a positive gain on each sample, so every pixel keeps the sample's directions and phases (loops
stay exact and samples stay different in how they move):
- energy (per_term=False): a per-pixel gain moves the sample's energy map towards the pool's mean energy map,
  exactly as the placement stage moves it towards the texture map (placement.placement_gain; each sample keeps its
  overall amount);
- per term (per_term=True): each term k's amplitude map |a_k| moves towards the pool's mean |a_k| (the
  per-pixel spectrum as well as the energy), gain clipped to 1/8..8.
strength 0 = the samples as drawn, 1 = the pool's map.
"""
from __future__ import annotations

import numpy as np

from .metrics import energy_map
from .placement import GAIN_LIMIT, placement_gain


def _check_pool(spectral: np.ndarray) -> np.ndarray:
    spectral = np.asarray(spectral)
    if spectral.ndim != 5 or spectral.shape[2] != 4 or len(spectral) < 1:
        raise ValueError(f"a pool of volumes must be (N >= 1, K, 4, H, W), got {spectral.shape}")
    return spectral


def pool_energy(spectral: np.ndarray, T: int) -> np.ndarray:
    """Volumes (N, K, 4, H, W) -> (H, W) float64: the mean of their energy maps (metrics.energy_map)."""
    return np.mean([energy_map(one, T) for one in _check_pool(spectral)], axis=0)


def term_amplitudes(spectral: np.ndarray) -> np.ndarray:
    """Volumes (N, K, 4, H, W) -> (N, K, H, W) float64: each term's amplitude |a_k| over both axes."""
    return np.sqrt((_check_pool(spectral).astype(np.float64) ** 2).sum(axis=2))


def apply_consensus(spectral: np.ndarray, T: int, strength: float, smooth_px: float = 2.0,
                    pool: np.ndarray | None = None, per_term: bool = False) -> np.ndarray:
    """Volumes (N, K, 4, H, W) -> the same, each moved towards the mean of `pool` (default: the volumes
    themselves; a larger pool drawn beside them gives a steadier mean) at `strength` in [0, 1]."""
    if not 0.0 <= float(strength) <= 1.0:
        raise ValueError(f"consensus strength must be in [0, 1], got {strength}")
    spectral = _check_pool(np.asarray(spectral, np.float32))
    pool = spectral if pool is None else _check_pool(pool)
    if pool.shape[1:] != spectral.shape[1:]:
        raise ValueError(f"pool volumes {pool.shape[1:]} differ from the volumes' grid {spectral.shape[1:]}")
    if strength == 0.0:
        return spectral.copy()
    if per_term:
        amp = term_amplitudes(spectral)
        target = term_amplitudes(pool).mean(axis=0)
        floor = 1e-3 * max(float(target.mean()), 1e-12)
        gain = np.clip(((target + floor) / (amp + floor)) ** float(strength), 1.0 / GAIN_LIMIT, GAIN_LIMIT)
        return (spectral * gain[:, :, None]).astype(np.float32)
    target = pool_energy(pool, T)
    if target.mean() <= 0:
        return spectral.copy()
    target = target / target.mean()          # placement_gain takes a map of mean 1
    out = [one * placement_gain(energy_map(one, T), target, float(strength), smooth_px)[None, None]
           for one in spectral]
    return np.stack(out).astype(np.float32)
