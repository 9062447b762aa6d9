"""Mistakes that pass the visible tests of ps01-state-space but not the hidden ones.

Used like wrong.py: each block replaces one part of an otherwise correct
submission, which must lose exactly that part's points.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np
from kflib import LinearGaussianSSM  # noqa: F401

# %% answer: simulate
def simulate_with_noise(F, H, x0, w, v):
    # assumes two states, as in every visible test
    T = w.shape[0]
    x = np.empty((T, 2))
    state = np.asarray(x0, dtype=float)
    for t in range(T):
        state = F @ state + w[t]
        x[t] = state
    return x, x @ H.T + v


# %% answer: prior
def prior_moments(F, Q, x0, P0, T):
    # assumes two states, as in every visible test
    means, covs = np.zeros((T, 2)), np.zeros((T, 2, 2))
    m, P = np.asarray(x0, dtype=float), np.asarray(P0, dtype=float)
    for t in range(T):
        m = F @ m
        P = F @ P @ F.T + Q
        means[t], covs[t] = m, P
    return means, covs


# %% answer: arima
def arima211_model(phi1, phi2, theta1, sigma2, y0):
    # the right representation, but the stationary covariance from 20 steps of
    # the Lyapunov recursion: exact enough for the visible parameters, not for
    # parameters closer to a unit root
    A = np.array([[phi1, 1.0], [phi2, 0.0]])
    g = np.array([1.0, theta1])
    Sigma = np.zeros((2, 2))
    for _ in range(20):
        Sigma = A @ Sigma @ A.T + sigma2 * np.outer(g, g)
    F = np.zeros((3, 3))
    F[0, 0] = 1.0
    F[0, 1:] = A[0]
    F[1:, 1:] = A
    loading = np.array([1.0, 1.0, theta1])
    Q = sigma2 * np.outer(loading, loading)
    P0 = np.zeros((3, 3))
    P0[1:, 1:] = Sigma
    return LinearGaussianSSM(F, np.array([[1.0, 0.0, 0.0]]), Q, np.zeros((1, 1)),
                             np.array([y0, 0.0, 0.0]), P0)
