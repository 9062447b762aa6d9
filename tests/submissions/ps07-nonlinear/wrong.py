"""Common mistakes, one per part of ps07-nonlinear (see tests/test_exercises.py).

A submission takes the instructor's answers for every part but one, and the
block below for that one; it must lose exactly that part's points. The visible
tests catch each of these mistakes.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np

# %% answer: radar
def radar_h(x):
    # arctan(py / px) instead of arctan2: wrong whenever px < 0
    return np.array([np.hypot(x[0], x[2]), np.arctan(x[2] / x[0])])


def radar_jacobian(x):
    # the bearing row divided by r instead of r^2
    px, py = x[0], x[2]
    r = np.hypot(px, py)
    return np.array([[px / r, 0.0, py / r, 0.0], [-py / r, 0.0, px / r, 0.0]])


# %% answer: ekf
def ekf_step(x, P, y, f, F_jac, h, H_jac, Q, R):
    # H evaluated at the previous filtered mean instead of at the prediction
    F = F_jac(x)
    H = H_jac(x)
    x_pred = f(x)
    P_pred = F @ P @ F.T + Q
    S = H @ P_pred @ H.T + R
    K = np.linalg.solve(S, H @ P_pred).T
    x_filt = x_pred + K @ (y - h(x_pred))
    P_filt = (np.eye(len(x)) - K @ H) @ P_pred
    return x_pred, P_pred, x_filt, P_filt


# %% answer: unscented
def sigma_points(x, P, alpha=1.0, beta=2.0, kappa=0.0):
    # Wc_0 without the (1 - alpha^2 + beta) term
    n = len(x)
    lam = alpha**2 * (n + kappa) - n
    L = np.linalg.cholesky((n + lam) * np.asarray(P, dtype=float))
    X = np.vstack([x, x + L.T, x - L.T])
    Wm = np.full(2 * n + 1, 0.5 / (n + lam))
    Wm[0] = lam / (n + lam)
    return X, Wm, Wm.copy()


def unscented_transform(fun, x, P, alpha=1.0, beta=2.0, kappa=0.0):
    X, Wm, Wc = sigma_points(x, P, alpha, beta, kappa)
    Y = np.array([np.atleast_1d(fun(p)) for p in X])
    mean = Wm @ Y
    dY, dX = Y - mean, X - x
    return mean, (Wc[:, None] * dY).T @ dY, (Wc[:, None] * dX).T @ dY
