"""Import boundaries from docs/architecture.md §1, checked for real."""

import ast
import os
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "explorer"


def _imports(folder: str) -> list[tuple[str, str]]:
    out = []
    for f in (PKG / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                out += [(str(f), a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                out.append((str(f), node.module))
    return out


def test_gui_never_imports_torch():
    bad = [(f, m) for f, m in _imports("gui") if m.split(".")[0] in ("torch", "torchvision", "timm")]
    assert not bad, bad


def test_compute_never_imports_qt():
    for folder in ("core", "models", "perturb", "methods", "evaluation", "session", "io"):
        if (PKG / folder).exists():
            bad = [(f, m) for f, m in _imports(folder) if m.split(".")[0] in ("PySide6", "pyqtgraph", "shiboken6")]
            assert not bad, bad


def test_core_is_torch_free():
    bad = [(f, m) for f, m in _imports("core") if m.split(".")[0] in ("torch", "torchvision", "timm")]
    assert not bad, bad


def test_non_gui_packages_import_with_qt_blocked():
    code = (
        "import sys\n"
        "for n in ('PySide6', 'pyqtgraph', 'shiboken6'): sys.modules[n] = None\n"
        "import explorer.core, explorer.models, explorer.methods, explorer.io.images, explorer.io.export, "
        "explorer.cli\n"
        "import importlib, pkgutil, explorer\n"
        "for sub in ('evaluation', 'session'):\n"
        "    try: importlib.import_module('explorer.' + sub)\n"
        "    except ModuleNotFoundError as e:\n"
        "        if e.name != 'explorer.' + sub: raise\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_evaluation_and_the_toolkit_import_no_method_module():
    """Metrics reach methods only through the registry (get_method, run, method_names) and Context/prepare;
    the shared machinery they score with lives in explorer.perturb, which knows no method at all."""
    allowed = {"explorer.methods", "explorer.methods.base"}
    bad = [(f, m) for f, m in _imports("evaluation") if m.startswith("explorer.methods") and m not in allowed]
    assert not bad, bad
    bad = [(f, m) for f, m in _imports("perturb") if m.startswith("explorer.methods")]
    assert not bad, bad


def test_compare_grid_loads_no_torch():
    """The GUI's one compute import, explorer.evaluation.agreement, stays numpy-only."""
    code = "import sys, explorer.gui.compare\nprint('torch' in sys.modules)\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr


def test_compute_never_imports_the_command_line():
    """The command line sits on top: evaluation and training take plain configs, never explorer.cli or argparse
    (core/argtypes.py, the option types the parsers share, is the one user of argparse below the CLI)."""
    for folder in ("core", "models", "methods", "evaluation", "session", "io"):
        bad = [(f, m) for f, m in _imports(folder) if m.split(".")[:2] == ["explorer", "cli"]
               or (m == "argparse" and not f.endswith("argtypes.py"))]
        assert not bad, bad


def test_library_code_never_prints():
    """Below the front ends (cli, gui, api) nothing prints: a library returns what happened (a result, a
    message) and its caller decides where it goes; ``explorer evaluate``'s "summary deferred" used to be
    printed by the runner itself (issue 32)."""
    bad = []
    for folder in ("core", "session", "io", "models", "perturb", "methods", "evaluation", "workers"):
        for f in (PKG / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                    bad.append(f"{f.relative_to(PKG.parent)}:{node.lineno}")
    assert not bad, bad


def test_no_test_hooks_in_the_product():
    """Test code stays in tests/: no environment switch that makes the product misbehave for a test
    (``EXPLORER_TEST_RAY_CRASH`` used to make a Ray worker kill itself; the test now injects the crash)."""
    bad = [str(f.relative_to(PKG.parent)) for f in PKG.rglob("*.py") if "EXPLORER_TEST" in f.read_text()]
    assert not bad, bad
