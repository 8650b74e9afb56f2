"""The perturbation methods ``rise``, ``occlusion``, ``lime`` and ``kernelshap``, on the shared toolkit.

Every perturbation method is "score many perturbed copies of the image": masks come from
``explorer.perturb.masks`` batch by batch on the model's device (memory never grows with N), are in-filled by
``explorer.perturb.infill`` and scored by ``explorer.perturb.scoring.score_batch``; LIME and KernelSHAP fit
``explorer.perturb.linear``'s streamed regressions over ``explorer.perturb.superpixels``. Each method keeps
constant-size running statistics (sums over the masks scored so far) and yields its running map after every
batch, so a cancelled run leaves a usable partial map.
"""

from __future__ import annotations

import time
from typing import Iterator

import torch

from explorer.core.catalog import Family
from explorer.core.errors import ParamError
from explorer.core.params import Param, Params
from explorer.core.types import UNCERTAINTY, MapSpec, MethodStep, Needs
from explorer.methods import resume
from explorer.methods.base import Context, Method, register
from explorer.perturb.infill import Infill
from explorer.perturb.linear import FitThrottle, WeightedSums, lime_kernel
from explorer.perturb.masks import lime_patterns, occlusion_count, occlusion_masks, rise_masks, shap_patterns
from explorer.perturb.params import BATCH_SIZE, CELLS, DENSITY, INFILL, N_MASKS, SCORE, SIGMA, infill_for
from explorer.perturb.scoring import batch_size, score_batch
from explorer.perturb.superpixels import paint, segment_masks, superpixels

WINDOW_PARAM = Param("window", "int", 32, "side of the occluding square, input pixels (clamped to the input)",
                     low=1, high=4096, step=1)
STRIDE_PARAM = Param("stride", "int", 16, "step between window positions, input pixels", low=1, high=4096, step=1)
COVER_EDGE_PARAM = Param("cover_edge", "bool", True,
                         "add a last window flush with the far edge when the stride leaves it uncovered")
SAMPLES_PARAM = Param("samples", "int", 1000, "number of perturbed samples (model evaluations)",
                      low=10, high=100_000, step=100, gpu_default=2000, log=True)
SEGMENTS_PARAM = Param("segments", "int", 50, "SLIC superpixels: approximate count", low=1, high=2000, step=1, log=True)
COMPACTNESS_PARAM = Param("compactness", "float", 10.0, "SLIC compactness: higher = squarer superpixels",
                          low=0.01, high=1000.0, step=1.0, log=True)


def _target_scores(method: Method, ctx: Context, infill: Infill, masks: torch.Tensor) -> torch.Tensor:
    """P_c (or z_c) of the perturbed copies, float32 (b,) on the device."""
    return score_batch(ctx.model, infill, ctx.x, masks, method.p.score == "prob")[:, ctx.target]


@register("rise")
class Rise(Method):
    title = "RISE"
    family = Family.PERTURBATION
    paper = "Petsiuk, Das, Saenko 2018, RISE: Randomized Input Sampling for Explanation of Black-box Models"
    summary = "average of random keep-masks weighted by the target's score on each masked image"
    needs = Needs.SCORES
    scoring = True
    outputs = (
        MapSpec("salient", help="sum_i P_i[c] M_i / (N p)",
                  zero="never near 0: a value is the target's mean score over the masks keeping the pixel, "
                  "so only values above the map's average support the target"),
        MapSpec(UNCERTAINTY, help="per-pixel standard error of the salient estimate"),
    )
    params = Params(N_MASKS, CELLS, DENSITY, INFILL, SIGMA, SCORE, BATCH_SIZE)
    quick = {"n": 64}

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        p = self.p
        _, _, H, W = ctx.x.shape
        if min(H, W) < 2:
            raise ParamError(f"the model input {H}x{W} is too small for random masks")
        infill = infill_for(self.p, ctx)
        dev = ctx.device
        bs = batch_size(ctx.model, p.batch_size)
        fp = resume.fingerprint(self, ctx)
        st, resumed = resume.restore(ctx, fp, p.n, {"acc": (H * W,), "acc2": (H * W,)})
        # Sums over masks of s_i·M_i and s_i²·M_i², one float32 matrix product per batch (exact to float32
        # rounding within a batch), accumulated across batches in float64.
        if st is not None:
            acc, acc2 = resume.tensors(st, dev, "acc", "acc2")
            done = st["done"]
        else:
            acc = torch.zeros(H * W, device=dev, dtype=torch.float64)
            acc2 = torch.zeros(H * W, device=dev, dtype=torch.float64)
            done = 0

        def step(message: str) -> MethodStep:
            mean = acc / (max(done, 1) * p.p)  # per-sample estimates v_i = s_i M_i / p; mean = Σ v_i / done
            var = (acc2 / (max(done, 1) * p.p * p.p) - mean * mean).clamp_min(0) / max(done - 1, 1)
            info = {"masks": done, "state": resume.resume_state(fp, done, bs, acc=acc, acc2=acc2)}
            if resumed:
                info["resume"] = resumed
            return MethodStep(done / p.n,
                              {"salient": mean.view(H, W).float(), UNCERTAINTY: var.sqrt().view(H, W).float()},
                              info, message)

        if done:  # the stored map at once, then the masks it had not scored yet
            yield step(f"{resumed}: {done}/{p.n} masks")
        for masks in rise_masks(p.n, (H, W), p.cells, p.p, bs, dev, ctx.generator(), start=done):
            ctx.cancel.check()
            s = _target_scores(self, ctx, infill, masks).float()  # (b,)
            flat = masks.view(masks.shape[0], H * W)
            acc += (s[None] @ flat)[0].double()
            acc2 += ((s * s)[None] @ (flat * flat))[0].double()
            done += masks.shape[0]
            yield step(f"{done}/{p.n} masks")

    @classmethod
    def resumable(cls, old: dict, new: dict) -> bool:
        return resume.same_but_batch(old, new)


