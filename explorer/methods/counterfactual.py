"""FIDO (Chang, Creager, Goldenberg, Duvenaud, ICLR 2019): saliency by counterfactual in-fill.

A drop-probability map p = σ(θ) on a coarse grid (56x56 logits, θ = 0 at start) is optimised through the
model: each step draws ``samples`` relaxed-Bernoulli (concrete, temperature τ = 0.1) masks, keep z = 1 - d with
d = σ((θ + log u - log(1-u)) / τ), bilinearly upsampled to the model input; the removed part is in-filled,
x̃ = z⊙x + (1-z)⊙G(x, round(z)), with G any in-filler of ``explorer.perturb.infill`` called on the HARD mask
round(z) and without gradient. The score is the target's log-odds under the model's activation
(``models.outputs.log_odds``): for a softmax model s_c = log P_c - log Σ_{c'≠c} P_c' = z_c - logsumexp_{c'≠c} z_c'
(from the logits); for a sigmoid (multi-label or binary) model the label's own logit z_c = log(p_c / (1 - p_c)).
Objectives (docs/methods.md §4):

- ``ssr`` smallest sufficient region: L = -s_c(x̃) + r(t) λ Σ(1-p); map ``ssr_keep`` = 1 - p (keep probability);
- ``sdr`` smallest destroying region: L = +s_c(x̃) + r(t) λ Σ p; map ``sdr_drop`` = p;
- ``both``: the two above, optimised side by side in the same batches;
- ``hindering`` (this project's white-box variant of Kang et al.'s target-hindering factor, docs/methods.md §3.2):
  the smallest region whose in-fill most RAISES the target's log-odds, L = -s_c(x̃) + r(t) λ Σ p;
  map ``target_hindering`` = p.

λ = 1e-3 applies to the sum over the map upsampled to the model's full input size; r(t) ramps linearly 0 -> 1
over the first ``ramp`` steps; the optional total-variation term (our choice of form, default weight 0) is
``tv`` x (mean |horizontal differences| + mean |vertical differences|) of p on the grid. Adam, lr 0.05 decayed
linearly to 0 over ``steps`` (300). The loss is the mean over the samples of a step.

``scale`` < 1 runs the model on a reduced copy of its input (fewer pixels per forward; only for models that
accept other input sizes, e.g. fully-convolutional CNNs with global pooling); maps are returned at the
model's input size either way.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import torch
import torch.nn.functional as F

from explorer.core.catalog import Family
from explorer.core.errors import UnsupportedError
from explorer.core.params import Param, Params
from explorer.core.types import TARGET_HINDERING, MapSpec, MethodStep, Needs
from explorer.methods.base import Context, Method, register
from explorer.models.outputs import log_odds
from explorer.perturb.params import INFILL_OR_LEARNED, INPAINTER, SIGMA, check_inpainter, infill_for

OBJECTIVES = ("ssr", "sdr", "both", "hindering")
SSR, SDR = "ssr_keep", "sdr_drop"


def concrete_keep(theta: torch.Tensor, u: torch.Tensor, tau: float) -> torch.Tensor:
    """Relaxed-Bernoulli keep sample z = 1 - σ((θ + log u - log(1-u)) / τ); θ are drop logits."""
    u = u.clamp(1e-6, 1 - 1e-6)
    return 1 - torch.sigmoid((theta + torch.log(u) - torch.log1p(-u)) / tau)


def total_variation(p: torch.Tensor) -> torch.Tensor:
    return (p[..., :, 1:] - p[..., :, :-1]).abs().mean() + (p[..., 1:, :] - p[..., :-1, :]).abs().mean()


@register("fido")
class Fido(Method):
    title = "FIDO (counterfactual in-fill: SSR / SDR)"
    family = Family.COUNTERFACTUAL
    paper = ("Chang, Creager, Goldenberg, Duvenaud 2019, "
             "Explaining Image Classifiers by Counterfactual Generation (ICLR)")
    summary = ("optimise a coarse drop-probability mask through the model with concrete samples; removed pixels "
               "are in-filled (blur, local mean, in-painting, a learned in-painter) instead of greyed out")
    needs = Needs.GRADIENTS
    outputs = (
        MapSpec(SSR, help="smallest sufficient region: keep probability (objective ssr or both)",
                  meaning="the smallest region that alone keeps the class when the rest is in-filled"),
        MapSpec(SDR, help="smallest destroying region: drop probability (objective sdr or both)",
                  meaning="the smallest region whose in-fill destroys the class"),
        MapSpec(TARGET_HINDERING,
                  help="smallest region whose in-fill most raises the target's log-odds (objective hindering)"),
    )
    params = Params(
        Param("objective", "choice", "ssr", "ssr: smallest sufficient region; sdr: smallest destroying region; "
              "both; hindering: smallest region whose in-fill raises the target", choices=OBJECTIVES),
        Param("steps", "int", 300, "optimisation steps (Adam, linear learning-rate decay)", low=1, high=10_000,
              step=10),
        Param("samples", "int", 8, "concrete samples (forwards) per step", low=1, high=256),
        Param("grid", "int", 56, "mask logits per side", low=2, high=512, step=4),
        Param("lr", "float", 0.05, "Adam learning rate (decays linearly to 0)", low=1e-4, high=1.0, step=0.01),
        Param("l1", "float", 1e-3, "sparsity weight λ (on the sum over the full-size map)", low=0.0, high=1.0,
              step=1e-4),
        Param("ramp", "int", 30, "steps over which the sparsity weight ramps from 0 to λ", low=0, high=10_000),
        Param("tv", "float", 0.0, "total-variation weight on the mask (0 = off)", low=0.0, high=100.0, step=0.1),
        Param("tau", "float", 0.1, "concrete temperature", low=0.01, high=10.0, step=0.01),
        dataclasses.replace(INFILL_OR_LEARNED, default="blur"),
        SIGMA,
        INPAINTER,
        Param("scale", "float", 1.0, "run the model at this fraction of its input size (faster; convolutional "
              "models only)", low=0.25, high=1.0, step=0.05),
        Param("every", "int", 10, "show the map every this many steps", low=1, high=10_000, live=False,
              advanced=True),
    )
    quick = {"steps": 4, "samples": 2, "scale": 0.5, "grid": 28, "ramp": 2, "every": 2}

    def validate(self) -> None:
        check_inpainter(self.p, self.model)
        if self.p.scale < 1:
            self._check_reduced_input()

    def _check_reduced_input(self) -> None:
        """Refuse a ``scale`` the model cannot take before any optimisation step: fixed-size models (a timm
        ViT or Swin, an ONNX graph with a static input) fail on a reduced input, and finding out at the first
        forward of the loop would leave the user with a half-started run. One blank forward at that size."""
        H, W = self.model.preprocess.input_size
        h, w = reduced_size(H, W, self.p.scale)
        x = torch.zeros(1, 3, h, w, device=self.model.device)
        try:
            with torch.inference_mode():
                out = self.model(x)
        except Exception as exc:  # any failure on the reduced size is this refusal (OOM excepted)
            if _is_oom(exc):
                raise
            why = str(exc).strip().splitlines()[0][:160].rstrip(".") if str(exc).strip() else ""
            raise UnsupportedError(
                f"fido: model {self.model.id!r} cannot take the {h}x{w} input that scale={self.p.scale:g} of its "
                f"{H}x{W} input gives ({type(exc).__name__}{': ' + why if why else ''}); use scale=1") from None
        if tuple(out.shape) != (1, self.model.num_classes):
            raise UnsupportedError(
                f"fido: model {self.model.id!r} returns shape {tuple(out.shape)} on the {h}x{w} input that "
                f"scale={self.p.scale:g} gives, not (1, {self.model.num_classes}); use scale=1")

    def _groups(self) -> list[tuple[str, float, bool]]:
        """(layer, sign of s_c in the loss, L1 on keep (True) or on drop (False)) per optimised mask."""
        obj = self.p.objective
        out = []
        if obj in ("ssr", "both"):
            out.append((SSR, -1.0, True))
        if obj in ("sdr", "both"):
            out.append((SDR, 1.0, False))
        if obj == "hindering":
            out.append((TARGET_HINDERING, -1.0, False))
        return out

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        p = self.p
        model = ctx.model
        dev = ctx.device
        _, _, H, W = ctx.x.shape
        h, w = reduced_size(H, W, p.scale)
        x = ctx.x if (h, w) == (H, W) else F.interpolate(ctx.x, size=(h, w), mode="bilinear", align_corners=False,
                                                        antialias=True)
        gy, gx = min(p.grid, H), min(p.grid, W)
        infill = infill_for(p, ctx, x=x, sigma=p.sigma * h / H)
        groups = self._groups()
        G, S = len(groups), p.samples
        signs = torch.tensor([g[1] for g in groups], device=dev)
        c = ctx.target
        theta = torch.zeros(G, 1, gy, gx, device=dev, requires_grad=True)
        opt = torch.optim.Adam([theta], lr=p.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: max(0.0, 1.0 - t / p.steps))
        gen = ctx.generator()
        full_px = float(H * W)

        def maps_now() -> dict[str, torch.Tensor]:
            with torch.no_grad():
                drop = F.interpolate(torch.sigmoid(theta.detach()), size=(H, W), mode="bilinear", align_corners=False)
            out = {}
            for k, (layer, _, on_keep) in enumerate(groups):
                out[layer] = (1 - drop[k, 0]) if layer == SSR else drop[k, 0]
            return out

        for t in range(p.steps):
            ctx.cancel.check()
            opt.zero_grad(set_to_none=True)
            u = torch.rand(G * S, 1, gy, gx, device=dev, generator=gen)

            def fn(idx: torch.Tensor) -> torch.Tensor:
                grp = idx // S
                with torch.enable_grad():
                    z = concrete_keep(theta[grp], u[idx], p.tau)
                    z = F.interpolate(z, size=(h, w), mode="bilinear", align_corners=False)
                    fill = infill.baseline(x, z.detach().round())
                    xt = fill + z * (x - fill)
                    logits = model(xt).float()  # a reduced size the model cannot take was refused in validate
                    s = log_odds(logits, c, model.activation or "softmax")
                    # inputs=[theta]: only the mask accumulates a gradient, never the parameters of a model
                    # that a caller handed over with requires_grad on (explorer.load_model(net) keeps it)
                    (s * signs[grp] / S).sum().backward(inputs=[theta])
                return s.detach()

            idx_all = torch.arange(G * S, device=dev)
            scores = model.batch.call(fn, idx_all)
            # sparsity (+ optional TV) on each mask, once per step
            with torch.enable_grad():
                drop = torch.sigmoid(theta)
                up = F.interpolate(drop, size=(h, w), mode="bilinear", align_corners=False)
                ramp = 1.0 if p.ramp <= 0 else min(1.0, t / p.ramp)
                reg = 0.0
                for k, (_, _, on_keep) in enumerate(groups):
                    area = (1 - up[k]) if on_keep else up[k]
                    reg = reg + ramp * p.l1 * full_px * area.mean()
                if p.tv > 0:
                    reg = reg + p.tv * total_variation(drop)
                if torch.is_tensor(reg) and reg.requires_grad:
                    reg.backward(inputs=[theta])
            opt.step()
            sched.step()
            done = t + 1
            if done % p.every == 0 or done == p.steps:
                sc = scores.view(G, S).mean(1)
                info = {"step": done, "steps": p.steps, "lr": sched.get_last_lr()[0],
                        "log_odds": {g[0]: float(sc[k]) for k, g in enumerate(groups)},
                        "forwards": done * G * S, "input": [h, w]}
                yield MethodStep(done / p.steps, maps_now(), info, f"step {done}/{p.steps}")


def reduced_size(H: int, W: int, scale: float) -> tuple[int, int]:
    """The input size the model runs at for ``scale`` (validate's probe and the optimisation use the same)."""
    return max(2, round(H * scale)), max(2, round(W * scale))


def _is_oom(exc: BaseException) -> bool:
    from explorer.models.device import is_oom

    return is_oom(exc)
