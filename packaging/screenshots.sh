#!/usr/bin/env bash
# Regenerates the screenshots of the README and docs/gui.md with the app's own --screenshot option (headless, Qt offscreen):
#   bash packaging/screenshots.sh [OUT_DIR]      (default docs/screenshots; a few minutes on a CPU)
# Each shot opens a sample photo, runs one method to the end and saves the whole window.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/docs/screenshots}"
exe="${EXPLORER:-$root/.venv/bin/explorer}"
mkdir -p "$out"
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}" EXPLORER_OFFLINE=1
shot() {  # NAME IMAGE METHOD [--param k=v ...]
    local name="$1" image="$2" method="$3"; shift 3
    echo "screenshot $name: $method on $image $*" >&2
    "$exe" --image "$root/resources/samples/$image" --method "$method" "$@" --device cpu --screenshot "$out/$name.png"
}
shot undesirable chelsea.png undesirable --param n=1000
shot rise coffee.png rise --param n=1000
shot gradcam rocket.jpg gradcam
echo "screenshot first_start: the window as it opens (no --method)" >&2
"$exe" --device cpu --screenshot "$out/first_start.png"
ls -l "$out"
