"""Trusted check of ps04-smoothing (see grader/spec.py for the contract).

The inputs are those of the notebook's visible tests plus those of its hidden
tests (same seeds, same order of random draws); the references come from
kflib's filter and RTS smoother, computed here, in the grader's process, with
the tests' tolerances.

As in the notebook, each part is graded on its own:
- while (b), (c) and (d) run, the student's functions of the other parts
  (smoother_gain, rts_smooth) are replaced by kflib-based stand-ins, the same
  as the notebook's `_graded_alone` -- so a wrong (a) does not cost (b);
- as in the hidden tests, every kflib function is switched off (an allow-list)
  except the LinearGaussianSSM container, and in (d), whose answer is meant to
  call them, kflib.kalman_filter and kflib.rts_smoother. The stand-ins compute
  with numpy alone, like the notebook's.
"""

from __future__ import annotations

import numpy as np

import kflib
import kflib.models
import kflib.smoother
from kflib import LinearGaussianSSM
from kflib.exercise_cases import ps04_gain, ps04_gap, ps04_lag, ps04_smooth

from ..spec import Case, Part, compare

ASSIGNMENT = "ps04-smoothing"


# --------------------------------------------------------------------------
# shared inputs


def _solved(problems):
    """(label, model, filt, smooth): kflib's filter and smoother on each (label, model, y) of
    kflib.exercise_cases (the hidden tests' random problems)."""
    out = []
    for label, model, y in problems:
        filt = kflib.kalman_filter(model, y)
        out.append((label, model, filt, kflib.rts_smoother(model, filt)))
    return out


def _visible_problems():
    """The visible tests' two examples of (b) and (c): (model, filt, smooth, label)."""
    model = LinearGaussianSSM([[0.8]], [[1.0]], [[1.0]], [[2.0]], [0.0], [[3.0]])
    filt = kflib.kalman_filter(model, np.array([[1.0], [3.0], [-1.0], [2.0]]))
    out = [(model, filt, kflib.rts_smoother(model, filt), "the visible tests' one-state model")]
    model = kflib.models.constant_velocity(1.0, q=0.5, r=1.0, x0=[0.0, 1.0], P0=np.diag([4.0, 1.0]))
    y = np.array([[0.8], [2.3], [2.9], [4.4], [np.nan], [5.1], [7.2], [7.6]])
    filt = kflib.kalman_filter(model, y)
    out.append((model, filt, kflib.rts_smoother(model, filt),
                "the visible tests' constant-velocity model with y_5 missing"))
    return out


def _atol(want):
    return 1e-9 * np.max(np.abs(want)) if np.size(want) else 0.0


# --------------------------------------------------------------------------
# stand-ins for the student's other functions (they run in the sandbox), the notebook's own


def kflib_smoother_gain(P_filt_t, F, P_pred_next):
    """G = P_filt_t F' P_pred_next^-1 (numpy only: every kflib function is off in (b)-(d))."""
    P, F, Pn = (np.asarray(a, dtype=float) for a in (P_filt_t, F, P_pred_next))
    return np.linalg.solve(Pn, F @ P).T


def kflib_rts_smooth(F, x_filt, P_filt, x_pred, P_pred):
    """The RTS backward pass, as kflib.rts_smoother computes it (numpy only)."""
    F, x_filt, P_filt, x_pred, P_pred = (
        np.asarray(a, dtype=float) for a in (F, x_filt, P_filt, x_pred, P_pred))
    T = x_filt.shape[0]
    x_s, P_s = x_filt.copy(), P_filt.copy()
    for t in range(T - 2, -1, -1):
        G = np.linalg.solve(P_pred[t + 1], F @ P_filt[t]).T
        x_s[t] = x_filt[t] + G @ (x_s[t + 1] - x_pred[t + 1])
        P = P_filt[t] + G @ (P_s[t + 1] - P_pred[t + 1]) @ G.T
        P_s[t] = 0.5 * (P + P.T)
    return x_s, P_s


# --------------------------------------------------------------------------
# (a) smoother_gain(P_filt_t, F, P_pred_next) -> G


