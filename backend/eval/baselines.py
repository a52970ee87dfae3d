"""The baselines every figure is compared with (issue 9): no motion, training-set mean, smooth noise.

All return spectral volumes float32 (K, 4, H, W) on the grid asked for, so they go through the same metrics and
renderer as the model's predictions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from backend.data.samples import list_samples
from shared.spectral import from_complex, resample_spectral, term_amplitudes, to_complex


def no_motion(K: int, size: tuple[int, int]) -> np.ndarray:
    """All-zero spectral volume (K, 4, H, W) for size (W, H): the still picture."""
    return np.zeros((K, 4, int(size[1]), int(size[0])), np.float32)


def mean_amplitude_spectral(folders: Sequence[str | Path], size: tuple[int, int], max_samples: int = 200,
                            K: int | None = None) -> tuple[np.ndarray, dict]:
    """Training-set mean spectral volume on size (W, H), from at most `max_samples` evenly spaced samples.

    The complex mean would cancel to almost nothing (the phase of the wind is random), so this baseline is the
    mean per-pixel, per-axis, per-frequency AMPLITUDE (each sample resampled to `size`, in pixels of that grid),
    with phase 0: the typical amount and spectrum of motion at each image position, independent of the image.
    Returns (spectral (K, 4, H, W) float32, info {"samples", "T", "fps"}). All samples must share T.
    """
    files = list_samples(folders)
    if not files:
        raise FileNotFoundError(f"no sample_*.npz in {', '.join(str(f) for f in folders)}")
    pick = np.unique(np.linspace(0, len(files) - 1, min(max_samples, len(files))).round().astype(int))
    total = None
    T0 = fps0 = None
    for i in pick:
        with np.load(files[i], allow_pickle=False) as z:
            s = z["spectral"]
            T, fps = int(z["T"]), float(z["fps"])
        if T0 is None:
            T0, fps0 = T, fps
        elif T != T0:
            raise ValueError(f"{files[i]} has T={T}, others T={T0}: a mean needs one clip length")
        if K is not None:
            s = s[:K]
        amp = np.abs(to_complex(resample_spectral(s, size)))       # (K, 2, H, W)
        total = amp if total is None else total + amp
    mean = total / len(pick)
    return from_complex(mean.astype(np.complex128)), {"samples": int(len(pick)), "T": T0, "fps": fps0}


def _smooth_field(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    """(2, h, w) complex Gaussian-smoothed white noise, unit RMS per axis."""
    out = np.empty((2, h, w), np.complex128)
    for a in range(2):
        re = cv2.GaussianBlur(rng.standard_normal((h, w)), (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        im = cv2.GaussianBlur(rng.standard_normal((h, w)), (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        field = re + 1j * im
        out[a] = field / max(float(np.sqrt((np.abs(field) ** 2).mean())), 1e-12)
    return out


def smooth_noise(true_spectral: np.ndarray, T: int, seed: int = 0, smoothness: float = 0.08) -> np.ndarray:
    """Smooth noise displacement of matched amplitude: what artists do by hand (an animated noise texture).

    Each term k >= 1 gets an independent spatially smooth random complex field (Gaussian blur of white noise,
    sigma = `smoothness` * image diagonal), uniform over the image, scaled so its RMS amplitude per axis equals
    the truth's RMS amplitude of that term over the whole image. So it knows how much the picture moves and at
    which frequencies, but not where. The DC term is zero.
    """
    c = to_complex(true_spectral)
    K, _, h, w = c.shape
    rng = np.random.default_rng(seed)
    sigma = max(1.0, smoothness * float(np.hypot(h, w)))
    out = np.zeros_like(c)
    for k in range(1, K):
        rms = np.sqrt((np.abs(c[k]) ** 2).mean(axis=(1, 2)))        # (2,) per axis
        out[k] = _smooth_field(rng, h, w, sigma) * rms[:, None, None]
    return from_complex(out)


def matched_amount_check(noise: np.ndarray, true_spectral: np.ndarray, T: int) -> float:
    """Ratio of RMS pixel amplitudes noise / truth over k >= 1 (1 by construction; used by tests and the report)."""
    a = term_amplitudes(noise.shape[0], T)[1:, None, None, None]
    n = np.abs(to_complex(noise)[1:]) * a
    t = np.abs(to_complex(true_spectral)[1:]) * a
    den = np.sqrt((t ** 2).mean())
    return float(np.sqrt((n ** 2).mean()) / den) if den > 0 else float("nan")


def texture_energy(image: np.ndarray) -> np.ndarray:
    """(H, W) float64, mean 1: the texture map the shipped placement stage uses (`placement.log_texture`: the
    picture's blurred luminance gradient magnitude), at the picture's own size."""
    import torch

    from backend.motion.placement import PlacementConfig, log_texture
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255)
    with torch.no_grad():
        t = np.exp(log_texture(x, max(0.5, PlacementConfig.texture_sigma * image.shape[1]))[0, 0].double().numpy())
    return t / t.mean()


def texture_prior(image: np.ndarray, T: int, K: int, semantic) -> np.ndarray:
    """The semantic prior's amount and spectrum, placed where the picture is textured (issue 20: in real clips
    what moves, and what flow sees move, is textured; sky, walls and wax are smooth and still)."""
    amount = float(semantic.energy(image).mean())
    return semantic.spectral_of_energy(texture_energy(image) * amount, T, K)
