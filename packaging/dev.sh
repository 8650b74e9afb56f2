#!/usr/bin/env bash
# Developer entry point: creates .venv on first use (or when pyproject.toml changes), then
#   bash packaging/dev.sh            -> opens the GUI on the default model and a sample photo
#   bash packaging/dev.sh test [...] -> runs the whole test suite (extra args go to pytest)
#   bash packaging/dev.sh run CMD... -> runs CMD inside the environment (e.g. explorer explain ...)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${EXPLORER_VENV:-$root/.venv}"
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null 2>&1 || py=python3

stamp="$venv/.explorer-installed"
want="$(cat pyproject.toml packaging/dev.sh | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "explorer: setting up $venv (first run takes a few minutes) ..." >&2
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    # torch first, pinned to the releases this machine serves (a newer torch is not required)
    "$venv/bin/python" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
    "$venv/bin/python" -m pip install -q -e ".[test]"
    # one cv2 provider only: opencv-contrib-python-headless (the headless build plus contrib's xphoto, for
    # infill=exemplar). quantus (test-only) pulls in opencv-python, whose cv2 overwrites the same files and
    # points Qt at its own plugins; an older environment may still hold opencv-python-headless
    others=""
    for pkg in opencv-python opencv-python-headless opencv-contrib-python; do
        if "$venv/bin/python" -m pip show -q "$pkg" >/dev/null 2>&1; then others="$others $pkg"; fi
    done
    if [ -n "$others" ]; then
        "$venv/bin/python" -m pip uninstall -q -y $others
        "$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$("$venv/bin/python" -m pip show opencv-contrib-python-headless | sed -n 's/^Version: /opencv-contrib-python-headless==/p')"
    fi
    echo "$want" > "$stamp"
fi

cmd="${1:-gui}"
[ $# -gt 0 ] && shift
case "$cmd" in
    gui)  exec "$venv/bin/explorer" "$@" ;;
    test) export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}" EXPLORER_OFFLINE=1
          exec "$venv/bin/python" -m pytest "$@" ;;
    run)  exec "$venv/bin/$1" "${@:2}" ;;
    *)    echo "usage: bash packaging/dev.sh [gui|test|run CMD ...]" >&2; exit 2 ;;
esac
