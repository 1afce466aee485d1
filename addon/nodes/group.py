"""The generated shader node group that re-synthesises a wavelet field inside Blender.

Layout (names as the user sees them in the node editor)::

    "ImFit <image>"               top group: Vector (UV when unlinked) and the global controls in;
                                  Color (scene-linear) and Signed (raw sum) out.  Its inside is the path
                                  ``nodes.paths`` chooses (NODES, LOOP, OSL, BAKED), behind the same sockets
      ".ImFit <image> wavelets"   every chunk chained: the NODES path's sum; it holds the values and keys
                                  whichever path runs
        ".ImFit <image> chunk k"  sub-groups of CHUNK wavelets each, chained by the running sum
          "W00", "W01", ...       one instance per wavelet of the shared atom group, labelled
                                  "Wavelet <index>": keyframeable X, Y, Rotation, Sigma, Gamma,
                                  Wavelength, Phase, Amplitude (wavelet i: chunk i // CHUNK)
        ".ImFit <image> atom"     the atom: one wavelet's contribution added to the running sum

Chunks keep building fast (``nodes.new`` and ``links.new`` slow down with the size of the tree
they add to): one chunk is built node by node, the others are ID copies of it.

The atom's internals exist in two bodies with the same sockets (the path's choice, ``set_engine``):

* ``CYCLES``: Vector Rotate, Mix and vector maths, no Separate XYZ, no type
  conversions, the running sum on the LAST input of the node that adds a wavelet in.  Cycles'
  SVM then keeps its 255-float stack small whatever the count (ARCHITECTURE.md: other layouts render
  black past ~80 wavelets); node types are spread because Cycles' sync compares the nodes of
  one type pairwise (quadratic in the count).
* ``EEVEE``: few node inputs left unlinked, since EEVEE stores each as a uniform and caps a
  material at 64 KiB of them (``paths.BYTES_PER_WAVELET``: 160 bytes a wavelet on 5.0, 367 on 4.2-4.5).

The LOOP and OSL paths walk per-tile wavelet lists (``core.resynth.tile_lists``) read from the values at the
current frame; ``refresh`` keeps them, and the baked image, in step with keys, socket edits and controls.

Everything here is layout; the formula is ``imfit_engine.model``'s.  No torch.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import bpy
import numpy as np

from ..engine import ImfitError, export, model, resynth
from . import baked, instances, loop, osl_path, paths
from .animation import KEYED_PATH, existing_fcurves
from .builder import Builder

GROUP_PREFIX = "ImFit "
CHUNK = 64  # wavelets per sub-group: build time grows with the square of a tree's node count
BACKENDS = ("CYCLES", "EEVEE")  # the atom bodies; a path (nodes.paths) says how the top group sums them
# The unlinked Vector input's value: no real coordinate is this far out, so the group can tell
# "unlinked" from "linked" and use the UV map then (shader groups have no implicit UV input).
UNLINKED_VECTOR = -1.0e20
_MAX_NAME_BYTES = 63  # ID names in Blender 4.2 (5.0 allows more; the shorter rule fits both)
# custom properties of the top group
# the wavelets group's name (it holds the chunks, and with them values and keys).  A name, not an ID pointer:
# Blender 4.2 miscounts the users of IDs that a localized node tree's custom properties point to
WAVELETS_KEY = "imfit_wavelets"
OVERRIDE_KEY = "imfit_override"  # the path chosen in the panel (paths.OVERRIDE_ITEMS), "AUTO" by default
DATA_KEY = "imfit_data_key"  # fingerprint of what the path's data was last built from
GRID_KEY = "imfit_grid"  # tiles per image height of the culled paths (1: not culled)


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
    SocketSpec(
        "Rotation",
        "FLOAT",
        0.0,
        "Direction of the wave, counter-clockwise from +X",
        subtype="ANGLE",
        columns=(model.THETA,),
    ),
    SocketSpec(
        "Sigma", "FLOAT", 0.05, "Envelope size along the wave, in image heights", min_value=1e-6, columns=(model.SIGMA,)
    ),
    SocketSpec(
        "Gamma",
        "FLOAT",
        0.05,
        "Envelope size across the wave, in image heights",
        min_value=1e-6,
        columns=(model.GAMMA,),
    ),
    SocketSpec(
        "Wavelength", "FLOAT", 0.1, "Carrier wavelength, in image heights", min_value=1e-6, columns=(model.WAVELENGTH,)
    ),
    SocketSpec(
        "Phase",
        "VECTOR",
        (0.0, 0.0, 0.0),
        "Carrier phase of red, green, blue (radians)",
        columns=tuple(range(12))[model.PHASE],
    ),
    SocketSpec(
        "Amplitude",
        "VECTOR",
        (0.0, 0.0, 0.0),
        "Amplitude of red, green, blue in signed-sum units ([-1, 1] spans the image's range)",
        columns=tuple(range(12))[model.AMP],
    ),
)

# Global controls: inputs of the top group, passed down to every atom or applied to the sum
GLOBAL_SOCKETS = (
    SocketSpec(
        "Phase Shift",
        "FLOAT",
        0.0,
        "Added to every wavelet's phase: animate it to make the waves flow",
        subtype="ANGLE",
    ),
    SocketSpec(
        "Rotation Offset",
        "FLOAT",
        0.0,
        "Added to every wavelet's rotation: each turns about its own centre",
        subtype="ANGLE",
    ),
    SocketSpec(
        "Scale", "FLOAT", 1.0, "Multiplies every wavelet's size and wavelength about its own centre", min_value=1e-3
    ),
    SocketSpec("Frequency Multiplier", "FLOAT", 1.0, "Multiplies every wavelet's carrier frequency", min_value=1e-3),
    SocketSpec("Amplitude Multiplier", "FLOAT", 1.0, "Multiplies the signed sum (contrast)"),
    SocketSpec("Offset", "FLOAT", 0.0, "Added to the signed sum before it is clamped to [-1, 1] (brightness)"),
)
ATOM_GLOBALS = GLOBAL_SOCKETS[:4]  # the ones that act per wavelet; the others act on the sum
# Inputs every chunk and atom receives from above.  "Zero" and "Envelope Base" are computed
# from the UV so that they stay links after Blender inlines the tree (a constant would be
# copied into every wavelet as an EEVEE uniform: 64 KiB per material in all).
_PASSED_DOWN = (
    ("Vector", "VECTOR", "Point in image heights: (u * aspect, v, 0)"),
    ("Zero", "VECTOR", "(0, 0, 0), derived from the UV (internal)"),
    ("Envelope Base", "FLOAT", "exp(-1), derived from the UV (internal)"),
    *ATOM_GLOBALS,
)
_VECTOR_TIP = "Image UV (0..1, V up); the UV map when unlinked"
_SUM_TIP = "Running signed sum of the wavelets before this one"


def group_name(image_name: str) -> str:
    """``ImFit <image name>``, cut to the length Blender keeps (so lookups find it again)."""
    name = GROUP_PREFIX + image_name
    raw = name.encode("utf-8")[:_MAX_NAME_BYTES]
    return raw.decode("utf-8", errors="ignore")


def _spec_name(spec) -> str:
    """Interface sockets come as a SocketSpec or, internal ones, as (name, kind, tooltip)."""
    return spec.name if isinstance(spec, SocketSpec) else spec[0]


def _instance_default(spec):
    """The value a group node's input starts with (None: linked, any value will do)."""
    if isinstance(spec, SocketSpec):
        return spec.default
    return (UNLINKED_VECTOR,) * 3 if spec[0] == "Vector" else None


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
    sockets = [item for item in tree.interface.items_tree if item.item_type == "SOCKET"]
    have = {side: [s.name for s in sockets if s.in_out == side] for side in ("INPUT", "OUTPUT")}
    if have == {"INPUT": [_spec_name(s) for s in inputs], "OUTPUT": [_spec_name(s) for s in outputs]}:
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
    defaults = [(_spec_name(spec), _instance_default(spec)) for spec in inputs if _instance_default(spec) is not None]
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
        [_PASSED_DOWN[0], *WAVELET_SOCKETS, *_PASSED_DOWN[1:], ("Sum", "VECTOR", _SUM_TIP)],
        [("Sum", "VECTOR", "Running signed sum with this wavelet added")],
    )


