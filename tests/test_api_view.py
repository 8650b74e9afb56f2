"""explorer.view: the desktop explorer on a model defined in the calling script (offscreen, closed by a timer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import explorer

pytestmark = pytest.mark.gui
LIMIT_S = 300  # a safety net so a broken window cannot hang the suite; never a timing assertion


class Small(nn.Module):
    """A classifier defined here, as in a user's script (3 classes)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                                      nn.ReLU())
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


def test_view_blocks_runs_a_method_on_the_users_model_and_closes(qapp):
    from PySide6.QtCore import QTimer

    from explorer.gui.main_window import MainWindow

    net = Small()
    net.__deepcopy__ = lambda *_: (_ for _ in ()).throw(AssertionError("copied"))
    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    seen: dict = {"polls": 0}

    def poll():
        seen["polls"] += 1
        wins = [w for w in qapp.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        if wins:
            w = wins[0]
            runs = list(w.session.runs.values())
            if runs and runs[0].status in ("done", "error", "cancelled"):
                seen.update(status=runs[0].status, error=runs[0].error, method=runs[0].method,
                            module_is_net=w.worker.model is not None and w.worker.model.module is net,
                            shape=None if runs[0].explanation is None else runs[0].explanation.maps["salient"].shape,
                            image=np.array_equal(w.session.image, img), labels=list(w.session.labels or []))
                w.close()
                return
            if seen["polls"] * 0.1 > LIMIT_S:
                seen["status"] = "gave up"
                w.close()
                return
        QTimer.singleShot(100, poll)

    QTimer.singleShot(0, poll)
    model = explorer.load_model(net, preprocess={"size": 32}, labels=["a", "b", "c"])
    viewer = explorer.view(model, img, "gradcam", block=True)
    assert seen.get("status") == "done", seen
    assert seen["method"] == "gradcam" and seen["module_is_net"] and seen["image"]
    assert seen["shape"] == img.shape[:2]
    assert seen["labels"][:3] == ["a", "b", "c"]
    assert not viewer.is_open and viewer.window is None
    assert not net.training


def test_view_live_returns_at_once_and_refuses_bad_input_before_any_window(qapp, qtbot):
    net = Small()
    img = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(explorer.ParamError, match="unknown parameter"):
        explorer.view(net, img, "rise", nn=3)
    with pytest.raises(explorer.ImageReadError, match="4 channels"):
        explorer.view(net, np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(explorer.UnknownNameError, match="unknown method"):
        explorer.view(net, img, "gradcamm")
    viewer = explorer.view(net, img, block=False)  # what IPython's %gui qt does: no local loop
    try:
        assert viewer.is_open and viewer.window.isVisible()
        qtbot.waitUntil(lambda: viewer.window.worker.model is not None, timeout=LIMIT_S * 1000)
        assert viewer.window.worker.model.module is net
        assert viewer.run("gradient")
        qtbot.waitUntil(lambda: any(r.status == "done" for r in viewer.window.session.runs.values()),
                        timeout=LIMIT_S * 1000)
    finally:
        viewer.close()
    qtbot.waitUntil(lambda: not viewer.is_open, timeout=LIMIT_S * 1000)
