"""Trusted check of ps03-gain (see grader/spec.py for the contract).

The inputs are those of the notebook's visible tests plus those of its hidden
tests (same seeds, same order of random draws), so that the trusted check and
nbgrader agree on every honest submission; the references come from kflib,
computed here, in the grader's process, with the hidden tests' tolerances.

Like the hidden tests, every kflib function except the LinearGaussianSSM
container is switched off (an allow-list), and scipy's DARE solver too in (a),
(b) and (c); (d) and (e) may use scipy.linalg.solve_discrete_are (the rules are
kflib.testing.EXERCISES). Part (d) is one answer cell with two functions,
ewma_weight and steady_filter: its cases call one or the other.
"""

from __future__ import annotations

import numpy as np

import kflib
from kflib import LinearGaussianSSM
from kflib.exercise_cases import ps03_ewma, ps03_ll, ps03_projection, ps03_riccati, ps03_steady
from kflib.models import local_level

from ..spec import Case, Part, compare

ASSIGNMENT = "ps03-gain"

GOLDEN = (1 + np.sqrt(5)) / 2


def _number(got, name):
    """The single number in got[name], or a problem."""
    value = got.get(name)
    if value is None:
        return None, f"{name} is missing"
    if value.size != 1:
        return None, f"{name} must be a number; it has shape {value.shape}"
    return float(value.reshape(())), None


def _numbers(got, names, want, rtol, atol=0.0):
    problems = []
    for name in names:
        value, problem = _number(got, name)
        if problem:
            problems.append(problem)
        else:
            problems += compare(name, value, want[name], rtol=rtol, atol=atol)
    return problems


# --------------------------------------------------------------------------
# (a) local_level_steady_state(q, r) -> (P_pred, K, P_filt)

LL_NAMES = ("P_pred", "K", "P_filt")


def _ll_reference(q, r):
    return dict(zip(LL_NAMES, (float(a[0, 0]) for a in kflib.steady_state(local_level(q, r)))))


def ll_cases():
    cases = []
    # the visible tests: closed forms, rtol 1e-9
    P = 1 + np.sqrt(3)
    visible = [((1.0, 1.0), {"P_pred": GOLDEN, "K": 1 / GOLDEN, "P_filt": 1 / GOLDEN},
                "the visible tests' q = r = 1"),
               ((2.0, 1.0), {"P_pred": P, "K": P / (P + 1), "P_filt": P - 2.0},
                "the visible tests' q = 2, r = 1")]
    for args, expect, label in visible:
        cases.append(Case(args, label, {"want": expect, "rtol": 1e-9}))
    for q, r, label in [(1.0, 10.0, "the visible tests' noisier sensor (q = 1, r = 10)"),
                        (3.0, 3.0, "the visible tests' q = r = 3")]:
        cases.append(Case((q, r), label, {"want": _ll_reference(q, r), "rtol": 1e-8}))
    # the hidden tests', and a few more, the grader's own
    inputs = ps03_ll() + [(f"more random q and r ({k + 1} of 3)", args)
                          for k, (_, args) in enumerate(ps03_ll(93101, fixed=(), n_random=3))]
    for label, (q, r) in inputs:
        cases.append(Case((q, r), label, {"want": _ll_reference(q, r), "rtol": 1e-8}))
    return cases


