"""The semantic-prior baseline (issue 20): how much a pixel moves, from ESPNet's class probabilities alone.

Fit (`fit`, run by `scripts/fit_semantic_prior.py`): for each training sample, ESPNet's class probabilities
P_c(p) of its picture and the true energy map e(p) (mean over the clip of ||F_t(p) - F_0(p)||, pixels of a
256-wide grid) on valid pixels; per source (real clips, synthetic scenes) the probability-weighted class mean
a_c = sum_p P_c(p) e(p) / sum_p P_c(p); the sources are averaged with the given weights (default equal, so the
few real clips count as much as the many synthetic scenes). Classes with too little probability mass in a
source take that source's overall mean. The training set's mean amplitude spectrum per term and axis (mean over
samples and pixels of |a_k|) is stored as the spectral shape.

Prediction (`SemanticAmountPrior.spectral`): e_hat(p) = sum_c P_c(p) a_c, spread over the terms with the mean
spectral shape (phase 0, like the training-set-mean baseline), scaled so its energy map equals e_hat exactly.
It knows where the picture's classes move on average and the typical spectrum, nothing about this picture.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from shared.spectral import displacement_at, from_complex, term_amplitudes, to_complex

from .espnet import WEIGHTS_DIR, SemanticPrior

FIT_FILE = WEIGHTS_DIR / "semantic_amounts.json"
REF_WIDTH = 256           # amounts are stored in pixels of a grid this wide
MIN_MASS = 50.0           # pixels of probability mass a class needs in a source for its own amount


def energy_map(spectral: np.ndarray, T: int) -> np.ndarray:
    """(H, W) mean over t = 0..T-1 of ||F_t - F_0|| in pixels."""
    d = displacement_at(spectral, T, np.arange(T)).astype(np.float64)
    return np.sqrt((d ** 2).sum(axis=1)).mean(axis=0)


@dataclass
class SourceSums:
    """Per-class sums over one source: probability mass, probability-weighted energy; spectrum sums."""
    mass: np.ndarray
    weighted: np.ndarray
    amp: np.ndarray | None = None      # (K-1, 2) sum over samples of the mean |a_k| per axis
    samples: int = 0
    pixels: float = 0.0
    energy: float = 0.0                # sum of energies over valid pixels

    def class_amounts(self) -> np.ndarray:
        overall = self.energy / max(self.pixels, 1.0)
        return np.where(self.mass >= MIN_MASS, self.weighted / np.maximum(self.mass, 1e-12), overall)


def accumulate(samples: Iterable[dict], prior: SemanticPrior) -> SourceSums:
    """samples: dicts with image (H, W, 3) uint8, spectral (K, 4, H, W), T, valid (H, W)."""
    C = prior.cfg.classes
    acc = SourceSums(np.zeros(C), np.zeros(C))
    for s in samples:
        image, spec, T = s["image"], np.asarray(s["spectral"], np.float32), int(s["T"])
        valid = np.asarray(s.get("valid", np.ones(image.shape[:2], bool)), bool)
        scale = REF_WIDTH / image.shape[1]
        e = energy_map(spec, T) * scale
        prob = prior.probabilities(image)[:, valid]            # (C, n)
        acc.mass += prob.sum(axis=1)
        acc.weighted += (prob * e[valid][None]).sum(axis=1)
        acc.pixels += float(valid.sum())
        acc.energy += float(e[valid].sum())
        amp = np.abs(to_complex(spec)[1:]) * term_amplitudes(spec.shape[0], T)[1:, None, None, None] * scale
        a = amp[..., valid].mean(axis=-1)                        # (K-1, 2)
        acc.amp = a if acc.amp is None else acc.amp + a
        acc.samples += 1
    if acc.samples == 0:
        raise ValueError("no samples to fit the semantic prior on")
    return acc


def fit(sources: dict[str, SourceSums], weights: dict[str, float], prior: SemanticPrior) -> dict:
    """The fit as a JSON-able dict: class amounts (px at REF_WIDTH), spectral shape, per-source figures."""
    total = sum(weights[n] for n in sources)
    amounts = sum(weights[n] * src.class_amounts() for n, src in sources.items()) / total
    shape = sum(weights[n] * src.amp / src.samples for n, src in sources.items()) / total   # (K-1, 2)
    return {
        "kind": "semantic-amount-prior", "version": 1, "espnet": "cityscapes", "ref_width": REF_WIDTH,
        "classes": list(prior.cfg.class_names), "amount_px": [float(v) for v in amounts],
        "spectral_shape_px": [[float(v) for v in row] for row in shape],
        "weights": weights,
        "sources": {n: {"samples": s.samples, "mean_energy_px": s.energy / max(s.pixels, 1.0),
                        "class_mass_fraction": [float(v) for v in s.mass / max(s.mass.sum(), 1e-12)],
                        "amount_px": [float(v) for v in s.class_amounts()]} for n, s in sources.items()},
    }


def write_fit(path: str | Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


class SemanticAmountPrior:
    """Fitted class amounts + spectral shape + the ESPNet that gives class probabilities."""

    def __init__(self, fit_data: dict, prior: SemanticPrior):
        if fit_data.get("kind") != "semantic-amount-prior":
            raise ValueError("not a semantic-amount-prior fit file")
        if list(fit_data["classes"]) != list(prior.cfg.class_names):
            raise ValueError("the fit's classes differ from the segmentation network's")
        self.fit = fit_data
        self.prior = prior
        self.amounts = np.asarray(fit_data["amount_px"], np.float64)
        self.shape = np.asarray(fit_data["spectral_shape_px"], np.float64)        # (K-1, 2)

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu") -> "SemanticAmountPrior":
        path = Path(path) if path is not None else FIT_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no semantic prior fit at {path} (scripts/fit_semantic_prior.py makes it)")
        return cls(json.loads(path.read_text()), SemanticPrior.load(device=device))

    def energy(self, image: np.ndarray) -> np.ndarray:
        """(H, W) predicted energy map in pixels of the image's grid."""
        prob = self.prior.probabilities(image)
        return np.tensordot(self.amounts, prob, axes=1) * (np.shape(image)[1] / self.fit["ref_width"])

    def spectral(self, image: np.ndarray, T: int, K: int) -> np.ndarray:
        """(K, 4, H, W) float32: the energy map spread over terms 1..K-1 with the mean spectral shape."""
        return self.spectral_of_energy(self.energy(image), T, K)

    def spectral_of_energy(self, e_hat: np.ndarray, T: int, K: int) -> np.ndarray:
        """Any energy map (H, W), px -> (K, 4, H, W) float32 with the fitted mean spectral shape."""
        kk = min(K - 1, self.shape.shape[0])
        unit = np.zeros((K, 2), np.complex128)
        unit[1:kk + 1] = self.shape[:kk] / term_amplitudes(K, T)[1:kk + 1, None]      # |S_k| of 1 px swing
        unit_vol = from_complex(unit[:, :, None, None])                                # (K, 4, 1, 1)
        e_unit = float(energy_map(unit_vol, T)[0, 0])
        gain = e_hat / e_unit if e_unit > 0 else np.zeros_like(e_hat)
        return (from_complex(unit[:, :, None, None] * gain[None, None])).astype(np.float32)


def load_samples(paths: Sequence[Path]) -> Iterable[dict]:
    for p in paths:
        with np.load(p, allow_pickle=False) as z:
            yield {"image": z["image"], "spectral": z["spectral"], "T": int(z["T"]),
                   "valid": z["valid"] if "valid" in z.files else np.ones(z["image"].shape[:2], bool)}
