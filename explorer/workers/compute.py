"""The compute worker: one QThread that owns the model and runs method generators.

The GUI thread never touches torch. It puts jobs on a thread-safe queue (load a model, set the image, run a
method, call a function) and listens to Qt signals, which Qt delivers on the GUI thread. Heavy imports
(torch, timm, the method registry) happen here, on the worker thread, after the window is up; the method
catalog arrives by ``catalog_ready``.

Runs: every job carries ``(run_id, generation)``. Submitting a newer generation of a run cancels the older
one's token, and a queued job whose generation is no longer the latest is skipped unseen. Partial results
are throttled (at most one every ``throttle_s`` seconds; the final one always goes out) and their maps are
resampled to image space here (with their statistics), and the canvas colours them on its render thread,
so the GUI thread only swaps finished images in. The session drops whatever arrives
stale. Errors: an ``ExplorerError`` becomes its message; out-of-memory a clear message; anything else a
message plus a logged traceback, never a crash of the thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QThread, Signal

from explorer.core.catalog import CatalogEntry
from explorer.core.errors import Cancelled, ExplorerError
from explorer.session.controller import RunJob

log = logging.getLogger(__name__)

_STOP = object()


def describe_error(exc: BaseException, what: str) -> str:
    """A one-paragraph user message for an exception raised while doing ``what``."""
    if isinstance(exc, ExplorerError):
        return str(exc)
    try:
        from explorer.models.device import is_oom

        oom = is_oom(exc)
    except Exception:  # noqa: BLE001 - describing an error must never raise
        oom = isinstance(exc, MemoryError)
    if oom:
        return (f"out of memory while {what}: lower the batch size or the number of samples, or use a "
                "smaller model input; results computed so far are kept")
    log.error("unexpected error while %s:\n%s", what, "".join(traceback.format_exception(exc)))
    return f"unexpected error while {what}: {type(exc).__name__}: {exc} (details in the log)"


def _release_memory() -> None:
    """After a failed run (out of memory, typically), hand the device's cached blocks back before the next one."""
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - tidying up must never raise
        pass


def _prepare_display(exp) -> None:
    """Resample the maps to image space, cache their display statistics and decide their display defaults
    (which maps sit on a baseline) here, off the GUI thread; the canvas's render thread colours them."""
    from explorer.session import display, render

    display.precompute_display_hints(exp)
    for m in exp.maps.values():
        st = render.stats(m)
        st.nan_mask(m)
        d = render.display_map(m)
        render.stats(d).nan_mask(d)



class PredictionList(list):
    """The top-k ``(index, name, prob)`` of the current image, and ``warning``: the model's own remark on them
    (near-uniform scores, ``LoadedModel.uniform_warning``), '' when there is none."""

    warning: str = ""

