"""Each model's preprocessing comes from where its weights were made: timm's pretrained config, torchvision's
standard weights' transforms, the embedded table. (Their accuracy proof is tests/test_accuracy.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from explorer.models.embedded import EMBEDDED
from explorer.models.loader import _timm_preprocess, _torchvision_preprocess
from explorer.models.preprocess import HALF, IMAGENET_MEAN, Preprocess


def test_embedded_models_use_tensorflow_scaling_and_their_own_sizes():
    sizes = {name: e.preprocess().input_size for name, e in EMBEDDED.items()}
    assert sizes == {"efficientnet_lite0": (224, 224), "efficientnet_lite1": (240, 240),
                     "efficientnet_lite2": (260, 260)}
    for e in EMBEDDED.values():
        pre = e.preprocess()
        assert pre.mean == HALF and pre.std == HALF and pre.interpolation == "bicubic"


def test_default_model_input_spans_minus_one_to_one(model):
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[:, 5:] = 255
    x, _ = model.preprocess.to_input(rgb)
    assert float(x.min()) == pytest.approx(-1.0) and float(x.max()) == pytest.approx(1.0)


def test_torchvision_values_come_from_the_weights_transforms():
    r = _torchvision_preprocess("resnet18", None)
    assert r.input_size == (224, 224) and r.mean == IMAGENET_MEAN and r.crop_pct == pytest.approx(224 / 256)
    e = _torchvision_preprocess("efficientnet_b3", None)  # 300 px crop of 320, bicubic
    assert e.input_size == (300, 300) and e.interpolation == "bicubic" and e.crop_pct == pytest.approx(300 / 320)


def test_timm_values_come_from_the_pretrained_config():
    import timm

    vit = _timm_preprocess(timm.create_model("vit_tiny_patch16_224", pretrained=False), None)
    assert vit.mean == HALF and vit.interpolation == "bicubic" and vit.input_size == (224, 224)
    tf = _timm_preprocess(timm.create_model("tf_efficientnet_lite0", pretrained=False), "center_crop")
    assert tf.mean == HALF and tf.policy == "center_crop"


@pytest.mark.parametrize("interp", ["nearest", "bilinear", "bicubic", "lanczos"])
def test_interpolation_is_applied(interp):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    small, _ = Preprocess((32, 32), interpolation=interp).input_rgb(rgb)
    assert small.shape == (32, 32, 3)
    if interp != "bilinear":
        assert not np.array_equal(small, Preprocess((32, 32)).input_rgb(rgb)[0])


def test_unknown_interpolation_is_refused():
    with pytest.raises(ValueError, match="interpolation"):
        Preprocess(interpolation="area")
