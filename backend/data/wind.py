"""Stochastic wind and the damped oscillators it drives (the physics of the synthetic scenes).

Wind is a 2D vector field w(t, x, y) shared by every object of a scene and correlated in space:
    w = mean + axis * gust(t - x / c) * (1 + g * sum_j cos(k_j . (x, y) + phi_j) / J)
`gust` is one band-limited random signal (a slow gust band plus a faster turbulent band, so most power is below
~1-2 Hz); its front travels across the picture at speed c and it is a little stronger in some parts of the frame.

Random signals are random-phase multisines over the clip's period: every Fourier term of the clip has the
amplitude of the band's spectrum and a uniformly random phase. That is the premise of the method (SPEC
section 2, and the bars of issue 5): what the picture does not show is the wind's PHASE, while how much each
frequency moves follows the scene. Gaussian noise would also randomise every term's amplitude (a Rayleigh
factor), and independent gust and turbulence signals would interfere at random at each object; no picture can
predict either, and a perfect sampler then scores 0.89x no motion on bar (b) (0.34x with this wind). Every
clip is also an exact loop.

Every moving part is a linear oscillator with a 2D state q (pixels):
    q'' + 2 zeta omega q' + omega^2 q = omega^2 gain * drive(t)
drive = wind_weight * w(t, x_o, y_o) + noise_weight * n_o(t), with n_o an independent band-limited signal
(leaf flutter, flame flicker). The drive is periodic, so the oscillators are solved exactly in the frequency
domain (their periodic steady state: no warm-up, no integration error).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


# Gust spectrum: corner and order of the slow (gust) band, order of the fast (turbulent) band. Calibrated to the
# real gid_loops clips (issue 20, `gid data stats --by-kind`): their trees move with a power slope of about -2 from
# the lowest term up, so the slow band is first order (amplitude ~ 1/f, power ~ f^-2) with its corner below the
# clip's first term (0.2 Hz at 5 s). Until session 11: corner 0.25-0.7 Hz, second order (flat up to k = 2-3).
SLOW_CUTOFF_HZ = (0.08, 0.25)
SLOW_ORDER = 1
FAST_ORDER = 2
# Aerodynamic damping of foliage: leaves and crowns in wind are damped far more than a bare stem (the drag of
# the leaves), so they follow the gusts quasi-statically instead of ringing at their natural frequency. Scenes
# of vegetation draw a damping floor from this range for their wind-driven oscillators (`OscillatorBank.
# damping_floor`); with it the synthetic trees' power peaks at the first term, as the real clips' do.
FOLIAGE_DAMPING = (0.35, 0.7)


def band_gain(f: np.ndarray, cutoff_hz: float, order: int = 2, highpass_hz: float = 0.0) -> np.ndarray:
    """Amplitude spectrum 1 / sqrt(1 + (f/fc)^(2 order)) at frequencies f; highpass_hz > 0 also removes slow
    drift below that frequency (a band-pass, for flicker and flutter)."""
    gain = 1.0 / np.sqrt(1.0 + (f / cutoff_hz) ** (2 * order))
    if highpass_hz > 0:
        gain = gain * (1.0 - 1.0 / np.sqrt(1.0 + (f / highpass_hz) ** 4))
    return gain


def multisine(rng: np.random.Generator, gain: np.ndarray, n: int, shape: tuple = ()) -> np.ndarray:
    """(n, *shape) one period of a unit-variance signal whose Fourier term j (of rfftfreq(n)) has amplitude
    proportional to gain[j] and an independent uniform phase (the DC term is dropped: zero mean)."""
    gain = np.asarray(gain, np.float64).copy()
    gain[0] = 0.0
    phase = rng.uniform(0.0, 2 * np.pi, (len(gain),) + tuple(shape))
    one = np.fft.irfft(gain.reshape((-1,) + (1,) * len(shape)) * np.exp(1j * phase), n=n, axis=0)
    std = one.std(axis=0, keepdims=True)
    return one / np.where(std > 0, std, 1.0)


def band_noise(rng: np.random.Generator, n: int, dt: float, cutoff_hz: float, shape: tuple = (),
               order: int = 2, highpass_hz: float = 0.0) -> np.ndarray:
    """(n, *shape) unit-variance random-phase multisine with period n samples and spectrum `band_gain`."""
    return multisine(rng, band_gain(np.fft.rfftfreq(n, dt), cutoff_hz, order, highpass_hz), n, shape)


@dataclass
class Wind:
    """One scene's wind, periodic with the clip. Sample with `at(times, x, y)`, times in seconds (any sign)."""

    rng: np.random.Generator
    width: float
    period_s: float                 # the clip's duration T / fps: the wind repeats after it
    strength: float = 1.0           # 0 = still air (indoor)
    rate_hz: float = 120.0          # samples per second of the stored signals (rounded to whole per period)

    def __post_init__(self):
        if not self.period_s > 0:
            raise ValueError(f"wind period must be positive, got {self.period_s}")
        r = self.rng
        angle = r.uniform(-0.35, 0.35) + (np.pi if r.random() < 0.5 else 0.0)   # mostly horizontal
        self.direction = np.array([np.cos(angle), np.sin(angle) * 0.5])
        self.mean = self.direction * r.uniform(0.0, 1.0)
        self.speed = self.width / r.uniform(0.4, 2.0)            # gust front crosses the frame in 0.4-2 s
        self.n = max(16, int(round(self.period_s * self.rate_hz)))
        self.dt = self.period_s / self.n
        # One gust signal: a slow band (gusts) plus a faster one (turbulence), each term one phase. Gusts push
        # along the mean wind (x sign follows it) with a little vertical component.
        f = np.fft.rfftfreq(self.n, self.dt)
        slow = band_gain(f, r.uniform(*SLOW_CUTOFF_HZ), order=SLOW_ORDER)
        fast = band_gain(f, r.uniform(0.8, 2.0), order=FAST_ORDER) * r.uniform(0.3, 0.8)
        self.gust = multisine(r, np.sqrt(slow**2 + fast**2), self.n) * r.uniform(0.6, 1.2)
        self.axis = np.array([np.sign(self.direction[0]), r.uniform(-0.35, 0.35)])
        # Gusts are stronger in some parts of the frame: a smooth spatial gain 1 +- spatial_gain.
        self.n_spatial = 3
        self.spatial_gain = r.uniform(0.1, 0.3)
        wavelength = self.width * r.uniform(0.3, 1.2, size=self.n_spatial)
        theta = r.uniform(0, 2 * np.pi, size=self.n_spatial)
        self.k = np.stack([np.cos(theta), np.sin(theta)], axis=1) * (2 * np.pi / wavelength)[:, None]
        self.phi = r.uniform(0, 2 * np.pi, size=self.n_spatial)

    def _interp(self, signal: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Periodic linear interpolation of signal (n, ...) at times t (any shape) -> t.shape + signal.shape[1:]."""
        pos = np.asarray(t) / self.dt
        base = np.floor(pos)
        frac = (pos - base).reshape(np.shape(t) + (1,) * (signal.ndim - 1))
        i = np.mod(base.astype(np.int64), self.n)
        return signal[i] * (1 - frac) + signal[(i + 1) % self.n] * frac

    def at(self, times: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Wind (n_times, n_points, 2) at times (n_times,) seconds and points (x, y each (n_points,))."""
        times = np.asarray(times, dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        along = x if self.direction[0] >= 0 else self.width - x
        delay = along / self.speed                                            # (P,)
        gust = self._interp(self.gust, times[:, None] - delay[None, :])       # (n, P)
        spatial = np.cos(np.outer(x, self.k[:, 0]) + np.outer(y, self.k[:, 1]) + self.phi).mean(axis=1)
        gust = gust * (1.0 + self.spatial_gain * spatial)[None, :]
        return (self.mean + gust[:, :, None] * self.axis) * self.strength


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
    damping_floor: float = 0.0   # least damping ratio of the oscillators driven by wind alone (FOLIAGE_DAMPING)

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

    def simulate(self, wind: Wind, rng: np.random.Generator, T: int, fps: float, substeps: int = 4) -> np.ndarray:
        """States q (T, n_osc, 2) at the clip's frames: the periodic steady state under the periodic wind."""
        n_osc = len(self)
        if n_osc == 0:
            return np.zeros((T, 0, 2))
        if abs(wind.period_s * fps - T) > 1e-6 * T:
            raise ValueError(f"wind period {wind.period_s} s is not the clip's {T} frames at {fps} fps")
        n = T * substeps                          # one period, finer than frames so the drive is well sampled
        dt = 1.0 / (fps * substeps)
        times = np.arange(n) * dt
        pos = np.asarray(self.pos)
        drive = wind.at(times, pos[:, 0], pos[:, 1]) * np.asarray(self.wind_weight)[None, :, None]
        nw = np.asarray(self.noise_weight)
        if np.any(nw > 0):
            # Own-noise drive, grouped by band so each distinct band is one FFT.
            bands = np.asarray(self.noise_band)
            for band in np.unique(bands, axis=0):
                sel = np.flatnonzero(np.all(bands == band, axis=1) & (nw > 0))
                if len(sel):
                    noise = band_noise(rng, n, dt, band[0], (len(sel), 2), highpass_hz=band[1])
                    drive[:, sel] += noise * nw[sel, None]
        target = np.asarray(self.gain)[None, :, None] * drive                # static response, pixels
        # Exact steady state of q'' + 2 zeta w q' + w^2 q = w^2 target, term by term: H(f) = w^2 / (w^2 - W^2 + 2i zeta w W).
        big_w = 2 * np.pi * np.fft.rfftfreq(n, dt)[:, None]
        omega = 2 * np.pi * np.asarray(self.freq)[None, :]
        zeta = np.asarray(self.zeta)
        wind_only = (np.asarray(self.wind_weight) > 0) & (nw == 0)     # flutter and flicker keep their own damping
        zeta = np.where(wind_only, np.maximum(zeta, self.damping_floor), zeta)[None, :]
        H = omega**2 / (omega**2 - big_w**2 + 2j * zeta * omega * big_w)
        q = np.fft.irfft(np.fft.rfft(target, axis=0) * H[:, :, None], n=n, axis=0)
        return q[::substeps][:T]
