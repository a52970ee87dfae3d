"""Where an object's dynamics live on disk, and keeping them next to the .blend.

Layout, per object (`key` = the object's name when it first got motion, kept in `obj.gid.key`):
    //<blend name>_dynamics/<key>/spectral.npz    chosen motion: spectral (N, K, 4, h, w) float32, fps, T, size
                                 live/disp_0001.exr  UV-offset sequence for the shader (half float, ZIP)
                                 geo/geo_0001.exr    local-space offsets for the Displace modifier
                                 bake/frame_0001.png baked frames from the backend's renderer
                                 pokes.npz          poke response (count, 2, h, w) and its frame range
While the .blend is unsaved the folder is in the temp directory; a `save_pre` handler (it receives the target
path, so the written file already holds the final relative paths) copies it next to the .blend being written
and re-points the add-on's images. Sequences are never packed (`Image.pack()` fails on sequences).
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import struct
import tempfile
import uuid
import zipfile
import zlib
from dataclasses import dataclass

import bpy
import numpy as np

SPECTRAL_FILE = "spectral.npz"
POKES_FILE = "pokes.npz"
_SESSION = uuid.uuid4().hex[:8]


def sanitize(name: str) -> str:
    """A folder name from an object name: letters, digits, '-', '_', '.' only."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return clean or "object"


def dynamics_root(blend_path: str | None = None) -> str:
    """`<dir>/<blend stem>_dynamics` for a saved .blend, else this session's temp folder."""
    blend_path = bpy.data.filepath if blend_path is None else blend_path
    if blend_path:
        stem = os.path.splitext(os.path.basename(blend_path))[0]
        return os.path.join(os.path.dirname(os.path.abspath(blend_path)), f"{stem}_dynamics")
    return os.path.join(tempfile.gettempdir(), "gid_dynamics_unsaved", _SESSION)


def object_key(obj) -> str:
    settings = obj.gid
    if not settings.key:
        settings.key = sanitize(obj.name)
    return settings.key


def object_dir(obj, create: bool = True, blend_path: str | None = None) -> str:
    path = os.path.join(dynamics_root(blend_path), object_key(obj))
    if create:
        os.makedirs(path, exist_ok=True)
    return path


def blender_path(path: str) -> str:
    """A path to store in a datablock: relative (`//...`) when the .blend is saved."""
    if bpy.data.filepath:
        try:
            return bpy.path.relpath(path)
        except ValueError:  # another drive on Windows
            return path
    return path


# --------------------------------------------------------------------------------------------------------
# atomic writes


