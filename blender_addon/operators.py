"""The workflow operators (`gid.*`). Each works in the UI (non-blocking, progress, Esc cancels) and in scripts
or background mode (blocking: timers never fire there), chosen by `bpy.app.background` or `blocking=True`."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from . import bake, connection, depth_layers, displacement, fields, storage
from .client import BackendError
from .animation import default_loop_frames, scene_fps

def active_plane(context):
    obj = context.active_object
    displacement.PlaneInfo(obj)   # raises ValueError with a clear message when it is not an image plane
    return obj


def install_motion(obj, scene, motion: storage.Motion) -> None:
    """Store motion for an object and set its controls' defaults the first time."""
    storage.save_motion(obj, motion)
    s = obj.gid
    first = not s.has_motion
    s.fps, s.T, s.variations = motion.fps, motion.T, motion.spectral.shape[0]
    s.variation = min(s.variation, s.variations - 1)
    if first:
        s.loop_frames = default_loop_frames(scene)
        s.start_frame = scene.frame_start
    s.has_motion = True


_TaskOperator = connection.TaskOperatorMixin


# --------------------------------------------------------------------------------------------------------
# image and motion in


class GID_OT_import_image(bpy.types.Operator):
    """Import an image as a plane ready for dynamics (Images as Planes, emission shader, facing +Z)"""

    bl_idname = "gid.import_image"
    bl_label = "Import Image"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH")
    filter_image: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})
    height: FloatProperty(name="Height", default=1.0, min=1e-4)

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        path = bpy.path.abspath(self.filepath)
        if not os.path.isfile(path):
            self.report({"ERROR"}, f"no such image file: {path}")
            return {"CANCELLED"}
        # Images as Planes makes a plane even for a file Blender cannot read: check the file first, and
        # remove whatever the import made if anything after it fails.
        try:
            probe_image(path)
            with removed_on_failure():
                obj, size = self._import(context, path)
        except (ValueError, RuntimeError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"imported {obj.name} ({size[0]}x{size[1]})")
        return {"FINISHED"}

    def _import(self, context, path: str):
        if context.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        result = bpy.ops.image.import_as_mesh_planes(
            files=[{"name": os.path.basename(path)}], directory=os.path.dirname(path) + os.sep,
            shader="EMISSION", align_axis="+Z", height=self.height, relative=bool(bpy.data.filepath))
        if "FINISHED" not in result or context.active_object is None:
            raise ValueError(f"could not import {path} as a plane")
        obj = context.active_object
        plane = displacement.PlaneInfo(obj)
        size = plane.size                # ValueError when the image has no pixels
        plane.node.extension = "EXTEND"
        obj.gid.source_image = plane.node.image
        storage.object_key(obj)
        return obj, size


# Datablock collections an import can add to.
_IMPORT_COLLECTIONS = ("objects", "meshes", "materials", "images", "textures", "node_groups")


def probe_image(path: str) -> None:
    """ValueError unless Blender can decode `path` as an image with pixels (the probe leaves no datablock)."""
    name = os.path.basename(path)
    if os.path.getsize(path) == 0:
        raise ValueError(f"{name} is empty, not an image")
    try:
        img = bpy.data.images.load(path, check_existing=False)
    except RuntimeError as exc:
        raise ValueError(f"{name} is not an image Blender can read ({exc})") from None
    try:
        width, height = img.size       # decodes the file; (0, 0) when it cannot
    finally:
        bpy.data.images.remove(img)
    if width == 0 or height == 0:
        raise ValueError(f"{name} is not an image Blender can read (unknown format, or damaged/truncated)")


@contextlib.contextmanager
def removed_on_failure():
    """Datablocks created inside the block are removed again if it raises (no half-imported plane)."""
    before = {c: {b.as_pointer() for b in getattr(bpy.data, c)} for c in _IMPORT_COLLECTIONS}
    try:
        yield
    except BaseException:
        for c in _IMPORT_COLLECTIONS:       # objects first: they use the meshes, which use the materials
            coll = getattr(bpy.data, c)
            for block in [b for b in coll if b.as_pointer() not in before[c]]:
                coll.remove(block)
        raise


