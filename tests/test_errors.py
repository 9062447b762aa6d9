"""Every bad input fails fast with a message that names what is wrong."""

import numpy as np
import pytest

from kflib import LinearGaussianSSM, kalman_filter, models, rts_smoother, simulate

GOOD = dict(F=np.eye(2), H=np.ones((1, 2)), Q=np.eye(2), R=np.eye(1),
            x0=np.zeros(2), P0=np.eye(2))


def make(**changes):
    return LinearGaussianSSM(**{**GOOD, **changes})


@pytest.mark.parametrize("changes,exc,match", [
    (dict(F=np.ones((2, 3))), ValueError, r"F must have shape \(n, n\) or \(T, n, n\); got \(2, 3\)"),
    (dict(F=np.ones(2)), ValueError, r"F must have shape .*got \(2,\)"),
    (dict(H=np.ones((1, 3))), ValueError, r"H must have shape \(m, 2\) or \(T, m, 2\); got \(1, 3\)"),
    (dict(Q=np.eye(3)), ValueError, r"Q must have shape \(2, 2\) or \(T, 2, 2\); got \(3, 3\)"),
    (dict(R=np.eye(2)), ValueError, r"R must have shape \(1, 1\) or \(T, 1, 1\); got \(2, 2\)"),
    (dict(x0=np.zeros(3)), ValueError, r"x0 must have shape \(2,\); got \(3,\)"),
    (dict(P0=np.eye(3)), ValueError, r"P0 must have shape \(2, 2\); got \(3, 3\)"),
    (dict(B=np.ones((3, 1))), ValueError, r"B must have shape \(2, r\) or \(T, 2, r\); got \(3, 1\)"),
    (dict(Q=np.array([[1.0, 0.5], [0.0, 1.0]])), ValueError, r"Q must be symmetric"),
    (dict(Q=np.array([[1.0, 2.0], [2.0, 1.0]])), ValueError,
     r"Q must be positive semidefinite; its smallest eigenvalue is -1"),
    (dict(R=-np.eye(1)), ValueError, r"R must be positive semidefinite"),
    (dict(P0=np.diag([1.0, -1e-3])), ValueError, r"P0 must be positive semidefinite"),
    (dict(F=np.array([[1.0, np.nan], [0.0, 1.0]])), ValueError, r"F contains NaN or inf at index \(0, 1\)"),
    (dict(H=np.array([[np.inf, 0.0]])), ValueError, r"H contains NaN or inf"),
    (dict(x0=np.array([0.0, np.nan])), ValueError, r"x0 contains NaN or inf"),
    (dict(Q=np.full((2, 2), np.nan)), ValueError, r"Q contains NaN or inf"),
    (dict(F="eye"), TypeError, r"F must be a numeric array; got str"),
    (dict(H=None), TypeError, r"H must be a numeric array; got None"),
    (dict(R=np.array([[True]])), TypeError, r"R must be a real numeric array; got dtype bool"),
    (dict(x0=np.array([1j, 0])), TypeError, r"x0 must be a real numeric array; got dtype complex"),
    (dict(F=np.ones((5, 2, 2)) * 0.5, Q=np.stack([np.eye(2)] * 4)), ValueError,
     r"time-varying matrices must share one length T; F has 5, Q has 4"),
])
def test_model_validation(changes, exc, match):
    with pytest.raises(exc, match=match):
        make(**changes)


def test_model_is_frozen():
    model = make()
    with pytest.raises(AttributeError):
        model.F = np.eye(2)
    with pytest.raises(ValueError, match="read-only"):
        model.F[0, 0] = 5.0


def test_model_copies_its_input():
    F = np.eye(2)
    model = make(F=F)
    F[0, 0] = 7.0
    assert model.F[0, 0] == 1.0


def test_replace_validates():
    with pytest.raises(ValueError, match=r"R must have shape"):
        make().replace(R=np.eye(3))
    with pytest.raises(TypeError, match="unknown model parameter"):
        make().replace(G=1)


@pytest.mark.parametrize("y,match", [
    (np.zeros((10, 2)), r"y must have shape \(T, 1\) or \(batch, T, 1\); got \(10, 2\)"),
    (np.zeros((2, 3, 4, 1)), r"y must have shape .*got \(2, 3, 4, 1\)"),
    (np.zeros((0, 1)), r"at least one time step"),
    (np.array([[1.0], [np.inf]]), r"y contains inf; mark missing values with NaN"),
])
def test_filter_rejects_bad_observations(y, match):
    with pytest.raises(ValueError, match=match):
        kalman_filter(make(), y)


