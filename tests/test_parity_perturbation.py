"""Parity of the perturbation methods with Captum on the real default model and a real photo.

- occlusion vs captum.attr.Occlusion at equal window, stride and baseline (0 in normalised space): the
  same windows and the same arithmetic, so the maps agree to float rounding.
- lime / kernelshap vs captum.attr.Lime / KernelShap given the same superpixels (feature_mask), the same
  sample count and the same fit settings (Captum is given our kernel and a scikit-learn ridge of the same
  alpha). Both are Monte-Carlo estimates from different random samples, so they agree statistically: the
  Pearson correlation of the maps, averaged over seeds, must reach 0.9. The remaining gap is sampling noise
  of both estimates (it shrinks as the sample count grows); ours also scores the original image first
  (LIME, as the ``lime`` package does) and pairs each coalition with its complement (KernelSHAP, as the
  ``shap`` package does), which lowers our variance but does not change what is estimated.
"""

import numpy as np
import pytest
import torch

from explorer.methods import explain
from explorer.methods.base import prepare_context
from explorer.perturb.linear import lime_kernel
from explorer.perturb.superpixels import superpixels

captum_attr = pytest.importorskip("captum.attr")


def _pearson(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1])


@pytest.fixture(scope="module")
def ctx(model, chelsea):
    return prepare_context(model, chelsea, seed=0)


def _probs(model):
    def fwd(x):
        return model(x).softmax(1)

    return fwd


def test_occlusion_equals_captum(model, chelsea, ctx):
    window, stride = 56, 28
    ours = explain("occlusion", model, chelsea, params={"window": window, "stride": stride, "batch_size": 16})
    with torch.inference_mode():
        ref = captum_attr.Occlusion(_probs(model)).attribute(
            ctx.x, sliding_window_shapes=(3, window, window), strides=(3, stride, stride), baselines=0.0,
            target=ctx.target, perturbations_per_eval=16)
    ref = ref[0, 0].float().numpy()
    assert _pearson(ours.raw["salient"], ref) >= 0.99
    np.testing.assert_allclose(ours.raw["salient"], ref, atol=2e-5)


SEGMENTS, SAMPLES, SHAP_SAMPLES, SEEDS = 16, 150, 300, (0, 1)


def _feature_mask(ctx):
    labels, how = superpixels(ctx.input_rgb, SEGMENTS, 10.0)
    assert how == "slic"
    return torch.from_numpy(labels)[None, None]  # (1, 1, h, w): broadcast over the colour channels


def test_lime_agrees_with_captum(model, chelsea, ctx):
    from captum._utils.models.linear_model import SkLearnRidge

    mask = _feature_mask(ctx)
    width, alpha = 0.25, 1.0

    def similarity(original, perturbed, interpretable_sample, **kw):
        return float(lime_kernel(interpretable_sample.float().reshape(1, -1), width)[0])

    lime = captum_attr.Lime(_probs(model), interpretable_model=SkLearnRidge(alpha=alpha), similarity_func=similarity)
    scores = []
    for seed in SEEDS:
        ours = explain("lime", model, chelsea, seed=seed, params={
            "samples": SAMPLES, "segments": SEGMENTS, "kernel_width": width, "alpha": alpha, "batch_size": 16})
        torch.manual_seed(seed)
        ref = lime.attribute(ctx.x, target=ctx.target, feature_mask=mask, baselines=0.0, n_samples=SAMPLES,
                             perturbations_per_eval=16)
        scores.append(_pearson(ours.raw["salient"], ref[0, 0].detach().numpy()))
    print(scores)
    assert np.mean(scores) >= 0.9, scores


def test_kernelshap_agrees_with_captum(model, chelsea, ctx):
    mask = _feature_mask(ctx)
    labels = mask[0, 0].numpy()
    shap = captum_attr.KernelShap(_probs(model))
    scores = []
    for seed in SEEDS:
        ours = explain("kernelshap", model, chelsea, seed=seed,
                       params={"samples": SHAP_SAMPLES, "segments": SEGMENTS, "batch_size": 16})
        torch.manual_seed(seed)
        ref = shap.attribute(ctx.x, target=ctx.target, feature_mask=mask, baselines=0.0, n_samples=SHAP_SAMPLES,
                             perturbations_per_eval=16)
        ref = ref[0, 0].detach().numpy()
        scores.append(_pearson(ours.raw["salient"], ref))
        # both honour efficiency: the values sum to f(image) - f(baseline) (Captum up to its 1e6 end-point weights)
        gap = ours.info["f_full"] - ours.info["f_empty"]
        first = [np.flatnonzero(labels == k)[0] for k in range(labels.max() + 1)]
        assert ours.raw["salient"].ravel()[first].sum() == pytest.approx(gap, abs=1e-5)
        assert ref.ravel()[first].sum() == pytest.approx(gap, abs=1e-3)
    print(scores)
    assert np.mean(scores) >= 0.9, scores
