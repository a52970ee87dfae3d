"""Depth layers (2.5D matte projection): a picture + its depth -> a few layers split at depth discontinuities,
each with the hidden background filled in, placed along the camera rays so that the camera sees the picture.

Pure numpy (Blender's Python has no OpenCV): `read_depth_pixels` checks a depth map, `split_layers` finds
the cuts, `fill` (push-pull: a weighted image pyramid, coarse levels fill holes, fine levels keep detail)
extends each layer's colour and depth behind the nearer layers, `soft_alpha` feathers the cut.
Geometry: the camera sits on the plane's +Z side at distance D from it; a pixel of depth z lies on its ray at
z / D of the way from the camera to the original plane, so frame 1 through the camera reproduces the picture.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAX_LAYERS = 8
EDGE_JUMP = 0.05          # |log z| step between neighbours that counts as a depth discontinuity (5 %)
MIN_EDGE_SHARE = 0.05     # a cut needs this share of all discontinuity pixels
CONSTANT_RATIO = 1.01     # max/min depth below this: one flat layer
NEAR_LIMIT, FAR_LIMIT = 0.05, 50.0   # depth relative to the median, clamped (inverse depth 0 = infinitely far)
FEATHER = 1               # soft alpha: box radius in pixels around a cut
MARGIN = 0.1              # layers reach this fraction of the picture beyond each frame edge (edge pixels
                          # stretched), so a camera move does not uncover the frame border


@dataclass
class Layer:
    rgba: np.ndarray        # (H, W, 4) float32, straight alpha, row 0 at the top
    depth: np.ndarray       # (H, W) float32 relative depth (median of the picture = 1), filled everywhere
    median: float           # median relative depth of the layer's own pixels
    share: float            # fraction of the picture's pixels it shows at frame 1


@dataclass
class LayerStack:
    layers: list[Layer]     # nearest first
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------------
# depth in


def to_relative_depth(values: np.ndarray, kind: str) -> np.ndarray:
    """Raw depth pixels (H, W) -> depth relative to its median (1 = median), clamped to [0.05, 50].

    kind DISTANCE: larger = farther, must be > 0. INVERSE: larger = nearer, >= 0 (0 = at infinity)."""
    if not np.all(np.isfinite(values)):
        raise ValueError(f"depth map has {int(np.sum(~np.isfinite(values)))} NaN or infinite value(s)")
    if np.any(values < 0):
        raise ValueError(f"depth map has negative values (min {float(values.min()):g}); "
                         "expected distances or inverse depth >= 0")
    if kind == "DISTANCE":
        if np.any(values <= 0):
            raise ValueError("depth map (DISTANCE) has zero distances; use depth kind INVERSE for "
                             "inverse depth / disparity maps")
        z = values.astype(np.float64)
    elif kind == "INVERSE":
        top = float(values.max())
        if top <= 0:
            raise ValueError("inverse depth map is all zero (everything at infinity)")
        z = 1.0 / np.maximum(values.astype(np.float64), top / FAR_LIMIT / 4)
    else:
        raise ValueError(f"unknown depth kind {kind!r} (DISTANCE or INVERSE)")
    z = z / float(np.median(z))
    return np.clip(z, NEAR_LIMIT, FAR_LIMIT).astype(np.float32)


def resample(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) -> (H, W) nearest pixel centre (size = (W, H)): depth steps stay steps, no false in-between
    depths along an edge (which would become extra layers)."""
    h, w = a.shape
    W, H = size
    ys = np.minimum(((np.arange(H) + 0.5) * h / H).astype(int), h - 1)
    xs = np.minimum(((np.arange(W) + 0.5) * w / W).astype(int), w - 1)
    return np.ascontiguousarray(a[ys][:, xs], np.float32)


def fit_depth(depth: np.ndarray, size: tuple[int, int], notes: list[str]) -> np.ndarray:
    """Depth of any size -> the picture's size; a different aspect is resampled with a warning note."""
    h, w = depth.shape
    W, H = size
    if (w, h) == (W, H):
        return depth
    if abs(w / h - W / H) > 0.01 * (W / H):
        notes.append(f"depth map is {w}x{h} but the picture is {W}x{H} (another aspect); "
                     "resampled to fit, check the alignment")
    return resample(depth, size)


