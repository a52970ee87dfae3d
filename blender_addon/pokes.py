"""Poke handles (issue 8, Blender half): keyframed impulses answered by image-space modal dynamics.

A poke is an Empty (single arrow) parented to the image plane. Where it is says where the image is pushed;
its arrow (local +Z, projected onto the plane) says which way; `strength` (pixels of the image, roughly the
swing it causes), `duration` (frames) and `kind` ("push", or "drag": pull and release) are custom properties
(strength and duration keyframable). Each keyframe of `strength` with a
value > 0 is one push at that frame. `gid.bake_pokes` reads the keys, simulates the response with
`shared.modal.simulate` (numpy, locally; no backend needed), stores it in `pokes.npz` and re-applies the live
displacement, where it is added to the ambient loop with the Ambient / Pokes weights.
"""
from __future__ import annotations

import math
import os
import time

import bpy
import numpy as np
from bpy.props import FloatProperty, FloatVectorProperty, IntProperty
from mathutils import Vector

from . import animation, displacement, fields, storage
from .animation import scene_fps
from .vendor import modal

POKE_TAG = "gid_poke"


def pokes_of(plane) -> list:
    return sorted((ob for ob in plane.children if ob.get(POKE_TAG)), key=lambda ob: ob.name)


def add_poke(plane, scene, local_xy=None, frame: int | None = None, strength: float = 2.0, duration: int = 1,
             angle: float = 0.0, kind: str = "push"):
    """Create a poke Empty on `plane` at local (x, y) (default: the 3D cursor projected onto the plane) and key
    its strength at `frame` (default: the current frame). angle: direction in the image, counter-clockwise from
    +x. kind: "push" (an impulse) or "drag" (pull the point by `strength` pixels over `duration` frames, then
    let go). Returns the Empty."""
    if kind not in ("push", "drag"):
        raise ValueError(f"poke kind must be 'push' or 'drag', not {kind!r}")
    info = displacement.PlaneInfo(plane)
    if local_xy is None:
        cursor_local = plane.matrix_world.inverted() @ scene.cursor.location
        local_xy = (cursor_local.x, cursor_local.y)
    empty = bpy.data.objects.new(f"Poke {plane.name}", None)
    empty.empty_display_type = "SINGLE_ARROW"
    empty.empty_display_size = 0.15 * float(max(info.extent[0], info.extent[1]))
    for coll in plane.users_collection:
        coll.objects.link(empty)
    empty.parent = plane
    empty.matrix_parent_inverse.identity()
    empty.location = (local_xy[0], local_xy[1], 0.0)
    # SINGLE_ARROW points along local +Z: tilt it into the plane (Y by 90 deg), then turn it about the normal
    # (XYZ Euler = Rz @ Ry @ Rx).
    empty.rotation_euler = (0.0, math.pi / 2, angle)
    empty[POKE_TAG] = True
    empty["strength"] = float(strength)
    empty.id_properties_ui("strength").update(min=0.0, soft_max=50.0, description="Push in image pixels")
    empty["kind"] = kind
    empty["duration"] = int(duration)
    empty.id_properties_ui("duration").update(min=1, soft_max=60, description="Frames the push lasts")
    frame = scene.frame_current if frame is None else int(frame)
    key_strength(empty, frame, strength)
    return empty


def key_strength(empty, frame: int, strength: float) -> None:
    """Key `strength` at a frame; keys are CONSTANT so a push is a step, not a ramp."""
    empty["strength"] = float(strength)
    empty.keyframe_insert(data_path='["strength"]', frame=frame)
    fc = animation.find(empty, '["strength"]')
    if fc is not None:
        for k in fc.keyframe_points:
            k.interpolation = "CONSTANT"


def poke_events(plane, empty, scene, grid: tuple[int, int]) -> list[dict]:
    """Pushes of one Empty: [{scene_frame, x, y (grid pixels), ux, uy (unit, y down), strength, duration}]."""
    fc = animation.find(empty, '["strength"]')
    keys = [(int(round(k.co.x)), float(k.co.y)) for k in fc.keyframe_points] if fc is not None else []
    info = displacement.PlaneInfo(plane)
    events = []
    for frame, strength in keys:
        if strength <= 0:
            continue
        scene.frame_set(frame)
        m = plane.matrix_world.inverted() @ empty.matrix_world
        loc = m.translation
        d = m.to_3x3() @ Vector((0.0, 0.0, 1.0))
        # local plane axes -> image axes: x right, y down (scaled by the grid's aspect)
        ux, uy = d.x / info.extent[0] * grid[0], -d.y / info.extent[1] * grid[1]
        norm = math.hypot(ux, uy)
        if norm < 1e-9:
            continue
        x, y = info.local_to_pixel((loc.x, loc.y), grid)
        duration = int(animation.value_at(empty, '["duration"]', frame, empty.get("duration", 1)))
        events.append({"scene_frame": frame, "x": min(max(x, 0.0), grid[0] - 1.0),
                       "y": min(max(y, 0.0), grid[1] - 1.0), "ux": ux / norm, "uy": uy / norm,
                       "strength": strength, "duration": max(1, duration),
                       "kind": "drag" if empty.get("kind") == "drag" else "push"})
    return events


