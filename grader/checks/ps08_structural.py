"""Trusted check of ps08-structural (see grader/spec.py for the contract).

Inputs: those of the notebook's visible tests and of its hidden tests (same
seeds, same order of random draws), so that the trusted check and nbgrader
agree on every honest submission. As in the notebook, a block is judged by
what it does, not by its entries (the states may come in another order or
basis): the log-likelihood and the smoothed fitted values H x_{t|T} of test
series under the student's matrices, computed here with kflib and compared
with those of kflib.structural, starting from the state 0 exactly; plus the
checks of the visible tests that hold in every basis (number of states, the
free response H F^t, the one-step variance H Q H', the eigenvalues of F).

The hidden tests switch off the kflib.structural function that answers each
part; the same functions are tripwires here.

`combine_blocks` gets its blocks as a list of (F, H, Q) tuples, as in the
notebook (`from_plain` turns the lists the sandbox receives back into tuples).
The runner only watches the arrays that are arguments themselves for changes,
not arrays inside a list, so "do not change the blocks you are given" (which
the notebook's tests check) is not checked here.

The forecasts of (e) are numbers in every basis: the means and covariances of
the states and the observations are compared with kflib.forecast, run from a
filter result that ends at the given x_{T|T}, P_{T|T}. Its random cases are
kflib.exercise_cases.ps08_forecast, which the hidden tests import too, plus a
few drawn with the grader's own seed.
"""

from __future__ import annotations

import numpy as np

import kflib
import kflib.structural as kst
from kflib import LinearGaussianSSM
from kflib.exercise_cases import ps08_forecast

from ..spec import Case, Part, compare

ASSIGNMENT = "ps08-structural"
# As in the hidden tests, each part switches off only its own kflib.structural
# function: (d) may build its blocks with the library's (a)-(c).


# --------------------------------------------------------------------------
# shared pieces


def _fit(F, H, Q, r, y, P0_scale=0.0):
    """Log-likelihood and smoothed H x_{t|T} of y (T,) under a block or model plus
    observation noise of variance r, from x0 = 0 and P0 = P0_scale I."""
    F, H, Q = (np.asarray(a, dtype=float) for a in (F, H, Q))
    k = F.shape[0]
    model = LinearGaussianSSM(F, H, Q, [[float(r)]], np.zeros(k), P0_scale * np.eye(k))
    filt = kflib.kalman_filter(model, np.asarray(y, dtype=float)[:, None])
    smooth = kflib.rts_smoother(model, filt)
    return filt.loglik, (smooth.x_smooth @ model.H.T)[:, 0]


def _responses(F, H, N):
    """The rows H F^t, t = 0, ..., N-1 (the notebook's free_response)."""
    rows, power = [], np.eye(F.shape[0])
    for _ in range(N):
        rows.append((H @ power)[0])
        power = F @ power
    return np.array(rows)


def _block_shapes(got, allowed, what):
    """Problems with the shapes of (F, H, Q) for a block with k in `allowed` states."""
    F, H, Q = (got.get(name) for name in "FHQ")
    if F is None or H is None or Q is None:
        return ["it must return the three arrays F, H, Q"]
    if F.ndim != 2 or F.shape[0] != F.shape[1]:
        return [f"F must be a square matrix; it has shape {F.shape}"]
    k = F.shape[0]
    if k not in allowed:
        want = " or ".join(str(a) for a in sorted(allowed))
        return [f"{what} the block has {want} states; F has shape {F.shape}"]
    problems = []
    if H.shape != (1, k):
        problems.append(f"H must be a 1 x {k} matrix, shape (1, {k}); it has shape {H.shape}")
    if Q.shape != (k, k):
        problems.append(f"Q must have shape ({k}, {k}); it has shape {Q.shape}")
    if problems:
        return problems
    if not (np.all(np.isfinite(F)) and np.all(np.isfinite(H)) and np.all(np.isfinite(Q))):
        return ["F, H and Q must not contain NaN or infinity"]
    if not np.allclose(Q, Q.T):
        return ["Q must be symmetric"]
    return []


