"""Reading target and weight images, writing previews, finding them in folders.

Needs numpy and pillow only.  Pixel values are the stored (sRGB-encoded) values scaled to
[0, 1], as torch-imfit fits them; no colour management and, like Blender, no EXIF rotation.
Known limit: pillow reads 16-bit colour PNGs at 8 bits per channel (16-bit greyscale keeps
its precision).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, UnidentifiedImageError

from .. import limits
from ..errors import ImfitError
from .atomic import atomic_path

log = logging.getLogger("imfit")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
WEIGHT_SUFFIX = "-wt"  # torch-imfit's weight naming: <stem>-wt.png
_USE = "Use a PNG, JPEG, TIFF, BMP or WebP file"
_EXIF_ORIENTATION = 0x0112
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as pillow's "L"


@dataclass
class LoadedImage:
    """An image as the fitter sees it."""

    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1], the stored sRGB-encoded values
    alpha: np.ndarray | None  # (H, W) float32 in [0, 1]; None when absent or opaque everywhere
    path: Path
    file_size: tuple[int, int] = (0, 0)  # (width, height) in the file; rgb is smaller when shrunk on decode

    def __post_init__(self):
        if self.file_size == (0, 0):
            self.file_size = (self.width, self.height)

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


# bytes per pixel: pillow's decoded image (<= 4) and one converted copy; the float32 RGB + alpha and its copies
_DECODE_BYTES_PER_PIXEL = 8
_FLOAT_BYTES_PER_PIXEL = 48


# images up to this many pixels decode whole (their float copy is <= 200 MB), so ordinary fits see exactly
# the file's pixels; larger ones are shrunk while decoding
SHRINK_ABOVE_PIXELS = 4096 * 4096


def shrink_factor(width: int, height: int, fit_side: Optional[int]) -> int:
    """The integer factor that keeps an image of more than ``SHRINK_ABOVE_PIXELS`` at least twice ``fit_side``
    (a fit's training size) on its longest side: the fit's own antialiased resize then sees nearly the same
    picture, in a fraction of the memory."""
    if not fit_side or width * height <= SHRINK_ABOVE_PIXELS:
        return 1
    return max(1, max(width, height) // (2 * fit_side))


def _shrunk(img: Image.Image, factor: int) -> Image.Image:
    """Box-reduced by ``factor``: in its own mode where pillow can, else from RGB(A)."""
    if factor <= 1:
        return img.copy()
    try:
        return img.reduce(factor)
    except ValueError:  # palette, bilevel and 16-bit modes: average colours, not indices
        if img.mode.startswith("I;16"):
            return img.convert("I").reduce(factor)
        alpha = img.mode in _ALPHA_MODES or "transparency" in img.info
        return img.convert("RGBA" if alpha else "RGB").reduce(factor)


def _open(path: Path, fit_side: Optional[int] = None) -> tuple[Image.Image, tuple[int, int]]:
    """(the decoded first frame, shrunk for a fit of ``fit_side`` px; the size in the file), or an ImfitError."""
    if path.is_dir():
        raise ImfitError(f"cannot read image {path}: it is a folder. {_USE}.")
    limits.regular_file(path, "image")
    try:
        # pillow's own bomb warning would print raw: the memory check below says it in words
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as src:  # closes the file (multi-frame formats keep it open otherwise)
                width, height = src.size
                factor = shrink_factor(width, height, fit_side)
                out = math.ceil(width / factor) * math.ceil(height / factor)
                limits.check_memory(
                    width * height * _DECODE_BYTES_PER_PIXEL + out * _FLOAT_BYTES_PER_PIXEL,
                    f"reading image {path} ({width}x{height})",
                    "Scale the image down first",
                )
                if factor > 1 and src.format == "JPEG":
                    src.draft(src.mode, (math.ceil(width / factor), math.ceil(height / factor)))  # DCT scaling
                src.load()
                orientation = src.getexif().get(_EXIF_ORIENTATION, 1)
                # the first frame, reduced by what is left after the JPEG draft
                img = _shrunk(src, max(1, round(src.width / math.ceil(width / factor))))
    except FileNotFoundError:
        raise ImfitError(f"cannot read image {path}: no such file. {_USE}.") from None
    except UnidentifiedImageError:
        raise ImfitError(
            f"cannot read image {path}: not an image pillow can decode (damaged, empty or "
            f"an unsupported format). {_USE}."
        ) from None
    except Image.DecompressionBombError as e:
        raise ImfitError(f"cannot read image {path}: {e}. Scale it down first.") from None
    except (ImfitError, MemoryError):
        raise
    except (OSError, SyntaxError, ValueError) as e:
        raise ImfitError(f"cannot read image {path}: {e}. {_USE}.") from None
    except Exception as e:  # pillow's decoders fail on damaged files in many ways (EOFError, struct.error...)
        raise ImfitError(f"cannot read image {path}: damaged file ({type(e).__name__}: {e}). {_USE}.") from None
    if img.width == 0 or img.height == 0:
        raise ImfitError(f"cannot read image {path}: it has no pixels ({img.width}x{img.height}). {_USE}.")
    if orientation not in (0, 1):
        log.warning(
            "%s: its EXIF orientation (%s) is ignored, as Blender ignores it; rotate the pixels "
            "themselves if the fit comes out sideways.",
            path,
            orientation,
        )
    return img, (width, height)


def _integer_grey(img: Image.Image, path: Path) -> np.ndarray:
    """16/32-bit integer greyscale (I;16*, I) scaled by the 16-bit range, full precision kept."""
    values = np.asarray(img).astype(np.float64)
    if values.min() < 0 or values.max() > 65535:
        log.warning(
            "%s: %s values span %g..%g, beyond the 16-bit range; clipped to it.",
            path,
            img.mode,
            values.min(),
            values.max(),
        )
    return np.clip(values / 65535.0, 0.0, 1.0).astype(np.float32)


def _float_grey(img: Image.Image, path: Path) -> np.ndarray:
    values = np.asarray(img, dtype=np.float32)
    values = np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0)
    if values.min() < 0 or values.max() > 1:
        log.warning(
            "%s: float values span %g..%g; clipped to [0, 1] (the fit works on display values).",
            path,
            values.min(),
            values.max(),
        )
    return np.clip(values, 0.0, 1.0)


def _channels(img: Image.Image, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(rgb (H, W, 3), alpha (H, W) or None), float32 in [0, 1]."""
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        grey = _integer_grey(img, path)
        return np.repeat(grey[..., None], 3, axis=2), None
    if mode == "F":
        grey = _float_grey(img, path)
        return np.repeat(grey[..., None], 3, axis=2), None
    has_alpha = mode in _ALPHA_MODES or (mode in ("P", "L", "RGB") and "transparency" in img.info)
    try:
        pixels = np.asarray(img.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255.0
    except (ValueError, OSError) as e:
        raise ImfitError(
            f"cannot read image {path}: its colour mode {mode} cannot be converted to RGB ({e}). {_USE} in RGB."
        ) from None
    if not has_alpha:
        return pixels, None
    return pixels[..., :3], pixels[..., 3]


def load_image(path, fit_side: Optional[int] = None) -> LoadedImage:
    """Read an image file as float RGB in [0, 1] plus its alpha, if it has any transparency.

    With ``fit_side`` (a fit's training size) a large image is box-reduced while decoding to at least twice
    that (``shrink_factor``); ``file_size`` keeps the size in the file.
    """
    path = Path(path)
    img, file_size = _open(path, fit_side)
    rgb, alpha = _channels(img, path)
    if alpha is not None:
        if alpha.min() >= 1.0:
            alpha = None  # opaque everywhere: same as no alpha
        else:
            log.info(
                "%s has transparency: its alpha is the default fit weight (transparent parts are "
                "not fitted); give a weight image to override.",
                path,
            )
    return LoadedImage(np.ascontiguousarray(rgb, dtype=np.float32), alpha, path, file_size)


def load_weight(path, width: int, height: int, file_size: Optional[tuple[int, int]] = None) -> np.ndarray:
    """A weight image as (height, width) float32 in [0, 1]: luminance, times alpha where there is one.

    An image of another size than the image's ``file_size`` (default: width x height) is resized (bilinear)
    with a warning; one of that size is resized to width x height silently (the image was shrunk on decode).
    """
    path = Path(path)
    file_w, file_h = file_size or (width, height)
    image = load_image(path, max(width, height) // 2 if (file_w, file_h) != (width, height) else None)
    weight = image.rgb @ _LUMA
    if image.alpha is not None:
        weight = weight * image.alpha  # transparent = not painted = no weight
    if image.file_size != (file_w, file_h):
        log.warning(
            "weight image %s is %dx%d but the image is %dx%d; resized (bilinear).",
            path,
            *image.file_size,
            file_w,
            file_h,
        )
    if (image.width, image.height) != (width, height):
        resized = Image.fromarray(weight.astype(np.float32)).resize((width, height), Image.Resampling.BILINEAR)
        weight = np.asarray(resized, dtype=np.float32)
    weight = np.clip(weight, 0.0, 1.0).astype(np.float32)
    if not (weight > 0).any():
        raise ImfitError(f"weight image {path} is all black: nothing would be fitted. Use white where the fit matters")
    return weight


def save_png(path, rgb: np.ndarray) -> None:
    """Write (H, W, 3) floats in [0, 1] (clipped; NaN as 0) as an 8-bit RGB PNG, atomically."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"save_png needs an (H, W, 3) array, got {rgb.shape}")
    pixels = np.round(np.clip(np.nan_to_num(rgb.astype(np.float64), nan=0.0), 0.0, 1.0) * 255.0)
    with atomic_path(path) as tmp:
        Image.fromarray(pixels.astype(np.uint8)).save(tmp, format="PNG")


def is_weight_name(path: Path) -> bool:
    return path.stem.endswith(WEIGHT_SUFFIX)


def list_images(folder) -> list[Path]:
    """Image files in ``folder`` sorted by name, without ``*-wt.*`` weight files or hidden files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImfitError(f"image folder {folder} does not exist or is not a folder. Check the path.")
    images = sorted(
        (
            p
            for p in folder.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES
            and p.is_file()
            and not p.name.startswith(".")
            and not is_weight_name(p)
        ),
        key=lambda p: p.name,
    )
    if not images:
        raise ImfitError(
            f"image folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}; "
            f"names ending in {WEIGHT_SUFFIX} are weights). Put the images to fit there."
        )
    return images


def find_weight(image_path, weight_arg) -> Path | None:
    """torch-imfit's convention: no weight; a weight file; or a folder holding <stem>-wt.png or <stem>.png."""
    if weight_arg is None:
        return None
    weight = limits.regular_file(weight_arg, "weight image")
    if weight.is_file():
        return weight
    if weight.is_dir():
        stem = Path(image_path).stem
        for candidate in (weight / f"{stem}{WEIGHT_SUFFIX}.png", weight / f"{stem}.png"):
            if candidate.is_file():
                return candidate
        return None
    raise ImfitError(
        f"weight path {weight} does not exist. Give a weight image or a folder of "
        f"<name>{WEIGHT_SUFFIX}.png files, or leave the weight out."
    )