class GID_OT_load_motion(bpy.types.Operator):
    """Use motion from a file (.npz with spectral, fps, T), e.g. extracted from a video clip"""

    bl_idname = "gid.load_motion"
    bl_label = "Load Motion"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})
    apply: BoolProperty(name="Apply live displacement", default=True)

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        # The file is read and checked completely before anything is written; if storing or applying it
        # fails, the object's settings and its previous motion file are put back.
        try:
            obj = active_plane(context)
            motion = storage.read_motion_file(bpy.path.abspath(self.filepath))
            with storage.motion_rollback(obj):
                install_motion(obj, context.scene, motion)
                if self.apply:
                    displacement.apply(obj, context.scene)
        except (ValueError, OSError, RuntimeError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"{obj.name}: motion with {motion.spectral.shape[0]} variation(s), "
                              f"K={motion.spectral.shape[1]}, {motion.fps:g} fps, T={motion.T}")
        return {"FINISHED"}


class PredictTask(connection.Task):
    label = "Predicting motion"

    def __init__(self, obj, scene, seed: int, samples: int, loop: bool, steps: int = 0, max_width: int = 1024,
                 placement: float | None = None):
        super().__init__()
        plane = displacement.PlaneInfo(obj)
        size = fields.live_size(plane.size, max_width)
        px = displacement.image_pixels(plane.image, size)[..., :3]
        self.image = np.clip(np.rint(px * 255.0), 0, 255).astype(np.uint8)
        self.obj_name, self.scene_name = obj.name, scene.name
        self.args = {"image": self.image, "seed": int(seed), "samples": int(samples), "loop": bool(loop)}
        if steps:
            self.args["steps"] = int(steps)
        if placement is not None:
            self.args["placement"] = float(placement)

    def start(self, cl) -> None:
        self.submit(cl, "predict", self.args)

    def on_job_done(self, job) -> None:
        r = job.result
        motion = storage.validate_motion(r["spectral"], r["fps"], r["T"], tuple(r.get("size") or ()) or None)
        obj = bpy.data.objects[self.obj_name]
        scene = bpy.data.scenes[self.scene_name]
        install_motion(obj, scene, motion)
        info = displacement.apply(obj, scene)
        self.succeed(f"{obj.name}: {motion.spectral.shape[0]} variation(s) predicted; live displacement "
                     f"{info['frames']} frames in {info['seconds']:.1f} s")


class GID_OT_predict_motion(_TaskOperator, bpy.types.Operator):
    """Predict motion for the image plane with the backend (Esc cancels)"""

    bl_idname = "gid.predict_motion"
    bl_label = "Predict Motion"

    samples: IntProperty(name="Samples", default=0, min=0, max=16,
                         description="Variations to predict (0 = the object's Samples setting)")
    seed: IntProperty(name="Seed", default=-1, min=-1, description="-1 = the object's Seed setting")
    steps: IntProperty(name="Steps", default=0, min=0, max=1000, description="Diffusion steps (0 = default)")

    def make_task(self, context):
        obj = active_plane(context)
        s = obj.gid
        return PredictTask(obj, context.scene, s.seed if self.seed < 0 else self.seed,
                           self.samples or s.samples, s.seamless, self.steps, placement=s.placement)


class GID_OT_cancel_job(bpy.types.Operator):
    """Cancel the running backend job"""

    bl_idname = "gid.cancel_job"
    bl_label = "Cancel"

    def execute(self, context):
        task = connection.current_task()
        if task is None:
            return {"CANCELLED"}
        task.cancel()
        return {"FINISHED"}


# --------------------------------------------------------------------------------------------------------
# live displacement, bake, export


class GID_OT_apply_displacement(bpy.types.Operator):
    """Write the live displacement sequence and wire it into the plane (no backend needed)"""

    bl_idname = "gid.apply_displacement"
    bl_label = "Apply Displacement"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        try:
            obj = active_plane(context)
            info = displacement.apply(obj, context.scene)
        except (ValueError, OSError, RuntimeError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"{obj.name}: {info['frames']} frames at {info['size'][0]}x{info['size'][1]} "
                              f"in {info['seconds']:.2f} s")
        return {"FINISHED"}


