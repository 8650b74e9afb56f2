"""The perturbation engine: samplers, the streamed linear fits, occlusion/LIME/KernelSHAP on small cases,
bad input and cancellation."""

import itertools
import math

import numpy as np
import pytest
import torch

from explorer.core.cancel import CancelToken
from explorer.core.errors import ParamError
from explorer.methods import explain, run
from explorer.methods.base import prepare_context
from explorer.perturb.infill import make_infill
from explorer.perturb.linear import WeightedSums, lime_kernel
from explorer.perturb.masks import (
    lime_patterns,
    occlusion_masks,
    rise_masks,
    shap_patterns,
    shapley_size_distribution,
    window_positions,
)
from explorer.perturb.superpixels import paint, segment_masks, slic_segments, superpixels

CPU = torch.device("cpu")


def _rgb(seed=1, hw=(32, 32)):
    return np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8)


def _blocks(seed=1):
    """A 32x32 image of 4x4 flat colour blocks (SLIC finds regions in it, unlike in pure noise)."""
    return np.kron(_rgb(seed, (4, 4)), np.ones((8, 8, 1), dtype=np.uint8))


# --------------------------------------------------------------------------- samplers
def test_samplers_yield_one_batch_at_a_time():
    g = torch.Generator().manual_seed(0)
    shapes = [m.shape[0] for m in rise_masks(50, (20, 20), 4, 0.5, 16, CPU, g)]
    assert shapes == [16, 16, 16, 2]
    shapes = [m.shape[0] for m in occlusion_masks((20, 20), 5, 5, 7, CPU)]
    assert shapes == [7, 7, 2] and sum(shapes) == 16
    shapes = [z.shape for z in lime_patterns(20, 9, 8, CPU, g)]
    assert shapes == [(8, 9), (8, 9), (4, 9)]


def test_window_positions_and_edge():
    assert window_positions(10, 4, 3) == [0, 3, 6]
    assert window_positions(11, 4, 3) == [0, 3, 6, 7]  # last window flush with the edge
    assert window_positions(11, 4, 3, cover_edge=False) == [0, 3, 6]  # Captum's placement
    assert window_positions(5, 9, 2) == [0]  # a window larger than the input covers it once


def test_occlusion_masks_zero_exactly_one_window():
    masks = torch.cat(list(occlusion_masks((9, 11), 4, 3, 100, CPU)))
    ys, xs = window_positions(9, 4, 3), window_positions(11, 4, 3)
    assert masks.shape == (len(ys) * len(xs), 1, 9, 11)
    for i, (y, x) in enumerate(itertools.product(ys, xs)):
        expect = torch.ones(9, 11)
        expect[y:y + 4, x:x + 4] = 0
        assert torch.equal(masks[i, 0], expect)
    big = torch.cat(list(occlusion_masks((6, 5), 50, 3, 8, CPU)))
    assert big.shape == (1, 1, 6, 5) and big.sum() == 0


def test_lime_patterns_start_with_original():
    g = torch.Generator().manual_seed(3)
    z = torch.cat(list(lime_patterns(400, 12, 64, CPU, g)))
    assert torch.all(z[0] == 1)
    assert set(z.unique().tolist()) == {0.0, 1.0}
    assert abs(z[1:].mean().item() - 0.5) < 0.03


def test_shap_patterns_endpoints_sizes_and_pairs():
    g = torch.Generator().manual_seed(4)
    m = 10
    z = torch.cat(list(shap_patterns(2002, m, 64, CPU, g, paired=True)))
    assert z.shape == (2002, m)
    assert torch.all(z[0] == 1) and torch.all(z[1] == 0)
    rest = z[2:]
    k = rest.sum(1)
    assert k.min() >= 1 and k.max() <= m - 1
    assert torch.all(rest[0::2] + rest[1::2] == 1)  # each coalition followed by its complement
    # sizes follow (m-1)/(k(m-k)), normalised
    freq = torch.bincount(k.long(), minlength=m)[1:m].double() / len(k)
    assert torch.allclose(freq, shapley_size_distribution(m), atol=0.03)


def test_segment_masks_and_paint():
    labels = torch.tensor([[0, 0, 1], [2, 2, 1]])
    z = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    m = segment_masks(z, labels)
    assert m.shape == (2, 1, 2, 3)
    assert m[0, 0].tolist() == [[1, 1, 0], [1, 1, 0]]
    assert paint(torch.tensor([5.0, 6.0, 7.0]), labels).tolist() == [[5, 5, 6], [7, 7, 6]]


