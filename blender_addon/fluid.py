"""Fluids on the image plane (Eulerian motion): a fluid mask, flow strokes, Predict Flow, Bake, Export Flow.

- Fluid region: `Object.gid.fluid_mask_image` (luminance, white = fluid) and/or a vertex group
  (`fluid_mask_vertex_group`, painted weights); >= 0.5 is fluid.
- Flow strokes: curve objects parented to the plane and tagged with a custom property `gid_flow_speed`
  (px/frame of the image). Their evaluated shape (any spline type, edited freely) is projected onto the plane;
  the direction of flow is the curve's own direction. `gid.add_flow_stroke` makes one.
- Predict Flow (`gid.predict_flow`): the strokes and the mask, through `shared.eulerian` (parse_hints +
  densify, locally, no backend), give the steady velocity field, stored as `velocity.npz` in the object's
  folder (it moves with the .blend like the rest).
- Bake Fluid Loop (`gid.bake_fluid`): the backend's `render` op with the velocity field renders a seamless
  loop of `fluid_loop_frames` frames into the plane's baked sequence (cyclic: frame N+1 shows frame 1). With
  motion on the plane and "Sway outside" on, the spectral motion moves everything outside the mask (mixed).
- Apply Fluid Displacement (`gid.apply_fluid`, no backend): the live loop in the material. Frame t samples
  the still at p + F_0->-t(p) (the backward-integrated field: exact for a steady flow) and at
  p + F_0->(N-t)(p), mixed by the loop weight t/N (all of it to the one sample that lies in the picture
  where only one does): two cyclic half-float EXR UV-offset sequences (the first carries the weight in B).
  Frame N+1 = frame 1 = the still.
- Export Flow (`gid.export_velocity`): the field as one EXR for Nuke / After Effects (R = u, G = v in px/frame,
  y up, B = fluid mask) plus the same as .npz (y down, the backend's `gid animate --velocity` reads it).
"""
from __future__ import annotations

import json
import os
import shutil
import time

import bpy
import numpy as np
from bpy.props import FloatProperty, FloatVectorProperty

from . import bake, connection, displacement, fields, storage
from .animation import scene_fps
from .vendor import eulerian
from .vendor import spectral as sp

STROKE_TAG = "gid_flow_speed"
VELOCITY_FILE = "velocity.npz"
FLUID_DIR = "fluid"
MAX_FLUID_WIDTH = 1024     # fluid masks / fields are built at most this wide (fields are smooth)


def strokes_of(plane) -> list:
    return sorted((ob for ob in plane.children if ob.type == "CURVE" and STROKE_TAG in ob), key=lambda o: o.name)


def add_stroke(plane, start_uv=(0.1, 0.5), end_uv=(0.9, 0.5), speed: float = 1.0):
    """A straight poly-curve stroke on the plane from start to end (UV 0..1 of the image), flowing start ->
    end at `speed` px/frame; edit its points to bend it. Returns the curve object."""
    info = displacement.PlaneInfo(plane)
    curve = bpy.data.curves.new(f"Flow {plane.name}", "CURVE")
    curve.dimensions = "3D"
    spline = curve.splines.new("POLY")
    spline.points.add(1)
    for p, (u, v) in zip(spline.points, (start_uv, end_uv)):
        x = info.lo[0] + u * info.extent[0]
        y = info.lo[1] + v * info.extent[1]
        p.co = (x, y, 0.0, 1.0)
    ob = bpy.data.objects.new(f"Flow {plane.name}", curve)
    for coll in plane.users_collection:
        coll.objects.link(ob)
    ob.parent = plane
    ob.matrix_parent_inverse.identity()
    ob[STROKE_TAG] = float(speed)
    ob.id_properties_ui(STROKE_TAG).update(min=0.0, soft_max=8.0, description="Flow speed in px/frame")
    return ob


def fluid_size(plane_info) -> tuple[int, int]:
    w, h = plane_info.size
    if w <= MAX_FLUID_WIDTH:
        return w, h
    return MAX_FLUID_WIDTH, max(2, round(h * MAX_FLUID_WIDTH / w))


