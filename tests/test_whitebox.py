"""Behaviour of the white-box family: clean-up after success and failure, bad input, signed layers, FEM,
LRP conservation, CAM = Grad-CAM on a pooling + linear head, and batching invariants."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from explorer.core.errors import UnknownNameError, UnsupportedError
from explorer.methods import METHODS, explain
from explorer.methods.base import prepare_context
from explorer.models.layers import hook_count

WHITEBOX = ["gradient", "gradient_x_input", "integrated_gradients", "smoothgrad", "vargrad", "guided_backprop",
            "deconvnet", "cam", "gradcam", "gradcam_pp", "layercam", "scorecam", "guided_gradcam", "lrp", "fem",
            "mlfem"]
LAYER_METHODS = ["cam", "gradcam", "gradcam_pp", "layercam", "scorecam", "guided_gradcam", "fem"]


def model_state(module: nn.Module) -> dict:
    """Everything a method could leave behind on the module."""
    return {
        "hooks": hook_count(module),
        "instance_forwards": sorted(n for n, m in module.named_modules() if "forward" in m.__dict__),
        "has_skip": [getattr(m, "has_skip", None) for m in module.modules()],
        "modules": sorted(n for n, _ in module.named_modules()),
        "params": float(sum(p.double().sum() for p in module.parameters())),
        "buffers": float(sum(b.double().sum() for b in module.buffers() if b.is_floating_point())),
        "biases_none": [n for n, m in module.named_modules() if isinstance(m, nn.Conv2d) and m.bias is None],
        "types": [type(m).__name__ for m in module.modules()],
    }


@pytest.fixture(scope="module")
def clean_state(model):
    return model_state(model.module)


def test_registry_has_the_whitebox_family():
    names = set(METHODS.names())
    assert set(WHITEBOX) <= names
    for name in LAYER_METHODS:
        p = METHODS.get(name).params["layer"]
        assert p.kind == "layer" and p.default is None
    assert METHODS.get("fem").class_agnostic and METHODS.get("mlfem").class_agnostic
    for name in ("gradient_x_input", "integrated_gradients", "lrp"):
        assert METHODS.get(name).signed_of("salient")
    for name in ("gradcam", "cam", "guided_backprop", "deconvnet"):
        assert METHODS.get(name).signed_of("signed") and not METHODS.get(name).signed_of("salient")


@pytest.mark.parametrize("name", ["guided_backprop", "gradcam", "scorecam", "lrp", "mlfem", "smoothgrad"])
def test_everything_restored_after_an_exception(name, model, chelsea, clean_state, monkeypatch):
    cls = METHODS.get(name)
    explain(name, model, chelsea, params=dict(cls.quick))  # success first (also warms LRP's trace cache)
    assert model_state(model.module) == clean_state
    calls = {"n": 0}
    head = model.module.classifier
    original = type(head).forward

    def boom(x):
        calls["n"] += 1
        raise RuntimeError("injected failure")

    monkeypatch.setattr(head, "forward", boom)
    with pytest.raises(RuntimeError, match="injected"):
        explain(name, model, chelsea, params=dict(cls.quick))
    monkeypatch.undo()
    assert calls["n"] >= 1
    assert type(head).forward is original
    assert model_state(model.module) == clean_state


@pytest.mark.parametrize("name", LAYER_METHODS)
def test_unknown_layer_lists_valid_ones(name, model):
    with pytest.raises(UnknownNameError) as err:
        METHODS.get(name)(model, layer="no_such_layer")
    msg = str(err.value)
    assert "no_such_layer" in msg and "valid:" in msg and "conv_stem" in msg


def test_mlfem_unknown_layer(model):
    with pytest.raises(UnknownNameError, match="valid:"):
        METHODS.get("mlfem")(model, layers="bn2,nope")


def test_black_box_models_get_a_clear_message(tiny_model):
    onnx_like = dataclasses.replace(tiny_model, kind="onnx", module=None)
    script_like = dataclasses.replace(tiny_model, kind="torchscript")
    for name in WHITEBOX:
        cls = METHODS.get(name)
        with pytest.raises(UnsupportedError) as err:
            cls(onnx_like)
        assert "needs gradients" in str(err.value) or "needs hooks" in str(err.value)
        if cls.needs & ~script_like.supports:
            with pytest.raises(UnsupportedError, match="needs hooks"):
                cls(script_like)
    for name in ("gradient", "gradient_x_input", "integrated_gradients", "smoothgrad", "vargrad"):
        METHODS.get(name)(script_like)  # gradients only: allowed on TorchScript


def test_cam_equals_gradcam_on_a_pooling_linear_head(model, coffee):
    cam = explain("cam", model, coffee)
    grad = explain("gradcam", model, coffee)
    assert cam.info["layer"] == grad.info["layer"] == model.default_layer() == "bn2"
    r = np.corrcoef(cam.raw["signed"].ravel(), grad.raw["signed"].ravel())[0, 1]
    assert r > 0.999
    assert cam.raw["salient"].min() >= 0
    assert (cam.raw["salient"] >= cam.raw["signed"] - 1e-6).all()
    with pytest.raises(UnsupportedError, match="cam"):
        explain("cam", model, coffee, params={"layer": "blocks.5"})


def test_integrated_gradients_reports_its_completeness_gap(model, chelsea):
    exp = explain("integrated_gradients", model, chelsea, params={"steps": 4, "baseline": "blur"})
    ctx = prepare_context(model, chelsea)
    from explorer.perturb.infill import make_infill

    base = make_infill("blur", ctx.x, model.preprocess, sigma=10.0).base
    with torch.inference_mode():
        z = model(torch.cat([ctx.x, base]))[:, ctx.target]
    diff = float(z[0] - z[1])
    assert exp.info["score_difference"] == pytest.approx(diff, rel=1e-4, abs=1e-4)
    assert exp.info["completeness_gap"] == pytest.approx(float(exp.raw["salient"].sum()) - diff, rel=1e-3, abs=1e-3)


def test_smoothgrad_noise_does_not_depend_on_the_batch(model, coffee):
    a = explain("smoothgrad", model, coffee, params={"samples": 3, "batch_size": 1}, seed=9)
    b = explain("smoothgrad", model, coffee, params={"samples": 3, "batch_size": 3}, seed=9)
    np.testing.assert_allclose(a.raw["salient"], b.raw["salient"], rtol=1e-4, atol=1e-6)
    c = explain("smoothgrad", model, coffee, params={"samples": 3, "batch_size": 3}, seed=10)
    assert not np.allclose(a.raw["salient"], c.raw["salient"])


def test_guided_backprop_handles_relu_modules(tiny_model):
    img = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    exp = explain("guided_backprop", tiny_model, img, target=1)
    assert exp.info["activations_modified"] == 3
    assert hook_count(tiny_model.module) == 0
    assert not any("forward" in m.__dict__ for m in tiny_model.module.modules())


def test_scorecam_batched_equals_a_plain_loop(tiny_model):
    """Our batched, constant-channel-deduplicated Score-CAM against the paper's loop, written out."""
    img = (np.random.default_rng(1).random((32, 32, 3)) * 255).astype(np.uint8)
    exp = explain("scorecam", tiny_model, img, target=2, params={"layer": "3", "batch_size": 5})
    ctx = prepare_context(tiny_model, img, target=2)
    net = tiny_model.module
    with torch.inference_mode():
        act = net[:4](ctx.x)[0]
        total = torch.zeros(act.shape[1:])
        for k in range(act.shape[0]):
            up = torch.nn.functional.interpolate(act[k][None, None], size=(32, 32), mode="bilinear",
                                                 align_corners=False)[0, 0]
            span = up.max() - up.min()
            mask = (up - up.min()) / span if span > 0 else torch.zeros_like(up)
            p = net(ctx.x * mask).softmax(1)[0, 2]
            total += p * act[k]
        want = torch.nn.functional.interpolate(total.clamp(min=0)[None, None], size=(32, 32), mode="bilinear",
                                               align_corners=False)[0, 0]
    np.testing.assert_allclose(exp.raw["salient"], want.numpy(), rtol=1e-4, atol=1e-6)
    assert exp.info["forwards"] <= act.shape[0] + 1


