"""kflib.anomaly: NIS, chi-square gates, windowed NIS, NEES and the robust filter.

The references are independent of the code under test: dense per-step
computations with explicit inverses, scipy's chi-square distribution, the
binomial law of the number of false alarms, a root found by scipy's brentq,
and kflib's own (separately tested) Kalman filter with the skipped
observations marked missing.
"""

import numpy as np
import pytest
import scipy.optimize
import scipy.stats

from kflib import LinearGaussianSSM, kalman_filter, reference_filter, simulate
from kflib.anomaly import (chi2_gate, flag_anomalies, nees, nis, precision_recall,
                           robust_filter, windowed_nis)
from kflib.models import constant_velocity, local_level
from conftest import random_model

FIELDS = ("x_pred", "P_pred", "x_filt", "P_filt", "S", "K")


def with_gaps(rng, y, p_missing, p_blackout=0.0):
    """Copy of y with components missing at random and some steps fully missing."""
    y = y.copy()
    y[rng.random(y.shape) < p_missing] = np.nan
    y[rng.random(y.shape[:-1]) < p_blackout] = np.nan
    return y


def simulate_batch(model, T, n_series, rng):
    xs, ys = zip(*(simulate(model, T, rng=rng) for _ in range(n_series)))
    return np.stack(xs), np.stack(ys)


def dense_nis(nu, S):
    """NIS and dof of one series by an explicit inverse of the observed block."""
    T = nu.shape[0]
    value, dof = np.full(T, np.nan), np.zeros(T, dtype=int)
    for t in range(T):
        o = ~np.isnan(nu[t])
        dof[t] = o.sum()
        if o.any():
            value[t] = nu[t, o] @ np.linalg.inv(S[t][np.ix_(o, o)]) @ nu[t, o]
    return value, dof


def binomial_ok(count, trials, p, z=4.5):
    """count is within z standard deviations of Binomial(trials, p)'s mean."""
    return abs(count - trials * p) <= z * np.sqrt(trials * p * (1 - p))


# --------------------------------------------------------------------------
# NIS


