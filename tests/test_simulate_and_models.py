"""simulate() against the model's moments; model builders against independent references."""

import numpy as np
import pytest
import scipy.linalg
import statsmodels.api as sm
from statsmodels.tsa.arima_process import arma_generate_sample

from kflib import kalman_filter, models, simulate
from conftest import random_model


def test_simulate_shapes_and_reproducibility(rng):
    model = random_model(rng, 3, 2, r=1)
    u = rng.standard_normal((20, 1))
    x, y = simulate(model, 20, rng=np.random.default_rng(5), u=u)
    assert x.shape == (20, 3) and y.shape == (20, 2)
    x2, y2 = simulate(model, 20, rng=5, u=u)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)


def test_simulated_moments_match_the_model():
    rng = np.random.default_rng(11)
    model = random_model(rng, 2, 2, r=1)
    T, N = 6, 6000
    u = rng.standard_normal((T, 1))
    draws = [simulate(model, T, rng=rng, u=u) for _ in range(N)]
    xs = np.stack([d[0] for d in draws])
    ys = np.stack([d[1] for d in draws])
    # closed-form prior moments: m_t = F m_{t-1} + B u_t, P_t = F P F' + Q
    mean, P = model.x0, model.P0
    for t in range(T):
        mean = model.F @ mean + model.B @ u[t]
        P = model.F @ P @ model.F.T + model.Q
        se = np.sqrt(np.diag(P) / N)
        assert np.all(np.abs(xs[:, t].mean(0) - mean) < 5 * se)
        np.testing.assert_allclose(np.cov(xs[:, t].T), P, atol=0.08 * np.abs(P).max())
        Sy = model.H @ P @ model.H.T + model.R
        np.testing.assert_allclose(np.cov(ys[:, t].T), Sy, atol=0.08 * np.abs(Sy).max())
    # the filter run on all-missing data returns the same prior moments
    prior = kalman_filter(model, np.full((T, 2), np.nan), u=u)
    np.testing.assert_allclose(prior.x_pred[-1], mean, rtol=1e-12)
    np.testing.assert_allclose(prior.P_pred[-1], P, rtol=1e-12)
    assert prior.loglik == 0.0


def test_simulate_with_singular_Q():
    model = models.arima([0.5], [0.3], 1.0, d=1)       # Q has rank one
    x, y = simulate(model, 50, rng=0)
    np.testing.assert_allclose(y[:, 0], x[:, 0])        # observed without noise
    np.testing.assert_allclose(np.diff(x[:, 0]), x[1:, 1], atol=1e-12)


@pytest.mark.parametrize("dt,q", [(1.0, 0.05), (0.01, 2.0), (0.5, 1.0)])
def test_constant_velocity_Q_is_the_integrated_white_noise(dt, q):
    # Van Loan: discretise dx = A x dt + G dW with spectral density q
    A = np.array([[0.0, 1.0], [0.0, 0.0]])
    Gq = np.array([[0.0, 0.0], [0.0, q]])
    M = np.block([[-A, Gq], [np.zeros((2, 2)), A.T]]) * dt
    E = scipy.linalg.expm(M)
    F = E[2:, 2:].T
    Q = F @ E[:2, 2:]
    model = models.constant_velocity(dt, q, 9.0)
    np.testing.assert_allclose(model.F, F, atol=1e-14)
    np.testing.assert_allclose(model.Q, Q, rtol=1e-10)
    np.testing.assert_array_equal(model.H, [[1.0, 0.0]])
    np.testing.assert_array_equal(model.R, [[9.0]])


@pytest.mark.parametrize("phi,d,theta", [([0.6], 0, []), ([0.5, -0.2], 0, [0.4]),
                                         ([0.5, -0.2], 1, [0.4]), ([], 1, [0.3, -0.2]),
                                         ([0.3], 2, [0.5]), ([0.2, 0.1, -0.3], 1, [])])
def test_arima_loglik_matches_sarimax(phi, d, theta):
    rng = np.random.default_rng(len(phi) + 10 * d + 100 * len(theta))
    sigma2 = 0.7
    z = arma_generate_sample(np.r_[1, -np.asarray(phi)], np.r_[1, theta], 250,
                             scale=np.sqrt(sigma2), distrvs=rng.standard_normal)
    y = z
    for _ in range(d):
        y = np.concatenate([[rng.standard_normal()], y]).cumsum()
    res = sm.tsa.SARIMAX(y, order=(len(phi), d, len(theta)), trend="n",
                         simple_differencing=True).smooth(np.r_[phi, theta, sigma2])
    model = models.arima(phi, theta, sigma2, d=d, y_presample=y[:d])
    filt = kalman_filter(model, y[d:])
    np.testing.assert_allclose(filt.loglik, res.llf, rtol=1e-8)
    # one-step forecasts of the differenced series agree too:
    # Delta^d y_t = y_t + (terms in the past), so its forecast is yhat_t - y_t + Delta^d y_t
    dy = np.diff(y, d)
    yhat = (filt.x_pred @ model.H.T)[:, 0]
    np.testing.assert_allclose(yhat - y[d:] + dy, res.forecasts[0], rtol=1e-7, atol=1e-9)
