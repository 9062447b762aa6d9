r"""Nonlinear filtering: the extended and the unscented Kalman filter and smoother.

The model is

.. math::

    x_t = f(x_{t-1}) + w_t, \quad w_t \sim N(0, Q), \qquad
    y_t = h(x_t) + v_t, \quad v_t \sim N(0, R),

with ``x0, P0`` the state at time 0 (the first step predicts, as in the
linear filter). Both filters return :class:`~kflib.FilterResult`, so the
code that reads a linear filter's output (NIS, plots) works unchanged.

Course: chapter 7 (book/07-nonlinear.md); the particle filter also in chapter
6; exercise ps07-nonlinear; tests: test_nonlinear.py,
test_nonlinear_particle.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ._checks import as_float_array, check_covariance, check_real, check_shape, shape_str
from .filter import (LOG_2PI, FilterResult, FilterSteps, _sym, _T, gaussian_update,
                     require_finite)
from .simulate import psd_sqrt
from .smoother import SmootherResult, _gain

__all__ = ["NonlinearSSM", "ekf_filter", "ekf_smoother", "ukf_filter", "ukf_smoother",
           "numerical_jacobian", "check_jacobian", "sigma_points", "unscented_transform",
           "torch_jacobian", "particle_filter", "ParticleFilterResult"]


def numerical_jacobian(fun: Callable, x, eps: float = 1e-6) -> np.ndarray:
    """Central-difference Jacobian of ``fun`` at ``x``: (k, n) for fun: R^n -> R^k.

    The step for component i is ``eps * max(1, |x_i|)``.
    """
    x = np.asarray(x, dtype=float)
    f0 = np.atleast_1d(np.asarray(fun(x), dtype=float))
    J = np.empty((f0.size, x.size))
    for i in range(x.size):
        step = eps * max(1.0, abs(x[i]))
        e = np.zeros_like(x)
        e[i] = step
        J[:, i] = (np.atleast_1d(fun(x + e)) - np.atleast_1d(fun(x - e))) / (2 * step)
    return J


def torch_jacobian(fun: Callable, x) -> np.ndarray:
    """Jacobian by automatic differentiation (``torch.func.jacrev``).

    ``fun`` must accept and return torch tensors (float64 is used).
    """
    import torch
    from torch.func import jacrev

    xt = torch.as_tensor(np.asarray(x, dtype=float), dtype=torch.float64)
    J = jacrev(lambda z: torch.atleast_1d(fun(z)))(xt)
    return J.detach().cpu().numpy().reshape(-1, xt.numel())


def check_jacobian(fun: Callable, jac: Callable, x, eps: float = 1e-6) -> float:
    """Largest absolute difference between ``jac(x)`` and a numerical Jacobian of ``fun``.

    A correct Jacobian gives a number of the order of ``eps**2`` times the
    function's third derivatives; a wrong one gives an error of the size of
    the mistake.
    """
    J = np.atleast_2d(np.asarray(jac(np.asarray(x, dtype=float)), dtype=float))
    Jn = numerical_jacobian(fun, x, eps)
    if J.shape != Jn.shape:
        raise ValueError(f"the Jacobian has shape {shape_str(J.shape)}; the function "
                         f"needs {shape_str(Jn.shape)}")
    return float(np.max(np.abs(J - Jn)))


@dataclass(frozen=True, eq=False)
class NonlinearSSM:
    r"""A nonlinear state-space model with additive Gaussian noise.

    Parameters
    ----------
    f : callable
        Transition ``f(x) -> (n,)``.
    h : callable
        Observation ``h(x) -> (m,)``.
    Q : (n, n) array
        Process-noise covariance.
    R : (m, m) array
        Observation-noise covariance.
    x0 : (n,) array
        Mean of the state at time 0.
    P0 : (n, n) array
        Covariance of the state at time 0.
    F_jac, H_jac : callable, optional
        Jacobians ``x -> (n, n)`` and ``x -> (m, n)`` for the EKF; when absent
        they are computed by central differences.
    residual : callable, optional
        Maps a difference of observations ``y - h(x)`` (shape (m,)) to its
        proper value, e.g. wrapping a bearing into (-pi, pi]. Used for the
        innovations of both filters and the spread of the UKF's sigma points.
    """

    f: Callable
    h: Callable
    Q: np.ndarray
    R: np.ndarray
    x0: np.ndarray
    P0: np.ndarray
    F_jac: Callable | None = None
    H_jac: Callable | None = None
    residual: Callable | None = None
    n: int = field(init=False)
    m: int = field(init=False)

    def __post_init__(self):
        for name in ("f", "h"):
            if not callable(getattr(self, name)):
                raise TypeError(f"{name} must be callable; got "
                                f"{type(getattr(self, name)).__name__}")
        for name in ("F_jac", "H_jac", "residual"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TypeError(f"{name} must be callable or None; got {type(value).__name__}")
        x0 = np.atleast_1d(as_float_array(self.x0, "x0"))
        if x0.ndim != 1:
            raise ValueError(f"x0 must have shape (n,); got {shape_str(x0.shape)}")
        n = x0.shape[0]
        if n == 0:
            raise ValueError("x0 must describe at least one state (n >= 1); got shape (0,)")
        P0 = np.atleast_2d(as_float_array(self.P0, "P0"))
        check_shape(P0, "P0", (n, n))
        Q = np.atleast_2d(as_float_array(self.Q, "Q"))
        check_shape(Q, "Q", (n, n))
        R = np.atleast_2d(as_float_array(self.R, "R"))
        if R.ndim != 2 or R.shape[0] != R.shape[1]:
            raise ValueError(f"R must have shape (m, m); got {shape_str(R.shape)}")
        m = R.shape[0]
        if m == 0:
            raise ValueError("R must cover at least one observed component (m >= 1); "
                             "got shape (0, 0)")
        for name, C in (("Q", Q), ("R", R), ("P0", P0)):
            check_covariance(C, name)
        fx = np.atleast_1d(np.asarray(self.f(x0.copy()), dtype=float))
        if fx.shape != (n,):
            raise ValueError(f"f(x0) must return shape ({n},); got {shape_str(fx.shape)}")
        hx = np.atleast_1d(np.asarray(self.h(x0.copy()), dtype=float))
        if hx.shape != (m,):
            raise ValueError(f"h(x0) must return shape ({m},) to match R; got "
                             f"{shape_str(hx.shape)}")
        for name, value in (("Q", Q), ("R", R), ("x0", x0), ("P0", P0), ("n", n), ("m", m)):
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
            object.__setattr__(self, name, value)

    def jac_f(self, x) -> np.ndarray:
        return _call_jac(self.F_jac, self.f, x, (self.n, self.n), "F_jac")

    def jac_h(self, x) -> np.ndarray:
        return _call_jac(self.H_jac, self.h, x, (self.m, self.n), "H_jac")

    def __repr__(self) -> str:
        return f"NonlinearSSM(n={self.n}, m={self.m})"


def _call_jac(jac, fun, x, shape, name):
    if jac is None:
        return numerical_jacobian(fun, x)
    J = np.atleast_2d(np.asarray(jac(np.array(x)), dtype=float))
    if J.shape != shape:
        raise ValueError(f"{name}(x) must return shape {shape_str(shape)}; got "
                         f"{shape_str(J.shape)}")
    return J


def _check(model, y):
    if not isinstance(model, NonlinearSSM):
        raise TypeError(f"model must be a kflib.nonlinear.NonlinearSSM; got "
                        f"{type(model).__name__}")
    y = as_float_array(y, "y", allow_nan=True)
    if y.ndim == 1 and model.m == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[1] != model.m:
        raise ValueError(f"y must have shape (T, {model.m}); got {shape_str(y.shape)}")
    if y.shape[0] < 1:
        raise ValueError("y must hold at least one time step; got T = 0")
    return y


def _fx(model, x):
    return np.asarray(model.f(np.array(x)), dtype=float).reshape(model.n)


def _hx(model, x):
    return np.asarray(model.h(np.array(x)), dtype=float).reshape(model.m)


def _resid(model, d):
    """The model's residual map applied to y - h(x) (rows of a stack too)."""
    if model.residual is None:
        return d
    d = np.asarray(d, dtype=float)
    if d.ndim == 1:
        return np.asarray(model.residual(d), dtype=float).reshape(d.shape)
    return np.stack([np.asarray(model.residual(row), dtype=float) for row in d])


