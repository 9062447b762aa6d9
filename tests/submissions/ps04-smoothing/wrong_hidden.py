"""Mistakes that pass the visible tests of ps04-smoothing but not the hidden ones.

Used like wrong.py: each block replaces one part of an otherwise correct
submission, which must lose exactly that part's points, while
`nbgrader validate` (the visible tests) still passes it.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np
import kflib
from kflib import LinearGaussianSSM

# %% answer: gain
def smoother_gain(P_filt_t, F, P_pred_next):
    # a ridge "for numerical safety": invisible when the covariances are of
    # order 1, as in the visible tests, wrong when they are of order 1e-8
    n = len(F)
    return P_filt_t @ F.T @ np.linalg.inv(P_pred_next + 1e-9 * np.eye(n))


# %% answer: smooth
def rts_smooth(F, x_filt, P_filt, x_pred, P_pred):
    # all the gains first, with np.stack: fails on a series of length T = 1
    # (an empty list), which the visible tests never pass
    T = len(x_filt)
    G = np.stack([P_filt[k] @ F.T @ np.linalg.inv(P_pred[k + 1]) for k in range(T - 1)])
    x_s, P_s = x_filt.copy(), P_filt.copy()
    for k in range(T - 2, -1, -1):
        x_s[k] = x_filt[k] + G[k] @ (x_s[k + 1] - x_pred[k + 1])
        P_s[k] = P_filt[k] + G[k] @ (P_s[k + 1] - P_pred[k + 1]) @ G[k].T
    return x_s, P_s


# %% answer: lag_one
def lag_one_covariance(F, P_filt, P_pred, P_smooth):
    # lets kflib.rts_smoother do the work, which the notebook forbids: right
    # in the visible tests, blocked by the hidden ones
    T, n = P_filt.shape[:2]
    Q = P_pred[1] - F @ P_filt[0] @ F.T if T > 1 else np.eye(n)     # the model's Q
    model = LinearGaussianSSM(F, np.zeros((1, n)), 0.5 * (Q + Q.T), np.eye(1), np.zeros(n), np.eye(n))
    filt = kflib.FilterResult(np.zeros((T, n)), P_pred, np.zeros((T, n)), P_filt,
                              np.zeros((T, 1)), np.ones((T, 1, 1)), np.zeros((T, n, 1)), 0.0)
    return kflib.rts_smoother(model, filt).P_lag1[1:]


# %% answer: gap
def interpolate_gap(model, y):
    # assumes a single gap: takes every row from the first missing one to the
    # last, observed rows in between included
    smooth = kflib.rts_smoother(model, kflib.kalman_filter(model, y))
    rows = np.flatnonzero(np.isnan(y).all(axis=1))
    gap = slice(rows[0], rows[-1] + 1)
    H = model.H
    return smooth.x_smooth[gap] @ H.T, H @ smooth.P_smooth[gap] @ H.T + model.R
