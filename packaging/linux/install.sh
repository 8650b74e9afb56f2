#!/usr/bin/env bash
# Adds explorer to the desktop's application menu: desktop entry, AppStream metainfo and icons (hicolor).
#   bash packaging/linux/install.sh                 # for this user, under ~/.local/share
#   sudo PREFIX=/usr bash packaging/linux/install.sh  # system-wide
#   bash packaging/linux/install.sh --uninstall
# The `explorer` command itself comes from `pip install` (or the PyInstaller folder: put its
# directory on PATH, or set EXPLORER_EXEC=/path/to/explorer to write that path into the entry).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
share="${PREFIX:+$PREFIX/share}"; share="${share:-${XDG_DATA_HOME:-$HOME/.local/share}}"
icons="$root/resources/icons"
id=io.github.explorer.Explorer

files=("$share/applications/explorer.desktop" "$share/metainfo/$id.metainfo.xml"
       "$share/icons/hicolor/scalable/apps/explorer.svg")
for n in 16 24 32 48 64 128 256 512; do files+=("$share/icons/hicolor/${n}x${n}/apps/explorer.png"); done

if [ "${1:-}" = "--uninstall" ]; then
    rm -f "${files[@]}"
else
    install -Dm644 "$here/explorer.desktop" "$share/applications/explorer.desktop"
    if [ -n "${EXPLORER_EXEC:-}" ]; then
        sed -i "s|^Exec=explorer|Exec=$EXPLORER_EXEC|; s|^TryExec=explorer|TryExec=$EXPLORER_EXEC|" \
            "$share/applications/explorer.desktop"
    fi
    install -Dm644 "$here/$id.metainfo.xml" "$share/metainfo/$id.metainfo.xml"
    install -Dm644 "$icons/explorer.svg" "$share/icons/hicolor/scalable/apps/explorer.svg"
    for n in 16 24 32 48 64 128 256 512; do
        install -Dm644 "$icons/explorer-$n.png" "$share/icons/hicolor/${n}x${n}/apps/explorer.png"
    done
fi
command -v update-desktop-database >/dev/null && update-desktop-database -q "$share/applications" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$share/icons/hicolor" || true
echo "explorer: ${1:+un}installed desktop entry, metainfo and icons under $share"
