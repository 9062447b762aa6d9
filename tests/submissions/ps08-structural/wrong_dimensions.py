"""Mistakes that show only with an odd period or more than one step ahead: the
visible tests catch them (part (c) has a case with s = 7, part (e) forecasts
four and six steps ahead).

Used like wrong.py: each block replaces one part of an otherwise correct
submission, which must lose exactly that part's points.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np
import scipy.linalg

# %% answer: trig_seasonal
def trig_seasonal_block(s, h, var):
    # "j == s // 2" for the frequency-pi harmonic: right for even s, wrong for
    # odd s, where the last harmonic j = (s - 1)/2 is a rotation
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


# %% answer: forecast
def forecast_moments(F, H, Q, R, x, P, steps):
    # the one-step covariance for every horizon: each step starts again from P_{T|T},
    # right for steps = 1 only
    x_mean, P_fc, y_mean, y_cov = [], [], [], []
    for _ in range(steps):
        x = F @ x
        P_h = F @ P @ F.T + Q
        x_mean.append(x)
        P_fc.append(P_h)
        y_mean.append(H @ x)
        y_cov.append(H @ P_h @ H.T + R)
    return np.array(x_mean), np.array(P_fc), np.array(y_mean), np.array(y_cov)
