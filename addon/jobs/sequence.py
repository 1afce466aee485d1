"""Image sequences and movies in Blender: their frames as worker inputs, the sequence fit job, and
one node group keyed frame by frame from the engine's frame files (``imfit_engine.sequence``).

Which frames: the scene frames that the image's image user shows (an Image Editor or an Image
Texture node using the image: frame start, duration and offset, as Blender maps them), limited
to the frames the image has; without a user, every frame of the image at its own number (files
on disk for a sequence, 1..duration for a movie).  Sequence files the worker can read are used
as they are; other files and movie frames are decoded by Blender one at a time into 16-bit PNGs
in the job folder (on disk: never all frames in memory).

The keyed group is the still fit's group (``nodes.stored.build_nodes``) with every wavelet socket keyed at
every frame (``nodes.keyframes``), wavelet identity kept across cold keyframes (``aligned_frames``).
"""

from __future__ import annotations

import os
import re

import bpy

from ..engine import ImfitError, png
from ..engine import sequence as frames_engine
from ..nodes import keyframes
from . import fit as fit_job
from . import inputs

SOURCES = ("SEQUENCE", "MOVIE")


# ----------------------------------------------------------------------------------------
# frames of an image


def _image_user(image):
    """The image user of an Image Editor showing ``image``, else of an Image Texture node using it."""
    for screen in bpy.data.screens:
        for area in screen.areas:
            space = area.spaces.active
            if area.type == "IMAGE_EDITOR" and space.image == image:
                return space.image_user
    for owner in (*bpy.data.materials, *bpy.data.worlds, *bpy.data.node_groups):
        tree = owner if isinstance(owner, bpy.types.NodeTree) else owner.node_tree
        for node in tree.nodes if tree is not None else ():
            if node.bl_idname == "ShaderNodeTexImage" and node.image == image:
                return node.image_user
    return None


def _sequence_files(image) -> dict[int, str]:
    """{frame number: file} of an image sequence, by Blender's rule: the last digits of the file name."""
    path = bpy.path.abspath(image.filepath, library=image.library)
    folder, name = os.path.split(path)
    stem, suffix = os.path.splitext(name)
    match = re.search(r"\d+(?!.*\d)", stem)
    if match is None:
        raise ImfitError(
            f"image sequence {image.name}: its file name {name} has no frame number. Name the frames like shot_0001.png"
        )
    pattern = re.compile(re.escape(stem[: match.start()]) + r"(\d+)" + re.escape(stem[match.end() :] + suffix) + r"\Z")
    try:
        entries = os.listdir(folder)
    except OSError as e:
        raise ImfitError(
            f"image sequence {image.name}: cannot list its folder {folder} ({e.strerror or e}). Relink the image"
        ) from None
    return {int(m.group(1)): os.path.join(folder, entry) for entry in entries if (m := pattern.match(entry))}


def image_frames(image) -> list[tuple[int, int]]:
    """(scene frame, image frame) pairs to fit, in order (see the module docstring)."""
    if image.source not in SOURCES:
        raise ImfitError(
            f"image {image.name} is a single {image.source.lower()} image, not a sequence or movie: "
            "use Fit, or open the frames as an image sequence (Image > Open, Sequence)"
        )
    available = set(range(1, image.frame_duration + 1)) if image.source == "MOVIE" else set(_sequence_files(image))
    user = _image_user(image)
    if user is None:
        pairs = [(n, n) for n in sorted(available)]
    else:
        pairs = [
            (f, f - user.frame_start + 1 + user.frame_offset)
            for f in range(user.frame_start, user.frame_start + user.frame_duration)
        ]
        pairs = [(f, n) for f, n in pairs if n in available]
    if not pairs:
        raise ImfitError(
            f"image {image.name} has no frames to fit (missing files, or its image user's frame range "
            "shows none). Check the image's frame start, offset and duration"
        )
    return pairs


class MovieFrames:
    """Decodes frames of a movie through a temporary texture.  Blender has no API that returns a
    given movie frame's pixels: evaluating a texture at a frame makes Blender decode it, and
    ``Image.pixels`` then reads the frame decoded last once the cached one is freed."""

    def __init__(self, image):
        self.image = image
        self.texture = bpy.data.textures.new(".ImFit movie decoder", "IMAGE")
        self.texture.image = image
        user = self.texture.image_user
        user.frame_start, user.frame_offset, user.frame_duration = 1, 0, image.frame_duration

    def rgb(self, number: int):
        self.texture.image_user.frame_current = number
        self.texture.evaluate((0.0, 0.0, 0.0))
        self.image.buffers_free()
        return inputs.encoded_rgb_alpha(self.image, any_source=True)[0]

    def close(self) -> None:
        bpy.data.textures.remove(self.texture)
        self.image.buffers_free()


