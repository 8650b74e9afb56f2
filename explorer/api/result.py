"""The public ``Explanation``: one method's maps for one image, with the ways a notebook looks at them.

It wraps the runner's result (``explorer.core.types.MethodResult``, maps in model-input space, resampled to
the image on first access) together with the image and the model's predictions, which the manifest needs.
Torch-free: matplotlib is imported only by ``plot``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from explorer.core import types
from explorer.core.errors import ParamError, UnknownNameError


class Explanation:
    """Maps of one run (``maps``: map name -> H×W float32 at the image's size) and what produced them.

    Returned by ``explorer.explain`` (complete) and yielded by ``explorer.explain_iter`` (partial until the
    last one). In a notebook the cell shows the overlay of the headline layer.
    """

    def __init__(self, core: types.MethodResult, image: np.ndarray, image_path: str | None, provenance: dict,
                 message: str = ""):
        self._core = core
        self._image = image
        self._image_path = image_path
        self._provenance = provenance
        self.message = message

    # ------------------------------------------------------------------ what it is
    @property
    def method(self) -> str:
        return self._core.method

    @property
    def maps(self) -> dict[str, np.ndarray]:
        """Map name -> H×W float32 map at the image's resolution (NaN outside a center crop)."""
        return self._core.maps

    @property
    def signed(self) -> dict[str, bool]:
        """Map name -> whether its sign means something (positive supports the target, negative opposes)."""
        return dict(self._core.signed)

    @property
    def map_names(self) -> list[str]:
        """The names of the maps, the headline one first."""
        return self._core.map_names

    @property
    def layers(self) -> list[str]:  # old name kept (issue 32): a method returns maps; "layer" is a network's
        return self.map_names

    @property
    def main(self) -> str:
        """The headline map (the first the method returns)."""
        return self._core.main

    @property
    def target(self) -> int | None:
        """The class index explained; None for class-agnostic methods (FEM, MLFEM)."""
        return self._core.target

    @property
    def target_name(self) -> str:
        return self._core.target_name

    @property
    def predictions(self) -> list[tuple[int, str, float]]:
        """The model's top-5 on this image: (index, name, probability)."""
        return [(p["index"], p["name"], p["prob"]) for p in self._provenance["top5"]]

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._core.params)

    @property
    def seed(self) -> int:
        return self._core.seed

    @property
    def info(self) -> dict[str, Any]:
        return self._core.info

    @property
    def timings(self) -> dict[str, float]:
        return self._core.timings

    @property
    def progress(self) -> float:
        return self._core.progress

    @property
    def complete(self) -> bool:
        return self._core.complete

    @property
    def cancelled(self) -> bool:
        return self._core.cancelled

    @property
    def image(self) -> np.ndarray:
        """The explained image as H×W×3 uint8 (the maps have its height and width)."""
        return self._image

    # ------------------------------------------------------------------ files
    def manifest(self) -> dict[str, Any]:
        """The dict ``explorer explain`` writes as manifest.json (and ``save`` writes)."""
        from explorer.io.export import build_manifest

        return build_manifest(self._core, self._image, self._provenance)

    def save(self, folder: str | Path) -> dict[str, Any]:
        """Write the CLI's files into ``folder``: ``<layer>.npy`` per map, overlay.png, manifest.json."""
        from explorer.io.export import write_explanation

        return write_explanation(folder, self._core, self._image, self._provenance)

    # ------------------------------------------------------------------ pictures
    def _map_name(self, map_name: str | None, layer: str | None = None) -> str:
        """The map asked for (``layer``: its old keyword, issue 32: a layer is a network's), else the headline."""
        if map_name is not None and layer is not None and map_name != layer:
            raise ParamError(f"map_name={map_name!r} and its old name layer={layer!r} disagree: give one")
        name = map_name or layer or self.main
        if name not in self._core.raw:
            raise UnknownNameError("map", name, self.map_names)
        return name

    def overlay(self, map_name: str | None = None, cmap: str | None = None, alpha: float = 0.5, *,
                layer: str | None = None):
        """The map ``map_name`` (default the headline map) blended over the image as a PIL image (diverging
        colours centred on 0 for signed maps)."""
        from PIL import Image

        from explorer.core.colormaps import overlay

        name = self._map_name(map_name, layer)
        return Image.fromarray(overlay(self._image, self.maps[name], self._core.signed.get(name, False), cmap, alpha))

    def plot(self, ax=None, map_name: str | None = None, cmap: str | None = None, alpha: float = 0.5, *,
             layer: str | None = None):
        """Draw the overlay on a matplotlib Axes (a new figure when ``ax`` is None); returns the Axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        name = self._map_name(map_name, layer)
        ax.imshow(np.asarray(self.overlay(name, cmap, alpha)))
        what = self.target_name if self.target is not None else "class-agnostic"
        ax.set_title(f"{self.method} · {name} · {what}", fontsize=9)
        ax.set_axis_off()
        return ax

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.overlay().save(buf, format="PNG")
        return buf.getvalue()

    def __repr__(self) -> str:
        h, w = self._image.shape[:2]
        state = "complete" if self.complete else ("cancelled" if self.cancelled else f"{self.progress:.0%}")
        return (f"<Explanation {self.method} target={self.target} ({self.target_name!r}) layers={self.layers} "
                f"{w}x{h} {state}>")
