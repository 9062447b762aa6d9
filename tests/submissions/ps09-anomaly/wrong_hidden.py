"""Mistakes that pass the visible tests of ps09-anomaly but not the hidden ones.

Used like wrong.py: each block replaces one part of an otherwise correct
submission, which must lose exactly that part's points.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np
import scipy.stats

# %% answer: nis
def nis_observed(nu, S):
    # right when everything is observed, but with gaps it uses only the
    # diagonal of S: exact for one observed component (as in the visible
    # tests), wrong when two or more correlated components remain
    nu, S = np.asarray(nu, dtype=float), np.asarray(S, dtype=float)
    nis = np.full(len(nu), np.nan)
    dof = np.zeros(len(nu), dtype=int)
    for t in range(len(nu)):
        o = ~np.isnan(nu[t])
        dof[t] = o.sum()
        if o.all():
            nis[t] = nu[t] @ np.linalg.solve(S[t], nu[t])
        elif o.any():
            nis[t] = np.sum(nu[t, o] ** 2 / np.diag(S[t])[o])
    return nis, dof


# %% answer: robust
def robust_filter_skip(F, H, Q, R, x0, P0, y, alpha):
    # the gate of a single sensor, chi2.ppf(1 - alpha, 1), whatever m is
    x, P = np.asarray(x0, dtype=float), np.asarray(P0, dtype=float)
    gate = scipy.stats.chi2.ppf(1 - alpha, 1)
    xs, flags = [], []
    for y_t in y:
        x, P = F @ x, F @ P @ F.T + Q
        nu = y_t - H @ x
        S = H @ P @ H.T + R
        flag = nu @ np.linalg.solve(S, nu) > gate
        if not flag:
            K = np.linalg.solve(S, H @ P).T
            x, P = x + K @ nu, (np.eye(len(x)) - K @ H) @ P
        xs.append(x)
        flags.append(flag)
    return np.array(xs), np.array(flags)


# %% answer: scores
def precision_recall_scores(flags, labels):
    # counts along the last axis only: right for one series, not for a batch
    flags, labels = np.asarray(flags, bool), np.asarray(labels, bool)
    tp = np.sum(flags & labels, axis=-1)
    n_flagged, n_anomalies = flags.sum(axis=-1), labels.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_flagged > 0, tp / np.maximum(n_flagged, 1), np.nan)
        recall = np.where(n_anomalies > 0, tp / np.maximum(n_anomalies, 1), np.nan)
    return precision[()], recall[()]


# %% answer: consistency
def nis_consistency(nis, dof, alpha):
    # D = N m with m the largest dof: right when every observed step has all its
    # components (every visible test), wrong with partly observed steps
    nis, dof = np.asarray(nis, dtype=float), np.asarray(dof)
    seen = dof > 0
    N = seen.sum()
    D = N * dof.max()
    mean_nis = nis[seen].mean()
    band = scipy.stats.chi2.ppf([alpha / 2, 1 - alpha / 2], D) / N
    return mean_nis, band, bool(band[0] <= mean_nis <= band[1])
