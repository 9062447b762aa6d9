"""Trusted check of ps09-anomaly (see grader/spec.py for the contract).

Inputs: those of the notebook's visible tests and of its hidden tests (same
seeds, same order of random draws); references from kflib.kalman_filter and
kflib.anomaly, computed here, in the grader's process. The hidden tests switch
off the kflib.anomaly function that answers each part (nis; chi2_gate and
flag_anomalies; robust_filter; precision_recall); the same functions are
tripwires here, in every part (the notebook's rule: do not call kflib.anomaly
in your answers).

The sandbox receives every array as float64; `from_plain` (run in the
sandbox) gives the student's functions the dtypes nbgrader passes: the `dof`
of (b) as integers, the `flags` and `labels` of (d) as booleans, so that
answers using them as indices or with `&`, `|`, `~` work as in the notebook;
the `dof` of (e) as integers too.

(e) has no kflib.anomaly function of its own: its reference is the average of
the NIS over the observed steps and the band of kflib.anomaly.chi2_gate's
quantiles, as in the hidden tests. Its random cases are
kflib.exercise_cases.ps09_consistency, which the hidden tests import too, plus
a few drawn with the grader's own seed.
"""

from __future__ import annotations

import numpy as np
import scipy.stats

import kflib
import kflib.anomaly
from kflib import LinearGaussianSSM
from kflib.exercise_cases import ps09_consistency

from ..spec import Case, Part, compare

ASSIGNMENT = "ps09-anomaly"


def _random_model(rng, n, m, shrink, r_floor):
    """The hidden tests' random model (the draws in their order)."""
    F = rng.normal(size=(n, n))
    F *= shrink / max(1.0, np.max(np.abs(np.linalg.eigvals(F))))
    A, B = rng.normal(size=(n, n)), rng.normal(size=(m, m))
    return LinearGaussianSSM(F, rng.normal(size=(m, n)), A @ A.T / n + 0.1 * np.eye(n),
                             B @ B.T / m + r_floor * np.eye(m), rng.normal(size=n), np.eye(n))


def _nan_pattern(name, got, want, rule):
    """A problem when NaN is not exactly where it should be (checked before the values)."""
    if got is None or got.shape != want.shape:
        return []
    if not np.array_equal(np.isnan(got), np.isnan(want)):
        return [f"{name} must be NaN exactly {rule}"]
    return []


# --------------------------------------------------------------------------
# (a) nis_observed(nu, S) -> (nis, dof)


def _nis_case(nu, S, label):
    dof = np.sum(~np.isnan(nu), axis=1)
    value = np.full(len(nu), np.nan)
    for t in range(len(nu)):
        o = ~np.isnan(nu[t])
        if o.any():
            value[t] = nu[t, o] @ np.linalg.solve(S[t][np.ix_(o, o)], nu[t, o])
    return Case((nu, S), label, {"nis": value, "dof": dof})


def _nis_from_filter(filt, label):
    value, dof = kflib.anomaly.nis(filt, return_dof=True)
    return Case((filt.innovations.copy(), filt.S.copy()), label, {"nis": value, "dof": dof})