def ll_check(case, got):
    q, r = case.args
    want, rtol = case.expect["want"], case.expect["rtol"]
    problems = _numbers(got, LL_NAMES, want, rtol)
    if not problems:
        return problems
    P, _ = _number(got, "P_pred")
    K, _ = _number(got, "K")
    P_filt, _ = _number(got, "P_filt")
    P_ref = want["P_pred"]
    if P is not None and P <= 0:
        problems.append("P_pred must be positive: P^2 = q (P + r) has one positive and one "
                        "negative root; take P = (q + sqrt(q^2 + 4 q r)) / 2")
    elif P is not None and np.isclose(P, want["P_filt"], rtol=1e-6):
        problems.append("P_pred is the predicted variance, P_filt + q; the tuple is (P_pred, K, P_filt)")
    elif P is not None and not np.isclose(r, 1.0) and np.isclose(P * r, P_ref, rtol=1e-6):
        problems.append("P_pred scales with r: with p = P / r from the scaled equation, "
                        "P_pred = r p (and P_filt too)")
    elif P is not None and not np.isclose(q, r) and np.isclose(
            P, (r + np.sqrt(r * r + 4 * q * r)) / 2, rtol=1e-6):
        problems.append("q and r are swapped: q is the level's noise, r the sensor's")
    if K is not None and P is not None and np.isclose(K, P / r, rtol=1e-6) and not np.isclose(
            K, P / (P + r), rtol=1e-6):
        problems.append("K = P / (P + r), not P / r")
    if P_filt is not None and K is not None and P is not None and np.isclose(P_filt, K * P, rtol=1e-6) \
            and not np.isclose(K * P, (1 - K) * P, rtol=1e-6):
        problems.append("P_filt = (1 - K) P, not K P")
    return problems


# --------------------------------------------------------------------------
# (b) riccati_iterate(F, H, Q, R, P0, n_steps) -> (P_pred, K)


def _riccati_reference(F, H, Q, R, P0, T):
    n, m = F.shape[0], H.shape[0]
    ref = kflib.kalman_filter(LinearGaussianSSM(F, H, Q, R, np.zeros(n), P0), np.zeros((T, m)))
    return {"P_pred": ref.P_pred, "K": ref.K}


def riccati_cases():
    one, zero = np.ones((1, 1)), np.zeros((1, 1))
    F = np.array([[1.0, 1.0], [0.0, 1.0]])
    H = np.array([[1.0, 0.0]])
    Q = np.array([[1 / 3, 1 / 2], [1 / 2, 1.0]])
    R = np.array([[2.0]])
    P0 = np.array([[1.0, 0.5], [0.5, 2.0]])
    inputs = [((one, one, one, one, zero, 3), "the visible tests' local level model, 3 steps"),
              ((one, one, one, one, zero, 40), "the visible tests' local level model, 40 steps"),
              ((F, H, Q, R, P0, 6), "the visible tests' constant-velocity model")]
    inputs += [(args, f"random model with {label}") for label, args in ps03_riccati()]
    inputs += [(args, f"another random model with {label}")       # a few more, the grader's own
               for label, args in ps03_riccati(93202, dims=[(2, 2, 10), (3, 1, 30)])]
    return [Case(args, label, _riccati_reference(*args)) for args, label in inputs]


def riccati_check(case, got):
    F, H, Q, R, P0, T = case.args
    e = case.expect
    problems = []
    for name in ("P_pred", "K"):
        problems += compare(name, got.get(name), e[name], rtol=1e-7,
                            atol=1e-9 * np.max(np.abs(e[name])))
    P, K = got.get("P_pred"), got.get("K")
    if problems and P is not None and P.shape == e["P_pred"].shape:
        if np.allclose(P[0], P0) and not np.allclose(P0, e["P_pred"][0]):
            problems.append("P_pred[0] must be P_{1|0} = F P0 F' + Q, not P0: the first step predicts")
        elif np.allclose(P[0], F.T @ P0 @ F + Q) and not np.allclose(F.T @ P0 @ F, F @ P0 @ F.T):
            problems.append("P_{1|0} = F P0 F' + Q, not F' P0 F + Q")
    if K is not None and K.shape != e["K"].shape and K.shape == np.swapaxes(e["K"], 1, 2).shape:
        problems.append("K_t = P H' S^{-1} has shape (n, m): K must have shape (n_steps, n, m)")
    return problems


# --------------------------------------------------------------------------
# (c) steady_gain(F, H, Q, R, tol=1e-10) -> (P, K)


