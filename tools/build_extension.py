"""Validate the extension with Blender's own tool and build its installable zip (``make extension``).

Blender's ``blender_ext.py`` ships inside the ``bpy`` package; this finds it without importing
bpy (which takes seconds) and runs ``validate`` then ``build``.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOOL_GLOB = "*/scripts/addons_core/bl_pkg/cli/blender_ext.py"


def blender_ext_tool() -> Path:
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("build_extension: bpy is not installed in this Python; run `make venv` first")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob(TOOL_GLOB))
        if found:
            return found[-1]
    sys.exit(f"build_extension: no {TOOL_GLOB} inside the bpy package")


def run_tool(*args: str) -> None:
    done = subprocess.run([sys.executable, str(blender_ext_tool()), *args])
    if done.returncode != 0:
        sys.exit(done.returncode)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source-dir", default=str(REPO))
    parser.add_argument("--output-dir", default=str(REPO / "dist"))
    a = parser.parse_args(argv)
    Path(a.output_dir).mkdir(parents=True, exist_ok=True)
    run_tool("validate", a.source_dir)
    run_tool("build", "--source-dir", a.source_dir, "--output-dir", a.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