class GID_OT_show_still(bpy.types.Operator):
    """Show the still image (remove displacement and baked frames from the material)"""

    bl_idname = "gid.show_still"
    bl_label = "Show Still"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        try:
            displacement.show_still(active_plane(context))
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class GID_OT_bake_sequence(_TaskOperator, bpy.types.Operator):
    """Render the loop (or the scene range) with the backend into an image sequence on the plane"""

    bl_idname = "gid.bake_sequence"
    bl_label = "Bake Sequence"

    mode: EnumProperty(name="Renderer", items=[("OBJECT", "Object setting", ""), ("ibr", "Image-based", ""),
                                               ("splat", "Splat preview", "")], default="OBJECT")

    def make_task(self, context):
        obj = active_plane(context)
        return bake.BakeTask(obj, context.scene, mode=None if self.mode == "OBJECT" else self.mode)


class GID_OT_export_flow(bpy.types.Operator):
    """Export the displacement as an EXR sequence for Nuke IDistort / After Effects (backward offsets in
    pixels: R = u, G = v, y up; UV = where each output pixel samples the still)"""

    bl_idname = "gid.export_flow"
    bl_label = "Export Flow"

    directory: StringProperty(subtype="DIR_PATH", description="Folder in which <object>_flow/flow_####.exr is "
                                                              "written (default: the object's folder)")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        try:
            obj = active_plane(context)
            info = export_flow(obj, context.scene, bpy.path.abspath(self.directory) if self.directory else None)
        except (ValueError, OSError, RuntimeError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"exported {info['frames']} flow frames to {info['directory']}")
        return {"FINISHED"}


def export_flow(obj, scene, directory: str | None = None, chunk: int = 16) -> dict:
    """IDistort convention: R/G = backward offset in pixels (where to sample from), x right, y up."""
    s = obj.gid
    plane = displacement.PlaneInfo(obj)
    motion = storage.load_motion(obj)
    size = plane.size
    mask = displacement.build_mask(obj, size)
    pokes = displacement.load_pokes(obj, motion, size)
    plan = displacement.make_plan(obj, scene, None if pokes is None else (pokes.first, pokes.last_frame))
    ambient = fields.Ambient(motion.variation(s.variation), motion.T, motion.fps, scene_fps(scene), plan, size)
    # Always a folder of our own (it is replaced as a whole), inside the one the user picked.
    final = os.path.join(directory or storage.object_dir(obj), f"{storage.object_key(obj)}_flow")
    tmp = storage.new_temp_dir(final)
    try:
        with displacement.ExrWriter(scene, size) as writer:
            for a in range(0, plan.count, chunk):
                idx = slice(a, min(a + chunk, plan.count))
                pk = pokes(plan.frames[idx]) if pokes is not None else None
                f = fields.controlled(ambient, motion.T, motion.fps, scene_fps(scene), plan, idx, mask, pk)
                rgb = np.zeros((f.shape[0], size[1], size[0], 3), np.float32)
                rgb[..., 0], rgb[..., 1] = -f[:, 0], f[:, 1]     # backward offset; y up (Nuke)
                for i in range(f.shape[0]):
                    writer.write(os.path.join(tmp, f"flow_{a + i + 1:04d}.exr"), rgb[i])
        meta = {"convention": "nuke_idistort", "units": "pixels", "channels": {"R": "u (x right)",
                                                                                "G": "v (y up)"},
                "meaning": "output pixel (x, y) samples the still at (x + u, y + v)",
                "width": size[0], "height": size[1], "frames": [int(f) for f in plan.frames],
                "cyclic": plan.cyclic, "scene_fps": scene_fps(scene)}
        with open(os.path.join(tmp, "flow.json"), "w") as fh:
            json.dump(meta, fh, indent=1)
        storage.swap_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"frames": plan.count, "directory": final}


# --------------------------------------------------------------------------------------------------------
# depth layers (2.5D projection)


