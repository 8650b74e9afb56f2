"""Side-by-side comparison: a grid of maps with linked pan/zoom, shared or per-map colour scale, and the
agreement (Spearman rank correlation, top-k% IoU) between two chosen maps.

The grid fills its tab: the number of columns is the one that gives the largest tiles for the photo's shape
in the space there is (recomputed when the tab is resized), each tile titled above its map. Every run of this
photo and model with a map is offered, also while it computes (its tile follows the map as it streams); runs
of another model are not. The agreement pair defaults to the two newest headline maps of the current class."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from explorer.core.errors import ExplorerError
from explorer.evaluation import agreement  # numpy only: no torch in the GUI
from explorer.gui.widgets import Debouncer
from explorer.session import render
from explorer.session.document import DisplayLayer, Session
from explorer.session.figure import ExportSize, figure_grid

TITLE_PX = 22  # the height of a tile's title row


class CompareWidget(QWidget):
    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.session = session
        self.picker = QListWidget()
        self.picker.setToolTip("maps shown in the grid")
        self.picker.setTextElideMode(Qt.ElideMiddle)  # "salient — Integr…ients #3": both ends stay readable
        self.picker.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.norm = QComboBox()
        self.norm.addItems(["per-map scale", "shared scale"])
        self.a = QComboBox()
        self.b = QComboBox()
        self.k = QDoubleSpinBox()
        self.k.setRange(1, 100)
        self.k.setValue(10)
        self.k.setSuffix(" %")
        self.figures = QLabel("pick two maps")
        self.figures.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.export_btn = QPushButton("Export figure…")
        self.grid = pg.GraphicsLayoutWidget()
        self.grid.setBackground("#202124")
        self.views: list[pg.ViewBox] = []
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(QLabel("maps"))
        ll.addWidget(self.picker, 1)
        ll.addWidget(self.norm)
        ll.addWidget(QLabel("agreement between"))
        ll.addWidget(self.a)
        ll.addWidget(self.b)
        row = QHBoxLayout()
        row.addWidget(QLabel("top-k"))
        row.addWidget(self.k)
        ll.addLayout(row)
        ll.addWidget(self.figures)
        ll.addWidget(self.export_btn)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(self.grid)
        split.setStretchFactor(1, 1)
        split.setSizes([200, 1000])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(split)
        self.refresh_later = Debouncer(150, self.refresh, self)
        session.layers_changed.connect(self._poke)
        session.run_changed.connect(self._on_run_changed)
        session.image_changed.connect(self._poke)
        session.model_changed.connect(self._poke)
        self.redraw_later = Debouncer(400, self._draw, self)  # a streaming map: at most a few redraws a second
        self.picker.itemChanged.connect(lambda _i: self._draw())
        self.norm.currentIndexChanged.connect(lambda _i: self._draw())
        self._pair_chosen = False  # the user picked the pair: kept; else it follows the newest maps
        for w in (self.a, self.b):
            w.currentIndexChanged.connect(lambda _i: self._pair_picked())
        self.k.valueChanged.connect(lambda _v: self._agreement())
        self._checked: dict[int, bool] = {}
        self._only: set[int] | None = None  # show_runs: the runs whose maps the grid shows by default
        self.agreement: dict[str, float] = {}

    def _poke(self) -> None:
        if self.isVisible():
            self.refresh_later.poke()
        else:
            self._stale = True

    def _pair_picked(self) -> None:
        self._pair_chosen = True  # (refresh fills the combos with their signals blocked)
        self._agreement()

    def _on_run_changed(self, run) -> None:
        if not run.active:
            self._poke()  # finished, cancelled or failed: the lists may change
        elif self.isVisible() and run.explanation is not None and any(
                l.run_id == run.id for l in self.chosen()):
            self.redraw_later.poke()  # a map streaming into a tile: the tile follows it

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.views:
            self.redraw_later.poke()  # another shape of the space: maybe another number of columns

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if getattr(self, "_stale", True):
            self._stale = False
            self.refresh_later.poke()

    # ------------------------------------------------------------------ content
    def candidates(self) -> list[DisplayLayer]:
        """Every map of this photo and model, finished or still computing."""
        s = self.session
        return [l for l in s.layers if s.layer_data(l) is not None and not s.is_stale(s.runs[l.run_id])]

    def chosen(self) -> list[DisplayLayer]:
        out = []
        for i in range(self.picker.count()):
            it = self.picker.item(i)
            if it.checkState() == Qt.Checked:
                layer = self.session.layer(it.data(Qt.UserRole))
                if layer is not None:
                    out.append(layer)
        return out

    def show_runs(self, run_ids) -> None:
        """Show exactly the headline maps of ``run_ids`` (also those whose maps arrive later)."""
        self._only = set(run_ids)
        self._checked = {}
        self._pair_chosen = False
        self.picker.blockSignals(True)
        self.picker.clear()  # refresh() would otherwise keep the ticks shown now
        self.picker.blockSignals(False)
        self.refresh()

    def refresh(self) -> None:
        layers = self.candidates()
        for i in range(self.picker.count()):
            it = self.picker.item(i)
            self._checked[it.data(Qt.UserRole)] = it.checkState() == Qt.Checked
        self.picker.blockSignals(True)
        self.picker.clear()
        first_of_run: set[int] = set()
        for l in layers:
            it = QListWidgetItem(l.label)
            it.setToolTip(l.label)
            it.setData(Qt.UserRole, l.id)
            it.setFlags(Qt.ItemIsEnabled | Qt.ItemIsUserCheckable)
            default = l.run_id not in first_of_run and (self._only is None or l.run_id in self._only)
            first_of_run.add(l.run_id)
            it.setCheckState(Qt.Checked if self._checked.get(l.id, default) else Qt.Unchecked)
            self.picker.addItem(it)
        self.picker.blockSignals(False)
        default = self.default_pair(layers)
        for combo, pick in ((self.a, 0), (self.b, 1)):
            cur = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            for l in layers:
                combo.addItem(l.label, l.id)
                combo.setItemData(combo.count() - 1, l.label, Qt.ToolTipRole)
            idx = combo.findData(cur) if self._pair_chosen else -1
            if idx < 0 and len(default) > pick:
                idx = combo.findData(default[pick])
            combo.setCurrentIndex(idx if idx >= 0 else min(pick, len(layers) - 1))
            combo.blockSignals(False)
        self._draw()
        self._agreement()

    def default_pair(self, layers: list[DisplayLayer]) -> list[int]:
        """The two newest runs' headline maps for the current class (finished ones before running ones;
        never a cancelled or failed run's): the agreement shown first."""
        s = self.session
        want = s.effective_target()
        heads = []
        for l in layers:
            run = s.runs[l.run_id]
            exp = run.explanation
            if s.layers_of(run)[0] is not l or run.status in ("cancelled", "error"):
                continue
            if want is not None and exp.target is not None and int(exp.target) != want:
                continue
            heads.append((run.status == "done", run.id, l.id))
        return [lid for _done, _rid, lid in sorted(heads, reverse=True)[:2]]

    def _levels(self, layers: list[DisplayLayer]) -> dict[int, tuple[float, float]]:
        if self.norm.currentIndex() == 0:
            return {}
        out = {}
        for signed in (False, True):
            group = [l for l in layers if l.signed == signed]
            if group:
                lv = render.shared_levels(signed, [render.stats(self.session.layer_data(l)) for l in group],
                                          group[0].clip, group[0].floor)
                out.update({l.id: lv for l in group})
        return out

    def tiles(self, max_side: int | None = None) -> list[tuple[np.ndarray, str]]:
        """(RGB overlay, title) per chosen map, coloured as the grid shows them (subsampled to ``max_side``)."""
        layers = self.chosen()
        lv = self._levels(layers)
        out = []
        image = self.session.image
        step = int(np.ceil(max(image.shape[:2]) / max_side)) if max_side else 1
        image = image[::step, ::step] if step > 1 else image
        for l in layers:
            m = self.session.layer_data(l)
            m = m[::step, ::step] if step > 1 else m
            rgba = render.render_rgba(l, m, lv.get(l.id))
            rgb = render.composite(image, [(rgba, max(l.opacity, 0.6), "normal")])
            out.append((rgb, self.title(l)))
        return out

    def columns(self, n: int) -> int:
        """The number of columns that gives ``n`` tiles of the photo's shape the largest size in the grid."""
        h, w = self.session.image.shape[:2]
        gw, gh = max(1, self.grid.width()), max(1, self.grid.height())
        best, best_scale = 1, 0.0
        for cols in range(1, n + 1):
            rows = math.ceil(n / cols)
            scale = min(gw / cols / w, (gh / rows - TITLE_PX) / h)
            if scale > best_scale:
                best, best_scale = cols, scale
        return best

    def title(self, layer: DisplayLayer) -> str:
        """A tile's title: the map, its run, its class, and how far a computing run is."""
        run = self.session.runs[layer.run_id]
        exp = run.explanation
        text = layer.label + (f" · {exp.target_name}" if exp is not None and exp.target_name else "")
        return text + (f" · {run.progress * 100:.0f} %" if run.active else "")

    def _draw(self) -> None:
        self.grid.clear()
        self.views = []
        if self.session.image is None:
            return
        tiles = self.tiles(max_side=768)
        if not tiles:
            return
        cols = self.columns(len(tiles))
        chars = max(12, int(self.grid.width() / cols / 7))  # what a title line holds at this width
        first = None
        for i, (rgb, title) in enumerate(tiles):
            r, c = divmod(i, cols)
            short = title if len(title) <= chars else title[: chars // 2 - 1] + "…" + title[-(chars // 2 - 1):]
            label = self.grid.addLabel(short, row=2 * r, col=c, color="#f0f0f0", size="10pt")
            label.setToolTip(title)
            vb = self.grid.addViewBox(row=2 * r + 1, col=c, lockAspect=True, invertY=True, enableMenu=False)
            vb.addItem(pg.ImageItem(rgb, levels=(0, 255)))
            if first is None:
                first = vb
            else:
                vb.setXLink(first)
                vb.setYLink(first)
            self.views.append(vb)
        if first is not None:
            first.autoRange(padding=0.01)

    def _agreement(self) -> None:
        la, lb = self.session.layer(self.a.currentData()), self.session.layer(self.b.currentData())
        if la is None or lb is None:
            self.figures.setText("pick two maps")
            self.agreement = {}
            return
        ma, mb = self.session.layer_data(la), self.session.layer_data(lb)
        step = max(1, int(math.ceil(math.sqrt(ma.size / 250_000))))  # keep it interactive on big images
        ma, mb = ma[::step, ::step], mb[::step, ::step]
        k = self.k.value()
        try:
            rho, iou = agreement.spearman(ma, mb), agreement.topk_iou(ma, mb, k / 100.0)
        except ExplorerError as exc:
            self.figures.setText(str(exc))
            self.agreement = {}
            return
        self.agreement = {"spearman": rho, "topk_iou": iou, "k": k}
        self.figures.setText(f"Spearman ρ = {rho:.3f}\ntop-{k:g}% IoU = {iou:.3f}")

    def figure(self, size: ExportSize = ExportSize()) -> np.ndarray:
        """The chosen maps for a slide: at the photo's resolution (or ``size``), each titled with its method,
        map and class and with its colour bar (the levels the grid shows), RGB uint8."""
        from explorer.session.figure import Bar

        layers = self.chosen()
        lv = self._levels(layers)
        tiles = []
        for layer, (rgb, _title) in zip(layers, self.tiles()):
            m = self.session.layer_data(layer)
            lo, hi = lv.get(layer.id) or render.levels(layer.signed, render.stats(m), layer.clip, layer.floor)
            tiles.append((rgb, self.title(layer), [Bar(layer.colormap, lo, hi, layer.signed, layer.name)]))
        return figure_grid(tiles, cols=min(len(tiles), 3), tile_width=None, width=size.width_px())

    def export_figure(self, path: str, size: ExportSize = ExportSize()) -> tuple[int, int]:
        """Write ``figure(size)`` as a PNG (recording ``size``'s DPI); its (width, height)."""
        from explorer.io.export import save_png

        fig = self.figure(size)
        save_png(path, fig, size.dpi)
        return fig.shape[1], fig.shape[0]
