"""The method panel: a method picker and controls generated from the method's ``Params``.

Nothing here is written per method: every entry of the catalog the worker sends (name, title, summary,
needs, outputs, params, quick values, availability for the loaded model) becomes a combo item, and each
``Param`` a ``ParamControl``. Parameters marked ``live`` re-run the bound run (debounced) when the
"live" switch is on.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton,
                               QScrollArea, QSpinBox, QVBoxLayout, QWidget)

from explorer.gui.widgets import Debouncer, ParamControl


class MethodPanel(QWidget):
    run_requested = Signal(str, dict, int)  # method, values, seed
    live_changed = Signal(str, dict, int, object)  # method, values, seed, names changed since the last
    cancel_requested = Signal()

    def __init__(self, parent=None, debounce_ms: int = 300):
        super().__init__(parent)
        self.catalog: dict[str, dict] = {}
        self.layer_names: list[str] = []
        self.labels: list[str] = []
        self.controls: dict[str, ParamControl] = {}
        self.bound_run: int | None = None
        self._pending: set[str] = set()
        self.combo = QComboBox()
        self.combo.setMinimumContentsLength(18)
        self.summary = QLabel("loading methods…")
        self.summary.setWordWrap(True)
        self.summary.setStyleSheet("color: palette(mid);")
        self.form_host = QWidget()
        self.form = QFormLayout(self.form_host)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form_host)
        scroll.setFrameShape(QScrollArea.NoFrame)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("random seed of the run (recorded, so a run can be redone)")
        self.live = QCheckBox("live")
        self.live.setChecked(True)
        self.live.setToolTip("re-run the selected run when a live parameter or the class changes")
        self.quick_btn = QPushButton("Quick")
        self.quick_btn.setToolTip("small settings for a fast preview")
        self.defaults_btn = QPushButton("Defaults")
        self.run_btn = QPushButton("Run")
        self.run_btn.setDefault(True)
        self.run_btn.setStyleSheet("font-weight: bold;")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        self.progress.setValue(0)
        self.bound_label = QLabel("")
        self.bound_label.setStyleSheet("color: palette(mid);")
        top = QHBoxLayout()
        top.addWidget(QLabel("seed"))
        top.addWidget(self.seed)
        top.addStretch(1)
        top.addWidget(self.live)
        btns = QHBoxLayout()
        btns.addWidget(self.quick_btn)
        btns.addWidget(self.defaults_btn)
        btns.addStretch(1)
        btns.addWidget(self.cancel_btn)
        btns.addWidget(self.run_btn)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.combo)
        lay.addWidget(self.summary)
        lay.addWidget(scroll, 1)
        lay.addLayout(top)
        lay.addWidget(self.bound_label)
        lay.addLayout(btns)
        lay.addWidget(self.progress)
        self.debounce = Debouncer(debounce_ms, self._fire_live, self)
        self.combo.currentIndexChanged.connect(self._on_method)
        self.run_btn.clicked.connect(self._run)
        self.cancel_btn.clicked.connect(self.cancel_requested)
        self.quick_btn.clicked.connect(lambda: self._apply(self.entry().get("quick", {}) if self.entry() else {}))
        self.defaults_btn.clicked.connect(self._defaults)
        self.run_btn.setEnabled(False)

    # ------------------------------------------------------------------ catalog
    def set_catalog(self, entries: list[dict]) -> None:
        current = self.method()
        self.catalog = {e["name"]: e for e in entries}
        self.combo.blockSignals(True)
        self.combo.clear()
        model: QStandardItemModel = self.combo.model()
        families: dict[str, list[dict]] = {}
        for e in entries:
            families.setdefault(e.get("family") or "other", []).append(e)
        for fam, items in families.items():
            for e in items:
                self.combo.addItem(f"{e['title']}  ({fam})", e["name"])
                item = model.item(self.combo.count() - 1)
                tip = f"{e['summary']}\n{e['paper']}\nneeds: {e['needs']}"
                if not e.get("available", True):
                    item.setEnabled(False)
                    tip += f"\nunavailable: {e.get('reason', '')}"
                item.setToolTip(tip)
        self.combo.blockSignals(False)
        idx = self.combo.findData(current) if current else -1
        if idx < 0:
            idx = next((i for i in range(self.combo.count()) if model.item(i).isEnabled()), 0)
        self.combo.setCurrentIndex(idx)
        self._on_method(idx, keep_values=current == self.method())
        self.run_btn.setEnabled(bool(entries))

    def set_layer_names(self, names: list[str]) -> None:
        self.layer_names = list(names)
        self._on_method(self.combo.currentIndex(), keep_values=True)

    def set_labels(self, labels: list[str]) -> None:
        self.labels = list(labels)

    def method(self) -> str | None:
        return self.combo.currentData()

    def entry(self) -> dict | None:
        return self.catalog.get(self.method() or "")

    def select(self, name: str) -> bool:
        idx = self.combo.findData(name)
        if idx < 0:
            return False
        self.combo.setCurrentIndex(idx)
        return True

    def _on_method(self, _idx: int, keep_values: bool = False) -> None:
        old = self.values() if keep_values else {}
        for c in self.controls.values():
            c.setParent(None)
            c.deleteLater()
        while self.form.rowCount():
            self.form.removeRow(0)
        self.controls.clear()
        e = self.entry()
        if e is None:
            return
        if not keep_values:
            self.bound_run = None
            self.bound_label.setText("")
        outs = ", ".join(o.name + ("±" if o.signed else "") for o in e["outputs"])
        extra = "" if e.get("available", True) else f"<br><b>unavailable:</b> {e.get('reason', '')}"
        self.summary.setText(f"{e['summary']}<br><i>needs {e['needs']} · maps: {outs}</i>{extra}")
        self.summary.setToolTip(e.get("paper", ""))
        for p in e["params"]:
            choices = self.layer_names if p.kind == "layer" else self.labels if p.kind == "class" else None
            c = ParamControl(p, old.get(p.name, p.default), choices)
            c.changed.connect(self._on_changed)
            label = QLabel(p.name + (" ⟳" if p.live else ""))
            label.setToolTip(c.toolTip() + ("\n⟳ live: re-runs the selected run" if p.live else ""))
            self.form.addRow(label, c)
            self.controls[p.name] = c

    # ------------------------------------------------------------------ values
    def values(self) -> dict[str, Any]:
        return {name: c.value() for name, c in self.controls.items()}

    def _apply(self, values: dict[str, Any], notify: bool = True) -> None:
        for k, v in values.items():
            c = self.controls.get(k)
            if c is not None:
                c.setValue(v)
                if notify:
                    self._on_changed(k, c.value())

    def _defaults(self) -> None:
        e = self.entry()
        if e:
            self._apply({p.name: p.default for p in e["params"]})

    def set_values(self, values: dict[str, Any]) -> None:
        self._apply(values, notify=False)

    def bind(self, run_id: int | None, method: str | None = None, values: dict | None = None,
             seed: int | None = None, label: str = "") -> None:
        """Show a run's method and values; live changes then re-run that run."""
        if method and method != self.method():
            self.combo.blockSignals(True)
            self.select(method)
            self.combo.blockSignals(False)
            self._on_method(self.combo.currentIndex(), keep_values=True)
        if values:
            self.set_values(values)
        if seed is not None:
            self.seed.setValue(int(seed))
        self.bound_run = run_id
        self.bound_label.setText(f"live edits re-run {label}" if run_id is not None and label else "")

    def _on_changed(self, name: str, _value) -> None:
        c = self.controls.get(name)
        if c is None or not c.param.live or self.bound_run is None or not self.live.isChecked():
            return
        self._pending.add(name)
        self.debounce.poke()

    def _fire_live(self) -> None:
        changed, self._pending = set(self._pending), set()
        if self.method() and changed:
            self.live_changed.emit(self.method(), self.values(), self.seed.value(), changed)

    def _run(self) -> None:
        if self.method():
            self.run_requested.emit(self.method(), self.values(), self.seed.value())

    # ------------------------------------------------------------------ progress
    def set_progress(self, frac: float | None, text: str = "") -> None:
        if frac is None:
            self.progress.setValue(0)
            self.progress.setFormat(text or "idle")
            self.cancel_btn.setEnabled(False)
            return
        self.progress.setValue(int(frac * 1000))
        self.progress.setFormat(f"{text}  %p%" if text else "%p%")
        self.cancel_btn.setEnabled(True)
