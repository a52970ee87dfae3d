"""Live displacement: EXR sequences computed from the stored motion, wired into the plane's material.

Shader mode (default, pixel exact): the plane's Image Texture samples at `uv - offset(uv, frame)`, the offset
read from a cyclic half-float EXR sequence (R = du, G = dv in UV units) -- a backward warp, Nuke's IDistort
inside the material. Geometry mode: a Displace modifier (RGB to XYZ, local space, mid level 0, UV coordinates)
moves the vertices of a simply-subdivided plane by the forward displacement in local units.
Nothing here needs the backend.
"""
from __future__ import annotations

import os
import time

import bpy
import numpy as np

from . import animation, fields, storage
from .animation import scene_fps
from .vendor import modal, spectral as sp

LIVE_DIR, GEO_DIR = "live", "geo"
NODE_UV, NODE_FLOW, NODE_OFFSET = "GID UV", "GID Flow", "GID Offset"
MOD_SUBDIV, MOD_DISPLACE, TEX_DISPLACE = "GID Subdivision", "GID Displace", "GID Displace"
ANIMATABLE = ("speed", "magnitude", "direction", "direction_bias", "ambient_weight", "poke_weight")


# --------------------------------------------------------------------------------------------------------
# the image plane


class PlaneInfo:
    """The pieces of an image plane: material, its base Image Texture node, the image, local extent."""

    def __init__(self, obj):
        if obj is None or obj.type != "MESH":
            raise ValueError("select an image plane (a mesh whose material uses an Image Texture)")
        self.obj = obj
        self.material = None
        self.node = None
        for slot in obj.material_slots:
            mat = slot.material
            if mat is None or not mat.use_nodes:
                continue
            for node in mat.node_tree.nodes:
                if node.type == "TEX_IMAGE" and node.name != NODE_FLOW and node.image is not None:
                    self.material, self.node = mat, node
                    break
            if self.node is not None:
                break
        if self.node is None:
            raise ValueError(f"{obj.name} is not an image plane: none of its materials uses an Image Texture "
                             "with an image (File > Import > Images as Planes makes one)")
        settings = obj.gid
        self.image = settings.source_image or self.node.image
        co = np.empty(len(obj.data.vertices) * 3, np.float32)
        obj.data.vertices.foreach_get("co", co)
        co = co.reshape(-1, 3)
        self.lo, self.hi = co.min(axis=0), co.max(axis=0)
        self.extent = np.maximum(self.hi - self.lo, 1e-9)

    @property
    def size(self) -> tuple[int, int]:
        w, h = self.image.size
        if w == 0 or h == 0:
            raise ValueError(f"image {self.image.name!r} has no pixels (file missing?)")
        return int(w), int(h)

    def local_to_pixel(self, co, grid: tuple[int, int]) -> tuple[float, float]:
        """Local (x, y) on the plane -> pixel (x right, y down) of a (W, H) grid (plane spans the image)."""
        u = (co[0] - self.lo[0]) / self.extent[0]
        v = (co[1] - self.lo[1]) / self.extent[1]
        return float(u * grid[0] - 0.5), float((1.0 - v) * grid[1] - 0.5)


_pending_updates: set[str] = set()


def on_control_changed(self, context) -> None:
    """Update callback of the object's controls: re-apply live displacement shortly after a change (UI only:
    timers never fire headless)."""
    if bpy.app.background or not self.auto_update or self.display != "LIVE":
        return
    schedule_live_update(self.id_data.name)


def schedule_live_update(obj_name: str) -> None:
    """Debounced re-apply from property updates (UI): many slider events -> one write."""
    _pending_updates.add(obj_name)
    if not bpy.app.timers.is_registered(_flush_live_updates):
        bpy.app.timers.register(_flush_live_updates, first_interval=0.3)


def _flush_live_updates():
    names = list(_pending_updates)
    _pending_updates.clear()
    for name in names:
        obj = bpy.data.objects.get(name)
        if obj is not None and obj.gid.has_motion and obj.gid.display == "LIVE":
            try:
                apply(obj, bpy.context.scene)
            except (ValueError, RuntimeError, OSError) as exc:
                print(f"GID: live update of {name} failed: {exc}")
    return None


