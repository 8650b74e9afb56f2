"""Evaluation panel: deletion / insertion, pixel-flipping and ROAD (MoRF / LeRF) curves of the selected
layers, their AUCs, and the perturbed image under the mouse on every curve. PySide6 + pyqtgraph only — it
receives data and never computes (no torch here).

Interface (Qt-free data in, for the main window / worker of the GUI)::

    panel = EvaluationPanel()
    panel.set_curve(label, curve, frames=None)   # add or replace one curve
    panel.set_curves([(label, curve, frames), ...])  # replace everything
    panel.remove(label) / panel.clear()
    panel.set_selected(labels)                   # which labels are drawn (also the table's check boxes)
    panel.hover_at(mode, fraction, score=None)   # what a mouse move does (public for tests and scripting)

- ``label``: the layer's name as the user sees it, e.g. ``"rise · salient"``. One label may have a
  deletion curve and an insertion curve (two ``set_curve`` calls); ``curve.mode`` decides the plot.
- ``curve``: anything with ``mode`` (one of ``MODES``: "deletion", "insertion", "pixel_flipping",
  "road_morf", "road_lerf"), ``fractions`` and ``scores`` (1-D
  sequences of equal length), ``auc`` (float) and optionally ``step`` and ``substrate`` — attributes or dict
  keys. ``explorer.evaluation.causal.Curve`` is such a record; so is its ``record()`` dict.
- ``frames``: optional, the perturbed image at curve point k as an (h, w, 3) uint8 array — either a callable
  ``k -> array`` (e.g. ``explorer.evaluation.causal.CurveFrames``, numpy only once built; the worker that
  computes the curve builds it) or a precomputed sequence of arrays indexed by k.

Signals: ``pointHovered(label, mode, index)`` when the hovered point changes; ``selectionChanged(list)``
when check boxes change. Lower deletion AUC and higher insertion AUC are better (stated in the table tip).
"""

from __future__ import annotations

import html
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

MODES = ("deletion", "insertion", "pixel_flipping", "road_morf", "road_lerf")
TITLES = {"deletion": "deletion", "insertion": "insertion", "pixel_flipping": "pixel flipping",
          "road_morf": "ROAD: most relevant first", "road_lerf": "ROAD: least relevant first"}
X_LABELS = {"deletion": "fraction of pixels removed", "insertion": "fraction of pixels inserted",
            "pixel_flipping": "fraction of pixels flipped", "road_morf": "fraction removed (imputed)",
            "road_lerf": "fraction removed (imputed)"}
VERBS = {"insertion": "inserted", "pixel_flipping": "flipped"}  # the rest: "removed"
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
COLUMNS = ("layer", "deletion AUC ↓", "insertion AUC ↑", "ins − del", "flipping AUC ↓", "ROAD MoRF ↓",
           "ROAD LeRF ↑", "step", "substrate")


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


class _Entry:
    def __init__(self, label: str, curve: Any, frames: Callable[[int], np.ndarray] | Sequence[np.ndarray] | None):
        self.label = label
        self.mode = str(_get(curve, "mode", ""))
        if self.mode not in MODES:
            raise ValueError(f"curve mode must be one of {MODES}, got {self.mode!r}")
        self.fractions = np.asarray(_get(curve, "fractions"), dtype=np.float64).ravel()
        self.scores = np.asarray(_get(curve, "scores"), dtype=np.float64).ravel()
        if self.fractions.shape != self.scores.shape or self.fractions.size == 0:
            raise ValueError("a curve needs fractions and scores of the same non-zero length")
        auc = _get(curve, "auc")
        self.auc = float(auc) if auc is not None else float(
            np.sum((self.scores[1:] + self.scores[:-1]) * np.diff(self.fractions)) / 2)
        self.step = _get(curve, "step")
        self.substrate = _get(curve, "substrate")
        self.frames = frames
        self.item: pg.PlotDataItem | None = None

    def frame(self, k: int) -> np.ndarray | None:
        if self.frames is None:
            return None
        if callable(self.frames):
            return np.asarray(self.frames(int(k)))
        if 0 <= k < len(self.frames):
            return np.asarray(self.frames[int(k)])
        return None


