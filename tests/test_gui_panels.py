"""Panels on their own (no model, no worker): generated method controls, live debounce, layer controls."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from explorer.core.catalog import CatalogEntry
from explorer.core.params import Param, Params
from explorer.core.types import MapSpec, MethodResult, Needs, Placement
from explorer.gui.method_panel import MethodPanel
from explorer.gui.panels import LayerPanel
from explorer.gui.widgets import ValueSlider
from explorer.session import Session

PARAMS = Params(
    Param("n", "int", 100, "samples", low=10, high=10_000, log=True),
    Param("alpha", "float", 0.5, "weight", low=0.0, high=1.0, step=0.05),
    Param("smooth", "bool", False, "smooth it", live=False),
    Param("mode", "choice", "a", "mode", choices=("a", "b")),
    Param("note", "str", "", "free text"),
    Param("layer", "layer", None, "a layer"),
    Param("layers", "layers", None, "layers"),
    Param("contrast", "class", None, "a class"),
    Param("batch_size", "int", 0, "batch", low=0, high=64, live=False),
)


def _entry(name, available=True):
    return CatalogEntry(name, name.title(), "test", "p", "s", Needs.SCORES, False,
                        (MapSpec("salient"), MapSpec("extra", signed=True)), PARAMS, {"n": 20},
                        available=available, reason="" if available else "no hooks")


@pytest.fixture
def panel(qtbot):
    p = MethodPanel(debounce_ms=50)
    qtbot.addWidget(p)
    p.set_layer_names(["features.1", "features.2"])
    p.set_labels(["cat", "dog"])
    p.set_catalog([_entry("alpha_method"), _entry("hooky", available=False)])
    return p


def test_controls_are_generated_from_params(panel):
    assert list(panel.controls) == PARAMS.names()
    assert isinstance(panel.controls["n"].editor, ValueSlider) and panel.controls["n"].editor.log
    v = panel.values()
    assert PARAMS.resolve(v) == PARAMS.resolve({})  # the controls start at the declared defaults
    panel.controls["layer"].editor.setCurrentText("features.2")
    panel.controls["layers"].editor.setText("features.1, features.2")
    panel.controls["contrast"].editor.lineEdit().setText("dog")  # the shared class picker: typed, resolved
    panel.controls["contrast"].editor.lineEdit().editingFinished.emit()
    r = PARAMS.resolve(panel.values())
    assert r["layer"] == "features.2" and r["layers"] == ("features.1", "features.2") and r["contrast"] == 1
    panel.quick_btn.click()
    assert panel.values()["n"] == 20
    model = panel.combo.model()
    assert not model.item(panel.combo.findData("hooky")).isEnabled()
    assert "no hooks" in model.item(panel.combo.findData("hooky")).toolTip()


def test_a_run_of_a_method_this_model_cannot_run_is_shown_with_run_disabled(panel, qtbot):
    # a reopened session selects its run in the panel: its method may be one the loaded model cannot run
    assert panel.run_btn.isEnabled()
    panel.bind(7, "hooky", {"n": 40}, 0, "Hooky #7")
    assert panel.method() == "hooky" and panel.values()["n"] == 40  # what the run was made with...
    assert not panel.run_btn.isEnabled() and "no hooks" in panel.summary.text()  # ... but not offered to run
    asked, said = [], []
    panel.run_requested.connect(lambda *a: asked.append(a))
    panel.invalid.connect(said.append)
    panel.request_run()  # Ctrl+R
    assert asked == [] and "no hooks" in said[-1]
    panel.bind(8, "alpha_method", {}, 0, "Alpha #8")
    assert panel.run_btn.isEnabled()
    panel.set_catalog([_entry("alpha_method", available=False), _entry("hooky")])  # another model loaded
    assert panel.method() == "alpha_method" and not panel.run_btn.isEnabled()  # the bound run's method stays
    panel.bind(None)
    panel.set_catalog([_entry("alpha_method", available=False), _entry("hooky")])
    assert panel.method() == "hooky" and panel.run_btn.isEnabled()  # no run holds it: one this model runs
    panel.set_catalog([])
    assert not panel.run_btn.isEnabled()


def test_value_slider_log_roundtrip(qtbot):
    s = ValueSlider(10, 10_000, 100, integer=True, log=True)
    qtbot.addWidget(s)
    got = []
    s.valueChanged.connect(got.append)
    s.slider.setValue(500)  # the middle of a log scale: ~sqrt(10 * 10000)
    assert 300 <= s.value() <= 330 and got[-1] == s.value()
    s.spin.setValue(5000)
    assert s.slider.value() > 850


def test_a_refused_value_is_said_and_never_breaks_the_control(qtbot):
    """Issue 32: setValue swallowed every exception of the value's check and handed the raw value on, so a text
    where a number goes (an edited or older session) raised from the spin box. Now the refusal is said by
    ``invalid``; a numeric or boolean editor keeps its value, a text editor shows the text as given."""
    from explorer.gui.widgets import ParamControl

    said = []
    n = ParamControl(PARAMS["n"], 100)
    qtbot.addWidget(n)
    n.invalid.connect(said.append)
    n.setValue("many")
    assert n.value() == 100 and "'n'" in said[-1]
    n.setValue(10**9)  # a number out of range: the editor shows its closest value, as before
    assert n.value() == 10_000 and "out of range" in said[-1]
    flag = ParamControl(PARAMS["smooth"], False)
    qtbot.addWidget(flag)
    flag.invalid.connect(said.append)
    flag.setValue("perhaps")
    assert flag.value() is False and "'smooth'" in said[-1]
    mode = ParamControl(PARAMS["mode"], "a")
    qtbot.addWidget(mode)
    mode.setValue("b")
    assert mode.value() == "b"


def test_live_params_debounced_and_non_live_ignored(panel, qtbot):
    fired = []
    panel.live_changed.connect(lambda m, v, seed, ch: fired.append((m, v["alpha"], set(ch))))
    panel.controls["alpha"].editor.spin.setValue(0.7)  # not bound to a run: nothing
    qtbot.wait(120)
    assert fired == []
    panel.bind(5, label="run #5")
    panel.controls["smooth"].editor.setChecked(True)  # live=False
    qtbot.wait(120)
    assert fired == []
    for a in (0.2, 0.25, 0.3):
        panel.controls["alpha"].editor.spin.setValue(a)
    qtbot.waitUntil(lambda: len(fired) == 1, timeout=10_000)
    qtbot.wait(120)
    assert fired == [("alpha_method", 0.3, {"alpha"})]
    panel.live.setChecked(False)
    panel.controls["alpha"].editor.spin.setValue(0.9)
    qtbot.wait(120)
    assert len(fired) == 1


def test_layer_panel_controls_write_to_session(qtbot):
    s = Session()
    s.set_image(np.zeros((20, 20, 3), np.uint8))
    lp = LayerPanel(s)
    qtbot.addWidget(lp)
    run = s.new_run("m", {})
    exp = MethodResult("m", {"salient": np.ones((8, 8), np.float32), "extra": np.zeros((8, 8), np.float32)},
                      {"salient": False, "extra": True}, Placement.whole((20, 20), (8, 8)), 0, "c", {}, 0, "x")
    s.accept(run.id, 1, exp, True)
    assert lp.run_items[run.id].childCount() == 2 and lp.controls.isEnabled()
    layer = s.active_layer()
    lp.mode.setCurrentText("top-k")
    lp.blend.setCurrentText("screen")
    lp.topk.spin.setValue(5)
    assert (layer.mode, layer.blend, layer.topk) == ("top-k", "screen", 5.0)
    extra = s.layers[1]
    lp.layer_items[extra.id].setCheckState(0, Qt.Checked)
    assert extra.visible
    lp.tree.setCurrentItem(lp.layer_items[extra.id])
    assert s.active_layer() is extra and lp.colormap.currentText() == "RdBu"
    s.remove_run(run)
    assert not lp.run_items and not lp.layer_items and s.active_layer() is None and not lp.controls.isEnabled()


def test_layer_panel_has_one_control_per_declared_display_field_in_its_row(qtbot):
    from PySide6.QtWidgets import QFormLayout

    from explorer.session import display_fields

    s = Session()
    lp = LayerPanel(s)
    qtbot.addWidget(lp)
    form: QFormLayout = lp.controls.layout()
    rows = [form.itemAt(i, QFormLayout.FieldRole).widget() for i in range(form.rowCount())]
    assert rows == [lp.display_controls[f.name] for f in display_fields.PANEL_FIELDS]
    assert [f.name for f in display_fields.PANEL_FIELDS] == ["opacity", "colormap", "clip", "floor", "fade", "mode",
                                                             "topk", "blend"]  # the rows the panel always had
    for f in display_fields.PANEL_FIELDS:
        assert getattr(lp, f.name) is lp.display_controls[f.name]
        assert lp.display_controls[f.name].toolTip() == f.tip


def test_none_survives_many_void_qt_calls():
    """PySide6 6.12.0 on CPython 3.11 drops a reference to None per void call; pyproject pins < 6.12."""
    import subprocess
    import sys

    code = (
        "import explorer.gui\n"
        "from PySide6.QtCore import QObject\n"
        "o = QObject()\n"
        "for _ in range(50000): o.setObjectName('x')\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-1000:]


def test_a_session_opened_while_its_model_loads_names_its_classes_and_loads_it_once(qtbot, tmp_path, monkeypatch):
    # `explorer --session FILE` at launch: the window asks for the model, then opens the session of that model
    from PySide6.QtCore import QSettings

    from explorer.gui.main_window import MainWindow
    from explorer.io.session_file import save_session
    from explorer.session.model_choice import ModelChoice

    saved = Session()
    saved.set_image(np.full((30, 40, 3), 90, np.uint8), "photo.png")
    saved.set_model_info({"id": "efficientnet_lite0"}, ["tench", "goldfish", "espresso"])
    saved.set_predictions([(2, "espresso", 0.8), (1, "goldfish", 0.1)])
    saved.set_target(1)
    path = save_session(tmp_path / "s.json", saved)

    win = MainWindow(settings=QSettings(str(tmp_path / "qs.ini"), QSettings.IniFormat))
    qtbot.addWidget(win)
    asked = []
    monkeypatch.setattr(win.worker, "load_model", lambda choice, trust=False: asked.append(choice))
    win.load_model(ModelChoice())  # the launch's load, not finished yet
    assert win.files.open_session(str(path))
    assert asked == [ModelChoice()]  # not a second time
    assert win.target_status.text() == "target: goldfish"  # not "class 1"
    assert win.predictions.top.topLevelItemCount() == 2 and "goldfish" in win.predictions.target_label.text()
    assert win.method_panel.classes.rowCount() == 4  # the class pickers too ("auto" + 3)
