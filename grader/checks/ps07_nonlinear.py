"""Trusted check of ps07-nonlinear (see grader/spec.py for the contract).

Inputs: those of the notebook's visible tests and of its hidden tests (same
seeds, same order of random draws); references from kflib.nonlinear, in the
grader's process. Like the hidden tests, every public kflib function is
switched off while the student's functions run (NonlinearSSM stays).

Two answer cells define two functions each (radar_h and radar_jacobian;
sigma_points and unscented_transform): their cases name the function they call
(Case.function). The EKF step and the unscented transform take Python
functions, which cannot travel to the sandbox: the cases send the plain
parameters of the model (a code for its kind and its arrays) and `ekf_args` /
`ut_args`, which run in the sandbox (and here, for the references), build the
functions from them -- the same functions as the notebook's tests, operation
for operation, so that the numbers agree with nbgrader's.
"""

from __future__ import annotations

import numpy as np

import kflib
import kflib.nonlinear
from kflib.exercise_cases import ps07_ekf, ps07_radar, ps07_unscented
from kflib.nonlinear import NonlinearSSM

from ..spec import Case, Part, compare

ASSIGNMENT = "ps07-nonlinear"


# --------------------------------------------------------------------------
# (a) radar_h(x) -> (2,) and radar_jacobian(x) -> (2, 4)


def _radar_true(x):
    return np.array([np.hypot(x[0], x[2]), np.arctan2(x[2], x[0])])


def _radar_jac_true(x):
    px, py = x[0], x[2]
    r = np.hypot(px, py)
    return np.array([[px / r, 0, py / r, 0], [-py / r**2, 0, px / r**2, 0]])


def radar_cases():
    cases = []
    visible = [(np.array([-3.0, 1.0, 4.0, 2.0]), "the visible tests' target up and to the left"),
               (np.array([300.0, -4.0, 120.0, 7.0]), "the visible tests' far target (r far from 1)")]
    for k, (x, label) in enumerate(visible):
        if k == 0:
            cases.append(Case((x,), f"radar_h at {label}", {"h": _radar_true(x), "rtol": 1e-7, "atol": 0.0},
                              function="radar_h"))
        # the first point: exact zeros for the velocities, as the visible tests ask
        cases.append(Case((x,), f"radar_jacobian at {label}",
                          {"H": _radar_jac_true(x), "rtol": 1e-7, "atol": 0.0 if k == 0 else 1e-12,
                           "Hn": None}, function="radar_jacobian"))
    for label, (x,), scale in ps07_radar():                 # the hidden tests'
        cases.append(Case((x,), f"radar_h at the {label}", {"h": _radar_true(x), "rtol": 1e-9, "atol": 1e-12},
                          function="radar_h"))
        Hn = kflib.nonlinear.numerical_jacobian(_radar_true, x)
        cases.append(Case((x,), f"radar_jacobian at the {label}",
                          {"H": _radar_jac_true(x), "rtol": 1e-7, "atol": 1e-12 / scale,
                           "Hn": Hn, "atol_n": 1e-6 / scale}, function="radar_jacobian"))
    return cases


def radar_check(case, got):
    (x,) = case.args
    e = case.expect
    px, py = x[0], x[2]
    r = np.hypot(px, py)
    if "h" in e:
        hx = got.get("h")
        if hx is None or hx.shape != (2,):
            return ["radar_h must return shape (2,)"
                    + (f"; it returned shape {hx.shape}" if hx is not None else "")]
        problems = compare("the range r", hx[0], e["h"][0], rtol=e["rtol"], atol=e["atol"])
        bearing = compare("the bearing phi", hx[1], e["h"][1], rtol=e["rtol"], atol=e["atol"])
        if bearing:
            if np.isclose(hx[1], np.arctan(py / px)):
                bearing.append("arctan(py / px) cannot tell (px, py) from (-px, -py): use "
                               "np.arctan2(py, px), which returns the bearing in (-pi, pi]")
            elif np.isclose(hx[1], np.arctan2(px, py)):
                bearing.append("np.arctan2 takes (y, x): the bearing is np.arctan2(py, px)")
            elif (np.isclose(np.cos(hx[1]), np.cos(e["h"][1]))
                  and np.isclose(np.sin(hx[1]), np.sin(e["h"][1]))):
                bearing.append("the bearing must lie in (-pi, pi]: np.arctan2(py, px) returns it there")
        return problems + bearing
    H = got.get("H")
    if H is None or H.shape != (2, 4):
        return ["radar_jacobian must return shape (2, 4): 2 measurements, 4 states"
                + (f"; it returned shape {H.shape}" if H is not None else "")]
    problems = []
    if not np.allclose(H[:, [1, 3]], 0.0):
        problems.append("the state is ordered (px, vx, py, vy): h does not depend on the velocities, "
                        "so columns 1 and 3 are zero")
    problems += compare("the range row of the Jacobian", H[0], e["H"][0], rtol=e["rtol"], atol=e["atol"])
    bearing = compare("the bearing row of the Jacobian", H[1], e["H"][1], rtol=e["rtol"], atol=e["atol"])
    if bearing:
        for wrong, hint in [([-py / r, 0, px / r, 0], "you divided by r, not r^2"),
                            ([py / r**2, 0, -px / r**2, 0], "check the signs"),
                            ([px / r**2, 0, -py / r**2, 0], "the two derivatives are swapped")]:
            if np.allclose(H[1], wrong, rtol=1e-6, atol=0):
                bearing.append(f"the bearing row is (-py / r^2, 0, px / r^2, 0): {hint}")
                break
    problems += bearing
    if not problems and e.get("Hn") is not None:
        problems += compare("the Jacobian, against central differences,", H, e["Hn"], rtol=1e-5,
                            atol=e["atol_n"])
    return problems


