"""Which re-synthesis path a wavelet group runs, for a render engine, a Blender version and a fit's size.

The paths (``group.set_engine`` builds them inside the group, behind the same sockets):

* ``NODES``: every wavelet unrolled as node-group atoms (a body for Cycles' SVM, one for EEVEE's uniforms).
  Exact; every point evaluates all N wavelets (no culling: SVM has no loops, and unrolled code has no
  lists to walk).  Keyframes and socket edits reach it directly.
* ``LOOP`` (EEVEE, Blender 5.0+): a shader repeat zone whose iteration count is the point's tile list length
  (EEVEE keeps the loop and takes a per-pixel count), reading the lists from float data textures.  Exact;
  cost per point follows the local overlap.
* ``OSL`` (Cycles on the CPU or OptiX): one Script node walking the point's tile list in inlined arrays.
  Exact; cost follows the local overlap.
* ``BAKED``: an image of the field (the Bake operator's, or one the add-on renders itself with numpy when a
  path needs it): exact at its resolution, costs one texture read; global controls are baked in.

EEVEE keeps every unlinked node input of a material in one 64 KiB uniform block.  A material past it renders
magenta on Blender 5.0 but may crash Blender 4.2-4.5 while it compiles (a Blender 4.3.2 session crashed at 512
wavelets of the EEVEE body).  Material Preview is EEVEE whatever the scene's engine, so on 4.2-4.5 every path here
stays inside the block: an unrolled body is used only for counts whose measured bytes per wavelet fit
(``unrolled_max``), with either engine.  On 5.0 a Cycles device without OSL keeps the node group up to
``CYCLES_CHECKED`` (Material Preview of it is magenta there, never a crash).
"""

from __future__ import annotations

from dataclasses import dataclass

PATHS = ("NODES", "LOOP", "OSL", "BAKED")
OVERRIDE_ITEMS = (
    ("AUTO", "Automatic", "The fastest exact path for the scene's render engine, Blender version and fit size"),
    ("NODES", "Node Group", "Every wavelet unrolled in nodes (exact; cost grows with the wavelet count)"),
    ("LOOP", "EEVEE Loop", "EEVEE on Blender 5.0+: a loop over per-tile wavelet lists in data textures"),
    ("OSL", "OSL (Cycles)", "Cycles CPU/OptiX: one OSL script walking per-tile wavelet lists"),
    ("BAKED", "Baked Image", "An image of the field: one texture read, exact at its resolution"),
)

UBO_BYTES = 65536
UBO_BUDGET = 60000  # the top group's own uniforms and a margin stay free
# EEVEE uniform bytes per wavelet of each unrolled body, measured (bench/resynth_bench.py --ubo): Blender 5.0
# pre-computes parameter-only maths, 4.2-4.5 keep every constant input as a uniform.
BYTES_PER_WAVELET = {
    "5.0": {"EEVEE": 160, "CYCLES": 288},
    "4.x": {"EEVEE": 367, "CYCLES": 464},
}
CYCLES_NODES_MAX = 256  # past this the culled OSL path is faster than the unrolled group
CYCLES_CHECKED = 4096  # Cycles' SVM was checked with the unrolled group up to this count
EEVEE_NODES_MAX = 32  # past this EEVEE compiles a loop far faster than unrolled code (5.0+)
BAKE_MAX = 8192  # longest side of a baked image
BAKE_FOLDER = "//imfit_bake/"  # where bakes go by default: beside the .blend


def version_key(version) -> str:
    return "5.0" if tuple(version) >= (5, 0, 0) else "4.x"


def loop_supported(version) -> bool:
    """Shader trees take repeat zones from Blender 5.0 (EEVEE keeps them as real loops)."""
    return tuple(version) >= (5, 0, 0)


def unrolled_max(body: str, version) -> int:
    """The most wavelets of an unrolled ``body`` ('EEVEE' or 'CYCLES') EEVEE can compile on ``version``."""
    return UBO_BUDGET // BYTES_PER_WAVELET[version_key(version)][body]


def engine_kind(engine: str) -> str:
    """'EEVEE' (4.2's EEVEE Next included), 'CYCLES', or 'OTHER' (Workbench, add-on engines)."""
    if engine.startswith("BLENDER_EEVEE"):
        return "EEVEE"
    return "CYCLES" if engine == "CYCLES" else "OTHER"


@dataclass(frozen=True)
class Choice:
    path: str  # one of PATHS
    body: str  # the atom body the wavelets keep: 'CYCLES' or 'EEVEE'
    note: str  # one sentence for the panel: which path and why