def _converted_file(path: str, colorspace: str, out_path: str) -> str:
    """A sequence frame the worker cannot read (EXR, ...), written as a 16-bit PNG."""
    frame = bpy.data.images.load(path, check_existing=False)
    try:
        frame.colorspace_settings.name = colorspace
        png.write_png16(out_path, inputs.encoded_rgb_alpha(frame)[0])
    finally:
        bpy.data.images.remove(frame)
    return out_path


def write_frame_files(image, image_numbers: list[int], folder: str, stem: str) -> list[str]:
    """A file the worker can read for each of ``image_numbers`` (frames of ``image``), in order."""
    os.makedirs(folder, exist_ok=True)
    out = [os.path.join(folder, f"{stem}_{n:06d}.png") for n in image_numbers]
    if image.source == "MOVIE":
        decoder = MovieFrames(image)
        try:
            for n, path in zip(image_numbers, out):
                if not os.path.isfile(path):  # a batch run resumes: frames decoded before are kept
                    png.write_png16(path, decoder.rgb(n))
        finally:
            decoder.close()
        return out
    files = _sequence_files(image)
    readable = [files[n] if files[n].lower().endswith(inputs.WORKER_READABLE) else None for n in image_numbers]
    return [
        path or _converted_file(files[n], image.colorspace_settings.name, converted)
        for n, path, converted in zip(image_numbers, readable, out)
    ]


# ----------------------------------------------------------------------------------------
# the job


class SequenceJob(fit_job.FitJob):
    """A sequence fit in the worker; the same life cycle as a still fit (``FitJob``)."""

    kind = "sequence"

    def __init__(
        self, scene, image, weight, config: dict, *, keyframe_interval: int, interpolation: str, select=None, **kwargs
    ):
        self.keyframe_interval, self.interpolation, self.select = keyframe_interval, interpolation, select
        self.frame_count = self.frames_done = 0
        self.frame = None
        super().__init__(scene, image, weight, config, **kwargs)

    def _inputs(self, image, weight, init_json) -> dict:
        pairs = image_frames(image)
        numbers = [scene_frame for scene_frame, _ in pairs]
        fitted, written = frames_engine.planned_positions(numbers, self.keyframe_interval, self.select)
        self.frame_count = len(written)
        inputs = dict(
            zip(
                fitted,
                write_frame_files(image, [pairs[p][1] for p in fitted], os.path.join(self.folder, "source"), "frame"),
            )
        )
        weight_path = inputs.weight_input(weight, self.folder) if weight is not None else None
        frames = [
            {"number": n, "image": inputs.get(p), "weight": weight_path, "stem": f"frame_{n:06d}"}
            for p, n in enumerate(numbers)
        ]
        return {"sequence": {"frames": frames, "keyframe_interval": self.keyframe_interval, "select": self.select}}

    @property
    def status(self) -> str:
        if self.error or not self.total:
            return super().status
        return f"Frame {min(self.frames_done + 1, self.frame_count)}/{self.frame_count}: {super().status}"

    def _on_progress(self, m: dict) -> None:
        super()._on_progress(m)
        self.frame = m.get("frame")

    def _on_frame(self, m: dict) -> None:
        self.frames_done = m["index"]

    def _apply_result(self, m: dict) -> None:
        if not m["frames"]:
            raise ImfitError("the fit stopped before its first frame was finished: nothing was keyed")
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is None:
            raise ImfitError(f"scene {self.scene_name} was deleted during the fit; the result is lost")
        group, plane = keyframes.build_keyed_group(
            scene, self.image_name, frames_engine.collect([m["path"]]), self.interpolation, self.create_plane
        )
        settings = scene.imfit
        if settings.image is None:
            settings.image = bpy.data.images.get(self.image_name)
        settings.result_image = self.image_name
        settings.result_psnr, settings.result_seconds = m["psnr"], m["seconds"]
        settings.result_wavelets, settings.result_stopped = m["wavelets"], bool(m["stopped"])
        settings.result_frames = m["frames"]
        settings.result_flicker = m["flicker"]["flicker"] * 255 if m.get("flicker") else 0.0
        self.result = dict(m, group=group.name, plane=plane.name if plane else None)

    def summary(self) -> str:
        r = self.result
        flicker = ""
        if r.get("flicker"):
            f = r["flicker"]
            flicker = (
                f", flicker {f['flicker'] * 255:.2f}/255 (frame-to-frame change "
                f"{f['fit_change'] * 255:.2f}/255, the source's {f['source_change'] * 255:.2f}/255)"
            )
        stopped = f" ({r['message']})" if r["stopped"] else ""
        return (
            f"ImFit: {r['frames']} frames of {self.image_name} keyed on {r['group']} ({r['wavelets']} wavelets), "
            f"mean PSNR {r['psnr']:.2f} dB in {r['seconds']:.1f} s{flicker}{stopped}"
        )
