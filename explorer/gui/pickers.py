"""Pickers for parameters that name something: a class (one shared, searchable list for every class picker),
a prior map of this session (BOREx), a .npy file. Each has ``value()`` / ``setValue()`` and emits
``picked(value)``; ``invalid(message)`` says why a typed value was refused (the old value stays)."""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QStringListModel, Qt, Signal
from PySide6.QtWidgets import QComboBox, QCompleter, QFileDialog, QHBoxLayout, QLineEdit, QPushButton, QWidget

from explorer.core.errors import ExplorerError
from explorer.session.classes import find_class, item_text
from explorer.session.priors import PriorChoice

NPY_ITEM = "a .npy file…"


class ClassList(QStringListModel):
    """The model's classes as ``"i: name"``, one instance shared by every class picker of the window."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.labels: list[str] = []

    def set_labels(self, labels: list[str]) -> None:
        if list(labels) != self.labels:
            self.labels = list(labels)
            self.setStringList(["auto"] + [item_text(i, n) for i, n in enumerate(self.labels)])


class ClassPicker(QComboBox):
    """An editable combo over the shared class list; typing filters by substring. Value: index or None."""

    picked = Signal(object)
    invalid = Signal(str)

    def __init__(self, classes: ClassList, value=None, parent=None):
        super().__init__(parent)
        self.classes = classes
        self.setEditable(True)
        self.setInsertPolicy(QComboBox.NoInsert)
        self.setModel(classes)
        comp = QCompleter(classes, self)
        comp.setCaseSensitivity(Qt.CaseInsensitive)
        comp.setFilterMode(Qt.MatchContains)
        comp.setCompletionMode(QCompleter.PopupCompletion)
        self.setCompleter(comp)
        self._value = None
        self.setValue(value)
        self.lineEdit().editingFinished.connect(self._commit)
        self.activated.connect(lambda _i: self._commit())

    def value(self):
        return self._value

    def setValue(self, v) -> None:
        try:
            self._value = find_class(self.classes.labels, v) if self.classes.labels else (
                None if v in (None, "", "auto") else v)
        except ExplorerError:
            self._value = None
        self.blockSignals(True)
        idx = self._value if isinstance(self._value, int) else None
        self.setCurrentText("auto" if self._value is None else item_text(idx, self.classes.labels[idx])
                            if idx is not None and idx < len(self.classes.labels) else str(self._value))
        self.blockSignals(False)

    def _commit(self) -> None:
        text = self.currentText()
        try:
            v = find_class(self.classes.labels, text)
        except ExplorerError as exc:
            self.setValue(self._value)  # keep the last good class
            self.invalid.emit(str(exc))
            return
        if v != self._value:
            self.setValue(v)
            self.picked.emit(v)


class PriorPicker(QComboBox):
    """The session's finished runs and their layers, the methods that can run first, flat, and a .npy file.

    ``source()`` returns the current ``PriorChoice`` list; it is read again every time the list opens, so
    runs made since show up. Choosing the .npy entry asks for a file and emits ``file_chosen(path)``."""

    picked = Signal(object)
    invalid = Signal(str)
    file_chosen = Signal(str)

    def __init__(self, source: Callable[[], list[PriorChoice]], value=None, parent=None):
        super().__init__(parent)
        self.source = source
        self._value = "" if value is None else str(value)
        self.refresh()
        self.activated.connect(self._on_activated)

    def refresh(self) -> None:
        self.blockSignals(True)
        self.clear()
        for c in self.source():
            self.addItem(c.text, c.value)
            self.setItemData(self.count() - 1, c.kind, Qt.UserRole + 1)
        self.addItem(NPY_ITEM, None)
        idx = self.findData(self._value)
        if idx < 0 and self._value:  # a value that is no longer listed (a removed run) stays visible
            self.insertItem(0, f"{self._value}  (not available)", self._value)
            idx = 0
        self.setCurrentIndex(max(idx, 0))
        self.blockSignals(False)

    def showPopup(self) -> None:
        self.refresh()
        super().showPopup()

    def value(self):
        return self._value

    def setValue(self, v) -> None:
        self._value = "" if v is None else str(v)
        self.refresh()

    def _on_activated(self, idx: int) -> None:
        data = self.itemData(idx)
        if data is None:  # the .npy entry
            path, _ = QFileDialog.getOpenFileName(self, "Prior map", "", "NumPy arrays (*.npy);;All files (*)")
            self.refresh()
            if path:
                self.file_chosen.emit(path)
            return
        if data != self._value:
            self._value = data
            self.picked.emit(data)


class NpyPicker(QWidget):
    """A path to a .npy file: typed, or chosen with the browse button (empty = none)."""

    picked = Signal(object)
    invalid = Signal(str)

    def __init__(self, value=None, parent=None):
        super().__init__(parent)
        self.edit = QLineEdit("" if value is None else str(value))
        self.edit.setPlaceholderText("none")
        self.edit.setClearButtonEnabled(True)
        btn = QPushButton("…")
        btn.setFixedWidth(30)
        btn.setToolTip("choose a .npy file")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.edit, 1)
        lay.addWidget(btn)
        btn.clicked.connect(self._browse)
        self.edit.editingFinished.connect(lambda: self.picked.emit(self.value()))

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Map file", "", "NumPy arrays (*.npy);;All files (*)")
        if path:
            self.setValue(path)
            self.picked.emit(self.value())

    def value(self):
        return self.edit.text().strip() or None

    def setValue(self, v) -> None:
        self.edit.setText("" if v is None else str(v))


class PickerContext:
    """What the pickers list: the window's shared class list and its prior choices (a callable)."""

    def __init__(self, classes: ClassList, priors: Callable[[], list[PriorChoice]] = lambda: []):
        self.classes = classes
        self.priors = priors


def make_picker(param, value, context: PickerContext | None) -> QWidget | None:
    """The picker that edits ``param``, or None when a plain control does (no context, or a plain kind)."""
    if context is None:
        return None
    if param.kind == "class":
        return ClassPicker(context.classes, value)
    if param.picker == "prior":
        return PriorPicker(context.priors, value)
    if param.picker == "npy":
        return NpyPicker(value)
    return None
