"""Mistakes that pass the visible tests of ps03-gain but not the hidden ones.

Used like wrong.py: each block replaces one part of an otherwise correct
submission, which must lose exactly that part's points.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np

# %% answer: ll_steady
def local_level_steady_state(q, r):
    # the scaled form p = P / r of the book, but P and P_filt are not scaled
    # back by r: right only when r = 1, as in every visible test of P
    lam = q / r
    p = (lam + np.sqrt(lam * lam + 4 * lam)) / 2
    K = p / (1 + p)
    return p, K, (1 - K) * p


# %% answer: riccati
def riccati_iterate(F, H, Q, R, P0, n_steps):
    # divides by S: right only for one measurement (m = 1), as in every visible test
    P = np.asarray(P0, dtype=float)
    P_pred, gains = [], []
    for t in range(n_steps):
        P = F @ P @ F.T + Q
        S = H @ P @ H.T + R
        K = P @ H.T / S
        P_pred.append(P)
        gains.append(K)
        P = P - K @ H @ P
    return np.array(P_pred), np.array(gains)


# %% answer: steady_gain
def steady_gain(F, H, Q, R, tol=1e-10):
    # a fixed number of steps: enough for the visible models, not for the slow ones
    P = np.array(Q, dtype=float)
    for _ in range(200):
        S = H @ P @ H.T + R
        K = np.linalg.solve(S, H @ P).T
        P = F @ (P - K @ S @ K.T) @ F.T + Q
    return P, np.linalg.solve(H @ P @ H.T + R, H @ P).T


# %% answer: ewma
def ewma_weight(q, r):
    P = (q + np.sqrt(q * q + 4 * q * r)) / 2
    return P / (P + r)


def steady_filter(y, q, r, x0):
    # the sum x_t = (1-a)^t x0 + a sum_s (1-a)^(t-s) y_s, vectorised through
    # (1-a)^(-s): it overflows (inf, nan) on long series
    a = ewma_weight(q, r)
    y = np.asarray(y, dtype=float)
    t = np.arange(1, len(y) + 1)
    decay = (1 - a) ** t
    return decay * (x0 + a * np.cumsum(y / decay))


# %% answer: projection
def perfect_sensor_projection(P, H):
    # K at a fixed small R = 1e-9 I: close to the limit only when H P H' is much larger
    R = 1e-9 * np.eye(H.shape[0])
    K = P @ H.T @ np.linalg.inv(H @ P @ H.T + R)
    return K @ H