def _dare_residual(F, H, Q, R, P):
    """Largest entry of F P F' - F P H' S^{-1} H P F' + Q - P, relative to P: the filter's
    Riccati equation (the visible tests' check)."""
    S = H @ P @ H.T + R
    rhs = F @ P @ F.T - F @ P @ H.T @ np.linalg.solve(S, H @ P @ F.T) + Q
    return np.max(np.abs(rhs - P)) / np.max(np.abs(P))


def _control_residual(F, H, Q, R, P):
    """The same for the control Riccati equation (scipy's convention, F' P F)."""
    S = H @ P @ H.T + R
    rhs = F.T @ P @ F - F.T @ P @ H.T @ np.linalg.solve(S, H @ P @ F) + Q
    return np.max(np.abs(rhs - P)) / np.max(np.abs(P))


def steady_cases():
    cases = []
    one = np.ones((1, 1))
    cases.append(Case((one, one, one, one), "the visible tests' local level model (q = r = 1)",
                      {"visible": "golden"}, kwargs={"tol": 1e-10}))
    F = np.array([[1.0, 1.0], [0.0, 1.0]])
    H = np.array([[1.0, 0.0]])
    Q = np.array([[1 / 3, 1 / 2], [1 / 2, 1.0]])
    R = np.array([[1.0]])
    cases.append(Case((F, H, Q, R), "the visible tests' constant-velocity model",
                      {"visible": "residual"}, kwargs={"tol": 1e-10}))
    inputs = ps03_steady() + [("another " + label, args)        # a few more, the grader's own
                              for label, args in ps03_steady(93303, dims=[(2, 1), (3, 3)], slow=False)]
    for label, (F, H, Q, R) in inputs:
        P, K, _ = kflib.steady_state(LinearGaussianSSM(F, H, Q, R, np.zeros(len(F)), np.eye(len(F))))
        cases.append(Case((F, H, Q, R), label, {"P": P, "K": K}, kwargs={"tol": 1e-10}))
    return cases


def steady_check(case, got):
    F, H, Q, R = case.args
    n, m = F.shape[0], H.shape[0]
    P, K = got.get("P"), got.get("K")
    problems = []
    if P is None or P.shape != (n, n):
        problems.append("P is missing" if P is None else
                        f"P has shape {P.shape}; it should have shape {(n, n)}")
    if K is None or K.shape != (n, m):
        problems.append("K is missing" if K is None else
                        f"K has shape {K.shape}; it should have shape {(n, m)}")
    if problems:
        return problems
    if not (np.all(np.isfinite(P)) and np.all(np.isfinite(K))):
        return ["P or K contains NaN or infinity"]
    kind = (case.expect or {}).get("visible")
    if kind == "golden":
        # the visible tests: rtol 1e-6 against the closed form of (a)
        problems += compare("P", P, [[GOLDEN]], rtol=1e-6)
        problems += compare("K", K, [[1 / GOLDEN]], rtol=1e-6)
        if problems and np.isclose(P[0, 0], 1 / GOLDEN, rtol=1e-4):
            problems.append("that P is the filtered variance P_{t|t}: return the predicted "
                            "covariance P = P_{t+1|t}, the solution of the DARE")
        return problems
    if kind == "residual":
        # the visible tests: P symmetric, a solution of the filter's DARE, K from P
        if not np.allclose(P, P.T):
            return ["P must be symmetric"]
        residual = _dare_residual(F, H, Q, R, P)
        if residual >= 1e-6:
            problems.append(f"P does not solve the filter's Riccati equation (relative residual "
                            f"{residual:.1e}): P = F P F' - F P H' S^-1 H P F' + Q")
            if _control_residual(F, H, Q, R, P) < 1e-6:
                problems.append("that P solves the control Riccati equation (scipy's convention, "
                                "F' P F); the filter's has F P F'")
            return problems
        S = H @ P @ H.T + R
        return compare("K", K, P @ H.T / S[0, 0], rtol=1e-6)
    # the hidden tests: generous, a stopping rule on one step's change stops at some
    # distance from the limit, larger when the recursion converges slowly
    e = case.expect
    problems += compare("P", P, e["P"], rtol=1e-4, atol=1e-7 * np.max(np.abs(e["P"])))
    problems += compare("K", K, e["K"], rtol=1e-4, atol=1e-7 * np.max(np.abs(e["K"])))
    if problems:
        if _dare_residual(F, H, Q, R, P) > 1e-6 and not np.allclose(F, F.T) \
                and _control_residual(F, H, Q, R, P) < 1e-8:
            problems.append("that P solves the control Riccati equation (scipy's convention, "
                            "F' P F); the filter's has F P F'")
        elif np.allclose(P, P.T) and _dare_residual(F, H, Q, R, P) > 1e-8:
            problems.append("P is not yet a fixed point of the Riccati recursion: iterate until it "
                            "stops changing (when q is small next to r the recursion converges "
                            "slowly and needs many steps)")
    return problems


