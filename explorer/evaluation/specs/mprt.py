"""sMPRT and eMPRT (Hedström 2023): the method re-run on a progressively randomised model; smooth Spearman per
stage, or the rise of the map's entropy (explorer/evaluation/mprt.py)."""

from __future__ import annotations

from explorer.core.params import Param, Params
from explorer.evaluation.metric_spec import MetricSpec, needs_method, register

MPRT_STAGES = Param("mprt_stages", "int", 4, "sMPRT: bottom-up randomisation stages (default 4)", low=1)
SMPRT_SAMPLES = Param("smprt_samples", "int", 10, "sMPRT: noisy copies averaged per map (default 10)", low=1)
SMPRT_NOISE = Param("smprt_noise", "float", 0.1, "sMPRT: noise σ as a fraction of the input range (default 0.1)",
                    low=0.0)
EMPRT_BINS = Param("emprt_bins", "int", 100, "eMPRT: histogram bins of the entropy (default 100)", low=2)


def _smprt(call) -> dict:
    from explorer.evaluation.mprt import smprt

    o = call.options
    r = smprt(call.model, call.image_rgb, needs_method(call, "smprt"), call.context.target, params=call.params,
              n_stages=o.mprt_stages, samples=o.smprt_samples, noise=o.smprt_noise, seed=o.seed, cancel=call.cancel)
    out = {"smprt": r["smprt"], "smprt_last": r["smprt_last"]}
    out.update({f"spearman@stage{s['stage']}": s["spearman"] for s in r["stages"]})
    return out


def _emprt(call) -> dict:
    from explorer.evaluation.mprt import emprt

    r = emprt(call.model, call.image_rgb, needs_method(call, "emprt"), call.context.target, params=call.params,
              n_bins=call.options.emprt_bins, seed=call.options.seed, reference=call.saliency, cancel=call.cancel)
    return {k: r[k] for k in ("emprt", "entropy_original", "entropy_randomised", "model_entropy_original",
                              "model_entropy_randomised")}


register(MetricSpec("smprt", "smooth model-parameter randomisation (Hedström 2023), bottom-up", "lower", _smprt,
                    Params(MPRT_STAGES, SMPRT_SAMPLES, SMPRT_NOISE), needs=("weights",), reruns_method=True))
register(MetricSpec("emprt", "efficient MPRT (Hedström 2023): entropy rise of the map on a random model", "higher",
                    _emprt, Params(EMPRT_BINS), needs=("weights",), reruns_method=True))
