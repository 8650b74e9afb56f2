"""Modern architectures: token and channels-last layers read as feature maps, the default layer of the CAM
family on each family, parity with pytorch-grad-cam's ViT and Swin recipes (reshape_transform, same layer),
the CAM variants against pytorch-grad-cam on the default model, and the clear refusals (bad layers, a layer
that does not reach the score, LRP on LayerNorm nets, NaN maps)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from explorer.core.errors import NonFiniteMapError, UnknownNameError, UnsupportedError
from explorer.core.types import MethodStep
from explorer.methods import Method, explain, run
from explorer.methods.base import prepare_context
from explorer.models.layers import as_grid, classify, discover, hook_count, pick_default, token_grid
from explorer.models.loaded import LoadedModel, validate_output
from explorer.models.preprocess import Preprocess

timm = pytest.importorskip("timm")
gradcam_lib = pytest.importorskip("pytorch_grad_cam")


def pearson(a, b) -> float:
    return float(np.corrcoef(np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel())[0, 1])


def wrap(net: nn.Module, size=(224, 224), name="net") -> LoadedModel:
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    m = LoadedModel(id=name, kind="torch", forward=net, labels=[f"c{i}" for i in range(1000)],
                    preprocess=Preprocess(tuple(size)), device=torch.device("cpu"), module=net)
    validate_output(m)
    return m


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return wrap(timm.create_model("vit_tiny_patch16_224", pretrained=False), name="vit_tiny")


@pytest.fixture(scope="module")
def swin():
    torch.manual_seed(0)
    return wrap(timm.create_model("swin_tiny_patch4_window7_224", pretrained=False), name="swin_tiny")


# --------------------------------------------------------------------------- layout inference
def test_token_grid_and_layouts():
    assert token_grid(197, 224, 224) == (1, 14, 14)  # class token
    assert token_grid(198, 224, 224, 2) == (2, 14, 14)  # class + distillation
    assert token_grid(201, 224, 224, 5) == (5, 14, 14)  # class + 4 registers
    assert token_grid(141, 224, 160, 1) == (1, 14, 10)  # non-square grid
    assert token_grid(50, 224, 224) is None or token_grid(50, 224, 224)[0] > 0
    assert classify((96, 56, 56), 224, 224)[0] == "NCHW"
    assert classify((56, 56, 96), 224, 224)[:1] == ("NHWC",) and classify((56, 56, 96), 224, 224)[2] == (96, 56, 56)
    assert classify((3, 197, 197), 224, 224) is None  # an attention matrix is not a map
    t = torch.arange(2 * 197 * 4, dtype=torch.float32).reshape(2, 197, 4)
    info = discover_info("NLC", 1, (4, 14, 14))
    g = as_grid(t, info)
    assert g.shape == (2, 4, 14, 14) and torch.equal(g[1, :, 0, 1], t[1, 2])  # raster order after the prefix


def discover_info(layout, prefix, shape):
    from explorer.models.layers import LayerInfo

    return LayerInfo("x", "X", shape, layout, prefix)


def test_vit_with_registers_and_non_square_grid():
    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, reg_tokens=4, img_size=(224, 160),
                            depth=2)
    m = wrap(net, size=(224, 160), name="vit_reg4")
    info = m.layer_info(m.default_layer())
    assert m.default_layer() == "blocks.1.norm1" and info.prefix == 5 and info.grid == (14, 10)
    img = (np.random.default_rng(0).random((224, 160, 3)) * 255).astype(np.uint8)
    exp = explain("gradcam", m, img)
    assert exp.maps["salient"].shape == (224, 160) and np.isfinite(exp.maps["salient"]).all()
    assert exp.info["layer_shape"] == [192, 14, 10] and exp.info["prefix_tokens"] == 5


@pytest.mark.slow
@pytest.mark.parametrize("name,expected", [
    ("resnet18", "layer4"), ("mobilenet_v3_small", "features"), ("convnext_tiny", "features"),
    ("regnet_y_400mf", "trunk_output"), ("efficientnet_b0", "features"),
    ("vit_b_16", "encoder.layers.encoder_layer_11.ln_1"), ("swin_t", "features.7.1.norm1")])
def test_torchvision_default_layers(name, expected):
    import torchvision

    net = torchvision.models.get_model(name, weights=None).eval()
    infos = discover(net, torch.zeros(1, 3, 224, 224))
    assert pick_default(infos) == expected
    chosen = next(i for i in infos if i.name == expected)
    assert chosen.grid == ((14, 14) if name == "vit_b_16" else (7, 7))


# --------------------------------------------------------------------------- parity with pytorch-grad-cam
def _peer(cls_name, model, x, layer, target, reshape):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cls = getattr(gradcam_lib, cls_name)
    with cls(model=model.module, target_layers=[model.module.get_submodule(layer)],
             reshape_transform=reshape) as cam:
        out = cam(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(target)])
    assert hook_count(model.module) == 0
    return out[0]


def vit_reshape(t, height=14, width=14):  # pytorch-grad-cam's ViT recipe: drop the class token, to NCHW
    return t[:, 1:, :].reshape(t.size(0), height, width, t.size(2)).permute(0, 3, 1, 2)


def swin_reshape(t):  # timm >= 0.9 Swin blocks are already (B, H, W, C): only the permute is left
    return t.permute(0, 3, 1, 2)


@pytest.mark.parametrize("name,peer", [("gradcam", "GradCAM"), ("hirescam", "HiResCAM"), ("xgradcam", "XGradCAM")])
@pytest.mark.parametrize("arch", ["vit", "swin"])
def test_transformer_parity_with_pytorch_grad_cam(arch, name, peer, request, chelsea):
    model = request.getfixturevalue(arch)
    layer, reshape = ("blocks.11.norm1", vit_reshape) if arch == "vit" else ("layers.3.blocks.1.norm1", swin_reshape)
    ctx = prepare_context(model, chelsea)
    exp = explain(name, model, chelsea, target=ctx.target)
    assert exp.info["layer"] == layer  # the auto pick is the peers' layer
    theirs = _peer(peer, model, ctx.x, layer, ctx.target, reshape)
    r = pearson(exp.raw["salient"], theirs)
    assert r >= 0.99, r


@pytest.mark.parametrize("name,peer", [("hirescam", "HiResCAM"), ("xgradcam", "XGradCAM"), ("eigencam", "EigenCAM")])
def test_cam_variants_match_pytorch_grad_cam_on_default_model(name, peer, model, chelsea):
    ctx = prepare_context(model, chelsea)
    x = ctx.x.contiguous(memory_format=torch.channels_last)
    theirs = _peer(peer, model, x, "bn2", ctx.target, None)
    r = pearson(explain(name, model, chelsea, target=ctx.target).raw["salient"], theirs)
    if name == "eigencam":  # the principal direction's sign is arbitrary in the peer, fixed in ours
        r = max(r, pearson(explain(name, model, chelsea).raw["signed"].clip(max=0) * -1, theirs))
    assert r >= 0.99, r


def test_ablationcam_weights_are_score_drops(tiny_model):
    img = (np.random.default_rng(1).random((32, 32, 3)) * 255).astype(np.uint8)
    exp = explain("ablationcam", tiny_model, img, target=3, params={"layer": "4", "batch_size": 5})
    assert exp.info["forwards"] == 16 and np.isfinite(exp.maps["salient"]).all()
    # one channel ablated by hand gives the same relative drop as the batched hook
    ctx = prepare_context(tiny_model, img, 3)
    net = tiny_model.module
    with torch.inference_mode():
        z = float(net(ctx.x)[0, 3])
        feats = net[:5](ctx.x).clone()
        feats[:, 7] = 0
        z7 = float(net[5:](feats)[0, 3])
    from explorer.methods.cam_variants import AblationCAM

    inst = AblationCAM(tiny_model, layer="4", batch_size=3)
    drops = {}
    orig = inst.combine

    def spy(act, w):  # the weights of the last (complete) step
        drops["w"] = w.clone()
        return orig(act, w)

    inst.combine = spy
    list(run(inst, tiny_model, img, target=3))
    assert np.isclose(float(drops["w"][7]), (z - z7) / abs(z), rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- refusals
def test_layer_that_does_not_reach_the_score_is_refused(vit, chelsea):
    with pytest.raises(UnsupportedError, match="does not reach the class score"):
        explain("gradcam", vit, chelsea, params={"layer": "blocks.11"})


def test_bad_layer_names(vit):
    from explorer.methods import get_method

    with pytest.raises(UnknownNameError, match="no_such"):
        get_method("gradcam")(vit, layer="no_such")
    with pytest.raises(UnsupportedError, match="not a spatial feature map"):
        get_method("gradcam")(vit, layer="head")


def test_token_count_that_is_not_a_grid_is_refused():
    class Tokens(nn.Module):  # 7 "tokens" from a 224x224 input: no prefix + grid split exists
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(3, 8)
            self.head = nn.Linear(8, 10)

        def forward(self, x):
            t = self.proj(nn.functional.adaptive_avg_pool2d(x, (1, 7)).flatten(2).transpose(1, 2))
            return self.head(t.mean(1))

    m = wrap(Tokens(), name="tokens")
    m.labels = [f"c{i}" for i in range(10)]
    from explorer.methods import get_method

    with pytest.raises(UnsupportedError, match="7 tokens"):
        get_method("gradcam")(m, layer="proj")


def test_zennit_lrp_composites_refused_before_compute_on_layernorm_nets(vit):
    """zennit's own composites have no LayerNorm/attention rules: refused; the conserving default runs (issue 30)."""
    from explorer.methods import get_method

    with pytest.raises(UnsupportedError, match="LayerNorm.*composite auto"):
        get_method("lrp")(vit, composite="epsilon_plus_flat")
    get_method("lrp")(vit)


