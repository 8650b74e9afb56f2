"""Locating the files shipped in resources/ (samples, labels, icons, checkpoints).

In a source checkout they sit at the repository root; in an installed wheel they are packaged as
``explorer/_resources``. A missing file means a broken install: the error names it.
"""

from __future__ import annotations

from pathlib import Path

from explorer.core.errors import ExplorerError

_HERE = Path(__file__).resolve().parent
_CANDIDATES = (_HERE / "_resources", _HERE.parent / "resources")

SAMPLES = ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png")
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
# What the app cannot start without (checked before the window opens, so a broken install is named
# in one line instead of failing half-way through start-up).
REQUIRED = (("labels", "imagenet1k.txt"), ("icons", "explorer.svg")) + tuple(("samples", s) for s in SAMPLES)


def root() -> Path:
    for c in _CANDIDATES:
        if c.is_dir():
            return c
    raise ExplorerError(
        "explorer's resources folder is missing (looked in "
        + ", ".join(str(c) for c in _CANDIDATES) + "): the installation is broken; reinstall explorer")


def path(*parts: str) -> Path:
    """The path of a shipped resource; raises ExplorerError naming it when it is missing."""
    p = root().joinpath(*parts)
    if not p.exists():
        raise ExplorerError(f"missing resource file {p}: the installation is broken; reinstall explorer")
    return p


def sample(name: str = "chelsea.png") -> Path:
    return path("samples", name)


def icon(size: int | None = None) -> Path:
    """The application icon: the SVG, or the PNG rendered at ``size`` pixels (one of ICON_SIZES)."""
    if size is None:
        return path("icons", "explorer.svg")
    if size not in ICON_SIZES:
        raise ValueError(f"no {size}px icon; sizes: {ICON_SIZES}")
    return path("icons", f"explorer-{size}.png")


def check(required=REQUIRED) -> Path:
    """Raise ExplorerError naming the first missing required file; returns the resources root."""
    for parts in required:
        path(*parts)
    return root()
