"""Shared test set-up: Blender's user folder in a sandbox, and the extension loaded as Blender loads it.

``BLENDER_USER_RESOURCES`` must be set before anything imports bpy, so tests never read or
write the real user's Blender configuration (preferences, extension folders).
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXTENSION_ID = "gabor_imfit"
DEV_REPO_MODULE = "imfit_dev"  # a local extension repository that holds a link to this checkout
EXTENSION_MODULE = f"bl_ext.{DEV_REPO_MODULE}.{EXTENSION_ID}"

if "bpy" not in sys.modules and "BLENDER_USER_RESOURCES" not in os.environ:
    _sandbox = tempfile.mkdtemp(prefix="imfit-blender-user-")
    os.environ["BLENDER_USER_RESOURCES"] = _sandbox
    atexit.register(shutil.rmtree, _sandbox, ignore_errors=True)


@pytest.fixture(scope="module")
def imfit_extension(tmp_path_factory):
    """The extension enabled through Blender's add-on system, from a local repository whose
    ``gabor_imfit`` entry links to this checkout; disabled and removed afterwards."""
    import addon_utils
    import bpy

    folder = tmp_path_factory.mktemp("extension_repo")
    (folder / EXTENSION_ID).symlink_to(REPO, target_is_directory=True)
    repos = bpy.context.preferences.extensions.repos
    repos.new(name="ImFit dev", module=DEV_REPO_MODULE, custom_directory=str(folder), source="USER")
    errors = []
    module = addon_utils.enable(EXTENSION_MODULE, default_set=True, handle_error=errors.append)
    if module is None:
        raise RuntimeError(f"enabling {EXTENSION_MODULE} failed: {errors}")
    try:
        yield module
    finally:
        addon_utils.disable(EXTENSION_MODULE, default_set=True)
        for r in list(repos):
            if r.module == DEV_REPO_MODULE:
                repos.remove(r)
