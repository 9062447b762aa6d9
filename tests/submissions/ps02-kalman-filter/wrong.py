"""Common mistakes, one per part of ps02-kalman-filter (see tests/test_exercises.py).

A submission takes the instructor's answers for every part but one, and the
block below for that one; it must lose exactly that part's points. The visible
tests catch each of these mistakes.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np

# %% answer: predict
def kf_predict(x, P, F, Q):
    # forgets the process noise: P = F P F'
    return F @ x, F @ P @ F.T


# %% answer: update
def kf_update(x_pred, P_pred, y, H, R):
    # K = P H' / S divides entry by entry instead of multiplying by S^{-1}
    nu = y - H @ x_pred
    S = H @ P_pred @ H.T + R
    K = P_pred @ H.T / S
    x_filt = x_pred + K @ nu
    P_filt = (np.eye(len(x_pred)) - K @ H) @ P_pred
    return x_filt, P_filt, nu, S, K


# %% answer: filter
def kalman_filter_loglik(F, H, Q, R, x0, P0, y):
    # the log-likelihood without the log|S_t| term
    T, m = y.shape
    x, P = np.asarray(x0, dtype=float), np.asarray(P0, dtype=float)
    x_filt, P_filt, loglik = np.empty((T, len(x))), np.empty((T, len(x), len(x))), 0.0
    for t in range(T):
        x, P = F @ x, F @ P @ F.T + Q
        nu = y[t] - H @ x
        S = H @ P @ H.T + R
        K = np.linalg.solve(S, H @ P).T
        loglik += -0.5 * (m * np.log(2 * np.pi) + nu @ np.linalg.solve(S, nu))
        x = x + K @ nu
        P = P - K @ S @ K.T
        x_filt[t], P_filt[t] = x, P
    return x_filt, P_filt, loglik


# %% answer: missing
def kalman_filter_missing(F, H, Q, R, x0, P0, y):
    # counts the missing components too: m log(2 pi) at every updated step
    T, m = y.shape
    n = len(x0)
    x, P = np.asarray(x0, dtype=float), np.asarray(P0, dtype=float)
    x_filt, P_filt, loglik = np.empty((T, n)), np.empty((T, n, n)), 0.0
    for t in range(T):
        x, P = F @ x, F @ P @ F.T + Q
        obs = ~np.isnan(y[t])
        if obs.any():
            H_o, R_o = H[obs], R[np.ix_(obs, obs)]
            nu = y[t][obs] - H_o @ x
            S = H_o @ P @ H_o.T + R_o
            K = np.linalg.solve(S, H_o @ P).T
            loglik += -0.5 * (m * np.log(2 * np.pi) + np.linalg.slogdet(S)[1]
                              + nu @ np.linalg.solve(S, nu))
            x = x + K @ nu
            P = P - K @ S @ K.T
        x_filt[t], P_filt[t] = x, P
    return x_filt, P_filt, loglik