def test_fem_map_by_hand():
    from explorer.methods.fem import fem_map

    a = torch.zeros(2, 2, 2)
    a[0] = torch.tensor([[4.0, 0.0], [0.0, 0.0]])  # mean 1, std sqrt(3): threshold (k=1) 2.73 -> only (0,0)
    a[1] = torch.tensor([[1.0, 1.0], [1.0, 1.0]])  # constant: std 0, every pixel >= mean
    m = fem_map(a, 1.0)
    want = torch.tensor([[1.0 + 1.0, 1.0], [1.0, 1.0]])
    torch.testing.assert_close(m, want)


def test_fem_is_class_agnostic(model, rocket):
    a = explain("fem", model, rocket, target=1)
    b = explain("fem", model, rocket, target=2)
    assert a.target is None
    np.testing.assert_array_equal(a.raw["salient"], b.raw["salient"])
    ml = explain("mlfem", model, rocket)
    assert len(ml.info["layers"]) == 4 and ml.info["layers"][-1] == "bn2"


def _bias_free_copy(model):
    """The default model with every bias and BatchNorm shift set to zero (then merged BN has no bias)."""
    module = copy.deepcopy(model.module)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.zero_()
                m.bias.zero_()
            elif getattr(m, "bias", None) is not None and isinstance(m.bias, torch.Tensor):
                m.bias.zero_()
    return dataclasses.replace(model, module=module, forward=module, _layers=None, _batch=None)


@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "epsilon_gamma_box", "epsilon_flat"])
def test_lrp_conserves_relevance_where_no_bias_absorbs_it(model, chelsea, composite):
    """With biases present, LRP rules route part of z_c into the biases (BatchNorm shifts, merged into the
    convolutions, are large in this model), so the input relevance of the real model does not sum to z_c
    (reported in info). On the same network without biases, every rule of these composites, our BatchNorm
    merge, the ReLU6 pass-through and the residual Sum canonizer must conserve relevance: sum R = z_c.
    (The alpha2-beta1 rule is not conservative by itself where a neuron has no negative contribution.)"""
    free = _bias_free_copy(model)
    exp = explain("lrp", free, chelsea, params={"composite": composite})
    assert abs(exp.info["conservation"] - 1.0) < 0.05, exp.info
    assert model_state(free.module)["hooks"] == 0


def test_lrp_reports_conservation_on_the_real_model(model, coffee):
    exp = explain("lrp", model, coffee)
    info = exp.info
    assert info["relevance_sum"] == pytest.approx(float(exp.raw["salient"].sum()), rel=1e-3, abs=1e-4)
    assert info["logit"] > 0 and np.isfinite(info["conservation"])


@pytest.mark.parametrize("n,size", [(50, 16), (4, 16), (3, 1), (16, 16), (17, 16), (1, 5)])
def test_chunks_are_balanced_and_cover_everything(n, size):
    from explorer.methods.gradients import chunk_sizes

    parts = chunk_sizes(n, size)
    assert sum(parts) == n and max(parts) <= size and max(parts) - min(parts) <= 1
    assert len(parts) == -(-n // size)
