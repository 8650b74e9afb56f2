"""The Evaluation tab: buttons that score the active layer's map or every visible layer's (deletion,
insertion, pixel flipping, ROAD; computed on the worker through the metric registry, one layer after another,
with a progress bar), the metrics' settings (generated from their declarations: evaluation_settings.py) and
the panel of their curves (explorer/gui/evaluation_panel.py), the whole width of the window.

The panel (five plots: the costliest widget of the window, ~60 % of building it) is made when the tab is
first shown or a result arrives (``panel``), so that it does not delay the first window.
"""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from explorer.core.errors import ParamError
from explorer.gui.evaluation_settings import EvaluationSettings
from explorer.workers.jobs import CURVE_METRICS

log = logging.getLogger(__name__)


class EvaluationDock(QWidget):
    def __init__(self, win, parent=None):
        super().__init__(parent)
        self.win = win  # its session, worker and message bar
        self._panel = None
        self._lay = QVBoxLayout(self)
        self._lay.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        self.evaluate_btn = QPushButton("Evaluate active layer")
        self.evaluate_btn.setToolTip("deletion and insertion curves of the active layer's map (computed on the worker)")
        self.evaluate_all_btn = QPushButton("Evaluate every visible layer")
        self.evaluate_all_btn.setToolTip("the same curves for each layer shown on the canvas, one after another")
        self.status = QLabel("")
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m layers")
        self.progress.setMaximumWidth(260)
        self.progress.hide()
        self.settings_btn = QPushButton("Settings")
        self.settings_btn.setCheckable(True)
        self.settings_btn.setToolTip("the metrics' settings: steps, substrates, ROAD's noise and fractions, seed")
        self.settings = EvaluationSettings(CURVE_METRICS)
        self.settings.hide()
        self.settings_btn.toggled.connect(self.settings.setVisible)
        row.addWidget(self.evaluate_btn)
        row.addWidget(self.evaluate_all_btn)
        row.addWidget(self.settings_btn)
        row.addWidget(self.progress)
        row.addWidget(self.status, 1)
        self._lay.addLayout(row)
        self._lay.addWidget(self.settings)
        self._tried = False
        self._calls: dict[int, str] = {}
        self._batch = 0  # calls queued since the progress bar was last empty
        self.evaluate_btn.clicked.connect(lambda: self.evaluate_active_layer())
        self.evaluate_all_btn.clicked.connect(lambda: self.evaluate_visible_layers())
        win.worker.call_done.connect(self._on_call_done)
        win.worker.call_failed.connect(self._on_call_failed)

    @property
    def panel(self):
        """The evaluation panel, made on first use; None when it could not be made."""
        if self._panel is None and not self._tried:
            self._tried = True  # one try
            try:
                from explorer.gui import evaluation_panel

                self._panel = evaluation_panel.EvaluationPanel()
            except Exception:  # a broken optional panel must not stop the app
                log.exception("the evaluation panel could not be created")
                self.win.show_error("Evaluation — the evaluation panel could not be created (details in the log)")
                return None
            self._lay.addWidget(self._panel, 1)
        return self._panel

    def evaluate_active_layer(self, step: int | None = None) -> int | None:
        """Queue the curves of the active layer's map; they appear in the panel. The worker call's token."""
        layer = self.win.session.active_layer()
        if layer is None or self.win.session.layer_data(layer) is None:
            self.win.show_error("Evaluation — pick a layer with a map first")
            return None
        return self._evaluate(layer, step)

    def evaluate_visible_layers(self, step: int | None = None) -> list[int]:
        """Queue the curves of every layer shown on the canvas (of this model's runs); the calls' tokens."""
        s = self.win.session
        layers = [l for l in s.layers if l.visible and s.layer_data(l) is not None
                  and not s.is_stale(s.runs[l.run_id])]
        if not layers:
            self.win.show_error("Evaluation — no layer with a map is shown on the canvas")
            return []
        options = self._options()
        if options is None:
            return []
        return [self._evaluate(layer, step, options) for layer in layers]

    def _options(self) -> dict | None:
        """The settings, checked; None (and the reason shown) when one is out of range."""
        try:
            return self.settings.resolved()
        except ParamError as exc:
            self.win.show_error(f"Evaluation settings — {exc}")
            return None

    def _evaluate(self, layer, step: int | None, options: dict | None = None) -> int | None:
        from explorer.workers.jobs import causal_curves

        if options is None:
            options = self._options()
            if options is None:
                return None
        s = self.win.session
        run = s.runs[layer.run_id]
        m = s.layer_data(layer)
        target = run.explanation.target if run.explanation.target is not None else s.effective_target()
        token = self.win.worker.call(causal_curves(np.asarray(m), target, step, options=options))
        self._calls[token] = f"{run.label} · {layer.name}"
        self._batch += 1
        self._show_progress()
        self.status.setText(f"evaluating {self._calls[token]}…")
        return token

    def _show_progress(self) -> None:
        """n of m layers done; hidden once the queue is empty (and the count starts again)."""
        left = len(self._calls)
        if left == 0:
            self._batch = 0
            self.progress.hide()
            return
        self.progress.setRange(0, self._batch)
        self.progress.setValue(self._batch - left)
        self.progress.show()

    @Slot(int, object)
    def _on_call_done(self, token: int, result) -> None:
        label = self._calls.pop(token, None)
        if label is None or self.panel is None:
            return
        for _mode, (curve, frames) in result.items():
            self.panel.set_curve(label, curve, frames)
        self._show_progress()
        self.status.setText(f"{label}: done" + (f"; {len(self._calls)} to go" if self._calls else ""))

    @Slot(int, str)
    def _on_call_failed(self, token: int, msg: str) -> None:
        label = self._calls.pop(token, None)
        if label is not None:
            self._show_progress()
            self.status.setText("failed")
            self.win.show_error(f"Evaluation of {label} — {msg}")
