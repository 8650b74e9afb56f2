"""Extremal perturbations (docs/methods.md §4.1): on a real photo the mask of area a keeps the class far above
random masks of the same area and smoothness; on a planted model it lands on the planted region; the pieces
(the paper's area loss, the smooth max-convolution, one mask per area, streaming) behave as specified."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from explorer.core.errors import ParamError
from explorer.methods import explain, run
from explorer.methods.extremal import area_loss, smooth_max_conv
from tests import planted


def test_area_loss_is_zero_exactly_at_the_area():
    m = torch.zeros(2, 1, 10, 10)
    m[0, :, :2, :] = 1  # 20 % of the pixels, wherever they are
    m[1, :, :, :5] = 1  # 50 %
    areas = torch.tensor([0.2, 0.2])
    r = area_loss(m, areas)
    assert r[0] == 0 and r[1] == pytest.approx(0.3)  # 30 of 100 ranks are 1 where the reference says 0
    half = torch.full((1, 1, 10, 10), 0.5)
    assert area_loss(half, torch.tensor([0.2]))[0] == pytest.approx(0.25)


def test_smooth_max_conv_is_a_smooth_max():
    mbar = torch.zeros(1, 1, 15, 15)
    mbar[0, 0, 7, 7] = 1.0
    m = smooth_max_conv(mbar, sigma=2.0, temperature=0.01)
    assert m[0, 0, 7, 7] == pytest.approx(1.0, abs=1e-3)  # k(0) = 1: a kept cell stays kept
    # away from the cell: the Gaussian profile exp(-d²/2σ²) (the max over a single non-zero term)
    assert m[0, 0, 7, 9] == pytest.approx(np.exp(-4 / 8), abs=0.02)
    assert float(m.min()) >= 0 and float(m.max()) <= 1 + 1e-6
    flat = smooth_max_conv(torch.full((1, 1, 6, 6), 0.7), 1.0, 0.01)
    torch.testing.assert_close(flat[0, 0, 2:4, 2:4], torch.full((2, 2), 0.7), atol=1e-3, rtol=0)


@pytest.mark.slow
def test_preserved_region_keeps_the_class_far_above_random_masks(model, coffee):
    """Coffee (espresso, 967): the mask of area 0.1 keeps P(espresso) far above random masks of the same mean
    area, built by the same smooth max-convolution (so only the place differs)."""
    from explorer.methods.base import prepare_context
    from explorer.perturb.infill import make_infill

    ups = list(run("extremal", model, coffee, target=967, params={"steps": 40, "area": 0.1, "every": 10}, seed=0))
    assert [round(u.progress, 2) for u in ups[:-1]] == [0.25, 0.5, 0.75, 1.0]  # the masks stream every 10 steps
    mask = ups[-1].explanation.raw["salient"]
    assert mask.shape == (224, 224) and 0 <= mask.min() and mask.max() <= 1
    assert abs(float(mask.mean()) - 0.1) < 0.03
    ctx = prepare_context(model, coffee, 967)
    fill = make_infill("blur", ctx.x, model.preprocess, sigma=10)
    g = torch.Generator().manual_seed(0)
    rand = []
    for _ in range(8):
        cells = (torch.rand(1, 1, 28, 28, generator=g) < 0.1).float()
        r = F.interpolate(smooth_max_conv(cells, 2.0, 0.05), size=(224, 224), mode="bilinear", align_corners=False)
        rand.append((r * (float(mask.mean()) / r.mean())).clamp(0, 1))
    masks = torch.cat([torch.as_tensor(mask)[None, None]] + rand)
    with torch.no_grad():
        p = model(fill.apply(ctx.x, masks)).softmax(1)[:, 967]
    assert p[0] > 0.1 and p[0] > 10 * p[1:].mean(), p


@pytest.mark.slow
def test_planted_region_is_found():
    image = planted.photo()
    net = planted.loaded(planted.cnn("tiny", image), "tiny")
    exp = explain("extremal", net, image, target=planted.TARGET,
                  params={"steps": 60, "area": 0.2, "stride": 4, "smooth": 6.0, "every": 60}, seed=0)
    m = exp.raw["salient"]
    assert planted.positive_share(m) >= 0.7, planted.positive_share(m)
    mirrored = (planted.REGION[0], planted.REGION[1], 0, 48)
    assert planted.positive_share(m, region=mirrored) < 0.2


def test_one_mask_per_area(tiny_model):
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    exp = explain("extremal", tiny_model, rgb, target=1,
                  params={"steps": 30, "area": 0.1, "area2": 0.4, "stride": 2, "smooth": 2.0, "every": 30}, seed=0)
    assert set(exp.raw) == {"salient", "salient_area2"}
    small, large = float(exp.raw["salient"].mean()), float(exp.raw["salient_area2"].mean())
    assert small < large and abs(large - 0.4) < 0.1, (small, large)
    assert exp.info["areas"] == {"salient": 0.1, "salient_area2": 0.4}
    with pytest.raises(ParamError, match="repeat"):
        explain("extremal", tiny_model, rgb, params={"area": 0.2, "area3": 0.2})