def choose(engine: str, count: int, version, *, override: str = "AUTO", osl_available: bool = True) -> Choice:
    """The path for ``count`` wavelets under ``engine`` on Blender ``version``.

    ``override`` (OVERRIDE_ITEMS) is honoured where it works and cannot crash Blender, else the automatic
    choice is taken and the note says why; ``osl_available``: Cycles renders OSL here (CPU or OptiX).
    """
    kind = engine_kind(engine)
    auto = _auto(kind, count, version, osl_available)
    if override in ("AUTO", auto.path):
        return auto
    why = _refusal(override, kind, count, version, osl_available)
    if why:
        return Choice(auto.path, auto.body, f"{why}; {auto.note[0].lower()}{auto.note[1:]}")
    body = "EEVEE" if kind == "EEVEE" else "CYCLES"
    return Choice(override, body, _NOTES[override].format(n=count) + " (chosen in the panel)")


_NOTES = {
    "NODES": "Node group: {n} wavelets unrolled, exact; every point evaluates all of them (no culling)",
    "LOOP": "EEVEE loop over per-tile wavelet lists: exact, each point evaluates only the wavelets near it",
    "OSL": "Cycles OSL over per-tile wavelet lists: exact, each point evaluates only the wavelets near it",
    "BAKED": "Baked image of the field: one texture read, exact at the image's resolution",
}


def _auto(kind: str, n: int, version, osl_available: bool) -> Choice:
    key = version_key(version)
    if kind == "EEVEE":
        if n <= min(EEVEE_NODES_MAX, unrolled_max("EEVEE", version)):
            return Choice("NODES", "EEVEE", _NOTES["NODES"].format(n=n))
        if loop_supported(version):
            return Choice("LOOP", "EEVEE", _NOTES["LOOP"])
        limit = unrolled_max("EEVEE", version)
        if n <= limit:
            return Choice("NODES", "EEVEE", _NOTES["NODES"].format(n=n))
        return Choice(
            "BAKED",
            "EEVEE",
            f"EEVEE on Blender {key} holds about {limit} wavelets in one material (more can crash Blender "
            f"while compiling); this fit has {n}, so EEVEE shows a baked image (Blender 5.0+ loops instead)",
        )
    limit = unrolled_max("CYCLES", version)
    if kind == "CYCLES":
        if n <= min(CYCLES_NODES_MAX, limit):
            return Choice("NODES", "CYCLES", _NOTES["NODES"].format(n=n))
        if osl_available:
            return Choice("OSL", "CYCLES", _NOTES["OSL"] + "; Open Shading Language is on for this scene")
        if key == "5.0" and n <= CYCLES_CHECKED:
            return Choice("NODES", "CYCLES", _NOTES["NODES"].format(n=n) + " (this Cycles device has no OSL)")
        if n <= limit:
            return Choice("NODES", "CYCLES", _NOTES["NODES"].format(n=n))
        return Choice(
            "BAKED",
            "CYCLES",
            f"Cycles on this device has no OSL and {n} wavelets are past what the node group holds safely "
            "here: showing a baked image (render on the CPU or OptiX for the exact field)",
        )
    # Workbench and other engines do not run the node maths: keep something EEVEE's Material Preview holds
    if n <= limit:
        return Choice("NODES", "CYCLES", _NOTES["NODES"].format(n=n))
    if loop_supported(version):
        return Choice("LOOP", "EEVEE", _NOTES["LOOP"])
    return Choice("BAKED", "CYCLES", _NOTES["BAKED"])


def _refusal(override: str, kind: str, n: int, version, osl_available: bool) -> str:
    """Why ``override`` cannot run here, or '' when it can."""
    if override == "LOOP":
        if not loop_supported(version):
            return "The EEVEE loop needs Blender 5.0 or newer"
        if kind == "CYCLES":
            return "Cycles unrolls loops (its stack overflows): the EEVEE loop is for EEVEE"
    if override == "OSL":
        if kind != "CYCLES":
            return "OSL runs in Cycles only"
        if not osl_available:
            return "This Cycles device cannot run OSL (use the CPU or OptiX)"
    if override == "NODES":
        body = "EEVEE" if kind == "EEVEE" else "CYCLES"
        limit = unrolled_max(body, version)
        if n > limit and version_key(version) == "4.x":
            return f"{n} unrolled wavelets could crash EEVEE on this Blender (it holds about {limit})"
    return ""
