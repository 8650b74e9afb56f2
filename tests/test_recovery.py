"""Nothing is lost (issue 28): a window killed while RISE streams leaves an autosave with the partial run,
``explorer sessions --json`` lists it, ``explorer --restore --screenshot`` shows its partial map, a restored
run continues to the uninterrupted run's map, and a torn autosave is refused while the previous one loads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHELSEA = ROOT / "resources" / "samples" / "chelsea.png"
RISE = {"n": 4000, "batch_size": 2, "cells": 7}


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", EXPLORER_OFFLINE="1", EXPLORER_AUTOSAVE_INTERVAL="0.5",
               XDG_STATE_HOME=str(tmp_path / "state"), XDG_CONFIG_HOME=str(tmp_path / "config"),
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    return env


def _explorer(env, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "explorer", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _partial_rise_in_autosave(folder: Path) -> dict | None:
    for p in folder.glob("session-*.json"):
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # being replaced right now
        for r in doc.get("runs", []):
            e = r.get("explanation") or {}
            if r["method"] == "rise" and e.get("state") and 0.01 < r["progress"] < 1:
                return doc
    return None


def _kill_during_rise(tmp_path: Path) -> tuple[dict, dict]:
    """Start the window on chelsea with a long RISE, wait for an autosave holding it partway, SIGKILL it."""
    env = _env(tmp_path)
    folder = tmp_path / "state" / "explorer" / "autosave"
    args = [sys.executable, "-m", "explorer", "--image", str(CHELSEA), "--method", "rise"]
    for k, v in RISE.items():
        args += ["--param", f"{k}={v}"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    doc = None
    try:
        deadline = time.monotonic() + 240
        while doc is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
            doc = _partial_rise_in_autosave(folder) if folder.is_dir() else None
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    assert doc is not None, f"no autosave with a partial RISE run appeared; stderr:\n{err[-3000:]}"
    assert proc.returncode == -signal.SIGKILL
    return env, doc


@pytest.mark.slow
def test_a_killed_window_leaves_an_autosave_that_lists_restores_and_shows_the_partial_map(tmp_path):
    env, doc = _kill_during_rise(tmp_path)
    r = _explorer(env, "sessions", "--json")
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert len(listed) == 1
    entry = listed[0]
    assert {"path", "saved", "image", "model", "runs"} <= set(entry)
    assert Path(entry["image"]).name == "chelsea.png" and entry["model"] == "efficientnet_lite0"
    assert entry["crashed"] is True
    (run,) = entry["runs"]
    assert run["method"] == "rise" and 0 < run["progress"] < 1 and run["status"] in ("running", "cancelled")
    text = _explorer(env, "sessions")
    assert text.returncode == 0 and "chelsea.png" in text.stdout and "rise" in text.stdout

    shot = tmp_path / "restored.png"
    r = _explorer(env, "--restore", "--screenshot", str(shot))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "shown: salient — RISE #1 (partial" in r.stdout, r.stdout
    from explorer.io.images import read_image

    img = read_image(shot).rgb
    assert img.shape[0] > 200 and img.std() > 10  # a picture of the window, not a blank


def _stop(model, image, params, k, seed=0):
    from explorer.core.cancel import CancelToken
    from explorer.methods import run

    token, last = CancelToken(), None
    for i, u in enumerate(run("rise", model, image, params=params, seed=seed, cancel=token)):
        last = u.explanation
        if i + 1 == k:
            token.cancel()
    return last


@pytest.mark.gui
def test_a_restored_partial_run_continues_to_the_uninterrupted_map(qtbot, tmp_path, model, chelsea):
    """Kill during RISE (its autosave is what a kill leaves: the last save before it), restore in a new window,
    Run ▸ Continue: the final map equals an uninterrupted run's with the same seed."""
    from explorer.gui import recovery
    from explorer.gui.main_window import MainWindow
    from explorer.io.autosave import Autosave
    from explorer.methods import explain
    from explorer.session.document import RunStatus, Session

    params = {"n": 24, "batch_size": 4, "cells": 5}
    part = _stop(model, chelsea, params, 2)
    assert 0 < part.progress < 1
    s = Session()
    s.set_image(chelsea, str(CHELSEA))
    run = s.new_run("rise", params)
    s.mark_running(run.id, run.generation)
    s.accept(run.id, run.generation, part)  # a streaming run, as the autosave sees it when the kill comes
    saver = Autosave(s, tmp_path / "auto")
    path = saver.save()
    assert path is not None  # no close(): the process was killed

    win = MainWindow()
    qtbot.addWidget(win)
    win.start(model=model)
    qtbot.waitUntil(lambda: bool(win.runs.catalog), timeout=60_000)
    assert recovery.restore_autosave(win, path)
    (restored,) = win.session.runs.values()
    assert restored.status == RunStatus.CANCELLED and restored.progress == pytest.approx(part.progress)
    assert "Run ▸ Continue" in win.messages.history[-1][1]
    np.testing.assert_array_equal(restored.explanation.raw["salient"], part.raw["salient"])
    win.session.set_active_layer(win.session.layers_of(restored)[0].id)
    with qtbot.waitSignal(win.run_settled, timeout=120_000):
        assert recovery.continue_run(win)
    assert restored.status == RunStatus.DONE, restored.error
    assert restored.explanation.info["resume"].startswith("resumed from 8")
    whole = explain("rise", model, chelsea, params=params, seed=0)
    np.testing.assert_allclose(restored.explanation.raw["salient"], whole.raw["salient"], rtol=1e-5, atol=1e-7)
    win.close()


