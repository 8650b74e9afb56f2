"""The method catalog's entry type (core/catalog.py): frozen, typed, built from the method classes, and marked
unavailable for a model that lacks what a method needs."""

from __future__ import annotations

import dataclasses

import pytest

from explorer.core.catalog import CatalogEntry, Family
from explorer.core.types import MapSpec, Needs
from explorer.methods import METHODS, method_names


def test_every_registered_method_declares_a_known_family_and_its_entry_mirrors_the_class():
    for name in method_names():
        cls = METHODS.get(name)
        assert isinstance(cls.family, Family), name  # a typo in a family is an error, not a new group
        e = cls.catalog_entry()
        assert (e.name, e.family, e.needs, e.params, e.outputs) == (name, cls.family, cls.needs, cls.params,
                                                                    tuple(cls.outputs))
        assert dict(e.quick) == cls.quick and e.available and e.reason == ""
        assert e.describe() == cls.describe() and e.describe()["family"] == str(cls.family)


def test_borex_is_the_refinement_and_nothing_else_is():
    assert [n for n in method_names() if METHODS.get(n).family == Family.REFINEMENT] == ["borex"]


def test_an_entry_is_frozen_all_the_way_down():
    e = CatalogEntry("m", "M", Family.PERTURBATION, quick={"n": 8})
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.available = False
    with pytest.raises(TypeError):
        e.quick["n"] = 9  # shared by the controller and every panel: nobody edits another's copy


def test_on_model_marks_what_the_model_lacks_and_restores_it_for_one_that_has_it():
    e = CatalogEntry("lrp", "LRP", Family.RELEVANCE, needs=Needs.GRADIENTS | Needs.LAYER,
                     outputs=(MapSpec("relevance", signed=True),))
    onnx = e.on_model(Needs.SCORES, "onnx")
    assert not onnx.available and onnx.reason == "needs gradients + layer hooks, which the onnx model does not offer"
    ts = e.on_model(Needs.SCORES | Needs.GRADIENTS, "torchscript")
    assert not ts.available and ts.reason == "needs layer hooks, which the torchscript model does not offer"
    back = onnx.on_model(Needs.SCORES | Needs.GRADIENTS | Needs.LAYER, "timm")
    assert back.available and back.reason == "" and e.available  # the original entry is untouched
    assert e.needs_text == "gradients + layer hooks"
