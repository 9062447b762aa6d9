"""Mistakes that show only with two or more observed components: the visible tests
catch them (part (a) has a case with two sensors).

Used like wrong.py: each block replaces one part of an otherwise correct
submission, which must lose exactly that part's points.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np
from kflib import kalman_filter, rts_smoother  # noqa: F401
from kflib.models import local_level  # noqa: F401

# %% answer: m_step_R
def m_step_R(y, H, x_smooth, P_smooth):
    # assumes one observed component, as in every visible test
    e = y[:, 0] - x_smooth @ H[0]
    HPH = np.einsum("i,tij,j->t", H[0], P_smooth, H[0])
    return np.array([[np.mean(e**2 + HPH)]])
