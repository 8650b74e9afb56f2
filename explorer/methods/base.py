"""The method contract and the runner every caller (CLI, worker thread, evaluation) goes through.

A method is a small class: static configuration (its validated parameters and the model) in the
constructor, the per-request data (input, target, seed, cancel token) in ``steps(ctx)``, a generator that
yields ``MethodStep``s: progress and the running maps in model-input space. The runner checks the cancel token at
every yield, times the run, resamples maps to the original image's resolution (lazily), and wraps each
step in a ``RunUpdate`` carrying a partial ``MethodResult``.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, ClassVar, Iterator

import numpy as np
import torch

from explorer.core.cancel import NEVER, CancelToken
from explorer.core.catalog import CatalogEntry, Family
from explorer.core.errors import Cancelled, ExplorerError, NonFiniteMapError
from explorer.core.params import Params
from explorer.core.registry import Registry
from explorer.core.types import MapSpec, MethodResult, MethodStep, Needs, Placement, RunUpdate, as_map2d
from explorer.models.engine import quiet_torch
from explorer.models.loaded import LoadedModel

METHODS: Registry[type["Method"]] = Registry("method")


def register(name: str):
    """Class decorator: ``@register("rise")`` sets ``cls.name`` and adds it to the registry."""

    def deco(cls):
        cls.name = name
        return METHODS.register(name)(cls)

    return deco


@dataclass
class Context:
    """Per-request data for one run.

    ``x``: the normalised model input (1, 3, h, w) on the model's device. ``input_rgb``: the same image as
    (h, w, 3) uint8 (for superpixels and in-painting). ``image``: the original RGB image. ``priors``: maps
    from other runs a method may build on (BOREx), by layer or method name, in input space.
    """

    model: LoadedModel
    x: torch.Tensor
    input_rgb: np.ndarray
    image: np.ndarray
    placement: Placement
    target: int
    seed: int
    cancel: CancelToken = NEVER
    priors: dict[str, np.ndarray] = field(default_factory=dict)
    state: dict[str, Any] | None = None  # a previous run's resumable state (e.g. BOREx), when given

    @property
    def device(self) -> torch.device:
        return self.model.device

    def generator(self, device: torch.device | str | None = None, offset: int = 0) -> torch.Generator:
        """A torch generator seeded from the run's seed (on ``device``, default the model's)."""
        g = torch.Generator(device=device or self.device)
        g.manual_seed(int(self.seed) + offset)
        return g

    def numpy_rng(self, offset: int = 0) -> np.random.Generator:
        return np.random.default_rng(int(self.seed) + offset)


class Method:
    """Base class of all methods. Subclasses set the class attributes and implement ``steps``."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    family: ClassVar[Family | str] = ""  # a Family member
    paper: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    needs: ClassVar[Needs] = Needs.SCORES
    outputs: ClassVar[tuple[MapSpec, ...]] = (MapSpec("salient"),)
    class_agnostic: ClassVar[bool] = False
    params: ClassVar[Params] = Params()
    # Small parameter values that keep a run to a few seconds on a CPU (contract tests, GUI tests, demos).
    quick: ClassVar[dict[str, Any]] = {}
    # Runs many score-only forwards (``LoadedModel.logits``): the CLI decides the scoring engine before it starts.
    scoring: ClassVar[bool] = False

    def __init__(self, model: LoadedModel, **values: Any):
        model.check_supports(self.needs, f"method {self.name!r}")
        self.model = model
        self.values = self.params.resolve(values, str(model.device))
        self.p = SimpleNamespace(**self.values)
        self.validate()

    def validate(self) -> None:
        """Checks across parameters, or against the model (raise ParamError/ExplorerError)."""

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        raise NotImplementedError

    @classmethod
    def refuses(cls, model) -> bool:
        """Whether ``validate`` would refuse ``model`` at the default parameters for a structural reason the
        method checks itself (read by the "use X instead" of refusals); False unless a method says so."""
        return False

    @classmethod
    def resumable(cls, old: dict[str, Any], new: dict[str, Any]) -> bool:
        """Whether a finished run with parameters ``old`` (resolved) can continue from its stored
        ``info["state"]`` to ``new`` instead of starting again; only a method that keeps such a state says yes."""
        return False

    # ------------------------------------------------------------------ description
    @classmethod
    def catalog_entry(cls) -> CatalogEntry:
        """This method as the front ends see it (the worker's catalog), before any model is loaded."""
        return CatalogEntry(cls.name, cls.title or cls.name, cls.family, cls.paper, cls.summary, cls.needs,
                            cls.class_agnostic, tuple(cls.outputs), cls.params, dict(cls.quick), cls.resumable)

    @classmethod
    def describe(cls) -> dict:
        return cls.catalog_entry().describe()

    @classmethod
    def signed_of(cls, layer: str) -> bool:
        for o in cls.outputs:
            if o.name == layer:
                return o.signed
        return False


