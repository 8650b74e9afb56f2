"""Issue 20 in the window (pytest-qt, offscreen, the real default model): the first start opens on an
explanation, pickers instead of text, layers that explain themselves, presentation mode, one-click compare."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from explorer.gui import teaching as gui_teaching
from explorer.gui.pickers import ClassPicker, PriorPicker
from explorer.session import teaching
from tests.test_gui import open_window

T = 180_000  # ms; generous for a loaded CI machine


@pytest.fixture(scope="module")
def win(qapp, model, samples_dir, tmp_path_factory):
    w = open_window(model, samples_dir, tmp_path_factory)
    yield w
    w.close()


def _idle(win, qtbot):
    win.runs.cancel_active()
    qtbot.waitUntil(lambda: not any(r.active for r in win.session.runs.values()), timeout=T)


def _pixels(win) -> np.ndarray:
    from PySide6.QtGui import QImage

    win.canvas.view.viewport().repaint()
    img = win.canvas.grab_view().toImage().convertToFormat(QImage.Format_RGB888)
    rows = np.frombuffer(img.constBits(), np.uint8, img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())
    return rows[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy()


def test_first_start_runs_gradcam_and_the_overlay_differs_from_the_bare_photo(win, qtbot):
    qtbot.waitUntil(lambda: bool(win.runs.catalog) and bool(win.session.predictions), timeout=T)
    run = gui_teaching.first_start(win)
    assert run is not None and run.method == teaching.DEFAULT_METHOD == "gradcam"
    qtbot.waitUntil(lambda: run.status == "done", timeout=T)
    assert win.method_panel.method() == "gradcam"  # the panel shows what ran
    qtbot.waitUntil(win.follow_up.isVisible, timeout=T)  # (it changes the canvas size: grab after it)
    layer = win.session.layers_of(run)[0]
    assert layer.visible and win.session.active_layer() is layer
    shown = _pixels(win)
    win.session.set_layer(layer, visible=False)
    bare = _pixels(win)  # the same view without the map: the bare photo
    win.session.set_layer(layer, visible=True)
    changed = np.abs(shown.astype(int) - bare.astype(int)).max(axis=-1) > 30
    assert changed.mean() > 0.05  # the map is on the photo, not a faint tint
    # the follow-up offer: a streaming method at the user's click
    assert "RISE" in win.follow_up.run_btn.text() and run.explanation.target_name in win.follow_up.label.text()


def test_follow_up_streams_and_presentation_toggle_does_not_disturb_it(win, qtbot):
    _idle(win, qtbot)
    n_runs = len(win.session.runs)
    qtbot.mouseClick(win.follow_up.run_btn, Qt.LeftButton)
    assert len(win.session.runs) == n_runs + 1 and not win.follow_up.isVisible()
    rise = max(win.session.runs.values(), key=lambda r: r.id)
    assert rise.method == "rise"
    qtbot.waitUntil(lambda: rise.explanation is not None and rise.progress < 1, timeout=T)
    gen, first = rise.generation, rise.progress
    pres = win.presentation
    pres.action.trigger()  # View > Presentation, while RISE streams
    assert pres.active and win.docks["Layers"].isVisible()
    assert not any(d.isVisible() for t, d in win.docks.items() if t != "Layers")
    assert not win.tabs.tabBar().isVisible() and win.font().pointSizeF() > 12
    assert "presentation" in win.statusBar().currentMessage()
    qtbot.waitUntil(lambda: rise.progress > first or not rise.active, timeout=T)  # still streaming
    pres.action.trigger()
    assert not pres.active and win.docks["Method"].isVisible() and win.tabs.tabBar().isVisible()
    assert rise.generation == gen and rise.status in ("running", "done")  # nothing was re-run or cancelled
    _idle(win, qtbot)


def test_presentation_keys_step_through_runs_and_classes(win, qtbot):
    _idle(win, qtbot)
    runs = [r for r in win.session.runs.values() if r.explanation is not None]
    assert len(runs) >= 2
    pres = win.presentation
    pres.set_active(True)
    win.method_panel.live.setChecked(False)  # stepping classes must not start runs in this test
    try:
        win.activateWindow()
        qtbot.waitUntil(win.isActiveWindow, timeout=5000)
        start = pres.current_run()
        QTest.keyClick(win, Qt.Key_Right)
        after = pres.current_run()
        assert after != start
        visible = [l for l in win.session.layers if l.visible]
        assert [l.run_id for l in visible] == [after]  # that run's headline map alone
        t0 = win.session.effective_target()
        QTest.keyClick(win, Qt.Key_Down)
        assert win.session.effective_target() == win.session.predictions[1][0] != t0
        QTest.keyClick(win, Qt.Key_Up)
        assert win.session.effective_target() == t0
    finally:
        pres.set_active(False)
        win.session.set_target(None)
        win.method_panel.live.setChecked(True)
    before = [l.visible for l in win.session.layers]
    QTest.keyClick(win, Qt.Key_Right)  # outside presentation the arrows step nothing
    assert [l.visible for l in win.session.layers] == before and not pres.active


def test_presentation_shows_the_class_large_whole_meanings_whole_labels_and_a_still_canvas(win, qtbot):
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QFontMetrics

    from explorer.gui.layer_help import help_for, meaning_width

    _idle(win, qtbot)
    s, pres = win.session, win.presentation
    grad = next(r for r in s.runs.values() if r.method == "gradcam")
    pres.set_active(True)
    try:
        win.show_run(grad.id)
        # the class the map explains, large, above the canvas
        assert pres.headline.isVisible() and pres.headline.cls.text() == grad.explanation.target_name
        assert pres.headline.cls.font().pointSizeF() >= 1.5 * win.font().pointSizeF()
        width = win.width()
        pres.headline.show_text("Egyptian cat", "Undesirable pixels (target-hindering) #4 · " * 8)
        assert win.width() == width and "…" in pres.headline.run.text()  # a long run name never widens the window
        pres.refresh_headline()
        # every layer row's meaning whole, wrapped to the list's width in the larger type
        tree = win.layer_panel.tree

        def rows_fit():
            fm, width = QFontMetrics(tree.font()), meaning_width(tree)
            return all(fm.horizontalAdvance(line) <= width for it in win.layer_panel.layer_items.values()
                       for line in it.text(0).split("\n")[1:])
        qtbot.waitUntil(rows_fit, timeout=5000)
        for lid, it in win.layer_panel.layer_items.items():
            meaning = help_for(win, s.layer(lid)).line()
            assert " ".join(it.text(0).split("\n", 1)[1].split()) == " ".join(meaning.split())
        # the colour bar's labels get the room their text needs (no clipped minus) and its captions a line each
        signed = s.layers_of(grad)[1]
        s.set_active_layer(signed.id)
        bar = win.canvas.colorbar
        for lo in (bar.lo, -1.2345e-05):
            bar.set_scale(bar.cmap, lo, bar.hi, bar.title, True, bar.note or "0 = no evidence")
            g, fm = bar.geometry_for(bar.width()), QFontMetrics(bar.font())
            assert fm.horizontalAdvance(bar.labels()[0]) <= g["lo"].width() and g["lo"].left() >= 0
            assert g["title"].height() >= fm.height() and g["title"].bottom() < g["note"].top()
            assert bar.height() > g["note"].bottom()
        # a banner coming or going does not move the canvas
        view = win.canvas.view

        def place():
            return view.mapTo(win, QPoint(0, 0)), view.size()

        def settled():  # the docks and fonts of presentation mode are laid out after the toggle
            before = place()
            qtbot.wait(100)
            return place() == before
        qtbot.waitUntil(settled, timeout=5000)
        where = place()
        win.follow_up.offer("Next: RISE, which streams", "Run RISE", lambda: None, None)
        win.messages.show_message("a message for the room", "info")
        qtbot.wait(50)
        assert win.follow_up.isVisible() and win.messages.isVisible()
        assert place() == where
        top = win.follow_up.mapTo(win, QPoint(0, 0)).y()
        assert top > pres.headline.mapTo(win, QPoint(0, pres.headline.height())).y()  # never over the class
        assert win.follow_up.label.font().pointSizeF() == win.font().pointSizeF()  # in the larger type
        win.follow_up.withdraw()
        win.messages.hide()
        qtbot.wait(50)
        assert place() == where
    finally:
        pres.set_active(False)
    lay = win.centralWidget().layout()
    assert lay.indexOf(win.messages) >= 0 and lay.indexOf(win.follow_up) > lay.indexOf(win.messages)
    assert not pres.headline.isVisible()


def test_layer_rows_explain_themselves_and_the_colour_bar_says_what_0_means(win, qtbot):
    _idle(win, qtbot)
    grad = next(r for r in win.session.runs.values() if r.method == "gradcam")
    salient, signed = win.session.layers_of(grad)
    item = win.layer_panel.layer_items[salient.id]
    assert "support the target class" in " ".join(item.text(0).split())  # (wrapped to the list's width)
    assert "before its ReLU" in " ".join(win.layer_panel.layer_items[signed.id].text(0).split())
    btn = win.layer_panel.tree.itemWidget(win.layer_panel.layer_items[signed.id], 1)
    assert btn is not None and btn.text() == "?"
    qtbot.mouseClick(btn, Qt.LeftButton)
    dlg = win.layer_help_dialog
    text = dlg.text.toPlainText()
    spec = next(o for o in win.runs.entry("gradcam").outputs if o.name == "signed")
    assert "Grad-CAM" in text and "Selvaraju" in text and spec.zero in text  # the registry's words
    dlg.close()
    win.session.set_active_layer(signed.id)
    assert win.canvas.colorbar.note.startswith("0 = ")
    win.session.set_active_layer(salient.id)
    assert win.canvas.colorbar.note == ""  # unsigned: the bottom colour is the map's minimum


def test_borex_refines_a_run_picked_from_the_list_and_refuses_a_removed_one(win, qtbot):
    _idle(win, qtbot)
    panel = win.method_panel
    grad = next(r for r in win.session.runs.values() if r.method == "gradcam")
    assert panel.select("borex")
    picker = panel.controls["prior"].editor
    assert isinstance(picker, PriorPicker)
    picker.showPopup()
    picker.hidePopup()
    items = [picker.itemData(i) for i in range(picker.count())]
    assert grad.label in items and f"{grad.label} · signed" in items and "rise" in items and "flat" in items
    assert picker.itemText(picker.count() - 1) == "a .npy file…"
    picker.setCurrentIndex(items.index(grad.label))
    picker.activated.emit(items.index(grad.label))
    assert panel.values()["prior"] == grad.label
    panel.controls["iterations"].setValue(2)
    qtbot.mouseClick(panel.run_btn, Qt.LeftButton)
    borex = max(win.session.runs.values(), key=lambda r: r.id)
    assert borex.method == "borex"
    qtbot.waitUntil(lambda: not borex.active, timeout=T)
    assert borex.status == "done" and borex.explanation.params["prior"] == grad.label
    assert borex.explanation.info.get("stage") != "prior"  # the given map was refined, no method ran first
    # the prior run goes away: a re-run is refused in the status bar and BOREx keeps its map
    exp, gen = borex.explanation, borex.generation
    win.runs.remove(grad.id)
    panel.bind(borex.id, "borex", borex.params, borex.seed, borex.label)
    panel.controls["kappa"].editor.spin.setValue(5.0)  # a live parameter
    qtbot.waitUntil(lambda: "removed" in win.statusBar().currentMessage(), timeout=5000)
    assert borex.explanation is exp and borex.generation == gen and borex.status == "done"
    assert win.runs.start("borex", dict(borex.params)) is None  # a new run is refused the same way


def test_borex_starts_on_the_rise_map_of_this_photo_and_class_when_there_is_one(win, qtbot):
    _idle(win, qtbot)
    panel = win.method_panel
    rise = win.runs.start("rise", {"n": 32, "batch_size": 8}, 0, None)
    qtbot.waitUntil(lambda: rise.status == "done", timeout=T)
    assert panel.select("gradcam") and panel.select("borex")
    picker = panel.controls["prior"].editor
    assert panel.values()["prior"] == rise.label and picker.currentText().startswith(rise.label)  # not "run RISE first"
    texts = [picker.itemText(i) for i in range(picker.count())]
    assert f"the newest RISE ({rise.label})" in texts and "run RISE first" not in texts


def test_class_picker_shares_the_list_and_refuses_an_unknown_name(win, qtbot):
    panel = win.method_panel
    assert panel.select("undesirable")
    c = panel.controls["competitor"]
    assert isinstance(c.editor, ClassPicker) and c.editor.model() is panel.classes
    assert panel.classes.rowCount() == 1001  # "auto" + the model's 1000 classes
    c.editor.lineEdit().setText("no such animal")
    c.editor.lineEdit().editingFinished.emit()
    assert "unknown class 'no such animal'" in win.statusBar().currentMessage()
    assert c.value() is None and c.editor.currentText() == "auto"  # the old value stays
    c.editor.lineEdit().setText("Goldfish")
    c.editor.lineEdit().editingFinished.emit()
    assert c.value() == 1 and c.editor.currentText() == "1: goldfish"
    assert panel.entry().params.resolve(panel.values())["competitor"] == 1


def test_advanced_parameters_sit_in_a_collapsed_group(win):
    panel = win.method_panel
    assert panel.select("rise")
    assert panel.adv_btn.isVisible() and panel.adv_btn.text() == "advanced (1)"
    assert not panel.adv_host.isVisible()
    assert panel.adv_form.rowCount() == 1 and "batch_size" in panel.controls
    assert panel.controls["batch_size"].parent() is panel.adv_host
    assert panel.controls["n"].parent() is not panel.adv_host
    panel.adv_btn.click()
    assert panel.adv_host.isVisible()
    panel.adv_btn.click()
    assert panel.select("gradcam") and not panel.adv_btn.isVisible()  # nothing advanced there


def test_compare_action_fills_the_compare_tab_in_one_click(win, qtbot):
    _idle(win, qtbot)
    ids = gui_teaching.compare_methods(win, ("gradcam", "gradient"))
    assert win.tabs.currentWidget() is win.compare and len(ids) == 2
    runs = [win.session.runs[i] for i in ids]
    qtbot.waitUntil(lambda: all(r.status == "done" for r in runs), timeout=T)
    win.compare.refresh()
    shown = {l.run_id for l in win.compare.chosen()}
    assert shown == set(ids)  # exactly those runs' headline maps, older runs left out
    assert len(win.compare.chosen()) == 2
    again = gui_teaching.compare_methods(win, ("gradcam", "gradient"))
    assert again == ids  # the second click reuses them
    assert win.compare_action.text().startswith("Compare")
    win.tabs.setCurrentWidget(win.canvas)


def test_the_active_layer_meaning_is_shown_in_full_under_the_list(win, qtbot):
    _idle(win, qtbot)
    layer = next(l for l in win.session.layers if l.signed)
    win.session.set_active_layer(layer.id)
    strip = win.meaning_strip
    assert strip.isVisible() and layer.name in strip.label.text() and "0 = " in strip.label.text()
    qtbot.mouseClick(strip.help_btn, Qt.LeftButton)
    assert layer.name in win.layer_help_dialog.windowTitle()
    win.layer_help_dialog.close()


@pytest.mark.slow
def test_the_app_opens_on_an_explanation_without_flags(tmp_path):
    """The real entry point, as `bash packaging/dev.sh` starts it: no --method, and the window still explains."""
    import os
    import subprocess
    import sys

    out = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", EXPLORER_OFFLINE="1", XDG_CONFIG_HOME=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "explorer", "--device", "cpu", "--screenshot", str(out)],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]  # 0: the first-start run finished (1 if it had failed)
    assert "first start: gradcam" in r.stderr and "chelsea.png" in r.stderr
    assert out.stat().st_size > 10_000
