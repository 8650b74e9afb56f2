"""The one JSON form of everything explorer writes: manifests, session files, listings, the GUI's layer index.

``jsonable`` turns parameters, info and timings into plain JSON values (numpy scalars to numbers, small
arrays to lists, large ones to a short description, anything else to its ``str``); ``to_json`` is that, as
indented text. Every writer goes through it, so a numpy value never breaks one file format and not another.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

# Arrays up to this many values are written out; larger ones (a BOREx prior, say) only by their shape.
ARRAY_VALUES_WRITTEN = 64


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist() if obj.size <= ARRAY_VALUES_WRITTEN else f"<array {obj.shape}>"
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def to_json(obj: Any) -> str:
    """``obj`` as indented JSON text, through ``jsonable``."""
    return json.dumps(jsonable(obj), indent=2)
