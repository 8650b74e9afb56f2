"""Nothing is lost (issue 28), in the window: the autosave's timer, the offer to restore after an unclean exit,
Run ▸ Continue for a run that stopped partway, and a compute thread that ends unexpectedly started again.

The logic is Qt-free (``io/autosave.py``: when to save, where, what an unclean exit left; the controller's
``resume``); this module only ticks it, shows it and wires it into the window with ``install(win)``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton

from explorer.io import autosave
from explorer.session.document import RunStatus

log = logging.getLogger(__name__)

TICK_MS = 500


class RecoveryBar(QFrame):
    """"Restore the session of 14:02: chelsea.png, efficientnet_lite0, 4 runs (1 partial)?" [Restore] [Dismiss]"""

    def __init__(self, entry: autosave.Entry, parent=None):
        super().__init__(parent)
        self.entry = entry
        self.setObjectName("RecoveryBar")
        self.setStyleSheet("#RecoveryBar { background: #fdf6e3; border: 1px solid #8a6d00; border-radius: 4px; }"
                           " QLabel { color: #8a6d00; }")
        self.label = QLabel(f"explorer did not quit normally last time. Restore {entry.describe()}?")
        self.label.setWordWrap(True)
        self.restore_btn = QPushButton("Restore")
        self.dismiss_btn = QPushButton("Dismiss")
        self.dismiss_btn.setToolTip(f"the autosave stays in {entry.path.parent} (explorer sessions lists it)")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 4, 4, 4)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.restore_btn)
        lay.addWidget(self.dismiss_btn)


def install(win, folder: Path | str | None = None) -> autosave.Autosave:
    """Autosave ``win``'s session (into ``folder``, default the user's state folder), add Run ▸ Continue and
    restart a compute thread that ends while the window is open."""
    saver = autosave.Autosave(win.session, folder, background=True)
    win.autosave = saver
    timer = QTimer(win)
    timer.setInterval(TICK_MS)
    timer.timeout.connect(lambda: _tick(win))
    timer.start()
    win.autosave_timer = timer
    run_menu = next((a.menu() for a in win.menuBar().actions() if a.text().replace("&", "") == "Run"), None)
    if run_menu is not None:
        win.add_action(run_menu, "C&ontinue stopped run", lambda: continue_run(win), "Ctrl+Shift+R")
    win.worker.finished.connect(lambda: _worker_ended(win))
    from explorer.gui import view_state

    view_state.install(win)  # the Compare and Evaluation tabs' state, saved with the session
    return saver


def _tick(win) -> None:
    saver = win.autosave
    saver.tick()
    error = saver.error  # set by the background write
    if error and error != getattr(win, "_autosave_said", ""):  # said once per new failure, not every tick
        win.show_status(f"Autosave failed — {error}", 15_000)
    win._autosave_said = error


def selected_run(win) -> int | None:
    """The run Continue applies to: the active layer's, else the one bound to the method panel."""
    layer = win.session.active_layer()
    return layer.run_id if layer is not None else win.method_panel.bound_run


def continue_run(win) -> bool:
    return win.runs.resume(selected_run(win))


def offer(win, folder: Path | str | None = None) -> RecoveryBar | None:
    """After an unclean exit: a bar at the top of the window offering the newest autosave it left."""
    own = win.autosave.path if getattr(win, "autosave", None) is not None else None
    left = [e for e in autosave.crashed(folder) if e.path != own]
    if not left:
        return None
    entry = left[0]
    bar = RecoveryBar(entry)
    win.centralWidget().layout().insertWidget(0, bar)

    def done(restore: bool) -> None:
        for e in left:  # answered: none of them is offered again (explorer sessions still lists them)
            autosave.dismiss(e)
        bar.hide()
        bar.deleteLater()
        if restore:
            restore_autosave(win, entry.path)

    bar.restore_btn.clicked.connect(lambda: done(True))
    bar.dismiss_btn.clicked.connect(lambda: done(False))
    win.recovery_bar = bar
    return bar


def restore_autosave(win, path: Path | str) -> bool:
    """Open an autosave like a session file, then say which runs stopped partway and how to continue them."""
    if not win.files.open_session(str(path), remember=False):
        return False
    layer = win.session.active_layer()
    if layer is not None:
        win.select_run(layer.run_id)  # its method and values in the method panel
    stopped = [r for r in win.session.runs.values()
               if r.explanation is not None and not r.explanation.complete and r.status != RunStatus.DONE]
    if stopped:
        can = [r for r in stopped if r.explanation.info.get("state") is not None]
        parts = ", ".join(f"{r.label} at {r.progress:.0%}" for r in stopped)
        how = (" — select one and use Run ▸ Continue (Ctrl+Shift+R) to go on from where it stopped"
               if can else "")
        win.show_info(f"Restored {Path(path).name}: stopped partway: {parts}{how}")
    return True


def _worker_ended(win) -> None:
    """The compute thread ended without being asked to: its run fails with a message (its partial map stays),
    the thread starts again with the model it had, and queued runs go on."""
    w = win.worker
    if w.stopping:
        return
    log.error("the compute thread ended unexpectedly; starting it again")
    for run in list(win.session.runs.values()):
        if run.status == RunStatus.RUNNING:
            win.runs.on_failed(run.id, run.generation, "the compute thread stopped unexpectedly while running it "
                                                       "(it was started again)")
    w.start()
