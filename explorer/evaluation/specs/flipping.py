"""Pixel flipping (Bach 2015) and region perturbation (Samek 2017): the most relevant pixels, or regions, go to
a baseline (explorer/evaluation/flipping.py)."""

from __future__ import annotations

from explorer.core.params import Param, Params
from explorer.evaluation.metric_spec import MetricSpec, curve_result, register

FLIP_STEP = Param("flip_step", "int", None, "pixel flipping: pixels per step (default 1% of the pixels)", low=1)
FLIP_SUBSTRATE = Param("flip_substrate", "str", "black", "pixel flipping baseline (default black)",
                       picker="substrate")
REGION_PATCH = Param("region_patch", "int", 8, "region perturbation patch size (default 8)", low=1)
REGION_COUNT = Param("region_count", "int", 100, "region perturbation: regions replaced (default 100)", low=1)
REGION_SUBSTRATE = Param("region_substrate", "str", "black", "region perturbation baseline (default black; "
                         "Samek: noise)", picker="substrate")


def _pixel_flipping(call) -> dict:
    from explorer.evaluation.flipping import pixel_flipping

    o = call.options
    c = pixel_flipping(call.model, call.image_rgb, call.saliency, step=o.flip_step, substrate=o.flip_substrate,
                       context=call.context, cancel=call.cancel)
    out = curve_result(c)
    if call.keep_frames:  # flipping is a deletion curve on its own substrate and step
        from explorer.evaluation.causal import CurveFrames

        out["frames"] = {"pixel_flipping": CurveFrames(call.model, call.image_rgb, call.saliency, c.target,
                                                       mode="deletion", step=c.step, substrate=o.flip_substrate,
                                                       context=call.context)}
    return out


def _region_perturbation(call) -> dict:
    from explorer.evaluation.flipping import region_perturbation

    o = call.options
    c = region_perturbation(call.model, call.image_rgb, call.saliency, patch=o.region_patch, regions=o.region_count,
                            substrate=o.region_substrate, context=call.context, cancel=call.cancel)
    out = curve_result(c)
    out["aopc"] = out.pop("auc")
    return out


register(MetricSpec("pixel_flipping", "pixel flipping (Bach 2015): most relevant pixels flipped to black",
                    "lower AUC", _pixel_flipping, Params(FLIP_STEP, FLIP_SUBSTRATE), score_only=True))
register(MetricSpec("region_perturbation", "region perturbation (Samek 2017): 8x8 regions, AOPC", "higher AOPC",
                    _region_perturbation, Params(REGION_PATCH, REGION_COUNT, REGION_SUBSTRATE), score_only=True))