def fluid_mask(obj, size: tuple[int, int]) -> np.ndarray:
    """Bool (H, W): the fluid mask image's luminance times the vertex group's weights, >= 0.5."""
    s = obj.gid
    mask = None
    if s.fluid_mask_image is not None:
        px = displacement.image_pixels(s.fluid_mask_image, size)
        mask = 0.2126 * px[..., 0] + 0.7152 * px[..., 1] + 0.0722 * px[..., 2]
    if s.fluid_mask_vertex_group:
        vg = displacement.vertex_group_mask(obj, s.fluid_mask_vertex_group, size)
        mask = vg if mask is None else mask * vg
    if mask is None:
        raise ValueError(f"{obj.name}: set a Fluid mask image or vertex group first (white = fluid)")
    return eulerian.check_mask(mask.astype(np.float32))


def stroke_hints(plane, size: tuple[int, int], depsgraph) -> dict:
    """HINTS.json-like {"strokes": [{"points": [[x, y], ...], "speed": s}]} in pixels of a (W, H) grid, from
    the plane's stroke curves (evaluated, in the plane's space)."""
    info = displacement.PlaneInfo(plane)
    to_plane = plane.matrix_world.inverted()
    strokes = []
    full_w = info.size[0]
    for ob in strokes_of(plane):
        ev = ob.evaluated_get(depsgraph)
        me = ev.to_mesh()
        try:
            pts = [to_plane @ (ob.matrix_world @ v.co) for v in me.vertices]
        finally:
            ev.to_mesh_clear()
        if len(pts) < 2:
            raise ValueError(f"flow stroke {ob.name} has fewer than 2 points")
        pixels = [list(info.local_to_pixel((p.x, p.y), size)) for p in pts]
        speed = ob[STROKE_TAG]
        # speeds are in pixels of the full image; the grid may be smaller
        strokes.append({"points": pixels, "speed": float(speed) * size[0] / full_w if speed else speed})
    if not strokes:
        raise ValueError(f"{plane.name} has no flow strokes: add one (Add Flow Stroke) and draw it along the flow")
    return {"strokes": strokes}


def predict_flow(obj, scene) -> dict:
    """Strokes + mask -> velocity field, saved as velocity.npz (velocity px/frame of its grid, mask)."""
    t0 = time.perf_counter()
    info = displacement.PlaneInfo(obj)
    size = fluid_size(info)
    mask = fluid_mask(obj, size)
    hints = stroke_hints(obj, size, bpy.context.evaluated_depsgraph_get())
    names = [ob.name for ob in strokes_of(obj)]
    try:
        strokes = eulerian.parse_hints(hints, size, mask)
    except eulerian.HintsError as exc:
        # the message says "stroke i": name the curve object the artist sees
        msg = str(exc)
        for i, name in enumerate(names):
            msg = msg.replace(f"stroke {i} ", f"stroke {name!r} ").replace(f"stroke {i}:", f"stroke {name!r}:")
        raise ValueError(msg) from None
    velocity = eulerian.densify(strokes, mask)
    storage.atomic_savez(os.path.join(storage.object_dir(obj), VELOCITY_FILE), velocity=velocity.astype(np.float32),
                         mask=mask.astype(np.uint8))
    obj.gid.has_fluid = True
    speed = np.sqrt((velocity ** 2).sum(0))[mask]
    return {"strokes": len(strokes), "size": size, "median_speed": float(np.median(speed)) * info.size[0] / size[0],
            "seconds": time.perf_counter() - t0}


def load_velocity(obj) -> tuple[np.ndarray, np.ndarray]:
    path = os.path.join(storage.object_dir(obj, create=False), VELOCITY_FILE)
    if not os.path.exists(path):
        raise ValueError(f"{obj.name} has no flow yet (expected {path}); run Predict Flow first")
    with np.load(path, allow_pickle=False) as z:
        v, m = np.asarray(z["velocity"], np.float32), np.asarray(z["mask"]).astype(bool)
    if v.ndim != 3 or v.shape[0] != 2 or m.shape != v.shape[1:] or not np.isfinite(v).all():
        raise ValueError(f"{path} is not a velocity field (2, H, W) with a matching mask")
    return v, m


