"""Mistakes that pass the visible tests of ps02-kalman-filter but not the hidden ones.

Used like wrong.py: each block replaces one part of an otherwise correct
submission, which must lose exactly that part's points. The visible tests have
two and three states; the hidden tests one to four states, random models and
other scales. (Mistakes that show only with three states or more are in
wrong_dimensions.py: the visible tests catch them.)
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np

# %% answer: predict
def kf_predict(x, P, F, Q):
    # computes in single precision (float32), as a GPU library does by default:
    # exact enough on the visible tests' round numbers, not on random models
    x, P, F, Q = (np.asarray(a, dtype=np.float32) for a in (x, P, F, Q))
    return (F @ x).astype(float), (F @ P @ F.T + Q).astype(float)