# --------------------------------------------------------------------------------------------------------
# layers


def find_cuts(logz: np.ndarray, layers: int) -> list[float]:
    """log-depth thresholds between layers, from the depth steps between neighbouring pixels.

    Every step larger than EDGE_JUMP votes for the log depth halfway across it; votes are histogrammed and the
    strongest bins (each with at least MIN_EDGE_SHARE of the votes when `layers` is 0 = automatic) become cuts.
    """
    mids = []
    for a, b in ((logz[:, 1:], logz[:, :-1]), (logz[1:, :], logz[:-1, :])):
        jump = np.abs(a - b) > EDGE_JUMP
        mids.append(0.5 * (a[jump] + b[jump]))
    mids = np.concatenate(mids)
    if mids.size == 0:
        return []
    lo, hi = float(logz.min()), float(logz.max())
    bins = 64
    counts, edges = np.histogram(mids, bins=bins, range=(lo, hi))
    want = (layers - 1) if layers else MAX_LAYERS - 1
    cuts: list[float] = []
    taken = np.zeros(bins, bool)
    for i in np.argsort(-counts, kind="stable"):
        if len(cuts) >= want or counts[i] == 0:
            break
        if not layers and counts[i] < MIN_EDGE_SHARE * mids.size:
            break
        if taken[max(0, i - 1):i + 2].any():
            continue
        taken[i] = True
        sel = mids[(mids >= edges[i]) & (mids <= edges[i + 1])]
        cuts.append(float(np.median(sel)))
    return sorted(cuts)


