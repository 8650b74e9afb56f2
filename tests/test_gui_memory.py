"""What the window remembers across launches (gui/memory.py): the last photo, model and layout, in a settings
file under the test's tmp_path; the first-start explanation only when nothing is remembered."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from explorer.gui import memory
from explorer.session.model_choice import ModelChoice


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)


def test_nothing_remembered_opens_what_the_command_line_says(settings):
    plan = memory.start_plan(settings, None, None, ModelChoice(), screenshot=False)
    assert (plan.image, plan.choice, plan.remembered) == (None, ModelChoice(), False)


def test_the_last_photo_and_model_are_reopened_unless_the_command_line_names_others(settings, tmp_path,
                                                                                    samples_dir):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    own = ModelChoice("torchvision:resnet18", str(weights), None, None, None, False)
    memory.remember_image(settings, str(samples_dir / "coffee.png"))
    memory.remember_model(settings, own)
    plan = memory.start_plan(settings, None, None, ModelChoice(device="cpu"), screenshot=False)
    assert plan.image == str((samples_dir / "coffee.png").resolve()) and plan.remembered
    assert plan.choice == ModelChoice("torchvision:resnet18", str(weights), device="cpu")  # the flag's device
    named = memory.start_plan(settings, "other.png", None, ModelChoice("timm:vit_tiny"), screenshot=False)
    assert named.image == "other.png" and named.choice == ModelChoice("timm:vit_tiny") and not named.remembered
    scripted = memory.start_plan(settings, None, None, ModelChoice(), screenshot=True)
    assert scripted.image is None and scripted.choice == ModelChoice() and not scripted.remembered
    assert memory.start_plan(settings, None, "s.json", ModelChoice(), False).image is None  # the session's photo


def test_the_labels_and_activation_come_back_too(settings, tmp_path):
    """Issue 27 item 6 names them: a multi-label model (sigmoid) with its own class names, reopened as such."""
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    own = ModelChoice("torchvision:resnet18", labels=str(labels), activation="sigmoid")
    memory.remember_model(settings, own)
    plan = memory.start_plan(settings, None, None, ModelChoice(), screenshot=False)
    assert plan.choice.labels == str(labels) and plan.choice.activation == "sigmoid" and plan.remembered
    default_sigmoid = ModelChoice(activation="none")  # the default model, only its activation changed
    memory.remember_model(settings, default_sigmoid)
    assert memory.start_plan(settings, None, None, ModelChoice(), screenshot=False).choice.activation == "none"


def test_a_vanished_photo_or_a_damaged_record_is_forgotten_quietly(settings, tmp_path):
    memory.remember_image(settings, str(tmp_path / "gone.png"))
    settings.setValue(memory.MODEL_KEY, '{"spec": 3}')
    assert memory.remembered_image(settings) is None and memory.remembered_model(settings) is None
    settings.setValue(memory.MODEL_KEY, "not json")
    plan = memory.start_plan(settings, None, None, ModelChoice(), screenshot=False)
    assert plan == memory.StartPlan(None, ModelChoice(), False)


def test_the_window_remembers_photo_model_and_layout(qapp, qtbot, model, samples_dir, settings):
    from explorer.gui.main_window import MainWindow

    w = MainWindow(settings=settings, throttle_s=0.02)
    w.resize(1200, 800)
    w.show()
    w.start(model=model)
    qtbot.waitUntil(lambda: bool(w.session.model_info), timeout=120_000)
    assert w.files.open_image(str(samples_dir / "coffee.png"))
    assert memory.remembered_image(settings) == str((samples_dir / "coffee.png").resolve())
    assert memory.remembered_model(settings) == w.session.model_choice
    w.docks["Predictions"].hide()
    w.close()
    again = MainWindow(settings=settings)
    again.show()
    try:
        assert not again.docks["Predictions"].isVisible() and again.docks["Layers"].isVisible()
        assert not settings.value(memory.GEOMETRY_KEY).isEmpty()  # (offscreen screens clamp the size itself)
    finally:
        again.shutdown()
        again.close()
