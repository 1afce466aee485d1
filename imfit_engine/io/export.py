"""Export a fit for re-synthesis outside Blender's node editor: GLSL, uniform payload, data texture, OSL.

The shaders themselves live in ``shaders/`` (formula and layouts documented at the top of each
file and in ``shaders/README.md``); this module fills their marked ``imfit:`` blocks with a
fit's values or writes the data they read:

* ``export_glsl``: ``gabor_uniform.frag`` with the fit inlined as constants, for desktop GL
  (``gl330``), WebGL2 / GLSL ES 3.00 (``es300``) or Shadertoy (``shadertoy``).
* ``export_uniforms``: the values of ``gabor_uniform.frag``'s uniforms as text.
* ``export_texture``: the data texture of ``gabor_texture.frag``: ``.exr`` (RGBA32F, written
  here, uncompressed, no dependency) or ``.png`` (each float bit-exact in one RGBA8 texel).
* ``export_osl``: ``gabor.osl`` with the fit inlined, for Cycles' Script node.
* ``osl_tiles_source``: ``gabor_tiles.osl``, the fit and its per-tile wavelet lists inlined: each point
  evaluates only the wavelets that reach its tile (``core.resynth.tile_lists``); the node group's controls
  are its inputs.  The add-on's scalable Cycles path.

Needs numpy only (no torch, no Pillow: the EXR and PNG writers are here), so Blender's Python
can use it.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np

from ..core import resynth
from ..core.model import COLUMNS, LENGTHS, WaveletSet
from ..errors import ImfitError
from .atomic import write_atomic

SHADER_DIR = Path(__file__).resolve().parents[2] / "shaders"

GLSL_HEADERS = {
    "gl330": "#version 330 core",
    "es300": "#version 300 es\nprecision highp float;\nprecision highp int;",
    "shadertoy": "",  # Shadertoy supplies its own version line and precision
}
GLSL_DIALECTS = tuple(GLSL_HEADERS)
SHADERTOY_ENTRY = """\
void mainImage(out vec4 fragColor, in vec2 fragCoord)
{
    fragColor = imfit_color(fragCoord / iResolution.xy);
}
"""

# Inlined constants live in a 64 KiB constant buffer on common drivers (4096 vec4, 3 per wavelet);
# Mesa's llvmpipe compiles 1365 wavelets in ~3 s and hangs for minutes past that.
GLSL_INLINE_MAX_WAVELETS = 4096 // 3
WAVELETS_PER_ROW = 256  # data texture: .png rows are 12 * 256 = 3072 texels, within WebGL2's 4096
TEXELS_PER_WAVELET = len(COLUMNS) // 4
TEXTURE_SUFFIXES = (".exr", ".png")
# a zero-amplitude wavelet with finite lengths: pads the last texture row, contributes exactly 0
PADDING_WAVELET = np.array([0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=np.float32)


# ----------------------------------------------------------------------------------------
# Shader sources


def shader_source(name: str) -> str:
    """Text of one file of ``shaders/``."""
    return (SHADER_DIR / name).read_text(encoding="utf-8")


def replace_block(source: str, name: str, text: str) -> str:
    """Replace the lines between ``// >>> imfit:NAME`` and ``// <<< imfit:NAME`` (markers included)."""
    pattern = re.compile(rf"^[ \t]*// >>> imfit:{name}\b.*?^[ \t]*// <<< imfit:{name}[^\n]*\n", re.M | re.S)
    result, count = pattern.subn(lambda _: text, source)
    if count != 1:
        raise ValueError(f"shader source has {count} 'imfit:{name}' blocks, expected 1")
    return result


def retarget_glsl(source: str, dialect: str) -> str:
    """A ``#version 330 core`` shader of ``shaders/`` for another GLSL dialect (GLSL_DIALECTS).

    ``shadertoy`` also swaps the ``imfit:entry`` block (``main``) for ``mainImage``.
    """
    if dialect not in GLSL_HEADERS:
        raise ImfitError(f"unknown GLSL dialect {dialect!r}: choose one of {', '.join(GLSL_DIALECTS)}")
    first, _, body = source.partition("\n")
    if not first.startswith("#version"):
        raise ValueError("a shader of shaders/ must start with its #version line")
    if dialect == "shadertoy":
        body = replace_block(body, "entry", SHADERTOY_ENTRY)
    header = GLSL_HEADERS[dialect]
    return f"{header}\n{body}" if header else body


