"""The RunController without Qt or torch: a plain-Python executor records what it is asked to compute, and
the test plays the worker's part by calling the controller's ``on_*`` methods."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from explorer.core.catalog import CatalogEntry, Family
from explorer.core.params import Param, Params
from explorer.core.types import MethodResult, Placement
from explorer.session.controller import Notice, RunController, RunJob
from explorer.session.document import RunStatus, Session, Target


class FakeExecutor:
    """Records submissions, cancellations and images, as the compute worker would receive them."""

    def __init__(self) -> None:
        self.jobs: list[RunJob] = []
        self.cancelled: list[int | None] = []
        self.images: list[int] = []

    def submit(self, job: RunJob) -> RunJob:
        self.jobs.append(job)
        return job

    def cancel(self, run_id: int | None = None) -> None:
        self.cancelled.append(run_id)

    def set_image(self, rgb, token: int = 0) -> None:
        self.images.append(token)


def _grown_iterations(old: dict, new: dict) -> bool:  # what BOREx answers, without importing it (torch)
    changed = {k for k in set(old) | set(new) if old.get(k) != new.get(k)}
    return changed == {"iterations"} and new["iterations"] > old["iterations"]


CATALOG = [
    CatalogEntry("rise", "RISE", Family.PERTURBATION, available=True,
                 params=Params(Param("n", "int", 100, "masks", low=2, high=10000)),
                 resumable=lambda old, new: False),
    CatalogEntry("lime", "LIME", Family.PERTURBATION, available=False, reason="needs gradients", params=Params()),
    CatalogEntry("dino", "DINO attention", Family.ATTENTION, class_agnostic=True, available=True, params=Params()),
    CatalogEntry("borex", "BOREx", Family.REFINEMENT, available=True,
                 params=Params(Param("iterations", "int", 50, "GP iterations", low=1, high=500),
                               Param("kappa", "float", 10.0, "UCB weight", low=0.0, high=100.0),
                               Param("prior", "str", "rise", "prior map", live=False, picker="prior")),
                 resumable=_grown_iterations),
]


def _exp(params: dict, method="rise", progress=1.0, cancelled=False, info=None, value=0.0) -> MethodResult:
    raw = {"salient": np.full((4, 4), value, np.float32)}
    return MethodResult(method, raw, {"salient": False}, Placement.whole((8, 8), (4, 4)), 3, "cat", dict(params), 0,
                       "m", {"seconds": 0.1}, dict(info or {}), progress, progress >= 1.0 and not cancelled,
                       cancelled)


@pytest.fixture
def setup():
    session = Session()
    ex = FakeExecutor()
    ctl = RunController(session, ex)
    said, settled, started = [], [], []
    ctl.message.connect(lambda level, text: said.append((level, text)))
    ctl.settled.connect(settled.append)
    ctl.started.connect(started.append)
    ctl.on_catalog(CATALOG)
    ctl.set_image(np.zeros((8, 8, 3), np.uint8), "img.png")
    ctl.on_predictions([(3, "cat", 0.9), (5, "dog", 0.05)], ctl.image_token)  # the photo's top-1 is class 3
    return session, ex, ctl, said, settled, started


def _finish(ctl, run, params=None, **kw):
    ctl.on_started(run.id, run.generation)
    ctl.on_finished(run.id, run.generation, _exp(params if params is not None else run.params, run.method, **kw))


def test_the_module_imports_neither_qt_nor_torch():
    code = ("import sys\nimport explorer.session.controller\n"
            "print(sorted(m for m in ('torch', 'PySide6', 'pyqtgraph') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_start_submits_a_job_and_refuses_what_cannot_run(setup):
    session, ex, ctl, said, settled, started = setup
    run = ctl.start("rise", {"n": 10}, seed=4)
    assert started == [run] and run.title == "RISE" and run.status == RunStatus.QUEUED
    job = ex.jobs[-1]
    assert (job.run_id, job.generation, job.method, job.params, job.target, job.seed) == (run.id, 1, "rise",
                                                                                         {"n": 10}, None, 4)
    session.set_target(7)  # the session's class is the default target
    assert ctl.start("rise", {}).target == 7 and ex.jobs[-1].target == 7
    assert ctl.start("rise", {}, target="tabby").target is None and ex.jobs[-1].target == "tabby"
    assert ctl.start("dino", {}, target=5).target is None and ex.jobs[-1].target is None  # class-agnostic
    n = len(ex.jobs)
    assert ctl.start("lime", {}) is None and said[-1] == (Notice.ERROR, "LIME is unavailable: needs gradients")
    empty = RunController(Session(), FakeExecutor())
    assert empty.start("rise", {}) is None
    assert len(ex.jobs) == n and len(session.runs) == 4


def test_results_flow_into_the_session_and_stale_ones_are_dropped(setup):
    session, ex, ctl, said, settled, started = setup
    run = ctl.start("rise", {"n": 10})
    ctl.on_started(run.id, 1)
    assert run.status == RunStatus.RUNNING
    ctl.on_progress(run.id, 1, 0.5, "half")
    ctl.on_partial(run.id, 1, _exp({"n": 10}, progress=0.5))
    assert run.progress == 0.5 and session.layers_of(run) and settled == []
    assert ctl.requeue(run, {"n": 20})
    assert ex.cancelled[-1] == run.id and run.generation == 2 and ex.jobs[-1].generation == 2
    old = run.explanation
    ctl.on_finished(run.id, 1, _exp({"n": 10}, value=9.0))  # the first generation, late
    ctl.on_failed(run.id, 1, "too late")
    assert ctl.stale_dropped == 2 and run.explanation is old and run.status == RunStatus.QUEUED and settled == []
    ctl.on_finished(run.id, 2, _exp({"n": 20, "p": 0.5}))
    assert run.status == RunStatus.DONE and settled == [run.id]
    assert run.params == {"n": 20, "p": 0.5}  # the parameters the result was computed with, defaults included


def test_an_error_keeps_the_previous_map_and_says_so(setup):
    session, ex, ctl, said, settled, started = setup
    run = ctl.start("rise", {"n": 10})
    _finish(ctl, run)
    exp = run.explanation
    ctl.requeue(run, {"n": 5000})
    ctl.on_failed(run.id, 2, "out of memory")
    assert run.status == RunStatus.ERROR and run.error == "out of memory" and run.explanation is exp
    assert said[-1] == (Notice.ERROR, f"{run.label} — out of memory (its previous map is kept)")
    assert settled == [run.id, run.id] and session.layers_of(run)


def test_cancel_settles_a_queued_run_and_asks_the_executor_for_a_running_one(setup):
    session, ex, ctl, said, settled, started = setup
    queued = ctl.start("rise", {})
    ctl.cancel(queued.id)
    assert ex.cancelled[-1] == queued.id and queued.status == RunStatus.CANCELLED and settled == [queued.id]
    running = ctl.start("rise", {})
    ctl.on_started(running.id, 1)
    ctl.cancel_active()
    assert ex.cancelled[-1] == running.id and running.status == RunStatus.RUNNING  # the worker says when it stops
    ctl.on_finished(running.id, 1, _exp({}, progress=0.4, cancelled=True))
    assert running.status == RunStatus.CANCELLED and running.explanation.progress == 0.4
    assert said[-1][0] == Notice.INFO and "partial map is kept" in said[-1][1]
    other = ctl.start("rise", {})
    ctl.on_started(other.id, 1)
    ctl.on_cancelled(other.id, 1, "cancelled before the first result")
    assert other.status == RunStatus.CANCELLED and other.explanation is None and settled[-1] == other.id


def test_remove_cancels_and_drops_the_run(setup):
    session, ex, ctl, said, settled, started = setup
    run = ctl.start("rise", {})
    ctl.on_started(run.id, 1)
    ctl.remove(run.id)
    assert ex.cancelled[-1] == run.id and run.id not in session.runs
    ctl.on_finished(run.id, 1, _exp({}))  # what was computing arrives after all
    assert ctl.stale_dropped == 1 and not session.layers


def test_priors_are_submitted_and_a_gone_or_unfinished_prior_refuses_the_run(setup):
    session, ex, ctl, said, settled, started = setup
    rise = ctl.start("rise", {})
    _finish(ctl, rise)
    borex = ctl.start("borex", {"prior": rise.label, "iterations": 3})
    priors = ex.jobs[-1].priors
    assert {"rise", "salient", rise.label} <= set(priors)
    np.testing.assert_array_equal(priors[rise.label], rise.explanation.raw["salient"])
    choices = [c.value for c in ctl.prior_choices("borex", exclude=borex.id)]
    assert choices == [rise.label, "rise", "dino", "flat"]  # no refinement, nothing unavailable
    _finish(ctl, borex)
    busy = ctl.start("rise", {})
    n = len(ex.jobs)
    assert ctl.start("borex", {"prior": busy.label}) is None
    assert said[-1][0] == Notice.STATUS and "not finished" in said[-1][1]
    ctl.remove(rise.id)
    assert not ctl.requeue(borex, {"prior": rise.label, "iterations": 3, "kappa": 5.0})
    assert "removed" in said[-1][1] and borex.generation == 1 and borex.status == RunStatus.DONE
    assert len(ex.jobs) == n


def test_borex_resumes_only_when_the_iteration_count_grew(setup):
    session, ex, ctl, said, settled, started = setup
    run = ctl.start("borex", {"prior": "flat", "iterations": 3})
    resolved = {"prior": "flat", "iterations": 3, "kappa": 10.0}
    _finish(ctl, run, resolved, info={"state": {"probes": [1, 2, 3]}})
    assert ctl.requeue(run, dict(resolved, iterations=5))
    assert ex.jobs[-1].state == {"probes": [1, 2, 3]}  # resumed
    _finish(ctl, run, dict(resolved, iterations=5), info={"state": {"probes": [1, 2, 3, 4, 5]}})
    for change in ({"iterations": 4}, {"kappa": 2.0}, {"iterations": 9, "kappa": 2.0}):
        ctl.requeue(run, {**resolved, "iterations": 5, **change})
        assert ex.jobs[-1].state is None, change
        _finish(ctl, run, dict(resolved, iterations=5), info={"state": {"probes": [1, 2, 3, 4, 5]}})
    ctl.requeue(run, dict(resolved, iterations=8), seed=3)  # another seed draws other probes
    assert ex.jobs[-1].state is None and run.seed == 3
    rise = ctl.start("rise", {"n": 10})
    _finish(ctl, rise, info={"state": {"x": 1}})
    ctl.requeue(rise, {"n": 20})
    assert ex.jobs[-1].state is None  # RISE does not resume


def test_the_real_borex_rule_matches_the_controllers_use():
    from explorer.methods import get_method

    borex = get_method("borex")
    old = borex.params.resolve({"iterations": 3})
    assert borex.resumable(old, dict(old, iterations=5))
    assert not borex.resumable(old, dict(old, iterations=2))
    assert not borex.resumable(old, dict(old, iterations=5, kappa=1.0))
    assert not get_method("rise").resumable({"n": 10}, {"n": 20})


def test_a_live_edit_changes_the_parameters_of_the_bound_run_never_its_class(setup):
    session, ex, ctl, said, settled, started = setup
    session.set_target(5)
    run = ctl.start("rise", {"n": 10})
    assert not ctl.edit(run.id, "gradient", {"n": 20}, 0)  # the panel shows another method
    session.set_target(12)  # the class changes in between: an edit keeps the run's own class
    assert ctl.edit(run.id, "rise", {"n": 20}, 0) and run.generation == 2 and run.params == {"n": 20}
    assert run.target == 5 and ex.jobs[-1].target == 5


def test_a_class_change_starts_a_run_beside_the_old_one_and_flipping_back_reuses_it(setup):
    session, ex, ctl, said, settled, started = setup
    session.set_predictions([(3, "cat", 0.9), (12, "cup", 0.05)])
    cat = ctl.start("rise", {"n": 10}, seed=2)
    ctl.on_started(cat.id, 1)
    ctl.on_partial(cat.id, 1, _exp({"n": 10}, progress=0.53))
    n_jobs = len(ex.jobs)
    assert ctl.for_class(cat.id) is None  # top-1 is cat: nothing to change
    session.set_target(12)
    cup = ctl.for_class(cat.id)
    assert cup is not None and cup.id != cat.id and (cup.method, cup.params, cup.seed, cup.target) == (
        "rise", {"n": 10}, 2, 12)
    assert ex.jobs[-1].run_id == cup.id and ex.jobs[-1].target == 12 and len(ex.jobs) == n_jobs + 1
    # the cat run was neither cancelled nor restarted: it keeps computing and keeps its partial map
    assert cat.id not in ex.cancelled and cat.generation == 1 and cat.progress == 0.53 and cat.active
    assert ctl.for_class(cup.id) is None  # already for cup
    ctl.on_finished(cat.id, 1, _exp({"n": 10}))
    _finish(ctl, cup)
    session.set_target(None)  # back to top-1 (cat): the finished cat run, nothing started
    assert ctl.for_class(cup.id) is cat and len(ex.jobs) == n_jobs + 1
    session.set_target(12)
    assert ctl.for_class(cat.id) is cup and len(ex.jobs) == n_jobs + 1
    # another setting or seed is another request; without ``start`` nothing new is computed
    other = ctl.start("rise", {"n": 50}, seed=2, target=3)
    _finish(ctl, other)
    assert ctl.for_class(other.id, start=False) is None and len(ex.jobs) == n_jobs + 2
    # defaults filled in by the method's Params count as the same setting: {} is n=100
    plain = ctl.start("rise", {}, seed=0, target=3)
    _finish(ctl, plain, {"n": 100})
    assert ctl.find("rise", {}, 0, 3) is plain
    # a cancelled run is not reused: its class gets a new run
    session.set_target(20)
    dropped = ctl.for_class(cup.id)
    ctl.cancel(dropped.id)
    assert dropped.status == RunStatus.CANCELLED and ctl.find("rise", {"n": 10}, 2, 20) is None
    again = ctl.for_class(cup.id)
    assert again is not None and again.id != dropped.id and again.target == 20


def test_a_class_change_leaves_class_agnostic_and_missing_runs_alone(setup):
    session, ex, ctl, said, settled, started = setup
    session.set_predictions([(3, "cat", 0.9)])
    dino = ctl.start("dino", {})
    session.set_target(12)
    n = len(ex.jobs)
    assert ctl.for_class(dino.id) is None and ctl.for_class(None) is None and ctl.for_class(999) is None
    assert len(ex.jobs) == n and dino.generation == 1


def test_runs_of_another_model_are_stale_hidden_and_never_reused(setup):
    from explorer.session.model_choice import ModelChoice

    session, ex, ctl, said, settled, started = setup
    session.set_predictions([(3, "cat", 0.9)])
    run = ctl.start("rise", {"n": 10})
    _finish(ctl, run)
    layer = session.layers_of(run)[0]
    assert layer.visible and session.active_layer_id == layer.id and not session.is_stale(run)
    changed = []
    session.run_changed.connect(changed.append)
    first = session.model_choice
    session.set_model_choice(ModelChoice("resnet18"))
    assert session.is_stale(run) and changed == [run] and session.current_runs() == []
    assert not layer.visible and session.active_layer_id is None  # never presented as the new model's
    assert ctl.find("rise", {"n": 10}, 0, 3) is None and ctl.for_class(run.id) is None
    fresh = ctl.start("rise", {"n": 10})
    assert fresh.model == ModelChoice("resnet18") and not session.is_stale(fresh)
    # a failed load: the worker kept the first model, so runs asked of the failed one were computed on it
    session.reassign_model(ModelChoice("resnet18"), first)
    session.set_model_choice(first)
    assert not session.is_stale(run) and not session.is_stale(fresh)


def test_a_new_image_cancels_everything_and_old_predictions_are_ignored(setup):
    session, ex, ctl, said, settled, started = setup
    ctl.start("rise", {})
    shown = []
    ctl.predictions_shown.connect(lambda: shown.append(True))
    ctl.set_image(np.ones((8, 8, 3), np.uint8), "b.png")
    assert ex.cancelled[-1] is None and not session.runs and ex.images == [1, 2]
    ctl.on_predictions([(1, "a", 0.9)], 1)  # for the photo before
    assert session.predictions == [] and shown == []
    ctl.on_predictions([(2, "b", 0.8)], 2)
    assert session.predictions == [(2, "b", 0.8)] and shown == [True]


def test_near_uniform_predictions_are_said_once_shown(setup):
    """The worker attaches the model's remark on its predictions (LoadedModel.uniform_warning); the window
    says it, so a map of an untrained model is not taken for an explanation of a trained one."""
    session, ex, ctl, said, settled, started = setup

    class Remarked(list):
        warning = "predictions are near-uniform over the 100 classes (top-1 0.0101, uniform 0.0100)"

    ctl.set_image(np.ones((8, 8, 3), np.uint8), "b.png")
    token = ex.images[-1]
    ctl.on_predictions(Remarked([(2, "b", 0.0101)]), token)
    assert session.predictions == [(2, "b", 0.0101)]
    assert any("near-uniform" in text and "efficientnet_lite0" in text for _, text in said)
    n = len(said)
    ctl.on_predictions([(2, "b", 0.9)], token)  # a plain list: nothing to say
    assert len(said) == n


def test_the_catalog_titles_runs_started_before_it(setup):
    session, ex, ctl, said, settled, started = setup
    bare = RunController(session, ex)  # no catalog yet
    run = bare.start("rise", {})
    assert run.title == "rise"
    _finish(bare, run)
    changed = []
    bare.catalog_changed.connect(lambda: changed.append(True))
    bare.on_catalog(CATALOG)
    assert run.title == "RISE" and session.layers_of(run)[0].label == f"salient — {run.label}" and changed


def test_requeue_keeps_the_target_unless_told(setup):
    session, ex, ctl, said, settled, started = setup
    run = ctl.start("rise", {}, target=4)
    ctl.requeue(run, {"n": 3})
    assert run.target == 4 and ex.jobs[-1].target == 4
    ctl.requeue(run, target=None)
    assert run.target is None and ex.jobs[-1].target is None
    session.requeue(run, target=Target.KEEP)
    assert run.target is None


def test_resume_continues_a_stopped_run_from_its_state(setup):
    """Run ▸ Continue (issue 28): a cancelled partial run is re-queued with its stored state; a complete one, a
    running one or one without state is refused with a reason."""
    session, ex, ctl, said, settled, started = setup
    run = ctl.start("rise", {"n": 10}, seed=2)
    assert not ctl.resume(run.id) and "still running" in said[-1][1]
    ctl.on_started(run.id, run.generation)
    state = {"fingerprint": {"method": "rise"}, "done": 4, "batch": 2, "sums": {}}
    ctl.on_finished(run.id, run.generation, _exp({"n": 10}, progress=0.4, cancelled=True, info={"state": state}))
    assert run.status == RunStatus.CANCELLED
    assert ctl.resume(run.id)
    job = ex.jobs[-1]
    assert (job.run_id, job.generation, job.state, job.seed, job.params) == (run.id, 2, state, 2, {"n": 10})
    assert run.status == RunStatus.QUEUED and run.explanation is not None  # the partial map stays meanwhile
    _finish(ctl, run)
    assert not ctl.resume(run.id) and "complete" in said[-1][1]
    other = ctl.start("rise", {"n": 10})
    ctl.on_started(other.id, other.generation)
    ctl.on_finished(other.id, other.generation, _exp({"n": 10}, progress=0.5, cancelled=True))
    n = len(ex.jobs)
    assert not ctl.resume(other.id) and "no state" in said[-1][1] and len(ex.jobs) == n
    assert not ctl.resume(None) and not ctl.resume(999)
