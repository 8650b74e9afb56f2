"""Mask samplers of the perturbation methods, generated on the model's device ``batch`` at a time.

- ``rise_masks``: RISE grid masks (Petsiuk et al. 2018), used by ``rise`` and ``undesirable``.
- ``occlusion_masks``: a square window slid over the image (Zeiler & Fergus 2014).
- ``lime_patterns`` / ``shap_patterns``: on/off patterns over superpixels (``superpixels.py``), turned into
  keep-masks by ``superpixels.segment_masks``.

Memory never grows with the number of masks: each generator yields one batch and forgets it.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch

from explorer.core.errors import ParamError


# --------------------------------------------------------------------------- RISE masks
def rise_grid_size(hw: tuple[int, int], cells: int) -> tuple[int, int]:
    """Cells per axis: ``cells``, or fewer when the image has fewer pixels than cells on that axis."""
    return max(1, min(cells, hw[0])), max(1, min(cells, hw[1]))


def _linear_weights(length: int, cells: int, cell_px: int, shift: torch.Tensor) -> torch.Tensor:
    """(b, length, cells): weights of bilinear resizing (align_corners=False, edge clamped) of ``cells``
    values to (cells+1)·cell_px samples, read at positions shift + 0..length-1."""
    b = shift.shape[0]
    pos = torch.arange(length, device=shift.device, dtype=torch.float32)
    u = ((pos[None] + shift[:, None] + 0.5) * (cells / ((cells + 1) * cell_px)) - 0.5).clamp(0, cells - 1)
    i0 = u.floor()
    w = u - i0
    i0 = i0.long()
    i1 = (i0 + 1).clamp_max(cells - 1)
    R = torch.zeros(b, length, cells, device=shift.device, dtype=torch.float32)
    R.scatter_add_(2, i0[..., None], (1 - w)[..., None])
    R.scatter_add_(2, i1[..., None], w[..., None])
    return R


RANDOM_BLOCK = 16


def rise_masks(n: int, hw: tuple[int, int], cells: int, p: float, batch: int, device: torch.device,
               generator: torch.Generator, start: int = 0) -> Iterator[torch.Tensor]:
    """RISE keep-masks (Petsiuk et al. 2018), ``batch`` at a time, generated on ``device``.

    Each mask: an s×s grid of Bernoulli(p) cells, bilinearly upsampled to (s+1)·cell and cropped at a random
    shift in [0, cell) on each axis. Bilinear resizing is separable, so the upsample-and-crop of grid G is
    R_y·G·R_xᵀ with R_y (h×s) and R_x (w×s) the interpolation weights of the cropped rows and columns (the
    same numbers ``grid_sample``/``interpolate`` compute, align_corners=False, border clamped): two small
    batched matrix products; only the h×w crop is ever materialised.

    ``start``: begin with mask ``start`` of the sequence (a resumed run): the random numbers of the masks
    before it are drawn and dropped, never built, so masks ``start``.. are those an uninterrupted run uses.
    """
    H, W = hw
    sy, sx = rise_grid_size(hw, cells)
    cy, cx = math.ceil(H / sy), math.ceil(W / sx)
    # Random numbers are drawn in fixed blocks of RANDOM_BLOCK masks, whatever the batch size, so that a seed
    # gives the same masks (and the same map) at any batch size or after an out-of-memory halving.
    drawn: list[torch.Tensor] = []  # pending (grid, dy, dx) rows not yet yielded
    made = done = 0

    def draw() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        k = min(RANDOM_BLOCK, n - made)
        g = (torch.rand(k, 1, sy, sx, device=device, generator=generator) < p).float()
        ky = torch.randint(0, cy, (k,), device=device, generator=generator).float()
        kx = torch.randint(0, cx, (k,), device=device, generator=generator).float()
        return g, ky, kx

    while made < min(start, n):  # replay the draws of the masks already scored
        g, ky, kx = draw()
        made += g.shape[0]
        if made > start:
            cut = g.shape[0] - (made - start)
            drawn.append((g[cut:], ky[cut:], kx[cut:]))
    done = min(start, n)
    while done < n:
        b = min(batch, n - done)
        while made < done + b:
            g, ky, kx = draw()
            drawn.append((g, ky, kx))
            made += g.shape[0]
        grid, dy, dx = (torch.cat(parts) for parts in zip(*drawn))
        drawn = [(grid[b:], dy[b:], dx[b:])] if grid.shape[0] > b else []
        grid, dy, dx = grid[:b], dy[:b], dx[:b]
        Ry = _linear_weights(H, sy, cy, dy)  # (b, H, sy)
        Rx = _linear_weights(W, sx, cx, dx)  # (b, W, sx)
        yield torch.bmm(torch.bmm(Ry, grid[:, 0]), Rx.transpose(1, 2))[:, None]
        done += b


# --------------------------------------------------------------------------- occlusion windows
def window_positions(length: int, window: int, stride: int, cover_edge: bool = True) -> list[int]:
    """Start offsets of a window of side ``window`` (clamped to ``length``) slid with ``stride``.

    Offsets 0, stride, 2·stride, ... while the window fits (as Captum's Occlusion places them); with
    ``cover_edge`` a last window flush with the far edge is added when the stride leaves it uncovered
    (our choice, so that every pixel is covered by at least one window).
    """
    k = min(window, length)
    pos = list(range(0, length - k + 1, max(1, stride)))
    if cover_edge and pos[-1] != length - k:
        pos.append(length - k)
    return pos


def occlusion_masks(hw: tuple[int, int], window: int, stride: int, batch: int, device: torch.device,
                    cover_edge: bool = True) -> Iterator[torch.Tensor]:
    """Keep-masks (b, 1, H, W) with one window zeroed each, row-major over the window positions.

    The window is clamped to the image on each axis (a window larger than the input removes it whole).
    """
    H, W = hw
    ky, kx = min(window, H), min(window, W)
    ys = torch.tensor(window_positions(H, window, stride, cover_edge), device=device)
    xs = torch.tensor(window_positions(W, window, stride, cover_edge), device=device)
    rows = torch.arange(H, device=device)
    cols = torch.arange(W, device=device)
    total = len(ys) * len(xs)
    for start in range(0, total, batch):
        idx = torch.arange(start, min(start + batch, total), device=device)
        y0 = ys[idx // len(xs)]
        x0 = xs[idx % len(xs)]
        in_y = (rows[None] >= y0[:, None]) & (rows[None] < y0[:, None] + ky)  # (b, H)
        in_x = (cols[None] >= x0[:, None]) & (cols[None] < x0[:, None] + kx)  # (b, W)
        covered = in_y[:, :, None] & in_x[:, None, :]
        yield (~covered).to(torch.float32)[:, None]


def occlusion_count(hw: tuple[int, int], window: int, stride: int, cover_edge: bool = True) -> int:
    H, W = hw
    return len(window_positions(H, window, stride, cover_edge)) * len(window_positions(W, window, stride, cover_edge))


# --------------------------------------------------------------------------- superpixel patterns
def lime_patterns(n: int, m: int, batch: int, device: torch.device, generator: torch.Generator,
                  include_original: bool = True) -> Iterator[torch.Tensor]:
    """LIME samples: on/off patterns (b, m) float32, each segment on with probability 1/2 (as in the
    ``lime`` package and Captum); the first pattern is the original image (all on) when asked."""
    done = 0
    while done < n:
        b = min(batch, n - done)
        z = (torch.rand(b, m, device=device, generator=generator) < 0.5).to(torch.float32)
        if done == 0 and include_original:
            z[0] = 1.0
        yield z
        done += b


def shapley_size_distribution(m: int) -> torch.Tensor:
    """P(|z| = k) for k = 1..m-1 proportional to the Shapley kernel's total mass at size k, (m-1)/(k(m-k))."""
    k = torch.arange(1, m, dtype=torch.float64)
    w = (m - 1) / (k * (m - k))
    return w / w.sum()


def shap_patterns(n: int, m: int, batch: int, device: torch.device, generator: torch.Generator,
                  paired: bool = True) -> Iterator[torch.Tensor]:
    """KernelSHAP samples (b, m) float32: first the two end points (all on, all off), then coalitions drawn
    with a size k ~ (m-1)/(k(m-k)) and a uniform subset of that size, so that equal regression weights
    reproduce the Shapley kernel (as Captum and the shap package sample). ``paired`` adds each
    coalition's complement next to it (antithetic sampling, as the shap package does; lowers the variance).
    """
    if batch < 2:
        raise ParamError("KernelSHAP needs batches of at least 2 patterns (the two end points come first)")
    sizes = shapley_size_distribution(m).to(device=device, dtype=torch.float32) if m > 1 else None
    done = 0
    while done < n:
        b = min(batch, n - done)
        rows = []
        if done == 0:
            rows.append(torch.ones(1, m, device=device))
            rows.append(torch.zeros(1, m, device=device))
        left = b - sum(r.shape[0] for r in rows)
        if left > 0 and sizes is not None:
            draw = (left + 1) // 2 if paired else left
            k = torch.multinomial(sizes, draw, replacement=True, generator=generator) + 1  # (draw,)
            rank = torch.rand(draw, m, device=device, generator=generator).argsort(1).argsort(1)
            z = (rank < k[:, None]).to(torch.float32)
            if paired:
                z = torch.stack([z, 1 - z], 1).reshape(2 * draw, m)[:left]
            rows.append(z)
        elif left > 0:  # a single feature: only the end points exist
            rows.append(torch.ones(left, m, device=device))
        z = torch.cat(rows)
        yield z
        done += b
