"""Turning a layer's float map into colours, Qt-free (numpy only), fast enough for live display sliders.

Per map we keep a sorted subsample of its finite values (``MapStats``), so the clipping percentile, the
colour levels and the top-k threshold are table look-ups instead of a full ``np.percentile`` per slider
move. ``render_rgba`` returns an H×W×4 uint8 image: NaN pixels (outside the model's view) and, in top-k and
contour modes, the pixels outside the kept region are fully transparent. Opacity and blending are applied
by whoever composites (the canvas, or ``composite`` for exports).

``render_layer`` is what the canvas's render thread runs: statistics, levels and colours of one layer in
one call, so the GUI thread only swaps the finished array in. Everything here is safe to call from any
thread (the statistics cache is a ``core.object_cache.ObjectCache``; a race at worst computes an entry twice).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.core import colormaps
from explorer.core.object_cache import ObjectCache
from explorer.session.document import DisplayLayer

SAMPLE = 200_000  # values kept per map for percentile look-ups


@dataclass
class MapStats:
    sorted_values: np.ndarray  # finite values, ascending (a subsample for big maps)
    sorted_abs: np.ndarray
    vmin: float
    vmax: float
    has_nan: bool = False
    _nan: np.ndarray | None = None
    display: np.ndarray | None = None  # a subsampled copy for the screen (big images), see display_map

    def nan_mask(self, m: np.ndarray) -> np.ndarray | None:
        """The map's NaN pixels (None when there are none), computed once."""
        if not self.has_nan:
            return None
        if self._nan is None or self._nan.shape != m.shape:
            self._nan = np.isnan(m)
        return self._nan

    def quantile(self, q: float, absolute: bool = False) -> float:
        a = self.sorted_abs if absolute else self.sorted_values
        if a.size == 0:
            return 0.0
        return float(a[int(round(min(1.0, max(0.0, q)) * (a.size - 1)))])


def compute_stats(m: np.ndarray) -> MapStats:
    flat = np.asarray(m, dtype=np.float32).ravel()
    if flat.size > SAMPLE:
        flat = flat[:: int(np.ceil(flat.size / SAMPLE))]
    finite = flat[np.isfinite(flat)]
    s = np.sort(finite)
    sa = np.sort(np.abs(finite))
    full = np.asarray(m, dtype=np.float32)
    has_nan = bool(np.isnan(full).any())
    return MapStats(s, sa, float(s[0]) if s.size else 0.0, float(s[-1]) if s.size else 0.0, has_nan)


_STATS = ObjectCache()  # array -> MapStats


def stats(m: np.ndarray) -> MapStats:
    """Cached statistics of ``m`` (for this very array object, dropped when the array is)."""
    st = _STATS.get(m)
    if st is None:  # computed outside the lock: two threads may both compute it, never block each other
        st = compute_stats(m)
        _STATS.put(m, st)
    return st


DISPLAY_MAX = 1024  # longest side of a layer as coloured for the screen


def display_map(m: np.ndarray, max_side: int = DISPLAY_MAX) -> np.ndarray:
    """``m`` itself, or for big images a regularly subsampled copy (cached) whose longest side is at most
    ``max_side``: maps come from a model input of a few hundred pixels, so nothing visible is lost, and
    recolouring a 12-megapixel photo's layer stays as fast as a 1024² one. Exports use the full map."""
    step = int(np.ceil(max(m.shape[:2]) / max_side))
    if step <= 1:
        return m
    st = stats(m)
    if st.display is None:
        st.display = np.ascontiguousarray(m[::step, ::step])
    return st.display


def display_image(rgb: np.ndarray, max_side: int = 2 * DISPLAY_MAX) -> np.ndarray:
    """The photo subsampled for the screen when it is very large (a cheaper repaint)."""
    step = int(np.ceil(max(rgb.shape[:2]) / max_side))
    return rgb if step <= 1 else np.ascontiguousarray(rgb[::step, ::step])


def levels(signed: bool, st: MapStats, clip: float = 99.5, floor: float = 0.0) -> tuple[float, float]:
    """The values mapped to the bottom and top colours (symmetric around 0 for signed maps).

    ``floor``: for unsigned maps, the percentile given the bottom colour (0 = the minimum); a map whose
    values sit on a baseline (RISE: the mean score, never 0) needs it, or its whole range is coloured."""
    q = clip / 100.0
    if signed:
        hi = st.quantile(q, absolute=True) or 1.0
        return -hi, hi
    lo, hi = (st.quantile(floor / 100.0) if floor > 0 else st.vmin), st.quantile(q)
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def shared_levels(signed: bool, all_stats: list[MapStats], clip: float = 99.5,
                  floor: float = 0.0) -> tuple[float, float]:
    """One scale for several maps (comparison grid, 'shared' normalisation)."""
    pairs = [levels(signed, s, clip, floor) for s in all_stats]
    if not pairs:
        return (-1.0, 1.0) if signed else (0.0, 1.0)
    if signed:
        hi = max(p[1] for p in pairs)
        return -hi, hi
    return min(p[0] for p in pairs), max(p[1] for p in pairs)


_LUT32: dict[tuple[str, bool, bool], np.ndarray] = {}
FADE_GAIN = 1.5  # the alpha ramp reaches opaque at 1 / FADE_GAIN of the way up the scale


