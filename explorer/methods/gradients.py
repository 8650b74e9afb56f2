"""Gradient family: maps from the gradient of the target logit with respect to the input pixels.

Survey: Ayyar, Benois-Pineau, Zemmari 2021 (white-box methods for CNNs). Implemented here:

- ``gradient`` (Simonyan et al. 2014): |dz_c/dx|, maximum over colour channels.
- ``gradient_x_input``: x * dz_c/dx summed over colour channels (signed).
- ``integrated_gradients`` (Sundararajan et al. 2017): (x - B) * integral of the gradient along the straight
  path from a baseline B to x, by a quadrature rule (Gauss-Legendre by default, as Captum; the Riemann rules
  are offered too), batched; the completeness gap sum(map) - (z_c(x) - z_c(B)) is reported in ``info``.
- ``smoothgrad`` (Smilkov et al. 2017): mean over noisy copies of |gradient|, max over channels;
  ``vargrad`` (Adebayo et al. 2018): the variance of the gradient over the same noisy copies.
- ``guided_backprop`` (Springenberg et al. 2015) and ``deconvnet`` (Zeiler & Fergus 2014): the backward pass
  of every ReLU / ReLU6 module is replaced (see ``modified_relu_backward``).

All of them run the model in batches of ``model.batch.size`` (halving on out-of-memory) on the model's device.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from torch import nn

from explorer.core.catalog import Family
from explorer.core.errors import UnsupportedError
from explorer.core.params import Param, Params
from explorer.core.types import MapSpec, MethodStep, Needs
from explorer.methods.base import Context, Method, register
from explorer.perturb.infill import make_infill
from explorer.perturb.params import BATCH_SIZE
from explorer.perturb.scoring import batch_size


# --------------------------------------------------------------------------- gradients
def input_gradient(model, x: torch.Tensor, target: int) -> torch.Tensor:
    """d logit_target / d x for a batch ``x`` (N, 3, h, w); returns (N, 3, h, w)."""
    with torch.enable_grad():
        xx = x.detach().clone().requires_grad_(True)
        out = model(xx)
        (grad,) = torch.autograd.grad(out[:, target].sum(), xx)
    return grad


def _grad_and_logit(model, x: torch.Tensor, target: int) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.enable_grad():
        xx = x.detach().requires_grad_(True)
        z = model(xx)[:, target].float()
        (grad,) = torch.autograd.grad(z.sum(), xx)
    return grad, z.detach()


def batched_gradients(model, xs: torch.Tensor, target: int) -> torch.Tensor:
    """Input gradients of ``target`` for any number of inputs (one backward per chunk, OOM-safe)."""
    return model.batch.call(lambda b: input_gradient(model, b, target), xs)


def chunk_sizes(n: int, size: int) -> list[int]:
    """Split ``n`` inputs into the fewest chunks of at most ``size``, balanced (50 by 16 -> 13, 13, 12, 12),
    so no chunk is a nearly empty, inefficient tail."""
    size = max(1, int(size))
    k = max(1, -(-n // size))
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


# --------------------------------------------------------------------------- modified ReLU backward
class _ModifiedReLU(torch.autograd.Function):
    """max(x, 0) (or clamp(x, 0, upper) for ReLU6) with a replaced backward.

    ``guided``: pass the gradient where the forward was active (0 < x < upper) and the gradient is positive.
    ``deconvnet``: pass the positive part of the gradient, ignoring the forward activation pattern (the
    upper clip of ReLU6 is ignored as well: the deconvnet backward depends on the gradient only).
    """

    @staticmethod
    def forward(ctx, x, upper, mode):
        ctx.mode = mode
        ctx.upper = upper
        if mode == "guided":
            ctx.save_for_backward(x)
        return x.clamp(min=0) if upper is None else x.clamp(0, upper)

    @staticmethod
    def backward(ctx, g):
        pos = g.clamp(min=0)
        if ctx.mode == "guided":
            (x,) = ctx.saved_tensors
            active = x > 0
            if ctx.upper is not None:
                active &= x < ctx.upper
            pos = pos * active
        return pos, None, None


def _relu_upper(mod: nn.Module) -> tuple[bool, float | None]:
    if isinstance(mod, nn.ReLU6):
        return True, 6.0
    if isinstance(mod, nn.Hardtanh) and mod.min_val == 0.0:
        return True, float(mod.max_val)
    if isinstance(mod, nn.ReLU):
        return True, None
    return False, None


def require_relus(module: nn.Module, method: str, model_id: str,
                  instead: str = "gradient, smoothgrad or integrated_gradients") -> int:
    """The number of ReLU-like modules, or UnsupportedError when there are none.

    Guided Backprop and Deconvnet are defined by what they do at ReLUs; on a net without any (ViT, Swin and
    ConvNeXt use GELU) the result would be the plain gradient under another name."""
    count = sum(1 for m in module.modules() if _relu_upper(m)[0])
    if not count:
        others = sorted({type(m).__name__ for m in module.modules()
                         if type(m).__name__ in ("GELU", "SiLU", "Hardswish", "Mish", "Tanh", "Sigmoid", "ELU")})
        acts = f" (its activations are {', '.join(others)})" if others else ""
        raise UnsupportedError(
            f"{method} changes the backward pass of ReLU modules, and model {model_id!r} has none{acts}: the "
            f"result would be the plain gradient; use {instead} instead")
    return count


@contextmanager
def modified_relu_backward(module: nn.Module, mode: str) -> Iterator[int]:
    """Replace the backward of every ReLU/ReLU6 module in ``module`` for the ``with`` block.

    Each activation module gets an instance-level ``forward`` (the class's forward is untouched) that is
    restored on exit, also when the block raises. Yields the number of activation modules patched; the
    activations a model applies functionally (``F.relu``) are not reached, which the caller reports.
    """
    if mode not in ("guided", "deconvnet"):
        raise ValueError(mode)
    patched: list[tuple[nn.Module, object]] = []
    missing = object()
    try:
        for mod in module.modules():
            ok, upper = _relu_upper(mod)
            if not ok:
                continue
            previous = mod.__dict__.get("forward", missing)
            patched.append((mod, previous))
            mod.forward = (lambda x, _u=upper: _ModifiedReLU.apply(x, _u, mode))
        yield len(patched)
    finally:
        for mod, previous in reversed(patched):
            if previous is missing:
                mod.__dict__.pop("forward", None)
            else:
                mod.forward = previous


# --------------------------------------------------------------------------- reductions
def abs_max(g: torch.Tensor) -> torch.Tensor:
    """(…, 3, h, w) -> (…, h, w): maximum absolute value over colour channels."""
    return g.abs().amax(dim=-3)


def channel_sum(g: torch.Tensor) -> torch.Tensor:
    return g.sum(dim=-3)


# --------------------------------------------------------------------------- methods
@register("gradient")
class Gradient(Method):
    title = "Gradient (vanilla saliency)"
    family = Family.GRADIENTS
    paper = "Simonyan, Vedaldi, Zisserman 2014, Deep Inside Convolutional Networks"
    summary = "|d score / d pixel|, maximum over colour channels"
    needs = Needs.GRADIENTS
    outputs = (MapSpec("salient", signed=False, help="absolute input gradient, max over channels",
                         meaning="pixels where a small change moves the target's score most (sensitivity, either "
                                 "way)"),)
    params = Params()
    quick: dict = {}

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        grad = input_gradient(self.model, ctx.x, ctx.target)
        yield MethodStep(1.0, {"salient": abs_max(grad)[0]})


@register("gradient_x_input")
class GradientXInput(Method):
    title = "Gradient x Input"
    family = Family.GRADIENTS
    paper = "Shrikumar et al. 2016, Not Just a Black Box (gradient * input)"
    summary = "input * d score / d input, summed over colour channels (signed)"
    needs = Needs.GRADIENTS
    outputs = (MapSpec("salient", signed=True, help="x * gradient summed over channels",
                         zero="0 = no first-order contribution relative to an all-zero input (the dataset mean "
                              "colour): the gradient or the normalised pixel is 0 there; positive raises the "
                              "target's logit"),)
    params = Params()
    quick: dict = {}

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        grad = input_gradient(self.model, ctx.x, ctx.target)
        yield MethodStep(1.0, {"salient": channel_sum(grad * ctx.x)[0]})


IG_RULES = ("gausslegendre", "riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid")


def path_points(steps: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Points alpha_k in [0, 1] and weights w_k (summing to 1) of a quadrature rule on the unit interval.

    The rules are the textbook ones (the same names Captum uses, so results can be compared at equal
    settings): Gauss-Legendre nodes mapped from [-1, 1]; Riemann left/right/middle sums; trapezoid.
    """
    n = int(steps)
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return (nodes + 1) / 2, weights / 2
    if rule == "riemann_right":
        return np.arange(1, n + 1) / n, np.full(n, 1.0 / n)
    if rule == "riemann_left":
        return np.arange(0, n) / n, np.full(n, 1.0 / n)
    if rule == "riemann_middle":
        return (np.arange(n) + 0.5) / n, np.full(n, 1.0 / n)
    if rule == "riemann_trapezoid":
        a = np.linspace(0, 1, n)
        w = np.full(n, 1.0 / (n - 1))
        w[0] = w[-1] = 0.5 / (n - 1)
        return a, w
    raise ValueError(rule)


@register("integrated_gradients")
class IntegratedGradients(Method):
    title = "Integrated Gradients"
    family = Family.GRADIENTS
    paper = "Sundararajan, Taly, Yan 2017, Axiomatic Attribution for Deep Networks"
    summary = "(x - baseline) * path integral of the gradient; sums to the score difference (completeness)"
    needs = Needs.GRADIENTS
    outputs = (MapSpec("salient", signed=True, help="attribution summed over channels",
                         zero="0 = no contribution relative to the baseline image; positive raises the target's "
                              "logit above the baseline's, and the map sums to z_c(image) - z_c(baseline)"),)
    params = Params(
        Param("steps", "int", 50, "points on the straight path from the baseline to the image", low=2, high=1000,
              step=1, live=False),
        Param("baseline", "choice", "zero", "baseline image: zero (dataset mean colour), blurred image, uniform noise",
              choices=("zero", "blur", "noise")),
        Param("blur_sigma", "float", 10.0, "Gaussian sigma (pixels) of the blurred baseline", low=0.5, high=100.0,
              step=0.5),
        Param("rule", "choice", "gausslegendre", "quadrature rule along the path (Captum's default is gausslegendre)",
              choices=IG_RULES),
        BATCH_SIZE,
    )
    quick = {"steps": 8}

    def baseline(self, ctx: Context) -> torch.Tensor:
        return make_infill(self.p.baseline, ctx.x, self.model.preprocess, sigma=self.p.blur_sigma,
                           generator=ctx.generator()).base

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        x = ctx.x
        base = self.baseline(ctx)
        alphas, weights = path_points(self.p.steps, self.p.rule)
        alphas_t = torch.as_tensor(alphas, dtype=x.dtype, device=x.device)
        weights_t = torch.as_tensor(weights, dtype=torch.float32, device=x.device)
        delta = x - base
        total = torch.zeros_like(x, dtype=torch.float32)
        n = len(alphas)
        sizes = chunk_sizes(n, batch_size(self.model, self.p.batch_size))
        done = 0
        for b in sizes:
            ctx.cancel.check()
            a = alphas_t[done: done + b].view(-1, 1, 1, 1)
            pts = base + a * delta
            g = batched_gradients(self.model, pts, ctx.target).float()
            total += (g * weights_t[done: done + b].view(-1, 1, 1, 1)).sum(0, keepdim=True)
            done += b
            attr = (delta.float() * total)[0]
            if done < n:
                yield MethodStep(done / n, {"salient": attr.sum(0)}, message=f"{done}/{n} path points")
        attr = (delta.float() * total)[0]
        with torch.inference_mode():
            z = self.model(torch.cat([x, base])).float()[:, ctx.target]
        diff = float(z[0] - z[1])
        gap = float(attr.sum()) - diff
        info = {"completeness_gap": gap, "score_difference": diff,
                "relative_gap": abs(gap) / max(abs(diff), 1e-12), "rule": self.p.rule}
        yield MethodStep(1.0, {"salient": attr.sum(0)}, info=info)


class _NoisyGradients(Method):
    """Shared body of SmoothGrad and VarGrad: gradients of noisy copies x + N(0, sigma^2), in batches.

    sigma = ``noise`` * (max(x) - min(x)) (a fraction of the input's range, as in the SmoothGrad paper).
    The noise of copy i is drawn from the run's generator in order, one copy after another, so the same seed
    gives the same noise whatever the batch size (and the same as one draw of shape (n, 3, h, w)).
    """

    family = Family.GRADIENTS
    needs = Needs.GRADIENTS
    params = Params(
        Param("samples", "int", 25, "number of noisy copies", low=1, high=1000, step=1, live=False),
        Param("noise", "float", 0.15, "noise standard deviation as a fraction of the input range", low=0.0,
              high=1.0, step=0.01),
        BATCH_SIZE,
    )
    quick = {"samples": 4}

    def sigma(self, x: torch.Tensor) -> float:
        return float(self.p.noise) * float(x.max() - x.min())

    def reduce(self, s1: torch.Tensor, s2: torch.Tensor, n: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        x = ctx.x
        sigma = self.sigma(x)
        gen = ctx.generator()
        n = self.p.samples
        s1 = torch.zeros_like(x[0], dtype=torch.float32)  # sum of |g| (smoothgrad) or g (vargrad)
        s2 = torch.zeros_like(x[0], dtype=torch.float32)
        done = 0
        for b in chunk_sizes(n, batch_size(self.model, self.p.batch_size)):
            ctx.cancel.check()
            noise = torch.randn((b, *x.shape[1:]), generator=gen, device=x.device, dtype=x.dtype) * sigma
            g = batched_gradients(self.model, x + noise, ctx.target).float()
            s1 += self.first(g).sum(0)
            s2 += (g * g).sum(0)
            done += b
            yield MethodStep(done / n, self.reduce(s1, s2, done), info={"sigma": sigma, "samples": done},
                       message=f"{done}/{n} noisy copies")

    def first(self, g: torch.Tensor) -> torch.Tensor:
        return g


@register("smoothgrad")
class SmoothGrad(_NoisyGradients):
    title = "SmoothGrad"
    paper = "Smilkov, Thorat, Kim, Viegas, Wattenberg 2017, SmoothGrad: removing noise by adding noise"
    summary = "mean |gradient| over noisy copies of the image, max over channels"
    outputs = (MapSpec("salient", signed=False, help="mean absolute gradient over noisy copies, max over channels",
                         meaning="pixels where a small change moves the target's score most, averaged over noise"),)

    def first(self, g: torch.Tensor) -> torch.Tensor:
        return g.abs()

    def reduce(self, s1, s2, n):
        return {"salient": (s1 / n).amax(0)}


@register("vargrad")
class VarGrad(_NoisyGradients):
    title = "VarGrad"
    paper = ("Adebayo, Gilmer, Goodfellow, Kim 2018, "
             "Local explanation methods for deep neural networks lack sensitivity to parameter values")
    summary = "variance of the gradient over noisy copies of the image, max over channels"
    outputs = (MapSpec("salient", signed=False, help="gradient variance over noisy copies, max over channels",
                         meaning="pixels whose gradient varies most under noise (sensitivity, not direction)"),)

    def reduce(self, s1, s2, n):
        mean = s1 / n
        return {"salient": (s2 / n - mean * mean).clamp(min=0).amax(0)}


class _ModifiedBackprop(Method):
    family = Family.GRADIENTS
    needs = Needs.GRADIENTS | Needs.LAYER
    mode = "guided"
    outputs = (MapSpec("salient", signed=False, help="absolute modified gradient, max over channels"),
               MapSpec("signed", signed=True, help="modified gradient summed over channels",
                         zero="0 = the modified backward pass carries no gradient to this pixel; the sign is "
                              "whether brightening the pixel would raise (+) or lower (-) the score through that "
                              "pass, not whether the pixel supports the target"))
    params = Params()
    quick: dict = {}

    def validate(self) -> None:
        require_relus(self.model.module, self.name, self.model.id)

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        with modified_relu_backward(self.model.module, self.mode) as count:
            g = input_gradient(self.model, ctx.x, ctx.target)[0]
        info = {"activations_modified": count}
        msg = "" if count else "no ReLU/ReLU6 modules found: this is the plain gradient"
        yield MethodStep(1.0, {"salient": abs_max(g), "signed": channel_sum(g)}, info=info, message=msg)


@register("guided_backprop")
class GuidedBackprop(_ModifiedBackprop):
    title = "Guided Backpropagation"
    paper = "Springenberg, Dosovitskiy, Brox, Riedmiller 2015, Striving for Simplicity: The All Convolutional Net"
    summary = "gradient through ReLUs that pass only positive gradients where the forward was active"
    mode = "guided"


@register("deconvnet")
class Deconvnet(_ModifiedBackprop):
    title = "Deconvnet"
    paper = "Zeiler, Fergus 2014, Visualizing and Understanding Convolutional Networks"
    summary = "gradient through ReLUs that pass the positive part of the gradient, whatever the forward"
    mode = "deconvnet"


def guided_gradient(model, x: torch.Tensor, target: int) -> torch.Tensor:
    """Guided-backprop input gradient (1, 3, h, w) (used by Guided Grad-CAM)."""
    with modified_relu_backward(model.module, "guided"):
        return input_gradient(model, x, target)
