"""View ▸ Presentation: for teaching in front of a room. Larger fonts, only the canvas and the layer list,
and keys to step through the runs (← →: the previous/next run's headline map alone) and the classes
(↑ ↓: the previous/next of the top-5 predictions: the shown run's map for that class at once when it was
computed before, else, with "live" on, a new run for it beside the others, so flipping back costs nothing).

Toggling changes widgets only: a run in progress keeps streaming and nothing in the session changes.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut

from explorer.session import teaching

FONT_SCALE = 1.6
KEEP_DOCK = "Layers"


class Presentation(QObject):
    def __init__(self, win):
        super().__init__(win)
        self.win = win
        self.active = False
        self._saved: dict = {}
        self.action = QAction("&Presentation", win)
        self.action.setCheckable(True)
        self.action.setShortcut(QKeySequence(Qt.Key_F5))
        self.action.setToolTip("larger fonts, the canvas and the layer list only; ← → runs, ↑ ↓ classes")
        self.action.toggled.connect(self.set_active)
        self.shortcuts = []
        for key, fn in ((Qt.Key_Right, lambda: self.step_run(+1)), (Qt.Key_Left, lambda: self.step_run(-1)),
                        (Qt.Key_Down, lambda: self.step_class(+1)), (Qt.Key_Up, lambda: self.step_class(-1))):
            sc = QShortcut(QKeySequence(key), win)
            sc.setContext(Qt.WindowShortcut)
            sc.activated.connect(fn)
            sc.setEnabled(False)
            self.shortcuts.append(sc)

    def set_active(self, on: bool) -> None:
        on = bool(on)
        if on == self.active:
            return
        w = self.win
        if on:
            tab = w.tabs.currentIndex()
            w.tabs.setCurrentWidget(w.canvas)  # first: a wide tab gives its docks back (gui/tab_room.py)
            self._saved = {"font": w.font(), "docks": {t: d.isVisible() for t, d in w.docks.items()},
                           "tabbar": w.tabs.tabBar().isVisible(), "tab": tab}
            f = w.font()
            size = f.pointSizeF() if f.pointSizeF() > 0 else 10.0
            f.setPointSizeF(size * FONT_SCALE)
            w.setFont(f)
            for title, d in w.docks.items():
                d.setVisible(title == KEEP_DOCK)
            # the larger type needs a wider layer list for the meanings to stay readable
            w.resizeDocks([w.docks[KEEP_DOCK]], [int(w.width() * 0.34)], Qt.Horizontal)
            w.tabs.tabBar().setVisible(False)
        else:
            w.setFont(self._saved.get("font", w.font()))
            for title, d in w.docks.items():
                d.setVisible(self._saved.get("docks", {}).get(title, True))
            w.tabs.tabBar().setVisible(self._saved.get("tabbar", True))
            w.tabs.setCurrentIndex(self._saved.get("tab", 0))  # (a wide tab then sets its docks aside again)
        self.active = on
        for sc in self.shortcuts:
            sc.setEnabled(on)
        if self.action.isChecked() != on:
            self.action.setChecked(on)
        w.show_status("presentation: ← → runs, ↑ ↓ classes, F5 to leave" if on else "presentation off")

    def current_run(self) -> int | None:
        layer = self.win.session.active_layer()
        return layer.run_id if layer is not None else None

    def step_run(self, delta: int) -> int | None:
        """Show the next/previous run's headline map alone and make it the run live edits re-run."""
        s = self.win.session
        rid = teaching.step_run(s, self.current_run(), delta)
        if rid is None:
            self.win.show_status("no map to step through yet: run a method first")
            return None
        run = s.runs[rid]
        self.win.show_run(rid)
        self.win.show_status(f"{run.label}  ({', '.join(l.name for l in s.layers_of(run))})")
        return rid

    def step_class(self, delta: int) -> int | None:
        s = self.win.session
        if not s.predictions:
            self.win.show_status("no predictions yet")
            return None
        t = teaching.step_target(s.predictions, s.effective_target(), delta)
        s.set_target(t)
        self.win.show_status(f"target: {s.class_name(t)}")
        return t


def install(win) -> Presentation:
    pres = Presentation(win)
    view = next((a.menu() for a in win.menuBar().actions() if a.menu() and a.text() == "&View"), None)
    if view is not None:
        view.addSeparator()
        view.addAction(pres.action)
    else:
        win.addAction(pres.action)
    return pres
