"""Preferences operators: check the engine Python, install PyTorch into the extension's folder.

Both wait on a process (the probe imports torch, the install downloads it), so both are
polled: Blender stays responsive while they run.
"""

from __future__ import annotations

import sys
import threading

import bpy

from ..engine import ImfitError, protocol
from ..jobs import interpreter
from ..jobs.interpreter import install_status
from ..jobs.process import WorkerProcess, exit_description
from ..ui.pref import CPU_INDEX_URL, get_preferences
from .polling import PollingOperator


def store_probe(context, info: dict) -> None:
    prefs = get_preferences(context)
    if hasattr(prefs, "store_probe"):  # real preferences (not the defaults used outside the add-on system)
        prefs.store_probe(info)


class IMFIT_OT_check_engine(PollingOperator, bpy.types.Operator):
    bl_idname = "imfit.check_engine"
    bl_label = "Check ImFit Engine"
    bl_description = "Run a tiny probe in the engine's Python: PyTorch version, GPU, missing packages"

    def execute(self, context):
        try:
            python, env = interpreter.engine_python(get_preferences(context))
        except ImfitError as e:
            self._probe = [{"error": str(e)}]
            return self.poll_job(context, 0.0)
        self._probe = []  # filled by the thread: run_probe touches no bpy data
        self._thread = threading.Thread(
            target=lambda: self._probe.append(interpreter.run_probe(python, env)), name="imfit-probe", daemon=True
        )
        self._thread.start()
        return self.run_polled(context, blocking=bpy.app.background)

    def poll_job(self, context, timeout):
        if not self._probe:
            self._thread.join(timeout)
            return None
        info = self._probe[0]
        store_probe(context, info)
        level = {"INFO"} if interpreter.engine_ready(info) else {"WARNING"}
        self.report(level, f"ImFit engine: {interpreter.status_line(info)}")
        return {"FINISHED"}


class IMFIT_OT_install_torch(PollingOperator, bpy.types.Operator):
    bl_idname = "imfit.install_torch"
    bl_label = "Install PyTorch"
    bl_description = "Download PyTorch and pillow with pip into this add-on's own folder (needs Online Access)"

    @classmethod
    def poll(cls, context):
        if not bpy.app.online_access:
            cls.poll_message_set("Online Access is off (Preferences > System)")
            return False
        if interpreter.site_folder() is None:
            cls.poll_message_set("Only available when ImFit is installed as an extension")
            return False
        return not install_status.running

    def execute(self, context):
        prefs = get_preferences(context)
        site = interpreter.site_folder(create=True)
        index_url = {"CPU": CPU_INDEX_URL, "CUDA": prefs.cuda_index_url.strip()}.get(prefs.install_build)
        args = ["install", site] + (["--index-url", index_url] if index_url else [])
        # always Blender's own Python: the site folder is for it
        process = WorkerProcess(protocol.module_command(sys.executable, *args), env=interpreter.worker_environment([]))
        try:
            process.start()
        except ImfitError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        install_status.process, install_status.running, install_status.failed = process, True, False
        install_status.text = "Installing PyTorch..."
        return self.run_polled(context, blocking=bpy.app.background)

    def poll_job(self, context, timeout):
        for message in install_status.process.messages(timeout):
            kind = message["type"]
            if kind == "log":
                install_status.text = message["line"][:120]
            elif kind == "error":
                install_status.text, install_status.failed = message["message"], True
                self.report({"ERROR"}, message["message"])
            elif kind == "result":
                install_status.text = "PyTorch installed"
                self.report({"INFO"}, f"ImFit: PyTorch installed in {message['path']}")
                bpy.ops.imfit.check_engine()  # refresh the status line (polled too)
            elif kind == "exit":
                install_status.running = False
                if message["returncode"] != 0 and not install_status.failed:
                    install_status.failed = True
                    install_status.text = (
                        f"the installer {exit_description(message['returncode'])}: {message['stderr'][-200:]}"
                    )
                    self.report({"ERROR"}, install_status.text)
        if install_status.running:
            return None
        return {"CANCELLED"} if install_status.failed else {"FINISHED"}


classes = (IMFIT_OT_check_engine, IMFIT_OT_install_torch)


def unregister_hook() -> None:
    """Stop an install still running when the add-on goes away."""
    if install_status.process is not None:
        install_status.process.shutdown()
    install_status.running = False
