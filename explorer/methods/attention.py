"""Transformer attention methods: attention rollout and Chefer's gradient-weighted relevance.

Both read the attention probabilities A_l (heads, N, N) of every block of a timm ViT-like model (ViT, DeiT,
ViT with registers) during one forward (``explorer.models.attention``: fused attention switched off for the
run and restored, hooks removed), combine them into a token-to-token matrix R (N, N), and take the rows of
the tokens the head reads (the class token; class + distillation tokens for distilled DeiT; every patch
token, averaged, for average-pooling heads) at the patch columns. The prefix tokens (class, distillation,
registers) are dropped; the patch grid (any shape, any input size) is upsampled bilinearly to the input.

- ``attention_rollout`` (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"): per block the
  heads are fused (mean, max or min), the smallest ``discard_ratio`` of the fused entries are zeroed (as in
  Gildenblat's vit-explain), the identity is added for the residual connection and the rows are
  renormalised: Â_l = rownorm(fuse(A_l) + I); R = Â_L ··· Â_1. Class-agnostic.
- ``chefer`` (Chefer, Gur, Wolf ICCV 2021, "Generic Attention-model Explainability for Interpreting Bi-Modal
  and Encoder-Decoder Transformers", self-attention rule): Ā_l = mean over heads of (∇_A z_c ⊙ A_l)⁺ and
  R ← R + Ā_l R from R = I, blocks in forward order; one backward of the target logit z_c gives all ∇_A.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F

from explorer.core.catalog import Family
from explorer.core.params import Param, Params
from explorer.core.types import MapSpec, MethodStep, Needs
from explorer.methods.alternatives import use_instead
from explorer.methods.base import Context, Method, register
from explorer.models.attention import TokenLayout, attention_modules, attention_recording, check_attention, token_layout

FUSIONS = ("mean", "max", "min")
# a model one of them refuses, the other refuses too: neither is suggested instead of the other
ATTENTION_METHODS = ("attention_rollout", "chefer")


def fuse_heads(a: torch.Tensor, how: str) -> torch.Tensor:
    """(heads, N, N) -> (N, N)."""
    if how == "mean":
        return a.mean(0)
    if how == "max":
        return a.amax(0)
    if how == "min":
        return a.amin(0)
    raise ValueError(how)


def discard_lowest(a: torch.Tensor, ratio: float) -> torch.Tensor:
    """Zero the ``ratio`` fraction of smallest entries of an (N, N) matrix (ties broken by position)."""
    k = int(a.numel() * float(ratio))
    if k <= 0:
        return a
    flat = a.flatten().clone()
    flat[flat.topk(k, largest=False).indices] = 0
    return flat.view_as(a)


def rollout(attentions: list[torch.Tensor], fusion: str = "mean", discard_ratio: float = 0.0) -> torch.Tensor:
    """Abnar & Zuidema's rollout of per-block attentions (heads, N, N) -> (N, N)."""
    n = attentions[0].shape[-1]
    eye = torch.eye(n, dtype=torch.float64, device=attentions[0].device)
    r = eye.clone()
    for a in attentions:
        fused = discard_lowest(fuse_heads(a.double(), fusion), discard_ratio)
        fused = fused + eye  # the residual connection carries each token's own state
        fused = fused / fused.sum(-1, keepdim=True)
        r = fused @ r
    return r


def chefer_relevance(attentions: list[torch.Tensor], grads: list[torch.Tensor]) -> torch.Tensor:
    """Chefer et al.'s self-attention relevance R (N, N) from per-block attentions and their gradients."""
    n = attentions[0].shape[-1]
    r = torch.eye(n, dtype=torch.float64, device=attentions[0].device)
    for a, g in zip(attentions, grads):
        cam = (g.double() * a.double()).clamp(min=0).mean(0)
        r = r + cam @ r
    return r


