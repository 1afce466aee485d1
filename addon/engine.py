"""The engine as the add-on sees it: the ``imfit_engine`` package bundled beside ``addon``.

Installed, the extension is one package (``bl_ext.user_default.gabor_imfit``) holding both
``addon`` and ``imfit_engine``; tests load the repository root as such a package too.  Only
torch-free engine modules are imported here (Blender's Python has numpy, not torch or pillow).
"""
from __future__ import annotations

from pathlib import Path

from ..imfit_engine import atomic, export, formats, model, sequence, threads, worker
from ..imfit_engine.errors import ImfitError

__all__ = ["ADDON_ID", "atomic", "ENGINE_ROOT", "EXTENSION_PACKAGE", "ImfitError", "export", "formats", "model",
           "sequence", "threads", "worker"]

# the extension's package, e.g. "bl_ext.user_default.gabor_imfit"; Blender keys the add-on's
# preferences by it
EXTENSION_PACKAGE = ADDON_ID = __package__.rpartition(".")[0]

# the folder that holds ``imfit_engine``: the worker process gets it on PYTHONPATH
ENGINE_ROOT = Path(worker.__file__).resolve().parent.parent
