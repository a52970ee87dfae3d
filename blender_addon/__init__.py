"""GID Image Dynamics: animate image planes with motion predicted by a local Generative Image Dynamics backend.

Register order: properties, preferences, operators, panels; handlers keep the dynamics folder next to the .blend.
The bpy modules are imported in register(), so `client`, `backend_process`, `fields` and `vendor` can be
imported (and tested) without Blender.
"""
from __future__ import annotations

_CLASSES: tuple = ()
_HANDLERS: tuple = ()


def register() -> None:
    global _CLASSES, _HANDLERS
    import bpy

    from . import fluid, operators, panels, pokes, preferences, properties, storage

    _CLASSES = preferences.CLASSES + operators.CLASSES + pokes.CLASSES + fluid.CLASSES + panels.CLASSES
    _HANDLERS = (("save_pre", storage.on_save_pre), ("save_post", storage.on_save_post),
                 ("load_post", storage.on_load_post))
    properties.register()
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    for name, fn in _HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if fn not in handlers:
            handlers.append(fn)
    bpy.types.STATUSBAR_HT_header.append(panels.draw_status)


def unregister() -> None:
    import bpy

    from . import connection, panels, properties

    connection.shutdown()
    bpy.types.STATUSBAR_HT_header.remove(panels.draw_status)
    for name, fn in _HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if fn in handlers:
            handlers.remove(fn)
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
    properties.unregister()