def ekf_filter(model: NonlinearSSM, y) -> FilterResult:
    r"""Extended Kalman filter: linearise f and h at the current estimate.

    .. math::

        x_{t|t-1} = f(x_{t-1|t-1}), \quad P_{t|t-1} = F_t P_{t-1|t-1} F_t' + Q,
        \quad F_t = \partial f / \partial x \,(x_{t-1|t-1}) \\
        \nu_t = y_t - h(x_{t|t-1}), \quad S_t = H_t P_{t|t-1} H_t' + R,
        \quad H_t = \partial h / \partial x \,(x_{t|t-1})

    then the usual gain and Joseph-form update. NaN in ``y`` marks missing
    components, as in :func:`kflib.kalman_filter`.

    Parameters
    ----------
    model : NonlinearSSM
    y : (T, m) array

    Returns
    -------
    FilterResult
    """
    y = _check(model, y)
    T, m = y.shape
    n = model.n
    out = FilterSteps(1, T, n, m)
    x, P = model.x0, model.P0
    for t in range(T):
        # Predict: x = f(x), P = F P F' + Q with F the Jacobian at the last estimate
        F = model.jac_f(x)
        x = _fx(model, x)
        require_finite(t, "the predicted state f(x)", x)
        P = _sym(F @ P @ F.T + model.Q)
        require_finite(t, "the predicted covariance F P F' + Q (F the Jacobian of f)", P)
        # Innovation nu = y - h(x), S = H P H' + R with H the Jacobian at the prediction
        H = model.jac_h(x)
        nu = _resid(model, y[t] - _hx(model, x))
        S = _sym(H @ P @ H.T + model.R)
        out.predicted(t, x, P, nu, S)
        obs = ~np.isnan(y[t])
        if obs.any():
            xb, Pb, K, ll = gaussian_update(x[None], P[None], nu[None], H, model.R,
                                            obs[None], t)
            x, P = xb[0], Pb[0]
            out.K[0, t] = K[0]
            out.loglik += ll
        out.filtered(t, x, P)
    return out.result(batched=False)


