"""The Qt-free document model: events, staleness, layers, rendering, agreement, session files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.core.errors import FileError
from explorer.core.types import MethodResult, Placement
from explorer.evaluation.agreement import spearman, topk_iou
from explorer.io.session_file import arrays_path, load_session, save_session
from explorer.session import Session, Signal, render
from explorer.session.figure import figure_grid


def _exp(hw=(40, 60), inp=(20, 20), seed=0, signed=False, progress=1.0, method="rise"):
    rng = np.random.default_rng(seed)
    raw = {"salient": rng.standard_normal(inp).astype(np.float32), "uncertainty": rng.random(inp).astype(np.float32)}
    return MethodResult(method, raw, {"salient": signed, "uncertainty": False}, Placement.whole(hw, inp), 3, "cat",
                       {"n": 10}, seed, "m", {"seconds": 0.1}, {}, progress, progress >= 1.0)


@pytest.fixture
def session():
    s = Session()
    s.set_image(np.full((40, 60, 3), 128, np.uint8), "img.png")
    return s


def test_signal_connect_emit_block():
    sig, got = Signal("x"), []
    sig.connect(got.append)
    sig.emit(1)
    with sig.blocked():
        sig.emit(2)
    sig.disconnect(got.append)
    sig.emit(3)
    assert got == [1]


def test_accept_creates_layers_and_drops_stale(session):
    events = []
    session.layers_changed.connect(lambda: events.append("layers"))
    run = session.new_run("rise", {"n": 10})
    assert session.accept(run.id, 1, _exp(progress=0.5))
    assert run.status == "running" and [l.name for l in session.layers] == ["salient", "uncertainty"]
    assert [l.visible for l in session.layers] == [True, False]
    assert session.active_layer().name == "salient"
    first = session.layer_data(session.layers[0])
    assert first.shape == (40, 60)
    session.requeue(run, {"n": 20})
    assert run.generation == 2 and run.status == "queued"
    # the old map stays until generation 2 delivers; a late generation-1 result is dropped
    assert session.layer_data(session.layers[0]) is first
    assert not session.accept(run.id, 1, _exp(seed=5))
    assert session.layer_data(session.layers[0]) is first
    assert session.accept(run.id, 2, _exp(seed=6), done=True)
    assert run.status == "done" and session.layer_data(session.layers[0]) is not first
    assert events.count("layers") == 1  # same names: no new layers on later results
    assert not session.fail(run.id, 1, "late error") and run.status == "done"


def test_new_run_hides_older_maps_and_remove(session):
    r1 = session.new_run("rise", {})
    session.accept(r1.id, 1, _exp(), True)
    r2 = session.new_run("gradient", {})
    session.accept(r2.id, 1, _exp(method="gradient"), True)
    vis = {(l.run_id, l.name): l.visible for l in session.layers}
    assert vis[(r1.id, "salient")] is False and vis[(r2.id, "salient")] is True
    session.remove_run(r2)
    assert all(l.run_id == r1.id for l in session.layers) and session.active_layer().run_id == r1.id


def test_layers_shown_together_get_distinct_colormaps_unless_the_user_chose(session):
    r1 = session.new_run("rise", {})
    session.accept(r1.id, 1, _exp(), True)
    salient, uncertainty = session.layers_of(r1)
    assert salient.colormap == uncertainty.colormap == "inferno"  # one at a time: the default
    got = []
    session.layer_changed.connect(lambda l, f: got.append((l.name, f)))
    session.set_layer(uncertainty, visible=True)  # RISE's salient + uncertainty together
    assert uncertainty.colormap == "viridis" and ("uncertainty", "colormap") in got
    r2 = session.new_run("gradient", {})
    session.accept(r2.id, 1, _exp(method="gradient"), True)
    g = session.layers_of(r2)[0]
    for layer in (salient, uncertainty):
        session.set_layer(layer, visible=True)
    assert len({l.colormap for l in session.layers if l.visible}) == 3  # three maps, three colour scales
    session.set_layer(salient, visible=False)
    session.set_layer(g, colormap="viridis")  # the user's choice is kept, even when it is not distinct
    session.set_layer(salient, visible=True)
    assert g.colormap == "viridis" and salient.colormap not in ("viridis", uncertainty.colormap)


def test_set_layer_validates_and_emits_per_field(session):
    run = session.new_run("rise", {})
    session.accept(run.id, 1, _exp(), True)
    layer = session.layers[0]
    got = []
    session.layer_changed.connect(lambda l, f: got.append(f))
    session.set_layer(layer, opacity=2.0, colormap="viridis", mode="contour")
    assert got == ["opacity", "colormap", "mode"] and layer.opacity == 1.0
    session.set_layer(layer, colormap="viridis")  # no change, no event
    assert got == ["opacity", "colormap", "mode"]
    for bad in ({"mode": "x"}, {"blend": "x"}, {"colormap": "nope"}):
        with pytest.raises(ValueError):
            session.set_layer(layer, **bad)
    with pytest.raises(KeyError):
        session.set_layer(layer, name="other")


def test_render_nan_transparent_topk_contour_and_signed_levels():
    from explorer.session.document import DisplayLayer

    m = np.linspace(0, 1, 100 * 100, dtype=np.float32).reshape(100, 100)
    m[:10] = np.nan
    layer = DisplayLayer(1, 1, "salient", fade=False)  # opaque colours (the fade is tested in test_teaching.py)
    rgba = render.render_rgba(layer, m)
    assert rgba.shape == (100, 100, 4) and rgba.dtype == np.uint8
    assert (rgba[:10, :, 3] == 0).all() and (rgba[10:, :, 3] == 255).all()
    assert rgba[99, 99, :3].sum() > rgba[10, 0, :3].sum()  # inferno: high values bright
    layer.mode, layer.topk = "top-k", 20.0
    kept = render.render_rgba(layer, m)[..., 3] > 0
    assert abs(kept.mean() - 0.2 * 0.9) < 0.02 and kept[99].all() and not kept[20].any()
    layer.mode = "contour"
    edge = render.render_rgba(layer, m)[..., 3] > 0
    assert 0 < edge.sum() < kept.sum()
    s = np.linspace(-2, 1, 1000, dtype=np.float32).reshape(10, 100)
    lo, hi = render.levels(True, render.stats(s), 100.0)
    assert lo == -hi and hi == pytest.approx(2.0)
    levels = render.shared_levels(False, [render.stats(m), render.stats(m * 3)], 100.0)
    assert levels == pytest.approx((float(np.nanmin(m)), 3.0))


def test_composite_opacity_and_session_view(session):
    run = session.new_run("rise", {})
    session.accept(run.id, 1, _exp(), True)
    base = session.image.copy()
    view = render.session_view(session)
    assert view.shape == base.shape and not np.array_equal(view, base)
    session.set_layer(session.layers[0], opacity=0.0)
    assert np.array_equal(render.session_view(session), base)
    session.set_layer(session.layers[0], opacity=1.0, visible=False)
    assert np.array_equal(render.session_view(session), base)


def test_agreement_matches_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    a = rng.random((30, 40))
    b = a + 0.5 * rng.random((30, 40))
    assert spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel())[0], abs=1e-9)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert topk_iou(a, a, 0.1) == 1.0
    assert topk_iou(a, 1 - a, 0.1) == 0.0
    n = a.copy()
    n[0] = np.nan
    assert np.isfinite(spearman(n, b))


def test_session_file_roundtrip(session, tmp_path):
    run = session.new_run("rise", {"n": 10}, target=3, seed=7, title="RISE")
    session.accept(run.id, 1, _exp(), True)
    session.set_layer(session.layers[0], opacity=0.3, colormap="viridis", mode="top-k", topk=15.0, clip=98.0)
    session.set_layer(session.layers[1], visible=True, blend="multiply")
    running = session.new_run("gradient", {})
    session.accept(running.id, 1, _exp(progress=0.5, method="gradient"))
    path = save_session(tmp_path / "s.json", session)
    assert arrays_path(path).exists()
    s2 = load_session(path)
    assert np.array_equal(s2.image, session.image) and s2.image_path == "img.png"
    assert [l.record() for l in s2.layers] == [l.record() for l in session.layers]
    r2 = s2.runs[run.id]
    assert (r2.method, r2.params, r2.target, r2.seed, r2.status, r2.title) == ("rise", {"n": 10}, 3, 7, "done", "RISE")
    for name, m in run.explanation.maps.items():
        np.testing.assert_array_equal(s2.runs[run.id].explanation.maps[name], m)
    assert s2.runs[running.id].status == "cancelled"  # an unfinished run comes back as a kept partial
    assert s2.active_layer_id == session.active_layer_id
    nxt = s2.new_run("x", {})
    assert nxt.id > max(session.runs)


def test_a_session_file_keeps_the_class_names_and_predictions(session, tmp_path):
    # a reopened session names its classes before its model has loaded again (not "class 967")
    session.set_model_info({"id": "m"}, ["cat", "cup", "espresso"])
    session.set_predictions([(2, "espresso", 0.7), (1, "cup", 0.2)])
    session.set_target(1)
    s2 = load_session(save_session(tmp_path / "s.json", session))
    assert s2.labels == ["cat", "cup", "espresso"] and s2.predictions == [(2, "espresso", 0.7), (1, "cup", 0.2)]
    assert s2.class_name(s2.target) == "cup"
    doc = json.loads((tmp_path / "s.json").read_text())
    doc["predictions"] = [[2, "espresso"]]  # damaged: named, refused whole
    (tmp_path / "s.json").write_text(json.dumps(doc))
    with pytest.raises(FileError, match="damaged session file"):
        load_session(tmp_path / "s.json")
    del doc["predictions"], doc["labels"]  # a file from before: read as before
    (tmp_path / "s.json").write_text(json.dumps(doc))
    assert load_session(tmp_path / "s.json").labels == []


def test_session_file_from_before_batch_size(session, tmp_path):
    """Sessions written when the CAM and gradient methods called their batch parameter ``batch`` load with
    it as ``batch_size``, in the run and in its explanation, so re-running them is accepted."""
    run = session.new_run("smoothgrad", {"samples": 3, "batch_size": 2})
    exp = _exp(method="smoothgrad")
    exp.params = {"samples": 3, "batch_size": 2}
    session.accept(run.id, 1, exp, True)
    path = save_session(tmp_path / "s.json", session)
    doc = json.loads(path.read_text())
    for rec in (doc["runs"][0], doc["runs"][0]["explanation"]):
        rec["params"]["batch"] = rec["params"].pop("batch_size")
    path.write_text(json.dumps(doc))
    r2 = load_session(path).runs[run.id]
    assert r2.params == {"samples": 3, "batch_size": 2}
    assert r2.explanation.params == {"samples": 3, "batch_size": 2}


def test_session_file_errors(tmp_path, session):
    with pytest.raises(FileError, match="no such session file"):
        load_session(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(FileError, match="bad.json"):
        load_session(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(FileError, match="not an explorer session"):
        load_session(other)
    p = save_session(tmp_path / "ok.json", session)
    arrays_path(p).unlink()
    with pytest.raises(FileError, match="arrays file is missing"):
        load_session(p)
    with pytest.raises(FileError, match="no image"):
        save_session(tmp_path / "x.json", Session())


def test_figure_grid_layout():
    tiles = [(np.zeros((50, 100, 3), np.uint8), f"map {i}") for i in range(5)]
    fig = figure_grid(tiles, cols=3, tile_width=100, pad=10, title_h=20)
    assert fig.shape == (2 * 70 + 30, 3 * 100 + 40, 3)
    assert fig[10 + 20 + 5, 15].tolist() == [0, 0, 0] and fig[0, 0].tolist() == [255, 255, 255]


def test_figure_for_slides_keeps_the_photo_resolution_draws_colour_bars_and_only_printable_text():
    from explorer.session.figure import Bar, font, printable, slug

    f = font(14)
    assert printable(f, "salient — RISE #2 · cat…") == "salient - RISE #2 - cat..."  # no missing-glyph box
    assert printable(f, "tabby cat") == "tabby cat"
    photo = np.full((300, 451, 3), 128, np.uint8)
    tiles = [(photo, "salient — RISE #2 · Egyptian cat", [Bar("inferno", 0.0, 0.5, False, "salient")]),
             (photo, "signed — Grad-CAM #1", [Bar("RdBu", -1.0, 1.0, True, "signed")])]
    fig = figure_grid(tiles, cols=2, tile_width=None)
    assert fig.shape[1] == 2 * 451 + 3 * 10 and fig.shape[0] > 300 + 40  # the photo's own width, plus a bar
    below = fig[10 + 24 + 300 + 8: 10 + 24 + 300 + 20, 10: 10 + 451]  # the first tile's bar, under it
    assert (np.abs(below.astype(int) - 255).sum(axis=2) > 60).any()  # coloured, not white
    assert slug("chelsea", "Grad-CAM", "Egyptian cat") == "chelsea_grad-cam_egyptian-cat"


def test_export_at_a_chosen_dpi_is_that_many_inches_wide_and_records_the_dpi(tmp_path):
    from PIL import Image

    from explorer.io.export import save_png
    from explorer.session.figure import SLIDE_INCHES, ExportSize

    photo = np.full((300, 451, 3), 128, np.uint8)
    tiles = [(photo, "salient — RISE #2"), (photo, "salient — Grad-CAM #1")]
    assert ExportSize().width_px() is None and "photo" in ExportSize().text()
    size = ExportSize(150)
    fig = figure_grid(tiles, cols=2, tile_width=None, width=size.width_px())
    assert fig.shape[1] == 150 * SLIDE_INCHES  # the whole figure, whatever the photo's size
    save_png(tmp_path / "f.png", fig, size.dpi)
    # (the PNG stores pixels per metre: the DPI comes back rounded)
    assert Image.open(tmp_path / "f.png").info["dpi"] == pytest.approx((150, 150), abs=0.05)
    with pytest.raises(ValueError, match="between 30 and 1200"):
        ExportSize(5000)
    with pytest.raises(ValueError, match="no room"):
        figure_grid(tiles * 20, cols=40, tile_width=None, width=300)


def test_the_view_figure_names_each_layer_with_its_own_class_and_leaves_no_letterbox(session):
    from explorer.session.figure import ExportSize, view_figure, view_tile

    cat = session.new_run("rise", {"n": 10}, target=3)
    session.accept(cat.id, 1, _exp(), done=True)
    cup = session.new_run("gradcam", {}, target=968)
    exp = _exp(seed=1, method="gradcam")
    exp.target, exp.target_name = 968, "cup"
    session.accept(cup.id, 1, exp, done=True)
    for layer in session.layers:
        session.set_layer(layer, visible=layer.name == "salient")
    rgb, title, bars = view_tile(session)
    assert rgb.shape == session.image.shape  # the photo, not the widget
    assert "RISE" in title or "rise" in title
    assert title.count("cat") == 1 and title.count("cup") == 1 and len(bars) == 2  # each map its own class
    assert view_figure(session).shape[1] == 60 + 20 and view_figure(session, ExportSize(100)).shape[1] == 1000


def test_display_map_subsamples_big_maps_only():
    small = np.random.rand(300, 400).astype(np.float32)
    assert render.display_map(small) is small
    big = np.random.rand(3000, 4000).astype(np.float32)
    d = render.display_map(big)
    assert max(d.shape) <= render.DISPLAY_MAX and d is render.display_map(big)  # cached
    np.testing.assert_array_equal(d, big[::4, ::4])
    assert render.display_image(np.zeros((5000, 100, 3), np.uint8)).shape[0] <= 2 * render.DISPLAY_MAX


def test_layers_added_later_by_a_run_do_not_steal_the_active_layer():
    """BOREx yields `refined` alone during its prior stage, then `refined` + `uncertainty`."""
    import numpy as np

    from explorer.core.types import MethodResult, Placement
    from explorer.session.document import Session

    s = Session()
    s.set_image(np.zeros((8, 8, 3), np.uint8), "x.png")
    run = s.new_run("borex", {})
    pl = Placement.whole((8, 8), (8, 8))

    def exp(names):
        return MethodResult("borex", {n: np.ones((8, 8), np.float32) for n in names}, {n: False for n in names},
                           pl, 1, "c1", {}, 0, "m")

    assert s.accept(run.id, run.generation, exp(["refined"]))
    first = s.active_layer()
    assert first is not None and first.name == "refined"
    assert s.accept(run.id, run.generation, exp(["refined", "uncertainty"]), done=True)
    assert s.active_layer() is first
    assert [(l.name, l.visible) for l in s.layers] == [("refined", True), ("uncertainty", False)]
