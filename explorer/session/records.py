"""What the document is made of: a run (one method applied to the photo: its request, state and result) and
a display layer (how one map of a run is shown), with their statuses, the display choices a layer may take and
the checks a display change must pass. Plain data, no events: ``Session`` (document.py) is their only writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

import numpy as np

from explorer.core import colormaps
from explorer.core.types import MethodResult
from explorer.session import display_fields
from explorer.session.display import defaults_of
from explorer.session.model_choice import ModelChoice


class RunStatus(StrEnum):
    """Where a run stands. The values are what session files store, so older files still load."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    ERROR = "error"


class Target(Enum):
    """A requeue's target that is not a class: the run keeps the one it has (None means the top-1 class)."""

    KEEP = "keep"


@dataclass
class Run:
    """One method applied to the image: its request, its state and its (possibly partial) result."""

    id: int
    method: str
    params: dict[str, Any]
    target: int | None = None  # None = the model's top-1 class
    seed: int = 0
    status: RunStatus = RunStatus.QUEUED
    progress: float = 0.0
    message: str = ""
    error: str = ""
    generation: int = 1
    explanation: MethodResult | None = None
    title: str = ""
    model: ModelChoice | None = None  # the model it was asked of (None: read back without one, the current)

    @property
    def label(self) -> str:
        return f"{self.title or self.method} #{self.id}"

    @property
    def active(self) -> bool:
        return self.status in (RunStatus.QUEUED, RunStatus.RUNNING)

    def record(self) -> dict:
        return {"id": self.id, "method": self.method, "params": _plain(self.params), "target": self.target,
                "seed": self.seed, "status": self.status, "progress": self.progress, "error": self.error,
                "title": self.title}


@dataclass
class DisplayLayer:
    """The display state of one map of one run (its data lives in the run's explanation)."""

    id: int
    run_id: int
    name: str
    signed: bool = False
    # the display fields: their defaults, checks and effects are declared in display_fields.py
    visible: bool = display_fields.default("visible")
    opacity: float = display_fields.default("opacity")
    colormap: str = display_fields.default("colormap")
    clip: float = display_fields.default("clip")  # percentile of |values| (signed) or values mapped to the top colour
    mode: str = display_fields.default("mode")  # heat | top-k | contour
    topk: float = display_fields.default("topk")  # percent of pixels kept in top-k / contour mode
    blend: str = display_fields.default("blend")
    label: str = ""
    floor: float = display_fields.default("floor")  # percentile of an unsigned map's values given the bottom colour
    fade: bool = display_fields.default("fade")  # unsigned heat: transparent at the bottom of the scale

    DISPLAY_FIELDS = display_fields.NAMES

    def record(self) -> dict:
        return {k: getattr(self, k) for k in ("id", "run_id", "name", "signed", "label") + self.DISPLAY_FIELDS}

    @classmethod
    def checked(cls, key: str, value: Any) -> Any:
        """``value`` for display field ``key`` as the layer will hold it (clamped), or KeyError / ValueError
        naming the valid choices."""
        return display_fields.checked(key, value)

    @classmethod
    def for_map(cls, layer_id: int, run: Run, exp: MethodResult, name: str, headline: bool) -> DisplayLayer:
        """A new layer for map ``name`` of ``run``'s result: shown when it is the headline map, coloured by its
        sign, with the display defaults chosen for that map (display.defaults_of)."""
        signed = bool(exp.signed.get(name, False))
        return cls(layer_id, run.id, name, signed, visible=headline, colormap=colormaps.default_for(signed),
                   label=f"{name} — {run.label}", **defaults_of(exp, name))


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        return obj.item()
    return obj
