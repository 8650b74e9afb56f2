"""Model-parameter randomisation, the smooth and the efficient variants (Hedström, Weber, Lapuschkin, Höhne,
"Sanity Checks Revisited: An Exploration to Repair the Model Parameter Randomisation Test", XAI in Action
workshop, NeurIPS 2023), beside the cascading check of Adebayo et al. in ``explorer.evaluation.metrics``.

- *sMPRT* (smooth MPRT): the original MPRT compares maps that are noisy in themselves (shattered
  gradients), so a low similarity may be noise, not sensitivity. sMPRT denoises each map by averaging the
  method over ``samples`` noisy copies of the input (σ = ``noise`` · (max − min) of the normalised input;
  the last copy is noise-free, as in Quantus), normalises it by the square root of its mean square and takes
  its absolute value, then randomises the layers cumulatively **bottom-up** (input first: the order the
  paper recommends, since top-down randomisation keeps the input layers' structure in the map) and reports
  the Spearman correlation with the original smoothed map after each stage. Lower is better; the summary
  is the mean over stages (``smprt``) and the last stage (``smprt_last``).
- *eMPRT* (efficient MPRT): randomise *all* layers once and compare the *complexity* of the map before and
  after: the discrete entropy of its histogram (100 equal bins, Quantus' ``discrete_entropy``).
  eMPRT = (H_random − H_original) / H_original: a map that explains the model should become more complex
  (noisier) when the model is destroyed, so higher is better. The entropy of the model's own softmax output
  before and after is recorded too (``model_entropy_*``), as Quantus' extra scores do.

The shared model is never modified: the module is deep-copied (the same helpers as the Adebayo check).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import numpy as np
import torch

from explorer.core.cancel import CancelToken
from explorer.core.errors import ParamError
from explorer.evaluation import agreement
from explorer.evaluation.base import MetricProgress, input_space, run_to_end, token
from explorer.evaluation.metrics import _copy_model, _final_map, _reinit, parametrised_layers
from explorer.methods.base import Context, get_method, prepare_context
from explorer.models.loaded import LoadedModel

ORDERS = ("bottom_up", "top_down")


def cumulative_stages(names: list[str], n_stages: int, order: str = "bottom_up") -> list[list[str]]:
    """Layer names split into ``n_stages`` consecutive groups in randomisation order (applied cumulatively)."""
    if order not in ORDERS:
        raise ParamError(f"unknown layer order {order!r}; valid: {', '.join(ORDERS)}")
    seq = list(names) if order == "bottom_up" else list(names)[::-1]
    if not seq:
        return []
    n = max(1, min(int(n_stages), len(seq)))
    return [list(g) for g in np.array_split(np.array(seq, dtype=object), n) if len(g)]


def second_moment_normalise(a: np.ndarray) -> np.ndarray:
    """a / sqrt(mean(a²)) (Binder et al. 2022; Quantus' normalise_by_average_second_moment_estimate)."""
    a = np.nan_to_num(np.asarray(a, dtype=np.float64))
    rms = float(np.sqrt(np.mean(a * a)))
    return a / rms if rms > 0 else a


def discrete_entropy(a: np.ndarray, n_bins: int = 100) -> float:
    """Shannon entropy (nats) of the histogram of ``a`` in ``n_bins`` equal bins."""
    hist, _ = np.histogram(np.nan_to_num(np.asarray(a, dtype=np.float64)).ravel(), bins=int(n_bins))
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log(p)).sum())


def _smooth_map(method: str, model: LoadedModel, image_rgb: np.ndarray, ctx: Context, params: dict,
                samples: int, noise: float, seed: int, cancel: CancelToken) -> np.ndarray:
    x = ctx.x
    sd = float(noise) * float(x.max() - x.min())
    g = torch.Generator(device="cpu").manual_seed(int(seed) + 4099)
    acc = None
    for i in range(int(samples)):
        cancel.check()
        eps = (torch.zeros_like(x) if i == samples - 1
               else (torch.randn(x.shape, generator=g) * sd).to(x.device, x.dtype))
        m = input_space(_final_map(method, model, image_rgb, dataclasses.replace(ctx, x=x + eps), params, seed, cancel),
                        ctx.placement).astype(np.float64)
        m = np.where(np.isfinite(m), m, 0.0)
        acc = m / samples if acc is None else acc + m / samples
    return np.abs(second_moment_normalise(acc))


