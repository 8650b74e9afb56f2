"""The autosave's rules without Qt (io/autosave.py): when it saves, what it keeps, what an unclean exit leaves."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from explorer.core.types import MethodResult, Placement
from explorer.io import autosave
from explorer.io.session_file import load_session
from explorer.session.document import Session


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def _exp(progress=1.0, value=1.0):
    return MethodResult("rise", {"salient": np.full((4, 4), value, np.float32)}, {"salient": False},
                       Placement.whole((4, 4), (4, 4)), 1, "c1", {"n": 8}, 0, "m", progress=progress,
                       complete=progress >= 1.0)


def _session():
    s = Session()
    s.set_image(np.zeros((4, 4, 3), np.uint8), "/photos/cat.png")
    return s


def test_when_it_saves(tmp_path):
    clock = Clock()
    s = _session()
    a = autosave.Autosave(s, tmp_path, interval=30.0, clock=clock)
    assert a.tick() is None and a.save() is None  # an image without runs: nothing worth keeping
    run = s.new_run("rise", {"n": 8})
    s.mark_running(run.id, run.generation)
    clock.t += 1
    s.accept(run.id, run.generation, _exp(0.1))  # its first map adds layers: saved within EDIT_DELAY
    assert a.due_at == clock.t + autosave.EDIT_DELAY
    clock.t += autosave.EDIT_DELAY
    assert a.tick() == a.path and a.saves == 1
    clock.t += 1
    s.accept(run.id, run.generation, _exp(0.25))  # streaming: at least every 30 s since the last save
    assert a.due_at == a.last_save + 30.0
    clock.t += 20
    assert a.tick() is None
    clock.t += 10
    assert a.tick() == a.path and a.saves == 2
    assert load_session(a.path).runs[run.id].progress == 0.25
    s.accept(run.id, run.generation, _exp(1.0), done=True)  # a settled run: within half a second
    assert a.due_at == clock.t + autosave.SETTLED_DELAY
    clock.t += 1
    assert a.tick() == a.path and load_session(a.path).runs[run.id].status == "done"
    s.set_layer(s.layers[0], opacity=0.3)  # a display change: debounced, a drag saves once it stops
    first = a.due_at
    clock.t += 1
    s.set_layer(s.layers[0], opacity=0.4)
    assert a.due_at == first and a.tick() is None
    clock.t += autosave.EDIT_DELAY
    assert a.tick() == a.path and load_session(a.path).layers[0].opacity == 0.4
    s.set_target(5)
    assert a.due_at is not None
    # one JSON and the one NPZ it names: every save writes a fresh NPZ and removes the previous one
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".lock", ".npz"]


def test_quit_crash_and_offer(tmp_path):
    s = _session()
    a = autosave.Autosave(s, tmp_path)
    run = s.new_run("rise", {"n": 8})
    s.accept(run.id, run.generation, _exp(0.5))
    a.save()
    (e,) = autosave.entries(tmp_path)
    assert e.running and not e.crashed  # this process holds it
    assert autosave.crashed(tmp_path) == []
    # a lock naming a process that has ended: what a kill leaves
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    a.path.with_suffix(".lock").write_text(dead.stdout.strip())
    (e,) = autosave.crashed(tmp_path)
    assert "cat.png, efficientnet_lite0, 1 run (1 partial)" in e.describe()
    autosave.dismiss(e)  # answered: listed still, offered no more
    assert autosave.crashed(tmp_path) == [] and len(autosave.entries(tmp_path)) == 1
    # an ordinary quit keeps the autosave of unsaved work, without a lock
    a.changed(0)
    a.close()
    assert a.path.exists() and not a.path.with_suffix(".lock").exists()
    # and removes that of a session the user saved and did not change since
    b = autosave.Autosave(s, tmp_path)
    b.save()
    b.saved_by_user()
    b.close()
    assert not b.path.exists() and not list(tmp_path.glob(f"{b.path.stem}.*"))


def test_another_photo_starts_another_autosave_and_old_ones_are_pruned(tmp_path):
    s = _session()
    a = autosave.Autosave(s, tmp_path, keep=2)
    paths = []
    for i in range(4):
        run = s.new_run("rise", {"n": 8})
        s.accept(run.id, run.generation, _exp(0.5, value=i))
        paths.append(a.save())
        os.utime(paths[-1], (1000.0 + i, 1000.0 + i))
        s.set_image(np.full((4, 4, 3), i, np.uint8), f"/photos/{i}.png")  # the runs leave the window
    assert len(set(paths)) == 4
    left = [e.path for e in autosave.entries(tmp_path)]
    assert paths[3] in left and paths[0] not in left and len(left) <= 3
    a.close()


def test_the_folder_honours_xdg_state_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    if sys.platform.startswith("linux"):
        assert autosave.autosave_dir() == tmp_path / "explorer" / "autosave"


def test_background_writes_are_whole(tmp_path):
    s = _session()
    a = autosave.Autosave(s, tmp_path, background=True)
    run = s.new_run("rise", {"n": 8})
    for i in range(5):
        s.accept(run.id, run.generation, _exp(0.1 * (i + 1), value=i))
        a.save()
    a.wait()
    assert a.error == ""
    assert load_session(a.path).runs[run.id].progress == 0.5
    assert len(list(tmp_path.glob("*.npz"))) == 1
    a.close()
