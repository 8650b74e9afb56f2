"""BOREx's search state (docs/methods.md §5): the probes so far, the GP fitted to them, the posterior over the
whole window grid and the next window to probe. No forwards here: ``BOREx.steps`` probes the model and hands
each score to ``Search.add``, so the posterior step is testable on any synthetic objective.

Coordinates: a window (y, x, s) with centre (y, x) in input pixels and half-width s is the GP point
u = (y / side, x / side, s_nominal / 224), side = the input's shorter side: fractions of the image, so the
length scales mean the same at every input size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from explorer.core.cancel import NEVER, CancelToken
from explorer.core.types import REFINED, UNCERTAINTY
from explorer.methods.gaussian_process import GP, Hyper, fit_hyperparameters, matern_

REFERENCE_SIDE = 224  # the half-widths are given at 224 x 224
_CHUNK_ELEMENTS = 1 << 22  # kernel entries evaluated at once (n_probes x candidates): 16 MB per float32 buffer


def box_mean(m: torch.Tensor, r: int) -> torch.Tensor:
    """Mean of ``m`` (H×W) over the (2r+1)² window around each pixel, clipped at the borders (integral image)."""
    H, W = m.shape
    c = torch.nn.functional.pad(m.double().cumsum(0).cumsum(1), (1, 0, 1, 0))
    ys = torch.arange(H, device=m.device)
    xs = torch.arange(W, device=m.device)
    y0, y1 = (ys - r).clamp(min=0), (ys + r + 1).clamp(max=H)
    x0, x1 = (xs - r).clamp(min=0), (xs + r + 1).clamp(max=W)
    s = c[y1][:, x1] - c[y0][:, x1] - c[y1][:, x0] + c[y0][:, x0]
    n = (y1 - y0)[:, None] * (x1 - x0)[None, :]
    return (s / n).to(m.dtype)


@dataclass
class Posterior:
    """The posterior over the grid: the two maps and the UCB's best window (scale index, y, x)."""

    refined: torch.Tensor
    uncertainty: torch.Tensor
    next_query: tuple[int, int, int]
    gp: GP

    @property
    def maps(self) -> dict[str, torch.Tensor]:
        """The two maps by their output names, as a step yields them."""
        return {REFINED: self.refined, UNCERTAINTY: self.uncertainty}


