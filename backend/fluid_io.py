"""Files of Eulerian (fluid) motion: the fluid mask image, HINTS.json flow strokes, velocity-field .npz.

Velocity .npz (written by `gid data from-video --eulerian`, read by `gid animate --velocity`):
    velocity  float32 (2, H, W)  px/frame of its own grid, x right, y down
    mask      uint8 (H, W), optional: 1 where the field was measured / fluid flows
Every reader checks sizes and values and raises one ValueError/FileNotFoundError naming the problem.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from shared.eulerian import MAX_SIDE, MAX_SPEED, HintsError, Stroke, check_mask, parse_hints

MAX_HINTS_BYTES = 4 * 2 ** 20


def read_fluid_mask(path: str | os.PathLike, size: tuple[int, int]) -> np.ndarray:
    """A mask image (white = fluid; RGB/RGBA/grey read as luminance, >= 128 is fluid) -> bool (H, W).
    size = (W, H) of the image it belongs to."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fluid mask {path} does not exist")
    try:
        with Image.open(path) as im:
            if im.width > MAX_SIDE or im.height > MAX_SIDE:
                raise HintsError(f"fluid mask {path} is {im.width}x{im.height}; at most {MAX_SIDE} a side")
            grey = np.asarray(im.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read fluid mask {path}: {exc}") from None
    try:
        return check_mask(grey, size)
    except HintsError as exc:
        raise HintsError(f"{path}: {exc}") from None


def read_hints(path: str | os.PathLike, size: tuple[int, int], mask: np.ndarray) -> list[Stroke]:
    """HINTS.json -> validated strokes (see `shared.eulerian.parse_hints`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"flow hints {path} does not exist")
    if path.stat().st_size > MAX_HINTS_BYTES:
        raise HintsError(f"flow hints {path} is larger than {MAX_HINTS_BYTES // 2 ** 20} MB")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HintsError(f"flow hints {path} is not valid JSON: {exc}") from None
    try:
        return parse_hints(obj, size, mask)
    except HintsError as exc:
        raise HintsError(f"{path}: {exc}") from None


def read_velocity(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Velocity .npz -> (velocity (2, h, w) float32, mask (h, w) bool or None)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"velocity field {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "velocity" not in z.files:
                raise ValueError(f"{path} has no 'velocity' array (keys: {sorted(z.files)})")
            v = np.asarray(z["velocity"])
            m = np.asarray(z["mask"]) if "mask" in z.files else None
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read {path} as .npz: {exc}") from None
    if v.ndim != 3 or v.shape[0] != 2 or not (2 <= min(v.shape[1:]) and max(v.shape[1:]) <= MAX_SIDE):
        raise ValueError(f"{path}: velocity must be (2, h, w) with 2..{MAX_SIDE} pixels a side, got {v.shape}")
    v = v.astype(np.float32)
    if not np.isfinite(v).all():
        raise ValueError(f"{path}: velocity contains non-finite values")
    if float(np.sqrt((v ** 2).sum(0)).max()) > MAX_SPEED:
        raise ValueError(f"{path}: velocity exceeds {MAX_SPEED:g} px/frame")
    if m is not None:
        if m.shape != v.shape[1:]:
            raise ValueError(f"{path}: mask {m.shape} does not match velocity {v.shape[1:]}")
        m = m.astype(bool)
    return v, m


def save_velocity(path: str | os.PathLike, velocity: np.ndarray, mask: np.ndarray | None = None) -> None:
    """Write a velocity .npz atomically (temporary file + os.replace)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"velocity output must end in .npz, got {path}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder {path.parent} does not exist")
    arrays = {"velocity": np.asarray(velocity, np.float32)}
    if mask is not None:
        arrays["mask"] = np.asarray(mask, bool).astype(np.uint8)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
