"""docs/methods.md and docs/architecture.md cannot drift from the code: every registered method and metric
has its place in the spec, every "docs/methods.md §N" a comment cites exists, the README shows the
architecture picture of docs/architecture.md, the method tables of the README and docs/methods.md are what
packaging/readme_methods.py generates, and nothing cites the out-of-tree drafts any more."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHODS_MD = ROOT / "docs" / "methods.md"
ARCH_MD = ROOT / "docs" / "architecture.md"
CITING = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "explorer").rglob("*.py"),
          *(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]


def _sections(path: Path) -> set[str]:
    """Section numbers of a document's headings: "## 7. Evaluation" -> "7", "### 7.1 ..." -> "7.1"."""
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", path.read_text(encoding="utf-8"), flags=re.M))


def _picture(text: str) -> str:
    """The first fenced block that draws boxes (the layout picture)."""
    blocks, current = [], None
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append("".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return next((b for b in blocks if "┌" in b), "")


def test_every_registered_method_is_specified():
    from explorer.methods import method_names

    text = METHODS_MD.read_text(encoding="utf-8")
    missing = [n for n in method_names() if f"`{n}`" not in text]
    assert not missing, f"docs/methods.md does not describe {missing}"


def test_every_metric_is_specified():
    from explorer.evaluation.registry import metric_names

    text = METHODS_MD.read_text(encoding="utf-8")
    missing = [n for n in metric_names() if f"`{n}`" not in text]
    assert not missing, f"docs/methods.md §7 does not describe {missing}"


def test_every_cited_section_exists():
    sections = {"methods.md": _sections(METHODS_MD), "architecture.md": _sections(ARCH_MD)}
    assert {"1", "3", "5", "7", "7.1", "7.6", "9"} <= sections["methods.md"]
    bad = []
    for f in CITING:
        for doc, num in re.findall(r"(methods\.md|architecture\.md)\)? §(\d+(?:\.\d+)?)",
                                   f.read_text(encoding="utf-8")):
            if num not in sections[doc]:
                bad.append(f"{f.relative_to(ROOT)} cites {doc} §{num}")
    assert not bad, bad


def test_nothing_cites_the_out_of_tree_drafts():
    stale = [str(f.relative_to(ROOT)) for f in CITING
             if re.search(r"(?<![\w/])(METHODS|ARCHITECTURE)\.md", f.read_text(encoding="utf-8"))]
    assert not stale, f"cite docs/methods.md or docs/architecture.md instead: {stale}"


def test_readme_shows_the_architecture_picture_and_every_package_is_named():
    picture = _picture(ARCH_MD.read_text(encoding="utf-8"))
    assert picture and picture == _picture((ROOT / "README.md").read_text(encoding="utf-8"))
    packages = [p.name for p in (ROOT / "explorer").iterdir() if (p / "__init__.py").exists()]
    assert not [p for p in packages if f"{p}/" not in picture], packages


def test_the_method_tables_are_generated_from_the_registry():
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_methods", ROOT / "packaging" / "readme_methods.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    described = gen.rows()
    for kind, page in gen.PAGES.items():
        held = gen.between_markers(page.read_text(encoding="utf-8"))
        assert held == gen.table(described, short=kind == "short"), (
            f"{page.name}'s method table is stale: run python packaging/readme_methods.py --write")
