#!/usr/bin/env bash
# Builds the sdist and wheel (python -m build: the wheel is built from the sdist, so both are checked),
# installs the wheel WITHOUT its dependencies into a throwaway folder that shadows the checkout, and runs
# the installed `explorer` command from another directory with no network: the default model, its labels
# and the sample photo must all come from the wheel's explorer/_resources.
#   bash packaging/check_wheel.sh            (1-2 min on 2 busy cores; not part of the pytest suite)
# Needs `build` in the environment (a dev tool: .venv/bin/python -m pip install build).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
work="$(mktemp -d /tmp/explorer-wheel.XXXXXX)"
trap 'rm -rf "$work"' EXIT

echo "== building sdist and wheel into $work/dist"
"$py" -m build --outdir "$work/dist" "$root" > "$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
whl="$(ls "$work"/dist/explorer-*.whl)"; sdist="$(ls "$work"/dist/explorer-*.tar.gz)"
ls -l "$whl" "$sdist"

echo "== contents"
wl="$(unzip -l "$whl")"; sl="$(tar tzf "$sdist")"   # listed once (grep -q on a live pipe trips pipefail)
for f in explorer/_resources/labels/imagenet1k.txt explorer/_resources/samples/chelsea.png \
         explorer/_resources/samples/LICENSE.md explorer/_resources/icons/explorer.svg \
         explorer/cli/__init__.py; do
    grep -q " $f\$" <<<"$wl" || { echo "FAIL: $f is not in the wheel"; exit 1; }
done
unzip -p "$whl" '*.dist-info/entry_points.txt' | grep -q '^explorer = explorer.cli:run' \
    || { echo "FAIL: the wheel does not install the explorer command"; exit 1; }
for f in resources/samples/chelsea.png resources/labels/imagenet1k.txt setup.py MANIFEST.in; do
    grep -q "^explorer-[^/]*/$f\$" <<<"$sl" || { echo "FAIL: $f is not in the sdist"; exit 1; }
done
if [ -d "$root/resources/checkpoints" ]; then
    grep -q "explorer/_resources/checkpoints/" <<<"$wl" || { echo "FAIL: resources/checkpoints is not in the wheel"; exit 1; }
fi
echo "wheel: $(grep -c _resources/ <<<"$wl") resource files; sdist: $(grep -c /resources/ <<<"$sl") entries under resources/"

echo "== installing the wheel (no deps; torch etc. come from $py's environment)"
"$py" -m pip install -q --no-deps --target "$work/site" "$whl"
mkdir -p "$work/cwd" && cd "$work/cwd"
# no network: every proxy points at a closed port and the caches are empty, with no --offline flag, so
# any attempt to download would fail the run
export PYTHONPATH="$work/site" TORCH_HOME="$work/no-torch-home" HF_HOME="$work/no-hf-home" \
    http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 \
    HTTPS_PROXY=http://127.0.0.1:9 no_proxy= NO_PROXY=
unset EXPLORER_OFFLINE HF_HUB_OFFLINE
"$py" - <<PY
import explorer, explorer.resources as r
assert explorer.__file__.startswith("$work/site"), explorer.__file__
assert str(r.root()).startswith("$work/site"), r.root()
print("resources resolve to", r.root())
PY
"$work/site/bin/explorer" explain "$root/resources/samples/chelsea.png" --method rise --param n=64 --out "$work/out"
test -s "$work/out/manifest.json" && test -s "$work/out/overlay.png"
"$py" -c "import json,sys; m=json.load(open('$work/out/manifest.json')); print('top-1:', m['top5'][0]['name'])"
if [ -d "$root/resources/checkpoints" ]; then  # the shipped explainer checkpoint loads from the wheel too
    "$work/site/bin/explorer" explain "$root/resources/samples/chelsea.png" --method explainer --out "$work/out-explainer"
    test -s "$work/out-explainer/manifest.json"
fi

echo "== a broken install names the missing file and exits 2"
rm "$work/site/explorer/_resources/labels/imagenet1k.txt"
set +e
msg="$("$work/site/bin/explorer" explain "$root/resources/samples/chelsea.png" --method rise --param n=8 --offline --out "$work/out2" 2>&1)"; rc=$?
set -e
echo "$msg"
[ "$rc" = 2 ] && echo "$msg" | grep -q "imagenet1k.txt" || { echo "FAIL: expected exit 2 naming imagenet1k.txt (rc=$rc)"; exit 1; }
echo "OK: wheel and sdist build, install, and run offline from their own resources"
