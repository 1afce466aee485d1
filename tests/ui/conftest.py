"""The GUI tier (marker ``ui``): real Blender 4.3.2 windows in a Debian 13 root (tools/blender_ui), driven from
timers; each session's results.json and screenshots are in out/ui/<session>/.  Skipped, with the reason, where
the machine cannot build or run the root (not root, no debootstrap, IMFIT_UI=0)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ui_session


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.ui)


@pytest.fixture(scope="session")
def ui_root():
    try:
        return ui_session.ensure_root()
    except ui_session.Unavailable as e:
        pytest.skip(f"GUI tier: {e}")


@pytest.fixture(scope="session")
def extension_zip(ui_root):
    try:
        ui_session.python_tree(ui_session.engine_python())
    except ui_session.Unavailable as e:
        pytest.skip(f"GUI tier: {e}")
    return ui_session.build_zip()
