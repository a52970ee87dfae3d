#!/usr/bin/env python3
"""Every set-up step of the project, idempotent.

    python build.py demo [IMAGE]   set up, then image -> animated Blender scene + video (shipped model)
    python build.py test [ARGS]    set up, then run the whole test suite (extra ARGS go to pytest)
    python build.py addon          set up, then build the Blender extension zips into dist/
    python build.py setup          only the set-up

Set-up creates `.venv/` in the repository (or reuses it) and installs the pinned requirements. A stamp file
records what was installed, so a second run goes straight to the job. Torch: `torch==2.13.0` is the local CPU
build on our machines; where `nvidia-smi` works, a CUDA build is taken from the PyTorch index instead
(override the index with GID_TORCH_INDEX, e.g. https://download.pytorch.org/whl/cu128, or force the CPU
build with GID_TORCH_INDEX=cpu).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".gid-setup-stamp"
TORCH_PIN = "torch==2.13.0"
DEFAULT_CUDA_INDEX = "https://download.pytorch.org/whl/cu128"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def torch_index() -> str | None:
    """None = the default index (our machines: the local CPU wheel); else a PyTorch wheel index URL."""
    choice = os.environ.get("GID_TORCH_INDEX", "").strip()
    if choice == "cpu":
        return None
    if choice:
        return choice
    if shutil.which("nvidia-smi"):
        try:
            subprocess.run(["nvidia-smi", "-L"], check=True, capture_output=True, timeout=20)
            return DEFAULT_CUDA_INDEX
        except (subprocess.SubprocessError, OSError):
            pass
    return None


def setup_fingerprint(index: str | None) -> str:
    h = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        h.update((ROOT / name).read_bytes())
    h.update(f"{TORCH_PIN}|{index}|{sys.version_info[:2]}".encode())
    return h.hexdigest()


def run(cmd: list, **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def setup() -> Path:
    if sys.version_info[:2] != (3, 11):
        print(f"warning: bpy 5.0.1 needs Python 3.11; this is {sys.version.split()[0]}", file=sys.stderr)
    index = torch_index()
    fingerprint = setup_fingerprint(index)
    py = venv_python()
    if py.exists() and STAMP.exists() and STAMP.read_text().strip() == fingerprint:
        return py
    if not py.exists():
        run([sys.executable, "-m", "venv", VENV])
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check"]
    run(pip + ["--upgrade", "pip", "setuptools", "wheel"])
    # torch first, alone: a later package asking for "torch" must find it satisfied, or pip would fetch
    # the registry's newest build with several GB of CUDA wheels.
    run(pip + [TORCH_PIN] + (["--index-url", index] if index else []))
    run(pip + ["-r", ROOT / "requirements.txt"])
    run(pip + ["--no-deps", "--no-build-isolation", "-e", ROOT])
    STAMP.write_text(fingerprint + "\n")
    return py


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in ("setup", "test", "demo", "addon"):
        print(f"unknown command {command!r}; see `python build.py --help`", file=sys.stderr)
        return 2
    py = setup()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if command == "setup":
        return 0
    if command == "test":
        return subprocess.call([str(py), "-m", "pytest", *rest], cwd=ROOT, env=env)
    if command == "demo":
        return subprocess.call([str(py), "-m", "backend.demo", *rest], cwd=ROOT, env=env)
    return subprocess.call([str(py), "-m", "backend.addon_build", *rest], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