def ekf_smoother(model: NonlinearSSM, filt: FilterResult) -> SmootherResult:
    r"""Extended RTS smoother: the linear backward pass with ``F_{t+1}`` the
    Jacobian of f at the filtered estimate ``x_{t|t}``."""
    xf, Pf, xp, Pp = _filter_arrays(model, filt)
    jac = [model.jac_f(model.x0)] + [model.jac_f(xf[k]) for k in range(len(xf) - 1)]
    return _backward(model, xf, Pf, xp, Pp,
                     lambda k, x_k, P_k: _gain(P_k, jac[k + 1], Pp[k + 1]))


def _filter_arrays(model, filt):
    if not isinstance(filt, FilterResult):
        raise TypeError("filt must be the FilterResult returned by the filter; got "
                        f"{type(filt).__name__}")
    if filt.x_filt.ndim != 2 or filt.x_filt.shape[-1] != model.n:
        raise ValueError(f"filt must hold one series with state dimension {model.n}; "
                         f"x_filt has shape {shape_str(filt.x_filt.shape)}")
    return filt.x_filt, filt.P_filt, filt.x_pred, filt.P_pred


def _backward(model, xf, Pf, xp, Pp, gain):
    """The RTS backward recursion, given how to compute each gain G_k."""
    T, n = xf.shape
    xs, Ps = np.empty_like(xf), np.empty_like(Pf)
    G_all = np.empty((T, n, n))
    xs[-1], Ps[-1] = xf[-1], Pf[-1]
    for k in range(T - 2, -2, -1):
        x_k, P_k = (xf[k], Pf[k]) if k >= 0 else (model.x0, model.P0)
        G = gain(k, x_k, P_k)
        # x_{k|T} = x_{k|k} + G (x_{k+1|T} - x_{k+1|k})
        x_s = x_k + G @ (xs[k + 1] - xp[k + 1])
        # P_{k|T} = P_{k|k} + G (P_{k+1|T} - P_{k+1|k}) G'
        P_s = _sym(P_k + G @ (Ps[k + 1] - Pp[k + 1]) @ G.T)
        G_all[k + 1] = G
        if k >= 0:
            xs[k], Ps[k] = x_s, P_s
        else:
            x0s, P0s = x_s, P_s
    return SmootherResult(xs, Ps, Ps @ _T(G_all), G_all, x0s, P0s)


# ---------------------------------------------------------------------------
# The unscented transform


