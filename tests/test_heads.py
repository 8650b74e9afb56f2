"""Planted evidence for each kind of head (issue 26): a binary single-logit model, a three-label sigmoid model
and a one-channel (grey) model, whose scores read known regions of the picture only.

Each model is: input ⊙ (union of its regions) -> a zero-mean 3x3 convolution (constant patches give 0) ->
its square (local texture energy, >= 0) -> a gate keeping each channel group inside its own region -> mean
pool -> a head with non-negative weights per group. So a label's logit grows with the texture kept in its
region and nothing else moves it; the binary model's one logit is (energy in A) - (energy in B), so "A" is
the evidence for the positive class and "B" the evidence for its negation ("not positive"). Grad-CAM,
Integrated Gradients, RISE and occlusion must put their strongest pixels in the right region for every
label and both binary decisions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import explorer
from explorer.methods import explain
from tests import planted

HW = planted.INPUT_HW  # 64 x 96
A = (0, 32, 48, 96)  # top right
B = (32, 64, 0, 48)  # bottom left
LABEL_REGIONS = ((0, 32, 0, 48), (0, 32, 48, 96), (32, 64, 24, 72))
IMAGE = planted.photo(3)


def _mask(region) -> torch.Tensor:
    return torch.as_tensor(planted.region_mask(HW, region), dtype=torch.float32)


class RegionHeads(nn.Module):
    """See the module docstring. ``regions``: one per channel group; ``signs``: each group's sign in each
    output (outputs x groups)."""

    def __init__(self, regions, signs, channels: int = 3, per_group: int = 4, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        n = len(regions)
        self.per_group = per_group
        self.conv = nn.Conv2d(channels, per_group * n, 3, padding=1, bias=False)
        with torch.no_grad():
            w = torch.randn(self.conv.weight.shape, generator=g)
            self.conv.weight.copy_(w - w.mean(dim=(1, 2, 3), keepdim=True))  # zero-mean: flat patches give 0
        gates = torch.stack([_mask(r) for r in regions]).repeat_interleave(per_group, 0)  # (C, H, W)
        self.register_buffer("inside", gates.amax(0)[None, None])
        self.register_buffer("gates", gates[None])
        self.energy = Square()
        self.gate = Gate()
        self.pool = nn.AdaptiveAvgPool2d(1)
        signs = torch.as_tensor(signs, dtype=torch.float32)
        self.head = nn.Linear(per_group * n, signs.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(signs.repeat_interleave(per_group, 1))
            self.head.bias.zero_()

    def features(self, x):
        return self.pool(self.gate(self.energy(self.conv(x * self.inside)), self.gates)).flatten(1)

    def forward(self, x):
        return self.head(self.features(x))

    def calibrate(self, x: torch.Tensor, centre: float) -> "RegionHeads":
        """Scale each group's weights so the photo's energy in its region is worth 4 (blank: 0), then shift
        each output by ``centre`` (the logits stay where the sigmoid is sensitive)."""
        with torch.no_grad():
            energy = self.features(x)[0].view(-1, self.per_group).sum(1)  # per group
            self.head.weight.mul_((4.0 / energy.clamp_min(1e-8)).repeat_interleave(self.per_group)[None])
            self.head.bias.fill_(centre)
        return self


class Square(nn.Module):
    def forward(self, x):
        return x * x


class Gate(nn.Module):
    def forward(self, x, gates):
        return x * gates


def _loaded(net, channels=3, **kw):
    mean, std = ((0.5,), (0.25,)) if channels == 1 else ((0.5,) * 3, (0.25,) * 3)
    return explorer.load_model(net.eval(), preprocess={"size": HW, "mean": mean, "std": std}, **kw)


def _x(channels: int = 3) -> torch.Tensor:
    x = (torch.from_numpy(IMAGE).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.25
    if channels == 1:
        x = (x * torch.tensor((0.299, 0.587, 0.114)).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return x


_CACHE: dict = {}


def binary():
    if "binary" not in _CACHE:
        net = RegionHeads((A, B), [[1.0, -1.0]]).calibrate(_x(), 0.0)
        _CACHE["binary"] = _loaded(net, labels=["cat"])
    return _CACHE["binary"]


def multilabel():
    if "multi" not in _CACHE:
        net = RegionHeads(LABEL_REGIONS, np.eye(3).tolist()).calibrate(_x(), -2.0)
        _CACHE["multi"] = _loaded(net, labels=["lesion", "nodule", "effusion"], activation="sigmoid")
    return _CACHE["multi"]


def grey():
    if "grey" not in _CACHE:
        net = RegionHeads(LABEL_REGIONS[:2], np.eye(2).tolist() + [[0.0, 0.0]], channels=1).calibrate(_x(1), -2.0)
        _CACHE["grey"] = _loaded(net, channels=1)
    return _CACHE["grey"]


# method: (params, whether its "no evidence" level is the map's mean rather than 0, the share asked for).
# RISE is a Monte Carlo estimate that never reaches 0 (its positive mass counts above the map's mean, as in
# test_planted.py) and smears the regions' edges over a mask cell: it is held to a lower share.
METHODS = {
    "gradcam": ({}, False, 0.7),
    "integrated_gradients": ({"steps": 16}, False, 0.7),
    "rise": ({"n": 600, "cells": 8}, True, 0.65),
    "occlusion": ({"window": 8, "stride": 4}, False, 0.7),
}
TOP = 0.05  # "the strongest pixels": the top 5 % of the map
# RISE's 600 forwards per case make it the slow one (as in test_planted.py)
CASES = [pytest.param(m, marks=pytest.mark.slow) if m == "rise" else m for m in METHODS]


def _check(model, target: int, region, method: str) -> None:
    params, above_mean, wanted = METHODS[method]
    exp = explain(method, model, IMAGE, target=target, params=params, seed=0)
    m = np.asarray(exp.raw["salient"], dtype=np.float64)
    assert np.isfinite(m).all()
    base = float(m.mean()) if above_mean else 0.0
    share = planted.positive_share(m, base, region)
    inside = planted.region_mask(m.shape, region)
    strongest = float(inside[m >= np.quantile(m, 1 - TOP)].mean())
    assert share >= wanted, f"{method} target {target}: {share:.2f} of the positive mass in {region}"
    assert strongest >= 0.75, f"{method} target {target}: {strongest:.2f} of the strongest pixels in {region}"


def test_binary_model_is_a_sigmoid_pair_named_both_ways():
    m = binary()
    assert m.activation == "sigmoid" and m.binary
    assert m.labels == ["cat", "not cat"]
    p = m.scores(torch.cat([_x(), torch.zeros(1, 3, *HW)]))
    torch.testing.assert_close(p.sum(1), torch.ones(2))  # p and 1 - p: the model's own probability
    z = m(_x())[0]
    assert float(z[0]) == pytest.approx(-float(z[1]))
    assert m.describe()["binary"] is True


@pytest.mark.parametrize("method", CASES)
@pytest.mark.parametrize("target, region", [(0, A), (1, B)], ids=["positive", "negation"])
def test_binary_both_decisions(method, target, region):
    _check(binary(), target, region, method)


@pytest.mark.parametrize("method", CASES)
@pytest.mark.parametrize("label", [0, 1, 2])
def test_multilabel_each_label(method, label):
    _check(multilabel(), label, LABEL_REGIONS[label], method)


@pytest.mark.parametrize("method", CASES)
@pytest.mark.parametrize("label", [0, 1])
def test_grey_model_each_label(method, label):
    _check(grey(), label, LABEL_REGIONS[label], method)


def test_sigmoid_scores_are_independent_probabilities():
    m = multilabel()
    p = m.scores(_x())[0]
    assert float(p.sum()) != pytest.approx(1.0, abs=0.05)
    torch.testing.assert_close(p, m(_x())[0].sigmoid())
    preds = m.predict(_x(), 3)
    assert [round(q.prob, 5) for q in preds] == sorted((round(float(v), 5) for v in p), reverse=True)


def test_grey_model_sees_the_luma_of_the_photo():
    m = grey()
    assert m.preprocess.channels == 1 and m.describe()["input_channels"] == 1
    x3 = m.preprocess.normalise(IMAGE)
    assert x3.shape[1] == 3  # explorer keeps the colour photo; the model gets its grey
    torch.testing.assert_close(m.forward.model_input(x3), _x(1), rtol=1e-5, atol=1e-5)
