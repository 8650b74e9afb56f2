"""The black-box perturbation engine: mask samplers and a batched scorer, and the methods built on them.

Every perturbation method is "score many perturbed copies of the image". Masks are generated on the
model's device batch by batch (memory never grows with N), in-filled by ``explorer.methods.infill`` and
scored by ``score_batch`` under inference mode with the model's batch policy (halving on out-of-memory).
Each method keeps constant-size running statistics (sums over the masks scored so far) and yields its
running map after every batch, so a cancelled run leaves a usable partial map.

Samplers (all on the device, ``batch`` masks at a time):
- ``rise_masks``: RISE grid masks (Petsiuk et al. 2018).
- ``occlusion_masks``: a square window slid over the image (Zeiler & Fergus 2014).
- ``lime_patterns`` / ``shap_patterns``: on/off patterns over superpixels (``superpixels.py``), turned into
  keep-masks by ``segment_masks``.

Methods: ``rise``, ``occlusion``, ``lime``, ``kernelshap``.
"""

from __future__ import annotations

import math
import time
from typing import Iterator

import torch

from explorer.core.errors import ParamError
from explorer.core.params import Param, Params
from explorer.core.types import UNCERTAINTY, LayerSpec, Needs, Step
from explorer.methods.base import Context, Method, register
from explorer.methods.infill import INFILLS, Infill, make_infill
from explorer.methods.superpixels import paint, segment_masks, superpixels
from explorer.models.loaded import LoadedModel


# --------------------------------------------------------------------------- RISE masks
def rise_grid_size(hw: tuple[int, int], cells: int) -> tuple[int, int]:
    """Cells per axis: ``cells``, or fewer when the image has fewer pixels than cells on that axis."""
    return max(1, min(cells, hw[0])), max(1, min(cells, hw[1]))


def _linear_weights(length: int, cells: int, cell_px: int, shift: torch.Tensor) -> torch.Tensor:
    """(b, length, cells): weights of bilinear resizing (align_corners=False, edge clamped) of ``cells``
    values to (cells+1)·cell_px samples, read at positions shift + 0..length-1."""
    b = shift.shape[0]
    pos = torch.arange(length, device=shift.device, dtype=torch.float32)
    u = ((pos[None] + shift[:, None] + 0.5) * (cells / ((cells + 1) * cell_px)) - 0.5).clamp(0, cells - 1)
    i0 = u.floor()
    w = u - i0
    i0 = i0.long()
    i1 = (i0 + 1).clamp_max(cells - 1)
    R = torch.zeros(b, length, cells, device=shift.device, dtype=torch.float32)
    R.scatter_add_(2, i0[..., None], (1 - w)[..., None])
    R.scatter_add_(2, i1[..., None], w[..., None])
    return R


RANDOM_BLOCK = 16


def rise_masks(n: int, hw: tuple[int, int], cells: int, p: float, batch: int, device: torch.device,
               generator: torch.Generator) -> Iterator[torch.Tensor]:
    """RISE keep-masks (Petsiuk et al. 2018), ``batch`` at a time, generated on ``device``.

    Each mask: an s×s grid of Bernoulli(p) cells, bilinearly upsampled to (s+1)·cell and cropped at a random
    shift in [0, cell) on each axis. Bilinear resizing is separable, so the upsample-and-crop of grid G is
    R_y·G·R_xᵀ with R_y (h×s) and R_x (w×s) the interpolation weights of the cropped rows and columns (the
    same numbers ``grid_sample``/``interpolate`` compute, align_corners=False, border clamped): two small
    batched matrix products; only the h×w crop is ever materialised.
    """
    H, W = hw
    sy, sx = rise_grid_size(hw, cells)
    cy, cx = math.ceil(H / sy), math.ceil(W / sx)
    # Random numbers are drawn in fixed blocks of RANDOM_BLOCK masks, whatever the batch size, so that a seed
    # gives the same masks (and the same map) at any batch size or after an out-of-memory halving.
    drawn: list[torch.Tensor] = []  # pending (grid, dy, dx) rows not yet yielded
    made = done = 0
    while done < n:
        b = min(batch, n - done)
        while made < done + b:
            k = min(RANDOM_BLOCK, n - made)
            g = (torch.rand(k, 1, sy, sx, device=device, generator=generator) < p).float()
            ky = torch.randint(0, cy, (k,), device=device, generator=generator).float()
            kx = torch.randint(0, cx, (k,), device=device, generator=generator).float()
            drawn.append((g, ky, kx))
            made += k
        grid, dy, dx = (torch.cat(parts) for parts in zip(*drawn))
        drawn = [(grid[b:], dy[b:], dx[b:])] if grid.shape[0] > b else []
        grid, dy, dx = grid[:b], dy[:b], dx[:b]
        Ry = _linear_weights(H, sy, cy, dy)  # (b, H, sy)
        Rx = _linear_weights(W, sx, cx, dx)  # (b, W, sx)
        yield torch.bmm(torch.bmm(Ry, grid[:, 0]), Rx.transpose(1, 2))[:, None]
        done += b


