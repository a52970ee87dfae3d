"""Malformed user files for the add-on's hardening tests: motion archives (.npz) and non-images.

Each writer makes one file at the path it is given. None needs much memory or time: the zip bomb is written
by streaming zeros through deflate.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

T, FPS = 150, 30.0


def good_motion(path: Path, K: int = 8, h: int = 10, w: int = 16, fps: float = FPS, T: int = T, seed: int = 0,
                n: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    spectral = (0.05 * rng.standard_normal((n, K, 4, h, w))).astype(np.float32)
    spectral[:, 0] = 0.0
    np.savez(path, spectral=spectral, fps=fps, T=T)
    return path


def _npy_header(shape: tuple, dtype) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                               "fortran_order": False, "shape": shape})
    return buf.getvalue()


def zip_bomb(path: Path, shape=(1, 50, 4, 1000, 1000)) -> None:
    """~800 MB of float32 zeros declared, ~0.8 MB on disk (deflate): what an audit used to grow Blender by 6 GB."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("spectral.npy", "w", force_zip64=True) as fh:
            fh.write(_npy_header(shape, np.float32))
            left = int(np.prod(shape)) * 4
            zeros = bytes(16 << 20)
            while left > 0:
                fh.write(zeros[:min(left, len(zeros))])
                left -= len(zeros)
        for key, value in (("fps", np.float64(FPS)), ("T", np.int64(T))):
            with zf.open(f"{key}.npy", "w") as fh:
                np.lib.format.write_array(fh, np.asarray(value))


def lying_header(path: Path) -> None:
    """An entry whose .npy header declares a 100-million-value volume but holds 1 KB (stored, no compression)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("spectral.npy", _npy_header((1, 25, 4, 1000, 1000), np.float32) + bytes(1024))
        zf.writestr("fps.npy", _npy_bytes(np.float64(FPS)))
        zf.writestr("T.npy", _npy_bytes(np.int64(T)))


def _npy_bytes(a) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(a))
    return buf.getvalue()


def corrupt_deflate(path: Path) -> None:
    """np.savez_compressed with bytes flipped inside the compressed spectral stream."""
    rng = np.random.default_rng(1)
    np.savez_compressed(path, spectral=rng.standard_normal((8, 4, 10, 16)).astype(np.float32), fps=FPS, T=T)
    data = bytearray(path.read_bytes())
    mid = len(data) // 3
    data[mid:mid + 64] = bytes(64)
    path.write_bytes(bytes(data))


def truncated(path: Path) -> None:
    """The first half of a valid motion file."""
    good_motion(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _savez(path: Path, **arrays) -> None:
    np.savez(path, **arrays)       # allow_pickle is on in savez: object arrays are written pickled


def _spectral(K=8):
    return np.zeros((K, 4, 10, 16), np.float32)


# name -> writer(path). Every one must be refused by Load Motion with one clear message.
BAD_MOTION = {
    "zip_bomb": zip_bomb,
    "lying_header": lying_header,
    "object_spectral": lambda p: _savez(p, spectral=np.array([{"a": 1}, None], dtype=object), fps=FPS, T=T),
    "object_fps": lambda p: _savez(p, spectral=_spectral(), fps=np.array(["30"], dtype=object), T=T),
    "nan_fps": lambda p: _savez(p, spectral=_spectral(), fps=np.nan, T=T),
    "inf_fps": lambda p: _savez(p, spectral=_spectral(), fps=np.inf, T=T),
    "negative_fps": lambda p: _savez(p, spectral=_spectral(), fps=-30.0, T=T),
    "huge_T_float": lambda p: _savez(p, spectral=_spectral(), fps=FPS, T=1e12),
    "huge_T_int": lambda p: _savez(p, spectral=_spectral(), fps=FPS, T=np.int64(10**12)),
    "fractional_T": lambda p: _savez(p, spectral=_spectral(), fps=FPS, T=150.5),
    "nan_T": lambda p: _savez(p, spectral=_spectral(), fps=FPS, T=np.nan),
    "nan_spectral": lambda p: _savez(p, spectral=np.full((8, 4, 10, 16), np.nan, np.float32), fps=FPS, T=T),
    "float64_overflow": lambda p: _savez(p, spectral=np.full((8, 4, 10, 16), 1e300), fps=FPS, T=T),
    "complex_spectral": lambda p: _savez(p, spectral=_spectral().astype(np.complex64), fps=FPS, T=T),
    "int_spectral": lambda p: _savez(p, spectral=np.zeros((8, 4, 10, 16), np.int32), fps=FPS, T=T),
    "wrong_rank": lambda p: _savez(p, spectral=np.zeros((4, 10, 16), np.float32), fps=FPS, T=T),
    "wrong_channels": lambda p: _savez(p, spectral=np.zeros((8, 3, 10, 16), np.float32), fps=FPS, T=T),
    "too_many_terms": lambda p: _savez(p, spectral=np.zeros((80, 4, 2, 2), np.float32), fps=FPS, T=T),
    "fps_array": lambda p: _savez(p, spectral=_spectral(), fps=np.array([30.0, 24.0]), T=T),
    "bad_size": lambda p: _savez(p, spectral=_spectral(), fps=FPS, T=T, size=np.array([0, 10])),
    "missing_keys": lambda p: _savez(p, spectral=_spectral()),
    "missing_spectral": lambda p: _savez(p, fps=FPS, T=T),
    "truncated": truncated,
    "corrupt_deflate": corrupt_deflate,
    "non_zip": lambda p: p.write_bytes(os.urandom(4096)),
    "empty": lambda p: p.write_bytes(b""),
    "single_npy": lambda p: p.write_bytes(_npy_bytes(_spectral())),     # a bare .npy, not an archive
}


def make_bad_motion(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.npz" for name in BAD_MOTION}
    for name, writer in BAD_MOTION.items():
        writer(paths[name])
    return paths


def make_bad_images(folder: Path, good_png: Path) -> dict[str, Path]:
    """Files that are not images Blender can read, under image-like names."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {"text": folder / "notes.png", "random": folder / "noise.png", "empty": folder / "empty.png",
           "truncated_png": folder / "truncated.png", "text_txt": folder / "readme.txt"}
    out["text"].write_text("this is a text file, not a picture\n" * 20)
    out["random"].write_bytes(np.random.default_rng(3).integers(0, 256, 8192, dtype=np.uint8).tobytes())
    out["empty"].write_bytes(b"")
    data = good_png.read_bytes()
    out["truncated_png"].write_bytes(data[: len(data) // 2])
    out["text_txt"].write_text("hello\n")
    return out
