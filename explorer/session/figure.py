"""Figures for slides (numpy + Pillow): tiles of the photo with maps, each titled (method, map, class) and,
when given, with the colour bar of each map on it, on white, at the photo's resolution by default.

Text is drawn with Pillow's bundled font, which lacks some of the characters the window uses ("—", "·",
"…", "±"): ``printable`` puts a plain equivalent in their place, so a title never shows a missing-glyph box.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explorer.core import colormaps

# what the bundled font may lack, and what is written instead
PLAIN = {"—": "-", "–": "-", "−": "-", "·": "-", "…": "...", "±": "+/-", "→": "->", "≥": ">=", "≤": "<=",
         "×": "x", "↑": "(higher is better)", "↓": "(lower is better)"}


MAX_TILE = 2048  # a tile of a larger photo is scaled down to this width (a slide shows no more)
SLIDE_INCHES = 10.0  # a figure exported at a chosen DPI is this wide: the content width of a 16:9 slide


@dataclass(frozen=True)
class ExportSize:
    """How large an exported figure is: at the photo's resolution (``dpi`` None), or ``inches`` wide at
    ``dpi`` dots per inch (the PNG records the DPI, so a slide program places it at that width)."""

    dpi: int | None = None
    inches: float = SLIDE_INCHES

    def __post_init__(self):
        if self.dpi is not None and not 30 <= int(self.dpi) <= 1200:
            raise ValueError(f"an export DPI must be between 30 and 1200, not {self.dpi}")

    def width_px(self) -> int | None:
        """The figure's width in pixels; None: each tile at the photo's own width."""
        return None if self.dpi is None else int(round(self.dpi * self.inches))

    def text(self) -> str:
        return "at the photo's resolution" if self.dpi is None else f"{self.inches:g} in wide at {self.dpi} DPI"


@dataclass(frozen=True)
class Bar:
    """The colour scale of one map on a tile."""

    colormap: str
    lo: float
    hi: float
    signed: bool = False
    name: str = ""


def font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # older Pillow: one small bitmap font
        return ImageFont.load_default()


def _missing_mask(f):
    try:
        return f.getmask("\U0010fffd").tobytes()  # a code point no font has: the "missing glyph" box
    except Exception:  # noqa: BLE001 - a font that cannot even draw it: treat every odd char by the table
        return None


def printable(f, text: str) -> str:
    """``text`` with every character ``f`` cannot draw replaced (by ``PLAIN`` or "?")."""
    missing = _missing_mask(f)
    out = []
    for ch in text:
        ok = ch.isascii()
        if not ok and missing is not None:
            try:
                ok = f.getmask(ch).tobytes() != missing
            except Exception:  # noqa: BLE001 - e.g. a bitmap font refusing non-Latin-1
                ok = False
        out.append(ch if ok else PLAIN.get(ch, "?"))
    return "".join(out)


def _fit(draw, f, text: str, width: int) -> str:
    """``text`` shortened in the middle until it fits ``width`` pixels."""
    if draw.textlength(text, font=f) <= width:
        return text
    keep = len(text)
    while keep > 8:
        keep -= 2
        short = text[: keep // 2] + "..." + text[-(keep // 2):]
        if draw.textlength(short, font=f) <= width:
            return short
    return text[:8]


def _bar(canvas, draw, f, bar: Bar, x: int, y: int, w: int, h: int) -> None:
    """A colour bar ``w`` wide: the gradient with its ends' values and the map's name under it."""
    from PIL import Image

    label_w = int(draw.textlength("-0.000e+00", font=f)) + 6
    gx, gw = x + label_w, max(8, w - 2 * label_w)
    ramp = colormaps.lut(bar.colormap, 256)[np.linspace(0, 255, gw).astype(int)]
    strip = Image.fromarray(np.repeat(ramp[None], h, axis=0).astype(np.uint8))
    canvas.paste(strip, (gx, y))
    draw.rectangle([gx - 1, y - 1, gx + gw, y + h], outline=(90, 90, 90))
    lo, hi = f"{bar.lo:.3g}", f"{bar.hi:.3g}"
    draw.text((gx - 4 - draw.textlength(lo, font=f), y), lo, fill=(20, 20, 20), font=f)
    draw.text((gx + gw + 4, y), hi, fill=(20, 20, 20), font=f)
    if bar.signed and bar.lo < 0 < bar.hi:
        zx = gx + int(gw * (-bar.lo) / (bar.hi - bar.lo))
        draw.line([zx, y + h, zx, y + h + 3], fill=(20, 20, 20))
    if bar.name:
        name = _fit(draw, f, printable(f, bar.name), w)
        draw.text((x + (w - draw.textlength(name, font=f)) / 2, y + h + 2), name, fill=(60, 60, 60), font=f)


def slug(*parts: str) -> str:
    """A file name from words ("chelsea", "Grad-CAM", "Egyptian cat" -> "chelsea_grad-cam_egyptian-cat")."""
    import re

    words = [re.sub(r"[^a-z0-9]+", "-", str(p).lower()).strip("-") for p in parts if p]
    return "_".join(w for w in words if w) or "figure"


def figure_grid(tiles: list[tuple], cols: int | None = None, tile_width: int | None = 320, pad: int = 10,
                title_h: int | None = 22, width: int | None = None) -> np.ndarray:
    """Arrange RGB tiles in a grid with their titles; RGB uint8.

    Each tile is ``(rgb, title)`` or ``(rgb, title, bars)`` with ``bars`` a list of ``Bar`` drawn under it.
    ``tile_width`` None keeps the first tile's own width (the photo's resolution); the type grows with it.
    ``width``: the whole figure's width in pixels (an export at a chosen DPI); the tiles share it.
    """
    from PIL import Image, ImageDraw

    if not tiles:
        raise ValueError("no maps to put in the figure")
    n = len(tiles)
    cols = cols or min(n, 4)
    rows = (n + cols - 1) // cols
    h0, w0 = tiles[0][0].shape[:2]
    if width is not None:
        tile_width = (int(width) - (cols + 1) * pad) // cols
        if tile_width < 16:
            raise ValueError(f"a figure {width} px wide has no room for {cols} maps side by side")
    tile_width = int(tile_width or min(w0, MAX_TILE))
    tile_h = max(1, int(round(tile_width * h0 / w0)))
    size = max(14, tile_width // 40)
    f = font(size)
    title_h = title_h or size + 10
    bar_h = max(10, size)
    n_bars = max((len(t[2]) for t in tiles if len(t) > 2 and t[2]), default=0)
    bars_h = n_bars * (bar_h + size + 10)
    W = int(width) if width is not None else cols * tile_width + (cols + 1) * pad
    H = rows * (tile_h + title_h + bars_h) + (rows + 1) * pad
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, tile in enumerate(tiles):
        rgb, title = tile[0], tile[1]
        bars = tile[2] if len(tile) > 2 and tile[2] else []
        r, c = divmod(i, cols)
        x = pad + c * (tile_width + pad)
        y = pad + r * (tile_h + title_h + bars_h + pad)
        im = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
        if im.size != (tile_width, tile_h):
            im = im.resize((tile_width, tile_h), Image.BILINEAR)
        canvas.paste(im, (x, y + title_h))
        draw.text((x, y + 3), _fit(draw, f, printable(f, title), tile_width), fill=(20, 20, 20), font=f)
        for k, bar in enumerate(bars):
            _bar(canvas, draw, f, bar, x, y + title_h + tile_h + 6 + k * (bar_h + size + 10), tile_width, bar_h)
    return np.asarray(canvas)


def view_tile(session) -> tuple:
    """What the canvas shows as one figure tile: the photo with its visible layers (no letterbox, no window),
    titled with each layer's map, run and class, a colour bar per layer: ``(rgb, title, bars)``."""
    from explorer.session import render

    if session.image is None:
        raise ValueError("no image is open")
    shown = [l for l in session.layers if l.visible and session.layer_data(l) is not None]
    bars, names = [], []
    for layer in shown:
        lo, hi = render.levels(layer.signed, render.stats(session.layer_data(layer)), layer.clip, layer.floor)
        bars.append(Bar(layer.colormap, lo, hi, layer.signed, layer.label))
        exp = session.runs[layer.run_id].explanation
        # each layer's own class: runs of several classes live side by side, the session's target may differ
        cls = exp.target_name if exp is not None and exp.target_name else ""
        names.append(layer.label + (f" · {cls}" if cls else ""))
    title = "; ".join(names) or (Path(session.image_path).name if session.image_path else "photo")
    return render.session_view(session), title, bars


def view_figure(session, size: ExportSize = ExportSize()) -> np.ndarray:
    """``view_tile`` for a slide, at the photo's resolution or ``size``; RGB uint8 (ValueError without a photo)."""
    return figure_grid([view_tile(session)], cols=1, tile_width=None, width=size.width_px())
