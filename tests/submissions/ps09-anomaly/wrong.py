"""Common mistakes, one per part of ps09-anomaly (see tests/test_exercises.py).

A submission takes the instructor's answers for every part but one, and the
block below for that one; it must lose exactly that part's points.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np
import scipy.stats

# %% answer: nis
def nis_observed(nu, S):
    # S instead of S^{-1}
    nu, S = np.asarray(nu, dtype=float), np.asarray(S, dtype=float)
    nis = np.full(len(nu), np.nan)
    dof = np.zeros(len(nu), dtype=int)
    for t in range(len(nu)):
        o = ~np.isnan(nu[t])
        dof[t] = o.sum()
        if dof[t]:
            nis[t] = nu[t, o] @ S[t][np.ix_(o, o)] @ nu[t, o]
    return nis, dof


# %% answer: gate
def chi2_flags(nis, dof, alpha):
    # the lower quantile chi2.ppf(alpha, dof) instead of the upper one
    nis, dof = np.asarray(nis, dtype=float), np.asarray(dof)
    gate = np.where(dof > 0, scipy.stats.chi2.ppf(alpha, np.maximum(dof, 1)), np.nan)
    flags = (dof > 0) & (np.nan_to_num(nis) > np.nan_to_num(gate))
    return gate, flags


# %% answer: robust
def robust_filter_skip(F, H, Q, R, x0, P0, y, alpha):
    # on a flagged step keeps x_{t-1|t-1} and P_{t-1|t-1}: no prediction
    x, P = np.asarray(x0, dtype=float), np.asarray(P0, dtype=float)
    gate = scipy.stats.chi2.ppf(1 - alpha, y.shape[1])
    xs, flags = [], []
    for y_t in y:
        x_pred, P_pred = F @ x, F @ P @ F.T + Q
        nu = y_t - H @ x_pred
        S = H @ P_pred @ H.T + R
        flag = nu @ np.linalg.solve(S, nu) > gate
        if not flag:
            K = np.linalg.solve(S, H @ P_pred).T
            x, P = x_pred + K @ nu, (np.eye(len(x)) - K @ H) @ P_pred
        xs.append(x)
        flags.append(flag)
    return np.array(xs), np.array(flags)


# %% answer: scores
def precision_recall_scores(flags, labels):
    # precision and recall swapped
    flags, labels = np.asarray(flags, bool), np.asarray(labels, bool)
    tp = np.sum(flags & labels)
    recall = tp / flags.sum() if flags.sum() else np.nan
    precision = tp / labels.sum() if labels.sum() else np.nan
    return precision, recall


# %% answer: consistency
def nis_consistency(nis, dof, alpha):
    # N degrees of freedom instead of D = N m: one per step, whatever its dimension
    nis, dof = np.asarray(nis, dtype=float), np.asarray(dof)
    seen = dof > 0
    N = seen.sum()
    mean_nis = nis[seen].mean()
    band = scipy.stats.chi2.ppf([alpha / 2, 1 - alpha / 2], N) / N
    return mean_nis, band, bool(band[0] <= mean_nis <= band[1])