# --------------------------------------------------------------------------
# (b) ekf_step(x, P, y, f, F_jac, h, H_jac, Q, R) -> (x_pred, P_pred, x_filt, P_filt)


def ekf_args(kind, A, a, C, c, x, P, y, Q, R):
    """In the sandbox (and in the grader, for the references): the call's arguments, with
    the model functions of the notebook's tests built from their plain parameters.
    kind 0: the visible tests' pendulum, A = [[g]], a = [dt]; kind 1: the hidden tests'
    random model f(x) = A x + sin(x) / 2 + a tanh(sum x), h(x) = C x + c sin(x_0 x_-1)."""
    if int(kind) == 0:
        g, dt = float(A[0, 0]), float(a[0])

        def f(x):
            omega = x[1] - g * np.sin(x[0]) * dt
            return np.array([x[0] + omega * dt, omega])

        def F_jac(x):
            c = g * np.cos(x[0]) * dt
            return np.array([[1.0 - c * dt, dt], [-c, 1.0]])

        def h(x):
            return np.array([np.sin(x[0]), x[1]])

        def H_jac(x):
            return np.array([[np.cos(x[0]), 0.0], [0.0, 1.0]])
    else:
        A, a, C, c = (np.array(v, dtype=float) for v in (A, a, C, c))

        def f(x):
            return A @ x + 0.5 * np.sin(x) + a * np.tanh(x.sum())

        def F_jac(x):
            return A + 0.5 * np.diag(np.cos(x)) + np.outer(a, np.ones(len(x))) / np.cosh(x.sum())**2

        def h(x):
            return C @ x + c * np.sin(x[0] * x[-1])

        def H_jac(x):
            d = np.zeros(len(x))
            d[0] += x[-1] * np.cos(x[0] * x[-1])
            d[-1] += x[0] * np.cos(x[0] * x[-1])
            return C + np.outer(c, d)
    return x, P, y, f, F_jac, h, H_jac, Q, R


EKF_NAMES = ("x_pred", "P_pred", "x_filt", "P_filt")


def _ekf_case(args, label, tols):
    x, P, y, f, F_jac, h, H_jac, Q, R = ekf_args(*args)
    ref = kflib.nonlinear.ekf_filter(NonlinearSSM(f, h, Q, R, x, P, F_jac=F_jac, H_jac=H_jac), y[None])
    refs = [ref.x_pred[0], ref.P_pred[0], ref.x_filt[0], ref.P_filt[0]]
    return Case(args, label, {"refs": dict(zip(EKF_NAMES, refs)), "tols": tols})


def ekf_cases():
    pendulum = (0, np.array([[9.81]]), np.array([0.1]), np.zeros((0, 2)), np.zeros(0),
                np.array([1.0, 2.0]), np.array([[0.3, 0.05], [0.05, 0.5]]), np.array([0.95, 1.2]),
                np.array([[0.01, 0.002], [0.002, 0.05]]), np.array([[0.04, 0.0], [0.0, 0.25]]))
    visible_tols = {"x_pred": (1e-7, 0.0), "P_pred": (1e-9, 0.0), "x_filt": (1e-7, 1e-10),
                    "P_filt": (1e-7, 1e-10)}
    cases = [_ekf_case(pendulum, "the visible tests' pendulum (n=2, m=2)", visible_tols)]
    for label, params in ps07_ekf():                        # the hidden tests'
        case = _ekf_case((1, *params), label, None)
        case.expect["tols"] = {name: (1e-7, 1e-9 * (1 + np.max(np.abs(ref))))
                               for name, ref in case.expect["refs"].items()}
        cases.append(case)
    return cases


