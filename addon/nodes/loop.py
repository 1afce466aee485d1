"""The EEVEE loop path (Blender 5.0+): each point walks its tile's wavelet list in a shader repeat zone.

EEVEE keeps a repeat zone as a real loop and takes its iteration count from a per-pixel value (checked:
a count linked to the UV loops a different number of times in every pixel), so the count is the length of
the point's tile list (``imfit_engine.core.resynth.TileLists``) and the cost per point follows the local
overlap of the wavelets, not their number.  Two float data textures hold the lists:

* ``.<group> tiles``: nx x (ny + 1) RGBA texels, texel (tx, ty) = (first entry, entry count, 0, 0) of tile
  (tx, ty) (row 0 at the bottom, like the field's y); texel (0, ny) is the outside list, for points off
  the grid (a UV beyond 0..1).
* ``.<group> list``: the entries, tile after tile, each the 12 canonical values of one wavelet in 3 RGBA
  texels, ``LIST_ROW`` entries per row (the values are copied per tile: one texture read per value, no
  index indirection in the loop).

The tile geometry (origin, tile size, nx, ny) and the list texture's height are values of named nodes, so
new lists (edits, keyframes, controls) change uniforms and pixels only: EEVEE does not recompile.
``group`` builds the loop with an atom body and calls ``write`` when the values or lists change.
"""

from __future__ import annotations

import bpy
import numpy as np

LIST_ROW = 1024  # list entries per texture row: 3 RGBA texels each (12 canonical columns)


def _image(name: str, width: int, height: int):
    """A float data image of that size, found by name (resized in place: its users keep it)."""
    image = bpy.data.images.get(name)
    if image is not None and image.source != "GENERATED":
        bpy.data.images.remove(image)
        image = None
    if image is not None and tuple(image.size) != (width, height):
        image.generated_width, image.generated_height = width, height  # a generated image reallocates
    if image is None:
        image = bpy.data.images.new(name, width, height, alpha=True, float_buffer=True, is_data=True)
    image.colorspace_settings.name = "Non-Color"
    image.alpha_mode = "CHANNEL_PACKED"  # alpha is data, not coverage
    image.use_half_precision = False  # positions need all 24 bits
    return image


def image_names(tree) -> tuple[str, str]:
    return f".{tree.name} tiles", f".{tree.name} list"


