"""The layered canvas: one pyqtgraph ViewBox with the photo and one ImageItem per layer.

Display changes only touch the layer's item: opacity and blend mode are item properties (a repaint, no
recolouring); colormap, clipping and top-k/contour recolour that one layer (numpy, cached statistics);
hidden layers are recoloured lazily when shown. Nothing here computes a map.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QVBoxLayout, QWidget

from explorer.session import render
from explorer.session.document import Layer, Session
from explorer.gui.widgets import ColorBar

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

BLEND = {
    "normal": QPainter.CompositionMode_SourceOver,
    "add": QPainter.CompositionMode_Plus,
    "multiply": QPainter.CompositionMode_Multiply,
    "screen": QPainter.CompositionMode_Screen,
}


def make_view(parent=None) -> tuple[pg.GraphicsView, pg.ViewBox]:
    view = pg.GraphicsView(parent)
    view.setBackground("#202124")
    vb = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
    vb.setDefaultPadding(0.01)
    view.setCentralItem(vb)
    return view, vb


class Canvas(QWidget):
    hovered = Signal(str)  # a read-out of the pixel under the mouse

    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.session = session
        self.view, self.vb = make_view(self)
        self.base = pg.ImageItem()
        self.base.setZValue(-1)
        self.vb.addItem(self.base)
        self.items: dict[int, pg.ImageItem] = {}
        self._dirty: set[int] = set()
        self.renders = 0  # how many times a layer was recoloured (tests, benchmarks)
        self.colorbar = ColorBar()
        self.note_for = lambda layer: ""  # what the colour bar says under a layer (what 0 means), set by the window
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.colorbar)
        session.image_changed.connect(self._on_image)
        session.layers_changed.connect(self._on_layers)
        session.layer_changed.connect(self._on_layer)
        session.active_layer_changed.connect(lambda _l: self._update_colorbar())
        self.vb.scene().sigMouseMoved.connect(self._on_mouse)
        self.setAcceptDrops(False)

    # ------------------------------------------------------------------ session events
    def _on_image(self) -> None:
        img = self.session.image
        if img is None:
            self.base.clear()
            return
        h, w = img.shape[:2]
        self.base.setImage(render.display_image(img), autoLevels=False, levels=(0, 255), rect=QRectF(0, 0, w, h))
        self.vb.autoRange(padding=0.01)

    def _on_layers(self) -> None:
        live = {l.id for l in self.session.layers}
        for lid in list(self.items):
            if lid not in live:
                item = self.items.pop(lid)
                self.vb.removeItem(item)
                self._dirty.discard(lid)
        for z, layer in enumerate(self.session.layers):
            item = self.items.get(layer.id)
            if item is None:
                item = pg.ImageItem()
                self.items[layer.id] = item
                self.vb.addItem(item)
                item.setOpacity(layer.opacity)
                item.setCompositionMode(BLEND[layer.blend])
                self._dirty.add(layer.id)
            item.setZValue(z)
            item.setVisible(layer.visible)
            if layer.visible and layer.id in self._dirty:
                self._recolour(layer)
        self._update_colorbar()

    def _on_layer(self, layer: Layer, field: str) -> None:
        item = self.items.get(layer.id)
        if item is None:
            return
        if field == "opacity":
            item.setOpacity(layer.opacity)
        elif field == "blend":
            item.setCompositionMode(BLEND[layer.blend])
            item.update()
        elif field == "visible":
            item.setVisible(layer.visible)
            if layer.visible and layer.id in self._dirty:
                self._recolour(layer)
        else:  # data, colormap, clip, mode, topk
            if layer.visible:
                self._recolour(layer)
            else:
                self._dirty.add(layer.id)
        if layer.id == self.session.active_layer_id:
            self._update_colorbar()

    # ------------------------------------------------------------------ drawing
    def _recolour(self, layer: Layer) -> None:
        item = self.items[layer.id]
        m = self.session.layer_data(layer)
        self._dirty.discard(layer.id)
        if m is None:
            item.clear()
            return
        h, w = m.shape
        rgba = render.render_rgba(layer, render.display_map(m))
        # uint8 RGBA: no rescaling pass; the rect maps a subsampled layer onto the whole image
        item.setImage(rgba, autoLevels=False, levels=None, rect=QRectF(0, 0, w, h))
        self.renders += 1

    def _update_colorbar(self) -> None:
        layer = self.session.active_layer()
        m = self.session.layer_data(layer) if layer is not None else None
        if m is None:
            self.colorbar.clear()
            return
        lo, hi = render.levels(layer.signed, render.stats(m), layer.clip, layer.floor)
        mode = "" if layer.mode == "heat" else f"  ·  {layer.mode} {layer.topk:g}%"
        self.colorbar.set_scale(layer.colormap, lo, hi, f"{layer.label}{mode}", layer.signed, self.note_for(layer))

    def _on_mouse(self, pos) -> None:
        img = self.session.image
        if img is None or not self.vb.sceneBoundingRect().contains(pos):
            return
        p = self.vb.mapSceneToView(pos)
        x, y = int(np.floor(p.x())), int(np.floor(p.y()))
        if not (0 <= y < img.shape[0] and 0 <= x < img.shape[1]):
            self.hovered.emit("")
            return
        text = f"x {x}, y {y}  RGB {tuple(int(v) for v in img[y, x])}"
        layer = self.session.active_layer()
        m = self.session.layer_data(layer) if layer is not None else None
        if m is not None:
            text += f"  ·  {layer.name} = {float(m[y, x]):.4g}"
        self.hovered.emit(text)

    def fit(self) -> None:
        self.vb.autoRange(padding=0.01)

    def grab_view(self):
        return self.view.grab()
