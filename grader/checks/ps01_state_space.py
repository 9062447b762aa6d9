"""Trusted check of ps01-state-space (see grader/spec.py for the contract).

The inputs are those of the notebook's visible tests plus those of its hidden
tests (same seeds), so that the trusted check and nbgrader agree on every
honest submission; the references come from kflib, computed here, in the
grader's process. What each function returns is declared (`returns=`); the
sandbox turns it into plain arrays with the converter generated from that.
"""

from __future__ import annotations

import numpy as np

import kflib
import kflib.models
from kflib import LinearGaussianSSM
from kflib.exercise_cases import ps01_arima, ps01_cv, ps01_prior, ps01_simulate

from ..spec import Attrs, Case, Part, compare


ASSIGNMENT = "ps01-state-space"


# --------------------------------------------------------------------------
# (a) constant_velocity_model(dt, q, r) -> (F, H, Q, R)


def cv_cases():
    params = [(0.5, 2.0, 3.0, "the example of the visible tests")]
    params += [(*args, label) for label, args in ps01_cv()]
    cases = []
    for dt, q, r, label in params:
        ref = kflib.models.constant_velocity(dt, q, r)
        cases.append(Case((dt, q, r), label, {"F": ref.F, "H": ref.H, "Q": ref.Q, "R": ref.R}))
    return cases


def cv_check(case, got):
    dt, q, r = case.args
    problems = []
    for name in "FHQR":
        problems += compare(name, got.get(name), case.expect[name], rtol=1e-7, atol=1e-12)
    Q, R = got.get("Q"), got.get("R")
    if Q is not None and Q.shape == (2, 2) and np.allclose(
            Q, q * np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]])):
        problems.append("Q is that of the piecewise-constant (discrete) white-noise acceleration "
                        "model; here the acceleration is continuous white noise")
    if R is not None and R.shape == (1, 1) and np.isclose(R[0, 0], np.sqrt(r)) and not np.isclose(r, 1):
        problems.append("r is the variance of the measurement noise, not its standard deviation")
    if not problems:
        try:
            LinearGaussianSSM(got["F"], got["H"], got["Q"], got["R"], np.zeros(2), np.eye(2))
        except (ValueError, TypeError) as exc:
            problems.append(f"(F, H, Q, R) do not make a valid model: {exc}")
    return problems


# --------------------------------------------------------------------------
# (b) simulate_with_noise(F, H, x0, w, v) -> (x, y)


def sim_reference(F, H, x0, w, v):
    """kflib.simulate without random noise: Q = R = P0 = 0 and the given w as controls."""
    n, m = F.shape[0], H.shape[0]
    model = LinearGaussianSSM(F, H, np.zeros((n, n)), np.zeros((m, m)), x0, np.zeros((n, n)),
                              B=np.eye(n))
    x, y = kflib.simulate(model, len(w), rng=0, u=w)
    return x, y + v


def sim_cases():
    cases = []
    F = np.array([[1.0, 1.0], [0.0, 1.0]])
    H = np.array([[1.0, 0.0]])
    x0 = np.array([0.0, 1.0])
    w, v = np.zeros((5, 2)), np.zeros((5, 1))
    kick = w.copy()
    kick[1] = [0.0, 1.0]
    H2 = np.array([[1.0, 2.0], [0.0, 1.0]])
    v2 = np.zeros((5, 2))
    v2[0] = [0.5, -0.5]
    visible = [((F, H, x0, w, v), "the first example of the visible tests (no noise)"),
               ((F, H, x0, kick, v), "the visible tests' kick to the velocity at time 2"),
               ((F, H2, x0, np.zeros((5, 2)), v2), "the visible tests' two sensors")]
    hidden = []
    for label, (F, H, x0, w, v) in ps01_simulate():
        hidden.append(((F, H, x0, w, v), f"random model with {label}"))
        hidden.append(((F, H, x0, np.zeros_like(w), np.zeros_like(v)), f"random model with {label}, no noise"))
    for args, label in visible + hidden:
        x, y = sim_reference(*args)
        cases.append(Case(args, label, {"x": x, "y": y}))
    return cases


def sim_check(case, got):
    F, H, x0, w, v = case.args
    x_ref, y_ref = case.expect["x"], case.expect["y"]
    scale = 1.0 + np.max(np.abs(x_ref))
    problems = compare("x", got.get("x"), x_ref, rtol=1e-7, atol=1e-9 * scale)
    problems += compare("y", got.get("y"), y_ref, rtol=1e-7, atol=1e-9 * scale)
    x = got.get("x")
    if problems and x is not None and x.shape == x_ref.shape and np.allclose(x[0], x0) \
            and not np.allclose(x_ref[0], x0):
        problems.append("x[0] must be x_1 = F x0 + w_1, not x0: the output starts at time 1")
    return problems


# --------------------------------------------------------------------------
# (c) prior_moments(F, Q, x0, P0, T) -> (means, covs)


def prior_reference(F, Q, x0, P0, T, H):
    """The prior moments: kflib's predictions with nothing observed (they do not depend on H)."""
    m = H.shape[0]
    model = LinearGaussianSSM(F, H, Q, np.eye(m), x0, P0)
    ref = kflib.kalman_filter(model, np.full((T, m), np.nan))
    return {"means": ref.x_pred, "covs": ref.P_pred}


