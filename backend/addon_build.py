"""`python build.py addon`: build the Blender extension zips into dist/.

Steps: stage `blender_addon/` into `.cache/addon_build/gid_dynamics/`, vendor the repository's `shared/` into it as
the subpackage `shared/` (the add-on imports it relatively, see blender_addon/vendor.py), fetch the pyzmq and
msgpack wheels for every platform and Python (3.11 = Blender 4.2-5.0, 3.13 = Blender 5.1; pyzmq's cp312-abi3
wheels cover 3.13) into `.cache/wheels/` (once; pip --only-binary, no deps), list them in the staged manifest,
validate with the extension CLI shipped inside the bpy wheel (`bl_pkg/cli/blender_ext.py`, no Blender binary
needed), and build one zip per platform (`--split-platforms`).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "blender_addon"
ADDON_ID = "gid_dynamics"
WHEEL_CACHE = ROOT / ".cache" / "wheels"
PACKAGES = ("pyzmq==27.3.0", "msgpack==1.2.4")
PYTHONS = ("3.11", "3.13")
PLATFORMS = {  # Blender platform -> pip platform tag
    "windows-x64": "win_amd64",
    "linux-x64": "manylinux_2_28_x86_64",
    "macos-arm64": "macosx_11_0_arm64",
    "macos-x64": "macosx_10_15_x86_64",
}
SHARED_FILES = ("__init__.py", "spectral.py", "protocol.py", "modal.py", "eulerian.py", "PROTOCOL.md")


def blender_ext_cli() -> Path:
    import importlib.util

    # find_spec locates the bpy wheel without importing it (importing bpy would fix Blender's user folder
    # before a caller could sandbox it with BLENDER_USER_RESOURCES).
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.origin:
        raise FileNotFoundError("the bpy wheel is not installed (pip install bpy==5.0.1)")
    base = Path(spec.origin).resolve().parent             # .../site-packages/bpy
    hits = sorted(base.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not hits:
        raise FileNotFoundError(f"blender_ext.py not found under {base} (is the bpy wheel installed?)")
    return hits[-1]


def fetch_wheels(offline: bool = False) -> list[Path]:
    """Download (once) the wheels for every platform and Python into .cache/wheels; return them."""
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    for py in PYTHONS:
        for plat in PLATFORMS.values():
            for pkg in PACKAGES:
                name, version = pkg.split("==")
                stem = name.replace("-", "_")
                have = [w for w in WHEEL_CACHE.glob(f"{stem}-{version}-*.whl") if _fits(w.name, py, plat)]
                if have:
                    continue
                if offline:
                    raise FileNotFoundError(f"no cached wheel for {pkg} / Python {py} / {plat} in {WHEEL_CACHE}")
                subprocess.run([sys.executable, "-m", "pip", "download", pkg, "--dest", str(WHEEL_CACHE),
                                "--only-binary=:all:", "--python-version", py, "--platform", plat, "--no-deps",
                                "--disable-pip-version-check", "-q"], check=True)
    wheels = sorted(WHEEL_CACHE.glob("*.whl"))
    keep = [w for w in wheels if any(w.name.startswith(p.split("==")[0].replace("-", "_") + "-" + p.split("==")[1] + "-")
                                     for p in PACKAGES)]
    return keep


def _fits(name: str, py: str, plat: str) -> bool:
    """Does a wheel file name serve this Python and pip platform (abi3 from cp312 up; universal2 on macOS)?"""
    parts = name[:-4].split("-")
    pytag, abi, plattag = parts[-3], parts[-2], parts[-1]
    ver = int(py.replace(".", ""))
    ok_py = any((t == f"cp{ver}") or (abi == "abi3" and t.startswith("cp") and int(t[2:]) <= ver)
                for t in pytag.split("."))
    if not ok_py:
        return False
    if plat.startswith("macosx"):
        arch = "x86_64" if plat.endswith("x86_64") else "arm64"
        return "macosx" in plattag and (arch in plattag or "universal2" in plattag)
    if plat.startswith("manylinux"):
        return "linux" in plattag and "x86_64" in plattag
    return plattag == plat


def stage(out_dir: Path, wheels: list[Path]) -> Path:
    """Copy the add-on, vendor shared/, add wheels, write the manifest's wheel list. Returns the staged dir."""
    dst = out_dir / ADDON_ID
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(SOURCE, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "shared", "wheels"))
    (dst / "shared").mkdir()
    for name in SHARED_FILES:
        src = ROOT / "shared" / name
        if src.exists():
            shutil.copy2(src, dst / "shared" / name)
    (dst / "wheels").mkdir()
    for w in wheels:
        shutil.copy2(w, dst / "wheels" / w.name)
    manifest = (dst / "blender_manifest.toml").read_text()
    listing = "wheels = [\n" + "".join(f'  "./wheels/{w.name}",\n' for w in wheels) + "]\n"
    manifest = manifest.replace('[permissions]', listing + "\n[permissions]", 1)
    (dst / "blender_manifest.toml").write_text(manifest)
    return dst


def build(dist: Path, offline: bool = False, split: bool = True) -> list[Path]:
    wheels = fetch_wheels(offline)
    staging = ROOT / ".cache" / "addon_build"
    staging.mkdir(parents=True, exist_ok=True)
    src = stage(staging, wheels)
    cli = blender_ext_cli()
    subprocess.run([sys.executable, str(cli), "validate", str(src)], check=True)
    dist.mkdir(parents=True, exist_ok=True)
    for old in dist.glob(f"{ADDON_ID}-*.zip"):
        old.unlink()
    cmd = [sys.executable, str(cli), "build", "--source-dir", str(src), "--output-dir", str(dist)]
    if split:
        cmd.append("--split-platforms")
    subprocess.run(cmd, check=True)
    zips = sorted(dist.glob(f"{ADDON_ID}-*.zip"))
    for z in zips:
        print(f"addon: {z} ({z.stat().st_size / 1e6:.2f} MB)")
    return zips


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="build.py addon", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dist", default=str(ROOT / "dist"), help="output folder (default dist/)")
    parser.add_argument("--offline", action="store_true", help="use only wheels already in .cache/wheels")
    parser.add_argument("--single", action="store_true", help="one zip for all platforms")
    args = parser.parse_args(argv)
    try:
        build(Path(args.dist), args.offline, split=not args.single)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        print(f"addon: build failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
