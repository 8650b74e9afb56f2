"""Agreement between two maps (numpy only): Spearman rank correlation and top-k% intersection over union.

Used by the comparison grid. Pixels that are NaN in either map (outside the model's view) are ignored.
Large maps are subsampled on a regular grid (at most ``MAX_PIXELS`` pixels) so the figures update live.
"""

from __future__ import annotations

import numpy as np

MAX_PIXELS = 250_000


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"maps of different shapes {a.shape} and {b.shape}")
    a, b = a.ravel(), b.ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size > MAX_PIXELS:
        s = int(np.ceil(a.size / MAX_PIXELS))
        a, b = a[::s], b[::s]
    return a, b


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(x.size, dtype=np.float64)
    # start of each run of equal values
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], x.size]
    avg = (starts + ends - 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho over the pixels finite in both maps (NaN when either map is constant)."""
    x, y = _pair(a, b)
    if x.size < 2:
        return float("nan")
    rx, ry = _ranks(x), _ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    den = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / den) if den > 0 else float("nan")


def topk_mask(m: np.ndarray, percent: float) -> np.ndarray:
    """The ``percent`` % highest pixels of a flat array (exactly k of them, ties broken by position)."""
    k = max(1, int(round(m.size * percent / 100.0)))
    mask = np.zeros(m.size, dtype=bool)
    mask[np.argpartition(-m, min(k, m.size) - 1)[:k]] = True
    return mask


def topk_iou(a: np.ndarray, b: np.ndarray, percent: float = 10.0) -> float:
    """IoU of the two maps' top-``percent`` % pixel sets."""
    x, y = _pair(a, b)
    if x.size == 0:
        return float("nan")
    ma, mb = topk_mask(x, percent), topk_mask(y, percent)
    union = (ma | mb).sum()
    return float((ma & mb).sum() / union) if union else float("nan")


def agreement(a: np.ndarray, b: np.ndarray, percent: float = 10.0) -> dict[str, float]:
    return {"spearman": spearman(a, b), f"top{percent:g}_iou": topk_iou(a, b, percent)}
