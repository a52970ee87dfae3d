"""Depth-estimation bar: rank correlation on synthetic scenes rendered here with bpy, and peak memory at 4K.

Eight small scenes (a textured ground, cubes, spheres, walls, a corridor, an open ground under the sky; then,
held out from the choice of the estimator's settings, trees and a house, a street, a landscape with far mountains)
are rendered with Cycles; the true depth of every pixel comes from ray casts through the camera's pixel centres.
The estimate (`backend.priors.depth.estimate_inverse_depth`) is compared with the true inverse depth by Spearman's
rank correlation. Then `gid depth` runs in a child process on a 3840x2160 picture and its peak RSS is read back.

    PYTHONPATH=$PWD GID_THREADS=1 .venv/bin/python scripts/eval_depth_synthetic.py [--out DIR]
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 640, 448          # the network's own input size: no resampling blur


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho: Pearson correlation of the ranks (ties broken by order: continuous data)."""
    ra = np.empty(a.size)
    ra[np.argsort(a.ravel(), kind="stable")] = np.arange(a.size)
    rb = np.empty(b.size)
    rb[np.argsort(b.ravel(), kind="stable")] = np.arange(b.size)
    return float(np.corrcoef(ra, rb)[0, 1])


def _material(bpy, name: str, colour, scale: float, kind: str):
    mat = bpy.data.materials.new(name)
    nt = mat.node_tree
    bsdf = nt.nodes["Principled BSDF"]
    tex = nt.nodes.new("ShaderNodeTexChecker" if kind == "checker" else "ShaderNodeTexNoise")
    tex.inputs["Scale"].default_value = scale
    if kind == "checker":
        tex.inputs["Color1"].default_value = (*colour, 1.0)
        tex.inputs["Color2"].default_value = tuple(c * 0.35 for c in colour) + (1.0,)
        nt.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    else:
        mix = nt.nodes.new("ShaderNodeMix")
        mix.data_type = "RGBA"
        mix.inputs["A"].default_value = (*colour, 1.0)
        mix.inputs["B"].default_value = tuple(c * 0.3 for c in colour) + (1.0,)
        nt.links.new(tex.outputs["Fac"], mix.inputs["Factor"])
        nt.links.new(mix.outputs["Result"], bsdf.inputs["Base Color"])
    return mat


def _add(bpy, op, mat, **kw):
    op(**kw)
    ob = bpy.context.active_object
    ob.data.materials.append(mat)
    return ob