def nis_cases():
    cases = [_nis_case(np.array([[1.0, 2.0]]), np.array([[[2.0, 0.5], [0.5, 1.0]]]),
                       "the first example of the visible tests (S not diagonal)"),
             _nis_case(np.array([[1.5, np.nan], [np.nan, np.nan], [0.3, -0.4]]),
                       np.array([[[2.0, 0.8], [0.8, 1.0]]] * 3),
                       "the visible tests' example with missing components")]
    model = LinearGaussianSSM(F=[[0.9, 0.2], [0.0, 0.7]], H=[[1.0, 0.0], [1.0, 1.0]],
                              Q=0.3 * np.eye(2), R=[[0.5, 0.1], [0.1, 0.4]], x0=np.zeros(2), P0=np.eye(2))
    _, y = kflib.simulate(model, 30, rng=np.random.default_rng(9))
    y[5, 0] = y[12, 1] = np.nan
    y[20] = np.nan
    cases.append(_nis_from_filter(kflib.kalman_filter(model, y), "the visible tests' filter output, T=30"))
    rng = np.random.default_rng(9101)
    for n, m, T, p_missing in [(1, 1, 5, 0.3), (2, 3, 40, 0.3), (3, 4, 30, 0.4), (2, 2, 25, 0.0),
                               (4, 3, 50, 0.25), (1, 4, 20, 0.5)]:
        model = _random_model(rng, n, m, 0.95, 0.1)
        _, y = kflib.simulate(model, T, rng=rng)
        y[rng.random(y.shape) < p_missing] = np.nan
        y[rng.random(T) < 0.1] = np.nan
        cases.append(_nis_from_filter(kflib.kalman_filter(model, y),
                                      f"filter output of a random model with n={n}, m={m}, T={T}, "
                                      f"{int(np.isnan(y).sum())} of {T * m} values missing"))
    return cases


def nis_check(case, got):
    nu, S = case.args
    e = case.expect
    value, dof = got.get("nis"), got.get("dof")
    problems = []
    if dof is None or dof.shape != e["dof"].shape:
        problems.append(f"dof must have shape (T,) = {e['dof'].shape}"
                        + (f"; it has shape {dof.shape}" if dof is not None else ""))
    elif not np.array_equal(dof, e["dof"]):
        problems.append("dof is the number of observed (non-NaN) components of each step, not m")
    if value is None or value.shape != e["nis"].shape:
        problems.append(f"nis must have shape (T,) = {e['nis'].shape}"
                        + (f"; it has shape {value.shape}" if value is not None else ""))
        return problems
    nan_problem = _nan_pattern("nis", value, e["nis"], "at the steps where nothing is observed")
    if nan_problem:
        return problems + nan_problem
    wrong = compare("nis", value, e["nis"], rtol=1e-7, atol=1e-10)
    if wrong:
        seen = ~np.isnan(nu)
        ok = ~np.isnan(e["nis"])
        direct, diag = np.full(len(nu), np.nan), np.full(len(nu), np.nan)
        for t in np.flatnonzero(ok):
            o = seen[t]
            direct[t] = nu[t, o] @ S[t][np.ix_(o, o)] @ nu[t, o]
            diag[t] = np.sum(nu[t, o] ** 2 / np.diag(S[t])[o])
        full = seen.all(axis=1)
        partial = ok & ~full
        if np.allclose(value[ok], direct[ok]):
            wrong.append("NIS = nu' S^{-1} nu, not nu' S nu")
        elif np.allclose(value[ok], diag[ok]) or (partial.any()
                                                  and np.allclose(value[partial], diag[partial])):
            wrong.append("S is not diagonal: use the whole observed block S_oo, not only its "
                         "diagonal (nu_i^2 / S_ii)")
        elif partial.any() and np.allclose(value[full], e["nis"][full], rtol=1e-7, atol=1e-10):
            wrong.append("at a step with missing components, drop their rows and columns of S "
                         "(the observed block S_oo) before inverting it")
    return problems + wrong


# --------------------------------------------------------------------------
# (b) chi2_flags(nis, dof, alpha) -> (gate, flags)


def _gate_case(nis, dof, alpha, label):
    gate = kflib.anomaly.chi2_gate(dof, alpha)
    flags = (dof > 0) & (np.nan_to_num(nis) > np.nan_to_num(gate))
    return Case((np.asarray(nis, dtype=float), np.asarray(dof), float(alpha)), label,
                {"gate": gate, "flags": flags})