def _atom_parameters(b, v, aspect):
    """Parameter-only maths (constant per wavelet: Cycles and Blender 5.0 fold it away).

    ``v`` maps the atom's input names to sockets.  Returns the centre C = (u * aspect, v, 0),
    the rotation theta, the envelope scale S = (1 / (sqrt(2) sigma'), 1 / (sqrt(2) gamma'), 0),
    the carrier number k = 2 pi sqrt(2) sigma' / wavelength' and the phases such that, with
    W = R(-theta) (P - C) * S = (xr / (sqrt(2) sigma'), yr / (sqrt(2) gamma'), 0),
    the wavelet is amp * exp(-W.W) * cos(k W.x + phase).
    """
    theta = b.math("ADD", v["Rotation"], v["Rotation Offset"])
    root_half = math.sqrt(0.5)
    scale = b.combine(
        *(b.math("DIVIDE", root_half, b.math("MULTIPLY", v[name], v["Scale"])) for name in ("Sigma", "Gamma")), 0.0
    )
    centre = b.combine(b.math("MULTIPLY", v["X"], aspect), v["Y"], 0.0)
    # k = 2 pi sqrt2 sigma * f / wavelength: Scale cancels, the frequency multiplier does not
    k = b.math("MULTIPLY", b.math("DIVIDE", v["Sigma"], v["Wavelength"]), v["Frequency Multiplier"])
    k = b.math("MULTIPLY", k, 2.0 * math.pi * math.sqrt(2.0))
    shift = v["Phase Shift"]
    phase = b.vmath("ADD", v["Phase"], b.combine(shift, shift, shift))
    return centre, theta, scale, k, phase