def image_pixels(image, size: tuple[int, int] | None = None) -> np.ndarray:
    """Blender image -> float32 (H, W, 4), row 0 at the top, optionally resized to size (W, H)."""
    w, h = image.size
    px = np.empty(w * h * 4, np.float32)
    image.pixels.foreach_get(px)
    px = px.reshape(h, w, 4)[::-1]
    if size is not None and (w, h) != tuple(size):
        px = np.moveaxis(sp.resize_planes(np.moveaxis(px, -1, 0), size), 0, -1)
    return np.ascontiguousarray(px)


def vertex_group_mask(obj, group_name: str, size: tuple[int, int]) -> np.ndarray:
    """Rasterise a vertex group's weights over the UV map into an (H, W) mask (barycentric per triangle)."""
    vg = obj.vertex_groups.get(group_name)
    if vg is None:
        raise ValueError(f"{obj.name} has no vertex group {group_name!r}")
    mesh = obj.data
    uv_layer = mesh.uv_layers.active
    if uv_layer is None:
        raise ValueError(f"{obj.name} has no UV map to place the vertex group mask")
    weights = np.zeros(len(mesh.vertices), np.float32)
    for v in mesh.vertices:
        for g in v.groups:
            if g.group == vg.index:
                weights[v.index] = g.weight
    mesh.calc_loop_triangles()
    n_tri = len(mesh.loop_triangles)
    loops = np.empty(n_tri * 3, np.int64)
    mesh.loop_triangles.foreach_get("loops", loops)
    verts = np.empty(n_tri * 3, np.int64)
    mesh.loop_triangles.foreach_get("vertices", verts)
    uv = np.empty(len(mesh.loops) * 2, np.float32)
    uv_layer.data.foreach_get("uv", uv)
    uv = uv.reshape(-1, 2)[loops].reshape(n_tri, 3, 2)
    wt = weights[verts].reshape(n_tri, 3)
    W, H = size
    out = np.zeros((H, W), np.float32)
    px = uv[..., 0] * W - 0.5                     # pixel centres at (i + 0.5) / W
    py = (1.0 - uv[..., 1]) * H - 0.5
    for t in range(n_tri):
        x0, x1 = int(np.floor(px[t].min())), int(np.ceil(px[t].max()))
        y0, y1 = int(np.floor(py[t].min())), int(np.ceil(py[t].max()))
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W - 1), min(y1, H - 1)
        if x1 < x0 or y1 < y0:
            continue
        gx, gy = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1))
        (ax, bx, cx), (ay, by, cy) = px[t], py[t]
        den = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy)
        if abs(den) < 1e-12:
            continue
        l1 = ((by - cy) * (gx - cx) + (cx - bx) * (gy - cy)) / den
        l2 = ((cy - ay) * (gx - cx) + (ax - cx) * (gy - cy)) / den
        l3 = 1.0 - l1 - l2
        inside = (l1 >= -1e-6) & (l2 >= -1e-6) & (l3 >= -1e-6)
        val = l1 * wt[t, 0] + l2 * wt[t, 1] + l3 * wt[t, 2]
        out[gy[inside], gx[inside]] = val[inside]
    return out


def build_mask(obj, size: tuple[int, int]) -> np.ndarray | None:
    """(H, W) in [0, 1] from the mask image (luminance) times the vertex-group mask; None = everything moves."""
    s = obj.gid
    mask = None
    if s.mask_image is not None:
        px = image_pixels(s.mask_image, size)
        mask = (0.2126 * px[..., 0] + 0.7152 * px[..., 1] + 0.0722 * px[..., 2]).astype(np.float32)
    if s.mask_vertex_group:
        vg = vertex_group_mask(obj, s.mask_vertex_group, size)
        mask = vg if mask is None else mask * vg
    return None if mask is None else np.clip(mask, 0.0, 1.0)


# --------------------------------------------------------------------------------------------------------
# EXR sequences


