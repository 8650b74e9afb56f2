"""BOREx's GP fit (docs/methods.md §5): hyperparameters recovered on synthetic objectives with known length
scales, agreement with scikit-learn's maximum-likelihood fit, the search's posterior step without a model, and the
manifest (fit, bounds, prior, gain)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.methods import explain
from explorer.methods import gaussian_process as gpm
from explorer.methods.borex_search import Search


def gp_sample(ls, amplitude, noise, n, nu, seed, mean=-0.3):
    """n windows spread over the image (centres in [0, 1]², half-widths 0.13 .. 0.34 of the side, as BOREx's)
    and a draw of a GP with the given hyperparameters at them: an objective whose length scales are known."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.uniform(0, 1, n), rng.uniform(0, 1, n), rng.uniform(30 / 224, 75 / 224, n)])
    gp = gpm.GP(torch.tensor(X), torch.zeros(n, dtype=torch.float64), torch.tensor(ls), nu, 0.0, amplitude)
    K = gp.kernel(gp.X, gp.X, gp.ls).numpy() + 1e-10 * np.eye(n)
    f = np.linalg.cholesky(K) @ rng.normal(size=n)
    return X, f + noise * rng.normal(size=n) + mean


@pytest.mark.parametrize("nu", [1.5, 2.5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_recovers_known_length_scales(nu, seed):
    truth = np.array([0.08, 0.2, 0.12])
    X, y = gp_sample(truth, 0.3, 0.02, 150, nu, seed)
    hp = gpm.fit_hyperparameters(torch.tensor(X), torch.tensor(y), nu, gpm.Hyper(0.2, (0.5, 0.5, 0.5), 0.1))
    ratio = np.array(hp.length_scales) / truth
    assert np.all((ratio > 1 / 1.5) & (ratio < 1.5)), (hp, ratio)
    assert 0.3 / 1.5 < hp.amplitude < 0.3 * 1.5
    assert hp.mean == pytest.approx(-0.3, abs=0.25)
    assert hp.on_bound() == []


def test_maximum_likelihood_matches_sklearn():
    """Without the priors and the mean, the fit is scikit-learn's: amplitude² × Matérn + white noise, maximum
    likelihood. Ours reaches at least its likelihood and lands on the same length scales."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    truth = np.array([0.1, 0.25, 0.15])
    X, y = gp_sample(truth, 0.3, 0.02, 100, 1.5, 7, mean=0.0)
    kernel = (ConstantKernel(0.04, (1e-6, 25.0)) * Matern([0.15] * 3, (0.01, 3.0), nu=1.5)
              + WhiteKernel(4e-4, (1e-6, 1.0)))
    sk = GaussianProcessRegressor(kernel, n_restarts_optimizer=1, random_state=0).fit(X, y)
    hp = gpm.fit_hyperparameters(torch.tensor(X), torch.tensor(y), 1.5, prior=False, fit_mean=False)
    ours, _, _ = gpm.lml_and_grad(hp.theta, X, y, 1.5, fit_mean=False)
    assert ours >= sk.log_marginal_likelihood_value_ - 1e-3
    np.testing.assert_allclose(hp.length_scales, sk.kernel_.k1.k2.length_scale, rtol=0.05)
    assert np.all(np.abs(np.log(np.array(hp.length_scales) / truth)) < np.log(1.5))


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(4)
    X, y = rng.uniform(0, 1, (25, 3)), rng.normal(size=25) * 0.2 - 0.3
    theta = np.log([0.3, 0.1, 0.2, 0.15, 0.05])
    for nu in (1.5, 2.5):
        _, grad, _ = gpm.log_posterior(theta, X, y, nu)
        eps = 1e-6
        num = [(gpm.log_posterior(theta + e, X, y, nu)[0] - gpm.log_posterior(theta - e, X, y, nu)[0]) / (2 * eps)
               for e in np.eye(5) * eps]
        np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-6)


def test_on_bound_is_reported():
    hp = gpm.Hyper(0.2, (gpm.LENGTH_BOUNDS[1], 0.1, 0.1), gpm.NOISE_BOUNDS[0])
    assert hp.on_bound() == ["length_y", "noise"]
    assert gpm.prior_median().on_bound() == []


def test_search_posterior_step_on_a_synthetic_objective():
    """No model: the objective is a bump centred at (0.3, 0.7) of the image whose width grows with the window,
    plus a little noise. After probes chosen by the UCB, the posterior mean interpolates the probes, the refined
    map peaks near the bump, and the fit is interior."""
    H = W = 48
    scales = (30.0, 45.0, 60.0, 75.0)
    noise = np.random.default_rng(5).normal(size=100) * 0.02

    def objective(j, y, x):
        width = 0.05 + 0.5 * scales[j] / 224
        return float(np.exp(-((y / H - 0.3) ** 2 + (x / W - 0.7) ** 2) / (2 * width**2))) - 0.4

    search = Search(torch.zeros(H, W), scales, 1.5, 2.0, gpm.prior_median(), jitter=(0.0, 0.0, 0.0))
    q = search.first_query()
    assert q == (0, H // 2, W // 2)
    for i in range(30):
        search.add(q, objective(*q) + noise[i])
        post = search.posterior()
        q = post.next_query
    X, r = search.design()
    mu, _ = post.gp.predict(X)
    np.testing.assert_allclose(mu.numpy(), r.numpy(), atol=0.08)
    y, x = np.unravel_index(int(torch.argmax(post.refined)), (H, W))
    assert abs(y / H - 0.3) < 0.15 and abs(x / W - 0.7) < 0.15
    assert search.hyper.on_bound() == [] and len(search.hypers) == 30
    assert float(post.uncertainty.min()) >= 0


def test_manifest_reports_fit_prior_and_gain(tiny_model):
    from tests.test_borex import blob, counting

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    m = counting(tiny_model)
    exp = explain("borex", m, image, params={"iterations": 3, "prior": "salient"},
                  priors={"salient": blob(32, 32, 10, 20, 6)}, seed=0)
    gp = exp.info["gp"]
    assert set(gp) == {"amplitude", "length_scales", "noise", "mean", "on_bound"} and len(gp["length_scales"]) == 3
    assert exp.info["prior"] == "the session's 'salient'"
    g = exp.info["gain"]
    assert g["protocol"] == "quick"
    assert g["gain"] == pytest.approx(g["refined"]["ins_minus_del"] - g["prior"]["ins_minus_del"])
    # quick protocol: 33 points per curve, two curves, two maps; plus 2 per iteration and the top-1 target
    assert m.count[0] == 1 + 2 * 3 + 4 * 33
    assert "the session's 'salient'" in exp.info["headline"] and "gain" in exp.info["headline"]
    off = explain("borex", tiny_model, image, params={"iterations": 3, "prior": "flat", "score_gain": "off"})
    assert "gain" not in off.info and "a flat map" in off.info["headline"]
