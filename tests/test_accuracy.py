"""Accuracy against exact arithmetic, on models that float64 finds hard.

The reference is a Kalman filter and RTS smoother written here with mpmath at
60 significant digits: the model's float64 numbers are taken as exact, and
every product and inverse is carried with 60 digits, so that its answer is
the exact answer for that model to far below float64 round-off. Every kflib
path (the sequential reference, the fast path, the associative scan, a batch,
the smoothers and EM's log-likelihood) must agree with it to a stated
tolerance on vague starts (P0 up to 1e16) with missing values, a tiny
observation noise, no process noise and long horizons; models beyond float64
conditioning must say so (a ConditioningWarning) and keep their smoothed
covariances positive semidefinite.
"""

from __future__ import annotations

import warnings
from unittest import mock

import mpmath
import numpy as np
import pytest

import kflib.fast
import kflib.smoother
import kflib.nonlinear as nl
from kflib import LinearGaussianSSM, em, kalman_filter, rts_smoother, steady_state
from kflib.fast import fast_filter, fast_smoother
from kflib.scan import scan_filter, scan_smoother
from kflib.smoother import ConditioningWarning

DIGITS = 60
# Stated tolerances (relative, see rel_mean / rel_cov): filters and
# well-conditioned smoothing agree with exact arithmetic to a few hundred
# units of float64 round-off.
TOL = 1e-12


# -- the exact reference ------------------------------------------------------------

def _mp(A) -> mpmath.matrix:
    A = np.atleast_2d(np.asarray(A, dtype=float))
    return mpmath.matrix([[mpmath.mpf(float(v)) for v in row] for row in A])


def _at(A, t):
    return A[t] if A.ndim == 3 else A


def _sym(A):
    return (A + A.T) / 2


def _to_np(A) -> np.ndarray:
    return np.array([[float(A[i, j]) for j in range(A.cols)] for i in range(A.rows)])


def _pinv(A):
    """Pseudo-inverse of a symmetric PSD matrix (eigenvalues below 1e-40 of the
    largest are zero: in 60-digit arithmetic that is an exact zero)."""
    E, V = mpmath.eigsy(A)
    top = max(abs(e) for e in E)
    D = mpmath.matrix(A.rows, A.rows)
    for i in range(A.rows):
        if E[i] > mpmath.mpf(10) ** -40 * top:
            D[i, i] = 1 / E[i]
    return V * D * V.T


def exact_filter_and_smoother(model, y):
    """Filtered and smoothed moments and the log-likelihood, to DIGITS digits,
    as float64 arrays (x_filt, P_filt, x_smooth, P_smooth: (T, n[, n]))."""
    y = np.asarray(y, dtype=float).reshape(len(y), -1)
    T = y.shape[0]
    with mpmath.workdps(DIGITS):
        x, P = _mp(model.x0.reshape(-1, 1)), _mp(model.P0)
        xp, Pp, xf, Pf = [], [], [], []
        loglik = mpmath.mpf(0)
        for t in range(T):
            F, Q = _mp(_at(model.F, t)), _mp(_at(model.Q, t))
            H, R = _at(model.H, t), _at(model.R, t)
            # predict: x = F x, P = F P F' + Q
            x, P = F * x, _sym(F * P * F.T + Q)
            xp.append(x)
            Pp.append(P)
            o = ~np.isnan(y[t])
            if o.any():
                # update with the observed components: S = H P H' + R, K = P H' S^-1
                Ho, Ro = _mp(H[o]), _mp(R[np.ix_(o, o)])
                nu = _mp(y[t, o].reshape(-1, 1)) - Ho * x
                S = _sym(Ho * P * Ho.T + Ro)
                Si = mpmath.inverse(S)
                K = P * Ho.T * Si
                x, P = x + K * nu, _sym(P - K * S * K.T)
                loglik -= (int(o.sum()) * mpmath.log(2 * mpmath.pi) + mpmath.log(mpmath.det(S))
                           + (nu.T * Si * nu)[0, 0]) / 2
            xf.append(x)
            Pf.append(P)
        # RTS: G = P_f F' P_p^+, x_s = x_f + G (x_s' - x_p'), P_s = P_f + G (P_s' - P_p') G'
        xs, Ps = [None] * T, [None] * T
        xs[-1], Ps[-1] = xf[-1], Pf[-1]
        for k in range(T - 2, -2, -1):
            F = _mp(_at(model.F, k + 1))
            x_k, P_k = (xf[k], Pf[k]) if k >= 0 else (_mp(model.x0.reshape(-1, 1)), _mp(model.P0))
            G = P_k * F.T * _pinv(Pp[k + 1])
            x_s = x_k + G * (xs[k + 1] - xp[k + 1])
            P_s = _sym(P_k + G * (Ps[k + 1] - Pp[k + 1]) * G.T)
            if k >= 0:
                xs[k], Ps[k] = x_s, P_s
            else:
                x0s, P0s = x_s, P_s
        vec = lambda seq: np.stack([_to_np(v)[:, 0] for v in seq])   # noqa: E731
        mat = lambda seq: np.stack([_to_np(v) for v in seq])         # noqa: E731
        return dict(x_filt=vec(xf), P_filt=mat(Pf), x_smooth=vec(xs), P_smooth=mat(Ps),
                    x0_smooth=_to_np(x0s)[:, 0], P0_smooth=_to_np(P0s), loglik=float(loglik))


