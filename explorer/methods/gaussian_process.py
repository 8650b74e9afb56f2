"""The Gaussian process of BOREx (docs/methods.md §5): exact regression on a handful of probes in (y, x, s).

Matérn kernel (ν = 1.5 or 2.5, amplitude 1, ARD length scales), noise ``alpha`` on the diagonal; the length
scales are refitted by maximising the log marginal likelihood with its analytic gradient (L-BFGS-B, like
scikit-learn's GP without restarts). ``matern_`` is the in-place form used over BOREx's whole grid.
"""

from __future__ import annotations

import math

import numpy as np
import torch

LENGTH_BOUNDS = (1.0, 20.0)


def matern(d: torch.Tensor, nu: float) -> torch.Tensor:
    """Matérn correlation of the scaled distance d (amplitude 1), ν = 1.5 or 2.5."""
    if nu == 1.5:
        a = d * math.sqrt(3.0)
        return (1.0 + a) * torch.exp(-a)
    a = d * math.sqrt(5.0)
    return (1.0 + a + a * a / 3.0) * torch.exp(-a)


def matern_(d: torch.Tensor, nu: float) -> torch.Tensor:
    """In-place ``matern`` for large grids (overwrites ``d``). Correlations below ~1e-15 are floored there so
    that the products that follow never meet denormal floats (very slow on CPUs). Not differentiable."""
    a = d.mul_(math.sqrt(3.0) if nu == 1.5 else math.sqrt(5.0))
    e = torch.exp(a.neg().clamp_(min=-40.0))  # at most ~1e-16 beyond the cut: never denormal, even squared
    if nu == 1.5:
        return a.add_(1.0).mul_(e)
    return (a * a).div_(3.0).add_(a).add_(1.0).mul_(e)


# --------------------------------------------------------------------------- the GP
class GP:
    """Exact GP regression on a handful of points in (y, x, s), zero mean (the prior map is added outside)."""

    def __init__(self, X: torch.Tensor, r: torch.Tensor, ls: torch.Tensor, nu: float, alpha: float):
        self.X, self.r, self.nu, self.alpha = X, r, nu, alpha
        self.ls = ls.detach().clone()
        K = self.kernel(X, X, self.ls) + alpha * torch.eye(X.shape[0], dtype=X.dtype, device=X.device)
        self.L = _cholesky(K)
        self.weights = torch.cholesky_solve(r[:, None], self.L)[:, 0]
        # L^-1 once, so that the variance over the grid is a matrix product (much faster than a
        # triangular solve with millions of right-hand sides); K is well conditioned thanks to alpha
        eye = torch.eye(X.shape[0], dtype=X.dtype, device=X.device)
        self.Linv = torch.linalg.solve_triangular(self.L, eye, upper=False)

    def kernel(self, A: torch.Tensor, B: torch.Tensor, ls: torch.Tensor) -> torch.Tensor:
        diff = (A[:, None, :] - B[None, :, :]) / ls
        return matern((diff * diff).sum(-1).clamp_min(0).sqrt(), self.nu)

    @staticmethod
    def log_marginal_likelihood(X, r, ls, nu, alpha) -> torch.Tensor:
        diff = (X[:, None, :] - X[None, :, :]) / ls
        # sqrt has an infinite derivative at 0 (the diagonal): add a tiny epsilon inside
        K = matern((diff * diff).sum(-1).add(1e-12).sqrt(), nu)
        K = K + alpha * torch.eye(X.shape[0], dtype=X.dtype, device=X.device)
        L = _cholesky(K)
        a = torch.cholesky_solve(r[:, None], L)[:, 0]
        return -0.5 * (r * a).sum() - torch.log(torch.diagonal(L)).sum() - 0.5 * X.shape[0] * math.log(2 * math.pi)