def token_map(r: torch.Tensor, layout: TokenLayout, input_hw: tuple[int, int]) -> torch.Tensor:
    """The readout rows of R at the patch columns, as a map of the input's size (float32)."""
    rows = r[layout.prefix:] if layout.readout is None else r[list(layout.readout)]
    scores = rows[:, layout.prefix:].mean(0).float()
    gh, gw = layout.grid(input_hw)
    if scores.numel() != gh * gw:
        raise ValueError(f"{scores.numel()} patch tokens for a {gh}x{gw} patch grid")
    ph, pw = layout.patch
    covered = F.interpolate(scores.view(1, 1, gh, gw), size=(gh * ph, gw * pw), mode="bilinear",
                            align_corners=False)[0, 0]
    h, w = input_hw
    out = torch.zeros(h, w, dtype=torch.float32, device=r.device)  # pixels no patch sees carry no evidence
    hh, ww = min(h, gh * ph), min(w, gw * pw)
    out[:hh, :ww] = covered[:hh, :ww]
    return out


class AttentionMethod(Method):
    """Shared part: the attention check before compute, and the recorded forward."""

    family = Family.ATTENTION
    needs = Needs.GRADIENTS | Needs.LAYER | Needs.ATTENTION
    quick: dict = {}

    def __init__(self, model, **values):
        # before Method.__init__'s capability check, so a CNN or Swin is refused with this reason and the
        # methods that do work on it (not a bare "needs attention weights")
        check_attention(model, f"method {self.name!r}", use_instead(model, exclude=ATTENTION_METHODS))
        super().__init__(model, **values)

    def validate(self) -> None:
        self.layout = token_layout(self.model.module, self.model.id)
        self.modules = [m for _, m in attention_modules(self.model.module)]

    def info(self, attentions: list[torch.Tensor]) -> dict:
        n = attentions[0].shape[-1]
        return {"blocks": len(attentions), "tokens": int(n), "prefix_tokens": self.layout.prefix,
                "readout": "patch mean" if self.layout.readout is None else list(self.layout.readout)}


@register("attention_rollout")
class AttentionRollout(AttentionMethod):
    title = "Attention rollout"
    paper = "Abnar, Zuidema 2020, Quantifying Attention Flow in Transformers (ACL)"
    summary = ("attention of every block, heads fused, identity added for the residual and rows renormalised, "
               "multiplied through the blocks; the class token's row (class-agnostic)")
    needs = Needs.LAYER | Needs.ATTENTION
    class_agnostic = True
    outputs = (MapSpec("salient", help="how much of the class token's final state flows from each patch "
                                         "(rows of the rolled-out attention sum to 1; >= 0)"),)
    params = Params(
        Param("head_fusion", "choice", "mean", "how the heads of a block are combined", choices=FUSIONS),
        Param("discard_ratio", "float", 0.0, "fraction of the smallest fused attention entries zeroed in every "
              "block before rollout (vit-explain's noise filter; 0 = Abnar & Zuidema)", low=0.0, high=0.99,
              step=0.05),
    )

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        with torch.inference_mode(), attention_recording(self.modules) as store:
            self.model(ctx.x)
        attentions = [a[0] for a in store]
        r = rollout(attentions, self.p.head_fusion, self.p.discard_ratio)
        yield MethodStep(1.0, {"salient": token_map(r, self.layout, tuple(ctx.x.shape[-2:]))},
                         info=self.info(attentions))


@register("chefer")
class CheferRelevance(AttentionMethod):
    title = "Transformer relevance (Chefer)"
    paper = ("Chefer, Gur, Wolf 2021, Generic Attention-model Explainability for Interpreting Bi-Modal and "
             "Encoder-Decoder Transformers (ICCV)")
    summary = ("class-specific: each block's attention weighted by the positive part of its gradient, averaged "
               "over heads, accumulated as R += A R from the identity")
    outputs = (MapSpec("salient", help="relevance of each patch for the target in the class token's row of R "
                                         "(>= 0)"),)
    params = Params()

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        with torch.enable_grad(), attention_recording(self.modules) as store:
            xx = ctx.x.detach().requires_grad_(True)  # so the graph exists even with frozen parameters
            out = self.model(xx)
            grads = torch.autograd.grad(out[0, ctx.target], list(store))
        attentions = [a[0].detach() for a in store]
        r = chefer_relevance(attentions, [g[0] for g in grads])
        yield MethodStep(1.0, {"salient": token_map(r, self.layout, tuple(ctx.x.shape[-2:]))},
                         info=self.info(attentions))
