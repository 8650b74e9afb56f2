"""The main window: the docks, menus and status bar, and the wiring between session, views and worker.

It holds no tensors, computes nothing and decides nothing about runs: the session (Qt-free) holds the
document, the ``RunController`` (session/controller.py, Qt-free too) starts, re-queues, cancels and removes
runs and takes in what the worker reports, the canvas and panels display the document, and the compute worker
thread owns the model. Errors from any of them appear in the message bar at the top of the window; the app
stays usable and computed results stay where they are.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QTabWidget, QVBoxLayout, QWidget

from explorer import resources
from explorer.gui import memory
from explorer.gui.canvas import Canvas
from explorer.gui.compare import CompareWidget
from explorer.gui.files import FileActions
from explorer.gui.method_panel import MethodPanel
from explorer.gui.model_panel import ModelPanel
from explorer.gui.panels import LayerPanel, PredictionsPanel
from explorer.gui.widgets import MessageBar
from explorer.session.controller import Notice, RunController
from explorer.session.document import Session
from explorer.session.model_choice import ModelChoice
from explorer.session.teaching import DEFAULT_METHOD
from explorer.workers.compute import ComputeWorker
from explorer.workers.relay import WorkerRelay

log = logging.getLogger(__name__)


def model_text(info: dict) -> str:
    """The status line of a loaded model: id, device, classes, and its activation when not a softmax."""
    act = info.get("activation")
    extra = f" · {act}" if act and act != "softmax" else ""
    return f"{info.get('id', '?')} · {info.get('device', '?')} · {info.get('classes', '?')} classes{extra}"


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
        self.session.set_model_choice(model_choice or ModelChoice())
        self.settings = settings or memory.open_settings()
        self.worker = ComputeWorker(None, throttle_s=throttle_s)
        self.runs = RunController(self.session, self.worker)
        self.files = FileActions(self)
        self._relay = WorkerRelay(self.worker, self.runs, self)
        self._pending_select: int | None = None
        self._previous_choice: ModelChoice | None = None
        self._labels_before: list[str] = []
        self._asked_while_loading: set[int] = set()  # runs started since the last load_model
        self.loading: ModelChoice | None = None  # the model the worker is loading now, if any

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
        self.method_panel = MethodPanel(preferred=DEFAULT_METHOD)  # what the first start runs
        self.layer_panel = LayerPanel(self.session)
        self.docks: dict[str, QDockWidget] = {}
        self._dock("Image and model", self.model_panel, Qt.LeftDockWidgetArea)
        self._dock("Predictions", self.predictions, Qt.LeftDockWidgetArea)
        self._dock("Method", self.method_panel, Qt.RightDockWidgetArea)
        self._dock("Layers", self.layer_panel, Qt.RightDockWidgetArea)
        self.evaluation_dock = self._evaluation_dock()
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
        from explorer.gui import layer_help, narration, presentation, tab_room, teaching

        layer_help.install(self)
        self.presentation = presentation.install(self)
        teaching.install(self)
        self.narrator = narration.install(self)  # progress line, target status, banners: follow the document
        tab_room.install(self)  # Compare and Evaluation get the width of the docks they do not need
        self._wire()
        memory.restore_layout(self)  # the docks as the user left them
        from explorer.gui import recovery

        recovery.install(self)  # autosave, Run ▸ Continue, a compute thread that dies started again (issue 28)

    def _wire(self) -> None:
        s, runs, panel = self.session, self.runs, self.method_panel
        # session (the model) -> views
        s.run_removed.connect(self._on_document_run_removed)
        s.target_changed.connect(self._on_document_target_changed)
        s.image_changed.connect(self._on_document_image_changed)
        # controller -> views
        runs.message.connect(self._on_notice)
        # a run started (Run, a class picked, Compare these methods) is shown with its own method and values: a
        # label alone left the panel showing another method whose edits would re-run this run
        runs.started.connect(lambda run: self.select_run(run.id))
        runs.started.connect(lambda run: self._asked_while_loading.add(run.id))
        runs.settled.connect(self.run_settled.emit)
        runs.catalog_changed.connect(self._on_catalog_changed)
        runs.predictions_shown.connect(self._on_predictions_shown)
        # views -> controller
        panel.run_requested.connect(runs.start)
        panel.live_changed.connect(self._on_view_live_changed)
        panel.cancel_requested.connect(runs.cancel_active)
        panel.invalid.connect(self.show_status)
        panel.prior_source = lambda: runs.prior_choices(panel.method(), panel.bound_run)
        panel.prior_default = lambda: runs.default_prior(panel.method(), panel.bound_run)
        runs.settled.connect(lambda _rid: panel.refresh_pickers())  # what "rise" stands for may have changed
        self.layer_panel.elapsed = runs.elapsed
        self.layer_panel.cancel_requested.connect(runs.cancel)
        self.layer_panel.remove_requested.connect(runs.remove)
        self.layer_panel.run_selected.connect(self.select_run)
        self.canvas.hovered.connect(self.hover_status.setText)
        self.model_panel.load_requested.connect(self._load_from_panel)
        self.model_panel.open_btn.clicked.connect(self.files.open_image_dialog)
        self.model_panel.sample.activated.connect(self._on_view_sample_chosen)
        self.compare.export_btn.clicked.connect(self.files.export_figure_dialog)
        # worker -> window (the model being loaded; runs go to the controller through the relay)
        self.worker.model_loading.connect(self._on_classifier_loading)
        self.worker.model_loaded.connect(self._on_classifier_loaded)
        self.worker.model_failed.connect(self._on_classifier_failed)
        self.worker.job_failed.connect(self._on_worker_job_failed)

    # ------------------------------------------------------------------ construction helpers
    def _dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(title)
        d.setWidget(widget)
        d.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable | QDockWidget.DockWidgetClosable)
        self.addDockWidget(area, d)
        self.docks[title] = d
        return d

    def _evaluation_dock(self):
        """The Evaluation tab beside Canvas and Compare: its five plots need the window's width to be read.
        Imported, never looked for on disk: a frozen build keeps its modules in an archive."""
        from explorer.gui.evaluation_dock import EvaluationDock

        tab = EvaluationDock(self)
        self.tabs.addTab(tab, "Evaluation")
        self.tabs.currentChanged.connect(lambda i: tab.panel if self.tabs.widget(i) is tab else None)
        return tab

    def _menus(self) -> None:
        mb, files = self.menuBar(), self.files
        f = mb.addMenu("&File")
        self.add_action(f, "&Open image…", files.open_image_dialog, QKeySequence.Open)
        self.recent_menu = f.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(lambda: files.fill_recent(self.recent_menu))
        samples = f.addMenu("&Samples")
        for name in resources.SAMPLES:
            self.add_action(samples, name,
                            lambda _=False, n=name: files.open_image(str(resources.sample(n)), explain=True))
        f.addSeparator()
        self.add_action(f, "Open &session…", files.open_session_dialog)
        self.add_action(f, "&Save session…", files.save_session_dialog, QKeySequence.Save)
        f.addSeparator()
        self.add_action(f, "Export &view as PNG…", files.export_view_dialog)
        self.add_action(f, "Export &layers as .npy…", files.export_layers_dialog)
        self.add_action(f, "Export &figure grid…", files.export_figure_dialog)
        self.export_size_menu = f.addMenu("Export &size")  # the photo's resolution or a DPI, for both exports
        self.export_size_menu.aboutToShow.connect(lambda: files.fill_export_size(self.export_size_menu))
        files.fill_export_size(self.export_size_menu)  # filled now too: the menu is never empty
        f.addSeparator()
        self.add_action(f, "&Quit", self.close, QKeySequence.Quit)
        r = mb.addMenu("&Run")
        self.add_action(r, "&Run method", self.method_panel.request_run, "Ctrl+R")
        self.add_action(r, "&Cancel all", self.runs.cancel_active, "Esc")
        v = mb.addMenu("&View")
        self.add_action(v, "&Fit image", self.canvas.fit, "Ctrl+0")
        self.add_action(v, "&Compare", lambda: self.tabs.setCurrentWidget(self.compare), "Ctrl+K")
        self.add_action(v, "&Evaluation", lambda: self.tabs.setCurrentWidget(self.evaluation_dock), "Ctrl+E")
        v.addSeparator()
        for d in self.docks.values():
            v.addAction(d.toggleViewAction())

    def add_action(self, menu, text, fn, shortcut=None) -> QAction:
        a = QAction(text, self)
        if shortcut:
            a.setShortcut(shortcut)
        a.triggered.connect(lambda _=False: fn())
        menu.addAction(a)
        return a

    # ------------------------------------------------------------------ life cycle
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
        self.autosave.close()  # an ordinary quit: no recovery offer next time
        self.worker.stop()
        self.canvas.close_renderer()

    def closeEvent(self, event) -> None:
        memory.save_layout(self)
        self.shutdown()
        super().closeEvent(event)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = event.mimeData().urls()
        if urls:
            self.files.open_path(urls[0].toLocalFile())
            event.acceptProposedAction()

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

    def _on_notice(self, level: Notice, text: str) -> None:
        {Notice.ERROR: self.show_error, Notice.INFO: self.show_info, Notice.STATUS: self.show_status}[level](text)

    def _set_model_status(self, text: str) -> None:
        self.model_panel.status.setText(text)
        self.model_status.setText(f"model: {text}")

    # ------------------------------------------------------------------ the model
    def load_model(self, choice: ModelChoice, trust_pickle: bool = False) -> None:
        """Load ``choice``; ``trust_pickle`` only from a deliberate act here (CLI flag, confirmed checkbox)."""
        self._previous_choice = self.session.model_choice
        self._labels_before = list(self.session.labels)  # the kept model's, should this one fail to load
        self._asked_while_loading: set[int] = set()
        self.loading = choice
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

    def show_labels(self, labels: list[str]) -> None:
        """Class names for the predictions, the target and the class pickers (a model's, or a reopened
        session's until its model has loaded)."""
        self.session.show_labels(labels)
        self.method_panel.set_labels(labels)

    def confirm_trust(self, files: list[str]) -> bool:
        """Ask the person at the keyboard, naming each file, before anything may be unpickled."""
        from PySide6.QtWidgets import QMessageBox

        names = "\n".join(str(Path(f).resolve()) for f in files)
        answer = QMessageBox.question(
            self, "Trust this file?",
            f"Unpickling can run any code the file's author put in it, with your permissions.\n\n{names}\n\n"
            "Load it with full trust, this once?", QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    @Slot(str)
    def _on_classifier_loading(self, label: str) -> None:
        self._set_model_status(f"loading {label}…")

    @Slot(object)
    def _on_classifier_loaded(self, d: dict) -> None:
        info = d["info"]
        self.loading = None
        memory.remember_model(self.settings, self.session.model_choice)  # it loads: the next launch's model
        self.session.set_model_info(info, d["labels"])
        self.method_panel.set_labels(d["labels"])
        self.method_panel.set_layer_names(d.get("layer_names", []), d.get("default_layer"))
        text = model_text(info)
        self._set_model_status(text)
        self.model_panel.status.setText(f"{text}\n{info.get('source', '')}\nsupports {info.get('supports', '')}")
        self._on_document_target_changed()
        self.model_ready.emit()

    @Slot(str)
    def _on_classifier_failed(self, msg: str) -> None:
        self.loading = None
        prev = self._previous_choice
        if prev is not None and self.session.model_info:  # the worker keeps the model it had
            # runs asked meanwhile ran on it (not a reopened session's runs, computed on the model that failed)
            self.session.reassign_model(self.session.model_choice, prev, self._asked_while_loading)
            self.session.set_model_choice(prev)
            self.show_labels(self._labels_before)
            self.model_panel.show_choice(prev)
            # back to the model the worker kept (the status read "loading ..." until now)
            self._set_model_status(model_text(self.session.model_info) + " (kept)")
        else:
            self._set_model_status("no model loaded")
        self.show_error(f"Model — {msg}")
        self.model_error.emit(msg)

    @Slot(str)
    def _on_worker_job_failed(self, msg: str) -> None:
        """The image's prediction (or the catalog) failed: said, and nothing restored, since the worker still
        holds the model it announced last (restoring the previous choice would show a model it no longer has)."""
        self.show_error(msg)

    # ------------------------------------------------------------------ runs in the method panel
    def select_run(self, run_id: int) -> None:
        """Show ``run_id``'s method and values in the method panel (once the catalog says what the method is):
        the run that live edits re-run."""
        run = self.session.runs.get(run_id)
        if run is None:
            return
        if not self.runs.catalog:
            self._pending_select = run_id
            return
        self._pending_select = None
        self.method_panel.bind(run.id, run.method, run.params, run.seed, run.label)

    def _on_catalog_changed(self) -> None:
        self.method_panel.set_catalog(self.runs.catalog)
        if self._pending_select is not None:
            self.select_run(self._pending_select)
        self.catalog_changed.emit()

    def _on_view_live_changed(self, method: str, values: dict, seed: int, _changed) -> None:
        self.runs.edit(self.method_panel.bound_run, method, values, seed)

    def _on_view_sample_chosen(self, idx: int) -> None:
        if idx > 0:
            self.files.open_image(str(resources.sample(self.model_panel.sample.itemText(idx))), explain=True)
        self.model_panel.sample.setCurrentIndex(0)

    def _on_predictions_shown(self) -> None:
        self._on_document_target_changed()
        self.predictions_shown.emit()

    def _on_document_target_changed(self) -> None:
        """A class picked: show its map of the shown run's request at once when there is one, else (with
        "live" on) start one beside the others; the runs of other classes keep their maps."""
        layer = self.session.active_layer()
        shown = self.method_panel.bound_run or (layer.run_id if layer is not None else None)
        run = self.runs.for_class(shown, start=self.method_panel.live.isChecked())
        if run is not None:
            self.show_run(run.id)

    def show_run(self, run_id: int) -> None:
        """``run_id``'s headline map alone on the canvas (once it has one), and its settings in the method
        panel: the run that live edits change."""
        s = self.session
        run = s.runs.get(run_id)
        if run is None:
            return
        mine = s.layers_of(run)
        if mine:
            for layer in s.layers:
                s.set_layer(layer, visible=layer is mine[0])
            s.set_active_layer(mine[0].id)
        self.select_run(run_id)

    def _on_document_run_removed(self, run) -> None:
        if self.method_panel.bound_run == run.id:
            self.method_panel.bind(None)

    def _on_document_image_changed(self) -> None:
        s = self.session
        if s.image is None:
            return
        name = Path(s.image_path).name if s.image_path else "(image)"
        h, w = s.image.shape[:2]
        self.model_panel.image_label.setText(f"<b>{name}</b><br>{w} × {h} px")
        self.setWindowTitle(f"explorer — {name}")
