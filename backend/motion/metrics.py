"""Phase-invariant figures for judging predicted motion against the truth (SPEC section 7, model brief bars).

All take spectral volumes (K, 4, H, W) in pixels of the same grid (resample first with
`shared.spectral.resample_spectral`).
"""
from __future__ import annotations

import numpy as np

from shared.spectral import displacement_at, to_complex


def energy_map(spectral: np.ndarray, T: int) -> np.ndarray:
    """(H, W): mean over the T frames of |F_t - F_0| (pixels)."""
    disp = displacement_at(spectral, T, np.arange(T))            # (T, 2, H, W)
    return np.sqrt((disp.astype(np.float64) ** 2).sum(axis=1)).mean(axis=0)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps; 0 when either is constant."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def amplitudes(spectral: np.ndarray) -> np.ndarray:
    """(..., K, 4, H, W) -> (..., K, 2, H, W) complex magnitudes |S_k| for x and y."""
    return np.abs(to_complex(spectral))


def amplitude_error(pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None) -> float:
    """mean over k, axis, p of | |S_k(p)| - |S_k_true(p)| | (p over `mask` (H, W) when given).

    pred/true may also be amplitude arrays (K, 2, H, W) already (real, non-negative)."""
    a = pred if np.isrealobj(pred) and pred.shape[-3] == 2 else amplitudes(pred)
    b = true if np.isrealobj(true) and true.shape[-3] == 2 else amplitudes(true)
    d = np.abs(a - b)
    return float(d[..., mask].mean() if mask is not None else d.mean())


def mean_amplitude(spectral: np.ndarray, mask: np.ndarray | None = None) -> float:
    a = amplitudes(spectral)
    return float(a[..., mask].mean() if mask is not None else a.mean())


def endpoint_error(pred: np.ndarray, true: np.ndarray, T: int, mask: np.ndarray | None = None) -> float:
    """Mean over frames and pixels (of `mask`) of |F_pred,t - F_true,t| (relative to frame 0)."""
    t = np.arange(T)
    d = displacement_at(pred, T, t) - displacement_at(true, T, t)
    e = np.sqrt((d.astype(np.float64) ** 2).sum(axis=1)).mean(axis=0)
    return float(e[mask].mean() if mask is not None else e.mean())
