"""Packaging: Blender's own validator accepts the manifest; the built zip installs into a sandboxed
user folder, enables, fits, disables leaving nothing registered, and enables again.

The install runs in a fresh Python process: BLENDER_USER_RESOURCES must be set before bpy starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from support import REPO

BUILD_TOOL = REPO / "tools" / "build_extension.py"
sys.path.insert(0, str(BUILD_TOOL.parent))
import build_extension

MODULE = "bl_ext.user_default.gabor_imfit"
LEFT_OUT = ("tests/", "tools/", "bench/", "out/", "dist/", ".venv/", ".git/", ".ci/", "Makefile", "pyproject.toml")


def run_blender_ext(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(build_extension.blender_ext_tool()), *args], capture_output=True, text=True, timeout=120
    )


def test_blender_validates_the_manifest():
    done = run_blender_ext("validate", str(REPO))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success" in done.stdout


def test_validator_rejects_a_long_tagline(tmp_path):
    """The check above is a real one: the same validator refuses a tagline over 64 characters."""
    manifest = (REPO / "blender_manifest.toml").read_text()
    (tmp_path / "blender_manifest.toml").write_text(manifest.replace('tagline = "', 'tagline = "' + "x" * 60, 1))
    (tmp_path / "__init__.py").write_text("")
    done = run_blender_ext("validate", str(tmp_path))
    assert done.returncode != 0 and "tagline" in done.stdout + done.stderr


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, str(BUILD_TOOL), "--output-dir", str(out)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (zip_path,) = out.glob("gabor_imfit-*.zip")
    return zip_path


def test_zip_bundles_engine_and_addon_only(extension_zip):
    names = zipfile.ZipFile(extension_zip).namelist()
    for needed in (
        "blender_manifest.toml",
        "__init__.py",
        "addon/__init__.py",
        "addon/nodes/group.py",
        "imfit_engine/worker/main.py",
        "imfit_engine/core/fit.py",
        "imfit_engine/core/model.py",
    ):
        assert needed in names
    assert any(n.startswith("shaders/") for n in names)
    assert not [n for n in names if n.startswith(LEFT_OUT) or "__pycache__" in n or n.endswith(".pyc")]


SANDBOX_SCRIPT = r'''
import json, os, sys
import bpy

MODULE = "bl_ext.user_default.gabor_imfit"
report = {}


def registered():
    """Everything the add-on could leave behind in Blender."""
    found = [n for n in dir(bpy.types) if n.startswith(("IMFIT_", "ImfitSettings"))]
    found += [f"bpy.ops.imfit.{n}" for n in dir(bpy.ops.imfit)]
    found += ["Scene.imfit"] if hasattr(bpy.types.Scene, "imfit") else []
    for name in dir(bpy.app.handlers):
        handlers = getattr(bpy.app.handlers, name)
        if isinstance(handlers, list):
            found += [f"{name}:{f.__name__}" for f in handlers if getattr(f, "__module__", "").startswith(MODULE)]
    for owner in (bpy.types.STATUSBAR_HT_header, bpy.types.IMAGE_MT_image, bpy.types.NODE_MT_node,
                  bpy.types.TOPBAR_MT_file_export):
        draw_funcs = owner._dyn_ui_initialize()
        found += [f"{owner.__name__}:{f.__name__}" for f in draw_funcs
                  if getattr(f, "__module__", "").startswith(MODULE)]
    found += ["preferences"] if bpy.context.preferences.addons.get(MODULE) else []
    return found


def tiny_fit(iterations):
    image = bpy.data.images.load(sys.argv[2], check_existing=True)
    result = bpy.ops.imfit.fit(image=image.name, num_wavelets=16, size=32, iterations=iterations)
    return {"result": sorted(result), "psnr": bpy.context.scene.imfit.result_psnr,
            "group": f"ImFit {image.name}" in bpy.data.node_groups}


bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo="user_default", enable_on_install=True)
module = sys.modules[MODULE]
report["engine_root"] = str(module.addon.engine.ENGINE_ROOT)
report["enabled"] = registered()
report["fit"] = tiny_fit(5)
bpy.ops.preferences.addon_disable(module=MODULE)
report["after_disable"] = registered()
bpy.ops.preferences.addon_enable(module=MODULE)
report["re_enabled"] = registered()
report["fit_again"] = tiny_fit(2)
print("REPORT " + json.dumps(report))
'''


def run_in_sandbox(script: str, user: Path, *args: str, timeout: float = 300) -> dict:
    """Run ``script`` in a fresh Python whose Blender user folder is ``user``; its REPORT line, parsed."""
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(user), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=user.parent
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(lines[-1][len("REPORT ") :])


def test_zip_installs_fits_and_unregisters_cleanly(extension_zip, tmp_path):
    user = tmp_path / "blender_user"
    report = run_in_sandbox(SANDBOX_SCRIPT, user, str(extension_zip), str(REPO / "tests/data/coffee.png"))

    # the installed copy's engine runs the fit, not the checkout's
    assert Path(report["engine_root"]).resolve().is_relative_to(user.resolve())
    enabled = set(report["enabled"])
    for expected in (
        "IMFIT_OT_fit",
        "IMFIT_OT_refine",
        "IMFIT_OT_cancel",
        "IMFIT_PT_IMAGE_main",
        "IMFIT_PT_VIEW3D_main",
        "IMFIT_PT_NODE_main",
        "IMFIT_PT_NODE_losses",
        "Scene.imfit",
        "bpy.ops.imfit.fit",
        "depsgraph_update_post:imfit_sync_on_depsgraph",
        "render_pre:imfit_sync_on_render_pre",
        "load_post:imfit_sync_on_load",
        "load_pre:imfit_end_fit_on_load",
        "frame_change_post:imfit_sync_textures_on_frame",
        "STATUSBAR_HT_header:draw_status_bar",
        "IMAGE_MT_image:draw_submenu",
        "NODE_MT_node:draw_submenu",
        "TOPBAR_MT_file_export:draw_export_menu",
        "preferences",
    ):
        assert expected in enabled, expected
    assert report["fit"]["result"] == ["FINISHED"] and report["fit"]["group"]
    assert report["fit"]["psnr"] > 12.0
    assert report["after_disable"] == []
    assert set(report["re_enabled"]) == enabled
    assert report["fit_again"]["result"] == ["FINISHED"]


INSTALL_TORCH_SCRIPT = r"""
import json, os, sys
import bpy

