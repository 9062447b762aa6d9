"""The seeded random inputs of the exercises' hidden tests, defined once.

The hidden tests of an exercise notebook and the course's trusted check of the
same assignment (``grader/checks/<assignment>.py``) both take their random cases
from here, so the two cannot drift apart: same seeds, same order of draws, same
labels. Each function returns a list of ``(label, args)``, ``args`` as the part's
function takes them; the references are computed by whoever uses the cases. Some
add a third element, data the reference needs that the function does not take
(ps01's series, ps07's point scale); where a part's inputs are a filter's or a
smoother's output (ps04, ps05) the cases are ``(label, model, y)``, the problem
itself, and kflib's filter or smoother gives the inputs.
The hidden tests use the default seed; the trusted check adds cases drawn with
seeds of its own, so that an answer that recognises these inputs gains nothing.

    >>> [label for label, _ in ps02_predict()]
    ['n=1', 'n=2', 'n=3', 'n=4', 'n=4', 'n=3']

Course: the exercises; exercise all of them (and grader/checks/); tests:
test_exercises.py, test_specs.py.
"""

from __future__ import annotations

import numpy as np

from .model import LinearGaussianSSM
from .models import constant_velocity, local_level
from .simulate import simulate

__all__ = ["ps01_cv", "ps01_simulate", "ps01_prior", "ps01_arima",
           "ps02_predict", "ps02_update", "ps02_filter", "ps02_missing",
           "ps03_ll", "ps03_riccati", "ps03_steady", "ps03_ewma", "ps03_projection",
           "ps04_gain", "ps04_smooth", "ps04_lag", "ps04_gap",
           "ps05_m_step_R", "ps05_m_step_Q", "ps05_em",
           "ps06_nll", "ps06_held_out", "ps06_floors",
           "ps07_radar", "ps07_ekf", "ps07_unscented",
           "ps08_forecast", "ps09_consistency"]


def _stable(rng, n):
    """A random (n, n) transition matrix with spectral radius in [0.5, 1.05)."""
    F = rng.normal(size=(n, n))
    return F * rng.uniform(0.5, 1.05) / np.max(np.abs(np.linalg.eigvals(F)))


def _random_model(rng, n, m):
    F = _stable(rng, n)
    H = rng.normal(size=(m, n))
    A = rng.normal(size=(n, n))
    Q = A @ A.T / n + 0.1 * np.eye(n)
    C = rng.normal(size=(m, m))
    R = C @ C.T / m + 0.1 * np.eye(m)
    B = rng.normal(size=(n, n))
    P0 = B @ B.T
    x0 = rng.normal(scale=3.0, size=n)
    return LinearGaussianSSM(F, H, Q, R, x0, P0)


def _model_args(model, y):
    return tuple(np.array(a) for a in (model.F, model.H, model.Q, model.R, model.x0, model.P0, y))


# --------------------------------------------------------------------------
# ps02-kalman-filter


def ps02_predict(seed=2101):
    """(a) kf_predict(x, P, F, Q): random models with one to four states."""
    rng = np.random.default_rng(seed)
    out = []
    for n in [1, 2, 3, 4, 4, 3]:
        F = _stable(rng, n)
        A = rng.normal(size=(n, n))
        Q = A @ A.T / n + 0.1 * np.eye(n)
        B = rng.normal(size=(n, n))
        P = B @ B.T
        Q, P = 0.5 * (Q + Q.T), 0.5 * (P + P.T)
        x = rng.normal(scale=3.0, size=n)
        out.append((f"n={n}", (x, P, F, Q)))
    return out


def ps02_update(seed=2202):
    """(b) kf_update(x_pred, P_pred, y, H, R): one to four states, one to three sensors."""
    rng = np.random.default_rng(seed)
    out = []
    for n, m in [(1, 1), (1, 3), (2, 1), (3, 2), (2, 3), (4, 1), (4, 3), (3, 3)]:
        B = rng.normal(size=(n, n))
        P = B @ B.T + 0.01 * np.eye(n)
        x = rng.normal(scale=3.0, size=n)
        H = rng.normal(size=(m, n))
        C = rng.normal(size=(m, m))
        R = C @ C.T / m + 0.1 * np.eye(m)
        y = H @ x + rng.normal(scale=2.0, size=m)
        out.append((f"n={n}, m={m}", (x, P, y, H, R)))
    return out


