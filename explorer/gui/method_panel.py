"""The method panel: a method picker and controls generated from the method's ``Params``.

Nothing here is written per method: every entry of the catalog the worker sends (name, title, summary,
needs, outputs, params, quick values, availability for the loaded model) becomes a combo item, and each
``Param`` a ``ParamControl``. Parameters marked ``live`` re-run the bound run (debounced) when the
"live" switch is on. Parameters marked ``advanced`` (batch sizes and other speed knobs) sit in a collapsed
"advanced" group below the scientific ones; class, prior and file parameters get pickers (gui/pickers.py).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from explorer.core.catalog import CatalogEntry
from explorer.gui.pickers import ClassList, PickerContext
from explorer.gui.widgets import Debouncer, ParamControl


class MethodPanel(QWidget):
    run_requested = Signal(str, dict, int)  # method, values, seed
    live_changed = Signal(str, dict, int, object)  # method, values, seed, names changed since the last
    cancel_requested = Signal()
    invalid = Signal(str)  # a picker refused a typed value (an unknown class name...)

    def __init__(self, parent=None, debounce_ms: int = 300, preferred: str | None = None):
        super().__init__(parent)
        self.catalog: dict[str, CatalogEntry] = {}
        # the method shown when nothing is yet (a start without a first run): the catalog's first entry is
        # whatever family sorts first, a refinement that waits for another run, say
        self.preferred = preferred
        self.layer_names: list[str] = []
        self.default_layer: str | None = None  # the layer "auto" picks on the loaded model
        self.labels: list[str] = []
        self.controls: dict[str, ParamControl] = {}
        self.bound_run: int | None = None
        self._pending: set[str] = set()
        self.combo = QComboBox()
        self.combo.setMinimumContentsLength(18)
        self.summary = QLabel("loading methods…")
        self.summary.setWordWrap(True)
        self.summary.setStyleSheet("color: palette(mid);")
        # the window's one class list (every class picker shares it) and the prior choices (set by the window)
        self.classes = ClassList(self)
        self.prior_source = lambda: []
        # the prior a new refinement starts on (an existing map of this photo and class), None: the default
        self.prior_default = lambda: None
        self.pickers = PickerContext(self.classes, lambda: self.prior_source())
        self.form_host = QWidget()
        host_lay = QVBoxLayout(self.form_host)
        host_lay.setContentsMargins(0, 0, 0, 0)
        self.form = QFormLayout()
        self.form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        self.adv_btn = QToolButton()
        self.adv_btn.setCheckable(True)
        self.adv_btn.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.adv_btn.setArrowType(Qt.RightArrow)
        self.adv_btn.setAutoRaise(True)
        self.adv_btn.setToolTip("speed knobs (batch sizes, refresh rate): they change how fast, not the map")
        self.adv_host = QWidget()
        self.adv_form = QFormLayout(self.adv_host)
        self.adv_form.setContentsMargins(12, 0, 0, 0)
        self.adv_form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        self.adv_host.setVisible(False)
        self.adv_btn.toggled.connect(self._toggle_advanced)
        host_lay.addLayout(self.form)
        host_lay.addWidget(self.adv_btn)
        host_lay.addWidget(self.adv_host)
        host_lay.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form_host)
        scroll.setFrameShape(QScrollArea.NoFrame)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("random seed of the run (recorded, so a run can be redone)")
        self.live = QCheckBox("live")
        self.live.setChecked(True)
        self.live.setToolTip("re-run the selected run when a live parameter changes; a new class gets a run of its own"
                             " beside it")
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
        self.run_btn.clicked.connect(self.request_run)
        self.cancel_btn.clicked.connect(self.cancel_requested)
        self.quick_btn.clicked.connect(lambda: self._apply(dict(self.entry().quick) if self.entry() else {}))
        self.defaults_btn.clicked.connect(self._defaults)
        self.run_btn.setEnabled(False)

    # ------------------------------------------------------------------ catalog
    def set_catalog(self, entries: list[CatalogEntry]) -> None:
        current = self.method()
        self.catalog = {e.name: e for e in entries}
        self.combo.blockSignals(True)
        self.combo.clear()
        model: QStandardItemModel = self.combo.model()
        families: dict[str, list[CatalogEntry]] = {}
        for e in entries:
            families.setdefault(str(e.family) or "other", []).append(e)
        for fam, items in families.items():
            for e in items:
                self.combo.addItem(f"{e.title}  ({fam})", e.name)
                item = model.item(self.combo.count() - 1)
                tip = f"{e.summary}\n{e.paper}\nneeds: {e.needs_text}"
                if not e.available:
                    item.setEnabled(False)
                    tip += f"\nunavailable: {e.reason}"
                item.setToolTip(tip)
        self.combo.blockSignals(False)
        idx = self.combo.findData(current) if current else -1
        if idx < 0 or (self.bound_run is None and not model.item(idx).isEnabled()):
            # nothing is shown, or a method this model cannot run that no run holds: the preferred one when
            # this model can run it, else the first one it can
            pref = self.combo.findData(self.preferred) if self.preferred else -1
            idx = pref if pref >= 0 and model.item(pref).isEnabled() else next(
                (i for i in range(self.combo.count()) if model.item(i).isEnabled()), 0)
        self.combo.setCurrentIndex(idx)
        self._on_method(idx, keep_values=current == self.method())

    def set_layer_names(self, names: list[str], default: str | None = None) -> None:
        """The model's candidate layers and the one "auto" stands for (shown in the layer box)."""
        self.layer_names = list(names)
        self.default_layer = default
        self._on_method(self.combo.currentIndex(), keep_values=True)

    def set_labels(self, labels: list[str]) -> None:
        self.labels = list(labels)
        self.classes.set_labels(self.labels)

    def _toggle_advanced(self, on: bool) -> None:
        self.adv_host.setVisible(on)
        self.adv_btn.setArrowType(Qt.DownArrow if on else Qt.RightArrow)

    def method(self) -> str | None:
        return self.combo.currentData()

    def entry(self) -> CatalogEntry | None:
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
        for form in (self.form, self.adv_form):
            while form.rowCount():
                form.removeRow(0)
        self.controls.clear()
        e = self.entry()
        # a method the loaded model cannot run may still be shown (a reopened session's run), never run
        self.run_btn.setEnabled(self.runnable())
        if e is None:
            return
        if not keep_values:
            self.bound_run = None
            self.bound_label.setText("")
        outs = ", ".join(o.name + ("±" if o.signed else "") for o in e.outputs)
        extra = "" if e.available else f"<br><b>unavailable:</b> {e.reason}"
        self.summary.setText(f"{e.summary}<br><i>needs {e.needs_text} · maps: {outs}</i>{extra}")
        self.summary.setToolTip(e.paper)
        for p in e.params:
            choices = self.layer_names if p.kind == "layer" else self.pickers
            value = old.get(p.name, p.default)
            if p.picker == "prior" and p.name not in old:
                value = self.prior_default() or value  # a RISE map of this class exists: refine it
            c = ParamControl(p, value, choices)
            if p.kind == "layer":
                c.set_auto_hint(getattr(self, "default_layer", None))
            c.changed.connect(self._on_changed)
            c.invalid.connect(self.invalid)
            if p.picker == "prior":  # the prior list's ".npy file" entry fills the file parameter
                c.editor.file_chosen.connect(self._prior_file_chosen)
            label = QLabel(p.name + (" ⟳" if p.live else ""))
            label.setToolTip(c.toolTip() + ("\n⟳ live: re-runs the selected run" if p.live else ""))
            (self.adv_form if p.advanced else self.form).addRow(label, c)
            self.controls[p.name] = c
        n_adv = sum(1 for p in e.params if p.advanced)
        self.adv_btn.setText(f"advanced ({n_adv})")
        self.adv_btn.setVisible(n_adv > 0)

    def refresh_pickers(self) -> None:
        """Re-read the prior lists (a run finished or went away: what "rise" stands for may have changed)."""
        for c in self.controls.values():
            if c.param.picker == "prior":
                c.editor.refresh()

    def _prior_file_chosen(self, path: str) -> None:
        target = next((c for c in self.controls.values() if c.param.picker == "npy"), None)
        if target is None:
            self.invalid.emit("this method takes no prior file")
            return
        target.setValue(path)
        self._on_changed(target.param.name, path)

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
            self._apply({p.name: p.default for p in e.params})

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

    def runnable(self) -> bool:
        """True when the method shown can run on the loaded model (the catalog says so)."""
        e = self.entry()
        return e is not None and e.available

    def request_run(self) -> None:
        """Ask for a run of the selected method with the values shown (the Run button, Ctrl+R)."""
        if self.runnable():
            self.run_requested.emit(self.method(), self.values(), self.seed.value())
        elif self.entry() is not None:
            e = self.entry()
            self.invalid.emit(f"{e.title} cannot run on this model: {e.reason}")

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
