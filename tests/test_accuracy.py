"""Each embedded model's preprocessing, proved by its top-1 accuracy on 500 real ImageNet photos.

The photos live outside the project (../shared/data/imagenet-sample, one per even class index); a user's own
clone has no ../shared, and then these tests skip saying so. CI always has it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from explorer.models import load_model
from explorer.models.accuracy import imagenet_sample, top1
from explorer.models.embedded import EMBEDDED
from explorer.models.preprocess import IMAGENET_MEAN, IMAGENET_STD

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"{SHARED} is absent (a clone without ../shared): accuracy cannot be measured")

# Measured on the 500 photos, squashed to the input size, [-1, 1], bicubic: lite0 0.818, lite1 0.828, lite2 0.864;
# with ImageNet mean/std instead: 0.712, 0.75 (bilinear), 0.794 (docs/models.md). Each floor leaves about four
# points for library drift and stays above what the wrong normalisation reaches.
FLOOR = {"efficientnet_lite0": 0.77, "efficientnet_lite1": 0.79, "efficientnet_lite2": 0.82}


@pytest.fixture(scope="module")
def photos():
    return imagenet_sample(SHARED)


@needs_shared
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_model_top1_on_real_photos(name, photos):
    model = load_model(name, device="cpu")
    assert model.preprocess.input_size == (EMBEDDED[name].input_size,) * 2
    acc = top1(model, photos)
    assert acc >= FLOOR[name], f"{name}: top-1 {acc:.3f} on {len(photos)} photos, below {FLOOR[name]}"


@needs_shared
def test_imagenet_normalisation_is_measurably_worse_for_the_default(model, photos):
    """The correction this test guards: the Lite weights are TensorFlow's and expect [-1, 1], not mean/std."""
    subset = photos[::5]  # 100 photos keep this cheap; the gap (about ten points) is far above their noise
    right = top1(model, subset)
    wrong_model = replace(model, preprocess=replace(model.preprocess, mean=IMAGENET_MEAN, std=IMAGENET_STD))
    wrong = top1(wrong_model, subset)
    assert right >= 0.75 and right - wrong >= 0.04, (right, wrong)


def test_sample_index_rule(tmp_path):
    for name in ("n01440764_tench.JPEG", "n01443537_goldfish.JPEG", "n01484850_great_white_shark.JPEG"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "README.md").write_text("not a photo")
    items = imagenet_sample(tmp_path)
    assert [(p.name, i) for p, i in items] == [
        ("n01440764_tench.JPEG", 0), ("n01443537_goldfish.JPEG", 2), ("n01484850_great_white_shark.JPEG", 4)]
