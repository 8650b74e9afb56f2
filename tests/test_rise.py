"""RISE: the estimator equals the paper's formula on the masks it drew; masks behave as specified."""

import numpy as np
import torch

from explorer.methods import explain
from explorer.methods.base import prepare_context
from explorer.perturb.masks import rise_masks


def test_masks_shape_range_density():
    g = torch.Generator().manual_seed(0)
    masks = torch.cat(list(rise_masks(300, (50, 70), 7, 0.3, 64, torch.device("cpu"), g)))
    assert masks.shape == (300, 1, 50, 70)
    assert masks.min().item() >= 0 and masks.max().item() <= 1 + 1e-6
    assert abs(masks.mean().item() - 0.3) < 0.05


def test_masks_equal_upsample_then_crop():
    """grid_sample form == the reference: resize the s×s grid to (s+1)·cell, then crop at the shift."""
    import torch.nn.functional as F

    H = W = 28
    s = 4
    cell = 7
    g = torch.Generator().manual_seed(5)
    m = next(rise_masks(1, (H, W), s, 0.5, 1, torch.device("cpu"), g))
    g = torch.Generator().manual_seed(5)
    grid = (torch.rand(1, 1, s, s, generator=g) < 0.5).float()
    dy = int(torch.randint(0, cell, (1,), generator=g))
    dx = int(torch.randint(0, cell, (1,), generator=g))
    up = F.interpolate(grid, size=((s + 1) * cell,) * 2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(m, up[:, :, dy:dy + H, dx:dx + W], atol=1e-5, rtol=0)


def test_small_image_fewer_cells():
    g = torch.Generator().manual_seed(0)
    m = next(rise_masks(4, (3, 5), 7, 0.5, 4, torch.device("cpu"), g))
    assert m.shape == (4, 1, 3, 5)


def test_rise_matches_formula_exactly_on_tiny_model(tiny_model):
    rgb = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    n, s, p, target = 200, 5, 0.4, 3
    exp = explain("rise", tiny_model, rgb, params={"n": n, "cells": s, "p": p, "batch_size": 32}, target=target, seed=9)
    ctx = prepare_context(tiny_model, rgb, target, seed=9)
    masks = torch.cat(list(rise_masks(n, (32, 32), s, p, 32, torch.device("cpu"), ctx.generator())))
    expected = torch.zeros(32, 32, dtype=torch.float64)
    with torch.no_grad():
        for i in range(n):  # one mask at a time, as the formula reads
            prob = tiny_model.forward(masks[i:i + 1] * ctx.x).softmax(1)[0, target].double()
            expected += prob * masks[i, 0].double()
    expected /= n * p
    np.testing.assert_allclose(exp.raw["salient"], expected.float().numpy(), rtol=1e-4, atol=1e-6)
    assert exp.raw["uncertainty"].max() > 0


def test_rise_streams_and_converges(model, chelsea):
    from explorer.methods import run

    ups = list(run("rise", model, chelsea, params={"n": 64, "batch_size": 16}))
    assert [round(u.progress, 2) for u in ups[:-1]] == [0.25, 0.5, 0.75, 1.0]
    assert ups[-1].done and ups[-1].explanation.complete


def test_masks_do_not_depend_on_the_batch_size():
    """Same seed, same masks at any batch size (the CPU default batch differs from a GPU's, OOM halves it)."""
    def all_masks(batch):
        g = torch.Generator().manual_seed(3)
        return torch.cat(list(rise_masks(70, (24, 24), 5, 0.5, batch, torch.device("cpu"), g)))

    ref = all_masks(16)
    for batch in (1, 4, 7, 64, 100):
        torch.testing.assert_close(all_masks(batch), ref, atol=1e-6, rtol=0)
