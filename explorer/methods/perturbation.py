"""The black-box perturbation engine: mask samplers and a batched scorer, and the methods built on them.

Every perturbation method is "score many perturbed copies of the image". Masks are generated on the
model's device batch by batch (memory never grows with N), in-filled by ``explorer.methods.infill`` and
scored by ``score_batch`` under inference mode with the model's batch policy (halving on out-of-memory).
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn.functional as F

from explorer.core.errors import ParamError
from explorer.core.params import Param, Params
from explorer.core.types import UNCERTAINTY, LayerSpec, Needs, Step
from explorer.methods.base import Context, Method, register
from explorer.methods.infill import INFILLS, Infill, make_infill
from explorer.models.loaded import LoadedModel


# --------------------------------------------------------------------------- masks
def rise_grid_size(hw: tuple[int, int], cells: int) -> tuple[int, int]:
    """Cells per axis: ``cells``, or fewer when the image has fewer pixels than cells on that axis."""
    return max(1, min(cells, hw[0])), max(1, min(cells, hw[1]))


def rise_masks(n: int, hw: tuple[int, int], cells: int, p: float, batch: int, device: torch.device,
               generator: torch.Generator) -> Iterator[torch.Tensor]:
    """RISE keep-masks (Petsiuk et al. 2018), ``batch`` at a time, generated on ``device``.

    Each mask: an s×s grid of Bernoulli(p) cells, bilinearly upsampled to (s+1)·cell and cropped at a random
    shift in [0, cell) on each axis. The upsample and the crop are done in one ``grid_sample`` call with
    border padding, which equals resizing the grid to (s+1)·cell with align_corners=False and cropping;
    only the h×w crop is ever materialised.
    """
    H, W = hw
    sy, sx = rise_grid_size(hw, cells)
    cy, cx = math.ceil(H / sy), math.ceil(W / sx)
    Ly, Lx = (sy + 1) * cy, (sx + 1) * cx
    ys = torch.arange(H, device=device, dtype=torch.float32)
    xs = torch.arange(W, device=device, dtype=torch.float32)
    done = 0
    while done < n:
        b = min(batch, n - done)
        grid = (torch.rand(b, 1, sy, sx, device=device, generator=generator) < p).float()
        dy = torch.randint(0, cy, (b,), device=device, generator=generator).float()
        dx = torch.randint(0, cx, (b,), device=device, generator=generator).float()
        gy = 2 * (ys[None, :, None] + dy[:, None, None] + 0.5) / Ly - 1  # (b, H, 1)
        gx = 2 * (xs[None, None, :] + dx[:, None, None] + 0.5) / Lx - 1  # (b, 1, W)
        coords = torch.stack(torch.broadcast_tensors(gx, gy), dim=-1)  # (b, H, W, 2), x first
        yield F.grid_sample(grid, coords, mode="bilinear", padding_mode="border", align_corners=False)
        done += b


# --------------------------------------------------------------------------- scorer
def score_batch(model: LoadedModel, infill: Infill, x: torch.Tensor, masks: torch.Tensor,
                probs: bool = True) -> torch.Tensor:
    """Scores (B, K) of the perturbed copies ``infill.apply(x, masks)``, OOM-safe, under inference mode."""

    def fn(m: torch.Tensor) -> torch.Tensor:
        out = model(infill.apply(x, m)).float()
        return out.softmax(1) if probs else out

    with torch.inference_mode():
        return model.batch.call(fn, masks)


def batch_size(model: LoadedModel, requested: int) -> int:
    return int(requested) if requested else model.batch.size


# --------------------------------------------------------------------------- shared params
N_PARAM = Param("n", "int", 1000, "number of random masks", low=10, high=100_000, step=100, gpu_default=4000, log=True)
CELLS_PARAM = Param("cells", "int", 7, "grid cells per side (s)", low=2, high=64, step=1)
DENSITY_PARAM = Param("p", "float", 0.5, "mask density: probability that a cell is kept", low=0.05, high=0.95, step=0.05)
INFILL_PARAMS = (
    Param("infill", "choice", "zero", "what replaces removed pixels", choices=INFILLS),
    Param("sigma", "float", 10.0, "blur sigma in pixels (infill=blur)", low=0.5, high=100.0, step=0.5),
)
SCORE_PARAM = Param("score", "choice", "softmax", "score the model's probabilities or raw logits",
                    choices=("softmax", "logit"))
BATCH_PARAM = Param("batch_size", "int", 0, "images per forward pass (0 = device policy)", low=0, high=4096, live=False)


def infill_for(method: Method, ctx: Context) -> Infill:
    return make_infill(method.p.infill, ctx.x, ctx.model.preprocess, sigma=method.p.sigma,
                       generator=ctx.generator(offset=7919))


@register("rise")
class Rise(Method):
    title = "RISE"
    family = "perturbation"
    paper = "Petsiuk, Das, Saenko 2018, RISE: Randomized Input Sampling for Explanation of Black-box Models"
    summary = "average of random keep-masks weighted by the target's score on each masked image"
    needs = Needs.SCORES
    outputs = (
        LayerSpec("salient", help="sum_i P_i[c] M_i / (N p)"),
        LayerSpec(UNCERTAINTY, help="per-pixel standard error of the salient estimate"),
    )
    params = Params(N_PARAM, CELLS_PARAM, DENSITY_PARAM, *INFILL_PARAMS, SCORE_PARAM, BATCH_PARAM)
    quick = {"n": 64}

    def steps(self, ctx: Context) -> Iterator[Step]:
        p = self.p
        _, _, H, W = ctx.x.shape
        if min(H, W) < 2:
            raise ParamError(f"the model input {H}x{W} is too small for random masks")
        infill = infill_for(self, ctx)
        dev = ctx.device
        acc = torch.zeros(H, W, device=dev, dtype=torch.float64)
        acc2 = torch.zeros(H, W, device=dev, dtype=torch.float64)
        done = 0
        probs = p.score == "softmax"
        for masks in rise_masks(p.n, (H, W), p.cells, p.p, batch_size(ctx.model, p.batch_size), dev, ctx.generator()):
            ctx.cancel.check()
            s = score_batch(ctx.model, infill, ctx.x, masks, probs)[:, ctx.target].double()  # (b,)
            v = masks[:, 0].double() * s[:, None, None] / p.p  # per-sample estimates
            acc += v.sum(0)
            acc2 += (v * v).sum(0)
            done += masks.shape[0]
            mean = acc / done
            var = (acc2 / done - mean * mean).clamp_min(0) / max(done - 1, 1)
            yield Step(done / p.n, {"salient": mean.float(), UNCERTAINTY: var.sqrt().float()},
                       {"masks": done}, f"{done}/{p.n} masks")
