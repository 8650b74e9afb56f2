"""The runs of a session and the compute behind them, without Qt: ``RunController``.

The controller owns what happens to runs: starting one (refusing it when the image, the method or a prior is
missing), re-queueing it as a new generation (and whether it may resume from its stored state, which the
method decides: ``Method.resumable``, reached through the catalog), cancelling and removing it, the prior
maps it is submitted with, and taking in what the compute side reports, stale results dropped. It writes
nothing itself: every change goes through a ``Session`` method, which emits the event views listen to.

Compute is an ``Executor``: the Qt compute worker in the app, a plain object in tests. Its results come back
as calls to the ``on_*`` methods, on the thread that owns the session (the GUI thread: ``workers/relay.py``).
What the user should read comes out of ``message`` as ``(Notice, text)``; the window decides how to show it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import numpy as np

from explorer.core.cancel import CancelToken
from explorer.core.catalog import CatalogEntry, Family
from explorer.core.errors import ExplorerError
from explorer.session import priors as prior_maps
from explorer.session import status
from explorer.session.document import Run, RunStatus, Session, Target
from explorer.session.events import Signal


@dataclass
class RunJob:
    """One request to compute a generation of a run; ``target`` may still be a class name."""

    run_id: int
    generation: int
    method: str
    params: dict[str, Any]
    target: int | str | None = None
    seed: int = 0
    state: dict | None = None  # a previous generation's resumable state, when the method may continue from it
    priors: dict[str, Any] = field(default_factory=dict)
    cancel: CancelToken = field(default_factory=CancelToken)


class Executor(Protocol):
    """What the controller needs from the compute side (``workers.compute.ComputeWorker`` is one)."""

    def submit(self, job: RunJob) -> Any: ...

    def cancel(self, run_id: int | None = None) -> None:
        """Stop ``run_id``'s generations (every run's when None): queued ones are skipped, a running one stops."""

    def set_image(self, rgb: np.ndarray, token: int = 0) -> None:
        """Use ``rgb`` from now on; its predictions come back with ``token``."""


class Notice(StrEnum):
    """How loudly a message should be shown."""

    ERROR = "error"  # something the user asked for failed; the previous state is kept
    INFO = "info"  # worth reading (a cancelled run kept its partial map)
    STATUS = "status"  # a passing remark (a refused re-run)


class RunController:
    def __init__(self, session: Session, executor: Executor) -> None:
        self.session = session
        self.executor = executor
        self.catalog: list[CatalogEntry] = []
        self.image_token = 0
        self.stale_dropped = 0  # results that arrived for a generation no longer current
        self.message = Signal("message")  # (Notice, text)
        self.started = Signal("started")  # (run): a run this controller started
        self.settled = Signal("settled")  # (run id): done, cancelled or failed
        self.catalog_changed = Signal("catalog_changed")
        self.predictions_shown = Signal("predictions_shown")
        self.slow = Signal("slow")  # (run, Pace): once per generation, when its time left exceeds status.SLOW_S
        self.clock = time.monotonic
        self._started_at: dict[int, float] = {}  # run id -> when its current generation started computing
        self._slow_said: set[tuple[int, int]] = set()

    # ------------------------------------------------------------------ the catalog
    def entry(self, method: str) -> CatalogEntry | None:
        return next((e for e in self.catalog if e.name == method), None)

    def on_catalog(self, entries: list[CatalogEntry]) -> None:
        """The method catalog (from the worker, which imports the registry); runs started before it arrived
        get their method's title."""
        self.catalog = list(entries)
        for run in list(self.session.runs.values()):
            e = self.entry(run.method)
            if e is not None and run.title in ("", run.method):
                self.session.set_run_title(run, e.title)
        self.catalog_changed.emit()

    # ------------------------------------------------------------------ the image
    def set_image(self, rgb: np.ndarray, path: str | None = None) -> None:
        """A new photo: every run is cancelled and dropped, and predictions of the previous one are ignored."""
        self.executor.cancel(None)
        self.session.set_image(rgb, path)
        self.image_token += 1
        self.executor.set_image(rgb, self.image_token)

    def on_predictions(self, preds: list, token: int) -> None:
        if token != self.image_token:
            return  # for a photo that has been replaced since
        self.session.set_predictions(preds)
        self.predictions_shown.emit()
        warning = getattr(preds, "warning", "")
        if warning:  # likely untrained weights: every map would explain a model that knows nothing
            self._say(Notice.INFO, f"model {self.session.model_choice.label}: {warning}")

    # ------------------------------------------------------------------ user actions
    def start(self, method: str, values: dict, seed: int = 0, target: int | str | None = None) -> Run | None:
        """A new run of ``method`` (``target``: a class index or name; None = the session's target, else top-1).
        None, and why in ``message``, when it cannot start."""
        if self.session.image is None:
            self._say(Notice.ERROR, "Open an image first")
            return None
        e = self.entry(method)
        if e is not None and not e.available:
            self._say(Notice.ERROR, f"{e.title} is unavailable: {e.reason}")
            return None
        if target is None:
            target = self.session.target
        if e is not None and e.class_agnostic:
            target = None
        if not self._priors_ok(method, values):
            return None
        run = self.session.new_run(method, values, target if isinstance(target, int) else None, seed,
                                   title=e.title if e else method)
        self._submit(run, target=target)
        self.started.emit(run)
        return run

    def requeue(self, run: Run, params: dict | None = None, target: int | None | Target = Target.KEEP,
                seed: int | None = None) -> bool:
        """A new generation of ``run``; its current maps stay on screen until the new ones arrive. False (the
        run keeps its map and status, ``message`` says why) when a prior it names cannot be used."""
        if not self._priors_ok(run.method, params if params is not None else run.params, run.id):
            return False
        state = self._resume_state(run, params)
        if seed is not None and int(seed) != run.seed:
            state = None  # another seed draws other probes: nothing to continue from
        self.executor.cancel(run.id)
        self.session.requeue(run, params, target, seed)
        self._submit(run, state)
        return True

    def resume(self, run_id: int | None) -> bool:
        """Continue a run that stopped partway (cancelled, failed, or restored from an autosave) from its stored
        state: only the samples it had not scored are computed. False, and why in ``message``, when it cannot."""
        run = self.session.runs.get(run_id) if run_id is not None else None
        if run is None:
            self._say(Notice.STATUS, "Select the run to continue first")
            return False
        exp = run.explanation
        if run.active or exp is None or exp.complete:
            what = "is still running" if run.active else ("has no map yet" if exp is None else "is complete")
            self._say(Notice.STATUS, f"{run.label} {what}: nothing to continue")
            return False
        state = exp.info.get("state")
        if state is None:
            self._say(Notice.STATUS, f"{run.label} keeps no state to continue from: run it again instead")
            return False
        # the method checks the state against the run (seed, target, image, parameters) and says if it restarts
        self.executor.cancel(run.id)
        self.session.requeue(run)
        self._submit(run, state)
        return True

    def edit(self, run_id: int | None, method: str, values: dict, seed: int) -> bool:
        """A live parameter of ``run_id`` changed in the method panel: re-run it (if it is that method's)."""
        run = self.session.runs.get(run_id) if run_id is not None else None
        if run is None or run.method != method:
            return False
        return self.requeue(run, values, seed=seed)

    def for_class(self, run_id: int | None, start: bool = True) -> Run | None:
        """The session's class changed: the run that answers ``run_id``'s request for the new class.

        A run belongs to (image, model, class, method, parameters, seed). When one of the new class with the
        same method, parameters and seed exists (finished or still computing) it is returned, to be shown at
        once; otherwise, with ``start``, a new run is started beside the old ones, which keep their maps (a
        run 53 % done for "cup" is never thrown away because "espresso" was clicked). None when nothing is
        to change: no run, its class already, a method that ignores the class, a run of another model."""
        run = self.session.runs.get(run_id) if run_id is not None else None
        wanted = self.session.effective_target()
        if run is None or wanted is None or self.session.is_stale(run) or self.class_of(run) == wanted:
            return None
        e = self.entry(run.method)
        if e is not None and e.class_agnostic:
            return None
        twin = self.find(run.method, run.params, run.seed, wanted)
        if twin is not None or not start:
            return twin
        return self.start(run.method, dict(run.params), run.seed, self.session.target)

    def class_of(self, run: Run) -> int | None:
        """The class ``run`` explains (its top-1 class when it was asked for none)."""
        return prior_maps.run_class(self.session, run)

    def find(self, method: str, values: dict, seed: int, target: int) -> Run | None:
        """The newest run of this image and model for ``target`` with these settings that is finished or
        computing (a cancelled or failed one is not reused), else None."""
        e = self.entry(method)
        same = (lambda a, b: self._resolved(e, a) == self._resolved(e, b)) if e is not None else (
            lambda a, b: a == b)
        found = [r for r in self.session.current_runs()
                 if r.method == method and r.seed == int(seed) and self.class_of(r) == target
                 and (r.active or r.status == RunStatus.DONE) and same(r.params, values)]
        return max(found, key=lambda r: r.id, default=None)

    def cancel(self, run_id: int) -> None:
        run = self.session.runs.get(run_id)
        if run is None or not run.active:
            return
        self.executor.cancel(run_id)
        if run.status == RunStatus.QUEUED:  # nothing will come back for it: settle it here
            self.session.cancel(run_id, run.generation)
            self.settled.emit(run_id)

    def cancel_active(self) -> None:
        for run in list(self.session.runs.values()):
            if run.active:
                self.cancel(run.id)

    def remove(self, run_id: int) -> None:
        run = self.session.runs.get(run_id)
        if run is not None:
            self.executor.cancel(run_id)
            self.session.remove_run(run)

    def prior_choices(self, own_method: str | None, exclude: int | None = None) -> list[prior_maps.PriorChoice]:
        """What the prior picker of ``own_method`` lists: finished runs and layers, the methods that can run
        first (not another refinement, not the method itself), flat."""
        return prior_maps.choices(self.session, self._prior_methods(own_method), exclude=exclude)

    def default_prior(self, own_method: str | None, exclude: int | None = None) -> str | None:
        """The prior a new run of ``own_method`` starts on: an existing finished RISE (or other ranking) map of
        this photo, model and class, by reference; None: the parameter's default (run RISE first)."""
        return prior_maps.default_prior(self.session, [n for n, _t in self._prior_methods(own_method)], exclude)

    def _prior_methods(self, own_method: str | None) -> list[tuple[str, str]]:
        """(name, title) of the methods a refinement may start from: not another refinement, not itself."""
        return [(e.name, e.title) for e in self.catalog
                if e.name != own_method and e.family != Family.REFINEMENT and e.available]

    # ------------------------------------------------------------------ what the executor reports
    def on_started(self, run_id: int, generation: int) -> None:
        if self.session.mark_running(run_id, generation):
            self._started_at[run_id] = self.clock()

    def on_progress(self, run_id: int, generation: int, progress: float, message: str) -> None:
        if not self.session.set_progress(run_id, generation, progress, message):
            return
        run = self.session.runs[run_id]
        pc = status.pace(run, self.elapsed().get(run_id))
        if pc is not None and pc.left_s > status.SLOW_S and (run_id, generation) not in self._slow_said:
            e = self.entry(run.method)
            quick = e.quick if e is not None else None
            if quick and any(run.params.get(k) != v for k, v in quick.items()):
                self._slow_said.add((run_id, generation))
                self.slow.emit(run, pc)

    def elapsed(self) -> dict[int, float]:
        """Seconds each running run's current generation has been computing."""
        now = self.clock()
        return {rid: now - t for rid, t in self._started_at.items()
                if rid in self.session.runs and self.session.runs[rid].status == RunStatus.RUNNING}

    def use_quick(self, run_id: int) -> bool:
        """Re-run ``run_id`` with its method's Quick settings (offered when it would take long)."""
        run = self.session.runs.get(run_id)
        e = self.entry(run.method) if run is not None else None
        if run is None or e is None or not e.quick:
            return False
        return self.requeue(run, dict(run.params, **e.quick))

    def on_partial(self, run_id: int, generation: int, explanation) -> None:
        self._accept(run_id, generation, explanation, False)

    def on_finished(self, run_id: int, generation: int, explanation) -> None:
        self._accept(run_id, generation, explanation, True)

    def on_failed(self, run_id: int, generation: int, reason: str) -> None:
        """The generation failed: the run keeps the map it had (if any) and says why."""
        run = self.session.runs.get(run_id)
        if not self.session.fail(run_id, generation, reason):
            self.stale_dropped += 1
            return
        kept = " (its previous map is kept)" if run.explanation is not None else ""
        self._say(Notice.ERROR, f"{run.label} — {reason}{kept}")
        self.settled.emit(run_id)

    def on_cancelled(self, run_id: int, generation: int, reason: str) -> None:
        """The generation was cancelled before its first result."""
        if not self.session.cancel(run_id, generation, reason):
            self.stale_dropped += 1
            return
        self.settled.emit(run_id)

    # ------------------------------------------------------------------ internals
    def _accept(self, run_id: int, generation: int, explanation, done: bool) -> None:
        if not self.session.accept(run_id, generation, explanation, done):
            self.stale_dropped += 1
            return
        if done:
            if explanation.cancelled:
                run = self.session.runs[run_id]
                self._say(Notice.INFO, f"{run.label} cancelled at {explanation.progress * 100:.0f} %: "
                                       "its partial map is kept")
            self.settled.emit(run_id)

    def _submit(self, run: Run, state: dict | None = None, target: int | str | None | Target = Target.KEEP) -> None:
        target = run.target if target is Target.KEEP else target
        self.executor.submit(RunJob(run.id, run.generation, run.method, dict(run.params), target, run.seed, state,
                                    prior_maps.priors_for(self.session, run)))

    def _priors_ok(self, method: str, values: dict, run_id: int | None = None) -> bool:
        """False (and why, as a status message) when a prior parameter names a run that is gone or unfinished."""
        e = self.entry(method)
        for p in e.params if e is not None else ():
            if p.picker == "prior":
                try:
                    prior_maps.check_prior(self.session, values.get(p.name), run_id)
                except ExplorerError as exc:
                    self._say(Notice.STATUS, f"{e.title} not run — {exc}")
                    return False
        return True

    def _resume_state(self, run: Run, params: dict | None) -> dict | None:
        """The finished generation's state when the method may continue from it to ``params``, else None."""
        if params is None or run.explanation is None:
            return None
        state = run.explanation.info.get("state")
        e = self.entry(run.method)
        if state is None or e is None:
            return None
        return state if e.resumable(self._resolved(e, run.params), self._resolved(e, params)) else None

    def _resolved(self, entry: CatalogEntry, values: dict) -> dict:
        """``values`` completed and coerced by the method's Params (as given when they do not validate)."""
        try:
            return entry.params.resolve(values, str(self.session.model_info.get("device", "cpu")))
        except ExplorerError:
            return dict(values)

    def _say(self, level: Notice, text: str) -> None:
        self.message.emit(level, text)
