"""Contact sheet of a sample folder: frame 0 of the first samples, each beside its motion-energy map."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from shared.spectral import to_complex

from .samples import list_samples, load_sample


def energy_map(spectral: np.ndarray, T: int) -> np.ndarray:
    """(H, W) RMS displacement (pixels) of the motion the spectral volume describes (DC term excluded)."""
    c = to_complex(spectral)[1:]                                   # (K-1, 2, H, W)
    # Parseval: mean_t |F_t - mean|^2 = sum_{k>=1} 2 |S_k|^2 / T^2 (one-sided terms below Nyquist)
    return np.sqrt((2 * np.abs(c) ** 2).sum(axis=(0, 1)) / float(T) ** 2)


def write_contact_sheet(folder: str | Path, count: int = 16, columns: int = 4, out_name: str = "contact.png") -> Path | None:
    """Writes folder/contact.png (atomically); returns its path, or None when the folder has no samples."""
    folder = Path(folder)
    paths = list_samples(folder)[:count]
    if not paths:
        return None
    tiles = []
    for p in paths:
        s = load_sample(p, keys=("image", "spectral", "T"))
        img = np.asarray(s["image"])
        e = energy_map(np.asarray(s["spectral"]), int(s["T"]))
        vis = cv2.applyColorMap(np.clip(e / 2.0 * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1]
        tile = np.concatenate([img, vis], axis=1)
        cv2.putText(tile, f"{p.stem[7:]} mean {e[e > 0.02].mean() if (e > 0.02).any() else 0:.2f}px",
                    (2, 10), cv2.FONT_HERSHEY_PLAIN, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    h, w = tiles[0].shape[:2]
    rows = (len(tiles) + columns - 1) // columns
    sheet = np.zeros((rows * (h + 2), columns * (w + 2), 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        if t.shape[:2] != (h, w):
            t = cv2.resize(t, (w, h))
        sheet[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = t
    out = folder / out_name
    tmp = folder / f".{out_name}.{os.getpid()}.tmp.png"
    cv2.imwrite(str(tmp), sheet[..., ::-1])
    os.replace(tmp, out)
    return out
