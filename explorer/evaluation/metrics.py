"""Model-based metrics besides the curves: average drop / increase in confidence and the cascading
model-parameter randomisation sanity check. Both batched through the model's batch policy, both with
progress (``iter_*`` generators yielding ``MetricProgress``) and cancel.

- Confidence (Chattopadhay et al. 2018, Grad-CAM++ §6.1): the map, clipped at 0 and divided by its
  maximum, is used as a soft keep-mask on the image (removed pixels → the substrate, default ``black``:
  the image multiplied by the map, as in the paper). With Y = P_c(image) and O = P_c(masked image):
  drop = max(0, Y − O) / Y · 100 (%), increase = [O > Y]. Averaged over a folder they give the
  *average drop* and the *increase in confidence* (% of images).
- Sanity check (Adebayo et al. 2018, "Sanity checks for saliency maps", cascading randomisation): the
  model's parametrised layers are re-initialised cumulatively from the output towards the input; after
  each stage the method is re-run and the new map compared with the original by Spearman rank
  correlation (signed and absolute) and top-10 % IoU. A map that does not change when the weights are
  destroyed does not explain the model. The shared model is never modified: the module is deep-copied.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Iterator

import numpy as np
import torch

from explorer.core.cancel import CancelToken
from explorer.core.errors import UnsupportedError
from explorer.evaluation import agreement
from explorer.evaluation.base import MetricProgress, input_space, run_to_end, token
from explorer.evaluation.causal import make_substrate
from explorer.methods.base import Context, get_method, prepare_context, run
from explorer.models.loaded import LoadedModel
from explorer.models.outputs import ModelForward
from explorer.perturb.scoring import score_batch


# --------------------------------------------------------------------------- confidence
def iter_confidence(model: LoadedModel, image_rgb: np.ndarray, saliency: Any, target: int | str | None = None, *,
                    substrate: Any = "black", cancel: CancelToken | None = None,
                    context: Context | None = None) -> Iterator[MetricProgress]:
    """Generator form of ``confidence``; the last ``MetricProgress`` carries the result dict."""
    cancel = token(cancel)
    ctx = context or prepare_context(model, image_rgb, target)
    cancel.check()
    m = input_space(saliency, ctx.placement).astype(np.float64)
    m = np.where(np.isfinite(m), m, 0.0).clip(min=0.0)
    peak = m.max()
    keep = m / peak if peak > 0 else m
    sub = make_substrate(substrate, ctx, "deletion")
    masks = torch.stack([torch.ones_like(ctx.x[0, :1]), torch.from_numpy(keep).float().to(ctx.x.device)[None]])
    s = score_batch(model, sub, ctx.x, masks)[:, ctx.target].double().cpu().numpy()
    y, o = float(s[0]), float(s[1])
    result = {"drop": max(0.0, y - o) / y * 100.0 if y > 0 else 0.0, "increase": bool(o > y),
              "p_image": y, "p_masked": o, "substrate": sub.name, "target": int(ctx.target)}
    yield MetricProgress(1.0, f"confidence drop {result['drop']:.1f}%", result, True)


def confidence(model: LoadedModel, image_rgb: np.ndarray, saliency: Any, target: int | str | None = None,
               **kw: Any) -> dict[str, Any]:
    """{"drop" (%), "increase" (bool), "p_image", "p_masked", "substrate", "target"} for one image."""
    return run_to_end(iter_confidence(model, image_rgb, saliency, target, **kw))


# --------------------------------------------------------------------------- sanity check
def parametrised_layers(module: torch.nn.Module) -> list[str]:
    """Names of the modules that own parameters directly, in registration order (≈ input → output)."""
    return [n for n, m in module.named_modules() if n and any(True for _ in m.parameters(recurse=False))]


def randomisation_stages(names: list[str], n_stages: int) -> list[list[str]]:
    """Cumulative stages, top-down: stage 1 = the last (logit) layer, the rest split evenly after it."""
    top_down = names[::-1]
    if not top_down:
        return []
    n_stages = max(1, min(int(n_stages), len(top_down)))
    rest = [list(g) for g in np.array_split(np.array(top_down[1:], dtype=object), n_stages - 1)] if n_stages > 1 else []
    groups = [[top_down[0]]] + [g for g in rest if len(g)]
    return groups


def _reinit(module: torch.nn.Module, generator_seed: int) -> None:
    """Re-initialise one module's own parameters (its ``reset_parameters`` or N(0, 0.02)), seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(generator_seed)
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
        else:
            with torch.no_grad():
                for p in module.parameters(recurse=False):
                    p.normal_(0.0, 0.02)


