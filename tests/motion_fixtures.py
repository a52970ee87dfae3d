"""Small data sets in the DATA layout for motion-model tests: image-dependent motion (bright discs sway)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.spectral import motion_to_spectral


def make_sample(rng: np.random.Generator, size=(64, 40), T=150, fps=30.0, K=16):
    """-> dict in the npz layout: dark background, 1-3 bright discs that oscillate, the rest static."""
    w, h = size
    image = np.full((h, w, 3), 40, np.uint8)
    motion = np.zeros((T, 2, h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    t = np.arange(T)[:, None, None]
    for _ in range(rng.integers(1, 4)):
        cx, cy, r = rng.uniform(0.2 * w, 0.8 * w), rng.uniform(0.2 * h, 0.8 * h), rng.uniform(0.1, 0.25) * h
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        image[mask] = rng.integers(150, 255, 3)
        f = rng.integers(1, 8) / T
        amp = rng.uniform(0.5, 2.0)
        phase = rng.uniform(0, 2 * np.pi)
        disp = amp * np.sin(2 * np.pi * f * t + phase)
        motion[:, 0][:, mask] = np.broadcast_to(disp, (T, h, w))[:, mask]
    return {"image": image, "spectral": motion_to_spectral(motion, K), "valid": np.ones((h, w), bool),
            "fps": np.float32(fps), "T": np.int32(T), "motion": motion}


def write_dataset(folder: Path, count: int, seed: int = 0, size=(64, 40), full: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        s = make_sample(rng, size)
        if not full:
            s.pop("motion")
        np.savez(folder / f"sample_{i:06d}.npz", **s)
    return folder
