"""Side-by-side comparison: a grid of maps with linked pan/zoom, shared or per-map colour scale, and the
agreement (Spearman rank correlation, top-k% IoU) between two chosen maps."""

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
from explorer.session.document import Layer, Session
from explorer.session.figure import figure_grid


class CompareWidget(QWidget):
    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.session = session
        self.picker = QListWidget()
        self.picker.setToolTip("maps shown in the grid")
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
        split.setSizes([220, 800])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(split)
        self.refresh_later = Debouncer(150, self.refresh, self)
        session.layers_changed.connect(self._poke)
        session.run_changed.connect(lambda r: self._poke() if not r.active else None)
        session.image_changed.connect(self._poke)
        self.picker.itemChanged.connect(lambda _i: self._draw())
        self.norm.currentIndexChanged.connect(lambda _i: self._draw())
        for w in (self.a, self.b):
            w.currentIndexChanged.connect(lambda _i: self._agreement())
        self.k.valueChanged.connect(lambda _v: self._agreement())
        self._checked: dict[int, bool] = {}
        self._only: set[int] | None = None  # show_runs: the runs whose maps the grid shows by default
        self.agreement: dict[str, float] = {}

    def _poke(self) -> None:
        if self.isVisible():
            self.refresh_later.poke()
        else:
            self._stale = True

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if getattr(self, "_stale", True):
            self._stale = False
            self.refresh_later.poke()

    # ------------------------------------------------------------------ content
    def candidates(self) -> list[Layer]:
        return [l for l in self.session.layers if self.session.layer_data(l) is not None]

    def chosen(self) -> list[Layer]:
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
            it.setData(Qt.UserRole, l.id)
            it.setFlags(Qt.ItemIsEnabled | Qt.ItemIsUserCheckable)
            default = l.run_id not in first_of_run and (self._only is None or l.run_id in self._only)
            first_of_run.add(l.run_id)
            it.setCheckState(Qt.Checked if self._checked.get(l.id, default) else Qt.Unchecked)
            self.picker.addItem(it)
        self.picker.blockSignals(False)
        for combo, pick in ((self.a, 0), (self.b, 1)):
            cur = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            for l in layers:
                combo.addItem(l.label, l.id)
            idx = combo.findData(cur)
            mains = [i for i, l in enumerate(layers)
                     if l.name == self.session.layers_of(self.session.runs[l.run_id])[0].name] if layers else []
            combo.setCurrentIndex(idx if idx >= 0
                                  else (mains[pick] if len(mains) > pick else min(pick, len(layers) - 1)))
            combo.blockSignals(False)
        self._draw()
        self._agreement()

    def _levels(self, layers: list[Layer]) -> dict[int, tuple[float, float]]:
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
            out.append((rgb, l.label))
        return out

    def _draw(self) -> None:
        self.grid.clear()
        self.views = []
        if self.session.image is None:
            return
        tiles = self.tiles(max_side=768)
        if not tiles:
            return
        cols = max(1, math.ceil(math.sqrt(len(tiles))))
        first = None
        for i, (rgb, title) in enumerate(tiles):
            r, c = divmod(i, cols)
            vb = self.grid.addViewBox(row=r, col=c, lockAspect=True, invertY=True, enableMenu=False)
            title_item = pg.TextItem(title, color="#f0f0f0", fill=pg.mkBrush(0, 0, 0, 160), anchor=(0, 0))
            title_item.setPos(0, 0)
            title_item.setZValue(10)
            vb.addItem(title_item)
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

    def export_figure(self, path: str) -> None:
        from explorer.io.export import save_png

        tiles = self.tiles()
        save_png(path, figure_grid(tiles))
