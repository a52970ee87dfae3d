"""Scene time (frame rate, default loop length) and reading keyframes in every Blender the add-on supports.

Blender 4.4 introduced slotted actions: F-curves live in a channelbag per (action, slot), read with
`bpy_extras.anim_utils.action_get_channelbag_for_slot`; 5.0 removed the legacy `Action.fcurves`. 4.2/4.3 only
have `Action.fcurves`.
"""
from __future__ import annotations

import bpy


def fcurves(id_data) -> list:
    """All F-curves animating an ID (object, ...); [] when it has no action."""
    anim = getattr(id_data, "animation_data", None)
    action = anim.action if anim is not None else None
    if action is None:
        return []
    if bpy.app.version >= (4, 4, 0):
        from bpy_extras import anim_utils

        slot = getattr(anim, "action_slot", None)
        if slot is None:
            return []
        bag = anim_utils.action_get_channelbag_for_slot(action, slot)
        return list(bag.fcurves) if bag is not None else []
    return list(action.fcurves)  # 4.2 / 4.3


def find(id_data, data_path: str, index: int = 0):
    for fc in fcurves(id_data):
        if fc.data_path == data_path and fc.array_index == index:
            return fc
    return None


def value_at(id_data, data_path: str, frame: float, static_value: float, index: int = 0) -> float:
    """The animated value of a property at a frame, or its current value when it has no F-curve."""
    fc = find(id_data, data_path, index)
    return float(fc.evaluate(frame)) if fc is not None else float(static_value)


def default_loop_frames(scene) -> int:
    """2 seconds at the scene frame rate."""
    return max(2, int(round(2.0 * scene.render.fps / scene.render.fps_base)))


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base