class _NaNMethod(Method):  # not registered: a method whose second step goes wrong
    name = "nan_test"
    title = paper = "test"

    def steps(self, ctx):
        yield MethodStep(0.5, {"salient": np.zeros(ctx.x.shape[-2:])}, info={"layer": "L"})
        yield MethodStep(1.0, {"salient": np.full(ctx.x.shape[-2:], np.nan)}, info={"layer": "L"})


def test_runner_refuses_nan_maps(tiny_model):
    img = np.zeros((32, 32, 3), np.uint8)
    updates = []
    with pytest.raises(NonFiniteMapError, match="nan_test on model 'tiny' \\(layer L\\)"):
        for u in run(_NaNMethod(tiny_model), tiny_model, img):
            updates.append(u)
    assert len(updates) == 1 and np.isfinite(updates[0].explanation.raw["salient"]).all()


def test_cli_lrp_on_vit_reports_conservation_and_a_refusal_leaves_out_untouched(tmp_path, samples_dir, capsys, vit):
    from explorer.cli import main

    w = tmp_path / "vit.pt"
    torch.save(vit.module.state_dict(), w)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier run")
    rc = main(["explain", str(samples_dir / "chelsea.png"), "--model", "timm:vit_tiny_patch16_224",
               "--weights", str(w), "--method", "lrp", "--param", "composite=epsilon_plus_flat", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "lrp" in err[0] and "LayerNorm" in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    rc = main(["explain", str(samples_dir / "chelsea.png"), "--model", "timm:vit_tiny_patch16_224",
               "--weights", str(w), "--method", "lrp", "--out", str(out)])
    import json

    info = json.loads((out / "manifest.json").read_text())["info"]
    assert rc == 0 and info["composite"] == "conserving_plus" and np.isfinite(info["conservation"])
    rc = main(["explain", str(samples_dir / "chelsea.png"), "--model", "timm:vit_tiny_patch16_224",
               "--weights", str(w), "--method", "gradcam", "--out", str(out)])
    assert rc == 0 and json.loads((out / "manifest.json").read_text())["info"]["layer"] == "blocks.11.norm1"
