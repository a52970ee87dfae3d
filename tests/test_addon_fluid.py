"""Fluids in the Blender add-on, real bpy, installed from the built extension zip (one process per scenario,
like tests/test_addon_workflow.py): fluid mask + one flow stroke -> Predict Flow -> Bake Fluid Loop through a
real `gid serve` -> a cyclic sequence whose first and last+1 frames match; bad strokes refused with nothing
written; Export Flow; save and reload keeps it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_addon_workflow import H, MODULE, PY, ROOT, W, _diff, _render, _scene_setup, addon_zip  # noqa: F401

LOOP = 12


def run_scenario(name: str, workdir: Path, addon_zip: Path, timeout: float = 400.0) -> dict:
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TMPDIR=str(workdir / "tmp"))
    proc = subprocess.run([PY, __file__, name, str(workdir), str(addon_zip)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(ROOT))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"scenario {name} failed (rc={proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.timeout(500)
def test_fluid_bake_loop_save_reload(addon_zip, tmp_path):
    r = run_scenario("fluid", tmp_path, addon_zip)
    print("fluid bake:", json.dumps(r))
    # bad strokes: one clear error naming the stroke, no field written
    assert "leaves the fluid mask" in r["outside_error"] and "Flow" in r["outside_error"], r["outside_error"]
    assert "speed must be in (0" in r["speed0_error"], r["speed0_error"]
    assert "no flow strokes" in r["no_stroke_error"], r["no_stroke_error"]
    assert not r["velocity_after_errors"]
    # the field from one stroke: 1 px/frame to the right inside the mask, 0 outside
    assert abs(r["field_median_u"] - 1.0) < 0.05 and r["field_max_abs_v"] < 0.05 and r["field_outside"] == 0.0
    # live: frame 1 is the still, frame LOOP + 1 is frame 1, the water moves, the banks do not
    assert r["live_showing"] == "LIVE" and r["live_first_vs_still"] < 1.0 and r["live_loop_closure"] == 0.0
    assert r["live_moved_inside"] > 3.0 and r["live_moved_outside"] < 0.5, r
    # the bake: LOOP frames, cyclic, first == last + 1, first is the still, the water moves, the banks do not
    assert r["baked_files"] == LOOP and r["showing"] == "BAKED"
    assert r["loop_closure"] == 0.0
    assert r["first_vs_still"] < 1.0
    assert r["moved_inside"] > 3.0 and r["moved_outside"] < 0.5, r
    # pixel exact: the live frame is the linear-light mix of the still's two backward warps by the shared
    # fields (the backend's bake mixes sRGB values, so mid-loop blends of a hard checkerboard differ from it:
    # bake_vs_live is reported, not bounded)
    assert r["live_warp_error"] < 1.0, r
    # mixed scene: a 24-frame loop where the sway moves what is outside the mask
    assert r["mixed_files"] == 24 and r["mixed_loop_closure"] == 0.0
    assert r["mixed_moved_outside"] > 1.0 and r["mixed_moved_inside"] > 3.0, r
    # export: EXR + npz + json; npz equals the field (y down), EXR's G is y up
    assert r["export_files"] == ["velocity.exr", "velocity.json", "velocity.npz"]
    assert r["export_npz_error"] < 1e-5 and r["export_exr_error"] < 1e-2, r
    # save and reload: same frames, still cyclic, the field and the frames next to the .blend
    assert r["reload_showing"] == "BAKED" and r["reload_cyclic"]
    assert r["reload_first_diff"] < 0.5 and r["reload_mid_diff"] < 0.5 and r["reload_loop_closure"] == 0.0
    assert r["velocity_next_to_blend"] and r["bake_next_to_blend"]


def _expected_live(still: np.ndarray, v: np.ndarray, m: np.ndarray, t: int, n: int) -> np.ndarray:
    """The live loop's frame t from shared.eulerian alone: the still sampled at p + F_0->-t (weight 1 - t/N)
    and at p + F_0->(N-t) (weight t/N; all to the one sample inside the picture where only one is), mixed in
    linear light as Blender's shader does."""
    import cv2

    from shared import eulerian

    vf = v * m * eulerian.border_fade(m)
    back, fwd = eulerian.integrate(-vf, t)[t], eulerian.integrate(vf, n - t)[n - t]
    gy, gx = np.mgrid[0:H, 0:W].astype(np.float32)
    lin = np.where(still / 255.0 <= 0.04045, still / 255.0 / 12.92, ((still / 255.0 + 0.055) / 1.055) ** 2.4)
    lin = lin.astype(np.float32)

    def warp(f):
        x, y = gx + f[0], gy + f[1]
        ok = (x >= -0.5) & (x <= W - 0.5) & (y >= -0.5) & (y <= H - 0.5)
        return cv2.remap(lin, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), ok

    (a, va), (b, vb) = warp(back), warp(fwd)
    w = np.where(va == vb, t / n, np.where(va, 0.0, 1.0))[..., None]
    mixed = (1 - w) * a + w * b
    return 255.0 * np.where(mixed <= 0.0031308, 12.92 * mixed, 1.055 * mixed ** (1 / 2.4) - 0.055)