def prior_cases():
    dt, q = 0.5, 2.0
    F_cv = np.array([[1.0, dt], [0.0, 1.0]])
    Q_cv = q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
    visible = [((F_cv, Q_cv, np.array([1.0, 2.0]), np.zeros((2, 2)), 4),
                "the constant-velocity example of the visible tests"),
               ((np.array([[0.9, 0.5], [0.0, 0.8]]), np.zeros((2, 2)), np.zeros(2), np.eye(2), 1),
                "the visible tests' F that is not symmetric"),
               ((0.5 * np.eye(2), np.eye(2), np.ones(2), np.zeros((2, 2)), 2),
                "the visible tests' F = 0.5 I, Q = I")]
    H2 = np.array([[1.0, 0.5], [-0.5, 2.0]])
    cases = [Case(args, label, prior_reference(*args, H2)) for args, label in visible]
    return cases + [Case(args, f"random model with {label}", prior_reference(*args, H))
                    for label, args, H in ps01_prior()]


def prior_check(case, got):
    F, Q, x0, P0, T = case.args
    means, covs = case.expect["means"], case.expect["covs"]
    problems = compare("means", got.get("means"), means, rtol=1e-7,
                       atol=1e-9 * (1 + np.max(np.abs(means))))
    problems += compare("covs", got.get("covs"), covs, rtol=1e-7,
                        atol=1e-9 * max(np.max(np.abs(covs)), 1e-300))
    c = got.get("covs")
    if problems and c is not None and c.shape == covs.shape:
        P, transposed = np.asarray(P0, float), []
        for _ in range(T):
            P = F.T @ P @ F + Q
            transposed.append(P)
        if np.allclose(c, transposed):
            problems.append("P_t = F P_{t-1} F^T + Q, not F^T P_{t-1} F + Q")
    return problems


# --------------------------------------------------------------------------
# (d) arima211_model(phi1, phi2, theta1, sigma2, y0) -> LinearGaussianSSM


def arima_cases():
    cases = []
    y = np.array([6.42, 5.28, 5.89, 4.72, 2.62, 0.49, -1.42, -0.83, -0.43, -0.85, -0.11, 0.11, -0.43])
    series = [((0.5, -0.3, 0.4, 1.5), y, "the example of the visible tests")]
    series += [(args[:4], y, label) for label, args, y in ps01_arima()]
    for (phi1, phi2, theta1, sigma2), y, label in series:
        ref = kflib.models.arima([phi1, phi2], [theta1], sigma2, d=1, y_presample=y[:1])
        filt = kflib.kalman_filter(ref, y[1:, None])
        expect = {"y": y, "loglik": filt.loglik, "pred": filt.x_pred @ ref.H.T, "S": filt.S}
        cases.append(Case((float(phi1), float(phi2), float(theta1), float(sigma2), float(y[0])),
                          label, expect))
    return cases


def arima_check(case, got):
    phi1, phi2 = case.args[:2]
    try:
        model = LinearGaussianSSM(*(got[k] for k in ("F", "H", "Q", "R", "x0", "P0")))
    except KeyError as exc:
        return [f"the model lacks {exc}"]
    except (ValueError, TypeError) as exc:
        return [f"the model is not valid: {exc}"]
    if model.H.ndim != 2 or model.H.shape[0] != 1:
        return [f"we observe one number per step, so H has one row; H has shape {model.H.shape}"]
    companion = np.array([[phi1, phi2, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    if model.F.shape == (3, 3) and np.allclose(model.F, companion):
        return ["F is the AR(2) companion matrix: it has neither the MA(1) term nor the differencing"]
    y = case.expect["y"]
    filt = kflib.kalman_filter(model, y[1:, None])
    problems = compare("the log-likelihood", filt.loglik, case.expect["loglik"], rtol=1e-7)
    problems += compare("the one-step predictions H x_{t|t-1}", filt.x_pred @ model.H.T,
                        case.expect["pred"], rtol=1e-7, atol=1e-7 * np.max(np.abs(y)))
    problems += compare("the prediction variances S_t", filt.S, case.expect["S"], rtol=1e-7, atol=1e-10)
    return problems


PARTS = [
    Part("cv_model", "constant_velocity_model", "constant_velocity_model(dt, q, r)",
         cv_cases, check=cv_check, returns=("F", "H", "Q", "R")),
    Part("simulate", "simulate_with_noise", "simulate_with_noise(F, H, x0, w, v)",
         sim_cases, check=sim_check, returns=("x", "y"), arg_names=("F", "H", "x0", "w", "v")),
    Part("prior", "prior_moments", "prior_moments(F, Q, x0, P0, T)",
         prior_cases, check=prior_check, returns=("means", "covs"), arg_names=("F", "Q", "x0", "P0", "T")),
    Part("arima", "arima211_model", "arima211_model(phi1, phi2, theta1, sigma2, y0)",
         arima_cases, check=arima_check,
         returns=Attrs("kflib.LinearGaussianSSM", "F", "H", "Q", "R", "x0", "P0", none=("B",))),
]
