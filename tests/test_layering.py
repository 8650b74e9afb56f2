"""The declared layering of docs/architecture.md §1, checked on every import in explorer/: at module level and
inside functions (a function-level import is still an import, only a later one), relative imports resolved.

A package may import its own modules and those of the packages below it, never one above; and no module
imports itself back through others (no cycle), whichever packages the cycle crosses. ``tests/
test_boundaries.py`` checks the third-party side (no torch in the GUI, no Qt in compute).
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "explorer"

# Bottom to top: each package may import the ones before it. Why this order:
# - the package root ``explorer`` (``__version__``; its public names are import *strings* resolved on first
#   access, which keeps ``import explorer`` cheap) and ``explorer.resources`` (shipped files) sit with core;
# - session (the Qt-free document) is below io, which reads and writes it (session files, autosave);
# - workers is the one bridge between Qt and torch, gui drives it;
# - api sits above gui because ``explorer.view`` opens the window; cli (and ``python -m explorer``) is the
#   top: one module per command over the API, the window and the runners.
LAYERS = ("core", "session", "io", "models", "perturb", "methods", "evaluation", "workers", "gui", "api", "cli")
ROOT_MODULES = {"explorer": "core", "explorer.resources": "core", "explorer.__main__": "cli"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}


def layer(module: str) -> str:
    if module in ROOT_MODULES:
        return ROOT_MODULES[module]
    return module.split(".")[1]


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``, which never run."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def _target(name: str) -> str | None:
    """The module of ours an import of ``name`` executes: the deepest existing module it names."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, source: str | None = None) -> set[tuple[str, int]]:
    """(module of ours, line) for every import ``module`` makes, anywhere in it."""
    path = MODULES[module]
    tree = ast.parse(source if source is not None else path.read_text(), str(path))
    skip = _type_checking_only(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x, from ..core import y
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # ``from pkg import name``: the submodule pkg.name when there is one, else pkg itself
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for n in names:
            if n == "explorer" or n.startswith("explorer."):
                t = _target(n)
                if t is not None and t != module:
                    out.add((t, node.lineno))
    return out


# Packages that import every module found in them by name, at import time (``explorer.methods`` registers
# its methods so): edges the AST cannot see, added here. ``test_registering_packages_still_do`` keeps the
# list true.
IMPORTS_EVERY_MODULE = ("explorer.methods", "explorer.evaluation.specs")


def graph() -> dict[str, set[tuple[str, int]]]:
    g = {m: imports_of(m) for m in MODULES}
    for pkg in IMPORTS_EVERY_MODULE:
        children = {m for m in MODULES if m.rpartition(".")[0] == pkg and not m.rpartition(".")[2].startswith("_")}
        g[pkg] |= {(m, 0) for m in children}
    return g


def layer_violations(g: dict[str, set[tuple[str, int]]]) -> list[str]:
    """"file:line imports X (lower < higher)" for every import of a higher package."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    return [f"{MODULES[m].relative_to(PKG.parent)}:{line} imports {t} ({layer(m)} < {layer(t)})"
            for m, edges in sorted(g.items()) for t, line in sorted(edges) if rank[layer(t)] > rank[layer(m)]]


def cycles(g: dict[str, set[tuple[str, int]]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a sorted list."""
    adj = {m: sorted({t for t, _ in edges}) for m, edges in g.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # recursion depth is bounded by the module count (~200)
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in adj[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(adj):
        if v not in index:
            visit(v)
    return found


def test_every_package_has_a_layer():
    assert {layer(m) for m in MODULES} <= set(LAYERS), {m for m in MODULES if layer(m) not in LAYERS}


def test_no_package_imports_one_above_it():
    bad = layer_violations(graph())
    assert not bad, "\n".join(bad)


def test_no_import_cycle_between_modules():
    found = cycles(graph())
    assert not found, "\n".join(" <-> ".join(c) for c in found)


def test_registering_packages_still_do():
    for pkg in IMPORTS_EVERY_MODULE:
        assert "importlib.import_module" in MODULES[pkg].read_text(), f"{pkg} no longer imports its modules by name"


def test_the_checks_see_function_level_and_relative_imports():
    """The reader itself: an import inside a function, a relative one and a TYPE_CHECKING one, on a known
    module, and a planted back-import caught by both checks."""
    src = ("from typing import TYPE_CHECKING\n"
           "from . import errors\n"
           "if TYPE_CHECKING:\n    from explorer.gui import app\n"
           "def f():\n    from ..methods import base\n    import explorer.models.loader\n")
    got = {t for t, _ in imports_of("explorer.core.params", src)}
    assert got == {"explorer.core.errors", "explorer.methods.base", "explorer.models.loader"}, got
    g = graph()
    g["explorer.core.params"] = g["explorer.core.params"] | imports_of("explorer.core.params", src)
    assert any("explorer.methods.base (core < methods)" in v for v in layer_violations(g))
    g["explorer.core.errors"] = g["explorer.core.errors"] | {("explorer.core.params", 1)}
    assert any({"explorer.core.errors", "explorer.core.params"} <= set(c) for c in cycles(g))
