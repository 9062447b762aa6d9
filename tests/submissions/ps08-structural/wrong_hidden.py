"""Mistakes that pass the visible tests of ps08-structural but not the hidden ones.

Used like wrong.py: each block replaces one part of an otherwise correct
submission, which must lose exactly that part's points.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np
import scipy.linalg

# %% answer: trig_seasonal
def trig_seasonal_block(s, h, var):
    # "j == s // 2" for the frequency-pi harmonic: right for even s (every visible
    # test), wrong for odd s, where the last harmonic j = (s - 1)/2 is a rotation
    F_parts, H_parts = [], []
    for j in range(1, h + 1):
        lam = 2 * np.pi * j / s
        if j == s // 2:
            F_parts.append(np.array([[-1.0]]))
            H_parts.append([1.0])
        else:
            F_parts.append(np.array([[np.cos(lam), np.sin(lam)], [-np.sin(lam), np.cos(lam)]]))
            H_parts.append([1.0, 0.0])
    F = scipy.linalg.block_diag(*F_parts)
    H = np.concatenate(H_parts)[None, :]
    return F, H, var * np.eye(F.shape[0])


# %% answer: combine
def combine_blocks(blocks, irregular_var):
    # assumes two blocks, as in every visible test
    (F1, H1, Q1), (F2, H2, Q2) = blocks
    Z = np.zeros((len(F1), len(F2)))
    F = np.block([[F1, Z], [Z.T, F2]])
    Q = np.block([[Q1, Z], [Z.T, Q2]])
    H = np.hstack([H1, H2])
    return F, H, Q, np.array([[float(irregular_var)]])
