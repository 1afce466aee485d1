"""The generated shader node group that re-synthesises a wavelet field inside Blender.

Layout (names as the user sees them in the node editor)::

    "ImFit <image>"            top group: Vector (UV when unlinked) and the global controls in;
                                Color (scene-linear) and Signed (raw sum) out
      ".ImFit <image> chunk k"  sub-groups of CHUNK wavelets each, chained by the running sum
        "W00", "W01", ...       one instance per wavelet of the shared atom group, labelled
                                "Wavelet <index>": keyframeable X, Y, Rotation, Sigma, Gamma,
                                Wavelength, Phase, Amplitude (wavelet i: chunk i // CHUNK)
      ".ImFit <image> atom"     the atom: one wavelet's contribution added to the running sum

Chunks keep building fast (``nodes.new`` slows down with the size of the tree it adds to).
The atom's internals exist in two bodies with the same sockets, switched by ``set_backend``:

* ``CYCLES``: Vector Rotate + vector maths, no Separate XYZ, no type conversions, and the
  running sum on the LAST input of the node that adds a wavelet in.  Cycles' SVM then keeps
  its 255-float stack small whatever the count (FACTS.md: other layouts render black at ~80).
* ``EEVEE``: one Mapping node does translate + rotate + scale, so each wavelet costs few
  uniforms (EEVEE caps a material's constants at 64 KiB).

Everything here is layout; the formula is ``imfit_engine.model``'s.  No torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import bpy
import numpy as np

from ..imfit_engine import model
from ..imfit_engine.errors import ImfitError

GROUP_PREFIX = "ImFit "
CHUNK = 64  # wavelets per sub-group: build time grows with the square of a tree's node count
BACKENDS = ("CYCLES", "EEVEE")
# The unlinked Vector input's value: no real coordinate is this far out, so the group can tell
# "unlinked" from "linked" and use the UV map then (shader groups have no implicit UV input).
UNLINKED_VECTOR = -1.0e20
_MAX_NAME_BYTES = 63  # ID names in Blender 4.2 (5.0 allows more; the shorter rule fits both)


@dataclass(frozen=True)
class SocketSpec:
    name: str
    kind: str  # "FLOAT" or "VECTOR"
    default: float | tuple = 0.0
    description: str = ""
    subtype: str = "NONE"
    min_value: float | None = None
    max_value: float | None = None
    columns: tuple = ()  # canonical columns this socket holds (wavelet sockets only)


WAVELET_SOCKETS = (
    SocketSpec("X", "FLOAT", 0.5, "Centre, fraction of the image width from the left", columns=(model.U,)),
    SocketSpec("Y", "FLOAT", 0.5, "Centre, fraction of the image height from the bottom", columns=(model.V,)),
    SocketSpec("Rotation", "FLOAT", 0.0, "Direction of the wave, counter-clockwise from +X",
               subtype="ANGLE", columns=(model.THETA,)),
    SocketSpec("Sigma", "FLOAT", 0.05, "Envelope size along the wave, in image heights",
               min_value=1e-6, columns=(model.SIGMA,)),
    SocketSpec("Gamma", "FLOAT", 0.05, "Envelope size across the wave, in image heights",
               min_value=1e-6, columns=(model.GAMMA,)),
    SocketSpec("Wavelength", "FLOAT", 0.1, "Carrier wavelength, in image heights",
               min_value=1e-6, columns=(model.WAVELENGTH,)),
    SocketSpec("Phase", "VECTOR", (0.0, 0.0, 0.0), "Carrier phase of red, green, blue (radians)",
               columns=tuple(range(12))[model.PHASE]),
    SocketSpec("Amplitude", "VECTOR", (0.0, 0.0, 0.0),
               "Amplitude of red, green, blue in signed-sum units ([-1, 1] spans the image's range)",
               columns=tuple(range(12))[model.AMP]),
)

# Global controls: inputs of the top group, passed down to every atom or applied to the sum
GLOBAL_SOCKETS = (
    SocketSpec("Phase Shift", "FLOAT", 0.0, "Added to every wavelet's phase: animate it to make the waves flow",
               subtype="ANGLE"),
    SocketSpec("Rotation Offset", "FLOAT", 0.0, "Added to every wavelet's rotation: each turns about its own centre",
               subtype="ANGLE"),
    SocketSpec("Scale", "FLOAT", 1.0, "Multiplies every wavelet's size and wavelength about its own centre",
               min_value=1e-3),
    SocketSpec("Frequency Multiplier", "FLOAT", 1.0, "Multiplies every wavelet's carrier frequency",
               min_value=1e-3),
    SocketSpec("Amplitude Multiplier", "FLOAT", 1.0, "Multiplies the signed sum (contrast)"),
    SocketSpec("Offset", "FLOAT", 0.0, "Added to the signed sum before it is clamped to [-1, 1] (brightness)"),
)
ATOM_GLOBALS = GLOBAL_SOCKETS[:4]  # the ones that act per wavelet; the others act on the sum
_VECTOR_TIP = "Image UV (0..1, V up); the UV map when unlinked"
_SUM_TIP = "Running signed sum of the wavelets before this one"


def group_name(image_name: str) -> str:
    """``ImFit <image name>``, cut to the length Blender keeps (so lookups find it again)."""
    name = GROUP_PREFIX + image_name
    raw = name.encode("utf-8")[:_MAX_NAME_BYTES]
    return raw.decode("utf-8", errors="ignore")


# ----------------------------------------------------------------------------------------
# Small node-building helpers: a value is either a socket (linked) or a constant (set)


def _by_identifier(sockets, identifier):
    """Mix nodes repeat socket names per data type; identifiers are unique."""
    return next(s for s in sockets if s.identifier == identifier)


class _Builder:
    def __init__(self, tree):
        self.tree, self.nodes, self.links = tree, tree.nodes, tree.links
        self._x = 0

    def node(self, idname, **props):
        node = self.nodes.new(idname)
        for key, value in props.items():
            setattr(node, key, value)
        node.location = (self._x, 0)
        self._x += 200
        return node

    def feed(self, socket, value):
        if isinstance(value, bpy.types.NodeSocket):
            self.links.new(value, socket)
        elif value is not None:
            socket.default_value = value

    def math(self, op, a, b=None, c=None, clamp=False):
        node = self.node("ShaderNodeMath", operation=op, use_clamp=clamp)
        for socket, value in zip(node.inputs, (a, b, c)):
            self.feed(socket, value)
        return node.outputs[0]

    def vmath(self, op, a, b=None, c=None, scale=None, output="Vector"):
        node = self.node("ShaderNodeVectorMath", operation=op)
        for socket, value in zip(node.inputs, (a, b, c, scale)):
            self.feed(socket, value)
        return node.outputs[output]

    def combine(self, x, y, z):
        node = self.node("ShaderNodeCombineXYZ")
        for socket, value in zip(node.inputs, (x, y, z)):
            self.feed(socket, value)
        return node.outputs[0]

    def mix(self, data_type, factor, a, b):
        """Mix node: a + factor * (b - a), factor unclamped; data_type 'FLOAT' or 'VECTOR'."""
        node = self.node("ShaderNodeMix", data_type=data_type, clamp_factor=False)
        kind = data_type.title()
        for identifier, value in (("Factor_Float", factor), (f"A_{kind}", a), (f"B_{kind}", b)):
            self.feed(_by_identifier(node.inputs, identifier), value)
        return _by_identifier(node.outputs, f"Result_{kind}")

    def group(self, tree):
        node = self.node("ShaderNodeGroup")
        node.node_tree = tree
        return node

    def io(self):
        return self.node("NodeGroupInput"), self.node("NodeGroupOutput")


def _new_socket(tree, spec, in_out):
    """One interface socket from a SocketSpec, or from a (name, kind, tooltip) triple (no default)."""
    name, kind, tip = (spec.name, spec.kind, spec.description) if isinstance(spec, SocketSpec) else spec
    idname = {"FLOAT": "NodeSocketFloat", "VECTOR": "NodeSocketVector", "COLOR": "NodeSocketColor"}[kind]
    socket = tree.interface.new_socket(name, in_out=in_out, socket_type=idname)
    socket.description = tip
    if isinstance(spec, SocketSpec):
        if spec.subtype != "NONE":
            socket.subtype = spec.subtype
        socket.default_value = spec.default
        if spec.min_value is not None:
            socket.min_value = spec.min_value
        if spec.max_value is not None:
            socket.max_value = spec.max_value
    elif name == "Vector":
        socket.hide_value = True  # a coordinate: linked, or the UV map
    return socket


def _set_interface(tree, inputs, outputs):
    """Make the tree's interface exactly these sockets.  Existing matching sockets are kept, so
    links and values in materials that use the group survive a rebuild."""
    def names(specs):
        return [spec.name if isinstance(spec, SocketSpec) else spec[0] for spec in specs]

    sockets = [item for item in tree.interface.items_tree if item.item_type == "SOCKET"]
    have = {side: [s.name for s in sockets if s.in_out == side] for side in ("INPUT", "OUTPUT")}
    if have == {"INPUT": names(inputs), "OUTPUT": names(outputs)}:
        return
    tree.interface.clear()
    for spec in inputs:
        _new_socket(tree, spec, "INPUT")
    for spec in outputs:
        _new_socket(tree, spec, "OUTPUT")
    _reset_instances(tree, inputs)


def _reset_instances(tree, inputs):
    """Group nodes get new sockets when the interface changes: give them the defaults."""
    owners = [m.node_tree for m in bpy.data.materials if m.node_tree] + list(bpy.data.node_groups)
    defaults = [(spec.name, spec.default) if isinstance(spec, SocketSpec) else (spec[0], None) for spec in inputs]
    defaults = [(name, (UNLINKED_VECTOR,) * 3 if name == "Vector" else value) for name, value in defaults
                if value is not None or name == "Vector"]
    for owner in owners:
        for node in owner.nodes:
            if node.bl_idname == "ShaderNodeGroup" and node.node_tree == tree:
                for name, value in defaults:
                    node.inputs[name].default_value = value


# ----------------------------------------------------------------------------------------
# The atom: one wavelet added to the running sum


def _atom_interface(tree):
    _set_interface(
        tree,
        [("Vector", "VECTOR", "Point in image heights: (u * aspect, v, 0)"), *WAVELET_SOCKETS, *ATOM_GLOBALS,
         ("Sum", "VECTOR", _SUM_TIP)],
        [("Sum", "VECTOR", "Running signed sum with this wavelet added")],
    )


def _atom_parameters(b, gi, aspect):
    """Parameter-only maths (constant per wavelet: Cycles and Blender 5.0 fold it away).

    Returns the centre C = (u * aspect, v, 0), the rotation theta, the envelope sizes
    sigma', gamma' and the carrier number k = 2 pi sqrt(2) sigma' / wavelength' such that with
    W = (xr / (sqrt(2) sigma'), yr / (sqrt(2) gamma'), 0) the wavelet is
    amp * exp(-W.W) * cos(k W.x + phase).
    """
    g = gi.outputs
    theta = b.math("ADD", g["Rotation"], g["Rotation Offset"])
    sigma = b.math("MULTIPLY", g["Sigma"], g["Scale"])
    gamma = b.math("MULTIPLY", g["Gamma"], g["Scale"])
    centre = b.combine(b.math("MULTIPLY", g["X"], aspect), g["Y"], 0.0)
    # k = 2 pi sqrt2 sigma * f / wavelength: Scale cancels, the frequency multiplier does not
    k = b.math("MULTIPLY", b.math("DIVIDE", g["Sigma"], g["Wavelength"]), g["Frequency Multiplier"])
    k = b.math("MULTIPLY", k, 2.0 * math.pi * math.sqrt(2.0))
    shift = g["Phase Shift"]
    phase = b.vmath("ADD", g["Phase"], b.combine(shift, shift, shift))
    return centre, theta, sigma, gamma, k, phase


def _atom_tail(b, gi, go, w, k, phase):
    """From W to the running sum: Sum + amp * exp(-W.W) * cos(k W.x + phase)."""
    env = b.math("POWER", math.exp(-1.0), b.vmath("DOT_PRODUCT", w, w, output="Value"))
    arg = b.vmath("DOT_PRODUCT", w, b.combine(k, 0.0, 0.0), output="Value")
    carrier = b.vmath("COSINE", b.mix("VECTOR", arg, phase, b.vmath("ADD", phase, (1.0, 1.0, 1.0))))
    weight = b.vmath("SCALE", gi.outputs["Amplitude"], scale=env)
    # running sum on the last input: SVM then evaluates the chain in order (FACTS.md)
    total = b.vmath("MULTIPLY_ADD", carrier, weight, gi.outputs["Sum"])
    b.links.new(total, go.inputs["Sum"])


def _atom_body_cycles(b, gi, go, aspect):
    centre, theta, sigma, gamma, k, phase = _atom_parameters(b, gi, aspect)
    root_half = math.sqrt(0.5)
    scale = b.combine(b.math("DIVIDE", root_half, sigma), b.math("DIVIDE", root_half, gamma), 0.0)
    offset = b.vmath("MULTIPLY", centre, b.vmath("SCALE", scale, scale=-1.0))
    rot = b.node("ShaderNodeVectorRotate", rotation_type="Z_AXIS", invert=True)
    b.links.new(gi.outputs["Vector"], rot.inputs["Vector"])
    b.links.new(centre, rot.inputs["Center"])
    b.links.new(theta, rot.inputs["Angle"])
    # rot = C + R(-theta)(P - C), so (rot - C) * scale = W
    w = b.vmath("MULTIPLY_ADD", rot.outputs[0], scale, offset)
    _atom_tail(b, gi, go, w, k, phase)


def _atom_body_eevee(b, gi, go, aspect):
    centre, theta, sigma, gamma, k, phase = _atom_parameters(b, gi, aspect)
    root2 = math.sqrt(2.0)
    mapping = b.node("ShaderNodeMapping", vector_type="TEXTURE")
    b.links.new(gi.outputs["Vector"], mapping.inputs["Vector"])
    b.links.new(centre, mapping.inputs["Location"])
    b.links.new(b.combine(0.0, 0.0, theta), mapping.inputs["Rotation"])
    b.links.new(b.combine(b.math("MULTIPLY", sigma, root2), b.math("MULTIPLY", gamma, root2), 1.0),
                mapping.inputs["Scale"])
    # texture mapping: R(-theta)(P - C) / scale = W
    _atom_tail(b, gi, go, mapping.outputs[0], k, phase)


_ATOM_BODIES = {"CYCLES": _atom_body_cycles, "EEVEE": _atom_body_eevee}


def _fill_atom(atom, aspect, backend):
    atom.nodes.clear()
    b = _Builder(atom)
    gi, go = b.io()
    _ATOM_BODIES[backend](b, gi, go, aspect)
    atom["imfit_backend"] = backend
    atom["imfit_aspect"] = float(aspect)


# ----------------------------------------------------------------------------------------
# Chunks and the top group


def _chunk_interface(tree):
    _set_interface(
        tree,
        [("Vector", "VECTOR", "Point in image heights: (u * aspect, v, 0)"), *ATOM_GLOBALS,
         ("Sum", "VECTOR", _SUM_TIP)],
        [("Sum", "VECTOR", "Running signed sum with this chunk's wavelets added")],
    )


def _fill_chunk(chunk, atom, count):
    """``count`` atom instances W0000... chained by the running sum."""
    b = _Builder(chunk)
    gi, go = b.io()
    shared = ["Vector", *(s.name for s in ATOM_GLOBALS)]
    running = gi.outputs["Sum"]
    for index in range(count):
        node = b.group(atom)
        node.name = _local_node_name(index)
        for name in shared:
            b.links.new(gi.outputs[name], node.inputs[name])
        b.links.new(running, node.inputs["Sum"])
        running = node.outputs["Sum"]
    b.links.new(running, go.inputs["Sum"])


def _atom_nodes(chunk):
    return sorted((n for n in chunk.nodes if n.bl_idname == "ShaderNodeGroup"), key=lambda n: n.name)


def _build_chunks(tree_name, atom, count):
    """Chunks holding ``count`` wavelets.  The first is built node by node, the others are
    copies of it (an ID copy costs no per-link updates), renamed and cut to length."""
    template = bpy.data.node_groups.new(f".{tree_name} chunk 000", "ShaderNodeTree")
    _chunk_interface(template)
    _fill_chunk(template, atom, min(CHUNK, count))
    chunks = [template]
    for first in range(CHUNK, count, CHUNK):
        chunk = template.copy()
        chunk.name = f".{tree_name} chunk {first // CHUNK:03d}"
        nodes = _atom_nodes(chunk)
        keep = min(CHUNK, count - first)
        if keep < len(nodes):
            for node in nodes[keep:]:
                chunk.nodes.remove(node)
            output = next(n for n in chunk.nodes if n.bl_idname == "NodeGroupOutput")
            chunk.links.new(nodes[keep - 1].outputs["Sum"], output.inputs["Sum"])
        chunks.append(chunk)
    # the wavelet's index in the whole field, where the user sees it (labels cost no update)
    for first, chunk in zip(range(0, count, CHUNK), chunks):
        for offset, node in enumerate(_atom_nodes(chunk)):
            node.label = f"Wavelet {first + offset}"
    return chunks


def _top_interface(tree):
    _set_interface(
        tree,
        [("Vector", "VECTOR", _VECTOR_TIP), *GLOBAL_SOCKETS],
        [("Color", "COLOR", "The image, scene-linear: through an Emission shader and the Standard view "
                            "transform it looks like the source image"),
         ("Signed", "VECTOR", "The raw signed sum of the wavelets (RGB), before clamping")],
    )
    tree.interface.items_tree["Vector"].default_value = (UNLINKED_VECTOR,) * 3


def _srgb_to_linear(b, value):
    """The exact piecewise sRGB EOTF of one channel in [0, 1]."""
    low = b.math("DIVIDE", value, 12.92)
    high = b.math("POWER", b.math("MULTIPLY_ADD", value, 1.0 / 1.055, 0.055 / 1.055), 2.4)
    return b.mix("FLOAT", b.math("GREATER_THAN", value, 0.04045), low, high)


def _fill_top(tree, chunks, aspect):
    tree.nodes.clear()
    b = _Builder(tree)
    gi, go = b.io()
    g = gi.outputs
    # Vector, or the UV map when the input holds the "unlinked" value
    uv = b.node("ShaderNodeTexCoord").outputs["UV"]
    unlinked = b.math("LESS_THAN", b.vmath("DOT_PRODUCT", g["Vector"], (1.0, 0.0, 0.0), output="Value"),
                      0.5 * UNLINKED_VECTOR)
    # once, here: image heights, z = 0, and a plain vector (no per-wavelet type conversions)
    # a select, not a Mix: a + f (b - a) with a = -1e20 loses every digit in EEVEE's float maths
    chosen = b.vmath("ADD", b.vmath("SCALE", g["Vector"], scale=b.math("SUBTRACT", 1.0, unlinked)),
                     b.vmath("SCALE", uv, scale=unlinked))
    point = b.vmath("MULTIPLY", chosen, (float(aspect), 1.0, 0.0))
    running = None
    for chunk in chunks:
        node = b.group(chunk)
        b.links.new(point, node.inputs["Vector"])
        for spec in ATOM_GLOBALS:
            b.links.new(g[spec.name], node.inputs[spec.name])
        if running is not None:
            b.links.new(running, node.inputs["Sum"])
        running = node.outputs["Sum"]
    gain, bias = g["Amplitude Multiplier"], g["Offset"]
    signed = b.vmath("MULTIPLY_ADD", running, b.combine(gain, gain, gain), b.combine(bias, bias, bias))
    b.links.new(signed, go.inputs["Signed"])
    # clamp(sum, -1, 1) * .5 + .5 is the stored (sRGB-encoded) image; Color is its linear value
    split = b.node("ShaderNodeSeparateXYZ")
    b.links.new(signed, split.inputs[0])
    color = b.node("ShaderNodeCombineColor", mode="RGB")
    for channel in range(3):
        stored = b.math("MULTIPLY_ADD", split.outputs[channel], 0.5, 0.5, clamp=True)
        b.links.new(_srgb_to_linear(b, stored), color.inputs[channel])
    b.links.new(color.outputs[0], go.inputs["Color"])


def _local_node_name(offset: int) -> str:
    # names repeat from chunk to chunk: renaming a node costs ~0.4 ms (Blender fixes animation
    # paths everywhere), so copies keep the template's names; labels carry the global index
    return f"W{offset:0{len(str(CHUNK - 1))}d}"


def wavelet_location(tree, index: int):
    """(chunk group, node name) of wavelet ``index``: where its sockets and F-curves live."""
    chunks, _ = _owned_trees(tree)
    chunk = chunks[index // CHUNK]
    return chunk, _local_node_name(index % CHUNK)


def _check_params(params, aspect) -> np.ndarray:
    p = np.asarray(params, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(model.COLUMNS) or len(p) == 0:
        raise ImfitError(f"wavelet parameters must be an (N, {len(model.COLUMNS)}) array with N >= 1, "
                         f"got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ImfitError("wavelet parameters contain NaN or infinite values: re-run or re-load the fit")
    if not (np.isfinite(aspect) and aspect > 0):
        raise ImfitError(f"image aspect must be a positive number, got {aspect!r}")
    return p


def _owned_trees(tree):
    """The chunk and atom groups that this top group built (found by reference, not name)."""
    chunks = [n.node_tree for n in tree.nodes if n.bl_idname == "ShaderNodeGroup" and n.node_tree]
    atoms = {n.node_tree for c in chunks for n in c.nodes if n.bl_idname == "ShaderNodeGroup" and n.node_tree}
    return chunks, atoms


def _atom_of(tree):
    chunks, atoms = _owned_trees(tree)
    if len(atoms) != 1:
        raise ImfitError(f"node group {tree.name!r} is not an ImFit wavelet group (rebuild it from the fit)")
    return atoms.pop()


def build_wavelet_group(name: str, params, aspect: float, backend: str = "CYCLES"):
    """Build (or rebuild in place) the node group ``ImFit <name>`` for canonical ``params``.

    An existing group of that name keeps its identity and interface, so materials that use it
    stay linked; its sub-groups are replaced (their keyframes go with them).
    Returns the top group (a ``ShaderNodeTree``).
    """
    if backend not in BACKENDS:
        raise ImfitError(f"backend must be one of {BACKENDS}, got {backend!r}")
    p = _check_params(params, aspect)
    tree_name = group_name(name)
    tree = bpy.data.node_groups.get(tree_name)
    if tree is not None and tree.bl_idname != "ShaderNodeTree":
        raise ImfitError(f"a {tree.bl_idname} named {tree_name!r} exists already: rename it and try again")
    if tree is None:
        tree = bpy.data.node_groups.new(tree_name, "ShaderNodeTree")
    old_chunks, old_atoms = _owned_trees(tree)
    tree.nodes.clear()
    for old in [*old_chunks, *old_atoms]:
        if old.users == 0:
            bpy.data.node_groups.remove(old)

    atom = bpy.data.node_groups.new(f".{tree_name} atom", "ShaderNodeTree")
    _atom_interface(atom)
    _fill_atom(atom, aspect, backend)
    chunks = _build_chunks(tree_name, atom, len(p))
    update_wavelet_values(tree, p, chunks)
    _top_interface(tree)
    _fill_top(tree, chunks, aspect)
    tree["imfit_count"] = len(p)
    tree["imfit_aspect"] = float(aspect)
    tree["imfit_backend"] = backend
    return tree


# ----------------------------------------------------------------------------------------
# Values and keyframes


def _wavelet_nodes(tree, chunks=None):
    """(chunk tree, atom instance) for every wavelet, in index order."""
    if chunks is None:
        chunks, _ = _owned_trees(tree)
    return [(chunk, node) for chunk in chunks for node in _atom_nodes(chunk)]


def socket_values(params) -> dict:
    """Canonical (N, 12) -> {socket name: (N,) or (N, 3) array}: the one canonical->socket map."""
    p = np.asarray(params, dtype=np.float64)
    return {spec.name: p[:, spec.columns[0]] if len(spec.columns) == 1 else p[:, list(spec.columns)]
            for spec in WAVELET_SOCKETS}


def _input_layout(node) -> dict:
    """{input name: (socket index, offset, size)} of a node's inputs flattened into one float row
    (the layout ``foreach_set('default_value', row)`` reads)."""
    layout, offset = {}, 0
    for index, socket in enumerate(node.inputs):
        size = len(socket.default_value) if socket.type == "VECTOR" else 1
        layout[socket.name] = (index, offset, size)
        offset += size
    return layout


def _checked_pairs(tree, params, chunks=None):
    pairs = _wavelet_nodes(tree, chunks)
    p = np.asarray(params, dtype=np.float64)
    if p.ndim != 2 or len(p) != len(pairs):
        raise ImfitError(f"{tree.name!r} holds {len(pairs)} wavelets, the parameters have shape {p.shape}: "
                         "rebuild the group")
    return pairs, p


def update_wavelet_values(tree, params, chunks=None):
    """Write ``params`` (N, 12 canonical) into the wavelet sockets of a group built for N.

    One ``foreach_set`` per wavelet: setting sockets one by one runs Blender's node-tree update
    each time (~0.2 ms, seconds for a big field).  Linked inputs get zeros, which nothing reads.
    """
    pairs, p = _checked_pairs(tree, params, chunks)
    layout = _input_layout(pairs[0][1])
    rows = np.zeros((len(p), sum(size for _, _, size in layout.values())), np.float32)
    for name, values in socket_values(p).items():
        _, offset, size = layout[name]
        rows[:, offset:offset + size] = values.reshape(len(p), size)
    for (_, node), row in zip(pairs, rows):
        node.inputs.foreach_set("default_value", row)
    for chunk in {chunk for chunk, _ in pairs}:
        chunk.update_tag()  # foreach_set skips the update that tells renderers
    tree.update_tag()


def read_wavelet_values(tree) -> np.ndarray:
    """The group's current socket values as canonical (N, 12) float64 (inverse of the update)."""
    pairs = _wavelet_nodes(tree)
    layout = _input_layout(pairs[0][1])
    row = np.zeros(sum(size for _, _, size in layout.values()), np.float32)
    p = np.zeros((len(pairs), len(model.COLUMNS)))
    for i, (_, node) in enumerate(pairs):
        node.inputs.foreach_get("default_value", row)
        for spec in WAVELET_SOCKETS:
            _, offset, size = layout[spec.name]
            p[i, list(spec.columns)] = row[offset:offset + size]
    return p


