"""The bootstrap particle filter: against the Kalman filter (means within Monte
Carlo error, an unbiased likelihood), against an exact grid filter with
non-Gaussian noise through the hooks, against the UKF, resampling rules, errors."""

import numpy as np
import pytest
from scipy import stats

from kflib import LinearGaussianSSM, kalman_filter, simulate
from kflib.nonlinear import NonlinearSSM, ParticleFilterResult, particle_filter, ukf_filter

F_LIN = np.array([[0.9, 0.5], [0.0, 0.8]])
H_LIN = np.array([[1.0, 0.0], [0.5, 1.0]])
Q_LIN = np.array([[0.3, 0.1], [0.1, 0.2]])
R_LIN = np.array([[0.5, 0.1], [0.1, 0.4]])


@pytest.fixture(scope="module")
def linear_case():
    lin = LinearGaussianSSM(F=F_LIN, H=H_LIN, Q=Q_LIN, R=R_LIN, x0=[1.0, -1.0], P0=np.eye(2))
    _, y = simulate(lin, 40, rng=1)
    y[10:12] = np.nan                      # two steps of pure prediction
    y[20, 0] = np.nan                      # partly observed steps
    y[25, 1] = np.nan
    model = NonlinearSSM(lambda x: F_LIN @ x, lambda x: H_LIN @ x, Q_LIN, R_LIN,
                         lin.x0, lin.P0)
    return model, y, kalman_filter(lin, y)


STACKED = dict(f=lambda X: X @ F_LIN.T, h=lambda X: X @ H_LIN.T)


def test_means_and_covariances_match_the_kalman_filter_within_monte_carlo_error(linear_case):
    model, y, kf = linear_case
    runs = [particle_filter(model, y, 1000, rng=seed, **STACKED) for seed in range(30)]
    for name, ref in (("x_filt", kf.x_filt), ("P_filt", kf.P_filt)):
        est = np.array([getattr(r, name) for r in runs])
        # the Monte Carlo standard error of the average over 30 independent runs
        se = est.std(axis=0, ddof=1) / np.sqrt(len(runs))
        z = (est.mean(axis=0) - ref) / se
        assert np.abs(z).max() < 4.5, (name, np.abs(z).max())
    # one run is within a few Monte Carlo standard deviations of the exact means
    sd_one = np.array([r.x_filt for r in runs]).std(axis=0, ddof=1)
    assert (np.abs(runs[0].x_filt - kf.x_filt) < 5 * sd_one).all()
    # and that standard deviation is of the order sqrt(P / N)
    ratio = sd_one / np.sqrt(np.diagonal(kf.P_filt, axis1=1, axis2=2) / 1000)
    assert 0.5 < np.median(ratio) < 3.0, np.median(ratio)


@pytest.mark.parametrize("resample", ["ess", "always"])
def test_likelihood_estimate_is_unbiased(linear_case, resample):
    model, y, kf = linear_case
    ll = np.array([particle_filter(model, y, 300, rng=1000 + s, resample=resample,
                                   **STACKED).loglik for s in range(200)])
    ratio = np.exp(ll - kf.loglik)          # estimates p(y) / p(y): mean 1 if unbiased
    se = ratio.std(ddof=1) / np.sqrt(len(ratio))
    assert abs(ratio.mean() - 1.0) < 3 * se, (ratio.mean(), se)
    assert se < 0.1                         # the test has the power to see a bias
    assert (ll - kf.loglik).mean() < 0      # the log of an unbiased estimate is biased low


