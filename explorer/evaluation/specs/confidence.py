"""Average drop / increase in confidence (Chattopadhyay 2018, Grad-CAM++): the image multiplied by the map's
soft mask against the image (explorer/evaluation/metrics.py)."""

from __future__ import annotations

from explorer.core.params import Param, Params
from explorer.evaluation.metric_spec import MetricSpec, register

CONFIDENCE_SUBSTRATE = Param("confidence_substrate", "str", "black", "what the map's soft mask fades to "
                             "(default black)", picker="substrate")


def _confidence(call) -> dict:
    from explorer.evaluation.metrics import confidence

    r = confidence(call.model, call.image_rgb, call.saliency, context=call.context,
                   substrate=call.options.confidence_substrate, cancel=call.cancel)
    return {k: r[k] for k in ("drop", "increase", "p_image", "p_masked", "substrate", "target")}


register(MetricSpec("confidence", "average drop / increase in confidence (Grad-CAM++)", "lower drop", _confidence,
                    Params(CONFIDENCE_SUBSTRATE), score_only=True))