MODULE = "bl_ext.user_default.gabor_imfit"
bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo="user_default", enable_on_install=True)
bpy.context.preferences.system.use_online_access = True
prefs = bpy.context.preferences.addons[MODULE].preferences
prefs.install_build = "PYPI"  # this machine reaches PyPI only
result = bpy.ops.imfit.install_torch()
site = bpy.utils.extension_path_user(MODULE, path="site")
status = sys.modules[MODULE + ".addon.ops_engine"].install_status
print("REPORT " + json.dumps({"result": sorted(result), "site": site, "files": sorted(os.listdir(site)),
                              "status": status.text,
                              "probe": prefs.cached_probe()}))
"""


@pytest.mark.slow
def test_install_pytorch_into_the_extension_folder(extension_zip, tmp_path):
    """Downloads torch (about a minute): pip runs in the worker, the probe then sees the folder's torch."""
    report = run_in_sandbox(INSTALL_TORCH_SCRIPT, tmp_path / "blender_user", str(extension_zip), timeout=600)
    assert report["result"] == ["FINISHED"], report["status"]
    assert "torch" in report["files"] and "PIL" in report["files"]
    assert report["probe"]["torch"].startswith("2.13.0")
    assert Path(report["probe"]["torch_path"]).parent == Path(report["site"])  # the worker uses the folder's torch