def ps02_filter(seed=2303):
    """(c) kalman_filter_loglik(F, H, Q, R, x0, P0, y): random models and simulated data."""
    rng = np.random.default_rng(seed)
    out = []
    for n, m, T in [(1, 1, 1), (1, 1, 20), (2, 1, 15), (1, 3, 10), (3, 2, 25), (2, 3, 12),
                    (4, 1, 30), (4, 3, 30)]:
        model = _random_model(rng, n, m)
        _, y = simulate(model, T, rng=rng)
        out.append((f"n={n}, m={m}, T={T}", _model_args(model, y)))
    return out


def ps02_missing(seed=2404):
    """(d) kalman_filter_missing(F, H, Q, R, x0, P0, y): as (c), with gaps -- fully missing
    steps (the first one too), partly missing ones, and a series never observed."""
    rng = np.random.default_rng(seed)
    out = []
    for n, m, T in [(1, 1, 1), (1, 1, 20), (2, 1, 15), (1, 3, 10), (3, 2, 25), (2, 3, 12),
                    (4, 1, 30), (4, 3, 30), (3, 3, 6)]:
        model = _random_model(rng, n, m)
        _, y = simulate(model, T, rng=rng)
        if T == 6:
            y[:] = np.nan                           # nothing observed at all
        elif T > 1:
            y_full = y.copy()
            y[rng.uniform(size=(T, m)) < 0.3] = np.nan
            y[0] = y[T // 2] = np.nan               # fully missing steps, the first one too
            if m > 1:                               # partly missing steps
                y[1], y[2] = y_full[1], y_full[2]
                y[1, 0] = y[2, 1:] = np.nan          # m - 1 and 1 observed
        label = f"n={n}, m={m}, T={T}, {int(np.isnan(y).sum())} of {T * m} values missing"
        out.append((label, _model_args(model, y)))
    return out


# --------------------------------------------------------------------------
# ps01-state-space


def _scaled(rng, n, low, high):
    """A random (n, n) matrix scaled to a spectral radius drawn from [low, high)."""
    F = rng.normal(size=(n, n))
    F *= rng.uniform(low, high) / np.max(np.abs(np.linalg.eigvals(F)))
    return F


def ps01_cv(seed=101):
    """(a) constant_velocity_model(dt, q, r): dt = q = r = 1, then five drawn at random."""
    rng = np.random.default_rng(seed)
    out = [("dt = q = r = 1", (1.0, 1.0, 1.0))]
    for k, c in enumerate(rng.uniform([0.01, 0.01, 0.01], [5.0, 10.0, 10.0], size=(5, 3))):
        out.append((f"dt, q, r drawn at random ({k + 1})", tuple(float(v) for v in c)))
    return out


def ps01_simulate(seed=202):
    """(b) simulate_with_noise(F, H, x0, w, v): random models and noise (the tests call each
    model with w = v = 0 too)."""
    rng = np.random.default_rng(seed)
    out = []
    for n, m, T in [(1, 1, 1), (1, 2, 7), (2, 1, 12), (3, 3, 20), (4, 2, 30), (4, 4, 15)]:
        F = _scaled(rng, n, 0.5, 1.05)
        H = rng.normal(size=(m, n))
        x0 = rng.normal(size=n)
        w, v = rng.normal(size=(T, n)), rng.normal(size=(T, m))
        out.append((f"n={n}, m={m}, T={T}", (F, H, x0, w, v)))
    return out


def ps01_prior(seed=303):
    """(c) prior_moments(F, Q, x0, P0, T): random models; a third element, an H with two
    rows, for a reference filter (the moments do not depend on it)."""
    rng = np.random.default_rng(seed)
    out = []
    for n, T in [(1, 1), (1, 10), (2, 5), (3, 25), (4, 12), (4, 25)]:
        F = _scaled(rng, n, 0.5, 1.05)
        A = rng.normal(size=(n, n))
        Q = A @ A.T + 0.1 * np.eye(n)
        B = rng.normal(size=(n, n))
        P0 = B @ B.T
        x0 = rng.normal(size=n)
        H = rng.normal(size=(2, n))
        out.append((f"n={n}, T={T}", (F, Q, x0, P0, T), H))
    return out


def ps01_arima(seed=404):
    """(d) arima211_model(phi1, phi2, theta1, sigma2, y0): stationary, invertible ARMA(2, 1)
    parameters; a third element, the simulated series y_0, ..., y_60 whose first value is y0.

        >>> label, args, y = ps01_arima()[0]
        >>> len(args), y.shape, bool(args[4] == y[0])
        (5, (61,), True)
    """
    rng = np.random.default_rng(seed)
    out = []
    for trial in range(4):
        phi2 = rng.uniform(-0.8, 0.8)
        phi1 = rng.uniform(-0.9, 0.9) * (1 - phi2)   # inside the stationarity triangle
        theta1 = rng.uniform(-0.8, 0.8)
        sigma2 = rng.uniform(0.2, 3.0)
        T, burn = 60, 100
        e = rng.normal(scale=np.sqrt(sigma2), size=T + burn)
        dy = np.zeros(T + burn)
        for t in range(2, T + burn):
            dy[t] = phi1 * dy[t - 1] + phi2 * dy[t - 2] + e[t] + theta1 * e[t - 1]
        y = rng.normal(scale=10.0) + np.cumsum(dy[burn - 1:])   # y_0, ..., y_T
        label = f"phi, theta, sigma2 drawn at random, T=60 ({trial + 1})"
        out.append((label, tuple(float(v) for v in (phi1, phi2, theta1, sigma2, y[0])), y))
    return out


# --------------------------------------------------------------------------
# ps03-gain (the trusted check draws more with its own seeds and sizes)


def ps03_ll(seed=3101, fixed=((1.0, 4.0), (0.3, 0.3), (1e-3, 10.0), (50.0, 0.01)), n_random=8):
    """(a) local_level_steady_state(q, r): the given (q, r), then q / r from 1e-4 to 1e4."""
    rng = np.random.default_rng(seed)
    pairs = list(fixed)
    for _ in range(n_random):
        log_r = rng.uniform(-3, 3)
        pairs.append((10 ** (log_r + rng.uniform(-4, 4)), 10 ** log_r))
    return [(f"{'fixed' if k < len(fixed) else 'random'} q and r ({k + 1} of {len(pairs)})",
             (float(q), float(r))) for k, (q, r) in enumerate(pairs)]


def ps03_riccati(seed=3202, dims=((1, 1, 1), (1, 2, 5), (2, 1, 12), (2, 2, 8), (3, 2, 20), (3, 3, 10),
                                  (4, 1, 15), (4, 3, 25))):
    """(b) riccati_iterate(F, H, Q, R, P0, n_steps): random models, P0 = 0 in some."""
    rng = np.random.default_rng(seed)
    out = []
    for n, m, T in dims:
        F = _scaled(rng, n, 0.3, 1.2)
        H = rng.normal(size=(m, n))
        A = rng.normal(size=(n, n))
        Q = A @ A.T / n + 0.1 * np.eye(n)
        B = rng.normal(size=(m, m))
        R = B @ B.T / m + 0.1 * np.eye(m)
        C = rng.normal(size=(n, n))
        P0 = rng.choice([0.0, 1.0, 30.0]) * C @ C.T / n
        out.append((f"n={n}, m={m}, n_steps={T}", (F, H, Q, R, P0, T)))
    return out


def ps03_steady(seed=3303, dims=((1, 1), (2, 1), (2, 2), (3, 1), (3, 2), (4, 2), (4, 3)), slow=True):
    """(c) steady_gain(F, H, Q, R): (slow=True) four models whose Riccati recursion converges
    slowly or that have a precise sensor, then random models of every scale."""
    rng = np.random.default_rng(seed)
    models = []
    if slow:
        models += [(local_level(1e-4, 1.0), "slow local level model (q / r = 1e-4)"),
                   (local_level(6e-4, 3.0), "slow local level model (q / r = 2e-4)"),
                   (constant_velocity(1.0, 1e-4, 1.0), "slow constant-velocity model"),
                   (constant_velocity(0.1, 50.0, 1e-3), "constant-velocity model with a precise sensor")]
    out = [(label, tuple(np.array(a) for a in (mod.F, mod.H, mod.Q, mod.R))) for mod, label in models]
    for n, m in dims:
        F = _scaled(rng, n, 0.3, 1.2)
        A = rng.normal(size=(n, n))
        B = rng.normal(size=(m, m))
        scale = 10 ** rng.uniform(-2, 2)
        H = rng.normal(size=(m, n))
        out.append((f"random model with n={n}, m={m}",
                    (F, H, scale * (A @ A.T / n + 0.1 * np.eye(n)), scale * (B @ B.T / m + 0.1 * np.eye(m)))))
    return out


def ps03_ewma(seed=3404, fixed=((4.0, 0.5, 400), (1.0, 1.0, 200), (0.3, 1.0, 150), (1e-3, 2.0, 150)),
              n_random=4, lengths=(1, 200)):
    """(d) ewma_weight(q, r) and steady_filter(y, q, r, x0): series of the local level model,
    args (y, q, r, x0): a long one first (the sum written with (1 - alpha)^(-t) overflows
    after about 310 steps when q / r = 8), then random q, r and lengths."""
    rng = np.random.default_rng(seed)
    params = list(fixed)
    for _ in range(n_random):
        log_r = rng.uniform(-2, 2)
        params.append((10 ** (log_r + rng.uniform(-3, 2)), 10 ** log_r, int(rng.integers(*lengths))))
    out = []
    for k, (q, r, T) in enumerate(params):
        level = rng.normal(scale=10.0) + np.cumsum(rng.normal(scale=np.sqrt(q), size=T))
        y = level + rng.normal(scale=np.sqrt(r), size=T)
        x0 = rng.normal(scale=10.0)
        label = (f"{'a long series' if k == 0 and fixed else 'a series'} of T={T} "
                 f"({'fixed' if k < len(fixed) else 'random'} q and r, {k + 1} of {len(params)})")
        out.append((label, (y, float(q), float(r), float(x0))))
    return out


def ps03_projection(seed=3505, dims=((2, 1), (3, 1), (3, 2), (4, 1), (4, 2), (4, 3)),
                    scales=(-8.0, 0.0, 8.0), n_random=1):
    """(e) perfect_sensor_projection(P, H): for each (n, m), P of the given scales (powers of
    ten) and of n_random scales drawn from 1e-8 to 1e8."""
    rng = np.random.default_rng(seed)
    out = []
    for n, m in dims:
        for log_scale in tuple(scales) + tuple(rng.uniform(-8, 8) for _ in range(n_random)):
            A = rng.normal(size=(n, n))
            P = 10 ** log_scale * (A @ A.T / n + 0.1 * np.eye(n))
            H = rng.normal(size=(m, n))
            out.append((f"n={n}, m={m}, P of scale 1e{log_scale:.0f}", (P, H)))
    return out


# --------------------------------------------------------------------------
# ps04-smoothing: random models and data; the parts' inputs are kflib's filter (and
# smoother) run on them, by whoever uses the cases


def _ps04_model(rng, n, m, scale):
    def cov(k):
        A = rng.normal(size=(k, k))
        return scale * (A @ A.T / k + 0.1 * np.eye(k))
    F = _scaled(rng, n, 0.5, 1.05)
    return LinearGaussianSSM(F, rng.normal(size=(m, n)), cov(n), cov(m),
                             np.sqrt(scale) * rng.normal(size=n), cov(n))


def _ps04_problems(seed, dims):
    """[(label, model, y)]: for each (n, m, T, scale) a random model with covariances of
    that scale, and data simulated from it with 15% of the values missing and, when
    T >= 6, two or three consecutive steps missing."""
    rng = np.random.default_rng(seed)
    out = []
    for n, m, T, scale in dims:
        model = _ps04_model(rng, n, m, scale)
        _, y = simulate(model, T, rng=rng)
        y[rng.random(y.shape) < 0.15] = np.nan
        if T >= 6:
            start = rng.integers(1, T - 3)
            y[start:start + rng.integers(2, 4)] = np.nan
        out.append((f"n={n}, m={m}, T={T}, covariances of scale {scale:g}", model, y))
    return out


def ps04_gain(seed=4101, dims=((1, 1, 5, 1.0), (2, 1, 8, 1.0), (3, 2, 10, 1.0), (4, 3, 12, 1.0),
                               (4, 2, 10, 1e-8), (2, 3, 6, 1e4))):
    """(a) smoother_gain(P_filt_t, F, P_pred_next), at every step of each problem:
    [(label, model, y)]."""
    return _ps04_problems(seed, dims)


def ps04_smooth(seed=4202, dims=((1, 1, 1, 1.0), (3, 2, 1, 1.0), (1, 1, 2, 1.0), (2, 1, 15, 1.0),
                                 (3, 2, 25, 1.0), (4, 3, 40, 1.0), (4, 2, 20, 1e-8), (2, 2, 30, 1e6))):
    """(b) rts_smooth(F, x_filt, P_filt, x_pred, P_pred): [(label, model, y)]."""
    return _ps04_problems(seed, dims)


def ps04_lag(seed=4303, dims=((1, 1, 2, 1.0), (2, 1, 10, 1.0), (3, 2, 25, 1.0), (4, 3, 40, 1.0),
                              (4, 2, 20, 1e-8), (3, 3, 15, 1e6))):
    """(c) lag_one_covariance(F, P_filt, P_pred, P_smooth): [(label, model, y)]."""
    return _ps04_problems(seed, dims)


def ps04_gap(seed=4404, dims=((1, 1, 20, 1.0), (2, 1, 25, 1.0), (3, 2, 12, 1.0), (4, 3, 25, 1.0),
                              (2, 3, 18, 1e-6), (4, 2, 30, 1e4)),
             gap_sets=([(10, 16)], [(3, 6), (14, 20)], [(0, 4)], [(22, 25)], [(5, 6), (8, 9), (11, 15)])):
    """(d) interpolate_gap(model, y): random models and data with whole steps missing, the
    gaps [start, stop) of gap_sets in turn (the first step too), or with gap_sets=None one
    gap of two to five steps at a random place: [(label, (model, y))].

        >>> label, (model, y) = ps04_gap()[2]
        >>> label, np.isnan(y).all(axis=1).nonzero()[0].tolist()
        ('n=3, m=2, T=12, 1 gap, 4 missing rows', [0, 1, 2, 3])
    """
    rng = np.random.default_rng(seed)
    out = []
    for trial, (n, m, T, scale) in enumerate(dims):
        model = _ps04_model(rng, n, m, scale)
        _, y = simulate(model, T, rng=rng)
        if gap_sets is None:
            start = int(rng.integers(1, T - 6))
            gaps = [(start, start + int(rng.integers(2, 6)))]
        else:
            gaps = gap_sets[trial % len(gap_sets)]
        for start, stop in gaps:
            y[start:min(stop, T)] = np.nan
        k = int(np.isnan(y).all(axis=1).sum())
        label = f"n={n}, m={m}, T={T}, {len(gaps)} gap{'s' if len(gaps) > 1 else ''}, {k} missing rows"
        out.append((label, (model, y)))
    return out


# --------------------------------------------------------------------------
# ps05-em: (a) and (b) take a smoother's output; their cases are the data and the model EM
# starts from, [(label, y, start)], and whoever uses them runs kflib's smoother


def _ps05_model(rng, n, m):
    F = _scaled(rng, n, 0.5, 1.05)
    A, B, C = rng.normal(size=(n, n)), rng.normal(size=(m, m)), rng.normal(size=(n, n))
    return LinearGaussianSSM(F, rng.normal(size=(m, n)), A @ A.T / n + 0.1 * np.eye(n),
                             B @ B.T / m + 0.1 * np.eye(m), rng.normal(size=n),
                             C @ C.T / n + 0.1 * np.eye(n))


def _ps05_problems(seed, dims):
    """Data simulated from a random model, and a start model with its F and H but other
    random covariances and initial state."""
    rng = np.random.default_rng(seed)
    out = []
    for n, m, T in dims:
        model = _ps05_model(rng, n, m)
        _, y = simulate(model, T, rng=rng)
        start = _ps05_model(rng, n, m).replace(F=model.F, H=model.H)
        out.append((f"n={n}, m={m}, T={T}", y, start))
    return out


def ps05_m_step_R(seed=5101, dims=((1, 1, 1), (1, 2, 20), (2, 3, 30), (3, 1, 25), (4, 3, 40), (4, 2, 12),
                                   (3, 3, 50))):
    """(a) m_step_R(y, H, x_smooth, P_smooth): [(label, y, start)]."""
    return _ps05_problems(seed, dims)


def ps05_m_step_Q(seed=5202, dims=((1, 1, 1), (1, 1, 30), (2, 1, 25), (3, 2, 30), (3, 3, 8), (4, 1, 40),
                                   (4, 3, 60))):
    """(b) m_step_Q(F, x_smooth, P_smooth, P_lag1, x0_smooth, P0_smooth): [(label, y, start)]."""
    return _ps05_problems(seed, dims)


def ps05_em(seed=5303, runs=((10, 3), (25, 6), (50, 8), (80, 12), (60, 5))):
    """(c) em_local_level(y, q0, r0, x0, P0, n_iter): local level series of every scale, for
    each (T, n_iter), started from random q0, r0 and an x0 away from y_1."""
    rng = np.random.default_rng(seed)
    out = []
    for T, n_iter in runs:
        scale = 10 ** rng.uniform(-1, 2)
        q_true, r_true = scale * rng.uniform(0.05, 2.0), scale * rng.uniform(0.2, 4.0)
        level = rng.normal(scale=5) + np.cumsum(rng.normal(scale=np.sqrt(q_true), size=T))
        y = level + rng.normal(scale=np.sqrt(r_true), size=T)
        x0 = float(y[0] + rng.normal(scale=3 * np.sqrt(scale)))
        P0 = float(scale * 10 ** rng.uniform(-1, 2))
        q0, r0 = scale * rng.uniform(0.1, 3.0, size=2)
        out.append((f"T={T}, n_iter={n_iter}, x0 away from y_1", (y, float(q0), float(r0), x0, P0, int(n_iter))))
    return out


# --------------------------------------------------------------------------
# ps06-lstm


def ps06_nll(seed=6101, lengths=(1, 2, 3, 8, 20, 35, 60, 60, 45, 12)):
    """(a) nll_and_gradient(y, q, r, x0, P0) (and scalar_kf_nll): local level series with
    random q and r from 1e-2 to 1e2, x0, and P0 = 0 in about a third of them."""
    rng = np.random.default_rng(seed)
    out = []
    for k, T in enumerate(lengths):
        q, r = (float(v) for v in 10.0 ** rng.uniform(-2, 2, size=2))
        x0 = float(rng.normal(scale=5.0))
        P0 = 0.0 if rng.uniform() < 0.3 else float(10.0 ** rng.uniform(-2, 2))
        x = x0 + np.sqrt(P0) * rng.normal() + np.cumsum(rng.normal(scale=np.sqrt(q), size=T))
        y = x + rng.normal(scale=np.sqrt(r), size=T)
        out.append((f"random q, r, x0 and P0 ({k + 1} of {len(lengths)}), T={T}", (y, q, r, x0, P0)))
    return out


def ps06_held_out(sets=((6202, 1000, 50), (6203, 1000, 20), (6204, 1, 50))):
    """(b) train_filter's network is run on held-out local level series (q = r = 1, x0 = 0):
    for each (seed, n_seq, T), [(label, x, y)], states and measurements of shape (n_seq, T, 1)."""
    out = []
    for seed, n_seq, T in sets:
        rng = np.random.default_rng(seed)
        x = np.cumsum(rng.normal(size=(n_seq, T, 1)), axis=1)
        y = x + rng.normal(size=(n_seq, T, 1))
        out.append((f"{n_seq} held-out sequence{'s' if n_seq > 1 else ''} of {T} steps", x, y))
    return out


def ps06_floors(seed=6301):
    """(c) mse_floors(q, r): q = 1, r = 4 and q = 4, r = 1, then ten (q, r) from 1e-2 to 1e2."""
    rng = np.random.default_rng(seed)
    out = [("q = 1, r = 4", (1.0, 4.0)), ("q = 4, r = 1", (4.0, 1.0))]
    out += [(f"random q and r ({k + 1} of 10)", tuple(float(v) for v in 10.0 ** rng.uniform(-2, 2, size=2)))
            for k in range(10)]
    return out


# --------------------------------------------------------------------------
# ps07-nonlinear


def ps07_radar(seed=7101, n_points=40):
    """(a) radar_h(x) and radar_jacobian(x): states (px, vx, py, vy) in every quadrant, of
    sizes from 0.1 to 1000: [(label, (x,), scale)], scale the size the point was drawn at."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_points):
        scale = 10.0 ** rng.uniform(-1, 3)
        x = rng.normal(scale=scale, size=4)
        where = f"px {'<' if x[0] < 0 else '>'} 0, py {'<' if x[2] < 0 else '>'} 0"
        out.append((f"random point {k + 1} ({where}, |x| near {scale:.0e})", (x,), scale))
    return out


def ps07_ekf(seed=7102, dims=((1, 1), (2, 1), (3, 2), (4, 3), (4, 1), (2, 3), (3, 3))):
    """(b) ekf_step(x, P, y, f, F_jac, h, H_jac, Q, R) on random models f(x) = A x + sin(x) / 2
    + a tanh(sum x), h(x) = C x + c sin(x_0 x_-1): [(label, (A, a, C, c, x, P, y, Q, R))],
    the model's parameters and the step's arrays (the functions are built by the user)."""
    rng = np.random.default_rng(seed)
    out = []
    for n, m in dims:
        A = rng.normal(size=(n, n)) / np.sqrt(n)
        a = rng.normal(size=n)
        C = rng.normal(size=(m, n))
        c = rng.normal(size=m)
        B = rng.normal(size=(n, n))
        P = B @ B.T + 0.1 * np.eye(n)
        G = rng.normal(size=(n, n))
        Q = G @ G.T / n + 0.05 * np.eye(n)
        E = rng.normal(size=(m, m))
        R = E @ E.T / m + 0.1 * np.eye(m)
        x = rng.normal(size=n)
        y = rng.normal(scale=2.0, size=m)
        out.append((f"random nonlinear model with n={n}, m={m}", (A, a, C, c, x, P, y, Q, R)))
    return out


def ps07_unscented(seed=7103, dims=((1, 1), (2, 3), (3, 2), (4, 4), (4, 1), (3, 3))):
    """(c) sigma_points(x, P, **params) and unscented_transform(fun, x, P, **params), fun(z) =
    sin(A z) + c exp(0.3 z_0) + (A z)^2 / 4 with k outputs: for each (n, k) four choices of
    (alpha, beta, kappa), [(label, (x, P), (A, c), params)]."""
    rng = np.random.default_rng(seed)
    out = []
    for n, k in dims:
        B = rng.normal(size=(n, n))
        P = B @ B.T + 0.2 * np.eye(n)
        x = rng.normal(size=n)
        A = rng.normal(size=(k, n))
        c = rng.normal(size=k)
        for alpha, beta, kappa in [(1.0, 2.0, 0.0), (0.5, 2.0, 3.0 - n + 1.0), (1.2, 0.0, 1.0),
                                   (0.8, 3.0, 2.0)]:
            label = f"n={n}, k={k}, alpha={alpha:g}, beta={beta:g}, kappa={kappa:g}"
            out.append((label, (x, P), (A, c), dict(alpha=alpha, beta=beta, kappa=kappa)))
    return out


# --------------------------------------------------------------------------
# ps08-structural and ps09-anomaly: the parts on forecasting and on consistency


def _filtered_end(model, y):
    """The filtered mean and covariance after the last step of y: x_{T|T}, P_{T|T}."""
    from .filter import kalman_filter

    filt = kalman_filter(model, y)
    return np.array(filt.x_filt[-1]), np.array(filt.P_filt[-1])


def ps08_forecast(seed=8505):
    """ps08 (e) forecast_moments(F, H, Q, R, x, P, steps): forecasts from the end of
    filtered data -- structural models (trend, seasonals, cycle; one observed series, the
    last readings missing in one of them, the state known exactly in another) and random
    models with two observed series.

    >>> [label for label, _ in ps08_forecast()][:2]
    ['level, n=1, m=1, steps=1', 'trend + dummy seasonal (s=4), n=5, m=1, steps=8']
    """
    from . import structural as st

    rng = np.random.default_rng(seed)
    makers = {
        "level": lambda: st.local_level(rng.uniform(0.1, 2.0)),
        "trend": lambda: st.local_linear_trend(rng.uniform(0.0, 2.0), rng.uniform(0.001, 0.2)),
        "dummy seasonal (s=4)": lambda: st.seasonal_dummy(4, rng.uniform(0.0, 1.0)),
        "dummy seasonal (s=7)": lambda: st.seasonal_dummy(7, rng.uniform(0.0, 1.0)),
        "trigonometric seasonal (s=12, h=2)": lambda: st.seasonal_trig(12, rng.uniform(0.0, 0.5),
                                                                       harmonics=2),
        "cycle": lambda: st.cycle(rng.uniform(0.2, 1.0), rng.uniform(0.6, 0.98), rng.uniform(0.1, 1.0)),
    }
    out = []
    for names, steps, end in [(("level",), 1, "filtered"),
                              (("trend", "dummy seasonal (s=4)"), 8, "filtered"),
                              (("level", "cycle"), 20, "filtered"),
                              (("trend", "trigonometric seasonal (s=12, h=2)", "cycle"), 12, "gap"),
                              (("trend", "dummy seasonal (s=7)"), 5, "known"),
                              (("trend",), 15, "filtered")]:
        blocks = [makers[name]() for name in names]
        n = sum(b.k for b in blocks)
        model = st.combine(*blocks, irregular_var=rng.uniform(0.2, 3.0), x0=np.zeros(n),
                           P0=10.0 * np.eye(n))
        _, y = simulate(model, 40, rng=rng)
        label = f"{' + '.join(names)}, n={n}, m=1, steps={steps}"
        if end == "gap":
            y[-6:] = np.nan                         # the last six readings are missing
            label += ", the last 6 readings missing"
        x, P = _filtered_end(model, y)
        if end == "known":
            P = np.zeros((n, n))                    # the state at the end known exactly
            label += ", P = 0"
        out.append((label, tuple(np.array(a) for a in (model.F, model.H, model.Q, model.R))
                    + (x, P, steps)))
    for n, m, steps in [(3, 2, 6), (4, 2, 10), (2, 2, 3), (5, 2, 4)]:
        model = _random_model(rng, n, m)
        _, y = simulate(model, 30, rng=rng)
        x, P = _filtered_end(model, y)
        out.append((f"random model, n={n}, m={m}, steps={steps}",
                    tuple(np.array(a) for a in (model.F, model.H, model.Q, model.R)) + (x, P, steps)))
    return out


def ps09_consistency(seed=9505):
    """ps09 (e) nis_consistency(nis, dof, alpha): the NIS and degrees of freedom of
    filters run on simulated data with the model the data came from and with Q or R
    off by a factor, some with fully or partly missing steps, m = 1 to 4; and
    chi-square draws with random degrees of freedom.

    >>> [label for label, _ in ps09_consistency()][-1]
    'chi-square draws with dof from 0 to 4, T=400, alpha=0.01'
    """
    from .anomaly import nis as _nis
    from .filter import kalman_filter

    rng = np.random.default_rng(seed)
    out = []
    for n, m, T, p_missing, q_factor, r_factor, alpha in [
            (1, 1, 200, 0.0, 1.0, 1.0, 0.05), (2, 2, 150, 0.0, 1.0, 1.0, 0.05),
            (2, 3, 120, 0.3, 1.0, 1.0, 0.01), (3, 2, 100, 0.2, 0.1, 1.0, 0.05),
            (2, 2, 80, 0.0, 1.0, 0.2, 0.1), (3, 4, 60, 0.4, 1.0, 1.0, 0.2),
            (4, 3, 100, 0.25, 10.0, 1.0, 0.01), (1, 2, 300, 0.1, 1.0, 3.0, 0.001),
            (2, 1, 5, 0.0, 1.0, 1.0, 0.05)]:
        model = _random_model(rng, n, m)
        _, y = simulate(model, T, rng=rng)
        y[rng.random(y.shape) < p_missing] = np.nan
        y[rng.random(T) < 0.05] = np.nan            # fully missing steps
        filt = kalman_filter(model.replace(Q=q_factor * model.Q, R=r_factor * model.R), y)
        value, dof = _nis(filt, return_dof=True)
        label = f"filter output, n={n}, m={m}, T={T}, alpha={alpha:g}"
        if np.isnan(y).any():
            label += f", {int(np.isnan(y).sum())} of {T * m} values missing"
        out.append((label, (np.array(value), np.array(dof), alpha)))
    for T, alpha in [(50, 0.05), (400, 0.01)]:
        dof = rng.integers(0, 5, size=T)
        scale = rng.uniform(0.8, 1.25)
        value = np.where(dof > 0, scale * rng.chisquare(np.maximum(dof, 1)), np.nan)
        out.append((f"chi-square draws with dof from 0 to 4, T={T}, alpha={alpha:g}",
                    (value, dof, alpha)))
    return out
