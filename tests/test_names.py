"""One meaning per name (issue 32): a network layer is a "layer", what a method returns is a "map", what the
window shows is a display layer. The names before that renaming still read, for code written against them
(old names on purpose: rename_32.py leaves this file alone)."""

from __future__ import annotations

import numpy as np


def test_the_old_names_are_the_new_things():
    from explorer import core, session
    from explorer.core import types
    from explorer.evaluation import base as metric_base
    from explorer.evaluation import runner
    from explorer.methods import base as method_base
    from explorer.session import document

    assert types.LayerSpec is types.MapSpec and core.LayerSpec is core.MapSpec
    assert types.Explanation is types.MethodResult and core.Explanation is core.MethodResult
    assert types.Step is types.MethodStep and core.Step is core.MethodStep
    assert types.Update is types.RunUpdate and core.Update is core.RunUpdate
    assert {"Explanation", "LayerSpec", "Step", "Update", "MapSpec", "MethodResult"} <= set(core.__all__)
    assert document.Layer is document.DisplayLayer and session.Layer is session.DisplayLayer
    assert "Layer" in session.__all__ and "DisplayLayer" in session.__all__
    assert runner.prepare is runner.prepare_evaluation and runner.Run is runner.PreparedEvaluation
    assert runner.RunResult is runner.EvaluationResult
    assert method_base.prepare is method_base.prepare_context
    assert metric_base.Progress is metric_base.MetricProgress


def test_a_results_map_names_are_read_under_both_names():
    from explorer.api.result import Explanation
    from explorer.core.types import MethodResult, Placement

    raw = {"salient": np.zeros((4, 4), np.float32), "signed": np.zeros((4, 4), np.float32)}
    core = MethodResult("gradcam", raw, {"salient": False, "signed": True}, Placement.whole((4, 4), (4, 4)), 1,
                        "goldfish", {}, 0, "m")
    assert core.map_names == core.layer_names == ["salient", "signed"]
    public = Explanation(core, np.zeros((4, 4, 3), np.uint8), None, {})
    assert public.map_names == public.layers == ["salient", "signed"]
