"""Bar of issue 24 on the real demo scene: `gid bake` of frames 1-24 in one go vs 1-12 + 13-24 in a fresh copy.

    python scripts/bar_farm_bake.py [--work DIR] [--frames 24] [--mode ibr|splat]

Makes the demo scene with `python -m backend.demo --out DIR/demo` (predicted motion, IBR bake; skipped when
DIR/demo/demo.blend exists), copies its .blend and dynamics folder twice without the bake, runs
`gid bake` on the whole range in one copy and in two halves in the other (each its own process and local
backend, as farm tasks), and prints the largest pixel difference, the frame counts and the wall times.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def gid_bake(blend: Path, obj: str, frames: str, mode: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "backend", "bake", str(blend), "--object", obj, "--frames", frames,
                           "--mode", mode], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if proc.returncode != 0:
        raise SystemExit(f"gid bake {frames} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - t0


def frames_of(folder: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    return {f.name: np.asarray(Image.open(f).convert("RGB")).astype(np.int16) for f in sorted(folder.glob("*.png"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=str(ROOT / "out" / "bar_farm_bake"))
    parser.add_argument("--frames", type=int, default=24, help="bake 1..N, halves 1..N/2 and N/2+1..N")
    parser.add_argument("--mode", choices=("ibr", "splat"), default="ibr")
    args = parser.parse_args()
    work = Path(args.work).resolve()
    demo = work / "demo"
    if not (demo / "demo.blend").is_file():
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "backend.demo", "--out", str(demo), "--samples", "1", "--scale", "10"],
                       check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        print(f"demo scene made in {time.perf_counter() - t0:.0f} s")
    objects = [p.name for p in (demo / "demo_dynamics").iterdir() if (p / "spectral.npz").is_file()]
    if len(objects) != 1:
        raise SystemExit(f"expected one object with motion in {demo / 'demo_dynamics'}, found {objects}")
    obj = objects[0]
    copies = {}
    for name in ("whole", "chunks"):
        dst = work / name
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir()
        shutil.copy2(demo / "demo.blend", dst / "demo.blend")
        shutil.copytree(demo / "demo_dynamics", dst / "demo_dynamics", ignore=shutil.ignore_patterns("bake"))
        copies[name] = dst / "demo.blend"
    n, half = args.frames, args.frames // 2
    t_whole = gid_bake(copies["whole"], obj, f"1-{n}", args.mode)
    t_a = gid_bake(copies["chunks"], obj, f"1-{half}", args.mode)
    t_b = gid_bake(copies["chunks"], obj, f"{half + 1}-{n}", args.mode)
    a = frames_of(work / "whole" / "demo_dynamics" / obj / "bake")
    b = frames_of(work / "chunks" / "demo_dynamics" / obj / "bake")
    if sorted(a) != sorted(b) or len(a) != n:
        raise SystemExit(f"different frame sets: {len(a)} vs {len(b)}")
    diff = max(int(np.abs(a[k] - b[k]).max()) for k in a)
    size = next(iter(a.values())).shape
    print(f"demo scene {size[1]}x{size[0]}, object {obj!r}, mode {args.mode}: frames 1-{n} in one go vs "
          f"1-{half} + {half + 1}-{n}: max difference {diff}/255 over {n} frames "
          f"(wall {t_whole:.1f} s vs {t_a:.1f} + {t_b:.1f} s, each with its own backend start)")
    return 0 if diff <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
