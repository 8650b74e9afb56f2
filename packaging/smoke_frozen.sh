#!/usr/bin/env bash
# Smoke test of the frozen app (after bash packaging/freeze.sh):  bash packaging/smoke_frozen.sh [APP_DIR]
# Runs the one-folder app from another directory, offline, headless (Qt offscreen), with a bare
# environment (no PYTHONPATH, no venv): starts the GUI with --screenshot and checks the PNG, then runs
# the command line (methods, explain) and checks its outputs. Exit 0 = all good.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
app="${1:-$root/packaging/dist/explorer}"
exe="$app/explorer"
[ -x "$exe" ] || { echo "smoke: $exe not found; run bash packaging/freeze.sh first" >&2; exit 1; }
work="$(mktemp -d /tmp/explorer-smoke.XXXXXX)"
trap 'rm -rf "$work"' EXIT
cd "$work"
run() {  # a clean environment: nothing from the build venv or the checkout can leak in
    env -i PATH=/usr/bin:/bin HOME="$work/home" LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen EXPLORER_OFFLINE=1 \
        HF_HUB_OFFLINE=1 TORCH_HOME="$work/torch-home" "$exe" "$@"
}
png_info() {  # width height bytes of a PNG (stdlib only), or fail
    /usr/bin/env python3 - "$1" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h = struct.unpack(">II", b[16:24])
print(w, h, len(b))
PY
}

t0=$(date +%s.%N)
rc=0
run --image "$root/resources/samples/chelsea.png" --method rise --param n=64 --screenshot "$work/shot.png" || rc=$?
[ "$rc" = 0 ] || { echo "smoke: FAIL: the GUI run exited with $rc (1: the model or the run failed)" >&2; exit 1; }
t1=$(date +%s.%N)
read -r w h size < <(png_info "$work/shot.png")
echo "smoke: screenshot ${w}x${h}, ${size} bytes, $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s from start to exit"
[ "$w" -ge 300 ] && [ "$h" -ge 200 ] && [ "$size" -ge 20000 ] \
    || { echo "smoke: FAIL: the screenshot is too small or blank" >&2; exit 1; }
cp "$work/shot.png" "$app/../smoke_screenshot.png" 2>/dev/null && echo "smoke: kept it as $(cd "$app/.." && pwd)/smoke_screenshot.png"

run methods > "$work/methods.txt"
echo "smoke: $(grep -c '^[a-z]' "$work/methods.txt") methods listed"
grep -q '^rise ' "$work/methods.txt" || { echo "smoke: FAIL: rise is not listed" >&2; exit 1; }

run explain "$root/resources/samples/chelsea.png" --method rise --param n=64 --out "$work/out"
test -s "$work/out/manifest.json" && test -s "$work/out/overlay.png" && test -s "$work/out/salient.npy" \
    || { echo "smoke: FAIL: explain did not write its files" >&2; exit 1; }
grep -q '"Egyptian cat"\|"tabby' "$work/out/manifest.json" \
    || { echo "smoke: FAIL: the default model does not see a cat in chelsea.png" >&2; exit 1; }

set +e
msg="$(run explain "$work/nope.png" --method rise --out "$work/out2" 2>&1)"; rc=$?
set -e
[ "$rc" = 2 ] || { echo "smoke: FAIL: a missing image should exit 2, got $rc: $msg" >&2; exit 1; }
echo "smoke: OK ($app, $(du -sh "$app" | cut -f1))"