def atomic_savez(path: str, **arrays) -> None:
    """np.savez to a temp name in the same folder, then os.replace (readers never see a partial file)."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp.npz")
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def new_temp_dir(final_dir: str) -> str:
    """An empty sibling folder to fill before `swap_dir` puts it in place."""
    parent = os.path.dirname(final_dir)
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f".{os.path.basename(final_dir)}.tmp-", dir=parent)


def swap_dir(tmp_dir: str, final_dir: str) -> None:
    """Put a fully written folder in place of `final_dir`. At every moment one complete version exists."""
    old = None
    if os.path.isdir(final_dir):
        old = f"{final_dir}.old-{uuid.uuid4().hex[:8]}"
        os.replace(final_dir, old)
    try:
        os.replace(tmp_dir, final_dir)
    except OSError:
        if old is not None:
            os.replace(old, final_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def move_files_into(tmp_dir: str, final_dir: str) -> None:
    """Move every file of a fully written folder into `final_dir` (created if needed), one atomic rename each,
    keeping the other files there; then remove the emptied folder. Each file appears whole or not at all."""
    os.makedirs(final_dir, exist_ok=True)
    for name in sorted(os.listdir(tmp_dir)):
        os.replace(os.path.join(tmp_dir, name), os.path.join(final_dir, name))
    shutil.rmtree(tmp_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------------------
# the motion file


@dataclass
class Motion:
    """Spectral volumes of one object: spectral (N, K, 4, h, w) float32 (N variations), clip fps and T,
    size (W, H) of the image they were predicted for."""

    spectral: np.ndarray
    fps: float
    T: int
    size: tuple[int, int]

    def variation(self, index: int) -> np.ndarray:
        """(K, 4, h, w) of one variation (index clamped to what exists)."""
        return self.spectral[max(0, min(int(index), self.spectral.shape[0] - 1))]


# A user's .npz is untrusted: everything is checked from the zip directory and the .npy headers before any
# member is decompressed, and every size is bounded (a 1 MB zip can declare gigabytes of zeros).
@dataclass(frozen=True)
class MotionLimits:
    max_file_bytes: int = 2 << 30          # the .npz on disk
    max_members: int = 64                  # entries in the zip directory
    max_total_bytes: int = 1 << 30         # the arrays we read, uncompressed, together
    max_values: int = 1 << 27              # N*K*4*h*w: 64 channels at 2048x1024 (512 MiB as float32)
    max_variations: int = 64               # N
    max_terms: int = 1024                  # K
    max_side: int = 8192                   # h, w of the volume; W, H of `size`
    max_T: int = 100_000                   # clip frames (~55 min at 30 fps)
    min_fps: float = 0.01
    max_fps: float = 1000.0


LIMITS = MotionLimits()
_FIELDS = ("spectral", "fps", "T", "size")
_KINDS = {"spectral": "f", "fps": "fiu", "T": "iuf", "size": "iu"}


def validate_motion(spectral: np.ndarray, fps, T, size=None, limits: MotionLimits = LIMITS) -> Motion:
    """Check a motion (from a file or the backend) field by field; ValueError says which field is wrong."""
    s = np.asarray(spectral)
    if s.dtype.kind != "f":
        raise ValueError(f"spectral volume must hold floats, not {s.dtype}")
    if s.ndim == 4:
        s = s[None]
    if s.ndim != 5 or s.shape[2] != 4 or min(s.shape) < 1:
        raise ValueError(f"spectral volume must be (K, 4, h, w) or (N, K, 4, h, w), got {s.shape}")
    _check_spectral_shape(s.shape, limits)
    with np.errstate(over="ignore", invalid="ignore"):     # float64 beyond float32 becomes inf: refused below
        s = np.asarray(s, dtype=np.float32)
    if not np.all(np.isfinite(s)):
        raise ValueError("spectral volume has non-finite values (NaN, inf, or beyond float32)")
    fps = float(fps)
    if not (math.isfinite(fps) and limits.min_fps <= fps <= limits.max_fps):
        raise ValueError(f"fps={fps} is not a frame rate in [{limits.min_fps:g}, {limits.max_fps:g}]")
    T_value = float(T)
    if not (math.isfinite(T_value) and T_value.is_integer() and 2 <= T_value <= limits.max_T):
        raise ValueError(f"T={T_value:g} is not a whole number of clip frames in [2, {limits.max_T}]")
    T = int(T_value)
    if s.shape[1] > T // 2 + 1:
        raise ValueError(f"fps={fps} and T={T} do not fit a spectral volume with K={s.shape[1]} terms "
                         f"(K <= T // 2 + 1)")
    if size is None:
        size = (s.shape[-1], s.shape[-2])
    size = np.asarray(size)
    if size.shape != (2,) or size.dtype.kind not in "iuf" or not np.all(np.isfinite(size)):
        raise ValueError(f"size must be (width, height), got {size.tolist()}")
    if not all(float(v).is_integer() and 1 <= v <= limits.max_side for v in size.tolist()):
        raise ValueError(f"size {size.tolist()} is not (width, height) in 1..{limits.max_side} pixels")
    return Motion(s, fps, T, (int(size[0]), int(size[1])))


def _check_spectral_shape(shape: tuple, limits: MotionLimits) -> None:
    """(N, K, 4, h, w) within the limits (python ints: no overflow)."""
    n, k, _, h, w = (int(v) for v in shape)
    if n > limits.max_variations or k > limits.max_terms or max(h, w) > limits.max_side:
        raise ValueError(f"spectral volume {tuple(shape)} is too large (at most {limits.max_variations} "
                         f"variations, {limits.max_terms} terms, {limits.max_side} pixels a side)")
    if math.prod((n, k, 4, h, w)) > limits.max_values:
        raise ValueError(f"spectral volume {tuple(shape)} has more than {limits.max_values} values")


def save_motion(obj, motion: Motion) -> str:
    path = os.path.join(object_dir(obj), SPECTRAL_FILE)
    # float16 (what the backend sends; motion needs no more) unless values exceed its range
    dtype = np.float16 if float(np.abs(motion.spectral).max(initial=0.0)) < 6e4 else np.float32
    atomic_savez(path, spectral=motion.spectral.astype(dtype), fps=np.float64(motion.fps),
                 T=np.int64(motion.T), size=np.asarray(motion.size, np.int64))
    return path


@dataclass
class _Member:
    info: zipfile.ZipInfo
    shape: tuple
    fortran: bool
    dtype: np.dtype
    offset: int          # bytes of .npy header before the data


def _read_npy_header(fh, name: str) -> tuple[tuple, bool, np.dtype, int]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise ValueError(f"{name!r} is a .npy version {version} array (only 1.0 and 2.0 hold plain numbers)")
    return tuple(int(v) for v in shape), bool(fortran), dtype, fh.tell()


def _check_member(key: str, info: zipfile.ZipInfo, shape: tuple, dtype: np.dtype, offset: int,
                  limits: MotionLimits) -> None:
    """Declared dtype and shape of one field, and that the zip's uncompressed size agrees with them."""
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"{key!r} holds Python objects (dtype {dtype}), which are never unpickled; "
                         f"expected plain numbers")
    if dtype.kind not in _KINDS[key]:
        raise ValueError(f"{key!r} has dtype {dtype}; expected {'floats' if key == 'spectral' else 'numbers'}")
    if key == "spectral":
        if len(shape) not in (4, 5) or shape[-3] != 4 or min(shape, default=0) < 1:
            raise ValueError(f"spectral volume must be (K, 4, h, w) or (N, K, 4, h, w), got {shape}")
        _check_spectral_shape(shape if len(shape) == 5 else (1, *shape), limits)
    elif key == "size":
        if shape != (2,):
            raise ValueError(f"size must be (width, height), got shape {shape}")
    elif shape not in ((), (1,)):
        raise ValueError(f"{key!r} must be one number, got shape {shape}")
    nbytes = math.prod(shape) * dtype.itemsize
    if offset + nbytes != info.file_size:
        raise ValueError(f"{key!r} declares {nbytes} bytes of data but its zip entry holds "
                         f"{info.file_size - offset} (damaged file?)")


