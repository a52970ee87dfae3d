"""`python build.py demo`: the whole user path headless (install the zip, start gid serve, import, motion,
live displacement, bake, save, MP4). Motion comes from `--motion` (an analytic clip) so the test does not
depend on the trained weights; without weights and without --motion the demo must stop with a clear message."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run_demo(args: list[str], timeout: float = 400.0, tmp: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    if tmp is not None:  # the unsaved-file dynamics folder goes there, not to the system temp folder
        tmp.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(tmp)
    return subprocess.run([sys.executable, "-m", "backend.demo", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(ROOT))


def test_demo_names_missing_weights_or_runs(tmp_path):
    from backend import demo

    missing = demo.missing_weights()
    if not missing:  # weights have landed: the real path (predict) must work, with few diffusion steps
        proc = run_demo(["--out", str(tmp_path / "demo"), "--steps", "2", "--seconds", "0.2", "--scale", "25",
                         "--samples", "1"], timeout=900, tmp=tmp_path / "tmp")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert (tmp_path / "demo" / "demo.mp4").stat().st_size > 1000
        return
    proc = run_demo(["--out", str(tmp_path / "demo")], timeout=60)
    assert proc.returncode == 1
    assert "motion model is missing" in proc.stderr and "vae" in proc.stderr
    assert not (tmp_path / "demo").exists()


def test_demo_with_given_motion(tmp_path):
    from shared import spectral as sp

    T, H, W = 150, 36, 64
    t = np.arange(T)[:, None, None]
    yy, xx = np.mgrid[0:H, 0:W]
    m = np.zeros((T, 2, H, W), np.float32)
    m[:, 0] = 1.5 * np.sin(2 * np.pi * 5 * t / T + xx[None] / 20) * (1 - yy[None] / H)
    m[:, 1] = 0.5 * np.sin(2 * np.pi * 10 * t / T + 1)
    np.savez(tmp_path / "motion.npz", spectral=sp.motion_to_spectral(m), fps=30.0, T=T)
    out = tmp_path / "demo"
    proc = run_demo(["--motion", str(tmp_path / "motion.npz"), "--out", str(out), "--seconds", "0.4",
                     "--scale", "25", "--samples", "1"], tmp=tmp_path / "tmp")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "demo.blend").is_file()
    dyn = out / "demo_dynamics" / "sample"
    assert (dyn / "spectral.npz").is_file()
    assert len(list((dyn / "bake").glob("frame_*.png"))) == 12
    assert len(list((dyn / "live").glob("disp_*.exr"))) == 12
    import imageio.v2 as imageio

    frames = [f[..., :3].astype(np.float32) for f in imageio.get_reader(str(out / "demo.mp4"))]
    assert len(frames) == 12
    assert np.abs(frames[6] - frames[0]).mean() > 0.5       # the picture moves
    assert "video:" in proc.stdout and "scene:" in proc.stdout
    # a folder the demo did not make is never wiped
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    proc = run_demo(["--motion", str(tmp_path / "motion.npz"), "--out", str(other)], timeout=60)
    assert proc.returncode == 1 and "not a demo output folder" in proc.stderr
    assert (other / "keep.txt").exists()
