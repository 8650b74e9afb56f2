"""``explorer.list_methods()``: what the registry holds, as ``explorer methods --json`` prints it."""

from __future__ import annotations

from typing import Any


def list_methods() -> list[dict[str, Any]]:
    """Every registered method with its parameters (what ``explorer methods --json`` prints)."""
    from explorer.methods import METHODS, method_names

    return [METHODS.get(n).describe() for n in method_names()]