def _fcurve_collection(tree_id):
    """The F-curve collection of an ID's action, created if needed (4.2 and 5.0 APIs)."""
    adt = tree_id.animation_data or tree_id.animation_data_create()
    if adt.action is None:
        adt.action = bpy.data.actions.new(f"{tree_id.name} keys")
    action = adt.action
    if hasattr(action, "fcurves") and not hasattr(action, "slots"):
        return action.fcurves  # Blender < 4.4: legacy actions
    from bpy_extras import anim_utils

    if adt.action_slot is None:
        slot = action.slots.new(id_type="NODETREE", name=tree_id.name)
        adt.action_slot = slot
    return anim_utils.action_ensure_channelbag_for_slot(action, adt.action_slot).fcurves


def keyframe_wavelets(tree, params, frame: float, interpolation: str = "LINEAR"):
    """Set the wavelet sockets to ``params`` and key every socket component at ``frame``.

    The F-curves live on each chunk group (the ID that holds the wavelet nodes), one per
    socket component, e.g. ``nodes["W0003"].inputs[1].default_value``.
    """
    update_wavelet_values(tree, params)
    pairs, p = _checked_pairs(tree, params)
    layout = _input_layout(pairs[0][1])
    values = socket_values(p)
    by_chunk = {}
    for row, (chunk, node) in enumerate(pairs):
        by_chunk.setdefault(chunk, []).append((row, node.name))
    for chunk, rows in by_chunk.items():
        fcurves = _fcurve_collection(chunk)
        existing = {(fc.data_path, fc.array_index): fc for fc in fcurves}
        for row, node_name in rows:
            for spec in WAVELET_SOCKETS:
                path = f'nodes["{node_name}"].inputs[{layout[spec.name][0]}].default_value'
                for component, value in enumerate(np.atleast_1d(values[spec.name][row]).tolist()):
                    fc = existing.get((path, component))
                    if fc is None:
                        fc = existing[(path, component)] = fcurves.new(path, index=component)
                    key = fc.keyframe_points.insert(frame, value, options={"FAST"})
                    key.interpolation = interpolation
        for fc in fcurves:
            fc.update()


