"""Refusals say what to do, and what they say works: the methods a refusal suggests instead run on that model,
and FIDO refuses a reduced size a fixed-size model cannot take before it starts optimising."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from explorer.core.errors import UnsupportedError
from explorer.methods import METHODS, explain
from explorer.methods.alternatives import working_alternatives
from explorer.methods.base import get_method


def suggested(msg: str) -> list[str]:
    m = re.search(r"use ([a-z_, ]+?) instead$", msg)
    assert m, msg
    return [n.strip() for n in re.split(r",| or ", m.group(1)) if n.strip()]


def refusal(method: str, model, **params) -> str:
    with pytest.raises(UnsupportedError) as err:
        get_method(method)(model, **params)  # construction = the check before any compute
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def runs(method: str, model, image: np.ndarray) -> None:
    exp = explain(method, model, image, params=dict(METHODS.get(method).quick), seed=0)
    assert all(np.isfinite(m).all() for m in exp.maps.values()), method


@pytest.fixture(scope="module")
def small_photo(chelsea):
    return chelsea[::8, ::8].copy()


def test_lrp_on_a_transformer_suggests_only_what_runs_there(tiny_vit, small_photo):
    msg = refusal("lrp", tiny_vit)
    names = suggested(msg)
    assert "lrp" not in names and "chefer" in names, msg  # the ViT's attention is readable: chefer is offered
    for name in names:
        runs(name, tiny_vit, small_photo)


def test_attention_methods_on_a_cnn_suggest_only_what_runs_there(tiny_model, small_photo):
    names = suggested(refusal("attention_rollout", tiny_model))
    assert suggested(refusal("chefer", tiny_model)) == names
    assert "lrp" in names and not {"chefer", "attention_rollout"} & set(names), names  # ReLU CNN: LRP works
    for name in names:
        runs(name, tiny_model, small_photo)


def test_suggestions_follow_what_the_model_offers(tiny_vit, tiny_model):
    assert working_alternatives(tiny_vit) == ["gradcam", "integrated_gradients", "chefer", "rise"]
    assert working_alternatives(tiny_model, exclude=("gradcam",)) == ["integrated_gradients", "lrp", "rise"]
    scores_only = dataclasses.replace(tiny_model, kind="onnx", _layers=None, _batch=None)
    assert working_alternatives(scores_only) == ["rise"]


def test_fido_refuses_a_reduced_size_on_a_fixed_size_model_before_optimising(tiny_vit):
    before = dict(tiny_vit.passes)
    msg = refusal("fido", tiny_vit, scale=0.5)
    assert "20x28" in msg and "40x56" in msg and "use scale=1" in msg, msg
    assert tiny_vit.passes["grad_images"] == before["grad_images"]  # no optimisation step ran
    get_method("fido")(tiny_vit, scale=1.0)  # full size is accepted


def test_fido_reduced_size_still_runs_where_the_model_takes_it(tiny_model, small_photo):
    exp = explain("fido", tiny_model, small_photo, params={**METHODS.get("fido").quick, "scale": 0.5}, seed=0)
    assert exp.info["input"] == [16, 16]
