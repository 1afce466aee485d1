#!/usr/bin/env bash
# Build (once) a Debian 13 "trixie" root with the real Blender 4.3.2 (its `blender` package), python3-numpy (Debian's
# Blender runs on the system Python 3.13 and the extension needs numpy), Xvfb and screenshot tools (xwd,
# ImageMagick), for the GUI test tier (tests/ui). Quick when the root is ready.
#
# Usage: setup_root.sh [ROOT]   (default: $IMFIT_UI_ROOT, else /var/tmp/blender-ui-root)
# Exit status: 0 the root is ready; 77 this machine cannot build one (the reason is on stderr: not root, no
# debootstrap, no Debian mirror, mounts not allowed); 1 the build failed (the log's tail is on stderr).
#
# Every mount (/proc, /dev, /sys for apt inside the root) lives in a private mount namespace (unshare -m), so
# nothing stays mounted on the host, whatever happens. A second build started meanwhile waits on a lock.
set -euo pipefail
ROOT=${1:-${IMFIT_UI_ROOT:-/var/tmp/blender-ui-root}}
PACKAGES="blender python3-numpy xvfb xauth x11-apps imagemagick procps"
LOG_DIR=${TMPDIR:-/tmp}  # its logs: imfit-ui-*.log there

cannot() { echo "blender-ui setup: cannot build $ROOT: $*" >&2; exit 77; }
failed() { echo "blender-ui setup: building $ROOT failed: $1" >&2; [ -f "${2:-}" ] && tail -5 "$2" >&2; exit 1; }
# a program of the root (convert is an absolute symlink through /etc/alternatives: it resolves inside the root only)
has() { [ -x "$ROOT/usr/bin/$1" ] || [ -L "$ROOT/usr/bin/$1" ]; }
ready() {
  has blender && has Xvfb && has xwd && has convert && [ -d "$ROOT/usr/lib/python3/dist-packages/numpy" ]
}
# mounts under a folder, on the host: a folder with /dev bound inside must never be deleted
mounted_under() { awk -v p="$1/" 'index($2 "/", p) == 1 {found = 1} END {exit !found}' /proc/mounts; }

if ready; then echo "$ROOT ready"; exit 0; fi
[ "$(id -u)" = 0 ] || cannot "it needs root (debootstrap, chroot, mount); run as root, or set IMFIT_UI_ROOT to a ready root"
for tool in unshare chroot mount flock; do
  command -v "$tool" >/dev/null || cannot "$tool is missing (util-linux)"
done
unshare -m --propagation private true 2>/dev/null || cannot "private mount namespaces are not allowed here (unshare -m)"

mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
flock 9  # another build of this root: wait for it, then it is probably ready
if ready; then echo "$ROOT ready"; exit 0; fi

# the Debian mirror this machine already uses (no host is written down here)
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$MIRROR" ] || cannot "no Debian mirror in /etc/apt (this is not a Debian machine)"
if ! command -v debootstrap >/dev/null; then
  command -v apt-get >/dev/null || cannot "debootstrap is missing and there is no apt-get to install it"
  echo "blender-ui setup: installing debootstrap" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; } \
    >"$LOG_DIR/imfit-ui-debootstrap-install.log" 2>&1 \
    || failed "apt-get install debootstrap" "$LOG_DIR/imfit-ui-debootstrap-install.log"
fi

START=$SECONDS
if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
  # debootstrap into a side folder and rename it when complete: an interrupted build never looks like a root
  PARTIAL="$ROOT.partial"
  mounted_under "$PARTIAL" && failed "$PARTIAL has mounts inside; unmount them, then remove it"
  mounted_under "$ROOT" && failed "$ROOT has mounts inside but no Debian base; unmount them, then remove it"
  rm -rf "$PARTIAL"
  [ -e "$ROOT" ] && { rmdir "$ROOT" 2>/dev/null || failed "$ROOT exists and is not a Debian root; remove it"; }
  echo "blender-ui setup: debootstrap trixie into $ROOT (about a minute)" >&2
  debootstrap --variant=minbase trixie "$PARTIAL" "$MIRROR" >"$LOG_DIR/imfit-ui-debootstrap.log" 2>&1 \
    || failed "debootstrap trixie $MIRROR" "$LOG_DIR/imfit-ui-debootstrap.log"
  mv "$PARTIAL" "$ROOT"
fi

echo "blender-ui setup: apt-get install $PACKAGES (about a minute)" >&2
cp /etc/resolv.conf "$ROOT/etc/" 2>/dev/null || true
# the mounts apt needs exist only in this private namespace and vanish with it
unshare -m --propagation private bash -c '
  set -e
  ROOT=$1; PACKAGES=$2
  mount -t proc proc "$ROOT/proc"
  mount --bind /dev "$ROOT/dev"
  mount --bind /sys "$ROOT/sys"
  # dpkg --configure -a: finish an install an earlier run was interrupted in
  chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DEBIAN_FRONTEND=noninteractive bash -c "
    dpkg --configure -a &&
    apt-get -o DPkg::Lock::Timeout=600 update -qq &&
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $PACKAGES &&
    apt-get clean"
' setup "$ROOT" "$PACKAGES" >"$LOG_DIR/imfit-ui-apt.log" 2>&1 || failed "apt-get install in $ROOT" "$LOG_DIR/imfit-ui-apt.log"
ready || failed "the packages are installed but blender, Xvfb, numpy, xwd or convert is missing" "$LOG_DIR/imfit-ui-apt.log"
echo "$ROOT ready in $((SECONDS - START)) s: $(chroot "$ROOT" blender --version 2>/dev/null | head -1)"
