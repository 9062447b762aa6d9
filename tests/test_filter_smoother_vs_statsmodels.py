"""kflib's filter and smoother against statsmodels on random models."""

import itertools

import numpy as np
import pytest

from kflib import kalman_filter, rts_smoother, simulate
from conftest import random_model, statsmodels_reference

RTOL = 1e-8


def close(actual, expected, rtol=RTOL):
    """Relative to the size of the whole array (entries near zero included)."""
    scale = max(np.max(np.abs(expected)), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


CASES = [(n, m, r, miss, tv)
         for n, m in itertools.product(range(1, 5), range(1, 4))
         for r, miss, tv in [(0, False, False), (2, True, False), (1, True, True)]]


@pytest.mark.parametrize("n,m,r,missing,tv", CASES)
def test_filter_and_smoother_match_statsmodels(n, m, r, missing, tv):
    rng = np.random.default_rng(1000 * n + 100 * m + 10 * r + 2 * missing + tv)
    T = 60
    model = random_model(rng, n, m, r=r, T=T, tv=tv)
    u = rng.standard_normal((T, r)) if r else None
    _, y = simulate(model, T, rng=rng, u=u)
    if missing:
        y[rng.random(y.shape) < 0.2] = np.nan
        y[10] = np.nan                                   # one fully missing step
    ref = statsmodels_reference(model, y, u)
    filt = kalman_filter(model, y, u=u)
    smooth = rts_smoother(model, filt)

    close(filt.loglik, ref.llf)
    close(filt.x_pred, ref.predicted_state[:, :T].T)
    close(filt.P_pred, np.moveaxis(ref.predicted_state_cov[:, :, :T], -1, 0))
    close(filt.x_filt, ref.filtered_state.T)
    close(filt.P_filt, np.moveaxis(ref.filtered_state_cov, -1, 0))
    close(smooth.x_smooth, ref.smoothed_state.T)
    close(smooth.P_smooth, np.moveaxis(ref.smoothed_state_cov, -1, 0))
    # statsmodels' autocov[t] = Cov(x_{t+1}, x_t | y); ours P_lag1[t] = Cov(x_t, x_{t-1} | y)
    close(smooth.P_lag1[1:], np.moveaxis(ref.smoothed_state_autocov, -1, 0)[:-1])

    observed = ~np.isnan(y)
    fe = ref.forecasts_error.T
    close(filt.innovations[observed], fe[observed])
    assert np.isnan(filt.innovations[~observed]).all()
    full = observed.all(axis=1)
    close(filt.S[full], np.moveaxis(ref.forecasts_error_cov, -1, 0)[full])


def test_loglik_per_step_matches_statsmodels(rng):
    model = random_model(rng, 3, 2)
    _, y = simulate(model, 40, rng=rng)
    ref = statsmodels_reference(model, y)
    # the prediction-error decomposition, step by step: filter prefixes
    cum = [kalman_filter(model, y[: t + 1]).loglik for t in range(40)]
    close(np.diff(cum, prepend=0.0), ref.llf_obs)
