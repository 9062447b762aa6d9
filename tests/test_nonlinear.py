"""EKF and UKF: exact on linear models, Jacobian checks, sigma points, long runs, errors."""

import numpy as np
import pytest

from kflib import kalman_filter, rts_smoother, simulate
from kflib.nonlinear import (NonlinearSSM, check_jacobian, ekf_filter, ekf_smoother,
                             numerical_jacobian, sigma_points, torch_jacobian,
                             ukf_filter, ukf_smoother, unscented_transform)
from conftest import random_cov, random_model

FIELDS = ("x_pred", "P_pred", "x_filt", "P_filt", "S", "K")


def as_nonlinear(lin, jacobians=True):
    F, H = lin.F, lin.H
    return NonlinearSSM(f=lambda x: F @ x, h=lambda x: H @ x, Q=lin.Q, R=lin.R,
                        x0=lin.x0, P0=lin.P0,
                        F_jac=(lambda x: F) if jacobians else None,
                        H_jac=(lambda x: H) if jacobians else None)


@pytest.mark.parametrize("n,m,seed", [(1, 1, 0), (2, 1, 1), (3, 2, 2), (4, 3, 3)])
@pytest.mark.parametrize("which", ["ekf", "ekf-fd", "ukf", "ukf-small-alpha"])
def test_equal_to_kalman_filter_on_a_linear_model(n, m, seed, which):
    rng = np.random.default_rng(seed)
    lin = random_model(rng, n, m)
    _, y = simulate(lin, 40, rng=rng)
    y[5] = np.nan
    y[rng.random(y.shape) < 0.1] = np.nan
    ref = kalman_filter(lin, y)
    ref_s = rts_smoother(lin, ref)
    model = as_nonlinear(lin, jacobians=(which != "ekf-fd"))
    if which.startswith("ekf"):
        got = ekf_filter(model, y)
        got_s = ekf_smoother(model, got)
        tol = 1e-10 if which == "ekf" else 1e-7        # finite differences: ~eps^2
    else:
        kw = dict(alpha=0.5, kappa=1.0) if which == "ukf-small-alpha" else {}
        got = ukf_filter(model, y, **kw)
        got_s = ukf_smoother(model, got, **kw)
        tol = 1e-10
    for name in FIELDS:
        a, b = getattr(got, name), getattr(ref, name)
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max(), err_msg=name)
    np.testing.assert_allclose(got.loglik, ref.loglik, rtol=tol)
    obs = ~np.isnan(y)
    np.testing.assert_allclose(got.innovations[obs], ref.innovations[obs], rtol=tol,
                               atol=tol * np.nanmax(np.abs(ref.innovations)))
    for name in ("x_smooth", "P_smooth", "P_lag1", "x0_smooth", "P0_smooth"):
        a, b = getattr(got_s, name), getattr(ref_s, name)
        np.testing.assert_allclose(a, b, rtol=tol * 10, atol=tol * 10 * np.abs(b).max(),
                                   err_msg=name)