class EvaluationPanel(QWidget):
    """Curves per mode (two plots), an AUC table with a check box per layer, and the hovered frame."""

    pointHovered = Signal(str, str, int)
    selectionChanged = Signal(list)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._labels: list[str] = []
        self._hidden: set[str] = set()
        self._hover: tuple[str, str, int] | None = None
        self._filling = False

        self.plots: dict[str, pg.PlotWidget] = {}
        self.markers: dict[str, pg.ScatterPlotItem] = {}
        self.lines: dict[str, pg.InfiniteLine] = {}
        grid = QGridLayout()
        for n, mode in enumerate(MODES):
            w = pg.PlotWidget()
            w.setBackground("w")
            pi = w.getPlotItem()
            w.setMinimumSize(240, 180)
            pi.setTitle(TITLES[mode])
            pi.setLabel("bottom", X_LABELS[mode])
            pi.setLabel("left", "P(target)")
            for side in ("bottom", "left"):  # plain probabilities: no "(x0.001)" scale prefix on the axis
                pi.getAxis(side).enableAutoSIPrefix(False)
            # five ticks at most: they never run into each other ("0.20.40.60.8") on a narrow plot
            pi.getAxis("bottom").setTicks([[(v, f"{v:g}") for v in (0.0, 0.25, 0.5, 0.75, 1.0)]])
            pi.showGrid(x=True, y=True, alpha=0.2)
            pi.setXRange(0, 1, padding=0.02)
            marker = pg.ScatterPlotItem(size=9, brush=pg.mkBrush("k"), pen=None)
            line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#888888", style=Qt.DashLine))
            line.setVisible(False)
            pi.addItem(marker)
            pi.addItem(line, ignoreBounds=True)
            w.scene().sigMouseMoved.connect(lambda pos, m=mode: self._mouse_moved(m, pos))
            self.plots[mode], self.markers[mode], self.lines[mode] = w, marker, line
            grid.addWidget(w, n // 3, n % 3)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setToolTip("deletion, pixel flipping, ROAD MoRF: lower is better; insertion, ROAD LeRF: higher "
                              "is better (ROAD: mean P over 10..90 % removed by noisy linear imputation). "
                              "Tick a layer to draw its curves.")
        self.table.itemChanged.connect(self._item_changed)

        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground("w")
        vb = self.view.addViewBox(lockAspect=True, invertY=True)
        vb.setMouseEnabled(False, False)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        vb.addItem(self.image_item)
        self.viewbox = vb
        self.caption = QLabel("hover a curve to see the perturbed image")
        self.caption.setWordWrap(True)

        side = QWidget()
        sl = QVBoxLayout(side)
        sl.setContentsMargins(0, 0, 0, 0)
        sl.addWidget(self.view, 1)
        sl.addWidget(self.caption)
        # one legend for the five plots, above them: the colour of each layer, never drawn over a curve
        self.legend = QLabel("")
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.RichText)
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.legend)
        tl.addLayout(grid, 1)
        split_h = QSplitter(Qt.Horizontal)
        split_h.addWidget(top)
        split_h.addWidget(side)
        split_h.setStretchFactor(0, 4)
        split_h.setStretchFactor(1, 1)
        split_h.setSizes([800, 200])  # the hovered frame beside the plots, large enough to be seen
        self.table.setMinimumHeight(110)  # a few rows of scores stay in view under the plots
        split_v = QSplitter(Qt.Vertical)
        split_v.addWidget(split_h)
        split_v.addWidget(self.table)
        split_v.setStretchFactor(0, 3)
        split_v.setStretchFactor(1, 1)
        split_v.setSizes([600, 160])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(split_v)

    # ------------------------------------------------------------------ data in
    def set_curve(self, label: str, curve: Any, frames: Any = None) -> None:
        """Add or replace the curve of ``label`` for ``curve.mode``."""
        entry = _Entry(str(label), curve, frames)
        key = (entry.label, entry.mode)
        old = self._entries.get(key)
        if old is not None and old.item is not None:
            self.plots[entry.mode].getPlotItem().removeItem(old.item)
        self._entries[key] = entry
        if entry.label not in self._labels:
            self._labels.append(entry.label)
        self._draw(entry)
        self._refresh_table()

    def set_curves(self, items: Iterable[tuple]) -> None:
        """Replace all curves with ``(label, curve)`` or ``(label, curve, frames)`` tuples."""
        self.clear()
        for it in items:
            self.set_curve(*it)

    def remove(self, label: str) -> None:
        for mode in MODES:
            e = self._entries.pop((label, mode), None)
            if e is not None and e.item is not None:
                self.plots[mode].getPlotItem().removeItem(e.item)
        if label in self._labels:
            self._labels.remove(label)
        self._hidden.discard(label)
        self._refresh_table()

    def clear(self) -> None:
        for label in list(self._labels):
            self.remove(label)
        self._hover = None
        for mode in MODES:
            self.markers[mode].setData([], [])
            self.lines[mode].setVisible(False)
        self.image_item.clear()
        self.caption.setText("hover a curve to see the perturbed image")

    def labels(self) -> list[str]:
        return list(self._labels)

    def curves(self) -> list[dict]:
        """Every curve as plain values (what a session file keeps; ``set_curve`` takes them back, frameless)."""
        return [{"label": e.label, "mode": e.mode, "fractions": e.fractions.tolist(), "scores": e.scores.tolist(),
                 "auc": e.auc, "step": e.step, "substrate": e.substrate} for e in self._entries.values()]

    def selected(self) -> list[str]:
        return [l for l in self._labels if l not in self._hidden]

    def set_selected(self, labels: Iterable[str]) -> None:
        keep = set(labels)
        self._hidden = {l for l in self._labels if l not in keep}
        for (label, _), e in self._entries.items():
            if e.item is not None:
                e.item.setVisible(label not in self._hidden)
        self._refresh_table()
        self.selectionChanged.emit(self.selected())

    def auc(self, label: str, mode: str) -> float | None:
        e = self._entries.get((label, mode))
        return None if e is None else e.auc

    def curve_item(self, label: str, mode: str) -> pg.PlotDataItem | None:
        e = self._entries.get((label, mode))
        return None if e is None else e.item

    # ------------------------------------------------------------------ drawing
    def _colour(self, label: str) -> str:
        return COLOURS[self._labels.index(label) % len(COLOURS)] if label in self._labels else COLOURS[0]

    def _draw(self, e: _Entry) -> None:
        pen = pg.mkPen(self._colour(e.label), width=2)
        e.item = self.plots[e.mode].getPlotItem().plot(e.fractions, e.scores, pen=pen, name=f"{e.label} ({e.auc:.3f})")
        e.item.setVisible(e.label not in self._hidden)

    def _refresh_legend(self) -> None:
        shown = [l for l in self._labels if l not in self._hidden]
        self.legend.setText("&nbsp;&nbsp;&nbsp;".join(
            f'<span style="color:{self._colour(l)}; font-weight:bold">&#9632;</span>&nbsp;{html.escape(l)}'
            for l in shown))
        self.legend.setVisible(bool(shown))

    def _refresh_table(self) -> None:
        self._refresh_legend()
        self._filling = True
        try:
            self.table.setRowCount(len(self._labels))
            for r, label in enumerate(self._labels):
                d, i = self._entries.get((label, "deletion")), self._entries.get((label, "insertion"))
                pf, rm, rl = (self._entries.get((label, m)) for m in ("pixel_flipping", "road_morf", "road_lerf"))
                first = d or i or pf
                name = QTableWidgetItem(label)
                name.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable | Qt.ItemIsUserCheckable)
                name.setCheckState(Qt.Unchecked if label in self._hidden else Qt.Checked)
                name.setForeground(pg.mkColor(self._colour(label)))
                cells = [
                    f"{d.auc:.4f}" if d else "",
                    f"{i.auc:.4f}" if i else "",
                    f"{i.auc - d.auc:+.4f}" if d and i else "",
                    f"{pf.auc:.4f}" if pf else "",
                    f"{rm.auc:.4f}" if rm else "",
                    f"{rl.auc:.4f}" if rl else "",
                    "" if first is None or first.step is None else str(first.step),
                    " / ".join(dict.fromkeys(str(e.substrate) for e in (d, i, pf, rm)
                                             if e is not None and e.substrate is not None)),
                ]
                self.table.setItem(r, 0, name)
                for c, text in enumerate(cells, start=1):
                    it = QTableWidgetItem(text)
                    if c <= 6:
                        it.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                    self.table.setItem(r, c, it)
        finally:
            self._filling = False

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != 0:
            return
        label = item.text()
        if item.checkState() == Qt.Checked:
            self._hidden.discard(label)
        else:
            self._hidden.add(label)
        for mode in MODES:
            e = self._entries.get((label, mode))
            if e is not None and e.item is not None:
                e.item.setVisible(label not in self._hidden)
        self._refresh_legend()
        self.selectionChanged.emit(self.selected())

    # ------------------------------------------------------------------ hover
    def _mouse_moved(self, mode: str, pos) -> None:
        vb = self.plots[mode].getPlotItem().vb
        if not self.plots[mode].sceneBoundingRect().contains(pos):
            return
        p = vb.mapSceneToView(pos)
        self.hover_at(mode, float(p.x()), float(p.y()))

    def hover_at(self, mode: str, fraction: float, score: float | None = None) -> tuple[str, int] | None:
        """Show the point of the visible ``mode`` curve nearest to (fraction, score) and its frame.

        Without ``score`` the first visible curve is used. Returns ``(label, index)`` or None.
        """
        cands = [e for (l, m), e in self._entries.items() if m == mode and l not in self._hidden]
        if not cands:
            return None
        best, best_k, best_d = None, 0, np.inf
        for e in cands:
            k = int(np.argmin(np.abs(e.fractions - fraction)))
            d = 0.0 if score is None else abs(e.scores[k] - score)
            if d < best_d:
                best, best_k, best_d = e, k, d
            if score is None:
                break
        e, k = best, best_k
        self.markers[mode].setData([e.fractions[k]], [e.scores[k]])
        self.lines[mode].setPos(e.fractions[k])
        self.lines[mode].setVisible(True)
        for other in MODES:
            if other != mode:
                self.markers[other].setData([], [])
                self.lines[other].setVisible(False)
        verb = VERBS.get(mode, "removed")
        text = f"{e.label} — {mode}: {e.fractions[k] * 100:.1f}% of pixels {verb}, P = {e.scores[k]:.3f} (point {k})"
        img = e.frame(k)
        if img is not None:
            self.image_item.setImage(np.ascontiguousarray(img), autoLevels=False, levels=(0, 255))
            self.viewbox.autoRange(padding=0)
        else:
            text += " — no frames for this curve"
        self.caption.setText(text)
        if self._hover != (e.label, mode, k):
            self._hover = (e.label, mode, k)
            self.pointHovered.emit(e.label, mode, k)
        return e.label, k