def test_a_torn_autosave_is_refused_and_the_previous_one_still_loads(tmp_path, chelsea):
    """Every tenth of the bytes of the newest autosave's JSON and of its NPZ: a FileError naming it, never a
    half-loaded session; the previous autosave still loads whole."""
    from explorer.core.errors import FileError
    from explorer.core.types import MethodResult, Placement
    from explorer.io.autosave import Autosave, entries
    from explorer.io.session_file import load_session

    folder = tmp_path / "auto"
    s = _session_with_run(chelsea)
    first = Autosave(s, folder)
    older = first.save()
    os.utime(older, (time.time() - 60, time.time() - 60))
    second = Autosave(s, folder)
    run = s.new_run("rise", {"n": 20})
    raw = {"salient": np.random.default_rng(1).random((8, 8)).astype(np.float32)}
    s.accept(run.id, run.generation, MethodResult("rise", raw, {"salient": False}, Placement.whole((8, 8), (8, 8)),
                                                 1, "c1", {"n": 20}, 0, "m", progress=0.5, complete=False))
    newer = second.save()
    assert [e.path for e in entries(folder)] == [newer, older]
    npz = next(folder.glob(f"{newer.stem}.*.npz"))
    whole = {f: f.read_bytes() for f in (newer, npz)}
    for f, data in whole.items():
        for tenth in range(10):
            f.write_bytes(data[: len(data) * tenth // 10])
            with pytest.raises(FileError) as err:
                load_session(newer)
            assert str(f.name) in str(err.value) or str(newer.name) in str(err.value)
        f.write_bytes(data)
    again = load_session(newer)
    assert len(again.runs) == 2
    assert len(load_session(older).runs) == 1
    # a listing names the damaged one instead of failing
    newer.write_bytes(whole[newer][: len(whole[newer]) // 2])
    listed = entries(folder)
    assert listed[0].summary is None and "not a readable session file" in listed[0].error
    assert listed[1].summary is not None


def _session_with_run(image):
    from explorer.core.types import MethodResult, Placement
    from explorer.session.document import Session

    s = Session()
    s.set_image(image[:8, :8].copy(), "/photos/chelsea.png")
    run = s.new_run("gradcam", {})
    s.accept(run.id, run.generation, MethodResult("gradcam", {"salient": np.ones((8, 8), np.float32)},
                                                 {"salient": False}, Placement.whole((8, 8), (8, 8)), 1, "c1", {},
                                                 0, "m"), done=True)
    return s


@pytest.mark.gui
def test_the_next_start_offers_what_an_unclean_exit_left(qtbot, tmp_path, tiny_model):
    from explorer.gui import recovery
    from explorer.gui.main_window import MainWindow
    from explorer.io import autosave

    folder = tmp_path / "auto"
    s = _session_with_run(np.zeros((8, 8, 3), np.uint8))
    left = autosave.Autosave(s, folder)
    left.save()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left.path.with_suffix(".lock").write_text(dead.stdout.strip())  # its window was killed

    win = MainWindow()
    qtbot.addWidget(win)
    win.start(model=tiny_model)
    bar = recovery.offer(win, folder)
    assert bar is not None
    assert "Restore the session of" in bar.label.text() and "chelsea.png, efficientnet_lite0, 1 run" in bar.label.text()
    bar.restore_btn.click()
    assert [r.method for r in win.session.runs.values()] == ["gradcam"]
    assert autosave.crashed(folder) == [] and recovery.offer(win, folder) is None  # answered: not offered again
    assert win.files.recent_files()[:1] != [str(left.path)]  # an autosave is not a file the user opened
    win.close()


@pytest.mark.gui
def test_a_compute_thread_that_ends_is_started_again(qtbot, tiny_model, chelsea):
    from explorer.gui.main_window import MainWindow
    from explorer.session.document import RunStatus
    from explorer.workers import compute

    win = MainWindow()
    qtbot.addWidget(win)
    win.start(model=tiny_model)
    win.runs.set_image(chelsea, "chelsea.png")
    qtbot.waitUntil(lambda: bool(win.runs.catalog), timeout=60_000)
    with qtbot.waitSignal(win.worker.finished, timeout=60_000):
        win.worker._queue.put(compute._STOP)  # the thread ends without being asked to stop
    qtbot.waitUntil(win.worker.isRunning, timeout=10_000)
    with qtbot.waitSignal(win.run_settled, timeout=120_000):
        run = win.runs.start("rise", {"n": 16, "batch_size": 8})
    assert run.status == RunStatus.DONE
    win.close()


def _fake_run(session, method, value, seed=0):
    from explorer.core.types import MethodResult, Placement

    h, w = session.image.shape[:2]
    rng = np.random.default_rng(seed)
    run = session.new_run(method, {})
    exp = MethodResult(method, {"salient": (rng.random((8, 8)) + value).astype(np.float32)}, {"salient": False},
                      Placement.whole((h, w), (8, 8)), 1, "c1", {}, 0, "m")
    session.accept(run.id, run.generation, exp, done=True)
    return run


@pytest.mark.gui
def test_a_session_keeps_the_compare_selection_the_evaluation_and_the_model(qtbot, tmp_path, chelsea):
    from PySide6.QtCore import Qt

    from explorer.gui.main_window import MainWindow
    from explorer.session.model_choice import ModelChoice

    win = MainWindow(ModelChoice("efficientnet_lite1", labels=str(tmp_path / "labels.txt")))
    qtbot.addWidget(win)
    win.runs.set_image(chelsea, str(CHELSEA))
    runs = [_fake_run(win.session, m, i, seed=i) for i, m in enumerate(("rise", "gradcam", "lime"))]
    c = win.compare
    c.refresh()
    ids = [l.id for l in win.session.layers]
    c.a.setCurrentIndex(c.a.findData(ids[2]))
    c.b.setCurrentIndex(c.b.findData(ids[1]))
    c.k.setValue(12.0)
    c.picker.item(0).setCheckState(Qt.Unchecked)
    panel = win.evaluation_dock.panel
    label = f"{runs[0].label} · salient"
    panel.set_curve(label, {"mode": "deletion", "fractions": [0.0, 0.5, 1.0], "scores": [0.9, 0.3, 0.1]})
    panel.set_curve(label, {"mode": "insertion", "fractions": [0.0, 0.5, 1.0], "scores": [0.1, 0.6, 0.9]})
    win.view_state.save_evaluation()
    path = tmp_path / "kept.json"
    assert win.files.save_session(str(path))
    assert win.files.recent_files()[0] == str(path)  # sessions appear in Open recent
    assert "kept.npz beside it" in win.statusBar().currentMessage()
    compare_before = dict(win.session.views["compare"])
    win.close()

    other = MainWindow()
    qtbot.addWidget(other)
    assert other.files.open_path(str(path))  # as Open recent opens it
    oc = other.compare
    assert oc.a.currentData() == ids[2] and oc.b.currentData() == ids[1] and oc.k.value() == 12.0
    checked = [oc.picker.item(i).data(Qt.UserRole) for i in range(oc.picker.count())
               if oc.picker.item(i).checkState() == Qt.Checked]
    assert checked == compare_before["checked"] and ids[0] not in checked
    assert other.session.views["compare"]["agreement"]["k"] == 12.0
    op = other.evaluation_dock.panel
    assert op.labels() == [label] and op.auc(label, "deletion") == pytest.approx(panel.auc(label, "deletion"))
    assert other.session.model_choice.spec == "efficientnet_lite1"
    assert other.session.model_choice.labels == str(tmp_path / "labels.txt")
    other.close()
