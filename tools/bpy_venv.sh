#!/bin/sh
# A cached virtual environment with the project's requirements and one bpy (Blender as a module) version,
# for checks across the support matrix (Blender 4.2 LTS, 4.5 LTS, 5.0):
#
#   sh tools/bpy_venv.sh 4.2.23          # creates .venv-bpy4.2.23 (once), prints its python
#   $(sh tools/bpy_venv.sh 4.2.23) -m pytest -q tests/blender/test_paths.py
#
# BPY_VENV_DIR overrides the folder (default: .venv-bpy<VERSION> in the repository, git-ignored).
# bpy 4.2 - 5.0 wheels are built against numpy 1.x: numpy<2 is pinned with them.
set -eu
VERSION=${1:?usage: tools/bpy_venv.sh BPY_VERSION (e.g. 4.2.23, 4.5.15, 5.0.1)}
PYTHON=${PYTHON:-python3.11}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${BPY_VENV_DIR:-$ROOT/.venv-bpy$VERSION}
STAMP=$DIR/.installed
if [ ! -f "$STAMP" ]; then
  echo "creating $DIR (bpy $VERSION)" >&2
  "$PYTHON" -m venv "$DIR"
  # the dev requirements without their bpy pin, then the asked-for bpy
  grep -v '^bpy==' "$ROOT/requirements-dev.txt" | sed "s#^-r requirements.txt#-r $ROOT/requirements.txt#" > "$DIR/requirements.txt"
  "$DIR/bin/python" -m pip install -q -r "$DIR/requirements.txt" "bpy==$VERSION" "numpy<2" >&2
  "$DIR/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$ROOT" >&2
  "$DIR/bin/python" -c "import bpy; print('bpy', bpy.app.version_string)" >&2
  touch "$STAMP"
fi
echo "$DIR/bin/python"
