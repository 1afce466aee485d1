"""Gabor ImFit engine: fit images with sums of Gabor wavelets (torch, numpy, pillow; never bpy).

The public API, re-exported lazily (importing this package loads neither torch nor pillow, so Blender's
Python can use the torch-free parts)::

    import imfit_engine as imfit

    result = imfit.fit_file("photo.png", config=imfit.FitConfig(num_wavelets=1024, size=512))
    print(result.psnr, len(result.wavelets))
    imfit.save(result.wavelets, "photo.json")
    picture = imfit.render_image(imfit.load("photo.json"), 1920)  # (H, W, 3) floats in [0, 1]

Subpackages: ``core`` (model, renderer, fitter), ``io`` (files), ``style``, ``expand``, ``sequence``,
``cli`` (the ``imfit`` command) and ``worker`` (the Blender worker process); see ARCHITECTURE.md.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from . import threads

# Every engine process (CLI, worker, Python API) waits passively: OpenMP threads that spin take the CPU from
# everything else on a busy machine and from the numba kernels' threads (threads.py).  Only an OpenMP runtime
# not started yet reads it, so a program that imported torch first keeps its own setting.
threads.prefer_passive_waiting(os.environ)

__version__ = "0.2.0"

# public name -> module that defines it
_EXPORTS = {
    "WaveletSet": "core.model",
    "COLUMNS": "core.model",
    "FitConfig": "core.config",
    "FitResult": "core.fit",
    "Progress": "core.fit",
    "ImfitError": "errors",
    "fit": "api",
    "fit_file": "api",
    "render_image": "api",
    "load": "api",
    "save": "api",
}
__all__ = [
    "COLUMNS",
    "FitConfig",
    "FitResult",
    "ImfitError",
    "Progress",
    "WaveletSet",
    "fit",
    "fit_file",
    "load",
    "render_image",
    "save",
]

if TYPE_CHECKING:
    from .api import fit, fit_file, load, render_image, save
    from .core.config import FitConfig
    from .core.fit import FitResult, Progress
    from .core.model import COLUMNS, WaveletSet
    from .errors import ImfitError


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
