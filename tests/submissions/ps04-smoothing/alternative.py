"""A second correct solution of ps04-smoothing, written differently on purpose.

Each block after a `# %% answer: <grade_id>` line replaces the answer cell with
that nbgrader grade_id in the released notebook (tests/test_exercises.py).
Compared with the instructor's solution it uses an explicit inverse instead of
a linear solve, all the gains at once (vectorised) and then a loop with the
short form P_{t|t} - G (P_{t+1|t} - P_{t+1|T}) G' without symmetrising, the
Shumway-Stoffer backward recursion for the lag-one covariance instead of
P_{t|T} G_{t-1}', and for the gap no smoother at all: dense conditioning of the
joint Gaussian of all the observations. It must score full marks.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np
import scipy.linalg
import kflib  # noqa: F401
from kflib import LinearGaussianSSM  # noqa: F401

# %% answer: gain
def smoother_gain(P_filt_t, F, P_pred_next):
    return np.dot(np.dot(P_filt_t, np.transpose(F)), np.linalg.inv(P_pred_next))


# %% answer: smooth
def rts_smooth(F, x_filt, P_filt, x_pred, P_pred):
    T = x_filt.shape[0]
    # every gain at once: G[k] = P_filt[k] F' inv(P_pred[k + 1]), rows 0..T-2
    G = P_filt[:-1] @ F.T @ np.linalg.inv(P_pred[1:])
    xs = [None] * T
    Ps = [None] * T
    xs[T - 1], Ps[T - 1] = x_filt[T - 1], P_filt[T - 1]
    for k in reversed(range(T - 1)):
        xs[k] = x_filt[k] + G[k] @ (xs[k + 1] - x_pred[k + 1])
        # the short form: P_{t|t} - G (P_{t+1|t} - P_{t+1|T}) G'
        Ps[k] = P_filt[k] - G[k] @ (P_pred[k + 1] - Ps[k + 1]) @ G[k].T
    return np.array(xs), np.array(Ps)


# %% answer: lag_one
def lag_one_covariance(F, P_filt, P_pred, P_smooth):
    # Shumway & Stoffer (Property 6.3), backwards from
    # P_{T,T-1|T} = (I - K_T H) F P_{T-1|T-1} = P_{T|T} P_{T|T-1}^{-1} F P_{T-1|T-1},
    # then P_{t-1,t-2|T} = P_{t-1|t-1} G_{t-2}' + G_{t-1} (P_{t,t-1|T} - F P_{t-1|t-1}) G_{t-2}'.
    T, n = P_filt.shape[0], P_filt.shape[1]
    gains = [smoother_gain(P_filt[k], F, P_pred[k + 1]) for k in range(T - 1)]
    out = np.zeros((T - 1, n, n))
    out[T - 2] = P_filt[T - 1] @ np.linalg.inv(P_pred[T - 1]) @ F @ P_filt[T - 2]
    for k in range(T - 3, -1, -1):        # row k: Cov(x of row k + 1, x of row k)
        out[k] = (P_filt[k + 1] @ gains[k].T
                  + gains[k + 1] @ (out[k + 1] - F @ P_filt[k + 1]) @ gains[k].T)
    return out


# %% answer: gap
def interpolate_gap(model, y):
    # Condition the joint Gaussian of all the observations on the observed ones.
    F, H, Q, R = model.F, model.H, model.Q, model.R
    y = np.array(y, dtype=float)
    T, m = y.shape
    n = F.shape[0]
    # prior moments of the states: mean_t = F^t x0, P_t = F P_{t-1} F' + Q
    means, covs = [], []
    mean, P = model.x0, model.P0
    for _ in range(T):
        mean, P = F @ mean, F @ P @ F.T + Q
        means.append(mean)
        covs.append(P)
    # Cov(x_s, x_t) = F^(s-t) P_t for s >= t
    Sx = np.zeros((T * n, T * n))
    for t in range(T):
        block = covs[t]
        for s in range(t, T):
            Sx[s * n:(s + 1) * n, t * n:(t + 1) * n] = block
            Sx[t * n:(t + 1) * n, s * n:(s + 1) * n] = block.T
            block = F @ block
    Hbig = np.kron(np.eye(T), H)
    mu = Hbig @ np.concatenate(means)
    Sy = Hbig @ Sx @ Hbig.T + np.kron(np.eye(T), R)
    flat = y.reshape(-1)
    obs = ~np.isnan(flat)
    mis = ~obs
    # y_mis | y_obs ~ N(mu_m + S_mo S_oo^{-1} (y_o - mu_o), S_mm - S_mo S_oo^{-1} S_om)
    S_oo = Sy[np.ix_(obs, obs)]
    S_mo = Sy[np.ix_(mis, obs)]
    A = scipy.linalg.solve(S_oo, S_mo.T, assume_a="pos").T
    mean_m = mu[mis] + A @ (flat[obs] - mu[obs])
    cov_m = Sy[np.ix_(mis, mis)] - A @ S_mo.T
    k = int(mis.sum()) // m
    y_hat = mean_m.reshape(k, m)
    y_var = np.array([cov_m[i * m:(i + 1) * m, i * m:(i + 1) * m] for i in range(k)]).reshape(k, m, m)
    return y_hat, y_var