# Every method module is registered before these are called: this module is explorer.methods.base, so importing
# it ran the package's __init__, which imports every method module (importing the package here again would be
# a cycle, base -> package -> base, for nothing).
def get_method(name: str) -> type[Method]:
    return METHODS.get(name)


def method_names() -> list[str]:
    return METHODS.names()


def prepare_context(model: LoadedModel, image: np.ndarray, target: int | str | None = None,
            seed: int = 0, cancel: CancelToken | None = None,
            priors: dict[str, np.ndarray] | None = None, state: dict | None = None) -> Context:
    """Preprocess ``image`` (H×W×3 uint8) for ``model`` and resolve the target (default: top-1)."""
    input_rgb, placement = model.preprocess.input_rgb(image)
    x = model.preprocess.normalise(input_rgb, model.device)
    if target is None:
        target_idx = model.predict(x, 1)[0].index
    else:
        target_idx = model.class_index(target)
    return Context(model, x, input_rgb, image, placement, target_idx, int(seed), cancel or NEVER,
                   dict(priors or {}), state)


def check_finite(raw: dict[str, np.ndarray], method: str, info: dict, model_id: str) -> None:
    """Every map of every step must be finite: a NaN or infinite value (e.g. LRP dividing by a zero
    LayerNorm variance) is an error naming method, layer and model, raised before anything is shown or
    written, so the caller's earlier results stay as they were."""
    for name, m in raw.items():
        bad = ~np.isfinite(m)
        if bad.any():
            layers = info.get("layers")
            where = info.get("layer") or (", ".join(map(str, layers)) if isinstance(layers, (list, tuple)) else "")
            raise NonFiniteMapError(
                f"{method} on model {model_id!r}{f' (layer {where})' if where else ''} produced {int(bad.sum())} NaN "
                f"or infinite value(s) in its {name!r} map; nothing was kept. Try another method or layer")


def run(method: str | Method, model: LoadedModel, image: np.ndarray, *, target: int | str | None = None,
        params: dict[str, Any] | None = None, seed: int = 0, cancel: CancelToken | None = None,
        priors: dict[str, np.ndarray] | None = None, state: dict | None = None,
        context: Context | None = None) -> Iterator[RunUpdate]:
    """Run a method, yielding a ``RunUpdate`` per step; the last has ``done=True``.

    When the cancel token is set the generator is closed at the next yield and one last update is
    yielded with ``explanation.cancelled = True`` holding the last partial maps (usable as they are).
    """
    inst = method if isinstance(method, Method) else get_method(method)(model, **(params or {}))
    cls = type(inst)
    ctx = context or prepare_context(model, image, target, seed, cancel, priors, state)
    quiet = contextlib.nullcontext()
    if cls.scoring:  # decide the engine first: ORT's pool takes torch's thread count when its session opens
        model.resolve_engine()
        quiet = quiet_torch(model)
    t0 = time.perf_counter()
    passes0 = dict(model.passes)
    gen = inst.steps(ctx)
    last: MethodResult | None = None
    n = 0

    def make(step: MethodStep, complete: bool) -> MethodResult:
        raw = {k: as_map2d(v, f"map {k!r} of {cls.name}") for k, v in step.maps.items()}
        check_finite(raw, cls.name, step.info, model.id)
        return MethodResult(
            method=cls.name, raw=raw, signed={k: cls.signed_of(k) for k in raw}, placement=ctx.placement,
            target=None if cls.class_agnostic else ctx.target, target_name=model.labels[ctx.target],
            params=dict(inst.values), seed=ctx.seed, model_id=model.id,
            timings={"seconds": time.perf_counter() - t0, "steps": n,
                     **{k: v - passes0[k] for k, v in model.passes.items()}}, info=dict(step.info),
            progress=float(step.progress), complete=complete)

    quiet.__enter__()  # left in the finally below: the generator may be closed between two steps
    try:
        for step in gen:
            n += 1
            last = make(step, complete=False)
            if ctx.cancel.cancelled:
                raise Cancelled()
            yield RunUpdate(float(step.progress), last, False, step.message)
    except Cancelled:
        gen.close()
        if last is None:
            raise
        last.cancelled = True
        last.timings["seconds"] = time.perf_counter() - t0
        yield RunUpdate(last.progress, last, True, "cancelled")
        return
    finally:
        gen.close()
        quiet.__exit__(None, None, None)
    if last is None:
        raise ExplorerError(f"method {cls.name!r} produced no result")
    last.complete = True
    last.progress = 1.0
    last.timings["seconds"] = time.perf_counter() - t0
    yield RunUpdate(1.0, last, True, "done")


def explain(method: str | Method, model: LoadedModel, image: np.ndarray, **kw: Any) -> MethodResult:
    """Run to completion and return the final Explanation."""
    final = None
    for update in run(method, model, image, **kw):
        final = update
    return final.explanation


prepare = prepare_context  # old name kept (issue 32): methods and metrics outside this tree call it
