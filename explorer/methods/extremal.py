"""Extremal perturbations (Fong, Patrick, Vedaldi, ICCV 2019): the smooth mask of a fixed area a that best
preserves the target, one mask per area. Written from the paper (docs/methods.md §4.1); TorchRay's
implementation is under a non-commercial licence and was not read.

The preservation game: m_a = argmax_m Φ_c(m ⊗ x) − λ(t) R_a(m), where

- m ⊗ x = m·x + (1 − m)·G(x, round(m)): the kept pixels, the rest in-filled by any in-filler of
  ``explorer.perturb.infill`` (called on the hard mask and without gradient, as FIDO does; the paper's own
  perturbation is a blur whose σ grows as m falls, ``blur`` here is its fixed-σ counterpart);
- Φ_c is the target's logit (``score=logit``, the network output the paper maximises) or FIDO's log-odds;
- R_a(m) = mean((vecsort(m) − r_a)²), the paper's area loss: the mask's values sorted ascending against the
  reference r_a of (1 − a)·N zeros then a·N ones, so exactly a fraction a of the pixels is pushed to 1 and
  the rest to 0, whatever their places;
- the smooth mask m is the paper's smooth max-convolution of a parameter m̄ ∈ [0, 1] on a grid of stride
  ``stride``: m(u) = smax_v k(u − v)·m̄(v) with k a Gaussian of σ = ``smooth`` input pixels (k(0) = 1) and
  smax_T(f) = Σ f·e^{f/T} / Σ e^{f/T} (T = ``temperature``; T → 0 is the max), computed on the grid and
  upsampled bilinearly to the input (the smooth max of a smooth kernel is smooth, so upsampling it changes
  little). m̄ starts at 0.5 and is projected back onto [0, 1] after every Adam step;
- λ(t) = ``area_weight`` · 10^{2t/steps}: the area term starts soft (the mask may first find the evidence)
  and ends 100 times as strong, so the final mask has the area asked for (our schedule; the paper grows λ
  during the optimisation too).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterator

import torch
import torch.nn.functional as F

from explorer.core.catalog import Family
from explorer.core.errors import ParamError
from explorer.core.params import Param, Params
from explorer.core.types import SALIENT, MapSpec, MethodStep, Needs
from explorer.methods.base import Context, Method, register
from explorer.models.outputs import log_odds
from explorer.perturb.params import INFILL_OR_LEARNED, INPAINTER, SIGMA, check_inpainter, infill_for

AREA_LAYERS = (SALIENT, "salient_area2", "salient_area3")


def gaussian_offsets(sigma: float, device=None) -> tuple[torch.Tensor, int]:
    """k(d) = exp(−|d|² / 2σ²) on the (2r + 1)² offsets of radius r = ceil(3σ) (k(0) = 1), σ in grid cells."""
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32, device=device)
    d2 = t.view(-1, 1) ** 2 + t.view(1, -1) ** 2
    return torch.exp(-d2 / (2 * sigma * sigma)).flatten(), r


def smooth_max_conv(mbar: torch.Tensor, sigma: float, temperature: float) -> torch.Tensor:
    """m(u) = smax_T over v of k(u − v)·m̄(v), per mask; ``mbar`` (G, 1, gh, gw) -> (G, 1, gh, gw)."""
    k, r = gaussian_offsets(sigma, mbar.device)
    g, _, gh, gw = mbar.shape
    patches = F.unfold(mbar, 2 * r + 1, padding=r)  # (G, K, gh*gw), zeros outside the grid
    vals = patches * k.view(1, -1, 1)
    weights = torch.softmax(vals / temperature, dim=1)
    return (weights * vals).sum(1).view(g, 1, gh, gw)


def area_loss(m: torch.Tensor, areas: torch.Tensor) -> torch.Tensor:
    """R_a(m) = mean over pixels of (vecsort(m) − r_a)², per mask: ``m`` (G, 1, h, w), ``areas`` (G,) -> (G,)."""
    flat = m.flatten(1)
    n = flat.shape[1]
    ranks = torch.arange(n, device=m.device).view(1, -1)
    ref = (ranks >= torch.round((1 - areas) * n).view(-1, 1)).to(m.dtype)  # (1 − a)·N zeros, then a·N ones
    return ((torch.sort(flat, dim=1).values - ref) ** 2).mean(1)


@register("extremal")
class Extremal(Method):
    title = "Extremal perturbations"
    family = Family.OPTIMISED_MASK
    paper = ("Fong, Patrick, Vedaldi 2019, Understanding Deep Networks via Extremal Perturbations and Smooth "
             "Masks (ICCV)")
    summary = ("the smooth mask of a fixed area that best preserves the target when the rest is in-filled, "
               "optimised through the model; one mask per area")
    needs = Needs.GRADIENTS
    outputs = (
        MapSpec(SALIENT, help="m_a: the smooth mask of area a (parameter 'area') that best preserves the target",
                  meaning="the region of the given area that best keeps the class when the rest is in-filled"),
        MapSpec("salient_area2", help="the same at the second area (parameter 'area2', 0 = off)",
                  meaning="the best-preserving region at the second area"),
        MapSpec("salient_area3", help="the same at the third area (parameter 'area3', 0 = off)",
                  meaning="the best-preserving region at the third area"),
    )
    params = Params(
        Param("area", "float", 0.1, "fraction of the image the preserved region takes", low=0.01, high=0.95,
              step=0.01),
        Param("area2", "float", 0.0, "a second area, its own mask (0 = off)", low=0.0, high=0.95, step=0.01),
        Param("area3", "float", 0.0, "a third area, its own mask (0 = off)", low=0.0, high=0.95, step=0.01),
        Param("steps", "int", 300, "optimisation steps (Adam)", low=1, high=10_000, step=10),
        Param("lr", "float", 0.1, "Adam learning rate on the mask parameter m̄ in [0, 1]", low=1e-4, high=1.0,
              step=0.01),
        Param("area_weight", "float", 30.0, "λ at the start of the area term (it grows 100-fold over the run)",
              low=0.0, high=1e6, step=10.0, log=True),
        Param("stride", "int", 8, "input pixels per mask parameter (the grid of m̄)", low=1, high=64),
        Param("smooth", "float", 16.0, "σ of the smooth max-convolution kernel, in input pixels", low=0.5,
              high=200.0, step=0.5),
        Param("temperature", "float", 0.05, "temperature of the smooth max (→ 0: the max)", low=0.001, high=10.0,
              step=0.01, advanced=True),
        Param("score", "choice", "logit", "what the mask preserves: the target's logit (the paper) or its "
              "log-odds (FIDO's score)", choices=("logit", "log_odds")),
        dataclasses.replace(INFILL_OR_LEARNED, default="blur"),
        SIGMA,
        INPAINTER,
        Param("every", "int", 10, "show the masks every this many steps", low=1, high=10_000, live=False,
              advanced=True),
    )
    quick = {"steps": 4, "stride": 16, "smooth": 16.0, "every": 2}

    def validate(self) -> None:
        check_inpainter(self.p, self.model)
        areas = self.areas()
        if len(set(areas)) < len(areas):
            raise ParamError(f"extremal: the areas {', '.join(f'{a:g}' for a in areas)} repeat; give distinct ones")

    def areas(self) -> list[float]:
        """The areas asked for, in the order of their layers (``area``, then ``area2``, ``area3`` when > 0)."""
        return [self.p.area] + [a for a in (self.p.area2, self.p.area3) if a > 0]

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        p = self.p
        model, dev = ctx.model, ctx.device
        x = ctx.x
        _, _, H, W = x.shape
        areas = self.areas()
        layers = [SALIENT] + [AREA_LAYERS[i + 1] for i, a in enumerate((p.area2, p.area3)) if a > 0]
        G = len(areas)
        area_t = torch.tensor(areas, device=dev)
        gh, gw = max(1, math.ceil(H / p.stride)), max(1, math.ceil(W / p.stride))
        sigma_grid = p.smooth / p.stride
        infill = infill_for(p, ctx)
        c = ctx.target
        mbar = torch.full((G, 1, gh, gw), 0.5, device=dev, requires_grad=True)
        opt = torch.optim.Adam([mbar], lr=p.lr)

        def masks(param: torch.Tensor) -> torch.Tensor:
            m = smooth_max_conv(param, sigma_grid, p.temperature)
            return F.interpolate(m, size=(H, W), mode="bilinear", align_corners=False)

        def score(logits: torch.Tensor) -> torch.Tensor:
            return logits[:, c] if p.score == "logit" else log_odds(logits, c, self.model.activation or "softmax")

        for t in range(p.steps):
            ctx.cancel.check()
            opt.zero_grad(set_to_none=True)
            weight = p.area_weight * 10 ** (2 * t / max(1, p.steps))
            holder: dict[str, torch.Tensor] = {}

            def fn(idx: torch.Tensor) -> torch.Tensor:
                with torch.enable_grad():
                    m = masks(mbar[idx])
                    fill = infill.baseline(x, m.detach().round())
                    xt = fill + m * (x - fill)
                    s = score(model(xt).float())
                    reg = area_loss(m, area_t[idx])
                    # inputs=[mbar]: only the mask gets a gradient, never a caller's model parameters
                    (weight * reg - s).sum().backward(inputs=[mbar])
                holder.setdefault("reg", torch.zeros(G, device=dev))[idx] = reg.detach()
                return s.detach()

            scores = model.batch.call(fn, torch.arange(G, device=dev))
            opt.step()
            with torch.no_grad():
                mbar.clamp_(0, 1)
            done = t + 1
            if done % p.every == 0 or done == p.steps:
                with torch.no_grad():
                    m = masks(mbar.detach())
                info = {"step": done, "steps": p.steps, "areas": dict(zip(layers, areas)),
                        "score": {name: float(scores[k]) for k, name in enumerate(layers)},
                        "area_loss": {name: float(holder["reg"][k]) for k, name in enumerate(layers)},
                        "mean_mask": {name: float(m[k].mean()) for k, name in enumerate(layers)},
                        "area_weight": weight, "forwards": done * G}
                yield MethodStep(done / p.steps, {name: m[k, 0] for k, name in enumerate(layers)}, info,
                           f"step {done}/{p.steps}")
