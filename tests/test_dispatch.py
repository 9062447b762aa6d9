"""The default functions dispatch: kalman_filter, rts_smoother and em return
what the step-by-step reference returns (to round-off), by the fast paths.

The reference here is ``kflib.filter.reference_filter`` and
``kflib.smoother.reference_smoother`` (one loop iteration per step), and, on
the ill-conditioned models of tests/test_accuracy.py, 60-digit arithmetic.
Which path ran is checked with mocks that wrap the functions, never by timing.
"""

from __future__ import annotations

import warnings
from unittest import mock

import numpy as np
import pytest

import kflib
import kflib.fast
import kflib.filter
import kflib.smoother
from kflib import LinearGaussianSSM, em, kalman_filter, models, rts_smoother, simulate
from kflib.filter import reference_filter
from kflib.smoother import ConditioningWarning, reference_smoother
from conftest import random_model
from test_accuracy import CASES, TOL, exact_filter_and_smoother, rel_cov, rel_mean

F_FIELDS = ("x_pred", "P_pred", "x_filt", "P_filt", "S", "K")
S_FIELDS = ("x_smooth", "P_smooth", "P_lag1", "G", "x0_smooth", "P0_smooth")


def assert_same(got, ref, fields, tol=1e-10):
    """Each field equal to ``tol`` of its largest entry (round-off on these sizes)."""
    for name in fields:
        a, b = np.asarray(getattr(got, name)), np.asarray(getattr(ref, name))
        assert a.shape == b.shape, name
        scale = max(np.abs(b).max(), 1e-300)
        err = np.abs(a - b).max() / scale
        assert err < tol, f"{name}: relative difference {err:.1e}"


def assert_filters_equal(got, ref, tol=1e-10):
    assert_same(got, ref, F_FIELDS, tol)
    # innovations are NaN where nothing was observed, in both
    assert np.array_equal(np.isnan(got.innovations), np.isnan(ref.innovations))
    nu_g, nu_r = np.nan_to_num(got.innovations), np.nan_to_num(ref.innovations)
    assert np.abs(nu_g - nu_r).max() <= tol * max(np.abs(nu_r).max(), 1.0), "innovations"
    np.testing.assert_allclose(got.loglik, ref.loglik, rtol=tol)
    assert type(got.loglik) is type(ref.loglik)


def _holes(rng, y, p=0.1):
    y = y.copy()
    y[rng.random(y.shape) < p] = np.nan
    return y


def _case(name, rng):
    """(model, y, u) for one kind of random problem."""
    T = 400
    u = None
    if name == "complete":
        model = random_model(rng, 3, 2)
        y = simulate(model, T, rng=rng)[1]
    elif name == "missing":
        model = random_model(rng, 3, 2)
        y = _holes(rng, simulate(model, T, rng=rng)[1])
    elif name == "time-varying":
        model = random_model(rng, 2, 1, T=T, tv=True)
        y = simulate(model, T, rng=rng)[1]
    elif name == "time-varying, missing, controls":
        model = random_model(rng, 2, 2, r=1, T=T, tv=True)
        u = rng.standard_normal((T, 1))
        y = _holes(rng, simulate(model, T, rng=rng, u=u)[1])
    elif name == "controls":
        model = random_model(rng, 2, 1, r=2)
        u = rng.standard_normal((T, 2))
        y = simulate(model, T, rng=rng, u=u)[1]
    elif name == "intercepts":
        base = random_model(rng, 2, 2)
        model = base.replace(c=rng.standard_normal(2), d=rng.standard_normal((T, 2)))
        y = _holes(rng, simulate(model, T, rng=rng)[1], 0.05)
    elif name == "batch":
        model = random_model(rng, 2, 1)
        y = np.stack([simulate(model, 150, rng=rng)[1] for _ in range(6)])
    elif name == "batch, missing, controls":
        model = random_model(rng, 2, 2, r=1)
        u = rng.standard_normal((5, 150, 1))
        y = np.stack([simulate(model, 150, rng=rng, u=u[i])[1] for i in range(5)])
        y = _holes(rng, y)
    elif name == "short":
        model = random_model(rng, 2, 1)
        y = simulate(model, 5, rng=rng)[1]
    else:
        raise KeyError(name)
    return model, y, u


