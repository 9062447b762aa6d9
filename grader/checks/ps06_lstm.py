"""Trusted check of ps06-lstm (see grader/spec.py for the contract).

Inputs: those of the notebook's visible tests and of its hidden tests (same
seeds, same order of random draws); references from kflib in the grader's
process. Like the hidden tests, every kflib function -- and every method of
kflib's classes, so every estimator (torch module) of kflib.learned -- is
switched off while the student's functions run (an allow-list that allows nothing).

What the sandbox can be asked, and how each part uses it:

(a) ``nll_and_gradient(y, q, r, x0, P0)`` takes plain numbers and returns
    three floats, the value and the autograd gradient of ``scalar_kf_nll``;
    they are compared with kflib's -log L and with central differences of it.
    ``scalar_kf_nll`` itself takes tensors that require gradients, which plain
    arguments cannot be, so it is checked only through ``nll_and_gradient``.
(b) ``train_filter(seed)`` returns a torch module. Its converter runs the
    module, in the sandbox, on held-out sequences that it draws itself from
    fixed seeds (it sees only the return value, not the case), and returns the
    estimates; the grader draws the same sequences, runs kflib's filter on
    them and compares the mean squared errors. A converter has no other way
    to get inputs, so it imports torch (already loaded by the notebook).
(c) ``mse_floors(q, r)`` against kflib.steady_state and the smoother's fixed
    point.
(d) ``quiz_answers()`` returns a dict of letters, sent back as their indices
    (a -> 0, ...).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg

import kflib
from kflib.exercise_cases import ps06_floors, ps06_held_out, ps06_nll
from kflib.models import local_level

from ..spec import Case, Keys, Part, compare

ASSIGNMENT = "ps06-lstm"
RATIO_MAX = 1.10                    # held-out MSE / the Kalman filter's, as in the notebook


# --------------------------------------------------------------------------
# (a) nll_and_gradient(y, q, r, x0, P0) -> (nll, dnll_dq, dnll_dr)


def _minus_loglik(y, q, r, x0, P0):
    return -kflib.kalman_filter(local_level(q, r, x0=x0, P0=P0), np.asarray(y, dtype=float)[:, None]).loglik


def _nll_case(y, q, r, x0, P0, label):
    right = _minus_loglik(y, q, r, x0, P0)
    hq, hr = 1e-5 * q, 1e-5 * r
    dq = (_minus_loglik(y, q + hq, r, x0, P0) - _minus_loglik(y, q - hq, r, x0, P0)) / (2 * hq)
    dr = (_minus_loglik(y, q, r + hr, x0, P0) - _minus_loglik(y, q, r - hr, x0, P0)) / (2 * hr)
    return Case((np.array(y, dtype=float), float(q), float(r), float(x0), float(P0)), label,
                {"nll": right, "dnll_dq": dq, "dnll_dr": dr})


def nll_cases():
    cases = [_nll_case(np.array([0.8, -0.3, 1.9, 2.6, 1.4, 3.1]), 1.0, 1.0, 0.0, 0.0,
                       "the first example of the visible tests")]
    rng = np.random.default_rng(6100)
    q, r, P0 = 0.5, 2.0, 1.5
    x = math.sqrt(P0) * rng.normal() + np.cumsum(rng.normal(scale=math.sqrt(q), size=25))
    y = x + rng.normal(scale=math.sqrt(r), size=25)
    cases.append(_nll_case(y, q, r, 0.0, P0, "the second example of the visible tests"))
    cases += [_nll_case(*args, label) for label, args in ps06_nll()]     # the hidden tests'
    return cases


def nll_check(case, got):
    y, q, r, x0, P0 = case.args
    e = case.expect
    problems = compare("nll", got.get("nll"), e["nll"], rtol=1e-10, atol=1e-12)
    if problems and got.get("nll") is not None and np.isclose(got["nll"], -e["nll"], rtol=1e-9):
        problems.append("this is log L; return the negative log-likelihood -log L")
    problems += compare("dnll_dq", got.get("dnll_dq"), e["dnll_dq"], rtol=1e-5,
                        atol=1e-7 * (1 + abs(e["nll"])) / q)
    problems += compare("dnll_dr", got.get("dnll_dr"), e["dnll_dr"], rtol=1e-5,
                        atol=1e-7 * (1 + abs(e["nll"])) / r)
    return problems


# --------------------------------------------------------------------------
# (b) train_filter(seed) -> a trained torch module


HELD_OUT = (("est50", 60601, 500, 50), ("est20", 60602, 500, 20), ("single", 60603, 1, 50))
PROBE_SEED, PROBE_SPLIT = 60604, 30


def _draw(seed, n_seq, T):
    """Held-out states and measurements (q = r = 1, x0 = 0), as the hidden tests draw theirs
    (other seeds): learned_to_plain, which has no kflib.exercise_cases in the sandbox, draws
    the same."""
    _, x, y = ps06_held_out([(seed, n_seq, T)])[0]
    return x, y


def learned_cases():
    return [Case((1,), "trained with the visible tests' seed"),
            Case((2,), "trained with the hidden tests' seed")]


def learned_to_plain(net):
    import torch

    if not callable(net):
        raise TypeError(f"train_filter must return the trained network; it returned {type(net).__name__}")

    def draw(seed, n_seq, T):
        rng = np.random.default_rng(seed)
        x = np.cumsum(rng.normal(size=(n_seq, T, 1)), axis=1)
        y = x + rng.normal(size=(n_seq, T, 1))
        return x, y

    def run(y):
        with torch.no_grad():
            out = net(torch.tensor(y, dtype=torch.float32))
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"net(y) must return a torch tensor; it returned {type(out).__name__}")
        return out.detach().double().cpu().numpy()

    plain = {}
    for name, seed, n_seq, T in (("est50", 60601, 500, 50), ("est20", 60602, 500, 20),
                                 ("single", 60603, 1, 50)):
        plain[name] = run(draw(seed, n_seq, T)[1])
    # a filter: changing the measurements after step 30 must leave steps 1 to 30 alone
    _, y = draw(60604, 8, 50)
    y_late = y.copy()
    y_late[:, 30:] += 5.0 * np.random.default_rng(60605).normal(size=(8, 20, 1))
    plain["probe"] = run(y)
    plain["probe_late"] = run(y_late)
    return plain


def learned_check(case, got):
    problems = []
    model = local_level(1.0, 1.0, x0=0.0, P0=0.0)
    for name, seed, n_seq, T in HELD_OUT:
        est = got.get(name)
        if est is None or est.shape != (n_seq, T, 1):
            problems.append(f"net(y) for y of shape {(n_seq, T, 1)} must have that shape"
                            + ("" if est is None else f"; it has shape {est.shape}"))
            continue
        if not np.isfinite(est).all():
            problems.append(f"net(y) contains NaN or infinity (y of shape {(n_seq, T, 1)})")
            continue
        if n_seq > 1:
            x, y = _draw(seed, n_seq, T)
            ratio = np.mean((est - x) ** 2) / np.mean((kflib.kalman_filter(model, y).x_filt - x) ** 2)
            if not ratio <= RATIO_MAX:
                problems.append(f"on held-out sequences of {T} steps the MSE is {ratio:.3f} times the "
                                f"Kalman filter's; full marks need at most {RATIO_MAX:.2f}")
    before, after = got.get("probe"), got.get("probe_late")
    if before is None or after is None or before.shape != (8, 50, 1) or after.shape != (8, 50, 1):
        problems.append("net(y) for y of shape (8, 50, 1) must have that shape")
    elif not np.allclose(before[:, :PROBE_SPLIT], after[:, :PROBE_SPLIT], rtol=1e-4, atol=1e-4):
        problems.append("the estimates of steps 1 to 30 change when only later measurements change: "
                        "a filter may use y_1, ..., y_t only")
    return problems


# --------------------------------------------------------------------------
# (c) mse_floors(q, r) -> (P_pred, P_filt, P_smooth)


def floors_cases():
    pairs = [((1.0, 1.0), "q = r = 1, as in the visible tests"),
             ((2.5, 2.5), "q = r = 2.5, as in the visible tests")]
    pairs += [(args, label) for label, args in ps06_floors()]          # the hidden tests'
    cases = []
    for (q, r), label in pairs:
        P_pred, _, P_filt = (float(a[0, 0]) for a in kflib.steady_state(local_level(q, r)))
        G = P_filt / P_pred
        P_smooth = float(scipy.linalg.solve_discrete_lyapunov(
            np.array([[G]]), np.array([[P_filt - G * P_pred * G]]))[0, 0])
        cases.append(Case((q, r), label, {"P_pred": P_pred, "P_filt": P_filt, "P_smooth": P_smooth}))
    return cases


def floors_check(case, got):
    problems = []
    for name in ("P_pred", "P_filt", "P_smooth"):
        value = got.get(name)
        if value is None or value.size != 1:
            problems.append(f"{name} must be one number")
            continue
        problems += compare(name, value.reshape(()), case.expect[name], rtol=1e-8)
    return problems


# --------------------------------------------------------------------------
# (d) quiz_answers() -> {"q1": letter, ..., "q4": letter}

QUIZ_KEYS = ("q1", "q2", "q3", "q4")
QUIZ_RIGHT = {"q1": "d", "q2": "c", "q3": "a", "q4": "b"}


def quiz_cases():
    return [Case((), "the four questions", {k: "abcd".index(QUIZ_RIGHT[k]) for k in QUIZ_KEYS})]


def quiz_check(case, got):
    # the dict's keys and that each answer is a letter are checked in the sandbox (Keys)
    answers = [got.get(k) for k in QUIZ_KEYS]
    if any(a is None or a.size != 1 for a in answers):
        return ["the answers could not be read"]
    if any(not 0 <= a.item() < 4 for a in answers):
        return ["each answer must be one of the letters 'a', 'b', 'c', 'd'"]
    if any(a.item() != case.expect[k] for k, a in zip(QUIZ_KEYS, answers)):
        return ["one or more answers are wrong"]
    return []


PARTS = [
    Part("nll", "nll_and_gradient", "nll_and_gradient(y, q, r, x0, P0)", nll_cases, check=nll_check,
         returns=("nll:number", "dnll_dq:number", "dnll_dr:number"), arg_names=("y", "q", "r", "x0", "P0")),
    Part("learned", "train_filter", "train_filter(seed)", learned_cases, learned_to_plain,
         learned_check, arg_names=("seed",)),
    Part("floors", "mse_floors", "mse_floors(q, r)", floors_cases, check=floors_check,
         returns=("P_pred:number", "P_filt:number", "P_smooth:number"), arg_names=("q", "r")),
    Part("quiz", "quiz_answers", "quiz_answers()", quiz_cases, check=quiz_check,
         returns=Keys(*(f"{k}:letter" for k in QUIZ_KEYS))),
]