@pytest.mark.parametrize("n,m,p_missing", [(1, 1, 0.0), (2, 1, 0.3), (3, 2, 0.25), (4, 3, 0.4)])
def test_nis_equals_dense_computation(rng, n, m, p_missing):
    model = random_model(rng, n, m)
    _, y = simulate(model, 80, rng=rng)
    y = with_gaps(rng, y, p_missing, p_blackout=0.1)
    filt = kalman_filter(model, y)
    value, dof = nis(filt, return_dof=True)
    want, want_dof = dense_nis(filt.innovations, filt.S)
    np.testing.assert_array_equal(dof, want_dof)
    np.testing.assert_array_equal(dof, (~np.isnan(y)).sum(-1))
    assert np.array_equal(np.isnan(value), want_dof == 0)
    np.testing.assert_allclose(value, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(nis(filt), value)


def test_nis_uses_the_observed_block_of_correlated_S(rng):
    """With one of two correlated components missing, NIS is nu_1^2 / S_11,
    not what zeroing the gap and keeping the full S would give."""
    model = LinearGaussianSSM(F=[[0.9]], H=[[1.0], [1.0]], Q=[[1.0]],
                              R=[[1.0, 0.8], [0.8, 1.0]], x0=[0.0], P0=[[1.0]])
    y = np.array([[1.5, np.nan]])
    filt = kalman_filter(model, y)
    S, nu = filt.S[0], filt.innovations[0]
    value, dof = nis(filt, return_dof=True)
    assert dof[0] == 1
    assert value[0] == pytest.approx(nu[0] ** 2 / S[0, 0], rel=1e-12)
    wrong = np.array([nu[0], 0.0]) @ np.linalg.inv(S) @ np.array([nu[0], 0.0])
    assert not np.isclose(value[0], wrong)


def test_nis_batch_equals_one_series_at_a_time(rng):
    model = random_model(rng, 3, 2)
    _, Y = simulate_batch(model, 40, 5, rng)
    Y = with_gaps(rng, Y, 0.2, 0.1)
    batch_value, batch_dof = nis(kalman_filter(model, Y), return_dof=True)
    assert batch_value.shape == batch_dof.shape == (5, 40)
    for b in range(5):
        v, d = nis(kalman_filter(model, Y[b]), return_dof=True)
        np.testing.assert_allclose(batch_value[b], v, rtol=1e-12)
        np.testing.assert_array_equal(batch_dof[b], d)


def test_nis_is_chi2_m_under_the_model(rng):
    """Mean m, and the distribution chi2(m): NIS values are independent draws."""
    model = random_model(rng, 3, 3)
    _, Y = simulate_batch(model, 50, 200, rng)
    value = nis(kalman_filter(model, Y)).ravel()
    N = value.size
    assert abs(value.mean() - 3) < 5 * np.sqrt(2 * 3 / N)
    assert scipy.stats.kstest(value, scipy.stats.chi2(3).cdf).pvalue > 1e-3


def test_nis_with_gaps_is_chi2_of_the_observed_count(rng):
    model = random_model(rng, 2, 3)
    _, Y = simulate_batch(model, 50, 200, rng)
    Y = with_gaps(rng, Y, 0.3, 0.05)
    value, dof = nis(kalman_filter(model, Y), return_dof=True)
    for k in (1, 2, 3):
        sel = value[dof == k]
        assert sel.size > 500
        assert abs(sel.mean() - k) < 5 * np.sqrt(2 * k / sel.size)
        assert scipy.stats.kstest(sel, scipy.stats.chi2(k).cdf).pvalue > 1e-3


# --------------------------------------------------------------------------
# gates and flags


def test_chi2_gate_is_the_upper_quantile():
    for alpha in (0.1, 0.01, 1e-4):
        for k in (1, 2, 5):
            assert chi2_gate(k, alpha) == pytest.approx(scipy.stats.chi2.ppf(1 - alpha, k), rel=1e-10)
    assert isinstance(chi2_gate(2), float)
    assert chi2_gate(1, 0.05) == pytest.approx(1.959963984540054 ** 2, rel=1e-10)
    gates = chi2_gate(np.array([[0, 1], [2, 3]]), 0.01)
    assert gates.shape == (2, 2) and np.isnan(gates[0, 0])
    assert gates[0, 1] < gates[1, 0] < gates[1, 1]
    assert chi2_gate(2, 0.001) > chi2_gate(2, 0.01)
    # accurate where 1 - alpha rounds to 1
    assert np.isfinite(chi2_gate(1, 1e-20)) and chi2_gate(1, 1e-20) > 80


def test_flags_are_nis_above_the_gate(rng):
    model = random_model(rng, 2, 2)
    _, y = simulate(model, 200, rng=rng)
    y = with_gaps(rng, y, 0.2, 0.1)
    y[17] = np.nan
    filt = kalman_filter(model, y)
    value, dof = nis(filt, return_dof=True)
    for alpha in (0.3, 0.05):
        flags = flag_anomalies(filt, alpha)
        assert flags.dtype == bool and flags.shape == (200,)
        want = np.array([d > 0 and v > scipy.stats.chi2.ppf(1 - alpha, d) for v, d in zip(value, dof)])
        np.testing.assert_array_equal(flags, want)
        assert not flags[17]


@pytest.mark.parametrize("alpha", [0.01, 0.05])
def test_false_alarm_rate_is_alpha(rng, alpha):
    """Under the model, the number of flagged steps is Binomial(steps, alpha)."""
    model = random_model(rng, 3, 2)
    _, Y = simulate_batch(model, 100, 300, rng)
    Y = with_gaps(rng, Y, 0.15, 0.05)
    filt = kalman_filter(model, Y)
    flags = flag_anomalies(filt, alpha)
    tested = nis(filt, return_dof=True)[1] > 0
    assert binomial_ok(flags.sum(), tested.sum(), alpha), (flags.sum(), tested.sum() * alpha)


def test_flags_catch_an_injected_spike(rng):
    model = constant_velocity(1.0, q=0.01, r=1.0, x0=[0.0, 0.0], P0=np.eye(2))
    _, y = simulate(model, 100, rng=rng)
    y[60, 0] += 15.0
    flags = flag_anomalies(kalman_filter(model, y), 0.01)
    assert flags[60]


# --------------------------------------------------------------------------
# windowed NIS


@pytest.mark.parametrize("window", [1, 4, 30, 500])
def test_windowed_nis_equals_a_brute_force_sum(rng, window):
    model = random_model(rng, 2, 2)
    _, Y = simulate_batch(model, 60, 3, rng)
    Y = with_gaps(rng, Y, 0.2, 0.1)
    filt = kalman_filter(model, Y)
    value, dof = nis(filt, return_dof=True)
    W, D = windowed_nis(filt, window)
    assert W.shape == D.shape == (3, 60)
    for t in range(60):
        lo = max(0, t - window + 1)
        np.testing.assert_allclose(W[:, t], np.nansum(value[:, lo:t + 1], axis=1), rtol=1e-10, atol=1e-10)
        np.testing.assert_array_equal(D[:, t], dof[:, lo:t + 1].sum(axis=1))
    np.testing.assert_allclose(windowed_nis(filt, 1)[0], np.nan_to_num(value), rtol=1e-9, atol=1e-9)


def test_windowed_false_alarm_rate_is_alpha(rng):
    """Disjoint windows are independent: their exceedances are binomial."""
    alpha, window = 0.05, 10
    model = random_model(rng, 2, 2)
    _, Y = simulate_batch(model, 100, 300, rng)
    Y = with_gaps(rng, Y, 0.2)
    W, D = windowed_nis(kalman_filter(model, Y), window)
    ends = np.arange(window - 1, 100, window)                 # disjoint windows
    exceed = W[:, ends] > chi2_gate(D[:, ends], alpha)
    assert binomial_ok(exceed.sum(), exceed.size, alpha)


def test_windowed_nis_detects_a_small_bias_that_single_steps_miss(rng):
    """A lasting bias of 0.6 innovation sd: one step rarely sees it, a window does."""
    model = local_level(q=0.0, r=1.0, x0=0.0, P0=1e-12)    # a constant, known level
    Y = rng.standard_normal((200, 600, 1))
    Y[:, 200:, 0] += 0.6
    filt = kalman_filter(model, Y)
    single = flag_anomalies(filt, 0.01)[:, 200:].mean()
    W, D = windowed_nis(filt, 200)
    windowed = (W > chi2_gate(D, 0.01))[:, 400:].mean()
    assert single < 0.04 and windowed > 0.6


# --------------------------------------------------------------------------
# NEES


def test_nees_equals_dense_computation(rng):
    n, T = 3, 20
    x_true, x_est = rng.standard_normal((2, 4, T, n))
    A = rng.standard_normal((4, T, n, n))
    P = A @ np.swapaxes(A, -1, -2) + 0.1 * np.eye(n)
    got = nees(x_true, x_est, P)
    assert got.shape == (4, T)
    for b in range(4):
        for t in range(T):
            e = x_true[b, t] - x_est[b, t]
            assert got[b, t] == pytest.approx(e @ np.linalg.inv(P[b, t]) @ e, rel=1e-10)
    # a single truth broadcast against a batch of estimates
    np.testing.assert_allclose(nees(x_true[0], x_est, P),
                               [nees(x_true[0], x_est[b], P[b]) for b in range(4)], rtol=1e-12)


def test_nees_of_a_consistent_filter_is_chi2_n(rng):
    model = random_model(rng, 3, 2)
    X, Y = simulate_batch(model, 30, 600, rng)
    filt = kalman_filter(model, Y)
    last = nees(X, filt.x_filt, filt.P_filt)[:, -1]          # independent across series
    assert abs(last.mean() - 3) < 5 * np.sqrt(2 * 3 / last.size)
    assert scipy.stats.kstest(last, scipy.stats.chi2(3).cdf).pvalue > 1e-3


def test_nees_of_an_overconfident_filter_is_too_large(rng):
    truth = constant_velocity(1.0, q=0.5, r=1.0, x0=[0.0, 0.0], P0=np.eye(2))
    X, Y = simulate_batch(truth, 60, 300, rng)
    mistuned = truth.replace(Q=truth.Q / 20)
    right = nees(X, kalman_filter(truth, Y).x_filt, kalman_filter(truth, Y).P_filt)[:, 30:]
    wrong_filt = kalman_filter(mistuned, Y)
    wrong = nees(X, wrong_filt.x_filt, wrong_filt.P_filt)[:, 30:]
    assert abs(right.mean() - 2) < 0.15
    assert wrong.mean() > 4


# --------------------------------------------------------------------------
# robust filter


def assert_same_filter(a, b):
    for name in FIELDS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.innovations, b.innovations, equal_nan=True)
    assert np.array_equal(a.loglik, b.loglik)


