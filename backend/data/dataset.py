"""Torch datasets over sample folders (synthetic scenes and real-video windows), lazily memory-mapped.

On-disk layout (one uncompressed `np.savez` file per sample, `DIR/sample_%06d.npz`, no pickled objects):

    key        dtype    shape          meaning
    image      uint8    (H, W, 3)      frame 0 (I0), RGB, row 0 at the top
    spectral   float32  (K, 4, H, W)   first K rfft terms over time of the motion texture, channels
                                       (Re x, Im x, Re y, Im y), pixels of this (H, W) grid (shared.spectral)
    valid      bool     (H, W)         where the motion is trustworthy (synthetic: everywhere; video: flow
                                       forward-backward consistent)
    fps        float32  ()             frame rate of the clip
    T          int32    ()             number of frames the FFT was taken over (term k is k * fps / T Hz)
    frames     uint8    (T, H, W, 3)   full samples only: the clip (frames[0] == image)
    motion     float32  (T, 2, H, W)   full samples only: displacement of each pixel of frame 0 at each t
                                       (motion[0] == 0), x then y, pixels

Folders: runs/data/synth_train (lite: no frames/motion), synth_render and synth_test (full), loops/train and
loops/val (real-photo loops, split by scene).

Augmentation (both datasets): horizontal flip (image, fields and masks flipped, x components negated) and a
random crop of 80-100 % of each side resized back (displacements rescaled with the image). Every item is
resized to `size` = (W, H) when given (otherwise the sample's own size).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from shared.spectral import resample_spectral, resize_field, resize_planes

from .samples import list_samples, load_sample

CROP_SCALE = (0.8, 1.0)


def _rng() -> np.random.Generator:
    # Seeded from torch's RNG so DataLoader workers (which reseed torch) get different augmentations.
    return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))


def _crop_box(rng: np.random.Generator, w: int, h: int) -> tuple[int, int, int, int]:
    s = rng.uniform(*CROP_SCALE)
    cw, ch = max(2, int(round(w * s))), max(2, int(round(h * s)))
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    return x0, y0, cw, ch


def _resize_image(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if img.shape[1] == size[0] and img.shape[0] == size[1]:
        return img
    shrink = size[0] < img.shape[1]
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape[1] == size[0] and mask.shape[0] == size[1]:
        return mask
    return cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)


def _to_image_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)


class SpectralDataset(Dataset):
    """(image, spectral volume) pairs from every sample_*.npz of the folders.

    item: dict(image float32 (3, H, W) in [0, 1], spectral float32 (K, 4, H, W) raw pixels, valid bool (H, W),
    fps float32 (), T int64 ()).
    """

    def __init__(self, folders: list, augment: bool = True, size: tuple[int, int] | None = None):
        self.paths = list_samples(folders)
        if not self.paths:
            raise ValueError(f"no sample_*.npz files in {folders}")
        self.augment = augment
        self.size = None if size is None else (int(size[0]), int(size[1]))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        s = load_sample(self.paths[i], keys=("image", "spectral", "valid", "fps", "T"))
        # private writable copies (the memmaps are read-only); a (K, 4, H, W) volume is ~10 MB at 256x160
        img = np.array(s["image"])
        spec = np.array(s["spectral"], dtype=np.float32)
        valid = np.array(s["valid"], dtype=bool)
        h, w = img.shape[:2]
        out_size = self.size or (w, h)
        if self.augment:
            rng = _rng()
            if rng.random() < 0.5:
                img, spec, valid = img[:, ::-1], spec[..., ::-1].copy(), valid[:, ::-1]
                spec[:, 0:2] *= -1.0
            x0, y0, cw, ch = _crop_box(rng, w, h)
            img = img[y0:y0 + ch, x0:x0 + cw]
            spec = spec[..., y0:y0 + ch, x0:x0 + cw]
            valid = valid[y0:y0 + ch, x0:x0 + cw]
        if spec.shape[-1] != out_size[0] or spec.shape[-2] != out_size[1]:
            spec = resample_spectral(spec, out_size)
        return {
            "image": _to_image_tensor(_resize_image(np.ascontiguousarray(img), out_size)),
            "spectral": torch.from_numpy(np.ascontiguousarray(spec, dtype=np.float32)),
            "valid": torch.from_numpy(_resize_mask(np.ascontiguousarray(valid), out_size)),
            "fps": torch.tensor(float(s["fps"]), dtype=torch.float32),
            "T": torch.tensor(int(s["T"]), dtype=torch.int64),
        }


def _is_full(path: Path) -> bool:
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
    return "frames.npy" in names and "motion.npy" in names


class FramePairDataset(Dataset):
    """(I0, I_t, flow I0 -> I_t) pairs from full samples (with frames and motion), for the renderer.

    item: dict(image0 (3, H, W) and image_t (3, H, W) float32 in [0, 1], flow float32 (2, H, W) =
    motion[t] - motion[0] in pixels, metric float32 (1, H, W) = mean over t of ||motion[t] - motion[0]||
    (the softmax-splat weight Z of SPEC section 4), valid bool (H, W), t int64 in 1..T-1).
    Folders may mix lite and full samples; only full ones are used.
    """

    def __init__(self, folders: list, augment: bool = True, size: tuple[int, int] | None = None):
        self.paths = [p for p in list_samples(folders) if _is_full(p)]
        if not self.paths:
            raise ValueError(f"no full samples (with frames and motion) in {folders}")
        self.augment = augment
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self._metric_cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def _metric(self, i: int, motion: np.ndarray) -> np.ndarray:
        # One pass over the (T, 2, H, W) memmap per sample and worker; (H, W) float32 kept afterwards.
        if i not in self._metric_cache:
            rel = np.asarray(motion, dtype=np.float32) - np.asarray(motion[0], dtype=np.float32)
            self._metric_cache[i] = np.sqrt((rel**2).sum(axis=1)).mean(axis=0).astype(np.float32)
        return self._metric_cache[i]

    def __getitem__(self, i: int) -> dict:
        s = load_sample(self.paths[i], keys=("frames", "motion", "valid"))
        frames, motion = s["frames"], s["motion"]
        T = frames.shape[0]
        rng = _rng()
        t = int(rng.integers(1, T))
        img0 = np.array(frames[0])
        img_t = np.array(frames[t])
        flow = np.asarray(motion[t], np.float32) - np.asarray(motion[0], np.float32)
        metric = self._metric(i, motion)
        valid = np.array(s["valid"], bool)
        h, w = img0.shape[:2]
        out_size = self.size or (w, h)
        if self.augment:
            if rng.random() < 0.5:
                img0, img_t, valid, metric = img0[:, ::-1], img_t[:, ::-1], valid[:, ::-1], metric[:, ::-1]
                flow = flow[..., ::-1].copy()
                flow[0] *= -1.0
            x0, y0, cw, ch = _crop_box(rng, w, h)
            img0, img_t = img0[y0:y0 + ch, x0:x0 + cw], img_t[y0:y0 + ch, x0:x0 + cw]
            valid, metric = valid[y0:y0 + ch, x0:x0 + cw], metric[y0:y0 + ch, x0:x0 + cw]
            flow = flow[:, y0:y0 + ch, x0:x0 + cw]
        ch, cw = img0.shape[:2]
        if (cw, ch) != out_size:
            flow = resize_field(np.ascontiguousarray(flow), out_size)
            # the metric is a length: scale it by the mean of the two axis scale factors
            metric = resize_planes(np.ascontiguousarray(metric), out_size) * 0.5 * (out_size[0] / cw + out_size[1] / ch)
        return {
            "image0": _to_image_tensor(_resize_image(np.ascontiguousarray(img0), out_size)),
            "image_t": _to_image_tensor(_resize_image(np.ascontiguousarray(img_t), out_size)),
            "flow": torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32)),
            "metric": torch.from_numpy(np.ascontiguousarray(metric, dtype=np.float32))[None],
            "valid": torch.from_numpy(_resize_mask(np.ascontiguousarray(valid), out_size)),
            "t": torch.tensor(t, dtype=torch.int64),
        }
