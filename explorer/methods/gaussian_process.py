"""The Gaussian process of BOREx (docs/methods.md §5): exact regression on a handful of probes in (y, x, s).

Model: r = m + f(u) + ε with f ~ GP(0, σ_f² C_ν(u, u'; ℓ)), ε ~ N(0, σ_n²). C_ν is the Matérn correlation
(ν = 1.5 or 2.5) with ARD length scales ℓ = (ℓ_y, ℓ_x, ℓ_s). BOREx gives the coordinates u as fractions of the
image's shorter side, so ℓ = 0.1 means "a tenth of the image" at every input size.

Hyperparameters θ = (log σ_f, log ℓ_y, log ℓ_x, log ℓ_s, log σ_n) are fitted by maximising the log marginal
likelihood plus a weak log-normal prior on each (a MAP estimate; ``prior=False`` gives plain maximum likelihood),
within bounds, by L-BFGS-B with the analytic gradient, from the previous values and from the prior's medians
(the better of the two wins). The constant mean m is profiled out: for given θ its best value is the generalised
least-squares estimate m̂ = 1ᵀK⁻¹r / 1ᵀK⁻¹1, and the gradient at m̂ is the gradient with m held fixed
(envelope theorem). Without a mean the residuals' offset (window scores are mostly negative on photos) can only
be explained by an ever longer length scale, which is why the earlier fit sat on its upper bound.

``matern_`` is the in-place correlation used over BOREx's whole grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

# Bounds and log-normal priors (median, standard deviation of the log), in the units BOREx uses: score units
# for σ_f and σ_n (a score is a difference of two probabilities, in [-1, 1]), fractions of the image's shorter
# side for ℓ. The windows' half-widths are 0.13 .. 0.33 of the side and their centres span [0, 1], so a length
# scale of 0.15 (a window moved by about half its half-width changes its score noticeably) is the prior's
# median; its sd of 1 in log space lets the data move it by a factor e either way at little cost.
AMPLITUDE_BOUNDS = (1e-3, 5.0)
LENGTH_BOUNDS = (0.01, 3.0)
NOISE_BOUNDS = (1e-3, 1.0)
AMPLITUDE_PRIOR = (0.2, 1.5)
LENGTH_PRIOR = (0.15, 1.0)
NOISE_PRIOR = (0.02, 1.5)
NAMES = ("amplitude", "length_y", "length_x", "length_s", "noise")
RESTART_UNTIL = 50  # probes up to which every fit also restarts from the prior's medians
_ON_BOUND = 0.01  # a fitted value within 1 % of a bound (in log space) counts as on it


@dataclass(frozen=True)
class Hyper:
    """The GP's hyperparameters: amplitude σ_f, length scales ℓ (y, x, s), noise σ_n (a std), constant mean."""

    amplitude: float
    length_scales: tuple[float, float, float]
    noise: float
    mean: float = 0.0

    @property
    def theta(self) -> np.ndarray:
        return np.log([self.amplitude, *self.length_scales, self.noise])

    @classmethod
    def from_theta(cls, theta: np.ndarray, mean: float = 0.0) -> "Hyper":
        v = np.exp(np.asarray(theta, dtype=np.float64))
        return cls(float(v[0]), (float(v[1]), float(v[2]), float(v[3])), float(v[4]), float(mean))

    def on_bound(self) -> list[str]:
        """The names of the hyperparameters that sit on a bound (the fit could not place them inside)."""
        lo, hi = _bounds()
        return [n for n, t, a, b in zip(NAMES, self.theta, lo, hi) if t - a < _ON_BOUND or b - t < _ON_BOUND]

    def record(self) -> dict:
        return {"amplitude": self.amplitude, "length_scales": list(self.length_scales), "noise": self.noise,
                "mean": self.mean, "on_bound": self.on_bound()}


def prior_median() -> Hyper:
    return Hyper(AMPLITUDE_PRIOR[0], (LENGTH_PRIOR[0],) * 3, NOISE_PRIOR[0])


def _bounds() -> tuple[np.ndarray, np.ndarray]:
    b = [AMPLITUDE_BOUNDS, LENGTH_BOUNDS, LENGTH_BOUNDS, LENGTH_BOUNDS, NOISE_BOUNDS]
    return np.log([x[0] for x in b]), np.log([x[1] for x in b])


