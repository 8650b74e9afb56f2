"""``explain``, ``explain_iter`` and ``evaluate``: the runner and the metrics the CLI uses, for Python callers.

``stream`` is the one path from (model, image, method, target, parameters) to explanations: the CLI's
``explorer explain`` drives it too, so both check the same things in the same order and fail with the
same messages (unknown method or parameter, class out of range, a model that is back in training mode).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from explorer.api.images import as_rgb
from explorer.api.model import as_loaded
from explorer.api.result import Explanation
from explorer.core.cancel import CancelToken
from explorer.core.errors import ExplorerError, UnknownNameError


def stream(model: Any, image: Any, method: str = "gradcam", target: int | str | None = None, *,
           seed: int = 0, cancel: CancelToken | None = None, priors: Iterable[Explanation] | None = None,
           image_path: str | None = None, **params: Any) -> Iterator[Explanation]:
    """Yield an ``Explanation`` per step of ``method``; the last is complete (or cancelled)."""
    from explorer.io.export import provenance
    from explorer.methods import get_method, run
    from explorer.methods.base import prepare_context

    rgb, path = as_rgb(image)
    cls = get_method(method)  # an unknown method is named before the model is touched
    loaded = as_loaded(model)
    inst = cls(loaded, **params)  # validates the parameters (ParamError) and what the method needs of the model
    ctx = prepare_context(loaded, rgb, target, seed, cancel)
    ctx.priors = _priors(priors, ctx.placement)
    record = provenance(image_path or path, loaded, ctx.target, loaded.predict(ctx.x, 5))
    for update in run(inst, loaded, rgb, context=ctx):
        core = update.explanation
        if not update.done:  # the runner completes its last partial in place: hand out a snapshot instead
            core = replace(core, timings=dict(core.timings), info=dict(core.info))
        yield Explanation(core, rgb, image_path or path, record, update.message)


def explain_iter(model: Any, image: Any, method: str = "gradcam", target: int | str | None = None, *,
                 seed: int = 0, cancel: CancelToken | None = None, priors: Iterable[Explanation] | None = None,
                 **params: Any) -> Iterator[Explanation]:
    """Like ``explain``, but yield the partial explanations as the method computes them.

    Sampling and optimising methods (rise, borex, fido, smoothgrad, ...) yield every few batches; one-pass
    methods yield once. Each item is an ``Explanation`` (``progress`` in [0, 1], ``complete`` on the last),
    so a notebook can draw a progress bar or a live plot. To stop early, set ``cancel`` (a
    ``explorer.CancelToken``, e.g. from a button's callback or another thread): the run stops at its next
    step and the last item is the partial result with ``cancelled=True``. Interrupting the kernel
    (KeyboardInterrupt) or leaving the loop early stops at once; hooks and any switch a method set on the
    model are removed or restored before the interrupt reaches you.
    """
    yield from stream(model, image, method, target, seed=seed, cancel=cancel, priors=priors, **params)


def explain(model: Any, image: Any, method: str = "gradcam", target: int | str | None = None, *,
            seed: int = 0, priors: Iterable[Explanation] | None = None, **params: Any) -> Explanation:
    """Explain why ``model`` gives ``image`` its score for ``target``; return the finished ``Explanation``.

    ``model``: an ``nn.Module`` returning (N, K) class scores (wrapped by ``load_model`` on first use), the
    result of ``explorer.load_model``, or a spec such as ``"efficientnet_lite0"``. ``image``: a file path, a
    PIL image, an H×W×3 uint8 array, or a (3, H, W) float tensor in [0, 1] (not normalised: explorer
    applies the model's mean and std). ``method``: any name of ``explorer.list_methods()``; its parameters
    go as keywords (``n=2000``, ``layer="layer4"``) and are validated as on the command line. ``target``: a
    class index or name (default: the model's top-1). ``seed`` makes sampling methods reproducible;
    ``priors``: earlier explanations a refining method (borex) may start from.

    User mistakes raise an ``explorer.ExplorerError`` subclass with the CLI's message (``ParamError``,
    ``UnknownNameError``, ``TargetError``, ``ImageReadError``, ``ModelLoadError``, ``UnsupportedError``).
    """
    final = None
    for final in stream(model, image, method, target, seed=seed, priors=priors, **params):
        pass
    return final


def _priors(priors: Iterable[Explanation] | Explanation | None, placement) -> dict[str, np.ndarray]:
    """Other results a method may build on (BOREx), by method and layer name, in model-input space."""
    if priors is None:
        return {}
    if isinstance(priors, Explanation):
        priors = [priors]
    out: dict[str, np.ndarray] = {}
    for e in priors:
        if not isinstance(e, Explanation):
            raise ExplorerError(f"priors must be Explanations returned by explorer.explain, not {type(e).__name__}")
        core = e._core
        if core.placement.input_hw != placement.input_hw or core.placement.image_hw != placement.image_hw:
            raise ExplorerError(f"the prior {core.method!r} was computed for another image or model input size "
                                f"({core.placement.image_hw} at {core.placement.input_hw}, here {placement.image_hw} "
                                f"at {placement.input_hw})")
        out.setdefault(core.method, core.raw[core.main])
        for name, m in core.raw.items():
            out.setdefault(name, m)
    return out


def evaluate_metrics() -> tuple[str, ...]:
    """The metrics ``evaluate`` computes: every registered one that scores a single map (not the pointing game
    or a reference map, whose inputs it has no keyword for, nor the agreement between several maps)."""
    from explorer.evaluation.registry import METRICS

    return tuple(n for n, s in METRICS.items()
                 if s.compute is not None and not {"boxes", "reference", "methods"} & set(s.needs))


def __getattr__(name: str) -> Any:
    if name == "EVALUATE_METRICS":  # read from the registry when asked: a metric registered later is included
        return evaluate_metrics()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def evaluate(model: Any, image: Any, explanation: Any, metrics: Sequence[str] = ("deletion", "insertion"), *,
             target: int | str | None = None, map_name: str | None = None, cancel: CancelToken | None = None,
             layer: str | None = None, **options: Any) -> dict[str, dict[str, Any]]:
    """Faithfulness of a map: deletion / insertion curves (RISE protocol), the confidence drop, and every other
    metric of ``EVALUATE_METRICS`` (ROAD, pixel flipping, region perturbation, removal gain, sanity, sMPRT, eMPRT).

    ``explanation``: an ``Explanation`` (its map ``map_name``, default the headline map, and its target; ``layer``
    is the keyword's old name) or an H×W
    map (image or model-input size). ``image=None`` takes the explanation's own image. Returns
    ``{metric: result}``; a curve is ``{"auc", "fractions", "scores", "step", "substrate", "target"}``
    (numpy arrays for the curve; low deletion AUC and high insertion AUC are good), ``confidence`` is
    ``{"drop" (%), "increase", "p_image", "p_masked", "substrate", "target"}``; the others are the dicts of
    ``explorer.evaluation.registry.compute``. The metrics that re-run the method need an ``Explanation``.

    ``options``: the metrics' settings as keywords, the same names as ``explorer evaluate``'s flags
    (``step``: pixels changed per curve point, default HW/224; ``deletion_substrate``, ``road_noise``,
    ``emprt_bins``, ``seed``, ...: ``explorer.evaluation.registry.option_params()`` lists them all); an
    unknown name or a value out of range raises ``ParamError``.
    """
    from explorer.evaluation import registry
    from explorer.methods.base import prepare_context

    if isinstance(metrics, str):
        metrics = [metrics]
    valid = evaluate_metrics()
    for m in metrics:
        if m not in valid:
            raise UnknownNameError("metric", m, valid)
    opts = registry.Options.from_values(options)
    if image is None and isinstance(explanation, Explanation):
        image = explanation.image
    rgb, _ = as_rgb(image)
    method, params, maps = None, {}, {}
    if isinstance(explanation, Explanation):
        if explanation.image.shape != rgb.shape:
            raise ExplorerError(f"the explanation is of a {explanation.image.shape[1]}x{explanation.image.shape[0]} "
                                f"image, not of this {rgb.shape[1]}x{rgb.shape[0]} one")
        saliency = explanation.maps[explanation._map_name(map_name, layer)]
        if target is None:
            target = explanation.target
        method, params, maps = explanation.method, dict(explanation._core.params or {}), dict(explanation._core.raw)
    else:
        saliency = explanation  # an H×W map (image or model-input size), numpy or torch; checked by the metric
    loaded = as_loaded(model)
    ctx = prepare_context(loaded, rgb, target, opts.seed, cancel=cancel)
    out: dict[str, dict[str, Any]] = {}
    for m in metrics:
        call = registry.MetricCall(loaded, rgb, saliency, context=ctx, method=method, params=params, options=opts,
                                   maps=maps, cancel=cancel)
        out[m] = _as_arrays(registry.compute(m, call))
    return out


def _with_settings(fn):
    """``fn``'s signature with every metric setting declared now as a keyword-only parameter, so ``help()`` and
    editors list them (a metric registered later is accepted through ``**options`` all the same)."""
    import inspect

    from explorer.evaluation.registry import option_params

    sig = inspect.signature(fn)
    head = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    tail = [p for p in sig.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    settings = [inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=p.default)
                for p in option_params() if p.name not in sig.parameters]
    fn.__signature__ = sig.replace(parameters=head + settings + tail)
    return fn


evaluate = _with_settings(evaluate)


def _as_arrays(result: dict[str, Any]) -> dict[str, Any]:
    """A registry result as the API gives it: a headline curve's points as top-level numpy arrays."""
    curve = result.pop("curve", None)
    if curve is not None:
        result["fractions"] = np.asarray(curve["fractions"], dtype=np.float64)
        result["scores"] = np.asarray(curve["scores"], dtype=np.float64)
    for c in result.get("curves", {}).values():
        c["fractions"] = np.asarray(c["fractions"], dtype=np.float64)
        c["scores"] = np.asarray(c["scores"], dtype=np.float64)
    return result
