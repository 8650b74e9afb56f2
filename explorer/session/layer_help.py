"""What a layer means, for the window: one line for the layer list, the colour bar's note on 0, and the
longer text behind the "?" (the method's summary, paper and sign). Qt-free.

Everything comes from the method registry (``MapSpec.meaning`` / ``.zero`` / ``.help`` and the method's
``summary`` / ``paper``, as the worker's catalog carries them); nothing here is written per method. A layer
whose method is not in the catalog (a session saved by another version) falls back to its role's meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from explorer.core.catalog import CatalogEntry
from explorer.core.types import MapSpec


@dataclass(frozen=True)
class LayerHelp:
    layer: str
    signed: bool
    meaning: str  # one line: what the map shows
    zero: str  # what 0 and the sign mean
    how: str = ""  # how it is computed (a formula)
    method: str = ""
    title: str = ""
    summary: str = ""
    paper: str = ""
    class_agnostic: bool = False

    def line(self) -> str:
        """The layer list's one line."""
        return self.meaning

    def colorbar_note(self) -> str:
        """What the colour bar says under a signed map (nothing for unsigned ones, whose bottom is their minimum)."""
        return self.zero if self.signed else ""

    def html(self) -> str:
        """The "?" text: what the map shows, what its sign means, how it is computed, the method and paper."""
        rows = [f"<h3>{escape(self.layer)}{' ±' if self.signed else ''} — {escape(self.title or self.method)}</h3>",
                f"<p><b>What it shows:</b> {escape(self.meaning)}</p>",
                f"<p><b>{'Sign and 0' if self.signed else 'Values'}:</b> {escape(self.zero)}</p>"]
        if self.how:
            rows.append(f"<p><b>How it is computed:</b> {escape(self.how)}</p>")
        if self.summary:
            rows.append(f"<p><b>The method:</b> {escape(self.summary)}"
                        + (" (class-agnostic: the same map for every class)" if self.class_agnostic else "") + "</p>")
        if self.paper:
            rows.append(f"<p><b>Paper:</b> <i>{escape(self.paper)}</i></p>")
        return "\n".join(rows)


def layer_help(entry: CatalogEntry | None, layer: str, signed: bool = False) -> LayerHelp:
    """The help of ``layer`` of the method described by catalog ``entry`` (None: the role's defaults)."""
    if entry is None:
        entry = CatalogEntry("")
    spec = next((o for o in entry.outputs if o.name == layer), None)
    if spec is None:
        spec = MapSpec(layer, signed)
    return LayerHelp(layer, spec.signed, spec.meaning or layer, spec.zero, spec.help, entry.name, entry.title,
                     entry.summary, entry.paper, entry.class_agnostic)
