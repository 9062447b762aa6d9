"""Trusted check of ps02-kalman-filter (see grader/spec.py for the contract).

Inputs: those of the notebook's visible tests, those of its hidden tests (the
random ones from kflib.exercise_cases, which the hidden tests import too) and a
few drawn with the grader's own seeds; references from kflib.kalman_filter, in
the grader's process. Like the hidden tests, every kflib function except the
LinearGaussianSSM container is switched off while the student's functions run.
"""

from __future__ import annotations

import numpy as np

import kflib
import kflib.models
from kflib import LinearGaussianSSM
from kflib.exercise_cases import ps02_filter, ps02_missing, ps02_predict, ps02_update

from ..spec import Case, Part, compare

ASSIGNMENT = "ps02-kalman-filter"


# --------------------------------------------------------------------------
# (a) kf_predict(x, P, F, Q) -> (x_pred, P_pred)


def predict_cases():
    cases = []
    F = np.array([[1.0, 0.5], [0.0, 1.0]])
    Q = np.array([[0.1, 0.2], [0.2, 1.0]])
    x = np.array([2.0, -1.0])
    P = np.array([[4.0, 1.0], [1.0, 2.0]])
    inputs = [((x, P, F, Q), "the example of the visible tests")]
    inputs += [(args, f"random model with {label}") for label, args in ps02_predict()]
    inputs += [(args, f"another random model with {label}")                # the grader's own seed
               for label, args in ps02_predict(92101)[2:4]]
    for (x, P, F, Q), label in inputs:
        n = len(x)
        ref = kflib.kalman_filter(LinearGaussianSSM(F, np.ones((1, n)), Q, np.eye(1), x, P),
                                  np.full((1, 1), np.nan))
        cases.append(Case((x, P, F, Q), label, {"x_pred": ref.x_pred[0], "P_pred": ref.P_pred[0]}))
    return cases


def predict_check(case, got):
    x, P, F, Q = case.args
    e = case.expect
    problems = compare("x_pred", got.get("x_pred"), e["x_pred"], rtol=1e-7,
                       atol=1e-9 * (1 + np.max(np.abs(e["x_pred"]))))
    problems += compare("P_pred", got.get("P_pred"), e["P_pred"], rtol=1e-7,
                        atol=1e-9 * np.max(np.abs(e["P_pred"])))
    Pp = got.get("P_pred")
    if problems and Pp is not None and Pp.shape == P.shape:
        for wrong, hint in [(F @ P @ F.T, "P_pred = F P F^T + Q: add the process noise Q"),
                            (F.T @ P @ F + Q, "P_pred = F P F^T + Q, not F^T P F + Q")]:
            if np.allclose(Pp, wrong) and not np.allclose(wrong, e["P_pred"]):
                problems.append(hint)
    return problems


# --------------------------------------------------------------------------
# (b) kf_update(x_pred, P_pred, y, H, R) -> (x_filt, P_filt, nu, S, K)

UPDATE_NAMES = ("x_filt", "P_filt", "nu", "S", "K")


def update_cases():
    inputs = [((np.array([1.0, 0.0]), np.array([[4.0, 0.0], [0.0, 1.0]]), np.array([3.0]),
                np.array([[1.0, 0.0]]), np.array([[1.0]])), "the first example of the visible tests"),
              ((np.array([1.0, 2.0]), np.array([[2.0, 1.0], [1.0, 3.0]]), np.array([2.0, 5.0]),
                np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[1.0, 0.5], [0.5, 2.0]])),
               "the visible tests' two sensors")]
    inputs += [(args, f"random model with {label}") for label, args in ps02_update()]
    inputs += [(args, f"another random model with {label}")                # the grader's own seed
               for label, args in ps02_update(92202)[3:5]]
    cases = []
    for (x, P, y, H, R), label in inputs:
        n = len(x)
        ref = kflib.kalman_filter(LinearGaussianSSM(np.eye(n), H, np.zeros((n, n)), R, x, P), y[None, :])
        expect = {"x_filt": ref.x_filt[0], "P_filt": ref.P_filt[0], "nu": ref.innovations[0],
                  "S": ref.S[0], "K": ref.K[0]}
        cases.append(Case((x, P, y, H, R), label, expect))
    return cases


def update_check(case, got):
    x, P, y, H, R = case.args
    e = case.expect
    atols = {"x_filt": 1e-9 * (1 + np.max(np.abs(e["x_filt"]))), "P_filt": 1e-9 * np.max(np.abs(P)),
             "nu": 1e-9 * (1 + np.max(np.abs(y))), "S": 1e-9 * np.max(np.abs(e["S"])),
             "K": 1e-9 * (1 + np.max(np.abs(e["K"])))}
    problems = []
    for name in UPDATE_NAMES:
        problems += compare(name, got.get(name), e[name], rtol=1e-7, atol=atols[name])
    K = got.get("K")
    if K is not None and K.shape == e["K"].T.shape and K.shape != e["K"].shape:
        problems.append("K = P H^T S^-1 has shape (n, m); you have its transpose S^-1 H P")
    return problems


