"""Layers that explain themselves: a one-line meaning under each layer of the layer list, a "?" that opens
the method's summary, paper and sign meaning, and the colour bar's note on what 0 means for signed maps.

The texts come from the method registry through the catalog (explorer/session/layer_help.py); this module
only puts them on screen. ``install(window)`` wires it into the main window.
"""

from __future__ import annotations

from html import escape

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QStyle,
    QTextBrowser,
    QToolButton,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from explorer.session.layer_help import LayerHelp, layer_help


class LayerHelpDialog(QDialog):
    """The "?" window of one layer: what it shows, its sign, how it is computed, the method and its paper."""

    def __init__(self, help: LayerHelp, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"{help.layer} — {help.title or help.method}")
        self.text = QTextBrowser()
        self.text.setOpenExternalLinks(False)
        self.text.setHtml(help.html())
        self.text.setMinimumSize(460, 260)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        lay = QVBoxLayout(self)
        lay.addWidget(self.text, 1)
        lay.addWidget(buttons)


def help_for(win, layer) -> LayerHelp:
    """The help of a session layer, from its run's catalog entry (role defaults before the catalog arrives)."""
    run = win.session.runs.get(layer.run_id)
    entry = win.runs.entry(run.method) if run is not None else None
    return layer_help(entry, layer.name, layer.signed)


def wrap(text: str, fm: QFontMetrics, width: int) -> list[str]:
    """``text`` broken at spaces into lines at most ``width`` pixels wide (a longer word keeps its own line)."""
    lines: list[str] = []
    cur = ""
    for word in text.split():
        trial = f"{cur} {word}" if cur else word
        if cur and fm.horizontalAdvance(trial) > width:
            lines.append(cur)
            cur = word
        else:
            cur = trial
    return lines + ([cur] if cur else [])


def meaning_width(tree) -> int:
    """The pixels a layer row's text has in the list: its column less the indentation and the check box."""
    box = tree.style().pixelMetric(QStyle.PM_IndicatorWidth) + 12
    return tree.columnWidth(0) - 2 * tree.indentation() - box


def row_text(win, tree, layer) -> str:
    """A layer row: its name, then its meaning wrapped to the list's width (the rows do not wrap themselves:
    run names are elided in the middle instead), so no meaning is cut off, in presentation's larger type too."""
    h = help_for(win, layer)
    width = meaning_width(tree)
    lines = wrap(h.line(), QFontMetrics(tree.font()), width) if width > 60 else [h.line()]
    return "\n".join([f"{layer.name}{' ±' if layer.signed else ''}", *lines])


def rewrap(win) -> None:
    """The layer rows again at the list's current width and type size."""
    panel = win.layer_panel
    panel.tree.blockSignals(True)
    for lid, item in panel.layer_items.items():
        layer = win.session.layer(lid)
        if layer is not None:
            item.setText(0, row_text(win, panel.tree, layer))
    panel.tree.blockSignals(False)


class _Rewrapper(QObject):
    """Re-wraps the layer rows when the list is resized or its type changes (presentation mode)."""

    def __init__(self, win):
        super().__init__(win)
        self.win = win
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(30)
        self.timer.timeout.connect(lambda: rewrap(win))
        win.layer_panel.tree.installEventFilter(self)
        win.layer_panel.tree.viewport().installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.FontChange or (
                event.type() == QEvent.Resize and event.size().width() != event.oldSize().width()):
            self.timer.start()
        return False


def decorate(win, tree, item: QTreeWidgetItem, layer) -> None:
    """Put the layer's meaning on its row (from the second line) and a "?" button in its second column."""
    h = help_for(win, layer)
    item.setText(0, row_text(win, tree, layer))
    item.setToolTip(0, f"{layer.label}\n{h.line()}\n{h.zero}")
    btn = QToolButton()
    btn.setText("?")
    btn.setAutoRaise(True)
    btn.setToolTip(f"what {layer.name} means: the method, its paper, its sign")
    btn.clicked.connect(lambda _=False, lid=layer.id: open_help(win, lid))
    tree.setItemWidget(item, 1, btn)


def open_help(win, layer_id: int) -> LayerHelpDialog | None:
    layer = win.session.layer(layer_id)
    if layer is None:
        return None
    dlg = LayerHelpDialog(help_for(win, layer), win)
    win.layer_help_dialog = dlg  # kept so tests (and the user) can find it
    dlg.setAttribute(Qt.WA_DeleteOnClose)
    dlg.show()
    return dlg


class MeaningStrip(QWidget):
    """Under the layer list: the active layer's meaning in full (the rows are narrow) and its "?"."""

    def __init__(self, win, parent=None):
        super().__init__(parent)
        self.win = win
        self.label = QLabel()
        self.label.setWordWrap(True)  # (no style sheet: it would stop presentation mode's larger font)
        self.help_btn = QToolButton()
        self.help_btn.setText("?")
        self.help_btn.setToolTip("what this layer means: the method, its paper, its sign")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.help_btn, 0, Qt.AlignTop)
        self.help_btn.clicked.connect(self._open)
        self.show_layer(None)

    def show_layer(self, layer) -> None:
        if layer is None:
            self.label.setText("")
            self.setVisible(False)
            return
        h = help_for(self.win, layer)
        self.label.setText(f"<b>{layer.name}{' ±' if layer.signed else ''}</b>: {escape(h.line())}"
                           + (f"<br><i>{escape(h.zero)}</i>" if layer.signed else ""))
        self.setVisible(True)

    def _open(self) -> None:
        layer = self.win.session.active_layer()
        if layer is not None:
            open_help(self.win, layer.id)


def install(win) -> None:
    panel = win.layer_panel
    # no word wrap: a long run name keeps both ends (elided in the middle, whole in its tooltip) instead of
    # wrapping into a row too short to show it; a layer row's meaning is its own second line
    panel.tree.setWordWrap(False)
    win.meaning_strip = strip = MeaningStrip(win)
    lay = panel.tree.parentWidget().layout()
    lay.insertWidget(lay.indexOf(panel.tree) + 1, strip)
    win.session.active_layer_changed.connect(strip.show_layer)
    win.catalog_changed.connect(lambda: strip.show_layer(win.session.active_layer()))
    panel.decorate = lambda tree, item, layer: decorate(win, tree, item, layer)
    win.layer_rewrapper = _Rewrapper(win)
    win.canvas.note_for = lambda layer: help_for(win, layer).colorbar_note()
    # the catalog (titles, layer texts) may arrive after the first runs: redraw what they show
    win.catalog_changed.connect(panel._rebuild_layers)
    win.catalog_changed.connect(win.canvas._update_colorbar)
