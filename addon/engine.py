"""The engine as the add-on sees it: the one door from ``addon`` to the ``imfit_engine`` package bundled beside it.

Installed, the extension is one package (``bl_ext.user_default.gabor_imfit``) holding both
``addon`` and ``imfit_engine``; tests load the repository root as such a package too.  Only
torch-free engine modules are imported here (Blender's Python has numpy, not torch or pillow), and
only here: the rest of the add-on imports the engine through this module.
"""

from __future__ import annotations

from pathlib import Path

from ..imfit_engine import sequence, threads
from ..imfit_engine.core import config as fit_config
from ..imfit_engine.core import model, resynth
from ..imfit_engine.errors import ImfitError
from ..imfit_engine.expand import config as expand_config
from ..imfit_engine.io import atomic, export, formats, png
from ..imfit_engine.style import config as style_config
from ..imfit_engine.worker import protocol

__all__ = [
    "ADDON_ID",
    "ENGINE_ROOT",
    "EXTENSION_PACKAGE",
    "ImfitError",
    "atomic",
    "expand_config",
    "export",
    "fit_config",
    "formats",
    "model",
    "png",
    "protocol",
    "resynth",
    "sequence",
    "style_config",
    "threads",
]

# the extension's package, e.g. "bl_ext.user_default.gabor_imfit"; Blender keys the add-on's
# preferences by it
EXTENSION_PACKAGE = ADDON_ID = __package__.rpartition(".")[0]

# the folder that holds ``imfit_engine``: the worker process gets it on PYTHONPATH
ENGINE_ROOT = Path(protocol.__file__).resolve().parents[2]