class FluidBakeTask(bake.BakeTask):
    """A cyclic loop of `fluid_loop_frames` frames from the plane's velocity field (and, mixed, its motion),
    baked like any sequence (chunks, temporary folder swapped in when complete)."""

    label = "Baking fluid loop"

    def __init__(self, obj, scene, mode: str | None = None, fmt: str | None = None, chunk: int | None = None):
        connection.Task.__init__(self)
        s = obj.gid
        plane = displacement.PlaneInfo(obj)
        velocity, mask_grid = load_velocity(obj)
        size = plane.size
        self.obj_name, self.scene_name = obj.name, scene.name
        self.set_picture(plane, size)
        # the mask at the image's size, from the one the field was made with (it is what the field knows)
        grid_mask = mask_grid.astype(np.float32)
        if grid_mask.shape != (size[1], size[0]):
            grid_mask = sp.resize_planes(grid_mask, size)
        self.fluid_mask = np.where(grid_mask >= 0.5, 255, 0).astype(np.uint8)
        self.velocity = velocity
        n = int(s.fluid_loop_frames)
        self.spectral = None
        if s.has_motion and s.fluid_sway_outside:
            motion = storage.load_motion(obj)
            self.spectral = motion.variation(s.variation).astype(np.float32)
            self.fps, self.T = motion.fps, motion.T
        self.scene_fps = scene_fps(scene)
        self.start_frame = int(s.start_frame) if s.has_motion else int(scene.frame_start)
        self.frames = np.arange(self.start_frame, self.start_frame + n)
        self.cyclic = True
        self.loop_frames = n
        self.times = np.arange(n, dtype=np.float32)
        self.magnitudes = np.ones(n)
        self.set_output(obj, mode, fmt, chunk)      # always the whole loop

    def _request_next(self) -> None:
        a, b = self.next_index, self._chunk_end()
        self.set_stage(a, b)
        args = {"image": self.request_picture(), "velocity": self.velocity, "fluid_mask": self.fluid_mask,
                "loop_frames": self.loop_frames, "times": self.times[a:b], "scene_fps": float(self.scene_fps),
                "mode": self.mode}
        if self.spectral is not None:
            args.update(spectral=self.spectral.astype(np.float16), fps=float(self.fps), T=int(self.T))
        self.submit(self.client, "render", args)


