"""Teaching actions: the window opens on an explanation (the default method runs on the photo at once and
a streaming method is offered next), and Run ▸ "Compare these methods on this photo" fills the Compare tab
in one click. The choices (which methods) are Qt-free in explorer/session/teaching.py.
"""

from __future__ import annotations

import logging

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton

from explorer.session import teaching
from explorer.session.document import RunStatus

log = logging.getLogger(__name__)


class FollowUpBar(QFrame):
    """A next step offered under the message bar, with one button: "Next: run RISE, which streams" once the
    first map is on screen, "use the Quick settings" when a run would take long. It names the run it is
    about (``run_id``), so the window can take it down when that run, the photo or the model goes."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("FollowUpBar")
        self.setStyleSheet("#FollowUpBar { background: #eef6ee; border: 1px solid #2e7d32; border-radius: 4px; }"
                           " QLabel { color: #1b5e20; }")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.run_btn = QPushButton()
        self.close_btn = QPushButton("✕")
        self.close_btn.setFlat(True)
        self.close_btn.setFixedWidth(28)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 4, 4, 4)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.run_btn)
        lay.addWidget(self.close_btn)
        self.close_btn.clicked.connect(self.hide)
        self.run_id: int | None = None
        self._action = None
        self.run_btn.clicked.connect(self._act)
        self.hide()

    def offer(self, text: str, button: str, action, run_id: int | None) -> None:
        self.label.setText(text)
        self.run_btn.setText(button)
        self._action, self.run_id = action, run_id
        self.show()

    def withdraw(self, run_id: int | None = None) -> None:
        """Take the offer down (only when it is about ``run_id``, if given)."""
        if run_id is None or run_id == self.run_id:
            self.hide()
            self._action, self.run_id = None, None

    def _act(self) -> None:
        action = self._action
        self.withdraw()
        if action is not None:
            action()


def install(win) -> None:
    win.follow_up = bar = FollowUpBar()
    lay = win.centralWidget().layout()
    lay.insertWidget(lay.indexOf(win.messages) + 1, bar)
    run_menu = next((a.menu() for a in win.menuBar().actions() if a.menu() and a.text() == "&Run"), None)
    names = ", ".join(teaching.COMPARE_METHODS)
    act = win.add_action(run_menu, "Compare &these methods on this photo", lambda: compare_methods(win), "Ctrl+Shift+K")
    act.setToolTip(f"runs {names} (those not run yet on this photo and class) and shows them side by side")
    win.compare_action = act


def first_start(win, method: str | None = None, params: dict | None = None):
    """Run ``method`` (default: teaching.DEFAULT_METHOD) on the open photo and, when it is the default,
    offer the streaming follow-up once its map is shown. Returns the run (None if it could not start)."""
    name = method or teaching.DEFAULT_METHOD
    run = win.runs.start(name, dict(params or {}), 0, None)
    if run is None:
        return None
    win.method_panel.bind(run.id, label=run.label)
    rid = run.id
    log.info("first start: %s on %s", name, win.session.image_path)

    def bind_when_catalog():  # select the method in the panel once the catalog says what it is
        if rid in win.session.runs:
            win.select_run(rid)
    win.catalog_changed.connect(bind_when_catalog)
    if win.runs.catalog:
        bind_when_catalog()
    if method is None:
        def offer(settled_id: int):
            r = win.session.runs.get(settled_id)
            if settled_id != rid or r is None or r.status != RunStatus.DONE:
                return
            win.run_settled.disconnect(offer)
            follow = win.runs.entry(teaching.FOLLOW_UP)
            if follow is None or not follow.available:
                return
            win.follow_up.offer(
                f"<b>{r.label}</b> explains <b>{r.explanation.target_name}</b> "
                f"({r.explanation.timings.get('seconds', 0):.1f} s)."
                f" Next: <b>{follow.title}</b> probes the model with random masks; its map sharpens as they"
                " arrive.", f"Run {follow.title}", lambda: run_follow_up(win), rid)
        win.run_settled.connect(offer)
    return run


def explain_opened(win):
    """A photo the user opened (a sample, Open image, a recent file, a drop) is explained at once, as on the
    first start, by the method the panel shows with its values (the default one offers the follow-up)."""
    panel = win.method_panel
    method = panel.method()
    values = panel.values() if method is not None else None
    return first_start(win, None if method in (None, teaching.DEFAULT_METHOD) else method, values)


def run_follow_up(win):
    win.follow_up.withdraw()
    run = win.runs.start(teaching.FOLLOW_UP, {}, 0, None)
    if run is not None:
        win.select_run(run.id)
    return run


def compare_methods(win, methods=teaching.COMPARE_METHODS) -> list[int]:
    """Start the comparison set's missing runs and show all of them, alone, in the Compare tab."""
    s = win.session
    if s.image is None:
        win.show_status("open an image first")
        return []
    available = {e.name for e in win.runs.catalog if e.available}
    todo, reuse = teaching.compare_plan(s, available, methods, s.target)
    ids = [r.id for r in reuse]
    for name in todo:
        run = win.runs.start(name, {}, 0, None)
        if run is not None:
            ids.append(run.id)
    if not ids:
        win.show_status("none of " + ", ".join(methods) + " can run on this model")
        return []
    win.compare.show_runs(ids)
    win.tabs.setCurrentWidget(win.compare)
    win.show_status(f"comparing {len(ids)} methods ({len(todo)} started)")
    return ids
