"""Print the README's method table from the registry (the same data as `explorer methods --json`).

    .venv/bin/python packaging/readme_methods.py > /tmp/methods.md   # then paste into README.md

One row per method: its --method name, title, family, the layers it produces, one line of what it
computes, and its paper.
"""

from __future__ import annotations

import sys


def rows() -> list[dict]:
    from explorer.methods import METHODS, method_names

    return [METHODS.get(n).describe() for n in method_names()]


def table(methods: list[dict]) -> str:
    def cell(s: str) -> str:
        return " ".join(str(s).split()).replace("|", "\\|")

    out = ["| `--method` | what | family | layers | computes | paper |", "|---|---|---|---|---|---|"]
    for d in methods:
        layers = ", ".join(o["name"] + ("±" if o["signed"] else "") for o in d["outputs"])
        out.append(f"| `{d['name']}` | {cell(d['title'])} | {cell(d['family'])} | {layers} | "
                   f"{cell(d['summary'])} | {cell(d['paper'])} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(table(rows()))