def fill(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Push-pull hole filling: (H, W, C) values valid where `known` -> every pixel filled, known kept."""
    H, W = known.shape
    v = values * known[..., None]
    wgt = known.astype(np.float32)
    pyramid = [(v, wgt)]
    while min(v.shape[:2]) > 1:
        h2, w2 = (v.shape[0] + 1) // 2, (v.shape[1] + 1) // 2
        vp = np.zeros((h2 * 2, w2 * 2, v.shape[2]), np.float32)
        wp = np.zeros((h2 * 2, w2 * 2), np.float32)
        vp[:v.shape[0], :v.shape[1]], wp[:v.shape[0], :v.shape[1]] = v, wgt
        v = vp.reshape(h2, 2, w2, 2, -1).sum(axis=(1, 3))
        wgt = wp.reshape(h2, 2, w2, 2).sum(axis=(1, 3))
        pyramid.append((v, wgt))
    v, wgt = pyramid[-1]
    est = v / np.maximum(wgt, 1e-12)[..., None]
    for v, wgt in reversed(pyramid[:-1]):
        up = _upsample2(est, v.shape[:2])
        a = np.clip(wgt, 0, 1)[..., None]
        est = a * v / np.maximum(wgt, 1e-12)[..., None] + (1 - a) * up
    est[known] = values[known]
    return est.astype(np.float32)


def _upsample2(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w, C) -> (H, W, C), H <= 2h: bilinear with pixel centres aligned (no blocks in the filled holes)."""
    h, w = a.shape[:2]
    H, W = shape
    ys = np.clip((np.arange(H) + 0.5) / 2 - 0.5, 0, h - 1)
    xs = np.clip((np.arange(W) + 0.5) / 2 - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = a[y0][:, x0] * (1 - fx) + a[y0][:, x1] * fx
    bottom = a[y1][:, x0] * (1 - fx) + a[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def _box(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, edges replicated."""
    p = np.pad(a, r, mode="edge")
    c = np.cumsum(np.cumsum(np.pad(p, ((1, 0), (1, 0))), axis=0), axis=1)
    n = 2 * r + 1
    return (c[n:, n:] - c[:-n, n:] - c[n:, :-n] + c[:-n, :-n]) / (n * n)


def soft_alpha(mask: np.ndarray) -> np.ndarray:
    """Binary region -> alpha 1 inside, a ramp over ~2 FEATHER pixels across its border."""
    m = mask.astype(np.float32)
    return np.clip(2.0 * _box(m, FEATHER), 0.0, 1.0) if FEATHER else m


def split_layers(rgb: np.ndarray, depth: np.ndarray, layers: int = 0) -> LayerStack:
    """rgb (H, W, 3) float in [0, 1], relative depth (H, W) -> layers, nearest first; the farthest is opaque."""
    if layers and not 2 <= layers <= MAX_LAYERS:
        raise ValueError(f"layers must be 0 (automatic) or 2..{MAX_LAYERS}, got {layers}")
    notes: list[str] = []
    logz = np.log(depth)
    if float(depth.max()) / float(depth.min()) < CONSTANT_RATIO:
        cuts = []
        notes.append("constant depth: one flat layer (nothing to separate)")
    else:
        cuts = find_cuts(logz, layers)
        if not cuts:
            notes.append("no depth discontinuity found: one layer displaced by the depth")
        elif layers and len(cuts) < layers - 1:
            notes.append(f"only {len(cuts) + 1} layer(s) found, {layers} asked")
    label = np.digitize(logz, cuts) if cuts else np.zeros(depth.shape, np.int64)   # 0 = nearest
    n = len(cuts) + 1
    out: list[Layer] = []
    total = depth.size
    data = np.concatenate([rgb.astype(np.float32), logz[..., None]], axis=-1)
    for k in range(n):
        own = label == k
        if not own.any():
            continue
        filled = fill(data, own)
        alpha = np.ones(depth.shape, np.float32) if k == n - 1 else soft_alpha(label <= k)
        colour = filled[..., :3]
        # The soft ramp outside the cut lies over farther pixels: give it the picture's own colours there, so
        # near-over-far composites back to the picture exactly at frame 1.
        farther = label > k
        colour[farther] = rgb[farther]
        rgba = np.concatenate([np.clip(colour, 0, 1), alpha[..., None]], axis=-1)
        out.append(Layer(rgba=rgba, depth=np.exp(filled[..., 3]).astype(np.float32),
                         median=float(np.median(depth[own])), share=float(own.sum()) / total))
    return LayerStack(layers=out, notes=notes)


# --------------------------------------------------------------------------------------------------------
# geometry (plane-local coordinates; the camera at (cx, cy, D) looking down -Z)


def grid_size(size: tuple[int, int], max_cells: int = 160) -> tuple[int, int]:
    W, H = size
    W, H = W * (1 + 2 * MARGIN), H * (1 + 2 * MARGIN)
    scale = min(1.0, max_cells / max(W, H))
    return max(1, round(W * scale)), max(1, round(H * scale))


def layer_vertices(depth: np.ndarray, lo, hi, distance: float, cells: tuple[int, int], card: float | None = None):
    """Grid vertices (N, 3) and UVs (N, 2) of a layer: each vertex on the camera ray of its UV point.

    depth: relative depth (median 1 = the original plane at `distance`); card: one constant depth instead."""
    gw, gh = cells
    H, W = depth.shape
    u = np.linspace(-MARGIN, 1.0 + MARGIN, gw + 1, dtype=np.float32)
    v = np.linspace(-MARGIN, 1.0 + MARGIN, gh + 1, dtype=np.float32)
    uu, vv = np.meshgrid(u, v)                       # v = 0 at the bottom (Blender UV)
    if card is None:
        px = np.clip(uu * W - 0.5, 0, W - 1)
        py = np.clip((1.0 - vv) * H - 0.5, 0, H - 1)
        x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
        x1, y1 = np.minimum(x0 + 1, W - 1), np.minimum(y0 + 1, H - 1)
        fx, fy = px - x0, py - y0
        s = (depth[y0, x0] * (1 - fx) * (1 - fy) + depth[y0, x1] * fx * (1 - fy)
             + depth[y1, x0] * (1 - fx) * fy + depth[y1, x1] * fx * fy)
    else:
        s = np.full(uu.shape, card, np.float32)
    cx, cy = 0.5 * (lo[0] + hi[0]), 0.5 * (lo[1] + hi[1])
    x = lo[0] + uu * (hi[0] - lo[0])
    y = lo[1] + vv * (hi[1] - lo[1])
    co = np.stack([cx + s * (x - cx), cy + s * (y - cy), distance * (1.0 - s)], axis=-1)
    return co.reshape(-1, 3).astype(np.float32), np.stack([uu, vv], -1).reshape(-1, 2).astype(np.float32)


def grid_faces(cells: tuple[int, int]) -> np.ndarray:
    gw, gh = cells
    i, j = np.meshgrid(np.arange(gw), np.arange(gh))
    a = (j * (gw + 1) + i).ravel()
    return np.stack([a, a + 1, a + gw + 2, a + gw + 1], axis=-1)


# --------------------------------------------------------------------------------------------------------
# Blender side (bpy imported here only, so the numpy part above runs without Blender)

LAYERS_DIR = "layers"
MOVES = ("NONE", "DOLLY", "PAN", "ORBIT")


def read_depth_pixels(path: str) -> np.ndarray:
    """A depth file Blender reads (EXR, 8/16-bit PNG, ...) -> (H, W) float32 of its first channel, row 0 on top."""
    import os

    import bpy

    if not path or not os.path.isfile(path):
        raise ValueError(f"depth map {path!r} does not exist")
    try:
        img = bpy.data.images.load(path, check_existing=False)
    except RuntimeError as exc:
        raise ValueError(f"cannot read depth map {path}: {exc}") from None
    try:
        img.colorspace_settings.name = "Non-Color"   # raw values, no sRGB decoding of 8/16-bit PNGs
        w, h = img.size
        if w == 0 or h == 0:
            raise ValueError(f"cannot read depth map {path}: no pixels")
        px = np.empty(w * h * img.channels, np.float32)
        img.pixels.foreach_get(px)
        return np.ascontiguousarray(px.reshape(h, w, img.channels)[::-1, :, 0])
    finally:
        bpy.data.images.remove(img)


def _write_png(path: str, rgba: np.ndarray) -> None:
    import bpy

    h, w = rgba.shape[:2]
    img = bpy.data.images.new("gid_layer_tmp", w, h, alpha=True)
    try:
        img.pixels.foreach_set(np.ascontiguousarray(rgba[::-1], np.float32).ravel())
        img.filepath_raw = path
        img.file_format = "PNG"
        img.save()
    finally:
        bpy.data.images.remove(img)


def _material(name: str, image):
    """Emission of the layer image, alpha-mixed with Transparent: unlit, so the camera sees the pixels."""
    import bpy

    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nt = mat.node_tree
    nt.nodes.clear()
    tex = nt.nodes.new("ShaderNodeTexImage")
    tex.image, tex.extension, tex.interpolation = image, "EXTEND", "Linear"
    emit = nt.nodes.new("ShaderNodeEmission")
    clear = nt.nodes.new("ShaderNodeBsdfTransparent")
    mix = nt.nodes.new("ShaderNodeMixShader")
    out = nt.nodes.new("ShaderNodeOutputMaterial")
    nt.links.new(tex.outputs["Color"], emit.inputs["Color"])
    nt.links.new(tex.outputs["Alpha"], mix.inputs["Fac"])
    nt.links.new(clear.outputs["BSDF"], mix.inputs[1])
    nt.links.new(emit.outputs["Emission"], mix.inputs[2])
    nt.links.new(mix.outputs["Shader"], out.inputs["Surface"])
    return mat


def _mesh(name: str, co: np.ndarray, uv: np.ndarray, faces: np.ndarray):
    import bpy

    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(co))
    mesh.vertices.foreach_set("co", co.ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.ravel().astype(np.int32))
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", (np.arange(len(faces)) * 4).astype(np.int32))
    uv_layer = mesh.uv_layers.new(name="UVMap")
    uv_layer.data.foreach_set("uv", uv[faces.ravel()].ravel())
    mesh.update(calc_edges=True)
    mesh.validate()
    return mesh


def camera_frame(plane_obj, lo, hi, distance: float):
    """World matrix of a camera on the plane's +Z side at `distance` (plane-local units) from its centre."""
    from mathutils import Matrix, Vector

    mw = plane_obj.matrix_world
    loc, rot, scale = mw.decompose()
    centre = Vector((0.5 * (lo[0] + hi[0]), 0.5 * (lo[1] + hi[1]), distance))
    return Matrix.LocRotScale(mw @ centre, rot, None), float(max(scale.x, scale.y))


def keyframe_move(cam, move: str, strength: float, distance_world: float, pivot_world, start: int, end: int):
    """Camera move over [start, end]: out and back (offset 0 -> strength -> 0), so the loop closes."""
    from mathutils import Matrix, Vector

    base = cam.matrix_world.copy()
    right, up, back = (base.to_3x3() @ Vector(a) for a in ((1, 0, 0), (0, 1, 0), (0, 0, 1)))
    if move == "DOLLY":
        peak = Matrix.Translation(-back * strength * distance_world) @ base
    elif move == "PAN":
        peak = Matrix.Translation(right * strength * distance_world) @ base
    else:   # ORBIT about the plane centre, arc length = strength * distance
        pivot = Vector(pivot_world)
        peak = (Matrix.Translation(pivot) @ Matrix.Rotation(strength, 4, up.normalized())
                @ Matrix.Translation(-pivot) @ base)
    mid = (start + end) // 2
    for frame, mat in ((start, base), (mid, peak), (end, base)):
        cam.matrix_world = mat
        cam.keyframe_insert("location", frame=frame)
        cam.keyframe_insert("rotation_euler", frame=frame)
    cam.matrix_world = base


def build(context, plane_obj, plane, rgb: np.ndarray, depth: np.ndarray, layers: int, geometry: str,
          move: str, strength: float, storage) -> dict:
    """Make the layers, their files, camera and move. On any failure everything made so far is removed."""
    import os
    import shutil

    import bpy

    scene = context.scene
    W, H = plane.size
    stack = split_layers(rgb, depth, layers)
    lo, hi = plane.lo, plane.hi
    extent = hi - lo
    distance = float(max(extent[0], extent[1])) * 1.5          # field of view ~37 degrees across
    made = {"objects": [], "meshes": [], "materials": [], "images": [], "cameras": [], "collections": []}
    previous = [c for c in bpy.data.collections if c.get("gid_depth_source") == plane_obj.name]
    final_dir = os.path.join(storage.object_dir(plane_obj), LAYERS_DIR)
    tmp_dir = storage.new_temp_dir(final_dir)
    try:
        coll = bpy.data.collections.new(f"{plane_obj.name} Depth Layers")
        made["collections"].append(coll)
        scene.collection.children.link(coll)
        cells = grid_size((W, H)) if geometry == "MESH" else (1, 1)
        faces = grid_faces(cells)
        names = []
        for i, layer in enumerate(stack.layers):
            fname = f"layer_{i:02d}.png"
            _write_png(os.path.join(tmp_dir, fname), layer.rgba)
            names.append(fname)
        storage.swap_dir(tmp_dir, final_dir)
        tmp_dir = None
        key = storage.object_key(plane_obj)
        for i, (layer, fname) in enumerate(zip(stack.layers, names)):
            img = bpy.data.images.load(os.path.join(final_dir, fname), check_existing=False)
            made["images"].append(img)
            img.name = f"{plane_obj.name} layer {i}"
            img.alpha_mode = "STRAIGHT"
            img.filepath = storage.blender_path(os.path.join(final_dir, fname))
            storage.tag_image(img, key, f"{LAYERS_DIR}/{fname}")
            co, uv = layer_vertices(layer.depth, lo, hi, distance, cells,
                                    card=None if geometry == "MESH" else layer.median)
            mesh = _mesh(f"{plane_obj.name} layer {i}", co, uv, faces)
            made["meshes"].append(mesh)
            mat = _material(f"{plane_obj.name} layer {i}", img)
            made["materials"].append(mat)
            mesh.materials.append(mat)
            ob = bpy.data.objects.new(f"{plane_obj.name} layer {i}", mesh)
            made["objects"].append(ob)
            coll.objects.link(ob)
            ob.matrix_world = plane_obj.matrix_world.copy()
            ob["gid_depth_layer"] = i
            ob["gid_depth_median"] = layer.median
            ob.gid.source_image = img
        cam_data = bpy.data.cameras.new(f"{plane_obj.name} Camera")
        made["cameras"].append(cam_data)
        cam = bpy.data.objects.new(f"{plane_obj.name} Camera", cam_data)
        made["objects"].append(cam)
        coll.objects.link(cam)
        matrix, scale = camera_frame(plane_obj, lo, hi, distance)
        cam.matrix_world = matrix
        cam_data.sensor_fit = "HORIZONTAL" if W >= H else "VERTICAL"
        cam_data.sensor_width = cam_data.sensor_height = 36.0
        across = float(extent[0] if W >= H else extent[1])
        cam_data.lens = 36.0 * distance / across
        cam_data.clip_start = distance * NEAR_LIMIT * 0.5 * scale
        cam_data.clip_end = distance * FAR_LIMIT * 2.0 * scale
        if move != "NONE" and strength != 0.0:
            keyframe_move(cam, move, strength, distance * scale, plane_obj.matrix_world.translation,
                          scene.frame_start, scene.frame_end)
        scene.camera = cam
        scene.render.resolution_x, scene.render.resolution_y = W, H
        scene.view_settings.view_transform = "Standard"   # emission = the picture's pixels, no tone mapping
        if scene.render.engine == "CYCLES":
            scene.cycles.transparent_max_bounces = max(scene.cycles.transparent_max_bounces, len(stack.layers) + 2)
        plane_obj.hide_render = True
        plane_obj.hide_viewport = True
    except BaseException:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        remove_made(made)
        raise
    coll["gid_depth_source"] = plane_obj.name
    shared = share_motion(plane_obj, [o for o in made["objects"] if o.type == "MESH"], scene)
    for old in previous:                      # a rebuild replaces the earlier build of this plane
        remove_collection(old)
    return {"layers": len(stack.layers), "notes": stack.notes, "motion_layers": shared, "camera": cam.name, "collection": coll.name,
            "medians": [layer.median for layer in stack.layers], "objects": [o.name for o in made["objects"]]}


SHARED_SKIP = {"key", "source_image", "has_motion", "display", "rna_type", "name", "has_pokes"}


def share_motion(plane_obj, layer_objs, scene) -> int:
    """Give every layer the plane's motion and controls; re-apply live displacement when the plane shows it.

    Each layer samples the same spectral volume at its own pixels (its UVs are the picture's), so the motion
    of a pixel is the same whichever layer shows it; the alpha moves with the colour (one texture lookup).
    Pokes stay on the source plane (not shared). Returns how many layers got motion."""
    from . import displacement, storage

    if not plane_obj.gid.has_motion:
        return 0
    motion = storage.load_motion(plane_obj)
    src = plane_obj.gid
    names = [p.identifier for p in src.bl_rna.properties if p.identifier not in SHARED_SKIP
             and not p.is_readonly and p.type != "POINTER"]
    for ob in layer_objs:
        dst = ob.gid
        for name in names:
            setattr(dst, name, getattr(src, name))
        storage.object_key(ob)
        storage.save_motion(ob, motion)
        dst.has_motion = True
        if src.display == "LIVE":
            displacement.apply(ob, scene)
    return len(layer_objs)


def remove_collection(coll) -> None:
    """Remove an earlier build: its objects with their meshes, materials, cameras and images, then itself."""
    made = {"objects": list(coll.objects), "meshes": [], "materials": [], "images": [], "cameras": [],
            "collections": [coll]}
    for ob in coll.objects:
        if ob.type == "MESH":
            made["meshes"].append(ob.data)
            for mat in ob.data.materials:
                if mat is not None:
                    made["materials"].append(mat)
                    made["images"] += [n.image for n in mat.node_tree.nodes
                                       if n.type == "TEX_IMAGE" and n.image is not None]
        elif ob.type == "CAMERA":
            made["cameras"].append(ob.data)
    remove_made(made)


def remove_made(made: dict) -> None:
    import bpy

    for ob in made["objects"]:
        bpy.data.objects.remove(ob)
    for kind in ("meshes", "materials", "images", "cameras", "collections"):
        coll = getattr(bpy.data, kind)
        for block in made[kind]:
            coll.remove(block)