def _ekf_variants(args):
    """What the typical mistakes give: {hint: (name, value)}."""
    x, P, y, f, F_jac, h, H_jac, Q, R = ekf_args(*args)
    Fx = F_jac(x)
    x_pred = f(x)
    P_pred = Fx @ P @ Fx.T + Q
    Fp = F_jac(x_pred)
    out = {"x_pred = f(x), the nonlinear function itself; the Jacobian is for P only":
           ("x_pred", Fx @ x),
           "F is evaluated at the previous filtered mean x, not at the prediction f(x)":
           ("P_pred", Fp @ P @ Fp.T + Q)}
    for where, Hm, resid in [("H is evaluated at the prediction x_pred = f(x), not at the previous mean x",
                              H_jac(x), y - h(x_pred)),
                             ("the innovation is y - h(x_pred), with h itself, not y - H x_pred",
                              H_jac(x_pred), y - H_jac(x_pred) @ x_pred)]:
        S = Hm @ P_pred @ Hm.T + R
        K = np.linalg.solve(S, Hm @ P_pred).T
        out[where] = ("x_filt", x_pred + K @ resid)
    return out


def ekf_check(case, got):
    e = case.expect
    problems = []
    for name in EKF_NAMES:
        rtol, atol = e["tols"][name]
        problems += compare(name, got.get(name), e["refs"][name], rtol=rtol, atol=atol)
    if problems:
        for hint, (name, value) in _ekf_variants(case.args).items():
            mine = got.get(name)
            if mine is not None and mine.shape == value.shape and np.allclose(mine, value, rtol=1e-6) \
                    and not np.allclose(value, e["refs"][name], rtol=1e-6):
                problems.append(hint)
                break
    return problems


# --------------------------------------------------------------------------
# (c) sigma_points(x, P, alpha, beta, kappa) -> (X, Wm, Wc) and
#     unscented_transform(fun, x, P, alpha, beta, kappa) -> (mean, cov, cross)


def ut_args(*args):
    """In the sandbox (and in the grader, for the references): (x, P) for sigma_points;
    for unscented_transform (kind, A, c, x, P) -> (fun, x, P), with fun the notebook's
    function of that kind: 0 polar to Cartesian, 1 (v0, v1^2, v0 v1), 2 the hidden tests'
    sin(A z) + c exp(0.3 z_0) + (A z)^2 / 4."""
    if len(args) == 2:
        return args
    kind, A, c, x, P = args
    if int(kind) == 0:
        def fun(z):
            return np.array([z[0] * np.cos(z[1]), z[0] * np.sin(z[1])])
    elif int(kind) == 1:
        def fun(v):
            return np.array([v[0], v[1]**2, v[0] * v[1]])
    else:
        A, c = np.array(A, dtype=float), np.array(c, dtype=float)

        def fun(z):
            return np.sin(A @ z) + c * np.exp(0.3 * z[0]) + (A @ z) ** 2 / 4
    return fun, x, P


def _sigma_case(x, P, params, label, tols):
    X, Wm, Wc = kflib.nonlinear.sigma_points(x, P, **params)
    return Case((x, P), f"sigma_points, {label}", {"X": X, "Wm": Wm, "Wc": Wc, "tols": tols},
                function="sigma_points",
                kwargs=dict(params))


def _ut_case(kind, A, c, x, P, params, label, tols):
    fun, x, P = ut_args(kind, A, c, x, P)
    mean, cov, cross = kflib.nonlinear.unscented_transform(fun, x, P, **params)
    if tols is None:
        tols = {name: (1e-7, 1e-9 * (1 + np.max(np.abs(v)))) for name, v in
                (("mean", mean), ("cov", cov), ("cross", cross))}
    expect = {"mean": mean, "cov": cov, "cross": cross, "tols": tols, "x_fun": fun(x)}
    return Case((kind, A, c, x, P), f"unscented_transform, {label}", expect,
                function="unscented_transform", kwargs=dict(params))


