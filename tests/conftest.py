"""Shared fixtures: the real default model and the sample photos, loaded once per session."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("EXPLORER_OFFLINE", "1")

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