def images(tree, lists):
    """(table image, list image) sized for ``lists``."""
    table_name, list_name = image_names(tree)
    rows = max(1, -(-len(lists.index) // LIST_ROW))
    return _image(table_name, lists.nx, lists.ny + 1), _image(list_name, 3 * LIST_ROW, rows)


def _set(tree, name: str, values: dict) -> None:
    """Inputs of the node ``name`` by index: the constants that carry the tile geometry."""
    node = tree.nodes[name]
    for index, value in values.items():
        node.inputs[index].default_value = value


def write(tree, params, lists) -> None:
    """The textures and the geometry constants for ``lists`` of the raw canonical ``params`` (N, 12)."""
    table, entries = images(tree, lists)
    t = np.zeros((lists.ny + 1, lists.nx, 4), np.float32)
    t[: lists.ny, :, 0] = lists.start[: lists.tiles].reshape(lists.ny, lists.nx)
    t[: lists.ny, :, 1] = lists.count[: lists.tiles].reshape(lists.ny, lists.nx)
    t[lists.ny, 0, :2] = lists.start[lists.outside], lists.count[lists.outside]
    table.pixels.foreach_set(t.ravel())
    table.update()
    rows = entries.size[1]
    data = np.zeros((rows * LIST_ROW, 12), np.float32)
    data[: len(lists.index)] = np.asarray(params, np.float32)[lists.index]
    entries.pixels.foreach_set(data.ravel())
    entries.update()
    inv = 1.0 / lists.tile
    half_x, half_y = 0.5 * lists.nx, 0.5 * lists.ny
    _set(tree, "imfit_fx", {1: inv, 2: -lists.x0 * inv})
    _set(tree, "imfit_fy", {1: inv, 2: -lists.y0 * inv})
    _set(tree, "imfit_inside_x", {1: half_x})
    _set(tree, "imfit_inside_x_limit", {1: half_x})
    _set(tree, "imfit_inside_y", {1: half_y})
    _set(tree, "imfit_inside_y_limit", {1: half_y})
    _set(tree, "imfit_row_sub", {1: float(lists.ny)})
    _set(tree, "imfit_row_select", {2: float(lists.ny)})
    _set(tree, "imfit_col", {1: 1.0 / lists.nx, 2: 0.5 / lists.nx})
    _set(tree, "imfit_row", {1: 1.0 / (lists.ny + 1), 2: 0.5 / (lists.ny + 1)})
    _set(tree, "imfit_list_v", {1: 1.0 / rows, 2: 0.5 / rows})


def _named(socket, name: str):
    socket.node.name = socket.node.label = name
    return socket


def _inside(b, f, name: str):
    """1 where 0 < f < n, else 0, as |f - n/2| < n/2 (``write`` sets n/2 on both named nodes)."""
    centred = _named(b.math("SUBTRACT", f, 0.0), name)
    return _named(b.math("LESS_THAN", b.math("ABSOLUTE", centred), 0.0), name + "_limit")


def tiled_sum(b, sources, tree, lists, aspect, body, wavelet_sockets):
    """The signed sum at ``sources["Vector"]`` (image heights) over its tile's list, one wavelet per
    iteration of a repeat zone; ``body`` adds one wavelet (an atom body) given ``wavelet_sockets``' values."""
    table, entries = images(tree, lists)
    point = sources["Vector"]
    x = b.vmath("DOT_PRODUCT", point, (1.0, 0.0, 0.0), output="Value")
    y = b.vmath("DOT_PRODUCT", point, (0.0, 1.0, 0.0), output="Value")
    fx = _named(b.math("MULTIPLY_ADD", x, 1.0, 0.0), "imfit_fx")  # (x - x0) / tile, constants set by write
    fy = _named(b.math("MULTIPLY_ADD", y, 1.0, 0.0), "imfit_fy")
    tx, ty = b.math("FLOOR", fx), b.math("FLOOR", fy)
    inside = b.math("MULTIPLY", _inside(b, fx, "imfit_inside_x"), _inside(b, fy, "imfit_inside_y"))
    # inside the grid texel (tx, ty), outside it the outside list's texel (0, ny)
    col = b.math("MULTIPLY", tx, inside)
    row = _named(
        b.math("MULTIPLY_ADD", _named(b.math("SUBTRACT", ty, 0.0), "imfit_row_sub"), inside, 0.0), "imfit_row_select"
    )
    u = _named(b.math("MULTIPLY_ADD", col, 1.0, 0.0), "imfit_col")
    v = _named(b.math("MULTIPLY_ADD", row, 1.0, 0.0), "imfit_row")
    cell = b.node("ShaderNodeTexImage", image=table, interpolation="Closest", extension="EXTEND")
    b.links.new(b.combine(u, v, 0.0), cell.inputs["Vector"])
    split = b.node("ShaderNodeSeparateColor", mode="RGB")
    b.links.new(cell.outputs["Color"], split.inputs[0])
    first, count = split.outputs[0], split.outputs[1]

    start, end = b.node("GeometryNodeRepeatInput"), b.node("GeometryNodeRepeatOutput")
    start.pair_with_output(end)
    end.repeat_items.new("VECTOR", "Sum")
    b.links.new(count, start.inputs["Iterations"])  # a per-pixel count: EEVEE loops that many times
    entry = b.math("ADD", first, start.outputs["Iteration"])
    entry_row = b.math("FLOOR", b.math("MULTIPLY", entry, 1.0 / LIST_ROW))  # exact: a power of two
    entry_col = b.math("MULTIPLY_ADD", entry_row, -float(LIST_ROW), entry)
    ev = _named(b.math("MULTIPLY_ADD", entry_row, 1.0, 0.0), "imfit_list_v")
    width = 3.0 * LIST_ROW
    columns = []
    for texel in range(3):
        texture = b.node("ShaderNodeTexImage", image=entries, interpolation="Closest", extension="EXTEND")
        eu = b.math("MULTIPLY_ADD", entry_col, 3.0 / width, (texel + 0.5) / width)
        b.links.new(b.combine(eu, ev, 0.0), texture.inputs["Vector"])
        values = b.node("ShaderNodeSeparateColor", mode="RGB")
        b.links.new(texture.outputs["Color"], values.inputs[0])
        columns += [*values.outputs[:3], texture.outputs["Alpha"]]
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
