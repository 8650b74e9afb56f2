"""The model panel's issue-26 controls and a failed load in the real window (issue 26): the error names the
file and the reason, and the status returns to the model that was kept (it used to stay on "loading ...")."""

from __future__ import annotations

import pytest
import torch
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


def _load(win, qtbot, choice: ModelChoice) -> None:
    qtbot.waitUntil(lambda: win.loading is None and bool(win.session.model_info), timeout=T)  # the window's own
    with qtbot.waitSignals([win.model_ready, win.predictions_shown], timeout=T, order="strict"):
        win.load_model(choice)
    assert win.session.model_info["id"] == choice.spec


def test_a_hugging_face_folder_and_a_binary_model_in_the_window(win, qtbot, tmp_path):
    """Issue 26 in the window: an hf: folder (a multi-label config) loads from the model panel's choice with its
    labels and activation; the predictions say each label stands alone; a single-logit model offers both
    decisions in the class picker; raw scores (activation none) are not shown as percentages."""
    pytest.importorskip("transformers")
    from explorer.session.classes import item_text
    from tests.test_hf_models import LABELS, _vit

    folder = _vit(tmp_path / "vit", problem_type="multi_label_classification")
    _load(win, qtbot, ModelChoice(spec=f"hf:{folder}"))
    assert win.session.model_info["activation"] == "sigmoid" and win.session.labels == list(LABELS.values())
    assert "sigmoid" in win.model_status.text()
    assert win.predictions.top.headerItem().text(1) == "prob. (each label)"
    assert win.method_panel.classes.stringList()[1:] == [item_text(i, n) for i, n in LABELS.items()]

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 1)).eval()
    path, labels = tmp_path / "melanoma.ts", tmp_path / "labels.txt"
    torch.jit.script(net).save(str(path))
    labels.write_text("melanoma\n")
    _load(win, qtbot, ModelChoice(spec=str(path), labels=str(labels)))
    assert win.session.labels == ["melanoma", "not melanoma"] and win.session.model_info["binary"] is True
    assert win.method_panel.classes.stringList()[1:] == ["0: melanoma", "1: not melanoma"]
    probs = [float(win.predictions.top.topLevelItem(i).text(1).rstrip(" %")) for i in range(2)]
    assert sum(probs) == pytest.approx(100, abs=0.2)  # p and 1 - p

    _load(win, qtbot, ModelChoice(spec=str(path), labels=str(labels), activation="none"))
    assert win.predictions.top.headerItem().text(1) == "score (raw)"
    assert "%" not in win.predictions.top.topLevelItem(0).text(1)
    # the choice, activation included, is what a saved session records
    assert win.session.model_choice.record()["activation"] == "none"


def test_the_evaluation_tab_needs_no_source_file_on_disk(qapp, monkeypatch, tmp_path):
    """Issue 32: the tab was built only when evaluation_panel.py existed next to main_window.py, so a frozen
    (PyInstaller) build, whose modules live in an archive, had none. It is imported now."""
    import explorer.gui.main_window as mw

    monkeypatch.setattr(mw, "__file__", str(tmp_path / "archive.pyz" / "explorer" / "gui" / "main_window.pyc"))
    w = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    try:
        tabs = [w.tabs.tabText(i) for i in range(w.tabs.count())]
        assert "Evaluation" in tabs and w.evaluation_dock is not None, tabs
    finally:
        w.close()


class _RefusesPhotos(torch.nn.Module):
    """Loads (the loader's check feeds a blank input), then fails on every real photo."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 10)

    def forward(self, x):
        if bool(x.abs().sum() > 0):
            raise RuntimeError("this model refuses real photos")
        return self.fc(x.mean(dim=(2, 3)))


def test_a_model_that_fails_on_the_photo_stays_the_windows_choice(win, qtbot, tmp_path):
    """Issue 32: the image's prediction failing was reported as a model failure, so the window put the previous
    model back on screen ("... (kept)") while the worker held the new one. Now the window says why the photo
    could not be classified and shows the model the worker has. (Last in this module: the window keeps it.)"""
    path = tmp_path / "picky.pt"
    torch.jit.script(_RefusesPhotos().eval()).save(str(path))
    with qtbot.waitSignal(win.worker.job_failed, timeout=T) as sig:
        win.load_model(ModelChoice(spec=str(path)))
    assert "refuses real photos" in sig.args[0]
    qtbot.waitUntil(lambda: "refuses real photos" in win.messages.text(), timeout=T)
    assert win.session.model_choice.spec == str(path)
    assert win.model_panel.choice().spec == str(path)
    assert "(kept)" not in win.model_status.text() and "efficientnet_lite0" not in win.model_status.text()