def unscented_cases():
    x = np.array([1.0, -0.5])
    P = np.array([[0.5, 0.2], [0.2, 0.3]])
    tight = (1e-9, 1e-12)
    sig_tols = {"X": tight, "Wm": tight, "Wc": tight}
    ut_tols = {"mean": tight, "cov": tight, "cross": tight}
    none2 = (np.zeros((0, 2)), np.zeros(0))
    z, Pz = np.array([1.0, 0.3]), np.array([[0.01, 0.002], [0.002, 0.2]])
    cases = [_sigma_case(x, P, {}, "the visible tests' n=2, default alpha, beta, kappa", sig_tols),
             _sigma_case(x, P, {"alpha": 0.5, "beta": 2.0}, "the visible tests' n=2, alpha=0.5", sig_tols),
             _ut_case(0, *none2, z, Pz, {}, "the visible tests' polar-to-Cartesian map", ut_tols),
             _ut_case(1, *none2, z, Pz, {}, "the visible tests' map to three outputs", None)]
    for label, (x, P), (A, c), params in ps07_unscented():     # the hidden tests'
        cases.append(_sigma_case(x, P, params, label, sig_tols))
        cases.append(_ut_case(2, A, c, x, P, params, f"random map, {label}", None))
    return cases


def _sigma_hints(case, got):
    x, P = case.args
    p = {"alpha": 1.0, "beta": 2.0, "kappa": 0.0, **case.kwargs}
    n = len(x)
    lam = p["alpha"] ** 2 * (n + p["kappa"]) - n
    e = case.expect
    X, Wc = got.get("X"), got.get("Wc")
    hints = []
    if Wc is not None and Wc.shape == e["Wc"].shape and np.isclose(Wc[0], lam / (n + lam)) \
            and not np.isclose(Wc[0], e["Wc"][0]):
        hints.append("Wc_0 = lambda / (n + lambda) + (1 - alpha^2 + beta): the term (1 - alpha^2 + beta) "
                     "is missing")
    if X is not None and X.shape == e["X"].shape and n > 1 and not np.allclose(X, e["X"]):
        L = np.linalg.cholesky((n + lam) * P)
        w, V = np.linalg.eigh((n + lam) * P)
        for wrong, hint in [(x + L, "the points are x plus the columns of L; x + L adds its rows "
                                    "(use x + L.T)"),
                            (x + np.linalg.cholesky(P).T, "L is the Cholesky factor of (n + lambda) P, "
                                                          "not of P"),
                            (x + V @ np.diag(np.sqrt(w)) @ V.T, "use the lower Cholesky factor of "
                                                                "(n + lambda) P, as the text says")]:
            if np.allclose(X[1:n + 1], wrong) and not np.allclose(wrong, e["X"][1:n + 1]):
                hints.append(hint)
                break
    if not hints and p["kappa"] != 0:
        X0, Wm0, _ = kflib.nonlinear.sigma_points(x, P, p["alpha"], p["beta"], 0.0)
        Wm = got.get("Wm")
        if Wm is not None and Wm.shape == Wm0.shape and np.allclose(Wm, Wm0):
            hints.append("lambda = alpha^2 (n + kappa) - n: kappa seems to be left out")
    return hints


def unscented_check(case, got):
    e = case.expect
    names = ("X", "Wm", "Wc") if case.function == "sigma_points" else ("mean", "cov", "cross")
    problems = []
    for name in names:
        rtol, atol = e["tols"][name]
        problems += compare(name, got.get(name), e[name], rtol=rtol, atol=atol)
    if not problems:
        return []
    if case.function == "sigma_points":
        return problems + _sigma_hints(case, got)
    mean, cross = got.get("mean"), got.get("cross")
    if mean is not None and mean.shape == e["mean"].shape and np.allclose(mean, e["x_fun"]) \
            and not np.allclose(e["mean"], e["x_fun"]):
        problems.append("the mean is the weighted average of the transformed points, not fun(x)")
    elif cross is not None and cross.shape == e["cross"].T.shape and cross.shape != e["cross"].shape:
        problems.append("cross = Cov(z, fun(z)) has shape (n, k); you have its transpose")
    return problems


PARTS = [
    Part("radar", "radar_h", "radar_h(x) and radar_jacobian(x)", radar_cases,
         check=radar_check, returns={"radar_h": "h", "radar_jacobian": "H"}, arg_names=("x",)),
    Part("ekf", "ekf_step", "ekf_step(x, P, y, f, F_jac, h, H_jac, Q, R)", ekf_cases,
         check=ekf_check, returns=EKF_NAMES,
         arg_names=("x", "P", "y", "f", "F_jac", "h", "H_jac", "Q", "R"), from_plain=ekf_args),
    Part("unscented", "sigma_points", "sigma_points(x, P, ...) and unscented_transform(fun, x, P, ...)",
         unscented_cases, check=unscented_check,
         returns={"sigma_points": ("X", "Wm", "Wc"), "unscented_transform": ("mean", "cov", "cross")},
         arg_names=("x", "x or P", "P"), from_plain=ut_args),
]
