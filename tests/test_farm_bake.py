"""`gid bake` end to end: real bpy, a real .blend, a real `gid serve` started by the command.

A demo-like shot (an image plane with a 24-frame loop of analytic motion, splat renderer) is made once by running
this file as a script in its own process (bpy is one Blender per process); each `gid bake` is its own process,
as on a farm. The bar: frames 1-24 baked in one go equal 1-12 + 13-24 baked into a fresh copy (max difference
<= 1 level); a missing object, a bad range, an unreachable backend end with one clear line and a non-zero exit,
and leave no frame (and no temporary folder) behind.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
W, H = 160, 96
T, FPS, LOOP = 150, 30.0, 24
OBJECT = "still"


def env_for(tmp: Path) -> dict:
    (tmp / "tmp").mkdir(parents=True, exist_ok=True)
    return dict(os.environ, PYTHONPATH=str(ROOT), GID_THREADS="1", OMP_NUM_THREADS="1", TMPDIR=str(tmp / "tmp"))


def gid_bake(tmp: Path, blend: Path, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "backend", "bake", str(blend), *args], capture_output=True, text=True,
                          timeout=timeout, env=env_for(tmp), cwd=str(ROOT))


def bake_dir(blend: Path) -> Path:
    return blend.parent / f"{blend.stem}_dynamics" / OBJECT / "bake"


def read_frames(folder: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    return {f.name: np.asarray(Image.open(f).convert("RGB")).astype(np.int16) for f in sorted(folder.glob("*.png"))}


def leftovers(blend: Path) -> list[str]:
    """Temporary folders or files a bake would leave next to its frames."""
    obj_dir = bake_dir(blend).parent
    return sorted(p.name for p in obj_dir.rglob("*") if ".tmp" in p.name)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert lines and lines[-1].startswith("gid bake: error: "), proc.stderr
    return lines[-1]


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> tuple[Path, Path]:
    """Two identical copies of the shot (shot.blend + shot_dynamics/), never baked."""
    tmp = tmp_path_factory.mktemp("farm")
    proc = subprocess.run([PY, __file__, "make-shot", str(tmp / "a")], capture_output=True, text=True,
                          timeout=240, env=env_for(tmp), cwd=str(ROOT))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    shutil.copytree(tmp / "a", tmp / "b")
    return tmp / "a" / "shot.blend", tmp / "b" / "shot.blend"


def test_chunks_equal_whole_bake(shots):
    whole, chunked = shots
    tmp = whole.parent.parent
    r = gid_bake(tmp, whole, "--object", OBJECT, "--frames", "1-24", "--mode", "splat")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for rng in ("1-12", "13-20,21..24"):        # the second as runs, the way farm managers may chunk
        r = gid_bake(tmp, chunked, "--object", OBJECT, "--frames", rng, "--mode", "splat")
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        if rng == "1-12":   # the first chunk alone: exactly its frames, and --link refuses a partial bake
            assert sorted(read_frames(bake_dir(chunked))) == [f"frame_{i:04d}.png" for i in range(1, 13)]
            line = one_error_line(gid_bake(tmp, chunked, "--object", OBJECT, "--link"))
            assert "12 of 24 frames are not baked yet (first: frame_0013.png" in line, line
    a, b = read_frames(bake_dir(whole)), read_frames(bake_dir(chunked))
    assert sorted(a) == sorted(b) == [f"frame_{i:04d}.png" for i in range(1, LOOP + 1)]
    diff = max(int(np.abs(a[k] - b[k]).max()) for k in a)
    print(f"whole vs 1-12 + 13-24: max difference {diff}/255 over {len(a)} frames")
    assert diff <= 1
    # the frames move (the check is not trivially true) and frame 1 is the still
    assert np.abs(a["frame_0007.png"] - a["frame_0001.png"]).mean() > 1.0
    assert leftovers(whole) == [] and leftovers(chunked) == []
    # --link: the saved .blend now shows the baked sequence
    r = gid_bake(tmp, chunked, "--object", OBJECT, "--link")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    proc = subprocess.run([PY, __file__, "describe", str(chunked)], capture_output=True, text=True, timeout=120,
                          env=env_for(tmp), cwd=str(ROOT))
    shown = [ln for ln in proc.stdout.splitlines() if ln.startswith("SHOWN ")]
    assert proc.returncode == 0 and shown, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert shown[-1].split()[1:] == ["BAKED", "//shot_dynamics/still/bake/frame_0001.png", "24"], shown


def test_failures_one_line_nothing_left(shots, tmp_path):
    _, chunked = shots
    blend = tmp_path / "c" / "shot.blend"
    shutil.copytree(chunked.parent, blend.parent, ignore=shutil.ignore_patterns("bake"))
    before = read_frames(bake_dir(blend))          # nothing baked in this copy

    line = one_error_line(gid_bake(tmp_path, blend, "--object", "nope", "--frames", "1-12"))
    assert "no object named 'nope'" in line and OBJECT in line
    line = one_error_line(gid_bake(tmp_path, blend, "--object", "empty", "--frames", "1-12"))
    assert "empty in shot.blend has no motion" in line, line
    line = one_error_line(gid_bake(tmp_path, blend, "--object", OBJECT, "--frames", "20-30"))
    assert "outside the frames this object bakes: 1-24" in line, line
    line = one_error_line(gid_bake(tmp_path, blend, "--object", OBJECT, "--frames", "12-5"))
    assert "bad frame range" in line
    line = one_error_line(gid_bake(tmp_path, tmp_path / "missing.blend", "--object", OBJECT, "--frames", "1-2"))
    assert "no such .blend file" in line
    with socket.socket() as s:     # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    line = one_error_line(gid_bake(tmp_path, blend, "--object", OBJECT, "--frames", "1-12", "--backend", dead,
                                   "--connect-timeout", "2"))
    assert f"cannot reach the backend at {dead}" in line, line
    assert read_frames(bake_dir(blend)) == before == {}
    assert leftovers(blend) == []


@pytest.mark.parametrize("mode", ["splat", "ibr"])
def test_renderer_frames_do_not_depend_on_the_request(mode):
    """What chunking relies on: a frame's pixels depend on its time only, not on which frames share its request
    (the metric comes from the whole period, every frame is splatted on its own, no random state)."""
    from backend.render.api import Renderer
    from shared import spectral as sp

    w, h = 128, 80
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), ((xx // 8 + yy // 8) % 2) * 255], -1).astype(np.uint8)
    t = np.arange(T)[:, None, None]
    motion = np.zeros((T, 2, h, w), np.float32)
    motion[:, 0] = 3.0 * np.sin(2 * np.pi * 3 * t / T) * (xx / w)[None]
    motion[:, 1] = 1.5 * np.sin(2 * np.pi * 5 * t / T + 1.0)
    spec = sp.motion_to_spectral(motion)
    r = Renderer.load(device="cpu")
    if mode not in r.info()["modes"]:
        pytest.skip("no IBR weights")

    def frames(times):
        return r.render(img, spec, FPS, T, times, 24.0, 1.0, 1.0, LOOP, mode).astype(np.int16)

    whole = frames(np.arange(0, 12))
    parts = np.concatenate([frames(np.arange(0, 5)), frames(np.arange(5, 12))])
    single = np.concatenate([frames([i]) for i in (6, 9)])
    assert np.abs(whole - parts).max() <= 1 and np.abs(whole[[6, 9]] - single).max() <= 1
    assert np.abs(whole[6] - whole[0]).mean() > 1.0


# --------------------------------------------------------------------------------------------------------
# the shot (run in its own process: `python tests/test_farm_bake.py make-shot FOLDER`)


def make_shot(folder: Path) -> None:
    from PIL import Image

    from backend.farm.headless import addon_module, sandboxed_addon
    from shared import spectral as sp

    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.stack([xx * 255 // (W - 1), yy * 255 // (H - 1), ((xx // 8 + yy // 8) % 2) * 255], -1).astype(np.uint8)
    Image.fromarray(img).save(folder / "still.png")
    t = np.arange(T)[:, None, None]
    motion = np.zeros((T, 2, H, W), np.float32)
    motion[:, 0] = 3.0 * np.sin(2 * np.pi * 3 * t / T) * (xx / W)[None]
    motion[:, 1] = 1.5 * np.sin(2 * np.pi * 5 * t / T + 1.0) * (yy / H)[None]
    np.savez(folder / "motion.npz", spectral=sp.motion_to_spectral(motion), fps=FPS, T=T)
    with sandboxed_addon() as (bpy, _module):
        sc = bpy.context.scene
        sc.render.fps, sc.render.fps_base = 24, 1.0
        assert "FINISHED" in bpy.ops.gid.import_image(filepath=str(folder / "still.png"))
        ob = bpy.context.active_object
        assert ob.name == OBJECT
        assert "FINISHED" in bpy.ops.gid.load_motion(filepath=str(folder / "motion.npz"))
        s = ob.gid
        s.loop_frames, s.start_frame, s.bake_mode, s.bake_chunk = LOOP, 1, "splat", 8
        sc.collection.objects.link(bpy.data.objects.new("empty", None))      # an object without motion
        bpy.ops.wm.save_as_mainfile(filepath=str(folder / "shot.blend"))
        assert (folder / "shot_dynamics" / OBJECT / "spectral.npz").is_file()
        addon_module("connection").shutdown()


def describe(blend: Path) -> None:
    """Print what the plane shows in a saved .blend: display, image path, sequence length."""
    from backend.farm.headless import sandboxed_addon

    with sandboxed_addon() as (bpy, _module):
        bpy.ops.wm.open_mainfile(filepath=str(blend))
        ob = bpy.data.objects[OBJECT]
        node = next(n for n in ob.active_material.node_tree.nodes if n.type == "TEX_IMAGE")
        print("SHOWN", ob.gid.display, node.image.filepath, node.image_user.frame_duration)


if __name__ == "__main__":
    if sys.argv[1] == "make-shot":
        make_shot(Path(sys.argv[2]))
    elif sys.argv[1] == "describe":
        describe(Path(sys.argv[2]))
