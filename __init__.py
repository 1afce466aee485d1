"""Gabor ImFit as a Blender extension: this folder is the extension's package.

It bundles the engine (``imfit_engine``, run in a worker process) and the add-on (``addon``);
the manifest is ``blender_manifest.toml``.
"""

from . import addon


def register():
    addon.register()


def unregister():
    addon.unregister()