# ----------------------------------------------------------------------------------------
# Parameters


def checked_params(ws: WaveletSet) -> np.ndarray:
    """The fit's (N, 12) float32 parameters, or ImfitError if no shader can render them."""
    params = np.asarray(ws.params)
    if params.ndim != 2 or params.shape[1] != len(COLUMNS):
        raise ImfitError(f"parameters must be an (N, {len(COLUMNS)}) array, got shape {params.shape}")
    if len(params) == 0:
        raise ImfitError("the fit has no wavelets: nothing to export")
    if ws.width <= 0 or ws.height <= 0:
        raise ImfitError(f"the fit's source size must be positive, got {ws.width}x{ws.height}")
    params = params.astype(np.float32)
    bad = ~np.isfinite(params).all(axis=1)
    if bad.any():
        raise ImfitError(f"wavelet {int(np.argmax(bad))} has a non-finite parameter: fix or drop it before exporting")
    zero = (params[:, LENGTHS] == 0).any(axis=1)
    if zero.any():
        raise ImfitError(
            f"wavelet {int(np.argmax(zero))} has a zero sigma, gamma or wavelength: shaders divide by them"
        )
    return params


def format_float(value: float) -> str:
    """Shortest literal that reads back as the same float32, valid in GLSL and OSL."""
    value = np.float32(value)
    if value == 0 or 1e-4 <= abs(value) < 1e7:
        return np.format_float_positional(value, unique=True, trim="0")
    return np.format_float_scientific(value, unique=True, trim="0")


def _rows(values: np.ndarray, template: str, indent: str) -> str:
    """One line per row of ``values``, each ``template`` filled with its literals, comma separated."""
    lines = [indent + template.format(", ".join(map(format_float, row))) for row in values]
    return ",\n".join(lines)


def _generated_by(ws: WaveletSet) -> str:
    return f"Generated by `imfit export`: {len(ws)} wavelets, source {ws.width}x{ws.height}."


# ----------------------------------------------------------------------------------------
# GLSL


def glsl_source(ws: WaveletSet, dialect: str = "gl330") -> str:
    """Self-contained fragment shader: ``gabor_uniform.frag`` with the fit as constants."""
    params = checked_params(ws)
    n = len(params)
    if n > GLSL_INLINE_MAX_WAVELETS:
        raise ImfitError(
            f"{n} wavelets are too many to inline in GLSL (at most {GLSL_INLINE_MAX_WAVELETS}, "
            "the 64 KiB of constants drivers hold): export a data texture (--texture) for "
            "shaders/gabor_texture.frag instead"
        )
    vec4s = params.reshape(n * TEXELS_PER_WAVELET, 4)
    constants = (
        f"// {_generated_by(ws)}\n"
        f"const int u_count = {n};\n"
        f"const float u_aspect = {format_float(ws.aspect)};\n"
        f"const vec4 u_wavelets[{len(vec4s)}] = vec4[{len(vec4s)}](\n"
        f"{_rows(vec4s, 'vec4({})', '    ')}\n);\n"
    )
    source = replace_block(shader_source("gabor_uniform.frag"), "inputs", constants)
    return retarget_glsl(source, dialect)


def export_glsl(ws: WaveletSet, path: str | os.PathLike, dialect: str = "gl330") -> None:
    """Write ``glsl_source(ws, dialect)`` to ``path`` atomically."""
    write_atomic(path, glsl_source(ws, dialect))


# ----------------------------------------------------------------------------------------
# Uniform payload


def uniforms_text(ws: WaveletSet) -> str:
    """Values of gabor_uniform.frag's uniforms: ``name value`` lines, then 3N rows of 4 floats."""
    params = checked_params(ws)
    n = len(params)
    vec4s = params.reshape(n * TEXELS_PER_WAVELET, 4)
    lines = [
        "# Gabor ImFit uniforms for shaders/gabor_uniform.frag. " + _generated_by(ws),
        f"# Compile the shader with IMFIT_MAX_WAVELETS >= {n} (drivers hold GL_MAX_FRAGMENT_UNIFORM_VECTORS / 3",
        "# wavelets: 341 at 1024 vectors; use a data texture beyond). Lines: 'name value', then",
        f"# 'u_wavelets {len(vec4s)}' and that many rows of one vec4 each, 3 per wavelet, the model columns in order:",
        "# (u v theta sigma) (gamma wavelength phase_r phase_g) (phase_b amp_r amp_g amp_b).",
        "# The rows flattened are the float32 data for glUniform4fv or a std140 vec4 array.",
        f"u_count {n}",
        f"u_aspect {format_float(ws.aspect)}",
        f"u_wavelets {len(vec4s)}",
    ]
    lines += [" ".join(map(format_float, row)) for row in vec4s]
    return "\n".join(lines) + "\n"