# --------------------------------------------------------------------------- occlusion windows
def window_positions(length: int, window: int, stride: int, cover_edge: bool = True) -> list[int]:
    """Start offsets of a window of side ``window`` (clamped to ``length``) slid with ``stride``.

    Offsets 0, stride, 2·stride, ... while the window fits (as Captum's Occlusion places them); with
    ``cover_edge`` a last window flush with the far edge is added when the stride leaves it uncovered
    (our choice, so that every pixel is covered by at least one window).
    """
    k = min(window, length)
    pos = list(range(0, length - k + 1, max(1, stride)))
    if cover_edge and pos[-1] != length - k:
        pos.append(length - k)
    return pos


def occlusion_masks(hw: tuple[int, int], window: int, stride: int, batch: int, device: torch.device,
                    cover_edge: bool = True) -> Iterator[torch.Tensor]:
    """Keep-masks (b, 1, H, W) with one window zeroed each, row-major over the window positions.

    The window is clamped to the image on each axis (a window larger than the input removes it whole).
    """
    H, W = hw
    ky, kx = min(window, H), min(window, W)
    ys = torch.tensor(window_positions(H, window, stride, cover_edge), device=device)
    xs = torch.tensor(window_positions(W, window, stride, cover_edge), device=device)
    rows = torch.arange(H, device=device)
    cols = torch.arange(W, device=device)
    total = len(ys) * len(xs)
    for start in range(0, total, batch):
        idx = torch.arange(start, min(start + batch, total), device=device)
        y0 = ys[idx // len(xs)]
        x0 = xs[idx % len(xs)]
        in_y = (rows[None] >= y0[:, None]) & (rows[None] < y0[:, None] + ky)  # (b, H)
        in_x = (cols[None] >= x0[:, None]) & (cols[None] < x0[:, None] + kx)  # (b, W)
        covered = in_y[:, :, None] & in_x[:, None, :]
        yield (~covered).to(torch.float32)[:, None]


def occlusion_count(hw: tuple[int, int], window: int, stride: int, cover_edge: bool = True) -> int:
    H, W = hw
    return len(window_positions(H, window, stride, cover_edge)) * len(window_positions(W, window, stride, cover_edge))


# --------------------------------------------------------------------------- superpixel patterns
def lime_patterns(n: int, m: int, batch: int, device: torch.device, generator: torch.Generator,
                  include_original: bool = True) -> Iterator[torch.Tensor]:
    """LIME samples: on/off patterns (b, m) float32, each segment on with probability 1/2 (as in the
    ``lime`` package and Captum); the first pattern is the original image (all on) when asked."""
    done = 0
    while done < n:
        b = min(batch, n - done)
        z = (torch.rand(b, m, device=device, generator=generator) < 0.5).to(torch.float32)
        if done == 0 and include_original:
            z[0] = 1.0
        yield z
        done += b


def shapley_size_distribution(m: int) -> torch.Tensor:
    """P(|z| = k) for k = 1..m-1 proportional to the Shapley kernel's total mass at size k, (m-1)/(k(m-k))."""
    k = torch.arange(1, m, dtype=torch.float64)
    w = (m - 1) / (k * (m - k))
    return w / w.sum()


def shap_patterns(n: int, m: int, batch: int, device: torch.device, generator: torch.Generator,
                  paired: bool = True) -> Iterator[torch.Tensor]:
    """KernelSHAP samples (b, m) float32: first the two end points (all on, all off), then coalitions drawn
    with a size k ~ (m-1)/(k(m-k)) and a uniform subset of that size, so that equal regression weights
    reproduce the Shapley kernel (as Captum and the shap package sample). ``paired`` adds each
    coalition's complement next to it (antithetic sampling, as the shap package does; lowers the variance).
    """
    if batch < 2:
        raise ParamError("KernelSHAP needs batches of at least 2 patterns (the two end points come first)")
    sizes = shapley_size_distribution(m).to(device=device, dtype=torch.float32) if m > 1 else None
    done = 0
    while done < n:
        b = min(batch, n - done)
        rows = []
        if done == 0:
            rows.append(torch.ones(1, m, device=device))
            rows.append(torch.zeros(1, m, device=device))
        left = b - sum(r.shape[0] for r in rows)
        if left > 0 and sizes is not None:
            draw = (left + 1) // 2 if paired else left
            k = torch.multinomial(sizes, draw, replacement=True, generator=generator) + 1  # (draw,)
            rank = torch.rand(draw, m, device=device, generator=generator).argsort(1).argsort(1)
            z = (rank < k[:, None]).to(torch.float32)
            if paired:
                z = torch.stack([z, 1 - z], 1).reshape(2 * draw, m)[:left]
            rows.append(z)
        elif left > 0:  # a single feature: only the end points exist
            rows.append(torch.ones(left, m, device=device))
        z = torch.cat(rows)
        yield z
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


# --------------------------------------------------------------------------- linear fits (LIME, KernelSHAP)
def _solve_psd(K: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """K⁻¹·rhs (rhs: (m,) or (m, k)) for a symmetric positive semi-definite K, on the CPU in float64, by
    Cholesky. A jitter of 1e-10·mean(diag K) keeps it definite while there are fewer samples than features
    (the result then approaches the least-norm solution); it is negligible once K is well determined."""
    K = K.cpu()
    m = K.shape[0]
    jitter = 1e-10 * float(K.diagonal().mean().abs()) + 1e-300
    eye = torch.eye(m, dtype=K.dtype)
    for _ in range(6):
        L, info = torch.linalg.cholesky_ex(K + jitter * eye)
        if int(info) == 0:
            r = rhs.cpu()
            return torch.cholesky_solve(r[:, None] if r.dim() == 1 else r, L).reshape(r.shape)
        jitter *= 100
    return torch.linalg.lstsq(K, rhs.cpu(), driver="gelsd").solution


class FitThrottle:
    """Decides when a streamed fit is re-solved: after every batch while solving is cheap, else only as
    often as keeps the solves under ``share`` of the run's time (with many superpixels an M×M solve can
    cost as much as a batch of forwards); always after the last batch, so the final map never depends on it."""

    def __init__(self, share: float = 0.1):
        self.share = share
        self.cost = 0.0
        self.since = time.perf_counter()

    def due(self, last: bool) -> bool:
        return last or self.cost <= self.share * (time.perf_counter() - self.since)

    def solved(self, seconds: float) -> None:
        self.cost = seconds
        self.since = time.perf_counter()


class WeightedSums:
    """Constant-size sufficient statistics of a weighted linear regression of y on z, in float64.

    After each batch they give the same fit as refitting on every sample seen so far: S = Σw, c = Σw·z,
    A = Σw·z·zᵀ, sy = Σw·y, b = Σw·z·y, syy = Σw·y².
    """

    def __init__(self, m: int, device: torch.device):
        d = dict(device=device, dtype=torch.float64)
        self.S = torch.zeros((), **d)
        self.c = torch.zeros(m, **d)
        self.A = torch.zeros(m, m, **d)
        self.sy = torch.zeros((), **d)
        self.b = torch.zeros(m, **d)
        self.syy = torch.zeros((), **d)
        self.count = 0

    def add(self, z: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> None:
        z, y, w = z.double(), y.double(), w.double()
        wz = z * w[:, None]
        self.S += w.sum()
        self.c += wz.sum(0)
        self.A += wz.T @ z
        self.sy += (w * y).sum()
        self.b += wz.T @ y
        self.syy += (w * y * y).sum()
        self.count += z.shape[0]

    def ridge(self, alpha: float) -> tuple[torch.Tensor, float, float]:
        """Weighted ridge with an unpenalised intercept (as scikit-learn's Ridge with sample_weight):
        argmin Σ w (y − β0 − zᵀβ)² + α‖β‖². Returns (β, β0, weighted R²)."""
        S = self.S.clamp_min(1e-300)
        zm, ym = self.c / S, self.sy / S
        C = self.A - S * torch.outer(zm, zm)
        r = self.b - S * zm * ym
        m = C.shape[0]
        eye = torch.eye(m, dtype=C.dtype, device=C.device)
        beta = _solve_psd(C + alpha * eye, r).to(C.device)
        beta0 = float(ym - zm @ beta)
        sst = float(self.syy - S * ym * ym)
        sse = sst - 2 * float(beta @ r) + float(beta @ C @ beta)
        r2 = 1.0 - sse / sst if sst > 1e-300 else 0.0
        return beta, beta0, r2

    def shapley(self, f_empty: float, f_full: float) -> torch.Tensor:
        """The KernelSHAP fit with its two constraints imposed exactly: intercept f(∅) and
        Σφ = f(all) − f(∅) (efficiency). argmin Σ w (y − f(∅) − zᵀφ)² s.t. 1ᵀφ = Δ, solved through its
        KKT system."""
        # KKT by elimination: φ = A⁻¹(b' − λ·1) with λ chosen so that 1ᵀφ = Δ, b' = Σ w z (y − f(∅)).
        b = (self.b - f_empty * self.c).cpu()
        ones = torch.ones_like(b)
        sol = _solve_psd(self.A, torch.stack([b, ones], 1))
        u, v = sol[:, 0], sol[:, 1]
        lam = (u.sum() - (f_full - f_empty)) / v.sum()
        return (u - lam * v).to(self.A.device)


def lime_kernel(z: torch.Tensor, width: float) -> torch.Tensor:
    """LIME sample weights: exp(−d²/(2·width²)) with d the cosine distance between the pattern z and the
    original (all on) in the interpretable space, d = 1 − |z|/√(m·|z|) = 1 − √(|z|/m); the all-off pattern
    gets d = 1. This is the ``lime`` package's kernel (√exp(−d²/w²)) and Captum's exponential kernel form."""
    m = z.shape[1]
    on = z.sum(1)
    d = 1.0 - torch.sqrt(on / m)
    return torch.exp(-(d * d) / (2.0 * width * width))


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
BATCH_PARAM = Param("batch_size", "int", 0, "images per forward pass (0 = device policy)", low=0, high=4096, live=False,
                    advanced=True)

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


def infill_for(method: Method, ctx: Context) -> Infill:
    return make_infill(method.p.infill, ctx.x, ctx.model.preprocess, sigma=method.p.sigma,
                       generator=ctx.generator(offset=7919))


def _target_scores(method: Method, ctx: Context, infill: Infill, masks: torch.Tensor) -> torch.Tensor:
    """P_c (or z_c) of the perturbed copies, float32 (b,) on the device."""
    return score_batch(ctx.model, infill, ctx.x, masks, method.p.score == "softmax")[:, ctx.target]


@register("rise")
class Rise(Method):
    title = "RISE"
    family = "perturbation"
    paper = "Petsiuk, Das, Saenko 2018, RISE: Randomized Input Sampling for Explanation of Black-box Models"
    summary = "average of random keep-masks weighted by the target's score on each masked image"
    needs = Needs.SCORES
    outputs = (
        LayerSpec("salient", help="sum_i P_i[c] M_i / (N p)",
                  zero="never near 0: a value is the target's mean score over the masks keeping the pixel, "
                  "so only values above the map's average support the target"),
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
        # Sums over masks of s_i·M_i and s_i²·M_i², one float32 matrix product per batch (exact to float32
        # rounding within a batch), accumulated across batches in float64.
        acc = torch.zeros(H * W, device=dev, dtype=torch.float64)
        acc2 = torch.zeros(H * W, device=dev, dtype=torch.float64)
        done = 0
        for masks in rise_masks(p.n, (H, W), p.cells, p.p, batch_size(ctx.model, p.batch_size), dev, ctx.generator()):
            ctx.cancel.check()
            s = _target_scores(self, ctx, infill, masks).float()  # (b,)
            flat = masks.view(masks.shape[0], H * W)
            acc += (s[None] @ flat)[0].double()
            acc2 += ((s * s)[None] @ (flat * flat))[0].double()
            done += masks.shape[0]
            mean = acc / (done * p.p)  # per-sample estimates v_i = s_i M_i / p; mean = Σ v_i / done
            var = (acc2 / (done * p.p * p.p) - mean * mean).clamp_min(0) / max(done - 1, 1)
            yield Step(done / p.n, {"salient": mean.view(H, W).float(), UNCERTAINTY: var.sqrt().view(H, W).float()},
                       {"masks": done}, f"{done}/{p.n} masks")


@register("occlusion")
class Occlusion(Method):
    title = "Occlusion"
    family = "perturbation"
    paper = "Zeiler, Fergus 2014, Visualizing and Understanding Convolutional Networks"
    summary = "drop in the target's score when a sliding square is in-filled, averaged over the windows covering each pixel"
    needs = Needs.SCORES
    outputs = (LayerSpec("salient", signed=True, help="mean over covering windows of P_c(image) - P_c(window in-filled)",
                         zero="0 = in-filling the windows over this pixel leaves P_c unchanged; positive = "
                              "in-filling lowers it (the pixel supports the target), negative = it raises it"),)
    params = Params(WINDOW_PARAM, STRIDE_PARAM, COVER_EDGE_PARAM, *INFILL_PARAMS, SCORE_PARAM, BATCH_PARAM)
    quick = {"window": 64, "stride": 32}

    def steps(self, ctx: Context) -> Iterator[Step]:
        p = self.p
        _, _, H, W = ctx.x.shape
        infill = infill_for(self, ctx)
        dev = ctx.device
        with torch.inference_mode():
            out = ctx.model(ctx.x).float()
        base = (out.softmax(1) if p.score == "softmax" else out)[0, ctx.target]
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
            yield Step(done / total, {"salient": m}, {"windows": done, "of": total, "score": float(base)},
                       f"{done}/{total} windows")


class _SuperpixelMethod(Method):
    """Shared by LIME and KernelSHAP: SLIC segments of the model input as interpretable features."""

    family = "perturbation"
    needs = Needs.SCORES

    def segments(self, ctx: Context) -> tuple[torch.Tensor, int, str]:
        """(labels on the device, segment count, "slic" or "grid" when SLIC found a single region)."""
        labels, how = superpixels(ctx.input_rgb, self.p.segments, self.p.compactness)
        return torch.from_numpy(labels).to(ctx.device), int(labels.max()) + 1, how


@register("lime")
class Lime(_SuperpixelMethod):
    title = "LIME"
    paper = "Ribeiro, Singh, Guestrin 2016, \"Why Should I Trust You?\": Explaining the Predictions of Any Classifier"
    summary = "weighted ridge regression of the target's score on random superpixel on/off patterns"
    outputs = (LayerSpec("salient", signed=True, help="ridge coefficient of each superpixel",
                         zero="0 = the superpixel has no weight in the local linear fit of the target's score; "
                              "positive = keeping it raises the score"),)
    params = Params(SAMPLES_PARAM, SEGMENTS_PARAM, COMPACTNESS_PARAM,
                    Param("kernel_width", "float", 0.25, "width of the exponential kernel on cosine distance",
                          low=0.01, high=10.0, step=0.05, log=True),
                    Param("alpha", "float", 1.0, "ridge penalty", low=0.0, high=1e4, step=0.1),
                    *INFILL_PARAMS, SCORE_PARAM, BATCH_PARAM)
    quick = {"samples": 64, "segments": 16}

    def steps(self, ctx: Context) -> Iterator[Step]:
        p = self.p
        labels, m, how = self.segments(ctx)
        infill = infill_for(self, ctx)
        sums = WeightedSums(m, ctx.device)
        bs = batch_size(ctx.model, p.batch_size)
        throttle = FitThrottle()
        for z in lime_patterns(p.samples, m, bs, ctx.device, ctx.generator()):
            ctx.cancel.check()
            y = _target_scores(self, ctx, infill, segment_masks(z, labels))
            sums.add(z, y, lime_kernel(z, p.kernel_width))
            if throttle.due(sums.count >= p.samples):
                t0 = time.perf_counter()
                beta, beta0, r2 = sums.ridge(p.alpha)
                salient = paint(beta, labels)
                throttle.solved(time.perf_counter() - t0)
            yield Step(sums.count / p.samples, {"salient": salient},
                       {"samples": sums.count, "segments": m, "segmentation": how, "intercept": beta0, "r2": r2},
                       f"{sums.count}/{p.samples} samples")


@register("kernelshap")
class KernelShap(_SuperpixelMethod):
    title = "KernelSHAP"
    paper = "Lundberg, Lee 2017, A Unified Approach to Interpreting Model Predictions"
    summary = "Shapley values of superpixels estimated by kernel-weighted regression on random coalitions"
    outputs = (LayerSpec("salient", signed=True, help="Shapley value of each superpixel (they sum to f(image) - f(all in-filled))",
                         zero="0 = no Shapley contribution; positive raises the score above the all-in-filled "
                              "image's, and the values sum to f(image) - f(all in-filled)"),)
    params = Params(SAMPLES_PARAM, SEGMENTS_PARAM, COMPACTNESS_PARAM,
                    Param("paired", "bool", True, "also score each coalition's complement (antithetic sampling)"),
                    *INFILL_PARAMS, SCORE_PARAM, BATCH_PARAM)
    quick = {"samples": 64, "segments": 16}

    def steps(self, ctx: Context) -> Iterator[Step]:
        p = self.p
        labels, m, how = self.segments(ctx)
        infill = infill_for(self, ctx)
        sums = WeightedSums(m, ctx.device)
        bs = max(2, batch_size(ctx.model, p.batch_size))
        n = p.samples if m > 1 else 2  # one feature: its value is f(all) - f(none), nothing to sample
        f_full = f_empty = 0.0
        done = 0
        throttle = FitThrottle()
        for z in shap_patterns(n, m, bs, ctx.device, ctx.generator(), p.paired):
            ctx.cancel.check()
            y = _target_scores(self, ctx, infill, segment_masks(z, labels))
            if done == 0:  # the first batch starts with the end points: all on, all off
                f_full, f_empty = float(y[0]), float(y[1])
            done += z.shape[0]
            if sums.count + 2 < done:  # every other pattern enters the regression with weight 1
                rest = slice(2, None) if sums.count == 0 else slice(None)
                sums.add(z[rest], y[rest], torch.ones_like(y[rest]))
            if throttle.due(done >= n):
                t0 = time.perf_counter()
                salient = paint(sums.shapley(f_empty, f_full), labels)
                throttle.solved(time.perf_counter() - t0)
            yield Step(done / n, {"salient": salient},
                       {"samples": done, "segments": m, "segmentation": how, "f_full": f_full, "f_empty": f_empty},
                       f"{done}/{n} samples")
