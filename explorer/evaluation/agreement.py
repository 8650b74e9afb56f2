"""Agreement between maps, and maps against a user's reference — numpy only (no torch, no Qt).

The GUI imports this module directly, so it must stay free of torch. Every function takes 2-D arrays; when
two maps differ in size the second is resampled bilinearly to the first (``explorer.core.types.resize_map``).
Pixels that are NaN in either map (no evidence, e.g. outside a centre crop) are left out.

- ``spearman(a, b)``: Spearman rank correlation over pixels (ties get average ranks).
- ``topk_iou(a, b, k)``: intersection over union of the top-k fraction of pixels of each map.
- ``pcc(map, ref)``: Pearson correlation coefficient (the FEM group's metric against gaze density maps).
- ``sim(map, ref)``: histogram intersection Σ min(P, Q) of both maps shifted to ≥ 0 and normalised to sum
  1 (1 = identical distributions, 0 = disjoint).
- ``pointing_game(map, box=... | mask=..., tolerance=15)``: hit when the map's maximum falls inside the
  user's box or mask, within ``tolerance`` pixels (Zhang et al. 2016 use 15 px).
- ``agreement_table(maps)``: every pair of named maps → {"spearman", "topk_iou"}.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from explorer.core.errors import ExplorerError, ParamError
from explorer.core.types import as_map2d, resize_map


def as_map(m: Any) -> np.ndarray:
    """A 2-D float64 array from an array-like (leading singleton axes squeezed)."""
    return as_map2d(m, "a map", dtype=np.float64)


def _pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_map(a), as_map(b)
    if b.shape != a.shape:
        nan = np.isnan(b)
        b = resize_map(np.where(nan, 0.0, b).astype(np.float32), a.shape).astype(np.float64)
        if nan.any():
            b[resize_map(nan.astype(np.float32), a.shape) > 0.5] = np.nan
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        raise ExplorerError("the two maps have no pixel where both are finite")
    return a[ok], b[ok]


def rankdata(v: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a 1-D array, ties sharing their average rank."""
    v = np.asarray(v, dtype=np.float64).ravel()
    order = np.argsort(v, kind="mergesort")
    sv = v[order]
    # boundaries of runs of equal values
    new = np.concatenate(([True], sv[1:] != sv[:-1]))
    run_id = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    ends = np.concatenate((starts[1:], [sv.size]))
    avg = (starts + ends + 1) / 2.0  # average of 1-based ranks start+1 .. end
    ranks = np.empty(v.size, dtype=np.float64)
    ranks[order] = avg[run_id]
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else float("nan")


def spearman(a: Any, b: Any, absolute: bool = False) -> float:
    """Spearman rank correlation of two maps over their common finite pixels (NaN if one is constant)."""
    x, y = _pair(a, b)
    if absolute:
        x, y = np.abs(x), np.abs(y)
    return _pearson(rankdata(x), rankdata(y))


def pcc(m: Any, ref: Any) -> float:
    """Pearson correlation coefficient between a map and a reference map."""
    x, y = _pair(m, ref)
    return _pearson(x, y)


def _as_distribution(v: np.ndarray) -> np.ndarray:
    v = v - min(0.0, float(v.min()))
    s = v.sum()
    return v / s if s > 0 else np.full(v.shape, 1.0 / v.size)


def sim(m: Any, ref: Any) -> float:
    """Similarity (histogram intersection) Σ min(P, Q) of the two maps as distributions, in [0, 1]."""
    x, y = _pair(m, ref)
    return float(np.minimum(_as_distribution(x), _as_distribution(y)).sum())


def top_mask(m: Any, k: float) -> np.ndarray:
    """Boolean mask of the top ``k`` fraction of pixels (exactly round(k·n), ties in raster order)."""
    a = as_map(m)
    if not 0 < k <= 1:
        raise ParamError(f"top-k fraction must be in (0, 1], got {k}")
    flat = np.where(np.isfinite(a), a, -np.inf).ravel()
    n = max(1, int(round(k * np.isfinite(a).sum())))
    out = np.zeros(flat.size, dtype=bool)
    out[np.argsort(-flat, kind="stable")[:n]] = True
    return out.reshape(a.shape)


def topk_iou(a: Any, b: Any, k: float = 0.1) -> float:
    """IoU of the top-k fraction of pixels of each map (b resampled to a's size)."""
    a = as_map(a)
    b = as_map(b)
    if b.shape != a.shape:
        b = resize_map(np.nan_to_num(b, nan=-np.inf).astype(np.float32), a.shape)
    ta, tb = top_mask(a, k), top_mask(b, k)
    union = (ta | tb).sum()
    return float((ta & tb).sum() / union) if union else float("nan")


def pointing_game(m: Any, box: tuple[int, int, int, int] | None = None, mask: Any = None,
                  tolerance: int = 15) -> dict[str, Any]:
    """Is the map's maximum inside the user's region? ``box`` = (top, left, height, width) in the map's pixels,
    or ``mask`` a boolean H×W array. Returns {"hit", "argmax": (y, x), "distance": pixels to the region}.
    """
    a = as_map(m)
    if (box is None) == (mask is None):
        raise ParamError("pointing game: give exactly one of box=(top, left, height, width) or mask=")
    if box is not None:
        top, left, h, w = (int(v) for v in box)
        if h <= 0 or w <= 0:
            raise ParamError(f"pointing game: the box {box} is empty")
        region = np.zeros(a.shape, dtype=bool)
        region[max(0, top): max(0, top + h), max(0, left): max(0, left + w)] = True
    else:
        region = np.asarray(mask, dtype=bool)
        if region.shape != a.shape:
            region = resize_map(region.astype(np.float32), a.shape) > 0.5
    if not region.any():
        raise ParamError("pointing game: the region lies outside the map")
    if not np.isfinite(a).any():
        raise ExplorerError("pointing game: the map has no finite value")
    flat = np.where(np.isfinite(a), a, -np.inf)
    y, x = np.unravel_index(int(np.argmax(flat)), a.shape)
    ys, xs = np.nonzero(region)
    dist = float(np.sqrt(((ys - y) ** 2 + (xs - x) ** 2).min()))
    return {"hit": bool(dist <= tolerance), "argmax": (int(y), int(x)), "distance": dist, "tolerance": int(tolerance)}


def agreement_table(maps: Mapping[str, Any], k: float = 0.1) -> dict[tuple[str, str], dict[str, float]]:
    """Spearman and top-k IoU for every unordered pair of named maps."""
    names = list(maps)
    out: dict[tuple[str, str], dict[str, float]] = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            out[(a, b)] = {"spearman": spearman(maps[a], maps[b]), "topk_iou": topk_iou(maps[a], maps[b], k)}
    return out