def apply_live(obj, scene) -> dict:
    """Write the live fluid loop's two offset sequences (fluid/a_####.exr, fluid/b_####.exr) and wire them."""
    t0 = time.perf_counter()
    s = obj.gid
    plane = displacement.PlaneInfo(obj)
    velocity, mask_grid = load_velocity(obj)
    size = fields.live_size(plane.size, s.live_max_width)
    mask = mask_grid if mask_grid.shape == (size[1], size[0]) else (
        sp.resize_planes(mask_grid.astype(np.float32), size) >= 0.5)
    v = sp.resize_field(velocity, size) if velocity.shape[1:] != (size[1], size[0]) else velocity
    v = v * mask * eulerian.border_fade(mask)
    n = int(s.fluid_loop_frames)
    final_dir = os.path.join(storage.object_dir(obj), FLUID_DIR)
    tmp_dir = storage.new_temp_dir(final_dir)
    rgb = np.zeros((size[1], size[0], 3), np.float32)
    gy, gx = np.mgrid[0:size[1], 0:size[0]].astype(np.float32)

    def inside(f):          # the sample point lies in the picture (else that fluid came from outside it)
        x, y = gx + f[0], gy + f[1]
        return (x >= -0.5) & (x <= size[0] - 0.5) & (y >= -0.5) & (y <= size[1] - 0.5)

    valid_b = np.zeros((n, size[1], size[0]), bool)
    try:
        with displacement.ExrWriter(scene, size) as writer:
            # b = sample at p + F_0->(N-t): F_0->k goes to frame t = N - k (file N - k + 1, k = N..1)
            for k, f in enumerate(eulerian.integrate_steps(v, n)):
                if k == 0:
                    continue
                rgb[..., :2] = np.moveaxis(fields.to_uv_offset(-f[None])[0], 0, -1)
                valid_b[n - k] = inside(f)
                writer.write(os.path.join(tmp_dir, f"b_{n - k + 1:04d}.exr"), rgb)
            # a = sample at p + F_0->-t with weight 1 - t/N; B holds b's weight t/N, normalised per pixel as
            # the splats are: where only one of the two samples lies in the picture, it gets all the weight
            for t, f in enumerate(eulerian.integrate_steps(-v, n - 1)):
                rgb[..., :2] = np.moveaxis(fields.to_uv_offset(-f[None])[0], 0, -1)
                va, vb = inside(f), valid_b[t]
                rgb[..., 2] = np.where(va == vb, t / n, np.where(va, 0.0, 1.0))
                writer.write(os.path.join(tmp_dir, f"a_{t + 1:04d}.exr"), rgb)
        storage.swap_dir(tmp_dir, final_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    img_a = displacement.sequence_image(obj, f"{FLUID_DIR}/a_0001.exr", "fluid a")
    img_b = displacement.sequence_image(obj, f"{FLUID_DIR}/b_0001.exr", "fluid b")
    for img in (img_a, img_b):
        img.colorspace_settings.name = "Non-Color"
    start = int(s.start_frame) if s.has_motion else int(scene.frame_start)
    displacement.unwire_shader(plane)
    displacement.unwire_geometry(obj)
    if s.source_image is None:
        s.source_image = plane.node.image
    plane.node.image = s.source_image
    wire_fluid_shader(plane, img_a, img_b, start, n)
    s.display = "LIVE"
    return {"frames": n, "size": size, "seconds": time.perf_counter() - t0}


def wire_fluid_shader(plane, img_a, img_b, start: int, count: int) -> None:
    """base.Vector <- UV - a(UV); a second texture of the still at UV - b(UV); colour = mix(base, second,
    a(UV).B); everything the base's colour fed now takes the mix."""
    P = displacement.FLUID_NODE_PREFIX
    nt = plane.material.node_tree
    nodes, links = nt.nodes, nt.links
    base = plane.node
    x, y = base.location.x, base.location.y

    def node(kind: str, name: str, dx: float, dy: float):
        n = nodes.new(kind)
        n.name = n.label = f"{P} {name}"
        n.location = x + dx, y + dy
        return n

    uv = node("ShaderNodeTexCoord", "UV", -900, -100)
    flows, offsets = [], []
    for i, (img, tag) in enumerate(((img_a, "A"), (img_b, "B"))):
        f = node("ShaderNodeTexImage", f"Flow {tag}", -650, -250 - 300 * i)
        f.image, f.interpolation, f.extension = img, "Linear", "EXTEND"
        displacement.set_sequence_user(f.image_user, count, start, True)
        o = node("ShaderNodeVectorMath", f"Offset {tag}", -350, -100 - 300 * i)
        o.operation = "SUBTRACT"
        links.new(uv.outputs["UV"], f.inputs["Vector"])
        links.new(uv.outputs["UV"], o.inputs[0])
        links.new(f.outputs["Color"], o.inputs[1])
        flows.append(f)
        offsets.append(o)
    second = node("ShaderNodeTexImage", "Still B", -100, -450)
    second.image, second.interpolation, second.extension = base.image, base.interpolation, "EXTEND"
    base.extension = "EXTEND"
    weight = node("ShaderNodeSeparateColor", "Weight", -350, 150)
    mix = nodes.new("ShaderNodeMix")
    mix.name = mix.label = displacement.NODE_FLUID_MIX
    mix.data_type, mix.blend_type = "RGBA", "MIX"
    mix.location = x + 300, y
    targets = [link.to_socket for link in base.outputs["Color"].links]
    for link in list(base.inputs["Vector"].links):
        links.remove(link)
    links.new(offsets[0].outputs["Vector"], base.inputs["Vector"])
    links.new(offsets[1].outputs["Vector"], second.inputs["Vector"])
    links.new(flows[0].outputs["Color"], weight.inputs["Color"])
    links.new(weight.outputs["Blue"], mix.inputs[0])
    links.new(base.outputs["Color"], mix.inputs[6])
    links.new(second.outputs["Color"], mix.inputs[7])
    for sock in targets:
        links.new(mix.outputs[2], sock)


def export_velocity(obj, scene, directory: str | None = None) -> dict:
    """`<dir>/<key>_velocity/velocity.exr` (R = u, G = v px/frame of the image, y up; B = mask),
    velocity.npz (y down, px/frame of its grid, mask) and velocity.json; the folder is replaced whole."""
    info = displacement.PlaneInfo(obj)
    velocity, mask = load_velocity(obj)
    size = info.size
    v_img = sp.resize_field(velocity, size) if velocity.shape[1:] != (size[1], size[0]) else velocity
    m_img = sp.resize_planes(mask.astype(np.float32), size) >= 0.5 if mask.shape != (size[1], size[0]) else mask
    final = os.path.join(directory or storage.object_dir(obj), f"{storage.object_key(obj)}_velocity")
    tmp = storage.new_temp_dir(final)
    try:
        rgb = np.stack([v_img[0], -v_img[1], m_img.astype(np.float32)], -1)
        with displacement.ExrWriter(scene, size) as writer:
            writer.write(os.path.join(tmp, "velocity.exr"), rgb)
        np.savez(os.path.join(tmp, "velocity.npz"), velocity=v_img.astype(np.float32), mask=m_img.astype(np.uint8))
        meta = {"units": "pixels per frame", "width": size[0], "height": size[1],
                "exr_channels": {"R": "u (x right)", "G": "v (y up)", "B": "fluid mask"},
                "npz": {"velocity": "(2, H, W) x right, y down", "mask": "(H, W) 1 = fluid"},
                "loop_frames": int(obj.gid.fluid_loop_frames), "scene_fps": scene_fps(scene)}
        with open(os.path.join(tmp, "velocity.json"), "w") as fh:
            json.dump(meta, fh, indent=1)
        storage.swap_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"directory": final, "size": size}


