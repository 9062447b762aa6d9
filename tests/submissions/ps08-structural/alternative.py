"""A second correct solution of ps08-structural, written differently on purpose.

Each block after a `# %% answer: <grade_id>` line replaces the answer cell with
that nbgrader grade_id in the released notebook (tests/test_exercises.py).
Compared with the instructor's solution it orders the states differently
(oldest seasonal effect first, the slope before the level, all cosine states
before all sine states, the blocks combined last to first), turns the
harmonics the other way round, keeps two states for the frequency-pi harmonic
as statsmodels does, fills the matrices with loops, and forecasts each horizon
in closed form from the powers of F. It must score full marks.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np

# %% answer: seasonal_dummy
def seasonal_dummy_block(s, var):
    # state (gamma_{t-s+2}, ..., gamma_{t-1}, gamma_t): the current effect last
    k = s - 1
    F = np.zeros((k, k))
    for i in range(k - 1):
        F[i, i + 1] = 1.0           # each lag takes the next younger effect
    for j in range(k):
        F[k - 1, j] = -1.0          # gamma_t = -(sum of the s - 1 effects before it)
    H = np.zeros((1, k))
    H[0, k - 1] = 1.0
    Q = np.zeros((k, k))
    Q[k - 1, k - 1] = var
    return F, H, Q


# %% answer: local_linear_trend
def local_linear_trend_block(level_var, slope_var):
    # state (beta_t, mu_t): the slope first
    F = np.array([[1.0, 0.0],
                  [1.0, 1.0]])
    H = np.array([[0.0, 1.0]])
    Q = np.array([[slope_var, 0.0],
                  [0.0, level_var]], dtype=float)
    return F, H, Q


# %% answer: trig_seasonal
def trig_seasonal_block(s, h, var):
    # state (gamma_1, ..., gamma_h, gamma*_1, ..., gamma*_h), rotations by -lambda_j
    # (the same process: flip the sign of every gamma*), two states for every harmonic
    F = np.zeros((2 * h, 2 * h))
    for j in range(1, h + 1):
        lam = 2 * np.pi * j / s
        a, b = j - 1, h + j - 1
        F[a, a] = np.cos(lam)
        F[a, b] = -np.sin(lam)
        F[b, a] = np.sin(lam)
        F[b, b] = np.cos(lam)
    H = np.array([[1.0] * h + [0.0] * h])
    Q = np.diag(np.full(2 * h, float(var)))
    return F, H, Q


# %% answer: combine
def combine_blocks(blocks, irregular_var):
    # the blocks last to first, entry by entry
    blocks = list(blocks)[::-1]
    n = sum(len(F_b) for F_b, _, _ in blocks)
    F, H, Q = np.zeros((n, n)), np.zeros((1, n)), np.zeros((n, n))
    start = 0
    for F_b, H_b, Q_b in blocks:
        k = len(F_b)
        for i in range(k):
            H[0, start + i] = H_b[0][i]
            for j in range(k):
                F[start + i, start + j] = F_b[i][j]
                Q[start + i, start + j] = Q_b[i][j]
        start += k
    return F, H, Q, irregular_var * np.ones((1, 1))


# %% answer: forecast
def forecast_moments(F, H, Q, R, x, P, steps):
    # each horizon in closed form, from the powers of F: x_{T+h|T} = F^h x and
    # P_{T+h|T} = F^h P F^h' + sum_{j<h} F^j Q F^j'; the observation's moments by
    # einsum over the whole stack of horizons
    F, H, Q, R = (np.array(a, dtype=float) for a in (F, H, Q, R))
    powers = [np.eye(len(F))]
    for _ in range(steps):
        powers.append(F @ powers[-1])
    x_mean = np.array([Fh @ x for Fh in powers[1:]])
    noise = np.zeros_like(Q)
    covs = []
    for h in range(1, steps + 1):
        noise = noise + powers[h - 1] @ Q @ powers[h - 1].T
        covs.append(powers[h] @ P @ powers[h].T + noise)
    P_fc = np.stack(covs)
    y_mean = np.einsum("ij,hj->hi", H, x_mean)
    y_cov = np.einsum("ij,hjk,lk->hil", H, P_fc, H) + R
    return x_mean, P_fc, y_mean, y_cov
