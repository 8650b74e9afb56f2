"""The explorer window driven through its widgets (pytest-qt, offscreen), on the real default model."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtTest import QTest

from explorer.gui.main_window import MainWindow
from explorer.session.model_choice import ModelChoice

ROOT = Path(__file__).resolve().parent.parent
T = 120_000  # ms; generous for a loaded CI machine


def _wait(app, cond, timeout_s=T / 1000):
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("condition not met in time")
        app.processEvents()
        QTest.qWait(10)


def open_window(model, samples_dir, tmp_path_factory) -> MainWindow:
    """A shown window with its own settings file, started on ``model`` and showing chelsea (shared by GUI tests)."""
    settings = QSettings(str(tmp_path_factory.mktemp("qs") / "settings.ini"), QSettings.IniFormat)
    w = MainWindow(settings=settings, throttle_s=0.02)
    w.resize(1280, 820)
    w.show()
    w.start(model=model)
    assert w.files.open_image(str(samples_dir / "chelsea.png"))
    return w


@pytest.fixture(scope="module")
def win(qapp, model, samples_dir, tmp_path_factory):
    w = open_window(model, samples_dir, tmp_path_factory)
    _wait(qapp, lambda: bool(w.runs.catalog) and bool(w.session.predictions))
    yield w
    w.close()


@pytest.fixture
def fresh(win, qtbot):
    win.runs.cancel_active()
    qtbot.waitUntil(lambda: not any(r.active for r in win.session.runs.values()), timeout=T)
    win.session.clear_runs()
    win.session.set_target(None)
    win.method_panel.live.setChecked(True)
    win.messages.hide()
    return win


def _run_via_panel(win, qtbot, method, **values):
    panel = win.method_panel
    assert panel.select(method)
    panel.quick_btn.click()
    for k, v in values.items():
        panel.controls[k].setValue(v)
    n = len(win.session.runs)
    qtbot.mouseClick(panel.run_btn, Qt.LeftButton)
    assert len(win.session.runs) == n + 1
    return max(win.session.runs.values(), key=lambda r: r.id)


def _settle(win, qtbot, run):
    qtbot.waitUntil(lambda: not run.active, timeout=T)
    return run


def _grab(win):
    win.canvas.view.viewport().repaint()
    return win.canvas.grab_view().toImage()


def test_window_shows_predictions_catalog_and_status(win):
    s = win.session
    assert "cat" in s.predictions[0][1].lower()
    assert win.predictions.top.topLevelItemCount() == 5
    names = [win.method_panel.combo.itemData(i) for i in range(win.method_panel.combo.count())]
    assert {"rise", "gradient"} <= set(names)
    assert "efficientnet_lite0" in win.model_status.text() and "cpu" in win.model_status.text()
    assert "cat" in win.target_status.text().lower()
    assert win.predictions.all.count() == 1000
    win.predictions.search.setText("tabby")
    shown = [win.predictions.all.item(i).text() for i in range(1000) if not win.predictions.all.item(i).isHidden()]
    assert shown == ["281: tabby"]
    win.predictions.search.clear()
    assert win.files.recent_files()[0].endswith("chelsea.png")  # remembered in the (test) QSettings
    win.files.fill_recent(win.recent_menu)
    assert any(a.text().endswith("chelsea.png") for a in win.recent_menu.actions())


def test_run_rise_from_generated_controls(fresh, qtbot):
    win = fresh
    panel = win.method_panel
    assert panel.select("rise")
    assert {"n", "p", "cells"} <= set(panel.controls)  # generated from RISE's Params
    run = _settle(win, qtbot, _run_via_panel(win, qtbot, "rise", n=48))
    assert run.status == "done" and run.explanation.params["n"] == 48
    names = [l.name for l in win.session.layers_of(run)]
    assert names == ["salient", "uncertainty"]
    item = win.layer_panel.run_items[run.id]
    assert item.childCount() == 2 and "done" in item.text(1)
    assert "salient" in win.canvas.colorbar.title
    assert "done" in panel.progress.format()


def test_toggle_layer_and_display_sliders_change_pixels_without_recompute(fresh, qtbot):
    win = fresh
    run = _settle(win, qtbot, _run_via_panel(win, qtbot, "gradient"))
    assert run.status == "done"
    layer = win.session.layers_of(run)[0]
    shown = _grab(win)
    item = win.layer_panel.layer_items[layer.id]
    item.setCheckState(0, Qt.Unchecked)  # the user unticks the layer
    assert layer.visible is False
    hidden = _grab(win)
    assert hidden != shown
    item.setCheckState(0, Qt.Checked)
    assert _grab(win) == shown

    renders, generation = win.canvas.renders, run.generation
    win.layer_panel.opacity.spin.setValue(0.15)
    assert layer.opacity == pytest.approx(0.15) and win.canvas.renders == renders  # opacity: no recolouring
    faint = _grab(win)
    assert faint != shown
    win.layer_panel.colormap.setCurrentText("viridis")
    win.layer_panel.mode.setCurrentText("contour")
    assert layer.colormap == "viridis" and layer.mode == "contour" and win.canvas.renders == renders + 2
    assert _grab(win) != faint
    assert run.generation == generation and not run.active  # display changes never recompute


def test_cancel_mid_run_keeps_partial_map(fresh, qtbot):
    win = fresh
    run = _run_via_panel(win, qtbot, "rise", n=4000)
    qtbot.waitUntil(lambda: run.explanation is not None, timeout=T)
    assert win.method_panel.cancel_btn.isEnabled()
    with qtbot.waitSignal(win.run_settled, timeout=T):
        qtbot.mouseClick(win.method_panel.cancel_btn, Qt.LeftButton)
    assert run.status == "cancelled" and run.explanation.cancelled and run.explanation.progress < 1
    assert win.session.layers_of(run) and "cancelled" in win.messages.text()


def test_live_slider_during_run_requeues_only_that_run(fresh, qtbot):
    win = fresh
    other = _settle(win, qtbot, _run_via_panel(win, qtbot, "gradient"))
    other_exp = other.explanation
    run = _run_via_panel(win, qtbot, "rise", n=4000)
    qtbot.waitUntil(lambda: run.explanation is not None, timeout=T)
    seen = []
    win.session.run_changed.connect(lambda r: seen.append((r.generation, r.status, r.explanation is not None)))
    assert win.method_panel.bound_run == run.id
    win.method_panel.controls["n"].editor.spin.setValue(40)  # the user moves the live "n" control
    win.method_panel.controls["n"].editor.spin.setValue(32)  # ... twice: debounced into one re-run
    qtbot.waitUntil(lambda: run.generation >= 2 and run.status == "done", timeout=T)
    assert run.generation == 2 and run.explanation.params["n"] == 32 and run.explanation.complete
    assert (2, "queued", True) in seen  # the old map stayed on screen while the new one was queued
    assert other.explanation is other_exp and other.generation == 1  # only the affected run re-ran


def test_class_change_runs_beside_and_flipping_back_shows_the_kept_map(fresh, qtbot):
    win = fresh
    run = _settle(win, qtbot, _run_via_panel(win, qtbot, "gradient"))
    first_target, first_exp = run.explanation.target, run.explanation
    second = win.predictions.top.topLevelItem(1)
    win.predictions.top.itemClicked.emit(second, 0)
    wanted = second.data(0, Qt.UserRole)
    assert wanted != first_target and win.session.target == wanted
    other = max(win.session.runs.values(), key=lambda r: r.id)
    assert other is not run and other.method == "gradient" and other.target == wanted
    _settle(win, qtbot, other)
    assert other.explanation.target == wanted and win.method_panel.bound_run == other.id
    assert run.explanation is first_exp and run.generation == 1  # the first class's run is untouched
    assert [l.run_id for l in win.session.layers if l.visible] == [other.id]
    n = len(win.session.runs)
    win.predictions.top.itemClicked.emit(win.predictions.top.topLevelItem(0), 0)  # back: shown at once
    assert len(win.session.runs) == n and win.method_panel.bound_run == run.id
    assert [l.run_id for l in win.session.layers if l.visible] == [run.id]
    assert win.session.active_layer().run_id == run.id and "target" in win.target_status.text()


def test_session_save_and_reopen_without_recompute(fresh, qtbot, tmp_path):
    win = fresh
    run = _settle(win, qtbot, _run_via_panel(win, qtbot, "rise", n=32))
    layer = win.session.layers_of(run)[0]
    win.session.set_layer(layer, opacity=0.25, colormap="viridis", topk=12.0)
    records = [l.record() for l in win.session.layers]
    maps = {k: v.copy() for k, v in run.explanation.maps.items()}
    image = win.session.image.copy()
    assert win.files.save_session(str(tmp_path / "s.json"))
    win.files.open_image(str(ROOT / "resources" / "samples" / "coffee.png"))
    assert not win.session.runs
    assert win.files.open_session(str(tmp_path / "s.json"))
    assert np.array_equal(win.session.image, image)
    assert [l.record() for l in win.session.layers] == records
    back = win.session.runs[run.id]
    assert back.status == "done" and not back.active  # nothing re-ran
    for k, v in maps.items():
        np.testing.assert_array_equal(back.explanation.maps[k], v)
    assert win.layer_panel.run_items[run.id].childCount() == 2


def test_bad_file_dropped_shows_message_and_keeps_image(fresh, tmp_path):
    win = fresh
    before = win.session.image
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(bad))])
    ev = QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    win.dropEvent(ev)
    assert "broken.png" in win.messages.text() and "not an image" in win.messages.text()
    assert win.messages.level == "error" and win.session.image is before


def test_model_load_failure_is_shown_and_app_stays_usable(fresh, qtbot, tmp_path):
    win = fresh
    with qtbot.waitSignal(win.model_error, timeout=T):
        win.load_model(ModelChoice(str(tmp_path / "nothere.onnx")))
    assert "nothere.onnx" in win.messages.text() and win.messages.level == "error"
    assert win.session.model_info.get("id") == "efficientnet_lite0"
    run = _settle(win, qtbot, _run_via_panel(win, qtbot, "gradient"))
    assert run.status == "done"


def test_exports_and_comparison(fresh, qtbot, tmp_path):
    win = fresh
    a = _settle(win, qtbot, _run_via_panel(win, qtbot, "rise", n=32))
    b = _settle(win, qtbot, _run_via_panel(win, qtbot, "gradient"))
    win.tabs.setCurrentWidget(win.compare)
    qtbot.waitUntil(lambda: "spearman" in win.compare.agreement, timeout=T)
    assert len(win.compare.views) == 2  # the headline map of each run
    ag = win.compare.agreement
    assert -1 <= ag["spearman"] <= 1 and 0 <= ag["topk_iou"] <= 1 and "Spearman" in win.compare.figures.text()
    win.compare.norm.setCurrentIndex(1)
    assert len(win.compare.views) == 2
    assert win.files.export_figure(str(tmp_path / "fig.png")) and (tmp_path / "fig.png").stat().st_size > 1000
    from PIL import Image

    h, w = win.session.image.shape[:2]
    assert Image.open(tmp_path / "fig.png").size[0] == 2 * w + 30  # two maps at the photo's resolution
    assert "fig.png" in win.statusBar().currentMessage()  # confirmed
    win.tabs.setCurrentWidget(win.canvas)
    assert win.files.export_view(str(tmp_path / "view.png")) and (tmp_path / "view.png").stat().st_size > 1000
    assert Image.open(tmp_path / "view.png").size[0] == w + 20  # the photo, not the letterboxed widget
    assert "view.png" in win.statusBar().currentMessage()
    assert win.files.export_dir() == str(tmp_path.resolve())  # the next export's dialog opens here
    assert win.files.default_name("view") == "chelsea_gradient_egyptian-cat.png"
    files = win.files.export_layers(str(tmp_path / "layers"))
    assert len(files) == 3 and (tmp_path / "layers" / "layers.json").exists()
    m = np.load(tmp_path / "layers" / files[0])
    assert m.shape == win.session.image.shape[:2]
    assert {a.id, b.id} == set(win.session.runs)


def test_exports_at_a_chosen_dpi_from_the_export_size_menu(fresh, qtbot, tmp_path):
    from PIL import Image

    win = fresh
    _settle(win, qtbot, _run_via_panel(win, qtbot, "gradient"))
    menu = win.export_size_menu
    try:
        win.files.fill_export_size(menu)
        assert next(a for a in menu.actions() if "photo's resolution" in a.text()).isChecked()
        next(a for a in menu.actions() if a.text().startswith("300 DPI")).trigger()
        assert win.files.export_size().dpi == 300
        assert win.files.export_view(str(tmp_path / "view.png"))
        im = Image.open(tmp_path / "view.png")
        assert im.size[0] == 3000 and im.info["dpi"] == pytest.approx((300, 300), abs=0.05)  # 10 in at 300 DPI
        assert "300 DPI" in win.statusBar().currentMessage()
        win.files.fill_export_size(menu)  # the menu shows the choice, which is remembered
        assert next(a for a in menu.actions() if a.text().startswith("300 DPI")).isChecked()
        assert not win.files.set_export_dpi(5) and win.files.export_size().dpi == 300  # refused, kept
        win.tabs.setCurrentWidget(win.compare)
        qtbot.waitUntil(lambda: len(win.compare.views) >= 1, timeout=T)
        assert win.files.export_figure(str(tmp_path / "fig.png"))
        assert Image.open(tmp_path / "fig.png").size[0] == 3000
    finally:
        win.files.set_export_dpi(None)
        win.tabs.setCurrentWidget(win.canvas)
    assert win.files.export_size().dpi is None


def test_window_opens_before_torch_is_imported():
    code = (
        "import sys\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from explorer.gui.main_window import MainWindow\n"
        "w = MainWindow(); w.show(); app.processEvents()\n"
        "assert w.isVisible()\n"
        "print('torch' in sys.modules)\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False"


def test_cli_screenshot(tmp_path, samples_dir):
    out = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", EXPLORER_OFFLINE="1", XDG_CONFIG_HOME=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "explorer", "--image", str(samples_dir / "chelsea.png"),
                        "--method", "gradient", "--screenshot", str(out)],
                       capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    from PIL import Image

    with Image.open(out) as im:
        assert im.size[0] >= 800 and im.size[1] >= 500
        px = np.asarray(im.convert("RGB"))
    assert px.std() > 10  # not a blank window


def test_evaluate_active_layer_fills_evaluation_panel(fresh, qtbot):
    win = fresh
    assert win.evaluation_dock.panel is not None  # explorer/gui/evaluation_panel.py is docked
    run = _settle(win, qtbot, _run_via_panel(win, qtbot, "gradient"))
    token = win.evaluation_dock.evaluate_active_layer(step=224 * 224 // 12)  # 13 points per curve keeps the test short
    assert token is not None
    qtbot.waitUntil(lambda: bool(win.evaluation_dock.panel.labels()), timeout=T)
    label = win.evaluation_dock.panel.labels()[0]
    assert run.label in label
    for mode in ("deletion", "insertion", "pixel_flipping", "road_morf", "road_lerf"):  # ROAD: issue 19
        assert 0.0 <= win.evaluation_dock.panel.auc(label, mode) <= 1.0


def test_every_registered_method_gets_working_controls(win):
    panel = win.method_panel
    for e in win.runs.catalog:
        assert panel.select(e.name), e.name
        assert list(panel.controls) == e.params.names()
        e.params.resolve(panel.values())  # the generated controls' values validate as they are
        panel.quick_btn.click()
        e.params.resolve(panel.values())


def test_borex_resumes_when_only_iterations_grow(fresh, qtbot):
    win = fresh
    if "borex" not in {e.name for e in win.runs.catalog}:
        pytest.fail("borex is registered in this project; the resume path must be exercised")
    run = _settle(win, qtbot, _run_via_panel(win, qtbot, "borex"))
    assert run.status == "done", run.error
    iters = run.explanation.params["iterations"]
    assert run.explanation.info.get("state") is not None
    win.method_panel.controls["iterations"].editor.spin.setValue(iters + 2)
    qtbot.waitUntil(lambda: run.generation == 2 and not run.active, timeout=T)
    assert run.status == "done", run.error
    assert run.explanation.params["iterations"] == iters + 2
    assert run.explanation.info["resume"].startswith("resumed"), run.explanation.info["resume"]