def _wavelet_cycles(b, v, aspect):
    """Sum + one wavelet, laid out for Cycles' SVM stack (see the module docstring)."""
    centre, theta, scale, k, phase = _atom_parameters(b, v, aspect)
    offset = b.vmath("MULTIPLY", centre, b.vmath("SCALE", scale, scale=-1.0))
    # rot = C + R(-theta)(P - C), so (rot - C) * scale = W.  (A Map Range here would spread the
    # node types further, see below, but overflows SVM in Blender 4.2 past ~100 wavelets.)
    w = b.vmath("MULTIPLY_ADD", _rotate(b, v["Vector"], theta, centre), scale, offset)
    env = b.math("POWER", math.exp(-1.0), b.vmath("DOT_PRODUCT", w, w, output="Value"))
    arg = b.vmath("DOT_PRODUCT", w, b.combine(k, 0.0, 0.0), output="Value")
    carrier = b.vmath("COSINE", b.mix("VECTOR", arg, phase, b.vmath("ADD", phase, (1.0, 1.0, 1.0))))
    # a Mix rather than a Vector Math Scale: Cycles' sync compares the nodes of one type
    # pairwise, quadratic in the count, so spreading the types cuts the time to prepare
    weight = b.mix("VECTOR", env, (0.0, 0.0, 0.0), v["Amplitude"])
    # running sum on the last input: SVM then evaluates the chain in order (ARCHITECTURE.md, "Blender limits")
    return b.vmath("MULTIPLY_ADD", carrier, weight, v["Sum"])


def _wavelet_eevee(b, v, aspect):
    """Sum + one wavelet with few EEVEE uniforms.  EEVEE stores every unlinked input of every
    node, unused ones included (a link into an unused input does not help), as a uniform: a
    float 4 bytes, a vector 16.  So: constants only where the maths needs them, Math nodes
    (float inputs) where a Vector Math node would carry unused vector inputs, the rotation
    centre and the envelope base linked to values shared by all wavelets.  Measured: 160 bytes
    per wavelet on 5.0 (about 400 fit in one material), 364 on 4.2 (about 170)."""
    centre, theta, scale, k, phase = _atom_parameters(b, v, aspect)
    # parameter-only (pre-computed): W = R(-theta) P * scale - R(-theta) C * scale
    offset = b.vmath("MULTIPLY", _rotate(b, centre, theta, (0.0, 0.0, 0.0)), b.vmath("SCALE", scale, scale=-1.0))
    # per pixel, from here on
    w = b.vmath("MULTIPLY_ADD", _rotate(b, v["Vector"], theta, v["Zero"]), scale, offset)
    env = b.math("POWER", v["Envelope Base"], b.vmath("DOT_PRODUCT", w, w, output="Value"))
    arg = b.math("MULTIPLY", b.node_output("ShaderNodeSeparateXYZ", w, "X"), k)
    phases = b.node("ShaderNodeSeparateXYZ")
    b.feed(phases.inputs[0], phase)
    carrier = b.vmath("COSINE", b.combine(*(b.math("ADD", arg, phases.outputs[c]) for c in range(3))))
    weight = b.vmath("SCALE", v["Amplitude"], scale=env)
    return b.vmath("MULTIPLY_ADD", carrier, weight, v["Sum"])


def _rotate(b, vector, theta, centre):
    """``centre + R(-theta) (vector - centre)``, about +Z."""
    rot = b.node("ShaderNodeVectorRotate", rotation_type="Z_AXIS", invert=True)
    for name, value in (("Vector", vector), ("Center", centre), ("Angle", theta)):
        b.feed(rot.inputs[name], value)
    return rot.outputs[0]


_ATOM_BODIES = {"CYCLES": _wavelet_cycles, "EEVEE": _wavelet_eevee}


def _fill_atom(atom, aspect, backend):
    atom.nodes.clear()
    b = Builder(atom)
    gi, go = b.io()
    values = {socket.name: socket for socket in gi.outputs if socket.name}
    b.links.new(_ATOM_BODIES[backend](b, values, aspect), go.inputs["Sum"])
    atom["imfit_backend"] = backend
    atom["imfit_aspect"] = float(aspect)


# ----------------------------------------------------------------------------------------
# Chunks, the wavelets group and the top group


def _chunk_interface(tree):
    _set_interface(
        tree,
        [*_PASSED_DOWN, ("Sum", "VECTOR", _SUM_TIP)],
        [("Sum", "VECTOR", "Running signed sum with this chunk's wavelets added")],
    )


def _fill_chunk(chunk, atom, count):
    """``count`` atom instances W00, W01... chained by the running sum."""
    b = Builder(chunk)
    gi, go = b.io()
    shared = [_spec_name(spec) for spec in _PASSED_DOWN]
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


def _fill_wavelets(wavelets, chunks):
    """The wavelets group: every chunk chained by the running sum (the node path's whole field).  It holds
    the chunks (their sockets hold the values and keys) whichever path the top group runs."""
    _set_interface(wavelets, list(_PASSED_DOWN), [("Sum", "VECTOR", "Signed sum of every wavelet")])
    wavelets.nodes.clear()
    b = Builder(wavelets)
    gi, go = b.io()
    running = None
    for chunk in chunks:
        node = b.group(chunk)
        for spec in _PASSED_DOWN:
            b.links.new(gi.outputs[_spec_name(spec)], node.inputs[_spec_name(spec)])
        if running is not None:
            b.links.new(running, node.inputs["Sum"])
        running = node.outputs["Sum"]
    b.links.new(running, go.inputs["Sum"])
    wavelets.use_fake_user = True  # only the top group's custom property points at it


