"""The add-on's single door to the project's `shared/` code (spectral math, wire protocol, modal dynamics,
Eulerian fluid motion).

One mechanism, two layouts:
- built extension (`python build.py addon`): the repository's `shared/` is copied into the package as
  `<addon>/shared/`, so it is imported relatively (`from .shared import spectral`); nothing outside the zip.
- source tree (tests that import `blender_addon` directly, development): `blender_addon/shared` does not exist;
  the repository's top-level `shared` package (the parent folder of this one) is imported instead.
Everything else in the add-on imports `spectral`, `protocol`, `eulerian` and `modal()` from here.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

if importlib.util.find_spec(f"{__package__}.shared") is not None:
    from . import shared as shared_pkg
else:  # source tree: fall back to the repository's shared/ package
    _root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if _root not in sys.path:
        sys.path.append(_root)
    import shared as shared_pkg  # type: ignore[no-redef]

spectral = importlib.import_module(f"{shared_pkg.__name__}.spectral")
protocol = importlib.import_module(f"{shared_pkg.__name__}.protocol")
eulerian = importlib.import_module(f"{shared_pkg.__name__}.eulerian")


def modal():
    """`shared.modal` (poke dynamics), imported on first use; raises a clear error if it is not there."""
    try:
        return importlib.import_module(f"{shared_pkg.__name__}.modal")
    except ModuleNotFoundError as exc:
        raise RuntimeError("shared/modal.py (poke dynamics) is not part of this build") from exc
