"""Filter and smoother against brute-force conditioning of the joint Gaussian.

Every variable (x_0, x_1..x_T, y_1..y_T) is an affine function of the
independent Gaussians (x_0, w_1..w_T, v_1..v_T); build that map, form the
joint mean and covariance, and condition on the observed components.
"""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from kflib import kalman_filter, rts_smoother, simulate
from conftest import random_model


def joint_gaussian(model, T, u=None):
    n, m = model.n, model.m
    at = lambda A, t: A if A.ndim == 2 else A[t]          # noqa: E731
    ne = n + T * n + T * m                                # x_0, w's, v's
    Mx = np.zeros((T + 1, n, ne))                         # x_t as a map of e
    cx = np.zeros((T + 1, n))
    Mx[0][:, :n] = np.eye(n)
    cx[0] = model.x0
    for t in range(1, T + 1):
        F = at(model.F, t - 1)
        Mx[t] = F @ Mx[t - 1]
        Mx[t][:, n + (t - 1) * n: n + t * n] += np.eye(n)
        cx[t] = F @ cx[t - 1]
        if model.B is not None:
            cx[t] += at(model.B, t - 1) @ u[t - 1]
    My = np.zeros((T, m, ne))
    cy = np.zeros((T, m))
    for t in range(1, T + 1):
        H = at(model.H, t - 1)
        My[t - 1] = H @ Mx[t]
        My[t - 1][:, n + T * n + (t - 1) * m: n + T * n + t * m] += np.eye(m)
        cy[t - 1] = H @ cx[t]
    cov_e = np.zeros((ne, ne))
    cov_e[:n, :n] = model.P0
    for t in range(T):
        i = n + t * n
        cov_e[i:i + n, i:i + n] = at(model.Q, t)
        j = n + T * n + t * m
        cov_e[j:j + m, j:j + m] = at(model.R, t)
    M = np.concatenate([Mx.reshape(-1, ne), My.reshape(-1, ne)])
    mean = np.concatenate([cx.ravel(), cy.ravel()])
    return mean, M @ cov_e @ M.T


def condition(mean, cov, idx_obs, values):
    """Posterior mean and covariance of all variables given z[idx_obs] = values."""
    S = cov[np.ix_(idx_obs, idx_obs)]
    C = cov[:, idx_obs]
    gain = np.linalg.solve(S, C.T).T
    return mean + gain @ (values - mean[idx_obs]), cov - gain @ C.T


@pytest.mark.parametrize("n,m,r,tv,seed", [(1, 1, 0, False, 1), (2, 1, 0, False, 2),
                                           (3, 2, 1, False, 3), (2, 3, 0, True, 4),
                                           (4, 2, 2, True, 5)])
def test_against_dense_conditioning(n, m, r, tv, seed):
    rng = np.random.default_rng(seed)
    T = 8
    model = random_model(rng, n, m, r=r, T=T, tv=tv)
    u = rng.standard_normal((T, r)) if r else None
    _, y = simulate(model, T, rng=rng, u=u)
    y[2, 0] = np.nan
    y[5] = np.nan
    mean, cov = joint_gaussian(model, T, u)
    nx = (T + 1) * n
    obs = ~np.isnan(y.ravel())
    idx_y = nx + np.flatnonzero(obs)
    yv = y.ravel()[obs]

    filt = kalman_filter(model, y, u=u)
    smooth = rts_smoother(model, filt)

    # log-likelihood: the density of the observed components
    ll = multivariate_normal(mean[idx_y], cov[np.ix_(idx_y, idx_y)]).logpdf(yv)
    np.testing.assert_allclose(filt.loglik, ll, rtol=1e-10)

    # smoothing: condition on everything
    mu, Sig = condition(mean, cov, idx_y, yv)
    xs = mu[:nx].reshape(T + 1, n)
    Ps = lambda a, b: Sig[a * n:(a + 1) * n, b * n:(b + 1) * n]   # noqa: E731
    np.testing.assert_allclose(smooth.x0_smooth, xs[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(smooth.P0_smooth, Ps(0, 0), rtol=1e-9, atol=1e-9)
    for t in range(1, T + 1):
        np.testing.assert_allclose(smooth.x_smooth[t - 1], xs[t], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(smooth.P_smooth[t - 1], Ps(t, t), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(smooth.P_lag1[t - 1], Ps(t, t - 1), rtol=1e-9, atol=1e-9)

    # filtering: condition on y_1..y_t only
    for t in range(1, T + 1):
        keep = idx_y < nx + t * m
        mu_t, Sig_t = condition(mean, cov, idx_y[keep], yv[keep])
        np.testing.assert_allclose(filt.x_filt[t - 1], mu_t[t * n:(t + 1) * n],
                                   rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(filt.P_filt[t - 1],
                                   Sig_t[t * n:(t + 1) * n, t * n:(t + 1) * n],
                                   rtol=1e-9, atol=1e-9)
