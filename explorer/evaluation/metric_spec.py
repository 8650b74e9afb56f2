"""What a metric declares and how it is registered: ``MetricSpec``, the ``METRICS`` table, ``register``.

A metric is one module under ``explorer/evaluation/specs/`` that calls ``register(MetricSpec(...))``: its name,
what it needs, which way is better, its ``Params`` and one ``compute(call) -> dict``. Everything else (the
``explorer evaluate`` options, the per-image CSV rows, ``explorer.evaluate``'s keywords, the GUI's settings) is
read from the spec by ``explorer.evaluation.registry``, which imports every module of that package.

This module imports no numpy and no torch (the command line's parser reads the specs' ``Params``), and nothing
of the evaluation package, so a spec module can import it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from explorer.core.params import Param, Params

# Parameters several metrics share, declared once (like explorer.perturb.params for the methods).
TOPK = Param("topk", "float", 0.1, "top-k fraction for IoU (agreement, sanity; default 0.1)", low=0.0, high=1.0,
             low_open=True, step=0.05)
SEED = Param("seed", "int", 0, "seed of every random draw of the metrics (random removal, noise, "
             "randomised weights)", low=0, high=2**32 - 1)

# What a metric may need beyond one map and the model; ``explorer evaluate`` skips a metric whose input is
# absent for a photo (no box, no reference map) and the method-rerunning ones for the random baseline.
NEEDS = ("boxes", "reference", "weights", "methods")


@dataclass(frozen=True)
class MetricSpec:
    """One metric.

    ``compute(call)`` returns a JSON-friendly dict: scalars, nested dicts of scalars, a headline curve as
    ``"curve": {"fractions", "scores"}`` or named ones as ``"curves": {name: {...}}`` (``registry.rows`` turns
    it into CSV rows). ``params``: the settings it reads from ``call.options`` (CLI flags of the same names).
    ``needs``: of ``NEEDS``. ``reruns_method``: it re-runs the method on a modified model (needs the method's
    name and torch's autograd). ``score_only``: every forward it makes is score-only, so it runs inside
    ``engine.quiet_torch`` (ONNX Runtime gets the cores). ``omit``: result keys that are not rows (the target
    is every row's own column). ``combine(done)``: rows that join this metric's result with those computed
    before it for the same map (``done``: name -> result), e.g. insertion minus deletion.
    """

    name: str
    summary: str
    better: str
    compute: Callable[[Any], dict] | None
    params: Params = field(default_factory=Params)
    needs: tuple[str, ...] = ()
    reruns_method: bool = False
    score_only: bool = False
    omit: tuple[str, ...] = ("target",)
    combine: Callable[[dict[str, dict]], list[tuple[str, str, Any, Any]]] | None = None

    def __post_init__(self) -> None:
        bad = [n for n in self.needs if n not in NEEDS]
        if bad:
            raise ValueError(f"metric {self.name!r} needs {bad}: not among {NEEDS}")
        if not isinstance(self.params, Params):
            raise TypeError(f"metric {self.name!r}: params must be a Params declaration")
        if self.reruns_method and self.score_only:
            raise ValueError(f"metric {self.name!r} re-runs the method (autograd): it cannot be score-only")

    def describe(self) -> dict:
        return {"name": self.name, "summary": self.summary, "better": self.better, "needs": list(self.needs),
                "params": self.params.describe()}


# name -> spec, in registration order (the order of the CSV rows and of the metric lists)
METRICS: dict[str, MetricSpec] = {}


def register(spec: MetricSpec) -> MetricSpec:
    """Add ``spec`` to ``METRICS``; a name registered twice, or a setting declared differently by two metrics
    (they share one flag), is refused."""
    if spec.name in METRICS and METRICS[spec.name] is not spec:
        raise ValueError(f"metric {spec.name!r} registered twice")
    for p in spec.params:
        if p.name == SEED.name:
            raise ValueError(f"metric {spec.name!r} declares 'seed', which every metric shares (metric_spec.SEED)")
        for other in METRICS.values():
            if other.name != spec.name and p.name in other.params and other.params[p.name] != p:
                raise ValueError(f"metric {spec.name!r} declares {p.name!r} unlike metric {other.name!r}; "
                                 f"metrics share a setting by declaring the same Param")
    METRICS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a metric (tests that register a toy one)."""
    METRICS.pop(name, None)


def option_params() -> Params:
    """Every registered metric's settings, each once, then ``seed``: what ``registry.Options`` holds."""
    seen: dict[str, Param] = {}
    for s in METRICS.values():
        for p in s.params:
            seen.setdefault(p.name, p)
    seen[SEED.name] = SEED
    return Params(*seen.values())


def curve_result(c: Any) -> dict:
    """A ``causal.Curve`` as a result: the AUC, its step and substrate, and the curve."""
    return {"auc": float(c.auc), "step": int(c.step), "substrate": c.substrate, "target": int(c.target),
            "curve": {"fractions": [float(f) for f in c.fractions], "scores": [float(s) for s in c.scores]}}


def needs_method(call: Any, name: str) -> str:
    from explorer.core.errors import ParamError

    if not call.method:
        raise ParamError(f"metric {name!r} re-runs the method on a randomised model: give the method's name")
    return call.method
