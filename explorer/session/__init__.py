"""The Qt-free document model of the explorer: image, model choice, runs and display layers, with events."""

from explorer.session.document import BLEND_MODES, DISPLAY_MODES, Layer, ModelChoice, Run, Session
from explorer.session.events import Signal

__all__ = ["BLEND_MODES", "DISPLAY_MODES", "Layer", "ModelChoice", "Run", "Session", "Signal"]