def gate_cases():
    cases = [_gate_case(np.array([5.0, 12.0]), np.array([2, 2]), 0.01,
                        "the first example of the visible tests"),
             _gate_case(np.array([7.0, 7.0, np.nan, 7.0]), np.array([2, 1, 0, 3]), 0.01,
                        "the visible tests' steps with different dof"),
             _gate_case(np.array([3.0, 4.0]), np.array([1, 1]), 0.05, "the visible tests' alpha = 0.05")]
    rng = np.random.default_rng(9202)
    for alpha in (0.2, 0.05, 0.01, 0.003, 1e-4):
        T = 60
        dof = rng.integers(0, 5, size=T)
        nis = np.where(dof > 0, rng.chisquare(np.maximum(dof, 1)) * rng.uniform(0.5, 4.0, size=T), np.nan)
        cases.append(_gate_case(nis, dof, alpha, f"random dof from 0 to 4, T={T}, alpha={alpha:g}"))
    model = LinearGaussianSSM(F=[[0.8]], H=[[1.0], [0.5], [2.0]], Q=[[1.0]], R=np.eye(3),
                              x0=[0.0], P0=[[1.0]])
    _, y = kflib.simulate(model, 400, rng=rng)
    y[rng.random(y.shape) < 0.3] = np.nan
    y[::7] += 3.0
    nis, dof = kflib.anomaly.nis(kflib.kalman_filter(model, y), return_dof=True)
    for alpha in (0.01, 0.1):
        cases.append(_gate_case(nis, dof, alpha, f"the NIS of a filter's output, T=400, alpha={alpha:g}"))
    return cases


def gate_args(nis, dof, alpha):
    """In the sandbox: dof as the integers nbgrader passes (they travel as floats)."""
    return nis, np.asarray(dof).astype(int), alpha


def gate_to_plain(out):
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(f"it must return the tuple (gate, flags); it returned {type(out).__name__}")
    flags = np.asarray(out[1])
    return {"gate": np.asarray(out[0], dtype=float), "flags": flags.astype(float),
            "flags_are_bool": np.array(float(flags.dtype == bool))}


def gate_check(case, got):
    nis, dof, alpha = case.args
    e = case.expect
    gate, flags = got.get("gate"), got.get("flags")
    T = len(nis)
    problems = []
    for name, a in (("gate", gate), ("flags", flags)):
        if a is None or a.shape != (T,):
            problems.append(f"{name} must have shape (T,) = ({T},)"
                            + (f"; it has shape {a.shape}" if a is not None else ""))
    if problems:
        return problems
    if not got.get("flags_are_bool", np.array(1.0)).reshape(-1)[0]:
        problems.append("flags must be booleans (dtype bool)")
    ok = ~np.isnan(e["gate"])
    if np.any(ok) and np.allclose(gate[ok], scipy.stats.chi2.ppf(alpha, dof[ok])):
        return problems + ["the gate is the upper quantile chi2.ppf(1 - alpha, dof): chi2.ppf(alpha, dof) "
                           "is the lower one, which almost every step exceeds"]
    if len(np.unique(dof[ok])) > 1 and np.all(np.isfinite(gate[ok])) and np.allclose(gate[ok], gate[ok][0]):
        problems.append("use each step's own dof (the number observed), not one dof for all steps")
    problems += _nan_pattern("gate", gate, e["gate"], "where dof is 0 (nothing observed)")
    if not problems:
        problems += compare("gate", gate, e["gate"], rtol=1e-7)
    if not np.array_equal(flags != 0, e["flags"]):
        if np.any((flags != 0) & (dof == 0)):
            problems.append("a step with dof = 0 (nothing observed) is never flagged")
        else:
            problems.append("flags are wrong: a step is flagged when its NIS is above its gate")
    return problems


# --------------------------------------------------------------------------
# (c) robust_filter_skip(F, H, Q, R, x0, P0, y, alpha) -> (x_filt, flags)


def _robust_case(model, y, alpha, label):
    ref, ref_flags = kflib.anomaly.robust_filter(model, y, alpha=alpha, mode="skip")
    args = tuple(np.array(a, dtype=float) for a in (model.F, model.H, model.Q, model.R, model.x0,
                                                     model.P0, y))
    return Case(args + (float(alpha),), label, {"x_filt": ref.x_filt, "flags": ref_flags})