def test_slic_segments_contiguous_and_tiny_images():
    rgb = _rgb(hw=(40, 50))
    lab = slic_segments(rgb, 12, 10.0)
    assert lab.shape == (40, 50) and lab.dtype == np.int64
    assert set(np.unique(lab)) == set(range(lab.max() + 1))
    noise, how = superpixels(_rgb(), 9, 10.0)  # SLIC merges pure noise into one region: grid instead
    assert how == "grid" and noise.max() + 1 == 9 and np.bincount(noise.ravel()).min() >= 90
    blocks, how = superpixels(_blocks(), 9, 10.0)
    assert how == "slic" and blocks.max() >= 3
    tiny = slic_segments(_rgb(hw=(2, 3)), 50, 10.0)
    assert sorted(np.unique(tiny)) == list(range(6))
    with pytest.raises(ParamError):
        slic_segments(np.zeros((5, 5)), 4, 10.0)


# --------------------------------------------------------------------------- linear fits
def test_streamed_ridge_equals_sklearn_weighted_ridge():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    z = (rng.random((300, 8)) < 0.5).astype(np.float64)
    y = z @ rng.normal(size=8) + 0.3 + 0.1 * rng.normal(size=300)
    w = lime_kernel(torch.from_numpy(z), 0.25).numpy()
    sums = WeightedSums(8, CPU)
    for i in range(0, 300, 37):  # in batches, as streamed
        sums.add(torch.from_numpy(z[i:i + 37]), torch.from_numpy(y[i:i + 37]), torch.from_numpy(w[i:i + 37]))
    beta, beta0, r2 = sums.ridge(1.0)
    ref = Ridge(alpha=1.0).fit(z, y, sample_weight=w)
    np.testing.assert_allclose(beta.numpy(), ref.coef_, rtol=1e-8, atol=1e-10)
    assert beta0 == pytest.approx(ref.intercept_, abs=1e-9)
    assert r2 == pytest.approx(ref.score(z, y, sample_weight=w), abs=1e-9)


def test_lime_kernel_cosine_distance():
    z = torch.tensor([[1.0, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0]])
    d = torch.tensor([0.0, 1 - math.sqrt(0.25), 1.0])
    torch.testing.assert_close(lime_kernel(z, 0.5), torch.exp(-d * d / 0.5))


def _exact_shapley(v, m):
    phi = np.zeros(m)
    for i in range(m):
        others = [j for j in range(m) if j != i]
        for r in range(m):
            for S in itertools.combinations(others, r):
                wgt = math.factorial(r) * math.factorial(m - r - 1) / math.factorial(m)
                phi[i] += wgt * (v(set(S) | {i}) - v(set(S)))
    return phi


