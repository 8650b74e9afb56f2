"""Cheap CAM variants the peers (pytorch-grad-cam) ship, each a small subclass of the CAM template.

- ``hirescam`` (Draelos & Carin 2020): pixel-wise weights = the gradient itself, map = Σ_k g_k ⊙ A_k: unlike
  Grad-CAM no spatial averaging, so the map shows where the model's score actually moves.
- ``xgradcam`` (Fu et al. 2020): w_k = Σ_ij (A_kij / Σ_ab A_kab) g_kij, the activation-weighted mean of the
  gradient (their axioms of sensitivity and conservation).
- ``eigencam`` (Muhammad & Yeasin 2020): class-agnostic, no gradient: the activations' first principal
  direction; map = the projection of the centred (h·w, K) matrix on it. The sign of a principal direction
  is arbitrary, so we fix it to correlate positively with the channel-mean activation (otherwise the same
  image could give a map or its negative).
- ``ablationcam`` (Desai & Ramaswamy 2020): w_k = (z_c − z_c with channel k set to 0) / |z_c|, the relative
  score drop when a channel is removed at every spatial position (prefix tokens of a ViT are left alone);
  one forward per channel, batched, each batch element ablating its own channel.
"""

from __future__ import annotations

from typing import Iterator

import torch

from explorer.core.params import Param, Params
from explorer.core.types import MapSpec, MethodStep, Needs
from explorer.methods.base import Context, register
from explorer.methods.cam import LAYER_PARAM, CamMethod
from explorer.models.layers import as_grid
from explorer.perturb.params import BATCH_SIZE
from explorer.perturb.scoring import batch_size


@register("hirescam")
class HiResCAM(CamMethod):
    title = "HiResCAM"
    paper = ("Draelos, Carin 2020, "
             "Use HiResCAM instead of Grad-CAM for faithful explanations of convolutional neural networks")
    summary = "feature maps multiplied element-wise by their gradients (no spatial averaging)"

    def weights(self, act, grad, logits, ctx):
        return grad


@register("xgradcam")
class XGradCAM(CamMethod):
    title = "XGrad-CAM"
    paper = ("Fu, Hu, Wang, Yang, Lei, Wang 2020, "
             "Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation of CNNs")
    summary = "feature maps weighted by the activation-weighted mean of their gradients"
    eps = 1e-7

    def weights(self, act, grad, logits, ctx):
        total = act.sum(dim=(1, 2), keepdim=True)
        return (grad * act / (total + self.eps)).sum(dim=(1, 2))


@register("eigencam")
class EigenCAM(CamMethod):
    title = "Eigen-CAM"
    paper = "Muhammad, Yeasin 2020, Eigen-CAM: Class Activation Map using Principal Components"
    summary = "class-agnostic: projection of the feature maps on their first principal component"
    needs = Needs.LAYER
    uses_gradients = False
    class_agnostic = True
    # The projection is of centred activations: 0 marks a location whose features are the image's average,
    # not "no evidence", so the generic CAM zero text would mislead (tests/test_signed_zero.py checks this one).
    outputs = (
        MapSpec("salient", signed=False, help="positive part of the projection on the first principal component"),
        MapSpec("signed", signed=True, help="centred feature vectors projected on their first principal component",
                  zero="0 = this location's features equal the image's average feature vector; the sign only says "
                       "above or below that average along the main direction of variation (oriented so that "
                       "strongly activated locations are positive), not support or opposition for any class"),
    )

    @staticmethod
    def centred(act: torch.Tensor) -> torch.Tensor:
        """(h·w, K): one row per location, each channel's mean over locations removed (as PCA needs)."""
        flat = act.reshape(act.shape[0], -1).T.double()
        return flat - flat.mean(0, keepdim=True)

    def weights(self, act, grad, logits, ctx):
        c = self.centred(act)
        _, _, vh = torch.linalg.svd(c, full_matrices=False)
        v = vh[0]
        location_mean = act.reshape(act.shape[0], -1).mean(0).double()
        if float((c @ v) @ (location_mean - location_mean.mean())) < 0:  # orient the arbitrary SVD sign
            v = -v
        return v

    def combine(self, act, w):
        return (self.centred(act) @ w).float().reshape(act.shape[1:])


@register("ablationcam")
class AblationCAM(CamMethod):
    title = "Ablation-CAM"
    paper = ("Desai, Ramaswamy 2020, "
             "Ablation-CAM: Visual Explanations for Deep Convolutional Network via Gradient-free Localization")
    summary = "feature maps weighted by the relative drop of the class score when each one is removed"
    needs = Needs.LAYER
    uses_gradients = False
    params = Params(
        LAYER_PARAM,
        Param("top_channels", "int", 0, "ablate only the K channels of highest mean activation, the others get "
              "weight 0 (0 = all; ours, to bound the forwards on wide layers)", low=0, high=100_000, step=1,
              live=False),
        BATCH_SIZE,
    )
    quick = {"top_channels": 16}

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        act, _, logits = self.record(ctx, gradients=False)
        K = act.shape[0]
        chosen = torch.arange(K, device=act.device)
        if self.p.top_channels and self.p.top_channels < K:
            chosen = act.mean(dim=(1, 2)).topk(int(self.p.top_channels)).indices.sort().values
        z = float(logits[ctx.target])
        drops = torch.zeros(K, device=act.device)
        size = batch_size(self.model, self.p.batch_size)
        info = self.layer_info
        current: list[torch.Tensor] = []

        def ablate(mod, inputs, output):
            out = output.clone()
            grid = as_grid(out, info)  # a view of ``out``: zeroing it zeroes the patch positions only
            idx = current[0]
            grid[torch.arange(idx.numel(), device=out.device), idx] = 0
            return out

        handle = self.layer_module.register_forward_hook(ablate)
        try:
            for i in range(0, chosen.numel(), size):
                ctx.cancel.check()
                idx = chosen[i: i + size]
                current[:] = [idx]
                xs = ctx.x.expand(idx.numel(), *ctx.x.shape[1:])
                with torch.inference_mode():
                    scores = self.model(xs)[:, ctx.target].float()
                drops[idx] = (z - scores) / max(abs(z), 1e-12)
                done = min(i + size, chosen.numel())
                if done < chosen.numel():
                    yield MethodStep(done / chosen.numel(), self.finish(self.combine(act, drops), ctx),
                               message=f"{done}/{chosen.numel()} channels ablated")
        finally:
            handle.remove()
        out = self.info(act)
        out.update({"channels": int(chosen.numel()), "forwards": int(chosen.numel())})
        yield MethodStep(1.0, self.finish(self.combine(act, drops), ctx), info=out)
