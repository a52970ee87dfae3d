"""Sample files on disk: names, atomic writes, listing and safe loading (no pickle, ever)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

SAMPLE_RE = re.compile(r"^sample_(\d{6,})\.npz$")
REQUIRED_KEYS = ("image", "spectral", "valid", "fps", "T")


def sample_path(folder: str | Path, index: int) -> Path:
    return Path(folder) / f"sample_{index:06d}.npz"


def write_npz_atomic(path: str | Path, arrays: dict) -> None:
    """np.savez (uncompressed, so loaders can memory-map) to a temp file, then os.replace."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def list_samples(folders) -> list[Path]:
    """All sample_*.npz in the folders (sorted per folder); a missing folder is an error."""
    if isinstance(folders, (str, Path)):
        folders = [folders]
    out: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"sample folder {folder} does not exist")
        out.extend(sorted(p for p in folder.iterdir() if SAMPLE_RE.match(p.name)))
    return out


def load_sample(path: str | Path, keys=None, mmap: bool = True) -> dict:
    """Arrays of one sample. With mmap=True the big arrays of an uncompressed npz are memory-mapped.

    Raises ValueError when a required key is missing.
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        names = set(z.files)
    missing = [k for k in REQUIRED_KEYS if k not in names]
    if missing:
        raise ValueError(f"{path}: not a sample file, missing keys {missing}")
    want = names if keys is None else [k for k in keys if k in names]
    if mmap:
        return {k: _mmap_member(path, k) for k in want}
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in want}


def _mmap_member(path: Path, key: str) -> np.ndarray:
    """Memory-map one member of an uncompressed npz (a zip of .npy files stored without compression)."""
    import zipfile
    from numpy.lib import format as npformat

    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(key + ".npy")
        if info.compress_type != zipfile.ZIP_STORED:
            with zf.open(info) as f:
                return npformat.read_array(f, allow_pickle=False)
        # offset of the member's data: local header (30 bytes + name + extra) after header_offset
        with open(path, "rb") as raw:
            raw.seek(info.header_offset)
            local = raw.read(30)
            name_len = int.from_bytes(local[26:28], "little")
            extra_len = int.from_bytes(local[28:30], "little")
            data_start = info.header_offset + 30 + name_len + extra_len
            raw.seek(data_start)
            version = npformat.read_magic(raw)
            # the public readers (numpy 1 and 2); format 3.0 (utf-8 field names) is read whole instead
            header = {(1, 0): npformat.read_array_header_1_0, (2, 0): npformat.read_array_header_2_0}.get(version)
            if header is None:
                with np.load(path, allow_pickle=False) as z:
                    return z[key]
            shape, fortran, dtype = header(raw)
            if dtype.hasobject:
                raise ValueError(f"{path}:{key} holds Python objects; refusing to load")
            offset = raw.tell()
    if int(np.prod(shape)) == 0 or len(shape) == 0:
        with np.load(path, allow_pickle=False) as z:
            return z[key]
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
