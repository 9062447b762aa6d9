"""State and observation intercepts c_t, d_t against statsmodels and the KFAS
results statsmodels ships (``results_intercepts_R.csv``, read at test time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kflib import LinearGaussianSSM, forecast, kalman_filter, rts_smoother, simulate
from kflib.fast import fast_filter, fast_smoother
from kflib.scan import scan_filter, scan_smoother

sm_tests = pytest.importorskip("statsmodels.tsa.statespace.tests")
from statsmodels.tsa.statespace.kalman_smoother import KalmanSmoother  # noqa: E402

RESULTS = Path(sm_tests.__file__).parent / "results"


def rel_err(actual, expected):
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    return np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-300)


def macro_obs():
    """statsmodels' test data: realgdp, realcons, realinv over their sd, with
    the "mixed" missing pattern of its intercept test."""
    import pandas as pd
    from statsmodels import datasets
    dta = datasets.macrodata.load_pandas().data
    obs = dta[["realgdp", "realcons", "realinv"]].copy()
    obs = obs / obs.std()
    obs.iloc[0:50, 0] = np.nan
    obs.iloc[19:70, 1] = np.nan
    obs.iloc[39:90, 2] = np.nan
    obs.iloc[119:130, 0] = np.nan
    obs.iloc[119:130, 2] = np.nan
    return pd.DataFrame(obs).values


def kfas_intercepts():
    import pandas as pd
    return pd.read_csv(RESULTS / "results_intercepts_R.csv")


def intercept_model(**kw):
    # three local levels, d = (1, 2, 3), c = (4, 5, 6), x_1 ~ N(0, 1e6 I) (MARSS/KFAS)
    return LinearGaussianSSM(np.eye(3), np.eye(3), np.eye(3), np.eye(3), a1=np.zeros(3),
                             P1=1e6 * np.eye(3), c=[4.0, 5.0, 6.0], d=[1.0, 2.0, 3.0], **kw)


def test_kfas_intercepts():
    y = macro_obs()
    kfas = kfas_intercepts()
    model = intercept_model()
    filt = kalman_filter(model, y)
    smooth = rts_smoother(model, filt)
    T = y.shape[0]
    errs = {
        "loglik": rel_err(filt.loglik, -7924.03893566),
        # KFAS's a_t for t = 2..T+1
        "x_pred": rel_err(filt.x_pred[1:], kfas[["a1", "a2", "a3"]].values[:T - 1]),
        "detP": rel_err(np.linalg.det(filt.P_pred[1:]), kfas["detP"].values[:T - 1]),
        "y_pred": rel_err(filt.x_pred + model.d, kfas[["m1", "m2", "m3"]].values),
        "innovations": rel_err(np.nan_to_num(filt.innovations),
                               np.nan_to_num(kfas[["v1", "v2", "v3"]].values)),
        "S": rel_err(np.diagonal(filt.S, axis1=1, axis2=2), kfas[["F1", "F2", "F3"]].values),
        "x_smooth": rel_err(smooth.x_smooth, kfas[["alphahat1", "alphahat2", "alphahat3"]]),
        "detV": rel_err(np.linalg.det(smooth.P_smooth), kfas["detV"].values),
    }
    # KFAS publishes about 8 significant digits of the log-likelihood
    assert errs.pop("loglik") < 1e-10
    assert max(errs.values()) < 1e-8, errs


def test_time_varying_intercepts_match_statsmodels():
    rng = np.random.default_rng(11)
    T = 50
    F = np.array([[0.9, 0.2], [0.0, 0.7]])
    H = np.array([[1.0, 0.0], [0.5, 1.0]])
    Q, R = np.diag([0.4, 0.2]), np.array([[0.3, 0.1], [0.1, 0.5]])
    c = rng.standard_normal((T, 2))
    d = rng.standard_normal((T, 2)) + 3.0
    y = rng.standard_normal((T, 2)) + 5.0
    y[[4, 9], 1] = np.nan
    y[20] = np.nan
    a1, P1 = np.array([1.0, 2.0]), np.diag([2.0, 1.0])
    ssm = KalmanSmoother(k_endog=2, k_states=2, k_posdef=2)
    ssm.bind(np.ascontiguousarray(y))
    ssm["transition"], ssm["design"], ssm["selection"] = F, H, np.eye(2)
    ssm["state_cov"], ssm["obs_cov"] = Q, R
    # statsmodels: alpha_{t+1} = T alpha_t + c_t; kflib: x_t = F x_{t-1} + c_t
    sc = np.zeros((2, T))
    sc[:, :-1] = c[1:].T
    ssm["state_intercept"] = sc
    ssm["obs_intercept"] = np.ascontiguousarray(d.T)
    ssm.initialize_known(a1, P1)
    res = ssm.smooth()
    model = LinearGaussianSSM(F, H, Q, R, a1=a1, P1=P1, c=c, d=d)
    filt = kalman_filter(model, y)
    smooth = rts_smoother(model, filt)
    errs = {"loglik": rel_err(filt.loglik, res.llf),
            "x_pred": rel_err(filt.x_pred, res.predicted_state[:, :T].T),
            "x_filt": rel_err(filt.x_filt, res.filtered_state.T),
            "innovations": rel_err(np.nan_to_num(filt.innovations),
                                   np.nan_to_num(res.forecasts_error.T)),
            "x_smooth": rel_err(smooth.x_smooth, res.smoothed_state.T),
            "P_smooth": rel_err(smooth.P_smooth, np.moveaxis(res.smoothed_state_cov, -1, 0))}
    assert max(errs.values()) < 1e-9, errs
    # the same model started at time 0: a1 = F x0 + c_1, P1 = F P0 F' + Q
    x0, P0 = np.array([0.5, -1.0]), np.eye(2)
    m0 = LinearGaussianSSM(F, H, Q, R, x0=x0, P0=P0, c=c, d=d)
    m1 = LinearGaussianSSM(F, H, Q, R, a1=F @ x0 + c[0], P1=F @ P0 @ F.T + Q, c=c, d=d)
    f0, f1 = kalman_filter(m0, y), kalman_filter(m1, y)
    assert abs(f0.loglik - f1.loglik) <= 1e-12 * abs(f1.loglik)
    np.testing.assert_allclose(rts_smoother(m0, f0).x_smooth, rts_smoother(m1, f1).x_smooth,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tv", [False, True])
def test_fast_and_scan_paths_handle_intercepts(tv):
    rng = np.random.default_rng(12)
    T = 300
    c = rng.standard_normal((T, 2)) if tv else np.array([0.5, -0.2])
    d = rng.standard_normal((T, 1)) if tv else np.array([10.0])
    model = LinearGaussianSSM([[0.95, 0.1], [0.0, 0.8]], [[1.0, 1.0]], np.diag([0.1, 0.2]),
                              [[0.5]], x0=[0.0, 0.0], P0=np.eye(2), B=[[1.0], [0.0]],
                              c=c, d=d)
    u = rng.standard_normal((T, 1))
    _, y = simulate(model, T, rng=rng, u=u)
    yb = np.stack([y, y[::-1]])
    ref = kalman_filter(model, yb, u=u)
    refs = rts_smoother(model, ref)
    for filt_fn, smooth_fn in ((fast_filter, fast_smoother), (scan_filter, scan_smoother)):
        f = filt_fn(model, yb, u=u)
        s = smooth_fn(model, f)
        np.testing.assert_allclose(f.loglik, ref.loglik, rtol=1e-10)
        np.testing.assert_allclose(f.x_filt, ref.x_filt, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(f.innovations, ref.innovations, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(s.x_smooth, refs.x_smooth, rtol=1e-9, atol=1e-9)


def test_simulate_with_intercepts_is_the_recursion():
    # no noise at all: the path is the deterministic recursion itself
    T = 6
    c = np.arange(T * 2, dtype=float).reshape(T, 2)
    model = LinearGaussianSSM([[0.5, 1.0], [0.0, 2.0]], [[1.0, -1.0]], np.zeros((2, 2)),
                              [[0.0]], x0=[1.0, 1.0], P0=np.zeros((2, 2)), c=c, d=[7.0])
    x, y = simulate(model, T, rng=0)
    state = np.array([1.0, 1.0])
    for t in range(T):
        state = model.F @ state + c[t]
        np.testing.assert_allclose(x[t], state, rtol=1e-15)
        np.testing.assert_allclose(y[t], [state[0] - state[1] + 7.0], rtol=1e-15)
    # a time-1 start takes x_1 = a1 (c[0] and F are not applied to it)
    m1 = model.replace(a1=[3.0, 4.0], P1=np.zeros((2, 2)))
    x1, _ = simulate(m1, T, rng=0)
    np.testing.assert_allclose(x1[0], [3.0, 4.0])
    np.testing.assert_allclose(x1[1], m1.F @ [3.0, 4.0] + c[1])


def test_forecast_with_intercepts():
    model = LinearGaussianSSM([[0.5]], [[2.0]], [[1.0]], [[1.0]], x0=[0.0], P0=[[1.0]],
                              c=[1.0], d=[3.0])
    filt = kalman_filter(model, np.array([[4.0], [5.0], [6.0]]))
    fc = forecast(model, filt, 2)
    x1 = 0.5 * filt.x_filt[-1, 0] + 1.0
    np.testing.assert_allclose(fc.y_mean[:, 0], [2 * x1 + 3, 2 * (0.5 * x1 + 1) + 3],
                               rtol=1e-14)


def test_intercept_validation():
    kw = dict(F=np.eye(2), H=[[1.0, 0.0]], Q=np.eye(2), R=1.0, x0=[0, 0], P0=np.eye(2))
    with pytest.raises(ValueError, match=r"c must have shape \(2,\) or \(T, 2\)"):
        LinearGaussianSSM(**kw, c=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"d must have shape \(1,\) or \(T, 1\)"):
        LinearGaussianSSM(**kw, d=np.ones((4, 2)))
    with pytest.raises(ValueError, match="share one length T"):
        LinearGaussianSSM(**kw, c=np.ones((4, 2)), d=np.ones((5, 1)))
    with pytest.raises(ValueError, match="d contains NaN"):
        LinearGaussianSSM(**kw, d=[np.nan])
    with pytest.raises(TypeError, match="c must be"):
        LinearGaussianSSM(**kw, c="a")
    m = LinearGaussianSSM(**kw, c=np.ones((4, 2)))
    assert m.T == 4 and m.time_varying
    with pytest.raises(ValueError, match="T = 4"):
        kalman_filter(m, np.ones((5, 1)))
