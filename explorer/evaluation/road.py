"""ROAD: RemOve And Debias (Rong, Leemann, Borisov, Kasneci, Kasneci, ICML 2022).

Deletion curves with a zero or blur substrate mix two effects: the removed information and the tell-tale
*shape* of the removed set, which the model can read (a class leaks through the mask). ROAD removes pixels
by *noisy linear imputation*: every removed pixel becomes the weighted mean of its 8 neighbours (weight 1/6
for the 4 direct neighbours, 1/12 for the diagonals; neighbours that are removed too are unknowns of the
same sparse linear system), plus a little Gaussian noise (σ = 0.01 in normalised space) so that the
imputed area carries no exact, recognisable texture. Two orders are scored at removal fractions
10 %, 20 %, …, 90 %:

- MoRF (most relevant first): remove the top-f pixels of the map; a faithful map makes P_target fall —
  lower mean is better.
- LeRF (least relevant first): remove the bottom-f pixels; a faithful map keeps P_target — higher is
  better.

Reported: P_target after each removal, the means over the fractions (``morf``, ``lerf``) and
``combined = (lerf − morf) / 2`` (pytorch-grad-cam's ``ROADCombined``; higher is better). pytorch-grad-cam's
``ROADMostRelevantFirst(percentile=p)`` keeps the pixels below the map's p-th percentile, i.e. removes the
top (100 − p) %: its percentiles 10…90 are our removal fractions 90…10 %, the same set. We rank pixels
(ties in raster order) instead of thresholding, so a fraction is exact even where the map has plateaus.

The imputation is solved per channel with scipy's sparse direct solver; imputed images are kept as
(h, w, 3) uint8 frames when asked, so a GUI can show what the model scored at each point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch

from explorer.core.cancel import CancelToken
from explorer.core.errors import ParamError
from explorer.evaluation.base import MetricProgress, input_space, run_to_end, token
from explorer.evaluation.causal import rank_map
from explorer.methods.base import Context, prepare_context
from explorer.models.loaded import LoadedModel

FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
ORDERS = ("morf", "lerf")
NOISE = 0.01
# (dy, dx, weight): the ROAD paper's neighbourhood, direct neighbours weigh twice the diagonal ones
NEIGHBOURS = ((-1, -1, 1 / 12), (-1, 0, 1 / 6), (-1, 1, 1 / 12), (0, -1, 1 / 6),
              (0, 1, 1 / 6), (1, -1, 1 / 12), (1, 0, 1 / 6), (1, 1, 1 / 12))


def noisy_linear_impute(img: np.ndarray, removed: np.ndarray, noise: float = NOISE,
                        rng: np.random.Generator | None = None) -> np.ndarray:
    """``img`` (C, H, W) float with the pixels where ``removed`` (H, W bool) is True imputed.

    Each removed pixel v_i satisfies Σ_j w_j (v_j − v_i) = 0 over its in-bounds neighbours j: a discrete
    harmonic in-fill whose boundary values are the kept pixels. Then ``noise`` · N(0, 1) is added to
    every imputed value.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    img = np.asarray(img, dtype=np.float64)
    C, H, W = img.shape
    removed = np.asarray(removed, dtype=bool)
    out = img.copy()
    miss = np.flatnonzero(removed)
    n = miss.size
    if n == 0:
        return out.astype(np.float32)
    flat = img.reshape(C, -1)
    index = np.full(H * W, -1, dtype=np.int64)
    index[miss] = np.arange(n)
    ys, xs = np.divmod(miss, W)
    rows, cols, vals = [], [], []
    rhs = np.zeros((n, C))
    total = np.zeros(n)
    for dy, dx, w in NEIGHBOURS:
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < H) & (nx >= 0) & (nx < W)
        eq = np.flatnonzero(inside)
        nb = ny[inside] * W + nx[inside]
        total[eq] += w
        unknown = index[nb] >= 0
        rows.append(eq[unknown])
        cols.append(index[nb[unknown]])
        vals.append(np.full(int(unknown.sum()), w))
        rhs[eq[~unknown]] -= w * flat[:, nb[~unknown]].T
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    vals.append(-total)
    A = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsc()
    sol = np.asarray(spsolve(A, rhs)).reshape(n, C)
    if noise:
        rng = rng if rng is not None else np.random.default_rng(0)
        sol = sol + float(noise) * rng.standard_normal(sol.shape)
    out.reshape(C, -1)[:, miss] = sol.T
    return out.astype(np.float32)


def removed_mask(rank: np.ndarray, fraction: float, order: str) -> np.ndarray:
    """Boolean (H, W): the pixels ROAD removes at ``fraction`` in ``order`` (rank 0 = most salient)."""
    n = rank.size
    k = int(round(float(fraction) * n))
    return rank < k if order == "morf" else rank >= n - k


