"""BOREx (docs/methods.md §5): GP parity with scikit-learn, chunked grid, probes, resume, priors and bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from explorer.core.errors import ExplorerError, FileError, ParamError, UnknownNameError
from explorer.methods import borex as bx
from explorer.methods import explain, run


# --------------------------------------------------------------------------- helpers
def counting(model):
    """A copy of ``model`` whose forward counts the images it scores (in ``.count[0]``)."""
    count = [0]
    inner = model.forward

    def fwd(x):
        count[0] += x.shape[0]
        return inner(x)

    m = dataclasses.replace(model, forward=fwd, _batch=None)
    m.count = count
    return m


def blob(h, w, cy, cx, sigma):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- GP maths
def test_box_mean_matches_brute_force():
    rng = np.random.default_rng(1)
    m = rng.normal(size=(9, 13)).astype(np.float32)
    got = bx.box_mean(torch.from_numpy(m), 2).numpy()
    for y in range(9):
        for x in range(13):
            ref = m[max(0, y - 2):y + 3, max(0, x - 2):x + 3].mean()
            assert got[y, x] == pytest.approx(ref, abs=1e-5)


@pytest.mark.parametrize("nu", [1.5, 2.5])
def test_gp_matches_sklearn(nu):
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import Matern

    rng = np.random.default_rng(2)
    X = rng.uniform(0, 50, (12, 3))
    r = rng.normal(size=12)
    ls = np.array([7.0, 11.0, 4.0])
    Xs = rng.uniform(0, 50, (40, 3))
    sk = GaussianProcessRegressor(Matern(length_scale=ls, nu=nu), alpha=0.01, optimizer=None).fit(X, r)
    mu_ref, sd_ref = sk.predict(Xs, return_std=True)
    gp = bx.GP(torch.tensor(X), torch.tensor(r), torch.tensor(ls), nu, 0.01)
    k = gp.kernel(gp.X, torch.tensor(Xs), gp.ls)
    mu = gp.weights @ k
    v = torch.linalg.solve_triangular(gp.L, k, upper=False)
    sd = (1 - (v * v).sum(0)).clamp_min(0).sqrt()
    np.testing.assert_allclose(mu.numpy(), mu_ref, atol=1e-8)
    np.testing.assert_allclose(sd.numpy(), sd_ref, atol=1e-6)
    lml = bx.GP.log_marginal_likelihood(gp.X, gp.r, gp.ls, nu, 0.01)
    assert float(lml) == pytest.approx(sk.log_marginal_likelihood_value_, abs=1e-5)


def test_refit_improves_likelihood_within_bounds():
    from explorer.methods import gaussian_process as gpm

    rng = np.random.default_rng(3)
    X = torch.tensor(rng.uniform(0, 1, (20, 3)))
    r = torch.sin(X[:, 0] / 0.06) + 0.05 * torch.tensor(rng.normal(size=20))
    h0 = gpm.Hyper(0.2, (0.15, 0.15, 0.15), 0.02)
    hp = gpm.fit_hyperparameters(X, r, 1.5, h0)
    lo, hi = gpm.LENGTH_BOUNDS
    assert all(lo - 1e-9 <= v <= hi + 1e-9 for v in hp.length_scales)
    before = bx.GP.log_marginal_likelihood(X, r, torch.tensor(h0.length_scales), 1.5, h0.noise**2, h0.amplitude)
    after = bx.GP.log_marginal_likelihood(X, r, torch.tensor(hp.length_scales), 1.5, hp.noise**2, hp.amplitude,
                                          hp.mean)
    assert float(after) > float(before)
    assert hp.length_scales[0] < hp.length_scales[1]  # the signal varies along y only


# --------------------------------------------------------------------------- the method
def test_probes_scores_and_first_query(model, chelsea):
    """Real model: the first window is at the prior's maximum with the smallest size, and its score is
    P_c(only the window kept) - P_c(window removed), two forwards per iteration."""
    prior = blob(224, 224, 100, 120, 20)
    m = counting(model)
    exp = explain("borex", m, chelsea, params={"iterations": 2, "prior": "salient", "score_gain": "off"},
                  priors={"salient": prior},
                  seed=0)
    probes = exp.info["probes"]
    assert len(probes) == 2 and exp.info["forwards"] == 4 and m.count[0] == 4 + 1  # +1: top-1 target
    y, x, s, score = probes[0]
    assert (y, x, s) == (100, 120, 30)
    from explorer.methods.base import prepare_context

    ctx = prepare_context(model, chelsea)
    keep = torch.zeros(1, 1, 224, 224)
    keep[..., 70:130, 90:150] = 1
    p = model.scores(torch.cat([ctx.x * keep, ctx.x * (1 - keep)]))[:, ctx.target]
    assert score == pytest.approx(float(p[0] - p[1]), abs=1e-5)
    for layer in ("refined", "uncertainty"):
        assert np.isfinite(exp.raw[layer]).all()
    assert (exp.raw["uncertainty"] >= 0).all()
    assert not exp.signed["refined"] and not exp.signed["uncertainty"]  # a ranking (see test_signed_zero)


def test_every_iteration_yields_maps_and_probes(tiny_model, tiny_image):
    ups = list(run("borex", tiny_model, tiny_image, params={"iterations": 4, "prior": "flat", "score_gain": "off"},
               seed=1))
    its = [u for u in ups if "iteration" in u.explanation.info]
    assert [u.explanation.info["iteration"] for u in its[:4]] == [1, 2, 3, 4]
    assert [len(u.explanation.info["probes"]) for u in its[:4]] == [1, 2, 3, 4]
    assert ups[0].progress == pytest.approx(0.25) and ups[-1].done
    # flat prior: the first window is at the centre, smallest half-width (30 * 32/224 -> 4 px)
    assert ups[0].explanation.info["probes"][0][:3] == (16, 16, 4)
    assert set(ups[-1].explanation.raw) == {"refined", "uncertainty"}


def test_chunked_grid_equals_unchunked(tiny_model, tiny_image, monkeypatch):
    params = {"iterations": 6, "prior": "flat", "refit": False}
    a = explain("borex", tiny_model, tiny_image, params=params, seed=0)
    from explorer.methods import borex_search

    monkeypatch.setattr(borex_search, "_CHUNK_ELEMENTS", 50)  # a few rows per chunk
    b = explain("borex", tiny_model, tiny_image, params=params, seed=0)
    assert [p[:3] for p in a.info["probes"]] == [p[:3] for p in b.info["probes"]]
    for layer in a.raw:
        np.testing.assert_allclose(a.raw[layer], b.raw[layer], atol=1e-5)


def test_resume_30_plus_20_equals_50(tiny_model, tiny_image):
    prior = {"salient": blob(32, 32, 10, 20, 6)}
    kw = dict(params={"prior": "salient", "score_gain": "off"}, priors=prior, seed=5)
    full = explain("borex", tiny_model, tiny_image, **{**kw, "params": {**kw["params"], "iterations": 50}})
    first = explain("borex", tiny_model, tiny_image, **{**kw, "params": {**kw["params"], "iterations": 30}})
    m = counting(tiny_model)
    resumed = explain("borex", m, tiny_image, **{**kw, "params": {**kw["params"], "iterations": 50}},
                      state=first.info["state"])
    assert m.count[0] - 1 == 2 * 20  # -1: the top-1 prediction when resolving the target
    assert resumed.info["forwards"] == 40 and resumed.info["resume"].startswith("resumed from 30")
    assert resumed.info["probes"] == full.info["probes"]
    np.testing.assert_allclose(resumed.info["length_scales"], full.info["length_scales"], rtol=1e-9)
    for layer in full.raw:
        np.testing.assert_allclose(resumed.raw[layer], full.raw[layer], rtol=1e-5, atol=1e-6)
    # fewer iterations from a longer state: an exact replay without forwards, the state keeps all 50
    m.count[0] = 0
    replay = explain("borex", m, tiny_image, **{**kw, "params": {**kw["params"], "iterations": 30}},
                     state=full.info["state"])
    assert m.count[0] == 1 and replay.info["probes"] == first.info["probes"]
    np.testing.assert_allclose(replay.raw["refined"], first.raw["refined"], rtol=1e-5, atol=1e-6)
    assert len(replay.info["state"]["probes"]) == 50
    # the state is picklable
    import pickle

    assert len(pickle.loads(pickle.dumps(full.info["state"]))["probes"]) == 50


def test_resume_refused_when_something_differs(tiny_model, tiny_image):
    prior = {"salient": blob(32, 32, 10, 20, 6)}
    first = explain("borex", tiny_model, tiny_image, params={"prior": "salient", "iterations": 3,
                                                             "score_gain": "off"}, priors=prior)
    other = explain("borex", tiny_model, tiny_image, params={"prior": "salient", "iterations": 5,
                                                             "score_gain": "off"},
                    priors=prior, target=3, state=first.info["state"])
    assert "target" in other.info["resume"] and other.info["forwards"] == 10
    other = explain("borex", tiny_model, tiny_image, params={"prior": "salient", "iterations": 5, "kappa": 2,
                                                             "score_gain": "off"},
                    priors=prior, state=first.info["state"])
    assert "kappa" in other.info["resume"] and other.info["forwards"] == 10


def test_method_prior_is_run_and_reused_on_resume(tiny_model, tiny_image):
    params = {"prior": "rise", "prior_params": "n=20,cells=4", "iterations": 2, "score_gain": "off"}
    ups = list(run("borex", tiny_model, tiny_image, params=params, seed=2))
    assert ups[0].explanation.info.get("stage") == "prior" and ups[0].progress < 0.2 + 1e-9
    final = ups[-1].explanation
    assert final.info["prior_source"] == "method"
    m = counting(tiny_model)
    resumed = explain("borex", m, tiny_image, params={**params, "iterations": 4}, seed=2,
                      state=final.info["state"])
    assert m.count[0] - 1 == 4  # no RISE forwards again: only the two new queries
    assert resumed.info["resume"].startswith("resumed from 2")


# --------------------------------------------------------------------------- priors and bad input
def test_prior_file_resampled_and_bad_files_refused(tiny_model, tiny_image, tmp_path):
    small = tmp_path / "small.npy"
    np.save(small, blob(7, 9, 3, 6, 2)[None])  # (1, 7, 9): squeezed, then resampled to 32x32
    exp = explain("borex", tiny_model, tiny_image, params={"prior_file": str(small), "iterations": 2})
    assert exp.raw["refined"].shape == (32, 32) and exp.info["prior_source"] == "file"
    assert exp.info["probes"][0][:2] == pytest.approx((int(round(3 * 32 / 7)), int(round(6 * 32 / 9))), abs=3)
    cube = tmp_path / "cube.npy"
    np.save(cube, np.zeros((3, 8, 8), np.float32))
    with pytest.raises(FileError, match=r"cube\.npy.*2-D"):
        explain("borex", tiny_model, tiny_image, params={"prior_file": str(cube), "iterations": 1})
    text = tmp_path / "notes.npy"
    text.write_text("not an array")
    with pytest.raises(FileError, match=r"notes\.npy"):
        explain("borex", tiny_model, tiny_image, params={"prior_file": str(text), "iterations": 1})
    with pytest.raises(FileError, match=r"missing\.npy"):
        explain("borex", tiny_model, tiny_image, params={"prior_file": str(tmp_path / "missing.npy"), "iterations": 1})
    arc = tmp_path / "two.npz"
    np.savez(arc, a=np.zeros((4, 4)))
    with pytest.raises(FileError, match=r"two\.npz.*npz"):
        explain("borex", tiny_model, tiny_image, params={"prior_file": str(arc), "iterations": 1})


@pytest.mark.parametrize("value", [0.0, 3.5])
def test_constant_prior_works(tiny_model, tiny_image, value):
    prior = {"salient": np.full((32, 32), value, np.float32)}
    exp = explain("borex", tiny_model, tiny_image, params={"prior": "salient", "iterations": 3}, priors=prior)
    assert all(np.isfinite(m).all() for m in exp.raw.values())
    assert exp.info["probes"][0][:2] == (16, 16)
    assert exp.info["prior_scale"] == pytest.approx(0.1 / value if value else 1.0)


def test_prior_of_other_shape_from_session_is_resampled(tiny_model, tiny_image):
    exp = explain("borex", tiny_model, tiny_image, params={"prior": "gradcam_like", "iterations": 1},
                  priors={"gradcam_like": blob(7, 7, 1, 5, 1.0)})
    y, x = exp.info["probes"][0][:2]
    assert y < 12 and x > 18


def test_bad_parameters_refused(tiny_model, tiny_image):
    with pytest.raises(ParamError, match="between 1 and 500"):
        explain("borex", tiny_model, tiny_image, params={"iterations": 501})
    with pytest.raises(ParamError, match="between 1 and 500"):
        explain("borex", tiny_model, tiny_image, params={"iterations": 0})
    with pytest.raises(ParamError, match="length_scales"):
        explain("borex", tiny_model, tiny_image, params={"length_scales": "12,12"})
    with pytest.raises(ParamError, match="scales"):
        explain("borex", tiny_model, tiny_image, params={"scales": "30,-4"})
    with pytest.raises(UnknownNameError, match="no_such_method"):
        explain("borex", tiny_model, tiny_image, params={"prior": "no_such_method", "iterations": 1})
    with pytest.raises(ParamError, match="refine its own"):
        explain("borex", tiny_model, tiny_image, params={"prior": "borex", "iterations": 1})
    with pytest.raises(ExplorerError, match="2-D"):
        explain("borex", tiny_model, tiny_image, params={"prior": "bad", "iterations": 1},
                priors={"bad": np.zeros((2, 3, 4))})