def _cholesky(K: torch.Tensor) -> torch.Tensor:
    L, info = torch.linalg.cholesky_ex(K)
    jitter = 1e-8
    while int(info) != 0 and jitter < 1.0:  # numerically singular: add jitter until it factors
        eye = torch.eye(K.shape[0], dtype=K.dtype, device=K.device)
        L, info = torch.linalg.cholesky_ex(K + jitter * eye)
        jitter *= 10
    return L


def lml_and_grad(log_ls: np.ndarray, X: np.ndarray, r: np.ndarray, nu: float, alpha: float) -> tuple[float, np.ndarray]:
    """Log marginal likelihood of the GP and its gradient w.r.t. log length scales (numpy, float64).

    With D_i the coordinate differences and d the scaled distance, dK/d log l_i = g(d)·D_i²/l_i², where
    g = 3 exp(−√3 d) for ν = 1.5 and g = (5/3)(1 + √5 d) exp(−√5 d) for ν = 2.5 (no singularity at d = 0);
    d LML/dθ = ½ tr((a aᵀ − K⁻¹) dK/dθ) with a = K⁻¹ r.
    """
    ls = np.exp(log_ls)
    q = (X[:, None, :] - X[None, :, :]) ** 2 / ls**2  # (n, n, 3): D_i^2 / l_i^2
    d = np.sqrt(q.sum(-1))
    if nu == 1.5:
        e = np.exp(-math.sqrt(3.0) * d)
        K = (1.0 + math.sqrt(3.0) * d) * e
        g = 3.0 * e
    else:
        e = np.exp(-math.sqrt(5.0) * d)
        K = (1.0 + math.sqrt(5.0) * d + 5.0 * d * d / 3.0) * e
        g = (5.0 / 3.0) * (1.0 + math.sqrt(5.0) * d) * e
    n = X.shape[0]
    K[np.diag_indices(n)] += alpha
    try:
        L = np.linalg.cholesky(K)
    except np.linalg.LinAlgError:
        return -np.inf, np.zeros(3)
    a = _chol_solve(L, r)
    lml = -0.5 * float(r @ a) - float(np.log(np.diag(L)).sum()) - 0.5 * n * math.log(2 * math.pi)
    Kinv = _chol_solve(L, np.eye(n))
    W = np.outer(a, a) - Kinv  # (n, n)
    grad = 0.5 * np.einsum("ij,ijk->k", W * g, q)
    return lml, grad


def _chol_solve(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.linalg import solve_triangular

    return solve_triangular(L.T, solve_triangular(L, b, lower=True), lower=False)


def _single_threaded_blas():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only a speed matter
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def refit_length_scales(X: torch.Tensor, r: torch.Tensor, ls: torch.Tensor, nu: float, alpha: float,
                        bounds: tuple[float, float] = LENGTH_BOUNDS, max_iter: int = 50) -> torch.Tensor:
    """Maximise the log marginal likelihood over the length scales within ``bounds``, warm-started at ``ls``.

    L-BFGS-B (scipy) on log ℓ with the analytic gradient, one start (as scikit-learn's GP does without
    restarts); deterministic. Runs on the CPU in float64 (n is small). Returns ``ls`` unchanged when the
    optimiser does not improve the likelihood.
    """
    from scipy.optimize import minimize

    Xn = X.detach().cpu().double().numpy()
    rn = r.detach().cpu().double().numpy()
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    x0 = np.clip(np.log(ls.detach().cpu().double().numpy()), lo, hi)
    with _single_threaded_blas():
        start, _ = lml_and_grad(x0, Xn, rn, nu, alpha)

    def fun(t):
        v, g = lml_and_grad(t, Xn, rn, nu, alpha)
        if not np.isfinite(v):
            return 1e25, np.zeros_like(t)
        return -v, -g

    with _single_threaded_blas():  # n x n algebra: threading only costs here (much, on a busy machine)
        res = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=[(lo, hi)] * 3, options={"maxiter": max_iter})
    if not np.isfinite(res.fun) or -res.fun < start or not np.isfinite(res.x).all():
        return ls
    return torch.tensor(np.exp(res.x), dtype=torch.float64, device=ls.device)