def robust_cases():
    model = LinearGaussianSSM(F=[[0.9]], H=[[1.0]], Q=[[0.5]], R=[[1.0]], x0=[2.0], P0=[[1.0]])
    _, y = kflib.simulate(model, 40, rng=np.random.default_rng(3))
    cases = [_robust_case(model, y, 1e-9, "the visible tests' local level, alpha = 1e-9")]
    y_bad = y.copy()
    y_bad[5] += 25.0
    cases.append(_robust_case(model, y_bad, 0.01, "the visible tests' local level with a bad reading"))
    before = kflib.anomaly.robust_filter(model, y_bad, alpha=0.01)[0]
    x_pred, S20 = before.x_pred[20, 0], before.S[20, 0, 0]
    y_mid = y_bad.copy()
    y_mid[20, 0] = x_pred + 1.3 * np.sqrt(scipy.stats.chi2.ppf(0.99, 1) * S20)
    cases.append(_robust_case(model, y_mid, 0.01,
                              "the visible tests' reading 1.3 gate-widths from the prediction"))
    two = LinearGaussianSSM(F=[[1.0, 1.0], [0.0, 1.0]], H=[[1.0, 0.0], [1.0, 0.0]],
                            Q=0.01 * np.eye(2), R=np.diag([1.0, 2.0]), x0=np.zeros(2), P0=np.eye(2))
    _, y2 = kflib.simulate(two, 30, rng=np.random.default_rng(4))
    cases.append(_robust_case(two, y2, 1e-9, "the visible tests' two sensors, alpha = 1e-9"))
    rng = np.random.default_rng(9303)
    for n, m, T, alpha in [(1, 1, 50, 0.01), (2, 2, 60, 0.01), (2, 3, 50, 0.05), (3, 2, 40, 0.001),
                           (3, 4, 40, 0.01), (1, 3, 60, 0.02)]:
        model = _random_model(rng, n, m, 0.97, 0.2)
        _, y = kflib.simulate(model, T, rng=rng)
        bad = rng.choice(T, size=4, replace=False)
        y[bad] += rng.choice([-1, 1], size=(4, m)) * rng.uniform(3, 12, size=(4, m))
        cases.append(_robust_case(model, y, alpha, f"random model with n={n}, m={m}, T={T}, "
                                                   f"4 bad readings, alpha={alpha:g}"))
    return cases


def robust_to_plain(out):
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(f"it must return the tuple (x_filt, flags); it returned {type(out).__name__}")
    flags = np.asarray(out[1])
    return {"x_filt": np.asarray(out[0], dtype=float), "flags": flags.astype(float),
            "flags_are_bool": np.array(float(flags.dtype == bool))}


def robust_check(case, got):
    F, H, Q, R, x0, P0, y, alpha = case.args
    e = case.expect
    T, n = e["x_filt"].shape
    x_filt, flags = got.get("x_filt"), got.get("flags")
    if flags is None or flags.shape != (T,):
        return [f"flags must have shape (T,) = ({T},)"
                + (f"; it has shape {flags.shape}" if flags is not None else "")]
    problems = []
    if not got.get("flags_are_bool", np.array(1.0)).reshape(-1)[0]:
        problems.append("flags must be booleans (dtype bool)")
    mine = flags != 0
    if not np.array_equal(mine, e["flags"]):
        if mine.sum() > T // 2 and e["flags"].sum() < T // 4:
            problems.append("nearly every step is flagged: the gate is chi2.ppf(1 - alpha, m), "
                            "not chi2.ppf(alpha, m)")
        else:
            problems.append("flags are wrong: test the innovation nu = y - H x_{t|t-1} with "
                            "S = H P_{t|t-1} H' + R before the update, against the gate "
                            "chi2.ppf(1 - alpha, m) with m the number of components of y_t")
    problems += compare("x_filt", x_filt, e["x_filt"], rtol=1e-7,
                        atol=1e-8 * (1 + np.max(np.abs(e["x_filt"]))))
    if problems and x_filt is not None and x_filt.shape == (T, n):
        bad = [t for t in np.flatnonzero(mine) if t > 0]
        if bad and not np.allclose(F, np.eye(n)) and all(np.allclose(x_filt[t], x_filt[t - 1]) for t in bad):
            problems.append("a skipped step still predicts: x_{t|t} = x_{t|t-1} = F x_{t-1|t-1}, "
                            "not x_{t-1|t-1}, and P_{t|t} = P_{t|t-1}")
    return problems


