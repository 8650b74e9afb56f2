"""Augmentation for explainer training: random resized crops, flips, colour jitter, and composites.

A composite puts two photos side by side (or one above the other) or four in a 2x2 grid in one frame, so
that several classes share an image: the multi-label setting of Stalder et al. 2022, which a folder with one
object per photo otherwise lacks. Each part is a random resized crop with the part's own aspect ratio, so
objects keep their shape. Every random draw comes from the caller's generator (reproducible, resumable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def augment(rgb: np.ndarray, size: int | tuple[int, int], g: torch.Generator, *, min_scale: float = 0.25,
            jitter: float = 0.4, hue: float = 0.05) -> torch.Tensor:
    """Random resized crop (area fraction in [min_scale, 1], aspect within [3/4, 4/3] of the output's) to
    ``size`` (an int for a square), horizontal flip (p = 0.5) and colour jitter (brightness, contrast,
    saturation factors in [1 − jitter, 1 + jitter], hue rotation within ±hue of a turn).
    (3, h, w) float in [0, 1]; every draw from ``g``."""
    oh, ow = (size, size) if isinstance(size, int) else size
    H, W = rgb.shape[:2]
    top, left, h, w = 0, 0, H, W
    for _ in range(10):
        area = H * W * _uniform(g, min_scale, 1.0)
        ratio = (ow / oh) * math.exp(_uniform(g, math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < cw <= W and 0 < ch <= H:
            top = int(torch.randint(0, H - ch + 1, (), generator=g))
            left = int(torch.randint(0, W - cw + 1, (), generator=g))
            h, w = ch, cw
            break
    else:  # no crop of that aspect fits: the largest centred one
        ratio = ow / oh
        w = min(W, round(H * ratio))
        h = min(H, round(w / ratio))
        top, left = (H - h) // 2, (W - w) // 2
    t = torch.from_numpy(np.array(rgb[top:top + h, left:left + w])).permute(2, 0, 1)[None].float() / 255.0
    t = F.interpolate(t, size=(oh, ow), mode="bilinear", align_corners=False, antialias=True)[0]
    if float(torch.rand((), generator=g)) < 0.5:
        t = t.flip(-1)
    if jitter > 0:
        b, c, s = (_uniform(g, 1 - jitter, 1 + jitter) for _ in range(3))
        t = t * b
        gray = (0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2])
        t = (t - gray.mean()) * c + gray.mean()
        gray = (0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2])[None]
        t = (t - gray) * s + gray
    if hue > 0:  # rotate the chroma plane of YIQ
        a = 2 * math.pi * _uniform(g, -hue, hue)
        to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
        rot = torch.tensor([[1.0, 0.0, 0.0], [0.0, math.cos(a), -math.sin(a)], [0.0, math.sin(a), math.cos(a)]])
        m = torch.linalg.inv(to_yiq) @ rot @ to_yiq
        t = torch.einsum("ij,jhw->ihw", m, t)
    return t.clamp_(0, 1)


@dataclass
class Sample:
    """One training frame (3, S, S) in [0, 1] and the boxes (top, left, h, w) of its parts (one photo each)."""

    image: torch.Tensor
    parts: list[tuple[int, int, int, int]]


def layout(size: int, n: int, vertical: bool = False) -> list[tuple[int, int, int, int]]:
    """The part boxes of a frame of ``size``² holding ``n`` = 1, 2 (halves) or 4 (quadrants) photos."""
    a = size // 2
    if n == 1:
        return [(0, 0, size, size)]
    if n == 2:
        return [(0, 0, a, size), (a, 0, size - a, size)] if vertical else [(0, 0, size, a), (0, a, size, size - a)]
    if n == 4:
        return [(0, 0, a, a), (0, a, a, size - a), (a, 0, size - a, a), (a, a, size - a, size - a)]
    raise ValueError(f"a composite holds 1, 2 or 4 photos, not {n}")


def compose(photos: list[np.ndarray], size: int, g: torch.Generator, *, vertical: bool = False,
            min_scale: float = 0.25, jitter: float = 0.4) -> Sample:
    """The photos, each augmented on its own, tiled into one frame of ``size``²."""
    boxes = layout(size, len(photos), vertical)
    frame = torch.zeros(3, size, size)
    for rgb, (t, l, h, w) in zip(photos, boxes):
        frame[:, t:t + h, l:l + w] = augment(rgb, (h, w), g, min_scale=min_scale, jitter=jitter)
    return Sample(frame, boxes)


def draw_count(g: torch.Generator, p2: float, p4: float) -> tuple[int, bool]:
    """How many photos the next frame holds (1, 2 or 4, with probabilities 1 − p2 − p4, p2, p4) and whether
    a pair is stacked vertically."""
    r = float(torch.rand((), generator=g))
    vertical = float(torch.rand((), generator=g)) < 0.5
    if r < p4:
        return 4, vertical
    if r < p4 + p2:
        return 2, vertical
    return 1, vertical
