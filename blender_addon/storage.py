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

import os
import re
import shutil
import tempfile
import uuid
import zipfile
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


def validate_motion(spectral: np.ndarray, fps, T, size=None) -> Motion:
    s = np.asarray(spectral, dtype=np.float32)
    if s.ndim == 4:
        s = s[None]
    if s.ndim != 5 or s.shape[2] != 4:
        raise ValueError(f"spectral volume must be (K, 4, h, w) or (N, K, 4, h, w), got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("spectral volume has non-finite values")
    fps, T = float(fps), int(T)
    if fps <= 0 or T < 2 or s.shape[1] > T // 2 + 1:
        raise ValueError(f"fps={fps} and T={T} do not fit a spectral volume with K={s.shape[1]} terms")
    if size is None:
        size = (s.shape[-1], s.shape[-2])
    return Motion(s, fps, T, (int(size[0]), int(size[1])))


def save_motion(obj, motion: Motion) -> str:
    path = os.path.join(object_dir(obj), SPECTRAL_FILE)
    # float16 (what the backend sends; motion needs no more) unless values exceed its range
    dtype = np.float16 if float(np.abs(motion.spectral).max(initial=0.0)) < 6e4 else np.float32
    atomic_savez(path, spectral=motion.spectral.astype(dtype), fps=np.float64(motion.fps),
                 T=np.int64(motion.T), size=np.asarray(motion.size, np.int64))
    return path


def read_motion_file(path: str) -> Motion:
    """A .npz with `spectral` ((K,4,h,w) or (N,K,4,h,w)), `fps`, `T` (and optionally `size`). Never unpickles."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise ValueError("a single array, not an .npz archive")
            arrays = {k: data[k] for k in data.files}
    except (OSError, EOFError, ValueError, TypeError, zipfile.BadZipFile) as exc:
        # np.load reports a non-npz file as "pickled data" (it never unpickles here): say what is wrong.
        raise ValueError(f"cannot read motion file {path}: not an .npz of arrays ({exc})") from exc
    missing = {"spectral", "fps", "T"} - set(arrays)
    if missing:
        raise ValueError(f"{path}: motion file lacks {sorted(missing)} (needs spectral, fps, T)")
    size = tuple(int(v) for v in arrays["size"]) if "size" in arrays else None
    return validate_motion(arrays["spectral"], float(arrays["fps"]), int(arrays["T"]), size)


def load_motion(obj) -> Motion:
    path = os.path.join(object_dir(obj, create=False), SPECTRAL_FILE)
    if not os.path.exists(path):
        raise ValueError(f"{obj.name} has no motion yet (expected {path}); predict or load motion first")
    return read_motion_file(path)


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
