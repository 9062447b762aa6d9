"""Common mistakes, one per part of ps08-structural (see tests/test_exercises.py).

A submission takes the instructor's answers for every part but one, and the
block below for that one; it must lose exactly that part's points.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np
import scipy.linalg

# %% answer: seasonal_dummy
def seasonal_dummy_block(s, var):
    # one state per season: gamma_t = -(gamma_{t-1} + ... + gamma_{t-s}), period s + 1
    F = np.zeros((s, s))
    F[0, :] = -1.0
    F[1:, :-1] = np.eye(s - 1)
    H = np.zeros((1, s))
    H[0, 0] = 1.0
    Q = np.zeros((s, s))
    Q[0, 0] = var
    return F, H, Q


# %% answer: local_linear_trend
def local_linear_trend_block(level_var, slope_var):
    # the two variances swapped
    F = np.array([[1.0, 1.0], [0.0, 1.0]])
    H = np.array([[1.0, 0.0]])
    Q = np.diag([slope_var, level_var])
    return F, H, Q


# %% answer: trig_seasonal
def trig_seasonal_block(s, h, var):
    # harmonics j = 0, ..., h-1 instead of 1, ..., h: frequency 0 is a second level
    F_parts = []
    for j in range(h):
        lam = 2 * np.pi * j / s
        F_parts.append(np.array([[np.cos(lam), np.sin(lam)], [-np.sin(lam), np.cos(lam)]]))
    F = scipy.linalg.block_diag(*F_parts)
    H = np.tile([1.0, 0.0], h)[None, :]
    return F, H, var * np.eye(2 * h)


# %% answer: combine
def combine_blocks(blocks, irregular_var):
    # keeps only the diagonal of each block's Q
    F = scipy.linalg.block_diag(*(F_b for F_b, _, _ in blocks))
    H = np.hstack([H_b for _, H_b, _ in blocks])
    Q = np.diag(np.concatenate([np.diag(Q_b) for _, _, Q_b in blocks]))
    return F, H, Q, np.array([[irregular_var]])


# %% answer: forecast
def forecast_moments(F, H, Q, R, x, P, steps):
    # Q added once, not at every step: P_{T+h|T} = F^h P F^h' + Q
    x_mean, P_fc, y_mean, y_cov = [], [], [], []
    Fh = np.eye(len(F))
    for _ in range(steps):
        Fh = F @ Fh
        x_h, P_h = Fh @ x, Fh @ P @ Fh.T + Q
        x_mean.append(x_h)
        P_fc.append(P_h)
        y_mean.append(H @ x_h)
        y_cov.append(H @ P_h @ H.T + R)
    return np.array(x_mean), np.array(P_fc), np.array(y_mean), np.array(y_cov)
