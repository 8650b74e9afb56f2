"""Evaluation metrics: the curves' mechanics, and facts that must hold (docs/methods.md §7)."""

import dataclasses

import numpy as np
import pytest
import torch

from explorer.core.cancel import CancelToken
from explorer.core.errors import Cancelled, ParamError, UnsupportedError
from explorer.core.types import to_input_space
from explorer.evaluation.base import random_map, run_to_end
from explorer.evaluation.causal import (
    Curve,
    CurveFrames,
    causal_curve,
    default_step,
    iter_causal_curve,
    rank_map,
    trapezoid_auc,
)
from explorer.evaluation.metrics import confidence, iter_sanity_check, parametrised_layers, sanity_check
from explorer.methods.base import prepare_context


@pytest.fixture(scope="module")
def tiny_rgb():
    return np.random.default_rng(3).integers(0, 256, (40, 48, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- mechanics
def test_trapezoid_and_default_step():
    assert trapezoid_auc(np.array([0, 0.5, 1]), np.array([1, 1, 1])) == pytest.approx(1.0)
    assert trapezoid_auc(np.array([0, 1]), np.array([1, 0])) == pytest.approx(0.5)
    assert trapezoid_auc(np.array([0, 0.25, 1]), np.array([0, 1, 1])) == pytest.approx(0.875)
    assert default_step((224, 224)) == 224 and default_step((32, 32)) == 5


def test_rank_map_orders_most_salient_first_ties_in_raster_order_nan_last():
    r = rank_map(np.array([[0.1, 0.9], [np.nan, 0.9]]))
    assert r.tolist() == [[2, 0], [3, 1]]


def test_curve_shape_endpoints_and_record(tiny_model, tiny_rgb):
    ctx = prepare_context(tiny_model, tiny_rgb)
    sal = np.arange(32 * 32, dtype=np.float32).reshape(32, 32)
    p = tiny_model.scores(ctx.x)[0, ctx.target].item()
    d = causal_curve(tiny_model, tiny_rgb, sal, mode="deletion", step=100, context=ctx)
    assert isinstance(d, Curve) and d.mode == "deletion" and d.step == 100 and d.substrate == "zero"
    assert len(d.fractions) == len(d.scores) == 12  # ceil(1024 / 100) + 1
    assert d.fractions[0] == 0 and d.fractions[-1] == 1 and np.all(np.diff(d.fractions) > 0)
    assert d.scores[0] == pytest.approx(p, abs=1e-5)
    p_mean = tiny_model.scores(torch.zeros_like(ctx.x))[0, ctx.target].item()
    assert d.scores[-1] == pytest.approx(p_mean, abs=1e-5)
    assert d.auc == pytest.approx(trapezoid_auc(d.fractions, d.scores)) and 0 <= d.auc <= 1
    i = causal_curve(tiny_model, tiny_rgb, sal, mode="insertion", step=100, context=ctx)
    assert i.substrate == "blur(kernel=11,sigma=5)" and i.scores[-1] == pytest.approx(p, abs=1e-5)
    rec = i.record()
    assert rec["substrate"] == i.substrate and rec["step"] == 100 and len(rec["scores"]) == 12
    # explicit substrates are recorded too
    assert causal_curve(tiny_model, tiny_rgb, sal, mode="insertion", step=100, substrate="blur:2:5",
                        context=ctx).substrate == "blur(kernel=5,sigma=2)"
    with pytest.raises(ParamError, match="substrate"):
        causal_curve(tiny_model, tiny_rgb, sal, substrate="fog", context=ctx)
    with pytest.raises(ParamError, match="mode"):
        causal_curve(tiny_model, tiny_rgb, sal, mode="sideways", context=ctx)


def test_image_space_map_equals_its_input_space_resampling(tiny_model, tiny_rgb):
    ctx = prepare_context(tiny_model, tiny_rgb)
    img_map = np.random.default_rng(0).random(tiny_rgb.shape[:2]).astype(np.float32)
    a = causal_curve(tiny_model, tiny_rgb, img_map, step=64, context=ctx)
    b = causal_curve(tiny_model, tiny_rgb, to_input_space(img_map, ctx.placement), step=64, context=ctx)
    c = causal_curve(tiny_model, tiny_rgb, torch.from_numpy(to_input_space(img_map, ctx.placement))[None], step=64,
                     context=ctx)
    assert np.array_equal(a.scores, b.scores) and np.array_equal(a.scores, c.scores)


def test_batching_progress_and_cancel(tiny_model, tiny_rgb):
    sal = random_map((32, 32), 4, 1)
    full = causal_curve(tiny_model, tiny_rgb, sal, mode="insertion", step=50)
    small = causal_curve(tiny_model, tiny_rgb, sal, mode="insertion", step=50, batch_size=3)
    assert np.allclose(full.scores, small.scores, atol=1e-6)
    steps = list(iter_causal_curve(tiny_model, tiny_rgb, sal, mode="insertion", step=50, batch_size=4))
    prog = [s.progress for s in steps]
    assert prog == sorted(prog) and prog[-1] == 1.0 and steps[-1].done and len(steps) > 3
    tok = CancelToken()
    gen = iter_causal_curve(tiny_model, tiny_rgb, sal, step=50, batch_size=4, cancel=tok)
    next(gen)
    tok.cancel()
    with pytest.raises(Cancelled):
        run_to_end(gen)


def test_frames_show_what_was_scored(tiny_model, tiny_rgb):
    ctx = prepare_context(tiny_model, tiny_rgb)
    sal = random_map((32, 32), 4, 2)
    fr = CurveFrames(tiny_model, tiny_rgb, sal, mode="deletion", step=100, context=ctx)
    assert len(fr) == 12 and fr(0).shape == (32, 32, 3) and fr(0).dtype == np.uint8
    assert np.array_equal(fr(0), ctx.input_rgb) or np.abs(fr(0).astype(int) - ctx.input_rgb).max() <= 1
    changed = np.any(fr(3) != fr(0), axis=2)
    assert changed.sum() <= 300 and np.all(changed <= (rank_map(sal) < 300))
    ins = CurveFrames(tiny_model, tiny_rgb, sal, mode="insertion", step=100, context=ctx)
    assert np.abs(ins(11).astype(int) - ctx.input_rgb).max() <= 1


# --------------------------------------------------------------------------- facts
def test_random_map_deletion_and_insertion_aucs_are_close_on_a_common_substrate(tiny_model, model, chelsea):
    # with random order, inserting a fraction f = deleting 1 - f: the two AUCs agree in expectation
    for m, img, step in ((tiny_model, np.random.default_rng(5).integers(0, 256, (32, 32, 3), dtype=np.uint8), 8),
                         (model, chelsea, 224 * 8)):
        ctx = prepare_context(m, img)
        hw = ctx.x.shape[-2:]
        sal = np.random.default_rng(0).random(tuple(hw))
        d = causal_curve(m, img, sal, mode="deletion", step=step, substrate="zero", context=ctx)
        i = causal_curve(m, img, sal, mode="insertion", step=step, substrate="zero", context=ctx)
        assert abs(i.auc - d.auc) < 0.03, (m.id, d.auc, i.auc)


def test_oracle_map_beats_random_on_tiny_model(tiny_model):
    rgb = np.random.default_rng(11).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    ctx = prepare_context(tiny_model, rgb)
    # the true effect of each pixel: drop of P_target when that pixel alone is set to the substrate (zero)
    eye = torch.ones(32 * 32, 1, 32 * 32)
    eye[torch.arange(1024), 0, torch.arange(1024)] = 0
    masked = ctx.x * eye.view(1024, 1, 32, 32)
    p0 = tiny_model.scores(ctx.x)[0, ctx.target]
    oracle = (p0 - tiny_model.scores(masked)[:, ctx.target]).view(32, 32).numpy()

    def gap(sal):
        d = causal_curve(tiny_model, rgb, sal, mode="deletion", step=16, context=ctx)
        i = causal_curve(tiny_model, rgb, sal, mode="insertion", step=16, context=ctx)
        return d.auc, i.auc - d.auc

    o_del, o_gap = gap(oracle)
    rand = [gap(random_map((32, 32), cells, s)) for s in range(3) for cells in (4, None)]
    assert o_del < min(r[0] for r in rand)
    assert o_gap > max(r[1] for r in rand)


def test_rise_and_gradcam_beat_a_random_map_on_the_sample_photos(model, chelsea, coffee, rocket):
    """insertion − deletion (default RISE protocol) against two random baselines: uniform pixel noise (the
    usual one) and a smooth 7×7 random map (harder: scattered pixels are out-of-distribution noise).

    Grad-CAM (bn2, a 7×7 grid) is held to less: on these three photos, with the correctly normalised model, it
    does not beat the random maps at this coarse step (measured: 0.239 against noise 0.256 and smooth 0.297),
    but its ranking must beat its own reversal (measured 0.239 against 0.062)."""
    from explorer.methods import explain, method_names

    cam = "gradcam" if "gradcam" in method_names() else "gradient"
    gaps = {cam: [], "reversed": [], "rise": [], "noise": [], "smooth": []}
    for img in (chelsea, coffee, rocket):
        ctx = prepare_context(model, img)

        def gap(sal):
            kw = dict(step=224 * 16, context=ctx)
            return (causal_curve(model, img, sal, mode="insertion", **kw).auc
                    - causal_curve(model, img, sal, mode="deletion", **kw).auc)

        e = explain(cam, model, img, context=ctx)
        gaps[cam].append(gap(e.raw[e.main]))
        gaps["reversed"].append(gap(-e.raw["signed"]) if "signed" in e.raw else gap(-e.raw[e.main]))
        gaps["rise"].append(gap(explain("rise", model, img, params={"n": 200}, context=ctx).raw["salient"]))
        gaps["noise"].append(np.mean([gap(random_map((224, 224), None, s)) for s in range(2)]))
        gaps["smooth"].append(np.mean([gap(random_map((224, 224), 7, s)) for s in range(2)]))
    print(gaps)
    mean = {k: float(np.mean(v)) for k, v in gaps.items()}
    assert mean["rise"] > mean["noise"] + 0.05 and mean["rise"] > mean["smooth"] + 0.05, gaps
    assert mean[cam] > mean["reversed"] + 0.1, gaps


# --------------------------------------------------------------------------- confidence and sanity
def test_confidence_drop_and_increase(tiny_model, tiny_rgb):
    ctx = prepare_context(tiny_model, tiny_rgb)
    full = confidence(tiny_model, tiny_rgb, np.ones((32, 32)), context=ctx)
    assert full["drop"] == pytest.approx(0.0, abs=1e-6) and full["increase"] is False
    assert full["substrate"] == "black"
    r = confidence(tiny_model, tiny_rgb, random_map((32, 32), 4, 0), context=ctx)
    y, o = r["p_image"], r["p_masked"]
    assert r["drop"] == pytest.approx(max(0.0, y - o) / y * 100) and r["increase"] == (o > y)


def test_sanity_check_decorrelates_and_leaves_the_shared_model_alone(tiny_model, tiny_rgb):
    before = [p.clone() for p in tiny_model.module.parameters()]
    assert parametrised_layers(tiny_model.module) == ["0", "2", "4", "8"]
    steps = list(iter_sanity_check(tiny_model, tiny_rgb, "gradient", n_stages=3, seed=1))
    res = steps[-1].result
    assert [s["randomised_from"] for s in res["stages"]] == ["8", "4", "0"]
    assert [s["n_layers"] for s in res["stages"]] == [1, 3, 4]
    assert res["stages"][-1]["spearman"] < 0.5
    assert all(torch.equal(a, b) for a, b in zip(before, tiny_model.module.parameters()))
    again = sanity_check(tiny_model, tiny_rgb, "gradient", n_stages=3, seed=1)
    assert again["stages"] == res["stages"]  # seeded


def test_black_box_refusals(tiny_model, tiny_rgb):
    from explorer.methods import get_method

    box = dataclasses.replace(tiny_model, kind="onnx", module=None, _layers=None, _batch=None)
    with pytest.raises(UnsupportedError, match="weights"):
        sanity_check(box, tiny_rgb, "rise")
    with pytest.raises(UnsupportedError, match="gradients"):
        sanity_check(box, tiny_rgb, "gradient")
    with pytest.raises(UnsupportedError, match="gradients"):
        get_method("gradient")(box)
    # scores-only metrics work on a black box
    assert 0 <= causal_curve(box, tiny_rgb, random_map((32, 32), 4, 0), step=64).auc <= 1
