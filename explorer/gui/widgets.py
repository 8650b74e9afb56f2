"""Small reusable widgets: a float/int slider with a spin box, a message bar, controls generated from Params."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QLinearGradient, QPainter
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QDoubleSpinBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QWidget,
)

from explorer.core import colormaps
from explorer.core.params import Param

STEPS = 1000


def decimals_for(*values: float | None, least: int = 3) -> int:
    """Enough decimals to show the smallest non-zero bound or step (1e-6 must not round to 0)."""
    small = [abs(v) for v in values if v]
    if not small:
        return least
    return int(min(10, max(least, math.ceil(-math.log10(min(small))) + 2)))


class ValueSlider(QWidget):
    """A horizontal slider bound to a spin box: int or float, linear or logarithmic."""

    valueChanged = Signal(object)
    sliderReleased = Signal()

    def __init__(self, low: float, high: float, value: float, step: float | None = None,
                 integer: bool = False, log: bool = False, decimals: int | None = None, parent=None):
        super().__init__(parent)
        self.low, self.high, self.integer = float(low), float(high), integer
        self.log = bool(log and low > 0)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, STEPS)
        if integer:
            self.spin = QSpinBox()
            self.spin.setRange(int(low), int(high))
            self.spin.setSingleStep(int(step or 1))
        else:
            self.spin = QDoubleSpinBox()
            self.spin.setDecimals(decimals if decimals is not None else decimals_for(low, high, step, value))
            self.spin.setRange(low, high)
            self.spin.setSingleStep(step or (high - low) / 100)
        self.spin.setKeyboardTracking(False)
        self.spin.setMinimumWidth(72)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.spin)
        self._guard = False
        self.slider.valueChanged.connect(self._from_slider)
        self.slider.sliderReleased.connect(self.sliderReleased)
        self.spin.valueChanged.connect(self._from_spin)
        self.setValue(value)

    def _to_pos(self, v: float) -> int:
        if self.high <= self.low:
            return 0
        if self.log:
            t = (math.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        else:
            t = (v - self.low) / (self.high - self.low)
        return int(round(min(1.0, max(0.0, t)) * STEPS))

    def _from_pos(self, pos: int) -> float:
        t = pos / STEPS
        if self.log:
            v = math.exp(math.log(self.low) + t * (math.log(self.high) - math.log(self.low)))
        else:
            v = self.low + t * (self.high - self.low)
        return int(round(v)) if self.integer else v

    def _from_slider(self, pos: int) -> None:
        if self._guard:
            return
        self._guard = True
        self.spin.setValue(self._from_pos(pos))
        self._guard = False
        self.valueChanged.emit(self.value())

    def _from_spin(self, v) -> None:
        if self._guard:
            return
        self._guard = True
        self.slider.setValue(self._to_pos(v))
        self._guard = False
        self.valueChanged.emit(self.value())

    def value(self):
        return int(self.spin.value()) if self.integer else float(self.spin.value())

    def setValue(self, v) -> None:
        self._guard = True
        self.spin.setValue(v)
        self.slider.setValue(self._to_pos(float(v)))
        self._guard = False


class ParamControl(QWidget):
    """The editor of one declared parameter, chosen from its kind; emits ``changed(name, value)``."""

    changed = Signal(str, object)
    invalid = Signal(str)  # a picker refused a typed value (the message says why; the old value stays)

    def __init__(self, param: Param, value: Any = None, choices=None, parent=None):
        """``choices``: layer names for a ``layer`` parameter, or a ``PickerContext`` (gui/pickers.py) for
        class, prior and file parameters."""
        super().__init__(parent)
        from explorer.gui.pickers import PickerContext, make_picker

        self.param = p = param
        value = p.default if value is None and p.default is not None else value
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.editor: QWidget
        picker = make_picker(p, value, choices if isinstance(choices, PickerContext) else None)
        if picker is not None:
            self.editor = picker
            picker.picked.connect(self._emit)
            picker.invalid.connect(self.invalid)
        elif p.kind in ("int", "float") and p.default is None:  # None means "the default rule": typed, or auto
            self.editor = QLineEdit("auto" if value is None else str(value))
            self.editor.editingFinished.connect(self._emit)
        elif p.kind in ("int", "float") and p.low is not None and p.high is not None:
            self.editor = ValueSlider(p.low, p.high, value, p.step, integer=p.kind == "int", log=p.log)
            self.editor.valueChanged.connect(self._emit)
        elif p.kind == "int":
            self.editor = QSpinBox()
            self.editor.setRange(int(p.low if p.low is not None else -10**9),
                                 int(p.high if p.high is not None else 10**9))
            self.editor.setValue(int(value or 0))
            self.editor.valueChanged.connect(self._emit)
        elif p.kind == "float":
            self.editor = QDoubleSpinBox()
            self.editor.setDecimals(decimals_for(p.low, p.high, p.step, value, least=4))
            self.editor.setRange(p.low if p.low is not None else -1e9, p.high if p.high is not None else 1e9)
            self.editor.setValue(float(value or 0.0))
            self.editor.valueChanged.connect(self._emit)
        elif p.kind == "bool":
            self.editor = QCheckBox()
            self.editor.setChecked(bool(value))
            self.editor.toggled.connect(self._emit)
        elif p.kind == "choice":
            self.editor = QComboBox()
            self.editor.addItems(list(p.choices))
            self.editor.setCurrentText(str(value))
            self.editor.currentTextChanged.connect(self._emit)
        elif p.kind == "layer":
            self.editor = QComboBox()
            self.editor.setEditable(True)
            self.editor.addItems(["auto"] + list(choices or []))
            self.editor.setCurrentText("auto" if value is None else str(value))
            self.editor.currentTextChanged.connect(self._emit)
        else:  # str, layers, floats, class (without a picker context)
            self.editor = QLineEdit("auto" if value is None and p.kind != "str" else ("" if value is None else
                                    ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)))
            if p.kind == "class" and isinstance(choices, list) and choices:
                comp = QCompleter(list(choices), self.editor)
                comp.setCaseSensitivity(Qt.CaseInsensitive)
                comp.setFilterMode(Qt.MatchContains)
                self.editor.setCompleter(comp)
            self.editor.editingFinished.connect(self._emit)
        lay.addWidget(self.editor)
        tip = p.help + (f"\n({p.bounds_text()})" if p.kind in ("int", "float", "choice") else "")
        self.setToolTip(tip)

    def _emit(self, *_):
        self.changed.emit(self.param.name, self.value())

    def value(self) -> Any:
        e = self.editor
        if hasattr(e, "picked"):  # a picker (gui/pickers.py) holds its own typed value
            return e.value()
        if isinstance(e, ValueSlider):
            return e.value()
        if isinstance(e, (QSpinBox, QDoubleSpinBox)):
            return e.value()
        if isinstance(e, QCheckBox):
            return e.isChecked()
        if isinstance(e, QComboBox):
            t = e.currentText()
            return None if self.param.kind == "layer" and (t in ("", "auto") or t.startswith("auto (")) else t
        t = e.text().strip()
        if self.param.kind in ("layers", "class") and t.lower() in ("", "auto", "none"):
            return None
        if self.param.kind in ("int", "float") and t.lower() in ("", "auto", "none"):  # a default-None number
            return None
        if self.param.kind == "str" and not t and self.param.default is None:
            return None
        return t

    def set_auto_hint(self, name: str | None) -> None:
        """Name the layer "auto" resolves to, e.g. ``auto (blocks.11.norm1)``, so the choice is visible."""
        if self.param.kind == "layer" and isinstance(self.editor, QComboBox) and name:
            current = self.editor.currentIndex()
            self.editor.blockSignals(True)
            self.editor.setItemText(0, f"auto ({name})")
            self.editor.blockSignals(False)
            if current == 0:
                self.editor.setCurrentIndex(0)

    def setValue(self, v: Any) -> None:
        try:
            v = self.param.coerce(v)
        except Exception:  # noqa: BLE001 - shown as given; the run reports the bad value
            pass
        if v is None and self.param.kind in ("int", "float", "bool") and self.param.default is not None:
            return
        e = self.editor
        e.blockSignals(True)
        try:
            if hasattr(e, "picked"):
                e.setValue(v)
            elif isinstance(e, ValueSlider):
                e.setValue(v)
            elif isinstance(e, (QSpinBox, QDoubleSpinBox)):
                e.setValue(v)
            elif isinstance(e, QCheckBox):
                e.setChecked(bool(v))
            elif isinstance(e, QComboBox):
                e.setCurrentText("auto" if v is None else str(v))
            else:
                e.setText("auto" if v is None else ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v))
        finally:
            e.blockSignals(False)


class MessageBar(QFrame):
    """An in-window message line (errors in red, info in blue) with a close button."""

    COLOURS = {"error": ("#fde8e8", "#9b1c1c"), "warning": ("#fdf6e3", "#8a6d00"), "info": ("#e8f0fd", "#1c3d9b")}

    def __init__(self, parent=None):
        super().__init__(parent)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        close = QPushButton("✕")
        close.setFlat(True)
        close.setFixedWidth(28)
        close.clicked.connect(self.hide)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 4, 4, 4)
        lay.addWidget(self.label, 1)
        lay.addWidget(close)
        self.level = ""
        self.history: list[tuple[str, str]] = []
        self.hide()

    def show_message(self, text: str, level: str = "error") -> None:
        bg, fg = self.COLOURS.get(level, self.COLOURS["info"])
        self.setStyleSheet(f"MessageBar {{ background: {bg}; border: 1px solid {fg}; border-radius: 4px; }}"
                           f" QLabel {{ color: {fg}; }}")
        self.level = level
        self.label.setText(text)
        self.history.append((level, text))
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""


class ColorBar(QWidget):
    """The active layer's colour scale: a gradient with its value range and name."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(44)
        self.setMaximumHeight(44)
        self.cmap = "inferno"
        self.lo, self.hi = 0.0, 1.0
        self.title = ""
        self.signed = False
        self.note = ""

    def set_scale(self, cmap: str, lo: float, hi: float, title: str, signed: bool, note: str = "") -> None:
        """``note``: one more line under the title (what 0 means for a signed map)."""
        self.cmap, self.lo, self.hi, self.title, self.signed, self.note = cmap, lo, hi, title, signed, note
        self.setFixedHeight(60 if note else 44)
        self.setToolTip(note)
        self.update()

    def clear(self) -> None:
        self.title = ""
        self.update()

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        w = self.width()
        if not self.title:
            p.setPen(QColor("#888"))
            p.drawText(self.rect(), Qt.AlignCenter, "no active layer")
            return
        x0, x1, y0, bh = 90, w - 90, 6, 14
        table = colormaps.lut(self.cmap, 32)
        grad = QLinearGradient(x0, 0, x1, 0)
        for i, c in enumerate(table):
            grad.setColorAt(i / (len(table) - 1), QColor(int(c[0]), int(c[1]), int(c[2])))
        p.fillRect(x0, y0, max(1, x1 - x0), bh, grad)
        p.setPen(QColor("#555"))
        p.drawRect(x0, y0, max(1, x1 - x0), bh)
        p.setPen(self.palette().windowText().color())
        p.drawText(4, y0, x0 - 8, bh, Qt.AlignRight | Qt.AlignVCenter, f"{self.lo:.3g}")
        p.drawText(x1 + 6, y0, 84, bh, Qt.AlignLeft | Qt.AlignVCenter, f"{self.hi:.3g}")
        if self.signed:
            p.drawText(x0, y0, x1 - x0, bh, Qt.AlignCenter, "0")
        line = 16
        p.drawText(0, y0 + bh + 2, w, line, Qt.AlignCenter, self.title)
        if self.note:
            f = p.font()
            f.setItalic(True)
            p.setFont(f)
            p.drawText(4, y0 + bh + 2 + line, w - 8, line, Qt.AlignCenter,
                       p.fontMetrics().elidedText(self.note, Qt.ElideRight, w - 8))


class Debouncer(QTimer):
    """A single-shot timer restarted by every ``poke``; fires once the pokes stop for ``ms``."""

    def __init__(self, ms: int, fn, parent=None):
        super().__init__(parent)
        self.setSingleShot(True)
        self.setInterval(ms)
        self.timeout.connect(fn)

    def poke(self) -> None:
        self.start()