def scenario_fluid(workdir: Path, zip_path: str) -> dict:
    from importlib import import_module

    from PIL import Image

    bpy, ob, img, _ = _scene_setup(workdir, zip_path)
    out = {}
    s = ob.gid
    band = np.zeros((H, W), np.uint8)
    band[12:28] = 255                                         # the river: rows 12..27, the full width
    Image.fromarray(band).save(workdir / "fluid_mask.png")
    s.fluid_mask_image = bpy.data.images.load(str(workdir / "fluid_mask.png"))
    s.fluid_mask_image.colorspace_settings.name = "Non-Color"
    storage = import_module(MODULE + ".storage")
    fluid = import_module(MODULE + ".fluid")
    velocity_path = Path(storage.object_dir(ob)) / fluid.VELOCITY_FILE

    def err(op) -> str:
        try:
            op()
            return "no error"
        except RuntimeError as exc:
            return str(exc)

    bpy.context.view_layer.objects.active = ob
    out["no_stroke_error"] = err(bpy.ops.gid.predict_flow)
    assert "FINISHED" in bpy.ops.gid.add_flow_stroke(start=(0.05, 0.5), end=(0.95, 0.5), speed=1.0)
    strokes = fluid.strokes_of(ob)
    assert len(strokes) == 1
    good = strokes[0]
    bpy.context.view_layer.objects.active = ob
    bpy.ops.gid.add_flow_stroke(start=(0.1, 0.95), end=(0.9, 0.95), speed=1.0)     # on the bank: outside
    bad = [o for o in fluid.strokes_of(ob) if o != good][0]
    out["outside_error"] = err(bpy.ops.gid.predict_flow)
    bpy.data.objects.remove(bad)
    good[fluid.STROKE_TAG] = 0.0
    out["speed0_error"] = err(bpy.ops.gid.predict_flow)
    out["velocity_after_errors"] = velocity_path.exists()
    good[fluid.STROKE_TAG] = 1.0
    assert "FINISHED" in bpy.ops.gid.predict_flow()
    with np.load(velocity_path) as z:
        v, m = z["velocity"], z["mask"].astype(bool)
    out["field_median_u"] = float(np.median(v[0][m]))
    out["field_max_abs_v"] = float(np.abs(v[1][m]).max())
    out["field_outside"] = float(np.abs(v[:, ~m]).max())
    inside, outside = band > 0, band == 0

    # live display (no backend): two offset sequences mixed by the loop weight in the material
    s.fluid_loop_frames = LOOP
    assert "FINISHED" in bpy.ops.gid.apply_fluid()
    l1, l7, l13 = (_render(bpy, workdir, f, "l") for f in (1, 7, LOOP + 1))
    out["live_showing"] = s.display
    out["live_first_vs_still"] = _diff(l1, img)
    out["live_loop_closure"] = _diff(l13, l1)
    out["live_moved_inside"] = float(np.abs(l7 - l1)[inside].mean())
    out["live_moved_outside"] = float(np.abs(l7 - l1)[outside].mean())
    out["live_warp_error"] = float(np.abs(l7 - _expected_live(img, v, m, 6, LOOP)).mean())

    prefs = bpy.context.preferences.addons[MODULE].preferences
    from blender_addon.backend_process import free_tcp_address

    prefs.address, prefs.python_path, prefs.working_dir, prefs.timeout = free_tcp_address(), PY, str(ROOT), 60.0
    prefs.auto_start = True
    assert "FINISHED" in bpy.ops.gid.connect(wait_seconds=120)
    s.bake_mode, s.bake_chunk = "splat", 5
    assert "FINISHED" in bpy.ops.gid.bake_fluid(blocking=True, timeout=300)
    bake_dir = Path(storage.object_dir(ob)) / "bake"
    out["baked_files"] = len(list(bake_dir.glob("frame_*.png")))
    out["showing"] = s.display
    r1, r7, r13 = (_render(bpy, workdir, f, "f") for f in (1, 7, LOOP + 1))
    out["loop_closure"] = _diff(r13, r1)
    out["first_vs_still"] = _diff(r1, img)
    out["moved_inside"] = float(np.abs(r7 - r1)[inside].mean())
    out["moved_outside"] = float(np.abs(r7 - r1)[outside].mean())
    out["bake_vs_live"] = float(np.abs(r7 - l7)[inside].mean())

    # mixed: with motion on the plane, the spectral sway moves the banks, the fluid the river; still a loop
    assert "FINISHED" in bpy.ops.gid.load_motion(filepath=str(workdir / "motion.npz"), apply=False)
    s.fluid_loop_frames, s.fluid_sway_outside = 24, True
    assert "FINISHED" in bpy.ops.gid.bake_fluid(blocking=True, timeout=300)
    m1, m7, m25 = (_render(bpy, workdir, f, "m") for f in (1, 7, 25))
    out["mixed_files"] = len(list(bake_dir.glob("frame_*.png")))
    out["mixed_loop_closure"] = _diff(m25, m1)
    out["mixed_moved_outside"] = float(np.abs(m7 - m1)[outside].mean())
    out["mixed_moved_inside"] = float(np.abs(m7 - m1)[inside].mean())
    s.fluid_loop_frames, s.fluid_sway_outside = LOOP, False
    assert "FINISHED" in bpy.ops.gid.bake_fluid(blocking=True, timeout=300)   # back to the fluid-only loop

    assert "FINISHED" in bpy.ops.gid.export_velocity(directory=str(workdir / "export"))
    exp = workdir / "export" / f"{storage.object_key(ob)}_velocity"
    out["export_files"] = sorted(p.name for p in exp.iterdir())
    with np.load(exp / "velocity.npz") as z:
        out["export_npz_error"] = float(np.abs(z["velocity"] - v).max())
    exr = bpy.data.images.load(str(exp / "velocity.exr"))
    px = np.empty(W * H * 4, np.float32)
    exr.pixels.foreach_get(px)
    px = px.reshape(H, W, 4)[::-1]
    out["export_exr_error"] = float(max(np.abs(px[..., 0] - v[0]).max(), np.abs(px[..., 1] + v[1]).max()))

    bpy.ops.gid.stop_backend()
    blend = workdir / "scene.blend"
    name = ob.name
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    ob = bpy.data.objects[name]
    bpy.context.view_layer.objects.active = ob
    out["reload_showing"] = ob.gid.display
    plane = import_module(MODULE + ".displacement").PlaneInfo(ob)
    out["reload_cyclic"] = bool(plane.node.image_user.use_cyclic)
    q1, q7, q13 = (_render(bpy, workdir, f, "r") for f in (1, 7, LOOP + 1))
    out["reload_first_diff"], out["reload_mid_diff"] = _diff(q1, r1), _diff(q7, r7)
    out["reload_loop_closure"] = _diff(q13, q1)
    root = workdir / "scene_dynamics" / ob.gid.key
    out["velocity_next_to_blend"] = (root / fluid.VELOCITY_FILE).exists()
    out["bake_next_to_blend"] = len(list((root / "bake").glob("frame_*.png"))) == LOOP
    return out


if __name__ == "__main__":
    scenario, workdir, zip_path = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests"))
    result = globals()[f"scenario_{scenario}"](workdir, zip_path)
    print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)