def _top_interface(tree):
    _set_interface(
        tree,
        [("Vector", "VECTOR", _VECTOR_TIP), *GLOBAL_SOCKETS],
        [
            (
                "Color",
                "COLOR",
                "The image, scene-linear: through an Emission shader and the Standard view "
                "transform it looks like the source image",
            ),
            ("Signed", "VECTOR", "The raw signed sum of the wavelets (RGB), before clamping"),
        ],
    )
    tree.interface.items_tree["Vector"].default_value = _instance_default(("Vector",))


def _srgb_to_linear(b, value):
    """The exact piecewise sRGB EOTF of one channel in [0, 1]."""
    low = b.math("DIVIDE", value, 12.92)
    high = b.math("POWER", b.math("MULTIPLY_ADD", value, 1.0 / 1.055, 0.055 / 1.055), 2.4)
    return b.mix("FLOAT", b.math("GREATER_THAN", value, 0.04045), low, high)


def _coordinates(b, g, aspect):
    """(UV in 0..1, the point in image heights, a zero vector derived from it) for the Vector input."""
    # Vector, or the UV map when the input holds the "unlinked" value
    uv = b.node("ShaderNodeTexCoord").outputs["UV"]
    unlinked = b.math(
        "LESS_THAN", b.vmath("DOT_PRODUCT", g["Vector"], (1.0, 0.0, 0.0), output="Value"), 0.5 * UNLINKED_VECTOR
    )
    # once, here: image heights, z = 0, and a plain vector (no per-wavelet type conversions)
    # a select, not a Mix: a + f (b - a) with a = -1e20 loses every digit in EEVEE's float maths
    chosen = b.vmath(
        "ADD",
        b.vmath("SCALE", g["Vector"], scale=b.math("SUBTRACT", 1.0, unlinked)),
        b.vmath("SCALE", uv, scale=unlinked),
    )
    point = b.vmath("MULTIPLY", chosen, (float(aspect), 1.0, 0.0))
    return chosen, point, b.vmath("SCALE", point, scale=0.0)


def _output(b, go, signed):
    b.links.new(signed, go.inputs["Signed"])
    # clamp(sum, -1, 1) * .5 + .5 is the stored (sRGB-encoded) image; Color is its linear value
    split = b.node("ShaderNodeSeparateXYZ")
    b.links.new(signed, split.inputs[0])
    color = b.node("ShaderNodeCombineColor", mode="RGB")
    for channel in range(3):
        stored = b.math("MULTIPLY_ADD", split.outputs[channel], 0.5, 0.5, clamp=True)
        b.links.new(_srgb_to_linear(b, stored), color.inputs[channel])
    b.links.new(color.outputs[0], go.inputs["Color"])


def _fill_top(tree, wavelets, aspect, path, data, scene):
    """The top group for ``path``: the same sockets, the field summed the path's way."""
    tree.nodes.clear()
    b = Builder(tree)
    gi, go = b.io()
    g = gi.outputs
    chosen, point, zero = _coordinates(b, g, aspect)
    if path == "BAKED":  # the controls are in the image; its stored values are the clamped sum's
        stored = baked.sample(b, chosen, data.image)
        _output(b, go, b.vmath("MULTIPLY_ADD", stored, (2.0, 2.0, 2.0), (-1.0, -1.0, -1.0)))
        return
    sources = {
        "Vector": point,
        "Zero": zero,
        "Envelope Base": b.math("ADD", b.vmath("DOT_PRODUCT", zero, zero, output="Value"), math.exp(-1.0)),
        **{spec.name: g[spec.name] for spec in ATOM_GLOBALS},
    }
    if path == "NODES":
        node = b.group(wavelets)
        for name, source in sources.items():
            b.links.new(source, node.inputs[name])
        running = node.outputs["Sum"]
    elif path == "LOOP":
        running = loop.tiled_sum(b, sources, tree, data.lists, aspect, _wavelet_cycles, WAVELET_SOCKETS)
    else:  # OSL
        osl_path.write_source(tree, data.source)
        running = osl_path.script_sum(b, chosen, g, tree, scene)
    gain, bias = g["Amplitude Multiplier"], g["Offset"]
    _output(b, go, b.vmath("MULTIPLY_ADD", running, b.combine(gain, gain, gain), b.combine(bias, bias, bias)))


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
        raise ImfitError(
            f"wavelet parameters must be an (N, {len(model.COLUMNS)}) array with N >= 1, got shape {p.shape}"
        )
    if not np.isfinite(p).all():
        raise ImfitError("wavelet parameters contain NaN or infinite values: re-run or re-load the fit")
    if not (np.isfinite(aspect) and aspect > 0):
        raise ImfitError(f"image aspect must be a positive number, got {aspect!r}")
    return p


def _wavelets_group(tree):
    name = tree.get(WAVELETS_KEY)
    holder = bpy.data.node_groups.get(name) if isinstance(name, str) else None
    return holder if holder is not None and holder.bl_idname == "ShaderNodeTree" else None


def _chunk_trees(tree):
    """(holder, chunks): the tree holding this top group's chunk groups, and the chunks (found by reference, not
    name).  The chunks live in the wavelets group; a group built before it existed holds them itself."""
    holder = _wavelets_group(tree) or tree
    chunks = [n.node_tree for n in holder.nodes if n.bl_idname == "ShaderNodeGroup" and n.node_tree]
    chunks = [c for c in chunks if c.name.startswith(".") and " chunk " in c.name] if holder is tree else chunks
    return holder, chunks


