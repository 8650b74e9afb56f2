"""The model panel's issue-26 controls and a failed load in the real window (issue 26): the error names the
file and the reason, and the status returns to the model that was kept (it used to stay on "loading ...")."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from explorer.gui.main_window import MainWindow
from explorer.session.model_choice import ModelChoice

pytestmark = pytest.mark.gui
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


def test_panel_collects_and_shows_activation_and_output(win):
    panel = win.model_panel
    panel.spec.setCurrentText("hf:/models/vit")
    panel.activation.setCurrentText("sigmoid")
    panel.output.setText("logits")
    c = panel.choice()
    assert (c.spec, c.activation, c.output) == ("hf:/models/vit", "sigmoid", "logits")
    panel.show_choice(ModelChoice(spec="efficientnet_lite0"))
    assert panel.activation.currentText() == "auto" and panel.output.text() == ""
    assert panel.choice().activation is None and panel.choice().output is None


def test_a_text_file_as_weights_names_the_file_and_keeps_the_model(win, qtbot, tmp_path):
    bad = tmp_path / "r18.pth"
    bad.write_text("not weights\n")
    with qtbot.waitSignal(win.model_error, timeout=T) as sig:
        win.load_model(ModelChoice(spec="timm:resnet18", weights=str(bad)))
    assert "r18.pth" in sig.args[0] and "is not a weights file" in sig.args[0]
    assert win.session.model_info.get("id") == "efficientnet_lite0"
    status = win.model_status.text()
    assert "loading" not in status and "efficientnet_lite0" in status and status.endswith("(kept)")
