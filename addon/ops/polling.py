"""Operators that follow a background job: modal with a timer in the UI, a blocking loop otherwise.

Blender must never freeze while a worker runs, so in the UI a window timer calls the
operator's ``poll_job`` a few times a second.  In background mode timers and modal handlers
never run (ARCHITECTURE.md, "Blender limits"), and scripts expect a finished result, so there the same ``poll_job``
is called in a loop until the job ends.
"""

from __future__ import annotations

import time

import bpy

POLL_SECONDS = 0.25
# Progress is redrawn at most this often: enough to follow it, and every redraw of the window costs the UI and
# the worker CPU (much of it in software OpenGL); the messages are still drained every poll.
REDRAW_SECONDS = 0.5

_timers = []  # (window manager, timer) of running modal operators, removed on unregister


def redraw_all(context) -> None:
    """Redraw what shows a job's progress: sidebars (the ImFit tab), the preferences, the status bar.  Not the
    editors' main regions: a 3D Viewport redrawn four times a second costs a core in software OpenGL, time
    the UI and the worker need (a new live preview redraws the editors showing it by itself)."""
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()
                continue
            for region in area.regions:
                if region.type == "UI":
                    region.tag_redraw()
    # The status bar (the job's progress) is a global area, not in screen.areas: it redraws when Window.view_layer
    # is published on the message bus (it subscribes to that in Blender 2.80 to 5.0); nothing else changes.
    bpy.msgbus.publish_rna(key=(bpy.types.Window, "view_layer"))


class PollingOperator:
    """Mixin: subclasses implement ``poll_job(context, timeout) -> set | None`` (None while running)."""

    _timer = None
    _redrawn = 0.0  # when the progress was last redrawn (time.monotonic)

    def poll_job(self, context, timeout: float):
        raise NotImplementedError

    def run_polled(self, context, blocking: bool) -> set:
        if blocking:
            while (done := self.poll_job(context, 0.5)) is None:
                pass
            return done
        wm = context.window_manager
        self._timer = wm.event_timer_add(POLL_SECONDS, window=context.window)
        _timers.append((wm, self._timer))
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER":  # any timer will do: a poll only drains a queue
            return {"PASS_THROUGH"}
        done = self.poll_job(context, 0.0)
        now = time.monotonic()
        if done is not None or now - self._redrawn >= REDRAW_SECONDS:
            self._redrawn = now
            redraw_all(context)
        if done is None:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        _timers[:] = [(wm, t) for wm, t in _timers if t != self._timer]
        self._timer = None
        return done


class JobOperator(PollingOperator):
    """Mixin for operators that run one worker job (Fit, Refine, Sequence, Style, Expand, Bake): one job at a
    time, modal in the UI with Esc to stop (what is finished is kept), blocking in scripts and background mode.
    Subclasses implement ``_make_job(context)`` (the started job; ImfitError or OSError when it cannot start)."""

    busy_message = "A fit is running"  # why the operator is greyed out while a job runs
    files_error = (  # the report when the job's input files cannot be written ({e}: the OSError)
        "cannot prepare the fit's files: {e}. Check the temporary folder (Preferences > File Paths) and free disk space"
    )
    _job = None

    @classmethod
    def poll(cls, context):
        from ..jobs import fit as fit_job

        job = fit_job.active_job()
        if job is not None and job.running:
            cls.poll_message_set(cls.busy_message)
            return False
        return context.scene is not None

    def _make_job(self, context):
        raise NotImplementedError

    def _value(self, name: str, settings, setting: str = ""):
        """The operator's ``name`` when a script set it, else the panel's (``settings.setting``, default the
        same name)."""
        if self.properties.is_property_set(name):
            return getattr(self, name)
        return getattr(settings, setting or name)

    def _start(self, context):
        """The started job, or None after reporting why not."""
        from ..engine import ImfitError

        try:
            return self._make_job(context)
        except ImfitError as e:
            self.report({"ERROR"}, f"ImFit: {e}")
        except OSError as e:  # writing the worker's input files
            self.report({"ERROR"}, "ImFit: " + self.files_error.format(e=e))
        return None

    def poll_job(self, context, timeout):
        job = self._job
        if job.tick(timeout):
            return None
        if job.error:
            self.report({"ERROR"}, f"ImFit: {job.error}")
            return {"CANCELLED"}
        self.report({"INFO"}, job.summary())
        return {"FINISHED"}

    def execute(self, context):  # scripts and background mode: return when the job is done
        self._job = self._start(context)
        return self.run_polled(context, blocking=True) if self._job else {"CANCELLED"}

    def invoke(self, context, event):
        self._job = self._start(context)
        return self.run_polled(context, blocking=bpy.app.background) if self._job else {"CANCELLED"}

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self._job.request_stop()  # the worker still sends what it finished, the best result so far
            return {"RUNNING_MODAL"}
        return super().modal(context, event)


def remove_timers() -> None:
    """Unregister: no timer of ours may keep firing into a removed operator."""
    for wm, timer in _timers:
        try:
            wm.event_timer_remove(timer)
        except (ReferenceError, RuntimeError):
            pass  # its window is gone already
    _timers.clear()
