"""Weighted linear fits of LIME and KernelSHAP, streamed: constant-size sums updated after every batch.

``WeightedSums`` keeps the sufficient statistics of a weighted regression, ``ridge`` (LIME) and ``shapley``
(KernelSHAP, with its two constraints imposed exactly) solve it; ``FitThrottle`` decides how often a streamed
fit is re-solved; ``lime_kernel`` is LIME's sample weight.
"""

from __future__ import annotations

import time

import torch


def _solve_psd(K: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """K⁻¹·rhs (rhs: (m,) or (m, k)) for a symmetric positive semi-definite K, on the CPU in float64, by
    Cholesky. A jitter of 1e-10·mean(diag K) keeps it definite while there are fewer samples than features
    (the result then approaches the least-norm solution); it is negligible once K is well determined."""
    K = K.cpu()
    m = K.shape[0]
    jitter = 1e-10 * float(K.diagonal().mean().abs()) + 1e-300
    eye = torch.eye(m, dtype=K.dtype)
    for _ in range(6):
        L, info = torch.linalg.cholesky_ex(K + jitter * eye)
        if int(info) == 0:
            r = rhs.cpu()
            return torch.cholesky_solve(r[:, None] if r.dim() == 1 else r, L).reshape(r.shape)
        jitter *= 100
    return torch.linalg.lstsq(K, rhs.cpu(), driver="gelsd").solution


class FitThrottle:
    """Decides when a streamed fit is re-solved: after every batch while solving is cheap, else only as
    often as keeps the solves under ``share`` of the run's time (with many superpixels an M×M solve can
    cost as much as a batch of forwards); always after the last batch, so the final map never depends on it."""

    def __init__(self, share: float = 0.1):
        self.share = share
        self.cost = 0.0
        self.since = time.perf_counter()

    def due(self, last: bool) -> bool:
        return last or self.cost <= self.share * (time.perf_counter() - self.since)

    def solved(self, seconds: float) -> None:
        self.cost = seconds
        self.since = time.perf_counter()


class WeightedSums:
    """Constant-size sufficient statistics of a weighted linear regression of y on z, in float64.

    After each batch they give the same fit as refitting on every sample seen so far: S = Σw, c = Σw·z,
    A = Σw·z·zᵀ, sy = Σw·y, b = Σw·z·y, syy = Σw·y².
    """

    def __init__(self, m: int, device: torch.device):
        d = dict(device=device, dtype=torch.float64)
        self.S = torch.zeros((), **d)
        self.c = torch.zeros(m, **d)
        self.A = torch.zeros(m, m, **d)
        self.sy = torch.zeros((), **d)
        self.b = torch.zeros(m, **d)
        self.syy = torch.zeros((), **d)
        self.count = 0

    FIELDS = ("S", "c", "A", "sy", "b", "syy")

    @staticmethod
    def shapes(m: int) -> dict[str, tuple[int, ...]]:
        """The shape of each sum for ``m`` features (what a resumed run's stored sums must have)."""
        return {"S": (), "c": (m,), "A": (m, m), "sy": (), "b": (m,), "syy": ()}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in self.FIELDS}

    def load(self, sums: dict, count: int) -> None:
        """Continue from stored sums (``tensors()``'s values, as numbers or numpy arrays) over ``count`` samples."""
        for k in self.FIELDS:
            cur = getattr(self, k)
            setattr(self, k, torch.as_tensor(sums[k], dtype=torch.float64).to(cur.device).reshape(cur.shape).clone())
        self.count = int(count)

    def add(self, z: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> None:
        z, y, w = z.double(), y.double(), w.double()
        wz = z * w[:, None]
        self.S += w.sum()
        self.c += wz.sum(0)
        self.A += wz.T @ z
        self.sy += (w * y).sum()
        self.b += wz.T @ y
        self.syy += (w * y * y).sum()
        self.count += z.shape[0]

    def ridge(self, alpha: float) -> tuple[torch.Tensor, float, float]:
        """Weighted ridge with an unpenalised intercept (as scikit-learn's Ridge with sample_weight):
        argmin Σ w (y − β0 − zᵀβ)² + α‖β‖². Returns (β, β0, weighted R²)."""
        S = self.S.clamp_min(1e-300)
        zm, ym = self.c / S, self.sy / S
        C = self.A - S * torch.outer(zm, zm)
        r = self.b - S * zm * ym
        m = C.shape[0]
        eye = torch.eye(m, dtype=C.dtype, device=C.device)
        beta = _solve_psd(C + alpha * eye, r).to(C.device)
        beta0 = float(ym - zm @ beta)
        sst = float(self.syy - S * ym * ym)
        sse = sst - 2 * float(beta @ r) + float(beta @ C @ beta)
        r2 = 1.0 - sse / sst if sst > 1e-300 else 0.0
        return beta, beta0, r2

    def shapley(self, f_empty: float, f_full: float) -> torch.Tensor:
        """The KernelSHAP fit with its two constraints imposed exactly: intercept f(∅) and
        Σφ = f(all) − f(∅) (efficiency). argmin Σ w (y − f(∅) − zᵀφ)² s.t. 1ᵀφ = Δ, solved through its
        KKT system."""
        # KKT by elimination: φ = A⁻¹(b' − λ·1) with λ chosen so that 1ᵀφ = Δ, b' = Σ w z (y − f(∅)).
        b = (self.b - f_empty * self.c).cpu()
        ones = torch.ones_like(b)
        sol = _solve_psd(self.A, torch.stack([b, ones], 1))
        u, v = sol[:, 0], sol[:, 1]
        lam = (u.sum() - (f_full - f_empty)) / v.sum()
        return (u - lam * v).to(self.A.device)


def lime_kernel(z: torch.Tensor, width: float) -> torch.Tensor:
    """LIME sample weights: exp(−d²/(2·width²)) with d the cosine distance between the pattern z and the
    original (all on) in the interpretable space, d = 1 − |z|/√(m·|z|) = 1 − √(|z|/m); the all-off pattern
    gets d = 1. This is the ``lime`` package's kernel (√exp(−d²/w²)) and Captum's exponential kernel form."""
    m = z.shape[1]
    on = z.sum(1)
    d = 1.0 - torch.sqrt(on / m)
    return torch.exp(-(d * d) / (2.0 * width * width))
