"""The holes the in-painter is trained on: the masks the perturbation methods actually hand to an in-filler.

Two kinds, half each, every draw from the trainer's generator:

- FIDO's samples: a Bernoulli(p) drop on a coarse grid (g cells per side), upsampled bilinearly and rounded,
  as FIDO rounds its upsampled concrete samples for the in-filler (and RISE's masks look the same once
  thresholded); g in [3, 16], p in [0.15, 0.7];
- smooth blobs: uniform noise on a g x g grid (g in [2, 8]) upsampled bilinearly and cut at its p-quantile:
  one to a few connected holes of area p, the shape of a converged SSR/SDR or extremal mask.

Grid offsets are random (RISE's shift), so cell borders do not always fall on the same pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _int(g: torch.Generator, lo: int, hi: int) -> int:
    return int(torch.randint(lo, hi + 1, (), generator=g))


def hole_mask(size: int, g: torch.Generator) -> torch.Tensor:
    """One (1, size, size) hole mask, 1 = pixel to fill."""
    if float(torch.rand((), generator=g)) < 0.5:
        cells, p = _int(g, 3, 16), _uniform(g, 0.15, 0.7)
        grid = (torch.rand(1, 1, cells + 1, cells + 1, generator=g) < p).float()
        cut = 0.5
    else:
        cells, p = _int(g, 2, 8), _uniform(g, 0.1, 0.6)
        grid = torch.rand(1, 1, cells + 1, cells + 1, generator=g)
        cut = None
    cell = size / cells
    big = F.interpolate(grid, size=(round(cell * (cells + 1)),) * 2, mode="bilinear", align_corners=False)
    dy, dx = _int(g, 0, max(0, big.shape[-2] - size)), _int(g, 0, max(0, big.shape[-1] - size))
    crop = big[0, :, dy:dy + size, dx:dx + size]
    if cut is None:
        cut = float(torch.quantile(crop.flatten(), 1 - p))
    hole = (crop >= cut).float()
    if hole.sum() == 0:  # a draw without any hole teaches nothing: one cell's worth in the middle
        c = size // 2
        r = max(1, round(cell / 2))
        hole[:, c - r:c + r, c - r:c + r] = 1
    return hole


def hole_batch(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    return torch.stack([hole_mask(size, g) for _ in range(n)])
