"""Refusals say what to do, and what they say works: the methods a refusal suggests instead run on that model,
a refused layer is never the one suggested, and FIDO refuses a reduced size a fixed-size model cannot take
before it starts optimising."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

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


def test_lrp_on_an_uncovered_layer_suggests_only_what_runs_there(tiny_vit, small_photo):
    """LRP runs on ViTs now (issue 30); a layer no rule covers (here: attention with a sigmoid output gate)
    is refused, and the refusal still names only methods that run there."""
    blk = tiny_vit.module.blocks[0].attn
    blk.gate = torch.nn.Linear(blk.qkv.in_features, blk.qkv.in_features)
    try:
        msg = refusal("lrp", tiny_vit)
        names = suggested(msg)
        assert "lrp" not in names and "gate" in msg, msg
    finally:
        blk.gate = None
    for name in names:
        runs(name, tiny_vit, small_photo)


def test_attention_methods_on_a_cnn_suggest_only_what_runs_there(tiny_model, small_photo):
    names = suggested(refusal("attention_rollout", tiny_model))
    assert suggested(refusal("chefer", tiny_model)) == names
    assert "lrp" in names and not {"chefer", "attention_rollout"} & set(names), names  # ReLU CNN: LRP works
    for name in names:
        runs(name, tiny_model, small_photo)


def test_suggestions_follow_what_the_model_offers(tiny_vit, tiny_model):
    assert working_alternatives(tiny_vit) == ["gradcam", "integrated_gradients", "lrp", "chefer", "rise"]  # issue 30
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


@pytest.fixture(scope="module")
def resnet18():
    timm = pytest.importorskip("timm")

    torch.manual_seed(0)
    return timm.create_model("resnet18", pretrained=False)


def test_cam_never_suggests_the_layer_it_refused(resnet18, small_photo):
    import explorer

    # at 32 px layer4 is 1x1 (no candidate layer): the default is layer3, whose 256 channels are not the
    # classifier's 512 inputs, and no layer offers 512 channels at this size
    at32 = explorer.load_model(resnet18, preprocess={"size": 32})
    assert at32.default_layer() == "layer3"
    msg = refusal("cam", at32)
    assert "pick 'layer3'" not in msg and "use gradcam" in msg and "32x32" in msg, msg
    # at 64 px, asking for layer3 names layer4, which CAM then accepts
    at64 = explorer.load_model(resnet18, preprocess={"size": 64})
    msg = refusal("cam", at64, layer="layer3")
    assert "pick 'layer4'" in msg, msg
    exp = explain("cam", at64, small_photo, params={"layer": "layer4"})
    assert exp.info["layer"] == "layer4"
