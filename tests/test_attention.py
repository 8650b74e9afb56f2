"""Attention rollout and Chefer relevance on small random timm transformers.

Neither captum nor pytorch-grad-cam implements them, so the parity tests recompute both from scratch: a
reference forward that rebuilds each block's attention from its qkv weights (checked to reproduce the
model's logits), and the papers' formulas written as plain loops in numpy.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import VisionTransformer

from explorer.cli import main
from explorer.core.errors import UnsupportedError
from explorer.core.types import Needs
from explorer.methods import explain, get_method
from explorer.methods.attention import rollout
from explorer.models.attention import attention_modules, attention_recording, token_layout, unfused
from explorer.models.layers import hook_count
from explorer.models.loaded import LoadedModel
from tests.conftest import wrap_module

RNG = np.random.default_rng(0)
IMAGE = (RNG.random((50, 70, 3)) * 255).astype(np.uint8)


def vit(hw=(40, 56), seed=0, cls=VisionTransformer, **kw):
    torch.manual_seed(seed)
    net = cls(img_size=hw, patch_size=8, embed_dim=32, depth=3, num_heads=4, num_classes=10, **kw)
    return wrap_module(net, f"vit{kw}", hw)


# ----------------------------------------------------------------------------- a reference forward
def reference_forward(net, x):
    """timm's ViT forward with each block's attention rebuilt from its weights: (logits, [A_l (heads, N, N)]).

    The A_l are graph leaves' descendants with ``retain_grad`` so d logit / d A_l can be read after backward.
    """
    t = net.norm_pre(net._pos_embed(net.patch_embed(x)))
    attentions = []
    for blk in net.blocks:
        a = blk.attn
        B, N, C = t.shape
        qkv = a.qkv(blk.norm1(t)).reshape(B, N, 3, a.num_heads, a.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        att = torch.softmax((q * a.scale) @ k.transpose(-2, -1), dim=-1)
        if att.requires_grad:
            att.retain_grad()
        attentions.append(att)
        o = (att @ v).transpose(1, 2).reshape(B, N, -1)
        t = t + blk.ls1(a.proj(o))
        t = t + blk.ls2(blk.mlp(blk.norm2(t)))
    return net.forward_head(net.norm(t)), attentions


def np_rollout(atts, fusion, discard):
    n = atts[0].shape[-1]
    r = np.eye(n)
    for a in atts:
        f = {"mean": a.mean(0), "max": a.max(0), "min": a.min(0)}[fusion].copy()
        k = int(f.size * discard)
        if k:
            order = np.argsort(f, axis=None, kind="stable")[:k]
            f.flat[order] = 0.0
        f = f + np.eye(n)
        f = f / f.sum(1, keepdims=True)
        r = f @ r
    return r


def np_chefer(atts, grads):
    n = atts[0].shape[-1]
    r = np.eye(n)
    for a, g in zip(atts, grads):
        cam = np.maximum(a * g, 0).mean(0)
        r = r + cam @ r
    return r


def patch_scores(exp_raw, hw, patch=8):
    """The per-patch values back from an input-space map (patch centres of the bilinear upsampling)."""
    t = torch.as_tensor(exp_raw)[None, None]
    gh, gw = hw[0] // patch, hw[1] // patch
    return F.avg_pool2d(t, patch)[0, 0, :gh, :gw].numpy()


def model_input(model, image=IMAGE):
    from explorer.methods.base import prepare_context

    return prepare_context(model, image).x


@pytest.mark.parametrize("fusion, discard", [("mean", 0.0), ("max", 0.0), ("min", 0.0), ("mean", 0.5)])
def test_rollout_matches_hand_computed_formula(tiny_vit, fusion, discard):
    net = tiny_vit.module
    x = model_input(tiny_vit)
    with torch.no_grad():
        logits, atts = reference_forward(net, x)
        np.testing.assert_allclose(logits.numpy(), net(x).numpy(), rtol=1e-4, atol=1e-5)
    r = np_rollout([a[0].double().numpy() for a in atts], fusion, discard)
    prefix = net.num_prefix_tokens
    expected = r[0, prefix:].reshape(5, 7)
    exp = explain("attention_rollout", tiny_vit, IMAGE, params={"head_fusion": fusion, "discard_ratio": discard})
    got = np.asarray(exp.raw["salient"])
    assert got.shape == (40, 56)
    # the token values themselves, then the map: the same values upsampled bilinearly to the input
    with torch.inference_mode(), attention_recording([m for _, m in attention_modules(net)]) as store:
        net(x)
    mine = rollout([a[0] for a in store], fusion, discard)[0, prefix:].numpy().reshape(5, 7)
    np.testing.assert_allclose(mine, expected, rtol=1e-5, atol=1e-7)
    up = F.interpolate(torch.as_tensor(expected, dtype=torch.float32)[None, None], size=(40, 56), mode="bilinear",
                       align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(got, up, rtol=1e-4, atol=1e-7)


def test_chefer_matches_hand_computed_formula(tiny_vit):
    net = tiny_vit.module
    x = model_input(tiny_vit)
    for target in (2, 7):
        with torch.enable_grad():
            logits, atts = reference_forward(net, x.clone().requires_grad_(True))
            logits[0, target].backward()
        r = np_chefer([a[0].detach().double().numpy() for a in atts], [a.grad[0].double().numpy() for a in atts])
        expected = r[0, net.num_prefix_tokens:].reshape(5, 7)
        got = explain("chefer", tiny_vit, IMAGE, target=target).raw["salient"]
        up = F.interpolate(torch.as_tensor(expected, dtype=torch.float32)[None, None], size=(40, 56),
                           mode="bilinear", align_corners=False)[0, 0].numpy()
        np.testing.assert_allclose(got, up, rtol=1e-4, atol=1e-8)


def test_chefer_is_class_specific_and_rollout_is_not(tiny_vit):
    a, b = (explain("chefer", tiny_vit, IMAGE, target=t).raw["salient"] for t in (1, 4))
    assert not np.allclose(a, b)
    r1, r2 = (explain("attention_rollout", tiny_vit, IMAGE, target=t) for t in (1, 4))
    np.testing.assert_array_equal(r1.raw["salient"], r2.raw["salient"])
    assert r1.target is None  # declared class-agnostic


def test_rollout_rows_are_a_distribution_over_tokens(tiny_vit):
    """Each rolled-out row sums to 1, so the patch share of the class token's row is at most 1."""
    x = model_input(tiny_vit)
    with torch.inference_mode(), attention_recording([m for _, m in attention_modules(tiny_vit.module)]) as st:
        tiny_vit.module(x)
    r = rollout([a[0] for a in st], "max", 0.3)
    np.testing.assert_allclose(r.sum(1).numpy(), 1.0, atol=1e-9)
    assert (r >= 0).all()