# --------------------------------------------------------------------------
# (d) precision_recall_scores(flags, labels) -> (precision, recall)


def _scores_case(flags, labels, label):
    precision, recall = kflib.anomaly.precision_recall(flags, labels)
    return Case((np.asarray(flags, dtype=bool), np.asarray(labels, dtype=bool)), label,
                {"precision": precision, "recall": recall})


def scores_cases():
    cases = [_scores_case(np.array([True, True, True, False, False, False]),
                          np.array([True, False, False, True, False, False]),
                          "the first example of the visible tests"),
             _scores_case(np.zeros(4, bool), np.array([True, False, False, False]),
                          "the visible tests' series with nothing flagged"),
             _scores_case(np.array([True, False]), np.zeros(2, bool),
                          "the visible tests' series with no anomaly")]
    rng = np.random.default_rng(9404)
    shapes = [(50,), (8, 30), (3, 4, 20), (1,), (200,)]
    for shape, p_flag, p_label in zip(shapes, (0.2, 0.1, 0.3, 1.0, 0.05), (0.1, 0.3, 0.2, 1.0, 0.02)):
        flags, labels = rng.random(shape) < p_flag, rng.random(shape) < p_label
        cases.append(_scores_case(flags, labels, f"random flags and labels of shape {shape}"))
    model = LinearGaussianSSM(F=[[1.0]], H=[[1.0], [1.0]], Q=[[0.02]], R=0.16 * np.eye(2),
                              x0=[70.0], P0=[[1.0]])
    _, y = kflib.simulate(model, 300, rng=rng)
    labels = np.zeros(300, dtype=bool)
    labels[rng.choice(300, size=10, replace=False)] = True
    y[labels, 0] += 2.0
    flags = kflib.anomaly.flag_anomalies(kflib.kalman_filter(model, y), 0.01)
    cases.append(_scores_case(flags, labels, "a detector's flags on a series with injected spikes, T=300"))
    return cases


def scores_args(flags, labels):
    """In the sandbox: flags and labels as the booleans nbgrader passes (they travel as 0.0 / 1.0)."""
    return np.asarray(flags) != 0, np.asarray(labels) != 0


def scores_check(case, got):
    flags, labels = case.args
    e = case.expect
    problems = []
    for name in ("precision", "recall"):
        g = got.get(name)
        if g is None or g.shape != ():
            problems.append(f"{name} must be one number"
                            + (f"; it has shape {g.shape}" if g is not None else "")
                            + (" (count over all entries, not along one axis)" if np.ndim(flags) > 1 else ""))
    if problems:
        return problems
    precision, recall = float(got["precision"]), float(got["recall"])
    if np.isnan(e["precision"]) != np.isnan(precision):
        problems.append("the precision is nan exactly when nothing is flagged")
    if np.isnan(e["recall"]) != np.isnan(recall):
        problems.append("the recall is nan exactly when there is no anomaly")
    if problems:
        return problems
    problems += compare("precision", precision, e["precision"], rtol=1e-12)
    problems += compare("recall", recall, e["recall"], rtol=1e-12)
    if problems and np.allclose([precision, recall], [e["recall"], e["precision"]], equal_nan=True):
        problems.append("precision and recall are swapped: precision = TP / (number flagged), "
                        "recall = TP / (number of anomalies)")
    return problems


