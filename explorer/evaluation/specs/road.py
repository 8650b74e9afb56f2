"""ROAD (Rong 2022): the top (MoRF) or bottom (LeRF) pixels removed by noisy linear imputation, mean P over the
fractions (explorer/evaluation/road.py)."""

from __future__ import annotations

from explorer.core.params import Param, Params
from explorer.evaluation.metric_spec import MetricSpec, register

ROAD_NOISE = Param("road_noise", "float", 0.01, "ROAD imputation noise, normalised units (default 0.01)", low=0.0)
ROAD_FRACTIONS = Param("road_fractions", "floats", (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
                       "ROAD: fractions of pixels removed, comma-separated (default 0.1,...,0.9)", low=0.0, high=1.0,
                       low_open=True, high_open=True)


def _road(call) -> dict:
    from explorer.evaluation.road import road

    o = call.options
    r = road(call.model, call.image_rgb, call.saliency, fractions=tuple(o.road_fractions), noise=o.road_noise,
             seed=o.seed, context=call.context, cancel=call.cancel, keep_frames=call.keep_frames)
    curves = {order: r.curve(order) for order in ("morf", "lerf")}
    out = {"morf": r.morf, "lerf": r.lerf, "combined": r.combined, "base": r.base,
           "curves": {k: {"fractions": [float(f) for f in c["fractions"]], "scores": [float(s) for s in c["scores"]],
                          "auc": c["auc"], "substrate": c["substrate"]} for k, c in curves.items()}}
    if call.keep_frames:  # fraction 0 is the intact image
        from explorer.evaluation.causal import CurveFrames

        intact = CurveFrames(call.model, call.image_rgb, call.saliency, r.target, context=call.context).image
        out["frames"] = {f"road_{order}": [intact] + r.frames[order] for order in ("morf", "lerf")}
    return out


register(MetricSpec("road", "ROAD (Rong 2022): noisy linear imputation, MoRF and LeRF over 10..90 %",
                    "lower morf, higher lerf", _road, Params(ROAD_NOISE, ROAD_FRACTIONS), score_only=True))