RANDOM = ["complete", "missing", "time-varying", "time-varying, missing, controls",
          "controls", "intercepts", "batch", "batch, missing, controls", "short"]


PATHS = ["numpy", "compiled"]


@pytest.fixture
def path(request, monkeypatch):
    """The numpy fast paths, or the compiled loops (numba) at every size."""
    if request.param == "compiled":
        if not kflib.fast._kernels.AVAILABLE:
            pytest.skip("numba is not installed")
        monkeypatch.setattr(kflib.fast, "COMPILED_ABOVE", 0)
        monkeypatch.setattr(kflib.fast, "COMPILED_GENERAL_ABOVE", 0)
    else:
        monkeypatch.setattr(kflib.fast, "COMPILED", False)
    return request.param


@pytest.fixture(scope="module")
def exact():
    return {name: exact_filter_and_smoother(model, y) for name, (model, y, _) in CASES.items()}


@pytest.mark.parametrize("path", PATHS, indirect=True)
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", RANDOM)
def test_random_models_equal_the_reference(name, seed, path):
    rng = np.random.default_rng(1000 + seed)
    model, y, u = _case(name, rng)
    ref = reference_filter(model, y, u=u)
    got = kalman_filter(model, y, u=u)
    assert_filters_equal(got, ref)
    assert_same(rts_smoother(model, got), reference_smoother(model, ref), S_FIELDS)
    # the smoother dispatches on any filter result, the reference's included
    assert_same(rts_smoother(model, ref), reference_smoother(model, ref), S_FIELDS)


@pytest.mark.parametrize("path", PATHS, indirect=True)
@pytest.mark.parametrize("case", CASES)
def test_ill_conditioned_models_equal_the_reference_and_exact_arithmetic(case, path, exact):
    model, y, smooth_tol = CASES[case]
    exact = exact[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # neither says anything
        ref = reference_filter(model, y)
        got = kalman_filter(model, y)
        ref_s = reference_smoother(model, ref)
        got_s = rts_smoother(model, got)
    for filt in (ref, got):
        assert rel_mean(filt.x_filt, exact["x_filt"]) < TOL, "x_filt"
        assert rel_cov(filt.P_filt, exact["P_filt"]) < TOL, "P_filt"
        assert abs(filt.loglik - exact["loglik"]) < TOL * abs(exact["loglik"]), "loglik"
    assert rel_mean(got.x_filt, ref.x_filt) < 2 * TOL
    assert rel_cov(got.P_filt, ref.P_filt) < 2 * TOL
    for smooth in (ref_s, got_s):
        assert rel_mean(smooth.x_smooth, exact["x_smooth"]) < smooth_tol, "x_smooth"
        assert rel_cov(smooth.P_smooth, exact["P_smooth"]) < 10 * smooth_tol, "P_smooth"
    assert rel_mean(got_s.x_smooth, ref_s.x_smooth) < 2 * smooth_tol


def test_a_nearly_singular_predicted_covariance_behaves_alike_on_both_paths():
    # the ill-conditioned trend of tests/test_accuracy.py (P(t+1|t) has a real
    # variance 1e-15 of its largest): both smoothers give the exact answer's
    # moments, and they warn (or not) alike
    model = LinearGaussianSSM(F=[[1.0, 1.0], [0.0, 1.0]], H=[[1.0, 0.0]],
                              Q=np.diag([1e-12, 1e-14]), R=1e-8, x0=[0, 0], P0=1e6 * np.eye(2))
    rng = np.random.default_rng(10)
    y = 1e-3 * rng.standard_normal(120)
    y[[3, 50, 51, 52]] = np.nan
    exact = exact_filter_and_smoother(model, y)
    said = []
    for filt_fn, smooth_fn in ((reference_filter, reference_smoother),
                               (kalman_filter, rts_smoother)):
        filt = filt_fn(model, y)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConditioningWarning)
            smooth = smooth_fn(model, filt)
        said.append(any(issubclass(w.category, ConditioningWarning) for w in caught))
        assert rel_mean(filt.x_filt, exact["x_filt"]) < TOL
        assert rel_mean(smooth.x_smooth, exact["x_smooth"]) < 1e-3
        eig = np.linalg.eigvalsh(smooth.P_smooth)
        assert np.all(eig[..., 0] >= -1e-14 * eig[..., -1])
    assert said[0] == said[1]


