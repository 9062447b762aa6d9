"""kflib.forecast against statsmodels' get_forecast."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import solve_discrete_lyapunov

from kflib import LinearGaussianSSM, forecast, kalman_filter, simulate

sm = pytest.importorskip("statsmodels")
from statsmodels.tsa.statespace.initialization import Initialization  # noqa: E402
from statsmodels.tsa.statespace.sarimax import SARIMAX  # noqa: E402
from statsmodels.tsa.statespace.structural import UnobservedComponents  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:Care should be used when applying a loglikelihood burn")


def rel_err(actual, expected):
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    return np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-300)


def intercept(ssm, name):
    """A statsmodels intercept that is the same at every step, as a vector."""
    a = np.asarray(ssm[name])
    a = a.reshape(a.shape[0], -1)
    assert np.all(a == a[:, :1])
    return a[:, 0]


def kflib_model(ssm, **start):
    """kflib's model with a time-invariant statsmodels representation's matrices."""
    sel = ssm["selection"]
    return LinearGaussianSSM(F=ssm["transition"], H=ssm["design"],
                             Q=sel @ ssm["state_cov"] @ sel.T, R=ssm["obs_cov"],
                             c=intercept(ssm, "state_intercept"),
                             d=intercept(ssm, "obs_intercept"),
                             **start)


def check(model, y, res, steps):
    fc = forecast(model, kalman_filter(model, y), steps)
    ref = res.get_forecast(steps)
    errs = {"mean": rel_err(fc.y_mean[:, 0], ref.predicted_mean),
            "var": rel_err(fc.y_cov[:, 0, 0], ref.var_pred_mean)}
    for level in (0.95, 0.8):
        lo, hi = fc.interval(level)
        ci = np.asarray(ref.conf_int(alpha=1 - level))
        errs[f"ci{level}"] = max(rel_err(lo[:, 0], ci[:, 0]), rel_err(hi[:, 0], ci[:, 1]))
    return errs, fc


def test_nile_local_level_matches_get_forecast():
    from statsmodels.datasets import nile
    y = nile.load_pandas().data["volume"].values.astype(float)
    mod = UnobservedComponents(y, "llevel", use_exact_diffuse=True)
    res = mod.smooth([15099.0, 1469.1])            # Durbin and Koopman's estimates
    model = kflib_model(mod.ssm, diffuse=True)
    errs, fc = check(model, y[:, None], res, 10)
    assert max(errs.values()) < 1e-10, errs
    # the level forecast is flat and its variance grows by sigma2_eta per step
    np.testing.assert_allclose(np.diff(fc.x_mean[:, 0]), 0.0, atol=1e-9)
    np.testing.assert_allclose(np.diff(fc.P[:, 0, 0]), 1469.1, rtol=1e-12)


def test_sarimax_with_constant_matches_get_forecast():
    rng = np.random.default_rng(7)
    y = np.zeros(150)
    for t in range(2, 150):
        y[t] = 2.0 + 0.5 * y[t - 1] - 0.2 * y[t - 2] + rng.standard_normal()
    y[[20, 21, 149]] = np.nan                             # the last one missing too
    mod = SARIMAX(y, order=(2, 0, 1), trend="c")
    params = [2.0, 0.5, -0.2, 0.3, 1.1]
    res = mod.smooth(params)
    ssm = mod.ssm
    Fm = ssm["transition"]
    sel = ssm["selection"]
    c = intercept(ssm, "state_intercept")
    a1 = np.linalg.solve(np.eye(Fm.shape[0]) - Fm, c)
    P1 = solve_discrete_lyapunov(Fm, sel @ ssm["state_cov"] @ sel.T)
    model = kflib_model(ssm, a1=a1, P1=P1)
    errs, _ = check(model, y[:, None], res, 12)
    assert max(errs.values()) < 1e-9, errs


def test_arima_d1_matches_get_forecast():
    rng = np.random.default_rng(3)
    y = np.cumsum(rng.standard_normal(100)) + 10
    mod = SARIMAX(y, order=(1, 1, 1))
    init = Initialization(mod.k_states)
    init.set(0, "diffuse")
    init.set((1, mod.k_states), "stationary")
    mod.ssm.initialization = init
    res = mod.smooth([0.4, 0.2, 0.8])
    ssm = mod.ssm
    sel = ssm["selection"]
    Qs = sel @ ssm["state_cov"] @ sel.T
    P_arma = solve_discrete_lyapunov(ssm["transition"][1:, 1:], Qs[1:, 1:])
    model = kflib_model(ssm, diffuse=[True, False, False], P1=P_arma)
    errs, _ = check(model, y[:, None], res, 8)
    assert max(errs.values()) < 1e-9, errs


def test_batch_controls_and_future_matrices():
    model = LinearGaussianSSM([[0.9]], [[1.0]], [[0.5]], [[0.2]], x0=[0.0], P0=[[1.0]],
                              B=[[1.0]])
    rng = np.random.default_rng(0)
    u = rng.standard_normal((30, 1))
    _, y = simulate(model, 30, rng=rng, u=u)
    yb = np.stack([y, y + 1.0])
    filt = kalman_filter(model, yb, u=u)
    uf = np.array([[1.0], [0.0], [-1.0]])
    fc = forecast(model, filt, 3, u=uf)
    assert fc.y_mean.shape == (2, 3, 1) and fc.y_cov.shape == (2, 3, 1, 1)
    # by hand from the last filtered moments
    x, P = filt.x_filt[1, -1, 0], filt.P_filt[1, -1, 0, 0]
    for h in range(3):
        x, P = 0.9 * x + uf[h, 0], 0.81 * P + 0.5
        np.testing.assert_allclose(fc.y_mean[1, h, 0], x, rtol=1e-14)
        np.testing.assert_allclose(fc.y_cov[1, h, 0, 0], P + 0.2, rtol=1e-14)
    with pytest.raises(ValueError, match="u of shape"):
        forecast(model, filt, 3)
    # a time-varying model needs the future matrices
    tv = LinearGaussianSSM(np.full((30, 1, 1), 0.9), [[1.0]], [[0.5]], [[0.2]],
                           x0=[0.0], P0=[[1.0]])
    ftv = kalman_filter(tv, y)
    with pytest.raises(ValueError, match="future"):
        forecast(tv, ftv, 3)
    fut = LinearGaussianSSM(np.array([[[0.5]], [[1.0]]]), [[1.0]], [[0.5]], [[0.2]],
                            x0=[0.0], P0=[[1.0]])
    fc2 = forecast(tv, ftv, 2, future=fut)
    x = ftv.x_filt[-1, 0]
    np.testing.assert_allclose(fc2.x_mean[:, 0], [0.5 * x, 0.5 * x], rtol=1e-14)
    with pytest.raises(ValueError, match="steps = 3"):
        forecast(tv, ftv, 3, future=fut)


def test_interval_and_argument_checks():
    model = LinearGaussianSSM(1.0, 1.0, 1.0, 1.0, x0=[0.0], P0=[[1.0]])
    filt = kalman_filter(model, np.ones((5, 1)))
    fc = forecast(model, filt, 2)
    lo, hi = fc.interval(0.5)
    # a 50% interval is mean +- 0.6745 sd
    np.testing.assert_allclose(hi - fc.y_mean, 0.6744897501960817 * np.sqrt(fc.y_cov[..., 0]),
                               rtol=1e-12)
    for bad in (1.0, 0.0, 1.5):
        with pytest.raises(ValueError, match="level"):
            fc.interval(bad)
    with pytest.raises(TypeError, match="level"):
        fc.interval("a")
    with pytest.raises(ValueError, match="of must be"):
        fc.interval(0.9, of="z")
    with pytest.raises(TypeError, match="steps"):
        forecast(model, filt, 2.0)
    with pytest.raises(ValueError, match="steps"):
        forecast(model, filt, 0)
    assert not fc.y_mean.flags.writeable
    # an undetermined diffuse state has no finite forecast
    dm = LinearGaussianSSM(np.eye(2), [[1.0, 0.0]], np.eye(2), 1.0, diffuse=True)
    with pytest.raises(ValueError, match="infinite"):
        forecast(dm, kalman_filter(dm, np.ones((4, 1))), 2)