def _prior() -> tuple[np.ndarray, np.ndarray]:
    p = [AMPLITUDE_PRIOR, LENGTH_PRIOR, LENGTH_PRIOR, LENGTH_PRIOR, NOISE_PRIOR]
    return np.log([x[0] for x in p]), np.array([x[1] for x in p])


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
    """Exact GP regression on a handful of points: ``alpha`` is the noise variance σ_n² on the diagonal,
    ``amplitude`` σ_f, ``mean`` the constant prior mean (BOREx adds its prior map outside)."""

    def __init__(self, X: torch.Tensor, r: torch.Tensor, ls: torch.Tensor, nu: float, alpha: float,
                 amplitude: float = 1.0, mean: float = 0.0):
        self.X, self.r, self.nu, self.alpha = X, r, nu, alpha
        self.amplitude, self.mean = float(amplitude), float(mean)
        self.ls = ls.detach().clone()
        eye = torch.eye(X.shape[0], dtype=X.dtype, device=X.device)
        K = self.kernel(X, X, self.ls) + alpha * eye
        self.L = _cholesky(K)
        self.weights = torch.cholesky_solve((r - self.mean)[:, None], self.L)[:, 0]
        # L^-1 once, so that the variance over the grid is a matrix product (much faster than a
        # triangular solve with millions of right-hand sides); K is well conditioned thanks to the noise
        self.Linv = torch.linalg.solve_triangular(self.L, eye, upper=False)

    @classmethod
    def from_hyper(cls, X: torch.Tensor, r: torch.Tensor, hp: Hyper, nu: float) -> "GP":
        ls = torch.tensor(hp.length_scales, dtype=X.dtype, device=X.device)
        return cls(X, r, ls, nu, hp.noise ** 2, hp.amplitude, hp.mean)

    def kernel(self, A: torch.Tensor, B: torch.Tensor, ls: torch.Tensor) -> torch.Tensor:
        diff = (A[:, None, :] - B[None, :, :]) / ls
        return self.amplitude ** 2 * matern((diff * diff).sum(-1).clamp_min(0).sqrt(), self.nu)

    def predict(self, Xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation of the latent function at the rows of ``Xs``."""
        k = self.kernel(self.X, Xs, self.ls)
        v = self.Linv @ k
        return self.mean + self.weights @ k, (self.amplitude ** 2 - (v * v).sum(0)).clamp_min(0).sqrt()

    @staticmethod
    def log_marginal_likelihood(X, r, ls, nu, alpha, amplitude: float = 1.0, mean: float = 0.0) -> torch.Tensor:
        diff = (X[:, None, :] - X[None, :, :]) / ls
        # sqrt has an infinite derivative at 0 (the diagonal): add a tiny epsilon inside
        K = amplitude ** 2 * matern((diff * diff).sum(-1).add(1e-12).sqrt(), nu)
        K = K + alpha * torch.eye(X.shape[0], dtype=X.dtype, device=X.device)
        L = _cholesky(K)
        rc = r - mean
        a = torch.cholesky_solve(rc[:, None], L)[:, 0]
        return -0.5 * (rc * a).sum() - torch.log(torch.diagonal(L)).sum() - 0.5 * X.shape[0] * math.log(2 * math.pi)


def _cholesky(K: torch.Tensor) -> torch.Tensor:
    L, info = torch.linalg.cholesky_ex(K)
    jitter = 1e-8
    while int(info) != 0 and jitter < 1.0:  # numerically singular: add jitter until it factors
        eye = torch.eye(K.shape[0], dtype=K.dtype, device=K.device)
        L, info = torch.linalg.cholesky_ex(K + jitter * eye)
        jitter *= 10
    return L


# --------------------------------------------------------------------------- the fit
def lml_and_grad(theta: np.ndarray, X: np.ndarray, r: np.ndarray, nu: float,
                 fit_mean: bool = True) -> tuple[float, np.ndarray, float]:
    """Log marginal likelihood, its gradient w.r.t. θ = (log σ_f, log ℓ_y, log ℓ_x, log ℓ_s, log σ_n), and the
    mean it used (the GLS estimate when ``fit_mean``, else 0). Numpy, float64.

    With D_i the coordinate differences and d the scaled distance, ∂C/∂log ℓ_i = g(d)·D_i²/ℓ_i², where
    g = 3 exp(−√3 d) for ν = 1.5 and g = (5/3)(1 + √5 d) exp(−√5 d) for ν = 2.5 (no singularity at d = 0);
    ∂K/∂log σ_f = 2σ_f² C, ∂K/∂log σ_n = 2σ_n² I; ∂LML/∂θ = ½ tr((a aᵀ − K⁻¹) ∂K/∂θ) with a = K⁻¹(r − m).
    """
    amp2, ls, noise2 = math.exp(2 * theta[0]), np.exp(theta[1:4]), math.exp(2 * theta[4])
    q = (X[:, None, :] - X[None, :, :]) ** 2 / ls**2  # (n, n, 3): D_i^2 / l_i^2
    d = np.sqrt(q.sum(-1))
    if nu == 1.5:
        e = np.exp(-math.sqrt(3.0) * d)
        C = (1.0 + math.sqrt(3.0) * d) * e
        g = 3.0 * e
    else:
        e = np.exp(-math.sqrt(5.0) * d)
        C = (1.0 + math.sqrt(5.0) * d + 5.0 * d * d / 3.0) * e
        g = (5.0 / 3.0) * (1.0 + math.sqrt(5.0) * d) * e
    n = X.shape[0]
    K = amp2 * C
    K[np.diag_indices(n)] += noise2
    try:
        L = np.linalg.cholesky(K)
    except np.linalg.LinAlgError:
        return -np.inf, np.zeros(5), 0.0
    Kinv = _chol_inverse(L)
    mean = float(Kinv.sum(0) @ r / Kinv.sum()) if fit_mean else 0.0
    rc = r - mean
    a = Kinv @ rc
    lml = -0.5 * float(rc @ a) - float(np.log(np.diag(L)).sum()) - 0.5 * n * math.log(2 * math.pi)
    W = np.outer(a, a) - Kinv  # (n, n)
    grad = np.empty(5)
    grad[0] = float((W * C).sum()) * amp2  # ½ tr(W · 2σ_f² C)
    grad[1:4] = 0.5 * amp2 * np.einsum("ij,ijk->k", W * g, q)
    grad[4] = float(np.trace(W)) * noise2  # ½ tr(W · 2σ_n² I)
    return lml, grad, mean


def _chol_inverse(L: np.ndarray) -> np.ndarray:
    """K⁻¹ from K's lower Cholesky factor in one LAPACK call (potri), symmetrised."""
    from scipy.linalg import lapack

    inv, info = lapack.dpotri(L, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"potri failed ({info})")
    return np.tril(inv) + np.tril(inv, -1).T


def _single_threaded_blas():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only a speed matter
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def log_posterior(theta: np.ndarray, X: np.ndarray, r: np.ndarray, nu: float, prior: bool = True,
                  fit_mean: bool = True) -> tuple[float, np.ndarray, float]:
    """LML + log prior density of θ (up to a constant), its gradient, and the mean used."""
    v, g, mean = lml_and_grad(theta, X, r, nu, fit_mean)
    if prior and np.isfinite(v):
        mu, sd = _prior()
        z = (theta - mu) / sd
        v, g = v - 0.5 * float(z @ z), g - z / sd
    return v, g, mean


def fit_hyperparameters(X: torch.Tensor, r: torch.Tensor, nu: float, start: Hyper | None = None, *,
                        prior: bool = True, fit_mean: bool = True, max_iter: int = 100) -> Hyper:
    """The MAP (``prior``) or maximum-likelihood hyperparameters within the bounds.

    L-BFGS-B (scipy) on θ with the analytic gradient from ``start`` (a warm start: the previous fit) and from
    the prior's medians (while n <= ``RESTART_UNTIL``); the better end point wins, so a fit does not get stuck
    where an earlier, smaller data set left it. Beyond that the warm start alone (the fit then moves little from
    one probe to the next, and each start costs O(n³) per step). Runs on the CPU in float64; deterministic.
    """
    from scipy.optimize import minimize

    Xn = X.detach().cpu().double().numpy()
    rn = r.detach().cpu().double().numpy()
    lo, hi = _bounds()
    starts = [np.clip(start.theta, lo, hi)] if start is not None else []
    if not starts or Xn.shape[0] <= RESTART_UNTIL:
        starts.insert(0, prior_median().theta)

    def fun(t):
        v, g, _ = log_posterior(t, Xn, rn, nu, prior, fit_mean)
        if not np.isfinite(v):
            return 1e25, np.zeros_like(t)
        return -v, -g

    best = None
    with _single_threaded_blas():  # n x n algebra: threading only costs here (much, on a busy machine)
        for x0 in starts:
            res = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)),
                           options={"maxiter": max_iter})
            if np.isfinite(res.fun) and np.isfinite(res.x).all() and (best is None or res.fun < best.fun):
                best = res
        if best is None:
            return start or prior_median()
        _, _, mean = log_posterior(best.x, Xn, rn, nu, prior, fit_mean)
    return Hyper.from_theta(best.x, mean)