def rel_mean(got, exact):
    """Largest error of the means over the largest mean."""
    return float(np.max(np.abs(got - exact)) / np.max(np.abs(exact)))


def rel_cov(got, exact):
    """Largest error of each covariance over its own largest entry, over time."""
    err = np.abs(got - exact).max(axis=(-1, -2))
    return float(np.max(err / np.abs(exact).max(axis=(-1, -2))))


# -- the hard models -----------------------------------------------------------------

LLT = dict(F=[[1.0, 1.0], [0.0, 1.0]], H=[[1.0, 0.0]])


def _series(T, seed, missing=(), trend=False, scale=1.0):
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(T)
    if trend:
        y = y + 0.01 * np.cumsum(np.cumsum(rng.standard_normal(T)))
    y = scale * y
    y[list(missing)] = np.nan
    return y


CASES = {
    # the issue's reproducer: the scan lost 0.21 of x_filt[-1] here
    "vague P0=1e16, 4 steps": (LinearGaussianSSM(F=1, H=1, Q=1, R=1, x0=0, P0=1e16),
                               np.array([0.5, -1.2, np.nan, 0.7]), TOL),
    "vague P0=1e16, missing first": (LinearGaussianSSM(F=1, H=1, Q=1, R=1, x0=0, P0=1e16),
                                     _series(60, 1, missing=(0, 5, 17, 18, 40)), TOL),
    "tiny R=1e-11, missing": (LinearGaussianSSM(F=1, H=1, Q=1, R=1e-11, x0=0, P0=1),
                              _series(60, 2, missing=(5, 17, 18)), TOL),
    "tiny R=1e-11, P0=1e16": (LinearGaussianSSM(F=1, H=1, Q=1, R=1e-11, x0=0, P0=1e16),
                              _series(60, 3, missing=(0, 30)), TOL),
    "two observations, P0=1e12, partly missing": (
        LinearGaussianSSM(F=[[0.9, 0.2], [0.0, 0.7]], H=[[1.0, 0.0], [1.0, 1.0]],
                          Q=0.1 * np.eye(2), R=np.diag([1e-6, 1.0]), x0=[0, 0],
                          P0=1e12 * np.eye(2)),
        np.where(np.random.default_rng(4).random((80, 2)) < 0.1, np.nan,
                 np.random.default_rng(5).standard_normal((80, 2))), TOL),
    "long horizon T=2000, P0=1e10, a gap": (
        LinearGaussianSSM(F=1, H=1, Q=1e-3, R=1, x0=0, P0=1e10),
        _series(2000, 6, missing=range(1000, 1010)), TOL),
    # a vague trend whose first two steps are missing: the scan's prefix after
    # the gap is a rounded F P F' + Q, so the sequential filter takes the
    # start; the RTS gain P(t+1|t)^{-1} lost 3e-8 here, the smoother's
    # information form (R > 0) does not
    "trend P0=1e10, first steps missing": (
        LinearGaussianSSM(**LLT, Q=np.diag([1e-2, 1e-4]), R=1, x0=[0, 0], P0=1e10 * np.eye(2)),
        _series(60, 12, missing=(0, 1, 30), trend=True), TOL),
    # no process noise: the covariances shrink to the end and never settle.
    # A vague P0 = 1e8 mixed by F rounds P(t+1|t) at 1e-8 of its small
    # variances, which the RTS gain P(t+1|t)^+ saw (2e-8 in P_smooth); the
    # information form never inverts P(t+1|t).
    "Q=0 trend, P0=1e8, T=400": (
        LinearGaussianSSM(**LLT, Q=np.zeros((2, 2)), R=1, x0=[0, 0], P0=1e8 * np.eye(2)),
        _series(400, 7, missing=(3, 50, 51, 52), trend=True), TOL),
}