def _behaviour(got, case, what, atol):
    """The notebook's test of what a block does: log-likelihood and smoothed component of
    the case's series, against kflib.structural's block, from the state 0 exactly."""
    e = case.expect
    try:
        ll, fitted = _fit(got["F"], got["H"], got["Q"], e["r"], e["y"])
    except (ValueError, TypeError, np.linalg.LinAlgError) as exc:
        return [f"(F, H, Q) plus the observation noise is not a valid model: {exc}"]
    problems = compare(f"the log-likelihood of a test series under your {what}", ll, e["loglik"],
                       rtol=1e-7)
    problems += compare(f"the smoothed {what} of a test series", fitted, e["fitted"],
                        rtol=1e-7, atol=atol)
    return problems


def _one_step(got):
    """H Q H': the variance of the component given the past (the same in every basis)."""
    return float((got["H"] @ got["Q"] @ got["H"].T)[0, 0])


# --------------------------------------------------------------------------
# (a) seasonal_dummy_block(s, var) -> (F, H, Q)


def _dummy_case(s, var, r, y, label, atol):
    ref = kst.seasonal_dummy(s, var)
    ll, fitted = _fit(ref.F, ref.H, ref.Q, r, y)
    return Case((int(s), float(var)), label,
                {"r": float(r), "y": y, "loglik": ll, "fitted": fitted, "atol": atol,
                 "F": np.array(ref.F), "H": np.array(ref.H)})


