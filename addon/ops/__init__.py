"""Operators: each parses its properties and context, then calls a plain function or starts a job."""

from __future__ import annotations

from . import bake, engine, expand, fit, polling, shader, stored, style

classes = (
    *engine.classes,
    *fit.classes,
    *stored.classes,
    *shader.classes,
    *style.classes,
    *expand.classes,
    *bake.classes,
)


def unregister_hooks() -> None:
    """Nothing of ours may outlive the add-on: timers, a running fit, an install."""
    polling.remove_timers()
    fit.unregister_hook()
    engine.unregister_hook()
