"""Dock panels: predictions and target, the run/layer list with per-layer display controls."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from explorer.gui.widgets import ValueSlider
from explorer.session import display_fields, status
from explorer.session.document import DisplayLayer, Run, RunStatus, Session


def _headline(run: Run | None) -> str:
    """A method's one-line account of its result (``info["headline"]``, e.g. BOREx: the prior it refined and the
    gain), or ''."""
    exp = run.explanation if run is not None else None
    text = exp.info.get("headline") if exp is not None else None
    return text if isinstance(text, str) else ""


# the predictions' column header by the model's activation (models/outputs.py)
PREDICTION_HEADERS = {"softmax": "prob.", "sigmoid": "prob. (each label)", "none": "score (raw)"}


class PredictionsPanel(QWidget):
    """Top-k predictions with probabilities, and a searchable list of every class; both pick the target."""

    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.session = session
        self.top = QTreeWidget()
        self.top.setHeaderLabels(["class", "prob."])
        self.top.setRootIsDecorated(False)
        self.top.setMaximumHeight(150)
        self.top.header().setSectionResizeMode(0, QHeaderView.Stretch)
        self.top.header().setSectionResizeMode(1, QHeaderView.ResizeToContents)
        self.search = QLineEdit()
        self.search.setPlaceholderText("search all classes…")
        self.search.setClearButtonEnabled(True)
        self.all = QListWidget()
        self.target_label = QLabel("target: top-1")
        self.target_label.setWordWrap(True)
        auto = QPushButton("Use top-1")
        auto.setToolTip("explain the model's top-1 class")
        row = QHBoxLayout()
        row.addWidget(self.target_label, 1)
        row.addWidget(auto)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.top)
        lay.addLayout(row)
        lay.addWidget(self.search)
        lay.addWidget(self.all, 1)
        self.top.itemClicked.connect(lambda it, _c: session.set_target(it.data(0, Qt.UserRole)))
        self.all.itemClicked.connect(lambda it: session.set_target(it.data(Qt.UserRole)))
        auto.clicked.connect(lambda: session.set_target(None))
        self.search.textChanged.connect(self._filter)
        session.predictions_changed.connect(self._on_predictions)
        session.model_changed.connect(self._on_labels)
        session.target_changed.connect(self._on_target)
        self._labels_shown: list[str] = []

    def _on_predictions(self) -> None:
        self.top.clear()
        activation = (self.session.model_info or {}).get("activation")
        # a sigmoid model's labels are independent (they need not sum to 100 %); a model with no activation
        # gives raw scores, which a percentage would misstate
        self.top.setHeaderLabels(["class", PREDICTION_HEADERS.get(activation, "prob.")])
        for idx, name, prob in self.session.predictions:
            value = f"{prob:.3g}" if activation == "none" else f"{prob * 100:.1f} %"
            it = QTreeWidgetItem([f"{name}", value])
            it.setData(0, Qt.UserRole, idx)
            it.setToolTip(0, f"class {idx}: {name}")
            it.setTextAlignment(1, Qt.AlignRight | Qt.AlignVCenter)
            self.top.addTopLevelItem(it)
        self._on_target()

    def _on_labels(self) -> None:
        labels = self.session.labels
        if labels == self._labels_shown:
            return
        self._labels_shown = list(labels)
        self.all.clear()
        for i, name in enumerate(labels):
            it = QListWidgetItem(f"{i}: {name}")
            it.setData(Qt.UserRole, i)
            self.all.addItem(it)
        self._filter(self.search.text())

    def _filter(self, text: str) -> None:
        t = text.strip().lower()
        for i in range(self.all.count()):
            it = self.all.item(i)
            it.setHidden(bool(t) and t not in it.text().lower())

    def _on_target(self) -> None:
        s = self.session
        t = s.effective_target()
        name = s.class_name(t) if t is not None else "(not known yet)"
        self.target_label.setText(f"target: {name}" + (" (top-1)" if s.target is None else f" (class {t})"))
        for i in range(self.top.topLevelItemCount()):
            it = self.top.topLevelItem(i)
            f = it.font(0)
            f.setBold(it.data(0, Qt.UserRole) == t)
            it.setFont(0, f)
            it.setFont(1, f)


def _display_control(f: display_fields.DisplayField) -> QWidget:
    """The layer panel's editor of display field ``f``, built from its declaration."""
    if f.kind == "bool":
        w = QCheckBox(f.label)
    elif f.kind == "choice":
        w = QComboBox()
        w.addItems(list(f.choices))
    else:
        low, high, step, decimals = f.slider
        w = ValueSlider(low, high, f.default, step, decimals=decimals)
    if f.tip:
        w.setToolTip(f.tip)
    return w


def _changed(w: QWidget):
    """The signal a display control emits with its new value."""
    if isinstance(w, QCheckBox):
        return w.toggled
    return w.currentTextChanged if isinstance(w, QComboBox) else w.valueChanged


def _show(w: QWidget, value) -> None:
    if isinstance(w, QCheckBox):
        w.setChecked(value)
    elif isinstance(w, QComboBox):
        w.setCurrentText(value)
    else:
        w.setValue(value)