def dummy_cases():
    cases = []
    rng = np.random.default_rng(81)
    y = np.tile([3.0, -1.0, -4.0, 2.0], 8) + rng.normal(size=32)
    cases.append(_dummy_case(4, 0.5, 1.0, y, "the example of the visible tests (s=4)", 1e-9))
    y2 = np.random.default_rng(8101).normal(size=20)     # the visible tests do not fit s = 2
    cases.append(_dummy_case(2, 1.5, 1.0, y2, "the visible tests' smallest period (s=2)", 1e-9))
    rng = np.random.default_rng(801)
    for s in [2, 3, 5, 7, 12, 13]:
        var, r = rng.uniform(0.05, 3.0), rng.uniform(0.2, 2.0)
        pattern = rng.normal(size=s)
        T = 5 * s + 10
        y = 3 * np.tile(pattern - pattern.mean(), T // s + 1)[:T] + rng.normal(size=T)
        cases.append(_dummy_case(s, var, r, y, f"period s={s}, variances drawn at random",
                                 1e-8 * np.max(np.abs(y))))
    return cases


def dummy_check(case, got):
    s, var = case.args
    F, H, Q = (got.get(name) for name in "FHQ")
    if F is not None and F.ndim == 2 and F.shape == (s, s):
        return [f"with period s = {s} the block has s - 1 = {s - 1} states, not s: with s states, "
                "gamma_t = -(gamma_{t-1} + ... + gamma_{t-s}) + omega_t makes every s + 1 "
                "consecutive effects sum to zero, a seasonal of period s + 1"]
    problems = _block_shapes(got, {s - 1}, f"with period s = {s}")
    if problems:
        return problems
    rows = _responses(F, H, 3 * s)
    if not np.allclose(rows[s:], rows[:-s]):
        problems.append(f"without noise the pattern must repeat every s = {s} steps "
                        "(the rows H F^t and H F^(t+s) must be equal)")
    elif not np.allclose([rows[t:t + s].sum(axis=0) for t in range(2 * s)], 0.0):
        problems.append(f"without noise any {s} consecutive effects must sum to zero")
    else:
        both = np.hstack([rows[:2 * s], _responses(case.expect["F"], case.expect["H"], 2 * s)])
        if not np.linalg.matrix_rank(both) == np.linalg.matrix_rank(rows[:2 * s]) == s - 1:
            problems.append(f"without noise the block must produce the zero-sum patterns of period {s}")
    if not np.isclose(_one_step(got), var):
        problems.append("given the past effects, gamma_t has variance var: H Q H' must equal var "
                        "(the noise omega_t enters the current effect, the state that H picks out)")
    if problems:
        return problems
    return _behaviour(got, case, "seasonal", case.expect["atol"])


# --------------------------------------------------------------------------
# (b) local_linear_trend_block(level_var, slope_var) -> (F, H, Q)


def _trend_case(level_var, slope_var, r, y, label, atol):
    ref = kst.local_linear_trend(level_var, slope_var)
    ll, fitted = _fit(ref.F, ref.H, ref.Q, r, y)
    return Case((float(level_var), float(slope_var)), label,
                {"r": float(r), "y": y, "loglik": ll, "fitted": fitted, "atol": atol})


def trend_cases():
    rng = np.random.default_rng(82)
    y = 5.0 + 0.3 * np.arange(30) + np.cumsum(rng.normal(size=30))
    cases = [_trend_case(2.0, 0.5, 1.0, y, "the example of the visible tests", 1e-9),
             _trend_case(0.0, 0.1, 1.0, y, "the visible tests' smooth trend (level_var = 0)", 1e-9)]
    rng = np.random.default_rng(802)
    params = [tuple(rng.uniform(0.01, 5.0, size=2)) for _ in range(4)] + [(0.0, 0.3), (1.2, 0.0)]
    for k, (level_var, slope_var) in enumerate(params):
        r = rng.uniform(0.2, 3.0)
        y = rng.normal(scale=10) + rng.normal() * np.arange(40) + np.cumsum(np.cumsum(rng.normal(size=40)))
        if level_var == 0.0 or slope_var == 0.0:
            label = f"{'level_var' if level_var == 0.0 else 'slope_var'} = 0, T=40"
        else:
            label = f"variances drawn at random, T=40 ({k + 1})"
        cases.append(_trend_case(level_var, slope_var, r, y, label, 1e-8 * np.max(np.abs(y))))
    return cases


def trend_check(case, got):
    level_var, slope_var = case.args
    problems = _block_shapes(got, {2}, "the local linear trend has two states, level and slope:")
    if problems:
        return problems
    rows = _responses(got["F"], got["H"], 6)
    if not (np.allclose(rows[2:] - 2 * rows[1:-1] + rows[:-2], 0.0) and np.linalg.matrix_rank(rows) == 2):
        problems.append("without noise the trend is a straight line, mu_t = mu_0 + t beta_0: "
                        "the slope must move the level, and H must pick out the level")
    one_step = _one_step(got)
    if not np.isclose(one_step, level_var):
        if np.isclose(one_step, slope_var):
            problems.append("the variances are swapped: given the past, the level mu_t has variance "
                            "level_var (the slope's noise zeta_t reaches the level one step later)")
        else:
            problems.append("given the past, the level mu_t has variance level_var: "
                            "H Q H' must equal level_var")
    if problems:
        return problems
    return _behaviour(got, case, "trend", case.expect["atol"])


# --------------------------------------------------------------------------
# (c) trig_seasonal_block(s, h, var) -> (F, H, Q)


def _trig_case(s, h, var, r, y, label, atol):
    ref = kst.seasonal_trig(s, var, harmonics=h)
    ll, fitted = _fit(ref.F, ref.H, ref.Q, r, y)
    return Case((int(s), int(h), float(var)), label,
                {"r": float(r), "y": y, "loglik": ll, "fitted": fitted, "atol": atol,
                 "F": np.array(ref.F), "H": np.array(ref.H), "k": ref.k})


def trig_cases():
    cases = []
    rng = np.random.default_rng(83)
    for s, h in [(12, 2), (12, 6), (4, 1), (4, 2)]:
        pattern = 4 * np.cos(2 * np.pi * np.arange(5 * s) / s + 1.0)
        y = pattern + rng.normal(size=5 * s)
        cases.append(_trig_case(s, h, 0.4, 1.0, y, f"the visible tests' s={s}, h={h}", 1e-9))
    rng = np.random.default_rng(803)
    for s, h in [(2, 1), (3, 1), (5, 2), (7, 3), (7, 2), (9, 4), (12, 1), (12, 6), (13, 6), (24, 3)]:
        var, r = rng.uniform(0.05, 2.0), rng.uniform(0.2, 2.0)
        T = 4 * s + 20
        tt = np.arange(T)
        y = sum(rng.normal(scale=3) * np.cos(2 * np.pi * j * tt / s + rng.uniform(0, 6))
                for j in range(1, h + 1))
        y = y + rng.normal(size=T)
        cases.append(_trig_case(s, h, var, r, y, f"s={s}, h={h}, variances drawn at random",
                                1e-8 * np.max(np.abs(y))))
    return cases


def trig_check(case, got):
    s, h, var = case.args
    allowed = {2 * h - 1, 2 * h} if 2 * h == s else {2 * h}
    problems = _block_shapes(got, allowed, f"with s = {s}, h = {h}, each harmonic takes two states "
                                           "(the one with j = s/2 may take one), so")
    if problems:
        return problems
    F, H = got["F"], got["H"]
    lam = 2 * np.pi * np.arange(1, h + 1) / s
    wanted = np.concatenate([np.exp(1j * lam), np.exp(-1j * lam)])
    eig = np.linalg.eigvals(F)
    if not (all(np.min(np.abs(eig - w)) < 1e-8 for w in wanted)
            and all(np.min(np.abs(wanted - e)) < 1e-8 for e in eig)):
        hint = ""
        if np.any(np.abs(eig - 1.0) < 1e-8):
            hint = " (F has the eigenvalue 1, frequency 0: the harmonics are j = 1, ..., h, not 0, ..., h-1)"
        problems.append("the harmonics turn by lambda_j = 2 pi j / s, j = 1, ..., h (radians): "
                        "the eigenvalues of F must be exp(+-i lambda_j)" + hint)
    rows = _responses(F, H, 3 * s)
    if not np.allclose(rows[s:], rows[:-s]):
        problems.append(f"without noise the pattern must repeat every s = {s} steps")
    elif not problems:
        ref_rows = _responses(case.expect["F"], case.expect["H"], 3 * s)
        if not np.linalg.matrix_rank(np.hstack([rows, ref_rows])) == np.linalg.matrix_rank(rows) \
                == case.expect["k"]:
            problems.append("without noise the block must produce the sinusoids of the h harmonics "
                            "(H must pick out every harmonic)")
    if not np.isclose(_one_step(got), h * var):
        problems.append("each gamma_(j,t) gets its own noise of variance var, so given the past, "
                        "gamma_t has variance h var: H Q H' must equal h var")
    if problems:
        return problems
    return _behaviour(got, case, "seasonal", case.expect["atol"])


# --------------------------------------------------------------------------
# (d) combine_blocks(blocks, irregular_var) -> (F, H, Q, R)


def _combine_case(blocks, r, y, scales, label, atol):
    """blocks: kst.Block objects; the student gets them as (F, H, Q) triples."""
    n = sum(b.k for b in blocks)
    refs = []
    for scale in scales:
        model = kst.combine(*blocks, irregular_var=r, x0=np.zeros(n), P0=scale * np.eye(n))
        filt = kflib.kalman_filter(model, y[:, None])
        fitted = kflib.rts_smoother(model, filt).x_smooth @ model.H.T
        refs.append((scale, filt.loglik, fitted))
    triples = [(np.array(b.F, dtype=float), np.array(b.H, dtype=float), np.array(b.Q, dtype=float))
               for b in blocks]
    return Case((triples, float(r)), label,
                {"y": y, "n": n, "refs": refs, "atol": atol, "r": float(r),
                 "eig": np.concatenate([np.linalg.eigvals(t[0]) for t in triples]),
                 "sums": [sum(float(np.sum(t[i])) for t in triples) for i in range(3)],
                 "squares": [sum(float(np.sum(t[i] ** 2)) for t in triples) for i in range(3)]})


def combine_cases():
    trend = kst.Block("trend", np.array([[1.0, 1.0], [0.0, 1.0]]), np.array([[1.0, 0.0]]),
                      np.array([[0.5, 0.1], [0.1, 0.2]]))
    seasonal = kst.Block("seasonal", np.array([[-1.0, -1.0], [1.0, 0.0]]), np.array([[1.0, 0.0]]),
                         np.diag([0.3, 0.0]))
    rng = np.random.default_rng(84)
    tt = np.arange(36)
    y = 10 + 0.5 * tt + 4 * np.tile([1.0, -2.0, 1.0], 12) + rng.normal(size=36)
    y[[5, 17]] = np.nan
    cases = [_combine_case([trend, seasonal], 1.5, y, [0.0, 10.0],
                           "the visible tests' trend and period-3 seasonal, two gaps", 1e-8)]
    rng = np.random.default_rng(804)
    makers = [
        lambda: kst.local_linear_trend(rng.uniform(0.0, 2.0), rng.uniform(0.0, 0.2)),
        lambda: kst.local_level(rng.uniform(0.1, 2.0)),
        lambda: kst.seasonal_dummy(int(rng.integers(2, 13)), rng.uniform(0.0, 1.0)),
        lambda: kst.seasonal_trig(12, rng.uniform(0.0, 0.5), harmonics=int(rng.integers(1, 7))),
        lambda: kst.cycle(rng.uniform(0.1, 1.0), rng.uniform(0.5, 1.0), rng.uniform(0.1, 1.0)),
    ]
    kinds = ["trend", "level", "dummy seasonal", "trigonometric seasonal", "cycle"]
    for n_blocks in [1, 2, 3, 3, 4, 4]:
        chosen = rng.choice(len(makers), size=n_blocks, replace=False)
        blocks = [makers[i]() for i in chosen]
        blocks = [kst.Block(f"b{i}", b.F, b.H, b.Q) for i, b in enumerate(blocks)]
        r = rng.uniform(0.1, 3.0)
        T = 60
        y = np.cumsum(rng.normal(size=T)) + 3 * np.sin(np.arange(T)) + rng.normal(size=T)
        y[rng.random(T) < 0.1] = np.nan
        names = ", ".join(kinds[i] for i in chosen)
        cases.append(_combine_case(blocks, r, y, [0.0, 5.0],
                                   f"{n_blocks} block{'s' if n_blocks > 1 else ''} ({names}), T={T}", 1e-7))
    return cases


def combine_args(blocks, irregular_var):
    """In the sandbox: the blocks as the list of (F, H, Q) tuples the notebook passes."""
    return [tuple(block) for block in blocks], irregular_var


def combine_check(case, got):
    e = case.expect
    n = e["n"]
    F, H, Q, R = (got.get(name) for name in "FHQR")
    if F is None or H is None or Q is None or R is None:
        return ["it must return the four arrays F, H, Q, R"]
    shapes = [("F", F, (n, n)), ("H", H, (1, n)), ("Q", Q, (n, n)), ("R", R, (1, 1))]
    problems = [f"{name} must have shape {want} (one row and column per state of all the blocks, "
                f"R 1 x 1); it has shape {a.shape}" for name, a, want in shapes if a.shape != want]
    if problems:
        return problems
    if not all(np.all(np.isfinite(a)) for a in (F, H, Q, R)):
        return ["F, H, Q and R must not contain NaN or infinity"]
    if not np.isclose(R[0, 0], e["r"]):
        problems.append("R holds the irregular variance irregular_var")
    eig = np.linalg.eigvals(F)
    if not (all(np.min(np.abs(eig - w)) < 1e-6 for w in e["eig"]) and np.isclose(np.sum(F), e["sums"][0])):
        problems.append("F must hold each block's F on its diagonal and zeros elsewhere (block-diagonal)")
    if not (np.isclose(np.sum(Q), e["sums"][2]) and np.isclose(np.sum(Q ** 2), e["squares"][2])):
        problems.append("Q must hold each block's whole Q on its diagonal, off-diagonal entries "
                        "included, and zeros elsewhere")
    if not (np.isclose(np.sum(H), e["sums"][1]) and np.isclose(np.sum(H ** 2), e["squares"][1])):
        problems.append("H must be the blocks' H side by side: every component is observed")
    if problems:
        return problems
    y = e["y"]
    for scale, ll_ref, fitted_ref in e["refs"]:
        try:
            model = LinearGaussianSSM(F, H, Q, R, np.zeros(n), scale * np.eye(n))
            filt = kflib.kalman_filter(model, y[:, None])
            fitted = kflib.rts_smoother(model, filt).x_smooth @ H.T
        except (ValueError, TypeError, np.linalg.LinAlgError) as exc:
            return [f"(F, H, Q, R) is not a valid model: {exc}"]
        where = f"(x0 = 0, P0 = {scale:g} I)"
        problems += compare(f"the log-likelihood of a test series {where}", filt.loglik, ll_ref, rtol=1e-7)
        problems += compare(f"the smoothed fitted values of a test series {where}", fitted, fitted_ref,
                            rtol=1e-7, atol=e["atol"])
    return problems


# --------------------------------------------------------------------------
# (e) forecast_moments(F, H, Q, R, x, P, steps) -> (x_mean, P_fc, y_mean, y_cov)

FORECAST_NAMES = ("x_mean", "P_fc", "y_mean", "y_cov")


def _forecast_case(F, H, Q, R, x, P, steps, label):
    """The reference: kflib.forecast from a filter's result that ends at x_{T|T} = x, P_{T|T} = P."""
    F, H, Q, R, x, P = (np.array(a, dtype=float) for a in (F, H, Q, R, x, P))
    n, m = len(x), len(R)
    end = kflib.FilterResult(x[None], P[None], x[None], P[None], np.full((1, m), np.nan),
                             np.full((1, m, m), np.nan), np.zeros((1, n, m)), 0.0)
    ref = kflib.forecast(LinearGaussianSSM(F, H, Q, R, np.zeros(n), np.eye(n)), end, int(steps))
    expect = dict(zip(FORECAST_NAMES, (ref.x_mean, ref.P, ref.y_mean, ref.y_cov)))
    return Case((F, H, Q, R, x, P, int(steps)), label, expect)


def forecast_cases():
    cases = [_forecast_case([[1.0]], [[1.0]], [[0.5]], [[2.0]], [3.0], [[1.0]], 4,
                            "the visible tests' local level, 4 steps")]
    trend, seasonal = kst.local_linear_trend(0.5, 0.05), kst.seasonal_dummy(3, 0.3)
    model = kst.combine(trend, seasonal, irregular_var=1.5, x0=np.zeros(4), P0=10.0 * np.eye(4))
    _, y = kflib.simulate(model, 36, rng=np.random.default_rng(85))
    filt = kflib.kalman_filter(model, y)
    cases.append(_forecast_case(model.F, model.H, model.Q, model.R, filt.x_filt[-1], filt.P_filt[-1], 6,
                                "the visible tests' trend and period-3 seasonal, n=4, 6 steps"))
    cases += [_forecast_case(*args, label) for label, args in ps08_forecast()]
    cases += [_forecast_case(*args, "another " + label)                   # the grader's own seed
              for label, args in ps08_forecast(98505)[3:8:2]]
    return cases


def _forecast_hints(case, got):
    """What a wrong P_fc or y_cov is, when it is one of the usual mistakes."""
    F, H, Q, R, x, P, steps = case.args
    P_fc, y_cov, x_mean = got.get("P_fc"), got.get("y_cov"), got.get("x_mean")
    e = case.expect
    hints = []
    if x_mean is not None and x_mean.shape == e["x_mean"].shape and not np.allclose(x, e["x_mean"][0]) \
            and np.allclose(x_mean[0], x):
        hints.append("row 0 is horizon h = 1: x_{T+1|T} = F x_{T|T}, not x_{T|T}")
    if P_fc is not None and P_fc.shape == e["P_fc"].shape and not np.allclose(P_fc, e["P_fc"]):
        powers = [np.linalg.matrix_power(F, k) for k in range(1, steps + 1)]
        mistakes = [
            ([F @ P @ F.T + Q] * steps, "the uncertainty grows with the horizon: start each step from the "
             "previous horizon's covariance, P_{T+h|T} = F P_{T+h-1|T} F' + Q, not from P_{T|T}"),
            ([Fk @ P @ Fk.T + Q for Fk in powers], "add Q at every step, not once: P_{T+h|T} = "
             "F P_{T+h-1|T} F' + Q"),
            ([Fk @ P @ Fk.T + k * Q for k, Fk in enumerate(powers, 1)], "the disturbances of earlier steps "
             "move with the state: P_{T+h|T} = F P_{T+h-1|T} F' + Q (not F^h P F^h' + h Q)"),
            ([Fk @ P @ Fk.T for Fk in powers], "add the process noise: P_{T+h|T} = F P_{T+h-1|T} F' + Q"),
        ]
        P_T = P
        wrong_turn = []
        for _ in range(steps):
            P_T = F.T @ P_T @ F + Q
            wrong_turn.append(P_T)
        mistakes.append((wrong_turn, "P_{T+h|T} = F P F' + Q, not F' P F + Q"))
        for wrong, hint in mistakes:
            if np.allclose(P_fc, wrong) and not np.allclose(wrong, e["P_fc"]):
                hints.append(hint)
                break
    if y_cov is not None and y_cov.shape == e["y_cov"].shape and not np.allclose(y_cov, e["y_cov"]):
        if np.allclose(y_cov, e["y_cov"] - R):
            hints.append("Var(y_{T+h}) = H P_{T+h|T} H' + R: add R, the irregular")
        elif len(R) > 1 and np.allclose(y_cov, e["y_cov"] * np.eye(len(R))):
            hints.append("with two or more observed series y_cov is the whole matrix H P H' + R, "
                         "the covariances between the series included, not only its diagonal")
    return hints


def forecast_check(case, got):
    e = case.expect
    steps = case.args[-1]
    n, m = e["x_mean"].shape[1], e["y_mean"].shape[1]
    problems = []
    for name in FORECAST_NAMES:
        g = got.get(name)
        if g is not None and g.shape != e[name].shape:
            problems.append(f"{name} must have shape {e[name].shape} (steps = {steps}, n = {n}, m = {m}); "
                            f"it has shape {g.shape}")
    if problems:
        return problems
    for name in FORECAST_NAMES:
        problems += compare(name, got.get(name), e[name], rtol=1e-7,
                            atol=1e-9 * (1 + np.max(np.abs(e[name]))))
    if problems:
        problems += _forecast_hints(case, got)
    return problems


PARTS = [
    Part("seasonal_dummy", "seasonal_dummy_block", "seasonal_dummy_block(s, var)",
         dummy_cases, check=dummy_check, returns=("F", "H", "Q")),
    Part("local_linear_trend", "local_linear_trend_block", "local_linear_trend_block(level_var, slope_var)",
         trend_cases, check=trend_check, returns=("F", "H", "Q")),
    Part("trig_seasonal", "trig_seasonal_block", "trig_seasonal_block(s, h, var)",
         trig_cases, check=trig_check, returns=("F", "H", "Q")),
    Part("combine", "combine_blocks", "combine_blocks(blocks, irregular_var)",
         combine_cases, check=combine_check, returns=("F", "H", "Q", "R"),
         arg_names=("blocks", "irregular_var"), from_plain=combine_args),
    Part("forecast", "forecast_moments", "forecast_moments(F, H, Q, R, x, P, steps)",
         forecast_cases, check=forecast_check, returns=FORECAST_NAMES,
         arg_names=("F", "H", "Q", "R", "x", "P", "steps")),
]
