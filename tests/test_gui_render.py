"""The canvas colours streamed maps on its render thread and only swaps finished images in (issue 15, part 4).

No model and no compute worker: a Session fed Explanations by hand, a Canvas on it (offscreen), and the
render thread itself. Renders are gated with threading.Event where the order of arrival matters, so nothing
here depends on timing.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from explorer.core.types import MethodResult, Placement
from explorer.gui.canvas import Canvas
from explorer.session import Session, display, render
from explorer.session.document import DisplayLayer
from explorer.workers import render_thread
from explorer.workers.render_thread import RenderThread

HW = (48, 64)
T = 30_000  # ms


def _exp(seed=0, hw=HW, method="rise", progress=1.0, value=None):
    rng = np.random.default_rng(seed)
    m = rng.random(hw).astype(np.float32) if value is None else np.full(hw, value, np.float32)
    return MethodResult(method, {"salient": m, "uncertainty": m * 0.1}, {"salient": False, "uncertainty": False},
                       Placement.whole(hw, hw), 3, "cat", {}, seed, "m", {"seconds": 0.0}, {}, progress,
                       progress >= 1.0)


@pytest.fixture
def canvas(qtbot):
    s = Session()
    s.set_image(np.full(HW + (3,), 90, np.uint8), "grey.png")
    c = Canvas(s)
    c.resize(320, 260)
    qtbot.addWidget(c)
    c.show()
    yield c
    c.close_renderer()


def _settle(qtbot, c):
    qtbot.waitUntil(lambda: not c.rendering, timeout=T)


def _pixels(c) -> np.ndarray:
    from PySide6.QtGui import QImage

    img = c.grab_view().toImage().convertToFormat(QImage.Format_RGB888)
    return np.frombuffer(img.constBits(), np.uint8, img.sizeInBytes()).reshape(img.height(), img.bytesPerLine()).copy()


def test_streamed_maps_are_coloured_off_the_gui_thread_and_swapped_in_finished(canvas, qtbot, monkeypatch):
    where, applied = [], []
    real = render.render_layer

    def spy(layer, m):  # runs wherever the canvas has it run
        where.append(threading.get_ident())
        return real(layer, m)

    monkeypatch.setattr(render, "render_layer", spy)
    canvas.rendered.connect(lambda lid: applied.append((lid, threading.get_ident())))
    s = canvas.session
    run = s.new_run("rise", {})
    s.accept(run.id, run.generation, _exp(1, progress=0.3), False)  # a partial map streams in
    salient = s.layers_of(run)[0]
    assert canvas.rendering  # submitted, not coloured on this thread
    _settle(qtbot, canvas)
    gui = threading.get_ident()
    assert where and gui not in where  # the colouring ran on the render thread
    assert applied == [(salient.id, gui)]  # ... and only the finished image was handed to the GUI thread
    item = canvas.items[salient.id]
    assert item.image.dtype == np.uint8 and item.image.shape == HW + (4,)
    expected = real(salient, s.layer_data(salient))
    assert np.array_equal(item.image, expected.rgba)  # exactly what render_layer makes of the map
    assert canvas.colorbar.lo == pytest.approx(expected.levels[0])
    assert canvas.colorbar.hi == pytest.approx(expected.levels[1])
    uncertainty = s.layers_of(run)[1]
    assert uncertainty.id in canvas._dirty and len(where) == 1  # hidden layers are not coloured until shown


def test_a_late_render_of_an_older_map_is_dropped(canvas, qtbot, monkeypatch):
    gate, started = threading.Event(), threading.Event()
    real = render.render_layer
    calls = []

    def gated(layer, m):
        calls.append(float(m.mean()))
        if len(calls) == 1:  # the first render (the old map) is slow: it lands after the newer one is asked for
            started.set()
            assert gate.wait(30)
        return real(layer, m)

    monkeypatch.setattr(render, "render_layer", gated)
    s = canvas.session
    run = s.new_run("rise", {})
    s.accept(run.id, run.generation, _exp(value=0.2, progress=0.2), False)
    assert started.wait(30)
    s.requeue(run)  # the user changed a parameter: a new generation ...
    newer = _exp(seed=5, progress=1.0)
    assert s.accept(run.id, run.generation, newer, True)  # ... whose result arrives while the old render runs
    stale = canvas.stale_renders
    gate.set()
    _settle(qtbot, canvas)
    qtbot.waitUntil(lambda: canvas.stale_renders == stale + 1, timeout=T)  # the old render came back: dropped
    salient = s.layers_of(run)[0]
    assert np.array_equal(canvas.items[salient.id].image, real(salient, newer.maps["salient"]).rgba)
    assert canvas.renders == 1  # only the newest colours were ever shown


def test_display_changes_recolour_without_touching_the_run(canvas, qtbot):
    s = canvas.session
    run = s.new_run("gradient", {})
    s.accept(run.id, run.generation, _exp(2), True)
    _settle(qtbot, canvas)
    layer = s.layers_of(run)[0]
    before, renders, generation = _pixels(canvas), canvas.renders, run.generation
    s.set_layer(layer, opacity=0.2)  # an item property: a repaint, no recolouring
    assert canvas.renders == renders
    faint = _pixels(canvas)
    assert not np.array_equal(faint, before)
    s.set_layer(layer, colormap="viridis")  # nothing in flight: recoloured at once, here
    assert canvas.renders == renders + 1 and not canvas.rendering
    assert np.array_equal(canvas.items[layer.id].image, render.render_layer(layer, s.layer_data(layer)).rgba)
    assert not np.array_equal(_pixels(canvas), faint)
    assert run.generation == generation and run.status == "done" and s.runs[run.id].explanation is not None


def test_a_display_change_while_a_render_is_in_flight_joins_it(canvas, qtbot, monkeypatch):
    gate = threading.Event()
    real = render.render_layer
    seen = []

    def gated(layer, m):
        seen.append(layer.colormap)
        assert gate.wait(30)
        return real(layer, m)

    monkeypatch.setattr(render, "render_layer", gated)
    s = canvas.session
    run = s.new_run("rise", {})
    s.accept(run.id, run.generation, _exp(3, progress=0.5), False)
    layer = s.layers_of(run)[0]
    qtbot.waitUntil(lambda: bool(seen), timeout=T)  # the render thread holds the first job
    s.set_layer(layer, colormap="magma")  # the user recolours meanwhile: queued behind, not on this thread
    s.set_layer(layer, colormap="viridis")  # ... twice: the waiting job is replaced (latest wins)
    assert canvas.rendering and canvas.renderer.coalesced >= 1
    gate.set()
    _settle(qtbot, canvas)
    assert seen[-1] == "viridis" and "magma" not in seen
    assert np.array_equal(canvas.items[layer.id].image, real(layer, s.layer_data(layer)).rgba)


def test_grab_shows_the_newest_colours_even_while_rendering(canvas, qtbot, monkeypatch):
    gate, started = threading.Event(), threading.Event()
    real = render.render_layer

    def held(layer, m):
        if threading.current_thread() is not threading.main_thread():
            started.set()
            assert gate.wait(30)  # the render thread is stuck ...
        return real(layer, m)

    monkeypatch.setattr(render, "render_layer", held)
    s = canvas.session
    bare = _pixels(canvas)
    run = s.new_run("rise", {})
    s.accept(run.id, run.generation, _exp(4), True)
    assert started.wait(30) and canvas.rendering
    shot = _pixels(canvas)  # ... but a grab colours the waiting layer itself
    assert not canvas.rendering and not np.array_equal(shot, bare)
    gate.set()
    stale = canvas.stale_renders
    qtbot.waitUntil(lambda: canvas.stale_renders == stale + 1, timeout=T)  # the thread's late copy is dropped
    assert np.array_equal(_pixels(canvas), shot)


def test_removed_layers_ignore_their_late_renders(canvas, qtbot, monkeypatch):
    gate, started = threading.Event(), threading.Event()
    real = render.render_layer

    def held(layer, m):
        started.set()
        assert gate.wait(30)
        return real(layer, m)

    monkeypatch.setattr(render, "render_layer", held)
    s = canvas.session
    run = s.new_run("rise", {})
    s.accept(run.id, run.generation, _exp(5), True)
    assert started.wait(30)
    s.remove_run(run)  # the run goes while its map is being coloured
    assert not canvas.rendering and not canvas.items
    gate.set()
    qtbot.waitUntil(lambda: canvas.stale_renders == 1, timeout=T)
    assert canvas.renders == 0


# ---------------------------------------------------------------- the render thread on its own
def test_render_thread_latest_wins_reports_failures_and_stops(qtbot, monkeypatch):
    monkeypatch.setattr(render_thread, "IDLE_EXIT_S", 0.05)
    rt = RenderThread()
    got, failed = [], []
    rt.done.connect(lambda k, t, r: got.append((k, t, r)))
    rt.failed.connect(lambda k, t, msg: failed.append((k, t, msg)))
    gate = threading.Event()
    rt.submit("a", 1, lambda: gate.wait(30) and "first")
    rt.submit("b", 2, lambda: "b2")
    rt.submit("b", 3, lambda: "b3")  # replaces b2 before it ran
    rt.submit("c", 4, lambda: 1 / 0)
    gate.set()
    qtbot.waitUntil(lambda: len(got) == 2 and len(failed) == 1, timeout=T)
    assert got == [("a", 1, "first"), ("b", 3, "b3")] and rt.coalesced == 1
    assert failed[0][:2] == ("c", 4) and "ZeroDivisionError" in failed[0][2]
    assert threading.get_ident() not in rt.thread_ids
    qtbot.waitUntil(lambda: rt._thread is None, timeout=T)  # idle: the thread ended ...
    rt.submit("d", 5, lambda: "again")  # ... and the next job starts a new one
    qtbot.waitUntil(lambda: len(got) == 3, timeout=T)
    rt.close()
    rt.submit("e", 6, lambda: "never")
    qtbot.wait(100)
    assert len(got) == 3 and rt.waiting() == 0


# ---------------------------------------------------------------- display defaults decided off the GUI thread
def test_display_defaults_prepared_off_thread_match_and_data_comes_before_the_floor():
    exp = _exp(value=None)
    exp.raw["salient"] = (0.6 + 0.05 * np.random.default_rng(3).random((20, 20))).astype(np.float32)
    for name in exp.raw:
        assert display.defaults_of(exp, name) == display.display_defaults(name, False, exp.raw[name])
    display.precompute_display_hints(exp)
    assert display._HINTS.get(exp) == {"salient": True, "uncertainty": False}
    for name in exp.raw:  # looked up now; the same answers
        assert display.defaults_of(exp, name) == display.display_defaults(name, False, exp.raw[name])

    s = Session()
    s.set_image(np.zeros(HW + (3,), np.uint8))
    run = s.new_run("rise", {})
    early = _exp(value=None, progress=0.1)
    early.raw["salient"] = early.raw["salient"] * 0.01  # near 0 at first: no floor
    s.accept(run.id, run.generation, early)
    seen = []
    s.layer_changed.connect(lambda l, f: seen.append((l.name, f)))
    final = _exp()
    final.raw["salient"] = exp.raw["salient"]
    display.precompute_display_hints(final)
    s.accept(run.id, run.generation, final, True)
    assert s.layers_of(run)[0].floor == display.BASELINE_FLOOR
    # a view that colours new maps off its thread has the render in flight when the floor follows
    assert seen.index(("salient", "data")) < seen.index(("salient", "floor"))


def test_render_layer_levels_are_the_colour_bars_and_big_maps_are_subsampled():
    m = np.linspace(0, 1, 3000 * 2100, dtype=np.float32).reshape(3000, 2100)
    layer = DisplayLayer(1, 1, "salient")
    r = render.render_layer(layer, m)
    assert r.image_hw == (3000, 2100) and max(r.rgba.shape[:2]) <= render.DISPLAY_MAX
    assert r.levels == render.levels(False, render.stats(m), layer.clip, layer.floor)


# ------------------------------------------------------- end to end: compute worker -> session -> render thread
def test_a_streaming_run_in_the_window_is_coloured_on_the_render_thread(qtbot, tiny_model, tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    from explorer.gui.main_window import MainWindow

    win = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), throttle_s=0.0)
    qtbot.addWidget(win)
    win.show()
    win.start(model=tiny_model)
    rng = np.random.default_rng(0)
    win.runs.set_image(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8), "noise.png")
    qtbot.waitUntil(lambda: bool(win.runs.catalog) and bool(win.session.predictions), timeout=T)
    applied, where = [], []
    real = render.render_layer
    monkeypatch.setattr(render, "render_layer",
                        lambda layer, m: (where.append(threading.get_ident()), real(layer, m))[1])
    win.canvas.rendered.connect(lambda lid: applied.append(threading.get_ident()))
    run = win.runs.start("rise", {"n": 64, "batch_size": 8}, 0)
    qtbot.waitUntil(lambda: not run.active, timeout=T)
    qtbot.waitUntil(lambda: not win.canvas.rendering, timeout=T)
    assert run.status == "done" and run.explanation.timings.get("steps", 0) > 1  # partial maps streamed
    assert where and threading.get_ident() not in where  # every streamed map was coloured off the GUI thread
    assert applied and set(applied) == {threading.get_ident()}  # ... and swapped in here
    salient = win.session.layers_of(run)[0]
    final = real(salient, win.session.layer_data(salient))
    assert np.array_equal(win.canvas.items[salient.id].image, final.rgba)  # the final map's colours are shown
    win.close()
