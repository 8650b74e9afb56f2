"""The deletion and insertion curves' engine (Petsiuk, Das, Saenko 2018, RISE, §4.1), shared by the metric
(``explorer.evaluation.causal``, whose docstring states the protocol) and by BOREx, which scores its prior and
refined maps with it: the pixel order of a map, the substrate removed pixels become, the steps, the batched
forwards and the trapezoid AUC.

It works on a prepared model input: ``ctx`` is a ``methods.base.Context`` (read for its ``x``, ``target``,
``model`` and ``generator``), never imported here, since this toolkit sits below the methods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from explorer.core.cancel import NEVER, CancelToken
from explorer.core.errors import ExplorerError, ParamError
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


class Substrate:
    """What removed pixels become: ``apply(x, keep_masks)`` like an ``Infill``, with a recorded name."""

    def __init__(self, name: str, base: torch.Tensor | None = None, infill=None):
        self.name = name
        self.base = base
        self._infill = infill

    def apply(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        if self._infill is not None:
            return self._infill.apply(x, masks)
        return torch.lerp(self.base, x, masks)


def make_substrate(spec: Any, ctx, mode: str) -> Substrate:
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
        return Substrate("custom", base.expand_as(x).contiguous())
    s = str(spec).strip().lower()
    if s.startswith("blur"):
        parts = s.split(":")
        try:
            sigma = float(parts[1]) if len(parts) > 1 and parts[1] else BLUR_SIGMA
            kernel = int(parts[2]) if len(parts) > 2 and parts[2] else BLUR_KERNEL
        except ValueError:
            raise ParamError(f"bad blur substrate {spec!r}; use blur, blur:SIGMA or blur:SIGMA:KERNEL") from None
        return Substrate(f"blur(kernel={kernel},sigma={sigma:g})", fixed_gaussian_blur(x, kernel, sigma))
    if s == "zero":
        return Substrate("zero", torch.zeros_like(x))
    if s == "black":  # pixel value 0 (the image multiplied by the mask, as in Grad-CAM++'s confidence drop)
        return Substrate("black", ctx.model.preprocess.normalise(torch.zeros_like(x)))
    if s in INFILLERS:
        inf = make_infill(s, x, ctx.model.preprocess, generator=ctx.generator(offset=104729))
        return Substrate(s, getattr(inf, "base", None), infill=inf)
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


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ParamError(f"unknown curve mode {mode!r}; valid: {', '.join(MODES)}")
    return mode


def iter_curve(model, ctx, sal: np.ndarray, *, mode: str = "deletion", step: int | None = None,
               substrate: Any = None, cancel: CancelToken = NEVER, probs: bool = True,
               batch_size: int | None = None) -> Iterator[tuple[float, str, Curve | None]]:
    """The ``mode`` curve of ``sal`` (a map in model-input space, NaN ranking last) scored by ``model`` on
    ``ctx``'s input and target: ``(progress, message, None)`` after every batch of steps, then
    ``(1.0, message, Curve)``."""
    check_mode(mode)
    x = ctx.x
    _, _, H, W = x.shape
    n_pix = H * W
    step = default_step((H, W)) if step is None else int(step)
    if step < 1:
        raise ParamError(f"step must be >= 1 pixel, got {step}")
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
        yield min(done, n_steps + 1) / (n_steps + 1), f"{mode}: {done}/{n_steps + 1} steps", None
    fractions = counts.double().cpu().numpy() / n_pix
    curve = Curve(mode=mode, fractions=fractions, scores=scores, auc=trapezoid_auc(fractions, scores), step=step,
                  substrate=sub.name, target=int(ctx.target), n_pixels=n_pix,
                  score=model.activation if probs else "logit")
    yield 1.0, f"{mode} AUC {curve.auc:.4f}", curve


def curve_of(model, ctx, sal: np.ndarray, **kw: Any) -> Curve:
    """``iter_curve`` run to the end: the Curve."""
    result = None
    for _, _, result in iter_curve(model, ctx, sal, **kw):
        pass
    return result