class ExrWriter:
    """Writes (H, W, 3) float32 arrays (or (H, W, 4) with alpha=True) as half-float ZIP EXR through one scratch
    image and `save_render` (it honours the scene's output settings, which are set for the duration and
    restored)."""

    def __init__(self, scene, size: tuple[int, int], alpha: bool = False):
        self.scene = scene
        self.size = size
        self.alpha = alpha
        self.image = bpy.data.images.new("GID scratch EXR", size[0], size[1], alpha=True, float_buffer=True)
        self.image.colorspace_settings.name = "Non-Color"
        self.rgba = np.ones((size[1], size[0], 4), np.float32)

    def __enter__(self):
        s = self.scene.render.image_settings
        self._saved = {k: getattr(s, k) for k in ("file_format", "color_mode", "color_depth", "exr_codec")}
        s.file_format = "OPEN_EXR"
        s.color_mode = "RGBA" if self.alpha else "RGB"
        s.color_depth = "16"
        s.exr_codec = "ZIP"
        return self

    def write(self, path: str, rgb: np.ndarray) -> None:
        self.rgba[..., :rgb.shape[-1]] = rgb
        self.image.pixels.foreach_set(self.rgba[::-1].ravel())   # Blender rows go bottom to top
        self.image.save_render(path, scene=self.scene)

    def __exit__(self, *exc):
        s = self.scene.render.image_settings
        s.file_format = self._saved["file_format"]
        for k in ("color_mode", "color_depth", "exr_codec"):
            try:
                setattr(s, k, self._saved[k])
            except TypeError:  # not valid for the restored format
                pass
        bpy.data.images.remove(self.image)
        return False


def sequence_image(obj, rel_first: str, kind: str):
    """The (re)loaded SEQUENCE image for `<object dir>/<rel_first>` (the first file), tagged as the add-on's."""
    key = storage.object_key(obj)
    name = f"GID {key} {kind}"
    path = os.path.join(storage.object_dir(obj), rel_first)
    img = bpy.data.images.get(name)
    if img is None:
        img = bpy.data.images.load(path, check_existing=False)
        img.name = name
    img.source = "SEQUENCE"
    img.filepath = storage.blender_path(path)
    storage.tag_image(img, key, rel_first)
    img["gid_kind"] = kind
    img.reload()
    return img


def set_sequence_user(image_user, count: int, start: int, cyclic: bool) -> None:
    image_user.frame_duration = count
    image_user.frame_start = start
    image_user.frame_offset = 0
    image_user.use_cyclic = cyclic
    image_user.use_auto_refresh = True


# --------------------------------------------------------------------------------------------------------
# plan


def make_plan(obj, scene, pokes_range: tuple[int, int] | None = None) -> fields.Plan:
    """Loop (cyclic, loop_frames files) when nothing is animated and no pokes; else the scene frame range."""
    s = obj.gid
    animated = {name for name in ANIMATABLE if animation.find(obj, f"gid.{name}") is not None}
    loop = int(s.loop_frames)
    start = int(s.start_frame)
    if loop > 0 and not animated and pokes_range is None:
        frames, cyclic = np.arange(start, start + loop), True
    else:
        lo, hi = scene.frame_start, scene.frame_end
        if pokes_range is not None:
            lo, hi = min(lo, pokes_range[0]), max(hi, pokes_range[1])
        frames, cyclic = np.arange(lo, hi + 1), False

    def values(name: str) -> np.ndarray:
        static = getattr(s, name)
        if name not in animated:
            return np.full(len(frames), static, np.float64)
        return np.array([animation.value_at(obj, f"gid.{name}", f, static) for f in frames], np.float64)

    speed_animated = "speed" in animated
    if speed_animated:
        tau = fields.integrate_speed(frames, start, lambda f: animation.value_at(obj, "gid.speed", f, s.speed))
    else:
        tau = (frames - start).astype(np.float64)
    return fields.Plan(frames=frames, cyclic=cyclic, start=start, loop_frames=loop,
                       speed=float(s.speed), speed_animated=speed_animated, tau=tau,
                       magnitude=values("magnitude"), direction=values("direction"), bias=values("direction_bias"),
                       ambient_weight=values("ambient_weight") if s.has_pokes else np.ones(len(frames)),
                       poke_weight=values("poke_weight"))


# --------------------------------------------------------------------------------------------------------
# applying