# ----------------------------------------------------------------------------------------
# Engines


def backend_for_engine(engine_name: str) -> str:
    """The atom body a render engine needs: 'EEVEE' for EEVEE (4.2's EEVEE Next included),
    'CYCLES' for Cycles and anything else (Workbench ignores materials' node maths)."""
    return "EEVEE" if engine_name.startswith("BLENDER_EEVEE") else "CYCLES"


def get_backend(tree) -> str:
    return _atom_of(tree).get("imfit_backend", "CYCLES")


def set_backend(tree, backend: str) -> bool:
    """Swap the atom's internals for ``backend``; sockets, values and keyframes stay.
    Returns True when something changed (EEVEE then recompiles the material)."""
    if backend not in BACKENDS:
        raise ImfitError(f"backend must be one of {BACKENDS}, got {backend!r}")
    atom = _atom_of(tree)
    if atom.get("imfit_backend") == backend:
        return False
    _fill_atom(atom, atom["imfit_aspect"], backend)
    tree["imfit_backend"] = backend
    return True


# Measured on Blender 5.0.1 (see bench/nodes_bench.py and tests/test_node_tree.py)
CYCLES_CHECKED = 4096
EEVEE_MAX = 1024


def limits_note(n: int, engine: str) -> str | None:
    """A sentence for the panel when ``n`` wavelets are past what ``engine`` was checked to hold."""
    backend = backend_for_engine(engine)
    if backend == "EEVEE" and n > EEVEE_MAX:
        return (f"EEVEE holds about {EEVEE_MAX} wavelets in one material; this fit has {n} "
                "and may render magenta: render with Cycles, or fit fewer wavelets")
    if backend == "CYCLES" and n > CYCLES_CHECKED:
        return f"Cycles was checked up to {CYCLES_CHECKED} wavelets; {n} may be slow to prepare"
    return None


