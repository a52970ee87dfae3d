"""Depth layers in real bpy (Cycles): `gid.build_depth_layers` on an image plane with a near square before a
far background. Frame 1 through the new camera reproduces the picture; a sideways camera move opens no holes
and moves the square more than the background; bad depth maps fail cleanly (nothing left in the scene).

Each scenario runs in its own process (`python tests/test_depth_layers.py SCENARIO WORKDIR`, the add-on
registered directly from blender_addon/) and prints one RESULT json line.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
W, H = 96, 64
SQUARE = (slice(20, 44), slice(36, 60))     # rows, cols of the near square


def run_scenario(name: str, workdir: Path, timeout: float = 300.0) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TMPDIR=str(workdir))
    proc = subprocess.run([sys.executable, __file__, name, str(workdir)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(ROOT))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"scenario {name} failed (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def test_layers_reproduce_picture_and_parallax(tmp_path):
    pytest.importorskip("bpy")
    r = run_scenario("parallax", tmp_path)
    assert r["layers"] == 2, r
    assert r["psnr_frame1"] >= 30.0, r
    assert r["coverage_moved"] >= 0.995, r
    assert r["near_shift"] > 1.5 * r["far_shift"] and r["far_shift"] > 0.3, r
    assert r["files_next_to_blend"], r


def test_motion_plays_on_layers_and_loop_closes(tmp_path):
    pytest.importorskip("bpy")
    r = run_scenario("motion", tmp_path)
    assert r["layers"] == 2 and r["with_motion"] == 2, r
    assert r["still_error"] < 1.0, r                      # frame 1 is the still (mean |diff| in 8-bit levels)
    assert r["moved_4"] > 3.0 and r["moved_7"] > 3.0, r   # motion plays on the layers
    assert r["loop_closure"] == 0.0, r                    # frame 1 + loop == frame 1


def test_estimated_depth_card_and_camera_move(tmp_path):
    pytest.importorskip("bpy")
    pytest.importorskip("torch")
    r = run_scenario("estimate", tmp_path)
    assert r["finished"] and "estimated" in r["notes"], r
    assert r["layers"] >= 1 and r["flat_layers"] == r["layers"], r      # CARD: every layer is flat
    assert r["move_start_end"] < 1e-5 and r["move_mid"] > 0.01, r        # out and back over the frame range


def test_bad_depth_inputs(tmp_path):
    pytest.importorskip("bpy")
    r = run_scenario("bad", tmp_path)
    assert r["aspect_ok"] and "another aspect" in r["aspect_notes"], r
    assert r["constant_layers"] == 1 and "constant depth" in r["constant_notes"], r
    assert "NaN" in r["nan_error"], r
    assert "negative" in r["negative_error"], r
    assert "does not exist" in r["missing_error"], r
    assert r["residue"] == [], r
    assert r["aspect_layers"] == 2, r
    assert r["builds"] == 1 and r["cameras"] == 1, r      # the rebuild replaced the first build


def test_baked_sequence_on_layers_reproduces_picture_and_loop_closes(tmp_path):
    """gid.bake_sequence (splat, a real `gid serve`) on every depth layer: the layers keep their alpha (frame 1
    through the camera is still the picture), motion plays, and the baked loop closes (frame 1 == 1 + loop)."""
    pytest.importorskip("bpy")
    pytest.importorskip("torch")
    r = run_scenario("bake", tmp_path, timeout=420.0)
    assert r["layers"] == 2 and r["baked"] == [r["loop"], r["loop"]], r
    assert r["showing"] == ["BAKED", "BAKED"], r
    assert r["near_transparent"] > 0.5 and r["near_alpha_error"] <= 2.0, r   # the bake keeps the layer's alpha
    assert r["still_error"] < 1.5, r                      # mean |diff| in 8-bit levels, as the live test
    assert r["moved_baked_vs_live"] < 1.5, r              # seen from the side: still the same layered scene
    assert r["moved_4"] > 2.0, r
    assert r["loop_closure"] == 0.0, r


def test_split_and_fill_numpy():
    """No Blender: cuts at the discontinuity, the filled background matches the true background behind."""
    from blender_addon import depth_layers as dl

    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    background = np.stack([xx / W, yy / H, 0.5 + 0 * xx], -1)
    rgb = background.copy()
    rgb[SQUARE] = (1.0, 0.0, 0.0)
    depth = np.full((H, W), 2.0, np.float32)
    depth[SQUARE] = 1.0
    stack = dl.split_layers(rgb, dl.to_relative_depth(depth, "DISTANCE"))
    assert len(stack.layers) == 2
    near, far = stack.layers
    assert near.median < far.median
    assert abs(near.share - (24 * 24) / (W * H)) < 1e-6
    # hidden background behind the square: filled smoothly, close to the true gradient
    err = np.abs(far.rgba[SQUARE][..., :3] - background[SQUARE]).mean()
    assert err < 0.08, err
    # soft alpha at the cut, opaque inside, clear away from it
    assert near.rgba[32, 48, 3] == 1.0 and near.rgba[5, 5, 3] == 0.0
    assert 0.0 < near.rgba[32, 35, 3] < 1.0 or 0.0 < near.rgba[32, 36, 3] < 1.0
    with pytest.raises(ValueError, match="NaN"):
        dl.to_relative_depth(np.full((4, 4), np.nan), "DISTANCE")
    with pytest.raises(ValueError, match="negative"):
        dl.to_relative_depth(-np.ones((4, 4)), "INVERSE")


# --------------------------------------------------------------------------------------------------------
# scenarios (Blender side)


def _picture() -> np.ndarray:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:H, 0:W]
    bg = np.stack([0.2 + 0.6 * xx / W, 0.3 + 0.4 * yy / H, 0.5 + 0.3 * ((xx // 6 + yy // 6) % 2)], -1)
    img = bg + 0.05 * rng.standard_normal((H, W, 3))
    sq = np.stack([0.9 - 0.02 * ((xx // 3) % 3), 0.2 + 0.3 * ((yy // 4) % 2), 0.1 + 0 * xx], -1)
    img[SQUARE] = sq[SQUARE]
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def _write_exr(path: Path, depth: np.ndarray) -> None:
    import OpenEXR

    d = np.ascontiguousarray(depth, np.float32)
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                      {"R": d, "G": d, "B": d}) as f:
        f.write(str(path))


def _setup(workdir: Path):
    import bpy
    from PIL import Image

    import blender_addon

    Image.fromarray(_picture()).save(workdir / "still.png")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    blender_addon.register()
    sc = bpy.context.scene
    sc.render.engine = "CYCLES"
    sc.cycles.samples, sc.cycles.device, sc.cycles.use_denoising = 8, "CPU", False
    sc.render.filter_size = 0.01          # pixel centres: comparable with the picture pixel by pixel
    sc.cycles.filter_width = 0.01
    sc.render.film_transparent = True     # alpha = coverage
    sc.frame_start, sc.frame_end = 1, 48
    assert "FINISHED" in bpy.ops.gid.import_image(filepath=str(workdir / "still.png"))
    return bpy, bpy.context.active_object


def _render(bpy, workdir: Path, tag: str) -> np.ndarray:
    from PIL import Image

    sc = bpy.context.scene
    sc.render.image_settings.file_format = "PNG"
    sc.render.image_settings.color_mode = "RGBA"
    sc.render.filepath = str(workdir / f"render_{tag}.png")
    bpy.ops.render.render(write_still=True)
    return np.asarray(Image.open(workdir / f"render_{tag}.png").convert("RGBA"), np.float32) / 255.0


def _shift(a: np.ndarray, b: np.ndarray) -> float:
    """Horizontal shift of b against a (phase correlation with sub-pixel peak), pixels."""
    fa, fb = np.fft.fft2(a - a.mean()), np.fft.fft2(b - b.mean())
    r = fb * np.conj(fa)
    c = np.real(np.fft.ifft2(r / np.maximum(np.abs(r), 1e-9)))
    y, x = np.unravel_index(np.argmax(c), c.shape)
    left, mid, right = c[y, (x - 1) % c.shape[1]], c[y, x], c[y, (x + 1) % c.shape[1]]
    den = left - 2 * mid + right
    sub = 0.5 * (left - right) / den if den != 0 else 0.0
    dx = x + sub
    return float(dx - c.shape[1] if dx > c.shape[1] / 2 else dx)


def scenario_parallax(workdir: Path) -> dict:
    bpy, ob = _setup(workdir)
    bpy.ops.wm.save_as_mainfile(filepath=str(workdir / "scene.blend"))
    depth = np.full((H, W), 4.0, np.float32)
    depth[SQUARE] = 2.0
    _write_exr(workdir / "depth.exr", depth)
    assert "FINISHED" in bpy.ops.gid.build_depth_layers(depth_path=str(workdir / "depth.exr"), layers=0,
                                                        depth_kind="DISTANCE")
    sc = bpy.context.scene
    layers = [o for o in sc.objects if "gid_depth_layer" in o]
    picture = _picture().astype(np.float32) / 255.0
    frame1 = _render(bpy, workdir, "frame1")
    mse = float(np.mean((frame1[..., :3] - picture) ** 2))
    psnr = 10 * np.log10(1.0 / max(mse, 1e-12))
    cam = sc.camera
    dist = (cam.matrix_world.translation - ob.matrix_world.translation).length
    right = cam.matrix_world.to_3x3().col[0].normalized()
    base = cam.location.copy()
    cam.location = base + right * 0.03 * dist
    moved = _render(bpy, workdir, "moved")
    coverage = float(np.mean(moved[..., 3] > 0.99))
    # per-layer shift: render each layer alone at both camera positions
    shifts = {}
    for layer in layers:
        for other in layers:
            other.hide_render = other is not layer
        cam.location = base
        a = _render(bpy, workdir, f"l{layer['gid_depth_layer']}a")
        cam.location = base + right * 0.03 * dist
        b = _render(bpy, workdir, f"l{layer['gid_depth_layer']}b")
        sig_a = a[..., 3] if layer["gid_depth_layer"] == 0 else a[..., :3].mean(-1)
        sig_b = b[..., 3] if layer["gid_depth_layer"] == 0 else b[..., :3].mean(-1)
        shifts[int(layer["gid_depth_layer"])] = abs(_shift(sig_a, sig_b))
    for layer in layers:
        layer.hide_render = False
    cam.location = base
    files = sorted(os.listdir(workdir / "scene_dynamics" / "still" / "layers"))
    imgs_rel = all(img.filepath.startswith("//") for img in bpy.data.images if img.get("gid_owner"))
    return {"layers": len(layers), "psnr_frame1": psnr, "coverage_moved": coverage, "near_shift": shifts.get(0, 0.0),
            "far_shift": shifts.get(1, 0.0), "files_next_to_blend": files == ["layer_00.png", "layer_01.png"]
            and imgs_rel}


def scenario_motion(workdir: Path) -> dict:
    """Motion loaded on the plane before the build plays on every layer; the live loop closes."""
    from shared import spectral as sp

    bpy, ob = _setup(workdir)
    sc = bpy.context.scene
    sc.render.fps, sc.render.fps_base = 24, 1.0
    T, fps = 120, 24.0
    t = np.arange(T)[:, None, None]
    motion = np.zeros((T, 2, H, W), np.float32)
    motion[:, 0] = 2.0 * np.sin(2 * np.pi * 2 * t / T) * np.ones((1, H, W))
    np.savez(workdir / "motion.npz", spectral=sp.motion_to_spectral(motion)[None], fps=fps, T=T)
    assert "FINISHED" in bpy.ops.gid.load_motion(filepath=str(workdir / "motion.npz"))
    loop = ob.gid.loop_frames
    depth = np.full((H, W), 4.0, np.float32)
    depth[SQUARE] = 2.0
    _write_exr(workdir / "depth.exr", depth)
    assert "FINISHED" in bpy.ops.gid.build_depth_layers(depth_path=str(workdir / "depth.exr"))
    layers = [o for o in sc.objects if "gid_depth_layer" in o]
    frames = {}
    for f in (1, 4, 7, 1 + loop):
        sc.frame_set(f)
        frames[f] = _render(bpy, workdir, f"motion{f}")[..., :3]
    picture = _picture().astype(np.float32) / 255.0
    return {"layers": len(layers), "with_motion": sum(o.gid.has_motion and o.gid.display == "LIVE" for o in layers),
            "still_error": float(np.abs(frames[1] - picture).mean() * 255),
            "moved_4": float(np.abs(frames[4] - frames[1]).mean() * 255),
            "moved_7": float(np.abs(frames[7] - frames[1]).mean() * 255),
            "loop_closure": float(np.abs(frames[1 + loop] - frames[1]).max() * 255), "loop": loop}


def scenario_estimate(workdir: Path) -> dict:
    """Empty depth_path: depth estimated in-process; card geometry; an orbit keyframed over the range."""
    bpy, ob = _setup(workdir)
    sc = bpy.context.scene
    finished = "FINISHED" in bpy.ops.gid.build_depth_layers(depth_path="", geometry="CARD", camera_move="ORBIT",
                                                            strength=0.1)
    layers = [o for o in sc.objects if "gid_depth_layer" in o]
    flat = 0
    for o in layers:
        co = np.empty(len(o.data.vertices) * 3, np.float32)
        o.data.vertices.foreach_get("co", co)
        flat += int(np.ptp(co.reshape(-1, 3)[:, 2]) < 1e-6)
    cam = sc.camera
    sc.frame_set(sc.frame_start)
    a = np.array(cam.matrix_world)
    sc.frame_set((sc.frame_start + sc.frame_end) // 2)
    b = np.array(cam.matrix_world)
    sc.frame_set(sc.frame_end)
    c = np.array(cam.matrix_world)
    return {"finished": finished, "notes": ob.get("gid_depth_notes", ""), "layers": len(layers), "flat_layers": flat,
            "move_start_end": float(np.abs(a - c).max()), "move_mid": float(np.abs(a - b).max())}


def scenario_bad(workdir: Path) -> dict:
    bpy, ob = _setup(workdir)

    def snapshot():
        return {k: sorted(b.name for b in getattr(bpy.data, k))
                for k in ("objects", "meshes", "materials", "images", "cameras", "collections")}

    out = {}
    depth = np.full((H, W), 3.0, np.float32)
    _write_exr(workdir / "constant.exr", depth)
    bad = depth.copy()
    bad[3, 3] = np.nan
    _write_exr(workdir / "nan.exr", bad)
    _write_exr(workdir / "negative.exr", depth - 5.0)
    sq = np.full((48, 48), 4.0, np.float32)
    sq[16:32, 16:32] = 2.0
    _write_exr(workdir / "square.exr", sq)
    before = snapshot()
    for tag in ("nan", "negative", "missing"):
        try:
            bpy.ops.gid.build_depth_layers(depth_path=str(workdir / f"{tag}.exr"), depth_kind="DISTANCE")
            out[f"{tag}_error"] = ""
        except RuntimeError as exc:
            out[f"{tag}_error"] = str(exc)
    after = snapshot()
    out["residue"] = [f"{k}: {sorted(set(after[k]) - set(before[k]))}" for k in before if after[k] != before[k]]
    out["aspect_ok"] = "FINISHED" in bpy.ops.gid.build_depth_layers(depth_path=str(workdir / "square.exr"))
    out["aspect_notes"] = ob.get("gid_depth_notes", "")
    out["aspect_layers"] = sum(1 for o in bpy.context.scene.objects if "gid_depth_layer" in o)
    ob.hide_viewport = False
    bpy.context.view_layer.objects.active = ob
    assert "FINISHED" in bpy.ops.gid.build_depth_layers(depth_path=str(workdir / "constant.exr"))
    out["constant_notes"] = ob.get("gid_depth_notes", "")
    coll = bpy.data.collections[bpy.context.scene.camera.users_collection[0].name]
    out["constant_layers"] = sum(1 for o in coll.objects if "gid_depth_layer" in o)
    out["builds"] = sum(1 for c in bpy.data.collections if c.get("gid_depth_source"))
    out["cameras"] = len(bpy.data.cameras)
    return out


def scenario_bake(workdir: Path) -> dict:
    """Bake every layer with a real backend (splat), then render frames 1, 4 and 1 + loop through the camera."""
    import bpy

    import addon_utils   # after bpy: bpy puts Blender's script modules on the path

    from blender_addon import storage
    from blender_addon.backend_process import free_tcp_address
    from shared import spectral as sp

    bpy_, ob = _setup(workdir)
    import blender_addon

    blender_addon.unregister()                 # enabled as an add-on instead: the backend needs its preferences
    addon_utils.enable("blender_addon", default_set=True)
    sc = bpy.context.scene
    sc.render.fps, sc.render.fps_base = 24, 1.0
    T, fps, loop = 120, 24.0, 12
    t = np.arange(T)[:, None, None]
    motion = np.zeros((T, 2, H, W), np.float32)
    motion[:, 0] = 2.0 * np.sin(2 * np.pi * (T // loop) * t / T) * np.ones((1, H, W))    # period = the loop
    np.savez(workdir / "motion.npz", spectral=sp.motion_to_spectral(motion)[None], fps=fps, T=T)
    bpy.context.view_layer.objects.active = ob
    assert "FINISHED" in bpy.ops.gid.load_motion(filepath=str(workdir / "motion.npz"))
    depth = np.full((H, W), 4.0, np.float32)
    depth[SQUARE] = 2.0
    _write_exr(workdir / "depth.exr", depth)
    assert "FINISHED" in bpy.ops.gid.build_depth_layers(depth_path=str(workdir / "depth.exr"))
    layers = sorted((o for o in sc.objects if "gid_depth_layer" in o), key=lambda o: o["gid_depth_layer"])
    prefs = bpy.context.preferences.addons["blender_addon"].preferences
    prefs.address, prefs.python_path, prefs.working_dir, prefs.timeout = free_tcp_address(), sys.executable, \
        str(ROOT), 60.0
    prefs.auto_start = True
    assert "FINISHED" in bpy.ops.gid.connect(wait_seconds=120)
    cam = sc.camera
    base = cam.location.copy()
    side = cam.matrix_world.to_3x3().col[0].normalized() * 0.03 * (base - ob.matrix_world.translation).length
    sc.frame_set(1)
    cam.location = base + side
    moved_live = _render(bpy, workdir, "moved_live")[..., :3]     # frame 1 = the still layers, seen from the side
    cam.location = base
    baked = []
    for o in layers:
        o.gid.loop_frames, o.gid.bake_mode, o.gid.bake_chunk = loop, "splat", 6
        bpy.context.view_layer.objects.active = o
        assert "FINISHED" in bpy.ops.gid.bake_sequence(blocking=True, timeout=300)
        baked.append(len(list((Path(storage.object_dir(o)) / "bake").glob("frame_*.png"))))
    frames = {}
    for f in (1, 4, 1 + loop):
        sc.frame_set(f)
        frames[f] = _render(bpy, workdir, f"bake{f}")[..., :3]
    sc.frame_set(1)
    cam.location = base + side
    moved_baked = _render(bpy, workdir, "moved_baked")[..., :3]
    from PIL import Image

    near = layers[0]
    src = np.asarray(Image.open(bpy.path.abspath(near.gid.source_image.filepath)).convert("RGBA"))[..., 3]
    first = np.asarray(Image.open(Path(storage.object_dir(near)) / "bake" / "frame_0001.png").convert("RGBA"))
    picture = _picture().astype(np.float32) / 255.0
    return {"layers": len(layers), "baked": baked, "loop": loop, "showing": [o.gid.display for o in layers],
            "near_alpha_error": float(np.abs(first[..., 3].astype(np.float32) - src).max()),
            "near_transparent": float(np.mean(src < 128)),
            "moved_baked_vs_live": float(np.abs(moved_baked - moved_live).mean() * 255),
            "still_error": float(np.abs(frames[1] - picture).mean() * 255),
            "moved_4": float(np.abs(frames[4] - frames[1]).mean() * 255),
            "loop_closure": float(np.abs(frames[1 + loop] - frames[1]).max() * 255)}


if __name__ == "__main__":
    name, workdir = sys.argv[1], Path(sys.argv[2])
    result = {"parallax": scenario_parallax, "bad": scenario_bad, "motion": scenario_motion,
              "estimate": scenario_estimate, "bake": scenario_bake}[name](workdir)
    print("RESULT " + json.dumps(result))
