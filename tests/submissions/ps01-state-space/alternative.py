"""A second correct solution of ps01-state-space, written differently on purpose.

Each block after a `# %% answer: <grade_id>` line replaces the answer cell with
that nbgrader grade_id in the released notebook (tests/test_exercises.py).
Compared with the instructor's solution it uses loops instead of vector code,
matrix powers instead of the recursion, an explicit inverse instead of a
Lyapunov solver, and another ARIMA representation (Hamilton's form, with the
level last). It must score full marks.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np
from kflib import LinearGaussianSSM  # noqa: F401

# %% answer: cv_model
def constant_velocity_model(dt, q, r):
    F = np.eye(2) + dt * np.eye(2, k=1)
    H = np.eye(1, 2)
    # Q = q * integral_0^dt (dt - s, 1)' (dt - s, 1) ds, written out entry by entry
    Q = np.zeros((2, 2))
    Q[0, 0] = q * dt * dt * dt / 3.0
    Q[0, 1] = Q[1, 0] = q * dt * dt / 2.0
    Q[1, 1] = q * dt
    R = r * np.eye(1)
    return F, H, Q, R


# %% answer: simulate
def simulate_with_noise(F, H, x0, w, v):
    T = len(w)
    n = len(x0)
    m = len(H)
    xs, ys = [], []
    prev = [float(a) for a in x0]
    for t in range(T):
        cur = [sum(F[i][j] * prev[j] for j in range(n)) + w[t][i] for i in range(n)]
        obs = [sum(H[k][j] * cur[j] for j in range(n)) + v[t][k] for k in range(m)]
        xs.append(cur)
        ys.append(obs)
        prev = cur
    return np.array(xs).reshape(T, n), np.array(ys).reshape(T, m)


# %% answer: prior
def prior_moments(F, Q, x0, P0, T):
    # closed form: m_t = F^t x0, P_t = F^t P0 F^t' + sum_{k<t} F^k Q F^k'
    means, covs = [], []
    noise = np.zeros_like(np.asarray(Q, dtype=float))
    for t in range(1, T + 1):
        Ft = np.linalg.matrix_power(F, t)
        Fk = np.linalg.matrix_power(F, t - 1)
        noise = noise + Fk.dot(Q).dot(Fk.T)
        means.append(Ft.dot(x0))
        covs.append(Ft.dot(P0).dot(Ft.T) + noise)
    return np.array(means), np.array(covs)


# %% answer: arima
def arima211_model(phi1, phi2, theta1, sigma2, y0):
    # Hamilton's form: z_t = phi1 z_{t-1} + phi2 z_{t-2} + e_t, dy_t = z_t + theta1 z_{t-1};
    # state (z_t, z_{t-1}, y_t) with y_t = y_{t-1} + dy_t.
    F = np.array([[phi1, phi2, 0.0],
                  [1.0, 0.0, 0.0],
                  [phi1 + theta1, phi2, 1.0]])
    Q = sigma2 * np.array([[1.0, 0.0, 1.0],
                           [0.0, 0.0, 0.0],
                           [1.0, 0.0, 1.0]])
    H = np.array([[0.0, 0.0, 1.0]])
    R = np.array([[0.0]])
    # stationary covariance of (z_t, z_{t-1}): vec(G) = (I - A (x) A)^{-1} vec(sigma2 e1 e1')
    A = F[:2, :2]
    rhs = np.array([sigma2, 0.0, 0.0, 0.0])
    G = (np.linalg.inv(np.eye(4) - np.kron(A, A)) @ rhs).reshape(2, 2)
    P0 = np.zeros((3, 3))
    P0[:2, :2] = G
    x0 = np.array([0.0, 0.0, y0])
    return LinearGaussianSSM(F, H, Q, R, x0, P0)