def test_shapley_solver_is_exact_with_every_coalition():
    """With all coalitions weighted by the Shapley kernel, the constrained fit gives the exact Shapley values."""
    m = 5
    rng = np.random.default_rng(2)
    table = {}

    def v(S):  # a non-additive set function
        key = frozenset(S)
        if key not in table:
            table[key] = float(rng.normal()) + 0.5 * len(S) ** 2
        return table[key]

    sums = WeightedSums(m, CPU)
    for r in range(1, m):
        for S in itertools.combinations(range(m), r):
            z = torch.zeros(1, m, dtype=torch.float64)
            z[0, list(S)] = 1
            wgt = (m - 1) / (math.comb(m, r) * r * (m - r))
            sums.add(z, torch.tensor([v(S)], dtype=torch.float64), torch.tensor([wgt], dtype=torch.float64))
    phi = sums.shapley(v(set()), v(set(range(m)))).numpy()
    np.testing.assert_allclose(phi, _exact_shapley(v, m), rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------- methods on the tiny model
def test_occlusion_equals_the_formula_on_tiny_model(tiny_model):
    rgb = _rgb(5)
    win, stride, target = 8, 5, 2
    exp = explain("occlusion", tiny_model, rgb, params={"window": win, "stride": stride, "batch_size": 6},
                  target=target)
    ctx = prepare_context(tiny_model, rgb, target)
    ys = xs = window_positions(32, win, stride)
    acc, cnt = torch.zeros(32, 32, dtype=torch.float64), torch.zeros(32, 32, dtype=torch.float64)
    with torch.no_grad():
        p0 = tiny_model.forward(ctx.x).softmax(1)[0, target].double()
        for y, x in itertools.product(ys, xs):
            xo = ctx.x.clone()
            xo[..., y:y + win, x:x + win] = 0  # zero in normalised space
            acc[y:y + win, x:x + win] += p0 - tiny_model.forward(xo).softmax(1)[0, target].double()
            cnt[y:y + win, x:x + win] += 1
    np.testing.assert_allclose(exp.raw["salient"], (acc / cnt).float().numpy(), rtol=1e-4, atol=1e-6)


def test_lime_streams_and_equals_one_shot_fit(tiny_model):
    """The streamed fit after the last batch equals a one-shot sklearn fit on the same samples."""
    from sklearn.linear_model import Ridge

    rgb = _blocks(6)
    params = {"samples": 90, "segments": 9, "batch_size": 32, "alpha": 0.5}
    ups = list(run("lime", tiny_model, rgb, params=params, seed=4, target=1))
    assert [round(u.progress, 3) for u in ups[:-1]] == [round(v / 90, 3) for v in (32, 64, 90)]
    ctx = prepare_context(tiny_model, rgb, 1, seed=4)
    labels = torch.from_numpy(superpixels(ctx.input_rgb, 9, 10.0)[0])
    m = int(labels.max()) + 1
    z = torch.cat(list(lime_patterns(90, m, 32, CPU, ctx.generator())))
    infill = make_infill("zero", ctx.x, tiny_model.preprocess)
    with torch.no_grad():
        y = tiny_model.forward(infill.apply(ctx.x, segment_masks(z, labels))).softmax(1)[:, 1]
    ref = Ridge(alpha=0.5).fit(z.numpy(), y.numpy().astype(np.float64), sample_weight=lime_kernel(z, 0.25).numpy())
    expected = paint(torch.from_numpy(ref.coef_), labels).numpy()
    np.testing.assert_allclose(ups[-1].explanation.raw["salient"], expected, rtol=1e-3, atol=1e-6)


def test_kernelshap_efficiency_and_single_segment(tiny_model):
    rgb = _blocks(7)
    exp = explain("kernelshap", tiny_model, rgb, params={"samples": 60, "segments": 8}, seed=2, target=4)
    ctx = prepare_context(tiny_model, rgb, 4)
    labels = superpixels(ctx.input_rgb, 8, 10.0)[0]
    assert labels.max() >= 3
    phi = np.array([exp.raw["salient"][labels == k][0] for k in range(labels.max() + 1)])
    assert phi.sum() == pytest.approx(exp.info["f_full"] - exp.info["f_empty"], abs=1e-5)
    with torch.no_grad():
        full = tiny_model.forward(ctx.x).softmax(1)[0, 4].item()
        empty = tiny_model.forward(torch.zeros_like(ctx.x)).softmax(1)[0, 4].item()
    assert exp.info["f_full"] == pytest.approx(full, abs=1e-5)
    assert exp.info["f_empty"] == pytest.approx(empty, abs=1e-5)
    one = explain("kernelshap", tiny_model, rgb, params={"samples": 60, "segments": 1}, target=4)
    assert one.info["segments"] == 1
    np.testing.assert_allclose(one.raw["salient"], full - empty, atol=1e-5)


# --------------------------------------------------------------------------- bad input, cancel
@pytest.mark.parametrize("name,params,words", [
    ("rise", {"n": 5}, "between 10 and 100000"),
    ("lime", {"samples": 3}, "between 10 and 100000"),
    ("kernelshap", {"samples": 10**7}, "between 10 and 100000"),
    ("occlusion", {"window": 0}, "between 1 and 4096"),
    ("lime", {"kernel_width": -1}, "kernel_width"),
])
def test_out_of_range_refused_with_bounds(tiny_model, name, params, words):
    with pytest.raises(ParamError, match=words):
        explain(name, tiny_model, _rgb(), params=params)


def test_window_larger_than_input(tiny_model):
    rgb = _rgb(8)
    exp = explain("occlusion", tiny_model, rgb, params={"window": 500, "stride": 7}, target=0)
    ctx = prepare_context(tiny_model, rgb, 0)
    with torch.no_grad():
        p = tiny_model.forward(torch.cat([ctx.x, torch.zeros_like(ctx.x)])).softmax(1)[:, 0]
    np.testing.assert_allclose(exp.raw["salient"], float(p[0] - p[1]), atol=1e-6)


@pytest.mark.parametrize("name", ["occlusion", "lime", "kernelshap", "rise"])
def test_cancel_within_a_batch_keeps_partial_map(tiny_model, name):
    token = CancelToken()
    params = {"occlusion": {"window": 4, "stride": 4}, "rise": {"n": 200}}.get(name, {"samples": 200, "segments": 9})
    ups = []
    for u in run(name, tiny_model, _blocks(9), params={**params, "batch_size": 16}, cancel=token, seed=1):
        ups.append(u)
        if len(ups) == 2:
            token.cancel()
    assert len(ups) == 3 and ups[-1].done
    last = ups[-1].explanation
    assert last.cancelled and not last.complete and 0 < last.progress < 1
    assert np.isfinite(last.raw["salient"]).all() and np.abs(last.raw["salient"]).max() > 0
    np.testing.assert_array_equal(last.raw["salient"], ups[1].explanation.raw["salient"])


@pytest.mark.parametrize("name", ["occlusion", "lime", "kernelshap"])
def test_same_seed_same_map_tiny(tiny_model, name):
    params = {"occlusion": {"window": 6, "stride": 3}}.get(name, {"samples": 40, "segments": 6})
    a = explain(name, tiny_model, _blocks(10), params=params, seed=5)
    b = explain(name, tiny_model, _blocks(10), params=params, seed=5)
    np.testing.assert_array_equal(a.raw["salient"], b.raw["salient"])
    if name != "occlusion":
        c = explain(name, tiny_model, _blocks(10), params=params, seed=6)
        assert not np.array_equal(a.raw["salient"], c.raw["salient"])
