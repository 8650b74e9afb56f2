"""The display-defaults study behind docs/display.md: each photo with its Grad-CAM and RISE maps under the
old defaults (opacity 0.6, min-max levels, opaque colours), the new ones (explorer/session/display.py) and
a top-20 % contour, side by side.

    python packaging/display_study.py [--cache DIR] OUT_DIR [PHOTO ...]   (default: the four bundled samples)

Maps are computed once per photo (RISE with n=500) and cached in --cache (default OUT_DIR/maps). Only the sample photos'
sheets go into docs/display/ (ImageNet photos may be looked at, not shipped).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from explorer import resources
from explorer.core import colormaps
from explorer.io.images import read_image
from explorer.session import render
from explorer.session.display import display_defaults
from explorer.session.document import DisplayLayer
from explorer.session.figure import figure_grid

METHODS = (("gradcam", {}), ("rise", {"n": 500}))
SIDE = 200  # the photos are shown at this width


def maps_for(photo: Path, cache: Path, model) -> dict[str, tuple[np.ndarray, bool, str]]:
    from explorer.methods.base import explain

    img = read_image(photo).rgb
    out = {}
    for name, params in METHODS:
        f = cache / f"{photo.stem}.{name}.npz"
        if not f.exists():
            e = explain(name, model, img, params=params)
            np.savez_compressed(f, **e.maps, target=e.target_name)
        d = np.load(f)
        out[name] = (d["salient"], False, str(d["target"]))
    return out


def tile(img: np.ndarray, m: np.ndarray, layer: DisplayLayer) -> np.ndarray:
    return render.composite(img, [(render.render_rgba(layer, m), layer.opacity, layer.blend)])


def sheet(photo: Path, maps: dict, step: int) -> np.ndarray:
    img = read_image(photo).rgb[::step, ::step]
    tiles = []
    for name, (m, signed, target) in maps.items():
        m = m[::step, ::step]
        before = DisplayLayer(0, 0, "salient", signed, colormap=colormaps.default_for(signed), opacity=0.6, fade=False)
        after = DisplayLayer(0, 0, "salient", signed, colormap=colormaps.default_for(signed),
                      **display_defaults("salient", signed, m))
        contour = DisplayLayer(0, 0, "salient", signed, colormap=colormaps.default_for(signed), opacity=1.0,
                        mode="contour", topk=20.0)
        lo, hi = float(np.nanmin(m)), float(np.nanmax(m))
        tiles += [(img, f"{photo.stem[:18]}: {target[:16]}"),
                  (tile(img, m, before), f"{name} before {lo:.3g}-{hi:.3g}"),
                  (tile(img, m, after), f"{name} after (floor {after.floor:g})"),
                  (tile(img, m, contour), f"{name} top-20% contour")]
    return figure_grid(tiles, cols=4, tile_width=SIDE)


def main(argv: list[str]) -> int:
    import argparse

    from explorer.models import load_model

    ap = argparse.ArgumentParser(description="before/after sheets of the display defaults")
    ap.add_argument("--cache", type=Path, default=None, help="where the computed maps are kept")
    ap.add_argument("out", type=Path, nargs="?", default=Path("docs/display"))
    ap.add_argument("photos", type=Path, nargs="*")
    a = ap.parse_args(argv)
    out = a.out
    photos = a.photos or [resources.sample(n) for n in resources.SAMPLES]
    cache = a.cache or out / "maps"
    cache.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(device="cpu")
    for p in photos:
        img = read_image(p).rgb
        step = max(1, int(np.ceil(max(img.shape[:2]) / SIDE)))
        # a 128-colour palette keeps the four committed sheets to a few hundred KB
        picture = Image.fromarray(sheet(p, maps_for(p, cache, model), step)).quantize(128)
        picture.save(out / f"{p.stem}.png", optimize=True)
        print(out / f"{p.stem}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
