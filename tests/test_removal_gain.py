"""Removal gain (docs/methods.md §7.6): the recorded ΔP equal a direct in-fill-and-score of the top-k pixels; maps in
image or input space agree; the random baseline is there; bad arguments are refused. (The real-photo check,
removing target-hindering pixels raises P(target) more than random ones, is in test_undesirable.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.core.errors import ExplorerError, ParamError
from explorer.evaluation.removal_gain import removal_gain
from explorer.methods.base import prepare_context
from explorer.perturb.infill import make_infill


@pytest.fixture(scope="module")
def rgb():
    return np.random.default_rng(5).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def test_values_match_a_direct_computation(tiny_model, rgb):
    target = 4
    m = np.zeros((32, 32), np.float32)
    m[8:16, 8:16] = np.arange(64, dtype=np.float32).reshape(8, 8) + 1  # 64 distinct positive pixels
    r = removal_gain(tiny_model, rgb, {"hand": m}, target, fractions=(0.02, 0.05), n_random=4, seed=1)
    assert r["target"] == target and r["fractions"] == [0.02, 0.05]
    assert set(r["layers"]["hand"]) == {"2%", "5%"} == set(r["random"])
    ctx = prepare_context(tiny_model, rgb, target)
    inf = make_infill("blur", ctx.x, tiny_model.preprocess, sigma=10.0)
    with torch.no_grad():
        p0 = tiny_model.forward(ctx.x).softmax(1)[0].double()
        for f, key in ((0.02, "2%"), (0.05, "5%")):
            k = round(f * 32 * 32)
            keep = np.ones(32 * 32, np.float32)
            keep[np.argsort(-m.ravel(), kind="stable")[:k]] = 0
            p = tiny_model.forward(inf.apply(ctx.x, torch.from_numpy(keep).view(1, 1, 32, 32))).softmax(1)[0].double()
            o0, o = p0.clone(), p.clone()
            o0[target] = o[target] = -1
            row = r["layers"]["hand"][key]
            assert row["delta_p_target"] == pytest.approx(float(p[target] - p0[target]), abs=1e-6)
            assert row["delta_p_other"] == pytest.approx(float(o.max() - o0.max()), abs=1e-6)
            assert row["delta_margin"] == pytest.approx(row["delta_p_target"] - row["delta_p_other"], abs=1e-9)
            assert row["gain_vs_random"] == pytest.approx(row["delta_p_target"] - r["random"][key]["delta_p_target"])
    assert r["base"]["p_target"] == pytest.approx(float(p0[target]), abs=1e-6)


def test_image_space_and_input_space_maps_agree(tiny_model):
    big = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    small_map = np.zeros((32, 32), np.float32)
    small_map[:10, :10] = 1.0 + np.random.default_rng(1).random((10, 10))
    image_map = np.kron(small_map, np.ones((2, 2), np.float32))  # the same map at the image's 64x64
    a = removal_gain(tiny_model, big, {"m": small_map}, 1, fractions=(0.05,), n_random=2)
    b = removal_gain(tiny_model, big, {"m": torch.from_numpy(image_map)}, 1, fractions=(0.05,), n_random=2)
    assert a["layers"]["m"]["5%"]["delta_p_target"] == pytest.approx(b["layers"]["m"]["5%"]["delta_p_target"], abs=1e-4)


def test_bad_arguments(tiny_model, rgb):
    with pytest.raises(ParamError, match="fraction"):
        removal_gain(tiny_model, rgb, {"m": np.ones((32, 32))}, 0, fractions=(0.0,))
    with pytest.raises(ExplorerError, match="at least one map"):
        removal_gain(tiny_model, rgb, {}, 0)
    with pytest.raises(ParamError, match="valid"):
        removal_gain(tiny_model, rgb, {"m": np.ones((32, 32))}, 0, infill="nope")
