"""Functions the GUI hands to ``ComputeWorker.call``: built here so that gui/ never imports torch.

Each factory returns ``fn(model, image) -> result``; the worker runs it on its thread (where torch lives)
and sends the result back by ``call_done``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def causal_curves(saliency: np.ndarray, target: int | None, step: int | None = None) -> Callable[[Any, np.ndarray], dict]:
    """Deletion and insertion curves of one map, with the perturbed frames for hovering (issue 9's metric).

    ``step``: pixels changed per curve point (default: the evaluation module's, 225 points per curve).
    """

    def fn(model, image):
        from explorer.evaluation.causal import CurveFrames, deletion_insertion

        curves = deletion_insertion(model, image, saliency, target, step=step)
        return {mode: (curve, CurveFrames(model, image, saliency, target, mode=mode, step=step))
                for mode, curve in curves.items()}

    return fn