def read_motion_file(path: str, limits: MotionLimits = LIMITS) -> Motion:
    """A .npz with `spectral` ((K,4,h,w) or (N,K,4,h,w)), `fps`, `T` (and optionally `size`).

    Nothing is decompressed until every declared shape, dtype and size is known to be acceptable; arrays of
    Python objects are refused (never unpickled). Any problem is one ValueError naming the file and the field.
    """
    name = os.path.basename(path)
    try:
        return _read_motion_file(path, limits)
    except ValueError as exc:
        raise ValueError(f"cannot read motion file {name}: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error,
            NotImplementedError, RuntimeError) as exc:   # damaged archive or compressed stream
        raise ValueError(f"cannot read motion file {name}: not a readable .npz archive "
                         f"({type(exc).__name__}: {exc})") from None


def _read_motion_file(path: str, limits: MotionLimits) -> Motion:
    if not os.path.isfile(path):
        raise ValueError(f"no such file: {path}")
    file_bytes = os.path.getsize(path)
    if file_bytes > limits.max_file_bytes:
        raise ValueError(f"the file has {file_bytes} bytes; at most {limits.max_file_bytes} are accepted")
    if not zipfile.is_zipfile(path):
        raise ValueError("not an .npz archive (np.savez writes one), or a truncated one")
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise ValueError(f"the archive has {len(infos)} entries; at most {limits.max_members} are accepted")
        by_key = {}
        for info in infos:
            key = info.filename[:-4] if info.filename.endswith(".npy") else None
            if key in _FIELDS:
                if key in by_key:
                    raise ValueError(f"{key!r} appears twice in the archive")
                by_key[key] = info
        missing = [k for k in ("spectral", "fps", "T") if k not in by_key]
        if missing:
            raise ValueError(f"the archive lacks {missing} (a motion file holds spectral, fps and T)")
        total = sum(info.file_size for info in by_key.values())
        if total > limits.max_total_bytes:
            raise ValueError(f"its arrays declare {total} bytes uncompressed; at most {limits.max_total_bytes} "
                             f"are accepted")
        members = {}
        for key, info in by_key.items():     # headers only: a few hundred bytes each
            if info.flag_bits & 0x1:
                raise ValueError(f"{key!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ValueError(f"{key!r} uses zip compression {info.compress_type}; np.savez / "
                                 f"np.savez_compressed (stored or deflate) are accepted")
            with zf.open(info) as fh:
                shape, fortran, dtype, offset = _read_npy_header(fh, key)
            _check_member(key, info, shape, dtype, offset, limits)
            members[key] = _Member(info, shape, fortran, dtype, offset)
        arrays = {key: _read_member(zf, m) for key, m in members.items()}
    return validate_motion(arrays["spectral"], _scalar(arrays["fps"]), _scalar(arrays["T"]),
                           arrays.get("size"), limits)


def _read_member(zf: zipfile.ZipFile, m: _Member, chunk: int = 16 << 20) -> np.ndarray:
    """The member's data, exactly as many bytes as its checked header declares, read in chunks into the
    array itself (no second copy); zipfile stops at the declared size and checks the CRC."""
    nbytes = m.info.file_size - m.offset
    flat = np.empty(nbytes, np.uint8)
    with zf.open(m.info) as fh:
        fh.read(m.offset)
        pos = 0
        while pos < nbytes:
            data = fh.read(min(chunk, nbytes - pos))
            if not data:
                raise ValueError(f"{m.info.filename!r} is truncated")
            flat[pos:pos + len(data)] = np.frombuffer(data, np.uint8)
            pos += len(data)
    return flat.view(m.dtype).reshape(m.shape, order="F" if m.fortran else "C")