@register("occlusion")
class Occlusion(Method):
    title = "Occlusion"
    family = Family.PERTURBATION
    paper = "Zeiler, Fergus 2014, Visualizing and Understanding Convolutional Networks"
    summary = ("drop in the target's score when a sliding square is in-filled, "
               "averaged over the windows covering each pixel")
    needs = Needs.SCORES
    scoring = True
    outputs = (MapSpec("salient", signed=True,
                         help="mean over covering windows of P_c(image) - P_c(window in-filled)",
                         zero="0 = in-filling the windows over this pixel leaves P_c unchanged; positive = "
                              "in-filling lowers it (the pixel supports the target), negative = it raises it"),)
    params = Params(WINDOW_PARAM, STRIDE_PARAM, COVER_EDGE_PARAM, INFILL, SIGMA, SCORE, BATCH_SIZE)
    quick = {"window": 64, "stride": 32}

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        p = self.p
        _, _, H, W = ctx.x.shape
        infill = infill_for(self.p, ctx)
        dev = ctx.device
        with torch.inference_mode():
            out = ctx.model.logits(ctx.x).float()
        base = (ctx.model.activate(out) if p.score == "prob" else out)[0, ctx.target]
        total = occlusion_count((H, W), p.window, p.stride, p.cover_edge)
        acc = torch.zeros(H * W, device=dev, dtype=torch.float64)
        cnt = torch.zeros(H * W, device=dev, dtype=torch.float64)
        done = 0
        bs = batch_size(ctx.model, p.batch_size)
        for keep in occlusion_masks((H, W), p.window, p.stride, bs, dev, p.cover_edge):
            ctx.cancel.check()
            drop = base - _target_scores(self, ctx, infill, keep).float()  # (b,)
            occ = 1.0 - keep.view(keep.shape[0], H * W)
            acc += (drop[None] @ occ)[0].double()
            cnt += occ.sum(0).double()
            done += keep.shape[0]
            m = (acc / cnt.clamp_min(1)).view(H, W).float()
            yield MethodStep(done / total, {"salient": m}, {"windows": done, "of": total, "score": float(base)},
                       f"{done}/{total} windows")


class _SuperpixelMethod(Method):
    """Shared by LIME and KernelSHAP: SLIC segments of the model input as interpretable features."""

    family = Family.PERTURBATION
    needs = Needs.SCORES
    scoring = True

    def segments(self, ctx: Context) -> tuple[torch.Tensor, int, str]:
        """(labels on the device, segment count, "slic" or "grid" when SLIC found a single region)."""
        labels, how = superpixels(ctx.input_rgb, self.p.segments, self.p.compactness)
        return torch.from_numpy(labels).to(ctx.device), int(labels.max()) + 1, how


