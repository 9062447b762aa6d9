"""Mistakes that pass the visible tests of ps05-em but not the hidden ones.

Used like wrong.py: each block replaces one part of an otherwise correct
submission, which must lose exactly that part's points.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np
from kflib import kalman_filter, rts_smoother  # noqa: F401
from kflib.models import local_level  # noqa: F401

# %% answer: m_step_Q
def m_step_Q(F, x_smooth, P_smooth, P_lag1, x0_smooth, P0_smooth):
    # the right update, but it works in the caller's P_smooth array: the
    # in-place operations below change the smoother output it was given
    x_prev = np.concatenate([x0_smooth[None], x_smooth[:-1]])
    P_prev = np.concatenate([P0_smooth[None], P_smooth[:-1]])
    d = x_smooth - x_prev @ F.T
    cov = P_smooth
    cov -= F @ np.swapaxes(P_lag1, 1, 2) + P_lag1 @ F.T
    cov += F @ P_prev @ F.T
    return (d.T @ d + cov.sum(axis=0)) / len(x_smooth)


# %% answer: em_local_level
def em_local_level(y, q0, r0, x0, P0, n_iter):
    # ignores x0 and centres the level at time 0 on the first observation,
    # which is what every visible test passes as x0
    y = np.asarray(y, dtype=float)
    q, r = q0, r0
    history = []
    for k in range(n_iter + 1):
        model = local_level(q, r, x0=y[0], P0=P0)
        filt = kalman_filter(model, y[:, None])
        history.append(filt.loglik)
        if k == n_iter:
            break
        sm = rts_smoother(model, filt)
        xs = np.concatenate([sm.x0_smooth, sm.x_smooth[:, 0]])
        Ps = np.concatenate([sm.P0_smooth[0], sm.P_smooth[:, 0, 0]])
        lag = sm.P_lag1[:, 0, 0]
        q = np.mean((xs[1:] - xs[:-1])**2 + Ps[1:] + Ps[:-1] - 2 * lag)
        r = np.mean((y - xs[1:])**2 + Ps[1:])
    return q, r, np.array(history)
