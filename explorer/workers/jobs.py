"""Functions the GUI hands to ``ComputeWorker.call``: built here so that gui/ never imports torch.

Each factory returns ``fn(model, image) -> result``; the worker runs it on its thread (where torch lives)
and sends the result back by ``call_done``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

# The metrics whose curves the Evaluation tab draws (explorer/gui/evaluation_panel.py has a plot per curve).
CURVE_METRICS = ("deletion", "insertion", "pixel_flipping", "road")


def causal_curves(saliency: np.ndarray, target: int | None, step: int | None = None,
                  road: bool = True, flipping: bool = True,
                  options: dict[str, Any] | None = None) -> Callable[[Any, np.ndarray], dict]:
    """Deletion and insertion curves of one map, with the perturbed frames for hovering (issue 9's metric);
    with ``flipping`` the pixel-flipping curve and with ``road`` the ROAD MoRF / LeRF curves too (issue 19),
    each with the images the model scored. Each is computed through the metric registry.

    ``options``: the metrics' settings by name (the Evaluation tab's, ``explorer.evaluation.registry.Options``;
    checked on the worker, a bad one fails the call with its message); ``step``: pixels changed per curve
    point (default: the evaluation module's, 225 points per curve), over ``options``'s.
    Returns ``{mode: (curve, frames)}``; ``frames`` is a callable or a list ``index -> (h, w, 3) uint8``.
    """

    def fn(model, image):
        from explorer.evaluation import registry
        from explorer.methods.base import prepare_context

        values = dict(options or {})
        if step is not None:
            values["step"] = step
        opts = registry.Options.from_values(values)
        ctx = prepare_context(model, image, target, opts.seed)
        names = [m for m in CURVE_METRICS if (flipping or m != "pixel_flipping") and (road or m != "road")]
        out: dict[str, tuple] = {}
        for name in names:
            call = registry.MetricCall(model, image, saliency, context=ctx, options=opts, keep_frames=True)
            out.update(registry.curves_of(name, registry.compute(name, call)))
        return out

    return fn