class ComputeWorker(QThread):
    """The executor of the GUI's ``RunController`` (``submit``, ``cancel``, ``set_image``), on its own thread."""

    catalog_ready = Signal(object)  # list[CatalogEntry]
    model_loading = Signal(str)
    model_loaded = Signal(object)  # dict: info, labels, layer_names
    model_failed = Signal(str)  # loading a model failed: the worker keeps the model it had
    # any other job failed (the image's prediction, the method catalog, an unexpected error): the model is
    # the one ``model_loaded`` announced last, so the window must not restore an older choice
    job_failed = Signal(str)
    predictions_ready = Signal(object, int)  # [(index, name, prob)], image token
    run_started = Signal(int, int)
    run_progress = Signal(int, int, float, str)
    run_partial = Signal(int, int, object)  # run id, generation, Explanation
    run_finished = Signal(int, int, object)
    run_failed = Signal(int, int, str)
    run_cancelled = Signal(int, int, str)  # cancelled before its first result (a later cancel finishes the run)
    call_done = Signal(int, object)
    call_failed = Signal(int, str)
    busy_changed = Signal(bool)

    def __init__(self, parent=None, throttle_s: float = 0.08, topk: int = 5):
        super().__init__(parent)
        self.throttle_s = throttle_s
        self.topk = topk
        self._queue: "queue.Queue[Any]" = queue.Queue()
        self._lock = threading.Lock()
        self._latest: dict[int, int] = {}  # run id -> newest generation submitted
        self._dead: dict[int, int] = {}  # run id -> generations up to this one were cancelled
        self._active: dict[int, RunJob] = {}
        self._calls = 0
        self.model = None  # owned by this thread
        self.image = None
        self.image_token = 0
        self.catalog: list[CatalogEntry] = []
        self.stopping = False
        self.setObjectName("explorer-compute")

    # ------------------------------------------------------------------ API for the GUI thread
    def load_model(self, choice, trust_pickle: bool = False) -> None:
        """Load ``choice``; ``trust_pickle`` is the user's act for this one load (never part of the choice)."""
        self._queue.put(("model", (choice, bool(trust_pickle))))

    def set_model(self, model) -> None:
        """Use an already loaded ``LoadedModel`` (embedding, tests) instead of loading one."""
        self._queue.put(("model_object", model))

    def set_image(self, rgb, token: int = 0) -> None:
        self._queue.put(("image", (rgb, token)))

    def submit(self, job: RunJob) -> RunJob:
        with self._lock:
            self._latest[job.run_id] = max(job.generation, self._latest.get(job.run_id, 0))
            old = self._active.get(job.run_id)
            if old is not None and old.generation < job.generation:
                old.cancel.cancel()
        self._queue.put(("run", job))
        return job

    def cancel(self, run_id: int | None = None) -> None:
        """Cancel a run (all runs when None): the active one stops at its next step, queued ones are skipped."""
        with self._lock:
            ids = list(self._latest) if run_id is None else [run_id]
            for rid in ids:
                self._dead[rid] = self._latest.get(rid, 0)  # every generation submitted so far is cancelled
                job = self._active.get(rid)
                if job is not None:
                    job.cancel.cancel()

    def call(self, fn: Callable[[Any, Any], Any]) -> int:
        """Run ``fn(model, image)`` on the worker thread; the result comes back by ``call_done(token, result)``."""
        self._calls += 1
        self._queue.put(("call", (self._calls, fn)))
        return self._calls

    def stop(self, wait_ms: int = 10000) -> None:
        self.stopping = True  # the thread ends on purpose (gui/recovery.py restarts one that ends otherwise)
        self.cancel(None)
        self._queue.put(_STOP)
        if self.isRunning() and not self.wait(wait_ms):
            log.warning("the compute worker did not stop within %d ms (busy in a long call)", wait_ms)

    def active_runs(self) -> list[tuple[int, int]]:
        """(run id, generation) of the runs computing now."""
        with self._lock:
            return [(j.run_id, j.generation) for j in self._active.values()]

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._active)

    # ------------------------------------------------------------------ the thread
    def run(self) -> None:  # QThread entry point
        try:
            self._load_catalog()
        except Exception as exc:  # noqa: BLE001 - reported to the GUI; the thread must survive
            self.job_failed.emit(describe_error(exc, "loading the methods"))
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            kind, payload = item
            try:
                if kind == "model":
                    self._do_model(*payload)
                elif kind == "model_object":
                    self._adopt_model(payload)
                elif kind == "image":
                    self.image, self.image_token = payload
                    self._do_predict()
                elif kind == "run":
                    self._do_run(payload)
                elif kind == "call":
                    self._do_call(*payload)
            except Exception as exc:  # the thread must survive anything
                log.exception("worker job %s failed", kind)
                self.job_failed.emit(describe_error(exc, f"handling a {kind} job"))

    def _load_catalog(self) -> None:
        from explorer.methods import METHODS, method_names

        self.catalog = [METHODS.get(name).catalog_entry() for name in method_names()]
        self.catalog_ready.emit(self._public_catalog())

    def _public_catalog(self) -> list[CatalogEntry]:
        """The entries as offered with the loaded model: a method that needs what it lacks is unavailable."""
        if self.model is None:
            return list(self.catalog)
        return [e.on_model(self.model.supports, self.model.kind) for e in self.catalog]

    def _do_model(self, choice, trust_pickle: bool = False) -> None:
        label = getattr(choice, "label", str(choice))
        self.model_loading.emit(label)
        try:
            from explorer.models import load_model

            model = load_model(choice.spec, weights=choice.weights, labels=choice.labels, device=choice.device,
                               trust_pickle=trust_pickle,
                               allow_download=False if choice.offline else None, input_size=choice.input_size,
                               engine=getattr(choice, "engine", None),
                               **(choice.load_options() if hasattr(choice, "load_options") else {}))
            try:
                layer_names = model.layer_names()
            except Exception:  # noqa: BLE001 - a model without discoverable layers still works
                layer_names = []
        except Exception as exc:  # noqa: BLE001 - reported to the GUI; the thread must survive
            self.model_failed.emit(describe_error(exc, f"loading the model {label}"))
            return
        self._adopt_model(model, layer_names)

    def _adopt_model(self, model, layer_names: list[str] | None = None) -> None:
        if layer_names is None:
            try:
                layer_names = model.layer_names()
            except Exception:  # noqa: BLE001 - a model without discoverable layers still works
                layer_names = []
        self.model = model
        info = model.describe()
        try:  # the layer "auto" picks, shown in the GUI's layer box (a transformer's block norm, say)
            default_layer = model.default_layer() if layer_names else None
        except Exception:  # noqa: BLE001 - no default is fine: "auto" is then left unexplained
            default_layer = None
        self.model_loaded.emit({"info": info, "labels": list(model.labels), "layer_names": layer_names,
                                "default_layer": default_layer})
        if self.catalog:
            self.catalog_ready.emit(self._public_catalog())
        self._do_predict()

    def _do_predict(self) -> None:
        if self.model is None or self.image is None:
            return
        from explorer.methods.base import prepare_context

        try:
            ctx = prepare_context(self.model, self.image)
            preds = self.model.predict(ctx.x, max(self.topk, 5))
        except Exception as exc:  # noqa: BLE001 - reported to the GUI; the thread must survive
            self.job_failed.emit(describe_error(exc, "classifying the image"))
            return
        shown = PredictionList((p.index, p.name, p.prob) for p in preds)
        shown.warning = self.model.uniform_warning(preds)
        self.predictions_ready.emit(shown, self.image_token)

    def _current(self, job: RunJob) -> bool:
        with self._lock:
            return (self._latest.get(job.run_id, 0) == job.generation and job.generation > self._dead.get(job.run_id, 0)
                    and not job.cancel.cancelled)

    def _do_run(self, job: RunJob) -> None:
        if not self._current(job):
            return  # superseded or cancelled while queued
        what = f"running {job.method}"
        if self.model is None:
            self.run_failed.emit(job.run_id, job.generation, "no model is loaded: open a model first")
            return
        if self.image is None:
            self.run_failed.emit(job.run_id, job.generation, "no image is open")
            return
        with self._lock:
            self._active[job.run_id] = job
        self.busy_changed.emit(True)
        self.run_started.emit(job.run_id, job.generation)
        try:
            from explorer.methods import run as run_method

            last_emit = 0.0
            last_progress = 0.0
            for update in run_method(job.method, self.model, self.image, target=job.target, params=job.params,
                                     seed=job.seed, cancel=job.cancel, priors=job.priors or None,
                                     state=job.state):
                now = time.perf_counter()
                exp = update.explanation
                if update.done:
                    _prepare_display(exp)
                    self.run_finished.emit(job.run_id, job.generation, exp)
                    break
                if now - last_progress >= 0.03:
                    self.run_progress.emit(job.run_id, job.generation, float(update.progress), update.message)
                    last_progress = now
                if now - last_emit >= self.throttle_s:
                    _prepare_display(exp)
                    self.run_partial.emit(job.run_id, job.generation, exp)
                    last_emit = time.perf_counter()
        except Cancelled:
            self.run_cancelled.emit(job.run_id, job.generation, "cancelled before the first result")
        except BaseException as exc:  # noqa: BLE001 - even a SystemExit inside a method must not end the thread
            # the run fails with its message; the GUI keeps its last partial map (and state, to continue it)
            self.run_failed.emit(job.run_id, job.generation, describe_error(exc, what))
            _release_memory()
        finally:
            with self._lock:
                if self._active.get(job.run_id) is job:
                    del self._active[job.run_id]
            self.busy_changed.emit(False)

    def _do_call(self, token: int, fn) -> None:
        try:
            result = fn(self.model, self.image)
        except Exception as exc:  # noqa: BLE001 - reported to the GUI; the thread must survive
            self.call_failed.emit(token, describe_error(exc, "computing"))
            return
        self.call_done.emit(token, result)