def _scalar(a: np.ndarray) -> float:
    return a.reshape(-1)[0].item()


def load_motion(obj) -> Motion:
    path = os.path.join(object_dir(obj, create=False), SPECTRAL_FILE)
    if not os.path.exists(path):
        raise ValueError(f"{obj.name} has no motion yet (expected {path}); predict or load motion first")
    return read_motion_file(path)


def _settings_values(settings) -> dict:
    return {p.identifier: getattr(settings, p.identifier) for p in settings.bl_rna.properties
            if p.identifier != "rna_type" and not p.is_readonly and p.type != "COLLECTION"}


@contextlib.contextmanager
def motion_rollback(obj):
    """Run a change of an object's motion as one step: if anything in the block raises, the object's settings
    (`obj.gid`), its motion file and its folder are put back exactly as they were, and the error propagates."""
    settings = obj.gid
    before = _settings_values(settings)
    root = dynamics_root()
    folder = os.path.join(root, settings.key or sanitize(obj.name))
    path = os.path.join(folder, SPECTRAL_FILE)
    root_existed, folder_existed = os.path.isdir(root), os.path.isdir(folder)
    backup = None
    if os.path.isfile(path):
        backup = os.path.join(folder, f".{SPECTRAL_FILE}.{uuid.uuid4().hex[:8]}.bak")
        try:
            os.link(path, backup)      # the writer replaces `path`, so this name keeps the old bytes
        except OSError:                # no hard links here (e.g. FAT): copy
            shutil.copy2(path, backup)
    try:
        yield
    except BaseException:
        for name, value in before.items():
            if getattr(settings, name) != value:   # unchanged ones are not set: no update callbacks
                setattr(settings, name, value)
        if backup is not None:
            os.replace(backup, path)
        elif os.path.exists(path):
            os.remove(path)
        if not folder_existed:
            shutil.rmtree(folder, ignore_errors=True)
        if not root_existed and os.path.isdir(root) and not os.listdir(root):
            os.rmdir(root)
        raise
    if backup is not None:
        os.remove(backup)


# --------------------------------------------------------------------------------------------------------
# moving with the .blend


def managed_images(key: str | None = None):
    """Images this add-on wrote (sequences), optionally only those of one object key."""
    for img in bpy.data.images:
        if img.get("gid_rel") and (key is None or img.get("gid_owner") == key):
            yield img


def tag_image(img, key: str, rel_path: str) -> None:
    """Mark an image as the add-on's: its file is `<object dir of key>/<rel_path>` wherever the .blend goes."""
    img["gid_owner"] = key
    img["gid_rel"] = rel_path.replace(os.sep, "/")


def relink_images(blend_path: str | None = None, relative: bool = True) -> None:
    """Point every managed image at its file under `dynamics_root(blend_path)` (the rule, not a stored path)."""
    root = dynamics_root(blend_path)
    for img in managed_images():
        path = os.path.join(root, img["gid_owner"], *img["gid_rel"].split("/"))
        new = blender_path(path) if relative else path
        if img.filepath != new:
            img.filepath = new


def relocate(old_root: str, new_root: str) -> int:
    """Copy every object folder from old_root to new_root (save-as keeps the old copy). Returns folders copied."""
    if os.path.normcase(os.path.abspath(old_root)) == os.path.normcase(os.path.abspath(new_root)):
        return 0
    copied = 0
    keys = {ob.gid.key for ob in bpy.data.objects if getattr(ob, "gid", None) and ob.gid.key}
    for key in sorted(keys):
        src = os.path.join(old_root, key)
        if not os.path.isdir(src):
            continue
        dst = os.path.join(new_root, key)
        tmp = new_temp_dir(dst)
        shutil.rmtree(tmp)
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(".*"))
        swap_dir(tmp, dst)
        copied += 1
    return copied


# The save_pre handler receives the target path, but bpy.data.filepath is still the old one, and on "save
# as" Blender rebases relative paths from the old folder to the new one; absolute paths are written as they
# are. So: before a save-as, copy the folders and point images at absolute new paths; before a plain save,
# at relative ones. After every save and load they are made relative by the rule above, which also heals a
# .blend moved together with its _dynamics folder.


@bpy.app.handlers.persistent
def on_save_pre(filepath, *_args) -> None:
    if not filepath:
        return
    same_file = bool(bpy.data.filepath) and os.path.normcase(os.path.abspath(filepath)) == os.path.normcase(
        os.path.abspath(bpy.data.filepath))
    if not same_file:
        relocate(dynamics_root(), dynamics_root(filepath))
    relink_images(filepath, relative=same_file)


@bpy.app.handlers.persistent
def on_save_post(*_args) -> None:
    relink_images()


@bpy.app.handlers.persistent
def on_load_post(*_args) -> None:
    relink_images()
