"""The Python API's documentation cannot rot: README's example is executed as written, and so is the notebook."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "notebooks" / "quickstart.ipynb"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API (notebooks and scripts)", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the README's Python API section shows exactly one example"
    return blocks[0]


def test_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    code = readme_example()
    assert len(code.strip().splitlines()) <= 10
    (tmp_path / "resources").symlink_to(ROOT / "resources")  # "run from the repository root", without writing there
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "tabby ['salient', 'signed'] (300, 451)" in out  # the comment in the example tells the truth
    assert (tmp_path / "gradcam_overlay.png").stat().st_size > 0
    manifest = json.loads((tmp_path / "gradcam_out" / "manifest.json").read_text())
    assert manifest["files"] == ["salient.npy", "signed.npy", "overlay.png", "manifest.json"]
    assert manifest["target_name"] == "tabby" and manifest["model"] == "ResNet (in memory)"


def _kernel(tmp_path: Path) -> str:
    """A kernel spec that runs this very interpreter (the venv's), offline and headless."""
    spec = tmp_path / "jupyter" / "kernels" / "explorer-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "explorer test", "language": "python",
        "env": {"EXPLORER_OFFLINE": "1", "QT_QPA_PLATFORM": "offscreen",
                "MPLBACKEND": "module://matplotlib_inline.backend_inline"},  # figures become PNG outputs
    }))
    return str(tmp_path / "jupyter")


@pytest.mark.slow  # a kernel start, the default model, four small runs: ~20 s on 2 idle cores
def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("JUPYTER_PATH", _kernel(tmp_path))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="explorer-test", timeout=600,
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError, naming the cell, when any cell fails
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 3  # the Explanation's own _repr_png_, the matplotlib figure, the PIL overlay
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "100%" in text and "dog" in text
