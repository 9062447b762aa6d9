"""Common mistakes, one per part of ps05-em (see tests/test_exercises.py).

A submission takes the instructor's answers for every part but one, and the
block below for that one; it must lose exactly that part's points.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np
from kflib import kalman_filter, rts_smoother  # noqa: F401
from kflib.models import local_level  # noqa: F401

# %% answer: m_step_R
def m_step_R(y, H, x_smooth, P_smooth):
    # squares of the smoothed residuals only: forgets H P_t|T H'
    e = y - x_smooth @ H.T
    return e.T @ e / len(y)


# %% answer: m_step_Q
def m_step_Q(F, x_smooth, P_smooth, P_lag1, x0_smooth, P0_smooth):
    # the widely copied "simplified" update: P_t|T + F P_t-1|T F', no cross terms
    x_prev = np.concatenate([x0_smooth[None], x_smooth[:-1]])
    P_prev = np.concatenate([P0_smooth[None], P_smooth[:-1]])
    d = x_smooth - x_prev @ F.T
    cov = P_smooth + F @ P_prev @ F.T
    return (d.T @ d + cov.sum(axis=0)) / len(x_smooth)


# %% answer: em_local_level
def em_local_level(y, q0, r0, x0, P0, n_iter):
    # divides by T - 1 instead of T
    y = np.asarray(y, dtype=float)
    T = len(y)
    q, r = q0, r0
    history = []
    for k in range(n_iter + 1):
        model = local_level(q, r, x0=x0, P0=P0)
        filt = kalman_filter(model, y[:, None])
        history.append(filt.loglik)
        if k == n_iter:
            break
        sm = rts_smoother(model, filt)
        xs = np.concatenate([sm.x0_smooth, sm.x_smooth[:, 0]])
        Ps = np.concatenate([sm.P0_smooth[0], sm.P_smooth[:, 0, 0]])
        lag = sm.P_lag1[:, 0, 0]
        q = np.sum((xs[1:] - xs[:-1])**2 + Ps[1:] + Ps[:-1] - 2 * lag) / (T - 1)
        r = np.sum((y - xs[1:])**2 + Ps[1:]) / (T - 1)
    return q, r, np.array(history)
