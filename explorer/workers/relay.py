"""The compute worker's reports, handed to a ``RunController`` on the GUI thread.

The worker emits from its own thread; a slot of a QObject that lives on the GUI thread makes Qt queue each
call there, where the session may be touched. The controller itself is plain Python, so this small QObject
stands between the two.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Slot

from explorer.session.controller import RunController
from explorer.workers.compute import ComputeWorker


class WorkerRelay(QObject):
    def __init__(self, worker: ComputeWorker, controller: RunController, parent: QObject | None = None):
        super().__init__(parent)
        self.controller = controller
        worker.catalog_ready.connect(self._catalog)
        worker.predictions_ready.connect(self._predictions)
        worker.run_started.connect(self._started)
        worker.run_progress.connect(self._progress)
        worker.run_partial.connect(self._partial)
        worker.run_finished.connect(self._finished)
        worker.run_failed.connect(self._failed)
        worker.run_cancelled.connect(self._cancelled)

    @Slot(object)
    def _catalog(self, entries) -> None:
        self.controller.on_catalog(entries)

    @Slot(object, int)
    def _predictions(self, preds, token: int) -> None:
        self.controller.on_predictions(preds, token)

    @Slot(int, int)
    def _started(self, rid: int, gen: int) -> None:
        self.controller.on_started(rid, gen)

    @Slot(int, int, float, str)
    def _progress(self, rid: int, gen: int, frac: float, msg: str) -> None:
        self.controller.on_progress(rid, gen, frac, msg)

    @Slot(int, int, object)
    def _partial(self, rid: int, gen: int, exp) -> None:
        self.controller.on_partial(rid, gen, exp)

    @Slot(int, int, object)
    def _finished(self, rid: int, gen: int, exp) -> None:
        self.controller.on_finished(rid, gen, exp)

    @Slot(int, int, str)
    def _failed(self, rid: int, gen: int, msg: str) -> None:
        self.controller.on_failed(rid, gen, msg)

    @Slot(int, int, str)
    def _cancelled(self, rid: int, gen: int, msg: str) -> None:
        self.controller.on_cancelled(rid, gen, msg)
