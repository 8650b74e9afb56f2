"""Colour look-up tables and overlay blending, shared by the CLI's overlay.png and the GUI (numpy only).

The tables are interpolated from a handful of anchor colours taken from the published colour maps
(viridis, inferno, turbo-like jet, and a blue-white-red diverging map centred on zero for signed maps).
"""

from __future__ import annotations

import numpy as np

_ANCHORS: dict[str, list[tuple[int, int, int]]] = {
    "viridis": [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)],
    "inferno": [(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)],
    "magma": [(0, 0, 4), (81, 18, 124), (183, 55, 121), (252, 137, 97), (252, 253, 191)],
    "jet": [(0, 0, 131), (0, 60, 255), (0, 255, 255), (255, 255, 0), (255, 60, 0), (128, 0, 0)],
    "hot": [(10, 0, 0), (180, 0, 0), (255, 120, 0), (255, 230, 40), (255, 255, 255)],
    "gray": [(0, 0, 0), (255, 255, 255)],
    "greens": [(247, 252, 245), (161, 217, 155), (49, 163, 84), (0, 68, 27)],
    "purples": [(252, 251, 253), (188, 189, 220), (117, 107, 177), (63, 0, 125)],
    "coolwarm": [(59, 76, 192), (141, 176, 254), (221, 221, 221), (244, 154, 123), (180, 4, 38)],
    "RdBu": [(5, 48, 97), (67, 147, 195), (247, 247, 247), (214, 96, 77), (103, 0, 31)],
}

SEQUENTIAL = ("inferno", "viridis", "magma", "jet", "hot", "gray", "greens", "purples")
DIVERGING = ("RdBu", "coolwarm")
NAMES = SEQUENTIAL + DIVERGING


def lut(name: str, n: int = 256) -> np.ndarray:
    """An (n, 3) uint8 table."""
    if name not in _ANCHORS:
        raise KeyError(f"unknown colormap {name!r}; valid: {', '.join(NAMES)}")
    anchors = np.asarray(_ANCHORS[name], dtype=np.float64)
    pos = np.linspace(0.0, 1.0, len(anchors))
    t = np.linspace(0.0, 1.0, n)
    return np.stack([np.interp(t, pos, anchors[:, c]) for c in range(3)], axis=1).round().astype(np.uint8)


def default_for(signed: bool) -> str:
    return "RdBu" if signed else "inferno"


def normalise(m: np.ndarray, signed: bool, clip_percentile: float = 99.5) -> np.ndarray:
    """Scale a map to [0, 1] (unsigned) or to [0, 1] with 0.5 = zero (signed), clipping outliers."""
    m = np.asarray(m, dtype=np.float32)
    finite = m[np.isfinite(m)]
    if finite.size == 0:
        return np.zeros_like(m)
    if signed:
        hi = float(np.percentile(np.abs(finite), clip_percentile)) or 1.0
        return np.clip(0.5 + 0.5 * m / hi, 0.0, 1.0)
    lo = float(finite.min())
    hi = float(np.percentile(finite, clip_percentile))
    if hi <= lo:
        return np.zeros_like(m)
    return np.clip((m - lo) / (hi - lo), 0.0, 1.0)


def overlay(image: np.ndarray, m: np.ndarray, signed: bool = False, cmap: str | None = None,
            alpha: float = 0.5, clip_percentile: float = 99.5) -> np.ndarray:
    """Blend a colour-mapped map over an RGB uint8 image of the same H×W; NaN pixels stay uncovered."""
    table = lut(cmap or default_for(signed))
    v = normalise(m, signed, clip_percentile)
    nan = ~np.isfinite(np.asarray(m, dtype=np.float32))
    idx = np.nan_to_num(v * 255).astype(np.int64).clip(0, 255)
    colour = table[idx].astype(np.float32)
    a = np.full(v.shape + (1,), alpha, dtype=np.float32)
    a[nan] = 0.0
    out = image.astype(np.float32) * (1 - a) + colour * a
    return out.round().clip(0, 255).astype(np.uint8)
