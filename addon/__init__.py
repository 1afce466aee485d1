"""The Blender side of Gabor ImFit: preferences, scene settings, operators, panels, handlers.

Only registration is wired here; each module holds one concern.  No maths and no torch in
this package: fits run in a worker process (``imfit_engine.worker``).  Modules that declare
bpy properties do not use ``from __future__ import annotations``: Blender reads those
annotations as objects when it registers the classes.
"""
from __future__ import annotations

import bpy

from . import (batch, handlers, ops_engine, ops_expand, ops_fit, ops_shader, ops_stored, ops_style, panels, polling,
               preferences, properties)

# registration order: preferences and properties before the operators and panels that use them
CLASSES = (*preferences.classes, *properties.classes, *ops_engine.classes, *ops_fit.classes,
           *ops_stored.classes, *ops_shader.classes, *panels.classes)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    properties.register_properties()
    ops_style.register()  # the Style sub-panels hang below the main panels
    ops_expand.register()  # so do the Expand Texture sub-panels
    panels.register_menus()
    handlers.register_handlers()
    batch.register_command()  # blender -b -c gabor_imfit ...


def unregister() -> None:
    batch.unregister_command()
    polling.remove_timers()
    ops_fit.unregister_hook()
    ops_engine.unregister_hook()
    handlers.unregister_handlers()
    panels.unregister_menus()
    ops_expand.unregister()
    ops_style.unregister()
    properties.unregister_properties()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
