"""Mistakes that pass the visible tests of ps07-nonlinear but not the hidden ones.

Used like wrong.py: each block replaces one part of an otherwise correct
submission, which must lose exactly that part's points. The visible tests use
points in the upper half-plane, two-state models and kappa = 0 for the
weights of the transform; the hidden tests use all four quadrants, one to
four states and other sigma-point parameters.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np

# %% answer: radar
def radar_h(x):
    # arctan with a correction for px < 0 that is right only in the upper
    # half-plane: below it, the bearing comes out in (pi, 3 pi / 2)
    px, py = x[0], x[2]
    phi = np.arctan(py / px) + (np.pi if px < 0 else 0.0)
    return np.array([np.hypot(px, py), phi])


def radar_jacobian(x):
    px, py = x[0], x[2]
    r2 = px**2 + py**2
    r = np.sqrt(r2)
    return np.array([[px / r, 0.0, py / r, 0.0], [-py / r2, 0.0, px / r2, 0.0]])


# %% answer: ekf
def ekf_step(x, P, y, f, F_jac, h, H_jac, Q, R):
    # the identity of the Joseph form hard-coded for two states
    F = F_jac(x)
    x_pred = f(x)
    P_pred = F @ P @ F.T + Q
    H = H_jac(x_pred)
    S = H @ P_pred @ H.T + R
    K = np.linalg.solve(S, H @ P_pred).T
    A = np.eye(2) - K @ H
    return x_pred, P_pred, x_pred + K @ (y - h(x_pred)), A @ P_pred @ A.T + K @ R @ K.T


# %% answer: unscented
def sigma_points(x, P, alpha=1.0, beta=2.0, kappa=0.0):
    # kappa left out of lambda (right only for kappa = 0)
    n = len(x)
    lam = alpha**2 * n - n
    L = np.linalg.cholesky((n + lam) * np.asarray(P, dtype=float))
    X = np.vstack([x, x + L.T, x - L.T])
    Wm = np.full(2 * n + 1, 0.5 / (n + lam))
    Wc = Wm.copy()
    Wm[0] = lam / (n + lam)
    Wc[0] = lam / (n + lam) + (1.0 - alpha**2 + beta)
    return X, Wm, Wc


def unscented_transform(fun, x, P, alpha=1.0, beta=2.0, kappa=0.0):
    X, Wm, Wc = sigma_points(x, P, alpha, beta, kappa)
    Y = np.array([np.atleast_1d(fun(p)) for p in X])
    mean = Wm @ Y
    dY, dX = Y - mean, X - x
    return mean, (Wc[:, None] * dY).T @ dY, (Wc[:, None] * dX).T @ dY
