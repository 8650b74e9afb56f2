"""Undesirable pixels (Kang, Jung, Lee, ICCVW 2019): target-hindering and non-target regions, black box.

The paper names two kinds of undesirable region for a target class c: factors that hinder the model from
recognising c (target-hindering) and factors that push the image towards other classes (non-target). Its full
text was not available to us, so the estimator below is THIS PROJECT'S FORMULATION of the paper's two factors
(docs/methods.md §3), not the paper's own algorithm. It is black box and reuses RISE's random keep-masks: one set
of N masks, one forward each (the same number of forwards as ``rise`` at equal N), gives all three layers.

For a per-mask score q_i the contrastive score of pixel x is

    D_q(x) = E[q | x kept] - E[q | x removed]
           = sum_i q_i M_i(x) / sum_i M_i(x)  -  sum_i q_i (1 - M_i(x)) / sum_i (1 - M_i(x))

(soft masks weight the two conditional means). Layers:

- ``salient`` = max(0, D_c) with q_i = P_i[c]: pixels whose presence raises P_c;
- ``target_hindering`` = max(0, -D_c): pixels whose presence lowers P_c;
- ``non_target`` = max(0, D_q) with q_i = max_{c' != c} P_i[c'] (the strongest other class on each masked
  image), or q_i = P_i[c'] for a chosen ``competitor`` class c'.

Only running sums are kept (sum M, sum q M, sum q per score), so memory does not grow with N; the maps are
streamed after every batch.
"""

from __future__ import annotations

from typing import Iterator

import torch

from explorer.core.catalog import Family
from explorer.core.errors import ParamError
from explorer.core.params import Param, Params
from explorer.core.types import NON_TARGET, SALIENT, TARGET_HINDERING, MapSpec, MethodStep, Needs
from explorer.methods import resume
from explorer.methods.base import Context, Method, register
from explorer.perturb.masks import rise_masks
from explorer.perturb.params import (
    BATCH_SIZE,
    CELLS,
    DENSITY,
    INFILL_OR_LEARNED,
    INPAINTER,
    N_MASKS,
    SIGMA,
    check_inpainter,
    infill_for,
)
from explorer.perturb.scoring import batch_size, score_batch

COMPETITOR_PARAM = Param("competitor", "class", None,
                         "non-target for this class instead of the strongest other class (index or name)")


def contrast(sum_qm: torch.Tensor, sum_q: torch.Tensor, sum_m: torch.Tensor, n: int) -> torch.Tensor:
    """E[q | kept] - E[q | removed] per pixel from the running sums (0 where a side has no weight)."""
    removed = n - sum_m
    kept_mean = torch.where(sum_m > 1e-9, sum_qm / sum_m.clamp_min(1e-9), torch.zeros_like(sum_qm))
    rem_mean = torch.where(removed > 1e-9, (sum_q - sum_qm) / removed.clamp_min(1e-9), torch.zeros_like(sum_qm))
    both = (sum_m > 1e-9) & (removed > 1e-9)
    return torch.where(both, kept_mean - rem_mean, torch.zeros_like(sum_qm))


