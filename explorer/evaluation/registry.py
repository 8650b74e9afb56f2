"""Every faithfulness metric behind one registry: what it needs, which way is better, and one call.

``METRICS[name]`` is a ``MetricSpec``; ``compute(name, call)`` runs it on one map and returns a JSON-friendly
dict (scalars, and curves as ``{"fractions": [...], "scores": [...]}``); ``rows(name, result)`` flattens
that dict into the (metric, quantity, value, fraction) rows of ``explorer evaluate``'s per-image CSVs.
The CLI, the Python API (``explorer.evaluate``) and the GUI's evaluation tab all go through here, so a
metric added here is reachable from all three.

    call = MetricCall(model, image_rgb, saliency, context=ctx, method="gradcam", params={}, options=Options())
    result = compute("road", call)           # {"morf": ..., "lerf": ..., "combined": ..., "curves": {...}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from explorer.core.errors import ParamError, UnknownNameError


@dataclass
class Options:
    """Settings of every metric, with the protocol defaults (CLI flags of the same names)."""

    step: int | None = None                 # deletion/insertion pixels per step (default HW/224)
    deletion_substrate: Any = "zero"
    insertion_substrate: Any = "blur"
    confidence_substrate: Any = "black"
    tolerance: int = 15                     # pointing game, pixels
    topk: float = 0.1                       # sanity: top-k IoU
    sanity_stages: int = 4
    seed: int = 0
    road_noise: float = 0.01
    road_fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    flip_step: int | None = None            # pixel flipping (default 1 % of the pixels)
    flip_substrate: Any = "black"
    region_patch: int = 8
    region_count: int = 100
    region_substrate: Any = "black"
    mprt_stages: int = 4                    # sMPRT
    smprt_samples: int = 10
    smprt_noise: float = 0.1
    emprt_bins: int = 100

    def validate(self) -> "Options":
        """Refuse settings out of range before anything runs (one line naming the option)."""
        checks = [
            ("step", self.step is None or self.step >= 1, ">= 1 pixel"),
            ("topk", 0 < self.topk <= 1, "in (0, 1]"),
            ("sanity_stages", self.sanity_stages >= 1, ">= 1"),
            ("road_noise", self.road_noise >= 0, ">= 0"),
            ("road_fractions", bool(self.road_fractions) and all(0 < f < 1 for f in self.road_fractions), "in (0, 1)"),
            ("flip_step", self.flip_step is None or self.flip_step >= 1, ">= 1 pixel"),
            ("region_patch", self.region_patch >= 1, ">= 1 pixel"),
            ("region_count", self.region_count >= 1, ">= 1"),
            ("mprt_stages", self.mprt_stages >= 1, ">= 1"),
            ("smprt_samples", self.smprt_samples >= 1, ">= 1"),
            ("smprt_noise", self.smprt_noise >= 0, ">= 0"),
            ("emprt_bins", self.emprt_bins >= 2, ">= 2"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ParamError(f"--{name.replace('_', '-')} = {getattr(self, name)!r} must be {rule}")
        return self

    @classmethod
    def from_namespace(cls, ns: Any) -> "Options":
        """Options from an argparse namespace (or any object): attributes of the same names, else defaults."""
        return cls(**{k: getattr(ns, k) for k in cls.__dataclass_fields__ if getattr(ns, k, None) is not None})


@dataclass
class MetricCall:
    """One map to score. ``saliency``: the headline map; ``maps``: every layer of the run (removal gain);
    ``box`` / ``mask``: the pointing-game region; ``reference_map``: the PCC/SIM reference."""

    model: Any
    image_rgb: np.ndarray
    saliency: Any
    context: Any = None
    method: str | None = None
    params: dict = field(default_factory=dict)
    options: Options = field(default_factory=Options)
    maps: dict[str, Any] = field(default_factory=dict)
    box: tuple[int, int, int, int] | None = None
    mask: np.ndarray | None = None
    reference_map: np.ndarray | None = None
    image_map: np.ndarray | None = None     # the map in image space (pointing, reference)
    cancel: Any = None


@dataclass(frozen=True)
class MetricSpec:
    name: str
    summary: str
    better: str
    compute: Callable[[MetricCall], dict] | None
    needs: tuple[str, ...] = ()   # "boxes", "reference", "weights" (a white-box module), "methods" (>= 2 maps)
    reruns_method: bool = False   # re-runs the method on a modified model (needs the method's name)


def _curve(c) -> dict:
    return {"auc": float(c.auc), "step": int(c.step), "substrate": c.substrate, "target": int(c.target),
            "curve": {"fractions": [float(f) for f in c.fractions], "scores": [float(s) for s in c.scores]}}


def _causal(mode: str) -> Callable[[MetricCall], dict]:
    def fn(call: MetricCall) -> dict:
        from explorer.evaluation.causal import causal_curve

        o = call.options
        sub = o.deletion_substrate if mode == "deletion" else o.insertion_substrate
        return _curve(causal_curve(call.model, call.image_rgb, call.saliency, mode=mode, step=o.step, substrate=sub,
                                   context=call.context, cancel=call.cancel))
    return fn


def _confidence(call: MetricCall) -> dict:
    from explorer.evaluation.metrics import confidence

    r = confidence(call.model, call.image_rgb, call.saliency, context=call.context,
                   substrate=call.options.confidence_substrate, cancel=call.cancel)
    return {k: r[k] for k in ("drop", "increase", "p_image", "p_masked", "substrate")}


def _pointing(call: MetricCall) -> dict:
    from explorer.evaluation import agreement

    if call.box is None and call.mask is None:
        raise ParamError("metric 'pointing' needs a box or a mask of the object")
    r = agreement.pointing_game(call.image_map, box=call.box, mask=call.mask, tolerance=call.options.tolerance)
    return {"hit": r["hit"], "distance": r["distance"]}


def _reference(call: MetricCall) -> dict:
    from explorer.evaluation import agreement

    if call.reference_map is None:
        raise ParamError("metric 'reference' needs a reference map")
    return {"pcc": agreement.pcc(call.image_map, call.reference_map),
            "sim": agreement.sim(call.image_map, call.reference_map)}


def _needs_method(call: MetricCall, name: str) -> str:
    if not call.method:
        raise ParamError(f"metric {name!r} re-runs the method on a randomised model: give the method's name")
    return call.method


def _sanity(call: MetricCall) -> dict:
    from explorer.evaluation.metrics import sanity_check

    o = call.options
    r = sanity_check(call.model, call.image_rgb, _needs_method(call, "sanity"), call.context.target,
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


def _removal_gain(call: MetricCall) -> dict:
    from explorer.evaluation.removal_gain import removal_gain

    return removal_gain(call.model, call.image_rgb, dict(call.maps or {"salient": call.saliency}),
                        call.context.target, seed=call.options.seed)


def _road(call: MetricCall) -> dict:
    from explorer.evaluation.road import road

    o = call.options
    r = road(call.model, call.image_rgb, call.saliency, fractions=tuple(o.road_fractions), noise=o.road_noise,
             seed=o.seed, context=call.context, cancel=call.cancel)
    curves = {order: r.curve(order) for order in ("morf", "lerf")}
    return {"morf": r.morf, "lerf": r.lerf, "combined": r.combined, "base": r.base,
            "curves": {k: {"fractions": [float(f) for f in c["fractions"]],
                           "scores": [float(s) for s in c["scores"]]} for k, c in curves.items()}}


def _pixel_flipping(call: MetricCall) -> dict:
    from explorer.evaluation.flipping import pixel_flipping

    o = call.options
    return _curve(pixel_flipping(call.model, call.image_rgb, call.saliency, step=o.flip_step,
                                 substrate=o.flip_substrate, context=call.context, cancel=call.cancel))


def _region_perturbation(call: MetricCall) -> dict:
    from explorer.evaluation.flipping import region_perturbation

    o = call.options
    c = region_perturbation(call.model, call.image_rgb, call.saliency, patch=o.region_patch, regions=o.region_count,
                            substrate=o.region_substrate, context=call.context, cancel=call.cancel)
    out = _curve(c)
    out["aopc"] = out.pop("auc")
    return out


def _smprt(call: MetricCall) -> dict:
    from explorer.evaluation.mprt import smprt

    o = call.options
    r = smprt(call.model, call.image_rgb, _needs_method(call, "smprt"), call.context.target, params=call.params,
              n_stages=o.mprt_stages, samples=o.smprt_samples, noise=o.smprt_noise, seed=o.seed, cancel=call.cancel)
    out = {"smprt": r["smprt"], "smprt_last": r["smprt_last"]}
    out.update({f"spearman@stage{s['stage']}": s["spearman"] for s in r["stages"]})
    return out


def _emprt(call: MetricCall) -> dict:
    from explorer.evaluation.mprt import emprt

    r = emprt(call.model, call.image_rgb, _needs_method(call, "emprt"), call.context.target, params=call.params,
              n_bins=call.options.emprt_bins, seed=call.options.seed, reference=call.saliency, cancel=call.cancel)
    return {k: r[k] for k in ("emprt", "entropy_original", "entropy_randomised", "model_entropy_original",
                              "model_entropy_randomised")}


METRICS: dict[str, MetricSpec] = {s.name: s for s in (
    MetricSpec("deletion", "RISE deletion curve: P_target as the top pixels go to the substrate", "lower AUC",
               _causal("deletion")),
    MetricSpec("insertion", "RISE insertion curve: P_target as the top pixels return onto a blurred image",
               "higher AUC", _causal("insertion")),
    MetricSpec("confidence", "average drop / increase in confidence (Grad-CAM++)", "lower drop", _confidence),
    MetricSpec("pointing", "pointing game: is the map's maximum inside the object's box", "higher hit", _pointing,
               needs=("boxes",)),
    MetricSpec("reference", "PCC and SIM against a reference map (e.g. gaze)", "higher", _reference,
               needs=("reference",)),
    MetricSpec("agreement", "Spearman and top-k IoU between the methods' maps", "-", None, needs=("methods",)),
    MetricSpec("sanity", "cascading model randomisation (Adebayo 2018), Spearman per stage", "lower", _sanity,
               needs=("weights",), reruns_method=True),
    MetricSpec("removal_gain", "ΔP after in-filling each layer's top pixels, against random removal", "see layer",
               _removal_gain),
    MetricSpec("road", "ROAD (Rong 2022): noisy linear imputation, MoRF and LeRF over 10..90 %",
               "lower morf, higher lerf", _road),
    MetricSpec("pixel_flipping", "pixel flipping (Bach 2015): most relevant pixels flipped to black", "lower AUC",
               _pixel_flipping),
    MetricSpec("region_perturbation", "region perturbation (Samek 2017): 8x8 regions, AOPC", "higher AOPC",
               _region_perturbation),
    MetricSpec("smprt", "smooth model-parameter randomisation (Hedström 2023), bottom-up", "lower", _smprt,
               needs=("weights",), reruns_method=True),
    MetricSpec("emprt", "efficient MPRT (Hedström 2023): entropy rise of the map on a random model", "higher",
               _emprt, needs=("weights",), reruns_method=True),
)}


def metric_names() -> tuple[str, ...]:
    return tuple(METRICS)


def spec(name: str) -> MetricSpec:
    if name not in METRICS:
        raise UnknownNameError("metric", name, list(METRICS))
    return METRICS[name]


def compute(name: str, call: MetricCall) -> dict:
    """Run metric ``name`` on ``call``; a JSON-friendly dict (see each metric's module for its fields)."""
    s = spec(name)
    if s.compute is None:
        raise ParamError(f"metric {name!r} compares several maps; use explorer.evaluation.agreement.agreement_table")
    if "weights" in s.needs and getattr(call.model, "module", None) is None:
        from explorer.core.errors import UnsupportedError

        raise UnsupportedError(f"metric {name!r} re-initialises the model's weights, which the black-box model "
                               f"{getattr(call.model, 'id', '?')!r} does not expose")
    if call.context is None:
        from explorer.methods.base import prepare_context

        call.context = prepare_context(call.model, call.image_rgb, None, seed=call.options.seed)
    return s.compute(call)


def rows(name: str, result: dict) -> list[tuple[str, str, Any, Any]]:
    """(metric, quantity, value, fraction) rows: scalars flattened with dotted names, curves as points
    (``quantity = "score"`` for the headline curve, ``"<curve>.score"`` for named ones)."""
    out: list[tuple[str, str, Any, Any]] = []

    def scalar(prefix: str, obj: Any) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                scalar(f"{prefix}.{k}" if prefix else str(k), v)
        elif (isinstance(obj, (list, tuple)) and len(obj) <= 64
              and all(isinstance(v, (int, float, np.number)) for v in obj)):
            for i, v in enumerate(obj):
                out.append((name, f"{prefix}[{i}]", v, ""))
        elif isinstance(obj, (bool, np.bool_)):
            out.append((name, prefix, int(obj), ""))
        elif isinstance(obj, (int, float, np.number, str)):
            out.append((name, prefix, obj, ""))

    for k, v in result.items():
        if k == "curve":
            out += [(name, "score", float(s), float(f)) for f, s in zip(v["fractions"], v["scores"])]
        elif k == "curves":
            for cname, c in v.items():
                out += [(name, f"{cname}.score", float(s), float(f)) for f, s in zip(c["fractions"], c["scores"])]
        elif k == "target":
            continue
        else:
            scalar(k, v)
    return out
