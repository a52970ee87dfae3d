"""View3D sidebar tab "Dynamics" and the status-bar progress."""
from __future__ import annotations

import bpy

from . import connection, displacement, fluid, pokes


def _plane(context):
    obj = context.active_object
    if obj is not None and (obj.get(pokes.POKE_TAG) or obj.get(fluid.STROKE_TAG) is not None) \
            and obj.parent is not None:
        obj = obj.parent
    try:
        displacement.PlaneInfo(obj)
    except ValueError:
        return None
    return obj


class _Panel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Dynamics"


class GID_PT_main(_Panel, bpy.types.Panel):
    bl_idname = "GID_PT_main"
    bl_label = "Image Dynamics"

    def draw(self, context):
        layout = self.layout
        job = context.window_manager.gid_job
        layout.label(text=job.status, icon="LINKED" if not job.status.startswith("not") else "UNLINKED")
        row = layout.row(align=True)
        row.operator("gid.connect")
        row.operator("gid.start_backend", text="Start")
        if job.busy:
            row = layout.row(align=True)
            row.progress(factor=job.progress, type="BAR", text=job.label)
            row.operator("gid.cancel_job", text="", icon="CANCEL")
        elif job.message:
            layout.label(text=job.message)
        layout.operator("gid.import_image", icon="IMAGE_DATA")
        obj = _plane(context)
        if obj is None:
            layout.label(text="Select an image plane", icon="INFO")
            return
        s = obj.gid
        box = layout.box()
        box.label(text="Motion", icon="FORCE_HARMONIC")
        row = box.row(align=True)
        row.prop(s, "samples")
        row.prop(s, "seed")
        box.prop(s, "seamless")
        box.prop(s, "placement")
        row = box.row(align=True)
        row.enabled = not job.busy
        row.operator("gid.predict_motion", icon="PLAY")
        row.operator("gid.load_motion", text="", icon="FILE_FOLDER")
        if s.has_motion:
            box.label(text=f"{s.variations} variation(s), {s.fps:g} fps, T={s.T}, showing: {s.display.lower()}")
            if s.variations > 1:
                box.prop(s, "variation")
        box = layout.box()
        box.label(text="Depth layers (2.5D)", icon="CAMERA_DATA")
        row = box.row()
        row.enabled = not job.busy
        row.operator("gid.build_depth_layers", icon="MOD_EXPLODE")
        if obj.get("gid_depth_notes"):
            box.label(text=str(obj["gid_depth_notes"])[:120])


class GID_PT_controls(_Panel, bpy.types.Panel):
    bl_idname = "GID_PT_controls"
    bl_label = "Controls"
    bl_parent_id = "GID_PT_main"

    @classmethod
    def poll(cls, context):
        obj = _plane(context)
        return obj is not None and obj.gid.has_motion

    def draw(self, context):
        layout = self.layout
        s = _plane(context).gid
        col = layout.column()
        col.prop(s, "loop_frames")
        col.prop(s, "start_frame")
        col.prop(s, "speed")
        col.prop(s, "magnitude")
        col.prop(s, "direction")
        col.prop(s, "direction_bias")
        col.prop(s, "mask_image")
        col.prop_search(s, "mask_vertex_group", _plane(context), "vertex_groups")
        col.separator()
        col.prop(s, "live_mode")
        if s.live_mode == "GEOMETRY":
            col.prop(s, "geometry_levels")
        col.prop(s, "live_max_width")
        col.prop(s, "auto_update")
        row = col.row(align=True)
        row.operator("gid.apply_displacement", icon="MOD_DISPLACE")
        row.operator("gid.show_still", text="", icon="IMAGE")
        col.separator()
        row = col.row(align=True)
        row.prop(s, "bake_format", text="")
        row.prop(s, "bake_mode", text="")
        col.prop(s, "bake_chunk")
        col.operator("gid.bake_sequence", icon="RENDER_ANIMATION").mode = "OBJECT"
        col.operator("gid.export_flow", icon="EXPORT")


class GID_PT_pokes(_Panel, bpy.types.Panel):
    bl_idname = "GID_PT_pokes"
    bl_label = "Pokes"
    bl_parent_id = "GID_PT_main"

    @classmethod
    def poll(cls, context):
        obj = _plane(context)
        return obj is not None and obj.gid.has_motion

    def draw(self, context):
        layout = self.layout
        plane = _plane(context)
        s = plane.gid
        layout.operator("gid.add_poke", icon="EMPTY_SINGLE_ARROW")
        for ob in pokes.pokes_of(plane):
            row = layout.row(align=True)
            row.operator("gid.select_poke", text=ob.name, icon="EMPTY_SINGLE_ARROW").name = ob.name
            row.prop(ob, '["strength"]', text="")
            row.prop(ob, '["duration"]', text="")
        col = layout.column(align=True)
        col.prop(s, "poke_damping")
        col.prop(s, "poke_mass")
        col.prop(s, "poke_stiffness")
        row = layout.row(align=True)
        row.prop(s, "ambient_weight")
        row.prop(s, "poke_weight")
        layout.operator("gid.bake_pokes", icon="PHYSICS")


class GID_PT_fluid(_Panel, bpy.types.Panel):
    bl_idname = "GID_PT_fluid"
    bl_label = "Fluid"
    bl_parent_id = "GID_PT_main"

    @classmethod
    def poll(cls, context):
        return _plane(context) is not None

    def draw(self, context):
        layout = self.layout
        plane = _plane(context)
        s = plane.gid
        col = layout.column()
        col.prop(s, "fluid_mask_image")
        col.prop_search(s, "fluid_mask_vertex_group", plane, "vertex_groups")
        col.operator("gid.add_flow_stroke", icon="CURVE_PATH")
        for ob in fluid.strokes_of(plane):
            row = col.row(align=True)
            row.label(text=ob.name, icon="CURVE_DATA")
            row.prop(ob, f'["{fluid.STROKE_TAG}"]', text="px/frame")
        col.operator("gid.predict_flow", icon="FORCE_WIND")
        col.prop(s, "fluid_loop_frames")
        if s.has_motion:
            col.prop(s, "fluid_sway_outside")
        row = col.row(align=True)
        row.enabled = s.has_fluid
        row.operator("gid.apply_fluid", icon="MOD_DISPLACE")
        row.operator("gid.show_still", text="", icon="IMAGE")
        row = col.row(align=True)
        row.enabled = s.has_fluid and not context.window_manager.gid_job.busy
        row.operator("gid.bake_fluid", icon="RENDER_ANIMATION")
        row.operator("gid.export_velocity", text="", icon="EXPORT")


def draw_status(self, context):
    job = context.window_manager.gid_job
    if job.busy:
        self.layout.progress(factor=job.progress, type="BAR", text=job.label)


CLASSES = (GID_PT_main, GID_PT_controls, GID_PT_pokes, GID_PT_fluid)
