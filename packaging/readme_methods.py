"""The method tables of the README (short) and of docs/methods.md (full), generated from the registry (the
same data as `explorer methods --json`):

    .venv/bin/python packaging/readme_methods.py            # print the full table
    .venv/bin/python packaging/readme_methods.py --short    # print the README's short table
    .venv/bin/python packaging/readme_methods.py --write    # rewrite both between their methods markers

A full row: the --method name, title, family, the maps it produces (± for signed ones), one line of what it
computes, and its paper. A short row leaves out the last two; tests/test_docs_methods.py checks that both
pages hold what this prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARK_START, MARK_END = "<!-- methods:start -->", "<!-- methods:end -->"
PAGES = {"short": ROOT / "README.md", "full": ROOT / "docs" / "methods.md"}


def rows() -> list[dict]:
    from explorer.methods import METHODS, method_names

    return [METHODS.get(n).describe() for n in method_names()]


def table(methods: list[dict], short: bool = False) -> str:
    def cell(s: str) -> str:
        return " ".join(str(s).split()).replace("|", "\\|")

    head = ["`--method`", "what", "family", "maps"] + ([] if short else ["computes", "paper"])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in methods:
        maps = ", ".join(o["name"] + ("±" if o["signed"] else "") for o in d["outputs"])
        row = [f"`{d['name']}`", cell(d["title"]), cell(d["family"]), maps]
        if not short:
            row += [cell(d["summary"]), cell(d["paper"])]
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out) + "\n"


def between_markers(text: str) -> str:
    """What a page holds between its methods markers (refused when it has none)."""
    if MARK_START not in text or MARK_END not in text:
        raise ValueError(f"no {MARK_START} ... {MARK_END} section")
    return text.split(MARK_START, 1)[1].split(MARK_END, 1)[0].strip("\n") + "\n"


def write(page: Path, generated: str) -> None:
    text = page.read_text(encoding="utf-8")
    try:
        between_markers(text)
    except ValueError as exc:
        raise SystemExit(f"{page.relative_to(ROOT)}: {exc} to rewrite") from None
    head, rest = text.split(MARK_START, 1)
    tail = rest.split(MARK_END, 1)[1]
    page.write_text(f"{head}{MARK_START}\n{generated}{MARK_END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", action="store_true", help="print the README's short table")
    ap.add_argument("--write", action="store_true", help="rewrite the tables of README.md and docs/methods.md")
    a = ap.parse_args()
    if a.write:
        described = rows()
        for kind, page in PAGES.items():
            write(page, table(described, short=kind == "short"))
            print(f"rewrote the method table of {page.relative_to(ROOT)}")
    else:
        sys.stdout.write(table(rows(), short=a.short))