def test_filter_rejects_non_model():
    with pytest.raises(TypeError, match="model must be a kflib.LinearGaussianSSM; got dict"):
        kalman_filter(GOOD, np.zeros((3, 1)))


def test_filter_rejects_string_y():
    with pytest.raises(TypeError, match="y must be a numeric array; got str"):
        kalman_filter(make(), "1 2 3")


def test_controls_checked():
    model = make(B=np.ones((2, 1)))
    with pytest.raises(ValueError, match=r"u of shape \(4, 1\) is required"):
        kalman_filter(model, np.zeros((4, 1)))
    with pytest.raises(ValueError, match=r"u must have shape \(4, 1\); got \(3, 1\)"):
        kalman_filter(model, np.zeros((4, 1)), u=np.zeros((3, 1)))
    with pytest.raises(ValueError, match="u was given but the model has no control matrix B"):
        kalman_filter(make(), np.zeros((4, 1)), u=np.zeros((4, 1)))
    with pytest.raises(ValueError, match=r"u must have shape \(4, 1\) or \(2, 4, 1\); got \(3, 4, 1\)"):
        kalman_filter(model, np.zeros((2, 4, 1)), u=np.zeros((3, 4, 1)))


def test_time_varying_length_must_match_y():
    model = make(F=np.stack([np.eye(2)] * 5))
    with pytest.raises(ValueError, match="time-varying matrices have T = 5 steps but y has T = 4"):
        kalman_filter(model, np.zeros((4, 1)))
    with pytest.raises(ValueError, match="T = 5 steps but T = 4 was asked for"):
        simulate(model, 4)


def test_singular_innovation_covariance_is_reported():
    model = make(R=np.zeros((1, 1)), P0=np.zeros((2, 2)), Q=np.zeros((2, 2)))
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite at time index 0"):
        kalman_filter(model, np.zeros((3, 1)))
    assert issubclass(np.linalg.LinAlgError, ValueError)


def test_smoother_checks_its_input():
    model = make()
    filt = kalman_filter(model, np.zeros((4, 1)))
    with pytest.raises(TypeError, match="filt must be the FilterResult"):
        rts_smoother(model, {"x_filt": 1})
    other = LinearGaussianSSM(F=1, H=1, Q=1, R=1, x0=0, P0=1)
    with pytest.raises(ValueError, match="filt has state dimension 2 but the model has n = 1"):
        rts_smoother(other, filt)


@pytest.mark.parametrize("T,exc,match", [(0, ValueError, "T must be at least 1; got 0"),
                                         (2.5, TypeError, "T must be an int; got float"),
                                         (True, TypeError, "T must be an int; got bool")])
def test_simulate_checks_T(T, exc, match):
    with pytest.raises(exc, match=match):
        simulate(make(), T)


def test_simulate_checks_rng():
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator or an int seed"):
        simulate(make(), 3, rng="seed")


@pytest.mark.parametrize("call,exc,match", [
    (lambda: models.local_level(-1.0, 1.0), ValueError, "q must be non-negative; got -1.0"),
    (lambda: models.constant_velocity(0.0, 1.0, 1.0), ValueError, "dt must be positive; got 0.0"),
    (lambda: models.constant_velocity(1.0, [1, 2], 1.0), ValueError,
     r"q must be a number; got an array of shape \(2,\)"),
    (lambda: models.arima([1.2], [], 1.0), ValueError, "phi are not stationary"),
    (lambda: models.arima([0.5], [], 0.0), ValueError, "sigma2 must be positive; got 0.0"),
    (lambda: models.arima([0.5], [], 1.0, d=-1), ValueError, "d must be a non-negative int"),
    (lambda: models.arima([0.5], [], 1.0, d=1, y_presample=[1.0, 2.0]), ValueError,
     r"y_presample must have shape \(1,\); got \(2,\)"),
])
def test_builders_check_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---------------------------------------------------------------------------
# Inputs read as the user meant


def test_masked_entries_of_y_are_missing():
    from kflib.fast import fast_filter
    from kflib.nonlinear import NonlinearSSM, ekf_filter

    model = LinearGaussianSSM(F=1, H=1, Q=1, R=1, x0=0, P0=1)
    data = np.array([1.0, 999.0, 2.0, -0.5])
    masked = np.ma.masked_array(data, mask=[0, 1, 0, 0])
    with_nan = np.where(masked.mask, np.nan, data)
    want = kalman_filter(model, with_nan)
    for got in (kalman_filter(model, masked), fast_filter(model, masked)):
        np.testing.assert_allclose(got.x_filt, want.x_filt, rtol=1e-9)
        assert got.loglik == pytest.approx(want.loglik, rel=1e-9)
    nl = NonlinearSSM(f=lambda x: x, h=lambda x: x, Q=1, R=1, x0=[0.0], P0=1)
    np.testing.assert_allclose(ekf_filter(nl, masked).x_filt, want.x_filt, rtol=1e-8)
    # a masked array with nothing masked is plain data
    plain = kalman_filter(model, np.ma.masked_array(data, mask=False))
    np.testing.assert_array_equal(plain.x_filt, kalman_filter(model, data).x_filt)


