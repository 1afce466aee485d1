#!/usr/bin/env bash
# Run one real Blender GUI session (Blender 4.3.2 of setup_root.sh's root, software OpenGL, a 1600x900 virtual
# screen) with a driver script, then turn its xwd screenshots into PNGs.
#
# Usage: run_session.sh ROOT SCRIPT.py OUT_DIR [DIR_TO_BIND ...]
#   SCRIPT.py runs at start-up (--python); it drives the UI from bpy.app.timers and ends with
#   bpy.ops.wm.quit_blender(). OUT_DIR gets blender.log, and every OUT_DIR/*.xwd becomes a PNG at the end.
#   The script's folder, OUT_DIR and each DIR_TO_BIND (the repository, the real folder of the engine's Python:
#   `readlink -f .venv/bin/python` lives outside the repository) are bound at the same paths inside the root.
# Environment: BLENDER_ARGS (e.g. --enable-event-simulate), UI_TIMEOUT (seconds, default 600; then Blender is
#   killed), and every UI_* variable reaches the script. Blender's user folders are fresh ones in OUT_DIR/user.
# Exit status: Blender's (3 when the script raised at start-up, 124 when it ran past UI_TIMEOUT); 77 when ROOT
# is not ready or not root.
#
# All mounts live in a private mount namespace (unshare -m): they are gone when the session ends, however it
# ends, and never disturb other sessions using the same root.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: run_session.sh ROOT SCRIPT.py OUT_DIR [DIR_TO_BIND ...]" >&2; exit 2; }
ROOT=$(readlink -f "$1"); SCRIPT=$(readlink -f "$2"); OUT=$3; shift 3
[ -f "$SCRIPT" ] || { echo "run_session: no script $2" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run_session: needs root (chroot, mount)" >&2; exit 77; }
[ -x "$ROOT/usr/bin/blender" ] && [ -x "$ROOT/usr/bin/Xvfb" ] || { echo "run_session: $ROOT is not ready: run setup_root.sh" >&2; exit 77; }
mkdir -p "$OUT"; OUT=$(readlink -f "$OUT")
BINDS=("$(dirname "$SCRIPT")" "$OUT")
for d in "$@"; do [ -e "$d" ] && BINDS+=("$(readlink -f "$d")"); done
# parents before the folders inside them, each once: a later bind must not hide an earlier one
mapfile -t BINDS < <(printf '%s\n' "${BINDS[@]}" | awk '!seen[$0]++ {print length($0) "\t" $0}' | sort -n | cut -f2-)
UIVARS=()
while IFS= read -r line; do UIVARS+=("$line"); done < <(env | grep '^UI_' || true)

export ROOT SCRIPT OUT
export BLENDER_ARGS=${BLENDER_ARGS:-} UI_TIMEOUT=${UI_TIMEOUT:-600}
exec unshare -m --propagation private bash -c '
set -uo pipefail
ROOT=$1; shift
BINDS=(); while [ "$1" != -- ]; do BINDS+=("$1"); shift; done; shift
UIVARS=("$@")
MOUNTED=()
cleanup() {
  [ -n "${XVFB:-}" ] && kill "$XVFB" 2>/dev/null
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTED[$i]}" 2>/dev/null; done
}
trap cleanup EXIT
bind() {  # bind $1 at $2 (made if missing), remembered for cleanup
  mkdir -p "$2" && mount --bind "$1" "$2" && MOUNTED+=("$2")
}
mount -t proc proc "$ROOT/proc" && MOUNTED+=("$ROOT/proc")
bind /dev "$ROOT/dev"; bind /sys "$ROOT/sys"
for d in "${BINDS[@]}"; do bind "$d" "$ROOT$d"; done

# fresh user folders per session; the preferences turn the splash and the save prompt off
USERDIR=$OUT/user; rm -rf "$USERDIR"; mkdir -p "$USERDIR/config" "$USERDIR/resources"
INROOT="chroot $ROOT env -i PATH=/usr/bin:/bin HOME=/root BLENDER_USER_CONFIG=$USERDIR/config BLENDER_USER_RESOURCES=$USERDIR/resources"
$INROOT blender -b --factory-startup -noaudio --python-expr "import bpy
p = bpy.context.preferences
p.view.show_splash = False
p.view.use_save_prompt = False
p.use_preferences_save = False
bpy.ops.wm.save_userpref()" >"$OUT/userpref.log" 2>&1 || { echo "run_session: cannot write the preferences (see $OUT/userpref.log)" >&2; exit 1; }

# Xvfb picks a free display itself (-displayfd): sessions never collide
DISPFILE=$OUT/.display; rm -f "$DISPFILE"
$INROOT Xvfb -displayfd 1 -screen 0 1600x900x24 -nolisten tcp >"$DISPFILE" 2>"$OUT/xvfb.log" &
XVFB=$!
for _ in $(seq 100); do [ -s "$DISPFILE" ] && break; sleep 0.1; done
DISP=$(head -1 "$DISPFILE" 2>/dev/null | tr -dc 0-9)
[ -n "$DISP" ] || { echo "run_session: Xvfb did not start (see $OUT/xvfb.log)" >&2; exit 1; }

$INROOT DISPLAY=:$DISP "${UIVARS[@]}" timeout --kill-after=10 "$UI_TIMEOUT" \
  blender -noaudio -p 0 0 1600 900 $BLENDER_ARGS --python-exit-code 3 --python "$SCRIPT" >"$OUT/blender.log" 2>&1
RC=$?
kill "$XVFB" 2>/dev/null; wait "$XVFB" 2>/dev/null; XVFB=
# screenshots: xwd is quick to take (the driver never waits on it); PNGs are made here
for f in "$OUT"/*.xwd; do
  [ -e "$f" ] || continue
  $INROOT convert "xwd:$f" "${f%.xwd}.png" 2>>"$OUT/convert.log" && rm -f "$f"
done
exit $RC
' session "$ROOT" "${BINDS[@]}" -- "${UIVARS[@]}"
