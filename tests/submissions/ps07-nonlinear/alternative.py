"""A second correct solution of ps07-nonlinear, written differently on purpose.

Each block after a `# %% answer: <grade_id>` line replaces the answer cell with
that nbgrader grade_id in the released notebook (tests/test_exercises.py).
Compared with the instructor's solution it computes the bearing with arctan
and a quadrant correction and the Jacobian entry by entry, uses an explicit
inverse of S and the short covariance update P = (I - K H) P (no
symmetrising) in the EKF step, and builds the sigma points from
sqrt(n + lambda) times the Cholesky factor of P, with loops over the points
for the weighted sums. It must score full marks.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np

# %% answer: radar
import math


def radar_h(x):
    px, py = x[0], x[2]
    r = math.sqrt(px * px + py * py)
    if px > 0:
        phi = math.atan(py / px)
    elif px < 0:
        phi = math.atan(py / px) + (math.pi if py >= 0 else -math.pi)
    else:
        phi = math.copysign(math.pi / 2, py)
    return np.array([r, phi])


def radar_jacobian(x):
    px, py = x[0], x[2]
    r = math.sqrt(px * px + py * py)
    H = np.zeros((2, 4))
    H[0, 0] = px / r
    H[0, 2] = py / r
    H[1, 0] = -py / (r * r)
    H[1, 2] = px / (r * r)
    return H


# %% answer: ekf
def ekf_step(x, P, y, f, F_jac, h, H_jac, Q, R):
    F = np.array(F_jac(x), dtype=float)
    x_pred = np.array(f(x), dtype=float)
    P_pred = np.dot(np.dot(F, P), F.T) + Q
    H = np.array(H_jac(x_pred), dtype=float)
    S = np.dot(np.dot(H, P_pred), H.T) + R
    K = np.dot(np.dot(P_pred, H.T), np.linalg.inv(S))
    x_filt = x_pred + np.dot(K, y - np.array(h(x_pred), dtype=float))
    P_filt = np.dot(np.identity(len(x_pred)) - np.dot(K, H), P_pred)
    return x_pred, P_pred, x_filt, P_filt


# %% answer: unscented
def sigma_points(x, P, alpha=1.0, beta=2.0, kappa=0.0):
    n = len(x)
    lam = alpha * alpha * (n + kappa) - n
    C = np.sqrt(n + lam) * np.linalg.cholesky(np.asarray(P, dtype=float))
    points = [np.array(x, dtype=float)]
    for sign in (1.0, -1.0):
        for i in range(n):
            points.append(np.asarray(x, dtype=float) + sign * C[:, i])
    Wm = [lam / (n + lam)] + [1.0 / (2.0 * (n + lam))] * (2 * n)
    Wc = [lam / (n + lam) + 1.0 - alpha * alpha + beta] + [1.0 / (2.0 * (n + lam))] * (2 * n)
    return np.array(points), np.array(Wm), np.array(Wc)


def unscented_transform(fun, x, P, alpha=1.0, beta=2.0, kappa=0.0):
    X, Wm, Wc = sigma_points(x, P, alpha, beta, kappa)
    Y = [np.atleast_1d(np.asarray(fun(p), dtype=float)) for p in X]
    mean = sum(w * yi for w, yi in zip(Wm, Y))
    cov = sum(w * np.outer(yi - mean, yi - mean) for w, yi in zip(Wc, Y))
    cross = sum(w * np.outer(xi - np.asarray(x, dtype=float), yi - mean)
                for w, xi, yi in zip(Wc, X, Y))
    return mean, cov, cross
