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
    """"Next: run RISE, which streams" under the message bar, offered once the first map is on screen."""

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
        self.hide()


def install(win) -> None:
    win.follow_up = bar = FollowUpBar()
    lay = win.centralWidget().layout()
    lay.insertWidget(lay.indexOf(win.messages) + 1, bar)
    bar.run_btn.clicked.connect(lambda: run_follow_up(win))
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
            if follow is None or not follow.get("available", True):
                return
            win.follow_up.label.setText(
                f"<b>{r.label}</b> explains <b>{r.explanation.target_name}</b> "
                f"({r.explanation.timings.get('seconds', 0):.1f} s)."
                f" Next: <b>{follow['title']}</b> probes the model with random masks; its map sharpens as they arrive.")
            win.follow_up.run_btn.setText(f"Run {follow['title']}")
            win.follow_up.show()
        win.run_settled.connect(offer)
    return run


def run_follow_up(win):
    win.follow_up.hide()
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
    available = {e["name"] for e in win.runs.catalog if e.get("available", True)}
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