# ----------------------------------------------------------------------------- token layouts
def test_prefix_tokens_and_readout_rows():
    plain, reg, dist = vit(), vit(reg_tokens=4), vit(cls=VisionTransformerDistilled)
    gap = vit(class_token=False, global_pool="avg")
    assert token_layout(plain.module).prefix == 1 and token_layout(plain.module).readout == (0,)
    assert token_layout(reg.module).prefix == 5 and token_layout(reg.module).readout == (0,)
    assert token_layout(dist.module).prefix == 2 and token_layout(dist.module).readout == (0, 1)
    assert token_layout(gap.module).prefix == 0 and token_layout(gap.module).readout is None
    for m in (plain, reg, dist, gap):
        for name in ("attention_rollout", "chefer"):
            exp = explain(name, m, IMAGE)
            s = exp.raw["salient"]
            assert s.shape == (40, 56) and np.isfinite(s).all() and (s >= 0).all() and s.max() > 0, (m.id, name)


def test_distilled_readout_averages_class_and_distillation_rows():
    m = vit(cls=VisionTransformerDistilled)
    x = model_input(m)
    with torch.no_grad():
        logits, atts = reference_forward(m.module, x)
        np.testing.assert_allclose(logits.numpy(), m.module(x).numpy(), rtol=1e-4, atol=1e-5)
    r = np_rollout([a[0].double().numpy() for a in atts], "mean", 0.0)
    expected = r[[0, 1], 2:].mean(0).reshape(5, 7)
    got = patch_scores(explain("attention_rollout", m, IMAGE).raw["salient"], (40, 56))
    # average pooling of the bilinear upsampling over a patch ~ the patch value; exact in the interior
    np.testing.assert_allclose(got[1:-1, 1:-1], expected[1:-1, 1:-1], rtol=0.05)