# --------------------------------------------------------------------------
# (e) nis_consistency(nis, dof, alpha) -> (mean_nis, band, inside)


def _band(nis, dof, alpha, *, D=None, N=None, lower=None, upper=None):
    """The band chi2(D) quantiles / N (with the usual mistakes' D, N or quantiles)."""
    seen = dof > 0
    D = dof[seen].sum() if D is None else D
    N = seen.sum() if N is None else N
    lower = alpha / 2 if lower is None else lower
    upper = 1 - alpha / 2 if upper is None else upper
    return scipy.stats.chi2.ppf([lower, upper], D) / N


def _consistency_case(nis, dof, alpha, label):
    nis, dof = np.asarray(nis, dtype=float), np.asarray(dof)
    seen = dof > 0
    N, D = int(seen.sum()), int(dof[seen].sum())
    mean = float(nis[seen].mean())
    band = np.array([kflib.anomaly.chi2_gate(D, 1 - alpha / 2), kflib.anomaly.chi2_gate(D, alpha / 2)]) / N
    return Case((nis, dof.astype(float), float(alpha)), label,
                {"mean_nis": mean, "band": band, "inside": bool(band[0] <= mean <= band[1])})


def consistency_cases():
    two = np.array([2, 2, 2, 2])
    cases = [_consistency_case([1.0, 3.0, 2.0, 0.5], two, 0.05, "the first example of the visible tests (m=2)"),
             _consistency_case([6.0, 9.0, 4.0, 5.0], two, 0.05, "the visible tests' average above the band"),
             _consistency_case([0.1, 0.2, 0.05, 0.15], two, 0.05, "the visible tests' average below the band"),
             _consistency_case([1.2, np.nan, 0.4, 2.9, np.nan, 1.5], np.array([1, 0, 1, 1, 0, 1]), 0.1,
                               "the visible tests' steps with nothing observed")]
    model = LinearGaussianSSM(F=[[0.9, 0.2], [0.0, 0.7]], H=[[1.0, 0.0], [1.0, 1.0]],
                              Q=0.3 * np.eye(2), R=[[0.5, 0.1], [0.1, 0.4]], x0=np.zeros(2), P0=np.eye(2))
    _, y = kflib.simulate(model, 300, rng=np.random.default_rng(97))
    y[[40, 41, 200]] = np.nan
    for factor in (1.0, 0.1, 10.0):
        value, dof = kflib.anomaly.nis(kflib.kalman_filter(model.replace(Q=factor * model.Q), y), return_dof=True)
        cases.append(_consistency_case(value, dof, 0.05, f"the visible tests' filter output, Q x {factor:g}"))
    cases += [_consistency_case(*args, label) for label, args in ps09_consistency()]
    cases += [_consistency_case(*args, "another " + label)                 # the grader's own seed
              for label, args in ps09_consistency(99505)[2:8:2]]
    return cases


def consistency_args(nis, dof, alpha):
    """In the sandbox: dof as the integers nbgrader passes (they travel as floats)."""
    return nis, np.asarray(dof).astype(int), alpha


def consistency_to_plain(out):
    if not isinstance(out, tuple) or len(out) != 3:
        raise TypeError(f"it must return the tuple (mean_nis, band, inside); it returned {type(out).__name__}"
                        + (f" of length {len(out)}" if hasattr(out, "__len__") else ""))
    inside = np.asarray(out[2])
    return {"mean_nis": np.asarray(out[0], dtype=float), "band": np.asarray(out[1], dtype=float),
            "inside": inside.astype(float),
            "inside_is_bool": np.array(float(inside.dtype == bool and inside.ndim == 0))}


