"""EM's M-step for Q against brute-force expectations, and the conventions the
book and ps05 rely on: the sum over all T transitions (x_0 -> x_1 included)
divided by T, controls, batches, and the options that must not change results.

The reference conditions the joint Gaussian of (x_0, ..., x_T, y_1, ..., y_T)
on the observations with one dense solve (tests/test_filter_smoother_vs_dense.py),
so it shares no code with the filter, the smoother or the M-step.
"""

import warnings

import numpy as np
import pytest

from kflib import ConvergenceWarning, em, simulate
from conftest import random_cov, random_model
from test_filter_smoother_vs_dense import condition, joint_gaussian


def one_m_step(y, model, learn, u=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return em(y, model, n_iter=1, tol=0.0, learn=learn, u=u).model


def dense_expected_Q(model, y, u=None):
    """(1/T) sum_{t=1..T} E[(x_t - F x_{t-1} - B u_t)(.)' | observed y]."""
    T, m = y.shape
    n = model.n
    mean, cov = joint_gaussian(model, T, u)
    nx = (T + 1) * n
    obs = ~np.isnan(y.ravel())
    mu, Sig = condition(mean, cov, nx + np.flatnonzero(obs), y.ravel()[obs])
    total = np.zeros((n, n))
    for t in range(1, T + 1):
        # w_t = x_t - F x_{t-1} - B u_t as a linear map of the joint vector
        A = np.zeros((n, len(mean)))
        A[:, t * n:(t + 1) * n] = np.eye(n)
        A[:, (t - 1) * n:t * n] -= model.F
        c = model.B @ u[t - 1] if model.B is not None else np.zeros(n)
        w = A @ mu - c
        total += np.outer(w, w) + A @ Sig @ A.T
    return total / T


@pytest.mark.parametrize("n,m,r,T,missing,seed", [
    (1, 1, 0, 6, False, 1), (2, 1, 0, 5, False, 2), (2, 2, 0, 6, True, 3),
    (3, 2, 1, 5, False, 4), (3, 1, 2, 4, True, 5), (1, 2, 0, 1, False, 6)])
def test_Q_m_step_is_the_dense_expectation_over_all_T_transitions(n, m, r, T, missing, seed):
    rng = np.random.default_rng(seed)
    model = random_model(rng, n, m, r=r)
    u = rng.standard_normal((T, r)) if r else None
    _, y = simulate(model, T, rng=rng, u=u)
    if missing:
        y[1, 0] = np.nan
    Q_new = one_m_step(y, model, ("Q",), u=u).Q
    np.testing.assert_allclose(Q_new, dense_expected_Q(model, y, u), rtol=1e-8, atol=1e-12)


def test_the_first_transition_and_one_over_T_matter():
    """Dropping x_0 -> x_1, or dividing by T - 1, gives a different Q: the
    dense check above would catch either convention slip."""
    rng = np.random.default_rng(7)
    model = random_model(rng, 2, 1)
    T = 6
    _, y = simulate(model, T, rng=rng)
    Q_new = one_m_step(y, model, ("Q",)).Q
    assert not np.allclose(Q_new * T / (T - 1), Q_new, rtol=1e-3)
    mean, cov = joint_gaussian(model, T)
    n = model.n
    nx = (T + 1) * n
    mu, Sig = condition(mean, cov, nx + np.arange(T), y.ravel())
    A = np.zeros((n, len(mean)))
    A[:, n:2 * n] = np.eye(n)
    A[:, :n] = -model.F
    first = np.outer(A @ mu, A @ mu) + A @ Sig @ A.T          # E[w_1 w_1' | y]
    without_first = (Q_new * T - first) / (T - 1)
    assert not np.allclose(without_first, Q_new, rtol=1e-3)


def test_batch_m_step_pools_the_series():
    rng = np.random.default_rng(8)
    model = random_model(rng, 2, 2)
    ys = np.stack([simulate(model, 5, rng=rng)[1] for _ in range(3)])
    Q_batch = one_m_step(ys, model, ("Q",)).Q
    Q_each = np.mean([dense_expected_Q(model, y) for y in ys], axis=0)
    np.testing.assert_allclose(Q_batch, Q_each, rtol=1e-8, atol=1e-12)


def test_only_the_learned_parameters_change():
    rng = np.random.default_rng(9)
    model = random_model(rng, 2, 2)
    _, y = simulate(model, 30, rng=rng)
    start = model.replace(Q=random_cov(rng, 2), R=random_cov(rng, 2))
    fitted = one_m_step(y, start, ("Q",))
    for name in ("F", "H", "R", "x0", "P0"):
        np.testing.assert_array_equal(getattr(fitted, name), getattr(start, name))
    assert not np.allclose(fitted.Q, start.Q)


def test_progress_bar_does_not_change_the_result():
    rng = np.random.default_rng(10)
    model = random_model(rng, 2, 1)
    _, y = simulate(model, 40, rng=rng)
    start = model.replace(Q=np.eye(2), R=[[2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        quiet = em(y, start, n_iter=5, tol=0.0)
        shown = em(y, start, n_iter=5, tol=0.0, progress=True)
    np.testing.assert_array_equal(quiet.loglik_history, shown.loglik_history)
    np.testing.assert_array_equal(quiet.model.Q, shown.model.Q)
    np.testing.assert_array_equal(quiet.model.R, shown.model.R)


# -- what the M-step does not model is refused, not fitted wrongly -----------------

def test_em_refuses_intercepts():
    # c = 3, d = 10, true Q = R = 0.5: the M-step, written without intercepts,
    # returned Q = 35.2 and R = 134.7
    from kflib import LinearGaussianSSM
    true = LinearGaussianSSM(F=0.9, H=1, Q=0.5, R=0.5, x0=0, P0=1, c=[3.0], d=[10.0])
    _, y = simulate(true, 200, rng=np.random.default_rng(0))
    for kw, name in ((dict(c=[3.0], d=[10.0]), "c and d"), (dict(c=[3.0]), "c"),
                     (dict(d=[10.0]), "d")):
        start = LinearGaussianSSM(F=0.9, H=1, Q=1, R=1, x0=0, P0=1, **kw)
        with pytest.raises(ValueError, match=f"em does not support the intercepts? {name} "):
            em(y, start, n_iter=3)


@pytest.mark.parametrize("start,what", [(dict(a1=0, P1=1), "a1, P1"),
                                        (dict(diffuse=True), "an exact diffuse start")])
def test_em_refuses_a_start_at_time_1(start, what):
    from kflib import LinearGaussianSSM
    model = LinearGaussianSSM(F=0.9, H=1, Q=1, R=1, **start)
    y = np.random.default_rng(1).standard_normal(30)
    with pytest.raises(ValueError, match=f"em needs a model started at time 0.*{what}"):
        em(y, model, n_iter=3)
