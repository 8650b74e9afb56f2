"""The layered canvas: one pyqtgraph ViewBox with the photo and one ImageItem per layer.

Display changes only touch the layer's item: opacity and blend mode are item properties (a repaint, no
recolouring); colormap, clipping and top-k/contour recolour that one layer (numpy, cached statistics);
hidden layers are recoloured lazily when shown. Nothing here computes a map.

Where the colouring runs: a new map (a streaming partial result, or a finished one) is coloured on the
render thread (``explorer.workers.render_thread``) and only the finished RGBA array is swapped in here, so
the GUI thread stays free while maps stream in. A display change the user makes is coloured right here,
synchronously (3-8 ms CPU for a 1024² layer, measured in benchmarks/bench_gui.py: within a frame, and the
change is on the very next paint); if that layer's render is still in flight, the change joins it on the
render thread instead. Every render carries a token; only the newest one asked for a layer is shown.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QVBoxLayout, QWidget

from explorer.gui.widgets import ColorBar
from explorer.session import display_fields, render
from explorer.session.document import DisplayLayer, Session
from explorer.workers.render_thread import RenderThread

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


# fields whose change recolours a layer (opacity and blend are item properties)
RECOLOUR_FIELDS = display_fields.RECOLOUR_FIELDS
MAX_BARS = 4  # colour bars under the canvas; more visible layers than this cannot be told apart anyway


class Canvas(QWidget):
    hovered = Signal(str)  # a read-out of the pixel under the mouse
    rendered = Signal(int)  # a layer's new colours are on its item (layer id), from either path

    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.session = session
        self.view, self.vb = make_view(self)
        self.base = pg.ImageItem()
        self.base.setZValue(-1)
        self.vb.addItem(self.base)
        self.items: dict[int, pg.ImageItem] = {}
        self._dirty: set[int] = set()
        self.renders = 0  # how many times new colours were put on a layer's item (tests, benchmarks)
        self.stale_renders = 0  # renders dropped on arrival: a newer one was asked for, or the layer is gone
        self._tokens = itertools.count(1)
        self._want: dict[int, int] = {}  # layer id -> token of the newest render asked for
        self._pending: set[int] = set()  # layers whose newest render is on the render thread
        self._asked: dict[int, tuple] = {}  # layer id -> (map, layer snapshot) of its newest threaded render
        self.renderer = RenderThread(self)
        self.renderer.done.connect(self._on_rendered, Qt.QueuedConnection)
        self.renderer.failed.connect(self._on_render_failed, Qt.QueuedConnection)
        # one colour bar per layer on screen, each titled with its layer: the active layer's first (also when
        # hidden, then said so), then the other visible ones, top-most first (at most MAX_BARS in all)
        self.colorbar = ColorBar()
        self.other_bars: list[ColorBar] = []
        self.note_for = lambda layer: ""  # what the colour bar says under a layer (what 0 means), set by the window
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.colorbar)
        self._bars = lay
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
                self._forget(lid)
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
                self._request(layer)  # a new layer's map: coloured off the GUI thread
        self._update_colorbar()

    def _on_layer(self, layer: DisplayLayer, field: str) -> None:
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
        elif field == "data":  # a new (partial or final) map: off the GUI thread
            if layer.visible:
                self._request(layer)
            else:
                self._dirty.add(layer.id)
        elif field in RECOLOUR_FIELDS:
            if not layer.visible:
                self._dirty.add(layer.id)
            elif layer.id in self._pending:
                self._request(layer)  # joins the render in flight (its settings are read at submit)
            else:
                self._recolour(layer)
        if layer.id == self.session.active_layer_id and not (layer.visible and layer.id in self._pending):
            self._update_colorbar()  # else when the render lands, with the levels it was coloured with
        elif field != "data" and field != "opacity" and field != "blend":
            self._update_other_bars()

    # ------------------------------------------------------------------ drawing
    def _map(self, layer: DisplayLayer) -> np.ndarray | None:
        m = self.session.layer_data(layer)
        if m is None:
            self._forget(layer.id)
            self.items[layer.id].clear()
        return m

    def _request(self, layer: DisplayLayer) -> None:
        """Colour ``layer`` on the render thread; the current colours stay until the new ones land."""
        m = self._map(layer)
        if m is None:
            return
        self._dirty.discard(layer.id)
        # a snapshot: the render thread never reads the session, which only this thread may touch
        snap = dataclasses.replace(layer)
        asked = self._asked.get(layer.id)
        if layer.id in self._pending and asked is not None and asked[0] is m and asked[1] == snap:
            return  # that very render is on its way (a new layer gets "layers changed", then "data")
        token = self._want[layer.id] = next(self._tokens)
        self._pending.add(layer.id)
        self._asked[layer.id] = (m, snap)
        self.renderer.submit(layer.id, token, functools.partial(render.render_layer, snap, m))

    def _recolour(self, layer: DisplayLayer) -> None:
        """Colour ``layer`` here and now (a display change; ``flush``); any render in flight is superseded."""
        m = self._map(layer)
        if m is None:
            return
        self._dirty.discard(layer.id)
        self._want[layer.id] = next(self._tokens)
        self._pending.discard(layer.id)
        self._asked.pop(layer.id, None)
        self.renderer.discard(layer.id)
        self._apply(layer, render.render_layer(layer, m))

    def _on_rendered(self, lid: int, token: int, result) -> None:
        layer = self.session.layer(lid)
        if layer is None or lid not in self.items or self._want.get(lid) != token:
            self.stale_renders += 1  # superseded by a newer map or display change, or the layer is gone
            return
        self._pending.discard(lid)
        self._asked.pop(lid, None)
        self._apply(layer, result)

    def _on_render_failed(self, lid: int, token: int, msg: str) -> None:
        if self._want.get(lid) == token:
            self._pending.discard(lid)
            self._dirty.add(lid)  # tried again on the next change; the old colours stay
            self.hovered.emit(f"could not colour the layer: {msg}")

    def _apply(self, layer: DisplayLayer, r: render.Rendered) -> None:
        h, w = r.image_hw
        # uint8 RGBA: no rescaling pass; the rect maps a subsampled layer onto the whole image
        self.items[layer.id].setImage(r.rgba, autoLevels=False, levels=None, rect=QRectF(0, 0, w, h))
        self.renders += 1
        if layer.id == self.session.active_layer_id:
            self._update_colorbar(r.levels)
        elif layer.visible:
            self._update_other_bars()
        self.rendered.emit(layer.id)

    def _forget(self, lid: int) -> None:
        self._dirty.discard(lid)
        self._pending.discard(lid)
        self._want.pop(lid, None)
        self._asked.pop(lid, None)
        self.renderer.discard(lid)

    @property
    def rendering(self) -> bool:
        """True while a layer's newest colours are still on the render thread."""
        return bool(self._pending)

    def flush(self) -> None:
        """Colour now, here, every layer still waiting on the render thread (before grabbing the view)."""
        for lid in list(self._pending):
            layer = self.session.layer(lid)
            if layer is None or lid not in self.items:
                self._forget(lid)
            else:
                self._recolour(layer)

    def close_renderer(self) -> None:
        self.renderer.close()
        self._pending.clear()
        self._asked.clear()

    def _update_colorbar(self, levels: tuple[float, float] | None = None) -> None:
        layer = self.session.active_layer()
        if not self._describe(self.colorbar, layer, levels):
            self.colorbar.clear()
        self._update_other_bars()

    def _describe(self, bar: ColorBar, layer: DisplayLayer | None, levels: tuple[float, float] | None = None) -> bool:
        """Put ``layer``'s scale on ``bar``; False when it has no map."""
        m = self.session.layer_data(layer) if layer is not None else None
        if m is None:
            return False
        # a render brings its levels; otherwise the statistics are a cached look-up (made off this thread)
        lo, hi = levels or render.levels(layer.signed, render.stats(m), layer.clip, layer.floor)
        mode = "" if layer.mode == "heat" else f"  ·  {layer.mode} {layer.topk:g}%"
        hidden = "" if layer.visible else "  (hidden)"
        bar.set_scale(layer.colormap, lo, hi, f"{layer.label}{mode}{hidden}", layer.signed, self.note_for(layer))
        return True

    def _update_other_bars(self) -> None:
        """A bar for each visible layer other than the active one, so that layers shown together can be told
        apart by their colours."""
        active = self.session.active_layer_id
        shown = [l for l in reversed(self.session.layers) if l.visible and l.id != active
                 and self.session.layer_data(l) is not None][:MAX_BARS - 1]
        while len(self.other_bars) < len(shown):
            bar = ColorBar()
            self.other_bars.append(bar)
            self._bars.addWidget(bar)
        for bar, layer in zip(self.other_bars, shown):
            self._describe(bar, layer)
            bar.show()
        for bar in self.other_bars[len(shown):]:
            bar.hide()

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
        self.flush()  # a picture shows the newest colours, not those still being computed
        self.layout().activate()  # and the colour bars shown now (one shown or hidden resizes the view)
        return self.view.grab()
