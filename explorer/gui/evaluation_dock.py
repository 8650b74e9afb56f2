"""The Evaluation dock: a button that scores the active layer's map (deletion, insertion, pixel flipping,
ROAD; computed on the worker) and the panel of their curves (explorer/gui/evaluation_panel.py).

The panel (five plots: the costliest widget of the window, ~60 % of building it) is made when the tab is
first shown or a result arrives (``panel``), so that it does not delay the first window.
"""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

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
        self.status = QLabel("")
        row.addWidget(self.evaluate_btn)
        row.addWidget(self.status, 1)
        self._lay.addLayout(row)
        self._tried = False
        self._calls: dict[int, str] = {}
        self.evaluate_btn.clicked.connect(lambda: self.evaluate_active_layer())
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
        from explorer.workers.jobs import causal_curves

        s = self.win.session
        layer = s.active_layer()
        m = s.layer_data(layer) if layer is not None else None
        if m is None:
            self.win.show_error("Evaluation — pick a layer with a map first")
            return None
        run = s.runs[layer.run_id]
        target = run.explanation.target if run.explanation.target is not None else s.effective_target()
        token = self.win.worker.call(causal_curves(np.asarray(m), target, step))
        self._calls[token] = f"{run.label} · {layer.name}"
        self.status.setText(f"evaluating {self._calls[token]}…")
        return token

    @Slot(int, object)
    def _on_call_done(self, token: int, result) -> None:
        label = self._calls.pop(token, None)
        if label is None or self.panel is None:
            return
        for _mode, (curve, frames) in result.items():
            self.panel.set_curve(label, curve, frames)
        self.status.setText(f"{label}: done")

    @Slot(int, str)
    def _on_call_failed(self, token: int, msg: str) -> None:
        label = self._calls.pop(token, None)
        if label is not None:
            self.status.setText("failed")
            self.win.show_error(f"Evaluation of {label} — {msg}")