def apply(obj, scene, chunk: int = 32) -> dict:
    """Write the live displacement sequence for `obj` and wire it. Returns timings and sizes."""
    t0 = time.perf_counter()
    s = obj.gid
    plane = PlaneInfo(obj)
    motion = storage.load_motion(obj)
    size = fields.live_size(plane.size, s.live_max_width)
    mask = build_mask(obj, size)
    pokes = load_pokes(obj, motion, size)
    plan = make_plan(obj, scene, None if pokes is None else (pokes.first, pokes.last_frame))
    fps_scene = scene_fps(scene)
    ambient = fields.Ambient(motion.variation(s.variation), motion.T, motion.fps, fps_scene, plan, size)
    geometry = s.live_mode == "GEOMETRY"
    kind_dir = GEO_DIR if geometry else LIVE_DIR
    prefix = "geo" if geometry else "disp"
    final_dir = os.path.join(storage.object_dir(obj), kind_dir)
    tmp_dir = storage.new_temp_dir(final_dir)
    try:
        with ExrWriter(scene, size) as writer:
            for a in range(0, plan.count, chunk):
                idx = slice(a, min(a + chunk, plan.count))
                poke_fields = pokes(plan.frames[idx]) if pokes is not None else None
                f = fields.controlled(ambient, motion.T, motion.fps, fps_scene, plan, idx, mask, poke_fields)
                uv = fields.to_uv_offset(f)
                if geometry:  # forward displacement in local units of the plane
                    uv[:, 0] *= plane.extent[0]
                    uv[:, 1] *= plane.extent[1]
                rgb = np.zeros((uv.shape[0], size[1], size[0], 3), np.float32)
                rgb[..., 0], rgb[..., 1] = uv[:, 0], uv[:, 1]
                for i in range(uv.shape[0]):
                    writer.write(os.path.join(tmp_dir, f"{prefix}_{a + i + 1:04d}.exr"), rgb[i])
        storage.swap_dir(tmp_dir, final_dir)
    except BaseException:
        import shutil

        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    t_write = time.perf_counter() - t0
    img = sequence_image(obj, f"{kind_dir}/{prefix}_0001.exr", "live" if not geometry else "geo")
    img.colorspace_settings.name = "Non-Color"
    if geometry:
        unwire_shader(plane)
        wire_geometry(obj, img, plan, s.geometry_levels)
    else:
        unwire_geometry(obj)
        wire_shader(plane, img, plan)
    if s.source_image is None:
        s.source_image = plane.node.image
    plane.node.image = s.source_image
    s.display = "LIVE"
    return {"frames": plan.count, "cyclic": plan.cyclic, "size": size, "seconds": time.perf_counter() - t0,
            "write_seconds": t_write}


def wire_shader(plane: PlaneInfo, flow_image, plan: fields.Plan) -> None:
    """base.Vector <- (upstream or UV) - flow(UV); idempotent."""
    unwire_fluid_shader(plane)
    nt = plane.material.node_tree
    nodes, links = nt.nodes, nt.links
    base = plane.node
    uv = nodes.get(NODE_UV) or nodes.new("ShaderNodeTexCoord")
    uv.name = uv.label = NODE_UV
    flow = nodes.get(NODE_FLOW) or nodes.new("ShaderNodeTexImage")
    flow.name = flow.label = NODE_FLOW
    off = nodes.get(NODE_OFFSET) or nodes.new("ShaderNodeVectorMath")
    off.name = off.label = NODE_OFFSET
    off.operation = "SUBTRACT"
    uv.location = base.location.x - 700, base.location.y - 100
    flow.location = base.location.x - 500, base.location.y - 250
    off.location = base.location.x - 220, base.location.y - 100
    flow.image = flow_image
    flow.interpolation = "Linear"
    flow.extension = "EXTEND"
    set_sequence_user(flow.image_user, plan.count, int(plan.frames[0]), plan.cyclic)
    upstream = None
    for link in list(base.inputs["Vector"].links):
        if link.from_node.name != NODE_OFFSET:
            upstream = link.from_socket
        links.remove(link)
    source = upstream or uv.outputs["UV"]
    for sock in (flow.inputs["Vector"], off.inputs[0], off.inputs[1]):
        for link in list(sock.links):
            links.remove(link)
    links.new(source, flow.inputs["Vector"])
    links.new(source, off.inputs[0])
    links.new(flow.outputs["Color"], off.inputs[1])
    links.new(off.outputs["Vector"], base.inputs["Vector"])
    base.extension = "EXTEND"
    # base.interpolation stays as the user set it (Linear by default), not Cubic: Blender's Cubic (EEVEE's
    # cubic_bspline_coefficients, Cycles' cubic_w0..w3) is a smoothing B-spline that keeps ~0.2x of the still's
    # detail even at rest (scripts/eval_sharpness.py --blender), where Linear keeps all of it at whole pixels.