@pytest.mark.parametrize("mode", ["skip", "inflate"])
@pytest.mark.parametrize("case", ["plain", "gaps", "batch", "time-varying with controls"])
def test_robust_filter_without_anomalies_is_the_kalman_filter(rng, mode, case):
    T = 60
    if case == "time-varying with controls":
        model = random_model(rng, 3, 2, r=1, T=T, tv=True)
        u = rng.standard_normal((T, 1))
        _, y = simulate(model, T, rng=rng, u=u)
    else:
        model = random_model(rng, 3, 2)
        u = None
        if case == "batch":
            _, y = simulate_batch(model, T, 4, rng)
        else:
            _, y = simulate(model, T, rng=rng)
    if case in ("gaps", "batch"):
        y = with_gaps(rng, y, 0.2, 0.1)
    robust, flags = robust_filter(model, y, alpha=1e-12, mode=mode, u=u)
    assert flags.shape == y.shape[:-1] and not flags.any()
    assert_same_filter(robust, reference_filter(model, y, u=u))
    assert isinstance(robust.loglik, float) == (y.ndim == 2)


def test_robust_skip_treats_a_flagged_step_as_missing(rng):
    model = random_model(rng, 2, 2)
    _, y = simulate(model, 80, rng=rng)
    y[40] += 50.0
    robust, flags = robust_filter(model, y, alpha=1e-6, mode="skip")
    assert np.flatnonzero(flags).tolist() == [40]
    y_gap = y.copy()
    y_gap[40] = np.nan
    ref = reference_filter(model, y_gap)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(robust, name), getattr(ref, name), err_msg=name)
    assert robust.loglik == ref.loglik
    np.testing.assert_array_equal(robust.x_filt[40], robust.x_pred[40])
    np.testing.assert_array_equal(robust.K[40], 0.0)
    # the tested innovation is kept, so nis() shows why the step was skipped
    assert nis(robust)[40] > chi2_gate(2, 1e-6)


