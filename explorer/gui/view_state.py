"""What the views show, kept with the session (issue 28): the Compare tab's maps, agreement pair, top-k and
scale, and the Evaluation tab's curves and which are drawn. Each is a plain JSON value in ``Session.views``
(saved and autosaved with the runs, io/session_file.py), written when the user changes it and put back into
the widgets when a session or an autosave is opened. The perturbed images behind the curves are not kept
(hovering a restored curve shows none until the layer is evaluated again).
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt

log = logging.getLogger(__name__)

COMPARE, EVALUATION = "compare", "evaluation"


class ViewState:
    def __init__(self, win):
        self.win = win
        self.applying = False
        c = win.compare
        c.picker.itemChanged.connect(lambda _i: self.save_compare())
        for w in (c.a, c.b, c.norm):
            w.currentIndexChanged.connect(lambda _i: self.save_compare())
        c.k.valueChanged.connect(lambda _v: self.save_compare())
        dock = win.evaluation_dock
        if dock is not None:
            # after the dock has put the curves in its panel (it connected first)
            win.worker.call_done.connect(lambda _token, _result: self.save_evaluation())
        win.session.views_changed.connect(self._changed)

    # ------------------------------------------------------------------ widgets -> session
    def save_compare(self) -> None:
        if self.applying:
            return
        c = self.win.compare
        checked = [c.picker.item(i).data(Qt.UserRole) for i in range(c.picker.count())
                   if c.picker.item(i).checkState() == Qt.Checked]
        self._write(COMPARE, {"checked": checked, "a": c.a.currentData(), "b": c.b.currentData(),
                              "k": c.k.value(), "scale": c.norm.currentText(), "agreement": dict(c.agreement)})

    def save_evaluation(self) -> None:
        dock = self.win.evaluation_dock
        if self.applying or dock is None or dock._panel is None:
            return
        panel = dock._panel
        if not getattr(panel, "_view_state_wired", False):
            panel.selectionChanged.connect(lambda _sel: self.save_evaluation())
            panel._view_state_wired = True
        self._write(EVALUATION, {"curves": panel.curves(), "selected": panel.selected()} if panel.labels() else None)

    def _write(self, name: str, value) -> None:
        self.applying = True
        try:
            self.win.session.set_view(name, value)
        finally:
            self.applying = False

    # ------------------------------------------------------------------ session -> widgets
    def _changed(self, name: str) -> None:
        if self.applying:
            return  # our own write
        value = self.win.session.views.get(name)
        self.applying = True
        try:
            if name == COMPARE and isinstance(value, dict):
                self._apply_compare(value)
            elif name == EVALUATION:
                self._apply_evaluation(value if isinstance(value, dict) else {})
        except (TypeError, ValueError, KeyError) as exc:  # a damaged view record only costs that view
            log.warning("could not show the saved %s view: %s", name, exc)
            self.win.show_status(f"The session's {name} view could not be shown ({exc})")
        finally:
            self.applying = False

    def _apply_compare(self, v: dict) -> None:
        c = self.win.compare
        c.refresh()
        checked = set(v.get("checked") or [])
        for i in range(c.picker.count()):
            it = c.picker.item(i)
            it.setCheckState(Qt.Checked if it.data(Qt.UserRole) in checked else Qt.Unchecked)
        for combo, key in ((c.a, "a"), (c.b, "b")):
            idx = combo.findData(v.get(key))
            if idx >= 0:
                combo.setCurrentIndex(idx)
                c._pair_chosen = True  # a saved pair was the user's pick: it stays, not the newest maps
        if isinstance(v.get("k"), (int, float)):
            c.k.setValue(float(v["k"]))
        if isinstance(v.get("scale"), str) and c.norm.findText(v["scale"]) >= 0:
            c.norm.setCurrentText(v["scale"])

    def _apply_evaluation(self, v: dict) -> None:
        dock = self.win.evaluation_dock
        curves = v.get("curves") or []
        if dock is None or (not curves and dock._panel is None):
            return
        panel = dock.panel
        if panel is None:
            return
        panel.set_curves([(str(c["label"]), c, None) for c in curves])
        if isinstance(v.get("selected"), list):
            panel.set_selected([str(x) for x in v["selected"]])
        if curves:
            dock.status.setText(f"{len({c['label'] for c in curves})} evaluated layer(s) restored with the session")


def install(win) -> ViewState:
    win.view_state = ViewState(win)
    return win.view_state
