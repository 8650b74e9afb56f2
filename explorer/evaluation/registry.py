"""Every faithfulness metric behind one registry: what it needs, which way is better, its settings, one call.

``METRICS[name]`` is a ``MetricSpec`` (explorer/evaluation/metric_spec.py), registered by its module under
explorer/evaluation/specs/ (importing this module imports them all). ``compute(name, call)`` runs it on one
map and returns a JSON-friendly dict (scalars, and curves as ``{"fractions": [...], "scores": [...]}``);
``rows(name, result)`` flattens that dict into the (metric, quantity, value, fraction) rows of ``explorer
evaluate``'s per-image CSVs. ``Options`` holds every registered metric's settings (their ``Params``), from which
the command line's flags, ``explorer.evaluate``'s keywords and the GUI's evaluation settings are made. The
CLI, the Python API and the GUI's evaluation tab all go through here, so a metric added is reachable from all
three.

    call = MetricCall(model, image_rgb, saliency, context=ctx, method="gradcam", params={}, options=Options())
    result = compute("road", call)           # {"morf": ..., "lerf": ..., "combined": ..., "curves": {...}}

Importing this module is cheap (numpy, no torch): the adapters import what computes on first use.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np

import explorer.evaluation.specs  # noqa: F401 - registers every metric
from explorer.core.errors import ParamError, UnknownNameError
from explorer.core.params import Params
from explorer.evaluation.metric_spec import METRICS, MetricSpec, option_params, register, unregister

__all__ = ["METRICS", "MetricCall", "MetricSpec", "Options", "applies", "compute", "compute_rows", "curves_of",
           "metric_names", "option_params", "params_of", "register", "rows", "spec", "unregister"]


def _known(values: dict[str, Any]) -> Params:
    """Every declared setting; a name no registered metric declares is refused, naming the valid ones."""
    params = option_params()
    unknown = [k for k in values if k not in params]
    if unknown:
        raise ParamError(f"unknown metric setting(s) {', '.join(map(repr, unknown))}; valid: "
                         f"{', '.join(params.names())}")
    return params


class Options:
    """Settings of every registered metric, with the protocol defaults: one attribute per ``Param`` of the specs
    (CLI flags of the same names, ``--road-noise`` for ``road_noise``) and ``seed``.

    Values are kept as given (a substrate may be an array); ``validate`` checks the numbers against the bounds.
    """

    def __init__(self, **values: Any):
        params = _known(values)
        for p in params:
            setattr(self, p.name, values.get(p.name, p.default))

    def __getattr__(self, name: str) -> Any:
        # a metric registered after this object was made: its setting reads as its default
        params = option_params()
        if not name.startswith("_") and name in params:
            return params[name].default
        raise AttributeError(name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Options) and self.values() == other.values()

    def __repr__(self) -> str:
        return "Options(" + ", ".join(f"{k}={v!r}" for k, v in self.values().items()) + ")"

    def values(self) -> dict[str, Any]:
        return {p.name: getattr(self, p.name) for p in option_params()}

    def validate(self) -> "Options":
        """Refuse settings out of range before anything runs (one line naming the option's flag)."""
        for p in option_params():
            if p.kind == "str":  # substrates: checked by their command-line type, or when the substrate is made
                continue
            value = getattr(self, p.name)
            try:
                p.coerce(value)
            except ParamError:
                raise ParamError(f"--{p.name.replace('_', '-')} = {value!r} must be {p.bounds_text()}") from None
        return self

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> "Options":
        """Options from user values (keywords, strings): numbers are converted and checked, names refused
        unless a metric declares them."""
        params = _known(values)
        return cls(**{k: v if params[k].kind == "str" else params[k].coerce(v) for k, v in values.items()}).validate()

    @classmethod
    def from_namespace(cls, ns: Any) -> "Options":
        """Options from an argparse namespace (or any object): attributes of the same names, else defaults."""
        return cls(**{p.name: getattr(ns, p.name) for p in option_params() if getattr(ns, p.name, None) is not None})


@dataclass
class MetricCall:
    """One map to score. ``saliency``: the headline map; ``maps``: every map of the run (removal gain);
    ``box`` / ``mask``: the pointing-game region; ``reference_map``: the PCC/SIM reference; ``protocol``:
    the deletion/insertion protocol of ``explorer evaluate`` (recorded with the curves; None: the default step)."""

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
    protocol: str | None = None
    keep_frames: bool = False  # the GUI's hover: a curve metric adds "frames" (the images the model scored)


def metric_names() -> tuple[str, ...]:
    return tuple(METRICS)


def spec(name: str) -> MetricSpec:
    if name not in METRICS:
        raise UnknownNameError("metric", name, list(METRICS))
    return METRICS[name]


def params_of(names: Iterable[str]) -> Params:
    """The settings the metrics ``names`` read, each once (what the GUI offers for the curves it draws)."""
    seen: dict[str, Any] = {}
    for n in names:
        for p in spec(n).params:
            seen.setdefault(p.name, p)
    return Params(*seen.values())


def applies(s: MetricSpec, call: MetricCall) -> bool:
    """Whether metric ``s`` scores this one map: it has a per-map ``compute``, its inputs are there (a box or
    mask, a reference map) and, when it re-runs the method, a method is named (not the random baseline)."""
    if s.compute is None:
        return False
    if "boxes" in s.needs and call.box is None and call.mask is None:
        return False
    if "reference" in s.needs and call.reference_map is None:
        return False
    return not (s.reruns_method and not call.method)


def compute(name: str, call: MetricCall) -> dict:
    """Run metric ``name`` on ``call``; a JSON-friendly dict (see each metric's module for its fields).

    A score-only metric runs inside ``engine.quiet_torch``: its forwards go to ONNX Runtime where that is the
    model's engine, and torch's idle threads would take the cores ORT needs (explorer/models/engine.py)."""
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
    quiet = contextlib.nullcontext()
    if s.score_only:
        from explorer.models.engine import quiet_torch

        quiet = quiet_torch(call.model)
    with quiet:
        return s.compute(call)


def compute_rows(names: Iterable[str], call: MetricCall) -> Iterator[tuple[str, str, Any, Any]]:
    """The CSV rows of every metric of ``names`` that applies to ``call``, in registration order, each metric's
    rows followed by those it combines with the metrics before it (insertion: ins − del)."""
    wanted = set(names)
    done: dict[str, dict] = {}
    for name, s in list(METRICS.items()):
        if name not in wanted or not applies(s, call):
            continue
        done[name] = compute(name, call)
        yield from rows(name, done[name])
        if s.combine is not None:
            yield from s.combine(done)


def curves_of(name: str, result: dict) -> dict[str, tuple[dict, Any]]:
    """The curves of one result as the Evaluation panel draws them: ``{mode: (curve, frames)}``, mode ``name``
    for the headline curve and ``name_<curve>`` for named ones (``road_morf``); ``frames`` from a call with
    ``keep_frames`` (else None). A named curve's dict carries its own ``auc`` and ``substrate``."""
    frames = result.get("frames", {})
    out: dict[str, tuple[dict, Any]] = {}
    if "curve" in result:
        auc = result.get("auc", result.get("aopc"))
        out[name] = ({"mode": name, **result["curve"], "auc": auc, "step": result.get("step"),
                      "substrate": result.get("substrate")}, frames.get(name))
    for cname, c in result.get("curves", {}).items():
        mode = f"{name}_{cname}"
        out[mode] = ({"mode": mode, "step": None, **c}, frames.get(mode))
    return out


def rows(name: str, result: dict) -> list[tuple[str, str, Any, Any]]:
    """(metric, quantity, value, fraction) rows: scalars flattened with dotted names, curves as points
    (``quantity = "score"`` for the headline curve, ``"<curve>.score"`` for named ones); the keys the spec
    omits (the target, every row's own column) and the GUI's ``frames`` are left out."""
    out: list[tuple[str, str, Any, Any]] = []
    omit = spec(name).omit if name in METRICS else ("target",)

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
        elif isinstance(obj, np.ndarray) and obj.size <= 64:
            scalar(prefix, obj.tolist())

    for k, v in result.items():
        if k == "frames":
            continue
        if k == "curve":
            out += [(name, "score", float(s), float(f)) for f, s in zip(v["fractions"], v["scores"])]
        elif k == "curves":
            for cname, c in v.items():
                out += [(name, f"{cname}.score", float(s), float(f)) for f, s in zip(c["fractions"], c["scores"])]
        elif k in omit:
            continue
        else:
            scalar(k, v)
    return out