def consistency_check(case, got):
    nis, dof, alpha = case.args
    dof = dof.astype(int)
    e = case.expect
    mean, band = got.get("mean_nis"), got.get("band")
    problems = []
    if mean is None or mean.shape != ():
        problems.append("mean_nis must be one number" + (f"; it has shape {mean.shape}" if mean is not None else ""))
    if band is None or band.shape != (2,):
        problems.append("band must have shape (2,), its lower and upper end"
                        + (f"; it has shape {band.shape}" if band is not None else ""))
    inside = got.get("inside")
    if inside is None or inside.shape != () or not got.get("inside_is_bool", np.array(1.0)).reshape(-1)[0]:
        problems.append("inside must be one boolean (True or False)")
    if problems:
        return problems
    seen = dof > 0
    if not np.isfinite(mean) or not np.isclose(mean, e["mean_nis"], rtol=1e-9, atol=0.0):
        problems += compare("mean_nis", mean, e["mean_nis"], rtol=1e-9)
        if np.isnan(mean):
            problems.append("average over the steps with dof > 0 only: the NIS is NaN where nothing was observed")
        elif np.isclose(mean, np.mean(nis[seen] / dof[seen])) or np.isclose(mean, e["mean_nis"] / dof.max()):
            problems.append("return the average NIS itself, not the average per degree of freedom")
    wrong_band = compare("band", band, e["band"], rtol=1e-7)
    if wrong_band:
        problems += wrong_band
        N, D = int(seen.sum()), int(dof[seen].sum())
        for wrong, hint in [
                (_band(nis, dof, alpha, D=N), "the sum of the NIS is chi-square with D = the sum of dof "
                 "degrees of freedom (N m when everything is observed), not N"),
                (_band(nis, dof, alpha, D=N * dof.max()), "D is the sum of the dof of the observed steps: "
                 "a partly observed step adds fewer than m"),
                (_band(nis, dof, alpha, N=D), "divide the chi-square quantiles by N, the number of steps, not "
                 "by D: the band is for the average NIS itself"),
                (_band(nis, dof, alpha, N=len(nis)), "N counts the steps where something was observed "
                 "(dof > 0), not all T steps"),
                (_band(nis, dof, alpha, lower=alpha, upper=1 - alpha), "a two-sided band at level alpha leaves "
                 "alpha / 2 on each side: chi2.ppf(alpha / 2, D) and chi2.ppf(1 - alpha / 2, D)"),
                (np.array([0.0, scipy.stats.chi2.ppf(1 - alpha, D) / N]), "the band has two ends: an average "
                 "below the lower end, chi2.ppf(alpha / 2, D) / N, fails the test too")]:
            if np.allclose(band, wrong) and not np.allclose(wrong, e["band"]):
                problems.append(hint)
                break
    if not problems and bool(inside) != e["inside"]:
        problems.append("inside is wrong: it is True exactly when band[0] <= mean_nis <= band[1]")
    return problems


# (b), (c) and (e) keep a converter of their own: besides the values, it sends whether the
# flags (or inside) are booleans, which no returns= declaration says.
PARTS = [
    Part("nis", "nis_observed", "nis_observed(nu, S)", nis_cases, check=nis_check, returns=("nis", "dof"),
         arg_names=("nu", "S")),
    Part("gate", "chi2_flags", "chi2_flags(nis, dof, alpha)", gate_cases, gate_to_plain, gate_check,
         arg_names=("nis", "dof", "alpha"), from_plain=gate_args),
    Part("robust", "robust_filter_skip", "robust_filter_skip(F, H, Q, R, x0, P0, y, alpha)",
         robust_cases, robust_to_plain, robust_check,
         arg_names=("F", "H", "Q", "R", "x0", "P0", "y", "alpha")),
    Part("scores", "precision_recall_scores", "precision_recall_scores(flags, labels)",
         scores_cases, check=scores_check, returns=("precision", "recall"), arg_names=("flags", "labels"),
         from_plain=scores_args),
    Part("consistency", "nis_consistency", "nis_consistency(nis, dof, alpha)", consistency_cases,
         consistency_to_plain, consistency_check, arg_names=("nis", "dof", "alpha"), from_plain=consistency_args),
]