def test_masked_entries_in_a_model_matrix_are_refused():
    Q = np.ma.masked_array(np.eye(2), mask=[[0, 1], [0, 0]])
    with pytest.raises(ValueError, match=r"Q has masked entries \(the first at index \(0, 1\)\)"):
        make(Q=Q)


@pytest.mark.parametrize("y", [np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[D]"),
                               np.array([1, 2], dtype="timedelta64[s]")])
def test_dates_and_durations_are_refused(y):
    model = LinearGaussianSSM(F=1, H=1, Q=1, R=1, x0=0, P0=1)
    with pytest.raises(TypeError, match=r"y must be a real numeric array; got dtype (datetime|timedelta)64"):
        kalman_filter(model, y)
    with pytest.raises(TypeError, match=r"F must be a real numeric array; got dtype (datetime|timedelta)64"):
        LinearGaussianSSM(F=y[:1].reshape(1, 1), H=1, Q=1, R=1, x0=0, P0=1)


@pytest.mark.parametrize("name,value", [("y", [[1.0], [2.0, 3.0]]),
                                        ("F", [[1.0, 0.0], [1.0]])])
def test_ragged_lists_are_refused(name, value):
    with pytest.raises(ValueError, match=f"{name} is ragged: its rows have different lengths"):
        if name == "y":
            kalman_filter(make(), value)
        else:
            make(F=value)


@pytest.mark.parametrize("m", [1, 2])
def test_fast_filter_reports_a_singular_innovation_covariance(m):
    from kflib.fast import fast_filter

    model = LinearGaussianSSM(F=np.eye(2), H=np.ones((m, 2)), Q=np.zeros((2, 2)),
                              R=np.zeros((m, m)), x0=np.zeros(2), P0=np.zeros((2, 2)))
    with pytest.raises(np.linalg.LinAlgError, match="S = H P H' \\+ R is not positive definite at time index 0"):
        fast_filter(model, np.zeros((5, m)))


def test_steady_state_refuses_R_and_Q_zero():
    from kflib import steady_state

    model = LinearGaussianSSM(F=1, H=1, Q=0, R=0, x0=0, P0=1)
    with pytest.raises(ValueError, match=r"steady-state innovation covariance S = H P H' \+ R is singular"):
        steady_state(model)


@pytest.mark.parametrize("changes,match", [
    (dict(F=np.zeros((0, 0)), H=np.zeros((1, 0)), Q=np.zeros((0, 0)), x0=np.zeros(0),
          P0=np.zeros((0, 0))), r"F must describe at least one state \(n >= 1\)"),
    (dict(H=np.zeros((0, 2)), R=np.zeros((0, 0))), r"H must have at least one row \(m >= 1"),
], ids=["n=0", "m=0"])
def test_empty_state_or_observation_is_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        make(**changes)


def test_empty_nonlinear_model_is_refused():
    from kflib.nonlinear import NonlinearSSM

    with pytest.raises(ValueError, match=r"x0 must describe at least one state"):
        NonlinearSSM(f=lambda x: x, h=lambda x: x[:1], Q=np.zeros((0, 0)), R=1,
                     x0=np.zeros(0), P0=np.zeros((0, 0)))
    with pytest.raises(ValueError, match=r"R must cover at least one observed component"):
        NonlinearSSM(f=lambda x: x, h=lambda x: x[:0], Q=1, R=np.zeros((0, 0)),
                     x0=[0.0], P0=1)


