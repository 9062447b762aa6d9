"""Common mistakes, one per part of ps01-state-space (see tests/test_exercises.py).

A submission takes the instructor's answers for every part but one, and the
block below for that one; it must lose exactly that part's points.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np
from kflib import LinearGaussianSSM  # noqa: F401

# %% answer: cv_model
def constant_velocity_model(dt, q, r):
    # the piecewise-constant (discrete) white-noise acceleration Q
    F = np.array([[1.0, dt], [0.0, 1.0]])
    H = np.array([[1.0, 0.0]])
    Q = q * np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]])
    R = np.array([[r]])
    return F, H, Q, R


# %% answer: simulate
def simulate_with_noise(F, H, x0, w, v):
    # off by one: stores x_{t-1} in row t-1, so the output starts at x0
    x = np.empty(w.shape)
    state = np.asarray(x0, dtype=float)
    for t in range(len(w)):
        x[t] = state
        state = F @ state + w[t]
    return x, x @ H.T + v


# %% answer: prior
def prior_moments(F, Q, x0, P0, T):
    # F' P F instead of F P F'
    means, covs = [], []
    m, P = np.asarray(x0, dtype=float), np.asarray(P0, dtype=float)
    for t in range(T):
        m = F @ m
        P = F.T @ P @ F + Q
        means.append(m)
        covs.append(P)
    return np.array(means), np.array(covs)


# %% answer: arima
def arima211_model(phi1, phi2, theta1, sigma2, y0):
    # the widely copied AR(2) companion form: no MA term, no differencing
    F = np.array([[phi1, phi2, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    H = np.array([[1.0, 0.0, 0.0]])
    Q = np.diag([sigma2, 0.0, 0.0])
    R = np.zeros((1, 1))
    return LinearGaussianSSM(F, H, Q, R, np.array([y0, 0.0, 0.0]), np.eye(3))
