"""Trusted check of ps05-em (see grader/spec.py for the contract).

The inputs are those of the notebook's visible tests plus those of its hidden
tests (same seeds, same order of random draws); the references come from one
or more iterations of kflib.em, computed here, in the grader's process, with
the tests' tolerances (EM runs a fixed number of iterations with tol=0, so
there is no stopping rule to allow for).

As in the hidden tests, every kflib function is switched off (an allow-list)
except the LinearGaussianSSM container, and in (c) kflib's E-step
(kalman_filter, rts_smoother) and models.local_level.
"""

from __future__ import annotations

import warnings

import numpy as np

import kflib
from kflib import LinearGaussianSSM, kalman_filter, rts_smoother
from kflib.exercise_cases import ps05_em, ps05_m_step_Q, ps05_m_step_R
from kflib.models import local_level

from ..spec import Case, Part, compare

ASSIGNMENT = "ps05-em"


def _em(y, start, n_iter, learn=("Q", "R")):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kflib.ConvergenceWarning)
        return kflib.em(y, start, n_iter=n_iter, tol=0.0, learn=learn)


def _random_problems(problems):
    """(y, start model, smoother output, label) for the (label, y, start) of kflib.exercise_cases."""
    return [(y, start, rts_smoother(start, kalman_filter(start, y)), f"random model with {label}")
            for label, y, start in problems]


# --------------------------------------------------------------------------
# (a) m_step_R(y, H, x_smooth, P_smooth) -> R


def r_cases():
    cases = [Case((np.array([[1.0], [3.0]]), np.array([[1.0]]), np.array([[0.0], [2.0]]),
                   np.array([[[0.5]], [[0.25]]])),
                  "the visible tests' two steps of a local level model",
                  {"R": np.array([[1.375]]), "rtol": 1e-9, "atol": 0.0}),
             Case((np.array([[2.5], [1.0], [1.5]]), np.array([[1.0, 2.0]]),
                   np.array([[1.0, 0.5], [2.0, -0.5], [0.0, 1.0]]),
                   np.array([[[1.0, 0.5], [0.5, 2.0]]] * 3)),
                  "the visible tests' two states, one sensor",
                  {"R": np.array([[11.0 + 1 / 6]]), "rtol": 1e-9, "atol": 0.0})]
    rng = np.random.default_rng(11)
    model = LinearGaussianSSM(F=[[0.9, 0.3], [0.0, 0.7]], H=[[1.0, 0.5]], Q=[[0.5, 0.1], [0.1, 0.3]],
                              R=[[2.0]], x0=[0.0, 0.0], P0=np.eye(2))
    _, y = kflib.simulate(model, 30, rng=rng)
    start = model.replace(R=[[1.0]])
    smooth = rts_smoother(start, kalman_filter(start, y))
    problems = [(y, start, smooth, "the visible tests' two-state model, against kflib.em", 0.0)]
    problems += [(*p, 1e-10) for p in _random_problems(ps05_m_step_R())]
    problems += [(y, start, sm, "another " + label, 1e-10) for y, start, sm, label in _random_problems(
        ps05_m_step_R(95101, [(2, 2, 15), (3, 2, 35)]))]    # a few more, the grader's own
    for y, start, smooth, label, rel in problems:
        want = _em(y, start, 1, learn=("R",)).model.R
        args = tuple(np.array(a, dtype=float) for a in (y, start.H, smooth.x_smooth, smooth.P_smooth))
        cases.append(Case(args, label, {"R": want, "rtol": 1e-7, "atol": rel * np.max(np.abs(want))}))
    return cases


def r_check(case, got):
    y, H, xs, Ps = case.args
    e = case.expect
    R = got.get("R")
    problems = compare("R", R, e["R"], rtol=e["rtol"], atol=e["atol"])
    if problems and R is not None and R.shape == e["R"].shape:
        T = len(y)
        resid = y - xs @ H.T
        no_P = resid.T @ resid / T
        close = lambda a: np.allclose(R, a, rtol=1e-6)     # noqa: E731
        if close(no_P) and not close(e["R"]):
            problems.append("the term H P_{t|T} H' is missing: the states are uncertain, so "
                            "E[(y_t - H x_t)(y_t - H x_t)'] = (y_t - H x_{t|T})(.)' + H P_{t|T} H'")
        elif T > 1 and close(e["R"] * T / (T - 1)):
            problems.append("divide by T, the number of observations, not by T - 1")
        elif H.shape[1] > 1 and close(
                no_P + np.einsum("ij,tjj,kj->ik", H, Ps, H) / T) and not close(e["R"]):
            problems.append("H P H' needs the off-diagonal covariances of P too")
    if R is not None and R.ndim == 2 and R.shape == (1, 1) and e["R"].shape != (1, 1):
        problems.append("R is (m, m): here y has more than one component")
    return problems