# --------------------------------------------------------------------------------------------------------
# operators


def _plane_of(context):
    obj = context.active_object
    if obj is not None and obj.type == "CURVE" and STROKE_TAG in obj and obj.parent is not None:
        obj = obj.parent
    displacement.PlaneInfo(obj)
    return obj


class GID_OT_add_flow_stroke(bpy.types.Operator):
    """Add a flow stroke (a curve on the plane; edit its points to follow the flow, its direction is the
    flow's)"""

    bl_idname = "gid.add_flow_stroke"
    bl_label = "Add Flow Stroke"
    bl_options = {"REGISTER", "UNDO"}

    start: FloatVectorProperty(name="Start (UV)", size=2, default=(0.1, 0.5), min=0.0, max=1.0)
    end: FloatVectorProperty(name="End (UV)", size=2, default=(0.9, 0.5), min=0.0, max=1.0)
    speed: FloatProperty(name="Speed", default=1.0, min=0.0, soft_max=8.0, description="px/frame of the image")

    def execute(self, context):
        try:
            plane = _plane_of(context)
            ob = add_stroke(plane, tuple(self.start), tuple(self.end), self.speed)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"added {ob.name} ({self.speed:g} px/frame)")
        return {"FINISHED"}


class GID_OT_predict_flow(bpy.types.Operator):
    """Densify the flow strokes inside the fluid mask into a velocity field (locally, no backend)"""

    bl_idname = "gid.predict_flow"
    bl_label = "Predict Flow"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        try:
            obj = _plane_of(context)
            info = predict_flow(obj, context.scene)
        except (ValueError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"{obj.name}: flow from {info['strokes']} stroke(s) at {info['size'][0]}x"
                              f"{info['size'][1]}, median {info['median_speed']:.2f} px/frame")
        return {"FINISHED"}


class GID_OT_apply_fluid(bpy.types.Operator):
    """Write the live fluid loop (two offset sequences mixed by the loop weight) and wire it into the
    plane's material (no backend needed)"""

    bl_idname = "gid.apply_fluid"
    bl_label = "Apply Fluid Displacement"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        try:
            obj = _plane_of(context)
            info = apply_live(obj, context.scene)
        except (ValueError, OSError, RuntimeError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"{obj.name}: fluid loop of {info['frames']} frames at {info['size'][0]}x"
                              f"{info['size'][1]} in {info['seconds']:.2f} s")
        return {"FINISHED"}


class GID_OT_bake_fluid(connection.TaskOperatorMixin, bpy.types.Operator):
    """Render the fluid loop with the backend into a cyclic image sequence on the plane"""

    bl_idname = "gid.bake_fluid"
    bl_label = "Bake Fluid Loop"

    def make_task(self, context):
        return FluidBakeTask(_plane_of(context), context.scene)


class GID_OT_export_velocity(bpy.types.Operator):
    """Export the fluid velocity field for Nuke / After Effects (EXR: R = u, G = v px/frame, y up; B = mask)
    and as .npz"""

    bl_idname = "gid.export_velocity"
    bl_label = "Export Flow"

    directory: bpy.props.StringProperty(subtype="DIR_PATH", description="Folder for <object>_velocity/ "
                                                                         "(default: the object's folder)")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        try:
            obj = _plane_of(context)
            info = export_velocity(obj, context.scene, bpy.path.abspath(self.directory) if self.directory else None)
        except (ValueError, OSError, RuntimeError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"exported the velocity field to {info['directory']}")
        return {"FINISHED"}


CLASSES = (GID_OT_add_flow_stroke, GID_OT_predict_flow, GID_OT_apply_fluid, GID_OT_bake_fluid,
           GID_OT_export_velocity)
