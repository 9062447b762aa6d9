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
    (dict(Q=np.array([[1.0, 2.0], [2.0, 1.0]])), ValueError, r"Q must be positive semidefinite; its smallest eigenvalue is -1"),
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
    (lambda: models.constant_velocity(1.0, [1, 2], 1.0), ValueError, r"q must be a number; got an array of shape \(2,\)"),
    (lambda: models.arima([1.2], [], 1.0), ValueError, "phi are not stationary"),
    (lambda: models.arima([0.5], [], 0.0), ValueError, "sigma2 must be positive; got 0.0"),
    (lambda: models.arima([0.5], [], 1.0, d=-1), ValueError, "d must be a non-negative int"),
    (lambda: models.arima([0.5], [], 1.0, d=1, y_presample=[1.0, 2.0]), ValueError,
     r"y_presample must have shape \(1,\); got \(2,\)"),
])
def test_builders_check_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