@pytest.fixture(scope="module")
def exact():
    return {name: exact_filter_and_smoother(model, y) for name, (model, y, _) in CASES.items()}


FILTERS = {"kalman_filter": kalman_filter, "fast_filter": fast_filter, "scan_filter": scan_filter}
SMOOTHERS = {"kalman_filter": rts_smoother, "fast_filter": fast_smoother,
             "scan_filter": scan_smoother}


@pytest.mark.parametrize("path", FILTERS)
@pytest.mark.parametrize("case", CASES)
def test_filters_and_smoothers_equal_exact_arithmetic(exact, case, path):
    model, y, smooth_tol = CASES[case]
    ref = exact[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # and they say nothing
        filt = FILTERS[path](model, y)
        smooth = SMOOTHERS[path](model, filt)
    assert rel_mean(filt.x_filt, ref["x_filt"]) < TOL, "x_filt"
    assert rel_cov(filt.P_filt, ref["P_filt"]) < TOL, "P_filt"
    assert abs(filt.loglik - ref["loglik"]) < TOL * abs(ref["loglik"]), "loglik"
    assert rel_mean(smooth.x_smooth, ref["x_smooth"]) < smooth_tol, "x_smooth"
    assert rel_cov(smooth.P_smooth, ref["P_smooth"]) < 10 * smooth_tol, "P_smooth"
    assert rel_cov(smooth.P0_smooth[None], ref["P0_smooth"][None]) < 10 * smooth_tol, "P0_smooth"


@pytest.mark.parametrize("path", FILTERS)
def test_a_batch_equals_exact_arithmetic(exact, path):
    """Two series of different missing patterns, filtered at once."""
    names = ["vague P0=1e16, missing first", "tiny R=1e-11, P0=1e16"]
    model = CASES[names[0]][0]
    y = np.stack([CASES[names[0]][1], CASES[names[0]][1][::-1]])
    ref = [exact[names[0]], exact_filter_and_smoother(model, y[1])]
    filt = FILTERS[path](model, y[..., None])
    smooth = SMOOTHERS[path](model, filt)
    for i in range(2):
        assert rel_mean(filt.x_filt[i], ref[i]["x_filt"]) < TOL
        assert rel_cov(filt.P_filt[i], ref[i]["P_filt"]) < TOL
        assert abs(filt.loglik[i] - ref[i]["loglik"]) < TOL * abs(ref[i]["loglik"])
        assert rel_mean(smooth.x_smooth[i], ref[i]["x_smooth"]) < TOL
        assert rel_cov(smooth.P_smooth[i], ref[i]["P_smooth"]) < 10 * TOL


def test_the_issue_reproducer_value():
    # x_filt[-1] = 0.33636... exactly (fast_filter gave 0.40000 through the scan)
    model, y, _ = CASES["vague P0=1e16, 4 steps"]
    want = exact_filter_and_smoother(model, y)["x_filt"][-1, 0]
    for f in FILTERS.values():
        assert abs(f(model, y).x_filt[-1, 0] - want) < 1e-15
    assert abs(want - 0.33636363636363636) < 1e-12


def test_em_log_likelihood_equals_exact_arithmetic():
    # em runs fast_filter, so the scan on missing values: a vague start
    model = LinearGaussianSSM(F=1, H=1, Q=0.5, R=2.0, x0=0, P0=1e16)
    y = _series(200, 8, missing=(10, 11, 120), scale=3.0)   # first step observed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # one iteration does not converge
        fit = em(y, model, n_iter=2)
    assert abs(fit.loglik_history[0] - exact_filter_and_smoother(model, y)["loglik"]) < 1e-10
    exact_end = exact_filter_and_smoother(fit.model, y)["loglik"]
    assert abs(fit.loglik_history[-1] - exact_end) < 1e-10


# -- models whose covariances never settle --------------------------------------------

def test_fast_filter_takes_the_scan_when_covariances_never_settle():
    # Q = 0: P(t|t-1) shrinks like 1/t to the end; the sequential head would
    # run over every step. The scan is chosen, and it is exact.
    model = LinearGaussianSSM(**LLT, Q=np.zeros((2, 2)), R=1, x0=[0, 0], P0=1e4 * np.eye(2))
    y = _series(4000, 9, trend=True)
    with mock.patch("kflib.fast.scan_filter", wraps=kflib.fast.scan_filter) as scan, \
            mock.patch("kflib.fast.scan_smoother", wraps=kflib.fast.scan_smoother) as scan_s:
        filt = fast_filter(model, y)
        smooth = fast_smoother(model, filt)
    assert scan.called and scan_s.called
    short = exact_filter_and_smoother(model, y[:300])
    head = fast_filter(model, y[:300])
    assert rel_mean(head.x_filt, short["x_filt"]) < TOL
    # the long run against the sequential reference (itself checked above)
    ref = kalman_filter(model, y)
    assert rel_mean(filt.x_filt, ref.x_filt) < 1e-12
    assert rel_cov(filt.P_filt, ref.P_filt) < 1e-10
    assert abs(filt.loglik - ref.loglik) < 1e-12 * abs(ref.loglik)
    ref_s = rts_smoother(model, ref)
    assert rel_mean(smooth.x_smooth, ref_s.x_smooth) < 1e-9


# -- covariance checks relative to the matrix's own scale -----------------------------

@pytest.mark.parametrize("kwargs", [
    dict(R=[[-1e-10]]),
    dict(R=-1e-12 * np.ones((3, 3)), H=np.ones((3, 1))),
    dict(P0=np.diag([1e10, -5.0]), F=np.eye(2), Q=np.eye(2), H=np.ones((1, 2)), x0=[0, 0]),
    dict(Q=[[1e-12, 5e-11], [0.0, 1e-12]], F=np.eye(2), P0=np.eye(2), H=np.ones((1, 2)),
         x0=[0, 0]),
], ids=["R=-1e-10", "R=-1e-12 ones", "P0=diag(1e10,-5)", "asymmetric Q 1e-12"])
def test_small_scale_invalid_covariances_are_rejected(kwargs):
    args = dict(F=1, H=1, Q=1, R=1, x0=0, P0=1)
    args.update(kwargs)
    name = {"R": "R", "P0": "P0"}.get(next(iter(kwargs)), "Q")
    with pytest.raises(ValueError, match=f"^{name} must be"):
        LinearGaussianSSM(**args)


def test_small_scale_valid_covariances_pass():
    g = np.array([1.0, 1e-8, 3.0])
    LinearGaussianSSM(F=1, H=1, Q=1e-5, R=1e-5, x0=0, P0=0)                      # Q ~ 1e-5
    LinearGaussianSSM(F=np.eye(3), H=np.ones((1, 3)), Q=1e-7 * np.outer(g, g),   # singular
                      R=1e-12, x0=np.zeros(3), P0=np.zeros((3, 3)))              # Q = 0 start
    LinearGaussianSSM(F=np.eye(2), H=np.ones((1, 2)), Q=np.zeros((2, 2)), R=1, x0=[0, 0],
                      P0=np.ones((2, 2)))


# -- the steady state at any scale ----------------------------------------------------

@pytest.mark.parametrize("s", [1e-100, 1e-28, 1e-8, 1.0, 1e8, 1e100])
def test_steady_state_does_not_depend_on_the_scale(s):
    # local level with Q = R = s: K = (sqrt 5 - 1) / 2 and P = s (1 + sqrt 5) / 2
    P, K, P_filt = steady_state(LinearGaussianSSM(F=1, H=1, Q=s, R=s, x0=0, P0=s))
    assert abs(K[0, 0] - (np.sqrt(5) - 1) / 2) < 1e-12
    assert abs(P[0, 0] / s - (1 + np.sqrt(5)) / 2) < 1e-12
    assert abs(P_filt[0, 0] / s - (np.sqrt(5) - 1) / 2) < 1e-12


# -- equivalent state bases ----------------------------------------------------------

def _rotated(model, T0):
    """The same model in the state basis x' = T0 x (T0 orthogonal)."""
    return LinearGaussianSSM(F=T0 @ model.F @ T0.T, H=model.H @ T0.T, Q=T0 @ model.Q @ T0.T,
                             R=model.R, x0=T0 @ model.x0, P0=T0 @ model.P0 @ T0.T)


def test_equivalent_bases_give_the_same_smoothed_signal():
    # A level plus two known, fixed states (P0 = 0, Q = 0 there): in a rotated
    # basis P(t+1|t) is singular only up to rounding, and a plain solve in the
    # smoother gain blew the smoothed states up (errors of 0.06 in H x_{t|T}).
    rng = np.random.default_rng(0)
    y = rng.standard_normal(30)
    base = LinearGaussianSSM(F=np.eye(3), H=[[1.0, 1.0, 0.5]], Q=np.diag([0.3, 0.0, 0.0]),
                             R=1.0, x0=[0.0, 1.0, -1.0], P0=np.diag([2.0, 0.0, 0.0]))
    signal = exact_filter_and_smoother(base, y)["x_smooth"] @ base.H.T
    rotations = [np.linalg.qr(rng.standard_normal((3, 3)))[0] for _ in range(181)]
    for i in (94, 126, 133, 180):                  # bases where the solve failed
        model = _rotated(base, rotations[i])
        for path in FILTERS:
            filt = FILTERS[path](model, y)
            smooth = SMOOTHERS[path](model, filt)
            err = np.abs(smooth.x_smooth @ model.H.T - signal).max() / np.abs(signal).max()
            assert err < 1e-12, (i, path, err)


def test_a_seasonal_block_in_a_rotated_basis():
    # local level + dummy seasonal of period 12 with a fixed pattern from a
    # known start, and the same model in a random orthogonal basis
    from kflib import structural as st
    base = st.combine(st.local_level(0.5), st.seasonal_dummy(12, 0.0), irregular_var=1.0,
                      P0=np.diag([1e6] + [0.0] * 11))
    rng = np.random.default_rng(3)
    y = rng.standard_normal(40)
    y[7] = np.nan
    signal = exact_filter_and_smoother(base, y)["x_smooth"] @ base.H.T
    model = _rotated(base, np.linalg.qr(rng.standard_normal((12, 12)))[0])
    for path in FILTERS:
        with warnings.catch_warnings():
            # the vague level (1e6) rotated into every state leaves small
            # variances of P(t+1|t) below 1e-10 of its largest: it may warn
            warnings.simplefilter("ignore", ConditioningWarning)
            smooth = SMOOTHERS[path](model, FILTERS[path](model, y))
        assert np.abs(smooth.x_smooth @ model.H.T - signal).max() < 1e-9 * np.abs(signal).max()


# -- vague starts and tiny noise: exact, and positive semidefinite --------------------

def test_ill_conditioned_smoothing_is_exact_and_psd():
    # P0 = 1e6 I, Q = diag(1e-12, 1e-14), R = 1e-8: P(t+1|t) has a real variance
    # 1e-15 of its largest, below what float64 resolves. The RTS gain lost
    # 1e-4 of x_smooth (and warned); the information form does not need it.
    model = LinearGaussianSSM(**LLT, Q=np.diag([1e-12, 1e-14]), R=1e-8, x0=[0, 0],
                              P0=1e6 * np.eye(2))
    y = _series(120, 10, missing=(3, 50, 51, 52), trend=True, scale=1e-3)
    ref = exact_filter_and_smoother(model, y)
    for path in FILTERS:
        filt = FILTERS[path](model, y)
        assert rel_mean(filt.x_filt, ref["x_filt"]) < TOL
        assert rel_cov(filt.P_filt, ref["P_filt"]) < TOL
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            smooth = SMOOTHERS[path](model, filt)
        for P in (smooth.P_smooth, smooth.P0_smooth[None]):
            eig = np.linalg.eigvalsh(P)
            assert np.all(eig[..., 0] >= -1e-14 * eig[..., -1]), path
        assert rel_mean(smooth.x_smooth, ref["x_smooth"]) < TOL, path
        assert rel_cov(smooth.P_smooth, ref["P_smooth"]) < 10 * TOL, path
        assert rel_mean(smooth.x0_smooth, ref["x0_smooth"]) < TOL, path


@pytest.mark.parametrize("P0", [1e12, 1e16])
def test_vague_trend_filters_and_smooths_exactly(P0):
    # a local linear trend from P0 = 1e12 I or 1e16 I with the first steps
    # missing: every filter is exact, and so is every smoother (the RTS gain
    # was 9e-2 off in x_smooth at 1e16 and only warned)
    model = LinearGaussianSSM(**LLT, Q=np.diag([1e-2, 1e-4]), R=1, x0=[0, 0],
                              P0=P0 * np.eye(2))
    y = _series(60, 12, missing=(0, 1, 30), trend=True)
    ref = exact_filter_and_smoother(model, y)
    for path in FILTERS:
        filt = FILTERS[path](model, y)
        assert rel_mean(filt.x_filt, ref["x_filt"]) < TOL, path
        assert rel_cov(filt.P_filt, ref["P_filt"]) < TOL, path
        assert abs(filt.loglik - ref["loglik"]) < TOL * abs(ref["loglik"]), path
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            smooth = SMOOTHERS[path](model, filt)
        assert rel_mean(smooth.x_smooth, ref["x_smooth"]) < TOL, path
        assert rel_cov(smooth.P_smooth, ref["P_smooth"]) < 10 * TOL, path
        assert rel_mean(smooth.x0_smooth, ref["x0_smooth"]) < TOL, path
        assert rel_cov(smooth.P0_smooth[None], ref["P0_smooth"][None]) < 10 * TOL, path
        eig = np.linalg.eigvalsh(smooth.P_smooth)
        assert np.all(eig[..., 0] >= -1e-14 * eig[..., -1]), path


def test_no_measurement_noise_with_a_vague_start_warns():
    # R = 0 (no information form) and P0 = 1e16 I (the r/N form cancels, the
    # RTS gain does not resolve P(t+1|t)): beyond float64, and it says so
    model, y = _sarimax_111()
    model = model.replace(P0=1e16 * np.eye(3))
    for path in FILTERS:
        filt = FILTERS[path](model, y)
        with pytest.warns(ConditioningWarning, match="beyond float64"):
            smooth = SMOOTHERS[path](model, filt)
        eig = np.linalg.eigvalsh(smooth.P_smooth)
        assert np.all(eig[..., 0] >= -1e-12 * eig[..., -1]), path


def test_a_well_conditioned_model_does_not_warn():
    model = LinearGaussianSSM(**LLT, Q=np.diag([0.1, 0.01]), R=1.0, x0=[0, 0],
                              P0=1e6 * np.eye(2))
    y = _series(100, 11, missing=(4, 40), trend=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in FILTERS:
            SMOOTHERS[path](model, FILTERS[path](model, y))


# -- overflow is an error that names the step and the quantity ------------------------

@pytest.mark.parametrize("path", FILTERS)
@pytest.mark.parametrize("case", ["F=1e200", "y=1e160"])
def test_overflow_raises_a_clear_error(path, case):
    if case == "F=1e200":
        model, y = LinearGaussianSSM(F=[[1e200]], H=1, Q=1, R=1, x0=0, P0=1), np.ones(5)
        match = r"predicted covariance .* not finite at time index 0"
    else:
        model = LinearGaussianSSM(F=1, H=1, Q=1, R=1, x0=0, P0=1)
        y = np.array([1.0, 1e160, np.nan, 1.0])
        match = r"log-likelihood term .* not finite at time index 1"
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # no RuntimeWarning on the way
        with pytest.raises(ValueError, match=match):
            FILTERS[path](model, y)


def test_ekf_with_f_returning_nan_names_the_step():
    model = nl.NonlinearSSM(f=lambda x: x * np.nan if x[0] > 1.5 else x + 1.0, h=lambda x: x,
                            Q=[[1.0]], R=[[1.0]], x0=[0.0], P0=[[1.0]],
                            F_jac=lambda x: np.eye(1), H_jac=lambda x: np.eye(1))
    with pytest.raises(ValueError, match=r"f\(x\) is not finite at time index 3"):
        nl.ekf_filter(model, np.ones((5, 1)))


# -- a nearly singular P(t+1|t) with real small variances: the r/N form ---------------

def _sarimax_111():
    """SARIMAX(1,1,1) in state form, no measurement noise, NaNs at 10, 11, 50:
    P(t+1|t) has an exact zero and a variance decaying like 0.09^t, below what
    the RTS gain P(t+1|t)^{-1} resolves."""
    rng = np.random.default_rng(3)
    e = rng.standard_normal(120)
    w = np.zeros(120)
    for t in range(1, 120):
        w[t] = 0.6 * w[t - 1] + e[t] + 0.3 * e[t - 1]
    y = np.cumsum(w) + 5.0
    y[[10, 11, 50]] = np.nan
    F = np.array([[1.0, 1, 0], [0, 0.6, 1], [0, 0, 0]])
    Q = np.array([[0, 0, 0], [0, 1, 0.3], [0, 0.3, 0.09]])
    return LinearGaussianSSM(F=F, H=[[1.0, 1, 0]], Q=Q, R=np.zeros((1, 1)), x0=np.zeros(3),
                             P0=np.eye(3)), y


@pytest.mark.parametrize("path", FILTERS)
def test_nearly_singular_predicted_covariance_smooths_exactly(path):
    # the RTS gain alone was 2.6e-4 off in P_smooth (and 1e-8 in x_smooth)
    model, y = _sarimax_111()
    ref = exact_filter_and_smoother(model, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        smooth = SMOOTHERS[path](model, FILTERS[path](model, y))
    scale = np.abs(ref["P_smooth"]).max()
    assert rel_mean(smooth.x_smooth, ref["x_smooth"]) < TOL, "x_smooth"
    assert np.abs(smooth.P_smooth - ref["P_smooth"]).max() < TOL * scale, "P_smooth"
    assert rel_mean(smooth.x0_smooth, ref["x0_smooth"]) < TOL, "x0_smooth"
    assert np.abs(smooth.P0_smooth - ref["P0_smooth"]).max() < TOL * scale, "P0_smooth"


def test_nearly_singular_predicted_covariance_against_statsmodels():
    from statsmodels.tsa.statespace.kalman_smoother import KalmanSmoother
    model, y = _sarimax_111()
    smooth = rts_smoother(model, kalman_filter(model, y))
    ssm = KalmanSmoother(k_endog=1, k_states=3, k_posdef=3)
    ssm.bind(np.ascontiguousarray(y[:, None]))
    ssm["transition"], ssm["design"], ssm["selection"] = model.F, model.H, np.eye(3)
    ssm["state_cov"], ssm["obs_cov"] = model.Q, model.R
    F = model.F
    ssm.initialize_known(F @ model.x0, F @ model.P0 @ F.T + model.Q)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ssm.smooth()
    assert np.abs(smooth.P_smooth - np.moveaxis(ref.smoothed_state_cov, -1, 0)).max() < 1e-9
    assert np.abs(smooth.x_smooth - ref.smoothed_state.T).max() < 1e-9 * np.abs(y[~np.isnan(y)]).max()


def test_lag_one_covariance_of_the_r_N_form_is_dense_conditioning():
    # Cov(x_{t+1}, x_t | y) = (I - P_{t+1|t} N_{t+1}) F P_{t|t} (D&K 4.69 with
    # L_t P_t = F P_{t|t}), checked on a short SARIMAX whose steps take that form
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from test_filter_smoother_vs_dense import condition, joint_gaussian
    model, y = _sarimax_111()
    T = 14
    y = y[:T]
    smooth = kflib.smoother.reference_smoother(model, kalman_filter(model, y))
    mean, cov = joint_gaussian(model, T)
    n = model.n
    nx = (T + 1) * n
    obs = ~np.isnan(y)
    mu, Sig = condition(mean, cov, nx + np.flatnonzero(obs), y[obs])
    for t in range(T):                             # x_{t+1} (array index t) and x_t
        i, j = (t + 1) * n, t * n
        lag = Sig[i:i + n, j:j + n]
        assert np.abs(smooth.P_lag1[t] - lag).max() < 1e-9, t
        assert np.abs(smooth.P_smooth[t] - Sig[i:i + n, i:i + n]).max() < 1e-9, t
    assert np.abs(smooth.x0_smooth - mu[:n]).max() < 1e-9


def test_wpi1_ar3_without_measurement_noise_does_not_warn():
    # P(t+1|t) = Q is exactly rank 1 there: the pseudo-inverse is exact, and
    # the result reproduces KFAS (tests/test_external_references.py)
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    import test_external_references as ext
    for name in ("wpi1_ar3", "wpi1_missing_ar3"):
        c = ext.case(name, "x0")
        for path in FILTERS:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                SMOOTHERS[path](c.model, FILTERS[path](c.model, c.y))


def test_conditioning_warning_is_exported():
    import kflib as k
    assert k.ConditioningWarning is ConditioningWarning and "ConditioningWarning" in k.__all__


def test_lag_one_covariance_of_the_information_form_is_dense_conditioning():
    # Cov(x_{t+1}, x_t | y) = (I + Q A_{t+1})^{-1} F P_{t|T} (the regression of
    # x_{t+1} on x_t given y): a level and two known fixed states in a rotated
    # basis, so that P(t+1|t) is singular at every step and every step takes
    # the information form
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from test_filter_smoother_vs_dense import condition, joint_gaussian
    rng = np.random.default_rng(0)
    T = 12
    y = rng.standard_normal(T)
    y[4] = np.nan
    base = LinearGaussianSSM(F=np.diag([0.9, 1.0, 1.0]), H=[[1.0, 1.0, 0.5]],
                             Q=np.diag([0.3, 0.0, 0.0]), R=1.0, x0=[0.0, 1.0, -1.0],
                             P0=np.diag([2.0, 0.0, 0.0]))
    model = _rotated(base, np.linalg.qr(rng.standard_normal((3, 3)))[0])
    smooth = kflib.smoother.reference_smoother(model, kalman_filter(model, y))
    mean, cov = joint_gaussian(model, T)
    n = model.n
    obs = ~np.isnan(y)
    mu, Sig = condition(mean, cov, (T + 1) * n + np.flatnonzero(obs), y[obs])
    for t in range(T):                             # x_{t+1} (array index t) and x_t
        i, j = (t + 1) * n, t * n
        assert np.abs(smooth.P_lag1[t] - Sig[i:i + n, j:j + n]).max() < 1e-12, t
        assert np.abs(smooth.P_smooth[t] - Sig[i:i + n, i:i + n]).max() < 1e-12, t
        assert np.abs(smooth.x_smooth[t] - mu[i:i + n]).max() < 1e-12, t
    assert np.abs(smooth.x0_smooth - mu[:n]).max() < 1e-12
    assert np.abs(smooth.P0_smooth - Sig[:n, :n]).max() < 1e-12
