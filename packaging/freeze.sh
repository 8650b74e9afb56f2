#!/usr/bin/env bash
# Builds the CPU-only one-folder app with PyInstaller:  bash packaging/freeze.sh
#   -> packaging/dist/explorer/explorer   (then: bash packaging/smoke_frozen.sh)
# It uses its own build venv (packaging/build/freeze-venv) because the app must bundle a CPU build of
# torch, while .venv holds PyPI's CUDA build. Set TORCH_SPEC/TORCHVISION_SPEC to choose the CPU wheels
# (e.g. TORCH_SPEC=torch==2.13.0+cpu with PIP_EXTRA="--index-url https://download.pytorch.org/whl/cpu"
# on a machine that can reach the PyTorch index); PyInstaller and build are dev tools, not runtime deps.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null 2>&1 || py=python3
venv="${FREEZE_VENV:-$root/packaging/build/freeze-venv}"
torch_spec="${TORCH_SPEC:-torch==2.13.0+cpu}"
tv_spec="${TORCHVISION_SPEC:-torchvision==0.28.0}"
t0=$(date +%s)
if [ ! -x "$venv/bin/pyinstaller" ]; then
    echo "freeze: creating $venv with $torch_spec" >&2
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    # shellcheck disable=SC2086
    "$venv/bin/python" -m pip install -q ${PIP_EXTRA:-} "$torch_spec" "$tv_spec"
    "$venv/bin/python" -m pip install -q pyinstaller
fi
"$venv/bin/python" -m pip install -q .   # a regular (non-editable) install: pulls the runtime deps
"$venv/bin/python" -c "import torch; assert torch.version.cuda is None, 'not a CPU torch: ' + torch.__version__; print('torch', torch.__version__)"
t1=$(date +%s)
"$venv/bin/pyinstaller" --noconfirm --log-level WARN \
    --distpath "$root/packaging/dist" --workpath "$root/packaging/build/pyinstaller" "$root/packaging/explorer.spec"
t2=$(date +%s)
app="$root/packaging/dist/explorer"
echo "freeze: built $app/explorer: $(du -sh "$app" | cut -f1), $(find "$app" -type f | wc -l) files;" \
     "venv $((t1 - t0)) s, pyinstaller $((t2 - t1)) s"
