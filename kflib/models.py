"""Builders for the standard models of the course.

Each returns a :class:`~kflib.LinearGaussianSSM`; the matrices are written
out so that the code reads like the equations in the book.

Course: chapter 1 (book/01-state-space.md); exercise ps01-state-space; tests:
test_simulate_and_models.py.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ._checks import as_float_array
from .model import LinearGaussianSSM

__all__ = ["local_level", "constant_velocity", "arima", "arma_stationary_cov"]

VAGUE = 1e6


def _positive(value, name: str, *, allow_zero: bool = True) -> float:
    arr = as_float_array(value, name)
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a number; got an array of shape {arr.shape}")
    v = float(arr)
    if v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}; got {v}")
    return v


def _number(value, name: str) -> float:
    arr = as_float_array(value, name)
    if arr.size != 1:
        raise ValueError(f"{name} must be a number; got an array of shape {arr.shape}")
    return float(arr.reshape(()))


def local_level(q, r, x0=0.0, P0=VAGUE) -> LinearGaussianSSM:
    r"""Random walk plus noise: ``x_t = x_{t-1} + w_t``, ``y_t = x_t + v_t``.

    Parameters
    ----------
    q, r : float
        Variances of the level disturbance ``w_t`` and the observation noise ``v_t``.
    x0, P0 : float
        Mean and variance of the level at time 0 (default: a vague prior, P0 = 1e6).
    """
    q, r = _positive(q, "q"), _positive(r, "r")
    return LinearGaussianSSM(F=[[1.0]], H=[[1.0]], Q=[[q]], R=[[r]],
                             x0=[_number(x0, "x0")], P0=[[_number(P0, "P0")]])


def constant_velocity(dt, q, r, x0=None, P0=None) -> LinearGaussianSSM:
    r"""Constant-velocity model with continuous white-noise acceleration.

    State ``(position, velocity)``; ``F = [[1, dt], [0, 1]]``, ``H = [1, 0]``,
    ``Q = q [[dt^3/3, dt^2/2], [dt^2/2, dt]]``, ``R = r``.

    At ``dt = 1`` it has the ``F`` and ``H`` of the local linear trend, but not
    its ``Q``: here one parameter ``q`` sets a correlated ``Q`` (correlation
    ``sqrt(3)/2``), while the local linear trend gives the level and the slope
    independent shocks with two variances, ``Q = diag(level_var, slope_var)``
    (:func:`kflib.structural.local_linear_trend`).

    Parameters
    ----------
    dt : float
        Time between steps (positive).
    q : float
        Spectral density of the continuous white-noise acceleration.
    r : float
        Variance of the position measurement.
    x0 : (2,) array, optional
        Mean of the state at time 0 (default zeros).
    P0 : (2, 2) array, optional
        Covariance of the state at time 0 (default ``1e6 I``, a vague prior).
    """
    dt = _positive(dt, "dt", allow_zero=False)
    q, r = _positive(q, "q"), _positive(r, "r")
    F = np.array([[1.0, dt], [0.0, 1.0]])
    H = np.array([[1.0, 0.0]])
    Q = q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
    x0 = np.zeros(2) if x0 is None else x0
    P0 = VAGUE * np.eye(2) if P0 is None else P0
    return LinearGaussianSSM(F=F, H=H, Q=Q, R=[[r]], x0=x0, P0=P0)


def _arma_blocks(phi, theta):
    """Harvey's ARMA form: alpha_t = T alpha_{t-1} + g eta_t, z_t = alpha_t[0]."""
    phi = np.atleast_1d(as_float_array(phi, "phi"))
    theta = np.atleast_1d(as_float_array(theta, "theta"))
    if phi.ndim != 1 or theta.ndim != 1:
        raise ValueError("phi and theta must be 1-D sequences of coefficients")
    k = max(len(phi), len(theta) + 1, 1)
    Ta = np.zeros((k, k))
    Ta[: len(phi), 0] = phi
    Ta[np.arange(k - 1), np.arange(1, k)] = 1.0     # ones on the superdiagonal
    g = np.zeros(k)
    g[0] = 1.0
    g[1: len(theta) + 1] = theta
    return Ta, g


