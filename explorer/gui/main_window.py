"""The main window: assembles the docks, wires the session to the worker, and hosts the user actions.

It holds no tensors and computes nothing: the session (Qt-free) holds the document, the canvas and panels
display it, and the compute worker thread owns the model. Errors from any of them appear in the message
bar at the top of the window; the app stays usable and computed results stay where they are.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDockWidget, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QMainWindow, QPushButton, QTabWidget, QVBoxLayout, QWidget)

from explorer import resources
from explorer.core.errors import ExplorerError
from explorer.core.types import EMBEDDED_MODELS
from explorer.gui.canvas import Canvas
from explorer.gui.compare import CompareWidget
from explorer.gui.method_panel import MethodPanel
from explorer.gui.panels import LayerPanel, PredictionsPanel
from explorer.gui.widgets import MessageBar
from explorer.io.images import SUFFIXES
from explorer.session import priors as prior_maps
from explorer.session.document import ModelChoice, Run, Session
from explorer.workers.compute import ComputeWorker, RunJob

log = logging.getLogger(__name__)

IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in SUFFIXES) + ");;All files (*)"
SESSION_FILTER = "Explorer session (*.json);;All files (*)"
MODEL_SPECS = [*EMBEDDED_MODELS, "torchvision:resnet50", "torchvision:vgg16", "timm:resnet18",
               "timm:vit_tiny_patch16_224"]


class ModelPanel(QWidget):
    """The image in use and the model choice (spec, weights, labels, device)."""

    load_requested = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.image_label = QLabel("no image")
        self.image_label.setWordWrap(True)
        self.open_btn = QPushButton("Open image…")
        self.sample = QComboBox()
        self.sample.addItem("sample…")
        self.sample.addItems(list(resources.SAMPLES))
        self.spec = QComboBox()
        self.spec.setEditable(True)
        self.spec.addItems(MODEL_SPECS)
        self.spec.setToolTip("efficientnet_lite0 (embedded), torchvision:NAME, timm:NAME, or a .pt/.onnx file")
        self.weights = QLineEdit()
        self.weights.setPlaceholderText("weights file (optional)")
        self.labels = QLineEdit()
        self.labels.setPlaceholderText("labels file (optional)")
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        self.trust = QCheckBox("trust pickled objects in the file")
        self.trust.setToolTip("allow loading a whole pickled model; pickles can run code: only for files you trust. "
                              "Asks you to confirm the file, applies to this one load, and is never saved")
        self.load_btn = QPushButton("Load model")
        self.browse_btn = QPushButton("File…")
        self.status = QLabel("loading…")
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: palette(mid);")
        row = QHBoxLayout()
        row.addWidget(self.open_btn)
        row.addWidget(self.sample)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        spec_row = QHBoxLayout()
        spec_row.addWidget(self.spec, 1)
        spec_row.addWidget(self.browse_btn)
        form.addRow("model", spec_row)
        form.addRow("weights", self._with_browse(self.weights, "Weights file",
                                                 "Weights (*.pt *.pth *.bin *.safetensors);;All files (*)"))
        form.addRow("labels", self._with_browse(self.labels, "Labels file", "Labels (*.txt *.json);;All files (*)"))
        form.addRow("device", self.device)
        form.addRow("", self.trust)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.image_label)
        lay.addLayout(row)
        lay.addLayout(form)
        lay.addWidget(self.load_btn)
        lay.addWidget(self.status)
        lay.addStretch(1)
        self.load_btn.clicked.connect(lambda: self.load_requested.emit(self.choice()))
        self.browse_btn.clicked.connect(self._browse)

    def _with_browse(self, edit: QLineEdit, title: str, filt: str) -> QWidget:
        host = QWidget()
        row = QHBoxLayout(host)
        row.setContentsMargins(0, 0, 0, 0)
        btn = QPushButton("…")
        btn.setFixedWidth(30)
        btn.setToolTip(f"choose a {title.lower()}")

        def pick():
            path, _ = QFileDialog.getOpenFileName(self, title, "", filt)
            if path:
                edit.setText(path)
        btn.clicked.connect(pick)
        row.addWidget(edit, 1)
        row.addWidget(btn)
        return host

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model file", "", "Models (*.pt *.pth *.ts *.onnx);;All files (*)")
        if path:
            self.spec.setCurrentText(path)

    def choice(self) -> ModelChoice:
        dev = self.device.currentText()
        return ModelChoice(spec=self.spec.currentText().strip() or None, weights=self.weights.text().strip() or None,
                           labels=self.labels.text().strip() or None, device=None if dev == "auto" else dev)

    def show_choice(self, c: ModelChoice) -> None:
        self.spec.setCurrentText(c.label)
        self.weights.setText(c.weights or "")
        self.labels.setText(c.labels or "")
        self.device.setCurrentText(c.device or "auto")
        self.trust.setChecked(False)  # trust is one deliberate act per load, never restored from a choice


class MainWindow(QMainWindow):
    run_settled = Signal(int)  # a run reached done / cancelled / error
    model_ready = Signal()
    model_error = Signal(str)
    catalog_changed = Signal()
    predictions_shown = Signal()

    def __init__(self, model_choice: ModelChoice | None = None, settings: QSettings | None = None,
                 throttle_s: float = 0.08):
        super().__init__()
        self.setWindowTitle("explorer")
        self.session = Session()
        self.session.model_choice = model_choice or ModelChoice()
        self.settings = settings or QSettings("explorer", "explorer")
        self.worker = ComputeWorker(None, throttle_s=throttle_s)
        self.image_token = 0
        self.stale_dropped = 0
        self.catalog: list[dict] = []
        self._pending_bind: tuple | None = None
        self._model_loaded = False

        # central: message bar + tabs (canvas, compare)
        self.messages = MessageBar()
        self.canvas = Canvas(self.session)
        self.compare = CompareWidget(self.session)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.canvas, "Canvas")
        self.tabs.addTab(self.compare, "Compare")
        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(2, 2, 2, 2)
        cl.addWidget(self.messages)
        cl.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        # docks
        self.model_panel = ModelPanel()
        self.model_panel.show_choice(self.session.model_choice)
        self.predictions = PredictionsPanel(self.session)
        self.method_panel = MethodPanel()
        self.layer_panel = LayerPanel(self.session)
        self.docks = {}
        self._dock("Image and model", self.model_panel, Qt.LeftDockWidgetArea)
        self._dock("Predictions", self.predictions, Qt.LeftDockWidgetArea)
        self._dock("Method", self.method_panel, Qt.RightDockWidgetArea)
        self._dock("Layers", self.layer_panel, Qt.RightDockWidgetArea)
        self._evaluation_dock()
        self.resizeDocks([self.docks["Image and model"], self.docks["Method"]], [270, 330], Qt.Horizontal)
        self.resizeDocks([self.docks["Image and model"], self.docks["Predictions"]], [250, 450], Qt.Vertical)
        self.resizeDocks([self.docks["Method"], self.docks["Layers"]], [380, 420], Qt.Vertical)

        # status bar
        self.model_status = QLabel("model: loading…")
        self.target_status = QLabel("target: –")
        self.hover_status = QLabel("")
        sb = self.statusBar()
        sb.addWidget(self.hover_status, 1)
        sb.addPermanentWidget(self.target_status)
        sb.addPermanentWidget(self.model_status)

        self._menus()
        self.setAcceptDrops(True)
        self.resize(1440, 900)
        # teaching aids, each in its own module: layer meanings, presentation mode, one-click comparison
        from explorer.gui import layer_help, presentation, teaching

        layer_help.install(self)
        self.presentation = presentation.install(self)
        teaching.install(self)

        # wiring: session -> views
        self.session.run_changed.connect(self._on_run_changed)
        self.session.target_changed.connect(self._on_target_changed)
        self.session.image_changed.connect(self._on_image_changed)
        self.session.active_layer_changed.connect(lambda _l: None)
        self.canvas.hovered.connect(self.hover_status.setText)
        # panels -> actions
        self.method_panel.run_requested.connect(self.start_run)
        self.method_panel.live_changed.connect(self._on_live)
        self.method_panel.cancel_requested.connect(self.cancel_active)
        self.method_panel.invalid.connect(self.show_status)
        self.method_panel.prior_source = self._prior_choices
        self.layer_panel.cancel_requested.connect(self.cancel_run)
        self.layer_panel.remove_requested.connect(self.remove_run)
        self.layer_panel.run_selected.connect(self._bind_run)
        self.model_panel.load_requested.connect(self._load_from_panel)
        self.compare.export_btn.clicked.connect(self.export_figure_dialog)
        self.model_panel.open_btn.clicked.connect(self.open_image_dialog)
        self.model_panel.sample.activated.connect(self._open_sample_combo)
        # worker -> session (queued: delivered on this thread)
        w = self.worker
        # bound methods of this QObject, so Qt queues the calls onto the GUI thread
        w.catalog_ready.connect(self._on_catalog)
        w.model_loading.connect(self._on_model_loading)
        w.model_loaded.connect(self._on_model_loaded)
        w.model_failed.connect(self._on_model_failed)
        w.predictions_ready.connect(self._on_predictions)
        w.run_started.connect(self._on_run_started)
        w.run_progress.connect(self._on_run_progress)
        w.run_partial.connect(self._on_run_partial)
        w.run_finished.connect(self._on_run_finished)
        w.run_failed.connect(self._on_run_failed)

    # ------------------------------------------------------------------ construction helpers
    def _dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(title)
        d.setWidget(widget)
        d.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable | QDockWidget.DockWidgetClosable)
        self.addDockWidget(area, d)
        self.docks[title] = d
        return d

    def _evaluation_dock(self) -> None:
        """Dock the evaluation tab (issue 9's explorer/gui/evaluation_panel.py) when it is installed.

        Its panel (five plots: the costliest widget of the window, ~60 % of building it) is made when the tab
        is first shown or a result arrives (``evaluation``), so that it does not delay the first window."""
        self._evaluation_panel = None
        self._evaluation_lay = None
        if not (Path(__file__).with_name("evaluation_panel.py")).exists():
            return
        host = QWidget()
        lay = QVBoxLayout(host)
        lay.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        self.evaluate_btn = QPushButton("Evaluate active layer")
        self.evaluate_btn.setToolTip("deletion and insertion curves of the active layer's map (computed on the worker)")
        self.evaluate_status = QLabel("")
        row.addWidget(self.evaluate_btn)
        row.addWidget(self.evaluate_status, 1)
        lay.addLayout(row)
        self._evaluation_lay = lay
        self.evaluate_btn.clicked.connect(self.evaluate_active_layer)
        self._eval_calls: dict[int, str] = {}
        self.worker.call_done.connect(self._on_call_done)
        self.worker.call_failed.connect(self._on_call_failed)
        d = self._dock("Evaluation", host, Qt.RightDockWidgetArea)
        self.tabifyDockWidget(self.docks["Layers"], d)
        self.docks["Layers"].raise_()
        d.visibilityChanged.connect(lambda shown: self.evaluation if shown else None)

    @property
    def evaluation(self):
        """The evaluation panel, made on first use; None when it is not installed or could not be made."""
        if self._evaluation_panel is None and self._evaluation_lay is not None:
            lay, self._evaluation_lay = self._evaluation_lay, None  # one try
            try:
                from explorer.gui import evaluation_panel

                self._evaluation_panel = evaluation_panel.EvaluationPanel()
            except Exception:  # noqa: BLE001 - a broken optional panel must not stop the app
                log.exception("the evaluation panel could not be created")
                self.show_error("Evaluation — the evaluation panel could not be created (details in the log)")
                return None
            lay.addWidget(self._evaluation_panel, 1)
        return self._evaluation_panel

    def evaluate_active_layer(self, step: int | None = None) -> int | None:
        """Queue deletion/insertion curves of the active layer; they appear in the evaluation panel."""
        from explorer.workers.jobs import causal_curves

        layer = self.session.active_layer()
        m = self.session.layer_data(layer) if layer is not None else None
        if m is None:
            self.show_error("Evaluation — pick a layer with a map first")
            return None
        run = self.session.runs[layer.run_id]
        target = run.explanation.target if run.explanation.target is not None else self.session.effective_target()
        token = self.worker.call(causal_curves(np.asarray(m), target, step))
        self._eval_calls[token] = f"{run.label} · {layer.name}"
        self.evaluate_status.setText(f"evaluating {self._eval_calls[token]}…")
        return token

    @Slot(int, object)
    def _on_call_done(self, token: int, result) -> None:
        label = self._eval_calls.pop(token, None)
        if label is None or self.evaluation is None:
            return
        for mode, (curve, frames) in result.items():
            self.evaluation.set_curve(label, curve, frames)
        self.evaluate_status.setText(f"{label}: done")

    @Slot(int, str)
    def _on_call_failed(self, token: int, msg: str) -> None:
        label = self._eval_calls.pop(token, None)
        if label is not None:
            self.evaluate_status.setText("failed")
            self.show_error(f"Evaluation of {label} — {msg}")

    def _menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._action(f, "&Open image…", self.open_image_dialog, QKeySequence.Open)
        self.recent_menu = f.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        samples = f.addMenu("&Samples")
        for name in resources.SAMPLES:
            self._action(samples, name, lambda _=False, n=name: self.open_image(str(resources.sample(n))))
        f.addSeparator()
        self._action(f, "Open &session…", self.open_session_dialog)
        self._action(f, "&Save session…", self.save_session_dialog, QKeySequence.Save)
        f.addSeparator()
        self._action(f, "Export &view as PNG…", self.export_view_dialog)
        self._action(f, "Export &layers as .npy…", self.export_layers_dialog)
        self._action(f, "Export &figure grid…", self.export_figure_dialog)
        f.addSeparator()
        self._action(f, "&Quit", self.close, QKeySequence.Quit)
        r = mb.addMenu("&Run")
        self._action(r, "&Run method", lambda: self.method_panel._run(), "Ctrl+R")
        self._action(r, "&Cancel all", self.cancel_active, "Esc")
        v = mb.addMenu("&View")
        self._action(v, "&Fit image", self.canvas.fit, "Ctrl+0")
        self._action(v, "&Compare", lambda: self.tabs.setCurrentWidget(self.compare), "Ctrl+K")
        v.addSeparator()
        for d in self.docks.values():
            v.addAction(d.toggleViewAction())

    def _action(self, menu, text, fn, shortcut=None) -> QAction:
        a = QAction(text, self)
        if shortcut:
            a.setShortcut(shortcut)
        a.triggered.connect(fn)
        menu.addAction(a)
        return a

    def start(self, model=None, trust_pickle: bool = False) -> None:
        """Start the worker thread (imports torch there) and load the model (or use ``model``, a LoadedModel).

        ``trust_pickle`` is the command line's ``--trust-pickle``: it covers the files named on that command
        line (the initial choice) only, never a model a session file names later."""
        if not self.worker.isRunning():
            # hand the GIL over sooner when the GUI thread asks for it (the worker's Python code between
            # torch calls otherwise keeps it up to 5 ms at a time, which adds up on a busy CPU)
            sys.setswitchinterval(min(sys.getswitchinterval(), 0.002))
            self.worker.start()
            if model is None:
                self.load_model(self.session.model_choice, trust_pickle)
            else:
                self.worker.set_model(model)

    def shutdown(self) -> None:
        self.worker.stop()
        self.canvas.close_renderer()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)

    # ------------------------------------------------------------------ messages
    def show_error(self, text: str) -> None:
        log.warning("%s", text)
        self.messages.show_message(text, "error")

    def show_info(self, text: str) -> None:
        self.messages.show_message(text, "info")

    def show_status(self, text: str, ms: int = 10_000) -> None:
        """A passing remark in the status bar (a refused pick, a mode change): nothing else changes."""
        log.info("%s", text)
        self.statusBar().showMessage(text, ms)

    def _set_model_status(self, text: str) -> None:
        self.model_panel.status.setText(text)
        self.model_status.setText(f"model: {text}")

    # ------------------------------------------------------------------ image
    def open_image_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", self._last_dir(), IMAGE_FILTER)
        if path:
            self.open_image(path)

    def _open_sample_combo(self, idx: int) -> None:
        if idx > 0:
            self.open_image(str(resources.sample(self.model_panel.sample.itemText(idx))))
        self.model_panel.sample.setCurrentIndex(0)

    def open_image(self, path: str) -> bool:
        """Read and show an image; on failure show why and keep the current one."""
        from explorer.io.images import read_image

        try:
            img = read_image(path)
        except ExplorerError as exc:
            self.show_error(f"Cannot open image — {exc}")
            return False
        self.set_image(img.rgb, img.path)
        self._add_recent(img.path)
        return True

    def set_image(self, rgb: np.ndarray, path: str | None = None) -> None:
        self.worker.cancel(None)
        self.session.set_image(rgb, path)
        self.image_token += 1
        self.worker.set_image(rgb, self.image_token)

    def _on_image_changed(self) -> None:
        s = self.session
        if s.image is None:
            return
        name = Path(s.image_path).name if s.image_path else "(image)"
        h, w = s.image.shape[:2]
        self.model_panel.image_label.setText(f"<b>{name}</b><br>{w} × {h} px")
        self.setWindowTitle(f"explorer — {name}")

    def _last_dir(self) -> str:
        recent = self.recent_files()
        return str(Path(recent[0]).parent) if recent else ""

    def recent_files(self) -> list[str]:
        v = self.settings.value("recent", [])
        if isinstance(v, str):
            v = [v]
        return [str(x) for x in (v or [])]

    def _add_recent(self, path: str) -> None:
        items = [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent", [path] + items[:9])

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_files()
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for p in recent:
            self._action(self.recent_menu, p, lambda _=False, q=p: self.open_image(q))

    # ------------------------------------------------------------------ drag and drop
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        urls = event.mimeData().urls()
        if not urls:
            return
        self.open_path(urls[0].toLocalFile())
        event.acceptProposedAction()

    def open_path(self, path: str) -> bool:
        """Open a dropped/given file: a session file (.json) or an image."""
        if path.lower().endswith(".json"):
            return self.open_session(path)
        return self.open_image(path)

    # ------------------------------------------------------------------ model
    def load_model(self, choice: ModelChoice, trust_pickle: bool = False) -> None:
        """Load ``choice``; ``trust_pickle`` only from a deliberate act here (CLI flag, confirmed checkbox)."""
        self._previous_choice = self.session.model_choice
        self.session.set_model_choice(choice)
        self.model_panel.show_choice(choice)
        self.worker.load_model(choice, trust_pickle)

    def _load_from_panel(self, choice: ModelChoice) -> None:
        trust = self.model_panel.trust.isChecked()
        if trust:
            files = [f for f in (choice.spec, choice.weights) if f and Path(f).is_file()]
            if not files:
                self.show_error("Model — 'trust pickled objects' applies to a model or weights file; none is given")
                return
            if not self.confirm_trust(files):
                self.show_info("Model not loaded: trust was not confirmed")
                return
        self.load_model(choice, trust)

    def confirm_trust(self, files: list[str]) -> bool:
        """Ask the person at the keyboard, naming each file, before anything may be unpickled."""
        from PySide6.QtWidgets import QMessageBox

        names = "\n".join(str(Path(f).resolve()) for f in files)
        answer = QMessageBox.question(
            self, "Trust this file?",
            f"Unpickling can run any code the file's author put in it, with your permissions.\n\n{names}\n\n"
            "Load it with full trust, this once?", QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    @Slot(object)
    def _on_model_loaded(self, d: dict) -> None:
        info = d["info"]
        self._model_loaded = True
        self.session.set_model_info(info, d["labels"])
        self.method_panel.set_labels(d["labels"])
        self.method_panel.set_layer_names(d.get("layer_names", []), d.get("default_layer"))
        text = f"{info['id']} · {info['device']} · {info['classes']} classes"
        self._set_model_status(text)
        self.model_panel.status.setText(f"{text}\n{info.get('source', '')}\nsupports {info.get('supports', '')}")
        self._on_target_changed()
        self.model_ready.emit()

    @Slot(str)
    def _on_model_failed(self, msg: str) -> None:
        prev = getattr(self, "_previous_choice", None)
        if prev is not None and self._model_loaded:
            self.session.model_choice = prev  # the worker keeps the previous model
            self.model_panel.show_choice(prev)
            self._set_model_status(self.model_status.text().removeprefix("model: ") + " (kept)")
        else:
            self._set_model_status("no model loaded")
        self.show_error(f"Model — {msg}")
        self.model_error.emit(msg)

    @Slot(object)
    def _on_catalog(self, entries: list[dict]) -> None:
        self.catalog = entries
        self.method_panel.set_catalog(entries)
        for run in self.session.runs.values():  # runs started before the catalog arrived get their titles
            e = self.entry(run.method)
            if e is not None and run.title in ("", run.method):
                run.title = e["title"]
                for layer in self.session.layers_of(run):
                    layer.label = f"{layer.name} — {run.label}"
                self.session.run_changed.emit(run)
        if self._pending_bind is not None:
            self._bind_run(self._pending_bind)
        self.catalog_changed.emit()

    @Slot(object, int)
    def _on_predictions(self, preds, token: int) -> None:
        if token != self.image_token:
            return
        self.session.set_predictions(preds)
        self._on_target_changed()
        self.predictions_shown.emit()

    # ------------------------------------------------------------------ runs
    def entry(self, method: str) -> dict | None:
        return next((e for e in self.catalog if e["name"] == method), None)

    def start_run(self, method: str, values: dict, seed: int = 0, target=None) -> Run | None:
        if self.session.image is None:
            self.show_error("Open an image first")
            return None
        e = self.entry(method)
        if e is not None and not e.get("available", True):
            self.show_error(f"{e['title']} is unavailable: {e.get('reason', '')}")
            return None
        if target is None:
            target = self.session.target
        if e is not None and e.get("class_agnostic"):
            target = None
        if not self._priors_ok(method, values):
            return None
        run = self.session.new_run(method, values, None, seed, title=e["title"] if e else method)
        run.target = target if isinstance(target, int) else None
        self._submit(run, target=target)
        self.method_panel.bind(run.id, label=run.label)
        return run

    def _priors(self, run: Run) -> dict:
        """Finished maps of other runs (input space) by method, layer and run name, for methods that build on them."""
        return prior_maps.priors_for(self.session, run)

    def _priors_ok(self, method: str, values: dict, run_id: int | None = None) -> bool:
        """False (and why, in the status bar) when a prior parameter names a run that is gone or unfinished."""
        e = self.entry(method)
        for p in e["params"] if e is not None else ():
            if p.picker == "prior":
                try:
                    prior_maps.check_prior(self.session, values.get(p.name), run_id)
                except ExplorerError as exc:
                    self.show_status(f"{e['title']} not run — {exc}")
                    return False
        return True

    def _prior_choices(self) -> list:
        """What the prior picker lists: finished runs and layers, the methods that can run first, flat."""
        own = self.method_panel.method()
        methods = [(e["name"], e["title"]) for e in self.catalog
                   if e["name"] != own and e.get("family") != "refinement" and e.get("available", True)]
        return prior_maps.choices(self.session, methods, exclude=self.method_panel.bound_run)

    def _submit(self, run: Run, state: dict | None = None, target="run") -> None:
        target = run.target if target == "run" else target
        job = RunJob(run.id, run.generation, run.method, dict(run.params), target, run.seed, state, self._priors(run))
        self.worker.submit(job)

    def requeue(self, run: Run, params: dict | None = None, target="keep", seed: int | None = None) -> None:
        """A new generation of ``run``; the current maps stay on screen until the new ones arrive."""
        if not self._priors_ok(run.method, params if params is not None else run.params, run.id):
            return  # the run keeps its map and status; the status bar says why
        state = None
        if params is not None and run.explanation is not None:
            old, new = self._resolved(run.method, run.params), self._resolved(run.method, params)
            changed = {k for k in set(new) | set(old) if new.get(k) != old.get(k)}
            st = run.explanation.info.get("state")
            if (changed == {"iterations"} and st is not None and isinstance(old.get("iterations"), int)
                    and isinstance(new.get("iterations"), int) and new["iterations"] > old["iterations"]):
                state = st  # resume (BOREx): only the iteration count grew
        if seed is not None and seed != run.seed:
            run.seed = int(seed)
            state = None
        self.worker.cancel(run.id)
        self.session.requeue(run, params, target)
        self._submit(run, state)

    def _resolved(self, method: str, values: dict) -> dict:
        """``values`` completed and coerced by the method's Params (as given when they do not validate)."""
        e = self.entry(method)
        if e is None:
            return dict(values)
        try:
            return e["params"].resolve(values, str(self.session.model_info.get("device", "cpu")))
        except ExplorerError:
            return dict(values)

    def _on_live(self, method: str, values: dict, seed: int, _changed) -> None:
        run = self.session.runs.get(self.method_panel.bound_run or -1)
        if run is None or run.method != method:
            return
        self.requeue(run, values, seed=seed)

    def _on_target_changed(self) -> None:
        s = self.session
        t = s.effective_target()
        self.target_status.setText(f"target: {s.class_name(t)}" + (" (top-1)" if s.target is None else "") if t is not None else "target: –")
        run = self.session.runs.get(self.method_panel.bound_run or -1)
        if (run is None or not self.method_panel.live.isChecked() or s.target is None
                or run.target == s.target):
            return
        e = self.entry(run.method)
        if e is not None and e.get("class_agnostic"):
            return
        self.requeue(run, target=s.target)

    def _bind_run(self, run_id: int) -> None:
        run = self.session.runs.get(run_id)
        if run is None:
            return
        if not self.catalog:
            self._pending_bind = run_id
            return
        self._pending_bind = None
        self.method_panel.bind(run.id, run.method, run.params, run.seed, run.label)

    @Slot(str)
    def _on_model_loading(self, label: str) -> None:
        self._set_model_status(f"loading {label}…")

    @Slot(int, int)
    def _on_run_started(self, rid: int, gen: int) -> None:
        self.session.mark_running(rid, gen)

    @Slot(int, int, float, str)
    def _on_run_progress(self, rid: int, gen: int, frac: float, msg: str) -> None:
        self.session.set_progress(rid, gen, frac, msg)

    @Slot(int, int, object)
    def _on_run_partial(self, rid: int, gen: int, exp) -> None:
        self._accept(rid, gen, exp, False)

    @Slot(int, int, object)
    def _on_run_finished(self, rid: int, gen: int, exp) -> None:
        self._accept(rid, gen, exp, True)

    def _accept(self, rid: int, gen: int, exp, done: bool) -> None:
        if not self.session.accept(rid, gen, exp, done):
            self.stale_dropped += 1
            return
        if done:
            run = self.session.runs[rid]
            run.params = dict(exp.params)
            if exp.cancelled:
                self.show_info(f"{run.label} cancelled at {exp.progress * 100:.0f} %: its partial map is kept")
            self.run_settled.emit(rid)

    @Slot(int, int, str)
    def _on_run_failed(self, rid: int, gen: int, msg: str) -> None:
        run = self.session.runs.get(rid)
        if run is None or not self.session.is_current(rid, gen):
            self.stale_dropped += 1
            return
        if msg.startswith("cancelled"):
            self.session.fail(rid, gen, msg)
            run.status = "cancelled"
            self.session.run_changed.emit(run)
        else:
            self.session.fail(rid, gen, msg)
            kept = " (its previous map is kept)" if run.explanation is not None else ""
            self.show_error(f"{run.label} — {msg}{kept}")
        self.run_settled.emit(rid)

    def _on_run_changed(self, _run: Run) -> None:
        active = [r for r in self.session.runs.values() if r.active]
        if active:
            r = active[-1]
            more = f" (+{len(active) - 1} queued)" if len(active) > 1 else ""
            self.method_panel.set_progress(r.progress, f"{r.label}: {r.message}{more}")
        else:
            last = max(self.session.runs.values(), key=lambda r: r.id, default=None)
            self.method_panel.set_progress(None, f"{last.label}: {last.status}" if last else "idle")

    def cancel_active(self) -> None:
        for r in self.session.runs.values():
            if r.active:
                self.cancel_run(r.id)

    def cancel_run(self, run_id: int) -> None:
        run = self.session.runs.get(run_id)
        if run is not None and run.active:
            self.worker.cancel(run_id)
            if run.status == "queued":
                self.session.fail(run_id, run.generation, "cancelled")
                run.status = "cancelled"
                self.session.run_changed.emit(run)
                self.run_settled.emit(run_id)

    def remove_run(self, run_id: int) -> None:
        run = self.session.runs.get(run_id)
        if run is not None:
            self.worker.cancel(run_id)
            if self.method_panel.bound_run == run_id:
                self.method_panel.bind(None)
            self.session.remove_run(run)

    # ------------------------------------------------------------------ sessions
    def save_session_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save session", "session.json", SESSION_FILTER)
        if path:
            self.save_session(path)

    def save_session(self, path: str) -> bool:
        from explorer.io.session_file import save_session

        try:
            p = save_session(path, self.session)
        except ExplorerError as exc:
            self.show_error(f"Cannot save the session — {exc}")
            return False
        self.statusBar().showMessage(f"saved {p}", 5000)
        return True

    def open_session_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open session", self._last_dir(), SESSION_FILTER)
        if path:
            self.open_session(path)

    def open_session(self, path: str) -> bool:
        """Reopen a saved session: image, model, runs and layer settings, without recomputing."""
        from explorer.io.session_file import load_session

        try:
            other = load_session(path)
        except ExplorerError as exc:
            self.show_error(f"Cannot open the session — {exc}")
            return False
        self.set_image(other.image, other.image_path)
        self.session.set_target(other.target)
        for run in other.runs.values():
            self.session.add_restored(run, other.layers_of(run))
        self.session.set_active_layer(other.active_layer_id)
        if other.model_choice != self.session.model_choice or not self._model_loaded:
            self.load_model(other.model_choice)
        self.statusBar().showMessage(f"opened session {path}", 5000)
        return True

    # ------------------------------------------------------------------ exports
    def export_view_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export view", "view.png", "PNG (*.png)")
        if path:
            self.export_view(path)

    def export_view(self, path: str) -> bool:
        from explorer.io.safe_files import atomic_path

        try:
            with atomic_path(path) as tmp:  # a failed write leaves no half PNG under the final name
                if not self.canvas.grab_view().save(str(tmp), "PNG"):
                    raise OSError(f"Qt could not write {path}")
        except ExplorerError as exc:
            self.show_error(f"Cannot export the view — {exc}")
            return False
        return True

    def export_layers_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export layers to folder")
        if folder:
            self.export_layers(folder)

    def export_layers(self, folder: str) -> list[str]:
        """Every layer with data as float32 .npy (image resolution) plus a JSON index."""
        from explorer.io.safe_files import atomic_write, output_dir, write_text

        out = Path(folder)
        written, index = [], []
        try:
            out = output_dir(folder)  # a file in the way, or a read-only folder, is named before writing
            for layer in self.session.layers:
                m = self.session.layer_data(layer)
                if m is None:
                    continue
                run = self.session.runs[layer.run_id]
                name = f"run{run.id}_{run.method}_{layer.name}.npy"
                with atomic_write(out / name) as f:
                    np.save(f, np.asarray(m, dtype=np.float32))
                written.append(name)
                index.append({"file": name, "layer": layer.record(), "run": run.record(),
                              "explanation": run.explanation.record()})
            write_text(out / "layers.json", json.dumps(index, indent=2))  # last: it vouches for the files
        except ExplorerError as exc:
            self.show_error(f"Cannot export the layers — {exc}")
            return written
        except OSError as exc:
            self.show_error(f"Cannot export the layers to {out}: {exc.strerror or exc}")
            return written
        self.statusBar().showMessage(f"wrote {len(written)} layers to {out}", 5000)
        return written

    def export_figure_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export figure grid", "figure.png", "PNG (*.png)")
        if path:
            self.export_figure(path)

    def export_figure(self, path: str) -> bool:
        try:
            self.compare.refresh()
            self.compare.export_figure(path)
        except (ValueError, OSError, ExplorerError) as exc:
            self.show_error(f"Cannot export the figure — {exc}")
            return False
        return True