def bake_pokes(plane, scene) -> dict:
    """Simulate every poke of `plane` over the scene range, store the response, re-apply live displacement."""
    t0 = time.perf_counter()
    s = plane.gid
    info = displacement.PlaneInfo(plane)
    motion = storage.load_motion(plane)
    spec = motion.variation(s.variation)
    grid = (spec.shape[-1], spec.shape[-2])
    first, last = scene.frame_start, scene.frame_end
    ratio = motion.fps / scene_fps(scene)      # clip frames per scene frame
    saved_frame = scene.frame_current
    try:
        events = [e for ob in pokes_of(plane) for e in poke_events(plane, ob, scene, grid)]
    finally:
        scene.frame_set(saved_frame)
    path = os.path.join(storage.object_dir(plane), storage.POKES_FILE)
    if not events:
        s.has_pokes = False
        if os.path.exists(path):
            os.remove(path)
        return {"pokes": 0, "seconds": time.perf_counter() - t0}
    image_w = info.size[0]
    pokes = []
    for e in events:
        if e["scene_frame"] < first:
            continue
        push = e["strength"] * grid[0] / image_w      # image pixels -> grid pixels
        pokes.append({"frame": int(round((e["scene_frame"] - first) * ratio)), "x": e["x"], "y": e["y"],
                      "dx": push * e["ux"], "dy": push * e["uy"],
                      "duration": max(1, int(round(e["duration"] * ratio))), "kind": e["kind"]})
    count = int(math.ceil((last - first) * ratio)) + 2
    # The simulation of shared.modal.simulate, kept as modal coordinates (see fields.PokeResponse):
    # displacement = Re(phi z) is evaluated at the live size when the sequence is written.
    m = modal()
    basis = m.modes_from_spectral(spec, motion.fps, motion.T)
    dyn = m.make_dynamics(basis, s.poke_damping, s.poke_mass, s.poke_stiffness)
    z, _, _ = m.modal_trajectory(basis, dyn, m.parse_pokes(pokes, basis.size), count)
    t_sim = time.perf_counter() - t0
    scene_frames = np.arange(first, last + 1)
    z_scene = fields.resample_time_complex(z, (scene_frames - first) * ratio)
    storage.atomic_savez(path, z_re=z_scene.real.astype(np.float32), z_im=z_scene.imag.astype(np.float32),
                         first_frame=np.int64(first), variation=np.int64(s.variation))
    s.has_pokes = True
    live = displacement.apply(plane, scene)
    return {"pokes": len(pokes), "frames": len(scene_frames), "simulate_seconds": t_sim,
            "seconds": time.perf_counter() - t0, "live_seconds": live["seconds"]}


class GID_OT_add_poke(bpy.types.Operator):
    """Add a poke handle on the image plane at the 3D cursor, keyed at the current frame"""

    bl_idname = "gid.add_poke"
    bl_label = "Add Poke"
    bl_options = {"REGISTER", "UNDO"}

    strength: FloatProperty(name="Strength", default=2.0, min=0.0, soft_max=50.0, description="Pixels")
    duration: IntProperty(name="Duration", default=1, min=1, soft_max=60)
    direction: FloatProperty(name="Direction", default=0.0, subtype="ANGLE")
    kind: bpy.props.EnumProperty(name="Kind", items=[
        ("push", "Push", "An impulse: the image rings and decays"),
        ("drag", "Drag and release", "Pull the point by Strength pixels over Duration frames, then let go")],
        default="push")
    uv: FloatVectorProperty(name="Position (UV)", size=2, default=(-1.0, -1.0),
                            description="Where on the image (0..1, v up); negative = at the 3D cursor")
    frame: IntProperty(name="Frame", default=-1000000, description="Frame of the push (default: current)")

    def execute(self, context):
        try:
            plane = context.active_object
            if plane is not None and plane.get(POKE_TAG) and plane.parent is not None:
                plane = plane.parent
            info = displacement.PlaneInfo(plane)
            local = None
            if self.uv[0] >= 0 and self.uv[1] >= 0:
                local = (info.lo[0] + self.uv[0] * info.extent[0], info.lo[1] + self.uv[1] * info.extent[1])
            frame = None if self.frame == -1000000 else self.frame
            empty = add_poke(plane, context.scene, local, frame, self.strength, self.duration, self.direction,
                             self.kind)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"added {empty.name}")
        return {"FINISHED"}


class GID_OT_bake_pokes(bpy.types.Operator):
    """Simulate the plane's pokes (modal dynamics) and add them to the live displacement"""

    bl_idname = "gid.bake_pokes"
    bl_label = "Bake Pokes"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        plane = context.active_object
        if plane is not None and plane.get(POKE_TAG) and plane.parent is not None:
            plane = plane.parent
        try:
            info = bake_pokes(plane, context.scene)
        except (ValueError, RuntimeError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"{info['pokes']} poke(s) baked in {info['seconds']:.2f} s")
        return {"FINISHED"}


class GID_OT_select_poke(bpy.types.Operator):
    """Select a poke handle"""

    bl_idname = "gid.select_poke"
    bl_label = "Select Poke"
    bl_options = {"REGISTER", "UNDO"}

    name: bpy.props.StringProperty()

    def execute(self, context):
        ob = bpy.data.objects.get(self.name)
        if ob is None:
            return {"CANCELLED"}
        for other in context.selected_objects:
            other.select_set(False)
        ob.select_set(True)
        context.view_layer.objects.active = ob
        return {"FINISHED"}


CLASSES = (GID_OT_add_poke, GID_OT_bake_pokes, GID_OT_select_poke)
