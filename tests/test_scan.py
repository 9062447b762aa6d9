"""The associative-scan filter and smoother equal the sequential reference.

The reference is kflib.reference_filter / kflib.reference_smoother, which are tested
against statsmodels and dense joint-Gaussian conditioning elsewhere.
"""

from unittest import mock

import numpy as np
import pytest

import kflib.fast
from kflib import LinearGaussianSSM, models, reference_filter, reference_smoother, simulate
from kflib.fast import fast_filter, fast_smoother
from kflib.scan import _inverse, scan_filter, scan_smoother
from conftest import random_cov, random_model

F_FIELDS = ("x_pred", "P_pred", "x_filt", "P_filt", "innovations", "S", "K")
S_FIELDS = ("x_smooth", "P_smooth", "P_lag1", "G", "x0_smooth", "P0_smooth")


def assert_same(got, ref, fields, tol=1e-9):
    for name in fields:
        x, y = getattr(got, name), getattr(ref, name)
        assert x.shape == y.shape, name
        scale = np.nanmax(np.abs(y)) if np.isfinite(y).any() else 0.0
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol * scale, err_msg=name)


def assert_filter_and_smoother_match(model, y, u=None, fallback=False):
    """Compare with the reference; ``fallback``: whether scan_filter is expected
    to hand over to the sequential filter (a spy checks it did or did not)."""
    ref = reference_filter(model, y, u=u)
    with mock.patch("kflib.scan.reference_filter", wraps=reference_filter) as sequential:
        got = scan_filter(model, y, u=u)
    assert sequential.called == fallback
    assert_same(got, ref, F_FIELDS)
    np.testing.assert_allclose(got.loglik, ref.loglik, rtol=1e-9)
    ref_s = reference_smoother(model, ref)
    assert_same(scan_smoother(model, got), ref_s, S_FIELDS)
    # the smoother accepts any FilterResult of the model
    assert_same(scan_smoother(model, ref), ref_s, S_FIELDS)
    return got


def punch_holes(rng, y, p_step=0.1, p_component=0.15, stretch=None):
    """Missing values: whole steps, single components and one stretch."""
    y = y.copy()
    T = y.shape[-2]
    y[..., rng.random(T) < p_step, :] = np.nan
    y[rng.random(y.shape) < p_component] = np.nan
    if stretch is not None:
        y[..., stretch, :] = np.nan
    return y


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("m", [1, 2, 3])
@pytest.mark.parametrize("tv", [False, True], ids=["fixed", "time-varying"])
def test_random_models_with_missing_values(rng, n, m, tv):
    T = 75
    model = random_model(rng, n, m, T=T, tv=tv)
    y = punch_holes(rng, simulate(model, T, rng=rng)[1], stretch=slice(30, 38))
    assert_filter_and_smoother_match(model, y)


@pytest.mark.parametrize("tv", [False, True], ids=["fixed", "time-varying"])
def test_controls(rng, tv):
    T = 60
    model = random_model(rng, 3, 2, r=2, T=T, tv=tv)
    u = rng.standard_normal((T, 2))
    y = punch_holes(rng, simulate(model, T, rng=rng, u=u)[1])
    assert_filter_and_smoother_match(model, y, u=u)


@pytest.mark.parametrize("T", [1, 2, 3])
@pytest.mark.parametrize("missing", ["none", "first", "last", "all", "one component"])
def test_very_short_series(rng, T, missing):
    model = random_model(rng, 2, 2, r=1)
    u = rng.standard_normal((T, 1))
    y = simulate(model, T, rng=rng, u=u)[1]
    if missing == "first":
        y[0] = np.nan
    elif missing == "last":
        y[-1] = np.nan
    elif missing == "all":
        y[:] = np.nan
    elif missing == "one component":
        y[0, 1] = np.nan
    assert_filter_and_smoother_match(model, y, u=u)


def test_nothing_observed_is_pure_prediction(rng):
    model = random_model(rng, 2, 1)
    y = np.full((40, 1), np.nan)
    got = assert_filter_and_smoother_match(model, y)
    assert got.loglik == 0.0
    assert np.all(got.K == 0.0)


def test_long_series_constant_velocity():
    # the case of the benchmark, shortened: deep scan trees, 10% missing
    rng = np.random.default_rng(7)
    model = models.constant_velocity(1.0, 0.05, 9.0, x0=[0.0, 0.0], P0=np.eye(2))
    T = 3000
    y = simulate(model, T, rng=rng)[1]
    y[rng.random(T) < 0.1] = np.nan
    assert_filter_and_smoother_match(model, y)


def test_time_varying_long_series(rng):
    T = 1500
    model = random_model(rng, 2, 1, T=T, tv=True)
    y = punch_holes(rng, simulate(model, T, rng=rng)[1], p_component=0.0)
    assert_filter_and_smoother_match(model, y)


