"""Preferences operators: check the engine Python, install PyTorch into the extension's folder."""
from __future__ import annotations

import sys

import bpy

from . import interpreter
from .engine import ImfitError, worker
from .preferences import CPU_INDEX_URL, get_preferences
from .worker_client import WorkerProcess, exit_description


class _InstallStatus:
    """What the installer is doing, shown in the preferences; one install at a time."""

    def __init__(self):
        self.text = ""
        self.running = False
        self.failed = False
        self.process: WorkerProcess | None = None


install_status = _InstallStatus()


def _redraw_preferences() -> None:
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()


class IMFIT_OT_check_engine(bpy.types.Operator):
    bl_idname = "imfit.check_engine"
    bl_label = "Check ImFit Engine"
    bl_description = "Run a tiny probe in the engine's Python: PyTorch version, GPU, missing packages"

    def execute(self, context):
        prefs = get_preferences(context)
        info = interpreter.probe(prefs)
        if hasattr(prefs, "store_probe"):
            prefs.store_probe(info)
        line = interpreter.status_line(info)
        self.report({"INFO"} if interpreter.engine_ready(info) else {"WARNING"}, line)
        return {"FINISHED"}


class IMFIT_OT_install_torch(bpy.types.Operator):
    bl_idname = "imfit.install_torch"
    bl_label = "Install PyTorch"
    bl_description = "Download PyTorch and pillow with pip into this add-on's own folder (needs Online Access)"

    _timer = None

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
        index_url = CPU_INDEX_URL if prefs.install_build == "CPU" else prefs.cuda_index_url.strip() or None
        args = ["install", site] + (["--index-url", index_url] if index_url else [])
        install_status.process = WorkerProcess(worker.module_command(sys.executable, *args),
                                               env=interpreter.worker_environment([]))
        try:
            install_status.process.start()
        except ImfitError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        install_status.running, install_status.failed, install_status.text = True, False, "Installing PyTorch..."
        if bpy.app.background:  # no modal handlers without a UI
            while install_status.running:
                self._consume(context, timeout=1.0)
            return {"FINISHED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.5, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _consume(self, context, timeout: float = 0.0) -> None:
        for message in install_status.process.messages(timeout):
            if message["type"] == "log":
                install_status.text = message["line"][:120]
            elif message["type"] == "error":
                install_status.text, install_status.failed = message["message"], True
                self.report({"ERROR"}, message["message"])
            elif message["type"] == "result":
                prefs = get_preferences(context)
                info = interpreter.probe(prefs)
                if hasattr(prefs, "store_probe"):
                    prefs.store_probe(info)
                install_status.text = "Installed: " + interpreter.status_line(info)
                self.report({"INFO"}, install_status.text)
            elif message["type"] == "exit":
                install_status.running = False
                if message["returncode"] != 0 and not install_status.failed:
                    install_status.text = (f"the installer {exit_description(message['returncode'])}: "
                                           f"{message['stderr'][-200:]}")
                    self.report({"ERROR"}, install_status.text)

    def modal(self, context, event):
        if event.type == "TIMER":
            self._consume(context)
            _redraw_preferences()
            if not install_status.running:
                context.window_manager.event_timer_remove(self._timer)
                return {"FINISHED"}
        return {"PASS_THROUGH"}


classes = (IMFIT_OT_check_engine, IMFIT_OT_install_torch)


def unregister_hook() -> None:
    """Stop an install still running when the add-on goes away."""
    if install_status.process is not None:
        install_status.process.shutdown()
    install_status.running = False