def test_unscented_transform_exact_for_linear_maps(rng):
    for n, k in [(1, 1), (3, 2), (4, 5)]:
        A, b = rng.standard_normal((k, n)), rng.standard_normal(k)
        x, P = rng.standard_normal(n), random_cov(rng, n)
        for kw in ({}, dict(alpha=1e-3), dict(alpha=0.3, beta=0.0, kappa=2.0)):
            mean, cov, cross = unscented_transform(lambda z: A @ z + b, x, P, **kw)
            np.testing.assert_allclose(mean, A @ x + b, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(cov, A @ P @ A.T, rtol=1e-6, atol=1e-8)
            np.testing.assert_allclose(cross, P @ A.T, rtol=1e-6, atol=1e-8)


def test_sigma_points_reproduce_mean_and_covariance(rng):
    x, P = rng.standard_normal(3), random_cov(rng, 3)
    X, Wm, Wc = sigma_points(x, P)
    assert X.shape == (7, 3)
    np.testing.assert_allclose(Wm.sum(), 1.0)
    np.testing.assert_allclose(Wm @ X, x)
    np.testing.assert_allclose((Wc[:, None] * (X - x)).T @ (X - x), P,
                               rtol=1e-12, atol=1e-12)


def test_unscented_transform_second_order_exact_for_a_quadratic(rng):
    # E[z^2] for z ~ N(mu, s2) is mu^2 + s2: sigma points get it exactly
    mean, _, _ = unscented_transform(lambda z: z**2, np.array([0.7]), np.array([[0.3]]))
    np.testing.assert_allclose(mean, [0.7**2 + 0.3])


def radar_h(x):
    px, py = x[0], x[2]
    return np.array([np.hypot(px, py), np.arctan2(py, px)])


def radar_H(x):
    px, py = x[0], x[2]
    r2 = px * px + py * py
    r = np.sqrt(r2)
    return np.array([[px / r, 0, py / r, 0], [-py / r2, 0, px / r2, 0]])


def test_jacobian_checker_accepts_right_and_catches_wrong():
    x = np.array([30.0, 1.0, 40.0, -2.0])
    assert check_jacobian(radar_h, radar_H, x) < 1e-8
    wrong = lambda x: radar_H(x) * np.array([[1.0], [-1.0]])    # noqa: E731  (sign error in the bearing row)
    assert check_jacobian(radar_h, wrong, x) > 1e-3
    swapped = lambda x: radar_H(x)[:, [2, 1, 0, 3]]              # noqa: E731  (px and py swapped)
    assert check_jacobian(radar_h, swapped, x) > 1e-3
    with pytest.raises(ValueError, match=r"the Jacobian has shape \(4, 2\); the function needs \(2, 4\)"):
        check_jacobian(radar_h, lambda x: radar_H(x).T, x)


def test_torch_jacobian_matches_analytic():
    torch = pytest.importorskip("torch")
    x = np.array([30.0, 1.0, 40.0, -2.0])
    fun = lambda z: torch.stack([torch.hypot(z[0], z[2]), torch.atan2(z[2], z[0])])  # noqa: E731
    np.testing.assert_allclose(torch_jacobian(fun, x), radar_H(x), rtol=1e-12)
    np.testing.assert_allclose(numerical_jacobian(radar_h, x), radar_H(x), rtol=1e-7)


def test_long_radar_run_keeps_covariances_symmetric_psd():
    dt = 1.0
    F = np.array([[1, dt, 0, 0], [0, 1, 0, 0], [0, 0, 1, dt], [0, 0, 0, 1.0]])
    q = 0.05
    Qb = q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
    Q = np.kron(np.eye(2), Qb)
    R = np.diag([0.5**2, 0.01**2])
    model = NonlinearSSM(f=lambda x: F @ x, h=radar_h, Q=Q, R=R,
                         x0=[100.0, 1.0, 50.0, -0.5], P0=np.diag([25.0, 1.0, 25.0, 1.0]),
                         F_jac=lambda x: F, H_jac=radar_H)
    rng = np.random.default_rng(0)
    x = model.x0.copy()
    ys = []
    for _ in range(2000):
        x = F @ x + rng.multivariate_normal(np.zeros(4), Q)
        ys.append(radar_h(x) + rng.multivariate_normal(np.zeros(2), R))
    y = np.array(ys)
    for filt in (ekf_filter(model, y), ukf_filter(model, y)):
        for P in (filt.P_pred, filt.P_filt, filt.S):
            assert np.array_equal(P, np.swapaxes(P, -1, -2))
            assert (np.linalg.eigvalsh(P).min(axis=-1) > 0).all()
        assert np.isfinite(filt.loglik)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(f=3), TypeError, "f must be callable; got int"),
    (dict(H_jac="no"), TypeError, "H_jac must be callable or None; got str"),
    (dict(Q=np.eye(3)), ValueError, r"Q must have shape \(2, 2\); got \(3, 3\)"),
    (dict(R=-np.eye(1)), ValueError, "R must be positive semidefinite"),
    (dict(P0=np.array([[1.0, 2.0], [0.0, 1.0]])), ValueError, "P0 must be symmetric"),
    (dict(x0=[0.0, np.nan]), ValueError, "x0 contains NaN or inf"),
    (dict(f=lambda x: x[:1]), ValueError, r"f\(x0\) must return shape \(2,\); got \(1,\)"),
    (dict(h=lambda x: x), ValueError, r"h\(x0\) must return shape \(1,\) to match R; got \(2,\)"),
])
def test_model_errors(kwargs, exc, match):
    base = dict(f=lambda x: x, h=lambda x: x[:1], Q=np.eye(2), R=np.eye(1),
                x0=np.zeros(2), P0=np.eye(2))
    with pytest.raises(exc, match=match):
        NonlinearSSM(**{**base, **kwargs})


