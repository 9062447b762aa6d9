r"""Nonlinear filtering: the extended and the unscented Kalman filter and smoother.

The model is

.. math::

    x_t = f(x_{t-1}) + w_t, \quad w_t \sim N(0, Q), \qquad
    y_t = h(x_t) + v_t, \quad v_t \sim N(0, R),

with ``x0, P0`` the state at time 0 (the first step predicts, as in the
linear filter). Both filters return :class:`~kflib.FilterResult`, so the
code that reads a linear filter's output (NIS, plots) works unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ._checks import as_float_array, check_covariance, check_shape, shape_str
from .filter import LOG_2PI, FilterResult, FilterSteps, _sym, _T, gaussian_update
from .simulate import psd_sqrt
from .smoother import SmootherResult, _gain

__all__ = ["NonlinearSSM", "ekf_filter", "ekf_smoother", "ukf_filter", "ukf_smoother",
           "numerical_jacobian", "check_jacobian", "sigma_points", "unscented_transform",
           "torch_jacobian"]


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
        P0 = np.atleast_2d(as_float_array(self.P0, "P0"))
        check_shape(P0, "P0", (n, n))
        Q = np.atleast_2d(as_float_array(self.Q, "Q"))
        check_shape(Q, "Q", (n, n))
        R = np.atleast_2d(as_float_array(self.R, "R"))
        if R.ndim != 2 or R.shape[0] != R.shape[1]:
            raise ValueError(f"R must have shape (m, m); got {shape_str(R.shape)}")
        m = R.shape[0]
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
        P = _sym(F @ P @ F.T + model.Q)
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
    x = np.asarray(x, dtype=float)
    n = x.shape[0]
    lam = alpha**2 * (n + kappa) - n
    if n + lam <= 0:
        raise ValueError(f"alpha and kappa give n + lambda = {n + lam:.3g} <= 0; "
                         "raise alpha or kappa")
    L = psd_sqrt((n + lam) * np.asarray(P, dtype=float))
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
