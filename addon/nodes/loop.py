"""EEVEE past its uniform limit (Blender 5.0+): the wavelets read from a float data texture in a repeat zone.

Layout only: ``group`` builds the loop with its atom body and keeps the texture in step with the
sockets (``group.sync_data_texture``).
"""

from __future__ import annotations

import bpy
import numpy as np

LOOP_ROW = 1024  # wavelets per data-texture row: 3 RGBA texels each (12 canonical columns)


def loop_supported() -> bool:
    """Shader trees take repeat zones from Blender 5.0 (EEVEE keeps them as real loops)."""
    return bpy.app.version >= (5, 0, 0)


def data_image(tree, count):
    """The float texture the loop reads the wavelets from, found by name, sized for ``count``."""
    name = f".{tree.name} data"
    width, height = 3 * min(count, LOOP_ROW), -(-count // LOOP_ROW)
    image = bpy.data.images.get(name)
    if image is not None and tuple(image.size) != (width, height):
        bpy.data.images.remove(image)
        image = None
    if image is None:
        image = bpy.data.images.new(name, width, height, alpha=True, float_buffer=True, is_data=True)
    image.colorspace_settings.name = "Non-Color"
    image.alpha_mode = "CHANNEL_PACKED"  # alpha is data, not coverage
    image.use_half_precision = False  # positions need all 24 bits
    return image


def loop_sum(b, sources, image, count, aspect, body, wavelet_sockets):
    """Sum of ``count`` wavelets read from ``image``, one per iteration of a repeat zone; ``body`` adds one
    wavelet (an atom body) given the values of ``wavelet_sockets`` read from the texture."""
    start, end = b.node("GeometryNodeRepeatInput"), b.node("GeometryNodeRepeatOutput")
    start.pair_with_output(end)
    end.repeat_items.new("VECTOR", "Sum")
    start.inputs["Iterations"].default_value = count
    width, height = image.size
    index = start.outputs["Iteration"]
    row = b.math("FLOOR", b.math("DIVIDE", index, LOOP_ROW))
    column = b.math("MULTIPLY_ADD", row, -LOOP_ROW, index)
    v_coord = b.math("MULTIPLY_ADD", row, 1.0 / height, 0.5 / height)
    columns = []
    for texel in range(3):
        texture = b.node("ShaderNodeTexImage", image=image, interpolation="Closest", extension="EXTEND")
        u_coord = b.math("MULTIPLY_ADD", column, 3.0 / width, (texel + 0.5) / width)
        b.links.new(b.combine(u_coord, v_coord, 0.0), texture.inputs["Vector"])
        split = b.node("ShaderNodeSeparateColor", mode="RGB")
        b.links.new(texture.outputs["Color"], split.inputs[0])
        columns += [*split.outputs[:3], texture.outputs["Alpha"]]
    values = {
        spec.name: b.combine(*(columns[c] for c in spec.columns))
        if len(spec.columns) == 3
        else columns[spec.columns[0]]
        for spec in wavelet_sockets
    }
    values.update(sources)
    values["Sum"] = start.outputs["Sum"]
    b.links.new(body(b, values, aspect), end.inputs["Sum"])
    return end.outputs["Sum"]


def write_texels(image, params) -> None:
    """Canonical (N, 12) values into the data texture (3 RGBA texels per wavelet, ``LOOP_ROW`` per row)."""
    width, height = image.size
    texels = np.zeros((height * LOOP_ROW, 12), np.float32)
    texels[: len(params)] = params
    image.pixels.foreach_set(texels.reshape(height, LOOP_ROW * 12)[:, : width * 4].ravel())
    image.update()