# ----------------------------------------------------------------------------------------
# Preview plane


PLANE_HEIGHT = 2.0  # scene units, like Blender's default plane


def _plane_mesh(name, aspect, height=PLANE_HEIGHT):
    half_w, half_h = 0.5 * height * aspect, 0.5 * height
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([(-half_w, -half_h, 0), (half_w, -half_h, 0), (half_w, half_h, 0), (-half_w, half_h, 0)],
                     [], [(0, 1, 2, 3)])
    uv = mesh.uv_layers.new(name="UVMap")
    corner_uv = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
    for loop in mesh.loops:
        uv.data[loop.index].uv = corner_uv[loop.vertex_index]
    mesh.update()
    return mesh


def _preview_material(name, group):
    material = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True  # always on (and deprecated) from 5.0
    tree = material.node_tree
    tree.nodes.clear()
    node = tree.nodes.new("ShaderNodeGroup")
    node.node_tree = group
    node.name = node.label = "ImFit"
    node.location = (-300, 0)
    emission = tree.nodes.new("ShaderNodeEmission")
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    output.location = (200, 0)
    tree.links.new(node.outputs["Color"], emission.inputs["Color"])
    tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return material


def create_preview_plane(scene, group, image_width: int, image_height: int, name: str):
    """A plane with the image's aspect (PLANE_HEIGHT high, UVs 0..1) showing ``group`` through an
    Emission material ``ImFit <name>``; linked into the scene's collection."""
    if image_width <= 0 or image_height <= 0:
        raise ImfitError(f"image size must be positive, got {image_width}x{image_height}")
    full = group_name(name)
    mesh = _plane_mesh(full, image_width / image_height)
    mesh.materials.append(_preview_material(full, group))
    obj = bpy.data.objects.new(full, mesh)
    scene.collection.objects.link(obj)
    return obj
