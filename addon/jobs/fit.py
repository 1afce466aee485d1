"""One fit, from Blender image to node group: prepares the worker's inputs, follows its messages,
applies the result.  The same ``tick`` drives it from a modal timer in the UI and from a
blocking loop in background mode (where timers and modal handlers never run).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import traceback
from pathlib import Path

import bpy

from ..engine import ImfitError, atomic, formats, protocol
from ..nodes import stored
from . import inputs
from .process import WorkerProcess, exit_description

PREVIEW_IMAGE = "ImFit Preview"
PREVIEW_SECONDS = 2.0  # how often the worker rewrites the live preview

_active = None  # the FitJob the UI shows; one fit at a time


def active_job():
    return _active


def show_preview(path: str, pack: bool = False):
    """Point the "ImFit Preview" image at ``path`` and reload it; pack it to keep it in the .blend."""
    image = bpy.data.images.get(PREVIEW_IMAGE)
    if image is not None and image.packed_file is not None:
        bpy.data.images.remove(image)  # a packed image would keep showing its packed pixels
        image = None
    if image is None:
        image = bpy.data.images.load(path, check_existing=False)
        image.name = PREVIEW_IMAGE
        image.use_fake_user = True  # only the panel shows it: keep it in the saved file
    else:
        image.filepath = path
        image.reload()
    if pack:
        image.pack()
    if not bpy.app.background:  # the panel shows the image's preview icon
        image.preview_ensure().reload()
    return image


class FitJob:
    """A running fit.  Create with ``start``; then call ``tick`` until it returns False."""

    kind = "fit"  # the worker's job kind (imfit_engine.worker.jobs.JOBS); other jobs derive from this one

    def __init__(
        self,
        scene,
        image,
        weight,
        config: dict,
        *,
        python: str,
        env: dict,
        create_plane: bool = True,
        init_json: str | None = None,
        preview_seconds: float = PREVIEW_SECONDS,
    ):
        self.scene_name = scene.name
        self.image_name = image.name
        self.create_plane = create_plane
        self.python = python
        self.iteration = self.total = self.level = 0
        self.levels = 1
        self.psnr = self.elapsed = 0.0
        self.stop_requested = False
        self.running = False
        self.previews = 0  # live previews shown so far
        self.error: str | None = None
        self.result: dict | None = None
        self.folder = tempfile.mkdtemp(prefix="imfit-", dir=bpy.app.tempdir or None)
        try:
            job_path = self._write_job(image, weight, config, init_json, preview_seconds)
        except BaseException:
            self.close()
            raise
        self.process = WorkerProcess(protocol.module_command(python, "run", job_path), env=env)

    def _inputs(self, image, weight, init_json) -> dict:
        """The job file's inputs (a sequence job has its own, ``sequence.SequenceJob``)."""
        source = inputs.source_input(image, self.folder)
        init_path = None
        if init_json is not None:
            init_path = os.path.join(self.folder, "init.json")
            atomic.write_atomic(init_path, init_json)
        return {"image": source, "weight": inputs.weight_input(weight, self.folder), "init": init_path}

    def _write_job(self, image, weight, config, init_json, preview_seconds) -> str:
        job = dict(
            self._inputs(image, weight, init_json),
            kind=self.kind,
            config=config,
            output_dir=os.path.join(self.folder, "out"),
            preview_seconds=preview_seconds,
            source_name=image.name,
        )
        job_path = os.path.join(self.folder, "job.json")
        atomic.write_atomic(job_path, json.dumps(job, indent=1))
        return job_path

    # -- life cycle

    def start(self) -> "FitJob":
        global _active
        if _active is not None and _active.running:
            self.close()
            raise ImfitError(f"a fit of {_active.image_name} is running: cancel it or wait for it to finish")
        try:
            self.process.start()
        except ImfitError:
            self.close()
            raise
        self.running = True
        _active = self
        return self

    def request_stop(self) -> None:
        """Stop soon; the worker still sends the best result so far."""
        self.stop_requested = True
        self.process.request_stop()

    def tick(self, timeout: float = 0.0) -> bool:
        """Handle the worker's messages (waiting up to ``timeout`` s); True while the job runs."""
        if not self.running:
            return False
        for message in self.process.messages(timeout):
            handler = getattr(self, f"_on_{message['type']}", None)
            if handler is not None:
                handler(message)
        return self.running

    def run_to_end(self) -> "FitJob":
        while self.tick(timeout=0.5):
            pass
        return self

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def shutdown(self) -> None:
        """End the worker now (add-on unregister): no result is applied."""
        self.process.shutdown()
        self.running = False
        self.close()

    # -- what the UI shows

    @property
    def fraction(self) -> float:
        return min(1.0, self.iteration / self.total) if self.total else 0.0

    @property
    def status(self) -> str:
        if self.error:
            return self.error
        if not self.total:
            return "Starting the engine..."
        return self.progress_text() + (" - stopping" if self.stop_requested else "")

    def progress_text(self) -> str:
        """What the running job is at; job kinds say it their own way."""
        return f"Level {self.level + 1}/{self.levels}, {self.iteration}/{self.total}, {self.psnr:.2f} dB"

    # -- messages

    def _on_progress(self, m: dict) -> None:
        self.iteration, self.total, self.level, self.levels = m["iteration"], m["total"], m["level"], m["levels"]
        self.psnr, self.elapsed = m["psnr"], m["elapsed"]

    def _on_preview(self, m: dict) -> None:
        self.previews += 1
        try:
            show_preview(m["path"])
        except RuntimeError as e:  # the live preview is cosmetic: never end a fit over it
            print(f"ImFit: preview not shown: {e}")

    def _on_error(self, m: dict) -> None:
        self.error = m["message"]

    def _on_result(self, m: dict) -> None:
        try:
            self._apply_result(m)
        except ImfitError as e:
            self.error = str(e)
        except Exception as e:  # a bug: the console gets the traceback, the user a sentence
            traceback.print_exc()
            text = stored.find_text(self.image_name)
            kept = f"; the fit is kept in the text {text.name!r}" if text else ""
            self.error = f"applying the fit failed ({type(e).__name__}: {e}){kept}"

    def _on_exit(self, m: dict) -> None:
        self.running = False
        if self.result is None and self.error is None:
            last = (m["stderr"].strip().splitlines() or [""])[-1][:300]
            self.error = (
                f"the engine ({self.python}) {exit_description(m['returncode'])} before sending a result"
                + (f": {last}" if last else "")
                + ". Press Check in Preferences > Add-ons > Gabor ImFit"
            )
        self.close()

    def _apply_result(self, m: dict) -> None:
        json_text = Path(m["path"]).read_text(encoding="utf-8")
        wavelets = formats.parse_json_text(json_text, m["path"])
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is None:
            raise ImfitError(f"scene {self.scene_name} was deleted during the fit; the result is lost")
        stored.store(self.image_name, json_text)
        group, plane = stored.build_nodes(scene, self.image_name, wavelets, self.create_plane)
        if m.get("preview") and os.path.isfile(m["preview"]):
            show_preview(m["preview"], pack=True)
        settings = scene.imfit
        if settings.image is None:  # the panel shows the fit, and the image (a user now) is saved for Refine
            settings.image = bpy.data.images.get(self.image_name)
        settings.result_image = self.image_name
        settings.result_psnr, settings.result_seconds = m["psnr"], m["seconds"]
        settings.result_wavelets, settings.result_stopped = len(wavelets), bool(m["stopped"])
        settings.result_frames = 0  # a still
        self.result = dict(m, group=group.name, plane=plane.name if plane else None, wavelets=len(wavelets))

    def summary(self) -> str:
        r = self.result
        # the engine's message already says the best result was kept ("... kept the best result so far")
        stopped = f" ({r.get('message') or 'stopped early; the best result so far is kept'})" if r["stopped"] else ""
        return (
            f"ImFit: {r['wavelets']} wavelets fitted to {self.image_name}, PSNR {r['psnr']:.2f} dB "
            f"in {r['seconds']:.1f} s{stopped}"
        )


def shutdown_active() -> None:
    global _active
    if _active is not None and _active.running:
        _active.shutdown()
    _active = None
