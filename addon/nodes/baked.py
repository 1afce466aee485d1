"""The baked path: a wavelet group showing an image of its field.

Two kinds of image, both of the stored (sRGB-encoded) values as non-colour data, so the group decodes them
with the same exact sRGB maths as its other paths:

* the **bake** ``<group> baked``: the Bake operator's, rendered by the engine in the worker (16-bit PNGs in
  the bake folder): one still, or an image sequence with a file per frame.  Its manifest
  (``<stem>.bake.json``, written by the worker) gives each frame's field key (``resynth.field_key`` of the
  values and controls it was rendered from), so the add-on knows which frames are still current;
* the **auto bake** ``.<group> auto``: a still the add-on renders itself with numpy (``resynth``) when a path
  needs an image and no current bake exists (EEVEE on Blender 4.2-4.5 past its uniform limit), re-rendered
  when the values change; packed into the .blend on save.

``image_for`` picks the current one; ``sample`` is the group's Image Texture node reading it.
"""

from __future__ import annotations

import json
import os

import bpy
import numpy as np

from ..engine import resynth

AUTO_BAKE_MAX = 2048  # longest side of an auto bake: a numpy render takes seconds, not minutes
NODE = "ImFit Baked"
KEY = "imfit_key"  # image custom property: the field key of a still
MANIFEST = "imfit_manifest"  # image custom property: the manifest of a bake (still or sequence)
_manifests: dict = {}  # path -> (mtime, frames)


def bake_name(tree) -> str:
    return f"{tree.name} baked"


def auto_name(tree) -> str:
    return f".{tree.name} auto"


def source_size(tree) -> tuple[int, int]:
    """The fit's source size (what bakes default to)."""
    size = tree.get("imfit_size")
    if size:
        return int(size[0]), int(size[1])
    aspect = float(tree.get("imfit_aspect", 1.0))
    return max(1, round(512 * aspect)), 512


def fitted_size(tree, longest: int = 0, cap: int = 0) -> tuple[int, int]:
    """The source size, scaled so its longest side is ``longest`` (0: as it is), then capped at ``cap``."""
    width, height = source_size(tree)
    target = longest or max(width, height)
    if cap:
        target = min(target, cap)
    scale = target / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def manifest_frames(path: str) -> dict:
    """{frame (str) or "still": {"key", "file"}} of a bake manifest (cached by modification time)."""
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return {}
    cached = _manifests.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        with open(path, encoding="utf-8") as f:
            frames = json.load(f).get("frames", {})
    except (OSError, ValueError):
        frames = {}
    _manifests[path] = (mtime, frames)
    return frames


def is_current(image, key: str, frame: int | None) -> bool:
    """Whether ``image`` shows the field of ``key`` (at ``frame`` for a sequence)."""
    if image is None:
        return False
    if image.source == "SEQUENCE":
        entry = manifest_frames(bpy.path.abspath(image.get(MANIFEST, ""))).get(str(int(frame or 0)))
        return entry is not None and entry.get("key") == key
    return image.get(KEY) == key


def image_for(tree, key: str, frame: int | None):
    """The bake if it is current, else the auto bake if it is, else None."""
    for image in (bpy.data.images.get(bake_name(tree)), bpy.data.images.get(auto_name(tree))):
        if is_current(image, key, frame):
            return image
    return None


def render_auto(tree, params, controls: resynth.Controls, key: str):
    """The auto bake of ``params`` under ``controls``, rendered here with numpy at the source size (capped)."""
    width, height = fitted_size(tree, cap=AUTO_BAKE_MAX)
    aspect = float(tree.get("imfit_aspect", width / height))
    rgb = resynth.render_display(params, aspect, width, height, controls)
    name = auto_name(tree)
    image = bpy.data.images.get(name)
    if image is not None and (tuple(image.size) != (width, height) or image.source != "GENERATED"):
        bpy.data.images.remove(image)
        image = None
    if image is None:
        image = bpy.data.images.new(name, width, height, alpha=False, float_buffer=False, is_data=True)
    image.colorspace_settings.name = "Non-Color"
    rgba = np.ones((height, width, 4), np.float32)
    rgba[..., :3] = rgb[::-1]  # Blender's rows start at the bottom
    image.pixels.foreach_set(rgba.ravel())
    image.update()
    image[KEY] = key
    return image


def pack_auto_bakes() -> None:
    """``save_pre``: auto bakes are generated images; packed, their pixels are saved with the file."""
    for image in bpy.data.images:
        if image.name.startswith(".ImFit ") and image.name.endswith(" auto") and image.is_dirty:
            image.pack()


def sample(b, uv, image):
    """The stored values (a vector in [0, 1]^3) of ``image`` at ``uv``: the group's Image Texture node."""
    node = b.node("ShaderNodeTexImage", interpolation="Linear", extension="EXTEND")
    node.name = node.label = NODE
    show(node, image)
    b.links.new(uv, node.inputs["Vector"])
    return node.outputs["Color"]


def show(node, image) -> None:
    """Point the group's Image Texture node at ``image`` (an image sequence follows the scene frame)."""
    if node.image != image:
        node.image = image
    if image is not None and image.source == "SEQUENCE":
        first, last = (int(v) for v in image.get("imfit_frames", (1, 1)))
        user = node.image_user
        user.frame_start, user.frame_offset, user.frame_duration = first, first - 1, last - first + 1
        user.use_auto_refresh = True
        user.use_cyclic = False


def load_bake(tree, manifest_path: str, files: dict, frames: tuple[int, int] | None):
    """The bake ``<group> baked`` from the worker's files: one still, or a sequence over ``frames``."""
    first_file = files[min(files)] if frames else files["still"]
    image = bpy.data.images.load(first_file, check_existing=False)
    old = bpy.data.images.get(bake_name(tree))
    if old is not None and old != image:
        old.user_remap(image)
        bpy.data.images.remove(old)
    image.name = bake_name(tree)
    image.colorspace_settings.name = "Non-Color"
    image.alpha_mode = "NONE"
    if frames:
        image.source = "SEQUENCE"
        image["imfit_frames"] = list(frames)
    elif not bpy.data.filepath:
        image.pack()  # an unsaved file's bake folder is temporary: keep the still in the .blend
    image[MANIFEST] = manifest_path
    if not frames:
        still = manifest_frames(manifest_path).get("still", {})
        image[KEY] = still.get("key", "")
    return image