def _owned_trees(tree):
    """The chunk and atom groups that this top group built."""
    _, chunks = _chunk_trees(tree)
    atoms = {n.node_tree for c in chunks for n in c.nodes if n.bl_idname == "ShaderNodeGroup" and n.node_tree}
    return chunks, atoms


def chunk_groups(tree) -> list:
    """The chunk groups of a top group, in wavelet order (their sockets and F-curves hold the values)."""
    return _owned_trees(tree)[0]


def _atom_of(tree):
    chunks, atoms = _owned_trees(tree)
    if len(atoms) != 1:
        raise ImfitError(f"node group {tree.name!r} is not an ImFit wavelet group (rebuild it from the fit)")
    return atoms.pop()


def _ensure_wavelets_group(tree):
    """The wavelets group, made from the chunks in the top group for a group built before it existed."""
    holder = _wavelets_group(tree)
    if holder is None:
        chunks, _ = _owned_trees(tree)
        holder = bpy.data.node_groups.new(f".{tree.name} wavelets", "ShaderNodeTree")
        _fill_wavelets(holder, chunks)
        tree[WAVELETS_KEY] = holder.name
    return holder


def build_wavelet_group(
    name: str,
    params,
    aspect: float,
    backend: str = "CYCLES",
    *,
    size=None,
    path: str | None = None,
    engine: str | None = None,
    scene=None,
):
    """Build (or rebuild in place) the node group ``ImFit <name>`` for canonical ``params``.

    ``backend`` ('CYCLES' or 'EEVEE') is the render engine the group starts with (``engine``, a render
    engine's name, wins when given); the path for it is picked by ``paths.choose`` (``path`` forces one:
    an OVERRIDE_ITEMS key, kept by the group).  ``size`` is the fit's source (width, height), what bakes
    default to.  An existing group of that name keeps its
    identity and interface, so materials that use it stay linked; its sub-groups are replaced (their
    keyframes go with them).  Returns the top group (a ``ShaderNodeTree``).
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
    holder = _wavelets_group(tree) or bpy.data.node_groups.new(f".{tree_name} wavelets", "ShaderNodeTree")
    tree.nodes.clear()
    holder.nodes.clear()
    for old in [*old_chunks, *old_atoms]:
        if old.users == 0:
            bpy.data.node_groups.remove(old)

    atom = bpy.data.node_groups.new(f".{tree_name} atom", "ShaderNodeTree")
    _atom_interface(atom)
    _fill_atom(atom, aspect, "CYCLES")
    chunks = _build_chunks(tree_name, atom, len(p))
    _fill_wavelets(holder, chunks)
    tree[WAVELETS_KEY] = holder.name
    _write_sockets(tree, p, chunks)
    _top_interface(tree)
    tree["imfit_count"] = len(p)
    tree["imfit_aspect"] = float(aspect)
    if size is not None:
        tree["imfit_size"] = [int(size[0]), int(size[1])]
    if path is not None:
        tree[OVERRIDE_KEY] = path
    for key in ("imfit_path", "imfit_backend", DATA_KEY, GRID_KEY):
        tree.pop(key, None)
    set_engine(tree, engine or ENGINE_OF[backend], scene)
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
    return {
        spec.name: p[:, spec.columns[0]] if len(spec.columns) == 1 else p[:, list(spec.columns)]
        for spec in WAVELET_SOCKETS
    }


def input_layout(node) -> dict:
    """{input name: (socket index, offset, size)} of a node's inputs flattened into one float row
    (the layout ``foreach_set('default_value', row)`` reads)."""
    layout, offset = {}, 0
    for index, socket in enumerate(node.inputs):
        size = len(socket.default_value) if socket.type == "VECTOR" else 1
        layout[socket.name] = (index, offset, size)
        offset += size
    return layout


def checked_pairs(tree, params, chunks=None):
    pairs = _wavelet_nodes(tree, chunks)
    p = np.asarray(params, dtype=np.float64)
    if p.ndim != 2 or len(p) != len(pairs):
        raise ImfitError(
            f"{tree.name!r} holds {len(pairs)} wavelets, the parameters have shape {p.shape}: rebuild the group"
        )
    return pairs, p


def _write_sockets(tree, params, chunks=None):
    pairs, p = checked_pairs(tree, params, chunks)
    layout = input_layout(pairs[0][1])
    rows = np.zeros((len(p), sum(size for _, _, size in layout.values())), np.float32)
    for name, values in socket_values(p).items():
        _, offset, size = layout[name]
        rows[:, offset : offset + size] = values.reshape(len(p), size)
    for (_, node), row in zip(pairs, rows):
        node.inputs.foreach_set("default_value", row)
    for chunk in {chunk for chunk, _ in pairs}:
        chunk.update_tag()  # foreach_set skips the update that tells renderers
    tree.update_tag()


def update_wavelet_values(tree, params, chunks=None):
    """Write ``params`` (N, 12 canonical) into the wavelet sockets of a group built for N.

    One ``foreach_set`` per wavelet: setting sockets one by one runs Blender's node-tree update
    each time (~0.2 ms, seconds for a big field).  Linked inputs get zeros, which nothing reads.
    The data paths (loop textures, OSL script, bake) follow.
    """
    _write_sockets(tree, params, chunks)
    refresh(tree)


def read_wavelet_values(tree) -> np.ndarray:
    """The group's current socket values as canonical (N, 12) float64 (inverse of the update)."""
    pairs = _wavelet_nodes(tree)
    layout = input_layout(pairs[0][1])
    row = np.zeros(sum(size for _, _, size in layout.values()), np.float32)
    p = np.zeros((len(pairs), len(model.COLUMNS)))
    for i, (_, node) in enumerate(pairs):
        node.inputs.foreach_get("default_value", row)
        for spec in WAVELET_SOCKETS:
            _, offset, size = layout[spec.name]
            p[i, list(spec.columns)] = row[offset : offset + size]
    return p


