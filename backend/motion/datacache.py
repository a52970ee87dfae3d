"""Training samples at the model's working size, held compactly in memory.

Reads the data set layout of the DATA brief (`sample_%06d.npz` with `image` uint8 (H, W, 3), `spectral` float32
(K, 4, H, W) in pixels of its own grid, `valid` bool (H, W), `fps`, `T`), resizes to config.work_size
(vectors rescaled by `shared.spectral.resample_spectral`), zeroes the motion of invalid pixels (failed flow in real
clips: better "no motion" than garbage), and normalises (SPEC section 2). Folders may still be growing while
training runs: `scan` picks up new files.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np

from backend.data.samples import list_samples  # noqa: F401  (re-exported for the trainers)
from shared.spectral import NormStats, normalize, resample_spectral


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (h, w, 3) at size (w, h), area filter when shrinking."""
    h, w = image.shape[:2]
    if (w, h) == tuple(size):
        return image
    interp = cv2.INTER_AREA if size[0] < w else cv2.INTER_LINEAR
    return cv2.resize(image, tuple(size), interpolation=interp)


def load_sample(path: Path, size: tuple[int, int], K: int) -> tuple[np.ndarray, np.ndarray, float, int]:
    """-> image uint8 (h, w, 3), spectral float32 (K, 4, h, w) raw pixels of the (w, h) grid, fps, T."""
    with np.load(path, allow_pickle=False) as z:
        image = z["image"]
        spectral = z["spectral"]
        valid = z["valid"] if "valid" in z.files else np.ones(image.shape[:2], bool)
        fps, T = float(z["fps"]), int(z["T"])
    if spectral.shape[0] < K:
        raise ValueError(f"{path}: spectral volume has {spectral.shape[0]} terms, the model needs K={K}")
    spectral = spectral[:K] * valid[None, None].astype(np.float32)
    return resize_image(image, size), resample_spectral(spectral, size), fps, T


def hflip(image: np.ndarray, spectral: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right: flip both and negate the x channels (0, 1) of the motion."""
    s = spectral[..., ::-1].copy()
    s[:, 0:2] *= -1
    return image[:, ::-1].copy(), s


def folders_in_turn(folders: list[str]) -> list[tuple[int, int, Path]]:
    """(folder index, index in its folder, path) of every sample, one file from each folder in turn: a cache
    capped below the first folder's size still holds every folder (3,000 synthetic files listed first would
    otherwise crowd out the real clips and the extra kinds listed after them)."""
    per_folder = [[(fi, i, p) for i, p in enumerate(list_samples([folder]))] for fi, folder in enumerate(folders)]
    return [item for row in itertools.zip_longest(*per_folder) for item in row if item is not None]


class SampleCache:
    """Images (N, h, w, 3) uint8 and normalised spectral volumes (N, K, 4, h, w) float16, grown by `scan`."""

    def __init__(self, folders: list[str | Path], size: tuple[int, int], K: int, stats: NormStats,
                 max_samples: int, holdout_every: int = 0, split: str = "train"):
        self.folders, self.size, self.K, self.stats = list(folders), tuple(size), K, stats
        self.max_samples, self.holdout_every, self.split = max_samples, holdout_every, split
        self.paths: list[Path] = []
        self.images: list[np.ndarray] = []
        self.spectral: list[np.ndarray] = []
        self._seen: set[Path] = set()

    def _wanted(self, index: int) -> bool:
        if not self.holdout_every:
            return self.split == "train"
        held = index % self.holdout_every == self.holdout_every - 1
        return held if self.split == "val" else not held

    def _visit_order(self) -> list[tuple[int, Path]]:
        """(index in list_samples, path), folders in turn (`folders_in_turn`). The index over all folders, not the
        visiting order, decides the train/val split, so the split does not depend on it."""
        order = folders_in_turn(self.folders)
        sizes = np.bincount([fi for fi, _, _ in order], minlength=len(self.folders))
        start = np.cumsum(sizes) - sizes                 # index of each folder's first file over all folders
        return [(int(start[fi]) + i, p) for fi, i, p in order]

    def scan(self, limit: int | None = None) -> int:
        """Load up to `limit` new files (all when None), folders in turn. Returns how many were added."""
        added = 0
        for i, p in self._visit_order():
            if len(self.paths) >= self.max_samples or (limit is not None and added >= limit):
                break
            if p in self._seen or not self._wanted(i):
                continue
            self._seen.add(p)
            try:
                image, spectral, _, _ = load_sample(p, self.size, self.K)
            except (OSError, ValueError, KeyError) as exc:   # a file being written or broken: skip it, say so
                print(f"datacache: skipping {p}: {exc}")
                continue
            self.paths.append(p)
            self.images.append(image)
            self.spectral.append(normalize(spectral, self.stats).astype(np.float16))
            added += 1
        return added

    def __len__(self) -> int:
        return len(self.paths)