def lut32(name: str, fade_zero: bool = False, fade_low: bool = False) -> np.ndarray:
    """The colormap as 256 packed RGBA uint32 values, for a one-gather colouring.

    Opaque, or with ``fade_zero`` (signed maps) an alpha growing with the distance from the middle
    entry, so pixels with no evidence either way leave the photo visible; ``fade_low`` (unsigned maps)
    an alpha growing from the bottom entry, so the photo shows through where the map is low.
    """
    key = (name, bool(fade_zero), bool(fade_low))
    t = _LUT32.get(key)
    if t is None:
        rgb = colormaps.lut(name, 256)
        if fade_zero:
            a = np.minimum(np.abs(np.arange(256) - 127.5) / 127.5 * FADE_GAIN, 1.0) * 255
        elif fade_low:
            a = np.minimum(np.arange(256) / 255.0 * FADE_GAIN, 1.0) * 255
        else:
            a = np.full(256, 255.0)
        rgba = np.concatenate([rgb, a.round().astype(np.uint8)[:, None]], axis=1)
        t = np.ascontiguousarray(rgba).view(np.uint32).reshape(256)
        _LUT32[key] = t
    return t


def threshold(layer: DisplayLayer, st: MapStats) -> float:
    """The value above which a pixel is in the layer's top-k% (by value; for signed maps, positive evidence)."""
    return st.quantile(1.0 - layer.topk / 100.0)


def _edges(mask: np.ndarray, width: int = 2) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    edge = mask & ~inner
    for _ in range(max(0, width - 1)):
        grown = edge.copy()
        grown[1:, :] |= edge[:-1, :]
        grown[:-1, :] |= edge[1:, :]
        grown[:, 1:] |= edge[:, :-1]
        grown[:, :-1] |= edge[:, 1:]
        edge = grown
    return edge


def render_rgba(layer: DisplayLayer, m: np.ndarray, lv: tuple[float, float] | None = None,
                st: MapStats | None = None) -> np.ndarray:
    """H×W×4 uint8 colours of ``m`` under ``layer``'s colormap, clipping and display mode."""
    m = np.asarray(m, dtype=np.float32)
    st = st or stats(m)
    lo, hi = lv or levels(layer.signed, st, layer.clip, layer.floor)
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    v = np.subtract(m, np.float32(lo))
    np.multiply(v, np.float32(scale), out=v)
    np.clip(v, 0, 255, out=v)
    nan = st.nan_mask(m)
    if nan is not None:
        v[nan] = 0
    idx = v.astype(np.uint8)
    heat = layer.mode == "heat"
    packed = np.take(lut32(layer.colormap, fade_zero=layer.signed and heat,
                           fade_low=not layer.signed and heat and layer.fade), idx)
    rgba = packed.view(np.uint8).reshape(m.shape + (4,))
    alpha = rgba[..., 3]
    if layer.mode in ("top-k", "contour"):
        keep = m >= np.float32(threshold(layer, st))  # NaN compares False
        if layer.mode == "contour":
            keep = _edges(keep, width=max(1, int(round(max(m.shape) / 300))))
        alpha[~keep] = 0
    if nan is not None:
        alpha[nan] = 0
    return rgba


@dataclass
class Rendered:
    """One layer coloured for the screen (see ``render_layer``)."""

    rgba: np.ndarray  # H'×W'×4 uint8; subsampled for very large photos (``display_map``)
    image_hw: tuple[int, int]  # the map's (= the photo's) size, which ``rgba`` is stretched over
    levels: tuple[float, float]  # the values given the bottom and top colours: the colour bar's scale


def render_layer(layer: DisplayLayer, m: np.ndarray) -> Rendered:
    """Everything the canvas needs to show ``m`` under ``layer``'s display settings, in one call.

    The levels come from the full map's statistics (those the colour bar shows), also when the colours are
    computed on a subsampled copy; pass a snapshot of ``layer`` when calling from another thread."""
    lv = levels(layer.signed, stats(m), layer.clip, layer.floor)
    rgba = render_rgba(layer, display_map(m), lv)
    return Rendered(rgba, (int(m.shape[0]), int(m.shape[1])), lv)


def composite(image: np.ndarray, layers: list[tuple[np.ndarray, float, str]]) -> np.ndarray:
    """Blend RGBA layers (rgba, opacity, blend mode), bottom first, over an RGB uint8 image (exports)."""
    out = image.astype(np.float32) / 255.0
    for rgba, opacity, blend in layers:
        c = rgba[..., :3].astype(np.float32) / 255.0
        a = rgba[..., 3:4].astype(np.float32) / 255.0 * float(opacity)
        if blend == "add":
            mixed = np.minimum(out + c, 1.0)
        elif blend == "multiply":
            mixed = out * c
        elif blend == "screen":
            mixed = 1.0 - (1.0 - out) * (1.0 - c)
        else:
            mixed = c
        out = out * (1.0 - a) + mixed * a
    return (out * 255.0).round().clip(0, 255).astype(np.uint8)


def session_view(session, layers=None) -> np.ndarray:
    """The session's image with its visible layers composited (what the canvas shows), RGB uint8."""
    items = []
    for layer in layers if layers is not None else session.layers:
        m = session.layer_data(layer)
        if layer.visible and m is not None:
            items.append((render_rgba(layer, m), layer.opacity, layer.blend))
    return composite(session.image, items)
