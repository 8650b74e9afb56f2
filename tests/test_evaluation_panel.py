"""The evaluation panel shows what it is given: curves per mode, AUCs in the table, the hovered frame."""

import sys

import numpy as np
import pytest

pytest.importorskip("pytestqt")


def _curve(mode, scores):
    f = np.linspace(0, 1, len(scores))
    s = np.asarray(scores, dtype=float)
    return {"mode": mode, "fractions": f, "scores": s, "auc": float(np.trapezoid(s, f)), "step": 224,
            "substrate": "zero" if mode == "deletion" else "blur(kernel=11,sigma=5)"}


def _frames(n, value):
    return [np.full((8, 10, 3), (value + k) % 256, dtype=np.uint8) for k in range(n)]


@pytest.fixture
def panel(qtbot):
    from explorer.gui.evaluation_panel import EvaluationPanel

    p = EvaluationPanel()
    qtbot.addWidget(p)
    p.resize(900, 600)
    p.show()
    return p


def test_table_plots_and_hover(panel, qtbot):
    dele = _curve("deletion", np.linspace(0.9, 0.0, 11) ** 2)
    ins = _curve("insertion", np.linspace(0.1, 0.9, 11))
    rnd = _curve("deletion", np.linspace(0.9, 0.1, 11))
    calls = []

    def frames(k):
        calls.append(k)
        return np.full((8, 10, 3), 10 * k, dtype=np.uint8)

    panel.set_curves([("rise · salient", dele, frames), ("rise · salient", ins, _frames(11, 100)),
                      ("random", rnd)])
    assert panel.labels() == ["rise · salient", "random"]
    t = panel.table
    assert t.rowCount() == 2
    assert t.item(0, 1).text() == f"{dele['auc']:.4f}" and t.item(0, 2).text() == f"{ins['auc']:.4f}"
    assert t.item(0, 3).text() == f"{ins['auc'] - dele['auc']:+.4f}"
    assert t.item(1, 2).text() == "" and t.item(0, 7).text() == "224"
    x, y = panel.curve_item("rise · salient", "deletion").getData()
    assert np.allclose(y, dele["scores"])

    with qtbot.waitSignal(panel.pointHovered) as sig:
        assert panel.hover_at("deletion", 0.31, 0.45) == ("rise · salient", 3)
    assert sig.args == ["rise · salient", "deletion", 3] and calls == [3]
    assert np.all(panel.image_item.image == 30) and "30.0%" in panel.caption.text()
    # the score picks the nearer curve: the random one is at 0.9 - 0.8 * 0.3 = 0.66 there
    assert panel.hover_at("deletion", 0.3, 0.66) == ("random", 3)
    assert "no frames" in panel.caption.text()
    assert panel.hover_at("insertion", 0.5) == ("rise · salient", 5)
    assert np.all(panel.image_item.image == 105)


def test_unchecking_a_layer_hides_its_curves(panel, qtbot):
    from PySide6.QtCore import Qt

    panel.set_curves([("a", _curve("deletion", [1, 0.5, 0])), ("b", _curve("deletion", [1, 0.9, 0.8]))])
    with qtbot.waitSignal(panel.selectionChanged) as sig:
        panel.table.item(0, 0).setCheckState(Qt.Unchecked)
    assert sig.args == [["b"]]
    assert not panel.curve_item("a", "deletion").isVisible() and panel.curve_item("b", "deletion").isVisible()
    assert panel.hover_at("deletion", 0.5, 0.5) == ("b", 1)  # hidden curves are not hovered
    panel.set_selected(["a", "b"])
    assert panel.curve_item("a", "deletion").isVisible()
    panel.remove("a")
    assert panel.labels() == ["b"] and panel.table.rowCount() == 1
    panel.clear()
    assert panel.table.rowCount() == 0 and panel.hover_at("deletion", 0.5) is None


def test_bad_curve_is_refused(panel):
    with pytest.raises(ValueError, match="mode"):
        panel.set_curve("x", {"mode": "sideways", "fractions": [0, 1], "scores": [1, 0], "auc": 0.5})
    with pytest.raises(ValueError, match="same"):
        panel.set_curve("x", {"mode": "deletion", "fractions": [0, 1], "scores": [1], "auc": 0.5})


def test_panel_module_does_not_import_torch():
    import subprocess

    code = ("import sys; sys.modules['torch'] = None\n"
            "import explorer.gui.evaluation_panel, explorer.evaluation.agreement\nprint('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_road_and_flipping_curves_with_the_scored_images_under_the_cursor(panel, qtbot, tiny_model):
    """The worker job behind 'Evaluate active layer': every curve comes with the images the model scored."""
    from explorer.workers.jobs import causal_curves

    rng = np.random.default_rng(0)
    rgb = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
    sal = rng.random((32, 32)).astype(np.float32)
    result = causal_curves(sal, 3, step=64)(tiny_model, rgb)
    assert set(result) == {"deletion", "insertion", "pixel_flipping", "road_morf", "road_lerf"}
    for mode, (curve, frames) in result.items():
        panel.set_curve("tiny · salient", curve, frames)
    morf, frames = result["road_morf"]
    assert len(frames) == len(morf["fractions"]) == 10 and morf["fractions"][0] == 0.0
    assert panel.table.item(0, 5).text() == f"{morf['auc']:.4f}"
    with qtbot.waitSignal(panel.pointHovered) as sig:
        assert panel.hover_at("road_morf", 0.5) == ("tiny · salient", 5)
    assert sig.args == ["tiny · salient", "road_morf", 5]
    shown = panel.image_item.image
    assert shown.shape == (32, 32, 3) and np.array_equal(shown, frames[5])
    assert not np.array_equal(frames[5], frames[0])  # half the pixels were imputed
    assert panel.hover_at("pixel_flipping", 0.2) is not None and "flipped" in panel.caption.text()
