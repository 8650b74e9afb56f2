"""What the window remembers across launches: the last photo, the last model that loaded (spec, weights,
labels and whatever else the model choice records, such as an activation) and the layout of the docks.

A plain ``explorer`` then reopens where the person left off, without the first-start explanation (that is
for a first launch, when nothing is remembered). What the command line names wins over what is remembered,
and a ``--screenshot`` run (scripted, for docs and tests) reads nothing remembered, so it stays reproducible.
Trust to unpickle is never remembered (the model choice does not hold it): a remembered model that needs it
fails to load with its message, and the default model is loaded instead.

Settings live in Qt's per-user place (``QSettings("explorer", "explorer")``), or in
``$EXPLORER_CONFIG_DIR/explorer.ini`` when that variable is set (the tests point it at a temporary folder).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from explorer.session.model_choice import ModelChoice

IMAGE_KEY = "last/image"
MODEL_KEY = "last/model"
GEOMETRY_KEY = "layout/geometry"
STATE_KEY = "layout/state"
CONFIG_ENV = "EXPLORER_CONFIG_DIR"


def open_settings() -> QSettings:
    folder = os.environ.get(CONFIG_ENV)
    if folder:
        return QSettings(str(Path(folder) / "explorer.ini"), QSettings.IniFormat)
    return QSettings("explorer", "explorer")


def remember_image(settings: QSettings, path: str | None) -> None:
    if path:
        settings.setValue(IMAGE_KEY, str(Path(path).resolve()))


def remember_model(settings: QSettings, choice: ModelChoice) -> None:
    settings.setValue(MODEL_KEY, json.dumps(choice.record()))


def remembered_image(settings: QSettings) -> str | None:
    """The last photo, when it is still there."""
    v = settings.value(IMAGE_KEY, "")
    return str(v) if v and Path(str(v)).is_file() else None


def remembered_model(settings: QSettings) -> ModelChoice | None:
    """The last model that loaded; None when there is none or the record is damaged (never an error at start)."""
    v = settings.value(MODEL_KEY, "")
    if not v:
        return None
    try:
        return ModelChoice.from_record(json.loads(str(v)))
    except (ValueError, TypeError):
        return None


@dataclass
class StartPlan:
    """What the window opens on."""

    image: str | None  # None: the bundled sample
    choice: ModelChoice
    remembered: bool  # something remembered was used: no first-start explanation


def start_plan(settings: QSettings, image: str | None, session: str | None, choice: ModelChoice,
               screenshot: bool) -> StartPlan:
    """The photo and model to open: the command line's, else the remembered ones (not for ``screenshot``)."""
    if screenshot:
        return StartPlan(image, choice, False)
    used = False
    if image is None and session is None:
        image = remembered_image(settings)
        used = image is not None
    if choice.spec is None and choice.weights is None and choice.labels is None:  # no model named
        last = remembered_model(settings)
        if last is not None and last != ModelChoice(device=last.device, offline=last.offline):
            last.device = choice.device or last.device
            last.offline = choice.offline or last.offline
            choice, used = last, True
    return StartPlan(image, choice, used)


def save_layout(win) -> None:
    """Dock sizes and places, and the window's size (presentation mode's are not the user's layout)."""
    if getattr(win, "presentation", None) is not None and win.presentation.active:
        win.presentation.set_active(False)
    win.tabs.setCurrentWidget(win.canvas)  # the docks a wide tab set aside come back first
    win.settings.setValue(GEOMETRY_KEY, win.saveGeometry())
    win.settings.setValue(STATE_KEY, win.saveState())


def restore_layout(win) -> bool:
    geometry, state = win.settings.value(GEOMETRY_KEY), win.settings.value(STATE_KEY)
    ok = False
    if isinstance(geometry, QByteArray) and not geometry.isEmpty():
        ok = win.restoreGeometry(geometry)
    if isinstance(state, QByteArray) and not state.isEmpty():
        ok = win.restoreState(state) and ok
    return ok
