"""A signed layer's 0 must mean what its declared ``zero`` text says, for every signed layer of every method.

On a planted model whose scores depend only on one quadrant (tests/planted.py, two convolutions), a signed
map whose 0 means "no effect / no contribution / no gradient" must be 0 away from the quadrant; maps whose 0
comes with a sum rule (Integrated Gradients, KernelSHAP, CAM) must obey it. The table below must cover every
signed layer in the registry, so a new signed layer cannot ship without saying, and checking, what its 0 is.
BOREx's ``refined`` (mostly negative on photos, no meaningful 0) is declared an unsigned ranking.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from explorer.methods import METHODS, explain, method_names
from tests import planted

IMAGE = planted.photo()
INSIDE = planted.region_mask()

# (method, signed layer) -> (parameters, margin in pixels around the region where spill is allowed, exact)
# ``exact``: outside the margin the map is 0 to float precision; otherwise (regression estimates on random
# coalitions) small against the inside.
ZERO_CHECKS = {
    ("gradient_x_input", "salient"): ({}, 0, True),
    ("integrated_gradients", "salient"): ({"steps": 8}, 0, True),
    ("guided_backprop", "signed"): ({}, 0, True),
    ("deconvnet", "signed"): ({}, 0, True),
    ("lrp", "salient"): ({}, 0, True),
    ("occlusion", "salient"): ({"window": 8, "stride": 4}, 8, True),
    ("lime", "salient"): ({"samples": 300, "segments": 24}, 16, False),
    ("kernelshap", "salient"): ({"samples": 300, "segments": 24}, 16, False),
    ("gradcam", "signed"): ({}, 4, True),
    ("gradcam_pp", "signed"): ({}, 4, True),
    ("layercam", "signed"): ({}, 4, True),
    ("cam", "signed"): ({}, 4, True),
    ("scorecam", "signed"): ({}, 4, True),
    ("guided_gradcam", "signed"): ({}, 4, True),
    ("hirescam", "signed"): ({}, 4, True),
    ("xgradcam", "signed"): ({}, 4, True),
    ("ablationcam", "signed"): ({}, 4, True),
}
# Layers whose 0 is not "no effect" but a declared reference level; each has its own check below.
REFERENCE_ZERO = {("eigencam", "signed")}


def signed_layers() -> set[tuple[str, str]]:
    return {(n, o.name) for n in method_names() for o in METHODS.get(n).outputs if o.signed}


@pytest.fixture(scope="module")
def net():
    return planted.loaded(planted.cnn("tiny", IMAGE), "tiny")


def test_every_signed_layer_declares_and_checks_its_zero():
    assert signed_layers() == set(ZERO_CHECKS) | REFERENCE_ZERO, "add the new signed layer's zero check to ZERO_CHECKS"
    for name, layer in signed_layers():
        spec = next(o for o in METHODS.get(name).outputs if o.name == layer)
        assert spec.zero.startswith("0 = "), (name, layer, spec.zero)


def test_borex_refined_is_an_unsigned_ranking():
    spec = next(o for o in METHODS.get("borex").outputs if o.name == "refined")
    assert not spec.signed and "ranking" in spec.zero and "no boundary" in spec.zero


def _valid(name: str, params: dict) -> dict:
    declared = METHODS.get(name).params.names()
    return {k: v for k, v in params.items() if k in declared}


@pytest.mark.parametrize("name, layer", sorted(ZERO_CHECKS))
def test_zero_means_no_effect_away_from_the_evidence(net, name, layer):
    params, margin, exact = ZERO_CHECKS[(name, layer)]
    exp = explain(name, net, IMAGE, target=planted.TARGET, params=_valid(name, params), seed=0)
    m = np.asarray(exp.raw[layer], dtype=np.float64)
    near = ndimage.binary_dilation(INSIDE, iterations=margin) if margin else INSIDE
    far = ~near
    scale = np.abs(m[INSIDE]).max()
    assert scale > 0, "the map has evidence in the region"
    if exact:
        assert np.abs(m[far]).max() <= 1e-4 * scale, np.abs(m[far]).max() / scale
    else:
        assert np.abs(m[far]).mean() <= 0.15 * np.abs(m[INSIDE]).mean()


def test_eigencam_zero_is_the_average_location(net):
    """Away from the evidence the planted net's features are all alike: one value there, below the evidence,
    and the map's mean over the feature grid is 0 (the average location), as its zero text says."""
    exp = explain("eigencam", net, IMAGE, seed=0)
    m = np.asarray(exp.raw["signed"], dtype=np.float64)
    far = ~ndimage.binary_dilation(INSIDE, iterations=4)
    assert np.ptp(m[far]) <= 1e-4 * np.abs(m).max()
    assert m[INSIDE].max() > m[far].max()
    assert abs(m.mean()) <= 0.05 * np.abs(m).max()


def test_integrated_gradients_sums_to_the_score_difference(net):
    exp = explain("integrated_gradients", net, IMAGE, target=planted.TARGET, params={"steps": 64}, seed=0)
    x = planted.normalised(IMAGE)
    with torch.no_grad():
        z = net(torch.cat([x, torch.zeros_like(x)]))[:, planted.TARGET]
    total = float(exp.raw["salient"].sum())
    assert total == pytest.approx(float(z[0] - z[1]), rel=0.02)


def test_cam_mean_plus_bias_is_the_logit(net):
    exp = explain("cam", net, IMAGE, target=planted.TARGET)
    x = planted.normalised(IMAGE)
    with torch.no_grad():
        z = float(net(x)[0, planted.TARGET])
    bias = float(net.module.fc.bias[planted.TARGET])
    # the map is the feature grid upsampled by an integer factor: its mean is the grid's mean
    assert float(exp.raw["signed"].mean()) + bias == pytest.approx(z, rel=0.02, abs=1e-3)