def gain_cases():
    p = (np.sqrt(5) - 1) / 2
    cases = [Case((np.array([[p]]), np.array([[1.0]]), np.array([[p + 1]])),
                  "the visible tests' local level model in steady state",
                  {"G": np.array([[(3 - np.sqrt(5)) / 2]]), "rtol": 1e-6, "atol": 0.0})]
    F = np.array([[1.0, 1.0], [0.0, 1.0]])
    P_filt_t = np.array([[2.0, 0.5], [0.5, 1.0]])
    P_pred_next = np.array([[4.5, 1.5], [1.5, 2.0]])
    cases.append(Case((P_filt_t, F, P_pred_next), "the visible tests' constant-velocity step",
                      {"G": np.array([[17 / 27, -2 / 9], [2 / 9, 1 / 3]]), "rtol": 1e-6, "atol": 1e-12}))
    problems = [(ps04_gain(), "random"),
                (ps04_gain(94101, [(3, 1, 6, 1.0), (5, 2, 4, 1e2)]), "another random")]   # the grader's own
    for found, kind in problems:
        for label, model, filt, smooth in _solved(found):
            for k in range(-1, len(filt.x_filt) - 1):    # the gain of row k; k = -1 is the initial state
                P_k = model.P0 if k < 0 else filt.P_filt[k]
                args = tuple(np.array(a) for a in (P_k, model.F, filt.P_pred[k + 1]))
                ref = smooth.G[k + 1]
                where = "the initial state" if k < 0 else f"row {k}"
                cases.append(Case(args, f"{kind} model with {label}, {where}",
                                  {"G": ref, "rtol": 1e-7, "atol": _atol(ref)}))
    return cases


def gain_check(case, got):
    P, F, Pn = case.args
    e = case.expect
    G = got.get("G")
    problems = compare("G", G, e["G"], rtol=e["rtol"], atol=e["atol"])
    if problems and G is not None and G.shape == e["G"].shape:
        inv = np.linalg.inv(Pn)
        for wrong, hint in [
                (P @ F @ inv, "transpose F: G_t = P_{t|t} F' P_{t+1|t}^{-1}, not P_{t|t} F P_{t+1|t}^{-1}"),
                (e["G"].T, "that is G_t', the transpose of G_t: np.linalg.solve(P_pred_next, F @ P_filt_t) "
                           "returns G_t'; transpose it"),
                (F.T @ P @ inv, "the order matters: G_t = P_{t|t} F' P_{t+1|t}^{-1}, "
                                "not F' P_{t|t} P_{t+1|t}^{-1}"),
                ((P @ F.T) / Pn, "P_{t+1|t}^{-1} is the inverse matrix: do not divide element by element"),
                (Pn @ np.linalg.inv(F.T) @ np.linalg.inv(P) if abs(np.linalg.det(F)) > 1e-12 else None,
                 "G_t = P_{t|t} F' P_{t+1|t}^{-1}: multiply by the inverse of P_{t+1|t}, do not divide by it")]:
            if wrong is not None and np.allclose(G, wrong, rtol=1e-6, atol=e["atol"]) \
                    and not np.allclose(wrong, e["G"], rtol=1e-6, atol=e["atol"]):
                problems.append(hint)
                break
    return problems


# --------------------------------------------------------------------------
# (b) rts_smooth(F, x_filt, P_filt, x_pred, P_pred) -> (x_smooth, P_smooth)


def _backward(F, xf, Pf, xp, Pp, *, gain_from="pred", transpose=True, recursive=True):
    """A backward pass with a typical mistake or two, for the hints."""
    xs, Ps = xf.copy(), Pf.copy()
    for k in range(len(xf) - 2, -1, -1):
        Fk = F.T if transpose else F
        G = Pf[k] @ Fk @ np.linalg.pinv(Pp[k + 1] if gain_from == "pred" else Pf[k + 1])
        x_next, P_next = (xs[k + 1], Ps[k + 1]) if recursive else (xf[k + 1], Pf[k + 1])
        xs[k] = xf[k] + G @ (x_next - xp[k + 1])
        Ps[k] = Pf[k] + G @ (P_next - Pp[k + 1]) @ G.T
    return xs, Ps


