"""Small reusable widgets: a float/int slider with a spin box, a message bar, controls generated from Params."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QEvent, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFontMetrics, QLinearGradient, QPainter
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
from explorer.core.errors import ParamError
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


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class ParamControl(QWidget):
    """The editor of one declared parameter, chosen from its kind; emits ``changed(name, value)``."""

    changed = Signal(str, object)
    invalid = Signal(str)  # a value was refused (a picker's typed one, or one set by setValue): says why

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
        """Show ``v``. A value the parameter refuses (a session from another version, a bound since changed)
        is said by ``invalid``; a text editor shows it as given (the run reports it), a numeric or boolean
        editor shows a number clamped to its range and keeps its value for anything else."""
        try:
            v = self.param.coerce(v)
        except ParamError as exc:
            self.invalid.emit(str(exc))
            if self.param.kind in ("int", "float") and not _is_number(v):
                return
            if self.param.kind == "bool" and not isinstance(v, (bool, int)):
                return
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
    """The active layer's colour scale: a gradient with its value range and name.

    Its geometry follows its font (``geometry``): the value labels get the width their text needs, so a minus
    sign is never clipped, and each caption line the font's height, so the name and the note never overlap,
    also in presentation mode's larger type."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.cmap = "inferno"
        self.lo, self.hi = 0.0, 1.0
        self.title = ""
        self.signed = False
        self.note = ""
        self._fit_height()

    def set_scale(self, cmap: str, lo: float, hi: float, title: str, signed: bool, note: str = "") -> None:
        """``note``: one more line under the title (what 0 means for a signed map)."""
        self.cmap, self.lo, self.hi, self.title, self.signed, self.note = cmap, lo, hi, title, signed, note
        self._fit_height()
        self.setToolTip(note)
        self.update()

    def clear(self) -> None:
        self.title = ""
        self.update()

    def labels(self) -> tuple[str, str]:
        return f"{self.lo:.3g}", f"{self.hi:.3g}"

    def geometry_for(self, width: int) -> dict[str, QRect]:
        """Where each part goes at ``width``: ``lo``, ``hi`` (the value labels), ``ramp``, ``title``, ``note``."""
        fm = QFontMetrics(self.font())
        pad, line = 6, fm.height()
        # room for the widest label this bar may show (a negative, long value), not for this one alone
        label_w = max(fm.horizontalAdvance(t) for t in (*self.labels(), "-0.000e-00")) + pad
        bh = max(12, line - 2)
        ramp = QRect(label_w + pad, pad, max(1, width - 2 * (label_w + pad)), bh)
        out = {"lo": QRect(0, pad, label_w, bh), "ramp": ramp,
               "hi": QRect(ramp.right() + pad, pad, label_w, bh),
               "title": QRect(pad, ramp.bottom() + 3, max(1, width - 2 * pad), line)}
        out["note"] = QRect(pad, out["title"].bottom() + 1, max(1, width - 2 * pad), line)
        return out

    def _fit_height(self) -> None:
        g = self.geometry_for(max(self.width(), 200))
        self.setFixedHeight((g["note"] if self.note else g["title"]).bottom() + 4)

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.FontChange:  # presentation mode's larger type: taller lines, wider labels
            self._fit_height()
        super().changeEvent(event)

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        w = self.width()
        if not self.title:
            p.setPen(QColor("#888"))
            p.drawText(self.rect(), Qt.AlignCenter, "no active layer")
            return
        g = self.geometry_for(w)
        ramp = g["ramp"]
        table = colormaps.lut(self.cmap, 32)
        grad = QLinearGradient(ramp.left(), 0, ramp.right(), 0)
        for i, c in enumerate(table):
            grad.setColorAt(i / (len(table) - 1), QColor(int(c[0]), int(c[1]), int(c[2])))
        p.fillRect(ramp, grad)
        p.setPen(QColor("#555"))
        p.drawRect(ramp)
        p.setPen(self.palette().windowText().color())
        lo, hi = self.labels()
        p.drawText(g["lo"], Qt.AlignRight | Qt.AlignVCenter, lo)
        p.drawText(g["hi"], Qt.AlignLeft | Qt.AlignVCenter, hi)
        if self.signed:
            p.drawText(ramp, Qt.AlignCenter, "0")
        fm = p.fontMetrics()
        p.drawText(g["title"], Qt.AlignCenter, fm.elidedText(self.title, Qt.ElideMiddle, g["title"].width()))
        if self.note:
            f = p.font()
            f.setItalic(True)
            p.setFont(f)
            p.drawText(g["note"], Qt.AlignCenter, p.fontMetrics().elidedText(self.note, Qt.ElideRight,
                                                                             g["note"].width()))


class Debouncer(QTimer):
    """A single-shot timer restarted by every ``poke``; fires once the pokes stop for ``ms``."""

    def __init__(self, ms: int, fn, parent=None):
        super().__init__(parent)
        self.setSingleShot(True)
        self.setInterval(ms)
        self.timeout.connect(fn)

    def poke(self) -> None:
        self.start()
