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

All forwards go through ``explorer.perturb.scoring.score_batch`` (the model's batch policy, halving
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
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from explorer.core.cancel import CancelToken
from explorer.core.errors import ExplorerError, ParamError
from explorer.evaluation.base import MetricProgress, input_space, run_to_end, token
from explorer.methods.base import Context, prepare_context
from explorer.models.loaded import LoadedModel
from explorer.perturb.infill import INFILLERS, make_infill
from explorer.perturb.scoring import score_batch

MODES = ("deletion", "insertion")
DEFAULT_SUBSTRATE = {"deletion": "zero", "insertion": "blur"}
BLUR_KERNEL = 11
BLUR_SIGMA = 5.0
REFERENCE_STEP = 224  # pixels per step at 224 x 224 (the RISE protocol)


@dataclass
class Curve:
    """A deletion or insertion curve: P_target (or logit) at each fraction of pixels removed/inserted."""

    mode: str
    fractions: np.ndarray
    scores: np.ndarray
    auc: float
    step: int
    substrate: str
    target: int = -1
    n_pixels: int = 0
    score: str = "softmax"
    info: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """JSON-friendly summary (no arrays beyond the curve itself)."""
        return {"mode": self.mode, "auc": float(self.auc), "step": int(self.step), "substrate": self.substrate,
                "target": int(self.target), "n_pixels": int(self.n_pixels), "score": self.score,
                "fractions": [float(f) for f in self.fractions], "scores": [float(s) for s in self.scores]}


def trapezoid_auc(fractions: np.ndarray, scores: np.ndarray) -> float:
    """Area under the curve by the trapezoid rule, divided by the fraction span (1 for a full curve)."""
    f = np.asarray(fractions, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if f.size < 2:
        return float(s[0]) if s.size else float("nan")
    span = f[-1] - f[0]
    area = float(np.sum((s[1:] + s[:-1]) * np.diff(f)) / 2.0)
    return area / span if span > 0 else float("nan")


def default_step(hw: tuple[int, int]) -> int:
    """224 pixels at 224²; HW/224 in general (so a curve always has ~225 points)."""
    return max(1, int(round(hw[0] * hw[1] / REFERENCE_STEP)))


# Deletion/insertion protocols, by the number of steps a curve takes: the RISE paper's (HW/224 pixels a step),
# and a quick look with 7x fewer forwards. Its AUCs are close to the full protocol's but not equal (a coarser
# trapezoid): the protocol is recorded in every result so the two are never mixed unknowingly.
PROTOCOL_STEPS = {"rise": REFERENCE_STEP, "quick": 32}


def protocol_step(protocol: str, hw: tuple[int, int]) -> int:
    if protocol not in PROTOCOL_STEPS:
        raise ParamError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOL_STEPS)}")
    return max(1, int(round(hw[0] * hw[1] / PROTOCOL_STEPS[protocol])))