@register("lime")
class Lime(_SuperpixelMethod):
    title = "LIME"
    paper = "Ribeiro, Singh, Guestrin 2016, \"Why Should I Trust You?\": Explaining the Predictions of Any Classifier"
    summary = "weighted ridge regression of the target's score on random superpixel on/off patterns"
    outputs = (MapSpec("salient", signed=True, help="ridge coefficient of each superpixel",
                         zero="0 = the superpixel has no weight in the local linear fit of the target's score; "
                              "positive = keeping it raises the score"),)
    params = Params(SAMPLES_PARAM, SEGMENTS_PARAM, COMPACTNESS_PARAM,
                    Param("kernel_width", "float", 0.25, "width of the exponential kernel on cosine distance",
                          low=0.01, high=10.0, step=0.05, log=True),
                    Param("alpha", "float", 1.0, "ridge penalty", low=0.0, high=1e4, step=0.1),
                    INFILL, SIGMA, SCORE, BATCH_SIZE)
    quick = {"samples": 64, "segments": 16}

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        p = self.p
        labels, m, how = self.segments(ctx)
        infill = infill_for(self.p, ctx)
        sums = WeightedSums(m, ctx.device)
        bs = batch_size(ctx.model, p.batch_size)
        fp = resume.fingerprint(self, ctx)
        st, resumed = resume.restore(ctx, fp, p.samples, WeightedSums.shapes(m))
        if st is not None:  # the patterns are drawn per batch: replayed with the batch they were drawn with
            sums.load(st["sums"], st["done"])
            bs = st["batch"]
        throttle = FitThrottle()

        def step(message: str) -> MethodStep:
            t0 = time.perf_counter()
            beta, beta0, r2 = sums.ridge(p.alpha)
            throttle.solved(time.perf_counter() - t0)
            info = {"samples": sums.count, "segments": m, "segmentation": how, "intercept": beta0, "r2": r2,
                    "state": resume.resume_state(fp, sums.count, bs, **sums.tensors())}
            if resumed:
                info["resume"] = resumed
            return MethodStep(sums.count / p.samples, {"salient": paint(beta, labels)}, info, message)

        last = None
        if sums.count:
            last = step(f"{resumed}: {sums.count}/{p.samples} samples")
            yield last
        for z in resume.skip_batches(lime_patterns(p.samples, m, bs, ctx.device, ctx.generator()), sums.count):
            ctx.cancel.check()
            y = _target_scores(self, ctx, infill, segment_masks(z, labels))
            sums.add(z, y, lime_kernel(z, p.kernel_width))
            if last is None or throttle.due(sums.count >= p.samples):
                last = step(f"{sums.count}/{p.samples} samples")
            else:  # the last fit's map and state (copying the sums costs O(m²): only as often as a fit, O(m³))
                info = dict(last.info, samples=sums.count)
                last = MethodStep(sums.count / p.samples, last.maps, info, f"{sums.count}/{p.samples} samples")
            yield last

    @classmethod
    def resumable(cls, old: dict, new: dict) -> bool:
        return resume.same_but_batch(old, new)


@register("kernelshap")
class KernelShap(_SuperpixelMethod):
    title = "KernelSHAP"
    paper = "Lundberg, Lee 2017, A Unified Approach to Interpreting Model Predictions"
    summary = "Shapley values of superpixels estimated by kernel-weighted regression on random coalitions"
    outputs = (MapSpec("salient", signed=True,
                         help="Shapley value of each superpixel (they sum to f(image) - f(all in-filled))",
                         zero="0 = no Shapley contribution; positive raises the score above the all-in-filled "
                              "image's, and the values sum to f(image) - f(all in-filled)"),)
    params = Params(SAMPLES_PARAM, SEGMENTS_PARAM, COMPACTNESS_PARAM,
                    Param("paired", "bool", True, "also score each coalition's complement (antithetic sampling)"),
                    INFILL, SIGMA, SCORE, BATCH_SIZE)
    quick = {"samples": 64, "segments": 16}

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        p = self.p
        labels, m, how = self.segments(ctx)
        infill = infill_for(self.p, ctx)
        sums = WeightedSums(m, ctx.device)
        bs = max(2, batch_size(ctx.model, p.batch_size))
        n = p.samples if m > 1 else 2  # one feature: its value is f(all) - f(none), nothing to sample
        f_full = f_empty = 0.0
        done = 0
        fp = resume.fingerprint(self, ctx)
        st, resumed = resume.restore(ctx, fp, n, {**WeightedSums.shapes(m), "f_full": (), "f_empty": ()})
        if st is not None and st["done"] >= 2 and st["batch"] >= 2:  # the patterns are drawn per batch: replayed
            done, bs = st["done"], st["batch"]  # with the batch they were drawn with
            sums.load(st["sums"], max(0, done - 2))
            f_full, f_empty = float(st["sums"]["f_full"]), float(st["sums"]["f_empty"])
        throttle = FitThrottle()
        salient = state = None

        def step(message: str) -> MethodStep:
            info = {"samples": done, "segments": m, "segmentation": how, "f_full": f_full, "f_empty": f_empty,
                    "state": state}
            if resumed:
                info["resume"] = resumed
            return MethodStep(done / n, {"salient": salient}, info, message)

        def fit():
            """The map, and the state of the sums it was fitted on (copied as often as a fit is solved)."""
            t0 = time.perf_counter()
            out = paint(sums.shapley(f_empty, f_full), labels)
            throttle.solved(time.perf_counter() - t0)
            return out, resume.resume_state(fp, done, bs, f_full=f_full, f_empty=f_empty, **sums.tensors())

        if done:
            salient, state = fit()
            yield step(f"{resumed}: {done}/{n} samples")
        for z in resume.skip_batches(shap_patterns(n, m, bs, ctx.device, ctx.generator(), p.paired), done):
            ctx.cancel.check()
            y = _target_scores(self, ctx, infill, segment_masks(z, labels))
            rest = slice(None)
            if done == 0:  # the first batch starts with the end points: all on, all off
                f_full, f_empty = float(y[0]), float(y[1])
                rest = slice(2, None)
            done += z.shape[0]
            if y[rest].numel():  # every other pattern enters the regression with weight 1
                sums.add(z[rest], y[rest], torch.ones_like(y[rest]))
            if salient is None or throttle.due(done >= n):
                salient, state = fit()
            yield step(f"{done}/{n} samples")

    @classmethod
    def resumable(cls, old: dict, new: dict) -> bool:
        return resume.same_but_batch(old, new)
