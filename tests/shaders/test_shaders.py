"""The shaders of shaders/ and the exports of imfit_engine.export, executed for real.

GLSL runs in a software OpenGL context (Mesa llvmpipe through EGL, tools/setup_gl.sh), the OSL
shader in a Cycles Script node of bpy; each result is held to the engine's dense render of the
same parameters (``render_reference`` + ``to_image``, float64).
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import blender_util
from imfit_engine.core.model import WaveletSet
from imfit_engine.core.render import render_reference, to_image
from imfit_engine.errors import ImfitError
from imfit_engine.io import export

TOLERANCE = 2 / 255  # acceptance: max abs error at 128 px
WIDTH, HEIGHT = 128, 96  # non-square, so u and v cannot be swapped unnoticed


def random_fit(n: int, seed: int, width: int = WIDTH, height: int = HEIGHT) -> WaveletSet:
    """Realistic wavelets: sigma from 1.5 px to a fifth of the image, Zucker-like shapes, amplitudes
    up to 0.5 scaled down for large N so that most pixels stay unclamped."""
    rng = np.random.default_rng(seed)
    px = 1.0 / height
    sigma = np.exp(rng.uniform(math.log(1.5 * px), math.log(0.2), n))
    gamma = sigma * rng.uniform(1.0, 4.0, n)
    wavelength = np.maximum(sigma * rng.uniform(2.0, 6.0, n), 2.5 * px)
    amp = rng.uniform(0.0, 0.5, (n, 3)) * min(1.0, math.sqrt(64.0 / n))
    centre = rng.uniform(-0.05, 1.05, (n, 2))  # a few centres off the image
    theta = rng.uniform(-math.pi, math.pi, n)
    phase = rng.uniform(-math.pi, math.pi, (n, 3))
    params = np.column_stack([centre, theta, sigma, gamma, wavelength, phase, amp]).astype(np.float32)
    return WaveletSet(params, width, height)


def engine_signed_sum(ws: WaveletSet, width: int, height: int) -> np.ndarray:
    """The oracle: dense float64 signed sum, (H, W, 3), row 0 = top; summed in chunks to bound memory."""
    params = torch.from_numpy(ws.params).double()
    total = torch.zeros(height, width, 3, dtype=torch.float64)
    for start in range(0, len(params), 256):
        total += render_reference(params[start : start + 256], ws.aspect, width, height)
    return total.numpy()


def engine_image(ws: WaveletSet, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    signed = engine_signed_sum(ws, width, height)
    assert (np.abs(signed) < 1).mean() > 0.9, "fixture saturates: the comparison would prove little"
    return to_image(torch.from_numpy(signed)).numpy()


def assert_matches(rendered: np.ndarray, expected: np.ndarray, what: str) -> float:
    error = float(np.abs(rendered[..., :3] - expected).max())
    print(f"{what}: max abs error {error:.2e} ({error * 255:.3f}/255)")
    assert error <= TOLERANCE, f"{what}: max abs error {error * 255:.2f}/255 > 2/255"
    return error


def read_exr(path) -> np.ndarray:
    """(H, W, 4) float32 of an RGBA EXR, row 0 = top, through OpenImageIO (bpy's copy)."""
    blender_util.bpy_python_path()
    import OpenImageIO as oiio

    image = oiio.ImageInput.open(str(path))
    assert image is not None, oiio.geterror()
    try:
        spec = image.spec()
        assert spec.channelnames == ("R", "G", "B", "A")
        assert spec.format == oiio.TypeDesc("float")
        return np.asarray(image.read_image("float"), dtype=np.float32).reshape(spec.height, spec.width, 4)
    finally:
        image.close()


# ----------------------------------------------------------------------------------------
# OpenGL harness


@pytest.fixture(scope="module")
def gl():
    moderngl = pytest.importorskip("moderngl", reason="pip install moderngl (requirements-dev.txt)")
    try:
        ctx = moderngl.create_context(standalone=True, backend="egl", require=330)
    except Exception as error:  # no EGL/Mesa on this machine
        message = f"no software OpenGL context through EGL ({error}): run tools/setup_gl.sh"
        if os.environ.get("CI"):  # make test installs it: in CI a missing context is a failure
            pytest.fail(message)
        pytest.skip(message)
    yield ctx
    ctx.release()


def shader(name: str, dialect: str, defines: str = "") -> str:
    """A file of shaders/ for a dialect, with #defines placed right after its version line."""
    source = export.retarget_glsl(export.shader_source(name), dialect)
    return add_defines(source, defines)


def add_defines(source: str, defines: str) -> str:
    """Insert lines after the version and precision header (a #define must follow #version)."""
    lines = source.split("\n")
    after_header = 1 + max(i for i, line in enumerate(lines[:4]) if line.startswith(("#version", "precision")))
    return "\n".join(lines[:after_header] + [defines] * bool(defines) + lines[after_header:])


def set_uniform(program, name, value):
    if name in program:  # the compiler drops unused uniforms
        program[name].value = value


def float_target(ctx, width, height):
    texture = ctx.texture((width, height), 4, dtype="f4")
    return texture, ctx.framebuffer(color_attachments=[texture])


def read_target(framebuffer, width, height) -> np.ndarray:
    """(H, W, 4) float32 with row 0 = top (GL reads bottom row first)."""
    data = np.frombuffer(framebuffer.read(components=4, dtype="f4"), dtype=np.float32)
    return data.reshape(height, width, 4)[::-1]


def draw_fullscreen(ctx, fragment: str, dialect: str, uniforms: dict, textures=(), size=(WIDTH, HEIGHT)):
    """Run a fragment shader over a full-screen triangle into an RGBA32F target; (H, W, 4)."""
    width, height = size
    program = ctx.program(vertex_shader=shader("fullscreen.vert", dialect), fragment_shader=fragment)
    for name, value in uniforms.items():
        set_uniform(program, name, value)
    for unit, (name, texture) in enumerate(textures):
        texture.use(location=unit)
        set_uniform(program, name, unit)
    target, framebuffer = float_target(ctx, width, height)
    framebuffer.use()
    framebuffer.clear(0.0, 0.0, 0.0, 0.0)
    ctx.vertex_array(program, []).render(vertices=3)
    return read_target(framebuffer, width, height)


def data_texture(ctx, pixels: np.ndarray, dtype: str):
    """A texture whose texel row 0 is the array's row 0 (the file's top row)."""
    import moderngl

    rows, width, _ = pixels.shape
    texture = ctx.texture((width, rows), 4, data=np.ascontiguousarray(pixels).tobytes(), dtype=dtype)
    texture.filter = (moderngl.NEAREST, moderngl.NEAREST)
    return texture


def parse_uniforms(path) -> dict:
    """Read the text payload as a host would: 'name value' lines, then 'u_wavelets R' and R vec4 rows."""
    lines = [line.split() for line in open(path, encoding="utf-8") if line.strip() and not line.startswith("#")]
    scalars = {name: value for name, value in lines[:3]}
    rows = int(scalars["u_wavelets"])
    vec4s = np.array(lines[3:], dtype=np.float32)
    assert vec4s.shape == (rows, 4)
    return {"u_count": int(scalars["u_count"]), "u_aspect": float(scalars["u_aspect"]), "u_wavelets": vec4s}


# ----------------------------------------------------------------------------------------
# GLSL: uniform array, data texture, billboards, inlined export


@pytest.mark.parametrize("dialect", ["gl330", "es300"])
def test_uniform_shader_runs_the_exported_payload(gl, tmp_path, dialect):
    ws = random_fit(256, seed=1)
    export.export_uniforms(ws, tmp_path / "fit.txt")
    payload = parse_uniforms(tmp_path / "fit.txt")
    np.testing.assert_array_equal(payload["u_wavelets"].reshape(-1, 12), ws.params)  # text is exact
    program = shader("gabor_uniform.frag", dialect, "#define IMFIT_MAX_WAVELETS 256")
    rendered = draw_fullscreen(
        gl,
        program,
        dialect,
        {
            "u_count": payload["u_count"],
            "u_aspect": payload["u_aspect"],
            "u_wavelets": [tuple(row) for row in payload["u_wavelets"]],
            "u_resolution": (WIDTH, HEIGHT),
        },
    )
    assert_matches(rendered, engine_image(ws), f"uniform shader ({dialect}, 256 wavelets)")


def test_texture_shader_runs_the_exported_exr(gl, tmp_path):
    ws = random_fit(1000, seed=2)  # 4 texture rows, the last one padded
    export.export_texture(ws, tmp_path / "fit.exr")
    pixels = read_exr(tmp_path / "fit.exr")
    np.testing.assert_array_equal(pixels, export.texture_data(ws))
    assert pixels.shape == (4, 3 * 256, 4)
    texture = data_texture(gl, pixels, "f4")
    rendered = draw_fullscreen(
        gl,
        shader("gabor_texture.frag", "gl330"),
        "gl330",
        {"u_count": len(ws), "u_aspect": ws.aspect, "u_resolution": (WIDTH, HEIGHT)},
        [("u_wavelets", texture)],
    )
    assert_matches(rendered, engine_image(ws), "texture shader (RGBA32F .exr, 1000 wavelets)")


def test_texture_shader_runs_the_exported_png(gl, tmp_path):
    ws = random_fit(300, seed=3)
    export.export_texture(ws, tmp_path / "fit.png")
    with Image.open(tmp_path / "fit.png") as image:
        assert image.mode == "RGBA" and int(image.text["imfitCount"]) == 300
        packed = np.asarray(image)
    # the packing is bit-exact: the bytes are the float32 texture's memory
    np.testing.assert_array_equal(packed.view("<f4").reshape(export.texture_data(ws).shape), export.texture_data(ws))
    texture = data_texture(gl, packed, "f1")
    rendered = draw_fullscreen(
        gl,
        shader("gabor_texture.frag", "es300", "#define IMFIT_PACKED_RGBA8"),
        "es300",
        {"u_count": len(ws), "u_aspect": ws.aspect, "u_resolution": (WIDTH, HEIGHT)},
        [("u_wavelets", texture)],
    )
    assert_matches(rendered, engine_image(ws), "texture shader (RGBA8-packed .png, es300, 300 wavelets)")


def quads_covering_pixel_centres(ws: WaveletSet, support: float = 5.0) -> np.ndarray:
    """(H, W) count of the wavelets whose envelope bounding box (as in render.py) holds the pixel centre."""
    p = ws.params.astype(np.float64)
    c, s = np.abs(np.cos(p[:, 2])), np.abs(np.sin(p[:, 2]))
    half_x = support * np.hypot(p[:, 3] * c, p[:, 4] * s)
    half_y = support * np.hypot(p[:, 3] * s, p[:, 4] * c)
    x = (np.arange(WIDTH) + 0.5) / WIDTH * ws.aspect
    y = 1.0 - (np.arange(HEIGHT) + 0.5) / HEIGHT
    inside_x = np.abs(x[None, :] - p[:, :1] * ws.aspect) <= half_x[:, None]  # (N, W)
    inside_y = np.abs(y[None, :] - p[:, 1:2]) <= half_y[:, None]  # (N, H)
    return np.einsum("nh,nw->hw", inside_y.astype(np.float64), inside_x.astype(np.float64))


def render_billboards(ctx, ws: WaveletSet, dialect: str) -> np.ndarray:
    """One instanced quad per wavelet, additive into RGBA32F, then the resolve pass."""
    import moderngl

    program = ctx.program(
        vertex_shader=shader("gabor_billboard.vert", dialect),
        fragment_shader=shader("gabor_billboard.frag", dialect),
    )
    program["u_aspect"].value = ws.aspect
    corners = ctx.buffer(np.array([-1, -1, 1, -1, -1, 1, 1, 1], dtype=np.float32).tobytes())
    instances = ctx.buffer(np.ascontiguousarray(ws.params, dtype=np.float32).tobytes())
    vao = ctx.vertex_array(program, [(corners, "2f", "a_corner"), (instances, "4f 4f 4f/i", "a_w0", "a_w1", "a_w2")])
    accumulator, framebuffer = float_target(ctx, WIDTH, HEIGHT)
    framebuffer.use()
    framebuffer.clear(0.0, 0.0, 0.0, 0.0)
    ctx.enable(moderngl.BLEND)
    ctx.blend_equation = moderngl.FUNC_ADD
    ctx.blend_func = moderngl.ONE, moderngl.ONE
    try:
        vao.render(moderngl.TRIANGLE_STRIP, vertices=4, instances=len(ws))
    finally:
        ctx.disable(moderngl.BLEND)
    coverage = read_target(framebuffer, WIDTH, HEIGHT)[..., 3]
    # each quad covers its wavelet's 5-sigma bounding box; an edge within the rasteriser's
    # sub-pixel precision of a pixel centre may take or leave one row or column
    expected = quads_covering_pixel_centres(ws)
    assert np.abs(coverage - expected).max() <= 2
    assert abs(coverage.sum() / expected.sum() - 1) < 1e-3
    return draw_fullscreen(ctx, shader("gabor_resolve.frag", dialect), dialect, {}, [("u_sum", accumulator)])


@pytest.mark.parametrize("dialect", ["gl330", "es300"])
def test_billboard_shaders_match_engine(gl, dialect):
    ws = random_fit(1000, seed=4)
    rendered = render_billboards(gl, ws, dialect)
    assert_matches(rendered, engine_image(ws), f"billboards ({dialect}, 1000 wavelets)")


@pytest.mark.parametrize("dialect", ["gl330", "es300", "shadertoy"])
def test_inlined_glsl_export_matches_engine(gl, tmp_path, dialect):
    ws = random_fit(200, seed=5)
    export.export_glsl(ws, tmp_path / "fit.glsl", dialect)
    source = (tmp_path / "fit.glsl").read_text()
    if dialect == "shadertoy":
        # Shadertoy's own header and main, around the exported text
        source = (
            "#version 300 es\nprecision highp float;\nprecision highp int;\n"
            "uniform vec3 iResolution;\nout vec4 shadertoyColor;\n"
            f"{source}\nvoid main() {{ mainImage(shadertoyColor, gl_FragCoord.xy); }}\n"
        )
        uniforms = {"iResolution": (WIDTH, HEIGHT, 1.0)}
    else:
        uniforms = {"u_resolution": (WIDTH, HEIGHT)}
    rendered = draw_fullscreen(gl, source, "gl330" if dialect == "gl330" else "es300", uniforms)
    assert_matches(rendered, engine_image(ws), f"inlined export ({dialect}, 200 wavelets)")


def test_renders_at_another_resolution(gl):
    """The field is resolution independent: the same fit at 64 x 48 pixels."""
    ws = random_fit(100, seed=6)
    rendered = draw_fullscreen(gl, export.glsl_source(ws), "gl330", {"u_resolution": (64, 48)}, size=(64, 48))
    assert_matches(rendered, engine_image(ws, 64, 48), "inlined export at 64 x 48")


# ----------------------------------------------------------------------------------------
# Export files and user errors


def test_exr_header_carries_the_layout(tmp_path):
    ws = random_fit(5, seed=7, width=300, height=200)
    export.export_texture(ws, tmp_path / "small.EXR")
    blender_util.bpy_python_path()
    import OpenImageIO as oiio

    image = oiio.ImageInput.open(str(tmp_path / "small.EXR"))
    spec = image.spec()
    image.close()
    assert (spec.width, spec.height) == (15, 1)
    assert spec.getattribute("imfitCount") == 5
    assert spec.getattribute("imfitWaveletsPerRow") == 5
    assert spec.getattribute("imfitAspect") == pytest.approx(1.5)
    np.testing.assert_array_equal(read_exr(tmp_path / "small.EXR").reshape(5, 12), ws.params)


def test_uniform_payload_is_bit_exact(tmp_path):
    ws = random_fit(20, seed=8)
    ws.params[0, 0] = 1e-30  # tiny and huge values keep their float32 bits through the text
    ws.params[1, 9] = 3.4e38
    export.export_uniforms(ws, tmp_path / "fit.txt")
    np.testing.assert_array_equal(parse_uniforms(tmp_path / "fit.txt")["u_wavelets"].reshape(-1, 12), ws.params)


@pytest.mark.parametrize(
    "params, message",
    [
        (np.zeros((0, 12), np.float32), "no wavelets"),
        (np.zeros((3, 11), np.float32), "(N, 12)"),
        (np.array([[0.5, 0.5, 0, 0.1, 0.1, 0.1, 0, 0, 0, np.nan, 0, 0]], np.float32), "non-finite"),
        (np.array([[0.5, 0.5, 0, 0.0, 0.1, 0.1, 0, 0, 0, 0.5, 0, 0]], np.float32), "zero sigma"),
    ],
)
def test_bad_fits_raise_imfit_error_and_write_nothing(tmp_path, params, message):
    ws = WaveletSet(params, 64, 64)
    for writer, name in [
        (export.export_glsl, "a.glsl"),
        (export.export_uniforms, "a.txt"),
        (export.export_texture, "a.exr"),
        (export.export_osl, "a.osl"),
    ]:
        with pytest.raises(ImfitError, match=message.replace("(", r"\(").replace(")", r"\)")):
            writer(ws, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_unknown_texture_format_and_dialect_are_user_errors(tmp_path):
    ws = random_fit(3, seed=9)
    too_many = random_fit(export.GLSL_INLINE_MAX_WAVELETS + 1, seed=9)
    with pytest.raises(ImfitError, match="--texture"):
        export.export_glsl(too_many, tmp_path / "fit.glsl")
    with pytest.raises(ImfitError, match=r"\.exr.*\.png"):
        export.export_texture(ws, tmp_path / "fit.jpg")
    with pytest.raises(ImfitError, match="dialect"):
        export.export_glsl(ws, tmp_path / "fit.glsl", "hlsl")
    assert list(tmp_path.iterdir()) == []


def test_export_needs_numpy_only():
    """Blender's Python has numpy but neither torch nor Pillow: the exporters must not import them."""
    import subprocess

    code = "import sys, imfit_engine.io.export; print(sorted({'torch', 'PIL'} & set(sys.modules)))"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# ----------------------------------------------------------------------------------------
# OSL in a Cycles Script node


def cycles_osl_render(ws: WaveletSet, tmp_path, output: str = "Color") -> np.ndarray:
    """Render the exported OSL on a UV plane framed exactly by an orthographic camera; (H, W, 4), row 0 top.

    Emission strength 1, Standard view, 1 sample through a 0.01 px box filter (pixel centres),
    written as a 32-bit float EXR (scene-linear values, no view transform). Everything is built
    in a scene of its own and removed afterwards, so other tests' Blender data is left alone.
    """
    blender_util.bpy_python_path()  # the Script node compiles through bpy's oslquery
    import bpy

    scene = bpy.data.scenes.new("imfit_osl_test")
    aspect = ws.aspect
    mesh = bpy.data.meshes.new("imfit_plane")
    camera_data = bpy.data.cameras.new("imfit_camera")
    material = bpy.data.materials.new("imfit_gabor")
    text = bpy.data.texts.new("imfit_gabor.osl")
    plane = bpy.data.objects.new("imfit_plane", mesh)
    camera = bpy.data.objects.new("imfit_camera", camera_data)
    try:
        scene.render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.shading_system = True  # OSL
        scene.cycles.samples = 1
        scene.cycles.use_adaptive_sampling = False
        scene.cycles.use_denoising = False
        scene.cycles.pixel_filter_type = "BOX"
        scene.cycles.filter_width = 0.01
        scene.cycles.max_bounces = 0
        scene.render.resolution_x, scene.render.resolution_y = ws.width, ws.height
        scene.render.resolution_percentage = 100
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.look = "None"
        scene.render.image_settings.file_format = "OPEN_EXR"
        scene.render.image_settings.color_depth = "32"
        scene.render.image_settings.exr_codec = "NONE"
        scene.render.filepath = str(tmp_path / "osl.exr")

        mesh.from_pydata([(0, 0, 0), (aspect, 0, 0), (aspect, 1, 0), (0, 1, 0)], [], [(0, 1, 2, 3)])
        uv_layer = mesh.uv_layers.new(name="UVMap")
        for loop, uv in zip(uv_layer.data, [(0, 0), (1, 0), (1, 1), (0, 1)]):
            loop.uv = uv
        mesh.materials.append(material)
        scene.collection.objects.link(plane)
        camera_data.type = "ORTHO"
        camera_data.ortho_scale = max(aspect, 1.0)  # spans the larger side
        camera.location = (aspect / 2, 0.5, 1.0)
        scene.collection.objects.link(camera)
        scene.camera = camera

        text.write(export.osl_source(ws))
        nodes, links = material.node_tree.nodes, material.node_tree.links
        nodes.clear()
        script = nodes.new("ShaderNodeScript")
        script.mode = "INTERNAL"
        with bpy.context.temp_override(scene=scene):  # the context scene's engine (Cycles) compiles it
            script.script = text
        assert output in script.outputs, f"OSL compile failed: sockets {list(script.outputs.keys())}"
        coordinates = nodes.new("ShaderNodeTexCoord")
        links.new(coordinates.outputs["UV"], script.inputs["UV"])
        emission = nodes.new("ShaderNodeEmission")
        emission.inputs["Strength"].default_value = 1.0
        links.new(script.outputs[output], emission.inputs["Color"])
        material_output = nodes.new("ShaderNodeOutputMaterial")
        links.new(emission.outputs["Emission"], material_output.inputs["Surface"])

        bpy.ops.render.render(write_still=True, scene=scene.name)
        return read_exr(tmp_path / "osl.exr")
    finally:
        for collection, block in [
            (bpy.data.objects, plane),
            (bpy.data.objects, camera),
            (bpy.data.meshes, mesh),
            (bpy.data.cameras, camera_data),
            (bpy.data.materials, material),
            (bpy.data.texts, text),
            (bpy.data.scenes, scene),
        ]:
            collection.remove(block)


def test_osl_script_node_matches_engine_for_4096_wavelets(tmp_path):
    ws = random_fit(4096, seed=10)
    rendered = cycles_osl_render(ws, tmp_path)
    assert_matches(rendered, engine_image(ws), "OSL Script node in Cycles (4096 wavelets)")


@pytest.mark.parametrize("output", ["Linear", "Sum"])
def test_osl_linear_and_signed_sum_outputs(tmp_path, output):
    """Linear is Color decoded from sRGB (for Emission under the Standard view); Sum is unclamped."""
    ws = random_fit(64, seed=11)
    ws.params[:, 9:12] *= 3  # push part of the sum beyond [-1, 1]
    rendered = cycles_osl_render(ws, tmp_path, output)
    signed = engine_signed_sum(ws, WIDTH, HEIGHT)
    if output == "Sum":
        assert np.abs(signed).max() > 1.2
        assert_matches(rendered, signed, "OSL Sum output (64 wavelets)")
    else:
        image = to_image(torch.from_numpy(signed)).numpy()
        linear = np.where(image <= 0.04045, image / 12.92, ((image + 0.055) / 1.055) ** 2.4)
        assert_matches(rendered, linear, "OSL Linear output (64 wavelets)")