def test_em_equals_em_on_the_reference_paths():
    """em's fit equals the fit whose E-steps run the step-by-step loops."""
    model = models.local_level(1.0, 1.0, x0=0.0, P0=1.0)
    y = simulate(model, 300, rng=np.random.default_rng(3))[1]
    y[[20, 21, 150]] = np.nan
    start = model.replace(Q=[[4.0]], R=[[0.3]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                # a few iterations do not converge
        fit = em(y, start, n_iter=5, tol=0.0)
        with mock.patch("kflib.em.fast_filter", reference_filter), \
                mock.patch("kflib.em.fast_smoother", reference_smoother):
            ref = em(y, start, n_iter=5, tol=0.0)
    np.testing.assert_allclose(fit.loglik_history, ref.loglik_history, rtol=1e-12)
    for p in ("Q", "R"):
        np.testing.assert_allclose(getattr(fit.model, p), getattr(ref.model, p), rtol=1e-10)


# -- which path runs ------------------------------------------------------------------

def _spies():
    return (mock.patch("kflib.fast._fast_filter", wraps=kflib.fast._fast_filter),
            mock.patch("kflib.fast.scan_filter", wraps=kflib.fast.scan_filter),
            mock.patch("kflib.filter.reference_filter", wraps=kflib.filter.reference_filter))


def test_large_problems_take_the_compiled_loops_when_numba_is_there():
    if not kflib.fast._kernels.AVAILABLE:
        pytest.skip("numba is not installed")
    model = models.constant_velocity(1.0, 0.05, 9.0, x0=[0.0, 0.0], P0=np.eye(2))
    rng = np.random.default_rng(5)
    y = simulate(model, kflib.fast.COMPILED_ABOVE, rng=rng)[1]
    with mock.patch("kflib._kernels.steady_outputs", wraps=kflib._kernels.steady_outputs) as means:
        kalman_filter(model, y)
    assert means.called
    y = _holes(rng, simulate(model, kflib.fast.COMPILED_GENERAL_ABOVE, rng=rng)[1])
    with mock.patch("kflib._kernels.sequential_filter",
                    wraps=kflib._kernels.sequential_filter) as seq, \
            mock.patch("kflib.fast.scan_filter", wraps=kflib.fast.scan_filter) as scan:
        kalman_filter(model, y)
    assert seq.called and not scan.called


def test_a_long_complete_series_takes_the_steady_state_path():
    model = models.constant_velocity(1.0, 0.05, 9.0, x0=[0.0, 0.0], P0=np.eye(2))
    y = simulate(model, 3000, rng=np.random.default_rng(0))[1]
    fast, scan, ref = _spies()
    with fast as f, scan as s, ref as r:
        kalman_filter(model, y)
    assert f.called and not s.called and not r.called


@pytest.mark.parametrize("kind", ["missing", "time-varying"])
def test_missing_values_and_time_variation_take_the_scan(kind, monkeypatch):
    monkeypatch.setattr(kflib.fast, "COMPILED", False)     # the numpy path
    rng = np.random.default_rng(1)
    if kind == "missing":
        model = random_model(rng, 2, 1)
        y = _holes(rng, simulate(model, 2000, rng=rng)[1])
    else:
        model = random_model(rng, 2, 1, T=2000, tv=True)
        y = simulate(model, 2000, rng=rng)[1]
    fast, scan, ref = _spies()
    with fast as f, scan as s, ref as r:
        filt = kalman_filter(model, y)
        with mock.patch("kflib.fast.scan_smoother", wraps=kflib.fast.scan_smoother) as ss, \
                mock.patch("kflib.fast.reference_smoother",
                           wraps=kflib.fast.reference_smoother) as rs:
            rts_smoother(model, filt)
    assert f.called and s.called and not r.called
    assert ss.called and not rs.called


def test_a_tiny_problem_takes_the_step_by_step_loop():
    model = random_model(np.random.default_rng(2), 2, 1)
    fast, scan, ref = _spies()
    with fast as f, scan as s, ref as r:
        kalman_filter(model, np.ones((kflib.filter.SEQUENTIAL_BELOW - 1, 1)))
    assert r.called and not f.called and not s.called


def test_a_diffuse_start_goes_to_the_exact_initial_filter():
    model = LinearGaussianSSM(F=1, H=1, Q=1, R=1, a1=[0.0], P1=[[1.0]]) \
        if "a1" in LinearGaussianSSM.__dataclass_fields__ else None
    if model is None:
        pytest.skip("the model has no a1/P1 start")
    y = np.random.default_rng(3).standard_normal(200)
    with mock.patch("kflib.diffuse.exact_filter", wraps=kflib.diffuse.exact_filter) as ex, \
            mock.patch("kflib.fast._fast_filter", wraps=kflib.fast._fast_filter) as f:
        kalman_filter(model, y)
    assert ex.called and not f.called


def test_bad_input_is_named_by_the_dispatching_functions():
    model = random_model(np.random.default_rng(4), 2, 1)
    with pytest.raises(ValueError, match=r"y must have shape"):
        kalman_filter(model, np.ones((100, 3)))
    with pytest.raises(TypeError, match=r"filt must be the FilterResult"):
        rts_smoother(model, np.ones((100, 2)))
    assert kflib.reference_filter is reference_filter
    assert kflib.reference_smoother is reference_smoother


# -- the compiled loops: the scalar kernels for two states and one observation, the
#    settled covariance path, overflow, and the numpy fallback -----------------------

def assert_filters_close(got, ref, tol):
    """:func:`assert_filters_equal`, the innovations measured against the size of
    the predictions they are the difference from (y - H x rounds at eps |x|,
    which is far above eps |y - H x| when the state drifts far from zero)."""
    assert_same(got, ref, F_FIELDS, tol)
    assert np.array_equal(np.isnan(got.innovations), np.isnan(ref.innovations))
    scale = max(np.nanmax(np.abs(ref.innovations)), np.abs(ref.x_pred).max(), 1.0)
    err = np.nanmax(np.abs(got.innovations - ref.innovations)) / scale
    assert err < tol, f"innovations: relative difference {err:.1e}"
    np.testing.assert_allclose(got.loglik, ref.loglik, rtol=tol)


def _two_one_cases(rng):
    """(name, model, y, u) with two states and one observation: what the scalar
    kernels serve (missing values, time-varying matrices, controls, intercepts,
    a vague start next to a gap, a batch)."""
    T = 300
    cv = models.constant_velocity(1.0, 0.05, 9.0, x0=[0.0, 0.0], P0=np.eye(2))
    tv = random_model(rng, 2, 1, r=1, T=T, tv=True)
    u = rng.standard_normal((T, 1))
    y_tv = _holes(rng, simulate(tv, T, rng=rng, u=u)[1], 0.2)
    y_tv[:4] = np.nan
    vague = cv.replace(P0=1e16 * np.eye(2))
    y_v = simulate(cv, T, rng=rng)[1]
    y_v[[1, 2, 5]] = np.nan
    icpt = cv.replace(c=rng.standard_normal(2), d=rng.standard_normal((T, 1)))
    yb = _holes(rng, np.stack([simulate(cv, T, rng=rng)[1] for _ in range(4)]))
    return [("time-varying, missing, controls", tv, y_tv, u),
            ("vague start next to a gap", vague, y_v, None),
            ("intercepts, missing", icpt, _holes(rng, simulate(icpt, T, rng=rng)[1]), None),
            ("batch, missing", cv, yb, None)]


@pytest.mark.parametrize("path", PATHS, indirect=True)
def test_two_states_one_observation_equal_the_reference(path):
    # the compiled loop runs the reference's own steps; the scan equals it to
    # round-off of its element products
    tol = 1e-12 if path == "compiled" else 1e-10
    for name, model, y, u in _two_one_cases(np.random.default_rng(40)):
        ref = reference_filter(model, y, u=u)
        got = kalman_filter(model, y, u=u)
        assert_filters_close(got, ref, tol)
        assert_same(rts_smoother(model, got), reference_smoother(model, ref), S_FIELDS)


def test_the_scalar_kernel_runs_for_two_states_and_one_observation(monkeypatch):
    if not kflib.fast._kernels.AVAILABLE:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(kflib.fast, "COMPILED_ABOVE", 0)
    name, model, y, u = _two_one_cases(np.random.default_rng(41))[0]
    with mock.patch("kflib._kernels.sequential_filter",
                    wraps=kflib._kernels.sequential_filter) as seq:
        kalman_filter(model, y, u=u)
    assert seq.called
    assert kflib._kernels._CACHE.get("_sequential_2_1") is not None


@pytest.mark.parametrize("path", PATHS, indirect=True)
@pytest.mark.parametrize("q", [1e-4, 1e-6])
def test_slowly_settling_covariances_equal_the_reference(q, path):
    # a closed loop near 1 (gain about sqrt(q)): the covariances creep towards
    # their limit by less than rtol per step long before they reach it, and
    # they count as settled only after 1 / (1 - rho^2) steps within rtol
    rng = np.random.default_rng(42)
    model = models.constant_velocity(1.0, q, 1.0, x0=[0.0, 0.0], P0=np.eye(2))
    y = simulate(model, 4000, rng=rng)[1]
    ll = models.local_level(q, 1.0, x0=0.0, P0=1.0)
    y1 = simulate(ll, 4000, rng=rng)[1]
    for m, yy in ((model, y), (ll, y1)):
        ref = reference_filter(m, yy)
        got = kalman_filter(m, yy)
        assert_filters_close(got, ref, 1e-12)


def test_the_settled_covariances_are_the_recursions_to_round_off():
    # the compiled and the numpy settling agree with each other and with every
    # step of the recursion after it
    model = models.constant_velocity(1.0, 0.05, 9.0, x0=[0.0, 0.0], P0=np.eye(2))
    full = kflib.fast.riccati_path(model, 600)
    for compiled in ([False, True] if kflib.fast._kernels.AVAILABLE else [False]):
        head, ks = kflib.fast.settled_path(model, 600, 1e-15, compiled)
        assert ks < 200
        P = head.P_pred[ks]
        assert np.abs(full.P_pred[ks:] - P).max() <= 1e-15 * np.abs(P).max()
        assert np.abs(full.K[ks:] - head.K[ks]).max() <= 1e-14 * np.abs(head.K[ks]).max()


@pytest.mark.parametrize("path", PATHS, indirect=True)
@pytest.mark.parametrize("case", ["F=1e200", "y=1e160"])
def test_overflow_is_named_on_every_path(case, path):
    cv = models.constant_velocity(1.0, 0.05, 9.0, x0=[0.0, 0.0], P0=np.eye(2))
    if case == "F=1e200":
        model, y = cv.replace(F=1e200 * np.eye(2)), np.ones(40)
        match = r"predicted covariance .* not finite at time index 0"
    else:
        model, y = cv, np.ones(40)
        y[7], y[9] = 1e160, np.nan
        match = r"not finite at time index 7"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=match):
            kalman_filter(model, y)


def test_the_numpy_fallback_gives_the_compiled_numbers(tmp_path):
    """KFLIB_NO_NUMBA=1 (numba absent): the same numbers, by the numpy paths."""
    if not kflib.fast._kernels.AVAILABLE:
        pytest.skip("numba is not installed: only the numpy path exists")
    import os
    import subprocess
    import sys
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, numpy as np\n"
        "import kflib, kflib.fast, kflib._kernels\n"
        "from kflib import models, simulate, kalman_filter, rts_smoother\n"
        "assert not kflib._kernels.AVAILABLE and not kflib.fast.COMPILED\n"
        "cv = models.constant_velocity(1.0, 0.05, 9.0, x0=[0.0, 0.0], P0=np.eye(2))\n"
        "y = simulate(cv, 30000, rng=0)[1]\n"
        "ym = y.copy(); ym[::7] = np.nan\n"
        "Y = np.stack([simulate(cv, 100, rng=i)[1] for i in range(300)])\n"
        "out = {}\n"
        "for key, yy in (('complete', y), ('missing', ym), ('batch', Y)):\n"
        "    f = kalman_filter(cv, yy)\n"
        "    s = rts_smoother(cv, f)\n"
        "    out.update({f'{key}_{k}': np.asarray(getattr(f, k)) for k in\n"
        "                ('x_filt', 'P_filt', 'P_pred', 'K', 'S', 'loglik')})\n"
        "    out[f'{key}_x_smooth'] = s.x_smooth\n"
        "np.savez(sys.argv[1], **out)\n")
    env = dict(os.environ, KFLIB_NO_NUMBA="1")
    subprocess.run([sys.executable, str(script), str(tmp_path / "out.npz")], check=True,
                   env=env, cwd=tmp_path)
    numpy_out = np.load(tmp_path / "out.npz")
    cv = models.constant_velocity(1.0, 0.05, 9.0, x0=[0.0, 0.0], P0=np.eye(2))
    y = simulate(cv, 30000, rng=0)[1]
    ym = y.copy()
    ym[::7] = np.nan
    Y = np.stack([simulate(cv, 100, rng=i)[1] for i in range(300)])
    for key, yy in (("complete", y), ("missing", ym), ("batch", Y)):
        f = kalman_filter(cv, yy)                     # compiled: above COMPILED_ABOVE
        got = dict(x_filt=f.x_filt, P_filt=f.P_filt, P_pred=f.P_pred, K=f.K, S=f.S,
                   loglik=f.loglik, x_smooth=rts_smoother(cv, f).x_smooth)
        for k, v in got.items():
            ref = numpy_out[f"{key}_{k}"]
            err = np.abs(np.asarray(v) - ref).max() / np.abs(ref).max()
            assert err < 1e-12, f"{key} {k}: relative difference {err:.1e}"


