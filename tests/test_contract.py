"""Contract tests over the whole method registry (every method, on the real default model)."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core.cancel import CancelToken
from explorer.core.params import Params
from explorer.core.types import Needs
from explorer.methods import METHODS, explain, method_names, run
from explorer.models.layers import hook_count

NAMES = method_names()


def model_for(cls, request):
    """The real default model, or for the transformer attention methods (which refuse a CNN) a tiny ViT."""
    return request.getfixturevalue("tiny_vit" if Needs.ATTENTION in cls.needs else "model")


def test_registry_is_populated():
    assert {"gradient", "rise"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_declaration(name):
    cls = METHODS.get(name)
    assert cls.name == name
    assert isinstance(cls.params, Params)
    assert cls.outputs, "a method declares at least one output layer"
    assert isinstance(cls.needs, Needs)
    d = cls.describe()
    assert d["title"] and d["paper"], "title and paper are shown in the GUI and README"
    cls.params.resolve(cls.quick)  # quick params are valid


@pytest.mark.parametrize("name", NAMES)
def test_maps_shape_dtype_finite_and_hooks(name, request, chelsea):
    cls = METHODS.get(name)
    model = model_for(cls, request)
    before = hook_count(model.module)
    exp = explain(name, model, chelsea, params=dict(cls.quick), seed=3)
    assert hook_count(model.module) == before == 0
    assert exp.complete and not exp.cancelled
    declared = {o.name for o in cls.outputs}
    assert set(exp.maps) <= declared and exp.main in declared
    for layer, m in exp.maps.items():
        assert m.shape == chelsea.shape[:2], layer
        assert m.dtype == np.float32
        assert np.isfinite(m).all(), layer
        assert exp.signed[layer] == cls.signed_of(layer)
    if not cls.class_agnostic and model.id == "efficientnet_lite0":
        assert exp.target == 285 or exp.target_name in ("Egyptian cat", "tabby", "tiger cat")


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_map(name, request, coffee):
    cls = METHODS.get(name)
    model = model_for(cls, request)
    a = explain(name, model, coffee, params=dict(cls.quick), seed=11)
    b = explain(name, model, coffee, params=dict(cls.quick), seed=11)
    for layer in a.maps:
        np.testing.assert_allclose(a.maps[layer], b.maps[layer], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_cancel_is_honoured(name, request, chelsea):
    cls = METHODS.get(name)
    model = model_for(cls, request)
    token = CancelToken()
    updates = []
    for u in run(name, model, chelsea, params=dict(cls.quick), cancel=token):
        updates.append(u)
        token.cancel()  # cancel after the first step
    assert updates[-1].done
    if updates[0].progress < 1.0:  # a multi-step method stopped early and kept its partial maps
        last = updates[-1].explanation
        assert last.cancelled and not last.complete
        assert all(np.isfinite(m).all() for m in last.maps.values())
        assert len(updates) == 2
    assert hook_count(model.module) == 0
