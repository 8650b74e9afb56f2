"""Planted evidence: on models whose target logit depends only on one quadrant (tests/planted.py), the maps
must put at least 0.7 of their positive mass in that quadrant, per model family.

Families: a CNN (ResNet-18), ConvNeXt, Swin and ViT from timm, random weights modified so the planted region
is the only evidence (nothing trained). Methods: Grad-CAM (convolutional families), attention rollout and
Chefer relevance (ViT), Integrated Gradients (all), RISE (ResNet and ViT; its map never reaches 0, so its
positive mass is counted above the map's mean, as its layer's ``zero`` text says).
"""

from __future__ import annotations

import pytest

from explorer.methods import explain
from tests import planted

IMAGE = planted.photo()
SHARE = 0.7
_MODELS: dict = {}


def model(family: str):
    if family not in _MODELS:
        net = planted.vit(IMAGE) if family == "vit" else planted.cnn(family, IMAGE)
        _MODELS[family] = planted.loaded(net, family)
    return _MODELS[family]


def share(family: str, method: str, params: dict | None = None, above_mean: bool = False) -> float:
    exp = explain(method, model(family), IMAGE, target=planted.TARGET, params=params or {}, seed=0)
    m = exp.raw["salient"]
    return planted.positive_share(m, float(m.mean()) if above_mean else 0.0)


def test_planted_models_score_only_the_region():
    import torch

    x = planted.normalised(IMAGE)
    outside = x * torch.as_tensor(~planted.region_mask())
    for family in ("resnet", "vit"):
        net = model(family)
        with torch.no_grad():
            z = net(torch.cat([x, x - outside, x + 3 * outside]))  # change everything outside the region
        torch.testing.assert_close(z[1:], z[:1].expand(2, -1), rtol=1e-5, atol=1e-5)
        assert int(z[0].argmax()) == planted.TARGET


@pytest.mark.parametrize("family", ["resnet", "convnext", "swin"])
def test_gradcam_finds_the_region(family):
    assert share(family, "gradcam") >= SHARE


@pytest.mark.parametrize("method", ["attention_rollout", "chefer"])
def test_attention_methods_find_the_region(method):
    assert share("vit", method) >= SHARE


@pytest.mark.parametrize("family", ["resnet", "convnext", "swin", "vit"])
def test_integrated_gradients_finds_the_region(family):
    assert share(family, "integrated_gradients", {"steps": 8}) >= SHARE


@pytest.mark.slow
@pytest.mark.parametrize("family", ["resnet", "vit"])
def test_rise_finds_the_region(family):
    assert share(family, "rise", {"n": 300}, above_mean=True) >= SHARE


def test_a_map_of_the_wrong_region_fails_the_check():
    """The measure can fail: the same ViT relevance scored against the mirrored quadrant."""
    exp = explain("chefer", model("vit"), IMAGE, target=planted.TARGET)
    mirrored = (planted.REGION[0], planted.REGION[1], 0, 48)
    assert planted.positive_share(exp.raw["salient"], region=mirrored) < 0.3
