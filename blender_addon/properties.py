"""Per-object dynamics settings (`Object.gid`) and the window-manager job state shown in the panel."""
from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty)

from .displacement import on_control_changed


class GIDObjectSettings(bpy.types.PropertyGroup):
    key: StringProperty(name="Folder key", description="Name of this object's folder under <blend>_dynamics",
                        options=set())
    has_motion: BoolProperty(name="Has motion", default=False, options=set())
    fps: FloatProperty(name="Clip fps", default=30.0, options=set())
    T: IntProperty(name="Clip frames", default=150, options=set())
    variations: IntProperty(name="Variations", default=0, options=set())
    source_image: PointerProperty(type=bpy.types.Image, name="Still image",
                                  description="The still the motion was predicted for")

    variation: IntProperty(name="Variation", default=0, min=0, update=on_control_changed, options=set(),
                           description="Which predicted sample to use (predict with Samples > 1 to get several)")
    loop_frames: IntProperty(name="Loop length", default=0, min=0, soft_max=600, update=on_control_changed,
                             options=set(), description="Frames per loop at the scene frame rate "
                                                        "(0 = no loop: the clip's own motion). Set to 2 s on load")
    start_frame: IntProperty(name="Start frame", default=1, update=on_control_changed, options=set(),
                             description="Scene frame where the motion starts (shows the still)")
    speed: FloatProperty(name="Speed", default=1.0, min=0.01, soft_max=4.0, update=on_control_changed,
                         description="Time scale of the motion (animatable)")
    magnitude: FloatProperty(name="Magnitude", default=1.0, min=0.0, soft_max=5.0, update=on_control_changed,
                             description="Amplitude scale of the motion (animatable)")
    mask_image: PointerProperty(type=bpy.types.Image, name="Mask image", update=on_control_changed,
                                description="Grayscale: white moves, black is frozen")
    mask_vertex_group: StringProperty(name="Mask vertex group", update=on_control_changed,
                                      description="Painted weights: 1 moves, 0 is frozen")
    direction: FloatProperty(name="Direction", default=0.0, subtype="ANGLE", update=on_control_changed,
                             description="Preferred direction of motion in the image (0 = right, 90 = up)")
    direction_bias: FloatProperty(name="Direction bias", default=0.0, min=0.0, max=1.0,
                                  update=on_control_changed,
                                  description="0 = motion as predicted, 1 = only the part along Direction")

    live_mode: EnumProperty(name="Live mode", items=[
        ("SHADER", "Shader (UV offset)", "Pixel-exact displacement of the image in the material"),
        ("GEOMETRY", "Geometry (Displace)", "Move subdivided vertices with a Displace modifier"),
    ], default="SHADER", options=set())
    geometry_levels: IntProperty(name="Subdivision", default=6, min=1, max=10, options=set(),
                                 description="Simple subdivision levels of the plane in geometry mode")
    live_max_width: IntProperty(name="Live resolution", default=1024, min=16, max=8192, options=set(),
                                description="Largest width of the displacement maps (motion is smooth)")
    auto_update: BoolProperty(name="Auto update", default=True, options=set(),
                              description="Re-apply live displacement when a control changes")
    display: EnumProperty(name="Showing", items=[
        ("STILL", "Still", "The still image"),
        ("LIVE", "Live", "Live displacement of the still"),
        ("BAKED", "Baked", "A baked image sequence"),
    ], default="STILL", options=set())

    bake_format: EnumProperty(name="Format", items=[("PNG", "PNG", "8-bit PNG sequence"),
                                                    ("OPEN_EXR", "EXR", "Half-float EXR sequence")],
                              default="PNG", options=set())
    bake_mode: EnumProperty(name="Renderer", items=[("ibr", "Image-based (model)", "The trained renderer"),
                                                    ("splat", "Splat preview", "Softmax splatting, no model")],
                            default="ibr", options=set())
    bake_chunk: IntProperty(name="Frames per request", default=8, min=1, max=256, options=set())

    seed: IntProperty(name="Seed", default=0, min=0, options=set())
    samples: IntProperty(name="Samples", default=1, min=1, max=16, options=set(),
                         description="Number of motion variations to predict")
    seamless: BoolProperty(name="Seamless (guided)", default=False, options=set(),
                           description="Loop guidance during sampling (slower)")
    placement: FloatProperty(name="Follow texture", default=0.75, min=0.0, max=1.0, subtype="FACTOR", options=set(),
                             description="How far predicted motion moves towards the picture's textured parts "
                                         "(foliage, flames) and away from smooth ones (sky, walls), then over "
                                         "the object it belongs to: 0 = the model's own placement, 0.75 = the "
                                         "shipped default")

    ambient_weight: FloatProperty(name="Ambient", default=1.0, min=0.0, soft_max=2.0,
                                  description="Weight of the ambient loop when pokes are baked")
    poke_weight: FloatProperty(name="Pokes", default=1.0, min=0.0, soft_max=4.0,
                               description="Weight of the poke response")
    poke_damping: FloatProperty(name="Damping", default=0.05, min=0.0, max=2.0, options=set(),
                                description="Damping ratio of every mode")
    poke_mass: FloatProperty(name="Mass", default=1.0, min=0.01, options=set())
    poke_stiffness: FloatProperty(name="Stiffness", default=1.0, min=0.01, options=set())
    has_pokes: BoolProperty(name="Pokes baked", default=False, options=set())

    # fluids (Eulerian motion, blender_addon/fluid.py)
    fluid_mask_image: PointerProperty(type=bpy.types.Image, name="Fluid mask",
                                      description="Grayscale: white where fluid flows (water, clouds, smoke)")
    fluid_mask_vertex_group: StringProperty(name="Fluid vertex group",
                                            description="Painted weights: 1 where fluid flows")
    fluid_loop_frames: IntProperty(name="Fluid loop", default=48, min=2, max=2400, options=set(),
                                   description="Frames in one seamless fluid loop (at the scene frame rate)")
    fluid_sway_outside: BoolProperty(name="Sway outside", default=True, options=set(),
                                     description="With predicted motion: it moves everything outside the fluid "
                                                 "mask (mixed scene); off = still outside")
    has_fluid: BoolProperty(name="Has flow", default=False, options=set())


class GIDJobState(bpy.types.PropertyGroup):
    """What the panel and status bar show about the running job."""

    busy: BoolProperty(default=False, options=set())
    label: StringProperty(default="", options=set())
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR", options=set())
    message: StringProperty(default="", options=set())
    status: StringProperty(default="not connected", options=set())


CLASSES = (GIDObjectSettings, GIDJobState)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Object.gid = PointerProperty(type=GIDObjectSettings)
    bpy.types.WindowManager.gid_job = PointerProperty(type=GIDJobState)


def unregister() -> None:
    del bpy.types.WindowManager.gid_job
    del bpy.types.Object.gid
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
