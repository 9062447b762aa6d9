"""Property tests (hypothesis) on random models and data."""

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from kflib import kalman_filter, rts_smoother, simulate
from conftest import random_model

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

dims = st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(0, 2**32 - 1),
                 st.floats(0.0, 0.5))


def min_eig(P):
    return np.linalg.eigvalsh(P).min(axis=-1)


@SETTINGS
@given(dims)
def test_covariances_symmetric_psd(case):
    n, m, seed, p_missing = case
    rng = np.random.default_rng(seed)
    model = random_model(rng, n, m)
    _, y = simulate(model, 40, rng=rng)
    y[rng.random(y.shape) < p_missing] = np.nan
    filt = kalman_filter(model, y)
    smooth = rts_smoother(model, filt)
    for P in (filt.P_pred, filt.P_filt, smooth.P_smooth, filt.S):
        assert np.array_equal(P, np.swapaxes(P, -1, -2))
        assert (min_eig(P) > -1e-10 * np.abs(P).max()).all()


@SETTINGS
@given(dims)
def test_smoothed_variance_never_above_filtered(case):
    n, m, seed, p_missing = case
    rng = np.random.default_rng(seed)
    model = random_model(rng, n, m)
    _, y = simulate(model, 40, rng=rng)
    y[rng.random(y.shape) < p_missing] = np.nan
    filt = kalman_filter(model, y)
    smooth = rts_smoother(model, filt)
    # P_filt - P_smooth is PSD (so every smoothed variance is <= the filtered one)
    diff = filt.P_filt - smooth.P_smooth
    assert (min_eig(diff) > -1e-9 * np.abs(filt.P_filt).max()).all()
    assert (np.diagonal(smooth.P_smooth, axis1=-2, axis2=-1)
            <= np.diagonal(filt.P_filt, axis1=-2, axis2=-1) * (1 + 1e-9)).all()
    # and the filter's P_filt <= P_pred likewise
    assert (min_eig(filt.P_pred - filt.P_filt) > -1e-9 * np.abs(filt.P_pred).max()).all()


@SETTINGS
@given(dims, st.integers(1, 5), st.booleans())
def test_batch_equals_one_by_one(case, nb, with_u):
    n, m, seed, p_missing = case
    rng = np.random.default_rng(seed)
    T = 25
    model = random_model(rng, n, m, r=1 if with_u else 0)
    u = rng.standard_normal((nb, T, 1)) if with_u else None
    ys = np.stack([simulate(model, T, rng=rng, u=None if u is None else u[b])[1]
                   for b in range(nb)])
    ys[rng.random(ys.shape) < p_missing] = np.nan
    batch = kalman_filter(model, ys, u=u)
    sm_batch = rts_smoother(model, batch)
    for b in range(nb):
        one = kalman_filter(model, ys[b], u=None if u is None else u[b])
        sm_one = rts_smoother(model, one)
        for name in ("x_pred", "P_pred", "x_filt", "P_filt", "innovations", "S", "K"):
            np.testing.assert_allclose(getattr(batch, name)[b], getattr(one, name),
                                       rtol=1e-12, atol=1e-12, equal_nan=True)
        np.testing.assert_allclose(batch.loglik[b], one.loglik, rtol=1e-12)
        for name in ("x_smooth", "P_smooth", "P_lag1", "G", "x0_smooth", "P0_smooth"):
            np.testing.assert_allclose(getattr(sm_batch, name)[b], getattr(sm_one, name),
                                       rtol=1e-10, atol=1e-12)
