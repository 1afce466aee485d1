"""The Blender side of Gabor ImFit: a thin layer over the engine, which runs in a worker process.

``props`` (scene settings), ``ops`` (operators: each only calls a plain function or job), ``ui`` (panels,
menus, preferences), ``jobs`` (the worker process and what each job does with its result), ``nodes``
(the generated node groups, planes and materials), ``handlers`` and ``batch`` (``blender -c``).  Only
registration is wired here.  No maths and no torch in this package.  Modules that declare bpy properties
do not use ``from __future__ import annotations``: Blender reads those annotations as objects when it
registers the classes.
"""

from __future__ import annotations

import bpy

from . import batch, handlers, ops, props, ui

# registration order: preferences and properties before the operators and panels that use them
CLASSES = (*ui.pref.classes, *props.classes, *ops.classes, *ui.panel.classes, *ui.menus.classes)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    props.register_properties()
    ui.menus.register_menus()
    handlers.register_handlers()
    batch.register_command()  # blender -b -c gabor_imfit ...


def unregister() -> None:
    batch.unregister_command()
    ops.unregister_hooks()
    handlers.unregister_handlers()
    ui.menus.unregister_menus()
    props.unregister_properties()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
