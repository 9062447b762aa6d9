"""The time-1 start (a1, P1) and the exact diffuse start, against statsmodels'
exact diffuse filter/smoother and the KFAS (R) results statsmodels ships in
``statsmodels/tsa/statespace/tests/results`` (read from the installed package)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

sm_tests = pytest.importorskip("statsmodels.tsa.statespace.tests")
from statsmodels.tsa.statespace.initialization import Initialization  # noqa: E402
from statsmodels.tsa.statespace.kalman_smoother import KalmanSmoother  # noqa: E402

import kflib  # noqa: E402
from kflib import LinearGaussianSSM, kalman_filter, rts_smoother  # noqa: E402
from kflib.fast import fast_filter, fast_smoother  # noqa: E402
from kflib.scan import scan_filter, scan_smoother  # noqa: E402

RESULTS = Path(sm_tests.__file__).parent / "results"
pytestmark = [
    pytest.mark.filterwarnings("ignore:Care should be used when applying a loglikelihood burn"),
    pytest.mark.filterwarnings("ignore:The univariate filtering approach diagonalized"),
]


def rel_err(actual, expected):
    """max |a - e| relative to max |e| (entries near zero included)."""
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    return np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-300)


def from_statsmodels(ssm, diffuse, P1=None, a1=None):
    """A kflib model with the matrices of a time-invariant statsmodels
    representation (statsmodels' T maps alpha_t to alpha_{t+1}; kflib's F
    maps x_{t-1} to x_t: the same matrix for a time-invariant model)."""
    sel = ssm["selection"][..., 0] if ssm["selection"].ndim == 3 else ssm["selection"]
    Qs = ssm["state_cov"][..., 0] if ssm["state_cov"].ndim == 3 else ssm["state_cov"]
    def fixed(name):
        a = ssm[name]
        return a[..., 0] if a.ndim == 3 or (a.ndim == 2 and name.endswith("intercept")) else a
    kw = {}
    if P1 is not None:
        kw["P1"] = P1
    if a1 is not None:
        kw["a1"] = a1
    return LinearGaussianSSM(F=fixed("transition"), H=fixed("design"),
                             Q=sel @ Qs @ sel.T, R=fixed("obs_cov"), diffuse=diffuse, **kw)


def compare(model, y, res, d, skip_diffuse_states=False):
    """Largest relative errors of kflib against statsmodels results ``res``."""
    filt = kalman_filter(model, y)
    smooth = rts_smoother(model, filt)
    T = y.shape[0]
    assert filt.n_diffuse == res.nobs_diffuse == d
    s = slice(d if skip_diffuse_states else 0, T)
    errs = {
        "loglik": abs(filt.loglik - res.llf_obs.sum()) / abs(res.llf_obs.sum()),
        "x_pred": rel_err(filt.x_pred[s], res.predicted_state[:, :T].T[s]),
        "P_pred": rel_err(filt.P_pred, np.moveaxis(res.predicted_state_cov[..., :T], -1, 0)),
        "P_inf": rel_err(filt.P_inf_pred,
                         np.moveaxis(res.predicted_diffuse_state_cov[..., :T], -1, 0)),
        "x_filt": rel_err(filt.x_filt[s], res.filtered_state.T[s]),
        "P_filt": rel_err(filt.P_filt, np.moveaxis(res.filtered_state_cov, -1, 0)),
        "x_smooth": rel_err(smooth.x_smooth[s], res.smoothed_state.T[s]),
        "P_smooth": rel_err(smooth.P_smooth, np.moveaxis(res.smoothed_state_cov, -1, 0)),
    }
    return errs, filt, smooth


# -- analytic results (Koopman 1997) -------------------------------------------

def test_local_level_first_step_is_koopman_1997():
    y1, s2y, s2mu = 10.2394, 1.993, 8.253
    model = LinearGaussianSSM(1, 1, s2mu, s2y, diffuse=True)
    filt = kalman_filter(model, np.r_[y1, [1.0] * 9])
    assert filt.n_diffuse == 1
    np.testing.assert_allclose(filt.x_filt[0], [y1], rtol=1e-15)
    np.testing.assert_allclose(filt.P_filt[0], [[s2y]], rtol=1e-15)
    np.testing.assert_allclose(filt.P_pred[1], [[s2y + s2mu]], rtol=1e-15)
    np.testing.assert_allclose(filt.P_inf_pred[1], [[0.0]], atol=0)
    # log L_1 = -1/2 log(2 pi F_inf) with F_inf = 1
    rest = kalman_filter(model.replace(a1=[y1], P1=[[s2y + s2mu]], diffuse=None),
                         np.r_[[1.0] * 9])
    np.testing.assert_allclose(filt.loglik, -0.5 * np.log(2 * np.pi) + rest.loglik,
                               rtol=1e-14)


def test_local_linear_trend_missing_is_koopman_1997():
    y1, y3 = 10.2394, 6.123123
    s2y, s2mu, s2b = 1.993, 8.253, 2.334
    model = LinearGaussianSSM([[1, 1], [0, 1]], [[1, 0]], np.diag([s2mu, s2b]), s2y,
                              diffuse=True)
    y = np.r_[y1, np.nan, y3, [1.0] * 7]
    filt = kalman_filter(model, y)
    assert filt.n_diffuse == 3
    qm, qb = s2mu / s2y, s2b / s2y
    np.testing.assert_allclose(filt.x_pred[3], [1.5 * y3 - 0.5 * y1, 0.5 * y3 - 0.5 * y1],
                               rtol=1e-14)
    P4 = s2y * np.array([[2.5 + 1.5 * qm + 1.25 * qb, 1 + 0.5 * qm + 1.25 * qb],
                         [1 + 0.5 * qm + 1.25 * qb, 0.5 + 0.5 * qm + 2.25 * qb]])
    np.testing.assert_allclose(filt.P_pred[3], P4, rtol=1e-14)


def test_common_level_is_koopman_1997():
    theta, s2mu = 0.1111, 3.2324
    y = np.column_stack([np.r_[10.2394, [1] * 9], np.r_[8.2304, [1] * 9]])
    model = LinearGaussianSSM(np.eye(2), [[1, 0], [theta, 1]], np.diag([s2mu, 0.0]),
                              np.eye(2), diffuse=True)
    filt = kalman_filter(model, y)
    assert filt.n_diffuse == 1
    np.testing.assert_allclose(filt.x_pred[1], [y[0, 0], y[0, 1] - theta * y[0, 0]],
                               rtol=1e-14)
    np.testing.assert_allclose(filt.P_pred[1], [[1 + s2mu, -theta], [-theta, 1 + theta ** 2]],
                               rtol=1e-14)


# -- statsmodels' exact diffuse filter and smoother ------------------------------

def _macro():
    from statsmodels import datasets
    data = datasets.macrodata.load_pandas().data
    return data


def test_structural_seasonal_matches_unobserved_components():
    from statsmodels.tsa.statespace.structural import UnobservedComponents
    data = _macro()
    y = np.log(data["realgdp"].values[:80]) * 100
    y[[5, 17, 18, 40]] = np.nan
    mod = UnobservedComponents(y, "lltrend", seasonal=4, use_exact_diffuse=True)
    res = mod.smooth([0.3, 0.2, 0.01, 0.05])
    assert res.loglikelihood_burn == 0
    model = from_statsmodels(mod.ssm, diffuse=True)
    errs, filt, _ = compare(model, y[:, None], res, d=res.nobs_diffuse)
    # statsmodels' llf is the exact diffuse log-likelihood itself
    assert abs(filt.loglik - res.llf) <= 1e-10 * abs(res.llf)
    assert max(errs.values()) < 1e-9, errs


def test_arima_d1_matches_sarimax_mixed_start():
    from scipy.linalg import solve_discrete_lyapunov
    from statsmodels.tsa.statespace.sarimax import SARIMAX
    rng = np.random.default_rng(3)
    e = rng.standard_normal(120)
    w = np.zeros(120)
    for t in range(1, 120):
        w[t] = 0.6 * w[t - 1] + e[t] + 0.3 * e[t - 1]
    y = np.cumsum(w) + 5.0
    y[[10, 11, 50]] = np.nan
    mod = SARIMAX(y, order=(1, 1, 1))
    init = Initialization(mod.k_states)
    init.set(0, "diffuse")
    init.set((1, mod.k_states), "stationary")
    mod.ssm.initialization = init
    res = mod.smooth([0.6, 0.3, 1.0])
    T_ = mod.ssm["transition"]
    sel = mod.ssm["selection"]
    Qs = sel @ mod.ssm["state_cov"] @ sel.T
    P_arma = solve_discrete_lyapunov(T_[1:, 1:], Qs[1:, 1:])
    model = from_statsmodels(mod.ssm, diffuse=[True, False, False], P1=P_arma)
    # (SARIMAX's llf leaves out the first d = 1 terms by its loglikelihood_burn;
    # compare() uses the sum of all llf_obs, the exact diffuse log-likelihood)
    errs, filt, _ = compare(model, y[:, None], res, d=res.nobs_diffuse)
    assert max(errs.values()) < 1e-9, errs


def test_arima_d1_all_diffuse_matches_sarimax():
    from statsmodels.tsa.statespace.sarimax import SARIMAX
    rng = np.random.default_rng(4)
    y = np.cumsum(rng.standard_normal(60))
    mod = SARIMAX(y, order=(1, 1, 0), initialization="diffuse")
    res = mod.smooth([0.4, 1.3])
    model = from_statsmodels(mod.ssm, diffuse=True)
    errs, filt, _ = compare(model, y[:, None], res, d=res.nobs_diffuse)
    assert max(errs.values()) < 1e-9, errs


def test_known_start_matches_statsmodels_known():
    rng = np.random.default_rng(5)
    F = np.array([[0.8, 0.2], [-0.1, 0.5]])
    H = np.array([[1.0, 0.5], [0.2, -1.0]])
    Q, R = np.array([[0.5, 0.1], [0.1, 0.3]]), np.array([[0.4, 0.05], [0.05, 0.2]])
    a1, P1 = np.array([1.0, -2.0]), np.array([[2.0, 0.3], [0.3, 1.0]])
    y = rng.standard_normal((40, 2))
    y[[3, 7], 0] = np.nan
    y[12] = np.nan
    ssm = KalmanSmoother(k_endog=2, k_states=2, k_posdef=2)
    ssm.bind(np.ascontiguousarray(y))
    ssm["transition"], ssm["design"], ssm["selection"] = F, H, np.eye(2)
    ssm["state_cov"], ssm["obs_cov"] = Q, R
    ssm.initialize_known(a1, P1)
    res = ssm.smooth()
    model = LinearGaussianSSM(F, H, Q, R, a1=a1, P1=P1)
    filt = kalman_filter(model, y)
    smooth = rts_smoother(model, filt)
    assert not hasattr(filt, "n_diffuse")
    assert rel_err(filt.loglik, res.llf) < 1e-10
    assert rel_err(filt.x_pred, res.predicted_state[:, :40].T) < 1e-9
    assert rel_err(filt.x_filt, res.filtered_state.T) < 1e-9
    assert rel_err(smooth.x_smooth, res.smoothed_state.T) < 1e-9
    assert rel_err(smooth.P_smooth, np.moveaxis(res.smoothed_state_cov, -1, 0)) < 1e-9
    assert smooth.x0_smooth is None and np.isnan(smooth.G[0]).all()
    # x0, P0 with a1 = F x0, P1 = F P0 F' + Q is the same model
    x0, P0 = np.array([0.3, 0.1]), np.eye(2)
    m0 = LinearGaussianSSM(F, H, Q, R, x0=x0, P0=P0)
    m1 = LinearGaussianSSM(F, H, Q, R, a1=F @ x0, P1=F @ P0 @ F.T + Q)
    f0, f1 = kalman_filter(m0, y), kalman_filter(m1, y)
    assert abs(f0.loglik - f1.loglik) < 1e-12 * abs(f0.loglik)
    np.testing.assert_allclose(rts_smoother(m1, f1).x_smooth, rts_smoother(m0, f0).x_smooth,
                               rtol=1e-12, atol=1e-12)


# -- KFAS --------------------------------------------------------------------------

def read_kfas(name, n, m):
    """KFAS output from statsmodels' results folder: vectors as (T, k) arrays and
    matrices as (T, k, k) (column-major in the file), or only their entry sums
    (key ``sum<NAME>``) where the file holds just those."""
    import pandas as pd
    df = pd.read_csv(RESULTS / f"results_exact_initial_{name}_R.csv")
    out = {"llf": float(df["llf"].iloc[0])}
    for key in ("a", "att", "alphahat", "r0", "r1", "v", "F", "Finf", "etahat", "epshat",
                "Veps"):
        cols = [c for c in df.columns if c.rsplit("_", 1)[0] == key]
        out[key] = df[cols].values
    for key, k in (("P", n), ("Pinf", n), ("V", n), ("N0", n), ("N1", n), ("N2", n),
                   ("Veta", None)):
        cols = [c for c in df.columns if c.rsplit("_", 1)[0] == key]
        if cols:
            k = int(round(len(cols) ** 0.5))
            out[key] = df[cols].values.reshape(-1, k, k).transpose(0, 2, 1)
        if "sum" + key in df.columns:
            out["sum" + key] = df["sum" + key].values
    return out


def _kfas_case(name, y, model, *, d, state_tol_diffuse=True):
    """Largest relative errors of kflib against the KFAS results of case ``name``."""
    T, m = y.shape
    kfas = read_kfas(name, model.n, m)
    filt = kalman_filter(model, y)
    smooth = rts_smoother(model, filt)
    assert filt.n_diffuse == d
    # KFAS leaves out -1/2 log(2 pi) for the components with F_inf > 0
    nonsingular = np.nan_to_num(kfas["Finf"][:d]) > 0
    const = -0.5 * np.log(2 * np.pi) * (nonsingular & ~np.isnan(y[:d])).sum()
    errs = {"loglik": rel_err(filt.loglik, kfas["llf"] + const)}
    s = slice(0 if state_tol_diffuse else d, T)
    errs["x_pred"] = rel_err(filt.x_pred[s], kfas["a"][:T][s])
    errs["x_filt"] = rel_err(filt.x_filt[s], kfas["att"][:T][s])
    errs["x_smooth"] = rel_err(smooth.x_smooth[s], kfas["alphahat"][:T][s])
    for mine, key in ((filt.P_pred, "P"), (filt.P_inf_pred, "Pinf"), (smooth.P_smooth, "V")):
        if key in kfas:
            errs[key] = rel_err(mine, np.nan_to_num(kfas[key][:T]))
        else:
            errs["sum" + key] = rel_err(mine.sum(axis=(1, 2)),
                                        np.nan_to_num(kfas["sum" + key][:T]))
    return errs


def test_kfas_local_level():
    y = np.r_[10.2394, [1.0] * 9]
    model = LinearGaussianSSM(1, 1, 8.253, 1.993, diffuse=True)
    errs = _kfas_case("local_level", y[:, None], model, d=1)
    assert max(errs.values()) < 1e-10, errs


@pytest.mark.parametrize("missing", [False, True])
def test_kfas_local_linear_trend(missing):
    y = np.r_[10.2394, np.nan if missing else 4.2039, 6.123123, [1.0] * 7]
    model = LinearGaussianSSM([[1, 1], [0, 1]], [[1, 0]], np.diag([8.253, 2.334]), 1.993,
                              diffuse=True)
    name = "local_linear_trend" + ("_missing" if missing else "")
    errs = _kfas_case(name, y[:, None], model, d=3 if missing else 2)
    assert max(errs.values()) < 1e-10, errs


def test_kfas_common_level():
    theta, s2mu = 0.1111, 3.2324
    y = np.column_stack([np.r_[10.2394, [1] * 9], np.r_[8.2304, [1] * 9]]).astype(float)
    model = LinearGaussianSSM(np.eye(2), [[1, 0], [theta, 1]], np.diag([s2mu, 0.0]),
                              np.eye(2), diffuse=True)
    errs = _kfas_case("common_level", y, model, d=1)
    assert max(errs.values()) < 1e-10, errs


def test_common_level_restricted_is_koopman_1997():
    # (the KFAS file for this case has its state rows shifted by one step)
    theta, s2mu = 0.1111, 3.2324
    y = np.column_stack([np.r_[10.2394, [1] * 9], np.r_[8.2304, [1] * 9]]).astype(float)
    model = LinearGaussianSSM(1, [[1], [theta]], s2mu, np.eye(2), diffuse=True)
    filt = kalman_filter(model, y)
    phi = 1 / (1 + theta ** 2)
    assert filt.n_diffuse == 1
    np.testing.assert_allclose(filt.x_pred[1], [phi * (y[0, 0] + theta * y[0, 1])], rtol=1e-14)
    np.testing.assert_allclose(filt.P_pred[1], [[phi + s2mu]], rtol=1e-14)


def _var1_data(missing=False):
    data = _macro()[["realgdp", "realcons"]]
    y = (np.diff(np.log(data.values[:21]), axis=0) * 400)
    if missing:
        y = y.copy()
        y[0:5, 0] = np.nan
        y[8:12, :] = np.nan
    return y


VAR_F = np.array([[0.5, 0.3], [0.2, 0.4]])
VAR_Q = np.array([[2.0, 0.0], [0.0, 3.0]])


@pytest.mark.parametrize("case", ["var1", "var1_measurement_error", "var1_missing",
                                  "var1_mixed"])
def test_kfas_var1(case):
    y = _var1_data(missing=case == "var1_missing")
    R = np.diag([4.0, 5.0]) if case == "var1_measurement_error" else np.zeros((2, 2))
    if case == "var1_mixed":
        from scipy.linalg import solve_discrete_lyapunov
        # x_2 is stationary given x_1: its variance solves the Lyapunov
        # equation of its own AR(1) coefficient 0.4 with variance 3
        p22 = solve_discrete_lyapunov(np.array([[0.4]]), np.array([[3.0]]))
        model = LinearGaussianSSM(VAR_F, np.eye(2), VAR_Q, R, diffuse=[True, False],
                                  P1=p22)
        np.testing.assert_allclose(p22, [[3.5714285714285716]], rtol=1e-14)
    else:
        model = LinearGaussianSSM(VAR_F, np.eye(2), VAR_Q, R, diffuse=True)
    d = 2 if case == "var1_missing" else 1
    # KFAS's diffuse-step states for the mixed start are known to be off (see
    # statsmodels' test_exact_diffuse_filtering); those are checked against
    # statsmodels below instead
    errs = _kfas_case(case, y, model, d=d, state_tol_diffuse=case != "var1_mixed")
    assert max(errs.values()) < 1e-9, errs


def test_var1_mixed_matches_statsmodels():
    from statsmodels.tsa.statespace.varmax import VARMAX
    y = _var1_data()
    mod = VARMAX(y, order=(1, 0), trend="n")
    mod.update(np.r_[0.5, 0.3, 0.2, 0.4, 2 ** 0.5, 0, 3 ** 0.5])
    init = Initialization(2)
    init.set(0, "diffuse")
    init.set(1, "stationary")
    mod.ssm.initialize(init)
    res = mod.ssm.smooth()
    P1 = res.initial_state_cov[1:, 1:]
    model = from_statsmodels(mod.ssm, diffuse=[True, False], P1=P1)
    errs, _, _ = compare(model, y, res, d=1)
    assert max(errs.values()) < 1e-10, errs


def test_kfas_dynamic_factor():
    # DynamicFactor(k_factors=1, factor_order=2): loadings 0.5, 1.0, idiosyncratic
    # variances 1.5, 2.0, factor AR coefficients 0.9, 0.1; all states diffuse
    data = _macro()[["realgdp", "realcons"]]
    y = np.diff(np.log(data.values[:21]), axis=0) * 400
    model = LinearGaussianSSM([[0.9, 0.1], [1.0, 0.0]], [[0.5, 0.0], [1.0, 0.0]],
                              np.diag([1.0, 0.0]), np.diag([1.5, 2.0]), diffuse=True)
    # KFAS's states in the diffuse steps disagree with statsmodels here too
    errs = _kfas_case("dfm", y, model, d=2, state_tol_diffuse=False)
    assert max(errs.values()) < 1e-9, errs


# -- behaviour -------------------------------------------------------------------------

def test_nondiagonal_R_in_the_diffuse_steps_matches_statsmodels():
    rng = np.random.default_rng(8)
    F = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.7]])
    H = np.array([[1.0, 0.0, 1.0], [0.5, 0.0, -1.0]])
    Q = np.diag([0.3, 0.05, 1.0])
    R = np.array([[1.0, 0.6], [0.6, 2.0]])
    y = rng.standard_normal((30, 2)).cumsum(0)
    y[1, 1] = np.nan
    ssm = KalmanSmoother(k_endog=2, k_states=3, k_posdef=3)
    ssm.bind(np.ascontiguousarray(y))
    ssm["transition"], ssm["design"], ssm["selection"] = F, H, np.eye(3)
    ssm["state_cov"], ssm["obs_cov"] = Q, R
    init = Initialization(3)
    init.set((0, 2), "diffuse")
    init.set(2, "known", constant=[0.0], stationary_cov=[[1 / 0.51]])
    ssm.initialize(init)
    res = ssm.smooth()
    model = LinearGaussianSSM(F, H, Q, R, diffuse=[True, True, False], P1=[[1 / 0.51]])
    errs, _, _ = compare(model, y, res, d=res.nobs_diffuse)
    assert max(errs.values()) < 1e-9, errs


def test_batch_equals_one_series_at_a_time():
    model = LinearGaussianSSM([[1, 1], [0, 1]], [[1, 0]], np.diag([0.5, 0.1]), 1.0,
                              diffuse=True)
    rng = np.random.default_rng(2)
    y = rng.standard_normal((3, 25, 1)).cumsum(1)
    y[1, 0:3] = np.nan                      # a longer diffuse period for one series
    y[2, 4] = np.nan
    fb = kalman_filter(model, y)
    sb = rts_smoother(model, fb)
    assert list(fb.n_diffuse) == [2, 5, 2]
    for b in range(3):
        f = kalman_filter(model, y[b])
        s = rts_smoother(model, f)
        np.testing.assert_allclose(fb.loglik[b], f.loglik, rtol=1e-13)
        np.testing.assert_allclose(fb.x_filt[b], f.x_filt, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(sb.x_smooth[b], s.x_smooth, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(sb.P_smooth[b], s.P_smooth, rtol=1e-10, atol=1e-10)


def test_fast_paths_hand_over_for_a_time1_start():
    model = LinearGaussianSSM([[1, 1], [0, 1]], [[1, 0]], np.diag([0.5, 0.1]), 1.0,
                              diffuse=True)
    y = np.random.default_rng(0).standard_normal((200, 1)).cumsum(0)
    ref = kalman_filter(model, y)
    refs = rts_smoother(model, ref)
    for filt_fn, smooth_fn in ((fast_filter, fast_smoother), (scan_filter, scan_smoother)):
        f = filt_fn(model, y)
        assert f.n_diffuse == 2
        assert abs(f.loglik - ref.loglik) <= 1e-12 * abs(ref.loglik)
        np.testing.assert_allclose(smooth_fn(model, f).x_smooth, refs.x_smooth, rtol=1e-12)
    # a known start too
    mk = model.replace(a1=[1.0, 0.0], P1=np.eye(2), diffuse=None)
    assert abs(fast_filter(mk, y).loglik - kalman_filter(mk, y).loglik) < 1e-9


def test_undetermined_diffuse_state_cannot_be_smoothed():
    # the second state never reaches the observations
    model = LinearGaussianSSM(np.eye(2), [[1.0, 0.0]], np.eye(2), 1.0, diffuse=True)
    filt = kalman_filter(model, np.ones((5, 1)))
    assert filt.n_diffuse == 5
    with pytest.raises(ValueError, match="diffuse"):
        rts_smoother(model, filt)


def test_start_validation():
    kw = dict(F=1.0, H=1.0, Q=1.0, R=1.0)
    with pytest.raises(ValueError, match="not both"):
        LinearGaussianSSM(**kw, x0=[0.0], P0=[[1.0]], a1=[0.0], P1=[[1.0]])
    with pytest.raises(ValueError, match="needs a start"):
        LinearGaussianSSM(**kw)
    with pytest.raises(ValueError, match="together"):
        LinearGaussianSSM(**kw, a1=[0.0])
    with pytest.raises(ValueError, match="together"):
        LinearGaussianSSM(**kw, x0=[0.0])
    with pytest.raises(TypeError, match="diffuse"):
        LinearGaussianSSM(**kw, diffuse=[1])
    with pytest.raises(ValueError, match=r"diffuse.*shape \(1,\)"):
        LinearGaussianSSM(**kw, diffuse=[True, False])
    k2 = dict(F=np.eye(2), H=[[1.0, 1.0]], Q=np.eye(2), R=1.0)
    with pytest.raises(ValueError, match="P1 is required"):
        LinearGaussianSSM(**k2, diffuse=[True, False])
    with pytest.raises(ValueError, match="zero in the rows and columns"):
        LinearGaussianSSM(**k2, diffuse=[True, False], P1=np.eye(2))
    with pytest.raises(ValueError, match="P1 must have shape"):
        LinearGaussianSSM(**k2, diffuse=[True, False], P1=np.eye(3))
    with pytest.raises(ValueError, match="P1 must be positive semidefinite"):
        LinearGaussianSSM(**k2, a1=[0, 0], P1=[[1.0, 0], [0, -1.0]])
    m = LinearGaussianSSM(**k2, diffuse=[True, False], P1=[[2.0]])
    np.testing.assert_array_equal(m.P1, [[0, 0], [0, 2.0]])
    np.testing.assert_array_equal(m.P_inf, [[1.0, 0], [0, 0]])
    assert m.initialization == "diffuse" and m.x0 is None
    assert m.replace(x0=[0, 0], P0=np.eye(2)).initialization == "x0"
    with pytest.raises(ValueError, match="simulate"):
        kflib.simulate(m, 10, rng=0)


def test_time_varying_regression_with_diffuse_coefficients_matches_statsmodels():
    # y_t = z_t' beta + e_t with a diffuse beta (the exact diffuse start gives
    # least squares on the first observations), time-varying H
    rng = np.random.default_rng(6)
    T, k = 40, 3
    Z = rng.standard_normal((T, 1, k))
    y = (Z[:, 0] @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.standard_normal(T))[:, None]
    y[1] = np.nan
    ssm = KalmanSmoother(k_endog=1, k_states=k, k_posdef=k)
    ssm.bind(np.ascontiguousarray(y))
    ssm["design"] = np.ascontiguousarray(np.moveaxis(Z, 0, -1))
    ssm["transition"], ssm["selection"] = np.eye(k), np.eye(k)
    ssm["state_cov"], ssm["obs_cov"] = np.zeros((k, k)), [[0.09]]
    ssm.initialize(Initialization(k, "diffuse"))
    res = ssm.smooth()
    model = LinearGaussianSSM(np.eye(k), Z, np.zeros((k, k)), 0.09, diffuse=True)
    errs, filt, smooth = compare(model, y, res, d=res.nobs_diffuse)
    assert filt.n_diffuse == k + 1                  # one step is missing
    assert max(errs.values()) < 1e-9, errs
    # with no state noise, the smoothed beta is least squares on all the data
    ok = ~np.isnan(y[:, 0])
    beta = np.linalg.lstsq(Z[ok, 0], y[ok, 0], rcond=None)[0]
    np.testing.assert_allclose(smooth.x_smooth[0], beta, rtol=1e-10)
    np.testing.assert_allclose(smooth.P_smooth[0],
                               0.09 * np.linalg.inv(Z[ok, 0].T @ Z[ok, 0]), rtol=1e-9)