# --------------------------------------------------------------------------
# (b) m_step_Q(F, x_smooth, P_smooth, P_lag1, x0_smooth, P0_smooth) -> Q


def _q_variant(F, xs, Ps, L, x0s, P0s, *, cross=-1.0, divisor=None, first=True):
    """The M-step for Q with a typical mistake, for the hints."""
    x_prev = np.concatenate([x0s[None], xs[:-1]])
    P_prev = np.concatenate([P0s[None], Ps[:-1]])
    d = xs - x_prev @ F.T
    terms = np.einsum("ti,tj->tij", d, d) + Ps + cross * (F @ np.swapaxes(L, 1, 2) + L @ F.T) \
        + F @ P_prev @ F.T
    if not first:
        terms = terms[1:]
    return terms.sum(axis=0) / (divisor or len(xs))


def q_cases():
    F = np.array([[1.0]])
    x0s, P0s = np.array([0.0]), np.array([[1.0]])
    xs = np.array([[1.0], [1.5]])
    Ps = np.array([[[0.5]], [[0.4]]])
    L = np.array([[[0.3]], [[0.2]]])
    cases = [Case((F, xs, Ps, L, x0s, P0s), "the visible tests' one state, F = 1, T = 2",
                  {"Q": np.array([[1.325]]), "rtol": 1e-9, "atol": 0.0}),
             Case((np.array([[0.5]]), xs, Ps, L, x0s, P0s), "the visible tests' one state, F = 0.5, T = 2",
                  {"Q": np.array([[1.3875]]), "rtol": 1e-9, "atol": 0.0})]
    rng = np.random.default_rng(12)
    model = LinearGaussianSSM(F=[[0.9, 0.3], [-0.1, 0.7]], H=[[1.0, 0.0], [0.5, 1.0]],
                              Q=[[0.5, 0.1], [0.1, 0.3]], R=[[1.0, 0.2], [0.2, 0.6]],
                              x0=[1.0, -1.0], P0=np.eye(2))
    _, y = kflib.simulate(model, 40, rng=rng)
    start = model.replace(Q=np.eye(2))
    smooth = rts_smoother(start, kalman_filter(start, y))
    problems = [(y, start, smooth, "the visible tests' two-state model, against kflib.em", 0.0)]
    problems += [(*p, 1e-10) for p in _random_problems(ps05_m_step_Q())]
    problems += [(y, start, sm, "another " + label, 1e-10) for y, start, sm, label in _random_problems(
        ps05_m_step_Q(95202, [(2, 2, 20), (3, 1, 25)]))]    # a few more, the grader's own
    for y, start, sm, label, rel in problems:
        want = _em(y, start, 1, learn=("Q",)).model.Q
        args = tuple(np.array(a, dtype=float) for a in
                     (start.F, sm.x_smooth, sm.P_smooth, sm.P_lag1, sm.x0_smooth, sm.P0_smooth))
        cases.append(Case(args, label, {"Q": want, "rtol": 1e-7, "atol": rel * np.max(np.abs(want))}))
    return cases


def q_check(case, got):
    F, xs, Ps, L, x0s, P0s = case.args
    e = case.expect
    Q = got.get("Q")
    problems = compare("Q", Q, e["Q"], rtol=e["rtol"], atol=e["atol"])
    if problems and Q is not None and Q.shape == e["Q"].shape:
        T = len(xs)
        close = lambda a: np.allclose(Q, a, rtol=1e-6)     # noqa: E731
        for kw, hint in [
                ({"cross": 0.0}, "that is the 'simplified' update: it drops the cross terms "
                                 "- F P_lag1[t-1]' - P_lag1[t-1] F'. Consecutive states are correlated "
                                 "given the data; keep the cross terms"),
                ({"cross": 1.0}, "the cross terms are subtracted: - F P_{t,t-1}' - P_{t,t-1} F'"),
                ({"divisor": T - 1} if T > 1 else None,
                 "divide by T, the number of transitions (x_0 -> x_1 counts), not by T - 1"),
                ({"first": False}, "the first transition x_0 -> x_1 is missing: the sum runs over "
                                   "t = 1..T and its first term uses x0_smooth, P0_smooth and P_lag1[0]"),
                ({"first": False, "divisor": T - 1} if T > 1 else None,
                 "the first transition x_0 -> x_1 is missing: the sum runs over t = 1..T and its first "
                 "term uses x0_smooth, P0_smooth and P_lag1[0]")]:
            if kw is None:
                continue
            wrong = _q_variant(F, xs, Ps, L, x0s, P0s, **kw)
            if close(wrong) and not close(e["Q"]):
                problems.append(hint)
                break
        else:
            if not np.allclose(Q, Q.T):
                problems.append("Q must be symmetric: check the matrix products, d_t d_t' (an outer "
                                "product), F P_{t-1|T} F' and the cross terms F L' + L F'")
    return problems