def sigma_points(x, P, alpha: float = 1.0, beta: float = 2.0, kappa: float = 0.0):
    r"""Scaled sigma points and weights (Julier 2002; Wan & van der Merwe 2000).

    With :math:`\lambda = \alpha^2 (n + \kappa) - n` the ``2n + 1`` points are
    :math:`x` and :math:`x \pm` the columns of :math:`L`, where
    :math:`L L' = (n + \lambda) P`.

    Returns
    -------
    X : (2n + 1, n) array
        The points, one per row.
    Wm, Wc : (2n + 1,) arrays
        Weights for the mean and for the covariance.
    """
    x = as_float_array(x, "x")
    if x.ndim != 1:
        raise ValueError(f"x must be one state, shape (n,); got {shape_str(x.shape)}")
    n = x.shape[0]
    P = as_float_array(P, "P")
    check_shape(P, "P", (n, n))
    alpha, beta, kappa = (check_real(v, k) for k, v in
                          (("alpha", alpha), ("beta", beta), ("kappa", kappa)))
    lam = alpha**2 * (n + kappa) - n
    if n + lam <= 0:
        raise ValueError(f"alpha and kappa give n + lambda = {n + lam:.3g} <= 0; "
                         "raise alpha or kappa")
    L = psd_sqrt((n + lam) * P)
    X = np.vstack([x, x + L.T, x - L.T])
    Wm = np.full(2 * n + 1, 0.5 / (n + lam))
    Wc = Wm.copy()
    Wm[0] = lam / (n + lam)
    Wc[0] = lam / (n + lam) + (1.0 - alpha**2 + beta)
    return X, Wm, Wc


def unscented_transform(fun: Callable, x, P, alpha: float = 1.0, beta: float = 2.0,
                        kappa: float = 0.0, residual: Callable | None = None):
    """Mean, covariance and cross-covariance of ``fun(z)`` for ``z ~ N(x, P)``.

    ``residual``, when given, maps differences of outputs to their proper
    values (e.g. wrapping angles): the mean is the centre point's output plus
    the weighted mapped differences from it, and the covariances use the
    mapped differences from the mean.

    Returns
    -------
    mean : (k,) array
    cov : (k, k) array
    cross : (n, k) array
        ``Cov(z, fun(z))``.
    """
    X, Wm, Wc = sigma_points(x, P, alpha, beta, kappa)
    Y = np.array([np.atleast_1d(np.asarray(fun(p), dtype=float)) for p in X])
    if residual is None:
        mean = Wm @ Y
        dY = Y - mean
    else:
        # average the differences from the centre point, each mapped by the
        # residual (so angles on both sides of the cut average correctly)
        wrap = lambda D: np.stack([np.asarray(residual(row), dtype=float) for row in D])  # noqa: E731
        mean = Y[0] + Wm @ wrap(Y - Y[0])
        dY = wrap(Y - mean)
    dX = X - np.asarray(x, dtype=float)
    cov = _sym((Wc[:, None] * dY).T @ dY)
    cross = (Wc[:, None] * dX).T @ dY
    return mean, cov, cross


def ukf_filter(model: NonlinearSSM, y, alpha: float = 1.0, beta: float = 2.0,
               kappa: float = 0.0) -> FilterResult:
    r"""Unscented Kalman filter with scaled sigma points.

    Predict: push sigma points of :math:`N(x_{t-1|t-1}, P_{t-1|t-1})` through f,
    add Q. Update: push sigma points of the prediction through h;
    :math:`S = \mathrm{Cov}(h) + R`, :math:`C = \mathrm{Cov}(x, h)`,
    :math:`K = C S^{-1}`, :math:`x_{t|t} = x_{t|t-1} + K \nu_t`,
    :math:`P_{t|t} = P_{t|t-1} - K S K'`. Missing components are left out of
    the update. For a linear model this is the Kalman filter exactly.

    The defaults (alpha = 1, beta = 2, kappa = 0) keep every weight of a
    moderate size; a small alpha gives a large negative centre weight.
    """
    y = _check(model, y)
    T, m = y.shape
    n = model.n
    out = FilterSteps(1, T, n, m)
    x, P = model.x0, model.P0
    ut = dict(alpha=alpha, beta=beta, kappa=kappa)
    for t in range(T):
        x, Pf, _ = unscented_transform(lambda z: _fx(model, z), x, P, **ut)
        P = _sym(Pf + model.Q)
        yhat, Sy, C = unscented_transform(lambda z: _hx(model, z), x, P, **ut,
                                          residual=model.residual)
        S = _sym(Sy + model.R)
        nu = _resid(model, y[t] - yhat)
        out.predicted(t, x, P, nu, S)
        o = ~np.isnan(y[t])
        if o.any():
            So, Co, nuo = S[np.ix_(o, o)], C[:, o], nu[o]
            try:
                L = np.linalg.cholesky(So)
            except np.linalg.LinAlgError:
                raise np.linalg.LinAlgError(
                    f"the innovation covariance S is not positive definite at time "
                    f"index {t}") from None
            # K = C S^{-1}
            Ko = np.linalg.solve(So, Co.T).T
            x = x + Ko @ nuo
            P = _sym(P - Ko @ So @ Ko.T)
            out.K[0, t][:, o] = Ko
            quad = nuo @ np.linalg.solve(So, nuo)
            out.loglik += -0.5 * (o.sum() * LOG_2PI + 2 * np.log(np.diag(L)).sum() + quad)
        out.filtered(t, x, P)
    return out.result(batched=False)


