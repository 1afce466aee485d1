"""Blender 4.3.2's real window with simulated input, session "interrupts" (drive_interrupts.py): the Style and
Expand Texture sub-panels, Esc, the Cancel button, a killed worker, opening a file during a fit, and undo."""

from __future__ import annotations

import numpy as np
import pytest
import sessions
from PIL import Image
from ui_session import STATUS_BAR, check_timing, need, shot

STOP_SECONDS = 5.0


@pytest.fixture(scope="module")
def interrupts(extension_zip):
    return sessions.run("interrupts", extension_zip)


def test_the_session_ran_without_errors(interrupts):
    assert interrupts["errors"] == [], interrupts.get("traceback")
    assert "Traceback" not in interrupts["log"], interrupts["log"][-3000:]
    assert interrupts["returncode"] == 0


def test_style_subpanel_opens_and_stylize_runs(interrupts):
    panel, job, image = need(interrupts, "style_panel", "stylize", "stylize_image")
    assert panel["draws_before"] == 0 and panel["draws_after"] > 0, panel  # closed, then opened by the click
    assert (
        job["ended"] and job["error"] is None and job["result"]["iterations"] == interrupts["params"]["style"]["steps"]
    )
    # base 32, one level: the shortest side is 32, the aspect kept (192x128 -> 48x32)
    assert image["name"] == "chelsea Stylized" and image["size"] == [48, 32] and image["packed"]


def test_expand_subpanel_opens_and_expand_runs(interrupts):
    panel, job, image = need(interrupts, "expand_panel", "expand", "expand_image")
    assert panel["draws_before"] == 0 and panel["draws_after"] > 0, panel
    assert job["ended"] and job["error"] is None
    assert image["name"] == "grass x2" and image["size"] == [2 * s for s in image["source_size"]]


def _kept_best_result(case):
    stop = case["stop"]
    assert stop["ended"] and stop["error"] is None, stop
    result = stop["result"]
    assert result["stopped"] and case["iteration"] <= result["iterations"] < case["total"]
    assert case["scene"]["stopped"] and case["stored"]["group_count"] == 64
    assert case["stored"]["text_iterations"] == result["iterations"]  # the best result so far, kept
    assert case["workers_after"] == []


def _stopped_in_time(case, load):
    seconds = case["stop"]["seconds"]
    check_timing(seconds <= STOP_SECONDS, f"the fit took {seconds} s to stop", load)


def test_esc_stops_the_fit_and_keeps_the_best_result(interrupts):
    _kept_best_result(need(interrupts, "esc"))


def test_esc_stops_the_fit_within_5_seconds(interrupts):
    _stopped_in_time(need(interrupts, "esc"), interrupts["load"])


def test_cancel_button_stops_the_fit_and_keeps_the_best_result(interrupts):
    case = need(interrupts, "cancel")
    assert case.get("clicked"), "the Cancel button was not found on the screen"
    _kept_best_result(case)


def test_cancel_button_stops_the_fit_within_5_seconds(interrupts):
    _stopped_in_time(need(interrupts, "cancel"), interrupts["load"])


def test_killed_worker_gives_a_report_and_frees_the_panel(interrupts):
    case = need(interrupts, "sigkill")
    stop = case["stop"]
    assert stop["ended"]
    assert "was killed (SIGKILL) before sending a result" in stop["error"]
    assert case["fit_poll"], "Fit is still refused after the worker died"
    # the error report: its red icon in the status bar
    bar = np.asarray(Image.open(shot(interrupts, "sigkill_after")).convert("RGB"), dtype=np.int16)[-STATUS_BAR:]
    red = (bar[..., 0] > 150) & (bar[..., 0] - bar[..., 1] > 80) & (bar[..., 0] - bar[..., 2] > 80)
    assert red.sum() >= 10


def test_killed_worker_frees_the_panel_within_5_seconds(interrupts):
    _stopped_in_time(need(interrupts, "sigkill"), interrupts["load"])  # its exit is noticed at the next poll


def test_opening_another_file_ends_the_fit_cleanly(interrupts):
    case = need(interrupts, "open_file")
    assert case["workers_gone"]
    assert case["fit_poll"] and case["file"] == interrupts["params"]["other_blend"]
    assert case["groups"] == []  # the fit belonged to the file that was closed
    assert "after_redo" in interrupts  # and Blender went on working in the new file


def test_undo_after_a_fit_leaves_a_consistent_file(interrupts):
    before, after_fit, undone, redone = need(
        interrupts, "undo_before_fit", "undo_after_fit", "after_undo", "after_redo"
    )
    image = interrupts["undo_image"]
    group = f"ImFit {image}"
    assert group in after_fit["groups"] and after_fit["planes"] == [group] and after_fit["active"] == group
    # Ctrl-Z: the fit is gone as a whole, the opened image stays; nothing dangles
    for state in (undone, redone):
        assert state["materials_broken"] == []
        assert image in state["images"]
        assert bool(state["groups"]) == bool(state["texts"]) == bool(state["planes"]) == bool(state["result_image"])
    assert undone["groups"] == before["groups"] and undone["planes"] == before["planes"] == []
    assert interrupts["undo_panel_draws"] > 0 and interrupts["draws"]["panel_IMAGE"]["errors"] == []
    # Ctrl-Shift-Z: all of it back
    assert redone["groups"] == after_fit["groups"] and redone["texts"] == after_fit["texts"]
    assert redone["planes"] == after_fit["planes"] and redone["result_wavelets"] == 16


def test_opening_another_file_ends_the_fit_within_5_seconds(interrupts):
    seconds = need(interrupts, "open_file")["seconds"]
    check_timing(
        seconds <= STOP_SECONDS, f"the worker was gone {seconds} s after the file was opened", interrupts["load"]
    )
