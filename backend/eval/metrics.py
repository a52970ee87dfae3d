"""Weight-free figures for predicted motion and rendering (SPEC section 7, issue 9). Pure numpy (+ cv2 for SSIM).

Motion is stochastic (the phase of the wind is not in the picture), so the phase-invariant figures come first:
amplitude error and ratio, log power spectra, energy-map correlation, motion amount. Endpoint error compares
motion frame by frame (phase included) and is reported for information, best of N and mean of N samples.

Conventions: spectral volumes are float (K, 4, H, W) on the SAME grid as the truth (resample predictions first
with `shared.spectral.resample_spectral`), with the clip's T. Amplitudes are in pixels: a_k = |S_k| * 2/T
(`shared.spectral.term_amplitudes`), the swing of term k. The DC term (k = 0) is left out of every spectral
figure: rendering uses F_t - F_0, in which it cancels. `valid` (H, W) bool masks pixels whose truth is unknown
(real clips: failed flow); None = all pixels.
"""
from __future__ import annotations

import cv2
import numpy as np

from shared.spectral import displacement_at, term_amplitudes, to_complex

EPS_POWER = 1e-8          # px^2: floor of the power spectrum before the log (a spectrum of "no motion")
STILL_PX = 0.05           # px: a pixel whose true energy (mean ||F_t - F_0||) is below this is "still" (issue 20)