# --------------------------------------------------------------------------
# (d) ewma_weight(q, r) -> alpha and steady_filter(y, q, r, x0) -> x


def _alpha(q, r):
    return float(kflib.steady_state(local_level(q, r))[1][0, 0])


def _steady_filter_reference(y, q, r, x0):
    _, K, P_filt = kflib.steady_state(local_level(q, r))
    return kflib.kalman_filter(local_level(q, r, x0=x0, P0=P_filt[0, 0]), y[:, None]).x_filt[:, 0]


def ewma_cases():
    cases = []
    # the visible tests
    for q, r, label in [(1.0, 1.0, "q = r = 1"), (1.0, 10.0, "q = 1, r = 10"),
                        (0.05, 1.0, "q = 0.05, r = 1"), (2.0, 0.5, "q = 2, r = 0.5"),
                        (0.2, 3.0, "q = 0.2, r = 3")]:
        cases.append(Case((q, r), f"ewma_weight, the visible tests' {label}",
                          {"alpha": _alpha(q, r), "rtol": 1e-9}, function="ewma_weight"))
    for y, q, r, x0, label in [(np.zeros(5), 1.0, 1.0, 1.0, "decay (y = 0, x0 = 1)"),
                               (np.ones(8), 1.0, 1.0, 0.0, "step (y = 1, x0 = 0)"),
                               (np.array([4.0, 7.0, 6.5]), 0.2, 3.0, 5.0, "first steps by hand")]:
        cases.append(Case((y, q, r, x0), f"steady_filter, the visible tests' {label}",
                          {"x": _steady_filter_reference(y, q, r, x0), "rtol": 1e-9, "atol": 0.0},
                          function="steady_filter"))
    # the hidden tests', and a few more, the grader's own
    series = ps03_ewma() + [(f"another series of T={len(args[0])} ({k + 1} of 2)", args) for k, (_, args)
                            in enumerate(ps03_ewma(93404, fixed=(), n_random=2, lengths=(20, 300)))]
    for label, (y, q, r, x0) in series:
        cases.append(Case((q, r), f"ewma_weight, {label}", {"alpha": _alpha(q, r), "rtol": 1e-8},
                          function="ewma_weight"))
        scale = 1.0 + np.max(np.abs(y)) + abs(x0)
        cases.append(Case((y, q, r, x0), f"steady_filter, {label}",
                          {"x": _steady_filter_reference(y, q, r, x0), "rtol": 1e-7,
                           "atol": 1e-9 * scale}, function="steady_filter"))
    return cases