def _copy_model(model: LoadedModel) -> LoadedModel:
    if model.module is None:
        raise UnsupportedError(
            f"the sanity check re-initialises the model's weights, which the {model.kind} model {model.id!r} "
            "does not expose (black box); load a torch model to run it")
    try:
        clone = copy.deepcopy(model.module)
    except Exception as exc:  # noqa: BLE001 - e.g. a scripted module that cannot be copied
        raise UnsupportedError(
            f"the sanity check cannot copy model {model.id!r}: {type(exc).__name__}: {exc}") from None
    # the clone goes through the same wrapper as the original (grey input, dtype, output selection, the binary
    # pair): the bare module would take other inputs and give other scores than the model being explained
    forward = clone
    if isinstance(model.forward, ModelForward):
        forward = copy.copy(model.forward)
        forward.inner = clone
    # engine=None: the clone's weights are re-initialised, so the original's export does not describe them
    return dataclasses.replace(model, forward=forward, module=clone, _layers=None, _batch=None, notes=list(model.notes),
                               engine=None)


def _final_map(method: str, model: LoadedModel, image_rgb: np.ndarray, ctx: Context, params: dict,
               seed: int, cancel: CancelToken) -> np.ndarray:
    inst = get_method(method)(model, **(params or {}))
    last = None
    for upd in run(inst, model, image_rgb, context=ctx):
        cancel.check()
        last = upd.explanation
    return last.raw[last.main]


def iter_sanity_check(model: LoadedModel, image_rgb: np.ndarray, method: str, target: int | str | None = None, *,
                      params: dict | None = None, n_stages: int = 5, seed: int = 0, topk: float = 0.1,
                      cancel: CancelToken | None = None, reference: Any = None) -> Iterator[MetricProgress]:
    """Generator form of ``sanity_check``; the last ``MetricProgress`` carries the result dict.

    ``reference``: the method's map on the intact model if already computed (input space), else it is run.
    """
    cancel = token(cancel)
    cls = get_method(method)
    model.check_supports(cls.needs, f"method {method!r}")
    clone = _copy_model(model)
    ctx = prepare_context(model, image_rgb, target, seed=seed, cancel=cancel)
    ctx_clone = dataclasses.replace(ctx, model=clone)
    stages = randomisation_stages(parametrised_layers(clone.module), n_stages)
    total = len(stages) + (1 if reference is None else 0)
    done = 0
    if reference is None:
        reference = _final_map(method, model, image_rgb, ctx, params or {}, seed, cancel)
        done += 1
        yield MetricProgress(done / total, f"{method}: map on the intact model")
    ref = input_space(reference, ctx.placement)
    rows = []
    randomised: list[str] = []
    for i, group in enumerate(stages):
        cancel.check()
        for name in group:
            _reinit(clone.module.get_submodule(name), seed * 100_003 + len(randomised))
            randomised.append(name)
        m = _final_map(method, clone, image_rgb, ctx_clone, params or {}, seed, cancel)
        rows.append({
            "stage": i + 1, "randomised_from": group[0], "randomised_to": group[-1], "n_layers": len(randomised),
            "spearman": agreement.spearman(ref, m), "spearman_abs": agreement.spearman(ref, m, absolute=True),
            "topk_iou": agreement.topk_iou(ref, m, topk),
        })
        done += 1
        yield MetricProgress(done / total, f"{method}: randomised {len(randomised)} layers "
                                     f"(spearman {rows[-1]['spearman']:.3f})")
    result = {"method": method, "target": int(ctx.target), "stages": rows, "n_layers_total": len(randomised),
              "seed": int(seed)}
    yield MetricProgress(1.0, "sanity check done", result, True)


def sanity_check(model: LoadedModel, image_rgb: np.ndarray, method: str, target: int | str | None = None,
                 **kw: Any) -> dict[str, Any]:
    """Cascading randomisation: {"method", "target", "stages": [{stage, randomised_from, randomised_to,
    n_layers, spearman, spearman_abs, topk_iou}], ...}. The shared ``model`` is left untouched."""
    return run_to_end(iter_sanity_check(model, image_rgb, method, target, **kw))
