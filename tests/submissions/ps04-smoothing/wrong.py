"""Common mistakes, one per part of ps04-smoothing (see tests/test_exercises.py).

A submission takes the instructor's answers for every part but one, and the
block below for that one; it must lose exactly that part's points. The visible
tests catch each of these mistakes.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np
import kflib  # noqa: F401

# %% answer: gain
def smoother_gain(P_filt_t, F, P_pred_next):
    # F where F' belongs
    return P_filt_t @ F @ np.linalg.inv(P_pred_next)


# %% answer: smooth
def rts_smooth(F, x_filt, P_filt, x_pred, P_pred):
    # the gain with the filtered P_{t+1|t+1} instead of the predicted P_{t+1|t}
    x_s, P_s = x_filt.copy(), P_filt.copy()
    for k in range(len(x_filt) - 2, -1, -1):
        G = np.linalg.solve(P_filt[k + 1], F @ P_filt[k]).T
        x_s[k] = x_filt[k] + G @ (x_s[k + 1] - x_pred[k + 1])
        P_s[k] = P_filt[k] + G @ (P_s[k + 1] - P_pred[k + 1]) @ G.T
    return x_s, P_s


# %% answer: lag_one
def lag_one_covariance(F, P_filt, P_pred, P_smooth):
    # P_{t|T} G_t' instead of P_{t|T} G_{t-1}': pairs P_smooth[k] with the gain of row k
    T = len(P_filt)
    out = np.empty((T - 1,) + P_filt.shape[1:])
    for k in range(T - 1):
        G = P_filt[k] @ F.T @ np.linalg.inv(P_pred[k + 1])
        out[k] = P_smooth[k] @ G.T
    return out


# %% answer: gap
def interpolate_gap(model, y):
    # the variance of H x_t only: R is missing
    smooth = kflib.rts_smoother(model, kflib.kalman_filter(model, y))
    missing = np.isnan(y).all(axis=1)
    H = model.H
    return smooth.x_smooth[missing] @ H.T, H @ smooth.P_smooth[missing] @ H.T