def iter_smprt(model: LoadedModel, image_rgb: np.ndarray, method: str, target: int | str | None = None, *,
               params: dict | None = None, n_stages: int = 4, order: str = "bottom_up", samples: int = 10,
               noise: float = 0.1, seed: int = 0, cancel: CancelToken | None = None) -> Iterator[MetricProgress]:
    """Generator form of ``smprt``; the last ``MetricProgress`` carries the result dict."""
    cancel = token(cancel)
    if int(samples) < 1:
        raise ParamError(f"sMPRT needs >= 1 sample, got {samples}")
    if noise < 0:
        raise ParamError(f"sMPRT noise must be >= 0, got {noise}")
    model.check_supports(get_method(method).needs, f"method {method!r}")
    clone = _copy_model(model)
    ctx = prepare_context(model, image_rgb, target, seed=seed, cancel=cancel)
    ctx_clone = dataclasses.replace(ctx, model=clone)
    stages = cumulative_stages(parametrised_layers(clone.module), n_stages, order)
    total = len(stages) + 1
    ref = _smooth_map(method, model, image_rgb, ctx, params or {}, samples, noise, seed, cancel)
    yield MetricProgress(1 / total, f"sMPRT {method}: smoothed map on the intact model")
    rows, n_done = [], 0
    for i, group in enumerate(stages):
        for name in group:
            _reinit(clone.module.get_submodule(name), seed * 100_003 + n_done)
            n_done += 1
        m = _smooth_map(method, clone, image_rgb, ctx_clone, params or {}, samples, noise, seed, cancel)
        rows.append({"stage": i + 1, "randomised_from": group[0], "randomised_to": group[-1], "n_layers": n_done,
                     "spearman": agreement.spearman(ref, m)})
        yield MetricProgress((i + 2) / total, f"sMPRT {method}: {n_done} layers randomised "
                                        f"(spearman {rows[-1]['spearman']:.3f})")
    corr = [r["spearman"] for r in rows]
    result = {"method": method, "target": int(ctx.target), "order": order, "samples": int(samples),
              "noise": float(noise), "stages": rows, "smprt": float(np.mean(corr)) if corr else float("nan"),
              "smprt_last": float(corr[-1]) if corr else float("nan")}
    yield MetricProgress(1.0, f"sMPRT {method}: {result['smprt']:.3f}", result, True)


def smprt(model: LoadedModel, image_rgb: np.ndarray, method: str, target: int | str | None = None,
          **kw: Any) -> dict[str, Any]:
    """{"smprt" (mean Spearman over stages, lower is better), "smprt_last", "stages": [...], ...}."""
    return run_to_end(iter_smprt(model, image_rgb, method, target, **kw))


def _entropy_of_output(model: LoadedModel, x: torch.Tensor) -> float:
    p = model.scores(x)[0].double().cpu().numpy()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def iter_emprt(model: LoadedModel, image_rgb: np.ndarray, method: str, target: int | str | None = None, *,
               params: dict | None = None, n_bins: int = 100, seed: int = 0, reference: Any = None,
               cancel: CancelToken | None = None) -> Iterator[MetricProgress]:
    """Generator form of ``emprt``; the last ``MetricProgress`` carries the result dict.

    ``reference``: the method's map on the intact model if already computed, else it is run.
    """
    cancel = token(cancel)
    if int(n_bins) < 2:
        raise ParamError(f"eMPRT needs >= 2 histogram bins, got {n_bins}")
    model.check_supports(get_method(method).needs, f"method {method!r}")
    clone = _copy_model(model)
    ctx = prepare_context(model, image_rgb, target, seed=seed, cancel=cancel)
    if reference is None:
        reference = _final_map(method, model, image_rgb, ctx, params or {}, seed, cancel)
    yield MetricProgress(0.5, f"eMPRT {method}: map on the intact model")
    names = parametrised_layers(clone.module)
    for i, name in enumerate(names):
        _reinit(clone.module.get_submodule(name), seed * 100_003 + i)
    ctx_clone = dataclasses.replace(ctx, model=clone)
    rand = _final_map(method, clone, image_rgb, ctx_clone, params or {}, seed, cancel)
    h0 = discrete_entropy(input_space(reference, ctx.placement), n_bins)
    h1 = discrete_entropy(input_space(rand, ctx.placement), n_bins)
    m0, m1 = _entropy_of_output(model, ctx.x), _entropy_of_output(clone, ctx.x)
    result = {"method": method, "target": int(ctx.target), "n_bins": int(n_bins), "n_layers": len(names),
              "entropy_original": h0, "entropy_randomised": h1,
              "emprt": (h1 - h0) / h0 if h0 > 0 else float("nan"),
              "model_entropy_original": m0, "model_entropy_randomised": m1}
    yield MetricProgress(1.0, f"eMPRT {method}: {result['emprt']:.3f}", result, True)


def emprt(model: LoadedModel, image_rgb: np.ndarray, method: str, target: int | str | None = None,
          **kw: Any) -> dict[str, Any]:
    """{"emprt" = (H_random − H_original) / H_original (higher is better), the entropies, ...}."""
    return run_to_end(iter_emprt(model, image_rgb, method, target, **kw))
