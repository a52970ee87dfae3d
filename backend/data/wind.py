"""Stochastic wind and the damped oscillators it drives (the physics of the synthetic scenes).

Wind is a 2D vector field w(t, x, y) shared by every object of a scene and correlated in space:
    w = mean + gust(t - x / c) + sum_j turb_j(t) * cos(k_j . (x, y) + phi_j)
`gust` and `turb_j` are band-limited Gaussian noise (low-pass spectra, so most power is below ~1-2 Hz), the gust
front travels across the picture at speed c, and the turbulence terms vary smoothly in space.

Every moving part is a linear oscillator with a 2D state q (pixels):
    q'' + 2 zeta omega q' + omega^2 q = omega^2 gain * drive(t)
drive = wind_weight * w(t, x_o, y_o) + noise_weight * n_o(t), with n_o an independent band-limited noise
(leaf flutter, flame flicker). Stepped with semi-implicit Euler at `substeps` steps per frame after a warm-up,
so the clip starts in a statistically steady state.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def band_noise(rng: np.random.Generator, n: int, dt: float, cutoff_hz: float, shape: tuple = (),
               order: int = 2, highpass_hz: float = 0.0) -> np.ndarray:
    """(n, *shape) unit-variance Gaussian noise with a smooth low-pass spectrum 1 / (1 + (f/fc)^(2 order)).

    highpass_hz > 0 also removes slow drift below that frequency (a band-pass, for flicker and flutter).
    """
    white = rng.standard_normal((n,) + tuple(shape))
    spec = np.fft.rfft(white, axis=0)
    f = np.fft.rfftfreq(n, dt)
    gain = 1.0 / np.sqrt(1.0 + (f / cutoff_hz) ** (2 * order))
    if highpass_hz > 0:
        gain = gain * (1.0 - 1.0 / np.sqrt(1.0 + (f / highpass_hz) ** 4))
    spec *= gain.reshape((-1,) + (1,) * len(shape))
    out = np.fft.irfft(spec, n=n, axis=0)
    std = out.std(axis=0, keepdims=True)
    return out / np.where(std > 0, std, 1.0)


@dataclass
class Wind:
    """One scene's wind. Sample with `at(times, x, y)`; times in seconds may be negative (warm-up)."""

    rng: np.random.Generator
    width: float
    t0: float                       # earliest time that will be asked for (seconds, <= 0)
    t1: float                       # latest time
    strength: float = 1.0           # 0 = still air (indoor)
    dt: float = 1.0 / 120.0

    def __post_init__(self):
        r = self.rng
        angle = r.uniform(-0.35, 0.35) + (np.pi if r.random() < 0.5 else 0.0)   # mostly horizontal
        self.direction = np.array([np.cos(angle), np.sin(angle) * 0.5])
        self.mean = self.direction * r.uniform(0.0, 1.0)
        self.speed = self.width / r.uniform(0.4, 2.0)            # gust front crosses the frame in 0.4-2 s
        self.max_delay = self.width / self.speed + 0.1
        self.grid_t0 = self.t0 - self.max_delay - 0.1
        n = int(np.ceil((self.t1 - self.grid_t0) / self.dt)) + 4
        self.gust = band_noise(r, n, self.dt, r.uniform(0.25, 0.7), (2,)) * np.array([1.0, 0.35])
        self.gust_gain = r.uniform(0.6, 1.2)
        self.n_turb = 3
        self.turb = band_noise(r, n, self.dt, r.uniform(0.8, 2.0), (self.n_turb, 2)) * np.array([1.0, 0.5])
        self.turb_gain = r.uniform(0.2, 0.6)
        wavelength = self.width * r.uniform(0.3, 1.2, size=self.n_turb)
        theta = r.uniform(0, 2 * np.pi, size=self.n_turb)
        self.k = np.stack([np.cos(theta), np.sin(theta)], axis=1) * (2 * np.pi / wavelength)[:, None]
        self.phi = r.uniform(0, 2 * np.pi, size=self.n_turb)

    def _interp(self, signal: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Linear interpolation of signal (n, ...) at times t (any shape) -> t.shape + signal.shape[1:]."""
        pos = (t - self.grid_t0) / self.dt
        i = np.clip(np.floor(pos).astype(np.int64), 0, len(signal) - 2)
        frac = np.clip(pos - i, 0.0, 1.0).reshape(np.shape(t) + (1,) * (signal.ndim - 1))
        return signal[i] * (1 - frac) + signal[i + 1] * frac

    def at(self, times: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Wind (n_times, n_points, 2) at times (n_times,) seconds and points (x, y each (n_points,))."""
        times = np.asarray(times, dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        along = x if self.direction[0] >= 0 else self.width - x
        delay = along / self.speed                                            # (P,)
        gust = self._interp(self.gust, times[:, None] - delay[None, :]) * self.gust_gain
        spatial = np.cos(np.outer(x, self.k[:, 0]) + np.outer(y, self.k[:, 1]) + self.phi)   # (P, J)
        turb = self._interp(self.turb, times)                                 # (n, J, 2)
        turb = np.einsum("njc,pj->npc", turb, spatial) * self.turb_gain
        # Gusts push along the mean direction (sign of x follows the wind), turbulence both ways.
        gust = gust * np.array([np.sign(self.direction[0]), 1.0])
        return (self.mean + gust + turb) * self.strength


@dataclass
class OscillatorBank:
    """Builder for a scene's oscillators; `simulate` integrates all of them at once."""

    freq: list = field(default_factory=list)
    zeta: list = field(default_factory=list)
    gain: list = field(default_factory=list)
    pos: list = field(default_factory=list)
    wind_weight: list = field(default_factory=list)
    noise_weight: list = field(default_factory=list)
    noise_band: list = field(default_factory=list)   # (lowpass Hz, highpass Hz) of the own-noise drive

    def add(self, freq: float, zeta: float, gain: float, x: float, y: float, wind_weight: float = 1.0,
            noise_weight: float = 0.0, noise_band: tuple[float, float] = (3.0, 0.0)) -> int:
        if freq <= 0 or zeta <= 0:
            raise ValueError(f"oscillator needs positive frequency and damping, got {freq}, {zeta}")
        self.freq.append(freq)
        self.zeta.append(zeta)
        self.gain.append(gain)
        self.pos.append((x, y))
        self.wind_weight.append(wind_weight)
        self.noise_weight.append(noise_weight)
        self.noise_band.append(noise_band)
        return len(self.freq) - 1

    def __len__(self) -> int:
        return len(self.freq)

    def simulate(self, wind: Wind, rng: np.random.Generator, T: int, fps: float, warmup_s: float = 4.0,
                 substeps: int = 4) -> np.ndarray:
        """States q (T, n_osc, 2) at the clip's frames (frame 0 at time 0)."""
        n_osc = len(self)
        if n_osc == 0:
            return np.zeros((T, 0, 2))
        dt = 1.0 / (fps * substeps)
        n_warm = int(round(warmup_s / dt))
        n_steps = n_warm + (T - 1) * substeps + 1
        times = (np.arange(n_steps) - n_warm) * dt
        pos = np.asarray(self.pos)
        drive = wind.at(times, pos[:, 0], pos[:, 1]) * np.asarray(self.wind_weight)[None, :, None]
        nw = np.asarray(self.noise_weight)
        if np.any(nw > 0):
            # Own-noise drive, grouped by band so each distinct band is one FFT.
            bands = np.asarray(self.noise_band)
            for band in np.unique(bands, axis=0):
                sel = np.flatnonzero(np.all(bands == band, axis=1) & (nw > 0))
                if len(sel):
                    noise = band_noise(rng, n_steps, dt, band[0], (len(sel), 2), highpass_hz=band[1])
                    drive[:, sel] += noise * nw[sel, None]
        omega = 2 * np.pi * np.asarray(self.freq)[:, None]
        damp = 2 * np.asarray(self.zeta)[:, None] * omega
        target = np.asarray(self.gain)[None, :, None] * drive                # static response, pixels
        q = target[0].copy()
        v = np.zeros_like(q)
        out = np.empty((T, n_osc, 2))
        k2 = omega**2
        for i in range(n_steps):
            # semi-implicit Euler: velocity first, then position with the new velocity (stable, symplectic)
            v += dt * (k2 * (target[i] - q) - damp * v)
            q += dt * v
            j = i - n_warm
            if j >= 0 and j % substeps == 0:
                out[j // substeps] = q
        return out
