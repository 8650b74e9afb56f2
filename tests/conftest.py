"""Shared fixtures: the real default model and the sample photos, loaded once per session."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("EXPLORER_OFFLINE", "1")
# autosaves (io/autosave.py) of every window a test opens go to a temporary folder, never the user's
import tempfile

os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="explorer-test-state-")
# The suite scores on torch unless a test asks for another engine (tests/test_engine.py): an ONNX export per
# model and input size would cost seconds in every process. Exports go to a folder of this run, never to the
# user's cache.
os.environ.setdefault("EXPLORER_ENGINE", "torch")
if "EXPLORER_CACHE_DIR" not in os.environ:
    os.environ["EXPLORER_CACHE_DIR"] = tempfile.mkdtemp(prefix="explorer-test-cache-")
# what the window remembers (last photo, model, layout: explorer/gui/memory.py) goes to a folder of this test
# run, never the developer's own settings; subprocesses inherit it
if "EXPLORER_CONFIG_DIR" not in os.environ:
    os.environ["EXPLORER_CONFIG_DIR"] = tempfile.mkdtemp(prefix="explorer-settings-")

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "resources" / "samples"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


def _read(name: str) -> np.ndarray:
    from explorer.io.images import read_image

    return read_image(SAMPLES / name).rgb


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    return _read("chelsea.png")


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    return _read("coffee.png")


@pytest.fixture(scope="session")
def rocket() -> np.ndarray:
    return _read("rocket.jpg")


@pytest.fixture(scope="session")
def model():
    """The embedded default EfficientNet-Lite0 on CPU (shared: tests must not modify it)."""
    from explorer.models import load_model

    return load_model(device="cpu")


@pytest.fixture(scope="session")
def tiny_model():
    """A small random conv net wrapped as a LoadedModel (10 classes, 32x32 input): fast structural tests."""
    import torch
    from torch import nn

    from explorer.models.loaded import LoadedModel, validate_output
    from explorer.models.preprocess import Preprocess

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    ).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    m = LoadedModel(id="tiny", kind="torch", forward=net, labels=[f"c{i}" for i in range(10)],
                    preprocess=Preprocess((32, 32)), device=torch.device("cpu"), module=net)
    validate_output(m)
    return m


def wrap_module(net, model_id: str, input_hw: tuple[int, int], classes: int = 10):
    """A random-weight torch module as a LoadedModel on CPU (frozen, eval), checked like a loaded model."""
    import torch

    from explorer.models.loaded import LoadedModel, validate_output
    from explorer.models.preprocess import Preprocess

    net = net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    m = LoadedModel(id=model_id, kind="torch", forward=net, labels=[f"c{i}" for i in range(classes)],
                    preprocess=Preprocess(tuple(input_hw)), device=torch.device("cpu"), module=net)
    validate_output(m)
    return m


@pytest.fixture(scope="session")
def tiny_vit():
    """A small random timm ViT with 4 register tokens on a non-square 40x56 input (5x7 patches of 8):
    the model the attention methods run on in the contract tests."""
    import torch
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    net = VisionTransformer(img_size=(40, 56), patch_size=8, embed_dim=32, depth=3, num_heads=4, num_classes=10,
                            reg_tokens=4)
    return wrap_module(net, "tiny_vit", (40, 56))
