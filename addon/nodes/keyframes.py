"""Keyframes on a wavelet group: every wavelet socket keyed at every frame of a sequence fit."""

from __future__ import annotations

import numpy as np

from ..engine import ImfitError
from ..engine import sequence as frames_engine
from .animation import add_keys, fcurves_of
from .group import WAVELET_SOCKETS, checked_pairs, input_layout, socket_values, update_wavelet_values
from .stored import build_nodes

INTERPOLATIONS = (
    ("CONSTANT", "Constant", "Each frame's fit holds until the next keyframe"),
    ("LINEAR", "Linear", "Wavelets move in straight lines between frames"),
    ("BEZIER", "Bezier", "Wavelets move smoothly between frames"),
)
FRAME_RANGE_KEY = "imfit_frames"  # custom property of a keyed group: (first, last) keyed frame


def keyframe_wavelets(tree, params, frame, interpolation: str = "LINEAR"):
    """Key every wavelet socket component: ``params`` (N, 12 canonical) at ``frame``, or a stack
    (F, N, 12) at the F numbers ``frame`` (one pass: far faster than F calls); the sockets are
    left at the last frame's values.

    The F-curves live on each chunk group (the ID that holds the wavelet nodes), one per
    socket component, e.g. ``nodes["W0003"].inputs[1].default_value``.
    """
    stack = np.asarray(params, dtype=np.float64)
    stack = stack[None] if stack.ndim == 2 else stack
    frames = np.atleast_1d(np.asarray(frame, dtype=np.float64))
    if stack.ndim != 3 or len(frames) != len(stack):
        raise ImfitError(
            f"keyframe_wavelets needs (N, 12) parameters and one frame, or (F, N, 12) and F frames; "
            f"got {np.shape(params)} and {len(frames)} frames"
        )
    update_wavelet_values(tree, stack[-1])
    pairs, _ = checked_pairs(tree, stack[-1])
    layout = input_layout(pairs[0][1])
    count = stack.shape[1]
    values = {name: v.reshape(len(frames), count, -1) for name, v in socket_values(stack.reshape(-1, 12)).items()}
    by_chunk = {}
    for row, (chunk, node) in enumerate(pairs):
        by_chunk.setdefault(chunk, []).append((row, node.name))
    for chunk, rows in by_chunk.items():
        fcurves = fcurves_of(chunk)
        existing = {(fc.data_path, fc.array_index): fc for fc in fcurves}
        for row, node_name in rows:
            for spec in WAVELET_SOCKETS:
                path = f'nodes["{node_name}"].inputs[{layout[spec.name][0]}].default_value'
                series = values[spec.name][:, row]
                for component in range(series.shape[1]):
                    fc = existing.get((path, component))
                    if fc is None:
                        fc = existing[(path, component)] = fcurves.new(path, index=component)
                    add_keys(fc.keyframe_points, frames, series[:, component], interpolation)
        for fc in fcurves:
            fc.update()


def build_keyed_group(scene, name: str, files, interpolation: str, create_plane: bool):
    """(group, plane or None): ``ImFit <name>`` keyed at every frame file's number (parameters of
    all frames are held for one bulk keying pass: 12 floats per wavelet and frame, no images)."""
    numbers, stack, first = [], [], None
    for number, wavelets in frames_engine.aligned_frames(files):
        numbers.append(number)
        stack.append(wavelets.params)
        first = wavelets if first is None else first
    group, plane = build_nodes(scene, name, first, create_plane)
    keyframe_wavelets(group, np.stack(stack), numbers, interpolation)
    group[FRAME_RANGE_KEY] = (numbers[0], numbers[-1])
    scene.frame_set(scene.frame_current)  # the sockets show the current frame's keys, not the last frame's
    return group, plane