# --------------------------------------------------------------------------
# (c) em_local_level(y, q0, r0, x0, P0, n_iter) -> (q, r, loglik_history)


def _em_case(y, q0, r0, x0, P0, n_iter, label):
    ref = _em(y, local_level(q0, r0, x0=x0, P0=P0), n_iter)
    expect = {"q": ref.model.Q[0, 0], "r": ref.model.R[0, 0], "history": ref.loglik_history}
    return Case((np.array(y, dtype=float), float(q0), float(r0), float(x0), float(P0), int(n_iter)),
                label, expect)


def em_cases():
    rng = np.random.default_rng(13)
    y = np.cumsum(rng.normal(size=40)) + 2.0 * rng.normal(size=40)
    cases = [_em_case(y, 0.5, 2.0, y[0], 1e4, n, f"the visible tests' series, {n} "
                                                 f"iteration{'s' if n > 1 else ''}") for n in (1, 10)]
    for found, kind in [(ps05_em(), "a random"),
                        (ps05_em(95303, [(30, 4), (45, 7)]), "another random")]:    # the grader's own
        for label, args in found:
            cases.append(_em_case(*args, f"{kind} series, {label}"))
    return cases


def em_check(case, got):
    y, q0, r0, x0, P0, n_iter = case.args
    e = case.expect
    problems = []
    values = {}
    for name in ("q", "r"):
        v = got.get(name)
        if v is None:
            problems.append(f"{name} is missing")
        elif v.size != 1:
            problems.append(f"{name} must be a number; it has shape {v.shape}")
        else:
            values[name] = float(v.reshape(()))
            problems += compare(name, values[name], e[name], rtol=1e-7)
    hist = got.get("history")
    problems += compare("loglik_history", hist, e["history"], rtol=1e-9)
    if problems:
        T = len(y)
        if len(values) == 2 and np.isclose(values["q"] / e["q"], T / (T - 1), rtol=1e-6) \
                and np.isclose(values["r"] / e["r"], T / (T - 1), rtol=1e-6):
            problems.append("divide by T, not T - 1: there are T transitions (from x_0) and "
                            "T observations")
        elif "q" in values and values["q"] > 1.5 * e["q"]:
            problems.append("q is far too large: did you drop the cross term - 2 P_{t,t-1|T}? "
                            "(the simplified update)")
        if hist is not None and hist.shape == (n_iter,):
            problems.append("loglik_history holds n_iter + 1 values: the log-likelihood of the "
                            "starting values, then the one after each iteration")
        elif hist is not None and hist.shape == e["history"].shape:
            start = e["history"][0]
            if not np.isclose(hist[0], start, rtol=1e-9):
                problems.append("loglik_history[0] is the log-likelihood of the starting values "
                                "q0, r0 (with x0 and P0 describing the level at time 0)")
            if np.any(np.diff(hist) < -1e-9 * np.abs(hist[:-1])):
                problems.append("the log-likelihood went down during EM, which an exact EM step never does")
    return problems


PARTS = [
    Part("m_step_R", "m_step_R", "m_step_R(y, H, x_smooth, P_smooth)",
         r_cases, check=r_check, returns="R", arg_names=("y", "H", "x_smooth", "P_smooth")),
    Part("m_step_Q", "m_step_Q", "m_step_Q(F, x_smooth, P_smooth, P_lag1, x0_smooth, P0_smooth)",
         q_cases, check=q_check, returns="Q",
         arg_names=("F", "x_smooth", "P_smooth", "P_lag1", "x0_smooth", "P0_smooth")),
    Part("em_local_level", "em_local_level", "em_local_level(y, q0, r0, x0, P0, n_iter)",
         em_cases, check=em_check, returns=("q", "r", "history"),
         arg_names=("y", "q0", "r0", "x0", "P0", "n_iter")),
]