def smooth_cases():
    cases = []
    for model, filt, smooth, label in _visible_problems():
        args = tuple(np.array(a) for a in (model.F, filt.x_filt, filt.P_filt, filt.x_pred, filt.P_pred))
        cases.append(Case(args, label, {"x_smooth": smooth.x_smooth, "P_smooth": smooth.P_smooth,
                                        "rtol": 1e-6, "atol": (1e-9, 1e-9)}))
    for found, kind in [(ps04_smooth(), "random"),
                        (ps04_smooth(94202, [(3, 1, 12, 1.0), (2, 2, 20, 1e2)]), "another random")]:
        for label, model, filt, smooth in _solved(found):    # the hidden tests', then the grader's own
            args = tuple(np.array(a) for a in (model.F, filt.x_filt, filt.P_filt, filt.x_pred, filt.P_pred))
            cases.append(Case(args, f"{kind} model with {label}",
                              {"x_smooth": smooth.x_smooth, "P_smooth": smooth.P_smooth, "rtol": 1e-7,
                               "atol": (_atol(smooth.x_smooth), _atol(smooth.P_smooth))}))
    return cases


def smooth_check(case, got):
    F, xf, Pf, xp, Pp = case.args
    e = case.expect
    problems = compare("x_smooth", got.get("x_smooth"), e["x_smooth"], rtol=e["rtol"], atol=e["atol"][0])
    problems += compare("P_smooth", got.get("P_smooth"), e["P_smooth"], rtol=e["rtol"], atol=e["atol"][1])
    xs = got.get("x_smooth")
    if problems and xs is not None and xs.shape == xf.shape and len(xf) > 1:
        close = lambda a: np.allclose(xs, a, rtol=1e-6, atol=e["atol"][0])      # noqa: E731
        if not close(e["x_smooth"]):
            if not np.allclose(xs[-1], xf[-1]):
                problems.append("the last row is x_{T|T} = x_filt[-1]: at t = T there is no later data")
            elif close(xf):
                problems.append("x_smooth equals x_filt. The step for row k adds "
                                "G (x_smooth[k + 1] - x_pred[k + 1])")
            else:
                for kw, hint in [
                        ({"gain_from": "filt"}, "the gain divides by the predicted covariance P_{t+1|t}: "
                                                "in the step for row k that is P_pred[k + 1], not P_filt[k + 1]"),
                        ({"transpose": False}, "G_t = P_{t|t} F' P_{t+1|t}^{-1}: transpose F"),
                        ({"recursive": False}, "the pass is a recursion: the step for row k uses the smoothed "
                                               "x_smooth[k + 1], P_smooth[k + 1] of the row after it, "
                                               "not x_filt, P_filt")]:
                    if close(_backward(F, xf, Pf, xp, Pp, **kw)[0]):
                        problems.append(hint)
                        break
    Ps = got.get("P_smooth")
    if Ps is not None and Ps.ndim == 3 and Ps.shape == e["P_smooth"].shape \
            and not np.allclose(Ps, np.swapaxes(Ps, 1, 2), rtol=1e-6, atol=e["atol"][1]):
        problems.append("every P_{t|T} must be symmetric: G_t (P_{t+1|T} - P_{t+1|t}) G_t' has the "
                        "transposed gain G_t' on the right")
    return problems


# --------------------------------------------------------------------------
# (c) lag_one_covariance(F, P_filt, P_pred, P_smooth) -> Cov(x_t, x_{t-1} | y), t = 2..T