def ukf_smoother(model: NonlinearSSM, filt: FilterResult, alpha: float = 1.0,
                 beta: float = 2.0, kappa: float = 0.0) -> SmootherResult:
    r"""Unscented RTS smoother (Särkkä 2008).

    :math:`G_k = D_{k+1} P_{k+1|k}^{-1}` with
    :math:`D_{k+1} = \mathrm{Cov}(x_k, f(x_k))` under :math:`N(x_{k|k}, P_{k|k})`,
    by the same sigma points as the filter's prediction.
    """
    xf, Pf, xp, Pp = _filter_arrays(model, filt)

    def gain(k, x_k, P_k):
        _, _, D = unscented_transform(lambda z: _fx(model, z), x_k, P_k,
                                      alpha, beta, kappa)
        try:
            return np.linalg.solve(Pp[k + 1], D.T).T
        except np.linalg.LinAlgError:
            return D @ np.linalg.pinv(Pp[k + 1], hermitian=True)

    return _backward(model, xf, Pf, xp, Pp, gain)


# ---------------------------------------------------------------------------
# The bootstrap particle filter


@dataclass(frozen=True, eq=False)
class ParticleFilterResult:
    """What :func:`particle_filter` computes (all arrays read-only).

    Attributes
    ----------
    x_filt : (T, n) array
        Weighted particle means, estimates of ``E[x_t | y_{1:t}]``.
    P_filt : (T, n, n) array
        Weighted particle covariances ``sum_i W_i (x_i - mean)(x_i - mean)'``.
    ess : (T,) array
        Effective sample size ``1 / sum_i W_i^2`` of the weights at step t,
        before any resampling at that step (between 1 and N).
    resampled : (T,) bool array
        Whether the particles were resampled at the end of step t.
    loglik : float
        Estimate of ``log p(y_{1:T})``: the sum over observed steps of the log
        of the weighted mean of the particles' observation densities. Its
        exponential is an unbiased estimate of the likelihood; the log itself
        is biased low, by about half its variance.
    particles : (N, n) array
        The particles after the last step (after its resampling, if any).
    weights : (N,) array
        Their normalised weights.
    n_particles : int
    """

    x_filt: np.ndarray
    P_filt: np.ndarray
    ess: np.ndarray
    resampled: np.ndarray
    loglik: float
    particles: np.ndarray
    weights: np.ndarray
    n_particles: int

    def __post_init__(self):
        for name in ("x_filt", "P_filt", "ess", "resampled", "particles", "weights"):
            getattr(self, name).setflags(write=False)

    def __repr__(self) -> str:
        T, n = self.x_filt.shape
        return (f"ParticleFilterResult(T={T}, n={n}, n_particles={self.n_particles}, "
                f"loglik={self.loglik:.6g}, resampled {int(self.resampled.sum())} times)")


def _rowwise(fun, width):
    """Apply a one-state function to every row of a stack."""
    def apply(X):
        return np.stack([np.asarray(fun(np.array(x)), dtype=float).reshape(width) for x in X])
    return apply


def _batch_function(name, override, model_fun, vectorized, width):
    """The function applied to stacks of particles, and whether it was given as one."""
    if override is not None:
        if not callable(override):
            raise TypeError(f"{name} must be callable or None; got {type(override).__name__}")
        return override, True
    if vectorized:
        return model_fun, True
    return _rowwise(model_fun, width), False