def build_scene(bpy, index: int) -> None:
    """One of eight layouts; camera at the origin region looking along +Y, slightly down."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scn = bpy.context.scene
    scn.render.engine = "CYCLES"
    scn.cycles.samples = 16
    scn.cycles.use_denoising = False
    scn.render.resolution_x, scn.render.resolution_y = WIDTH, HEIGHT
    scn.render.resolution_percentage = 100
    scn.view_settings.view_transform = "Standard"
    world = bpy.data.worlds.new("w")          # a bright blue sky, as in photographs
    if not world.use_nodes:
        world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.35, 0.55, 0.95, 1.0)
    scn.world = world
    bpy.ops.object.light_add(type="SUN", rotation=(math.radians(50), math.radians(10), math.radians(30)))
    bpy.context.active_object.data.energy = 4.0
    ground = _material(bpy, "ground", (0.45, 0.4, 0.3), 6.0, "noise")
    wall = _material(bpy, "wall", (0.6, 0.65, 0.7), 3.0, "noise")
    mats = [_material(bpy, f"m{i}", c, s, k) for i, (c, s, k) in enumerate(
        [((0.8, 0.2, 0.2), 4.0, "checker"), ((0.2, 0.7, 0.3), 8.0, "noise"), ((0.2, 0.3, 0.8), 3.0, "checker"),
         ((0.8, 0.7, 0.2), 10.0, "noise")])]
    plane, cube, sphere = bpy.ops.mesh.primitive_plane_add, bpy.ops.mesh.primitive_cube_add, \
        bpy.ops.mesh.primitive_uv_sphere_add
    _add(bpy, plane, ground, size=200, location=(0, 60, 0))
    if index == 0:      # cubes at 4, 8, 16 m before a far wall
        for i, (x, y, s) in enumerate([(-1.5, 4, 0.6), (1.0, 8, 1.0), (-2.5, 16, 1.6)]):
            _add(bpy, cube, mats[i], size=2 * s, location=(x, y, s))
        _add(bpy, plane, wall, size=80, location=(0, 40, 0), rotation=(math.radians(90), 0, 0))
    elif index == 1:    # a corridor
        _add(bpy, plane, wall, size=60, location=(-3, 30, 0), rotation=(0, math.radians(90), 0))
        _add(bpy, plane, mats[2], size=60, location=(3, 30, 0), rotation=(0, math.radians(90), 0))
        _add(bpy, plane, mats[0], size=6, location=(0, 45, 3), rotation=(math.radians(90), 0, 0))
        _add(bpy, cube, mats[1], size=1.2, location=(0.8, 6, 0.6))
    elif index == 2:    # spheres receding
        for i, (x, y, r) in enumerate([(0.8, 3.5, 0.5), (-1.2, 7, 0.9), (2.5, 12, 1.4), (-4, 20, 2.2)]):
            _add(bpy, sphere, mats[i], radius=r, location=(x, y, r))
        _add(bpy, plane, wall, size=120, location=(0, 60, 0), rotation=(math.radians(90), 0, 0))
    elif index == 3:    # a slanted wall with a box before it
        _add(bpy, plane, wall, size=40, location=(4, 15, 0), rotation=(math.radians(90), 0, math.radians(-40)))
        _add(bpy, cube, mats[3], size=1.4, location=(-0.8, 5, 0.7))
        _add(bpy, plane, mats[2], size=100, location=(-20, 50, 0), rotation=(math.radians(90), 0, 0))
    elif index == 4:    # open ground under the sky (ray misses = infinitely far), objects at 3..25 m
        for i, (x, y, s) in enumerate([(1.2, 3, 0.4), (-2, 7, 0.8), (3, 14, 1.5), (-6, 25, 3.0)]):
            _add(bpy, cube if i % 2 else sphere, mats[i], **({"size": 2 * s} if i % 2 else {"radius": s}),
                 location=(x, y, s))
    # Scenes 5..7 were added after the estimator's settings were chosen on 0..4: held out, to check that the
    # choice generalises (trees, a house, a street, far mountains: what matte paintings show).
    elif index == 5:    # trees and a house under the sky
        bark, leaves = _material(bpy, "bark", (0.3, 0.2, 0.1), 12.0, "noise"), mats[1]
        for x, y, h in [(-1.8, 4, 3.0), (2.5, 9, 4.0), (-4, 16, 5.0), (7, 30, 7.0), (-12, 45, 9.0)]:
            _add(bpy, bpy.ops.mesh.primitive_cylinder_add, bark, radius=0.04 * h, depth=h * 0.5,
                 location=(x, y, h * 0.25))
            _add(bpy, bpy.ops.mesh.primitive_cone_add, leaves, radius1=0.3 * h, depth=0.75 * h,
                 location=(x, y, h * 0.5 + 0.375 * h - 0.05 * h))
        _add(bpy, cube, wall, size=4, location=(3, 18, 2))
        _add(bpy, bpy.ops.mesh.primitive_cone_add, mats[0], vertices=4, radius1=3.2, depth=2.0,
             location=(3, 18, 5), rotation=(0, 0, math.radians(45)))
    elif index == 6:    # a street: blocks of houses on both sides, receding
        for k, y in enumerate(range(6, 70, 9)):
            for side, m in ((-1, wall), (1, mats[2 if k % 2 else 3])):
                h = 4 + 3 * ((k * 7 + side) % 3)
                _add(bpy, cube, m, size=1, location=(side * 7.5, y, h / 2), scale=(5, 8, h))
    else:               # a landscape: a rock near, a tree, far mountains
        _add(bpy, bpy.ops.mesh.primitive_ico_sphere_add, mats[3], radius=0.8, location=(-1.2, 3.5, 0.3))
        _add(bpy, bpy.ops.mesh.primitive_cone_add, mats[1], radius1=1.5, depth=5, location=(2.5, 10, 3))
        for x, y, r, h in [(-60, 150, 70, 45), (40, 155, 80, 60), (120, 150, 60, 35)]:
            _add(bpy, bpy.ops.mesh.primitive_cone_add, wall, radius1=r, depth=h, location=(x, y, h / 2))
    bpy.ops.object.camera_add(location=(0, -1, 1.6), rotation=(math.radians(84), 0, 0))
    scn.camera = bpy.context.active_object
    scn.camera.data.lens = 30


def true_depth(bpy) -> np.ndarray:
    """(H, W) z-depth along the camera axis at each pixel centre (ray casts; misses (sky) -> 1e4)."""
    from mathutils import Vector

    scn = bpy.context.scene
    cam = scn.camera
    bpy.context.view_layer.update()
    frame = cam.data.view_frame(scene=scn)           # corners in camera space: TR, BR, BL, TL
    tr, br, bl, tl = (Vector(v) for v in frame)
    mw = cam.matrix_world
    origin = mw.translation
    rot = mw.to_3x3()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    out = np.full((HEIGHT, WIDTH), 1e4, np.float32)
    axis = rot @ Vector((0, 0, -1))
    for y in range(HEIGHT):
        v = (y + 0.5) / HEIGHT
        left, right = tl.lerp(bl, v), tr.lerp(br, v)
        for x in range(WIDTH):
            d = rot @ left.lerp(right, (x + 0.5) / WIDTH)
            hit, loc, *_ = scn.ray_cast(depsgraph, origin, d.normalized())
            if hit:
                out[y, x] = (loc - origin).dot(axis)
    return out


def render(bpy, path: Path) -> np.ndarray:
    from PIL import Image

    scn = bpy.context.scene
    scn.render.filepath = str(path)
    scn.render.image_settings.file_format = "PNG"
    bpy.ops.render.render(write_still=True)
    return np.asarray(Image.open(path).convert("RGB"))


def peak_rss_4k(tmp: Path, source: np.ndarray) -> tuple[float, float]:
    """gid depth on a 3840x2160 picture in a child process -> (peak RSS GiB, seconds)."""
    import time

    import cv2
    from PIL import Image

    big = cv2.resize(source, (3840, 2160), interpolation=cv2.INTER_CUBIC)
    Image.fromarray(big).save(tmp / "4k.png")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "backend.cli", "depth", str(tmp / "4k.png"), "-o", str(tmp / "4k.exr")],
                   check=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    seconds = time.perf_counter() - t0
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="keep renders and depth maps here (default: a temp folder)")
    p.add_argument("--scenes", type=int, default=8)
    p.add_argument("--size", default="640x448",
                   help="render size WxH; at another aspect than 640:448 the estimate is also made with the "
                        "picture's aspect kept (instead of stretched to the network's), for comparison")
    p.add_argument("--no-4k", action="store_true", help="skip the 4K memory check")
    args = p.parse_args(argv)
    global WIDTH, HEIGHT
    WIDTH, HEIGHT = (int(v) for v in args.size.lower().split("x"))
    compare = WIDTH * 448 != HEIGHT * 640
    import bpy

    from backend.priors.depth import estimate_inverse_depth

    with tempfile.TemporaryDirectory() as tmpdir:
        out = Path(args.out) if args.out else Path(tmpdir)
        out.mkdir(parents=True, exist_ok=True)
        rhos, baselines, kept = [], [], []
        image = None
        for i in range(args.scenes):
            build_scene(bpy, i)
            image = render(bpy, out / f"scene{i}.png")
            z = true_depth(bpy)
            est = estimate_inverse_depth(image)
            rho = spearman(est, 1.0 / z)
            flat = spearman(np.random.default_rng(i).random(z.shape), 1.0 / z)
            rows = spearman(np.mgrid[0:HEIGHT, 0:WIDTH][0].astype(np.float32), 1.0 / z)
            rhos.append(rho)
            baselines.append(rows)
            if compare:
                kept.append(spearman(estimate_inverse_depth(image, keep_aspect=True), 1.0 / z))
                print(f"scene {i}: aspect kept instead of stretched: {kept[-1]:+.3f}")
            np.save(out / f"scene{i}_z.npy", z)
            np.save(out / f"scene{i}_est.npy", est)
            print(f"scene {i}: Spearman(estimate, 1/z) = {rho:+.3f}   (random map: {flat:+.3f}, "
                  f"'lower rows are nearer' baseline: {rows:+.3f})")
        print(f"mean Spearman over {len(rhos)} scenes: {np.mean(rhos):.3f}  (bar >= 0.6); "
              f"row baseline {np.mean(baselines):.3f}")
        if len(rhos) > 5:
            print(f"scenes 0..4 (tuning): {np.mean(rhos[:5]):.3f}; held-out 5..{len(rhos) - 1}: "
                  f"{np.mean(rhos[5:]):.3f} (row baseline {np.mean(baselines[5:]):.3f})")
        if compare:
            print(f"stretched {np.mean(rhos):.3f} vs aspect kept {np.mean(kept):.3f} at {WIDTH}x{HEIGHT}")
        if args.no_4k:
            return 0
        rss, seconds = peak_rss_4k(out, image)
        print(f"gid depth on 3840x2160: peak RSS {rss:.2f} GiB (bar <= 4 GiB), {seconds:.1f} s on this machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
