"""Our ROAD against pytorch-grad-cam's, and deletion / insertion / pixel flipping / region perturbation
against Quantus 0.6, on the real default model, a real photo and the same maps and substrates."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from explorer.core.types import resize_map
from explorer.evaluation.causal import causal_curve, make_substrate
from explorer.evaluation.flipping import pixel_flipping, region_perturbation
from explorer.evaluation.road import noisy_linear_impute, road
from explorer.methods.base import prepare_context


def _maps(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:n, 0:n]
    blob = np.exp(-((yy - 0.4 * n) ** 2 + (xx - 0.55 * n) ** 2) / (2 * (0.18 * n) ** 2)).astype(np.float32)
    jitter = 1e-4 * rng.random((2, n, n)).astype(np.float32)  # no ties (upsampling repeats border values)
    return {"coarse": resize_map(rng.random((7, 7)).astype(np.float32), (n, n)) + jitter[0], "blob": blob + jitter[1]}


@pytest.fixture(scope="module")
def setting(model, chelsea):
    return prepare_context(model, chelsea), _maps(224)


@pytest.fixture(scope="module")
def setting192(model, chelsea):
    """The default model at 192²: Quantus needs H·W divisible by its features per step, which count the
    three colour values of each pixel, and 224² has no factor 3."""
    m = dataclasses.replace(model, preprocess=dataclasses.replace(model.preprocess, input_size=(192, 192)),
                            _batch=None)
    return m, prepare_context(m, chelsea), _maps(192)


def test_imputation_is_the_neighbour_mean_and_leaves_kept_pixels():
    rng = np.random.default_rng(0)
    img = rng.random((3, 12, 10))
    removed = np.zeros((12, 10), bool)
    removed[3:7, 2:6] = True
    out = noisy_linear_impute(img, removed, noise=0.0).astype(np.float64)
    np.testing.assert_array_equal(out[:, ~removed], img[:, ~removed].astype(np.float32))
    w = {(-1, -1): 1 / 12, (-1, 0): 1 / 6, (-1, 1): 1 / 12, (0, -1): 1 / 6, (0, 1): 1 / 6,
         (1, -1): 1 / 12, (1, 0): 1 / 6, (1, 1): 1 / 12}
    for y, x in zip(*np.nonzero(removed)):  # interior: every removed pixel is the weighted mean of its neighbours
        mean = sum(wt * out[:, y + dy, x + dx] for (dy, dx), wt in w.items())
        np.testing.assert_allclose(out[:, y, x], mean, atol=1e-5)
    noisy = noisy_linear_impute(img, removed, noise=0.01, rng=np.random.default_rng(1))
    d = (noisy - out)[:, removed]
    assert 0.005 < d.std() < 0.02 and np.abs((noisy - out)[:, ~removed]).max() < 1e-6


@pytest.mark.slow
def test_road_matches_pytorch_grad_cam(model, chelsea, setting):
    from pytorch_grad_cam.metrics.perturbation_confidence import PerturbationConfidenceMetric
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer, RemoveLeastRelevantFirst, RemoveMostRelevantFirst
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    ctx, maps = setting
    fractions = (0.3, 0.7)
    targets = [ClassifierOutputSoftmaxTarget(ctx.target)]
    for noise in (0.0, 0.01):
        ours, theirs = [], []
        for sal in maps.values():
            r = road(model, chelsea, sal, fractions=fractions, noise=noise, context=ctx)
            for order, cls, scores in (("morf", RemoveMostRelevantFirst, r.morf_scores),
                                       ("lerf", RemoveLeastRelevantFirst, r.lerf_scores)):
                for f, s in zip(fractions, scores):
                    # grad-cam's percentile p keeps the pixels below the p-th percentile: it removes 100 - p %
                    metric = PerturbationConfidenceMetric(cls(round(100 * (1 - f)), NoisyLinearImputer(noise=noise)))
                    torch.manual_seed(0)
                    theirs.append(float(metric(ctx.x, sal[None], targets, model.module)[0]))
                    ours.append(s - r.base)
        ours, theirs = np.array(ours), np.array(theirs)
        if noise == 0.0:
            np.testing.assert_allclose(ours, theirs, atol=2e-3)
        else:  # independent noise draws: the same scores up to the noise's effect
            assert np.corrcoef(ours, theirs)[0, 1] >= 0.99
            assert np.abs(ours - theirs).max() < 0.05


def _quantus_replace(source: np.ndarray):
    """A Quantus perturb_func that puts ``source`` (the substrate, or the image for insertion) at the indices."""
    flat = source.reshape(1, -1)

    def perturb(arr, indices, **_kw):
        arr = arr.copy()
        rows = np.arange(arr.shape[0])[:, None]
        arr[rows, indices] = flat[0, indices]
        return arr
    return perturb


def _pixel_flipping_curve(model, x, sal, target, step, source, start):
    import quantus

    metric = quantus.PixelFlipping(features_in_step=3 * step, normalise=False, abs=False, disable_warnings=True,
                                   perturb_func=_quantus_replace(source))
    curve = metric(model=model.module, x_batch=start, y_batch=np.array([target]), a_batch=sal[None, None],
                   softmax=True, device="cpu", channel_first=True)[0]
    return np.asarray(curve)


def _auc_with_start(p0: float, curve: np.ndarray) -> float:
    """Quantus' curve with the intact point first, trapezoids normalised to the [0, 1] fraction axis."""
    s = np.concatenate([[p0], curve])
    return float(np.trapezoid(s, dx=1.0 / (s.size - 1)))