def _call_batch(fun, X, name, width, t=None):
    where = "" if t is None else f" at time index {t}"
    out = np.asarray(fun(X), dtype=float)
    if out.ndim == 1 and width == 1 and out.shape[0] == X.shape[0]:
        out = out[:, None]
    if out.shape != (X.shape[0], width):
        raise ValueError(f"{name} applied to particles of shape {shape_str(X.shape)} must "
                         f"return shape {shape_str((X.shape[0], width))}; got "
                         f"{shape_str(out.shape)}{where}")
    if not np.isfinite(out).all():
        raise ValueError(f"{name} returned NaN or inf for some particles{where}")
    return out


def _agree_with_model(name, batch, model_fun, X, width):
    """A stacked function must give, row by row, what the model's function gives."""
    try:
        out = batch(X)
    except Exception as exc:  # a one-state function handed a stack fails in its own way
        raise ValueError(f"{name} failed on a stack of particles of shape "
                         f"{shape_str(X.shape)} ({type(exc).__name__}: {exc}); pass a "
                         "function that maps (N, n) stacks, or vectorized=False") from exc
    got = _call_batch(lambda _: out, X, name, width)
    want = _rowwise(model_fun, width)(X)
    scale = 1.0 + np.abs(want).max()
    if not np.allclose(got, want, rtol=1e-7, atol=1e-9 * scale):
        raise ValueError(f"{name} applied to a stack of particles disagrees with the model's "
                         f"one-state function row by row (largest difference "
                         f"{np.abs(got - want).max():.3g}); is it vectorised correctly?")


def _systematic_resample(rng, W):
    """Indices of N draws from the weights W: one uniform, N evenly spaced pointers."""
    N = W.shape[0]
    c = np.cumsum(W)
    c[-1] = 1.0
    u = (rng.random() + np.arange(N)) / N
    return np.minimum(np.searchsorted(c, u, side="right"), N - 1)


