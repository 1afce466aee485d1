"""A Blender image as the worker's input: its own file when that is what Blender shows, else a 16-bit PNG.

The engine always fits the stored, display-encoded values.  Byte images hold those already;
float images are scene-linear in Blender, so their pixels are sRGB-encoded before writing
(unless their colour space is non-colour data).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import bpy
import numpy as np

from ..engine import ImfitError, png

# what pillow decodes in the worker (imfit_engine.images.IMAGE_SUFFIXES; that module needs pillow)
WORKER_READABLE = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def safe_stem(name: str, fallback: str) -> str:
    """``name`` as a file name on every OS: letters, digits, '.', '_' and '-' only (``fallback`` if none)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or fallback


def usable_file(image: bpy.types.Image) -> str | None:
    """The image's file when the worker can read exactly what Blender shows, else None."""
    if image.source != "FILE" or image.packed_file is not None or image.is_dirty:
        return None
    path = bpy.path.abspath(image.filepath, library=image.library)
    if not path or not os.path.isfile(path) or Path(path).suffix.lower() not in WORKER_READABLE:
        return None
    return os.path.abspath(path)


def pixels(image: bpy.types.Image, any_source: bool = False) -> np.ndarray:
    """(H, W, C) float32, row 0 on top, as stored in Blender (C is 1 to 4).  Movies and sequences
    (``any_source``) give the frame Blender decoded last (``sequence_fit`` picks it)."""
    if not any_source and image.source not in {"FILE", "GENERATED"}:
        raise ImfitError(f"image {image.name} is a {image.source.lower()}: pick a single still image")
    width, height = image.size
    if width == 0 or height == 0:  # reading the size loads the image; a missing file gives 0 x 0
        raise ImfitError(
            f"image {image.name} has no pixels (is its file missing? {image.filepath or 'no path'}). "
            "Reload or relink it in the Image Editor"
        )
    channels = image.channels
    buffer = np.empty(width * height * channels, np.float32)
    image.pixels.foreach_get(buffer)
    return buffer.reshape(height, width, channels)[::-1]


def encoded_rgb_alpha(image: bpy.types.Image, any_source: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB (H, W, 3) display-encoded in [0, 1], alpha (H, W) or None when opaque)."""
    values = pixels(image, any_source)
    channels = values.shape[2]
    rgb = np.repeat(values[..., :1], 3, axis=2) if channels < 3 else values[..., :3]
    alpha = values[..., 3] if channels == 4 else (values[..., 1] if channels == 2 else None)
    if image.is_float and not image.colorspace_settings.is_data:
        rgb = png.srgb_from_linear(rgb)
    if alpha is not None and float(alpha.min()) >= 1.0:
        alpha = None
    return np.clip(rgb, 0.0, 1.0), alpha


def source_input(image: bpy.types.Image, folder: str) -> str:
    """Path of a file with the image for the worker (the image's own file when usable)."""
    path = usable_file(image)
    if path is not None:
        return path
    rgb, alpha = encoded_rgb_alpha(image)
    path = os.path.join(folder, "source.png")
    png.write_png16(path, rgb)
    if alpha is not None:  # a file with alpha is weighted by it in the engine: keep that behaviour
        png.write_png16(os.path.join(folder, "alpha.png"), alpha)
    return path


def weight_input(image: bpy.types.Image | None, source_folder: str) -> str | None:
    """Path of the weight image for the worker: a chosen weight, else the source's alpha, else None."""
    if image is None:
        alpha = os.path.join(source_folder, "alpha.png")
        return alpha if os.path.isfile(alpha) else None
    path = usable_file(image)
    if path is not None:
        return path
    rgb, alpha = encoded_rgb_alpha(image)
    path = os.path.join(source_folder, "weight.png")
    png.write_png16(path, rgb if alpha is None else rgb * alpha[..., None])  # as the engine weighs a file
    return path


# ----------------------------------------------------------------------------------------
# which image


def image_in_editor(context):
    """The image of the current Image Editor, else of any Image Editor in the window."""
    space = getattr(context, "space_data", None)
    if space is not None and space.type == "IMAGE_EDITOR" and space.image is not None:
        return space.image
    screen = getattr(context, "screen", None)
    for area in screen.areas if screen else ():
        if area.type == "IMAGE_EDITOR" and area.spaces.active.image is not None:
            return area.spaces.active.image
    return None


def source_image(context, name: str = ""):
    """The image to fit: by name, else the panel's choice, else the one in the Image Editor."""
    if name:
        image = bpy.data.images.get(name)
        if image is None:
            raise ImfitError(f"there is no image named {name!r} in this file: open it first (Image > Open)")
        return image
    image = context.scene.imfit.image or image_in_editor(context)
    if image is None:
        raise ImfitError("no image to fit: choose one in the ImFit tab of the sidebar, or open one in the Image Editor")
    return image
