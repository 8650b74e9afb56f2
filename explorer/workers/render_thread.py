"""The render thread: colours layers for the canvas off the GUI thread.

While a method streams partial maps, each one used to be coloured on the GUI thread (levels, colormap
look-up, top-k masks at the photo's size: several ms per layer, tens of ms on a busy CPU), which is where the
GUI's longest pauses came from. The canvas now submits ``fn`` (a call of ``render.render_layer`` on the map
and a *snapshot* of the layer's display settings) and gets back the finished RGBA array by the ``done``
signal, which Qt delivers on the GUI thread; all the GUI thread then does is swap the array into the item.

Why a thread of its own rather than the compute worker: the display settings live in the GUI's session and
change under the user's hand while a method runs, and the compute worker would colour between model steps
(delaying the next batch, and a slider move would wait for a batch to finish). The heavy numpy parts
(arithmetic, ``take``, comparisons, sorting) release the GIL, so the GUI thread runs meanwhile.

Latest wins: a job submitted under a key that is still waiting replaces the waiting one (a fast stream or
a dragged slider never builds a backlog). Results carry the submitter's token; the canvas drops any whose
token is no longer the newest it asked for (a late render of an old map never overwrites a newer one).
The thread is a daemon that ends after a few idle seconds and starts again on the next job, so a canvas
that is simply dropped leaves nothing running.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Hashable

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)

IDLE_EXIT_S = 5.0  # an idle thread ends after this long; the next job starts a new one


class RenderThread(QObject):
    done = Signal(object, int, object)  # key, token, result of fn()
    failed = Signal(object, int, str)  # key, token, message

    def __init__(self, parent=None, name: str = "explorer-render"):
        super().__init__(parent)
        self._name = name
        self._cond = threading.Condition()
        self._jobs: dict[Hashable, tuple[int, Callable[[], Any]]] = {}  # insertion order: oldest first
        self._thread: threading.Thread | None = None
        self._closed = False
        self.coalesced = 0  # jobs replaced before they ran (tests, benchmarks)
        self.thread_ids: set[int] = set()  # idents of the threads that ran jobs (tests)

    def submit(self, key: Hashable, token: int, fn: Callable[[], Any]) -> None:
        """Run ``fn()`` on the render thread; its result comes back as ``done(key, token, result)``."""
        with self._cond:
            if self._closed:
                return
            if self._jobs.pop(key, None) is not None:
                self.coalesced += 1
            self._jobs[key] = (int(token), fn)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()

    def discard(self, key: Hashable) -> bool:
        """Forget a job for ``key`` that has not started (True when there was one)."""
        with self._cond:
            return self._jobs.pop(key, None) is not None

    def waiting(self) -> int:
        with self._cond:
            return len(self._jobs)

    def close(self) -> None:
        """Stop taking jobs; waiting ones are dropped, a running one finishes and its result is not sent."""
        with self._cond:
            self._closed = True
            self._jobs.clear()
            self._cond.notify_all()

    def _loop(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                if not self._jobs and not self._closed:
                    self._cond.wait(IDLE_EXIT_S)
                if self._closed or not self._jobs:
                    if self._thread is me:
                        self._thread = None  # the next submit starts a fresh thread
                    return
                key = next(iter(self._jobs))
                token, fn = self._jobs.pop(key)
            self.thread_ids.add(threading.get_ident())
            try:
                result = fn()
            except Exception as exc:  # a bad map must not end the thread
                log.exception("rendering %r failed", key)
                ok, payload = False, f"{type(exc).__name__}: {exc}"
            else:
                ok, payload = True, result
            with self._cond:  # under the lock: close() cannot slip in between the check and the emit
                if self._closed:
                    continue  # the loop ends at the top; nobody listens any more
                try:  # queued to the receivers' thread: this only posts an event
                    (self.done if ok else self.failed).emit(key, token, payload)
                except RuntimeError:  # the Qt side of this object is gone (its window was deleted)
                    self._closed = True
