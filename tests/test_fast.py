"""The fast paths equal the sequential reference filter and smoother."""

import numpy as np
import pytest

from kflib import models, reference_filter, reference_smoother, simulate
from kflib.fast import fast_filter, fast_smoother, linear_recursion
from conftest import random_model

F_FIELDS = ("x_pred", "P_pred", "x_filt", "P_filt", "S", "K")
S_FIELDS = ("x_smooth", "P_smooth", "P_lag1", "G", "x0_smooth", "P0_smooth")


def assert_same(a, b, fields, tol=1e-9):
    for name in fields:
        x, y = getattr(a, name), getattr(b, name)
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol * np.abs(y).max(), err_msg=name)


@pytest.mark.parametrize("block", [1, 7, 64])
def test_linear_recursion_matches_a_loop(rng, block):
    A = 0.9 * np.linalg.qr(rng.standard_normal((3, 3)))[0]
    b = rng.standard_normal((2, 500, 3))
    x_init = rng.standard_normal((2, 3))
    ref = np.empty_like(b)
    x = x_init
    for t in range(500):
        x = x @ A.T + b[:, t]
        ref[:, t] = x
    np.testing.assert_allclose(linear_recursion(A, b, x_init, block=block), ref,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", ["cv", "random-3-2", "controls", "batch", "batch-controls",
                                  "short-batch"])
def test_fast_filter_and_smoother_equal_the_reference(case, rng):
    T = 90 if case == "short-batch" else 1500
    u = None
    if case == "cv":
        model = models.constant_velocity(1.0, 0.05, 9.0, x0=[0.0, 0.0], P0=np.eye(2))
    elif case in ("controls", "batch-controls"):
        model = random_model(rng, 2, 1, r=1)
        u = rng.standard_normal((T, 1))
    else:
        model = random_model(rng, 3, 2)
    if case == "batch-controls":
        u = rng.standard_normal((5, T, 1))
        y = np.stack([simulate(model, T, rng=rng, u=u[i])[1] for i in range(5)])
    elif "batch" in case:
        y = np.stack([simulate(model, T, rng=rng)[1] for _ in range(4)])
    else:
        y = simulate(model, T, rng=rng, u=u)[1]
    ref = reference_filter(model, y, u=u)
    got = fast_filter(model, y, u=u)
    assert_same(got, ref, F_FIELDS)
    np.testing.assert_allclose(got.loglik, ref.loglik, rtol=1e-11)
    np.testing.assert_allclose(got.innovations, ref.innovations, rtol=1e-9,
                               atol=1e-9 * np.abs(ref.innovations).max())
    assert_same(fast_smoother(model, got), reference_smoother(model, ref), S_FIELDS)


def test_fallbacks_for_missing_values_and_short_series(rng):
    model = random_model(rng, 2, 2)
    y = simulate(model, 300, rng=rng)[1]
    y[100, 0] = np.nan
    # missing values take the associative scan (kflib.scan): equal to round-off
    assert_same(fast_filter(model, y), reference_filter(model, y), F_FIELDS, tol=1e-9)
    short = y[:3]
    short = np.nan_to_num(short)
    f = fast_filter(model, short)
    assert_same(f, reference_filter(model, short), F_FIELDS, tol=1e-14)
    assert_same(fast_smoother(model, f), reference_smoother(model, f), S_FIELDS, tol=1e-14)


@pytest.mark.parametrize("case", ["cv", "controls, batch"])
def test_compiled_and_numpy_means_give_the_same_numbers(case, rng, monkeypatch):
    """The optional compiled loops (numba) and the blocked numpy products."""
    import kflib.fast
    if not kflib.fast._kernels.AVAILABLE:
        pytest.skip("numba is not installed: only the numpy path exists")
    u = None
    if case == "cv":
        model = models.constant_velocity(1.0, 0.05, 9.0, x0=[0.0, 0.0], P0=np.eye(2))
        y = simulate(model, 3000, rng=rng)[1]
    else:
        model = random_model(rng, 2, 1, r=1)
        u = rng.standard_normal((8, 400, 1))
        y = np.stack([simulate(model, 400, rng=rng, u=u[i])[1] for i in range(8)])
    monkeypatch.setattr(kflib.fast, "COMPILED_ABOVE", 0)
    got = fast_filter(model, y, u=u)
    got_s = fast_smoother(model, got)
    monkeypatch.setattr(kflib.fast, "COMPILED", False)
    ref = fast_filter(model, y, u=u)
    assert_same(got, ref, F_FIELDS, tol=1e-12)
    np.testing.assert_allclose(got.innovations, ref.innovations, rtol=1e-10,
                               atol=1e-12 * np.abs(ref.innovations).max())
    np.testing.assert_allclose(got.loglik, ref.loglik, rtol=1e-13)
    assert_same(got_s, fast_smoother(model, ref), S_FIELDS, tol=1e-12)
    # and both are the step-by-step filter's numbers
    step = reference_filter(model, y, u=u)
    assert_same(got, step, F_FIELDS, tol=1e-12)
    assert_same(got_s, reference_smoother(model, step), S_FIELDS, tol=1e-12)
