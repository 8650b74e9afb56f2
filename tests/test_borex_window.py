"""The window shows what BOREx's manifest says: which prior was refined, how much the refinement changed its
insertion − deletion, and the GP's fit (the run's status and the layers' tooltips)."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core.types import MethodResult, Placement
from explorer.gui.panels import LayerPanel
from explorer.session import Session

pytestmark = pytest.mark.gui


def test_refined_layer_shows_prior_and_gain(qtbot):
    s = Session()
    s.set_image(np.zeros((20, 20, 3), np.uint8))
    lp = LayerPanel(s)
    qtbot.addWidget(lp)
    run = s.new_run("borex", {})
    headline = "refined rise (n=100): insertion − deletion +0.250 → +0.400 (gain +0.150, quick protocol)"
    info = {"gain": {"gain": 0.15}, "headline": headline}
    exp = MethodResult("borex", {"refined": np.ones((8, 8), np.float32)}, {"refined": False},
                      Placement.whole((20, 20), (8, 8)), 0, "c", {}, 0, "x", info=info)
    s.accept(run.id, 1, exp, True)
    item = lp.run_items[run.id]
    assert item.text(1).endswith("gain +0.150") and item.toolTip(1) == headline
    layer = lp.layer_items[s.layers[0].id]
    assert headline in layer.toolTip(0)
    # a run without a headline keeps its plain status
    other = s.new_run("rise", {})
    s.accept(other.id, 1, MethodResult("rise", {"salient": np.ones((8, 8), np.float32)}, {"salient": False},
                                      Placement.whole((20, 20), (8, 8)), 0, "c", {}, 0, "x"), True)
    assert "gain" not in lp.run_items[other.id].text(1)