def animated_values(tree, frame: float) -> np.ndarray:
    """Canonical (N, 12) at ``frame``: the socket values with every keyed component replaced by
    its F-curve's value there (read straight from the curves, whatever the depsgraph did)."""
    p = read_wavelet_values(tree)
    chunks, _ = _owned_trees(tree)
    layout = input_layout(_atom_nodes(chunks[0])[0])
    columns = {index: spec.columns for spec in WAVELET_SOCKETS for index in (layout[spec.name][0],)}
    for number, chunk in enumerate(chunks):
        for fc in existing_fcurves(chunk):
            match = KEYED_PATH.fullmatch(fc.data_path)
            if match and int(match[2]) in columns:
                row = number * CHUNK + int(match[1][1:])
                p[row, columns[int(match[2])][fc.array_index]] = fc.evaluate(frame)
    return p


def is_animated(tree) -> bool:
    chunks, _ = _owned_trees(tree)
    return any(existing_fcurves(chunk) for chunk in chunks)


# ----------------------------------------------------------------------------------------
# Paths: which way the top group sums the field (nodes.paths), and the data each path reads


def backend_for_engine(engine_name: str) -> str:
    """The body a render engine needs: 'EEVEE' for EEVEE (4.2's EEVEE Next included), 'CYCLES'
    for Cycles and anything else (Workbench ignores materials' node maths)."""
    return "EEVEE" if paths.engine_kind(engine_name) == "EEVEE" else "CYCLES"


ENGINE_OF = {"CYCLES": "CYCLES", "EEVEE": "BLENDER_EEVEE"}
EEVEE_UNROLLED_MAX = paths.unrolled_max("EEVEE", bpy.app.version)
MAX_LIST_ENTRIES = 1_000_000  # per-tile list entries a culled path holds (48 MB of loop texture)


@dataclass
class PathData:
    key: str
    values: np.ndarray | None = None
    lists: object = None
    source: str = ""
    image: object = None


def get_path(tree) -> str:
    """'NODES', 'LOOP', 'OSL' or 'BAKED' (``nodes.paths``)."""
    _atom_of(tree)  # a clear error for a group that is not ours
    return tree.get("imfit_path", "NODES")


def get_backend(tree) -> str:
    """'CYCLES' or 'EEVEE' (the node path with that body), 'EEVEE_LOOP', 'OSL' or 'BAKED'."""
    path = get_path(tree)
    if path == "NODES":
        return tree.get("imfit_backend", "CYCLES")
    return "EEVEE_LOOP" if path == "LOOP" else path


def path_note(tree) -> str:
    """The panel's sentence: which path the group runs and why, with its culling or bake state."""
    return " ".join(t for t in (tree.get("imfit_note", ""), tree.get("imfit_detail", "")) if t)


def set_engine(tree, engine: str, scene=None, force: bool = False) -> bool:
    """Switch the group to the path ``engine`` needs here (``paths.choose``, the group's override kept);
    sockets, values and keyframes stay.  Returns True when the top group changed (EEVEE recompiles)."""
    scene = scene if scene is not None else bpy.context.scene
    choice = paths.choose(
        engine,
        int(tree.get("imfit_count", 0)),
        bpy.app.version,
        override=tree.get(OVERRIDE_KEY, "AUTO"),
        osl_available=osl_path.osl_available(scene),
    )
    tree["imfit_engine"] = engine
    try:
        return _apply(tree, choice, scene, force)
    except ImfitError as e:
        if choice.path != "OSL":
            raise
        # the script did not compile (osl_available is False from now on): the next best path, and why
        fallback = paths.choose(engine, int(tree["imfit_count"]), bpy.app.version, osl_available=False)
        changed = _apply(tree, fallback, scene, True)
        tree["imfit_note"] = f"{fallback.note} (OSL failed here: {e})"
        return changed


def set_backend(tree, backend: str) -> bool:
    """Switch the group to what ``backend`` ('CYCLES' or 'EEVEE') needs (``set_engine``)."""
    if backend not in BACKENDS:
        raise ImfitError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return set_engine(tree, ENGINE_OF[backend])


def set_override(tree, override: str, scene=None) -> bool:
    """Choose the path in the panel (``paths.OVERRIDE_ITEMS``; 'AUTO' lets the add-on choose)."""
    valid = [item[0] for item in paths.OVERRIDE_ITEMS]
    if override not in valid:
        raise ImfitError(f"path must be one of {valid}, got {override!r}")
    tree[OVERRIDE_KEY] = override
    return set_engine(tree, tree.get("imfit_engine", "CYCLES"), scene)


