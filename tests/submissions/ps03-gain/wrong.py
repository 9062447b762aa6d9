"""Common mistakes, one per part of ps03-gain (see tests/test_exercises.py).

A submission takes the instructor's answers for every part but one, and the
block below for that one; it must lose exactly that part's points.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np

# %% answer: ll_steady
def local_level_steady_state(q, r):
    # the '-' root of P^2 = q (P + r): negative
    P = (q - np.sqrt(q * q + 4 * q * r)) / 2
    K = P / (P + r)
    return P, K, (1 - K) * P


# %% answer: riccati
def riccati_iterate(F, H, Q, R, P0, n_steps):
    # update first: treats P0 as P_{1|0}, so index 0 holds P0
    P = np.asarray(P0, dtype=float)
    P_pred, gains = [], []
    for t in range(n_steps):
        S = H @ P @ H.T + R
        K = P @ H.T @ np.linalg.inv(S)
        P_pred.append(P)
        gains.append(K)
        P = F @ (P - K @ H @ P) @ F.T + Q
    return np.array(P_pred), np.array(gains)


# %% answer: steady_gain
def steady_gain(F, H, Q, R, tol=1e-10):
    # the control Riccati recursion (scipy's convention): F' P F instead of F P F'
    P = np.array(Q, dtype=float)
    for _ in range(1000):
        S = H @ P @ H.T + R
        P_next = F.T @ P @ F - F.T @ P @ H.T @ np.linalg.solve(S, H @ P @ F) + Q
        done = np.max(np.abs(P_next - P)) <= tol * np.max(np.abs(P_next))
        P = P_next
        if done:
            break
    return P, np.linalg.solve(H @ P @ H.T + R, H @ P).T


# %% answer: ewma
def ewma_weight(q, r):
    # the weight of the old estimate, 1 - K, instead of K
    P = (q + np.sqrt(q * q + 4 * q * r)) / 2
    return 1 - P / (P + r)


def steady_filter(y, q, r, x0):
    a = ewma_weight(q, r)
    x, level = [], x0
    for obs in y:
        level = (1 - a) * level + a * obs
        x.append(level)
    return np.array(x)


# %% answer: projection
def perfect_sensor_projection(P, H):
    # the pitfall of chapter 3: the pseudo-inverse of H as the limit of the gain
    return np.linalg.pinv(H) @ H
