"""Functions the GUI hands to ``ComputeWorker.call``: built here so that gui/ never imports torch.

Each factory returns ``fn(model, image) -> result``; the worker runs it on its thread (where torch lives)
and sends the result back by ``call_done``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def causal_curves(saliency: np.ndarray, target: int | None, step: int | None = None,
                  road: bool = True, flipping: bool = True) -> Callable[[Any, np.ndarray], dict]:
    """Deletion and insertion curves of one map, with the perturbed frames for hovering (issue 9's metric);
    with ``flipping`` the pixel-flipping curve and with ``road`` the ROAD MoRF / LeRF curves too (issue 19),
    each with the images the model scored.

    ``step``: pixels changed per curve point (default: the evaluation module's, 225 points per curve).
    Returns ``{mode: (curve, frames)}``; ``frames`` is a callable or a list ``index -> (h, w, 3) uint8``.
    """

    def fn(model, image):
        from explorer.evaluation.causal import CurveFrames, deletion_insertion
        from explorer.methods.base import prepare_context

        ctx = prepare_context(model, image, target)
        curves = deletion_insertion(model, image, saliency, target, step=step, context=ctx)
        out = {mode: (curve, CurveFrames(model, image, saliency, target, mode=mode, step=step, context=ctx))
               for mode, curve in curves.items()}
        if flipping:
            from explorer.evaluation.flipping import PIXEL_FLIPPING_SUBSTRATE, pixel_flipping

            pf = pixel_flipping(model, image, saliency, context=ctx)
            out["pixel_flipping"] = (pf, CurveFrames(model, image, saliency, target, mode="deletion", step=pf.step,
                                                     substrate=PIXEL_FLIPPING_SUBSTRATE, context=ctx))
        if road:
            from explorer.evaluation.road import road as road_metric

            r = road_metric(model, image, saliency, keep_frames=True, context=ctx)
            intact = CurveFrames(model, image, saliency, target, context=ctx).image
            for order in ("morf", "lerf"):
                out[f"road_{order}"] = (r.curve(order), [intact] + r.frames[order])
        return out

    return fn
