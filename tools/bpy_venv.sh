#!/bin/sh
# A cached virtual environment with another Blender as a Python module, for the version matrix
# (make test-matrix): .venv-bpy/<VERSION> with the engine's pinned requirements, pytest and bpy==VERSION.
# Usage: tools/bpy_venv.sh VERSION   (prints the environment's python)
set -eu
VERSION=$1
PYTHON=${PYTHON:-python3.11}
DIR=.venv-bpy/$VERSION
STAMP=$DIR/.installed
if [ ! -f "$STAMP" ] || [ requirements.txt -nt "$STAMP" ]; then
    rm -rf "$DIR"
    "$PYTHON" -m venv "$DIR" >&2
    # the engine's pins (torch's CPU build from the machine's local file where it has one), Blender's own
    # numpy<2, and only the test runner from the development set
    "$DIR/bin/python" -m pip install -q -r requirements.txt "bpy==$VERSION" "$(grep '^pytest==' requirements-dev.txt)" >&2
    "$DIR/bin/python" -m pip install -q --no-deps --no-build-isolation -e . >&2
    touch "$STAMP"
fi
echo "$DIR/bin/python"