def test_the_compiled_smoother_runs_where_the_rts_step_is_exact_and_declines_elsewhere(
        monkeypatch):
    if not kflib.fast._kernels.AVAILABLE:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(kflib.fast, "COMPILED_ABOVE", 0)
    rng = np.random.default_rng(43)
    cv = models.constant_velocity(1.0, 0.05, 9.0, x0=[0.0, 0.0], P0=np.eye(2))
    y = _holes(rng, simulate(cv, 200, rng=rng)[1])
    # a trend without slope noise next to a known start: P(t+1|t) nearly singular
    trend = LinearGaussianSSM(F=[[1.0, 1.0], [0.0, 1.0]], H=[[1.0, 0.0]],
                              Q=np.diag([1.0, 0.0]), R=1.0, x0=[0, 0], P0=np.zeros((2, 2)))
    y_t = simulate(trend, 200, rng=rng)[1]
    for model, yy, used in ((cv, y, True), (trend, y_t, False)):
        filt = kalman_filter(model, yy)
        returned = []
        real = kflib._kernels.rts_2

        def spy(*args):
            returned.append(real(*args))
            return returned[-1]
        with mock.patch("kflib._kernels.rts_2", spy):
            got = rts_smoother(model, filt)
        assert len(returned) == 1 and (returned[0] is not None) == used
        assert_same(got, reference_smoother(model, reference_filter(model, yy)), S_FIELDS)