def lag_cases():
    cases = []
    for model, filt, smooth, label in _visible_problems():
        args = tuple(np.array(a) for a in (model.F, filt.P_filt, filt.P_pred, smooth.P_smooth))
        cases.append(Case(args, label, {"lag": smooth.P_lag1[1:], "rtol": 1e-6, "atol": 1e-9}))
    for found, kind in [(ps04_lag(), "random"),
                        (ps04_lag(94303, [(2, 2, 12, 1.0), (3, 1, 18, 1e-2)]), "another random")]:
        for label, model, filt, smooth in _solved(found):    # the hidden tests', then the grader's own
            args = tuple(np.array(a) for a in (model.F, filt.P_filt, filt.P_pred, smooth.P_smooth))
            want = smooth.P_lag1[1:]
            cases.append(Case(args, f"{kind} model with {label}",
                              {"lag": want, "rtol": 1e-7, "atol": _atol(want)}))
    return cases


def lag_check(case, got):
    F, Pf, Pp, Ps = case.args
    e = case.expect
    lag = got.get("lag")
    T = len(Pf)
    if lag is not None and lag.shape == (T,) + Pf.shape[1:]:
        return [f"it returns {T} matrices; it should return T - 1 = {T - 1}, for t = 2..T. kflib's "
                "P_lag1 has T rows: its row 0 pairs x_1 with the initial state x_0"]
    problems = compare("the lag-one covariances", lag, e["lag"], rtol=e["rtol"], atol=e["atol"])
    if problems and lag is not None and lag.shape == e["lag"].shape:
        Gt = np.linalg.pinv(Pp[1:]) @ F @ Pf[:-1]                 # G_{t-1}'
        close = lambda a: np.allclose(lag, a, rtol=1e-6, atol=e["atol"])   # noqa: E731
        for wrong, hint in [
                (np.swapaxes(e["lag"], 1, 2), "that is Cov(x_{t-1}, x_t | y), the transpose: "
                                              "Cov(x_t, x_{t-1} | y) = P_{t|T} G_{t-1}', not G_{t-1} P_{t|T}"),
                (Pf[1:] @ Gt, "use the smoothed P_{t|T} (P_smooth), not the filtered P_{t|t}"),
                (F @ Ps[:-1], "Cov(x_t, x_{t-1} | y) is not F P_{t-1|T}: given all the data, w_t and "
                              "x_{t-1} are correlated. Use P_{t|T} G_{t-1}'"),
                (Ps[:-1] @ Gt, "P_{t,t-1|T} = P_{t|T} G_{t-1}', with the gain of the EARLIER state: "
                               "row k is P_smooth[k + 1] times the transposed gain of row k "
                               "(made from P_filt[k] and P_pred[k + 1])")]:
            if close(wrong) and not np.allclose(wrong, e["lag"], rtol=1e-6, atol=e["atol"]):
                problems.append(hint)
                break
    return problems


# --------------------------------------------------------------------------
# (d) interpolate_gap(model, y) -> (y_hat, y_var)


def gap_args(F, H, Q, R, x0, P0, y):
    """In the sandbox: the model the function takes, from plain arrays."""
    return kflib.LinearGaussianSSM(F, H, Q, R, x0, P0), y


def _gap_case(model, y, label, rtol, relative_atol):
    missing = np.isnan(y).all(axis=1)
    smooth = kflib.rts_smoother(model, kflib.kalman_filter(model, y))
    want_hat = smooth.x_smooth[missing] @ model.H.T
    want_var = model.H @ smooth.P_smooth[missing] @ model.H.T + model.R
    atol = (_atol(want_hat), _atol(want_var)) if relative_atol else (0.0, 0.0)
    args = tuple(np.array(a) for a in (model.F, model.H, model.Q, model.R, model.x0, model.P0, y))
    extra = {"x_filt_hat": kflib.kalman_filter(model, y).x_filt[missing] @ model.H.T,
             "HPH": model.H @ smooth.P_smooth[missing] @ model.H.T}
    return Case(args, label, {"y_hat": want_hat, "y_var": want_var, "rtol": rtol, "atol": atol, **extra})


