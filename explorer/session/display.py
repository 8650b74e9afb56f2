"""How a new layer is shown at first: a display default per layer kind (docs/display.md says how these were
chosen, side by side on real photos). Qt-free, numpy only; the user's later changes are never touched.

Kinds:

- signed maps: the diverging colormap centred on 0 with the alpha fading to nothing at 0 (render.lut32):
  no evidence either way leaves the photo as it is;
- unsigned maps that sit on a baseline (RISE's mean score, never 0; most masked-score averages): the
  bottom of the scale moves from the minimum to the median (``floor`` 50), so only the half of the photo
  that scores above the typical mask is coloured, and it fades in from transparent;
- other unsigned maps (Grad-CAM, gradients, FIDO's masks...): the scale starts at the minimum (their
  "nothing" is 0) and fades in from transparent, so the photo stays readable under the weak parts.
"""

from __future__ import annotations

import numpy as np

from explorer.core.object_cache import ObjectCache

OPACITY = 0.7  # with the fade, only strong values reach this; the photo shows through the rest
BASELINE_FLOOR = 50.0  # percentile given the bottom colour on a baseline map
# a map is "on a baseline" when its minimum is further from 0 than its spread (p1..p99) is wide: then the
# minimum is not "nothing", and min-max levels would tint the whole photo
BASELINE_RATIO = 0.5


def on_baseline(m) -> bool:
    a = np.asarray(m, dtype=np.float32)
    a = a[np.isfinite(a)]
    if a.size < 2:
        return False
    lo, p1, p99 = float(a.min()), *np.percentile(a, [1, 99]).tolist()
    spread = p99 - p1
    return lo > 0 and spread > 0 and lo > BASELINE_RATIO * spread


def display_defaults(name: str, signed: bool, m) -> dict:
    """The Layer display fields a new layer named ``name`` with map ``m`` starts with."""
    if signed:
        return {"opacity": OPACITY}
    floor = BASELINE_FLOOR if on_baseline(m) else 0.0
    return {"opacity": OPACITY, "floor": floor, "fade": True}


# MethodResult -> {unsigned map name: on_baseline}; filled off the GUI thread by ``precompute_display_hints``
_HINTS = ObjectCache()


def precompute_display_hints(exp) -> None:
    """Decide now, for each unsigned map of the Explanation ``exp``, whether it sits on a baseline.

    The compute worker calls this after every step it sends, so that the GUI thread, which applies the
    defaults (``defaults_of``), only looks the answer up: the percentiles of each map are the costly part."""
    _HINTS.put(exp, {name: on_baseline(m) for name, m in exp.raw.items() if not exp.signed.get(name, False)})


def defaults_of(exp, name: str) -> dict:
    """``display_defaults`` for the map ``name`` of ``exp``, from ``precompute_display_hints``'s answer when there
    is one."""
    signed = bool(exp.signed.get(name, False))
    hints = _HINTS.get(exp)
    if signed or hints is None or name not in hints:
        return display_defaults(name, signed, exp.raw[name])
    return {"opacity": OPACITY, "floor": BASELINE_FLOOR if hints[name] else 0.0, "fade": True}


# Colormaps a layer may take when it is shown beside another of the same colours (in this order): layers on
# screen together must be told apart. Perceptually ordered maps first; "magma" is left out, too close to
# "inferno" to tell apart at a glance.
DISTINCT = {False: ("inferno", "viridis", "greens", "purples", "hot", "gray"), True: ("RdBu", "coolwarm")}


def distinct_colormap(signed: bool, current: str, taken: set[str]) -> str | None:
    """The colormap a layer shown beside layers coloured with ``taken`` should switch to (None: keep
    ``current``, which is free or has no free alternative)."""
    if current not in taken:
        return None
    return next((name for name in DISTINCT[bool(signed)] if name not in taken), None)