@dataclass
class Search:
    """The probes of one BOREx run and everything the GP needs to turn them into maps.

    ``h``: the (normalised) prior in input space, H×W on the device; ``scales``: nominal half-widths at 224²;
    ``start``: the hyperparameters before any fit (kept as they are when ``refit`` is off).
    """

    h: torch.Tensor
    scales: tuple[float, ...]
    nu: float
    kappa: float
    start: Hyper
    refit: bool = True
    jitter: tuple[float, float, float] = (1.0, 1.0, 0.5)  # in pixels at 224² (y, x, s)
    seed: int = 0
    cancel: CancelToken = NEVER
    probes: list[tuple[int, int, int, float]] = field(default_factory=list)  # (y, x, scale index, score)
    hypers: list[Hyper] = field(default_factory=list)  # the fit after each probe

    def __post_init__(self):
        H, W = self.h.shape
        self.side = min(H, W)
        self.half_widths = [max(1, int(round(s * self.side / REFERENCE_SIDE))) for s in self.scales]

    # ------------------------------------------------------------------ the data
    def point(self, i: int) -> np.ndarray:
        """GP coordinates of probe i: its window as fractions of the side, plus its seeded jitter (a function
        of (seed, i) only, so a resumed run reproduces it)."""
        y, x, j, _ = self.probes[i]
        u = np.array([y / self.side, x / self.side, self.scales[j] / REFERENCE_SIDE])
        jit = np.asarray(self.jitter, dtype=np.float64) / REFERENCE_SIDE
        if jit.any():
            u = u + np.random.default_rng([int(self.seed) & 0xFFFFFFFF, i]).normal(size=3) * jit
        return u

    def design(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(X, r): the probes' GP coordinates and residuals r = score − h(y, x), float64 on the device."""
        dev = self.h.device
        X = torch.tensor(np.array([self.point(i) for i in range(len(self.probes))]), dtype=torch.float64,
                         device=dev)
        score = torch.tensor([p[3] for p in self.probes], dtype=torch.float64, device=dev)
        hv = torch.stack([self.h[y, x] for y, x, _, _ in self.probes]).double()
        return X, score - hv

    @property
    def hyper(self) -> Hyper:
        return self.hypers[-1] if self.hypers else self.start

    def first_query(self) -> tuple[int, int, int]:
        """argmax h at the smallest window; the centre when the prior is flat (it has no maximum)."""
        H, W = self.h.shape
        if float(self.h.max()) == float(self.h.min()):
            return 0, H // 2, W // 2
        idx = int(torch.argmax(self.h.reshape(-1)))
        return 0, idx // W, idx % W

    def add(self, query: tuple[int, int, int], score: float) -> Hyper:
        """Record the score of window ``query`` = (scale index, y, x) and refit the hyperparameters."""
        j, y, x = query
        self.probes.append((int(y), int(x), int(j), float(score)))
        X, r = self.design()
        hp = self.hyper
        if self.refit and len(self.probes) >= 2:
            hp = fit_hyperparameters(X, r, self.nu, self.hyper)
        elif len(self.probes) == 1:  # one point: the mean is that point's residual, nothing else to fit
            hp = Hyper(hp.amplitude, hp.length_scales, hp.noise, float(r[0]) if self.refit else hp.mean)
        self.hypers.append(hp)
        return hp

    # ------------------------------------------------------------------ the posterior over the grid
    def posterior(self) -> Posterior:
        """Mean and standard deviation at every window (y, x, s) of the grid, chunked so that no more than
        ``_CHUNK_ELEMENTS`` kernel entries exist at once; ``refined`` = mean over s of the box average (over the
        window of each s) of h + μ_s, ``uncertainty`` likewise of σ_s; the next query maximises the UCB
        h + μ + κσ."""
        X, r = self.design()
        gp = GP.from_hyper(X, r, self.hyper, self.nu)
        H, W = self.h.shape
        dev = self.h.device
        n = X.shape[0]
        Xf, lsf = gp.X.float(), gp.ls.float()
        amp2 = gp.amplitude ** 2
        Linv32 = gp.Linv.float() * amp2  # v = L^-1 k with k = σ_f² C
        w32 = gp.weights.float() * amp2
        ys = torch.arange(H, device=dev, dtype=torch.float32) / self.side
        xs = torch.arange(W, device=dev, dtype=torch.float32) / self.side
        rows = max(1, min(H, _CHUNK_ELEMENTS // max(1, n * W)))
        refined = torch.zeros(H, W, device=dev, dtype=torch.float32)
        unc = torch.zeros(H, W, device=dev, dtype=torch.float32)
        best_val, best = -math.inf, (0, 0, 0)
        dx2 = ((xs[None, :] - Xf[:, 1:2]) / lsf[1]) ** 2  # (n, W)
        for j, s in enumerate(self.scales):
            ds2 = ((s / REFERENCE_SIDE - Xf[:, 2]) / lsf[2]) ** 2  # (n,)
            mu_s = torch.empty(H, W, device=dev, dtype=torch.float32)
            sd_s = torch.empty(H, W, device=dev, dtype=torch.float32)
            for r0 in range(0, H, rows):
                self.cancel.check()
                r1 = min(H, r0 + rows)
                dy2 = ((ys[None, r0:r1] - Xf[:, 0:1]) / lsf[0]) ** 2  # (n, R)
                d = (dy2[:, :, None] + dx2[:, None, :] + ds2[:, None, None]).sqrt_()
                c = matern_(d, self.nu).reshape(n, -1)  # (n, R*W) correlations
                mu = (w32[None, :] @ c)[0]
                v = Linv32 @ c
                sd = (amp2 - (v * v).sum(0)).clamp_min_(0).sqrt_()
                del d, c, v
                mu_s[r0:r1] = mu.view(r1 - r0, W)
                sd_s[r0:r1] = sd.view(r1 - r0, W)
            mu_s += self.h + gp.mean
            acq = mu_s + float(self.kappa) * sd_s
            val, idx = acq.reshape(-1).max(0)
            if float(val) > best_val:
                best_val, best = float(val), (j, int(idx) // W, int(idx) % W)
            refined += box_mean(mu_s, self.half_widths[j])
            unc += box_mean(sd_s, self.half_widths[j])
        k = len(self.scales)
        return Posterior(refined / k, unc / k, best, gp)


def smoothed(m: torch.Tensor, scales: tuple[float, ...]) -> torch.Tensor:
    """``m`` box-averaged over each window size and averaged over sizes, as ``refined`` averages h + μ: the
    control that separates the GP's correction from what the window averaging alone does to a prior."""
    side = min(m.shape)
    out = torch.zeros_like(m)
    for s in scales:
        out += box_mean(m, max(1, int(round(s * side / REFERENCE_SIDE))))
    return out / len(scales)