def _options_cases():
    from kflib import em
    from kflib.fast import fast_filter, fast_smoother
    from kflib.nonlinear import NonlinearSSM, sigma_points, ukf_filter

    model = LinearGaussianSSM(F=1, H=1, Q=1, R=1, x0=0, P0=1)
    y = np.linspace(-1.0, 1.0, 40)[:, None]
    nl = lambda: NonlinearSSM(f=lambda x: x, h=lambda x: x, Q=1, R=1, x0=[0.0], P0=1)  # noqa: E731
    filt = lambda: kalman_filter(model, y)  # noqa: E731
    return {
        "fast_filter rtol='x'": (lambda: fast_filter(model, y, rtol="x"), TypeError,
                                 r"rtol must be a real number; got str 'x'"),
        "fast_filter rtol=0.5": (lambda: fast_filter(model, y, rtol=0.5), ValueError,
                                 r"rtol must be in \[0, 1e-06\]; got 0.5"),
        "fast_filter rtol=-1": (lambda: fast_filter(model, y, rtol=-1.0), ValueError,
                                r"rtol must be in \[0, 1e-06\]; got -1"),
        "fast_smoother rtol='x'": (lambda: fast_smoother(model, filt(), rtol="x"), TypeError,
                                   r"rtol must be a real number"),
        "fast_smoother rtol=0.5": (lambda: fast_smoother(model, filt(), rtol=0.5), ValueError,
                                   r"rtol must be in \[0, 1e-06\]"),
        "em tol='a'": (lambda: em(y, model, tol="a"), TypeError,
                       r"tol must be a real number; got str"),
        "local_level x0='a'": (lambda: models.local_level(1.0, 1.0, x0="a"), TypeError,
                               r"x0 must be a numeric array; got str"),
        "local_level P0='a'": (lambda: models.local_level(1.0, 1.0, P0="a"), TypeError,
                               r"P0 must be a numeric array; got str"),
        "sigma_points alpha='a'": (lambda: sigma_points(np.zeros(2), np.eye(2), alpha="a"),
                                   TypeError, r"alpha must be a real number; got str 'a'"),
        "sigma_points kappa=nan": (lambda: sigma_points(np.zeros(2), np.eye(2), kappa=np.nan),
                                   ValueError, r"kappa must be finite"),
        "ukf_filter alpha='a'": (lambda: ukf_filter(nl(), y, alpha="a"), TypeError,
                                 r"alpha must be a real number"),
        "sigma_points 2-D x": (lambda: sigma_points(np.zeros((1, 2)), np.eye(2)), ValueError,
                               r"x must be one state, shape \(n,\); got \(1, 2\)"),
        "sigma_points P shape": (lambda: sigma_points(np.zeros(2), np.eye(3)), ValueError,
                                 r"P must have shape \(2, 2\); got \(3, 3\)"),
    }


@pytest.mark.parametrize("case", list(_options_cases()))
def test_options_are_checked(case):
    call, exc, match = _options_cases()[case]
    with pytest.raises(exc, match=match):
        call()


def _every_result():
    from kflib import em
    from kflib.fast import fast_filter, fast_smoother
    from kflib.nonlinear import (NonlinearSSM, ekf_filter, ekf_smoother, ukf_filter,
                                 ukf_smoother)
    from kflib.scan import scan_filter, scan_smoother

    model = make()
    y = np.sin(np.arange(60.0))[:, None]
    y_gap = y.copy()
    y_gap[5] = np.nan
    yb = np.stack([y, 2 * y])
    filt = kalman_filter(model, y)
    nl = NonlinearSSM(f=lambda x: 0.9 * x, h=lambda x: x[:1] + x[1:], Q=np.eye(2), R=1,
                      x0=np.zeros(2), P0=np.eye(2))
    with pytest.warns(Warning):          # three EM steps do not converge
        fit = em(y, model, n_iter=3, tol=0.0)
    return {
        "kalman_filter": filt, "kalman_filter batch": kalman_filter(model, yb),
        "rts_smoother": rts_smoother(model, filt),
        "fast_filter": fast_filter(model, y), "fast_filter batch": fast_filter(model, yb),
        "fast_filter gap": fast_filter(model, y_gap),
        "fast_smoother": fast_smoother(model, filt),
        "fast_smoother batch": fast_smoother(model, fast_filter(model, yb)),
        "scan_filter": scan_filter(model, y), "scan_smoother": scan_smoother(model, filt),
        "ekf_filter": ekf_filter(nl, y), "ekf_smoother": ekf_smoother(nl, ekf_filter(nl, y)),
        "ukf_filter": ukf_filter(nl, y), "ukf_smoother": ukf_smoother(nl, ukf_filter(nl, y)),
        "em": fit,
    }


def test_every_result_array_is_read_only():
    writable = []
    for label, result in _every_result().items():
        arrays = {k: v for k, v in vars(result).items() if isinstance(v, np.ndarray)}
        assert arrays, label
        writable += [f"{label}.{k}" for k, v in arrays.items() if v.flags.writeable]
    assert not writable, f"writable result arrays: {writable}"
    filt = kalman_filter(make(), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="read-only"):
        filt.x_filt[0, 0] = 1.0


def test_freezing_a_result_leaves_the_callers_arrays_alone():
    from kflib import FilterResult

    x = np.zeros((2, 1))
    P = np.ones((2, 1, 1))
    FilterResult(x, P, x, P, x, P, P, 0.0)
    assert x.flags.writeable and P.flags.writeable