def show_bake(tree, scene=None) -> bool:
    """Show the group's bake (just loaded by ``baked.load_bake``): the baked path, chosen as the panel's Use Baked
    does; re-resolved even when the path was already baked (it may have shown the add-on's own auto bake)."""
    tree.pop(DATA_KEY, None)
    tree[OVERRIDE_KEY] = "BAKED"
    return set_engine(tree, tree.get("imfit_engine", "CYCLES"), scene, force=True)


def set_culling(tree, enabled: bool, scene=None) -> None:
    """Cull (per-tile lists, the default) or not (one list of every wavelet: the reference for tests)."""
    if enabled:
        tree.pop(GRID_KEY, None)
    else:
        tree[GRID_KEY] = 1
    tree.pop(DATA_KEY, None)
    set_engine(tree, tree.get("imfit_engine", "CYCLES"), scene, force=True)


def _apply(tree, choice, scene, force: bool) -> bool:
    atom = _atom_of(tree)
    aspect = float(atom["imfit_aspect"])
    holder = _ensure_wavelets_group(tree)
    tree["imfit_note"] = choice.note
    current = (tree.get("imfit_path"), tree.get("imfit_backend"))
    if not force and current == (choice.path, choice.body) and len(tree.nodes):
        refresh(tree, scene)
        return False
    if atom.get("imfit_backend") != choice.body:
        _fill_atom(atom, aspect, choice.body)
    tree["imfit_path"], tree["imfit_backend"] = choice.path, choice.body
    tree.pop(DATA_KEY, None)
    data = _path_data(tree, scene, None, force=True)
    _fill_top(tree, holder, aspect, choice.path, data, scene)
    _use_data(tree, data, scene)
    if choice.path != "OSL" and not any(g.get("imfit_path") == "OSL" for g in stored_groups()):
        osl_path.release_osl(scene)
    return True


def stored_groups():
    """Every top-level ImFit group in the file."""
    return [g for g in bpy.data.node_groups if g.get("imfit_path") is not None and g.get(WAVELETS_KEY) is not None]


def _binning_key(tree, values, scene):
    """(Scale, rotation or None, cull, key) the culled paths' lists are built for; the key ends with the grid,
    which ``_lists`` chooses on a first build (``_grid_key`` then gives the key of what it built)."""
    scale, rotation, cull = instances.binning(tree, scene)
    marker = resynth.Controls(scale=scale, rotation_offset=rotation if rotation is not None else 1e9)
    return scale, rotation, cull, _grid_key(tree, resynth.field_key(values, marker), cull)


def _grid_key(tree, field: str, cull: bool) -> str:
    return f"{field.split('/')[0]}/{tree.get(GRID_KEY)}/{cull}"


def _lists(tree, values, scale, rotation, cull):
    """Per-tile lists for the culled paths, binned for the controls' largest Scale."""
    binned = resynth.controlled(values, resynth.Controls(scale=scale, rotation_offset=rotation or 0.0))
    grid = tree.get(GRID_KEY) if cull else 1
    lists = resynth.tile_lists(
        binned, float(tree["imfit_aspect"]), grid, rotation_known=rotation is not None, max_pairs=MAX_LIST_ENTRIES
    )
    if grid is None:
        tree[GRID_KEY] = lists.meta["tiles_per_height"]
    return lists


def _path_data(tree, scene, frame, force: bool = False) -> PathData | None:
    """What the group's path reads at ``frame`` (default: the scene's), or None when nothing changed."""
    path = tree.get("imfit_path", "NODES")
    if path == "NODES":
        return PathData("")
    frame = frame if frame is not None else (scene.frame_current if scene is not None else 1)
    values = animated_values(tree, frame)
    if path == "BAKED":
        controls, why = instances.bake_controls(tree, frame)
        key = resynth.field_key(values, controls)
        if not force and tree.get(DATA_KEY) == key and tree.nodes.get(baked.NODE) is not None:
            return None
        image = baked.image_for(tree, key, frame)
        detail = why
        user_bake = bpy.data.images.get(baked.bake_name(tree))
        if image is None and user_bake is not None and tree.get(OVERRIDE_KEY, "AUTO") == "BAKED":
            # the user's bake stays what they chose to see, even when the values moved on since
            image = user_bake
            detail = "the baked image is out of date (values or controls changed since): Bake again"
        elif image is None:
            image = baked.render_auto(tree, values, controls, key)  # what the path needs, made here
        tree["imfit_detail"] = _bake_detail(image, detail)
        return PathData(key, values, image=image)
    scale, rotation, cull, key = _binning_key(tree, values, scene)
    if not force and tree.get(DATA_KEY) == key:
        return None
    lists = _lists(tree, values, scale, rotation, cull)
    key = _grid_key(tree, key, cull)  # with the grid a first build chose: the next refresh finds it unchanged
    if lists.meta.get("culled"):
        tree["imfit_detail"] = f"({lists.mean_count():.0f} of {len(values)} wavelets per point on average)"
    else:
        tree["imfit_detail"] = "(not culled: every point evaluates all wavelets)"
    data = PathData(key, values, lists)
    if path == "OSL":
        data.source = export.osl_tiles_source(_field(tree, values), lists)
    return data


