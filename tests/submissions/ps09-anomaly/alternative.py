"""A second correct solution of ps09-anomaly, written differently on purpose.

Each block after a `# %% answer: <grade_id>` line replaces the answer cell with
that nbgrader grade_id in the released notebook (tests/test_exercises.py).
Compared with the instructor's solution it whitens with a Cholesky factor
instead of solving with S, groups the steps by their pattern of gaps instead
of looping over time, uses chi2.isf and vector code for the gate, an explicit
inverse and the short covariance update in the filter, counts with Python
sets, and pools the NIS in a loop with the quantiles from chi2.isf. It must
score full marks.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import numpy as np
import scipy.stats

# %% answer: nis
def nis_observed(nu, S):
    import scipy.linalg
    nu = np.array(nu, dtype=float)
    S = np.array(S, dtype=float)
    observed = ~np.isnan(nu)
    dof = observed.sum(axis=1)
    nis = np.full(len(nu), np.nan)
    # all steps with the same pattern of observed components at once
    for pattern in {tuple(row) for row in observed}:
        o = np.array(pattern, dtype=bool)
        if not o.any():
            continue
        steps = np.flatnonzero((observed == o).all(axis=1))
        for t in steps:
            L = np.linalg.cholesky(S[t][o][:, o])
            z = scipy.linalg.solve_triangular(L, nu[t, o], lower=True)   # whitened innovation
            nis[t] = z.dot(z)
    return nis, dof


# %% answer: gate
def chi2_flags(nis, dof, alpha):
    dof = np.asarray(dof)
    nis = np.asarray(nis, dtype=float)
    seen = dof > 0
    gate = np.where(seen, scipy.stats.chi2.isf(alpha, np.where(seen, dof, 1)), np.nan)
    flags = seen & (np.where(seen, nis, -np.inf) > np.where(seen, gate, np.inf))
    return gate, flags


# %% answer: robust
def robust_filter_skip(F, H, Q, R, x0, P0, y, alpha):
    F, H, Q, R = (np.array(a, dtype=float) for a in (F, H, Q, R))
    x = np.array(x0, dtype=float).reshape(-1, 1)      # column vectors, on purpose
    P = np.array(P0, dtype=float)
    y = np.array(y, dtype=float)
    n, m = F.shape[0], H.shape[0]
    gate = scipy.stats.chi2.isf(alpha, m)
    xs, flags = [], []
    for y_t in y:
        x = F.dot(x)
        P = F.dot(P).dot(F.T) + Q
        nu = y_t.reshape(-1, 1) - H.dot(x)
        S_inv = np.linalg.inv(H.dot(P).dot(H.T) + R)
        flagged = bool((nu.T.dot(S_inv).dot(nu)).item() > gate)
        if not flagged:
            K = P.dot(H.T).dot(S_inv)
            x = x + K.dot(nu)
            P = (np.eye(n) - K.dot(H)).dot(P)           # the short form
        xs.append(x.ravel())
        flags.append(flagged)
    return np.array(xs), np.array(flags)


# %% answer: scores
def precision_recall_scores(flags, labels):
    flagged = {i for i, f in enumerate(np.ravel(flags)) if f}
    anomalies = {i for i, a in enumerate(np.ravel(labels)) if a}
    hits = len(flagged & anomalies)
    precision = hits / len(flagged) if flagged else float("nan")
    recall = hits / len(anomalies) if anomalies else float("nan")
    return precision, recall


# %% answer: consistency
def nis_consistency(nis, dof, alpha):
    # a loop that adds up the observed steps, the quantiles from chi2.isf, the verdict
    # from numpy comparisons (a numpy boolean)
    total, N, D = 0.0, 0, 0
    for value, d in zip(nis, dof):
        if d > 0:
            total += value
            N += 1
            D += d
    mean_nis = total / N
    band = np.array([scipy.stats.chi2.isf(1 - alpha / 2, D), scipy.stats.chi2.isf(alpha / 2, D)]) / N
    inside = np.logical_and(band[0] <= mean_nis, mean_nis <= band[1])
    return mean_nis, band, inside
