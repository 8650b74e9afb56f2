"""CAM family: a layer's feature maps A (K×h×w) combined with per-channel weights, upsampled to the input.

One template (``CamMethod``): record A (and dA/dz_c when the weights need it) on the chosen layer, compute
channel weights, map = Σ_k w_k A_k; the headline map is ReLU(map) upsampled bilinearly (half-pixel
centres) to the input size, the ``signed`` map is the same before the ReLU. The members differ only in
their weights:

- ``cam`` (Zhou et al. 2016): w_k = the linear classifier's weight for class c (head = global average
  pooling + one linear layer, checked numerically on the recorded activations).
- ``gradcam`` (Selvaraju et al. 2017): w_k = spatial mean of dz_c/dA_k.
- ``gradcam_pp`` (Chattopadhay et al. 2018): closed-form second/third-order weights of the paper's eq. 19
  (exponential score), w_k = Σ_ij α_kij ReLU(g_kij), α = g² / (2g² + Σ_ab A_kab · g³), 0 where g = 0.
- ``layercam`` (Jiang et al. 2021): pixel-wise weights ReLU(dz_c/dA_kij).
- ``scorecam`` (Wang et al. 2020): no gradients; each channel, upsampled and min-max normalised, is a
  keep-mask on the input; its weight is the masked image's softmax probability of class c (the paper's
  official code) or, with ``score=channel_softmax``, the softmax over channels of the masked images' logits
  (pytorch-grad-cam's choice). K forwards, batched through the model's batch policy; every constant
  channel gives the same all-removed image, scored once.
- ``guided_gradcam``: Guided Backprop ⊙ upsampled Grad-CAM (Selvaraju et al. 2017).

``layer`` (default: the last spatial feature map before global pooling, ``model.default_layer()``) names
the recorded module; an unknown name lists the valid ones.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from explorer.core.catalog import Family
from explorer.core.errors import UnsupportedError
from explorer.core.params import Param, Params
from explorer.core.types import MapSpec, MethodStep, Needs
from explorer.methods.base import Context, Method, register
from explorer.methods.gradients import abs_max, channel_sum, guided_gradient, require_relus
from explorer.models.layers import LayerInfo, as_grid, recording
from explorer.perturb.infill import INFILLS, make_infill
from explorer.perturb.params import BATCH_SIZE
from explorer.perturb.scoring import batch_size

LAYER_PARAM = Param("layer", "layer", None, "feature-map layer (default: the last spatial map before pooling)",
                    live=False)

CAM_OUTPUTS = (
    MapSpec("salient", signed=False, help="ReLU of the weighted sum of feature maps, upsampled"),
    MapSpec("signed", signed=True, help="the weighted sum of feature maps before the ReLU, upsampled",
              zero="0 = the weighted feature maps cancel, or no channel fires, at this location; for cam the map's "
                   "mean plus the head's bias is the logit (0 = no contribution), for the gradient-weighted members"
                   " a first-order estimate of that"),
)


def upsample(m: torch.Tensor, hw: tuple[int, int], corners: bool = False) -> torch.Tensor:
    """(…, h, w) -> (…, H, W) bilinear; half-pixel centres (align_corners=False, as OpenCV's resize) unless
    ``corners`` (align_corners=True, as torch's UpsamplingBilinear2d)."""
    shape = m.shape[:-2]
    out = F.interpolate(m.reshape(-1, 1, *m.shape[-2:]).float(), size=tuple(hw), mode="bilinear",
                        align_corners=bool(corners))
    return out.reshape(*shape, *hw)


def activations_and_grads(model, module: nn.Module, x: torch.Tensor, target: int, gradients: bool = True,
                          info: LayerInfo | None = None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(A, dz_c/dA, logits) for one image: A and its gradient (K, h, w), logits (num_classes,).

    ``info`` says how the module's output reads as a feature map (token sequences and channels-last grids
    are turned into (K, h, w), prefix tokens dropped); the gradient is taken w.r.t. the raw output and
    converted the same way."""
    key = "layer"
    grid = (lambda t: as_grid(t, info)) if info is not None else (lambda t: t)
    if not gradients:
        with torch.inference_mode(), recording({key: module}) as store:
            out = model(x)
        return grid(store[key])[0].float(), None, out[0].float()
    with torch.enable_grad(), recording({key: module}) as store:
        xx = x.detach().requires_grad_(True)  # so the graph exists even with frozen parameters
        out = model(xx)
        act = store[key]
        (grad,) = torch.autograd.grad(out[0, target], act, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(act)
    return grid(act)[0].detach().float(), grid(grad)[0].float(), out[0].detach().float()


def check_reaches(grad: torch.Tensor, method: str, model, layer: str) -> None:
    """Refuse a layer whose feature map does not reach the class score (zero gradient everywhere).

    In a ViT the last block's patch tokens only feed tokens the class-token head never reads: Grad-CAM there
    is an all-zero map that looks like "no evidence"; we say so instead."""
    if not bool((grad != 0).any()):
        raise UnsupportedError(
            f"{method}: the feature map of layer {layer!r} does not reach the class score of model {model.id!r} "
            f"(its gradient is zero everywhere, e.g. a ViT's last-block patch tokens, which the class-token head "
            f"never reads); use the default layer ({model.default_layer()!r}) or an earlier block")


class CamMethod(Method):
    """Template of the CAM family: subclasses set ``uses_gradients`` and implement ``weights``."""

    family = Family.CAM
    needs = Needs.GRADIENTS | Needs.LAYER
    outputs = CAM_OUTPUTS
    params = Params(LAYER_PARAM)
    quick: dict = {}
    uses_gradients = True

    def validate(self) -> None:
        self.layer_name, self.layer_module = self.model.layer(self.p.layer)
        self.layer_info = self.model.layer_info(self.layer_name)

    def record(self, ctx: Context, gradients: bool | None = None):
        """(A, dz_c/dA, logits) on the chosen layer as (K, h, w); a gradient that never reaches is refused."""
        use = self.uses_gradients if gradients is None else gradients
        act, grad, logits = activations_and_grads(self.model, self.layer_module, ctx.x, ctx.target, use,
                                                  self.layer_info)
        if use:
            check_reaches(grad, self.name, self.model, self.layer_name)
        return act, grad, logits

    def weights(self, act: torch.Tensor, grad: torch.Tensor | None, logits: torch.Tensor,
                ctx: Context) -> torch.Tensor:
        """Channel weights (K,) or pixel-wise weights (K, h, w)."""
        raise NotImplementedError

    def combine(self, act: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if w.dim() == 1:
            w = w[:, None, None]
        return (w * act).sum(0)

    def finish(self, signed_small: torch.Tensor, ctx: Context) -> dict[str, torch.Tensor]:
        hw = tuple(ctx.x.shape[-2:])
        return {"salient": upsample(signed_small.clamp(min=0), hw), "signed": upsample(signed_small, hw)}

    def info(self, act: torch.Tensor) -> dict:
        li = self.layer_info
        return {"layer": self.layer_name, "layer_shape": list(act.shape), "layer_layout": li.layout,
                "prefix_tokens": li.prefix}

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        act, grad, logits = self.record(ctx)
        w = self.weights(act, grad, logits, ctx)
        yield MethodStep(1.0, self.finish(self.combine(act, w), ctx), info=self.info(act))


@register("gradcam")
class GradCAM(CamMethod):
    title = "Grad-CAM"
    paper = "Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization"
    summary = "feature maps weighted by their spatially averaged gradients"

    def weights(self, act, grad, logits, ctx):
        return grad.mean(dim=(1, 2))


@register("gradcam_pp")
class GradCAMPlusPlus(CamMethod):
    title = "Grad-CAM++"
    paper = "Chattopadhay, Sarkar, Howlader, Balasubramanian 2018, Grad-CAM++"
    summary = "feature maps weighted by positive gradients with second/third-order pixel weights"
    eps = 1e-6

    def weights(self, act, grad, logits, ctx):
        g2 = grad * grad
        g3 = g2 * grad
        total = act.sum(dim=(1, 2), keepdim=True)
        alpha = g2 / (2 * g2 + total * g3 + self.eps)
        alpha = torch.where(grad != 0, alpha, torch.zeros_like(alpha))
        return (alpha * grad.clamp(min=0)).sum(dim=(1, 2))


@register("layercam")
class LayerCAM(CamMethod):
    title = "Layer-CAM"
    paper = "Jiang, Zhang, Hou, Cheng, Wei 2021, LayerCAM: Exploring Hierarchical Class Activation Maps"
    summary = "feature maps weighted pixel-wise by their positive gradients"

    def weights(self, act, grad, logits, ctx):
        return grad.clamp(min=0)


def linear_head(module: nn.Module) -> nn.Linear | None:
    """The model's last ``nn.Linear`` (the classifier of a pooling + linear head), if any."""
    last = None
    for m in module.modules():
        if isinstance(m, nn.Linear):
            last = m
    return last


@register("cam")
class CAM(CamMethod):
    title = "CAM (class activation mapping)"
    paper = "Zhou, Khosla, Lapedriza, Oliva, Torralba 2016, Learning Deep Features for Discriminative Localization"
    summary = "last feature maps weighted by the linear classifier's weights (global-average-pooling heads)"
    needs = Needs.LAYER
    uses_gradients = False

    def validate(self) -> None:
        super().validate()
        head = linear_head(self.model.module)
        if head is None:
            raise UnsupportedError(f"cam needs a linear classifier after global average pooling; model "
                                   f"{self.model.id!r} has no nn.Linear layer (use gradcam instead)")
        self.head = head
        self._check_channels(self.layer_info.shape[0], head.in_features)

    def _check_channels(self, channels: int, features: int) -> None:
        """Before compute: the layer must have as many channels as the classifier has inputs. The layer to
        suggest is the last one that does; none may exist at this input size (a ResNet at 32 px pools a 1x1
        map, which is no candidate layer) or at all (MobileNetV3 transforms the pooled vector before its
        classifier), and the refused layer itself is never suggested."""
        if channels == features:
            return
        fits = [i.name for i in self.model.layers() if i.shape[0] == features and i.name != self.layer_name]
        h, w = self.model.preprocess.input_size
        if fits:
            hint = f"pick {fits[-1]!r}, the last feature map with {features} channels, or use gradcam"
        else:
            hint = (f"no layer of the model gives a {features}-channel feature map of at least 2x2 at its {h}x{w} "
                    "input (the map the classifier pools is smaller there, or the head transforms it after pooling)"
                    "; use gradcam, or a larger input size if the map is too small")
        raise UnsupportedError(f"cam: layer {self.layer_name!r} of model {self.model.id!r} has {channels} channels "
                               f"but the classifier takes {features} features; {hint}")

    def weights(self, act, grad, logits, ctx):
        W, b = self.head.weight.detach().float(), self.head.bias
        pooled = act.mean(dim=(1, 2)) @ W.T + (b.detach().float() if b is not None else 0)
        tol = 1e-3 * max(1.0, float(logits.abs().max()))
        if not torch.allclose(pooled, logits, atol=tol, rtol=1e-3):
            raise UnsupportedError(
                f"cam: the scores of model {self.model.id!r} are not global average pooling of layer "
                f"{self.layer_name!r} followed by its last linear layer; use gradcam (which equals CAM for such "
                "heads) instead")
        return W[ctx.target]


@register("guided_gradcam")
class GuidedGradCAM(GradCAM):
    title = "Guided Grad-CAM"
    paper = "Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization"
    summary = "Guided Backprop gradient multiplied by the upsampled Grad-CAM map"
    outputs = (MapSpec("salient", signed=False, help="|guided gradient x Grad-CAM|, max over channels"),
               MapSpec("signed", signed=True, help="guided gradient x Grad-CAM, summed over channels",
                         zero="0 = no guided gradient or no Grad-CAM evidence here; the sign is whether brightening"
                              " the pixel would raise (+) or lower (-) the score through that pass, not whether the"
                              " pixel supports the target"))

    def validate(self) -> None:
        super().validate()
        require_relus(self.model.module, self.name, self.model.id, instead="gradcam or hirescam")

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        act, grad, logits = self.record(ctx)
        cam = upsample(self.combine(act, self.weights(act, grad, logits, ctx)).clamp(min=0), tuple(ctx.x.shape[-2:]))
        yield MethodStep(0.5, {"salient": cam, "signed": cam}, message="Grad-CAM done; guided backprop next")
        g = guided_gradient(self.model, ctx.x, ctx.target)[0].float()
        prod = g * cam[None]
        yield MethodStep(1.0, {"salient": abs_max(prod), "signed": channel_sum(prod)}, info=self.info(act))


@register("scorecam")
class ScoreCAM(CamMethod):
    title = "Score-CAM"
    paper = "Wang et al. 2020, Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural Networks"
    summary = "each feature map used as a mask on the image; weight = the class score of the masked image"
    needs = Needs.LAYER
    scoring = True
    uses_gradients = False
    params = Params(
        LAYER_PARAM,
        Param("score", "choice", "prob", "channel weight: softmax probability of the class for the masked image "
              "(paper) or softmax over channels of the masked logits (pytorch-grad-cam)",
              choices=("prob", "channel_softmax")),
        Param("top_channels", "int", 0, "score only the K channels of highest mean activation (0 = all; "
              "ours, to bound the K forwards on wide layers)", low=0, high=100_000, step=1, live=False),
        Param("infill", "choice", "zero", "what replaces masked-out pixels (zero = x * mask, as the paper)",
              choices=INFILLS),
        Param("mask_upsample", "choice", "half_pixel", "how channels are upsampled into masks: half_pixel "
              "(the paper's code, F.interpolate) or corners (align_corners=True, as pytorch-grad-cam)",
              choices=("half_pixel", "corners")),
        BATCH_SIZE,
    )
    quick = {"top_channels": 24}

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        x = ctx.x
        hw = tuple(x.shape[-2:])
        act, _, logits = self.record(ctx, gradients=False)
        K = act.shape[0]
        chosen = torch.arange(K, device=act.device)
        if self.p.top_channels and self.p.top_channels < K:
            chosen = act.mean(dim=(1, 2)).topk(int(self.p.top_channels)).indices.sort().values
        flat = act[chosen].flatten(1)
        lo, hi = flat.min(1).values, flat.max(1).values
        varying = (hi - lo) > 1e-8 * hi.abs().clamp(min=1.0)
        infill = make_infill(self.p.infill, x, self.model.preprocess, generator=ctx.generator())
        scores = torch.zeros(len(chosen), device=act.device)
        # every constant channel normalises to an all-zero mask: one forward serves them all
        work = chosen[varying]
        n_forward = int(work.numel()) + int((~varying).any())
        target = ctx.target

        def score(masks: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                # no hook is registered here (the activations were recorded above): the scoring engine's
                out = self.model.batch.call(lambda m: self.model.logits(infill.apply(x, m)).float(), masks)
            if self.p.score == "prob":
                return self.model.activate(out)[:, target]
            return out[:, target]

        if (~varying).any():
            scores[~varying] = score(torch.zeros(1, 1, *hw, device=x.device, dtype=x.dtype))[0]
        idx_all = torch.nonzero(varying).flatten()
        size = batch_size(self.model, self.p.batch_size)
        done = 0
        for i in range(0, idx_all.numel(), size):
            ctx.cancel.check()
            idx = idx_all[i: i + size]
            up = upsample(act[chosen[idx]], hw, corners=self.p.mask_upsample == "corners")
            lo_i = up.amin(dim=(1, 2), keepdim=True)  # normalised after upsampling, as the paper's code
            hi_i = up.amax(dim=(1, 2), keepdim=True)
            masks = ((up - lo_i) / (hi_i - lo_i).clamp(min=1e-12)).unsqueeze(1).to(x.dtype)
            scores[idx] = score(masks)
            done += idx.numel()
            if done < idx_all.numel():
                scored = torch.zeros_like(varying)
                scored[idx_all[:done]] = True
                scored |= ~varying
                yield MethodStep(done / idx_all.numel(), self._maps(act, chosen, scores, scored, ctx),
                           message=f"{done}/{idx_all.numel()} channels scored")
        info = self.info(act)
        info.update({"channels": int(len(chosen)), "forwards": n_forward,
                     "constant_channels": int((~varying).sum())})
        yield MethodStep(1.0, self._maps(act, chosen, scores, torch.ones_like(varying), ctx), info=info)

    def _maps(self, act, chosen, scores, scored, ctx) -> dict[str, torch.Tensor]:
        if self.p.score == "channel_softmax":
            w = torch.zeros_like(scores)
            w[scored] = scores[scored].softmax(0)
        else:
            w = torch.where(scored, scores, torch.zeros_like(scores))
        return self.finish(self.combine(act[chosen], w), ctx)
