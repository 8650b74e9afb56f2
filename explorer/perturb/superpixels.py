"""Superpixels for the interpretable features of LIME and KernelSHAP (SLIC, via scikit-image).

The segmentation runs once per run on the model-input image (CPU, deterministic: no randomness), and is
then uploaded to the device, where on/off patterns over the segments become keep-masks by indexing.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from explorer.core.errors import ParamError


def slic_segments(rgb: np.ndarray, n_segments: int, compactness: float) -> np.ndarray:
    """SLIC superpixels of an (h, w, 3) uint8 image: int64 labels 0..M-1 (contiguous), shape (h, w).

    ``n_segments`` is the approximate count SLIC aims for; the result may have fewer (small or flat images)
    or a few more. Images too small to segment (fewer than 4 pixels on a side) get one segment per pixel.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ParamError(f"superpixels need an (h, w, 3) RGB image, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    if h < 4 or w < 4:
        return np.arange(h * w, dtype=np.int64).reshape(h, w)
    from skimage.segmentation import slic

    labels = slic(rgb, n_segments=int(n_segments), compactness=float(compactness), start_label=0,
                  channel_axis=-1)
    _, inverse = np.unique(labels, return_inverse=True)  # contiguous 0..M-1 whatever SLIC returned
    return inverse.reshape(h, w).astype(np.int64)


def grid_segments(hw: tuple[int, int], n_segments: int) -> np.ndarray:
    """A regular grid of about ``n_segments`` rectangular cells (int64 labels, row-major)."""
    h, w = hw
    rows = max(1, min(h, round(math.sqrt(n_segments * h / w))))
    cols = max(1, min(w, round(n_segments / rows)))
    r = np.minimum(np.arange(h) * rows // h, rows - 1)
    c = np.minimum(np.arange(w) * cols // w, cols - 1)
    return (r[:, None] * cols + c[None, :]).astype(np.int64)


def superpixels(rgb: np.ndarray, n_segments: int, compactness: float) -> tuple[np.ndarray, str]:
    """SLIC superpixels, or a regular grid when SLIC finds a single region although more were asked
    (noise-like or flat images); returns (labels, "slic" or "grid")."""
    labels = slic_segments(rgb, n_segments, compactness)
    if labels.max() == 0 and n_segments > 1 and labels.size > 1:
        return grid_segments(labels.shape, n_segments), "grid"
    return labels, "slic"


def segment_masks(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Keep-masks (b, 1, h, w) from on/off patterns ``z`` (b, M) over the segments ``labels`` (h, w)."""
    b = z.shape[0]
    h, w = labels.shape
    return z.to(torch.float32).index_select(1, labels.reshape(-1)).view(b, 1, h, w)


def paint(values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """An (h, w) float32 map holding ``values[k]`` (length M) on the pixels of segment k."""
    return values.to(device=labels.device, dtype=torch.float32)[labels]
