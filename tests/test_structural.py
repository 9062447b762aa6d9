"""kflib.structural: the blocks' closed forms, and the combined models against
statsmodels' UnobservedComponents (log-likelihood and smoothed components)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from kflib import LinearGaussianSSM, kalman_filter, rts_smoother, simulate
from kflib import structural as st

RTOL = 1e-8


def close(actual, expected, rtol=RTOL):
    """Relative to the size of the whole array (entries near zero included)."""
    expected = np.asarray(expected, dtype=float)
    scale = max(float(np.max(np.abs(expected))), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def same_roots(got, want, tol=1e-9):
    """Two lists of complex numbers are equal as multisets."""
    got, want = list(np.asarray(got)), list(np.asarray(want))
    assert len(got) == len(want), (got, want)
    for w in want:
        i = int(np.argmin([abs(g - w) for g in got]))
        assert abs(got[i] - w) < tol, (w, got)
        got.pop(i)


def free_response(F, H, N):
    """Rows H F^t, t = 0..N-1: how each initial state shows in y_t without noise."""
    rows, M = [], np.eye(F.shape[0])
    for _ in range(N):
        rows.append(H[0] @ M)
        M = F @ M
    return np.array(rows)


# --------------------------------------------------------------------------
# the blocks themselves


def test_local_level_and_trend_matrices():
    b = st.local_level(0.3)
    assert (b.name, b.k, b.state_names) == ("level", 1, ("level",))
    close(b.F, [[1.0]]), close(b.H, [[1.0]]), close(b.Q, [[0.3]])
    t = st.local_linear_trend(2.0, 0.5)
    close(t.F, [[1, 1], [0, 1]])
    close(t.H, [[1, 0]])
    close(t.Q, np.diag([2.0, 0.5]))
    assert t.state_names == ("trend.level", "trend.slope")
    # without noise: mu_t = mu_0 + t beta_0
    close(free_response(t.F, t.H, 5), [[1, t_] for t_ in range(5)])


@pytest.mark.parametrize("s", [2, 3, 4, 7, 12])
def test_seasonal_dummy_repeats_every_s_steps_and_sums_to_zero(s):
    b = st.seasonal_dummy(s, 1.5)
    assert b.k == s - 1
    # gamma_t = -(gamma_{t-1} + ... + gamma_{t-s+1}) + omega_t, state (gamma_t, lags)
    close(b.F[0], -np.ones(s - 1))
    if s > 2:
        close(b.F[1:, :-1], np.eye(s - 2))
    close(b.H[0], np.eye(1, s - 1)[0])
    Q = np.zeros((s - 1, s - 1))
    Q[0, 0] = 1.5
    close(b.Q, Q)
    h = free_response(b.F, b.H, 4 * s)
    close(h[s:], h[:-s], rtol=1e-12)                                  # period s
    close(np.array([h[t:t + s].sum(0) for t in range(3 * s)]), 0.0 * h[:3 * s])
    # the s-th roots of unity except 1
    eig = np.linalg.eigvals(b.F)
    roots = np.exp(2j * np.pi * np.arange(1, s) / s)
    same_roots(eig, roots)


@pytest.mark.parametrize("s,h", [(12, 6), (12, 3), (7, 3), (7, 1), (4, 2), (2, 1), (365, 4)])
def test_seasonal_trig_frequencies_and_states(s, h):
    b = st.seasonal_trig(s, 0.2, harmonics=h)
    nyquist = 2 * h == s
    assert b.k == 2 * h - nyquist
    lam = 2 * np.pi * np.arange(1, h + 1) / s
    want = np.concatenate([np.exp(1j * lam), np.exp(-1j * lam[: h - nyquist])])
    same_roots(np.linalg.eigvals(b.F), want)
    close(b.Q, 0.2 * np.eye(b.k))
    # each gamma_{j,t} loads on y; the starred states do not
    assert b.H.sum() == h
    # without noise, a sum of sinusoids of period s/j: repeats every s steps
    resp = free_response(b.F, b.H, 3 * s)
    close(resp[s:], resp[:-s], rtol=1e-9)


@pytest.mark.parametrize("s", [2, 3, 4, 7, 12])
def test_full_trig_and_dummy_span_the_same_patterns(s):
    """Without noise both forms produce exactly the zero-sum patterns of period s."""
    d, t = st.seasonal_dummy(s, 0.0), st.seasonal_trig(s, 0.0)
    assert d.k == t.k == s - 1
    A, B = free_response(d.F, d.H, s), free_response(t.F, t.H, s)
    assert np.linalg.matrix_rank(A) == s - 1
    assert np.linalg.matrix_rank(np.hstack([A, B])) == s - 1


def test_cycle_matrices_and_stationary_variance():
    lam, rho, var = 2 * np.pi / 40, 0.95, 0.7
    b = st.cycle(lam, rho, var)
    c, s = np.cos(lam), np.sin(lam)
    close(b.F, rho * np.array([[c, s], [-s, c]]))
    close(b.H, [[1.0, 0.0]])
    close(b.Q, var * np.eye(2))
    P = scipy.linalg.solve_discrete_lyapunov(b.F, b.Q)
    close(P, var / (1 - rho**2) * np.eye(2), rtol=1e-10)
    assert b.state_names == ("cycle", "cycle*")


def test_irregular_as_a_state_has_the_same_likelihood_as_R(rng):
    trend, seas = st.local_linear_trend(0.5, 0.01), st.seasonal_dummy(4, 0.2)
    y = np.cumsum(rng.standard_normal(50))[:, None]
    y[[3, 20]] = np.nan
    in_R = st.combine(trend, seas, irregular_var=2.0, P0=10 * np.eye(5))
    as_state = st.combine(trend, seas, st.irregular(2.0), irregular_var=0.0,
                          P0=scipy.linalg.block_diag(10 * np.eye(5), 0.0))
    f1, f2 = kalman_filter(in_R, y), kalman_filter(as_state, y)
    close(f2.loglik, f1.loglik, rtol=1e-10)
    # the state version's smoothed irregular is y minus the other components
    s2 = rts_smoother(as_state, f2)
    comp = st.components([trend, seas, st.irregular(2.0)], s2.x_smooth)
    obs = ~np.isnan(y[:, 0])
    close(comp["irregular"][obs], (y[:, 0] - comp["trend"] - comp["seasonal"])[obs], rtol=1e-9)


def test_combine_is_block_diagonal():
    blocks = [st.local_linear_trend(1.0, 0.1), st.seasonal_dummy(4, 0.5), st.cycle(0.3, 0.9, 2.0)]
    model = st.combine(*blocks, irregular_var=3.0)
    assert isinstance(model, LinearGaussianSSM) and (model.n, model.m) == (7, 1)
    close(model.F, scipy.linalg.block_diag(*(b.F for b in blocks)))
    close(model.Q, scipy.linalg.block_diag(*(b.Q for b in blocks)))
    close(model.H, np.hstack([b.H for b in blocks]))
    close(model.R, [[3.0]])
    close(model.x0, np.zeros(7))
    close(model.P0, 1e6 * np.eye(7))
    assert st.block_slices(blocks) == {"trend": slice(0, 2), "seasonal": slice(2, 5),
                                       "cycle": slice(5, 7)}
    assert st.state_names(blocks) == ("trend.level", "trend.slope", "seasonal",
                                      "seasonal.lag1", "seasonal.lag2", "cycle", "cycle*")


def test_components_add_up_and_keep_batch_axes(rng):
    blocks = [st.local_linear_trend(1.0, 0.1), st.seasonal_trig(12, 0.5, harmonics=2),
              st.cycle(0.3, 0.9, 2.0)]
    model = st.combine(*blocks, irregular_var=1.0, P0=np.eye(8))
    x, y = simulate(model, 30, rng=rng)
    comp = st.components(blocks, x)
    assert set(comp) == {"trend", "seasonal", "cycle"}
    close(sum(comp.values()), (x @ model.H.T)[:, 0], rtol=1e-12)
    batch = np.stack([x, 2 * x])
    comp_b = st.components(blocks, batch)
    assert comp_b["cycle"].shape == (2, 30)
    close(comp_b["cycle"][1], 2 * comp["cycle"])
    filt = kalman_filter(model, y)
    smooth = rts_smoother(model, filt)
    var = st.component_variances(blocks, smooth.P_smooth)
    sl = st.block_slices(blocks)
    for b in blocks:
        h = b.H[0]
        want = np.einsum("i,tij,j->t", h, smooth.P_smooth[:, sl[b.name], sl[b.name]], h)
        close(var[b.name], want)
        assert var[b.name].shape == (30,)


# --------------------------------------------------------------------------
# against statsmodels' UnobservedComponents


def _embedding(n_ours, n_sm, extra):
    """E with sm_state = E our_state; `extra` lists the sm states we do not have."""
    keep = [i for i in range(n_sm) if i not in extra]
    assert len(keep) == n_ours
    E = np.zeros((n_sm, n_ours))
    E[keep, np.arange(n_ours)] = 1.0
    return E


SPECS = {
    # the chapter's model: local linear trend + dummy seasonal 12
    "llt+dummy12": dict(
        sm=dict(level="local linear trend", seasonal=12, stochastic_seasonal=True),
        params=[4.0, 0.3, 0.01, 0.2],
        blocks=lambda p: [st.local_linear_trend(p[1], p[2]), st.seasonal_dummy(12, p[3])],
        extra=[], missing=False),
    # local level + trig seasonal with 3 harmonics + damped stochastic cycle, missing data
    "level+trig12h3+cycle": dict(
        sm=dict(level="local level", freq_seasonal=[{"period": 12, "harmonics": 3}],
                cycle=True, damped_cycle=True, stochastic_cycle=True),
        params=[1.5, 0.2, 0.05, 0.8, 2 * np.pi / 30, 0.93],
        blocks=lambda p: [st.local_level(p[1]), st.seasonal_trig(12, p[2], harmonics=3),
                          st.cycle(p[4], p[5], p[3])],
        extra=[], missing=True),
    # smooth trend (no level noise) + full trig seasonal, period 4: statsmodels
    # keeps a second, unobserved state for the frequency-pi harmonic
    "strend+trig4full": dict(
        sm=dict(level="smooth trend", freq_seasonal=[{"period": 4}]),
        params=[2.0, 0.02, 0.3],
        blocks=lambda p: [st.local_linear_trend(0.0, p[1]), st.seasonal_trig(4, p[2])],
        extra=[5], missing=False),
    # local level + dummy seasonal 4 + undamped cycle, missing data
    "level+dummy4+cycle": dict(
        sm=dict(level="local level", seasonal=4, cycle=True, stochastic_cycle=True),
        params=[1.0, 0.5, 0.1, 0.4, 2 * np.pi / 9],
        blocks=lambda p: [st.local_level(p[1]), st.seasonal_dummy(4, p[2]),
                          st.cycle(p[4], 1.0, p[3])],
        extra=[], missing=True),
}


@pytest.mark.parametrize("name", list(SPECS))
def test_loglik_and_components_match_unobserved_components(name):
    """Same parameters and data; statsmodels initialised as known with
    a1 = F x0, P1 = F P0 F' + Q (kflib's first step predicts from x0, P0)."""
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    spec = SPECS[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    p = np.array(spec["params"])
    blocks = spec["blocks"](p)
    n = sum(b.k for b in blocks)
    A = rng.standard_normal((n, n))
    x0 = rng.normal(scale=3.0, size=n)
    model = st.combine(*blocks, irregular_var=p[0], x0=x0, P0=A @ A.T + np.eye(n))
    T = 120
    _, y = simulate(model, T, rng=rng)
    y = y[:, 0] + 50.0
    if spec["missing"]:
        y[rng.random(T) < 0.1] = np.nan
        y[[0, 40, 41, 42]] = np.nan

    mod = UnobservedComponents(y, **spec["sm"])
    assert mod.k_params == len(p), mod.param_names
    mod.update(p)
    E = _embedding(n, mod.k_states, spec["extra"])
    # the same state-space form, state by state
    close(mod.ssm["transition"] @ E, E @ model.F, rtol=1e-12)
    close(mod.ssm["design"] @ E, model.H, rtol=1e-12)
    sm_Q = mod.ssm["selection"] @ mod.ssm["state_cov"] @ mod.ssm["selection"].T
    close(E.T @ sm_Q @ E, model.Q, rtol=1e-12)

    a1 = E @ (model.F @ model.x0)
    P1 = E @ (model.F @ model.P0 @ model.F.T + model.Q) @ E.T
    for i in spec["extra"]:
        P1[i, i] = 1.0
    mod.ssm.initialize_known(a1, P1)
    mod.loglikelihood_burn = 0          # statsmodels keeps its diffuse burn-in otherwise
    res = mod.smooth(p)

    filt = kalman_filter(model, y[:, None])
    smooth = rts_smoother(model, filt)
    close(filt.loglik, res.llf)
    close(smooth.x_smooth, (E.T @ res.smoothed_state).T)
    comp = st.components(blocks, smooth.x_smooth)
    sm_comp = {"level": res.level, "trend": res.level, "cycle": res.cycle}
    sm_seasonal = res.seasonal if spec["sm"].get("seasonal") else res.freq_seasonal[0]
    for b in blocks:
        want = sm_seasonal if b.name == "seasonal" else sm_comp[b.name]
        close(comp[b.name], want.smoothed)
    if "trend" in comp:                  # statsmodels' `trend` is the slope state
        close(smooth.x_smooth[:, 1], res.trend.smoothed)
    var = st.component_variances(blocks, smooth.P_smooth)
    close(var[blocks[0].name], res.level.smoothed_cov)


def test_diffuse_initialisations_of_statsmodels():
    """statsmodels' default (approximate diffuse: a1 = 0, P1 = 1e6 I, the first
    k_states terms left out) and its exact diffuse likelihood, from kflib."""
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    rng = np.random.default_rng(8)
    T = 96
    t = np.arange(1, T + 1)
    y = 10 + 0.5 * t + 3 * np.sin(2 * np.pi * t / 12) + rng.normal(size=T)
    p = [1.0, 0.1, 0.001, 0.05]
    blocks = [st.local_linear_trend(p[1], p[2]), st.seasonal_dummy(12, p[3])]
    d = 13
    base = st.combine(*blocks, irregular_var=p[0])
    F_inv = np.linalg.inv(base.F)

    def with_P1(kappa):
        # P0 such that P1 = F P0 F' + Q = kappa I exactly
        P0 = F_inv @ (kappa * np.eye(d) - base.Q) @ F_inv.T
        return base.replace(x0=np.zeros(d), P0=0.5 * (P0 + P0.T))

    default = UnobservedComponents(y, level="local linear trend", seasonal=12)
    assert default.loglikelihood_burn == d
    filt = kalman_filter(with_P1(1e6), y)
    terms = -0.5 * (np.log(2 * np.pi) + np.log(filt.S[:, 0, 0])
                    + filt.innovations[:, 0] ** 2 / filt.S[:, 0, 0])
    close(terms.sum(), filt.loglik, rtol=1e-12)
    close(terms[d:].sum(), default.loglike(p), rtol=1e-9)

    exact = UnobservedComponents(y, level="local linear trend", seasonal=12,
                                 use_exact_diffuse=True).loglike(p)
    # log L(kappa) + (d/2) log kappa -> the diffuse log-likelihood as kappa grows
    gaps = [abs(kalman_filter(with_P1(k), y).loglik + d / 2 * np.log(k) - exact)
            for k in (1e4, 1e6, 1e8)]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-3


# --------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("call,exc,match", [
    (lambda: st.local_level(-1.0), ValueError, r"level_var must be a non-negative variance; got -1.0"),
    (lambda: st.local_level([1.0, 2.0]), ValueError, r"level_var must be a number; got an array of shape \(2,\)"),
    (lambda: st.local_level("1"), TypeError, r"level_var must be a numeric array; got str"),
    (lambda: st.local_level(np.nan), ValueError, r"level_var contains NaN or inf"),
    (lambda: st.local_linear_trend(1.0, -0.1), ValueError, r"slope_var must be a non-negative variance"),
    (lambda: st.seasonal_dummy(1, 1.0), ValueError, r"period must be at least 2; got 1"),
    (lambda: st.seasonal_dummy(0, 1.0), ValueError, r"period must be at least 1; got 0"),
    (lambda: st.seasonal_dummy(12.0, 1.0), TypeError, r"period must be an int; got float"),
    (lambda: st.seasonal_dummy(True, 1.0), TypeError, r"period must be an int; got bool"),
    (lambda: st.seasonal_dummy(12, -2.0), ValueError, r"var must be a non-negative variance; got -2.0"),
    (lambda: st.seasonal_trig(12, 1.0, harmonics=7), ValueError,
     r"harmonics must be at most floor\(period / 2\) = 6 for period 12; got 7"),
    (lambda: st.seasonal_trig(12, 1.0, harmonics=0), ValueError, r"harmonics must be at least 1; got 0"),
    (lambda: st.seasonal_trig(12, 1.0, harmonics=2.5), TypeError, r"harmonics must be an int; got float"),
    (lambda: st.cycle(0.0, 0.9, 1.0), ValueError, r"frequency must be in \(0, pi\] radians per step; got 0.0"),
    (lambda: st.cycle(4.0, 0.9, 1.0), ValueError, r"frequency must be in \(0, pi\]"),
    (lambda: st.cycle(0.5, 1.2, 1.0), ValueError, r"damping must be in \[0, 1\]; got 1.2"),
    (lambda: st.cycle(0.5, 0.9, -1.0), ValueError, r"var must be a non-negative variance"),
    (lambda: st.irregular(-3.0), ValueError, r"var must be a non-negative variance"),
    (lambda: st.local_level(1.0, name=""), TypeError, r"name must be a non-empty str"),
    (lambda: st.combine(irregular_var=1.0), ValueError, r"combine needs at least one block"),
    (lambda: st.combine([st.local_level(1.0)], irregular_var=1.0), TypeError,
     r"pass the blocks as separate arguments, combine\(\*blocks, \.\.\.\), not one list"),
    (lambda: st.combine(st.local_level(1.0), np.eye(2), irregular_var=1.0), TypeError,
     r"blocks\[1\] must be a kflib.structural.Block; got ndarray"),
    (lambda: st.combine(st.local_level(1.0), irregular_var=-1.0), ValueError,
     r"irregular_var must be a non-negative variance"),
    (lambda: st.combine(st.local_level(1.0)), TypeError, r"irregular_var"),
    (lambda: st.combine(st.local_linear_trend(1.0, 1.0), irregular_var=1.0, x0=np.zeros(3)), ValueError,
     r"x0 must have shape \(2,\); got \(3,\)"),
    (lambda: st.combine(st.local_level(1.0), irregular_var=1.0, P0=[[-1.0]]), ValueError,
     r"P0 must be positive semidefinite"),
    (lambda: st.components([st.local_level(1.0), st.local_level(2.0)], np.zeros((5, 2))), ValueError,
     r"block names must be unique; 'level' repeated \(pass name=\.\.\. when making the blocks\)"),
    (lambda: st.components([st.local_linear_trend(1.0, 1.0)], np.zeros((5, 3))), ValueError,
     r"x must have shape \(\.\.\., 2\), one column per state of the blocks; got \(5, 3\)"),
    (lambda: st.components(np.zeros(3), np.zeros((5, 3))), TypeError,
     r"blocks must be a list or tuple of kflib.structural.Block; got ndarray"),
    (lambda: st.component_variances([st.local_linear_trend(1.0, 1.0)], np.zeros((5, 2))), ValueError,
     r"P must have shape \(\.\.\., 2, 2\); got \(5, 2\)"),
    (lambda: st.Block("b", F=np.eye(2), H=np.ones((1, 3)), Q=np.eye(2)), ValueError,
     r"H must have shape \(1, 2\); got \(1, 3\)"),
    (lambda: st.Block("b", F=np.ones((2, 3)), H=np.ones((1, 2)), Q=np.eye(2)), ValueError,
     r"F must have shape \(k, k\) with k >= 1; got \(2, 3\)"),
    (lambda: st.Block("b", F=np.eye(2), H=np.ones((1, 2)), Q=-np.eye(2)), ValueError,
     r"Q must be positive semidefinite"),
    (lambda: st.Block("b", F=np.eye(2), H=np.ones((1, 2)), Q=np.eye(2), state_names=("a",)), ValueError,
     r"state_names must be 2 strings"),
])
def test_bad_input_fails_with_a_clear_message(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_blocks_are_read_only():
    b = st.seasonal_dummy(4, 1.0)
    with pytest.raises(ValueError, match="read-only"):
        b.F[0, 0] = 5.0
    with pytest.raises(AttributeError):
        b.name = "other"


# --------------------------------------------------------------------------
# the exercise ps08: the instructor's answers against statsmodels


def test_ps08_solution_matches_unobserved_components():
    """The solution's blocks, combined, give statsmodels' log-likelihood and
    smoothed fitted values for a local linear trend + seasonal model."""
    import json
    from pathlib import Path

    from statsmodels.tsa.statespace.structural import UnobservedComponents

    path = Path(__file__).resolve().parents[1] / "solutions" / "ps08-structural" / "ps08-structural.ipynb"
    if not path.exists():
        pytest.skip("no ps08-structural")
    namespace: dict = {}
    for cell in json.loads(path.read_text())["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell["cell_type"] == "code" and not meta.get("grade"):
            source = "".join(cell["source"])
            exec(compile(source, f"<{meta.get('grade_id')}>", "exec"), namespace)

    rng = np.random.default_rng(88)
    T = 80
    t = np.arange(1, T + 1)
    y = 20 + 0.4 * t + 5 * np.sin(2 * np.pi * t / 12) + rng.normal(size=T)
    y[[7, 30]] = np.nan
    cases = [  # statsmodels spec, its params, the blocks from the solution
        (dict(level="local linear trend", seasonal=12), [1.3, 0.2, 0.01, 0.05],
         lambda p: [namespace["local_linear_trend_block"](p[1], p[2]),
                    namespace["seasonal_dummy_block"](12, p[3])], []),
        (dict(level="local linear trend", freq_seasonal=[{"period": 12, "harmonics": 6}]),
         [1.1, 0.3, 0.02, 0.01],
         lambda p: [namespace["local_linear_trend_block"](p[1], p[2]),
                    namespace["trig_seasonal_block"](12, 6, p[3])], [13]),
    ]
    for spec, p, make, extra in cases:
        F, H, Q, R = namespace["combine_blocks"](make(p), p[0])
        n = F.shape[0]
        model = LinearGaussianSSM(F, H, Q, R, np.zeros(n), 100.0 * np.eye(n))
        mod = UnobservedComponents(y, **spec)
        E = _embedding(n, mod.k_states, extra)
        P1 = E @ (F @ model.P0 @ F.T + Q) @ E.T
        for i in extra:
            P1[i, i] = 1.0
        mod.ssm.initialize_known(np.zeros(mod.k_states), P1)
        mod.loglikelihood_burn = 0
        res = mod.smooth(p)
        filt = kalman_filter(model, y[:, None])
        close(filt.loglik, res.llf)
        fitted = (rts_smoother(model, filt).x_smooth @ H.T)[:, 0]
        close(fitted, (mod.ssm["design"][0] @ res.smoothed_state))
