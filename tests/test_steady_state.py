"""Steady state: closed forms and convergence of the Riccati recursion."""

import numpy as np
import pytest

from kflib import LinearGaussianSSM, kalman_filter, models, steady_state
from conftest import random_model


@pytest.mark.parametrize("q,r", [(1.0, 1.0), (0.01, 4.0), (3.0, 0.2), (1469.1, 15099.0)])
def test_local_level_closed_form(q, r):
    P_pred, K, P_filt = steady_state(models.local_level(q, r))
    P = (q + np.sqrt(q * q + 4 * q * r)) / 2          # prior variance
    np.testing.assert_allclose(P_pred, [[P]], rtol=1e-12)
    np.testing.assert_allclose(K, [[P / (P + r)]], rtol=1e-12)
    np.testing.assert_allclose(P_filt, [[P * r / (P + r)]], rtol=1e-12)


def test_random_walk_q_r_one_floor():
    # q = r = 1: steady filtered variance (sqrt 5 - 1)/2
    _, _, P_filt = steady_state(models.local_level(1.0, 1.0))
    np.testing.assert_allclose(P_filt[0, 0], (np.sqrt(5) - 1) / 2, rtol=1e-12)


@pytest.mark.parametrize("n,m,seed", [(2, 1, 0), (3, 2, 1), (4, 3, 2)])
def test_riccati_recursion_converges_to_dare(n, m, seed):
    rng = np.random.default_rng(seed)
    model = random_model(rng, n, m)
    filt = kalman_filter(model, np.zeros((300, m)))      # P does not depend on y
    P_pred, K, P_filt = steady_state(model)
    np.testing.assert_allclose(filt.P_pred[-1], P_pred, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(filt.K[-1], K, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(filt.P_filt[-1], P_filt, rtol=1e-9, atol=1e-12)


def test_time_varying_model_rejected():
    model = LinearGaussianSSM(F=np.ones((5, 1, 1)), H=1, Q=1, R=1, x0=0, P0=1)
    with pytest.raises(ValueError, match="time-invariant"):
        steady_state(model)
