"""The add-on's shader exports and its OSL material (Cycles' path for very large fits), in real Blender."""

import numpy as np
import pytest

from blender_util import addon_module, bpy_python_path, max_error_255, read_png16, reference_display
from support import DATA

W, H = 48, 32


@pytest.fixture(scope="module")
def stored_fit(imfit_extension):
    """A tiny real fit of a non-square photo, stored in the file by the fit operator."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    image = bpy.data.images.load(str(DATA / "coffee.png"))
    assert bpy.ops.imfit.fit(image=image.name, num_wavelets=16, size=W, iterations=10, create_plane=True) == {
        "FINISHED"
    }
    return image.name


@pytest.mark.parametrize(
    "kind,ext",
    [("GLSL", ".glsl"), ("UNIFORMS", ".txt"), ("TEXTURE_EXR", ".exr"), ("TEXTURE_PNG", ".png"), ("OSL", ".osl")],
)
def test_export_shader_writes_each_kind(stored_fit, kind, ext, tmp_path):
    import bpy

    path = tmp_path / f"fit{ext}"
    assert bpy.ops.imfit.export_shader(image=stored_fit, kind=kind, filepath=str(path)) == {"FINISHED"}
    assert path.stat().st_size > 100


def test_osl_material_matches_the_engine(stored_fit, imfit_extension, tmp_path):
    """The OSL material on the preview plane, rendered by Cycles (OSL, CPU), equals the engine's image."""
    import bpy

    bpy_python_path()  # the PyPI bpy module keeps oslquery off sys.path (Blender itself has it)
    scene = bpy.context.scene
    assert bpy.ops.imfit.build_osl(image=stored_fit) == {"FINISHED"}
    node_tree, preview = addon_module("nodes.group"), addon_module("nodes.scene")
    plane = scene.objects[node_tree.group_name(stored_fit)]
    assert plane.data.materials[0].name == f"ImFit {stored_fit} (OSL)"
    preview.add_camera_framing(scene, W, H, addon_module("nodes.plane").PLANE_HEIGHT)
    preview.setup_render(scene, "CYCLES", W, H)
    assert scene.cycles.shading_system  # the operator switched the scene to OSL
    scene.render.filepath = str(tmp_path / "osl.png")
    bpy.ops.render.render(write_still=True)
    wavelets = addon_module("nodes.stored").load(stored_fit)
    reference = reference_display(wavelets.params, wavelets.aspect, W, H)
    rendered = read_png16(tmp_path / "osl.png")
    assert max_error_255(rendered, reference) <= 2.0
    assert np.std(reference) > 0.02  # a real picture, not a flat field
