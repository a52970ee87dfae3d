"""The Blender add-on end to end, in real bpy, installed from the built extension zip.

Each scenario runs in its own Python process (`python tests/test_addon_workflow.py SCENARIO WORKDIR`): bpy is
one Blender per process, and BLENDER_USER_RESOURCES (the sandboxed user folder the zip is installed into) must
be set before bpy is imported. A scenario prints one JSON line of measurements; the pytest functions assert.
Motion comes from an analytic sinusoid (`shared.spectral.motion_to_spectral`) loaded with `gid.load_motion`,
so expected displacements are known exactly; the bake uses a real `gid serve` with the splat renderer.
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
PY = sys.executable
W, H = 64, 40
T, FPS = 150, 30.0
MODULE = "bl_ext.user_default.gid_dynamics"


# --------------------------------------------------------------------------------------------------------
# fixtures (pytest side)


@pytest.fixture(scope="module")
def addon_zip(tmp_path_factory) -> Path:
    from backend import addon_build

    dist = tmp_path_factory.mktemp("dist")
    zips = addon_build.build(dist)
    names = sorted(z.name for z in zips)
    assert names == [f"gid_dynamics-0.1.0-{p}.zip" for p in ("linux_x64", "macos_arm64", "macos_x64",
                                                              "windows_x64")]
    return dist / "gid_dynamics-0.1.0-linux_x64.zip"


def run_scenario(name: str, workdir: Path, addon_zip: Path, timeout: float = 240.0, env: dict | None = None):
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    # TMPDIR: the unsaved-file dynamics folder (tempfile.gettempdir()) lands in the test's own folder
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TMPDIR=str(workdir / "tmp"),
                    **(env or {}))
    proc = subprocess.run([PY, __file__, name, str(workdir), str(addon_zip)], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=str(ROOT))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"scenario {name} failed (rc={proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def test_live_displacement_workflow(addon_zip, tmp_path):
    r = run_scenario("live", tmp_path, addon_zip)
    assert r["variations"] == 2 and r["variation_diff"] > 2.0
    assert r["animated_files"] == 96 and r["animated_grows"]
    assert r["shifted_still"] < 0.5 and r["shifted_phase"] < 0.5
    assert r["vg_left_moved"] < 1e-4 and r["vg_right_moved"] > 1e-3
    # frame start shows the still exactly; later frames move; the frame after the loop equals the first
    assert r["still_error"] < 0.5
    assert r["moved_5"] > 2.0 and r["moved_12"] > 5.0
    assert r["loop_closure"] == 0.0
    # pixel exact: the rendered frame is the backward warp of the still by the shared displacement
    assert r["warp_error_mean"] < 1.0, r
    assert r["warp_error_mean"] < 0.1 * r["moved_12"]
    # the loop seam moves no more than an ordinary step
    assert r["seam_step"] < 1.5 * r["max_step"]
    # magnitude and speed changes update in seconds; magnitude 0 freezes everything
    assert r["reapply_seconds"] < 5.0
    assert r["frozen_moved"] < 0.5
    # a half-black mask freezes the left half only
    assert r["mask_left_moved"] < 0.5 and r["mask_right_moved"] > 2.0
    # geometry mode: evaluated vertices move and come back at the loop end
    assert r["geo_moved"] > 1e-3 and r["geo_loop"] < 1e-6
    # export for Nuke IDistort: backward offsets in pixels, y up
    assert r["flow_files"] == r["loop_frames"]
    assert r["flow_error"] < 0.01
    # save + reload: relative paths next to the .blend, motion and frames unchanged
    assert r["saved_paths_relative"] and r["dynamics_next_to_blend"]
    assert r["reload_render_diff"] < 0.5 and r["reload_moved"] > 5.0 and r["moved_render_diff"] < 0.5
    # disable / enable cleanly
    assert r["disabled_ok"] and r["reenabled_ok"]


def test_pokes(addon_zip, tmp_path):
    r = run_scenario("pokes", tmp_path, addon_zip)
    assert r["before_max"] == 0.0                      # frames before the poke are untouched
    assert r["after_max"] > 0.05                       # the plane moves right after it
    assert r["late_max"] < 0.5 * r["after_max"]        # and the motion decays
    assert r["moved_key_changed"]                      # moving the key and re-baking changes the timeline
    assert r["rebake_seconds"] < 10.0
    assert r["drag_before"] == 0.0
    assert abs(r["drag_dx_px"] - 3.0) < 0.6 and abs(r["drag_dy_px"]) < 0.6, r


def test_bake_with_backend(addon_zip, tmp_path):
    r = run_scenario("bake", tmp_path, addon_zip, timeout=400.0)
    assert "Allow Online Access" in r["remote_refused"]
    assert r["auto_started"] and r["status"].startswith("gid ")
    if r["weights"]:
        assert r["predict"] == "ok"
    else:
        assert "no motion model" in r["predict"], r["predict"]
    assert r["baked_files"] == r["loop_frames"]
    assert r["showing"] == "BAKED"
    assert r["bake_moved"] > 1.0 and r["bake_loop"] == 0.0 and r["bake_still_error"] < 1.0
    assert r["animated_baked"] == 8 and r["animated_bake_grows"]
    assert r["exr_files"] == 6 and r["exr_still_error"] < 1.0
    # pokes reach the bake: before the poke (frame 12) the frames are the ambient-only bake's (up to the
    # float16 fields the add-on sends: a rare 1-level rounding flip), after it they move on top
    assert r["poke_bake_frames"] == [24, 24], r
    assert r["poke_before_max"] <= 1 and r["poke_before_mean"] < 0.01, r
    assert r["poke_after_mean"] > 1.0, r
    # the backend's forward splat and the live backward warp agree up to disocclusion / resampling
    assert r["bake_vs_live"] < 0.15 * r["live_moved"], r
    # killing the backend mid-bake: a clear error, previous frames and material untouched, no temp folders
    assert "exited" in r["kill_message"] or "no answer" in r["kill_message"], r["kill_message"]
    assert r["kill_files_unchanged"] and r["kill_no_temp"] and r["kill_still_showing"] == "BAKED"


# --------------------------------------------------------------------------------------------------------
# scenarios (run inside a fresh bpy process)


def _scene_setup(workdir: Path, zip_path: str):
    """Install the zip into a sandboxed user folder, make the test image and motion, import the plane."""
    os.environ["BLENDER_USER_RESOURCES"] = str(workdir / "user")
    import bpy
    from PIL import Image

    from shared import spectral as sp

    yy, xx = np.mgrid[0:H, 0:W]
    img = np.stack([xx * 255 // (W - 1), yy * 255 // (H - 1), ((xx // 8 + yy // 8) % 2) * 255], -1).astype(np.uint8)
    Image.fromarray(img).save(workdir / "still.png")
    t = np.arange(T)[:, None, None]
    motion = np.zeros((T, 2, H, W), np.float32)
    motion[:, 0] = 2.0 * np.sin(2 * np.pi * 3 * t / T) * (xx / W)[None]
    motion[:, 1] = 1.0 * np.sin(2 * np.pi * 5 * t / T + 1.0)
    spec = sp.motion_to_spectral(motion)
    other = np.zeros_like(motion)                      # a second variation: vertical sway, 4 cycles
    other[:, 1] = 1.5 * np.sin(2 * np.pi * 4 * t / T) * (yy / H)[None]
    np.savez(workdir / "motion.npz", spectral=np.stack([spec, sp.motion_to_spectral(other)]), fps=FPS, T=T)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    r = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    assert "FINISHED" in r and MODULE in bpy.context.preferences.addons
    sc = bpy.context.scene
    sc.render.fps, sc.render.fps_base = 24, 1.0
    sc.frame_start, sc.frame_end = 1, 96
    assert "FINISHED" in bpy.ops.gid.import_image(filepath=str(workdir / "still.png"))
    ob = bpy.context.active_object
    cam_data = bpy.data.cameras.new("cam")
    cam_data.type, cam_data.ortho_scale = "ORTHO", ob.dimensions[0]
    cam = bpy.data.objects.new("cam", cam_data)
    sc.collection.objects.link(cam)
    cam.location = (0, 0, 5)
    sc.camera = cam
    sc.render.engine = "CYCLES"
    sc.cycles.samples, sc.cycles.device, sc.cycles.use_denoising = 1, "CPU", False
    sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = W, H, 100
    sc.render.filter_size = 0.01                       # one sample per pixel centre: comparable to a remap
    sc.view_settings.view_transform = "Standard"
    sc.render.image_settings.file_format = "PNG"
    return bpy, ob, img, spec


def _render(bpy, workdir: Path, frame: int, tag: str = "") -> np.ndarray:
    from PIL import Image

    sc = bpy.context.scene
    sc.frame_set(frame)
    path = str(workdir / f"render_{tag}{frame}.png")
    sc.render.filepath = path
    bpy.ops.render.render(write_still=True)
    return np.asarray(Image.open(path).convert("RGB")).astype(np.float32)


def _diff(a, b) -> float:
    return float(np.abs(a - b).mean())


def _eval_coords(bpy, ob, frame: int) -> np.ndarray:
    bpy.context.scene.frame_set(frame)
    dg = bpy.context.evaluated_depsgraph_get()
    oe = ob.evaluated_get(dg)
    me = oe.to_mesh()
    co = np.empty(len(me.vertices) * 3, np.float32)
    me.vertices.foreach_get("co", co)
    oe.to_mesh_clear()
    return co.reshape(-1, 3)


def scenario_live(workdir: Path, zip_path: str) -> dict:
    import time

    import cv2

    bpy, ob, img, spec = _scene_setup(workdir, zip_path)
    from shared import spectral as sp

    out = {}
    assert "FINISHED" in bpy.ops.gid.load_motion(filepath=str(workdir / "motion.npz"))
    s = ob.gid
    L, start = s.loop_frames, s.start_frame
    out["loop_frames"] = L
    assert L == 48 and start == 1 and s.display == "LIVE"
    r = {f: _render(bpy, workdir, f) for f in (1, 5, 12, 1 + L)}
    out["still_error"] = _diff(r[1], img)
    out["moved_5"], out["moved_12"] = _diff(r[5], r[1]), _diff(r[12], r[1])
    out["loop_closure"] = _diff(r[1 + L], r[1])
    yy, xx = np.mgrid[0:H, 0:W]
    F = sp.displacement_for_frames(spec, T, FPS, [11], 24.0, 1.0, 1.0, L)[0]
    expected = cv2.remap(img.astype(np.float32), (xx - F[0]).astype(np.float32), (yy - F[1]).astype(np.float32),
                         cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out["warp_error_mean"] = _diff(expected, r[12])
    # seam: the step from the last loop frame to the first, compared with the largest ordinary step
    d = sp.displacement_for_frames(spec, T, FPS, np.arange(L + 1), 24.0, 1.0, 1.0, L)
    steps = np.abs(np.diff(d, axis=0)).max(axis=(1, 2, 3))
    out["seam_step"], out["max_step"] = float(np.abs(d[0] - d[L - 1]).max()), float(steps.max())

    # controls: magnitude 0 freezes, re-apply time
    s.magnitude = 0.0
    t0 = time.perf_counter()
    assert "FINISHED" in bpy.ops.gid.apply_displacement()
    out["reapply_seconds"] = time.perf_counter() - t0
    out["frozen_moved"] = _diff(_render(bpy, workdir, 12, "frozen"), img)
    s.magnitude = 1.0
    # mask: left half black
    mask = np.zeros((H, W, 4), np.float32)
    mask[:, W // 2:, :3] = 1.0
    mask[..., 3] = 1.0
    mimg = bpy.data.images.new("mask", W, H)
    mimg.pixels.foreach_set(mask[::-1].ravel())
    s.mask_image = mimg
    assert "FINISHED" in bpy.ops.gid.apply_displacement()
    rm = _render(bpy, workdir, 12, "mask")
    out["mask_left_moved"] = _diff(rm[:, : W // 2 - 4], img[:, : W // 2 - 4])
    out["mask_right_moved"] = _diff(rm[:, W // 2 + 4:], img[:, W // 2 + 4:])
    s.mask_image = None

    # variations: flip to the second sample and back
    out["variations"] = s.variations
    s.variation = 1
    assert "FINISHED" in bpy.ops.gid.apply_displacement()
    out["variation_diff"] = _diff(_render(bpy, workdir, 12, "var1"), r[12])
    s.variation = 0

    # animated magnitude: keyed 0 at frame 1 and 2 at frame 96 -> the whole scene range is written
    s.magnitude = 0.0
    ob.keyframe_insert(data_path="gid.magnitude", frame=1)
    s.magnitude = 2.0
    ob.keyframe_insert(data_path="gid.magnitude", frame=96)
    assert "FINISHED" in bpy.ops.gid.apply_displacement()
    live_dir = workdir / "unused"
    from importlib import import_module

    storage = import_module(MODULE + ".storage")
    live_dir = Path(storage.object_dir(ob)) / "live"
    out["animated_files"] = len(list(live_dir.glob("disp_*.exr")))
    # frame 12 + L has the same loop phase as frame 12 but a larger magnitude
    a12 = _diff(_render(bpy, workdir, 12, "anim"), img)
    a60 = _diff(_render(bpy, workdir, 12 + L, "anim"), img)
    out["animated_grows"] = a60 > 1.5 * a12 > 0.5
    ob.animation_data_clear()
    # a constant but keyed magnitude (scene-range path) with the motion starting at frame 5: frame 5 is the
    # still and frame 16 has the phase frame 12 had with start 1
    s.magnitude = 1.0
    ob.keyframe_insert(data_path="gid.magnitude", frame=1)
    s.start_frame = 5
    assert "FINISHED" in bpy.ops.gid.apply_displacement()
    out["shifted_still"] = _diff(_render(bpy, workdir, 5, "shift"), img)
    out["shifted_phase"] = _diff(_render(bpy, workdir, 16, "shift"), r[12])
    ob.animation_data_clear()
    s.start_frame = 1

    # geometry mode
    s.live_mode, s.geometry_levels = "GEOMETRY", 4
    assert "FINISHED" in bpy.ops.gid.apply_displacement()
    c1, c12, cl = _eval_coords(bpy, ob, 1), _eval_coords(bpy, ob, 12), _eval_coords(bpy, ob, 1 + L)
    out["geo_moved"], out["geo_loop"] = float(np.abs(c12 - c1).max()), float(np.abs(cl - c1).max())
    # a painted vertex group (weight 0 on the left half) freezes the left half of the geometry
    bpy.ops.object.mode_set(mode="OBJECT")
    bpy.context.view_layer.objects.active = ob
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.subdivide(number_cuts=15)
    bpy.ops.object.mode_set(mode="OBJECT")
    vg = ob.vertex_groups.new(name="moves")
    right = [v.index for v in ob.data.vertices if v.co.x > 0.05]
    vg.add(right, 1.0, "REPLACE")
    s.mask_vertex_group = "moves"
    assert "FINISHED" in bpy.ops.gid.apply_displacement()
    c1, c12 = _eval_coords(bpy, ob, 1), _eval_coords(bpy, ob, 12)
    move = np.abs(c12 - c1).max(axis=1)
    out["vg_left_moved"] = float(move[c1[:, 0] < -0.1].max())
    out["vg_right_moved"] = float(move[c1[:, 0] > 0.15].max())
    s.mask_vertex_group = ""
    s.live_mode = "SHADER"
    assert "FINISHED" in bpy.ops.gid.apply_displacement()

    # export flow for Nuke
    assert "FINISHED" in bpy.ops.gid.export_flow(directory=str(workdir / "export"))
    flow_dir = workdir / "export" / f"{s.key}_flow"
    files = sorted(flow_dir.glob("flow_*.exr"))
    out["flow_files"] = len(files)
    fimg = bpy.data.images.load(str(files[11]))
    px = np.empty(W * H * 4, np.float32)
    fimg.pixels.foreach_get(px)
    px = px.reshape(H, W, 4)[::-1]
    out["flow_error"] = float(max(np.abs(px[..., 0] + F[0]).max(), np.abs(px[..., 1] - F[1]).max()))

    # save, reload
    blend = workdir / "scene" / "shot.blend"
    blend.parent.mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.save_mainfile()                                   # a plain save after the save-as
    live_img = next(i for i in bpy.data.images if i.get("gid_kind") == "live")
    out["dynamics_next_to_blend"] = (blend.parent / "shot_dynamics" / s.key / "spectral.npz").exists()
    before = _render(bpy, workdir, 12, "before_reload")
    name = ob.name
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    ob = bpy.data.objects[name]
    live_img = next(i for i in bpy.data.images if i.get("gid_kind") == "live")
    out["saved_paths_relative"] = live_img.filepath.startswith("//")
    after = _render(bpy, workdir, 12, "after_reload")
    out["reload_render_diff"] = _diff(before, after)
    out["reload_moved"] = _diff(after, img)
    # the .blend moved together with its _dynamics folder still finds its sequences (relinked on load)
    import shutil

    shutil.copytree(blend.parent, workdir / "moved")
    shutil.rmtree(blend.parent)
    bpy.ops.wm.open_mainfile(filepath=str(workdir / "moved" / "shot.blend"))
    out["moved_render_diff"] = _diff(_render(bpy, workdir, 12, "moved"), before)
    ob = bpy.data.objects[name]

    # disable / re-enable
    import addon_utils

    assert MODULE in bpy.context.preferences.addons       # still enabled after loading the .blend
    addon_utils.disable(MODULE, default_set=True)
    out["disabled_ok"] = (MODULE not in bpy.context.preferences.addons and not hasattr(bpy.types.Object, "gid")
                          and not hasattr(bpy.types, "GID_PT_main"))
    addon_utils.enable(MODULE, default_set=True)
    ob = bpy.data.objects[name]
    bpy.context.view_layer.objects.active = ob
    out["reenabled_ok"] = "FINISHED" in bpy.ops.gid.apply_displacement() and ob.gid.loop_frames == L
    return out


def scenario_pokes(workdir: Path, zip_path: str) -> dict:
    import time

    bpy, ob, img, spec = _scene_setup(workdir, zip_path)
    out = {}
    assert "FINISHED" in bpy.ops.gid.load_motion(filepath=str(workdir / "motion.npz"))
    s = ob.gid
    s.live_mode, s.geometry_levels = "GEOMETRY", 4
    s.ambient_weight = 0.0                       # only the poke response moves the plane
    assert "FINISHED" in bpy.ops.gid.add_poke(uv=(0.7, 0.5), frame=10, strength=4.0, direction=0.3)
    poke = next(o for o in ob.children if o.get("gid_poke"))
    bpy.context.view_layer.objects.active = ob
    assert "FINISHED" in bpy.ops.gid.bake_pokes()
    rest = _eval_coords(bpy, ob, 1)
    moves = {f: float(np.abs(_eval_coords(bpy, ob, f) - rest).max()) for f in (2, 5, 9, 10, 11, 12, 14, 16, 18,
                                                                                20, 85, 88, 91, 94)}
    out["before_max"] = max(moves[f] for f in (2, 5, 9))
    out["after_max"] = max(moves[f] for f in (11, 12, 14, 16, 18, 20))
    out["late_max"] = max(moves[f] for f in (85, 88, 91, 94))
    # move the key to frame 30 and re-bake
    from bpy_extras import anim_utils  # noqa: F401  (version-specific reading is the add-on's job)

    poke.keyframe_delete(data_path='["strength"]', frame=10)
    poke["strength"] = 4.0
    poke.keyframe_insert(data_path='["strength"]', frame=30)
    bpy.context.view_layer.objects.active = ob
    t0 = time.perf_counter()
    assert "FINISHED" in bpy.ops.gid.bake_pokes()
    out["rebake_seconds"] = time.perf_counter() - t0
    out["moved_key_changed"] = (float(np.abs(_eval_coords(bpy, ob, 14) - rest).max()) == 0.0
                                and float(np.abs(_eval_coords(bpy, ob, 34) - rest).max()) > 0.05)

    # drag and release: the image point under the handle is pulled 3 px to the right over 6 frames
    bpy.data.objects.remove(poke)
    bpy.context.view_layer.objects.active = ob
    assert "FINISHED" in bpy.ops.gid.add_poke(uv=(0.5, 0.5), frame=10, strength=3.0, duration=6, kind="drag")
    bpy.context.view_layer.objects.active = ob
    assert "FINISHED" in bpy.ops.gid.bake_pokes()
    near = np.linalg.norm(rest[:, :2], axis=1) < 0.03            # vertices at the handle (plane centre)
    d16 = _eval_coords(bpy, ob, 16) - rest
    px = ob.dimensions[0] / W                                    # local units per image pixel
    out["drag_before"] = float(np.abs(_eval_coords(bpy, ob, 9) - rest).max())
    out["drag_dx_px"] = float(d16[near, 0].mean() / px)
    out["drag_dy_px"] = float(d16[near, 1].mean() / px)
    return out


def scenario_bake(workdir: Path, zip_path: str) -> dict:
    import hashlib
    import time

    bpy, ob, img, spec = _scene_setup(workdir, zip_path)
    out = {}
    prefs = bpy.context.preferences.addons[MODULE].preferences
    from blender_addon.backend_process import free_tcp_address  # same helper the add-on ships

    prefs.address = free_tcp_address()
    prefs.python_path = PY
    prefs.working_dir = str(ROOT)
    prefs.timeout = 60.0
    # a remote address is refused while Blender's online access is off (loopback never is)
    good = prefs.address
    prefs.address = "tcp://10.11.12.13:5555"
    try:
        bpy.ops.gid.connect()
        out["remote_refused"] = ""
    except RuntimeError as exc:
        out["remote_refused"] = str(exc)
    prefs.address = good
    # auto-start: Connect finds nothing listening and starts `gid serve` itself
    prefs.auto_start = True
    assert "FINISHED" in bpy.ops.gid.connect(wait_seconds=120)
    out["status"] = bpy.context.window_manager.gid_job.status
    from importlib import import_module

    out["auto_started"] = import_module(MODULE + ".connection").process() is not None
    # predict: works when the motion weights exist, else fails with a message that says so
    from backend import demo

    out["weights"] = not demo.missing_weights()
    try:
        res = bpy.ops.gid.predict_motion(blocking=True, samples=2, steps=2, timeout=600)
        out["predict"] = "ok" if "FINISHED" in res and ob.gid.variations == 2 else f"bad: {res}"
    except RuntimeError as exc:
        out["predict"] = str(exc)
    assert "FINISHED" in bpy.ops.gid.load_motion(filepath=str(workdir / "motion.npz"))
    s = ob.gid
    s.loop_frames, s.bake_mode, s.bake_chunk = 24, "splat", 8
    out["loop_frames"] = 24
    assert "FINISHED" in bpy.ops.gid.apply_displacement()
    live7 = _render(bpy, workdir, 7, "live")
    assert "FINISHED" in bpy.ops.gid.bake_sequence(blocking=True, timeout=300)
    from importlib import import_module

    storage = import_module(MODULE + ".storage")
    bake_dir = Path(storage.object_dir(ob)) / "bake"
    files = sorted(bake_dir.glob("frame_*.png"))
    out["baked_files"] = len(files)
    out["showing"] = s.display
    r1, r7, r25 = _render(bpy, workdir, 1, "b"), _render(bpy, workdir, 7, "b"), _render(bpy, workdir, 25, "b")
    out["bake_moved"], out["bake_loop"] = _diff(r7, r1), _diff(r25, r1)
    out["bake_still_error"] = _diff(r1, img)
    out["bake_vs_live"], out["live_moved"] = _diff(r7, live7), _diff(live7, img)
    # half-float EXR bake (linear): frame 1 renders as the still
    s.bake_format, s.loop_frames = "OPEN_EXR", 6
    assert "FINISHED" in bpy.ops.gid.bake_sequence(blocking=True, timeout=300)
    out["exr_files"] = len(list(bake_dir.glob("frame_*.exr")))
    out["exr_still_error"] = _diff(_render(bpy, workdir, 1, "exr"), img)
    s.bake_format, s.loop_frames = "PNG", 24

    # animated magnitude (0 -> 2 over frames 1..8): scene-range bake, one request per magnitude value
    sc = bpy.context.scene
    sc.frame_end = 8
    s.magnitude = 0.0
    ob.keyframe_insert(data_path="gid.magnitude", frame=1)
    s.magnitude = 2.0
    ob.keyframe_insert(data_path="gid.magnitude", frame=8)
    assert "FINISHED" in bpy.ops.gid.bake_sequence(blocking=True, timeout=300)
    out["animated_baked"] = len(list(bake_dir.glob("frame_*.png")))
    m3, m7 = _diff(_render(bpy, workdir, 3, "ab"), img), _diff(_render(bpy, workdir, 7, "ab"), img)
    out["animated_bake_grows"] = m7 > 1.5 * m3
    ob.animation_data_clear()
    s.magnitude = 1.0

    # a keyframed poke reaches the baked frames: the same as the ambient-only bake before it, moved after it
    from PIL import Image

    def baked_frames() -> np.ndarray:
        return np.stack([np.asarray(Image.open(f).convert("RGB")).astype(np.int16)
                         for f in sorted(bake_dir.glob("frame_*.png"))])

    sc.frame_end = 24
    assert "FINISHED" in bpy.ops.gid.bake_sequence(blocking=True, timeout=300)
    ambient_only = baked_frames()
    assert "FINISHED" in bpy.ops.gid.add_poke(uv=(0.5, 0.5), frame=12, strength=4.0, direction=0.3)
    bpy.context.view_layer.objects.active = ob
    assert "FINISHED" in bpy.ops.gid.bake_pokes()
    assert "FINISHED" in bpy.ops.gid.bake_sequence(blocking=True, timeout=300)
    poked = baked_frames()
    out["poke_bake_frames"] = [len(ambient_only), len(poked)]
    gap = np.abs(poked - ambient_only).reshape(len(poked), -1)      # file k = scene frame k in both
    out["poke_before_max"] = int(gap[:11].max())                    # scene frames 1..11
    out["poke_before_mean"] = float(gap[:11].mean())
    out["poke_after_mean"] = float(gap[12:20].mean())              # scene frames 13..20
    for o in [o for o in ob.children if o.get("gid_poke")]:
        bpy.data.objects.remove(o)
    bpy.context.view_layer.objects.active = ob
    assert "FINISHED" in bpy.ops.gid.bake_pokes() and not s.has_pokes
    sc.frame_end = 96
    assert "FINISHED" in bpy.ops.gid.bake_sequence(blocking=True, timeout=300)
    files = sorted(bake_dir.glob("frame_*.png"))
    digest = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}

    # kill the backend after the first chunk has arrived
    connection = import_module(MODULE + ".connection")
    bake_mod = import_module(MODULE + ".bake")
    s.loop_frames, s.bake_chunk = 48, 2
    task = bake_mod.BakeTask(ob, bpy.context.scene)
    connection.begin(task)
    killed = False
    end = time.monotonic() + 120
    while not task.finished and time.monotonic() < end:
        connection.client().poll()
        if not killed and task.next_index >= 2:
            connection.process().proc.kill()
            killed = True
        time.sleep(0.01)
    out["kill_message"] = task.message
    out["kill_files_unchanged"] = killed and digest == {
        f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(bake_dir.glob("frame_*.png"))}
    out["kill_no_temp"] = not any(p.name.startswith(".bake.tmp") for p in bake_dir.parent.iterdir())
    out["kill_still_showing"] = s.display
    bpy.ops.gid.stop_backend()
    return out


if __name__ == "__main__":
    scenario, workdir, zip_path = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    sys.path.insert(0, str(ROOT))
    result = globals()[f"scenario_{scenario}"](workdir, zip_path)
    print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)   # skip bpy's atexit teardown (slow, and it may print)
