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
