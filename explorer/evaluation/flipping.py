"""Pixel flipping (Bach et al. 2015) and region perturbation (Samek et al. 2017): removal curves in the
conventions of their papers and of Quantus, beside the RISE deletion curve of ``explorer.evaluation.causal``.

- *Pixel flipping* (Bach, Binder, Montavon, Klauschen, Müller, Samek, PLoS ONE 2015, "On pixel-wise
  explanations ... by layer-wise relevance propagation"): flip the most relevant pixels first, ``step`` at a
  time, to a baseline, and follow P_target; lower AUC is better. It is the deletion curve with another
  default baseline and step: ``black`` (pixel value 0) and 1 % of the pixels per step (101 points; Quantus'
  default of one feature per step means 50 176 forwards at 224²). Quantus' ``PixelFlipping`` records the
  score *after* each step (no point for the intact image) and integrates with ``np.trapz(dx=1)``; we keep
  the intact image as the first point and normalise the area to the [0, 1] fraction axis, like deletion.
- *Region perturbation* (Samek, Binder, Montavon, Lapuschkin, Müller, IEEE TNNLS 2017, "Evaluating the
  visualization of what a deep neural network has learned"): split the input into non-overlapping
  ``patch``×``patch`` regions, rank them by the sum of the map inside (most relevant first, or least with
  ``order="lerf"``), replace the first k regions by the baseline for k = 0..``regions`` and record
  P_target. AOPC = mean over k = 0..L of (P_0 − P_k): the area over the perturbation curve; higher is better
  for MoRF. Defaults follow Quantus' ``RegionPerturbation`` (patch 8, 100 regions, a black baseline);
  Samek et al. used 9×9 patches filled with uniform noise (``substrate="noise"``).

Both return ``explorer.evaluation.causal.Curve`` records (mode ``pixel_flipping`` / ``region_perturbation``)
so reports, plots and the GUI treat them like the deletion curve.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import numpy as np
import torch

from explorer.core.cancel import CancelToken
from explorer.core.errors import ParamError
from explorer.evaluation.base import MetricProgress, input_space, run_to_end, token
from explorer.evaluation.causal import Curve, iter_causal_curve, make_substrate
from explorer.methods.base import Context, prepare_context
from explorer.models.loaded import LoadedModel
from explorer.perturb.scoring import score_batch

PIXEL_FLIPPING_SUBSTRATE = "black"
REGION_SUBSTRATE = "black"
PATCH = 8
REGIONS = 100
REGION_ORDERS = ("morf", "lerf")


def default_flip_step(hw: tuple[int, int]) -> int:
    """1 % of the pixels per step (at least one pixel): a 101-point curve at any input size."""
    return max(1, int(round(hw[0] * hw[1] / 100)))


def iter_pixel_flipping(model: LoadedModel, image_rgb: np.ndarray, saliency: Any, target: int | str | None = None,
                        *, step: int | None = None, substrate: Any = PIXEL_FLIPPING_SUBSTRATE,
                        cancel: CancelToken | None = None, probs: bool = True,
                        context: Context | None = None) -> Iterator[MetricProgress]:
    """Generator form of ``pixel_flipping``; the last ``MetricProgress`` carries the Curve."""
    ctx = context or prepare_context(model, image_rgb, target)
    step = default_flip_step(tuple(ctx.x.shape[-2:])) if step is None else step
    for p in iter_causal_curve(model, image_rgb, saliency, mode="deletion", step=step, substrate=substrate,
                               cancel=cancel, probs=probs, context=ctx):
        if p.done:
            curve = dataclasses.replace(p.result, mode="pixel_flipping")
            yield MetricProgress(1.0, f"pixel flipping AUC {curve.auc:.4f}", curve, True)
        else:
            yield MetricProgress(p.progress, p.message.replace("deletion", "pixel flipping"))


def pixel_flipping(model: LoadedModel, image_rgb: np.ndarray, saliency: Any, target: int | str | None = None,
                   **kw: Any) -> Curve:
    """Pixel-flipping curve (most relevant first) and its AUC; lower is better."""
    return run_to_end(iter_pixel_flipping(model, image_rgb, saliency, target, **kw))


def region_order(saliency_input: np.ndarray, patch: int, order: str = "morf") -> tuple[np.ndarray, np.ndarray]:
    """(region id per pixel (H, W), region ids in perturbation order). Border regions may be smaller;
    NaN counts as 0 in the sums; ties keep raster order of the regions."""
    H, W = saliency_input.shape
    gy, gx = -(-H // patch), -(-W // patch)
    ids = (np.arange(H)[:, None] // patch) * gx + (np.arange(W)[None, :] // patch)
    m = np.nan_to_num(np.asarray(saliency_input, dtype=np.float64), nan=0.0, neginf=0.0, posinf=0.0)
    sums = np.bincount(ids.ravel(), weights=m.ravel(), minlength=gy * gx)
    ranked = np.argsort(-sums if order == "morf" else sums, kind="stable")
    return ids, ranked


def iter_region_perturbation(model: LoadedModel, image_rgb: np.ndarray, saliency: Any,
                             target: int | str | None = None, *, patch: int = PATCH, regions: int = REGIONS,
                             order: str = "morf", substrate: Any = REGION_SUBSTRATE,
                             cancel: CancelToken | None = None, probs: bool = True,
                             context: Context | None = None) -> Iterator[MetricProgress]:
    """Generator form of ``region_perturbation``; the last ``MetricProgress`` carries the Curve (``info["aopc"]``)."""
    cancel = token(cancel)
    if int(patch) < 1:
        raise ParamError(f"region perturbation patch must be >= 1 pixel, got {patch}")
    if int(regions) < 1:
        raise ParamError(f"region perturbation needs >= 1 region, got {regions}")
    if order not in REGION_ORDERS:
        raise ParamError(f"unknown region order {order!r}; valid: {', '.join(REGION_ORDERS)}")
    ctx = context or prepare_context(model, image_rgb, target)
    x = ctx.x
    _, _, H, W = x.shape
    ids, ranked = region_order(input_space(saliency, ctx.placement), int(patch), order)
    L = min(int(regions), ranked.size)
    # position[r] = when region r is perturbed (L = never within this curve)
    position = np.full(ranked.size, L, dtype=np.int64)
    position[ranked[:L]] = np.arange(L)
    when = torch.from_numpy(position[ids]).to(x.device)[None, None]  # (1, 1, H, W)
    sub = make_substrate(substrate, ctx, "deletion")
    bs = int(model.batch.size)
    scores = np.empty(L + 1, dtype=np.float64)
    changed_px = np.empty(L + 1, dtype=np.int64)
    done = 0
    while done <= L:
        cancel.check()
        k = torch.arange(done, min(done + bs, L + 1), device=x.device).view(-1, 1, 1, 1)
        keep = (when >= k).to(x.dtype)  # regions 0..k-1 of the order are replaced
        scores[done:done + k.shape[0]] = score_batch(model, sub, x, keep, probs)[:, ctx.target].double().cpu().numpy()
        changed_px[done:done + k.shape[0]] = (H * W - keep.sum(dim=(1, 2, 3))).long().cpu().numpy()
        done += k.shape[0]
        yield MetricProgress(min(done, L + 1) / (L + 1), f"region perturbation: {min(done, L + 1)}/{L + 1} steps")
    drops = scores[0] - scores
    aopc = float(drops.mean())
    fractions = changed_px / float(H * W)
    curve = Curve(mode="region_perturbation", fractions=fractions, scores=scores, auc=aopc, step=int(patch),
                  substrate=sub.name, target=int(ctx.target), n_pixels=H * W,
                  score=model.activation if probs else "logit",
                  info={"aopc": aopc, "order": order, "patch": int(patch), "regions": L})
    yield MetricProgress(1.0, f"region perturbation AOPC {aopc:.4f}", curve, True)


def region_perturbation(model: LoadedModel, image_rgb: np.ndarray, saliency: Any, target: int | str | None = None,
                        **kw: Any) -> Curve:
    """Region-perturbation curve; ``curve.auc`` (= ``info["aopc"]``) is the AOPC, higher is better for MoRF.

    ``curve.fractions`` are the fractions of pixels replaced after k regions, ``curve.step`` the patch size.
    """
    return run_to_end(iter_region_perturbation(model, image_rgb, saliency, target, **kw))
