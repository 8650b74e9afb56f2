"""Cascading model randomisation (Adebayo 2018): the method re-run as the layers are randomised from the top,
Spearman against the original map per stage (explorer/evaluation/metrics.py)."""

from __future__ import annotations

from typing import Any

from explorer.core.params import Param, Params
from explorer.evaluation.metric_spec import TOPK, MetricSpec, needs_method, register

SANITY_STAGES = Param("sanity_stages", "int", 4, "cascading randomisation stages (default 4)", low=1)


def _sanity(call) -> dict:
    from explorer.evaluation.metrics import sanity_check

    o = call.options
    r = sanity_check(call.model, call.image_rgb, needs_method(call, "sanity"), call.context.target,
                     params=call.params, n_stages=o.sanity_stages, seed=o.seed, topk=o.topk,
                     reference=call.saliency, cancel=call.cancel)
    out: dict[str, Any] = {}
    for st in r["stages"]:
        out[f"spearman@stage{st['stage']}"] = st["spearman"]
        out[f"spearman_abs@stage{st['stage']}"] = st["spearman_abs"]
    if r["stages"]:
        out["spearman_final"] = r["stages"][-1]["spearman"]
        out["topk_iou_final"] = r["stages"][-1]["topk_iou"]
    return out


register(MetricSpec("sanity", "cascading model randomisation (Adebayo 2018), Spearman per stage", "lower", _sanity,
                    Params(SANITY_STAGES, TOPK), needs=("weights",), reruns_method=True))
