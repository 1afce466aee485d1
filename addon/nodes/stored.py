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
    backend = node_tree.backend_for_engine(scene.render.engine)
    group = node_tree.build_wavelet_group(image_name, wavelets.params, wavelets.aspect, backend)
    group[IMAGE_KEY] = image_name
    group.use_fake_user = True  # a fit without a plane must survive saving
    plane = None
    plane_name = node_tree.group_name(image_name)
    if create_plane and plane_name not in scene.objects:
        plane = create_preview_plane(scene, group, wavelets.width, wavelets.height, image_name)
        focus(scene, plane)
    return group, plane


def wavelet_groups():
    """Every top-level ImFit wavelet group in the file."""
    return [g for g in bpy.data.node_groups if g.get(IMAGE_KEY) is not None and "imfit_backend" in g]
