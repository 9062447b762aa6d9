"""The disturbance smoother against KFAS (the results statsmodels ships, read at
test time) and statsmodels' smoothed disturbances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kflib import (LinearGaussianSSM, disturbance_smoother, kalman_filter, rts_smoother,
                   simulate)

sm_tests = pytest.importorskip("statsmodels.tsa.statespace.tests")
from statsmodels.tsa.statespace.kalman_smoother import KalmanSmoother  # noqa: E402

RESULTS = Path(sm_tests.__file__).parent / "results"
pytestmark = pytest.mark.filterwarnings(
    "ignore:The univariate filtering approach diagonalized")


def rel_err(actual, expected):
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    return np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-300)


def macro(transform):
    from statsmodels import datasets
    dta = datasets.macrodata.load_pandas().data[["realgdp", "realcons", "realinv"]]
    return transform(dta.values.astype(float))


def mixed_missing(obs):
    obs = obs.copy()
    obs[0:50, 0] = np.nan
    obs[19:70, 1] = np.nan
    obs[39:90, 2] = np.nan
    obs[119:130, 0] = np.nan
    obs[119:130, 2] = np.nan
    return obs


def kfas_errors(kfas, model, y):
    """kflib against a KFAS table with r, detN, etahat, detVeta, epshat, Veps
    (KFAS's r_t, N_t, etahat_t belong to kflib's step t + 1)."""
    dist = disturbance_smoother(model, kalman_filter(model, y))
    T = y.shape[0]
    cols = lambda *names: kfas[list(names)].values  # noqa: E731
    return {
        "r": rel_err(dist.r[1:], cols("r1", "r2", "r3")[:T - 1]),
        "detN": rel_err(np.linalg.det(dist.N[1:]), kfas["detN"].values[:T - 1]),
        "eta_hat": rel_err(dist.eta_hat[1:], cols("etahat1", "etahat2", "etahat3")[:T - 1]),
        "det eta_cov": rel_err(np.linalg.det(dist.eta_cov[1:]),
                               kfas["detVeta"].values[:T - 1]),
        "eps_hat": rel_err(dist.eps_hat, cols("epshat1", "epshat2", "epshat3")),
        "eps_var": rel_err(np.diagonal(dist.eps_cov, axis1=1, axis2=2),
                           cols("Veps1", "Veps2", "Veps3")),
    }, dist


def test_kfas_smoothing_local_levels_with_missing():
    import pandas as pd
    kfas = pd.read_csv(RESULTS / "results_smoothing_R.csv")
    y = mixed_missing(macro(lambda a: np.diff(a, axis=0)))
    model = LinearGaussianSSM(np.eye(3), np.eye(3), np.eye(3), np.eye(3), a1=np.zeros(3),
                              P1=1e6 * np.eye(3))
    errs, dist = kfas_errors(kfas, model, y)
    # KFAS's last r and etahat are zero: nothing is observed after step T
    assert np.all(kfas[["r1", "r2", "r3"]].values[-1] == 0)
    assert max(errs.values()) < 1e-8, errs


def test_kfas_smoothing_var_with_tiny_covariances():
    import pandas as pd
    kfas = pd.read_csv(RESULTS / "results_smoothing2_R.csv")
    y = macro(lambda a: np.diff(np.log(a), axis=0))
    R = np.diag([0.0000640649, 0.0000572802, 0.0017088585])
    F = np.array([[-0.1119908792, 0.8441841604, 0.0238725303],
                  [0.2629347724, 0.4996718412, -0.0173023305],
                  [-3.2192369082, 4.1536028244, 0.4514379215]])
    Q = np.array([[0.0000640649, 0.0000388496, 0.0002148769],
                  [0.0000388496, 0.0000572802, 0.000001555],
                  [0.0002148769, 0.000001555, 0.0017088585]])
    model = LinearGaussianSSM(F, np.eye(3), Q, R, a1=np.zeros(3), P1=1e6 * np.eye(3))
    errs, _ = kfas_errors(kfas, model, y)
    # KFAS prints 15 significant digits; det N and det Var(eta) of size 1e10 and
    # 1e-12 are the hardest
    assert max(errs.values()) < 1e-7, errs


def test_kfas_intercepts_disturbances():
    import pandas as pd
    kfas = pd.read_csv(RESULTS / "results_intercepts_R.csv")
    obs = macro(lambda a: a)
    y = mixed_missing(obs / obs.std(axis=0, ddof=1))
    model = LinearGaussianSSM(np.eye(3), np.eye(3), np.eye(3), np.eye(3), a1=np.zeros(3),
                              P1=1e6 * np.eye(3), c=[4.0, 5.0, 6.0], d=[1.0, 2.0, 3.0])
    errs, _ = kfas_errors(kfas, model, y)
    assert max(errs.values()) < 1e-8, errs


def _statsmodels_case(seed, R_full):
    rng = np.random.default_rng(seed)
    n, m, T = 3, 2, 60
    F = 0.9 * np.linalg.qr(rng.standard_normal((n, n)))[0]
    H = rng.standard_normal((m, n))
    A = rng.standard_normal((n, n))
    Q = A @ A.T / n + 0.1 * np.eye(n)
    R = np.array([[1.0, 0.4], [0.4, 0.8]]) if R_full else np.diag([1.0, 0.8])
    a1, P1 = rng.standard_normal(n), np.eye(n)
    model = LinearGaussianSSM(F, H, Q, R, a1=a1, P1=P1)
    _, y = simulate(model, T, rng=rng)
    y[rng.random(y.shape) < 0.15] = np.nan
    y[30] = np.nan
    ssm = KalmanSmoother(k_endog=m, k_states=n, k_posdef=n)
    ssm.bind(np.ascontiguousarray(y))
    ssm["transition"], ssm["design"], ssm["selection"] = F, H, np.eye(n)
    ssm["state_cov"], ssm["obs_cov"] = Q, R
    ssm.initialize_known(a1, P1)
    return model, y, ssm.smooth()


@pytest.mark.parametrize("R_full", [False, True])
def test_matches_statsmodels_smoothed_disturbances(R_full):
    model, y, res = _statsmodels_case(21 + R_full, R_full)
    T = y.shape[0]
    filt = kalman_filter(model, y)
    dist = disturbance_smoother(model, filt)
    obs = ~np.isnan(y)
    eps_ref = res.smoothed_measurement_disturbance.T
    # statsmodels gives the observed components (0 for a missing one)
    errs = {
        "eps_hat": rel_err(np.where(obs, dist.eps_hat, 0.0), eps_ref),
        "eta_hat": rel_err(dist.eta_hat[1:], res.smoothed_state_disturbance.T[:T - 1]),
        "eta_cov": rel_err(dist.eta_cov[1:], np.moveaxis(res.smoothed_state_disturbance_cov,
                                                         -1, 0)[:T - 1]),
        "r": rel_err(dist.r[1:], res.scaled_smoothed_estimator.T[:T - 1]),
        "N": rel_err(dist.N[1:], np.moveaxis(res.scaled_smoothed_estimator_cov, -1, 0)[:T - 1]),
    }
    if not R_full:
        V_ref = np.moveaxis(res.smoothed_measurement_disturbance_cov, -1, 0)
        both = obs[:, :, None] & obs[:, None, :]
        errs["eps_cov"] = rel_err(np.where(both, dist.eps_cov, 0.0), np.where(both, V_ref, 0.0))
    assert max(errs.values()) < 1e-10, errs
    # the identities: x_{t|T} = x_pred + P_pred r,  eps_hat = y - H x_{t|T} (observed)
    smooth = rts_smoother(model, filt)
    x_r = filt.x_pred + (filt.P_pred @ dist.r[..., None])[..., 0]
    assert rel_err(x_r, smooth.x_smooth) < 1e-10
    resid = y - smooth.x_smooth @ model.H.T
    assert rel_err(dist.eps_hat[obs], resid[obs]) < 1e-9
    # Var(v_t | y) = H P_{t|T} H' on the observed components
    HVH = model.H @ smooth.P_smooth @ model.H.T
    full = obs.all(1)
    assert rel_err(dist.eps_cov[full], HVH[full]) < 1e-9
    # a missing component's noise is its regression on the observed ones
    t, i = np.argwhere(~obs & obs[:, ::-1])[0]
    R = model.R
    np.testing.assert_allclose(dist.eps_hat[t, i], R[i, 1 - i] / R[1 - i, 1 - i]
                               * dist.eps_hat[t, 1 - i], rtol=1e-12, atol=1e-15)
    assert np.isnan(dist.eta_hat[0]).all()


def test_x0_start_and_batches():
    rng = np.random.default_rng(5)
    F, H = np.array([[0.8, 0.3], [0.0, 0.9]]), np.array([[1.0, 0.5]])
    Q, R = np.diag([0.3, 0.1]), np.array([[0.5]])
    x0, P0 = np.array([1.0, -1.0]), np.diag([2.0, 1.0])
    m0 = LinearGaussianSSM(F, H, Q, R, x0=x0, P0=P0)
    m1 = LinearGaussianSSM(F, H, Q, R, a1=F @ x0, P1=F @ P0 @ F.T + Q)
    _, y = simulate(m0, 40, rng=rng)
    y[[3, 4, 20]] = np.nan
    d0 = disturbance_smoother(m0, kalman_filter(m0, y))
    d1 = disturbance_smoother(m1, kalman_filter(m1, y))
    np.testing.assert_allclose(d0.eps_hat, d1.eps_hat, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(d0.eta_hat[1:], d1.eta_hat[1:], rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(d0.r, d1.r, rtol=1e-11, atol=1e-12)
    # with x0, P0 the first noise has a smoothed value: x0_{|T} = x0 + P0 F' r_1
    s0 = rts_smoother(m0, kalman_filter(m0, y))
    np.testing.assert_allclose(x0 + P0 @ F.T @ d0.r[0], s0.x0_smooth, rtol=1e-10)
    np.testing.assert_allclose(d0.eta_hat[0], s0.x_smooth[0] - F @ s0.x0_smooth, rtol=1e-9)
    yb = np.stack([y, y[::-1]])
    db = disturbance_smoother(m0, kalman_filter(m0, yb))
    d_rev = disturbance_smoother(m0, kalman_filter(m0, y[::-1]))
    np.testing.assert_allclose(db.eps_hat[1], d_rev.eps_hat, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(db.eta_cov[0], d0.eta_cov, rtol=1e-12, atol=1e-13)
    assert not db.r.flags.writeable


def _kfas_diffuse(name):
    import pandas as pd
    return pd.read_csv(RESULTS / f"results_exact_initial_{name}_R.csv")


def _cols(df, key):
    return df[[c for c in df.columns if c.rsplit("_", 1)[0] == key]].values


@pytest.mark.parametrize("case", ["var1_missing", "var1_measurement_error",
                                  "local_linear_trend_missing"])
def test_kfas_exact_diffuse_disturbances(case):
    from statsmodels import datasets
    kfas = _kfas_diffuse(case)
    if case.startswith("var1"):
        data = datasets.macrodata.load_pandas().data[["realgdp", "realcons"]].values
        y = np.diff(np.log(data[:21]), axis=0) * 400
        if case == "var1_missing":
            y[0:5, 0] = np.nan
            y[8:12, :] = np.nan
        R = np.diag([4.0, 5.0]) if case == "var1_measurement_error" else np.zeros((2, 2))
        model = LinearGaussianSSM([[0.5, 0.3], [0.2, 0.4]], np.eye(2), np.diag([2.0, 3.0]), R,
                                  diffuse=True)
    else:
        y = np.r_[10.2394, np.nan, 6.123123, [1.0] * 7][:, None]
        model = LinearGaussianSSM([[1, 1], [0, 1]], [[1, 0]], np.diag([8.253, 2.334]), 1.993,
                                  diffuse=True)
    T = y.shape[0]
    filt = kalman_filter(model, y)
    d = filt.n_diffuse
    dist = disturbance_smoother(model, filt)
    obs = ~np.isnan(y)
    r_kfas = np.where(np.arange(T)[:, None] < d, _cols(kfas, "r0")[:T], _cols(kfas, "r")[:T])
    errs = {
        "r": rel_err(dist.r, r_kfas),
        "r1": rel_err(dist.r1, np.nan_to_num(_cols(kfas, "r1")[:T])),
        "eta_hat": rel_err(dist.eta_hat[1:], _cols(kfas, "etahat")[:T - 1]),
        "eps_hat": rel_err(np.where(obs, dist.eps_hat, 0.0),
                           np.nan_to_num(_cols(kfas, "epshat")[:T])),
    }
    if model.R.any():
        errs["eps_var"] = rel_err(np.diagonal(dist.eps_cov, axis1=1, axis2=2),
                                  _cols(kfas, "Veps")[:T])
    assert max(errs.values()) < 1e-9, errs
    if "N0_1" in kfas.columns:
        k = model.n
        N0 = _cols(kfas, "N0")[:T].reshape(T, k, k).transpose(0, 2, 1)
        N1 = _cols(kfas, "N1")[:T].reshape(T, k, k).transpose(0, 2, 1)
        N2 = _cols(kfas, "N2")[:T].reshape(T, k, k).transpose(0, 2, 1)
        assert rel_err(dist.N[:d], N0[:d]) < 1e-9
        assert rel_err(dist.N1[:d], N1[:d]) < 1e-9
        assert rel_err(dist.N2[:d], N2[:d]) < 1e-9


def test_auxiliary_residuals_flag_a_level_shift():
    # a local level with a break of 8 noise sd at t = 60: the state auxiliary
    # residual is largest at the break
    rng = np.random.default_rng(9)
    level = np.r_[np.zeros(60), 8.0 * np.ones(60)] + np.cumsum(0.1 * rng.standard_normal(120))
    y = (level + rng.standard_normal(120))[:, None]
    model = LinearGaussianSSM(1.0, 1.0, 0.01, 1.0, diffuse=True)
    dist = disturbance_smoother(model, kalman_filter(model, y))
    assert int(np.nanargmax(np.abs(dist.eta_std[:, 0]))) == 60
    # eps_std is eps_hat over sqrt(R - Var(v | y))
    np.testing.assert_allclose(dist.eps_std[5:, 0],
                               dist.eps_hat[5:, 0] / np.sqrt(1.0 - dist.eps_cov[5:, 0, 0]),
                               rtol=1e-12)


def test_fast_filter_output_and_diffuse_batches():
    from kflib.fast import fast_filter
    from kflib.scan import scan_filter
    rng = np.random.default_rng(13)
    model = LinearGaussianSSM([[0.9, 0.1], [0.0, 0.7]], [[1.0, 0.3]], np.diag([0.2, 0.1]),
                              [[0.4]], x0=[0.0, 0.0], P0=np.eye(2))
    _, y = simulate(model, 500, rng=rng)
    ref = disturbance_smoother(model, kalman_filter(model, y))
    y_miss = y.copy()
    y_miss[100:110] = np.nan
    ref_miss = disturbance_smoother(model, kalman_filter(model, y_miss))
    for yy, want in ((y, ref), (y_miss, ref_miss)):
        for fn in (fast_filter, scan_filter):
            got = disturbance_smoother(model, fn(model, yy))
            np.testing.assert_allclose(got.eps_hat, want.eps_hat, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(got.eta_cov, want.eta_cov, rtol=1e-9, atol=1e-12)
    # a batch with an exact diffuse start and different diffuse lengths
    dm = LinearGaussianSSM([[1, 1], [0, 1]], [[1, 0]], np.diag([0.5, 0.1]), 1.0,
                           diffuse=True)
    yb = rng.standard_normal((2, 20, 1)).cumsum(1)
    yb[1, 0] = np.nan
    db = disturbance_smoother(dm, kalman_filter(dm, yb))
    for b in range(2):
        d1 = disturbance_smoother(dm, kalman_filter(dm, yb[b]))
        for name in ("eps_hat", "eps_cov", "eta_hat", "r", "N", "r1", "N1", "N2"):
            np.testing.assert_allclose(getattr(db, name)[b], getattr(d1, name),
                                       rtol=1e-10, atol=1e-12, err_msg=name)
