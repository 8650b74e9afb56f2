"""Gradient family: maps from the gradient of the target logit with respect to the input pixels."""

from __future__ import annotations

from typing import Iterator

import torch

from explorer.core.params import Params
from explorer.core.types import LayerSpec, Needs, Step
from explorer.methods.base import Context, Method, register


def input_gradient(model, x: torch.Tensor, target: int) -> torch.Tensor:
    """d logit_target / d x for a batch ``x`` (N, 3, h, w); returns (N, 3, h, w)."""
    with torch.enable_grad():
        xx = x.detach().clone().requires_grad_(True)
        out = model(xx)
        (grad,) = torch.autograd.grad(out[:, target].sum(), xx)
    return grad


@register("gradient")
class Gradient(Method):
    title = "Gradient (vanilla saliency)"
    family = "gradients"
    paper = "Simonyan, Vedaldi, Zisserman 2014, Deep Inside Convolutional Networks"
    summary = "|d score / d pixel|, maximum over colour channels"
    needs = Needs.GRADIENTS
    outputs = (LayerSpec("salient", signed=False, help="absolute input gradient, max over channels"),)
    params = Params()

    def steps(self, ctx: Context) -> Iterator[Step]:
        grad = input_gradient(self.model, ctx.x, ctx.target)
        yield Step(1.0, {"salient": grad.abs().amax(dim=1)[0]})
