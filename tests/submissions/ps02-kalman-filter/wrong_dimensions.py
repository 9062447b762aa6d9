"""Mistakes that show only with three states or more: the visible tests catch them.

Used like wrong.py: each block replaces one part of an otherwise correct
submission, which must lose exactly that part's points, and nbgrader validate
tells the student (the visible tests have a case with three states and two
sensors in every part).
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np

# %% answer: predict
def kf_predict(x, P, F, Q):
    # written out for two states, as in every visible test
    x_pred = np.array([F[0, 0] * x[0] + F[0, 1] * x[1],
                       F[1, 0] * x[0] + F[1, 1] * x[1]])
    return x_pred, F @ P @ F.T + Q


# %% answer: update
def kf_update(x_pred, P_pred, y, H, R):
    # the identity of the Joseph form hard-coded for two states
    nu = y - H @ x_pred
    S = H @ P_pred @ H.T + R
    K = np.linalg.solve(S, H @ P_pred).T
    A = np.eye(2) - K @ H
    return x_pred + K @ nu, A @ P_pred @ A.T + K @ R @ K.T, nu, S, K


# %% answer: filter
def kalman_filter_loglik(F, H, Q, R, x0, P0, y):
    # the results allocated for two states, as in every visible test
    T, m = y.shape
    x_filt, P_filt = np.zeros((T, 2)), np.zeros((T, 2, 2))
    x, P, loglik = x0, P0, 0.0
    for t in range(T):
        x, P = F @ x, F @ P @ F.T + Q
        nu = y[t] - H @ x
        S = H @ P @ H.T + R
        K = P @ H.T @ np.linalg.inv(S)
        loglik -= 0.5 * (m * np.log(2 * np.pi) + np.linalg.slogdet(S)[1]
                         + nu @ np.linalg.inv(S) @ nu)
        x, P = x + K @ nu, P - K @ S @ K.T
        x_filt[t], P_filt[t] = x, P
    return x_filt, P_filt, loglik


# %% answer: missing
def kalman_filter_missing(F, H, Q, R, x0, P0, y):
    # deletes the missing rows correctly, but the Joseph form's identity is
    # hard-coded for two states
    T, m = y.shape
    x, P = np.asarray(x0, dtype=float), np.asarray(P0, dtype=float)
    x_filt, P_filt, loglik = [], [], 0.0
    for t in range(T):
        x, P = F @ x, F @ P @ F.T + Q
        obs = ~np.isnan(y[t])
        if obs.any():
            H_o, R_o = H[obs], R[np.ix_(obs, obs)]
            nu = y[t][obs] - H_o @ x
            S = H_o @ P @ H_o.T + R_o
            K = np.linalg.solve(S, H_o @ P).T
            loglik -= 0.5 * (obs.sum() * np.log(2 * np.pi) + np.linalg.slogdet(S)[1]
                             + nu @ np.linalg.solve(S, nu))
            A = np.eye(2) - K @ H_o
            x, P = x + K @ nu, A @ P @ A.T + K @ R_o @ K.T
        x_filt.append(x)
        P_filt.append(P)
    return np.array(x_filt), np.array(P_filt), loglik
