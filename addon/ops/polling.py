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


def remove_timers() -> None:
    """Unregister: no timer of ours may keep firing into a removed operator."""
    for wm, timer in _timers:
        try:
            wm.event_timer_remove(timer)
        except (ReferenceError, RuntimeError):
            pass  # its window is gone already
    _timers.clear()
