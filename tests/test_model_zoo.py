"""Every registered method on every architecture family: a finite map at the image's size, or the refusal
listed here (naming why, before any compute but CAM's head check), and what a refusal suggests instead is
a method that maps on that family. A method that starts failing silently, or a refusal that disappears,
fails this test.

Random-weight timm models at 64 px, one per family per module, quick method settings, a small photo. The
convolutional nets go through the user's path (``timm:NAME`` + a saved weights file + ``input_size``); ViT and
Swin have a fixed input size set when they are built (``img_size``), which the loader's ``timm:NAME`` does not
take, so they are built at 64 px and handed over in memory (``explorer.load_model(module)``, the Python API's
path) with timm's mean/std. At this size every family x every method costs well under a minute of CPU."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from explorer.core.errors import ExplorerError, UnsupportedError
from explorer.methods import METHODS, explain, method_names
from explorer.models.layers import hook_count

timm = pytest.importorskip("timm")

pytestmark = pytest.mark.slow

SIZE = 64  # model input side: ViT/DeiT 4x4 patches, Swin a 2x2 last stage (window 4), CNNs a 2x2 last map
FAMILIES = {
    "vit": ("vit_tiny_patch16_224", {}),
    "deit_distilled": ("deit_tiny_distilled_patch16_224", {}),
    "vit_registers": ("vit_dwee_patch16_reg1_gap_256", {}),
    "swin": ("swin_tiny_patch4_window7_224", {"window_size": 4}),  # 16/8/4/2 stage grids: windows of 4 tile them
    "convnext": ("convnext_atto", {}),
    "resnet": ("resnet18", {}),
    "mobilenetv3": ("mobilenetv3_small_050", {}),
}
TRANSFORMERS = {"vit", "deit_distilled", "vit_registers", "swin"}
NO_RELU = TRANSFORMERS | {"convnext"}
VIT_LIKE = {"vit", "deit_distilled", "vit_registers"}
FIXED_SIZE = TRANSFORMERS

# The default layer the CAM family and FEM must pick (ViT/DeiT: last block's first norm; Swin: last stage's
# last block's first norm; CNNs: the last feature map before pooling).
DEFAULT_LAYER = {
    "vit": "blocks.11.norm1", "deit_distilled": "blocks.11.norm1", "vit_registers": "blocks.13.norm1",
    "swin": "layers.3.blocks.1.norm1", "convnext": "stages", "resnet": "layer4", "mobilenetv3": "blocks",
}


def expected_refusal(method: str, family: str) -> str | None:
    """A phrase of the expected refusal, or None when the method must produce a map."""
    if method in ("guided_backprop", "deconvnet", "guided_gradcam") and family in NO_RELU:
        return "has none"
    if method == "cam" and family != "resnet":
        # token heads, or something between the pooled map and the linear layer (ConvNeXt's head norm,
        # MobileNetV3's conv_head): CAM's weights would not be the classifier's, so it is refused
        return "use gradcam"
    if method in ("attention_rollout", "chefer") and family not in VIT_LIKE:
        return "has no transformer attention blocks"  # Swin's windowed attention and CNNs
    if method == "explainer":
        return "explainer"  # the shipped head was trained for the default model only
    if method == "lrp" and family == "vit_registers":
        return "no LRP rule covers"  # its differential attention (lambda_q1 ...) has no conserving rule yet
    if method == "fido" and family in FIXED_SIZE:
        return "use scale=1"  # its quick setting optimises at half resolution, which a ViT/Swin cannot take
    return None


MAX_SIDE = 96  # the photo is shrunk: maps are resampled to it, and everything is checked at its size


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread for this module: on 64 px inputs every op is tiny, so a second thread gains little
    and costs synchronisation, and on a shared CPU its OpenMP wait spins (measured here on a loaded 2-core
    machine: 232 s of CPU with 2 threads, 24 s with 1, for the same 217 tests). Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def photo(chelsea):
    from PIL import Image

    im = Image.fromarray(chelsea)
    im.thumbnail((MAX_SIDE, MAX_SIDE))
    return np.asarray(im)


@pytest.fixture(scope="module", params=list(FAMILIES))
def zoo_model(request, tmp_path_factory):
    import explorer
    from explorer.models import load_model

    family = request.param
    name, kwargs = FAMILIES[family]
    torch.manual_seed(0)
    if family in FIXED_SIZE:
        net = timm.create_model(name, pretrained=False, img_size=SIZE, **kwargs)
        cfg = timm.data.resolve_data_config({}, model=net)
        return family, explorer.load_model(net, preprocess={"mean": cfg["mean"], "std": cfg["std"], "size": SIZE})
    net = timm.create_model(name, pretrained=False, **kwargs)
    path = tmp_path_factory.mktemp("zoo") / f"{name}.pt"
    torch.save(net.state_dict(), path)
    return family, load_model(f"timm:{name}", weights=str(path), device="cpu", input_size=SIZE)


def quick(method: str) -> dict:
    """The method's own quick settings (the registry's), with windows that slide on a 64 px input."""
    params = dict(METHODS.get(method).quick)
    if method == "occlusion":
        params.update(window=32, stride=16)
    return params


def test_default_layer(zoo_model):
    family, model = zoo_model
    assert model.default_layer() == DEFAULT_LAYER[family]
    info = model.layer_info(model.default_layer())
    h, w = model.preprocess.input_size
    assert (h, w) == (SIZE, SIZE)
    if family in VIT_LIKE:
        assert info.layout == "NLC" and info.prefix == model.module.num_prefix_tokens
        assert info.grid == (h // 16, w // 16)
    elif family == "swin":
        assert info.layout == "NHWC" and info.grid == (h // 32, w // 32)
    else:
        assert info.layout == "NCHW"


@pytest.mark.parametrize("method", method_names())
def test_every_method_maps_or_refuses(method, zoo_model, photo):
    family, model = zoo_model
    refusal = expected_refusal(method, family)
    if refusal is not None:
        with pytest.raises(ExplorerError) as err:
            if method == "cam":  # whether the head is pooling + linear is checked on the recorded map
                explain(method, model, photo, params=quick(method), seed=1)
            else:  # every other refusal comes from the checks at construction, before any compute
                METHODS.get(method)(model, **quick(method))
        msg = str(err.value)
        assert refusal in msg and "\n" not in msg, msg
        instead = re.search(r"use ([a-z_, ]+?) instead", msg)
        for other in re.split(r",| or ", instead.group(1)) if instead else []:
            assert expected_refusal(other.strip(), family) is None, (other, msg)  # no suggestion that is refused
        assert isinstance(err.value, UnsupportedError) or method == "explainer", type(err.value)
        assert hook_count(model.module) == 0
        return
    exp = explain(method, model, photo, params=quick(method), seed=1)
    assert hook_count(model.module) == 0
    for layer, m in exp.maps.items():
        assert m.shape == photo.shape[:2], (layer, m.shape)
        assert np.isfinite(m).all(), layer
    if "layer" in exp.info and "layer" in METHODS.get(method).params:
        assert exp.info["layer"] == DEFAULT_LAYER[family]
    if method == "lrp":
        assert np.isfinite(exp.info["conservation"])
        if family != "swin":  # conserves (issue 30), ViT/DeiT through their prefix tokens too. The random Swin
            # on this photo does not at the default epsilon (11.0; 0.99 with 1e-9): docs/methods.md §1.7
            assert 0.8 <= exp.info["conservation"] <= 1.2, exp.info