def fixed_gaussian_blur(x: torch.Tensor, kernel: int = BLUR_KERNEL, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Separable Gaussian blur with a fixed kernel size (odd) and σ in pixels, reflect padding."""
    kernel = int(kernel)
    if kernel < 1 or kernel % 2 == 0:
        raise ParamError(f"blur kernel must be an odd number >= 1, got {kernel}")
    if sigma <= 0 or kernel == 1:
        return x.clone()
    r = min(kernel // 2, min(x.shape[-2:]) - 1)
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / float(sigma)) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


class _Substrate:
    """What removed pixels become: ``apply(x, keep_masks)`` like an ``Infill``, with a recorded name."""

    def __init__(self, name: str, base: torch.Tensor | None = None, infill=None):
        self.name = name
        self.base = base
        self._infill = infill

    def apply(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        if self._infill is not None:
            return self._infill.apply(x, masks)
        return torch.lerp(self.base, x, masks)


def make_substrate(spec: Any, ctx: Context, mode: str) -> _Substrate:
    """The substrate from a spec.

    ``None`` -> the protocol default for ``mode``; ``"zero"`` (normalised zero = dataset mean colour);
    ``"black"`` (pixel value 0); ``"blur"`` (kernel 11, σ = 5) or
    ``"blur:SIGMA"`` or ``"blur:SIGMA:KERNEL"``; any other in-fill name of ``explorer.perturb.infill``
    (``mean``, ``noise``, ``constant``, in-painters); or a normalised tensor / array (1|3, h, w) → "custom".
    """
    if spec is None:
        spec = DEFAULT_SUBSTRATE[mode]
    x = ctx.x
    if isinstance(spec, (torch.Tensor, np.ndarray)):
        base = torch.as_tensor(np.asarray(spec) if isinstance(spec, np.ndarray) else spec).float().to(x.device)
        if base.dim() == 3:
            base = base[None]
        if base.shape[-2:] != x.shape[-2:] or base.shape[1] not in (1, 3):
            raise ParamError(f"a custom substrate must be (3, {x.shape[2]}, {x.shape[3]}) in normalised space, "
                             f"got {tuple(base.shape)}")
        return _Substrate("custom", base.expand_as(x).contiguous())
    s = str(spec).strip().lower()
    if s.startswith("blur"):
        parts = s.split(":")
        try:
            sigma = float(parts[1]) if len(parts) > 1 and parts[1] else BLUR_SIGMA
            kernel = int(parts[2]) if len(parts) > 2 and parts[2] else BLUR_KERNEL
        except ValueError:
            raise ParamError(f"bad blur substrate {spec!r}; use blur, blur:SIGMA or blur:SIGMA:KERNEL") from None
        return _Substrate(f"blur(kernel={kernel},sigma={sigma:g})", fixed_gaussian_blur(x, kernel, sigma))
    if s == "zero":
        return _Substrate("zero", torch.zeros_like(x))
    if s == "black":  # pixel value 0 (the image multiplied by the mask, as in Grad-CAM++'s confidence drop)
        return _Substrate("black", ctx.model.preprocess.normalise(torch.zeros_like(x)))
    if s in INFILLERS:
        inf = make_infill(s, x, ctx.model.preprocess, generator=ctx.generator(offset=104729))
        return _Substrate(s, getattr(inf, "base", None), infill=inf)
    raise ParamError(f"unknown substrate {spec!r}; valid: zero, black, blur, blur:SIGMA, "
                     f"{', '.join(k for k in INFILLERS if k not in ('zero', 'blur'))}, or an array")


def rank_map(saliency_input: np.ndarray) -> np.ndarray:
    """rank[y, x] = position of the pixel in the order most-salient-first (0 = first), ties in raster order."""
    flat = np.asarray(saliency_input, dtype=np.float64).ravel()
    flat = np.where(np.isnan(flat), -np.inf, flat)
    order = np.argsort(-flat, kind="stable")
    rank = np.empty(flat.size, dtype=np.int64)
    rank[order] = np.arange(flat.size)
    return rank.reshape(saliency_input.shape)


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ParamError(f"unknown curve mode {mode!r}; valid: {', '.join(MODES)}")
    return mode


def _context(model: LoadedModel, image_rgb: np.ndarray, target: Any, context: Context | None) -> Context:
    if context is not None:
        return context
    return prepare_context(model, image_rgb, target)


def iter_causal_curve(model: LoadedModel, image_rgb: np.ndarray, saliency: Any, target: int | str | None = None, *,
                      mode: str = "deletion", step: int | None = None, substrate: Any = None,
                      cancel: CancelToken | None = None, probs: bool = True, batch_size: int | None = None,
                      context: Context | None = None) -> Iterator[MetricProgress]:
    """Generator form of ``causal_curve``: yields ``MetricProgress`` after every batch; the last carries the Curve."""
    _check_mode(mode)
    cancel = token(cancel)
    ctx = _context(model, image_rgb, target, context)
    x = ctx.x
    _, _, H, W = x.shape
    n_pix = H * W
    step = default_step((H, W)) if step is None else int(step)
    if step < 1:
        raise ParamError(f"step must be >= 1 pixel, got {step}")
    sal = input_space(saliency, ctx.placement)
    if sal.shape != (H, W):  # the placement's input size and x disagree (should not happen)
        raise ExplorerError(f"map of shape {sal.shape} does not match the model input {H}x{W}")
    sub = make_substrate(substrate, ctx, mode)
    rank = torch.from_numpy(rank_map(sal)).to(x.device)[None, None]  # (1, 1, H, W)
    n_steps = math.ceil(n_pix / step)
    counts = torch.clamp(torch.arange(n_steps + 1, device=x.device) * step, max=n_pix)  # pixels changed per point
    bs = int(batch_size or model.batch.size)
    scores = np.empty(n_steps + 1, dtype=np.float64)
    done = 0
    while done <= n_steps:
        cancel.check()
        k = counts[done : done + bs].view(-1, 1, 1, 1)
        changed = rank < k  # (b, 1, H, W): the first k pixels in the order
        keep = (~changed if mode == "deletion" else changed).to(x.dtype)
        s = score_batch(model, sub, x, keep, probs)[:, ctx.target]
        scores[done : done + k.shape[0]] = s.double().cpu().numpy()
        done += k.shape[0]
        yield MetricProgress(min(done, n_steps + 1) / (n_steps + 1), f"{mode}: {done}/{n_steps + 1} steps")
    fractions = counts.double().cpu().numpy() / n_pix
    curve = Curve(mode=mode, fractions=fractions, scores=scores, auc=trapezoid_auc(fractions, scores), step=step,
                  substrate=sub.name, target=int(ctx.target), n_pixels=n_pix,
                  score=model.activation if probs else "logit")
    yield MetricProgress(1.0, f"{mode} AUC {curve.auc:.4f}", curve, True)


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
        self.mode = _check_mode(mode)
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
