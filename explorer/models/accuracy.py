"""Top-1 accuracy of a loaded model on labelled photos: how a model's preprocessing is proved.

A sample photo's top-1 proves nothing (a wrong normalisation still gets a cat right); the share of a few
hundred real photos classified correctly does (EfficientNet-Lite0: 0.82 with its own preprocessing, 0.69
with ImageNet mean/std). The photos go through exactly the path every method uses (``Preprocess.to_input``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from explorer.core.errors import FileError
from explorer.io.images import read_image
from explorer.models.loaded import LoadedModel

PHOTO_SUFFIXES = (".jpeg", ".jpg", ".png")


def imagenet_sample(folder: str | Path) -> list[tuple[Path, int]]:
    """The shared ImageNet sample: one photo per even class index, named ``<wnid>_<name>.JPEG``; the class
    index of the i-th file in sorted order is ``2 * i`` (the folder's README states the rule)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileError(root, "no such folder of photos")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not files:
        raise FileError(root, "holds no photos (.JPEG/.jpg/.png)")
    return [(p, 2 * i) for i, p in enumerate(files)]


def top1(model: LoadedModel, items: list[tuple[Path, int]], batch_size: int = 25) -> float:
    """The share of ``(photo, class index)`` pairs whose highest score is the labelled class."""
    correct = 0
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        x = torch.cat([model.preprocess.to_input(read_image(p).rgb)[0] for p, _ in chunk])
        pred = model.scores(x, probs=False).argmax(1).cpu().numpy()
        correct += int((pred == np.array([c for _, c in chunk])).sum())
    return correct / len(items)
