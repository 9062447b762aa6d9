"""Mistakes that pass the visible tests of ps08-structural but not the hidden ones.

Used like wrong.py: each block replaces one part of an otherwise correct
submission, which must lose exactly that part's points.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np
import scipy.linalg

# %% answer: combine
def combine_blocks(blocks, irregular_var):
    # assumes two blocks, as in every visible test
    (F1, H1, Q1), (F2, H2, Q2) = blocks
    Z = np.zeros((len(F1), len(F2)))
    F = np.block([[F1, Z], [Z.T, F2]])
    Q = np.block([[Q1, Z], [Z.T, Q2]])
    H = np.hstack([H1, H2])
    return F, H, Q, np.array([[float(irregular_var)]])


# %% answer: forecast
def forecast_moments(F, H, Q, R, x, P, steps):
    # keeps only the variance of each observed series (the diagonal of H P H' + R), as if
    # their forecast errors were uncorrelated: exact for one series (every visible test),
    # wrong for two
    n, m = len(F), len(H)
    x_mean, P_fc = np.empty((steps, n)), np.empty((steps, n, n))
    y_mean, y_cov = np.empty((steps, m)), np.empty((steps, m, m))
    for h in range(steps):
        x = F @ x
        P = F @ P @ F.T + Q
        x_mean[h], P_fc[h], y_mean[h] = x, P, H @ x
        y_cov[h] = np.diag(np.diag(H @ P @ H.T + R))
    return x_mean, P_fc, y_mean, y_cov
