"""EM: monotone likelihood, recovery of true parameters, agreement with direct MLE."""

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.tsa.statespace.mlemodel import MLEModel

from kflib import ConvergenceWarning, LinearGaussianSSM, em, kalman_filter, models, simulate
from conftest import random_cov, random_model


@pytest.mark.parametrize("seed", range(12))
def test_loglik_never_decreases(seed):
    rng = np.random.default_rng(seed)
    n, m = 1 + seed % 3, 1 + seed % 2
    truth = random_model(rng, n, m)
    _, y = simulate(truth, 80, rng=rng)
    if seed % 2:
        y[rng.random(y.shape) < 0.15] = np.nan
    start = truth.replace(Q=random_cov(rng, n), R=random_cov(rng, m))
    learn = [("Q", "R"), ("F", "Q", "R"), ("Q", "R", "x0", "P0")][seed % 3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = em(y, start, n_iter=25, tol=0.0, learn=learn)
    ll = fit.loglik_history
    assert len(ll) == 26
    assert np.all(np.diff(ll) >= -1e-8 * np.abs(ll[:-1])), np.diff(ll)
    # the history is the filter's log-likelihood of each model
    assert np.isclose(ll[-1], kalman_filter(fit.model, y).loglik, rtol=1e-12)


def test_learning_H_is_monotone_too(rng):
    truth = random_model(rng, 2, 2)
    _, y = simulate(truth, 100, rng=rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = em(y, truth.replace(H=truth.H + 0.3), n_iter=15, tol=0.0, learn=("H", "R"))
    assert np.all(np.diff(fit.loglik_history) >= -1e-8 * np.abs(fit.loglik_history[:-1]))


def test_recovers_true_Q_and_R_from_many_series():
    rng = np.random.default_rng(7)
    truth = LinearGaussianSSM(F=[[0.9, 0.2], [0.0, 0.7]], H=[[1.0, 0.0], [0.5, 1.0]],
                              Q=[[0.5, 0.1], [0.1, 0.3]], R=[[1.0, 0.2], [0.2, 0.6]],
                              x0=[0.0, 0.0], P0=np.eye(2))
    ys = np.stack([simulate(truth, 100, rng=rng)[1] for _ in range(100)])   # 10,000 steps
    start = truth.replace(Q=np.eye(2), R=np.eye(2))
    fit = em(ys, start, n_iter=500, tol=1e-9)
    assert fit.converged
    # a variance estimated from N = 10,000 steps has a relative sampling error ~ sqrt(2/N);
    # allow about four of them (the state noise is seen only through y: looser)
    np.testing.assert_allclose(fit.model.R, truth.R, atol=0.08)
    np.testing.assert_allclose(fit.model.Q, truth.Q, atol=0.08)


class KnownInitLocalLevel(MLEModel):
    """statsmodels local level with kflib's known initialisation, params (q, r)."""

    def __init__(self, y, x0, P0):
        super().__init__(y, k_states=1, k_posdef=1)
        self.x0, self.P0 = x0, P0
        self.ssm["design"] = [[1.0]]
        self.ssm["transition"] = [[1.0]]
        self.ssm["selection"] = [[1.0]]

    @property
    def start_params(self):
        return np.array([1.0, 1.0]) * np.nanvar(np.diff(self.endog[:, 0]))

    def transform_params(self, p):
        return p ** 2

    def untransform_params(self, p):
        return p ** 0.5

    def update(self, params, **kwargs):
        params = super().update(params, **kwargs)
        q, r = params
        self.ssm["state_cov", 0, 0] = q
        self.ssm["obs_cov", 0, 0] = r
        self.ssm.initialize_known(np.array([self.x0]), np.array([[self.P0 + q]]))


def test_em_optimum_agrees_with_direct_mle_on_nile():
    nile = sm.datasets.nile.load_pandas().data["volume"].to_numpy(float)
    x0, P0 = nile[0], 1e4
    start = models.local_level(q=1000.0, r=10000.0, x0=x0, P0=P0)
    fit = em(nile, start, n_iter=2000, tol=1e-12)
    mle = KnownInitLocalLevel(nile, x0, P0).fit(disp=False, method="nm", maxiter=4000,
                                                 xtol=1e-10, ftol=1e-12)
    mle = KnownInitLocalLevel(nile, x0, P0).fit(mle.params, disp=False, method="bfgs")
    assert np.isclose(fit.loglik, mle.llf, rtol=1e-4)
    q, r = mle.params
    np.testing.assert_allclose([fit.model.Q[0, 0], fit.model.R[0, 0]], [q, r], rtol=0.02)


def test_missing_data_M_step_matches_dense_expectation():
    """With correlated R and a missing component, one M-step for R equals the
    brute-force expectation E[(y_t - H x_t)(.)'] under the joint posterior of
    the states and the missing observation (sampled exactly by Monte Carlo is
    too slow; use the closed form of conditioning the joint of (x_t, y_t))."""
    rng = np.random.default_rng(3)
    n, m, T = 2, 2, 5
    model = random_model(rng, n, m)
    _, y = simulate(model, T, rng=rng)
    y[2, 1] = np.nan
    from kflib.em import _m_step
    y3 = y[None]
    filt = kalman_filter(model, y3)
    R_new = _m_step(model, y3, None, filt, ("R",)).R
    # reference: condition the joint Gaussian of all x_t and all y_t (incl. missing)
    from test_filter_smoother_vs_dense import condition, joint_gaussian
    mean, cov = joint_gaussian(model, T)
    nx = (T + 1) * n
    obs = ~np.isnan(y.ravel())
    idx = nx + np.flatnonzero(obs)
    mu, Sig = condition(mean, cov, idx, y.ravel()[obs])
    total = np.zeros((m, m))
    for t in range(1, T + 1):
        # v_t = y_t - H x_t as a linear map of the joint vector
        A = np.zeros((m, len(mean)))
        A[:, nx + (t - 1) * m: nx + t * m] = np.eye(m)
        A[:, t * n:(t + 1) * n] -= model.H
        ev = A @ mu
        total += np.outer(ev, ev) + A @ Sig @ A.T
    np.testing.assert_allclose(R_new, total / T, rtol=1e-9)


def test_convergence_warning_says_what_to_try(rng):
    model = models.local_level(1.0, 1.0)
    _, y = simulate(model, 50, rng=rng)
    with pytest.warns(ConvergenceWarning, match="raise n_iter, loosen tol"):
        fit = em(y, model.replace(Q=[[20.0]]), n_iter=2, tol=1e-12)
    assert not fit.converged and fit.n_iter == 2


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(learn=("Z",)), ValueError, "learn must name some of F, H, Q, R, x0, P0"),
    (dict(n_iter=0), ValueError, "n_iter must be at least 1"),
    (dict(tol=-1.0), ValueError, "tol must be a non-negative number"),
])
def test_em_argument_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        em(np.zeros((5, 1)), models.local_level(1.0, 1.0), **kwargs)


def test_em_refuses_H_with_missing_and_time_varying_targets():
    with pytest.raises(ValueError, match="learning H needs complete observations"):
        em(np.array([[1.0], [np.nan]]), models.local_level(1.0, 1.0), learn=("H",))
    tv = LinearGaussianSSM(F=np.ones((3, 1, 1)), H=1, Q=np.ones((3, 1, 1)), R=1, x0=0, P0=1)
    with pytest.raises(ValueError, match="Q is time-varying"):
        em(np.zeros((3, 1)), tv, learn=("Q",))
