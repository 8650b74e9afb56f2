"""The GUI side of the audit: trust only by a confirmed act, and every failed open/load/export keeps the state."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from explorer.gui.main_window import MainWindow
from explorer.session.model_choice import ModelChoice
from tests.test_security import evil_torch, hostile_session

T = 120_000


@pytest.fixture(scope="module")
def win(qapp, model, samples_dir, tmp_path_factory):
    settings = QSettings(str(tmp_path_factory.mktemp("qs") / "settings.ini"), QSettings.IniFormat)
    w = MainWindow(settings=settings, throttle_s=0.02)
    w.show()
    w.start(model=model)
    assert w.files.open_image(str(samples_dir / "chelsea.png"))
    yield w
    w.close()


@pytest.fixture
def calls(win, monkeypatch):
    seen = []
    monkeypatch.setattr(win.worker, "load_model", lambda choice, trust=False: seen.append((choice, trust)))
    return seen


def test_trust_checkbox_asks_naming_the_file_and_applies_to_one_load(win, calls, monkeypatch, tmp_path):
    f = tmp_path / "net.pt"
    f.write_bytes(b"x")
    asked = []
    answer = {"v": False}
    monkeypatch.setattr(win, "confirm_trust", lambda files: asked.append(files) or answer["v"])
    panel = win.model_panel
    panel.spec.setCurrentText(str(f))
    panel.trust.setChecked(True)
    panel.load_btn.click()
    assert asked == [[str(f)]] and calls == []  # declined: nothing loaded
    assert "not confirmed" in win.messages.text()
    answer["v"] = True
    panel.trust.setChecked(True)
    panel.load_btn.click()
    assert calls[-1][1] is True and calls[-1][0].spec == str(f)
    assert not panel.trust.isChecked()  # one deliberate act per load
    panel.load_btn.click()
    assert calls[-1][1] is False
    assert not any("trust" in k for k in win.settings.allKeys())
    assert not any("trust" in k for k in win.session.model_choice.record())


def test_session_naming_a_pickle_loads_it_untrusted(win, calls, tmp_path):
    marker = tmp_path / "marker"
    js, evil = hostile_session(tmp_path, marker)
    assert win.files.open_session(str(js))
    assert calls[-1][0].spec == str(evil) and calls[-1][1] is False
    assert not marker.exists()


def test_real_worker_refuses_the_sessions_pickle_and_keeps_the_model(win, qtbot, tmp_path, samples_dir):
    marker = tmp_path / "marker"
    evil = evil_torch(tmp_path / "evil.pt", marker)
    with qtbot.waitSignal(win.model_error, timeout=T) as sig:
        win.load_model(ModelChoice(spec=str(evil)))  # what open_session does with the session's model entry
    assert "evil.pt" in sig.args[0] and "--trust-pickle" in sig.args[0]
    assert win.session.model_info.get("id") == "efficientnet_lite0"  # the previous model is kept
    assert not marker.exists()


def test_failed_opens_and_exports_keep_the_previous_state(win, tmp_path):
    image = win.session.image
    runs = dict(win.session.runs)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "explorer-session", "version": 1, "arrays": "../x.npz"}')
    assert not win.files.open_session(str(bad)) and "bad.json" in win.messages.text()
    assert not win.files.open_image(str(tmp_path / "missing.png")) and "missing.png" in win.messages.text()
    assert win.session.image is image and win.session.runs == runs
    taken = tmp_path / "taken"
    taken.write_text("mine")
    assert win.files.export_layers(str(taken)) == [] and "is a file" in win.messages.text()
    assert taken.read_text() == "mine"
    assert not win.files.export_view(str(tmp_path)) and win.messages.level == "error"
    assert win.session.image is image and np.array_equal(win.session.image, image)
