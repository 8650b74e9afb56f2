"""What the window says about where it stands, kept in step with the document: the progress line under the
method panel, the target in the status bar, the offer banner and the message bar.

One source of truth: the texts come from ``explorer.session.status`` (Qt-free), recomputed from the session
on every change that can make them wrong (a run added, changed or removed; a new photo, model, class or
predictions), so no banner or line keeps describing a run, photo or model that is gone. A new photo or model
also takes down the offer banner and the last message, which were about the previous one.
"""

from __future__ import annotations

from PySide6.QtCore import QObject

from explorer.session import status
from explorer.session.document import RunStatus


class Narrator(QObject):
    def __init__(self, win):
        super().__init__(win)
        self.win = win
        s = win.session
        s.run_added.connect(lambda _run: self.refresh())
        s.run_changed.connect(self._on_run_changed)
        s.run_removed.connect(self._on_run_removed)
        s.image_changed.connect(self._on_context_changed)
        s.model_changed.connect(self._on_model_changed)
        s.predictions_changed.connect(self.refresh_target)
        s.target_changed.connect(self.refresh_target)
        win.runs.slow.connect(self.offer_quick)
        self._model = s.model_choice
        self._quick_for: int | None = None  # the run the Quick-settings offer is about, while it is up
        self.refresh()
        self.refresh_target()

    def refresh(self) -> None:
        frac, text = status.progress_line(self.win.session, self.win.runs.elapsed())
        self.win.method_panel.set_progress(frac, text)

    def refresh_target(self) -> None:
        s = self.win.session
        t = s.effective_target()
        self.win.target_status.setText("target: –" if t is None else
                                       f"target: {s.class_name(t)}" + (" (top-1)" if s.target is None else ""))

    def _on_run_changed(self, run) -> None:
        self.refresh()
        if self._quick_for != run.id or self.win.follow_up.run_id != run.id:
            return
        pc = self._slow_pace(run)
        if pc is False:
            self.win.follow_up.withdraw(run.id)  # "needs 2 min more" must not outlive the run, or a faster pace
            self._quick_for = None
        elif pc is not None:  # still slow: the time left counts down with the run, not frozen at the offer
            self.win.follow_up.label.setText(self._quick_text(run, pc))

    def _slow_pace(self, run):
        """The run's pace while the Quick offer still holds (it computes and its estimate is still over
        status.SLOW_S; the first estimate includes the warm-up and can be several times too long), None while
        there is no estimate yet, False once the offer no longer holds."""
        if run.status != RunStatus.RUNNING:
            return False
        pc = status.pace(run, self.win.runs.elapsed().get(run.id))
        if pc is None:
            return None
        return pc if pc.left_s > status.SLOW_S else False

    def _on_run_removed(self, run) -> None:
        self.win.follow_up.withdraw(run.id)
        self.refresh()

    def _on_context_changed(self) -> None:
        """A new photo (or session): what was said about the previous one no longer holds."""
        self.win.follow_up.withdraw()
        self.win.messages.hide()
        self.refresh()
        self.refresh_target()

    def _on_model_changed(self) -> None:
        if self.win.session.model_choice != self._model:  # another model asked for (not its info arriving)
            self._model = self.win.session.model_choice
            self._on_context_changed()
        else:
            self.refresh()

    def offer_quick(self, run, pace: status.Pace) -> None:
        """A run would take long: offer its method's Quick settings, which take seconds."""
        self.win.follow_up.offer(self._quick_text(run, pace), "Use Quick settings",
                                 lambda rid=run.id: self._use_quick(rid), run.id)
        self._quick_for = run.id

    def _quick_text(self, run, pace: status.Pace) -> str:
        entry = self.win.runs.entry(run.method)
        quick = ", ".join(f"{k} = {v}" for k, v in (entry.quick if entry is not None else {}).items())
        return (f"<b>{run.label}</b> needs about <b>{status.duration(pace.left_s)}</b> more ({pace.rate})."
                f" Its Quick settings ({quick}) give a coarser map in seconds.")

    def _use_quick(self, run_id: int) -> None:
        if self.win.runs.use_quick(run_id):
            self.win.select_run(run_id)  # the method panel shows the values it now runs with


def install(win) -> Narrator:
    return Narrator(win)
