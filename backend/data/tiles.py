"""Close-up samples: tiles of samples made at a larger size (`gid data tile`).

A clip turned into samples at 2x the training size and cut into training-size tiles gives close-ups at the clip's
own resolution: sharp texture (no upsampling) and motion in pixels of the close-up (twice the full view's). Real
motion data is scarce (16 training clips); the tiles show its textures and motions at the scale of close-up
photographs, which the full views lack (issue 20: a rose close-up was the held-out scene both models left still).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .samples import list_samples, load_sample, sample_path, write_npz_atomic

MAX_TILES = 100          # per sample: sample i's tiles are written as i * MAX_TILES + j


def tile_origins(length: int, tile: int) -> list[int]:
    """Start offsets of tiles of `tile` covering [0, length): evenly spread, the last one flush with the end."""
    if tile > length:
        return []
    n = -(-length // tile)
    return sorted({round(i * (length - tile) / max(1, n - 1)) for i in range(n)})


def tile_folder(src: str | Path, out: str | Path, size: tuple[int, int], log=print) -> int:
    """Every sample of src cut into tiles of size (W, H) -> out/sample_%06d.npz; returns the number written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    W, H = size
    written = 0
    for index, path in enumerate(list_samples(src)):
        s = load_sample(path, keys=("image", "spectral", "valid", "fps", "T"), mmap=False)
        h, w = s["image"].shape[:2]
        boxes = [(x, y) for y in tile_origins(h, H) for x in tile_origins(w, W)]
        if not boxes:
            raise ValueError(f"{path}: {w}x{h} is smaller than the tile size {W}x{H}")
        if len(boxes) > MAX_TILES:
            raise ValueError(f"{path}: {len(boxes)} tiles of {W}x{H} exceed {MAX_TILES} per sample")
        stem = int(path.stem.split("_")[1])
        for j, (x, y) in enumerate(boxes):
            crop = (slice(y, y + H), slice(x, x + W))
            write_npz_atomic(sample_path(out, stem * MAX_TILES + j), {
                "image": np.ascontiguousarray(s["image"][crop]),
                "spectral": np.ascontiguousarray(s["spectral"][..., crop[0], crop[1]]),
                "valid": np.ascontiguousarray(s["valid"][crop]), "fps": s["fps"], "T": s["T"]})
            written += 1
    log(f"tile: {written} tiles of {W}x{H} from {src} in {out}")
    return written