class DepthTask(connection.Task):
    label = "Estimating depth"

    def __init__(self, image: np.ndarray):
        super().__init__()
        self.image = image
        self.depth = None

    def start(self, cl) -> None:
        self.submit(cl, "depth", {"image": self.image})

    def on_job_done(self, job) -> None:
        self.depth = np.asarray(job.result["depth"], np.float32)
        self.succeed("depth estimated")


def estimate_depth(image: np.ndarray, context) -> np.ndarray:
    """Inverse depth of a uint8 picture: in-process when the backend's package imports here (a Blender whose
    Python has torch, or tests), else the `depth` op of the connected backend."""
    try:
        from backend.priors.depth import estimate_inverse_depth
    except ImportError:
        task = connection.run_blocking(DepthTask(image), context, timeout=300.0)
        if not task.ok or task.depth is None:
            raise RuntimeError(f"depth estimation failed: {task.message}")
        return task.depth
    return estimate_inverse_depth(image)


class GID_OT_build_depth_layers(bpy.types.Operator):
    """Cut the image plane into depth layers (hidden parts filled) seen through a new scene camera that
    reproduces the picture at frame 1; optional camera move keyframed over the scene's frame range"""

    bl_idname = "gid.build_depth_layers"
    bl_label = "Build Depth Layers"
    bl_options = {"REGISTER", "UNDO"}

    depth_path: StringProperty(name="Depth map", subtype="FILE_PATH",
                               description="EXR or 8/16-bit PNG depth of the picture (empty = estimate it)")
    depth_kind: EnumProperty(name="Depth kind", default="DISTANCE",
                             items=(("DISTANCE", "Distance", "Larger values are farther (Z pass, metres)"),
                                    ("INVERSE", "Inverse", "Larger values are nearer (disparity, gid depth)")))
    layers: IntProperty(name="Layers", default=0, min=0, max=8,
                        description="0 = automatic (cuts at depth discontinuities), else 2..8")
    geometry: EnumProperty(name="Geometry", default="MESH",
                           items=(("MESH", "Displaced mesh", "Each layer a grid displaced by its depth"),
                                  ("CARD", "Card", "Each layer a flat card at its median depth")))
    camera_move: EnumProperty(name="Camera move", default="NONE",
                              items=[(m, m.title(), f"{m.title()} out and back over the frame range")
                                     for m in depth_layers.MOVES])
    strength: FloatProperty(name="Strength", default=0.05, min=-1.0, max=1.0,
                            description="Move size as a fraction of the camera distance (orbit: radians)")

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self, width=420)

    def execute(self, context):
        try:
            obj = active_plane(context)
            plane = displacement.PlaneInfo(obj)
            size = plane.size
            rgb = displacement.image_pixels(plane.image)[..., :3]
            notes = []
            if self.depth_path:
                raw = depth_layers.read_depth_pixels(bpy.path.abspath(self.depth_path))
                kind = self.depth_kind
            else:
                raw = estimate_depth(np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8), context)
                kind = "INVERSE"
                notes.append("depth estimated (mobilePyDNet, relative)")
            if self.layers == 1:
                raise ValueError("layers must be 0 (automatic) or 2..8")
            raw = depth_layers.fit_depth(raw, size, notes)
            depth = depth_layers.to_relative_depth(raw, kind)
            info = depth_layers.build(context, obj, plane, rgb, depth, self.layers, self.geometry,
                                      self.camera_move, self.strength, storage)
        except (ValueError, OSError, RuntimeError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        notes += info["notes"]
        for note in notes:
            self.report({"WARNING"} if "another aspect" in note else {"INFO"}, note)
        obj["gid_depth_notes"] = "; ".join(notes)
        motion = f", motion shared with {info['motion_layers']}" if info["motion_layers"] else ""
        self.report({"INFO"}, f"{obj.name}: {info['layers']} depth layer(s), camera {info['camera']}{motion}")
        return {"FINISHED"}


CLASSES = (GID_OT_import_image, GID_OT_load_motion, GID_OT_predict_motion, GID_OT_cancel_job,
           GID_OT_apply_displacement, GID_OT_show_still, GID_OT_bake_sequence, GID_OT_export_flow,
           GID_OT_build_depth_layers)