def arma_stationary_cov(phi, theta, sigma2) -> np.ndarray:
    """Stationary covariance of the ARMA state in Harvey's form.

    Solves ``P = T P T' + sigma2 g g'``; raises ``ValueError`` if the AR part is
    not stationary.
    """
    Ta, g = _arma_blocks(phi, theta)
    if np.max(np.abs(np.linalg.eigvals(Ta))) >= 1.0:
        raise ValueError("the AR coefficients phi are not stationary: the roots of "
                         "1 - phi_1 z - ... - phi_p z^p must lie outside the unit circle")
    sigma2 = _positive(sigma2, "sigma2", allow_zero=False)
    P = scipy.linalg.solve_discrete_lyapunov(Ta, sigma2 * np.outer(g, g))
    return 0.5 * (P + P.T)


def arima(phi, theta, sigma2, d: int = 0, y_presample=None) -> LinearGaussianSSM:
    r"""ARIMA(p, d, q) in state-space form, initialised for exact likelihoods.

    The differenced series :math:`z_t = \Delta^d y_t` follows the ARMA model
    :math:`z_t = \sum_i \phi_i z_{t-i} + \eta_t + \sum_j \theta_j \eta_{t-j}`,
    :math:`\eta_t \sim N(0, \sigma^2)`. The state stacks
    :math:`(y_t, \Delta y_t, \ldots, \Delta^{d-1} y_t)` and Harvey's ARMA state
    :math:`\alpha_t` (dimension ``max(p, q + 1)``, with :math:`z_t = \alpha_{t,1}`):

    .. math::

        \Delta^j y_t = \Delta^j y_{t-1} + \Delta^{j+1} y_t, \qquad
        \alpha_t = T \alpha_{t-1} + g \eta_t,

    observed without noise through ``H = [1, 0, ..., 0]``. At time 0 the
    differences are known from the presample and :math:`\alpha_0` has the
    stationary distribution, so the filter's log-likelihood of ``y_1..y_T`` is
    the exact ARMA likelihood of the differenced series (as statsmodels'
    ``SARIMAX(..., simple_differencing=True)`` computes it).

    Parameters
    ----------
    phi : (p,) array
        AR coefficients (stationary).
    theta : (q,) array
        MA coefficients.
    sigma2 : float
        Innovation variance.
    d : int
        Order of differencing.
    y_presample : (d,) array, optional
        The last ``d`` observations before the sample, oldest first (default zeros).
    """
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
        raise ValueError(f"d must be a non-negative int; got {d!r}")
    Ta, g = _arma_blocks(phi, theta)
    P_stat = arma_stationary_cov(phi, theta, sigma2)
    k = Ta.shape[0]
    if y_presample is None:
        y_presample = np.zeros(d)
    pre = np.atleast_1d(as_float_array(y_presample, "y_presample"))
    if pre.shape != (d,):
        raise ValueError(f"y_presample must have shape ({d},); got {pre.shape}")

    # Levels l_t = A l_{t-1} + 1 z_t with A upper-triangular ones;
    # z_t = e1' alpha_t = e1' T alpha_{t-1} + eta_t.
    A = np.triu(np.ones((d, d)))
    F = np.zeros((d + k, d + k))
    F[:d, :d] = A
    F[:d, d:] = np.outer(np.ones(d), Ta[0])
    F[d:, d:] = Ta
    G = np.concatenate([np.ones(d), g])
    Q = sigma2 * np.outer(G, G)
    H = np.zeros((1, d + k))
    H[0, 0] = 1.0
    levels0 = np.array([np.diff(pre, j)[-1] for j in range(d)])
    x0 = np.concatenate([levels0, np.zeros(k)])
    P0 = np.zeros((d + k, d + k))
    P0[d:, d:] = P_stat
    return LinearGaussianSSM(F=F, H=H, Q=Q, R=[[0.0]], x0=x0, P0=P0)
