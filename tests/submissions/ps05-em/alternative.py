"""A second correct solution of ps05-em, written differently on purpose.

Each block after a `# %% answer: <grade_id>` line replaces the answer cell with
that nbgrader grade_id in the released notebook (tests/test_exercises.py).
Compared with the instructor's solution it uses explicit loops over time for
R, the moment sums S11, S10, S00 with einsum for Q (the form of the update
written with E[x_t x_t'], E[x_t x_(t-1)'] and E[x_(t-1) x_(t-1)']), and for
the local level model its own scalar Kalman filter and RTS smoother, with the
short covariance update instead of the Joseph form and no kflib at all. It
must score full marks.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np

# %% answer: m_step_R
def m_step_R(y, H, x_smooth, P_smooth):
    T, m = len(y), len(H)
    total = np.zeros((m, m))
    for t in range(T):
        resid = np.asarray(y[t], dtype=float) - np.dot(H, x_smooth[t])
        total += np.outer(resid, resid) + np.dot(np.dot(H, P_smooth[t]), np.transpose(H))
    return total / T


# %% answer: m_step_Q
def m_step_Q(F, x_smooth, P_smooth, P_lag1, x0_smooth, P0_smooth):
    # states at times 0..T, then the moment sums over the T transitions:
    # S11 = sum E[x_t x_t'], S10 = sum E[x_t x_(t-1)'], S00 = sum E[x_(t-1) x_(t-1)']
    x_all = np.vstack([np.reshape(x0_smooth, (1, -1)), x_smooth])
    P_all = np.concatenate([np.asarray(P0_smooth, dtype=float)[np.newaxis], P_smooth])
    S11 = np.einsum("tij->ij", P_all[1:]) + np.einsum("ti,tj->ij", x_all[1:], x_all[1:])
    S10 = np.einsum("tij->ij", P_lag1) + np.einsum("ti,tj->ij", x_all[1:], x_all[:-1])
    S00 = np.einsum("tij->ij", P_all[:-1]) + np.einsum("ti,tj->ij", x_all[:-1], x_all[:-1])
    F = np.asarray(F, dtype=float)
    Q = S11 - np.einsum("ij,kj->ik", F, S10) - np.einsum("ij,kj->ik", S10, F) + F @ S00 @ F.T
    return Q / len(x_smooth)


# %% answer: em_local_level
def em_local_level(y, q0, r0, x0, P0, n_iter):
    y = [float(v) for v in np.ravel(y)]
    T = len(y)
    q, r = q0, r0

    def e_step(q, r):
        # scalar Kalman filter (short covariance update) and RTS smoother;
        # index 0 is time 0, index t is time t
        xf, Pf, xp, Pp = [x0], [P0], [None], [None]
        loglik = 0.0
        for t in range(1, T + 1):
            xp.append(xf[-1])
            Pp.append(Pf[-1] + q)
            s = Pp[t] + r
            k = Pp[t] / s
            innov = y[t - 1] - xp[t]
            loglik += -0.5 * (np.log(2 * np.pi) + np.log(s) + innov * innov / s)
            xf.append(xp[t] + k * innov)
            Pf.append((1 - k) * Pp[t])
        xs, Ps, lag = list(xf), list(Pf), [0.0] * (T + 1)
        for t in range(T - 1, -1, -1):
            G = Pf[t] / Pp[t + 1]
            xs[t] = xf[t] + G * (xs[t + 1] - xp[t + 1])
            Ps[t] = Pf[t] + G * G * (Ps[t + 1] - Pp[t + 1])
            lag[t + 1] = G * Ps[t + 1]
        return loglik, xs, Ps, lag

    history = []
    for it in range(n_iter):
        loglik, xs, Ps, lag = e_step(q, r)
        history.append(loglik)
        q = sum((xs[t] - xs[t - 1]) ** 2 + Ps[t] + Ps[t - 1] - 2 * lag[t] for t in range(1, T + 1)) / T
        r = sum((y[t - 1] - xs[t]) ** 2 + Ps[t] for t in range(1, T + 1)) / T
    history.append(e_step(q, r)[0])
    return q, r, np.array(history)
