#!/bin/sh
# Software OpenGL for tests/test_shaders.py: Mesa's llvmpipe through EGL (headless, no X server).
# Idempotent, quick when everything is there; installs with apt-get when run as root on
# Debian/Ubuntu, otherwise prints what to install (the GLSL tests then skip, saying why).
set -eu

DEBIAN_PACKAGES="libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1"

missing_debian_packages() {
    for package in $DEBIAN_PACKAGES; do
        dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q "ok installed" || printf '%s ' "$package"
    done
}

if command -v dpkg-query >/dev/null 2>&1; then
    missing=$(missing_debian_packages)
    [ -z "$missing" ] && exit 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup_gl: installing $missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086 # word splitting intended
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
        exit 0
    fi
    echo "setup_gl: software OpenGL is missing; as root run: apt-get install $missing" >&2
    exit 0
fi

# not Debian: look for Mesa's EGL vendor library
if ldconfig -p 2>/dev/null | grep -q 'libEGL_mesa\.so'; then
    exit 0
fi
echo "setup_gl: install Mesa's EGL and software rasteriser (llvmpipe)," \
     "e.g. Fedora: mesa-libEGL mesa-dri-drivers; Arch: mesa libglvnd" >&2
exit 0
