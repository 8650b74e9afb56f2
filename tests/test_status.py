"""What the window says about runs (session/status.py), one test per transition, without Qt or torch: the
controller is driven as the worker would drive it, the clock is the test's."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from explorer.session import status
from explorer.session.controller import RunController
from explorer.session.model_choice import ModelChoice
from tests.test_controller import CATALOG, FakeExecutor, _exp, _finish

QUICK_CATALOG = [replace(e, quick={"n": 64}) if e.name == "rise" else e for e in CATALOG]


@pytest.fixture
def ctl():
    from explorer.session.document import Session

    c = RunController(Session(), FakeExecutor())
    c.on_catalog(QUICK_CATALOG)
    c.set_image(np.zeros((8, 8, 3), np.uint8), "a.png")
    c.now = 100.0
    c.clock = lambda: c.now
    return c


def line(c):
    return status.progress_line(c.session, c.elapsed())


def test_a_queue_of_several_runs_is_led_by_the_one_computing(ctl):
    a = ctl.start("rise", {"n": 10})
    b = ctl.start("rise", {"n": 20})
    assert line(ctl) == (0.0, f"{a.label}: queued (+1 queued)")  # the oldest goes first
    ctl.on_started(a.id, 1)
    ctl.now += 10
    ctl.on_progress(a.id, 1, 0.25, "250/1000 masks")
    frac, text = line(ctl)
    # the run computing leads, never the one queued behind it ("LRP #8 (+1 queued) 0 %" while RISE #7 ran)
    assert frac == 0.25 and text == f"{a.label}: 250/1000 masks · 25 masks/s, 30 s left (+1 queued)"
    assert b.label not in text
    _finish(ctl, a)
    ctl.on_started(b.id, 1)
    ctl.on_progress(b.id, 1, 0.5, "")
    assert line(ctl)[1] == f"{b.label}: running"  # no time passed yet: no estimate
    _finish(ctl, b)
    assert line(ctl) == (None, f"{b.label}: done 0.1 s")


def test_cancelled_removed_new_image_and_new_model_each_refresh_the_line(ctl):
    s = ctl.session
    assert line(ctl) == (None, "idle")
    a = ctl.start("rise", {"n": 10})
    ctl.on_started(a.id, 1)
    ctl.on_partial(a.id, 1, _exp({"n": 10}, progress=0.4))
    ctl.cancel(a.id)  # the worker answers with the last partial map, flagged cancelled
    ctl.on_finished(a.id, 1, _exp({"n": 10}, progress=0.4, cancelled=True))
    assert line(ctl) == (None, f"{a.label}: cancelled at 40 %")
    assert status.run_status(s, a) == "cancelled at 40 %"
    b = ctl.start("rise", {"n": 10})
    _finish(ctl, b)
    ctl.remove(b.id)
    assert line(ctl) == (None, f"{a.label}: cancelled at 40 %")  # the removed run is not described
    ctl.set_image(np.ones((8, 8, 3), np.uint8), "b.png")
    assert line(ctl) == (None, "idle")  # a new photo: nothing of the old one
    c = ctl.start("rise", {"n": 10})
    _finish(ctl, c)
    s.set_model_choice(ModelChoice("resnet18"))
    assert line(ctl) == (None, "idle") and status.run_status(s, c) == "other model"


def test_an_opened_session_is_described_by_its_newest_run(ctl):
    from explorer.session.document import Run, RunStatus

    old = ctl.start("rise", {"n": 10})
    _finish(ctl, old)
    ctl.set_image(np.ones((8, 8, 3), np.uint8), "saved.png")  # what opening a session does first
    run = Run(7, "rise", {"n": 10}, None, 0, RunStatus.DONE, 1.0, "done", title="RISE",
              explanation=_exp({"n": 10}))
    ctl.session.add_restored(run, [])
    assert line(ctl) == (None, "RISE #7: done 0.1 s")


def test_pace_and_the_quick_offer(ctl):
    said = []
    ctl.slow.connect(lambda run, pc: said.append((run.id, round(pc.left_s))))
    run = ctl.start("rise", {"n": 4000})
    ctl.on_started(run.id, 1)
    ctl.now += 5
    ctl.on_progress(run.id, 1, 0.01, "40/4000 masks")  # too early for an estimate
    assert said == [] and status.run_status(ctl.session, run) == "1 %"
    ctl.now += 5
    ctl.on_progress(run.id, 1, 0.1, "400/4000 masks")
    assert said == [(run.id, 90)]  # 10 s for 10 %: 90 s left, over status.SLOW_S
    assert status.run_status(ctl.session, run, ctl.elapsed()[run.id]) == "10 % · 1 min 30 s left"
    ctl.on_progress(run.id, 1, 0.2, "800/4000 masks")
    assert len(said) == 1  # once per generation
    assert ctl.use_quick(run.id) and run.params == {"n": 64} and run.generation == 2
    ctl.on_started(run.id, 2)
    ctl.now += 100
    ctl.on_progress(run.id, 2, 0.1, "6/64 masks")
    assert len(said) == 1  # already on its Quick settings: nothing faster to offer
    fast = ctl.start("rise", {"n": 100})
    ctl.on_started(fast.id, 1)
    ctl.now += 1
    ctl.on_progress(fast.id, 1, 0.5, "50/100 masks")
    assert len(said) == 1  # 1 s left
    assert not ctl.use_quick(999)


def test_duration_reads_plainly():
    assert [status.duration(x) for x in (0.4, 59, 61, 3725)] == ["0 s", "59 s", "1 min 01 s", "1 h 02 min"]
