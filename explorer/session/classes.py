"""Class names as the pickers take them: an index, ``"12: name"`` as the list shows it, or a name. Qt-free."""

from __future__ import annotations

from explorer.core.errors import UnknownNameError


def item_text(index: int, name: str) -> str:
    """How a class appears in every class picker and in the predictions panel's list."""
    return f"{index}: {name}"


def find_class(labels: list[str], text) -> int | None:
    """The class index ``text`` names (None for empty/``auto``); UnknownNameError listing close names."""
    if text is None:
        return None
    if isinstance(text, int):
        idx = text
    else:
        t = str(text).strip()
        if t.lower() in ("", "auto", "none"):
            return None
        head, sep, tail = t.partition(":")
        if sep and head.strip().isdigit():  # "12: name", as the list shows it
            t = head.strip()
        if t.lstrip("-").isdigit():
            idx = int(t)
        else:
            if t in labels:
                return labels.index(t)
            low = [l.lower() for l in labels]
            if t.lower() in low:
                return low.index(t.lower())
            close = [l for l in labels if t.lower() in l.lower()]
            raise UnknownNameError("class", t, close or labels)
    if not 0 <= idx < len(labels):
        raise UnknownNameError("class index", str(idx), [f"0..{len(labels) - 1}"])
    return idx