def test_filter_errors():
    model = NonlinearSSM(f=lambda x: x, h=lambda x: x[:1], Q=np.eye(2), R=np.eye(1),
                         x0=np.zeros(2), P0=np.eye(2), F_jac=lambda x: np.eye(3))
    with pytest.raises(ValueError, match=r"F_jac\(x\) must return shape \(2, 2\); got \(3, 3\)"):
        ekf_filter(model, np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"y must have shape \(T, 1\); got \(3, 2\)"):
        ukf_filter(model, np.zeros((3, 2)))
    with pytest.raises(TypeError, match="model must be a kflib.nonlinear.NonlinearSSM"):
        ekf_filter("model", np.zeros((3, 1)))
    with pytest.raises(ValueError, match="n \\+ lambda"):
        sigma_points(np.zeros(2), np.eye(2), alpha=0.1, kappa=-2.0)


def wrap(d):
    """Second component is an angle: wrap it into (-pi, pi]."""
    d = np.array(d, dtype=float)
    d[1] = np.pi - np.mod(np.pi - d[1], 2 * np.pi)
    return d


def test_residual_wraps_bearings_across_the_cut():
    # a target moving along the negative x axis, crossing the +-pi cut of atan2
    dt = 1.0
    F = np.array([[1, dt, 0, 0], [0, 1, 0, 0], [0, 0, 1, dt], [0, 0, 0, 1.0]])
    Q = np.kron(np.eye(2), 0.01 * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]]))
    R = np.diag([0.5**2, 0.005**2])
    x0 = np.array([-100.0, 0.0, -3.0, 0.1])
    truth, ys = [], []
    rng = np.random.default_rng(4)
    x = x0.copy()
    for _ in range(60):
        x = F @ x + rng.multivariate_normal(np.zeros(4), Q)
        truth.append(x)
        ys.append(radar_h(x) + rng.multivariate_normal(np.zeros(2), R))
    y = np.array(ys)
    y[:, 1] = np.angle(np.exp(1j * y[:, 1]))              # measured bearings in (-pi, pi]
    truth = np.array(truth)
    P0 = np.diag([1.0, 0.1, 1.0, 0.1])
    base = dict(f=lambda x: F @ x, h=radar_h, Q=Q, R=R, x0=x0, P0=P0, F_jac=lambda x: F,
                H_jac=radar_H)
    for run in (ekf_filter, ukf_filter):
        plain = run(NonlinearSSM(**base), y)
        wrapped = run(NonlinearSSM(**base, residual=wrap), y)
        err = lambda f: np.sqrt(np.mean((f.x_filt[:, [0, 2]] - truth[:, [0, 2]]) ** 2))  # noqa: E731
        assert np.all(np.abs(wrapped.innovations[:, 1]) <= np.pi)
        assert err(wrapped) < 1.0 < err(plain), (run.__name__, err(wrapped), err(plain))