def test_robust_skip_with_a_partly_missing_step(rng):
    model = random_model(rng, 2, 3)
    _, y = simulate(model, 50, rng=rng)
    y[20, 1] = np.nan
    y[20, 0] += 80.0
    robust, flags = robust_filter(model, y, alpha=1e-6, mode="skip")
    assert flags[20] and flags.sum() == 1
    y_gap = y.copy()
    y_gap[20] = np.nan
    np.testing.assert_array_equal(robust.x_filt, reference_filter(model, y_gap).x_filt)
    value, dof = nis(robust, return_dof=True)
    assert dof[20] == 2 and value[20] > chi2_gate(2, 1e-6)


def inflated_update(x, P, nu, H, R, gate):
    """Kalman update with R scaled by the lam that puts the NIS on the gate (brentq)."""
    A = H @ P @ H.T

    def excess(lam):
        return nu @ np.linalg.inv(A + lam * R) @ nu - gate

    hi = 2.0
    while excess(hi) > 0:
        hi *= 2
    lam = scipy.optimize.brentq(excess, 1.0, hi, xtol=1e-14, rtol=1e-14)
    S = A + lam * R
    K = P @ H.T @ np.linalg.inv(S)
    return x + K @ nu, (np.eye(len(x)) - K @ H) @ P, lam


