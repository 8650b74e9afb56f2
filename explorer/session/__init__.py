"""The Qt-free document model of the explorer: image, model choice, runs and display layers, with events."""

from explorer.session.document import BLEND_MODES, DISPLAY_MODES, DisplayLayer, Run, Session
from explorer.session.events import Signal
from explorer.session.model_choice import ModelChoice

__all__ = ["BLEND_MODES", "DISPLAY_MODES", "DisplayLayer", "ModelChoice", "Run", "Session", "Signal"]
Layer = DisplayLayer  # old name kept (issue 32)
__all__ += ["Layer"]  # old name kept
