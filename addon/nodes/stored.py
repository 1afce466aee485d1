"""The fit kept in the .blend: the canonical JSON in a text datablock ``ImFit <image>.json``.

Refine, rebuild and export read it back, so they work after the file is reopened.  The text
and the node group carry the image's name in a custom property, so a renamed or truncated
datablock name never loses the link.
"""

from __future__ import annotations

import bpy

from ..engine import ImfitError, formats
from . import group as node_tree
from .plane import create_preview_plane, focus

IMAGE_KEY = "imfit_image"  # custom property: the image a stored fit or node group belongs to


def text_name(image_name: str) -> str:
    return node_tree.group_name(image_name) + ".json"


def find_text(image_name: str):
    for text in bpy.data.texts:
        if text.get(IMAGE_KEY) == image_name:
            return text
    return None


def store(image_name: str, json_text: str):
    """Keep ``json_text`` as the stored fit of ``image_name`` (replacing an older one)."""
    text = find_text(image_name) or bpy.data.texts.new(text_name(image_name))
    text.from_string(json_text)
    text[IMAGE_KEY] = image_name
    text.use_fake_user = True  # kept on save even though nothing "uses" a text
    return text


def load(image_name: str):
    """The stored fit of ``image_name`` as a WaveletSet, or an ImfitError saying what to do."""
    text = find_text(image_name)
    if text is None:
        raise ImfitError(
            f"image {image_name} has no stored fit (the text {text_name(image_name)!r} is missing): run Fit first"
        )
    return formats.parse_json_text(text.as_string(), f"text {text.name!r}")


def find_group(image_name: str):
    group = bpy.data.node_groups.get(node_tree.group_name(image_name))
    return group if group is not None and group.get(IMAGE_KEY) == image_name else None


def build_nodes(scene, image_name: str, wavelets, create_plane: bool):
    """(node group, plane or None) for a fit; an existing group is rebuilt in place."""
    engine = scene.render.engine
    group = node_tree.build_wavelet_group(
        image_name,
        wavelets.params,
        wavelets.aspect,
        node_tree.backend_for_engine(engine),
        size=(wavelets.width, wavelets.height),
        engine=engine,
        scene=scene,
    )
    group[IMAGE_KEY] = image_name
    group.use_fake_user = True  # a fit without a plane must survive saving
    plane = None
    plane_name = node_tree.group_name(image_name)
    if create_plane and plane_name not in scene.objects:
        plane = create_preview_plane(scene, group, wavelets.width, wavelets.height, image_name)
        focus(scene, plane)
    return group, plane


def import_fit(scene, path: str, width: int = 0, height: int = 0, name: str = "", create_plane: bool = True):
    """Read a fit file (canonical ``.json``, or torch-imfit ``.txt`` with the ``width`` x ``height`` of the
    raster it was trained on) and make what Fit makes: the stored text, the node group, the plane, and the
    panel's last result.  The image name is ``name``, else the one the file records, else the file's name.
    Returns (image name, group, plane or None, wavelets)."""
    import os

    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".txt" and (width <= 0 or height <= 0):
        raise ImfitError(
            f"{os.path.basename(path)} is a torch-imfit .txt, which stores no image size: give the width and "
            "height of the image it was fitted to"
        )
    wavelets = formats.load_params(path, width or None, height or None)
    recorded = wavelets.meta.get("source", {}).get("name") if isinstance(wavelets.meta.get("source"), dict) else None
    image_name = name or recorded or os.path.basename(path)
    json_text = formats.to_json_text(wavelets)
    store(image_name, json_text)
    group, plane = build_nodes(scene, image_name, wavelets, create_plane)
    settings = scene.imfit
    metrics = wavelets.meta.get("metrics", {}) if isinstance(wavelets.meta.get("metrics"), dict) else {}
    settings.result_image = image_name
    settings.result_psnr = float(metrics.get("psnr") or 0.0)
    settings.result_seconds = float(metrics.get("seconds") or 0.0)
    settings.result_wavelets, settings.result_stopped, settings.result_frames = len(wavelets), False, 0
    if settings.image is None and bpy.data.images.get(image_name) is not None:
        settings.image = bpy.data.images[image_name]
    return image_name, group, plane, wavelets


def wavelet_groups():
    """Every top-level ImFit wavelet group in the file."""
    return [g for g in bpy.data.node_groups if g.get(IMAGE_KEY) is not None and "imfit_count" in g]
