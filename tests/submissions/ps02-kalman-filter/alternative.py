"""A second correct solution of ps02-kalman-filter, written differently on purpose.

Each block after a `# %% answer: <grade_id>` line replaces the answer cell with
that nbgrader grade_id in the released notebook (tests/test_exercises.py).
Compared with the instructor's solution it uses loops over the entries instead
of matrix products, an explicit inverse and determinant instead of solves and a
Cholesky factor, the short covariance update P = (I - K H) P instead of the
Joseph form (and no symmetrising), (c) and (d) built on its own (a) and (b),
and (d) deletes the rows of the missing components instead of masking them.
It must score full marks.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np

# %% answer: predict
def kf_predict(x, P, F, Q):
    n = len(x)
    x_pred = np.zeros(n)
    for i in range(n):
        for j in range(n):
            x_pred[i] += F[i][j] * x[j]
    # P_pred[i, j] = sum_k sum_l F[i, k] P[k, l] F[j, l] + Q[i, j]
    P_pred = np.array(Q, dtype=float)
    for i in range(n):
        for j in range(n):
            for k in range(n):
                for l in range(n):
                    P_pred[i, j] += F[i][k] * P[k][l] * F[j][l]
    return x_pred, P_pred


# %% answer: update
def kf_update(x_pred, P_pred, y, H, R):
    x_pred, P_pred, y, H, R = (np.array(a, dtype=float) for a in (x_pred, P_pred, y, H, R))
    PHt = np.dot(P_pred, H.T)
    nu = y - np.dot(H, x_pred)
    S = np.dot(H, PHt) + R
    K = np.dot(PHt, np.linalg.inv(S))
    x_filt = x_pred + np.dot(K, nu)
    # the short form
    P_filt = np.dot(np.identity(len(x_pred)) - np.dot(K, H), P_pred)
    return x_filt, P_filt, nu, S, K


# %% answer: filter
def kalman_filter_loglik(F, H, Q, R, x0, P0, y):
    x, P = x0, P0
    xs, Ps, loglik = [], [], 0.0
    for y_t in y:
        x, P = kf_predict(x, P, F, Q)
        x, P, nu, S, K = kf_update(x, P, y_t, H, R)
        loglik -= 0.5 * (len(y_t) * np.log(2 * np.pi) + np.log(np.linalg.det(S))
                         + nu.dot(np.linalg.inv(S)).dot(nu))
        xs.append(x)
        Ps.append(P)
    return np.array(xs), np.array(Ps), loglik


# %% answer: missing
def kalman_filter_missing(F, H, Q, R, x0, P0, y):
    H, R = np.asarray(H, dtype=float), np.asarray(R, dtype=float)
    x, P = x0, P0
    xs, Ps, loglik = [], [], 0.0
    for y_t in y:
        x, P = kf_predict(x, P, F, Q)
        # indices of the observed components: delete the others
        keep = [i for i in range(len(y_t)) if not np.isnan(y_t[i])]
        if keep:
            y_o = np.array([y_t[i] for i in keep])
            H_o = H[keep, :]
            R_o = R[keep, :][:, keep]
            x, P, nu, S, K = kf_update(x, P, y_o, H_o, R_o)
            loglik -= 0.5 * (len(keep) * np.log(2 * np.pi) + np.log(np.linalg.det(S))
                             + nu.dot(np.linalg.inv(S)).dot(nu))
        xs.append(x)
        Ps.append(P)
    return np.array(xs), np.array(Ps), loglik