def export_uniforms(ws: WaveletSet, path: str | os.PathLike) -> None:
    """Write ``uniforms_text(ws)`` to ``path`` atomically."""
    write_atomic(path, uniforms_text(ws))


# ----------------------------------------------------------------------------------------
# Data texture


def texture_data(ws: WaveletSet) -> np.ndarray:
    """RGBA32F data texture, (rows, 3 * per_row, 4); row 0 is the first (top) row.

    Wavelet k is row k // per_row, texels 3 * (k % per_row) + 0..2, holding the 12 model
    columns in order; per_row = min(N, WAVELETS_PER_ROW); the last row is padded with
    zero-amplitude wavelets.
    """
    params = checked_params(ws)
    per_row = min(len(params), WAVELETS_PER_ROW)
    rows = -(-len(params) // per_row)
    padded = np.tile(PADDING_WAVELET, (rows * per_row, 1))
    padded[: len(params)] = params
    return padded.reshape(rows, per_row * TEXELS_PER_WAVELET, 4)


def packed_rgba8(data: np.ndarray) -> np.ndarray:
    """Each float32 of an RGBA32F texture as one RGBA8 texel (little-endian bytes): 4x wider, exact."""
    rows, width, _ = data.shape
    return np.ascontiguousarray(data, dtype="<f4").view(np.uint8).reshape(rows, width * 4, 4)


def _texture_attributes(ws: WaveletSet, data: np.ndarray) -> dict:
    return {
        "imfitCount": len(ws),
        "imfitAspect": float(ws.aspect),
        "imfitWaveletsPerRow": data.shape[1] // TEXELS_PER_WAVELET,
    }


def exr_bytes(rgba: np.ndarray, attributes: dict | None = None) -> bytes:
    """A single-part scanline OpenEXR file, uncompressed 32-bit float RGBA; row 0 is the top.

    ``attributes``: extra header attributes, int or float values.
    """
    height, width, _ = rgba.shape

    def attribute(name: str, kind: str, value: bytes) -> bytes:
        return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value

    channel_names = "ABGR"  # EXR lists channels sorted by name
    channels = b"".join(c.encode() + b"\0" + struct.pack("<iB3xii", 2, 0, 1, 1) for c in channel_names) + b"\0"
    window = struct.pack("<iiii", 0, 0, width - 1, height - 1)
    header = [
        attribute("channels", "chlist", channels),
        attribute("compression", "compression", b"\0"),
        attribute("dataWindow", "box2i", window),
        attribute("displayWindow", "box2i", window),
        attribute("lineOrder", "lineOrder", b"\0"),
        attribute("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
        attribute("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0)),
        attribute("screenWindowWidth", "float", struct.pack("<f", 1.0)),
    ]
    for name, value in (attributes or {}).items():
        if isinstance(value, (int, np.integer)):
            header.append(attribute(name, "int", struct.pack("<i", int(value))))
        else:
            header.append(attribute(name, "float", struct.pack("<f", float(value))))
    head = struct.pack("<ii", 20000630, 2) + b"".join(header) + b"\0"
    # one scan line per chunk: y, byte count, then each channel's row of floats
    pixels = np.asarray(rgba, dtype="<f4")[:, :, [3, 2, 1, 0]].transpose(0, 2, 1)  # (H, channel, W)
    line_bytes = 4 * 4 * width
    first = len(head) + 8 * height
    offsets = struct.pack(f"<{height}Q", *(first + y * (8 + line_bytes) for y in range(height)))
    lines = b"".join(struct.pack("<ii", y, line_bytes) + pixels[y].tobytes() for y in range(height))
    return head + offsets + lines


def png_bytes(rgba8: np.ndarray, text: dict | None = None) -> bytes:
    """An 8-bit RGBA PNG, row 0 at the top, with ``text`` as tEXt chunks (Latin-1)."""
    height, width, _ = rgba8.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8 bits, RGBA, no interlace
    rows = np.zeros((height, 1 + 4 * width), np.uint8)  # each row: filter type 0, then the bytes
    rows[:, 1:] = rgba8.reshape(height, 4 * width)
    texts = b"".join(chunk(b"tEXt", f"{k}\0{v}".encode("latin-1")) for k, v in (text or {}).items())
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + texts
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def export_texture(ws: WaveletSet, path: str | os.PathLike) -> None:
    """Write the data texture: ``.exr`` RGBA32F, or ``.png`` with each float packed in RGBA8."""
    suffix = Path(path).suffix.lower()
    if suffix not in TEXTURE_SUFFIXES:
        raise ImfitError(f"{path}: a data texture must be .exr (float RGBA) or .png (floats packed in RGBA8)")
    data = texture_data(ws)
    attributes = _texture_attributes(ws, data)
    if suffix == ".exr":
        write_atomic(path, exr_bytes(data, attributes))
        return
    text = {name: str(value) for name, value in attributes.items()}
    text["imfitLayout"] = "each RGBA8 texel is one little-endian float32, 12 texels per wavelet (shaders/README.md)"
    write_atomic(path, png_bytes(packed_rgba8(data), text))


# ----------------------------------------------------------------------------------------
# OSL


def osl_source(ws: WaveletSet) -> str:
    """``gabor.osl`` with the fit inlined, for a Cycles Script node (internal text or file)."""
    params = checked_params(ws)
    n = len(params)
    indent = "    "
    values = (
        f"{indent}// {_generated_by(ws)}\n"
        f"{indent}int count = {n};\n"
        f"{indent}float aspect = {format_float(ws.aspect)};\n"
        f"{indent}float W[{params.size}] = {{\n"
        f"{_rows(params, '{}', indent * 2)}\n{indent}}};\n"
    )
    return replace_block(shader_source("gabor.osl"), "inputs", values)


def export_osl(ws: WaveletSet, path: str | os.PathLike) -> None:
    """Write ``osl_source(ws)`` to ``path`` atomically."""
    write_atomic(path, osl_source(ws))


def _int_rows(values, per_line: int = 24, indent: str = "        ") -> str:
    items = [str(int(v)) for v in values]
    return ",\n".join(indent + ", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line))


def osl_tiles_source(ws: WaveletSet, lists: resynth.TileLists | None = None) -> str:
    """``gabor_tiles.osl`` with the fit and its tile lists inlined (default lists: ``resynth.tile_lists``
    of the fit with the finest useful grid; ``tile_lists(..., 1)`` gives the unculled shader)."""
    params = checked_params(ws)
    if lists is None:
        lists = resynth.tile_lists(params, ws.aspect)
    index = lists.index if len(lists.index) else np.zeros(1, np.int32)  # OSL has no empty arrays
    if len(index) and (index.max() >= len(params) or index.min() < 0):
        raise ImfitError("the tile lists refer to wavelets the fit does not have: rebuild them")
    indent = "    "
    values = (
        f"{indent}// {_generated_by(ws)} {lists.tiles} tiles, {len(lists.index)} list entries.\n"
        f"{indent}float aspect = {format_float(ws.aspect)};\n"
        f"{indent}float x0 = {format_float(lists.x0)};\n"
        f"{indent}float y0 = {format_float(lists.y0)};\n"
        f"{indent}float tile = {format_float(lists.tile)};\n"
        f"{indent}int nx = {lists.nx};\n"
        f"{indent}int ny = {lists.ny};\n"
        f"{indent}int tile_start[{len(lists.start)}] = {{\n{_int_rows(lists.start)}\n{indent}}};\n"
        f"{indent}int tile_count[{len(lists.count)}] = {{\n{_int_rows(lists.count)}\n{indent}}};\n"
        f"{indent}int L[{len(index)}] = {{\n{_int_rows(index)}\n{indent}}};\n"
        f"{indent}float W[{params.size}] = {{\n"
        f"{_rows(params, '{}', indent * 2)}\n{indent}}};\n"
    )
    return replace_block(shader_source("gabor_tiles.osl"), "inputs", values)
