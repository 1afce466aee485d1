"""Run this checkout as an installed Blender extension inside the bpy module (tests, demo, tools).

Blender's user folder goes to a throwaway sandbox (set before bpy is imported, so nothing reads
or writes the real user's configuration), and the checkout is enabled through a local extension
repository whose `gabor_imfit` entry links here: the same import path as an installed extension.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXTENSION_ID = "gabor_imfit"
DEV_REPO_MODULE = "imfit_dev"
EXTENSION_MODULE = f"bl_ext.{DEV_REPO_MODULE}.{EXTENSION_ID}"


def bpy_python_path() -> None:
    """bpy's own site-packages (OpenImageIO, oslquery: Cycles' OSL compiler) are not on sys.path in the PyPI
    module, as they are in Blender; call before a Script node compiles."""
    import glob
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    for root in spec.submodule_search_locations if spec else []:
        for path in glob.glob(os.path.join(root, "*", "python", "lib", "python3*", "site-packages")):
            if path not in sys.path:
                sys.path.append(path)


def sandbox_user_resources() -> None:
    """Point BLENDER_USER_RESOURCES at a temporary folder, unless bpy or the caller set one already."""
    if "bpy" not in sys.modules and "BLENDER_USER_RESOURCES" not in os.environ:
        sandbox = tempfile.mkdtemp(prefix="imfit-blender-user-")
        os.environ["BLENDER_USER_RESOURCES"] = sandbox
        atexit.register(shutil.rmtree, sandbox, ignore_errors=True)


def enable(folder) -> object:
    """Enable the checkout as `bl_ext.imfit_dev.gabor_imfit`; `folder` holds the repository link."""
    import addon_utils
    import bpy

    folder = Path(folder)
    link = folder / EXTENSION_ID
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    repos = bpy.context.preferences.extensions.repos
    if not any(r.module == DEV_REPO_MODULE for r in repos):
        repos.new(name="ImFit dev", module=DEV_REPO_MODULE, custom_directory=str(folder), source="USER")
    errors = []
    module = addon_utils.enable(EXTENSION_MODULE, default_set=True, handle_error=errors.append)
    if module is None:
        raise RuntimeError(f"enabling {EXTENSION_MODULE} failed: {errors}")
    return module


def disable() -> None:
    import addon_utils
    import bpy

    addon_utils.disable(EXTENSION_MODULE, default_set=True)
    repos = bpy.context.preferences.extensions.repos
    for r in list(repos):
        if r.module == DEV_REPO_MODULE:
            repos.remove(r)