FLUID_NODE_PREFIX = "GID Fluid"   # nodes of the live fluid loop (fluid.wire_fluid_shader)
NODE_FLUID_MIX = "GID Fluid Mix"


def unwire_fluid_shader(plane: PlaneInfo) -> None:
    """Remove the live fluid loop's nodes: what the mix fed takes the base texture's colour again."""
    nt = plane.material.node_tree
    mix = nt.nodes.get(NODE_FLUID_MIX)
    if mix is not None:
        targets = [link.to_socket for link in mix.outputs[2].links]
        for sock in targets:
            nt.links.new(plane.node.outputs["Color"], sock)
    ours = [n for n in nt.nodes if n.name.startswith(FLUID_NODE_PREFIX)]
    if ours:
        for link in list(plane.node.inputs["Vector"].links):
            nt.links.remove(link)
        for n in ours:
            nt.nodes.remove(n)


def unwire_shader(plane: PlaneInfo) -> None:
    """Show the image undisplaced: the base texture reads what fed the offset (or plain UV)."""
    unwire_fluid_shader(plane)
    nt = plane.material.node_tree
    off = nt.nodes.get(NODE_OFFSET)
    if off is None:
        return
    upstream = None
    for link in off.inputs[0].links:
        if link.from_node.name != NODE_UV:
            upstream = link.from_socket
    for link in list(plane.node.inputs["Vector"].links):
        nt.links.remove(link)
    if upstream is not None:
        nt.links.new(upstream, plane.node.inputs["Vector"])


def wire_geometry(obj, img, plan: fields.Plan, levels: int) -> None:
    sub = obj.modifiers.get(MOD_SUBDIV) or obj.modifiers.new(MOD_SUBDIV, "SUBSURF")
    sub.subdivision_type = "SIMPLE"
    sub.levels = sub.render_levels = levels
    tex = bpy.data.textures.get(TEX_DISPLACE + " " + obj.gid.key) or bpy.data.textures.new(
        TEX_DISPLACE + " " + obj.gid.key, type="IMAGE")
    tex.image = img
    if hasattr(tex, "use_clamp"):
        tex.use_clamp = False      # True would clamp negative offsets to 0
    tex.extension = "EXTEND"
    tex.use_interpolation = True
    set_sequence_user(tex.image_user, plan.count, int(plan.frames[0]), plan.cyclic)
    mod = obj.modifiers.get(MOD_DISPLACE) or obj.modifiers.new(MOD_DISPLACE, "DISPLACE")
    mod.texture = tex
    mod.direction = "RGB_TO_XYZ"
    mod.space = "LOCAL"
    mod.texture_coords = "UV"
    uv_layer = obj.data.uv_layers.active
    mod.uv_layer = uv_layer.name if uv_layer else ""
    mod.mid_level = 0.0            # signed float data, no 0.5 bias
    mod.strength = 1.0


def unwire_geometry(obj) -> None:
    for name in (MOD_DISPLACE, MOD_SUBDIV):
        mod = obj.modifiers.get(name)
        if mod is not None:
            obj.modifiers.remove(mod)


def show_still(obj) -> None:
    plane = PlaneInfo(obj)
    unwire_shader(plane)
    unwire_geometry(obj)
    if obj.gid.source_image is not None:
        plane.node.image = obj.gid.source_image
    obj.gid.display = "STILL"


# --------------------------------------------------------------------------------------------------------
# poke response on disk (written by pokes.py)


def load_pokes(obj, motion: storage.Motion, size: tuple[int, int]) -> fields.PokeResponse | None:
    """The baked poke response of an object at `size`, or None. Mode shapes come from the variation the
    pokes were simulated with (stored with them)."""
    if not obj.gid.has_pokes:
        return None
    path = os.path.join(storage.object_dir(obj, create=False), storage.POKES_FILE)
    if not os.path.exists(path):
        return None
    with np.load(path, allow_pickle=False) as data:
        z = data["z_re"].astype(np.float64) + 1j * data["z_im"].astype(np.float64)
        first, variation = int(data["first_frame"]), int(data["variation"])
    basis = modal().modes_from_spectral(motion.variation(variation), motion.fps, motion.T)
    if basis.shapes.shape[0] != z.shape[1]:
        raise ValueError(f"{obj.name}: the baked pokes do not match the motion any more; bake pokes again")
    return fields.PokeResponse(z, first, basis.shapes, size)
