"""The Evaluation tab's settings: one control per setting of the metrics whose curves it draws, generated from
the metrics' declared ``Params`` (explorer/evaluation/specs/) as the method panel's controls are from a method's.
A metric that declares a new setting gets its control here without an edit. Qt and the registry's declarations
only (numpy, never torch)."""

from __future__ import annotations

from typing import Any, Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFormLayout, QWidget

from explorer.gui.widgets import ParamControl


class EvaluationSettings(QWidget):
    """``values()``: what the controls hold, by setting name; ``resolved()``: the same checked against the
    declarations (a ``ParamError`` names the setting and its bounds); ``changed`` on every edit."""

    changed = Signal()

    def __init__(self, metrics: Sequence[str], parent: QWidget | None = None):
        super().__init__(parent)
        from explorer.evaluation.registry import params_of

        self.params = params_of(metrics)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.controls: dict[str, ParamControl] = {}
        for p in self.params:
            c = ParamControl(p)
            c.changed.connect(lambda *_: self.changed.emit())
            self.controls[p.name] = c
            form.addRow(p.name.replace("_", " "), c)

    def values(self) -> dict[str, Any]:
        return {name: c.value() for name, c in self.controls.items()}

    def resolved(self) -> dict[str, Any]:
        return self.params.resolve(self.values())

    def set_values(self, values: dict[str, Any]) -> None:
        for name, v in values.items():
            if name in self.controls:
                self.controls[name].setValue(v)
