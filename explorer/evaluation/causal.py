"""Deletion and insertion curves (Petsiuk, Das, Saenko 2018, RISE, §4.1): causal faithfulness of a map.

Pixels are ordered by the map, most salient first (ties keep raster order; NaN ranks last).

- *Deletion*: start from the image and replace ``step`` pixels at a time by the *substrate* (default: zero in
  normalised space, i.e. the dataset mean colour). A faithful map makes P_target fall fast: low AUC is good.
- *Insertion*: start from the substrate (default: the image blurred with an 11-tap Gaussian kernel,
  σ = 5 pixels) and put back ``step`` pixels at a time. A faithful map makes P_target rise fast: high AUC is good.

The curve has one point per step, fractions 0, step/HW, 2·step/HW, ..., 1 (the last step may be partial).
AUC is the trapezoid rule over the fractions, which span [0, 1], so with probabilities it lies in [0, 1].
The default step is 224 pixels at 224² (HW/224 in general, so every curve has 225 points whatever the
input size). Substrate and step are recorded in every ``Curve``.

Note on the blur: docs/methods.md §7.1 says "Gaussian kernel 11, σ = 5": a Gaussian of σ = 5 pixels truncated
to 11 × 11 taps (renormalised; reflect padding at the borders), applied in normalised space. It is a mild
blur at 224²: the default model still recognises many blurred photos, so insertion curves can start high.
Other blurs: ``substrate="blur:SIGMA"`` or ``"blur:SIGMA:KERNEL"``. The name is recorded in ``Curve.substrate``.

Note on random baselines: removing scattered single pixels is out-of-distribution noise that destroys the
prediction faster than removing any coherent region, so a pixel-level random map gets a *low* (good-looking)
deletion AUC. Compare maps with a random map of the same spatial scale (``random_map``: a random coarse grid
upsampled bilinearly), and keep deletion and insertion on the same substrate when comparing the two.

The engine (pixel order, substrate, steps, batched forwards, AUC) is ``explorer.perturb.curves``, which BOREx
scores with too; this module adds the map's conversion to model-input space, the progress records and the
frames. All forwards go through ``explorer.perturb.scoring.score_batch`` (the model's batch policy, halving
on out-of-memory, inference mode); the keep-masks of one batch of steps are built on the device from a
rank map, so memory does not grow with the number of steps.

API::

    curve = causal_curve(model, image_rgb, saliency, target, mode="deletion")   # -> Curve
    for p in iter_causal_curve(...): p.progress, p.message, (p.result on the last, p.done)
    frames = CurveFrames(model, image_rgb, saliency, mode="insertion")             # numpy, for hovering
    frames(k) -> (h, w, 3) uint8 perturbed input at curve point k
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
import torch

from explorer.core.cancel import CancelToken
from explorer.evaluation.base import MetricProgress, input_space, run_to_end, token
from explorer.methods.base import Context, prepare_context
from explorer.models.loaded import LoadedModel
from explorer.perturb.curves import (  # noqa: F401 - the engine (shared with BOREx); its names are read here too
    BLUR_KERNEL,
    BLUR_SIGMA,
    DEFAULT_SUBSTRATE,
    MODES,
    PROTOCOL_STEPS,
    REFERENCE_STEP,
    Curve,
    Substrate,
    check_mode,
    default_step,
    fixed_gaussian_blur,
    iter_curve,
    make_substrate,
    protocol_step,
    rank_map,
    trapezoid_auc,
)


def _context(model: LoadedModel, image_rgb: np.ndarray, target: Any, context: Context | None) -> Context:
    if context is not None:
        return context
    return prepare_context(model, image_rgb, target)


def iter_causal_curve(model: LoadedModel, image_rgb: np.ndarray, saliency: Any, target: int | str | None = None, *,
                      mode: str = "deletion", step: int | None = None, substrate: Any = None,
                      cancel: CancelToken | None = None, probs: bool = True, batch_size: int | None = None,
                      context: Context | None = None) -> Iterator[MetricProgress]:
    """Generator form of ``causal_curve``: yields ``MetricProgress`` after every batch; the last carries the Curve."""
    check_mode(mode)
    cancel = token(cancel)
    ctx = _context(model, image_rgb, target, context)
    for progress, message, curve in iter_curve(model, ctx, input_space(saliency, ctx.placement), mode=mode, step=step,
                                               substrate=substrate, cancel=cancel, probs=probs, batch_size=batch_size):
        yield MetricProgress(progress, message, curve, curve is not None)


def causal_curve(model: LoadedModel, image_rgb: np.ndarray, saliency: Any, target: int | str | None = None, *,
                 mode: str = "deletion", step: int | None = None, substrate: Any = None,
                 cancel: CancelToken | None = None, probs: bool = True, batch_size: int | None = None,
                 context: Context | None = None) -> Curve:
    """Deletion or insertion curve of ``saliency`` for class ``target`` (index, name, or None = top-1).

    ``image_rgb``: the original H×W×3 uint8 image. ``saliency``: H×W in image space, in model-input space,
    or any other resolution (resampled), numpy or torch, or an ``Explanation`` (its headline map).
    ``step``: pixels per step (default HW/224, i.e. 224 at 224²). ``substrate``: see ``make_substrate``
    (default zero for deletion, blur kernel 11 σ 5 for insertion). ``context``: a prepared
    ``explorer.methods.base.Context`` to skip preprocessing (its target wins).
    """
    return run_to_end(iter_causal_curve(model, image_rgb, saliency, target, mode=mode, step=step,
                                        substrate=substrate, cancel=cancel, probs=probs,
                                        batch_size=batch_size, context=context))


def deletion_insertion(model: LoadedModel, image_rgb: np.ndarray, saliency: Any, target: int | str | None = None,
                       **kw: Any) -> dict[str, Curve]:
    """Both curves (shared preprocessing); keyword arguments as for ``causal_curve``."""
    ctx = kw.pop("context", None) or prepare_context(model, image_rgb, target)
    return {m: causal_curve(model, image_rgb, saliency, target, mode=m, context=ctx, **kw) for m in MODES}


class CurveFrames:
    """The perturbed model input at each point of a curve, as (h, w, 3) uint8 — numpy only once built.

    Built from the same rank and substrate as the curve, so ``frames(k)`` shows exactly what the model
    scored at point k. Holds three small arrays (the input, the substrate and the rank), hence cheap to
    hand to the GUI (``EvaluationPanel`` takes any callable ``index -> image``).
    """

    def __init__(self, model: LoadedModel, image_rgb: np.ndarray, saliency: Any, target: Any = None, *,
                 mode: str = "deletion", step: int | None = None, substrate: Any = None,
                 context: Context | None = None):
        self.mode = check_mode(mode)
        ctx = _context(model, image_rgb, 0 if target is None and context is None else target, context)
        x = ctx.x
        _, _, H, W = x.shape
        self.step = default_step((H, W)) if step is None else int(step)
        sub = make_substrate(substrate, ctx, mode)
        if sub.base is None:  # a mask-dependent in-fill: render the fully removed image
            base = sub.apply(x, torch.zeros(1, 1, H, W, device=x.device))
        else:
            base = sub.base
        pre = model.preprocess

        def rgb(t: torch.Tensor) -> np.ndarray:
            return (pre.denormalise(t.float())[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()

        self.image = rgb(x)
        self.substrate = rgb(base)
        self.substrate_name = sub.name
        self.rank = rank_map(input_space(saliency, ctx.placement))
        self.n_pixels = H * W
        self.n_points = math.ceil(self.n_pixels / self.step) + 1

    def __len__(self) -> int:
        return self.n_points

    def __call__(self, k: int) -> np.ndarray:
        k = int(np.clip(k, 0, self.n_points - 1))
        changed = (self.rank < min(k * self.step, self.n_pixels))[:, :, None]
        if self.mode == "deletion":
            return np.where(changed, self.substrate, self.image)
        return np.where(changed, self.image, self.substrate)