@pytest.mark.parametrize("n,m", [(1, 1), (2, 1), (3, 2), (2, 3)])
def test_robust_inflate_puts_the_observation_on_the_gate(rng, n, m):
    model = random_model(rng, n, m)
    _, y = simulate(model, 40, rng=rng)
    y[25] += 30.0 * rng.choice([-1, 1], size=m)
    alpha = 1e-4
    robust, flags = robust_filter(model, y, alpha=alpha, mode="inflate")
    assert flags[25]
    for t in np.flatnonzero(flags):
        H, R = model.H, model.R
        x, P, lam = inflated_update(robust.x_pred[t], robust.P_pred[t], robust.innovations[t],
                                    H, R, chi2_gate(m, alpha))
        assert lam > 1
        np.testing.assert_allclose(robust.x_filt[t], x, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(robust.P_filt[t], P, rtol=1e-8, atol=1e-10)
    # the steps before the first flag are the plain filter's
    first = np.flatnonzero(flags)[0]
    np.testing.assert_array_equal(robust.x_filt[:first], reference_filter(model, y).x_filt[:first])


def test_robust_inflate_with_a_partly_missing_step(rng):
    model = random_model(rng, 2, 3)
    _, y = simulate(model, 30, rng=rng)
    y[12, 2] = np.nan
    y[12, :2] += 40.0
    robust, flags = robust_filter(model, y, alpha=1e-4, mode="inflate")
    assert flags[12]
    o = np.array([True, True, False])
    x, P, _ = inflated_update(robust.x_pred[12], robust.P_pred[12], robust.innovations[12, o],
                              model.H[o], model.R[np.ix_(o, o)], chi2_gate(2, 1e-4))
    np.testing.assert_allclose(robust.x_filt[12], x, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(robust.P_filt[12], P, rtol=1e-8, atol=1e-10)


def test_robust_batch_equals_one_series_at_a_time(rng):
    model = random_model(rng, 2, 2)
    _, Y = simulate_batch(model, 50, 4, rng)
    Y = with_gaps(rng, Y, 0.1)
    Y[1, 20] += 40.0
    Y[3, 35, 0] += 40.0
    for mode in ("skip", "inflate"):
        batch, batch_flags = robust_filter(model, Y, alpha=1e-3, mode=mode)
        for b in range(4):
            one, one_flags = robust_filter(model, Y[b], alpha=1e-3, mode=mode)
            np.testing.assert_array_equal(batch_flags[b], one_flags)
            np.testing.assert_allclose(batch.x_filt[b], one.x_filt, rtol=1e-10, atol=1e-12)
            assert batch.loglik[b] == pytest.approx(one.loglik, rel=1e-12)


def test_robust_filter_keeps_its_rmse_after_an_outlier(rng):
    """One bad reading: the plain filter's error jumps, the robust one's does not."""
    model = constant_velocity(1.0, q=0.01, r=1.0, x0=[0.0, 0.0], P0=0.01 * np.eye(2))
    X, Y = simulate_batch(model, 200, 200, rng)
    Y_bad = Y.copy()
    Y_bad[:, 120, 0] += 25.0
    after = slice(120, 150)

    def rmse(filt):
        return np.sqrt(np.mean((filt.x_filt[:, after, 0] - X[:, after, 0]) ** 2))

    clean = rmse(kalman_filter(model, Y))
    plain = rmse(kalman_filter(model, Y_bad))
    for mode in ("skip", "inflate"):
        robust, flags = robust_filter(model, Y_bad, alpha=0.01, mode=mode)
        assert flags[:, 120].all()
        assert rmse(robust) < 1.1 * clean
    assert plain > 2.5 * clean


def test_skipping_locks_out_after_a_real_change_unless_limited(rng):
    """A manoeuvre the model did not expect: every later step is flagged and
    skipped, and the error grows without bound; max_skips lets the filter
    take the change in."""
    model = constant_velocity(1.0, q=1e-4, r=1.0, x0=[0.0, 0.0], P0=1e-4 * np.eye(2))
    t = np.arange(1, 151)
    truth = np.where(t < 50, 0.0, 2.0 * (t - 50))            # starts moving at 2 per step
    y = (truth + rng.standard_normal(150))[:, None]
    locked, flags = robust_filter(model, y, mode="skip")
    assert flags[60:].all()
    assert abs(locked.x_filt[-1, 0] - truth[-1]) > 100
    limited, flags = robust_filter(model, y, mode="skip", max_skips=3)
    assert abs(limited.x_filt[-1, 0] - truth[-1]) < 5
    assert not flags[-20:].any()
    # max_skips=0 never skips: the plain filter, flags and all
    plain, flags = robust_filter(model, y, mode="skip", max_skips=0)
    assert flags.any()
    assert_same_filter(plain, reference_filter(model, y))


# --------------------------------------------------------------------------
# precision and recall


def test_precision_recall():
    flags = np.array([[True, True, False, False], [True, False, False, True]])
    labels = np.array([[True, False, False, True], [True, False, True, True]])
    precision, recall = precision_recall(flags, labels)
    assert precision == pytest.approx(3 / 4) and recall == pytest.approx(3 / 5)
    assert precision_recall(flags.astype(int), labels.astype(int)) == (precision, recall)
    p, r = precision_recall(np.zeros(3, bool), np.array([True, False, False]))
    assert np.isnan(p) and r == 0.0
    p, r = precision_recall(np.array([True, False, False]), np.zeros(3, bool))
    assert p == 0.0 and np.isnan(r)


# --------------------------------------------------------------------------
# errors


def small_filter():
    model = local_level(1.0, 1.0)
    return model, kalman_filter(model, np.zeros((5, 1)))


@pytest.mark.parametrize("call,exc,match", [
    (lambda m, f: nis(f.x_filt), TypeError, r"filt must be the FilterResult .* got ndarray"),
    (lambda m, f: flag_anomalies(f, alpha=0.0), ValueError, r"alpha must be in \(0, 1\).*got 0.0"),
    (lambda m, f: flag_anomalies(f, alpha=1.5), ValueError, r"alpha must be in \(0, 1\).*got 1.5"),
    (lambda m, f: flag_anomalies(f, alpha="0.01"), TypeError, r"alpha must be a number in \(0, 1\); got str"),
    (lambda m, f: chi2_gate(-1), ValueError, r"dof must be non-negative; got -1"),
    (lambda m, f: chi2_gate(1.5), ValueError, r"dof must hold whole numbers"),
    (lambda m, f: chi2_gate(np.array([True])), TypeError, r"dof must be an integer .* got dtype bool"),
    (lambda m, f: chi2_gate(2, alpha=-0.1), ValueError, r"alpha must be in \(0, 1\)"),
    (lambda m, f: windowed_nis(f, 0), ValueError, r"window must be at least 1; got 0"),
    (lambda m, f: windowed_nis(f, 2.5), TypeError, r"window must be an int; got float"),
    (lambda m, f: nees(np.zeros((5, 2)), np.zeros((5, 1)), np.ones((5, 1, 1))), ValueError,
     r"x_true must have shape \(\.\.\., T, 1\) like x_est; got \(5, 2\)"),
    (lambda m, f: nees(np.zeros((5, 2)), np.zeros((5, 2)), np.ones((5, 3, 3))), ValueError,
     r"P must have shape \(\.\.\., T, 2, 2\); got \(5, 3, 3\)"),
    (lambda m, f: nees(np.zeros((5, 2)), np.zeros((4, 2)), np.ones((4, 2, 2))), ValueError,
     r"x_true of shape \(5, 2\) and x_est of shape \(4, 2\) do not broadcast"),
    (lambda m, f: nees(np.zeros((5, 1)), np.zeros((5, 1)), np.zeros((5, 1, 1))), ValueError,
     r"P must be positive definite"),
    (lambda m, f: nees(np.zeros((5, 1)), np.full((5, 1), np.nan), np.ones((5, 1, 1))), ValueError,
     r"x_est contains NaN or inf"),
    (lambda m, f: robust_filter(m, np.zeros((5, 1)), mode="drop"), ValueError,
     r"mode must be 'skip' or 'inflate'; got 'drop'"),
    (lambda m, f: robust_filter(f, np.zeros((5, 1))), TypeError,
     r"model must be a kflib.LinearGaussianSSM; got FilterResult"),
    (lambda m, f: robust_filter(m, np.zeros((5, 2))), ValueError,
     r"y must have shape \(T, 1\) or \(batch, T, 1\); got \(5, 2\)"),
    (lambda m, f: robust_filter(m, np.zeros((5, 1)), alpha=2), ValueError, r"alpha must be in \(0, 1\)"),
    (lambda m, f: robust_filter(m, np.zeros((5, 1)), max_skips=-1), ValueError,
     r"max_skips must be non-negative; got -1"),
    (lambda m, f: robust_filter(m, np.zeros((5, 1)), max_skips=2.0), TypeError,
     r"max_skips must be an int or None; got float"),
    (lambda m, f: robust_filter(m, np.zeros((5, 1)), u=np.zeros((5, 1))), ValueError,
     r"u was given but the model has no control matrix B"),
    (lambda m, f: precision_recall(np.zeros(3, bool), np.zeros(4, bool)), ValueError,
     r"flags and labels must have the same shape; got \(3,\) and \(4,\)"),
    (lambda m, f: precision_recall(np.zeros(3), np.zeros(3, bool)), TypeError,
     r"flags must be a bool array .* got dtype float64"),
])
def test_errors_name_the_argument(call, exc, match):
    model, filt = small_filter()
    with pytest.raises(exc, match=match):
        call(model, filt)


def test_inflate_needs_a_positive_definite_R():
    model = LinearGaussianSSM(F=np.eye(2), H=np.eye(2), Q=np.eye(2), R=np.diag([1.0, 0.0]),
                              x0=np.zeros(2), P0=np.eye(2))
    y = np.zeros((3, 2))
    y[1] = 100.0
    with pytest.raises(ValueError, match=r"mode='inflate' needs R positive definite .* use mode='skip'"):
        robust_filter(model, y, mode="inflate")
    robust_filter(model, y, mode="skip")              # skipping needs no R^{-1}


def test_nis_with_singular_S_says_so():
    model = LinearGaussianSSM(F=np.eye(2), H=np.ones((1, 2)), Q=np.zeros((2, 2)), R=[[0.0]],
                              x0=np.zeros(2), P0=np.zeros((2, 2)))
    filt = kalman_filter(model, np.full((2, 1), np.nan))      # nothing observed: fine
    assert np.isnan(nis(filt)).all()
    fake = type(filt)(filt.x_pred, filt.P_pred, filt.x_filt, filt.P_filt,
                      np.zeros((2, 1)), filt.S, filt.K, 0.0)
    with pytest.raises(np.linalg.LinAlgError, match="innovation covariance S is singular"):
        nis(fake)
