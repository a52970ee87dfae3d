"""The add-on inside a headless bpy, in a throw-away Blender user folder (nothing of the user's is touched).

`sandboxed_addon()` sets BLENDER_USER_RESOURCES to a temporary folder before bpy is imported, stages the
add-on from this repository (`blender_addon/` with `shared/` vendored as in the built zip, no wheels: this
Python already has pyzmq and msgpack) and enables it from a local extension repository, as a development
install would. No zip is built, so farm workers running many chunks at once share nothing on disk but the shot.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..addon_build import ADDON_ID, SHARED_FILES

ROOT = Path(__file__).resolve().parents[2]
REPO = "gidbake"                       # the local extension repository's module name
MODULE = f"bl_ext.{REPO}.{ADDON_ID}"


def stage_addon(dest: Path) -> Path:
    """Copy blender_addon/ to dest/gid_dynamics with the repository's shared/ vendored; returns dest."""
    pkg = dest / ADDON_ID
    shutil.copytree(ROOT / "blender_addon", pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "wheels"))
    (pkg / "shared").mkdir(exist_ok=True)
    for name in SHARED_FILES:
        if (ROOT / "shared" / name).exists():
            shutil.copy2(ROOT / "shared" / name, pkg / "shared" / name)
    return dest


@contextlib.contextmanager
def sandboxed_addon():
    """Yields (bpy, addon module name) with the add-on enabled; removes the user folder afterwards."""
    if "bpy" in sys.modules:
        raise RuntimeError("bpy was imported before the Blender user folder could be sandboxed; "
                           "run this in its own process")
    user = Path(tempfile.mkdtemp(prefix="gid-bake-user-"))
    os.environ["BLENDER_USER_RESOURCES"] = str(user)
    try:
        try:
            import bpy
        except ImportError as exc:
            raise RuntimeError(f"bpy (Blender as a Python module) is not importable here: {exc}; "
                               "install it with pip install bpy==5.0.1 (Python 3.11)") from None
        import addon_utils   # Blender's own module: importable only once bpy is

        bpy.ops.wm.read_factory_settings(use_empty=True)
        src = stage_addon(user / "addon_src")
        bpy.context.preferences.extensions.repos.new(name=REPO, module=REPO, custom_directory=str(src),
                                                     source="USER")
        addon_utils.enable(MODULE, default_set=True, handle_error=_raise)
        if MODULE not in bpy.context.preferences.addons:
            raise RuntimeError(f"the add-on {MODULE} could not be enabled")
        yield bpy, MODULE
    finally:
        shutil.rmtree(user, ignore_errors=True)


def _raise(exc: BaseException) -> None:
    raise RuntimeError(f"the add-on failed to load: {exc}") from exc


def addon_module(name: str):
    """A submodule of the enabled add-on (e.g. "bake", "connection")."""
    return importlib.import_module(f"{MODULE}.{name}")