@register("undesirable")
class Undesirable(Method):
    title = "Undesirable pixels (target-hindering, non-target)"
    family = Family.PERTURBATION
    paper = ("Kang, Jung, Lee 2019, Interpreting Undesirable Pixels for Image Classification on Black-Box Models "
             "(ICCVW); contrastive estimator on RISE masks: this project's formulation")
    summary = ("one set of random masks: pixels whose presence raises the target (salient), lowers it "
               "(target-hindering), or raises the strongest other class (non-target)")
    needs = Needs.SCORES
    scoring = True
    outputs = (
        MapSpec(SALIENT, help="max(0, E[P_c | pixel kept] - E[P_c | pixel removed])"),
        MapSpec(TARGET_HINDERING, help="max(0, E[P_c | pixel removed] - E[P_c | pixel kept]): presence lowers P_c"),
        MapSpec(NON_TARGET,
                  help="max(0, E[q | kept] - E[q | removed]), q = max other-class P (or the competitor's P)"),
    )
    params = Params(N_MASKS, CELLS, DENSITY, INFILL_OR_LEARNED, SIGMA, INPAINTER, COMPETITOR_PARAM, BATCH_SIZE)
    quick = {"n": 64}

    def validate(self) -> None:
        check_inpainter(self.p)
        if self.p.competitor is not None:
            self.competitor = self.model.class_index(self.p.competitor)
        else:
            self.competitor = None

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        p = self.p
        _, _, H, W = ctx.x.shape
        if min(H, W) < 2:
            raise ParamError(f"the model input {H}x{W} is too small for random masks")
        c = ctx.target
        comp = self.competitor
        if comp is not None and comp == c:
            raise ParamError(f"competitor class {comp} ({ctx.model.labels[comp]!r}) is the target itself; "
                             "choose another class, or none for the strongest other class")
        infill = infill_for(self.p, ctx)
        dev = ctx.device
        f64 = torch.float64
        bs = batch_size(ctx.model, p.batch_size)
        fp = resume.fingerprint(self, ctx)
        st, resumed = resume.restore(ctx, fp, p.n, {"sum_m": (H, W), "sum_cm": (H, W), "sum_om": (H, W),
                                                    "sum_c": (), "sum_o": ()})
        if st is not None:
            sum_m, sum_cm, sum_om, sum_c, sum_o = resume.tensors(st, dev, "sum_m", "sum_cm", "sum_om", "sum_c", "sum_o")
            done = st["done"]
        else:
            sum_m = torch.zeros(H, W, device=dev, dtype=f64)
            sum_cm = torch.zeros(H, W, device=dev, dtype=f64)  # sum_i P_i[c] M_i
            sum_om = torch.zeros(H, W, device=dev, dtype=f64)  # sum_i q_i M_i (other class)
            sum_c = torch.zeros((), device=dev, dtype=f64)
            sum_o = torch.zeros((), device=dev, dtype=f64)
            done = 0

        def step(message: str) -> MethodStep:
            d_c = contrast(sum_cm, sum_c, sum_m, done)
            d_o = contrast(sum_om, sum_o, sum_m, done)
            maps = {
                SALIENT: d_c.clamp_min(0).float(),
                TARGET_HINDERING: (-d_c).clamp_min(0).float(),
                NON_TARGET: d_o.clamp_min(0).float(),
            }
            info = {"masks": done, "forwards": done, "mean_p_target": float(sum_c / max(done, 1)),
                    "mean_p_other": float(sum_o / max(done, 1)),
                    "competitor": None if comp is None else ctx.model.labels[comp],
                    "state": resume.resume_state(fp, done, bs, sum_m=sum_m, sum_cm=sum_cm, sum_om=sum_om,
                                                 sum_c=sum_c, sum_o=sum_o)}
            if resumed:
                info["resume"] = resumed
            return MethodStep(done / p.n, maps, info, message)

        if done:  # the stored maps at once, then the masks not scored yet
            yield step(f"{resumed}: {done}/{p.n} masks")
        for masks in rise_masks(p.n, (H, W), p.cells, p.p, bs, dev, ctx.generator(), start=done):
            ctx.cancel.check()
            probs = score_batch(ctx.model, infill, ctx.x, masks, True).double()  # (b, K)
            pc = probs[:, c]
            if comp is None:
                other = probs.clone()
                other[:, c] = -1.0
                po = other.amax(dim=1)
            else:
                po = probs[:, comp]
            m = masks[:, 0].double()
            sum_m += m.sum(0)
            sum_cm += torch.einsum("b,bhw->hw", pc, m)
            sum_om += torch.einsum("b,bhw->hw", po, m)
            sum_c += pc.sum()
            sum_o += po.sum()
            done += masks.shape[0]
            yield step(f"{done}/{p.n} masks")

    @classmethod
    def resumable(cls, old: dict, new: dict) -> bool:
        return resume.same_but_batch(old, new)
