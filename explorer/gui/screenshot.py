"""``explorer ... --screenshot OUT.png``: wait until the window has settled, save a picture of the whole window
and quit.

Settled means: the run the command line started has ended (done, failed or cancelled), or, without a run, the
photo's predictions are shown; a model or a prediction that fails settles it too (the picture shows the
message). The exit code is 0 when everything worked, 1 when the run, the model or the prediction failed or
the wait gave up (after ``SCREENSHOT_TIMEOUT_S``), 2 when the picture could not be written. What was printed
before this module existed is printed unchanged: scripts and tests read it.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer

from explorer.core.errors import ExplorerError
from explorer.io.safe_files import atomic_path
from explorer.session.document import RunStatus

SCREENSHOT_TIMEOUT_S = 900
SETTLE_MS = 400  # after the last event, for the final repaint


class Screenshot:
    """Armed on a shown window: ``rc`` is the exit code once the application's loop has ended."""

    def __init__(self, win, app, out: str, run_id: int | None, rc: int = 0):
        self.win, self.app, self.out, self.run_id, self.rc = win, app, out, run_id, rc

    def arm(self, wait_for_predictions: bool) -> "Screenshot":
        """Shoot once the run settles, or once predictions are shown (``wait_for_predictions``), or at once."""
        win = self.win
        if self.run_id is not None:
            win.run_settled.connect(self._settled)
        elif wait_for_predictions:
            win.predictions_shown.connect(lambda: self._settled())
        else:
            QTimer.singleShot(SETTLE_MS, self.shoot)
        win.model_error.connect(self._failed)
        win.worker.job_failed.connect(self._failed)  # the photo's prediction failed: no predictions will come
        QTimer.singleShot(SCREENSHOT_TIMEOUT_S * 1000, self._too_long)
        return self

    def _settled(self, rid: int | None = None) -> None:
        if self.run_id is not None and rid is not None and rid != self.run_id:
            return
        if self.run_id is not None:
            run = self.win.session.runs.get(self.run_id)
            if run is None or run.status != RunStatus.DONE:
                self.rc = 1
        QTimer.singleShot(SETTLE_MS, self.shoot)

    def _failed(self, _msg: str) -> None:
        self.rc = 1
        if self.run_id is None:
            QTimer.singleShot(SETTLE_MS, self.shoot)

    def _too_long(self) -> None:
        print(f"explorer: error: gave up waiting after {SCREENSHOT_TIMEOUT_S} s", file=sys.stderr)
        self.rc = 1
        self.shoot()

    def shoot(self) -> None:
        win = self.win
        self.app.processEvents()
        win.canvas.flush()  # layers still being coloured on the render thread: their newest colours
        try:
            with atomic_path(self.out) as tmp:  # never a half-written picture under the final name
                if not win.grab().save(str(tmp), "PNG"):
                    raise OSError("Qt could not write the PNG")
            ok = True
        except ExplorerError:
            ok = False
        if not ok:
            print(f"explorer: error: cannot write the screenshot {self.out}", file=sys.stderr)
            self.rc = 2
        else:
            print(f"screenshot written to {self.out}")
            for layer in win.session.layers:  # what the picture shows, for scripts and tests
                run = win.session.runs.get(layer.run_id)
                if layer.visible and run is not None and run.explanation is not None:
                    how = "complete" if run.explanation.complete else f"partial, {run.progress:.0%}"
                    print(f"shown: {layer.label} ({how})")
        win.close()
        self.app.quit()
