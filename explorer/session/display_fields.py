"""The display fields of a layer, declared once: name, type, default, valid values, and what a change does.

``DisplayLayer`` (records.py) takes its defaults, its record and the check of a change from here; the
document (``Session.set_layer``) whether a change is the user overriding the map's defaults; the canvas which
changes recolour a layer; the layer panel its controls (kind, range, step, label, tooltip, row); the session
file how a stored value is checked. A new display field is one entry here plus what it does in render.py.
Qt-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from explorer.core import colormaps

DISPLAY_MODES = ("heat", "top-k", "contour")
BLEND_MODES = ("normal", "add", "multiply", "screen")


@dataclass(frozen=True)
class DisplayField:
    name: str
    kind: str  # "bool" | "float" | "choice"
    default: Any
    choices: tuple[str, ...] = ()  # the valid values of a choice
    bounds: tuple[float, float] | None = None  # the valid range of a float in a session file
    clamped: bool = False  # a change outside ``bounds`` is clamped into it (else taken as given)
    recolours: bool = False  # a change recolours the layer (else a repaint: an item property)
    overrides_defaults: str = ""  # "display" / "colormap": the user's change stops that default following the map
    noun: str = ""  # how a refusal names it ("display mode"); default: the name
    # the layer panel's control: its label and tooltip, a float's slider (low, high, step, decimals), its row
    label: str = ""
    tip: str = ""
    slider: tuple[float, float, float, int] | None = None
    row: int | None = None  # None: no control in the panel's form (visibility is the list's check box)

    def checked(self, value: Any) -> Any:
        """``value`` as the layer will hold it (clamped), or ValueError naming the valid choices."""
        if self.kind == "choice" and value not in self.choices:
            raise ValueError(f"{self.noun or self.name} {value!r}; valid: {', '.join(self.choices)}")
        if self.clamped and self.bounds is not None:
            return float(min(self.bounds[1], max(self.bounds[0], value)))
        return value


# in the order of a layer's record (session files keep their key order)
FIELDS: tuple[DisplayField, ...] = (
    DisplayField("visible", "bool", True),
    DisplayField("opacity", "float", 0.6, bounds=(0.0, 1.0), clamped=True, overrides_defaults="display",
                 label="opacity", slider=(0.0, 1.0, 0.05, 2), row=0),
    DisplayField("colormap", "choice", "inferno", choices=colormaps.NAMES, recolours=True,
                 overrides_defaults="colormap", label="colormap", row=1),
    DisplayField("clip", "float", 99.5, bounds=(0.0, 100.0), recolours=True, label="clip %ile",
                 tip="values above this percentile get the top colour (of |value| for signed maps)",
                 slider=(90.0, 100.0, 0.1, 1), row=2),
    DisplayField("mode", "choice", "heat", choices=DISPLAY_MODES, recolours=True, noun="display mode",
                 label="display", row=5),
    DisplayField("topk", "float", 20.0, bounds=(0.0, 100.0), recolours=True, label="top-k %",
                 tip="percent of pixels kept in top-k and contour modes", slider=(1.0, 100.0, 1.0, 0), row=6),
    DisplayField("blend", "choice", "normal", choices=BLEND_MODES, noun="blend mode", label="blend", row=7),
    DisplayField("floor", "float", 0.0, bounds=(0.0, 99.0), clamped=True, recolours=True,
                 overrides_defaults="display", label="floor %ile",
                 tip="unsigned maps: values below this percentile get the bottom colour "
                     "(50 for maps on a baseline, such as RISE's: only the upper half is coloured)",
                 slider=(0.0, 99.0, 1.0, 0), row=3),
    DisplayField("fade", "bool", True, recolours=True, overrides_defaults="display",
                 label="fade in from transparent",
                 tip="unsigned heat maps: low values are transparent, so the photo shows through", row=4),
)

BY_NAME: dict[str, DisplayField] = {f.name: f for f in FIELDS}
NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
RECOLOUR_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.recolours)
PANEL_FIELDS: tuple[DisplayField, ...] = tuple(sorted((f for f in FIELDS if f.row is not None), key=lambda f: f.row))


def default(name: str) -> Any:
    return BY_NAME[name].default


def checked(key: str, value: Any) -> Any:
    """``value`` for display field ``key`` as the layer will hold it, or KeyError / ValueError."""
    if key not in BY_NAME:
        raise KeyError(f"{key!r} is not a display field; valid: {', '.join(NAMES)}")
    return BY_NAME[key].checked(value)