def gap_cases():
    nan = np.nan
    cases = [_gap_case(kflib.models.local_level(0.5, 1.0, x0=0.0, P0=10.0),
                       np.array([[1.2, 0.7, 1.9, 2.4, nan, nan, nan, nan, 4.1, 3.6, 4.4, 3.9]]).T,
                       "the visible tests' local level model with y_5..y_8 missing", 1e-6, False)]
    model = LinearGaussianSSM(F=[[0.9, 0.3], [0.0, 0.7]], H=[[1.0, 0.0], [0.5, 1.0]],
                              Q=np.eye(2), R=[[0.5, 0.2], [0.2, 1.0]], x0=[0.0, 0.0], P0=np.eye(2))
    y = np.array([[0.3, 1.1], [-0.4, 0.2], [nan, nan], [nan, nan], [nan, nan], [0.9, 1.5], [1.7, 0.6]])
    cases.append(_gap_case(model, y, "the visible tests' two sensors", 1e-6, True))
    for label, (model, y) in ps04_gap():
        cases.append(_gap_case(model, y, f"random model with {label}", 1e-7, True))
    for label, (model, y) in ps04_gap(94404, [(2, 2, 20, 1.0), (3, 1, 30, 1e2)], gap_sets=None):
        cases.append(_gap_case(model, y, f"another random model with {label}", 1e-7, True))   # the grader's own
    return cases


def gap_check(case, got):
    e = case.expect
    y_hat, y_var = got.get("y_hat"), got.get("y_var")
    k, m = e["y_hat"].shape
    if y_hat is not None and y_hat.ndim == 2 and y_hat.shape[0] != k:
        return [f"y_hat has {y_hat.shape[0]} rows; it needs one per missing observation (a row of y "
                f"that is all NaN), here {k}"]
    problems = compare("y_hat", y_hat, e["y_hat"], rtol=e["rtol"], atol=e["atol"][0])
    problems += compare("y_var", y_var, e["y_var"], rtol=e["rtol"], atol=e["atol"][1])
    if y_hat is not None and y_hat.shape == e["y_hat"].shape and problems \
            and np.allclose(y_hat, e["x_filt_hat"], rtol=1e-6) \
            and not np.allclose(e["x_filt_hat"], e["y_hat"], rtol=1e-6):
        problems.append("that is the filter's estimate H x_{t|t}: use the smoother, which also sees "
                        "the data after the gap")
    if y_var is not None and y_var.shape == e["y_var"].shape and problems:
        if np.allclose(y_var, e["HPH"], rtol=1e-6):
            problems.append("add R: y_var is the variance of the missing observation itself, "
                            "H P_{t|T} H' + R, not only that of H x_t")
        elif m == 1 and np.allclose(y_var, np.sqrt(e["y_var"]), rtol=1e-6):
            problems.append("y_var holds variances, not standard deviations")
    if y_var is not None and y_var.shape == (k, m) and m > 1:
        problems.append("y_var must hold the full m x m covariance matrix of each missing y_t, "
                        "not only its diagonal")
    return problems


STAND_INS = {"smoother_gain": kflib_smoother_gain, "rts_smooth": kflib_rts_smooth}
PARTS = [
    Part("gain", "smoother_gain", "smoother_gain(P_filt_t, F, P_pred_next)",
         gain_cases, check=gain_check, returns="G",
         arg_names=("P_filt_t", "F", "P_pred_next")),
    Part("smooth", "rts_smooth", "rts_smooth(F, x_filt, P_filt, x_pred, P_pred)",
         smooth_cases, check=smooth_check, returns=("x_smooth", "P_smooth"),
         arg_names=("F", "x_filt", "P_filt", "x_pred", "P_pred"),
         stand_ins={"smoother_gain": kflib_smoother_gain}),
    Part("lag_one", "lag_one_covariance", "lag_one_covariance(F, P_filt, P_pred, P_smooth)",
         lag_cases, check=lag_check, returns="lag",
         arg_names=("F", "P_filt", "P_pred", "P_smooth"), stand_ins=STAND_INS),
    Part("gap", "interpolate_gap", "interpolate_gap(model, y)",
         gap_cases, check=gap_check, returns=("y_hat", "y_var"),
         arg_names=("model", "y"), from_plain=gap_args, stand_ins=STAND_INS),
]