def _field(tree, values):
    """A WaveletSet of ``values`` with exactly the group's aspect."""
    width, height = baked.source_size(tree)
    aspect = float(tree["imfit_aspect"])
    if abs(width / height - aspect) > 1e-9:
        width, height = max(1, round(aspect * (1 << 20))), 1 << 20
    return model.WaveletSet(np.asarray(values, np.float32), width, height)


def _bake_detail(image, detail: str) -> str:
    if image is None:
        return detail
    kind = f"{image.size[0]}x{image.size[1]}"
    if image.name.endswith(" auto"):
        kind += ", rendered by the add-on (Bake for another size or an animation)"
    elif image.source == "SEQUENCE":
        first, last = image.get("imfit_frames", (0, 0))
        kind += f", frames {first}-{last}"
    return f"({kind}){'; ' + detail if detail else ''}"


def _use_data(tree, data: PathData, scene) -> None:
    path = tree.get("imfit_path")
    if data is None or path == "NODES":
        return
    if path == "LOOP":
        loop.write(tree, data.values, data.lists)
    elif path == "OSL":
        if osl_path.write_source(tree, data.source):
            osl_path.compile_script(tree, scene)
    elif path == "BAKED":
        node = tree.nodes.get(baked.NODE)
        if node is not None:
            baked.show(node, data.image)
    tree[DATA_KEY] = data.key


def refresh(tree, scene=None, frame: float | None = None, force: bool = False) -> bool:
    """Bring the path's data (loop textures, OSL script, baked image) to the values at ``frame`` (default:
    the scene's); nothing is done when they are unchanged.  Returns True when something was rewritten."""
    if tree.get("imfit_path", "NODES") == "NODES":
        return False
    scene = scene if scene is not None else bpy.context.scene
    data = _path_data(tree, scene, frame, force)
    if data is None:
        return False
    _use_data(tree, data, scene)
    return True


def data_texture(tree):
    """The loop's list texture (an Image), or None when the group does not run the loop."""
    if tree.get("imfit_path") != "LOOP":
        return None
    return bpy.data.images.get(loop.image_names(tree)[1])


def refresh_all(scene, frame: float | None = None) -> int:
    """Refresh every ImFit group whose path reads data; returns how many changed."""
    return sum(refresh(tree, scene, frame) for tree in stored_groups() if tree.library is None)


def follows_frames(tree) -> bool:
    """Whether the group's field changes with the frame: keyed wavelets, or a user's keyed global control."""
    return is_animated(tree) or any(instances.controls_animated(owner, node) for owner, node in instances.users(tree))


def on_frame_change(scene, *_):
    """A ``frame_change_post`` handler: every path follows the wavelets' and controls' keyframes.  A group
    whose field does not change with the frame is left alone (playback would re-read all its sockets).

    An animation render started from the window calls this from its render thread while the window may draw the
    same images and node trees; writing them there can crash Blender, so it is done only with Render > Lock
    Interface on (Blender's advice for handlers that edit data), and the panel asks for it (``needs_lock``)."""
    if threading.current_thread() is not threading.main_thread() and not scene.render.use_lock_interface:
        return
    for tree in stored_groups():
        if _rewritten_per_frame(tree):
            refresh(tree, scene, scene.frame_current)


def _has_path_data(tree) -> bool:
    """Whether the group's path reads data the handlers keep up to date (culled or baked, and editable here)."""
    return tree.library is None and tree.get("imfit_path", "NODES") != "NODES"


def _rewritten_per_frame(tree) -> bool:
    """Whether the frame handler rewrites the group's path data: it has some, and it changes with the frame."""
    return _has_path_data(tree) and follows_frames(tree)


def needs_lock(tree, scene) -> bool:
    """Whether an animation render from the window would keep ``tree``'s data at one frame: it follows the frame
    and Render > Lock Interface is off (``on_frame_change``)."""
    return not scene.render.use_lock_interface and _rewritten_per_frame(tree)


def on_depsgraph_update(scene, depsgraph):
    """For a ``depsgraph_update_post`` handler: after an edit to a group's own trees (a wavelet socket
    changed in the UI, say) or to a material or node group that uses it (a control), that group's path takes
    the new values.  Other edits cost nothing: reading a 4096-wavelet group's sockets to find that nothing
    changed takes longer than a slider's redraw.  Their own updates do not loop: unchanged data is not
    rewritten."""
    edited = {
        u.id.original for u in depsgraph.updates if isinstance(u.id, (bpy.types.ShaderNodeTree, bpy.types.Material))
    }
    if not edited:
        return
    for tree in stored_groups():
        if _has_path_data(tree) and _touched(tree, edited):
            refresh(tree, scene, scene.frame_current)


def _touched(tree, edited: set) -> bool:
    """Whether one of the ``edited`` IDs holds ``tree``'s values: the group, its wavelets and chunk groups, or a
    user's controls."""
    holder, chunks = _chunk_trees(tree)
    return bool({tree, holder, *chunks} & edited) or bool(instances.user_ids(tree) & edited)


def limits_note(n: int, engine: str) -> str | None:
    """The panel's sentence on how ``n`` wavelets would render with ``engine``, or None for the plain
    node group (nothing needs saying)."""
    choice = paths.choose(engine, n, bpy.app.version, osl_available=osl_path.osl_available(bpy.context.scene))
    return None if choice.path == "NODES" else choice.note
