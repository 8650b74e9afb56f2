"""The one check of a normalisation a user gives (``--mean``/``--std``, ``load_model(mean=, std=)``, the model
panel's *normalise* field, a session's model choice): kept here, below both the models (which apply it) and the
session (whose panel field reads it), so the two cannot disagree on what is valid."""

from __future__ import annotations

import math
from typing import Any


def channel_values(v: Any, what: str) -> tuple[float, ...]:
    """``v`` (a number, or one or three numbers) as three per-channel values; ``what`` is ``mean`` or ``std``.

    A ValueError says what is wrong: not numbers, not one or three, not finite, a std that is not positive, or
    values outside [-1, 1] (0..255 values given by mistake: pixels are scaled to [0, 1] before normalising)."""
    try:
        t = tuple(float(a) for a in ((v,) if isinstance(v, (int, float)) else v))
    except (TypeError, ValueError):
        raise ValueError(f"normalisation {what} {v!r} is not a number or a list of numbers") from None
    if len(t) not in (1, 3) or not all(math.isfinite(a) for a in t):
        raise ValueError(f"normalisation {what} {v!r} needs one finite value (every channel) or three (R, G, B)")
    if what == "std" and min(t) <= 0:
        raise ValueError(f"normalisation std {v!r} must be positive")
    if max(abs(a) for a in t) > 1:
        raise ValueError(f"normalisation {what} {v!r} looks like 0..255 values; pixels are scaled to [0, 1] before "
                         "normalising, so give it in [0, 1] (e.g. 0.485, not 123.7)")
    return t * 3 if len(t) == 1 else t
