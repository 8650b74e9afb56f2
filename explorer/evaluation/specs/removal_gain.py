"""Removal gain: ΔP after in-filling each map's top pixels, against random removal of as many pixels
(explorer/evaluation/removal_gain.py)."""

from __future__ import annotations

from explorer.evaluation.metric_spec import MetricSpec, register


def _removal_gain(call) -> dict:
    from explorer.evaluation.removal_gain import removal_gain

    return removal_gain(call.model, call.image_rgb, dict(call.maps or {"salient": call.saliency}),
                        call.context.target, seed=call.options.seed)


# its CSV rows have always carried the target among the quantities too (omit=())
register(MetricSpec("removal_gain", "ΔP after in-filling each layer's top pixels, against random removal",
                    "see layer", _removal_gain, score_only=True, omit=()))