def test_stacked_and_row_by_row_functions_give_the_same_run(linear_case):
    model, y, _ = linear_case
    a = particle_filter(model, y, 200, rng=5)
    b = particle_filter(model, y, 200, rng=5, **STACKED)
    vec = NonlinearSSM(lambda x: x @ F_LIN.T, lambda x: x @ H_LIN.T, Q_LIN, R_LIN,
                       model.x0, model.P0)
    c = particle_filter(vec, y, 200, rng=np.random.default_rng(5), vectorized=True)
    for other in (b, c):
        np.testing.assert_allclose(other.x_filt, a.x_filt, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(other.P_filt, a.P_filt, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(other.loglik, a.loglik, rtol=1e-12)
    d = particle_filter(model, y, 200, rng=6, **STACKED)
    assert np.abs(d.x_filt - a.x_filt).max() > 1e-6      # another seed, another run


def test_resampling_rules_and_the_result(linear_case):
    model, y, _ = linear_case
    N = 500
    for threshold in (0.5, 0.9):
        r = particle_filter(model, y, N, rng=2, ess_threshold=threshold, **STACKED)
        # the weights carried into a step are uniform right after a resampling
        assert np.array_equal(r.resampled, r.ess < threshold * N)
        assert 0 < r.resampled.sum() < len(y)
    always = particle_filter(model, y, N, rng=2, resample="always", **STACKED)
    never = particle_filter(model, y, N, rng=2, resample="never", **STACKED)
    assert always.resampled.all() and not never.resampled.any()
    assert ((always.ess >= 1) & (always.ess <= N + 1e-9)).all()
    # without resampling the weights degenerate
    assert never.ess[-1] < 0.05 * N < always.ess.min()
    # a missing step keeps the weights: the same ESS as the step before
    assert never.ess[10] == pytest.approx(never.ess[9]) and never.ess[11] == pytest.approx(never.ess[9])
    assert isinstance(always, ParticleFilterResult)
    assert always.x_filt.shape == (40, 2) and always.P_filt.shape == (40, 2, 2)
    assert always.particles.shape == (N, 2) and always.weights.sum() == pytest.approx(1.0)
    assert np.allclose(always.weights, 1.0 / N)
    with pytest.raises(ValueError):
        always.x_filt[0, 0] = 1.0                          # read-only
    assert np.array_equal(always.P_filt, np.swapaxes(always.P_filt, -1, -2))
    assert "n_particles=500" in repr(always)


# --- non-Gaussian noise through the hooks, against an exact grid filter -----

B_LAPLACE, S_T, NU = 0.5, 0.4, 3.0


def f_growth(x):
    return 0.8 * x + 2.0 * np.sin(x)


def grid_filter(y, obs_logpdf, trans_pdf, x0, P0, grid):
    """The exact filter for a scalar state on a fine grid: means (T,) and log p(y)."""
    dx = grid[1] - grid[0]
    A = trans_pdf(grid[:, None] - f_growth(grid)[None, :]) * dx     # p(x' | x) dx
    p = stats.norm.pdf(grid, x0, np.sqrt(P0))
    p /= p.sum()
    means, loglik = [], 0.0
    for y_t in y:
        p = A @ p
        if not np.isnan(y_t):
            g = np.exp(obs_logpdf(y_t, grid))
            loglik += np.log(g @ p)
            p = g * p / (g @ p)
        means.append(grid @ p)
    return np.array(means), loglik


def test_heavy_tailed_hooks_match_an_exact_grid_filter():
    rng = np.random.default_rng(3)
    T = 30
    x, xs = 1.0, []
    for _ in range(T):
        x = f_growth(x) + rng.laplace(0.0, B_LAPLACE)
        xs.append(x)
    y = np.array(xs) + S_T * rng.standard_t(NU, T)
    y[[7, 19]] += np.array([6.0, -6.0])                  # two outliers
    y[12] = np.nan
    model = NonlinearSSM(lambda x: f_growth(x), lambda x: x, [[2 * B_LAPLACE**2]],
                         [[S_T**2 * NU / (NU - 2)]], [1.0], [[0.5]])

    def t_logpdf(y_t, y_pred):
        return stats.t.logpdf(y_t[0], NU, loc=y_pred[:, 0], scale=S_T)

    def laplace_noise(rng, N):
        return rng.laplace(0.0, B_LAPLACE, size=(N, 1))

    grid = np.linspace(-12.0, 12.0, 1601)
    exact, ll_exact = grid_filter(
        y, lambda y_t, g: stats.t.logpdf(y_t, NU, loc=g, scale=S_T),
        lambda d: stats.laplace.pdf(d, scale=B_LAPLACE), 1.0, 0.5, grid)
    gauss, _ = grid_filter(
        y, lambda y_t, g: stats.norm.logpdf(y_t, g, np.sqrt(model.R[0, 0])),
        lambda d: stats.norm.pdf(d, scale=np.sqrt(model.Q[0, 0])), 1.0, 0.5, grid)
    runs = [particle_filter(model, y, 2000, rng=seed, f=f_growth, h=lambda X: X,
                            obs_logpdf=t_logpdf, process_noise=laplace_noise)
            for seed in range(20)]
    est = np.array([r.x_filt[:, 0] for r in runs])
    se = est.std(axis=0, ddof=1) / np.sqrt(len(runs))
    z = (est.mean(axis=0) - exact) / se
    assert np.abs(z).max() < 4.5, np.abs(z).max()
    # the Gaussian model gives a visibly different filter: the hooks are what matter
    assert np.abs(gauss - exact).max() > 20 * se.max()
    ratio = np.exp(np.array([r.loglik for r in runs]) - ll_exact)
    assert abs(ratio.mean() - 1.0) < 3 * ratio.std(ddof=1) / np.sqrt(len(ratio)) + 1e-3


def test_close_to_the_ukf_on_a_mildly_nonlinear_model():
    dt = 0.1

    def f(x):
        return np.array([x[0] + dt * x[1], x[1] - dt * 0.5 * np.sin(x[0])])

    def f_stack(X):
        return np.column_stack([X[:, 0] + dt * X[:, 1], X[:, 1] - dt * 0.5 * np.sin(X[:, 0])])

    def h(x):
        return np.array([x[0] + 0.05 * x[0] ** 2])

    model = NonlinearSSM(f, h, np.diag([1e-3, 1e-2]), [[0.1]], [0.3, 0.0], np.diag([0.1, 0.1]))
    rng = np.random.default_rng(0)
    x, xs, ys = rng.multivariate_normal(model.x0, model.P0), [], []
    for _ in range(60):
        x = f(x) + rng.multivariate_normal(np.zeros(2), model.Q)
        xs.append(x)
        ys.append(h(x) + rng.normal(0.0, np.sqrt(0.1), 1))
    xs, y = np.array(xs), np.array(ys)
    ukf = ukf_filter(model, y)
    pf = particle_filter(model, y, 5000, rng=1, f=f_stack,
                         h=lambda X: X[:, :1] + 0.05 * X[:, :1] ** 2)
    # the difference is small against the filters' own uncertainty ...
    sd = np.sqrt(np.diagonal(ukf.P_filt, axis1=1, axis2=2))
    gap = np.abs(pf.x_filt - ukf.x_filt) / sd
    assert gap.max() < 0.3 and gap.mean() < 0.1, (gap.max(), gap.mean())
    np.testing.assert_allclose(np.sqrt(np.diagonal(pf.P_filt, axis1=1, axis2=2)), sd, rtol=0.2)
    # ... and both track the state equally well
    rmse = [np.sqrt(np.mean((m - xs) ** 2)) for m in (pf.x_filt, ukf.x_filt)]
    assert abs(rmse[0] / rmse[1] - 1.0) < 0.05, rmse


def test_residual_wraps_angles_for_the_particles():
    # a scalar angle on the circle, observed directly: the measurement is wrapped
    model_base = dict(f=lambda x: x + 0.1, h=lambda x: x, Q=[[0.01]], R=[[0.05**2]],
                      x0=[np.pi - 0.3], P0=[[0.01]])
    wrap_row = lambda d: np.angle(np.exp(1j * d))           # noqa: E731
    rng = np.random.default_rng(8)
    x, xs = np.pi - 0.3, []
    for _ in range(15):
        x = x + 0.1 + rng.normal(0.0, 0.1)
        xs.append(x)
    y = wrap_row(np.array(xs) + rng.normal(0.0, 0.05, 15))[:, None]
    plain = particle_filter(NonlinearSSM(**model_base), y, 500, rng=0)
    wrapped = particle_filter(NonlinearSSM(**model_base, residual=wrap_row), y, 500, rng=0)
    stacked = particle_filter(NonlinearSSM(**model_base, residual=wrap_row), y, 500, rng=0,
                              residual=wrap_row, f=lambda X: X + 0.1, h=lambda X: X)
    err = lambda r: np.abs(wrap_row(r.x_filt[:, 0] - np.array(xs))).max()   # noqa: E731
    assert (np.array(xs) > np.pi).any()                    # the angle crosses the cut
    assert err(wrapped) < 0.1 < err(plain), (err(wrapped), err(plain))
    assert plain.loglik < wrapped.loglik - 100
    np.testing.assert_allclose(stacked.x_filt, wrapped.x_filt, rtol=1e-12)


# --- errors ------------------------------------------------------------------

@pytest.fixture
def small():
    return NonlinearSSM(lambda x: 0.5 * x, lambda x: x[:1], np.eye(2), np.eye(1),
                        np.zeros(2), np.eye(2)), np.zeros((5, 1))


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(n_particles=1), ValueError, "n_particles must be at least 2; got 1"),
    (dict(n_particles=10.0), TypeError, "n_particles must be an int; got float"),
    (dict(rng="seed"), TypeError, "rng must be a numpy.random.Generator or an int seed"),
    (dict(resample="sometimes"), ValueError, "resample must be 'ess', 'always' or 'never'"),
    (dict(ess_threshold=0.0), ValueError, r"ess_threshold must be a number in \(0, 1\]"),
    (dict(ess_threshold=1.5), ValueError, r"ess_threshold must be a number in \(0, 1\]"),
    (dict(f=3), TypeError, "f must be callable or None; got int"),
    (dict(obs_logpdf="t"), TypeError, "obs_logpdf must be callable or None; got str"),
    (dict(f=lambda X: X[:, :1]), ValueError,
     r"f applied to particles of shape \(3, 2\) must return shape \(3, 2\); got \(3, 1\)"),
    (dict(f=lambda X: 0.6 * X), ValueError,
     "f applied to a stack of particles disagrees with the model's one-state function"),
    (dict(h=lambda X: X[:1]), ValueError,
     r"h applied to particles of shape \(3, 2\) must return shape \(3, 1\); got \(1, 2\)"),
    (dict(f=lambda X: X * np.nan), ValueError, "f returned NaN or inf"),
    (dict(vectorized=True), ValueError,
     r"h applied to particles of shape \(3, 2\) must return shape \(3, 1\); got \(1, 2\)"),
    (dict(obs_logpdf=lambda y, yp: np.zeros(3)), ValueError,
     r"obs_logpdf\(y_t, y_pred\) must return shape \(20,\); got \(3,\)"),
    (dict(obs_logpdf=lambda y, yp: np.full(len(yp), np.nan)), ValueError,
     "obs_logpdf returned NaN or \\+inf at time index 0"),
    (dict(obs_logpdf=lambda y, yp: np.full(len(yp), -np.inf)), ValueError,
     "every particle has zero observation density at time index 0"),
    (dict(obs_logpdf=lambda y, yp: np.zeros(len(yp)), residual=lambda d: d), ValueError,
     "residual is not used with obs_logpdf"),
    (dict(process_noise=lambda rng, N: np.zeros((N, 3))), ValueError,
     r"process_noise\(rng, 20\) must return shape \(20, 2\); got \(20, 3\)"),
])
def test_bad_arguments(small, kwargs, exc, match):
    model, y = small
    kwargs = {"n_particles": 20, "rng": 0, **kwargs}
    with pytest.raises(exc, match=match):
        particle_filter(model, y, **kwargs)


def test_bad_model_and_data(small):
    model, y = small
    with pytest.raises(TypeError, match="model must be a kflib.nonlinear.NonlinearSSM"):
        particle_filter("model", y, 20, rng=0)
    with pytest.raises(ValueError, match=r"y must have shape \(T, 1\); got \(5, 2\)"):
        particle_filter(model, np.zeros((5, 2)), 20, rng=0)
    # a one-state function handed a stack fails: say so, and how to fix it
    not_vec = NonlinearSSM(lambda x: np.array([[0.5, 0.0], [0.0, 0.5]]) @ x,
                           lambda x: x[:1], np.eye(2), np.eye(1), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="f failed on a stack of particles"):
        particle_filter(not_vec, y, 20, rng=0, vectorized=True)
    singular = NonlinearSSM(lambda x: x, lambda x: x, np.eye(2), np.zeros((2, 2)),
                            np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="R must be positive definite on the observed"):
        particle_filter(singular, np.zeros((3, 2)), 20, rng=0)