@pytest.mark.parametrize("hw", [(48, 32), (64, 64), (24, 88)])
def test_any_input_size_and_non_square_grids(hw):
    m = vit(hw=hw)
    assert tuple(m.module.patch_embed.grid_size) == (hw[0] // 8, hw[1] // 8)
    for name in ("attention_rollout", "chefer"):
        exp = explain(name, m, IMAGE)
        assert exp.raw["salient"].shape == hw and exp.maps["salient"].shape == IMAGE.shape[:2]


def test_dynamic_padding_covers_partial_patches():
    torch.manual_seed(0)
    net = VisionTransformer(img_size=(36, 52), patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=10,
                            dynamic_img_size=True, dynamic_img_pad=True)
    m = wrap_module(net, "vit_pad", (36, 52))
    assert token_layout(net).grid((36, 52)) == (5, 7)
    s = explain("chefer", m, IMAGE).raw["salient"]
    assert s.shape == (36, 52) and np.isfinite(s).all()


# ----------------------------------------------------------------------------- fused attention, hooks
def test_fused_attention_switched_off_for_the_run_and_restored(tiny_vit):
    mods = [m for _, m in attention_modules(tiny_vit.module)]
    for m in mods:
        m.fused_attn = True
    x = model_input(tiny_vit)
    with torch.no_grad():
        before = tiny_vit.module(x)
    seen = []
    handle = mods[0].register_forward_pre_hook(lambda mod, inp: seen.append(mod.fused_attn))
    try:
        explain("chefer", tiny_vit, IMAGE, target=3)  # a given target: no top-1 forward before the run
        explain("attention_rollout", tiny_vit, IMAGE, target=3)
    finally:
        handle.remove()
    assert seen and not any(seen), "the methods ran with fused attention off"
    assert all(m.fused_attn for m in mods)
    assert hook_count(tiny_vit.module) == 0
    with torch.no_grad():
        torch.testing.assert_close(tiny_vit.module(x), before)


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_fused_flag_and_hooks_restored_when_the_forward_raises(exc):
    m = vit()
    mods = [a for _, a in attention_modules(m.module)]
    flags = [True, False, True]
    for a, f in zip(mods, flags):
        a.fused_attn = f
    get_method("chefer")(m)  # probe done before the failing hook is in place

    def boom(*_):
        raise exc("stop")

    handle = m.module.blocks[1].register_forward_hook(boom)
    try:
        with pytest.raises(exc):
            explain("chefer", m, IMAGE)
        with pytest.raises(exc):
            with unfused(mods):
                assert not any(a.fused_attn for a in mods)
                raise exc("inside")
    finally:
        handle.remove()
    assert [a.fused_attn for a in mods] == flags
    assert hook_count(m.module) == 0


# ----------------------------------------------------------------------------- refusals
def test_cnn_is_refused_before_compute_naming_the_model(tiny_model):
    assert Needs.ATTENTION not in tiny_model.supports
    for name in ("attention_rollout", "chefer"):
        with pytest.raises(UnsupportedError, match=r"'tiny'.*(ViT|DeiT).*gradcam"):
            get_method(name)(tiny_model)


def test_torchscript_model_is_refused(tiny_vit):
    with warnings.catch_warnings():  # the tracer's deprecation and constant-folding notes on a throwaway model
        warnings.simplefilter("ignore")
        ts = torch.jit.trace(tiny_vit.module, torch.zeros(1, 3, 40, 56), check_trace=False)
    m = LoadedModel(id="vit.ts", kind="torchscript", forward=ts, labels=tiny_vit.labels,
                    preprocess=tiny_vit.preprocess, device=torch.device("cpu"), module=ts)
    with pytest.raises(UnsupportedError, match=r"torchscript model 'vit.ts'.*--model timm:NAME"):
        get_method("chefer")(m)


class _AlwaysFused(torch.nn.Module):
    """An attention module with a fused_attn switch that its forward ignores (SDPA, weights never exposed)."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.fused_attn, self.attn_drop = inner, True, inner.attn_drop

    def forward(self, x, **kw):
        a = self.inner
        B, N, C = x.shape
        q, k, v = a.qkv(x).reshape(B, N, 3, a.num_heads, a.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        o = F.scaled_dot_product_attention(q, k, v)
        return a.proj(o.transpose(1, 2).reshape(B, N, C))


def test_attention_that_cannot_be_unfused_is_refused():
    m = vit(seed=3)
    m.module.blocks[2].attn = _AlwaysFused(m.module.blocks[2].attn)
    with pytest.raises(UnsupportedError, match=r"2 of its 3 attention blocks.*fused kernel"):
        get_method("attention_rollout")(m)
    assert hook_count(m.module) == 0


def test_attention_pooling_head_is_refused():
    m = vit(class_token=False, global_pool="map")
    with pytest.raises(UnsupportedError, match="attention-pooling head"):
        get_method("chefer")(m)


def test_cli_refuses_a_cnn_with_one_line_and_exit_2(tmp_path, samples_dir, capsys):
    rc = main(["explain", str(samples_dir / "chelsea.png"), "--method", "attention_rollout", "--out",
               str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "efficientnet_lite0" in err and "gradcam" in err
    assert not (tmp_path / "o").exists()
