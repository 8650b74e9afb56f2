"""Parity of the white-box methods with the reference libraries (Captum, pytorch-grad-cam), on the real
default model (channels_last, the shared ``model`` fixture) and the sample photos, at equal settings.
The peers run on the same module instance; every hook they add is released before the test ends."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from explorer.methods import explain
from explorer.methods.base import prepare_context
from explorer.models.layers import hook_count

captum_attr = pytest.importorskip("captum.attr")
gradcam_lib = pytest.importorskip("pytorch_grad_cam")


def pearson(a, b) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1])


@pytest.fixture(scope="module")
def cat(model, chelsea):
    ctx = prepare_context(model, chelsea)
    return ctx


def ours(name, model, image, ctx, **params):
    exp = explain(name, model, image, target=ctx.target, params=params, seed=5)
    assert hook_count(model.module) == 0
    return exp


def peer_input(ctx, model):
    return ctx.x.detach().clone().contiguous(memory_format=torch.channels_last)


# --------------------------------------------------------------------------- Captum
def test_gradient_and_gradient_x_input_match_captum(model, chelsea, cat):
    x = peer_input(cat, model)
    sal = captum_attr.Saliency(model.module).attribute(x, target=cat.target, abs=True)[0]
    r = pearson(ours("gradient", model, chelsea, cat).raw["salient"], sal.amax(0))
    assert r >= 0.99, r
    ixg = captum_attr.InputXGradient(model.module).attribute(x, target=cat.target)[0]
    r = pearson(ours("gradient_x_input", model, chelsea, cat).raw["salient"], ixg.sum(0).detach())
    assert r >= 0.99, r


def test_integrated_gradients_matches_captum_same_rule(model, chelsea, cat):
    x = peer_input(cat, model)
    ig = captum_attr.IntegratedGradients(model.module)
    rule = "gausslegendre"  # Captum's default; both sides use the same nodes and weights
    theirs = ig.attribute(x, baselines=0.0, target=cat.target, n_steps=8, method=rule, internal_batch_size=8)
    exp = ours("integrated_gradients", model, chelsea, cat, steps=8, rule=rule, baseline="zero")
    r = pearson(exp.raw["salient"], theirs[0].sum(0).detach())
    assert r >= 0.99, r
    assert np.isclose(exp.raw["salient"].sum(), float(theirs.sum()), rtol=1e-3, atol=1e-3)
    assert "completeness_gap" in exp.info


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_right", "riemann_left", "riemann_middle",
                                  "riemann_trapezoid"])
def test_integration_rules_use_captums_nodes(rule):
    from captum.attr._utils.approximation_methods import approximation_parameters

    from explorer.methods.gradients import path_points

    n = 9
    sizes, alphas = approximation_parameters(rule)
    a, w = path_points(n, rule)
    np.testing.assert_allclose(a, alphas(n), atol=1e-6)
    if rule == "riemann_trapezoid":
        # ours is the textbook trapezoid (weights sum to 1); Captum's weights are 1/n with halved ends
        # (sum (n-1)/n): the same map up to that constant factor
        np.testing.assert_allclose(w * (n - 1) / n, sizes(n), atol=1e-7)
    else:
        np.testing.assert_allclose(w, sizes(n), atol=1e-7)


class _ReLU6SeenAsReLU(nn.ReLU):
    """Same function as ReLU6, typed as nn.ReLU so that Captum's guided backprop/deconvnet hooks it."""

    def forward(self, x):
        return F.relu6(x)


@contextmanager
def relu6_as_relu(module):
    changed = [m for m in module.modules() if type(m) is nn.ReLU6]
    try:
        for m in changed:
            m.__class__ = _ReLU6SeenAsReLU
        yield len(changed)
    finally:
        for m in changed:
            m.__class__ = nn.ReLU6


@pytest.mark.parametrize("name,peer", [("guided_backprop", "GuidedBackprop"), ("deconvnet", "Deconvolution")])
def test_modified_backprop_matches_captum(model, chelsea, cat, name, peer):
    x = peer_input(cat, model)
    with relu6_as_relu(model.module) as n:
        assert n > 0
        theirs = getattr(captum_attr, peer)(model.module).attribute(x, target=cat.target)[0].detach()
    assert hook_count(model.module) == 0
    exp = ours(name, model, chelsea, cat)
    assert exp.info["activations_modified"] == n
    assert pearson(exp.raw["salient"], theirs.abs().amax(0)) >= 0.99
    assert pearson(exp.raw["signed"], theirs.sum(0)) >= 0.99


def test_smoothgrad_matches_captum_same_seed_and_noise(model, chelsea, cat):
    x = peer_input(cat, model)
    exp = ours("smoothgrad", model, chelsea, cat, samples=4, noise=0.15)
    sigma = exp.info["sigma"]
    assert np.isclose(sigma, 0.15 * float(cat.x.max() - cat.x.min()), rtol=1e-5)
    torch.manual_seed(5)  # Captum draws from the global generator; ours from a generator seeded with the run's seed
    nt = captum_attr.NoiseTunnel(captum_attr.Saliency(model.module))
    theirs = nt.attribute(x, nt_type="smoothgrad", nt_samples=4, stdevs=sigma, target=cat.target, abs=True)[0]
    r = pearson(exp.raw["salient"], theirs.amax(0).detach())
    assert r >= 0.99, r


# --------------------------------------------------------------------------- pytorch-grad-cam
def _grad_cam(cls_name, model, x, layer, target, **kw):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cls = getattr(gradcam_lib, cls_name)
    with cls(model=model.module, target_layers=[model.module.get_submodule(layer)]) as cam:
        for k, v in kw.items():
            setattr(cam, k, v)
        out = cam(input_tensor=x.requires_grad_(True), targets=[ClassifierOutputTarget(target)])
    assert hook_count(model.module) == 0
    return out[0]


@pytest.mark.parametrize("name,peer", [("gradcam", "GradCAM"), ("gradcam_pp", "GradCAMPlusPlus"),
                                       ("layercam", "LayerCAM")])
def test_cam_family_matches_pytorch_grad_cam(model, chelsea, cat, name, peer):
    theirs = _grad_cam(peer, model, peer_input(cat, model), "bn2", cat.target)
    r = pearson(ours(name, model, chelsea, cat).raw["salient"], theirs)
    assert r >= 0.99, r


def test_scorecam_matches_pytorch_grad_cam(model, coffee):
    ctx = prepare_context(model, coffee)
    layer = "blocks.3"  # 80 channels at 14x14: K forwards stay small for the suite
    theirs = _grad_cam("ScoreCAM", model, peer_input(ctx, model), layer, ctx.target, batch_size=16)
    exp = ours("scorecam", model, coffee, ctx, layer=layer, score="channel_softmax", mask_upsample="corners")
    r = pearson(exp.raw["salient"], theirs)
    assert r >= 0.99, r
    assert exp.info["forwards"] <= 80
