"""Blender 4.3.2's real window, session "basics" (drive_basics.py): install, preferences, Check, the ImFit tab
in three editors, Fit from the panel, the plane, the Shader Editor, Refine and Fit Sequence."""

from __future__ import annotations

import importlib.metadata
import sys

import numpy as np
import pytest
import sessions
from PIL import Image
from ui_session import DATA, REPO, STATUS_BAR, check_timing, need, shot

sys.path.insert(0, str(REPO))
from imfit_engine.core.config import FitConfig
from imfit_engine.core.fit import level_iterations


@pytest.fixture(scope="module")
def basics(extension_zip):
    """The session, with the command line's rate on the same fit measured just before and just after it
    (the machine is shared: the bracket holds the same load as the session, or close)."""
    before = sessions.cli_fit_rate("before_basics", DATA / "astronaut.png")
    results = sessions.run("basics", extension_zip)
    after = sessions.cli_fit_rate("after_basics", DATA / "astronaut.png")
    results["cli"] = [before, after]
    return results


def fit_beats(results) -> np.ndarray:
    """Gaps between heartbeat timer calls while the worker ran (from Fit until the last sample that saw it
    running; the node group is built after that, on the main thread, as Blender requires)."""
    fit = need(results, "fit")
    start, end = fit["samples"][0][0], fit["samples"][-1][0]
    beats = np.array([b for b in need(results, "fit_beats") if start <= b <= end])
    return np.diff(beats)


def status_bar(results, name) -> np.ndarray:
    return np.asarray(Image.open(shot(results, name)).convert("RGB"), dtype=np.int16)[-STATUS_BAR:]


def test_the_session_ran_without_errors(basics):
    assert basics["errors"] == [], basics.get("traceback")
    assert "Traceback" not in basics["log"], basics["log"][-3000:]
    assert basics["returncode"] == 0


def test_extension_installs_from_the_zip(basics):
    install = need(basics, "install")
    assert install["result"] == ["FINISHED"] and install["module"] and install["enabled"]
    assert {"fit", "cancel", "refine", "fit_sequence", "stylize", "expand_texture", "check_engine"} <= set(
        install["operators"]
    )


def test_preferences_page_draws(basics):
    page = need(basics, "preferences")
    assert page["window"], "Preferences did not open a window"
    assert page["draws_before_check"] >= 1 and page["draws"] > page["draws_before_check"]  # redrawn after Check
    assert basics["draws"]["preferences"]["errors"] == []
    shot(basics, "preferences")


def test_check_finds_the_external_python_and_shows_torch(basics):
    check = need(basics, "check")
    torch_version = importlib.metadata.version("torch")
    assert check["done"], "the probe did not finish"
    assert check["probe"]["python"] == basics["params"]["python"]
    assert check["probe"]["torch"] == torch_version
    assert check["status_line"].startswith(f"PyTorch {torch_version}, CPU only"), check["status_line"]


def test_imfit_tab_draws_in_image_editor_3d_viewport_and_shader_editor(basics):
    tabs = need(basics, "tabs")
    assert tabs == {"IMAGE_EDITOR": "ImFit", "VIEW_3D": "ImFit", "NODE_EDITOR": "ImFit"}
    for short in ("IMAGE", "VIEW3D", "NODE"):
        assert basics["tab_draws"][short] >= 1, short
        assert basics["draws"][f"panel_{short}"]["errors"] == [], short


# A label in the ImFit panel shows at most the sidebar's width less ~87 px of text (measured on the screenshots
# of Blender 4.3.2: in a 291 px sidebar a 202 px line is drawn whole, a 215 px line is cut short with "...").
LABEL_MARGIN = 88


def test_long_messages_fit_the_sidebar(basics):
    """Wrapped to the region's width: each line of the panel's messages is drawn whole."""
    lines = list(need(basics, "labels").values())
    assert lines, "no wrapped message was drawn (the default 256 wavelets warn about EEVEE)"
    too_wide = [(text, width, region) for text, width, region, scale in lines if width > region - LABEL_MARGIN * scale]
    assert not too_wide, too_wide


def test_fit_from_the_panel_runs_modal_to_a_node_group(basics):
    assert need(basics, "fit_invoke") == ["RUNNING_MODAL"] and basics["fit_running_after_invoke"]
    fit = basics["fit"]
    assert fit["ended"] and fit["error"] is None
    schedule = level_iterations(FitConfig(**{k: v for k, v in basics["params"]["fit"].items() if k != "size"}))
    assert fit["result"]["iterations"] == sum(schedule) and not fit["result"]["stopped"]
    stored = basics["fit_stored"]
    assert stored["group"] == "ImFit astronaut.png" and stored["group_count"] == 64
    assert stored["text_wavelets"] == 64 and stored["plane"] == "ImFit astronaut.png"
    assert basics["fit_scene"]["psnr"] > 20


# Blender's main loop must keep running timers (asking for every 0.05 s) at least every 0.5 s: 95% of the gaps,
# and none may be a freeze (1.5 s).  Not checked while other processes compete for the CPU (check_timing).
TIMER_GAP, TIMER_GAP_MAX = 0.5, 1.5