def _mask(valid: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    if valid is None:
        return np.ones(shape, bool)
    v = np.asarray(valid, bool)
    if v.shape != shape:
        raise ValueError(f"valid mask has shape {v.shape}, expected {shape}")
    if not v.any():
        raise ValueError("valid mask has no valid pixel")
    return v


def _same_grid(pred: np.ndarray, true: np.ndarray) -> None:
    if np.shape(pred) != np.shape(true):
        raise ValueError(f"prediction {np.shape(pred)} and truth {np.shape(true)} differ: resample the "
                         "prediction to the truth's grid first (shared.spectral.resample_spectral)")


def amplitudes_px(spectral: np.ndarray, T: int) -> np.ndarray:
    """(K, 4, H, W) -> (K-1, 2, H, W): per-axis swing |a_k| in pixels of terms k = 1..K-1."""
    c = to_complex(spectral)
    K = c.shape[0]
    return np.abs(c[1:]) * term_amplitudes(K, T)[1:, None, None, None]


def amplitude_error(pred: np.ndarray, true: np.ndarray, T: int, valid: np.ndarray | None = None) -> float:
    """mean over k >= 1, axis and valid p of | |a_k(p)| - |a_k_true(p)| | in pixels (phase-invariant)."""
    _same_grid(pred, true)
    m = _mask(valid, np.shape(true)[-2:])
    return float(np.abs(amplitudes_px(pred, T) - amplitudes_px(true, T))[..., m].mean())


def amplitude_ratio(pred: np.ndarray, true: np.ndarray, T: int, valid: np.ndarray | None = None) -> float:
    """sum |a_pred| / sum |a_true| over k >= 1, axes and valid pixels (1 = right overall amount; inf if truth still)."""
    _same_grid(pred, true)
    m = _mask(valid, np.shape(true)[-2:])
    num = float(amplitudes_px(pred, T)[..., m].sum())
    den = float(amplitudes_px(true, T)[..., m].sum())
    if den == 0:
        return 1.0 if num == 0 else float("inf")
    return num / den


def motion_texture(spectral: np.ndarray, T: int) -> np.ndarray:
    """(T, 2, H, W) float32 displacement F_t - F_0 at t = 0..T-1 (what is rendered)."""
    return displacement_at(spectral, T, np.arange(T))


def endpoint_error(pred: np.ndarray, true: np.ndarray, T: int, valid: np.ndarray | None = None) -> float:
    """mean over t and valid p of ||F_pred_t(p) - F_true_t(p)|| in pixels (both relative to frame 0)."""
    _same_grid(pred, true)
    m = _mask(valid, np.shape(true)[-2:])
    d = motion_texture(pred, T) - motion_texture(true, T)
    return float(np.sqrt((d.astype(np.float64) ** 2).sum(axis=1))[:, m].mean())


def endpoint_error_samples(preds: np.ndarray, true: np.ndarray, T: int,
                           valid: np.ndarray | None = None) -> dict:
    """N samples (N, K, 4, H, W) -> {"best": min over samples, "mean": mean over samples, "all": list}."""
    errs = [endpoint_error(p, true, T, valid) for p in np.asarray(preds)]
    if not errs:
        raise ValueError("no samples given")
    return {"best": float(min(errs)), "mean": float(np.mean(errs)), "all": [float(e) for e in errs]}


def power_spectrum(spectral: np.ndarray, T: int, valid: np.ndarray | None = None) -> np.ndarray:
    """(K-1,) mean over valid pixels of |a_k,x|^2 + |a_k,y|^2 (px^2), k = 1..K-1."""
    m = _mask(valid, np.shape(spectral)[-2:])
    return (amplitudes_px(spectral, T) ** 2).sum(axis=1)[:, m].mean(axis=1)


def log_power_distance(pred: np.ndarray, true: np.ndarray, T: int,
                       valid: np.ndarray | None = None) -> dict:
    """Per-frequency |log10 P_pred(k) - log10 P_true(k)| (decades), k = 1..K-1, and its mean."""
    _same_grid(pred, true)
    per_k = log_power_gap(power_spectrum(pred, T, valid), power_spectrum(true, T, valid))
    return {"mean": float(per_k.mean()), "per_k": [float(v) for v in per_k]}


def spectral_shape_distance(pred: np.ndarray, true: np.ndarray, T: int,
                            valid: np.ndarray | None = None) -> float:
    """The log power-spectrum distance after scaling both spectra to the same total power (decades): how far the
    SHAPE is (which terms carry the motion), whatever the amount. `log_power_distance` mixes the two: a model
    with nature's spectrum at a tenth of the amount is a full decade off at every term."""
    _same_grid(pred, true)
    return float(log_power_gap(power_spectrum(pred, T, valid), power_spectrum(true, T, valid), shape=True).mean())


def log_power_gap(pp: np.ndarray, pt: np.ndarray, shape: bool = False) -> np.ndarray:
    """|log10 pp - log10 pt| per term; shape=True scales both to unit total power first."""
    if shape:
        pp, pt = pp / (pp.sum() + EPS_POWER), pt / (pt.sum() + EPS_POWER)
    return np.abs(np.log10(pp + EPS_POWER) - np.log10(pt + EPS_POWER))


def energy_map(spectral: np.ndarray, T: int) -> np.ndarray:
    """(H, W) float64: mean over the clip's T frames of ||F_t - F_0|| (pixels)."""
    disp = motion_texture(spectral, T).astype(np.float64)
    return np.sqrt((disp ** 2).sum(axis=1)).mean(axis=0)


def correlation(a: np.ndarray, b: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Pearson correlation over valid pixels; 0 when either map is constant there (no information)."""
    m = _mask(valid, np.shape(a))
    x = np.asarray(a, np.float64)[m]
    y = np.asarray(b, np.float64)[m]
    x, y = x - x.mean(), y - y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else 0.0


def motion_amount(spectral: np.ndarray, T: int, valid: np.ndarray | None = None) -> float:
    """Mean over valid pixels of the energy map (px): how much the picture moves on average."""
    m = _mask(valid, np.shape(spectral)[-2:])
    return float(energy_map(spectral, T)[m].mean())


def still_ratio(pred_energy: np.ndarray, true_energy: np.ndarray, valid: np.ndarray | None = None,
                still_px: float = STILL_PX) -> float:
    """Mean predicted energy on truly still pixels (true energy < still_px) over that on moving pixels.

    "Still where it should be still" (issue 20): 0 = no motion leaks onto what does not move; 1 = still and
    moving pixels get as much motion. NaN when the valid pixels are all still or all moving (no figure), and
    NaN for a prediction with no motion on the moving pixels.
    """
    m = _mask(valid, np.shape(true_energy))
    e_pred = np.asarray(pred_energy, np.float64)[m]
    still = np.asarray(true_energy, np.float64)[m] < still_px
    if still.all() or not still.any():
        return float("nan")
    moving = float(e_pred[~still].mean())
    return float(e_pred[still].mean()) / moving if moving > 0 else float("nan")


def loop_seam(displacement: np.ndarray, valid: np.ndarray | None = None) -> dict:
    """Seam of an n-frame loop, from the motion at frames 0..n+1 (n + 2 frames, (n+2, 2, H, W)).

    Played in a loop, frame n - 1 is followed by frame 0 instead of frame n. So the pop at the seam is
    seam_px = mean ||D_n - D_0|| (position) and velocity_px = mean ||(D_{n+1} - D_n) - (D_1 - D_0)||;
    step_px = mean ||D_{t+1} - D_t|| over the loop is the scale of normal motion, ratio = seam_px / step_px
    (0 = seamless, 1 = a pop as large as a normal frame step; 0 for no motion).
    """
    d = np.asarray(displacement, np.float64)
    if d.ndim != 4 or d.shape[1] != 2 or d.shape[0] < 4:
        raise ValueError(f"displacement must be (n + 2 >= 4, 2, H, W), got {d.shape}")
    m = _mask(valid, d.shape[-2:])
    n = d.shape[0] - 2

    def norm(v) -> np.ndarray:
        return np.sqrt((v ** 2).sum(axis=-3))[..., m]

    seam = float(norm(d[n] - d[0]).mean())
    velocity = float(norm((d[n + 1] - d[n]) - (d[1] - d[0])).mean())
    step = float(norm(d[1:n + 1] - d[:n]).mean())
    return {"seam_px": seam, "velocity_px": velocity, "step_px": step,
            "ratio": seam / step if step > 0 else (0.0 if seam == 0 else float("inf"))}


def motion_figures(pred: np.ndarray, true: np.ndarray, T: int, valid: np.ndarray | None = None,
                   true_texture: np.ndarray | None = None) -> dict:
    """Every per-sample figure of one prediction (K, 4, H, W) against the truth, as a flat dict of floats.

    true_texture: the truth's `motion_texture` if already computed (it is the costly part; reuse it across
    samples and methods).
    """
    _same_grid(pred, true)
    m = _mask(valid, np.shape(true)[-2:])
    ft = motion_texture(true, T) if true_texture is None else true_texture
    fp = motion_texture(pred, T)
    e_true = np.sqrt((ft.astype(np.float64) ** 2).sum(axis=1)).mean(axis=0)
    e_pred = np.sqrt((fp.astype(np.float64) ** 2).sum(axis=1)).mean(axis=0)
    epe = float(np.sqrt(((fp - ft).astype(np.float64) ** 2).sum(axis=1))[:, m].mean())
    pp, pt = power_spectrum(pred, T, valid), power_spectrum(true, T, valid)
    return {
        "amplitude_error_px": amplitude_error(pred, true, T, valid),
        "amplitude_ratio": amplitude_ratio(pred, true, T, valid),
        "log_power_distance": float(log_power_gap(pp, pt).mean()),
        "spectral_shape_distance": float(log_power_gap(pp, pt, shape=True).mean()),
        "peak_term": int(np.argmax(pp)) + 1,
        "energy_correlation": correlation(e_pred, e_true, valid),
        "motion_amount_px": float(e_pred[m].mean()),
        "still_ratio": still_ratio(e_pred, e_true, valid),
        "epe_px": epe,
    }


# --------------------------------------------------------------------------------------------------------
# rendering


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of uint8 images (..., H, W, 3); inf when identical."""
    if np.shape(a) != np.shape(b):
        raise ValueError(f"images differ in shape: {np.shape(a)} vs {np.shape(b)}")
    mse = float(((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03) of uint8 (H, W, 3) images,
    computed per channel and averaged."""
    if np.shape(a) != np.shape(b) or np.ndim(a) != 3:
        raise ValueError(f"ssim needs two (H, W, C) images of the same shape, got {np.shape(a)}, {np.shape(b)}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x = np.asarray(a, np.float64)
    y = np.asarray(b, np.float64)

    def blur(z):
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


# --------------------------------------------------------------------------------------------------------
# sharpness (issue 25): resampling at sub-pixel offsets is a low-pass filter, so moving detail goes soft


MOVING_FRACTION = 0.2     # sharpness is scored in the pixels that move most (the rest is I0 itself)


def laplacian_energy(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared 4-neighbour Laplacian of the grey image (uint8 (H, W, 3) or (H, W)), in `mask` if given:
    the fine-detail energy that blurring removes."""
    g = np.asarray(image, np.float32)
    if g.ndim == 3:
        g = g.mean(axis=2)
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REFLECT)
    sq = lap.astype(np.float64) ** 2
    return float(sq[mask].mean() if mask is not None else sq.mean())


def moving_mask(motion_norm: np.ndarray, fraction: float = MOVING_FRACTION) -> np.ndarray:
    """(H, W) bool: the `fraction` of pixels with the largest mean motion ||F_t(p)|| (ties included)."""
    m = np.asarray(motion_norm, np.float64)
    return m >= np.quantile(m, 1.0 - fraction)


def sharpness_figures(frames: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """Laplacian energy of each frame (n, H, W, 3) relative to `reference` (I0 or the true frames, same
    shape as one frame or as `frames`) in `mask`: min and mean of the ratios, and temporal stability
    max/min of the frames' energies (1 = no pulse; a loop that passes through I0 should list I0 among frames)."""
    frames = np.asarray(frames)
    refs = np.asarray(reference)
    e = np.array([laplacian_energy(f, mask) for f in frames])
    r = (np.array([laplacian_energy(x, mask) for x in refs]) if refs.ndim == frames.ndim
         else np.full(len(frames), laplacian_energy(refs, mask)))
    ratio = e / np.maximum(r, 1e-12)
    return {"sharpness_min": float(ratio.min()), "sharpness_mean": float(ratio.mean()),
            "stability": float(e.max() / max(e.min(), 1e-12))}
