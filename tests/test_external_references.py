"""kflib against reference results nobody here wrote.

The expected numbers are the ones statsmodels ships with its own tests: KFAS
(R), FKF (R), MATLAB's ssm toolbox, Stata's sspace and Kim and Nelson's GAUSS
programs. They are read at test time from the installed statsmodels package
(``statsmodels/tsa/statespace/tests/results/``; a log-likelihood that
statsmodels writes into a test method is read from that test file's source),
never copied here. Only the models are written out: their matrices and
parameter values, as statsmodels' tests set them up.

Every case runs on each filter path (``kalman_filter``, ``fast_filter``,
``scan_filter``) and, where the reference has smoothed output, each smoother
path (``rts_smoother``, ``fast_smoother``, ``scan_smoother`` and
``kflib.disturbance.disturbance_smoother``, all fed the reference filter's
output). Each case is given its start twice: as the equivalent time-0 start
``x0, P0`` (every path's own recursion) and through the ``a1, P1`` (or
``diffuse``) keywords. A few cases exist only with the second (see
``TIME_1_ONLY``).

Each quantity is compared to the precision its reference publishes: 4
decimals for the MATLAB, Stata and GAUSS output, half a unit in the last
printed digit for a log-likelihood statsmodels prints, statsmodels' own
tolerance where the published model parameters are rounded, and close to full
KFAS precision elsewhere. A quantity is compared on its own scale:
``max |kflib - reference| <= atol + rtol * max |reference|``.

KFAS's smoothed disturbances are compared twice: from the disturbance
smoother, and through the smoothed states: with the state disturbance
entering as ``x_{t+1} = F x_t + eta_t``, ``E[eta_t | y] = x_{t+1|n} - F x_{t|n}``
and its variance follows from the smoothed covariances and the lag-one
covariance ``P_lag1``; ``E[eps_t | y] = y_t - H x_{t|n}`` with variance
``H P_{t|n} H'`` for an observed component (and ``R_ii`` for a missing one,
with R diagonal).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.resources
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
from statsmodels import datasets
from statsmodels.tsa.statespace.tests.results import (results_kalman_filter,
                                                      results_structural)

from kflib import LinearGaussianSSM, kalman_filter, rts_smoother
from kflib.fast import fast_filter, fast_smoother
from kflib.scan import scan_filter, scan_smoother

SM_TESTS = importlib.resources.files("statsmodels.tsa.statespace.tests")
RESULTS = SM_TESTS / "results"
LOG_2PI = np.log(2.0 * np.pi)

FILTERS = {"kalman_filter": kalman_filter, "fast_filter": fast_filter,
           "scan_filter": scan_filter}
SMOOTHERS = {"rts_smoother": rts_smoother, "fast_smoother": fast_smoother,
             "scan_smoother": scan_smoother}

# the precision of output printed to 4 decimals (as statsmodels' assert_almost_equal(..., 4))
DECIMALS_4 = dict(rtol=0.0, atol=1.5e-4)


# ---------------------------------------------------------------------------
# Reading the references


def read_csv(name: str, **kwargs) -> pd.DataFrame:
    with (RESULTS / name).open("rb") as fh:
        return pd.read_csv(fh, **kwargs)


def constant_in_test(filename: str, cls: str, method: str) -> tuple[float, float]:
    """The number a statsmodels test method asserts, read from its source,
    and half a unit in its last printed digit.

    The method must hold one ``assert_*(actual, <number>, ...)`` call; its
    second argument (a literal, possibly negated) is the number.
    """
    source = (SM_TESTS / filename).read_text()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for fn in node.body:
                if isinstance(fn, ast.FunctionDef) and fn.name == method:
                    calls = [c for c in ast.walk(fn) if isinstance(c, ast.Call)
                             and getattr(c.func, "id", "").startswith("assert_")]
                    assert len(calls) == 1, (filename, cls, method)
                    literal = ast.get_source_segment(source, calls[0].args[1])
                    return float(ast.literal_eval(calls[0].args[1])), half_last_digit(literal)
    raise LookupError(f"{cls}.{method} not found in {filename}")


def half_last_digit(literal: str) -> float:
    """Half a unit in the last digit of a printed decimal number: its rounding."""
    decimals = len(literal.split(".")[1]) if "." in literal else 0
    return 0.5 * 10.0 ** -decimals


def macrodata() -> pd.DataFrame:
    dta = datasets.macrodata.load_pandas().data
    dta.index = pd.date_range(start="1959-01-01", end="2009-07-01", freq="QS")
    return dta


# ---------------------------------------------------------------------------
# Models and kflib quantities


# How a case's model is given its start: "x0" (the state at time 0, every
# path's own recursion) or "a1" (LinearGaussianSSM's a1/P1 keywords, the
# exact initial filter). Set by case() while it builds a case.
_START = ["x0"]
STARTS = ("x0", "a1")


def has_time_1_start() -> bool:
    return {"a1", "P1", "diffuse"} <= {f.name for f in dataclasses.fields(LinearGaussianSSM)}


def model_at_time_1(F, H, Q, R, a1, P1) -> LinearGaussianSSM:
    """A model whose state at time 1 is N(a1, P1) (statsmodels' known start).

    With start "a1", through the ``a1``/``P1`` keywords. With start "x0",
    through the equivalent time-0 start x0 = F^{-1} a1,
    P0 = F^{-1} (P1 - Q) F^{-T}, which predicts a1 and P1 (F invertible).
    """
    if _START[0] == "a1":
        return LinearGaussianSSM(F=F, H=H, Q=Q, R=R, a1=a1, P1=P1)
    F0 = F if np.ndim(F) == 2 else F[0]
    Q0 = Q if np.ndim(Q) == 2 else Q[0]
    Finv = np.linalg.inv(F0)
    P0 = Finv @ (np.asarray(P1) - Q0) @ Finv.T
    return LinearGaussianSSM(F=F, H=H, Q=Q, R=R, x0=Finv @ np.asarray(a1),
                             P0=0.5 * (P0 + P0.T))


def mat(model, name, t):
    A = getattr(model, name)
    return A if A.ndim == 2 else A[t]


def next_prediction(model, filt):
    """a_{t+1|t} and P_{t+1|t} for t = 1..n (statsmodels' predicted_state[:, 1:])."""
    n = len(filt.x_filt)
    F, Q = mat(model, "F", n - 1), mat(model, "Q", n - 1)
    x = np.concatenate([filt.x_pred[1:], (F @ filt.x_filt[-1])[None]])
    P = np.concatenate([filt.P_pred[1:], (F @ filt.P_filt[-1] @ F.T + Q)[None]])
    return x, P


def loglik_terms(filt, y) -> np.ndarray:
    """log p(y_t | y_{1:t-1}) per step, from the filter's innovations and S."""
    out = np.zeros(len(y))
    for t in range(len(y)):
        o = ~np.isnan(y[t])
        if o.any():
            S = filt.S[t][np.ix_(o, o)]
            nu = filt.innovations[t][o]
            out[t] = -0.5 * (o.sum() * LOG_2PI + np.linalg.slogdet(S)[1]
                             + nu @ np.linalg.solve(S, nu))
    return out


def state_disturbance(model, smooth, select):
    """E[eta_t | y] and Var(eta_t | y), t = 1..n, for x_{t+1} = F x_t + G eta_t.

    ``select`` picks the components of x_{t+1} - F x_t that are eta (G has
    those unit columns). At t = n nothing is observed later: mean 0, variance Q.
    """
    xs, Ps, C = smooth.x_smooth, smooth.P_smooth, smooth.P_lag1
    n = len(xs)
    mean = np.zeros((n, len(select)))
    var = np.empty((n, len(select), len(select)))
    for t in range(n - 1):
        F = mat(model, "F", t + 1)
        d = xs[t + 1] - F @ xs[t]
        # Var(x_{t+1} - F x_t | y) with Cov(x_{t+1}, x_t | y) = P_lag1[t + 1]
        V = Ps[t + 1] + F @ Ps[t] @ F.T - C[t + 1] @ F.T - F @ C[t + 1].T
        mean[t] = d[select]
        var[t] = V[np.ix_(select, select)]
    var[-1] = mat(model, "Q", n - 1)[np.ix_(select, select)]
    return mean, var


def measurement_disturbance(model, smooth, y):
    """E[eps_t | y] and Var(eps_t | y) per component (R diagonal), t = 1..n."""
    n, m = y.shape
    mean, var = np.zeros((n, m)), np.empty((n, m))
    for t in range(n):
        H, R = mat(model, "H", t), mat(model, "R", t)
        assert np.count_nonzero(R - np.diag(np.diag(R))) == 0
        o = ~np.isnan(y[t])
        mean[t, o] = (y[t] - H @ smooth.x_smooth[t])[o]
        var[t] = np.where(o, np.diag(H @ smooth.P_smooth[t] @ H.T), np.diag(R))
    return mean, var


# ---------------------------------------------------------------------------
# Cases


@dataclasses.dataclass
class _Check:
    """One reference quantity and how to get it from kflib's output."""

    want: np.ndarray
    got: Callable          # filter check: got(filt); smoother check: got(filt, smooth)
    rtol: float = 1e-9
    atol: float = 0.0


Check = _Check


@dataclasses.dataclass
class Case:
    model: LinearGaussianSSM
    y: np.ndarray
    filter_checks: dict
    smoother_checks: dict = dataclasses.field(default_factory=dict)
    disturbance_checks: dict = dataclasses.field(default_factory=dict)


def _kfas_multivariate(desired, model, y, loglik, *, univariate_first_only, rtol, rtol_det):
    """The checks of KFAS's results_smoothing(2)_R: all filter and smoother moments."""
    D = desired
    cols = lambda *names: D[list(names)].to_numpy()  # noqa: E731
    k = model.n
    v_cols = ["v1"] if univariate_first_only else ["v1", "v2", "v3"]
    F_cols = ["F1"] if univariate_first_only else ["F1", "F2", "F3"]
    sel = list(range(len(v_cols)))
    value, published = loglik
    tol = dict(rtol=rtol)
    det_tol = dict(rtol=rtol_det)
    filt_checks = {
        "loglik": Check(np.array([value]), lambda f: np.array([f.loglik]), rtol=1e-12,
                        atol=published),
        "a(t+1|t)": Check(cols("a1", "a2", "a3"), lambda f: next_prediction(model, f)[0],
                          **tol),
        "det P(t+1|t)": Check(cols("detP"),
                              lambda f: np.linalg.det(next_prediction(model, f)[1])[:, None],
                              **det_tol),
        "forecasts m": Check(cols("m1", "m2", "m3"), lambda f: f.x_pred @ model.H.T, **tol),
        "innovations v": Check(cols(*v_cols), lambda f: f.innovations[:, sel], **tol),
        "innovation var F": Check(cols(*F_cols),
                                  lambda f: np.diagonal(f.S, axis1=1, axis2=2)[:, sel], **tol),
    }
    smooth_checks = {
        "alphahat": Check(cols("alphahat1", "alphahat2", "alphahat3"),
                          lambda f, s: s.x_smooth, **tol),
        "det V": Check(cols("detV"), lambda f, s: np.linalg.det(s.P_smooth)[:, None],
                       **det_tol),
        "muhat": Check(cols("muhat1", "muhat2", "muhat3"),
                       lambda f, s: s.x_smooth @ model.H.T, **tol),
        "etahat": Check(cols("etahat1", "etahat2", "etahat3"),
                        lambda f, s: state_disturbance(model, s, list(range(k)))[0], **tol),
        "det Var(eta)": Check(cols("detVeta"), lambda f, s: np.linalg.det(
            state_disturbance(model, s, list(range(k)))[1])[:, None], **det_tol),
        "epshat": Check(cols("epshat1", "epshat2", "epshat3"),
                        lambda f, s: measurement_disturbance(model, s, y)[0], **tol),
        "Var(eps)": Check(cols("Veps1", "Veps2", "Veps3"),
                          lambda f, s: measurement_disturbance(model, s, y)[1], **tol),
    }
    # kflib's w_{t+1} (entering x_{t+1}) is KFAS's eta_t; KFAS's r_t, N_t are
    # kflib's r, N at t + 1, and zero after the last step
    dist_checks = {
        "etahat": Check(cols("etahat1", "etahat2", "etahat3")[:-1], lambda d: d.eta_hat[1:],
                        **tol),
        "det Var(eta)": Check(cols("detVeta")[:-1],
                              lambda d: np.linalg.det(d.eta_cov[1:])[:, None], **det_tol),
        "epshat": Check(cols("epshat1", "epshat2", "epshat3"), lambda d: d.eps_hat, **tol),
        "Var(eps)": Check(cols("Veps1", "Veps2", "Veps3"),
                          lambda d: np.diagonal(d.eps_cov, axis1=1, axis2=2), **tol),
        "r": Check(cols("r1", "r2", "r3"), lambda d: after_last(d.r[1:]), **tol),
        "det N": Check(cols("detN"), lambda d: after_last(np.linalg.det(d.N[1:]))[:, None],
                       **det_tol),
    }
    return Case(model, y, filt_checks, smooth_checks, dist_checks)


def after_last(a: np.ndarray) -> np.ndarray:
    """``a`` with a zero step appended (r and N after the last observation)."""
    return np.concatenate([a, np.zeros((1,) + a.shape[1:])])


def case_kfas_smoothing():
    """KFAS results_smoothing_R: three independent random walks plus noise,
    long blocks of missing values, approximate diffuse start P1 = 1e6 I."""
    obs = macrodata()[["realgdp", "realcons", "realinv"]].diff().iloc[1:]
    obs.iloc[0:50, 0] = np.nan
    obs.iloc[19:70, 1] = np.nan
    obs.iloc[39:90, 2] = np.nan
    obs.iloc[119:130, 0] = np.nan
    obs.iloc[119:130, 2] = np.nan
    y = obs.to_numpy()
    I3 = np.eye(3)
    model = model_at_time_1(I3, I3, I3, I3, np.zeros(3), 1e6 * I3)
    loglik = constant_in_test("test_smoothing.py", "TestMultivariateMissing", "test_loglike")
    return _kfas_multivariate(read_csv("results_smoothing_R.csv"), model, y, loglik,
                              univariate_first_only=False, rtol=1e-9, rtol_det=1e-9)


def case_kfas_smoothing2():
    """KFAS results_smoothing2_R: a VAR(1) in the state with correlated
    disturbances, observed with noise; approximate diffuse start P1 = 1e6 I.
    KFAS filters one component at a time, so only the first component's
    innovation and its variance are the multivariate filter's."""
    obs = np.log(macrodata()[["realgdp", "realcons", "realinv"]]).diff().iloc[1:]
    R = np.diag([0.0000640649, 0.0000572802, 0.0017088585])
    F = np.array([[-0.1119908792, 0.8441841604, 0.0238725303],
                  [0.2629347724, 0.4996718412, -0.0173023305],
                  [-3.2192369082, 4.1536028244, 0.4514379215]])
    Q = np.array([[0.0000640649, 0.0000388496, 0.0002148769],
                  [0.0000388496, 0.0000572802, 0.000001555],
                  [0.0002148769, 0.000001555, 0.0017088585]])
    model = model_at_time_1(F, np.eye(3), Q, R, np.zeros(3), 1e6 * np.eye(3))
    loglik = constant_in_test("test_smoothing.py", "TestMultivariateVAR", "test_loglike")
    # With P1 = 1e6 I and R ~ 1e-5, the first updates cancel numbers of size
    # 1e6 down to 1e-5: any float64 filter keeps ~1e-6 relative rounding in the
    # early covariances (statsmodels' own test allows 1e-6 absolute on the means).
    return _kfas_multivariate(read_csv("results_smoothing2_R.csv"), model, obs.to_numpy(),
                              loglik, univariate_first_only=True, rtol=1e-7, rtol_det=2e-5)


# The AR(3) of the change in US wholesale prices (wpi1), at the parameters
# Stata's sspace estimates (statsmodels' test_smoothing.py), in the Hamilton
# representation: x_t = (y_t, y_{t-1}, y_{t-2}), no measurement noise,
# stationary start.
WPI_AR = (0.5270715, 0.0952613, 0.2580355)
WPI_SIGMA2 = 0.5307459


def wpi_ar3(missing: bool):
    wpi = read_csv("results_wpi1_ar3_stata.csv")
    dwpi = wpi["wpi"].diff()
    if missing:
        dwpi.iloc[10:21] = np.nan
    y = dwpi.iloc[1:].to_numpy()[:, None]
    F = np.array([WPI_AR, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    Q = np.zeros((3, 3))
    Q[0, 0] = WPI_SIGMA2
    P1 = scipy.linalg.solve_discrete_lyapunov(F, Q)
    H = np.array([[1.0, 0.0, 0.0]])
    return model_at_time_1(F, H, Q, np.zeros((1, 1)), np.zeros(3), P1), y, wpi


MATLAB_NAMES = ["a1", "a2", "a3", "detP", "alphahat1", "alphahat2", "alphahat3", "detV",
                "eps", "epsvar", "eta", "etavar"]


def _matlab_checks(model, y, matlab, with_eta: bool):
    cols = lambda *names: matlab[list(names)].to_numpy()  # noqa: E731
    filt_checks = {
        "a(t|t-1) [MATLAB]": Check(cols("a1", "a2", "a3"), lambda f: f.x_pred, **DECIMALS_4),
        "det P(t|t-1) [MATLAB]": Check(cols("detP"), lambda f: np.linalg.det(f.P_pred)[:, None],
                                       **DECIMALS_4),
    }
    smooth_checks = {
        "alphahat [MATLAB]": Check(cols("alphahat1", "alphahat2", "alphahat3"),
                                   lambda f, s: s.x_smooth, **DECIMALS_4),
        "det V [MATLAB]": Check(cols("detV"), lambda f, s: np.linalg.det(s.P_smooth)[:, None],
                                **DECIMALS_4),
        "eps [MATLAB]": Check(cols("eps"), lambda f, s: measurement_disturbance(model, s, y)[0],
                              **DECIMALS_4),
        "Var(eps) [MATLAB]": Check(cols("epsvar"),
                                   lambda f, s: measurement_disturbance(model, s, y)[1],
                                   **DECIMALS_4),
    }
    dist_checks = {
        "eps [MATLAB]": Check(cols("eps"), lambda d: d.eps_hat, **DECIMALS_4),
        "Var(eps) [MATLAB]": Check(cols("epsvar"), lambda d: d.eps_cov[:, :, 0], **DECIMALS_4),
    }
    if with_eta:
        smooth_checks["eta [MATLAB]"] = Check(
            cols("eta"), lambda f, s: state_disturbance(model, s, [0])[0], **DECIMALS_4)
        smooth_checks["Var(eta) [MATLAB]"] = Check(
            cols("etavar"), lambda f, s: state_disturbance(model, s, [0])[1][:, :, 0],
            **DECIMALS_4)
        dist_checks["eta [MATLAB]"] = Check(cols("eta")[:-1], lambda d: d.eta_hat[1:, :1],
                                            **DECIMALS_4)
        dist_checks["Var(eta) [MATLAB]"] = Check(cols("etavar")[:-1],
                                                 lambda d: d.eta_cov[1:, :1, 0], **DECIMALS_4)
    return filt_checks, smooth_checks, dist_checks


def case_wpi1_ar3():
    """wpi1 AR(3): Stata's sspace and MATLAB's ssm toolbox."""
    model, y, stata = wpi_ar3(missing=False)
    stata = stata.iloc[1:]
    st = lambda *names: stata[list(names)].to_numpy()  # noqa: E731
    matlab = read_csv("results_wpi1_ar3_matlab_ssm.csv", header=None, names=MATLAB_NAMES)
    filt_checks, smooth_checks, dist_checks = _matlab_checks(model, y, matlab, with_eta=True)
    filt_checks.update({
        "a(t|t-1) [Stata]": Check(st("sp1", "sp2", "sp3"), lambda f: f.x_pred, **DECIMALS_4),
        "x(t|t) [Stata]": Check(st("sf1", "sf2", "sf3"), lambda f: f.x_filt, **DECIMALS_4),
        "forecast y [Stata]": Check(st("dep1"), lambda f: f.x_pred[:, :1], **DECIMALS_4),
        "standardised residual [Stata]": Check(
            st("sr1"), lambda f: f.innovations / np.sqrt(f.S[:, :, 0]), **DECIMALS_4),
    })
    smooth_checks["x(t|n) [Stata]"] = Check(st("sm1", "sm2", "sm3"),
                                            lambda f, s: s.x_smooth, **DECIMALS_4)
    return Case(model, y, filt_checks, smooth_checks, dist_checks)


def case_wpi1_missing_ar3():
    """wpi1 AR(3) with 11 missing values: MATLAB's ssm toolbox (its smoothed
    state disturbances disagree with KFAS there, see statsmodels' notes, so
    they are checked against KFAS in the kfas_smoothing3 case instead)."""
    model, y, _ = wpi_ar3(missing=True)
    matlab = read_csv("results_wpi1_missing_ar3_matlab_ssm.csv", header=None,
                      names=MATLAB_NAMES)
    filt_checks, smooth_checks, dist_checks = _matlab_checks(model, y, matlab, with_eta=False)
    return Case(model, y, filt_checks, smooth_checks, dist_checks)


def case_kfas_smoothing3():
    """KFAS results_smoothing3_R: the wpi1 AR(3) with missing values."""
    model, y, _ = wpi_ar3(missing=True)
    D = read_csv("results_smoothing3_R.csv")
    cols = lambda *names: D[list(names)].to_numpy()  # noqa: E731
    # 15 printed digits; the stationary start and the parameters' 7 digits
    # leave KFAS and kflib 1e-9 apart on the variances
    Check = functools.partial(_Check, rtol=1e-8)  # noqa: N806
    filt_checks = {
        "a(t+1|t)": Check(cols("a1", "a2", "a3"), lambda f: next_prediction(model, f)[0]),
        "det P(t+1|t)": Check(cols("detP"),
                              lambda f: np.linalg.det(next_prediction(model, f)[1])[:, None],
                              atol=1e-15),
        "forecast m": Check(cols("m"), lambda f: f.x_pred[:, :1]),
        "innovation v": Check(cols("v"), lambda f: f.innovations),
        "innovation var F": Check(cols("F"), lambda f: f.S[:, :, 0]),
    }
    smooth_checks = {
        "alphahat": Check(cols("alphahat1", "alphahat2", "alphahat3"), lambda f, s: s.x_smooth),
        "det V": Check(cols("detV"), lambda f, s: np.linalg.det(s.P_smooth)[:, None],
                       atol=1e-15),
        "muhat": Check(cols("muhat"), lambda f, s: s.x_smooth[:, :1]),
        "etahat": Check(cols("etahat"), lambda f, s: state_disturbance(model, s, [0])[0]),
        "Var(eta)": Check(cols("detVeta"),
                          lambda f, s: state_disturbance(model, s, [0])[1][:, :, 0]),
    }
    dist_checks = {
        "etahat": Check(cols("etahat")[:-1], lambda d: d.eta_hat[1:, :1]),
        "Var(eta)": Check(cols("detVeta")[:-1], lambda d: d.eta_cov[1:, :1, 0]),
        "epshat": Check(cols("epshat"), lambda d: d.eps_hat, atol=1e-12),
        "Var(eps)": Check(cols("Veps"), lambda d: d.eps_cov[:, :, 0], atol=1e-12),
        "r": Check(cols("r1", "r2", "r3"), lambda d: after_last(d.r[1:])),
        "det N": Check(cols("detN"), lambda d: after_last(np.linalg.det(d.N[1:]))[:, None],
                       atol=1e-15),
    }
    return Case(model, y, filt_checks, smooth_checks, dist_checks)


def _clark1987_model():
    true = results_kalman_filter.uc_uni
    y = np.log(np.asarray(true["data"], dtype=float)).reshape(-1, 1)
    sigma_v, sigma_e, sigma_w, phi_1, phi_2 = true["parameters"]
    F = np.array([[1.0, 0, 0, 1], [0, phi_1, phi_2, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
    Q = np.diag([sigma_v ** 2, sigma_e ** 2, 0.0, sigma_w ** 2])
    H = np.array([[1.0, 1.0, 0.0, 0.0]])
    # as in statsmodels' tests: a1 = 0, P1 = F (100 I) F'
    return model_at_time_1(F, H, Q, np.zeros((1, 1)), np.zeros(4), F @ (100 * np.eye(4)) @ F.T), y


def case_clark1987():
    """Clark (1987) univariate unobserved components of log GDP (Kim and
    Nelson's GAUSS code): filtered states and the log-likelihood after burn-in,
    published to 4 and 6 decimals."""
    true = results_kalman_filter.uc_uni
    model, y = _clark1987_model()
    start = true["start"]
    states = np.asarray(true["states"])
    return Case(model, y, {
        "loglik after burn-in": Check(np.array([true["loglike"]]),
                                      lambda f: np.array([loglik_terms(f, y)[start:].sum()]),
                                      rtol=0.0, atol=1.5e-5),
        "x(t|t) [GAUSS]": Check(states, lambda f: f.x_filt[start:][:, [0, 1, 3]], **DECIMALS_4),
    })


def _clark1989_model(missing: bool):
    true = results_kalman_filter.uc_bi
    data = np.asarray(true["data"], dtype=float)[4:]
    y = np.column_stack([np.log(data[:, 0]), data[:, 1] / 100])
    if missing:
        y[-51:, 1] = np.nan
    (sigma_v, sigma_e, sigma_w, sigma_vl, sigma_ec, phi_1, phi_2,
     alpha_1, alpha_2, alpha_3) = true["parameters"]
    H = np.zeros((2, 6))
    H[0, :2] = 1.0
    H[1, 1:4] = alpha_1, alpha_2, alpha_3
    H[1, 5] = 1.0
    F = np.zeros((6, 6))
    F[[0, 0, 1, 1, 2, 3, 4, 5], [0, 4, 1, 2, 1, 2, 4, 5]] = [1, 1, phi_1, phi_2, 1, 1, 1, 1]
    Q = np.diag([sigma_v ** 2, sigma_e ** 2, 0, 0, sigma_w ** 2, sigma_vl ** 2])
    R = np.diag([0.0, sigma_ec ** 2])
    return model_at_time_1(F, H, Q, R, np.zeros(6), F @ (100 * np.eye(6)) @ F.T), y


def case_clark1989():
    """Clark (1989) bivariate unobserved components of GDP and unemployment:
    Kim and Nelson's filtered states (4 decimals), FKF's log-likelihood
    (statsmodels' test asks for 2 decimals; with the parameters given to 6
    digits kflib is within 1e-4) and FKF's Kalman gains."""
    true = results_kalman_filter.uc_bi
    model, y = _clark1989_model(missing=False)
    start = true["start"]
    gains = read_csv("results_clark1989_R.csv")["V1"].to_numpy()[:, None]
    F = model.F
    return Case(model, y, {
        "loglik [FKF]": Check(np.array([true["loglike"]]), lambda f: np.array([f.loglik]),
                              rtol=0.0, atol=1e-4),
        "x(t|t) [GAUSS]": Check(np.asarray(true["states"]),
                                lambda f: f.x_filt[start:][:, [0, 1, 4, 5]], **DECIMALS_4),
        # FKF's gain P H' S^{-1}, premultiplied by F (Durbin and Koopman's), summed
        "sum of F K(t) [FKF]": Check(gains, lambda f: (F @ f.K).sum(axis=(1, 2))[:, None],
                                     rtol=0.0, atol=1e-4),
    })


def case_clark1989_missing():
    """Clark (1989) with the last 51 unemployment values missing: FKF's
    predicted states (statsmodels checks them to 1e-8) and the log-likelihood."""
    model, y = _clark1989_model(missing=True)
    pred = read_csv("results_clark1989_R.csv").iloc[:, 1:].to_numpy()
    loglik, published = constant_in_test("test_representation.py",
                                         "TestClark1989PartialMissing", "test_loglike")
    return Case(model, y, {
        "loglik": Check(np.array([loglik]), lambda f: np.array([f.loglik]), rtol=1e-12,
                        atol=published),
        "a(t+1|t) [FKF]": Check(pred, lambda f: next_prediction(model, f)[0],
                                rtol=0.0, atol=1e-8),
    })


def case_kim_nelson_tvp():
    """Kim and Nelson's (1989) time-varying-parameter model of US money growth
    (their GAUSS program TVP.OPT): five random-walk coefficients, a1 = 0,
    P1 = 50 I + Q. The parameters are published to 4 digits, which limits the
    agreement of the states to a few 1e-4; the GAUSS output's state for step
    t is the filtered state after observation t - 1 of the data array."""
    true = results_kalman_filter.tvp
    data = np.asarray(true["data"], dtype=float)
    y = data[:, 1:2]
    T = len(y)
    H = np.concatenate([np.ones((T, 1)), data[:, 2:6]], axis=1)[:, None, :]
    sigma_e, *sigma_v = true["parameters"]
    Q = np.diag(np.square(sigma_v))
    start = true["start"]
    model = model_at_time_1(np.eye(5), H, Q, [[sigma_e ** 2]], np.zeros(5), 50 * np.eye(5) + Q)
    return Case(model, y, {
        "loglik after burn-in": Check(np.array([true["loglike"]]),
                                      lambda f: np.array([loglik_terms(f, y)[start:].sum()]),
                                      rtol=0.0, atol=1e-5),
        "x(t|t) [GAUSS]": Check(np.asarray(true["states"]), lambda f: f.x_filt[start - 1:-1],
                                rtol=0.0, atol=5e-4),
    })


# KFAS's unobserved-components models (statsmodels' results_structural, from
# test_ucm.R) on the US unemployment rate, with statsmodels' approximate
# diffuse start a1 = 0, P1 = 1e6 I. For the "burn" models the reference is
# KFAS's exact diffuse log-likelihood, which the approximate one reproduces
# once the first k (number of states) terms are left out; the "_approx_diffuse"
# references keep every term.


def _uc_blocks(spec: dict, params):
    """(F, H, Q, R) of an unobserved-components specification, statsmodels' order
    of states (level, trend, seasonal, freq_seasonal, cycle) and of parameters
    (irregular, level, trend, seasonal, freq_seasonal, cycle var, freq, damping)."""
    params = list(params)
    take = lambda: params.pop(0)  # noqa: E731
    r = take() if spec.get("irregular") else 0.0
    Fs, Hs, Qs = [], [], []
    if spec.get("level"):
        has_trend = spec.get("trend", False)
        q_level = take() if spec.get("stochastic_level") else 0.0
        if has_trend:
            q_trend = take() if spec.get("stochastic_trend") else 0.0
            Fs.append(np.array([[1.0, 1.0], [0.0, 1.0]]))
            Hs.append([1.0, 0.0])
            Qs.append(np.diag([q_level, q_trend]))
        else:
            Fs.append(np.eye(1))
            Hs.append([1.0])
            Qs.append(np.diag([q_level]))
    if spec.get("seasonal"):
        s = spec["seasonal"]
        Fsea = np.zeros((s - 1, s - 1))
        Fsea[0] = -1.0
        Fsea[1:, :-1] = np.eye(s - 2)
        Qsea = np.zeros((s - 1, s - 1))
        Qsea[0, 0] = take()
        Fs.append(Fsea)
        Hs.append([1.0] + [0.0] * (s - 2))
        Qs.append(Qsea)
    if spec.get("freq_seasonal"):
        period = spec["freq_seasonal"][0]["period"]
        q = take()
        for j in range(1, period // 2 + 1):
            lam = 2 * np.pi * j / period
            Fs.append(np.array([[np.cos(lam), np.sin(lam)], [-np.sin(lam), np.cos(lam)]]))
            Hs.append([1.0, 0.0])
            Qs.append(q * np.eye(2))
    if spec.get("cycle"):
        q, lam, rho = take(), take(), take()
        Fs.append(rho * np.array([[np.cos(lam), np.sin(lam)], [-np.sin(lam), np.cos(lam)]]))
        Hs.append([1.0, 0.0])
        Qs.append(q * np.eye(2))
    assert not params, "unused parameters"
    F = scipy.linalg.block_diag(*Fs)
    H = np.concatenate(Hs)[None, :]
    Q = scipy.linalg.block_diag(*Qs)
    return F, H, Q, np.array([[r]])


UC_BURN = ["local_level", "random_walk", "deterministic_trend",
           "local_linear_deterministic_trend", "random_walk_with_drift",
           "local_linear_trend", "smooth_trend", "random_trend"]
UC_FULL = ["cycle_approx_diffuse", "seasonal_approx_diffuse",
           "freq_seasonal_approx_diffuse", "reg_approx_diffuse"]


def uc_model(name: str):
    true = getattr(results_structural, name)
    dta = macrodata()
    y = dta["unemp"].to_numpy()[:, None]
    spec = true["models"][0]
    if spec.get("exog"):
        # the regression coefficient as a constant state, H_t = log real GDP
        (r,) = true["params"]
        x = np.log(dta["realgdp"].to_numpy())
        F, Q, R = np.eye(1), np.zeros((1, 1)), np.array([[r]])
        H = x[:, None, None]
    else:
        F, H, Q, R = _uc_blocks(spec, true["params"])
    k = F.shape[0]
    return model_at_time_1(F, H, Q, R, np.zeros(k), 1e6 * np.eye(k)), y, true


def _uc_case(name: str):
    model, y, true = uc_model(name)
    burn = 0 if name.endswith("_approx_diffuse") else model.n
    rtol = true.get("rtol", 1e-7)
    return Case(model, y, {
        "loglik [KFAS]": Check(np.array([true["llf"]]),
                               lambda f: np.array([loglik_terms(f, y)[burn:].sum()]),
                               rtol=rtol),
    })


UC_EXACT = ["local_level", "random_walk", "deterministic_trend",
            "local_linear_deterministic_trend", "random_walk_with_drift",
            "local_linear_trend", "smooth_trend", "random_trend", "cycle", "seasonal",
            "freq_seasonal", "reg"]


def _uc_exact_case(name: str):
    """The same models with the exact diffuse start (diffuse=True): KFAS's
    log-likelihood leaves out the constant of the diffuse steps, so it is
    kflib's plus n_diffuse * log(2 pi) / 2."""
    model, y, true = uc_model(name)
    exact = LinearGaussianSSM(F=model.F, H=model.H, Q=model.Q, R=model.R, diffuse=True)
    return Case(exact, y, {
        "loglik [KFAS, exact diffuse]": Check(
            np.array([true["llf"]]),
            lambda f: np.array([f.loglik + f.n_diffuse * 0.5 * LOG_2PI]), rtol=1e-9),
    })


CASES = {
    "kfas_smoothing": case_kfas_smoothing,
    "kfas_smoothing2": case_kfas_smoothing2,
    "kfas_smoothing3": case_kfas_smoothing3,
    "wpi1_ar3": case_wpi1_ar3,
    "wpi1_missing_ar3": case_wpi1_missing_ar3,
    "clark1987": case_clark1987,
    "clark1989": case_clark1989,
    "clark1989_missing": case_clark1989_missing,
    "kim_nelson_tvp": case_kim_nelson_tvp,
    **{f"kfas_uc_{name}": functools.partial(_uc_case, name) for name in UC_BURN + UC_FULL},
    **{f"kfas_uc_exact_{name}": functools.partial(_uc_exact_case, name) for name in UC_EXACT},
}


@functools.cache
def case(name: str, start: str = "x0") -> Case:
    _START[0] = start
    try:
        return CASES[name]()
    finally:
        _START[0] = "x0"


@functools.cache
def reference_filter(name: str, start: str = "x0"):
    c = case(name, start)
    return kalman_filter(c.model, c.y)


def compare(check: Check, got) -> tuple[float, float, float]:
    """(max |got - want|, allowed, max relative error on the quantity's scale)."""
    want = np.asarray(check.want, dtype=float)
    got = np.asarray(got, dtype=float)
    assert got.shape == want.shape, (got.shape, want.shape)
    missing = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), missing)
    err = float(np.max(np.abs(got - want)[~missing]))
    scale = float(np.max(np.abs(want[~missing])))
    return err, check.atol + check.rtol * scale, err / scale if scale else err


def errors(name: str, path: str, start: str = "x0") -> dict:
    """{quantity: (error, allowed, relative error)} of one path on one case."""
    c = case(name, start)
    filt = reference_filter(name, start)
    if path in FILTERS:
        if path != "kalman_filter":
            filt = FILTERS[path](c.model, c.y)
        return {q: compare(ch, ch.got(filt)) for q, ch in c.filter_checks.items()}
    if path == "disturbance_smoother":
        from kflib.disturbance import disturbance_smoother

        dist = disturbance_smoother(c.model, filt)
        return {q: compare(ch, ch.got(dist)) for q, ch in c.disturbance_checks.items()}
    smooth = SMOOTHERS[path](c.model, filt)
    return {q: compare(ch, ch.got(filt, smooth)) for q, ch in c.smoother_checks.items()}


SMOOTHED_CASES = ("kfas_smoothing", "kfas_smoothing2", "kfas_smoothing3", "wpi1_ar3",
                  "wpi1_missing_ar3")


# Clark (1989)'s transition matrix is singular (the second lag of the cycle
# enters only the observation) and Q is not in its range, so no time-0 start
# predicts statsmodels'/FKF's P1 = F (100 I) F': these cases need a1/P1.
# The exact diffuse start is a start at time 1 as well.
TIME_1_ONLY = ("clark1989", "clark1989_missing",
               *(f"kfas_uc_exact_{name}" for name in UC_EXACT))


def _params():
    for start in STARTS:
        for name in CASES:
            if start == "x0" and name in TIME_1_ONLY:
                continue
            paths = list(FILTERS) + (list(SMOOTHERS) + ["disturbance_smoother"]
                                     if name in SMOOTHED_CASES else [])
            for path in paths:
                yield pytest.param(name, path, start, id=f"{name}-{path}-{start}")


@pytest.mark.parametrize("name,path,start", list(_params()))
def test_matches_external_reference(name, path, start):
    if start == "a1" and not has_time_1_start():
        pytest.fail("LinearGaussianSSM has no a1/P1/diffuse keywords yet")
    result = errors(name, path, start)
    assert result
    bad = {q: f"error {e:.3g} > allowed {a:.3g}" for q, (e, a, _) in result.items() if e > a}
    assert not bad, f"{name} on {path} (start {start}): {bad}"


def test_smoothed_cases_have_smoother_checks():
    for name in CASES:
        c = case(name, "a1" if name in TIME_1_ONLY else "x0")
        assert bool(c.smoother_checks) == (name in SMOOTHED_CASES), name


def test_every_reference_file_is_used():
    """The files this module promises to reproduce are where it reads them."""
    for name in ("results_smoothing_R.csv", "results_smoothing2_R.csv",
                 "results_smoothing3_R.csv", "results_wpi1_ar3_stata.csv",
                 "results_wpi1_ar3_matlab_ssm.csv", "results_wpi1_missing_ar3_matlab_ssm.csv",
                 "results_clark1989_R.csv"):
        assert (RESULTS / name).is_file(), name