@pytest.mark.parametrize("shared", [True, False], ids=["one pattern", "own patterns"])
def test_batches(rng, shared):
    model = random_model(rng, 2, 2, r=1)
    nb, T = 3, 50
    u = rng.standard_normal((nb, T, 1))
    y = np.stack([simulate(model, T, rng=rng, u=u[i])[1] for i in range(nb)])
    if shared:
        y[:, rng.random((T, 2)) < 0.2] = np.nan
    else:
        y[rng.random(y.shape) < 0.2] = np.nan
    got = assert_filter_and_smoother_match(model, y, u=u)
    # one missing pattern: the covariances are one shared path (a broadcast
    # view, stride 0 over the batch); every result is read-only
    assert (got.P_filt.strides[0] == 0) == shared
    assert not got.P_filt.flags.writeable
    smooth = scan_smoother(model, got)
    assert (smooth.P_smooth.strides[0] == 0) == shared
    # the same as one series at a time
    for i in range(nb):
        one = scan_filter(model, y[i], u=u[i])
        np.testing.assert_allclose(one.x_filt, got.x_filt[i], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(one.loglik, got.loglik[i], rtol=1e-12)


def test_singular_element_noise_falls_back_to_the_sequential_filter(rng):
    # H Q H' + R = 0 (the observed state has no noise of its own): the scan
    # elements do not exist, the sequential filter still works
    model = LinearGaussianSSM(F=[[1.0, 0.0], [1.0, 1.0]], H=[[0.0, 1.0]],
                              Q=np.diag([1.0, 0.0]), R=[[0.0]], x0=[0.0, 0.0],
                              P0=np.eye(2))
    y = simulate(model, 40, rng=rng)[1]
    y[[5, 17], 0] = np.nan
    assert_filter_and_smoother_match(model, y, fallback=True)


def test_singular_predicted_covariance_in_the_smoother(rng):
    # ARIMA(1,1,0): R = 0 and a rank-one predicted covariance at the first step
    model = models.arima([0.6], [], 1.0, d=1)
    y = simulate(model, 120, rng=rng)[1]
    y[rng.random(120) < 0.1] = np.nan
    assert_filter_and_smoother_match(model, y)


def test_not_positive_definite_innovation_covariance_raises_like_the_reference(rng):
    model = LinearGaussianSSM(F=np.eye(2), H=[[0.0, 1.0]], Q=np.diag([1.0, 0.0]),
                              R=[[0.0]], x0=[0.0, 0.0], P0=np.eye(2))
    y = rng.standard_normal((10, 1))
    with pytest.raises(np.linalg.LinAlgError) as ref:
        reference_filter(model, y)
    with pytest.raises(np.linalg.LinAlgError) as got:
        scan_filter(model, y)
    assert str(got.value) == str(ref.value)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_small_inverse(rng, n):
    # M = I + C J with C, J PSD: det M >= 1, but a pivot can vanish
    stack = 30
    C = np.stack([random_cov(rng, n, floor=0.0) for _ in range(stack)], axis=-1)
    J = np.stack([random_cov(rng, n, floor=0.0) for _ in range(stack)], axis=-1)
    M = np.eye(n)[..., None] + np.einsum("ijt,jkt->ikt", C, J)
    if n >= 2:
        # C = v v', J = w w' with v.w = -1, w_0 = v_0 = 1: M[0, 0] = 0
        v = np.zeros(n)
        w = np.zeros(n)
        v[:2], w[:2] = [1.0, 2.0], [1.0, -1.0]
        M[..., 0] = np.eye(n) + np.outer(v, v) @ np.outer(w, w)
        assert M[0, 0, 0] == 0.0
    expected = np.moveaxis(np.linalg.inv(np.moveaxis(M, -1, 0)), 0, -1)
    np.testing.assert_allclose(_inverse(M), expected, rtol=1e-10, atol=1e-12)


def test_bad_input_fails_like_the_reference(rng):
    model = random_model(rng, 2, 2, r=1)
    u = rng.standard_normal((10, 1))
    y = rng.standard_normal((10, 2))
    bad = [
        (model, y[:, :1], u),                 # wrong m
        (model, y[:0], u[:0]),                # T = 0
        (model, np.where(y > 1, np.inf, y), u),
        (model, y, None),                     # the model has B
        (model, y, u[:5]),                    # wrong T for u
        (random_model(rng, 2, 2), y, u),      # u without B
        ("not a model", y, u),
        (model, y.astype(str), u),
    ]
    for args in bad:
        with pytest.raises((TypeError, ValueError)) as ref:
            reference_filter(*args)
        with pytest.raises(type(ref.value)) as got:
            scan_filter(*args)
        assert str(got.value) == str(ref.value)


def test_smoother_input_is_checked(rng):
    model = random_model(rng, 2, 1)
    filt = scan_filter(model, simulate(model, 20, rng=rng)[1])
    with pytest.raises(TypeError, match="FilterResult"):
        scan_smoother(model, filt.x_filt)
    with pytest.raises(ValueError, match="state dimension 2 but the model has n = 3"):
        scan_smoother(random_model(rng, 3, 1), filt)
    tv = random_model(rng, 2, 1, T=25, tv=True)
    with pytest.raises(ValueError, match="T = 25 steps but filt has T = 20"):
        scan_smoother(tv, filt)


def test_fast_paths_take_the_scan_on_missing_data_and_time_varying_models(rng, monkeypatch):
    calls = []

    def spy(real):
        def wrapped(*args, **kwargs):
            calls.append(real.__name__)
            return real(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(kflib.fast, "scan_filter", spy(scan_filter))
    monkeypatch.setattr(kflib.fast, "scan_smoother", spy(scan_smoother))
    T = 400
    for model in (random_model(rng, 2, 2), random_model(rng, 2, 1, T=T, tv=True)):
        y = simulate(model, T, rng=rng)[1]
        if not model.time_varying:
            y = punch_holes(rng, y)
        calls.clear()
        ref = reference_filter(model, y)
        got = fast_filter(model, y)
        assert_same(got, ref, F_FIELDS)
        np.testing.assert_allclose(got.loglik, ref.loglik, rtol=1e-9)
        assert_same(fast_smoother(model, got), reference_smoother(model, ref), S_FIELDS)
        assert calls == ["scan_filter", "scan_smoother"]