def test_timers_keep_firing_during_the_fit(basics):
    gaps = fit_beats(basics)
    assert len(gaps) > 20
    p95, longest = np.percentile(gaps, 95), gaps.max()
    check_timing(
        p95 <= TIMER_GAP and longest <= TIMER_GAP_MAX,
        f"gaps between timer calls: 95% within {p95:.2f} s, longest {longest:.2f} s",
        basics["load"],
    )


def test_panel_progress_changes_during_the_fit(basics):
    samples = need(basics, "fit")["samples"]
    iterations = [s[1] for s in samples if s[2]]
    assert iterations == sorted(iterations) and len(set(iterations)) >= 5
    assert len({s[5] for s in samples}) >= 5  # the progress text the panel and status bar show


def test_status_bar_is_redrawn_during_the_fit(basics):
    early, late, idle = (
        status_bar(basics, "fit_early"),
        status_bar(basics, "fit_late"),
        status_bar(basics, "before_fit"),
    )
    changed = int((np.abs(early - late).sum(axis=2) > 30).sum())
    assert changed >= 50, f"the status bar's progress is the same at 30% and 80% ({changed} pixels differ)"
    assert int((np.abs(idle - early).sum(axis=2) > 30).sum()) >= 50  # the progress bar appeared
    start, end = basics["fit"]["samples"][0][0], basics["fit"]["samples"][-1][0]
    # redrawn with the progress (polled every 0.25 s), not only when something else redraws it (every ~2.5 s
    # with a new live preview, before: the status bar is a global area, outside screen.areas)
    draws = [t for t in basics["status_bar_draws"] if start <= t <= end]
    gaps = np.diff([start, *draws, end])
    p95, longest = np.percentile(gaps, 95), gaps.max()
    # at most every REDRAW_SECONDS (0.5), seen by a poll every 0.25 s, drawn in software GL: 1 s for 95%
    check_timing(
        p95 <= 1.0 and longest <= TIMER_GAP_MAX,
        f"status bar redraws: 95% within {p95:.2f} s, longest gap {longest:.2f} s",
        basics["load"],
    )


def test_live_preview_updates(basics):
    previews = need(basics, "fit")["previews"]
    assert len({digest for _, digest in previews}) >= 3, previews


# The GUI fit's rate against the command line's, on the same machine: the worker yields to Blender's own
# drawing (nice 5), which in software OpenGL on 2 cores takes ~0.4-0.5 core (measured: GUI 0.44-0.55 of the
# command line's rate).  The bound guards against a collapse (spinning threads made it 1/30), not the UI's share.
GUI_RATE_MIN = 0.35


def test_gui_fit_keeps_a_fair_share_of_the_command_line_rate(basics):
    gui = need(basics, "fit")["result"]
    gui_rate = gui["iterations"] / gui["seconds"]
    cli_rate = np.mean([c["rate"] for c in basics["cli"]])
    check_timing(
        gui_rate >= GUI_RATE_MIN * cli_rate,
        f"GUI {gui_rate:.1f} it/s, command line {cli_rate:.1f} it/s",
        basics["load"],
        *(c["load"] for c in basics["cli"]),
    )


def test_new_plane_is_selected_active_and_framed(basics):
    plane = need(basics, "plane")
    assert plane["exists"] and plane["selected"] and plane["active"] and plane["others_selected"] == []
    assert plane["inside"], plane
    assert plane["fill"] >= 0.3, plane


def test_node_group_shows_in_the_shader_editor(basics):
    editor = need(basics, "shader_editor")
    assert editor["tree"] is not None and "ImFit astronaut.png" in editor["groups"]
    shot(basics, "shader_editor")


def test_refine_continues_from_the_stored_fit(basics):
    refine, before, after = need(basics, "refine", "refine_before", "refine_after")
    assert refine["ended"] and refine["error"] is None
    running = [s for s in refine["samples"] if s[2]]
    assert {s[2] for s in running} == {basics["params"]["refine_iterations"]} and {s[3] for s in running} == {0}
    # a warm start: from the first progress on, within 2 dB of the stored fit (22.9 dB); a cold start at full
    # size with these settings is at 17 dB after 6 iterations and ends at 19.8 dB after 40
    assert running[0][4] >= before["text_psnr"] - 2.0, (running[0], before["text_psnr"])
    assert after["text_iterations"] == basics["params"]["refine_iterations"]
    assert after["text_wavelets"] == before["text_wavelets"] == 64
    assert after["text_psnr"] >= before["text_psnr"] - 0.05


def test_fit_sequence_keys_a_short_clip(basics):
    sequence, keys = need(basics, "sequence", "sequence_keys")
    frames = basics["params"]["clip_frames"]
    assert sequence["ended"] and sequence["error"] is None and sequence["result"]["frames"] == frames
    assert keys["result_frames"] == frames and keys["frames"] == list(range(1, frames + 1))
    assert keys["curves"] >= 16 * 12  # every wavelet's 12 parameters keyed