class LayerPanel(QWidget):
    """Runs and their layers (which run made each layer), visibility, and the active layer's display controls."""

    cancel_requested = Signal(int)
    remove_requested = Signal(int)
    run_selected = Signal(int)

    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.session = session
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["layer", "status"])
        self.tree.header().setSectionResizeMode(0, QHeaderView.Stretch)
        self.tree.header().setSectionResizeMode(1, QHeaderView.ResizeToContents)
        # the status column only as wide as its text: a stretched last section took half the list, and each
        # layer's meaning (wrapped to the first column) ran to five lines
        self.tree.header().setStretchLastSection(False)
        self.tree.setSelectionMode(QAbstractItemView.SingleSelection)
        # long run names ("Undesirable pixels (target-hindering) #4 · Egyptian cat") keep both ends in view;
        # the full text is in the row's tooltip
        self.tree.setTextElideMode(Qt.ElideMiddle)
        self.tree.setMinimumHeight(120)
        self.elapsed = lambda: {}  # run id -> seconds computing (the controller's), for the time left
        self.run_items: dict[int, QTreeWidgetItem] = {}
        self.layer_items: dict[int, QTreeWidgetItem] = {}
        self.decorate = lambda tree, item, layer: None  # (tree, item, layer): extra text/widgets per layer row

        # one control per display field, in the panel's rows, as display_fields declares them; each is also an
        # attribute named after its field (self.opacity, self.colormap, ...)
        self.display_controls: dict[str, QWidget] = {f.name: _display_control(f) for f in display_fields.PANEL_FIELDS}
        for name, w in self.display_controls.items():
            setattr(self, name, w)
        self.controls = QWidget()
        form = QFormLayout(self.controls)
        form.setContentsMargins(0, 0, 0, 0)
        for f in display_fields.PANEL_FIELDS:
            form.addRow("" if f.kind == "bool" else f.label, self.display_controls[f.name])
        self.cancel_btn = QPushButton("Cancel run")
        self.remove_btn = QPushButton("Remove run")
        row = QHBoxLayout()
        row.addWidget(self.cancel_btn)
        row.addWidget(self.remove_btn)
        # the list and the display controls share the dock through a splitter: drag it to see more runs
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.tree, 1)
        tl.addLayout(row)
        self.split = QSplitter(Qt.Vertical)
        self.split.setChildrenCollapsible(False)
        self.split.addWidget(top)
        self.split.addWidget(self.controls)
        self.split.setStretchFactor(0, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.split)
        self.controls.setEnabled(False)
        self._update_buttons()

        for name, w in self.display_controls.items():
            _changed(w).connect(lambda v, name=name: self._set(**{name: v}))
        self.tree.itemChanged.connect(self._on_item_changed)
        self.tree.currentItemChanged.connect(self._on_current)
        self.cancel_btn.clicked.connect(self._cancel)
        self.remove_btn.clicked.connect(self._remove)
        session.run_added.connect(self._on_run)
        session.run_changed.connect(self._on_run)
        session.run_removed.connect(self._on_run_removed)
        session.layers_changed.connect(self._rebuild_layers)
        session.layer_changed.connect(self._on_layer)
        session.active_layer_changed.connect(self._on_active)

    # ------------------------------------------------------------------ runs
    def _run_text(self, run: Run) -> tuple[str, str]:
        exp = run.explanation
        target = ""
        if exp is not None and exp.target is not None:
            target = f" · {exp.target_name}"
        elif run.target is not None:
            target = f" · {self.session.class_name(run.target)}"
        state = status.run_status(self.session, run, self.elapsed().get(run.id))
        gain = (exp.info.get("gain") or {}).get("gain") if exp is not None and run.status == RunStatus.DONE else None
        if isinstance(gain, (int, float)):  # a refinement scored against its prior (BOREx)
            state += f" · gain {gain:+.3f}"
        return f"{run.label}{target}", state

    def _on_run(self, run: Run) -> None:
        it = self.run_items.get(run.id)
        if it is None:
            it = QTreeWidgetItem(self.tree)
            it.setData(0, Qt.UserRole, ("run", run.id))
            it.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable)
            f = it.font(0)
            f.setBold(True)
            it.setFont(0, f)
            self.run_items[run.id] = it
            it.setExpanded(True)
        text, state = self._run_text(run)
        self.tree.blockSignals(True)
        it.setText(0, text)
        it.setText(1, state)
        stale = self.session.is_stale(run)
        for col in (0, 1):  # a run of another model is greyed: its maps do not describe the loaded one
            it.setForeground(col, self.palette().placeholderText() if stale else self.palette().text())
        tip = f"{text}\n{run.method} {run.params}\nseed {run.seed}"
        if stale:
            tip += f"\ncomputed on another model ({run.model.label}): not the loaded one"
        headline = _headline(run)
        it.setToolTip(0, tip + (f"\nerror: {run.error}" if run.error else "") + (f"\n{headline}" if headline else ""))
        it.setToolTip(1, run.error or headline or run.message)
        self.tree.blockSignals(False)
        self._update_buttons()

    def _on_run_removed(self, run: Run) -> None:
        it = self.run_items.pop(run.id, None)
        if it is not None:
            for i in range(it.childCount()):
                self.layer_items.pop(it.child(i).data(0, Qt.UserRole)[1], None)
            self.tree.takeTopLevelItem(self.tree.indexOfTopLevelItem(it))
        self._update_buttons()

    def _update_buttons(self) -> None:
        """Cancel only while a run computes, Remove only when there is a run."""
        runs = self.session.runs.values()
        self.cancel_btn.setEnabled(any(r.active for r in runs))
        self.remove_btn.setEnabled(bool(self.session.runs))

    # ------------------------------------------------------------------ layers
    def _rebuild_layers(self) -> None:
        self.tree.blockSignals(True)
        for lid, it in list(self.layer_items.items()):
            parent = it.parent()
            if parent is not None:
                parent.removeChild(it)
        self.layer_items.clear()
        for layer in self.session.layers:  # in the method's output order, headline map first
            parent = self.run_items.get(layer.run_id)
            if parent is None:
                run = self.session.runs.get(layer.run_id)
                if run is None:
                    continue
                self.tree.blockSignals(False)
                self._on_run(run)
                self.tree.blockSignals(True)
                parent = self.run_items[layer.run_id]
            it = QTreeWidgetItem(parent)
            it.setData(0, Qt.UserRole, ("layer", layer.id))
            it.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable | Qt.ItemIsUserCheckable)
            it.setText(0, layer.name + (" ±" if layer.signed else ""))
            it.setCheckState(0, Qt.Checked if layer.visible else Qt.Unchecked)
            headline = _headline(self.session.runs.get(layer.run_id))
            it.setToolTip(0, f"{layer.label}\n{'signed (diverging colours)' if layer.signed else 'unsigned'}"
                          + (f"\n{headline}" if headline else ""))
            self.decorate(self.tree, it, layer)  # the window adds the layer's meaning and its "?" (gui/layer_help.py)
            self.layer_items[layer.id] = it
            parent.setExpanded(True)
        self.tree.blockSignals(False)
        self._on_active(self.session.active_layer())

    def _on_item_changed(self, it: QTreeWidgetItem, col: int) -> None:
        kind, ident = it.data(0, Qt.UserRole)
        if kind == "layer" and col == 0:
            layer = self.session.layer(ident)
            if layer is not None:
                self.session.set_layer(layer, visible=it.checkState(0) == Qt.Checked)

    def _on_current(self, it, prev) -> None:
        if it is None:
            return
        kind, ident = it.data(0, Qt.UserRole)
        try:
            same = prev is not None and prev.data(0, Qt.UserRole) == (kind, ident)
        except RuntimeError:  # the previous row was deleted with the rebuild
            same = False
        if same:
            # the same row again, as Qt reports after the list is rebuilt under a focused window (a new run's
            # layers arriving): not a choice, and taking it as one bound the method panel back to the old run
            return
        if kind == "layer":
            self.session.set_active_layer(ident)
            layer = self.session.layer(ident)
            if layer is not None:
                self.run_selected.emit(layer.run_id)
        else:
            self.run_selected.emit(ident)

    def _on_layer(self, layer: DisplayLayer, field: str) -> None:
        if field == "visible":
            it = self.layer_items.get(layer.id)
            if it is not None:
                self.tree.blockSignals(True)
                it.setCheckState(0, Qt.Checked if layer.visible else Qt.Unchecked)
                self.tree.blockSignals(False)
        if layer.id == self.session.active_layer_id and field != "data":
            self._show_controls(layer)

    def _on_active(self, layer: DisplayLayer | None) -> None:
        self.controls.setEnabled(layer is not None)
        if layer is None:
            return
        it = self.layer_items.get(layer.id)
        if it is not None and self.tree.currentItem() is not it:
            self.tree.blockSignals(True)
            self.tree.setCurrentItem(it)
            self.tree.blockSignals(False)
        self._show_controls(layer)

    def _show_controls(self, layer: DisplayLayer) -> None:
        for name, w in self.display_controls.items():
            w.blockSignals(True)
            _show(w, getattr(layer, name))
            w.blockSignals(False)
        self.floor.setEnabled(not layer.signed)  # signed maps are centred on 0
        self.fade.setEnabled(not layer.signed)

    def _set(self, **changes) -> None:
        layer = self.session.active_layer()
        if layer is not None:
            self.session.set_layer(layer, **changes)

    def _selected_run(self) -> int | None:
        it = self.tree.currentItem()
        if it is None:
            layer = self.session.active_layer()
            return layer.run_id if layer else None
        kind, ident = it.data(0, Qt.UserRole)
        if kind == "run":
            return ident
        layer = self.session.layer(ident)
        return layer.run_id if layer else None

    def _cancel(self) -> None:
        rid = self._selected_run()
        if rid is not None:
            self.cancel_requested.emit(rid)

    def _remove(self) -> None:
        rid = self._selected_run()
        if rid is not None:
            self.remove_requested.emit(rid)