def particle_filter(model: NonlinearSSM, y, n_particles: int = 1000, rng=None, *,
                    resample: str = "ess", ess_threshold: float = 0.5,
                    vectorized: bool = False, f: Callable | None = None,
                    h: Callable | None = None, residual: Callable | None = None,
                    obs_logpdf: Callable | None = None,
                    process_noise: Callable | None = None) -> ParticleFilterResult:
    r"""Bootstrap particle filter (Gordon, Salmond & Smith 1993) with systematic resampling.

    The filtering density :math:`p(x_t \mid y_{1:t})` is represented by N
    particles :math:`x_t^{(i)}` with normalised weights :math:`W_t^{(i)}`.
    Starting from :math:`x_0^{(i)} \sim N(x_0, P_0)`, :math:`W_0^{(i)} = 1/N`,
    each step t = 1..T

    1. propagates every particle through the model,
       :math:`x_t^{(i)} = f(x_{t-1}^{(i)}) + w_t^{(i)}`,
       :math:`w_t^{(i)} \sim N(0, Q)` (or ``process_noise``);
    2. if :math:`y_t` is observed, weights it by its observation density
       :math:`g_t^{(i)} = p(y_t \mid x_t^{(i)})` (on the log scale),
       :math:`W_t^{(i)} \propto W_{t-1}^{(i)} g_t^{(i)}`, and adds
       :math:`\log \sum_i W_{t-1}^{(i)} g_t^{(i)}` to the log-likelihood
       (the log-mean-exp of the log densities right after a resampling);
       a step whose observation is all NaN is a pure prediction and keeps the
       weights;
    3. records the weighted mean and covariance and the effective sample
       size :math:`1 / \sum_i (W_t^{(i)})^2`;
    4. resamples systematically (one uniform :math:`U`, pointers
       :math:`(U + i)/N` on the cumulative weights) when the effective sample
       size is below ``ess_threshold * N`` (``resample="ess"``), at every
       step (``"always"``) or never (``"never"``, sequential importance
       sampling), and then resets the weights to 1/N.

    The product of the per-step weighted means is an unbiased estimate of the
    likelihood :math:`p(y_{1:T})`, whichever of the resampling rules is used.
    Every operation acts on all particles at once.

    Parameters
    ----------
    model : NonlinearSSM
        Supplies x0, P0, Q, R and, unless overridden, f, h and residual.
    y : (T, m) array
        Observations; NaN marks missing components. With the default Gaussian
        observation density a partly observed row uses the observed
        components (the marginal of R).
    n_particles : int
        Number of particles N (at least 2).
    rng : numpy.random.Generator or int, optional
        Source of randomness (an int seeds a new generator); the same seed
        gives the same result.
    resample : {"ess", "always", "never"}
        When to resample.
    ess_threshold : float in (0, 1]
        With ``resample="ess"``, resample when ess < ess_threshold * N.
    vectorized : bool
        If True, ``model.f``, ``model.h`` and ``model.residual`` accept stacks
        of particles: (N, n) -> (N, n), (N, n) -> (N, m) and (N, m) -> (N, m).
        If False (the default) the model's functions are applied row by row,
        which is correct for any model but slow for many particles.
    f, h, residual : callable, optional
        Stacked versions of the model's functions, (N, n) -> (N, n),
        (N, n) -> (N, m) and (N, m) -> (N, m), used instead of ``model.f``,
        ``model.h`` and ``model.residual``. Each stacked function is checked
        once against the model's one-state function on a few particles; a
        disagreement raises ``ValueError``.
    obs_logpdf : callable, optional
        ``obs_logpdf(y_t, y_pred) -> (N,)``: the log observation density of
        ``y_t`` (m,) given ``y_pred = h(x_t^{(i)})`` (N, m), e.g. for
        heavy-tailed noise. It replaces the Gaussian density with covariance R
        (R and residual are then not used). A partly observed ``y_t`` is passed
        with its NaNs, which the function must handle; NaN results raise.
    process_noise : callable, optional
        ``process_noise(rng, N) -> (N, n)``: draws of the process noise
        :math:`w_t`, replacing :math:`N(0, Q)`. It must draw from ``rng``
        to keep runs reproducible.

    Returns
    -------
    ParticleFilterResult
        ``x_filt`` (T, n), ``P_filt`` (T, n, n), ``ess`` (T,),
        ``resampled`` (T,), ``loglik``, and the final particles and weights.

    Raises
    ------
    ValueError
        If every particle has zero observation density at some step (the
        filter has lost the state; use more particles or a wider density).
    """
    y = _check(model, y)
    T, m = y.shape
    n = model.n
    if isinstance(n_particles, (bool, np.bool_)) or not isinstance(n_particles, (int, np.integer)):
        raise TypeError(f"n_particles must be an int; got {type(n_particles).__name__}")
    if n_particles < 2:
        raise ValueError(f"n_particles must be at least 2; got {n_particles}")
    N = int(n_particles)
    if rng is None or isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        rng = np.random.default_rng(rng)
    elif not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator or an int seed; got "
                        f"{type(rng).__name__}")
    if resample not in ("ess", "always", "never"):
        raise ValueError(f"resample must be 'ess', 'always' or 'never'; got {resample!r}")
    if (isinstance(ess_threshold, bool) or not isinstance(ess_threshold, (int, float, np.floating))
            or not 0.0 < float(ess_threshold) <= 1.0):
        raise ValueError(f"ess_threshold must be a number in (0, 1]; got {ess_threshold!r}")
    for name, value in (("obs_logpdf", obs_logpdf), ("process_noise", process_noise)):
        if value is not None and not callable(value):
            raise TypeError(f"{name} must be callable or None; got {type(value).__name__}")

    if obs_logpdf is not None and residual is not None:
        raise ValueError("residual is not used with obs_logpdf (which receives y_t and "
                         "h(x) and forms any difference itself); pass one of them")
    fb, f_stacked = _batch_function("f", f, model.f, vectorized, n)
    hb, h_stacked = _batch_function("h", h, model.h, vectorized, m)
    rb = None
    if obs_logpdf is None:
        if residual is not None or (vectorized and model.residual is not None):
            rb, r_stacked = _batch_function("residual", residual, model.residual, vectorized, m)
        elif model.residual is not None:
            rb, r_stacked = _rowwise(model.residual, m), False

    # x_0^(i) ~ N(x0, P0)
    X = model.x0 + rng.standard_normal((N, n)) @ psd_sqrt(model.P0).T
    probe = X[:3]
    if f_stacked:
        _agree_with_model("f", fb, model.f, probe, n)
    if h_stacked:
        _agree_with_model("h", hb, model.h, probe, m)
    if rb is not None and r_stacked and model.residual is not None:
        d = np.random.default_rng(0).standard_normal((3, m)) * 4.0
        _agree_with_model("residual", rb, model.residual, d, m)
    LQ = psd_sqrt(model.Q)

    logW = np.full(N, -np.log(N))                  # normalised log-weights
    x_filt, P_filt = np.empty((T, n)), np.empty((T, n, n))
    ess, resampled = np.empty(T), np.zeros(T, dtype=bool)
    loglik = 0.0
    R_cache = {}
    for t in range(T):
        # 1. propagate: x_t^(i) = f(x_{t-1}^(i)) + w_t^(i)
        if process_noise is None:
            noise = rng.standard_normal((N, n)) @ LQ.T
        else:
            noise = np.asarray(process_noise(rng, N), dtype=float)
            if noise.shape != (N, n):
                raise ValueError(f"process_noise(rng, {N}) must return shape "
                                 f"{shape_str((N, n))}; got {shape_str(noise.shape)}")
            if not np.isfinite(noise).all():
                raise ValueError(f"process_noise returned NaN or inf at time index {t}")
        X = _call_batch(fb, X, "f", n, t) + noise
        # 2. weight by the observation density, on the log scale
        obs = ~np.isnan(y[t])
        if obs.any():
            Yp = _call_batch(hb, X, "h", m, t)
            if obs_logpdf is None:
                logg = _gaussian_logpdf(y[t], Yp, obs, rb, model.R, R_cache, t)
            else:
                logg = np.asarray(obs_logpdf(y[t].copy(), Yp), dtype=float)
                if logg.shape != (N,):
                    raise ValueError(f"obs_logpdf(y_t, y_pred) must return shape ({N},); "
                                     f"got {shape_str(logg.shape)}")
                if np.isnan(logg).any() or (logg == np.inf).any():
                    raise ValueError(f"obs_logpdf returned NaN or +inf at time index {t}")
            a = logW + logg
            top = a.max()
            if not np.isfinite(top):
                raise ValueError(f"every particle has zero observation density at time "
                                 f"index {t}: the filter has lost the state; use more "
                                 "particles or a wider observation density")
            # log sum_i W_{t-1}^(i) g_t^(i), computed without underflow
            lse = top + np.log(np.exp(a - top).sum())
            loglik += lse
            logW = a - lse
        # 3. estimates and effective sample size
        W = np.exp(logW)
        W /= W.sum()
        x_filt[t] = W @ X
        D = X - x_filt[t]
        P_filt[t] = _sym((W[:, None] * D).T @ D)
        ess[t] = 1.0 / np.sum(W**2)
        # 4. resample
        if resample == "always" or (resample == "ess" and ess[t] < ess_threshold * N):
            X = X[_systematic_resample(rng, W)]
            logW = np.full(N, -np.log(N))
            resampled[t] = True
    W = np.exp(logW)
    return ParticleFilterResult(x_filt, P_filt, ess, resampled, float(loglik), X.copy(),
                                W / W.sum(), N)


def _gaussian_logpdf(y_t, Yp, obs, rb, R, cache, t):
    """log N(y_t; h(x_i), R) over the observed components, for every particle."""
    if rb is None:
        d = y_t[obs] - Yp[:, obs]
    else:
        full = np.broadcast_to(y_t, Yp.shape) - Yp
        d = np.asarray(rb(full), dtype=float)
        if d.shape != Yp.shape:
            raise ValueError(f"residual must return shape {shape_str(Yp.shape)} for a "
                             f"stack of residuals; got {shape_str(d.shape)}")
        d = d[:, obs]
    key = obs.tobytes()
    if key not in cache:
        Ro = R[np.ix_(obs, obs)]
        try:
            L = np.linalg.cholesky(Ro)
        except np.linalg.LinAlgError:
            raise ValueError("R must be positive definite on the observed components for "
                             "the particle filter's Gaussian observation density (time "
                             f"index {t}); pass obs_logpdf for a degenerate one") from None
        cache[key] = (L, obs.sum() * LOG_2PI + 2.0 * np.log(np.diag(L)).sum())
    L, const = cache[key]
    z = np.linalg.solve(L, d.T)                    # L^{-1} d', (m_o, N)
    return -0.5 * (const + np.sum(z * z, axis=0))
