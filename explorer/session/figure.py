"""A figure grid for slides (numpy + Pillow): tiles of the photo with one map each, titled, on white."""

from __future__ import annotations

import numpy as np


def figure_grid(tiles: list[tuple[np.ndarray, str]], cols: int | None = None, tile_width: int = 320,
                pad: int = 10, title_h: int = 22) -> np.ndarray:
    """Arrange RGB tiles (each resized to ``tile_width`` wide) in a grid with their titles; RGB uint8."""
    from PIL import Image, ImageDraw, ImageFont

    if not tiles:
        raise ValueError("no maps to put in the figure")
    n = len(tiles)
    cols = cols or min(n, 4)
    rows = (n + cols - 1) // cols
    h0, w0 = tiles[0][0].shape[:2]
    tile_h = max(1, int(round(tile_width * h0 / w0)))
    W = cols * tile_width + (cols + 1) * pad
    H = rows * (tile_h + title_h) + (rows + 1) * pad
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # older Pillow
        font = ImageFont.load_default()
    for i, (rgb, title) in enumerate(tiles):
        r, c = divmod(i, cols)
        x = pad + c * (tile_width + pad)
        y = pad + r * (tile_h + title_h + pad)
        im = Image.fromarray(np.asarray(rgb, dtype=np.uint8)).resize((tile_width, tile_h), Image.BILINEAR)
        canvas.paste(im, (x, y + title_h))
        text = title if len(title) <= 44 else title[:43] + "…"
        draw.text((x, y + 3), text, fill=(20, 20, 20), font=font)
    return np.asarray(canvas)
