"""Bake a wavelet group in the worker (``imfit_engine.worker.jobs.run_bake``): the same process, progress and
cancel as a fit (``jobs.fit.FitJob``).

A still group bakes one image of its current values and controls.  An animated group (keyed wavelets, or keyed
controls on its users) bakes one image per scene frame: here, Blender evaluates the keyframes and the controls
of every frame (``group.animated_values``, ``instances.bake_controls``) and writes each frame's values as a
.npy for the worker; frames already baked with the same field (their key in the bake's manifest) are not
sent again, so a cancelled or interrupted bake resumes.  The files go to the bake folder (next to the .blend
by default); the result is the image (or image sequence) ``<group> baked``, and the group switches to it.
"""

from __future__ import annotations

import os
import tempfile

import bpy
import numpy as np

from ..engine import ImfitError, atomic, formats, protocol, resynth
from ..engine import model as wavelet_model
from ..nodes import baked, instances, paths, stored
from ..nodes import group as node_tree
from . import fit as fit_job
from .inputs import safe_stem

DEFAULT_FOLDER = paths.BAKE_FOLDER


def bake_folder(setting: str, group_name: str) -> str:
    """The folder a group's files go to: the setting's (relative to the .blend), or a temporary folder for an
    unsaved file (whose "//" means nothing yet)."""
    safe = safe_stem(group_name, "imfit")
    setting = setting or DEFAULT_FOLDER
    if setting.startswith("//") and not bpy.data.filepath:
        return os.path.join(tempfile.gettempdir(), "gabor-imfit-bake", safe)
    return os.path.join(os.path.abspath(bpy.path.abspath(setting)), safe)


def frames_to_bake(scene, group, frames: str | None) -> list[int] | None:
    """Scene frames for an animated group (``frames`` "A-B" narrows them), or None: a still."""
    from ..engine import sequence as frames_engine

    animated = node_tree.is_animated(group) or any(
        instances.controls_animated(owner, node) for owner, node in instances.users(group)
    )
    if frames:
        first, last = frames_engine.parse_range(frames)
        return list(range(first, last + 1))
    if not animated:
        return None
    return list(range(scene.frame_start, scene.frame_end + 1))


class _Named:
    """What ``FitJob`` reads of an image: its name (a bake has no source image)."""

    def __init__(self, name: str):
        self.name = name


class BakeJob(fit_job.FitJob):
    """Bake ``group`` at ``size`` (width, height) into ``folder``; ``frames`` None bakes a still."""

    kind = "bake"

    def __init__(self, scene, group, *, size, frames, folder: str, **kwargs):
        self.group_name = group.name
        self.size = (int(size[0]), int(size[1]))
        self.frames = frames
        self.folder_out = folder
        self.stem = safe_stem(group.name, "imfit")
        self.frames_done = 0
        self.resumed = 0
        image_name = group.get(stored.IMAGE_KEY) or group.name
        super().__init__(scene, _Named(image_name), None, None, create_plane=False, **kwargs)

    def _inputs(self, image, weight, init_json) -> dict:
        group = bpy.data.node_groups[self.group_name]
        wavelets = stored.load(image.name) if stored.find_text(image.name) else None
        values = node_tree.read_wavelet_values(group)
        width, height = baked.source_size(group)
        base = wavelet_model.WaveletSet(values.astype(np.float32), width, height)
        if wavelets is not None and abs(wavelets.aspect - float(group["imfit_aspect"])) < 1e-9:
            base = wavelet_model.WaveletSet(values.astype(np.float32), wavelets.width, wavelets.height)
        fit_path = os.path.join(self.folder, "fit.json")
        atomic.write_atomic(fit_path, formats.to_json_text(base))
        manifest = os.path.join(self.folder_out, protocol.bake_manifest(self.stem))
        done = {label: e.get("key") for label, e in protocol.read_bake_manifest(manifest, *self.size).items()}
        entries = []
        for number in self.frames if self.frames is not None else [None]:
            frame = number if number is not None else bpy.data.scenes[self.scene_name].frame_current
            params = node_tree.animated_values(group, frame)
            controls, _ = instances.bake_controls(group, frame)
            key = resynth.field_key(params, controls)
            label = "still" if number is None else str(number)
            have = done.get(label) == key and os.path.isfile(
                os.path.join(self.folder_out, protocol.bake_file(self.stem, number))
            )
            params_path = None
            if not have:
                params_path = os.path.join(self.folder, f"frame_{label}.npy")
                with atomic.atomic_path(params_path) as tmp, open(tmp, "wb") as f:
                    np.save(f, params.astype(np.float32), allow_pickle=False)
            entries.append({"number": number, "params": params_path, "controls": controls.to_dict(), "key": key})
        spec = {
            "fit": fit_path,
            "width": self.size[0],
            "height": self.size[1],
            "folder": self.folder_out,
            "stem": self.stem,
            "frames": entries,
        }
        return {"image": None, "bake": spec}

    def progress_text(self) -> str:
        what = "frame" if self.frames is not None else "image"
        return f"Baking {what} {min(self.iteration + 1, self.total)}/{self.total} ({self.size[0]}x{self.size[1]})"

    def _on_frame(self, m: dict) -> None:
        self.frames_done = m["index"]

    def _apply_result(self, m: dict) -> None:
        group = bpy.data.node_groups.get(self.group_name)
        if group is None:
            raise ImfitError(
                f"node group {self.group_name} was deleted during the bake; its files are in {self.folder_out}"
            )
        self.resumed = int(m.get("resumed", 0))
        files = m["files"]
        if not files:
            raise ImfitError("the bake stopped before its first frame was finished: nothing to show")
        sequence = self.frames is not None
        if sequence and m["stopped"]:
            self.result = dict(m, image=None)
            return  # a partial sequence is not shown: Bake again resumes it
        numbers = sorted(int(k) for k in files) if sequence else None
        numbered = {int(k): v for k, v in files.items()} if sequence else files
        image = baked.load_bake(group, m["manifest"], numbered, (numbers[0], numbers[-1]) if sequence else None)
        scene = bpy.data.scenes.get(self.scene_name)
        node_tree.show_bake(group, scene)
        self.result = dict(m, image=image.name)

    def summary(self) -> str:
        r = self.result
        if r.get("image") is None:
            return f"ImFit: {r['message'] or 'bake stopped'}; {r['frames']} frames are in {self.folder_out}"
        what = f"{r['frames']} frames" if self.frames is not None else "1 image"
        kept = f" ({self.resumed} kept from an earlier bake)" if self.resumed else ""
        return (
            f"ImFit: baked {what}{kept} of {self.group_name} at {r['width']}x{r['height']} in {r['seconds']:.1f} s "
            f"into {self.folder_out}; the group shows {r['image']!r} (Use Baked toggles back)"
        )