def ewma_check(case, got):
    e = case.expect
    if case.function == "ewma_weight":
        q, r = case.args
        value, problem = _number(got, "alpha")
        if problem:
            return [problem]
        problems = compare("alpha", value, e["alpha"], rtol=e["rtol"])
        if problems and np.isclose(value, 1 - e["alpha"], rtol=1e-6):
            problems.append("alpha is the weight of the NEW observation y_t, that is K, "
                            "not 1 - K (the weight of the old estimate)")
        return problems
    y, q, r, x0 = case.args
    x = got.get("x")
    problems = compare("x", x, e["x"], rtol=e["rtol"], atol=e["atol"])
    if problems and x is not None and x.shape == e["x"].shape:
        if not np.all(np.isfinite(x)):
            problems.append("a closed-form sum with (1 - alpha)^(-t) overflows on long series: "
                            "use the recursion x_t = (1 - alpha) x_{t-1} + alpha y_t")
        elif len(y) > 1 and np.isclose(x[0], x0) and not np.isclose(e["x"][0], x0):
            problems.append("x[0] must be x_{1|1} = (1 - alpha) x0 + alpha y_1, not x0: "
                            "the output starts at time 1")
    return problems


# --------------------------------------------------------------------------
# (e) perfect_sensor_projection(P, H) -> Pi


def _projection_reference(P, H):
    n, m = P.shape[0], H.shape[0]
    exact = LinearGaussianSSM(np.eye(n), H, np.zeros((n, n)), np.zeros((m, m)), np.zeros(n), P)
    return kflib.kalman_filter(exact, np.zeros((1, m))).K[0] @ H


def projection_cases():
    inputs = [((np.array([[4.0, 2.0], [2.0, 3.0]]), np.array([[1.0, 0.0]])),
               "the visible tests' position and velocity"),
              ((np.array([[2.0, 0.5, 0.3], [0.5, 1.0, -0.4], [0.3, -0.4, 1.5]]),
                np.array([[1.0, 0.0, 1.0], [0.0, 2.0, -1.0]])),
               "the visible tests' two measurements of three states")]
    inputs += [(args, f"random P and H with {label}") for label, args in ps03_projection()]
    inputs += [(args, f"another random P and H with n={args[0].shape[0]}, m={args[1].shape[0]}")
               for _, args in ps03_projection(93505, dims=[(3, 2), (5, 3)], scales=())]   # the grader's own
    return [Case(args, label, _projection_reference(*args)) for args, label in inputs]


def projection_check(case, got):
    P, H = case.args
    want = case.expect
    Pi = got.get("Pi")
    problems = compare("Pi", Pi, want, rtol=1e-6, atol=1e-8 * np.max(np.abs(want)))
    if problems and Pi is not None and Pi.shape == want.shape:
        if np.allclose(Pi, np.linalg.pinv(H) @ H):
            problems.append("that is pinv(H) H, the orthogonal projection of the pitfall: the limit "
                            "K0 = P H' (H P H')^{-1} depends on P")
        elif not np.allclose(H @ Pi, H, atol=1e-6 * np.max(np.abs(H))):
            problems.append("H Pi must equal H: after the update the measured combinations H x "
                            "equal their measured values")
    if Pi is not None and Pi.shape == (want.shape[1], want.shape[0]) and Pi.shape != want.shape:
        problems.append("Pi = K0 H has shape (n, n)")
    return problems


PARTS = [
    Part("ll_steady", "local_level_steady_state", "local_level_steady_state(q, r)",
         ll_cases, check=ll_check, returns=LL_NAMES),
    Part("riccati", "riccati_iterate", "riccati_iterate(F, H, Q, R, P0, n_steps)",
         riccati_cases, check=riccati_check, returns=("P_pred", "K"),
         arg_names=("F", "H", "Q", "R", "P0", "n_steps")),
    Part("steady_gain", "steady_gain", "steady_gain(F, H, Q, R, tol)",
         steady_cases, check=steady_check, returns=("P", "K"),
         arg_names=("F", "H", "Q", "R")),
    Part("ewma", "ewma_weight", "ewma_weight(q, r) and steady_filter(y, q, r, x0)",
         ewma_cases, check=ewma_check, returns={"ewma_weight": "alpha", "steady_filter": "x"},
         arg_names=("y", "q", "r", "x0")),
    Part("projection", "perfect_sensor_projection", "perfect_sensor_projection(P, H)",
         projection_cases, check=projection_check, returns="Pi", arg_names=("P", "H")),
]