# --------------------------------------------------------------------------
# (c) kalman_filter_loglik and (d) kalman_filter_missing -> (x_filt, P_filt, loglik)


def _filter_case(model, y, label):
    ref = kflib.kalman_filter(model, y)
    args = tuple(np.array(a) for a in (model.F, model.H, model.Q, model.R, model.x0, model.P0, y))
    return Case(args, label, {"x_filt": ref.x_filt, "P_filt": ref.P_filt, "loglik": ref.loglik})


def filter_cases():
    F = np.array([[1.0, 1.0], [0.0, 1.0]])
    H = np.array([[1.0, 0.0], [1.0, 1.0]])
    Q = 0.2 * np.array([[1 / 3, 1 / 2], [1 / 2, 1.0]])
    R = np.array([[1.0, 0.3], [0.3, 0.5]])
    y = np.array([[1.3, 1.6], [1.5, 3.2], [3.4, 4.1], [4.2, 4.7]])
    cases = [_filter_case(LinearGaussianSSM(F, H, Q, R, np.array([0.0, 1.0]), np.zeros((2, 2))), y,
                          "the first example of the visible tests")]
    cv = kflib.models.constant_velocity(dt=1.0, q=0.5, r=2.0, x0=[0.0, 1.0], P0=np.eye(2))
    cases.append(_filter_case(cv, np.array([[1.15], [2.8], [0.13], [1.88], [0.21], [1.73]]),
                              "the visible tests' constant-velocity model"))
    for kind, (label, args) in [("random", c) for c in ps02_filter()] + [
            ("another random", c) for c in ps02_filter(92303)[4:6]]:        # the grader's own seed
        cases.append(_filter_case(LinearGaussianSSM(*args[:6]), args[6], f"{kind} model with {label}"))
    return cases


def missing_cases():
    F = np.array([[1.0, 1.0], [0.0, 1.0]])
    Q = 0.2 * np.array([[1 / 3, 1 / 2], [1 / 2, 1.0]])
    H = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    R = np.array([[1.0, 0.2, 0.3], [0.2, 0.5, 0.1], [0.3, 0.1, 2.0]])
    model = LinearGaussianSSM(F, H, Q, R, np.array([0.0, 1.0]), np.eye(2))
    y_full = np.array([[-3.3, -1.3, -2.2], [-3.7, -2.9, -3.5], [-6.2, -2.2, -6.4],
                       [-7.7, -2.6, -5.8], [-9.9, -2.8, -9.6], [-8.5, -0.5, -7.4],
                       [-9.0, -0.8, -13.5], [-12.3, 0.3, -12.5]])
    y = y_full.copy()
    y[1, 0] = y[2] = y[3, 1:] = y[5, 2] = y[6] = y[7, [0, 2]] = np.nan
    cases = [_filter_case(model, y_full, "the visible tests' model, nothing missing"),
             _filter_case(model, y, "the visible tests' model with gaps"),
             _filter_case(model, np.full_like(y, np.nan), "the visible tests' model, nothing observed")]
    for kind, (label, args) in [("random", c) for c in ps02_missing()] + [
            ("another random", c) for c in ps02_missing(92404)[4:6]]:        # the grader's own seed
        cases.append(_filter_case(LinearGaussianSSM(*args[:6]), args[6], f"{kind} model with {label}"))
    return cases


def filter_check(case, got):
    y = case.args[-1]
    T, m = y.shape
    e = case.expect
    problems = compare("x_filt", got.get("x_filt"), e["x_filt"], rtol=1e-7,
                       atol=1e-9 * (1 + np.max(np.abs(e["x_filt"]))))
    problems += compare("P_filt", got.get("P_filt"), e["P_filt"], rtol=1e-7,
                        atol=1e-9 * np.max(np.abs(e["P_filt"])))
    ll = got.get("loglik")
    if ll is None or ll.size != 1:
        problems.append("loglik must be one number")
    else:
        problems += compare("loglik", ll.reshape(()), e["loglik"], rtol=1e-7, atol=1e-9 * T * m)
    return problems


ARGS = ("F", "H", "Q", "R", "x0", "P0", "y")
FILTER_RETURNS = ("x_filt", "P_filt", "loglik:number")
PARTS = [
    Part("predict", "kf_predict", "kf_predict(x, P, F, Q)", predict_cases, check=predict_check,
         returns=("x_pred", "P_pred"), arg_names=("x", "P", "F", "Q")),
    Part("update", "kf_update", "kf_update(x_pred, P_pred, y, H, R)", update_cases, check=update_check,
         returns=UPDATE_NAMES, arg_names=("x_pred", "P_pred", "y", "H", "R")),
    Part("filter", "kalman_filter_loglik", "kalman_filter_loglik(F, H, Q, R, x0, P0, y)", filter_cases,
         check=filter_check, returns=FILTER_RETURNS, arg_names=ARGS),
    Part("missing", "kalman_filter_missing", "kalman_filter_missing(F, H, Q, R, x0, P0, y)",
         missing_cases, check=filter_check, returns=FILTER_RETURNS, arg_names=ARGS),
]