@pytest.mark.slow
def test_deletion_insertion_and_pixel_flipping_match_quantus(chelsea, setting192):
    model, ctx, maps = setting192
    sal = maps["coarse"]
    x = ctx.x.numpy()
    step = 384  # 97 points; 3 · 384 divides 192², as Quantus requires
    for mode in ("deletion", "insertion"):
        sub = make_substrate(None, ctx, mode).base.numpy()
        ours = causal_curve(model, chelsea, sal, mode=mode, step=step, context=ctx)
        if mode == "deletion":
            q = _pixel_flipping_curve(model, x, sal, ctx.target, step, sub, x)
        else:  # insertion: start from the blurred image and put the photo's pixels back
            q = _pixel_flipping_curve(model, x, sal, ctx.target, step, x, sub)
        assert q.shape == ours.scores[1:].shape
        np.testing.assert_allclose(q, ours.scores[1:], atol=1e-3)
        assert abs(_auc_with_start(ours.scores[0], q) - ours.auc) < 0.01
    pf = pixel_flipping(model, chelsea, sal, step=step, context=ctx)
    black = make_substrate("black", ctx, "deletion").base.numpy()
    q = _pixel_flipping_curve(model, x, sal, ctx.target, pf.step, black, x)
    np.testing.assert_allclose(q, pf.scores[1:], atol=1e-3)
    assert abs(_auc_with_start(pf.scores[0], q) - pf.auc) < 0.01


@pytest.mark.slow
def test_region_perturbation_matches_quantus(model, chelsea, setting):
    import quantus

    ctx, maps = setting
    sal = maps["blob"]
    black = make_substrate("black", ctx, "deletion").base.numpy()
    ours = region_perturbation(model, chelsea, sal, patch=8, regions=20, context=ctx)
    metric = quantus.RegionPerturbation(patch_size=8, regions_evaluation=20, normalise=False, abs=False,
                                        disable_warnings=True, perturb_func=_quantus_replace(black))
    drops = np.asarray(metric(model=model.module, x_batch=ctx.x.numpy(), y_batch=np.array([ctx.target]),
                              a_batch=sal[None, None], softmax=True, device="cpu", channel_first=True)[0])
    np.testing.assert_allclose(drops, ours.scores[0] - ours.scores[1:], atol=1e-3)
    assert abs(drops.sum() / (drops.size + 1) - ours.info["aopc"]) < 0.01
    assert ours.fractions[-1] == pytest.approx(20 * 64 / 224 ** 2)
