"""`python build.py addon`: per-platform extension zips with the right wheels, shared/ vendored, validated."""
from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from backend import addon_build

ROOT = Path(__file__).resolve().parents[1]
PLATFORM_WHEEL = {"linux_x64": "x86_64", "windows_x64": "win_amd64", "macos_arm64": ("arm64", "universal2"),
                  "macos_x64": ("x86_64", "universal2")}


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    return {z.name.split("-")[-1][:-4]: z for z in addon_build.build(tmp_path_factory.mktemp("dist"))}


def test_one_zip_per_platform_with_its_wheels(zips):
    assert sorted(zips) == ["linux_x64", "macos_arm64", "macos_x64", "windows_x64"]
    for plat, z in zips.items():
        names = zipfile.ZipFile(z).namelist()
        wheels = [n for n in names if n.endswith(".whl")]
        # pyzmq + msgpack, each for Python 3.11 (Blender 4.2-5.0) and 3.13 (5.1; pyzmq via cp312-abi3)
        for pkg in ("pyzmq", "msgpack"):
            tags = [w for w in wheels if Path(w).name.startswith(pkg + "-")]
            assert any("cp311-cp311" in w for w in tags), (plat, tags)
            assert any("cp313-cp313" in w or "cp312-abi3" in w for w in tags), (plat, tags)
        want = PLATFORM_WHEEL[plat]
        want = want if isinstance(want, tuple) else (want,)
        assert all(any(w_ in Path(w).name for w_ in want) for w in wheels), (plat, wheels)
        assert not any("torch" in n or "numpy" in n for n in wheels)
        # shared/ is vendored as a subpackage; no caches, no tests
        for f in ("gid_dynamics/__init__.py", "gid_dynamics/shared/spectral.py", "gid_dynamics/shared/protocol.py",
                  "gid_dynamics/shared/modal.py", "gid_dynamics/blender_manifest.toml"):
            assert any(n.endswith(f.split("/", 1)[1]) for n in names), (plat, f)
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        manifest = zipfile.ZipFile(z).read(next(n for n in names if n.endswith("blender_manifest.toml"))).decode()
        assert re.search(r'^network = ".+"', manifest, re.M) and re.search(r'^files = ".+"', manifest, re.M)


def test_vendored_shared_matches_the_repository(zips):
    with zipfile.ZipFile(zips["linux_x64"]) as zf:
        for name in ("spectral.py", "protocol.py", "modal.py"):
            inner = next(n for n in zf.namelist() if n.endswith(f"shared/{name}"))
            assert zf.read(inner) == (ROOT / "shared" / name).read_bytes()


def test_staged_source_validates(zips):
    staged = ROOT / ".cache" / "addon_build" / "gid_dynamics"
    proc = subprocess.run([sys.executable, str(addon_build.blender_ext_cli()), "validate", str(staged)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