@dataclass
class RoadResult:
    """P_target after noisy-linear-imputation removal, per order and fraction."""

    fractions: np.ndarray
    morf_scores: np.ndarray
    lerf_scores: np.ndarray
    base: float
    target: int
    noise: float
    score: str = "softmax"
    frames: dict[str, list[np.ndarray]] = field(default_factory=dict)

    @property
    def morf(self) -> float:
        return float(np.mean(self.morf_scores))

    @property
    def lerf(self) -> float:
        return float(np.mean(self.lerf_scores))

    @property
    def combined(self) -> float:
        return (self.lerf - self.morf) / 2.0

    def curve(self, order: str) -> dict[str, Any]:
        """A curve record (fraction 0 = the intact image) for plots: mode ``road_morf`` / ``road_lerf``."""
        scores = self.morf_scores if order == "morf" else self.lerf_scores
        return {"mode": f"road_{order}", "fractions": np.concatenate([[0.0], self.fractions]),
                "scores": np.concatenate([[self.base], scores]), "auc": float(np.mean(scores)),
                "substrate": f"noisy linear imputation (noise {self.noise:g})", "step": None}

    def record(self) -> dict[str, Any]:
        return {"morf": self.morf, "lerf": self.lerf, "combined": self.combined, "base": self.base,
                "target": self.target, "noise": self.noise, "score": self.score,
                "fractions": [float(f) for f in self.fractions],
                "morf_scores": [float(s) for s in self.morf_scores],
                "lerf_scores": [float(s) for s in self.lerf_scores]}


def _rgb(model: LoadedModel, x: torch.Tensor) -> np.ndarray:
    return (model.preprocess.denormalise(x.float())[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def iter_road(model: LoadedModel, image_rgb: np.ndarray, saliency: Any, target: int | str | None = None, *,
              fractions: tuple[float, ...] = FRACTIONS, orders: tuple[str, ...] = ORDERS, noise: float = NOISE,
              seed: int = 0, probs: bool = True, keep_frames: bool = False, cancel: CancelToken | None = None,
              context: Context | None = None) -> Iterator[MetricProgress]:
    """Generator form of ``road``: a ``MetricProgress`` after every imputation; the last carries the RoadResult."""
    cancel = token(cancel)
    fracs = tuple(float(f) for f in fractions)
    if not fracs or any(not 0 < f < 1 for f in fracs):
        raise ParamError(f"ROAD fractions must lie in (0, 1), got {list(fractions)}")
    for o in orders:
        if o not in ORDERS:
            raise ParamError(f"unknown ROAD order {o!r}; valid: {', '.join(ORDERS)}")
    if noise < 0:
        raise ParamError(f"ROAD noise must be >= 0, got {noise}")
    ctx = context or prepare_context(model, image_rgb, target, seed=seed)
    x = ctx.x
    rank = rank_map(input_space(saliency, ctx.placement))
    img = x[0].detach().double().cpu().numpy()
    rng = np.random.default_rng(int(seed) + 7717)
    base = float(model.scores(x, probs=probs)[0, ctx.target])
    scores = {o: np.full(len(fracs), np.nan) for o in ORDERS}
    frames: dict[str, list[np.ndarray]] = {o: [] for o in orders}
    jobs = [(o, i, f) for o in orders for i, f in enumerate(fracs)]
    bs = max(1, int(model.batch.size))
    done = 0
    # impute a batch, then score it in one forward (the model's batch size; the solves dominate anyway)
    for start in range(0, len(jobs), bs):
        chunk = jobs[start:start + bs]
        imputed = []
        for o, i, f in chunk:
            cancel.check()
            imputed.append(noisy_linear_impute(img, removed_mask(rank, f, o), noise, rng))
            done += 1
            yield MetricProgress(done / (len(jobs) + 1), f"ROAD {o} {f:.0%}: imputed")
        xb = torch.from_numpy(np.stack(imputed)).to(x.device, x.dtype)
        p = model.scores(xb, probs=probs).double().cpu().numpy()[:, ctx.target]
        for (o, i, _), v, k in zip(chunk, p, range(len(chunk))):
            scores[o][i] = float(v)
            if keep_frames:
                frames[o].append(_rgb(model, xb[k:k + 1]))
    result = RoadResult(np.asarray(fracs), scores["morf"], scores["lerf"], base, int(ctx.target), float(noise),
                        model.activation if probs else "logit", frames if keep_frames else {})
    yield MetricProgress(1.0, f"ROAD morf {np.nanmean(scores['morf']):.3f} lerf {np.nanmean(scores['lerf']):.3f}",
                   result, True)


def road(model: LoadedModel, image_rgb: np.ndarray, saliency: Any, target: int | str | None = None,
         **kw: Any) -> RoadResult:
    """ROAD MoRF and LeRF of ``saliency`` (any map form ``causal_curve`` takes) for class ``target``."""
    return run_to_end(iter_road(model, image_rgb, saliency, target, **kw))
