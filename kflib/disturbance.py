r"""The disturbance smoother: smoothed observation and state noise.

For the model ``x_t = F x_{t-1} + ... + w_t``, ``y_t = H x_t + d_t + v_t``
(D&K 2012 sec. 4.5 call ``v_t`` the measurement disturbance
:math:`\varepsilon_t` and ``w_t`` the state disturbance :math:`\eta_{t-1}`),
the backward recursion

.. math::

    \tilde r_t = F_{t+1}' r_{t+1}, \quad
    r_t = H' S_t^{-1} \nu_t + (I - K_t H)' \tilde r_t, \qquad
    N_t = H' S_t^{-1} H + (I - K_t H)' F_{t+1}' N_{t+1} F_{t+1} (I - K_t H),

with :math:`r_{T+1} = 0, N_{T+1} = 0` and the filter's gain ``K_t``, gives

.. math::

    \hat v_t &= R_t (S_t^{-1} \nu_t - K_t' \tilde r_t), &
    \operatorname{Var}(v_t \mid y) &= R_t - R_t (S_t^{-1} + K_t' \tilde N_t K_t) R_t, \\
    \hat w_t &= Q_t r_t, &
    \operatorname{Var}(w_t \mid y) &= Q_t - Q_t N_t Q_t,

and ``x_{t|T} = x_{t|t-1} + P_{t|t-1} r_t``. Only observed components enter
``S^{-1}``, ``\nu`` and ``K``; the smoothed noise of a missing component is
its regression on the observed ones. In the steps of an exact diffuse start
``r_t, N_t`` are D&K's :math:`r^{(0)}_t, N^{(0)}_t` (sec. 5.3) and
:math:`\hat v_t = y_t - d_t - H \hat x_t` with variance ``H V_t H'``.

The auxiliary residuals (standardised smoothed disturbances, D&K sec. 2.12
and 7.5, used to spot outliers and level breaks) are ``eps_std`` and
``eta_std``: each smoothed disturbance over the standard deviation of its
estimator, :math:`\operatorname{Var}(\hat v_t) = R_t - \operatorname{Var}(v_t \mid y)`.

Course: chapter 4's smoother, for the noise terms (book/04-smoothing.md);
tests: test_disturbance.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import freeze_arrays
from ._inputs import at, check_model
from .diffuse import _exact_smooth, backward_rN
from .filter import FilterResult, _sym, _T
from .smoother import check_filter_result

__all__ = ["DisturbanceResult", "disturbance_smoother"]


@dataclass(frozen=True, eq=False)
class DisturbanceResult:
    """Smoothed disturbances. Time is the first axis after any batch axis.

    Attributes
    ----------
    eps_hat : (..., T, m) array
        ``E[v_t | y_{1:T}]``, the smoothed observation noise.
    eps_cov : (..., T, m, m) array
        ``Var(v_t | y_{1:T})``.
    eta_hat : (..., T, n) array
        ``E[w_t | y_{1:T}]``, the smoothed noise entering the state at step t
        (``x_t = F x_{t-1} + ... + w_t``); NaN at t = 0 for a model started at
        time 1, which has no transition into its first state.
    eta_cov : (..., T, n, n) array
        ``Var(w_t | y_{1:T})``.
    r : (..., T, n) array
        ``r_t`` with ``x_{t|T} = x_{t|t-1} + P_{t|t-1} r_t`` (D&K's
        :math:`r_{t-1}` for the state at time t; in statsmodels'
        ``scaled_smoothed_estimator`` it is column t - 1).
    N : (..., T, n, n) array
        ``N_t`` with ``P_{t|T} = P_{t|t-1} - P_{t|t-1} N_t P_{t|t-1}``.
    eps_std : (..., T, m) array
        Auxiliary residuals of the observations (NaN where the estimator has
        no variance, e.g. a missing component with uncorrelated noise).
    eta_std : (..., T, n) array
        Auxiliary residuals of the states.
    r1, N1, N2 : arrays or None
        For an exact diffuse start, :math:`r^{(1)}, N^{(1)}, N^{(2)}` of the
        diffuse steps (zero after them); None otherwise.
    """

    eps_hat: np.ndarray
    eps_cov: np.ndarray
    eta_hat: np.ndarray
    eta_cov: np.ndarray
    r: np.ndarray
    N: np.ndarray
    eps_std: np.ndarray
    eta_std: np.ndarray
    r1: np.ndarray | None = None
    N1: np.ndarray | None = None
    N2: np.ndarray | None = None

    def __post_init__(self):
        freeze_arrays(self)


def _stack(A, T: int) -> np.ndarray:
    return np.broadcast_to(A, (T,) + A.shape[-2:]) if A.ndim == 2 else A


def _standardised(hat, cov, noise_cov):
    """hat / sd(hat) with Var(hat) = noise_cov - cov (NaN where it is 0)."""
    var = np.diagonal(noise_cov - cov, axis1=-2, axis2=-1)
    scale = np.diagonal(noise_cov, axis1=-2, axis2=-1)
    ok = var > 1e-12 * np.maximum(scale, 1e-300)
    return np.where(ok, hat / np.sqrt(np.where(ok, var, 1.0)), np.nan)


def disturbance_smoother(model, filt: FilterResult) -> DisturbanceResult:
    """Smoothed observation and state disturbances, their variances, r_t and N_t.

    Parameters
    ----------
    model : LinearGaussianSSM
        The model the filter ran with (any start: ``x0, P0``, ``a1, P1`` or diffuse).
    filt : FilterResult
        Its :func:`kflib.kalman_filter` result (one series or a batch).

    Returns
    -------
    DisturbanceResult
    """
    model = check_model(model)
    check_filter_result(model, filt)
    batched = filt.x_filt.ndim == 3
    xp, Pp, innov = filt.x_pred, filt.P_pred, filt.innovations
    if not batched:
        xp, Pp, innov = xp[None], Pp[None], innov[None]
    nb, T, n = xp.shape
    m = model.m
    time1 = model.x0 is None
    if time1:
        (xs, Ps, _, _), _, rN = _exact_smooth(model, filt)
        d = int(np.max(getattr(filt, "n_diffuse", 0)))
    else:
        rN, d = {}, 0
    steps = backward_rN(model, xp, Pp, innov, stop=d) if d < T else None
    if not time1:
        rN = {"r": steps["r"], "N": steps["N"]}
    Rt, Qt = _stack(model.R, T), _stack(model.Q, T)

    eps_hat = np.zeros((nb, T, m))
    eps_cov = np.zeros((nb, T, m, m))
    if steps is not None:
        s = slice(d, T)
        u, Sinv, K = steps["u"][:, s], steps["Sinv"][:, s], steps["K"][:, s]
        rt, Nt = steps["r_next"][:, s], steps["N_next"][:, s]
        R = Rt[s]
        # v_hat = R (S^{-1} nu - K' r~),  Var = R - R (S^{-1} + K' N~ K) R
        eps_hat[:, s] = (R @ (u - (_T(K) @ rt[..., None])[..., 0])[..., None])[..., 0]
        eps_cov[:, s] = _sym(R - R @ (Sinv + _T(K) @ Nt @ K) @ R)
    for t in range(d):
        # diffuse steps: v_hat = y - d - H x_hat on the observed components, and
        # the missing ones by their regression on those
        H, R = at(model.H, t), Rt[t]
        obs_all = ~np.isnan(innov[:, t])
        for b in range(nb):
            o = obs_all[b]
            if not o.any():
                eps_cov[b, t] = R
                continue
            Ho = H[o]
            # innovation nu = y - d - H x_pred, so y - d - H x_hat = nu - H (x_hat - x_pred)
            e_o = innov[b, t, o] - Ho @ (xs[b, t] - xp[b, t])
            V_o = Ho @ Ps[b, t] @ Ho.T
            A = R[:, o] @ np.linalg.pinv(R[np.ix_(o, o)], hermitian=True)
            eps_hat[b, t] = A @ e_o
            eps_cov[b, t] = _sym(A @ V_o @ A.T + R - A @ R[o])
    r, N = rN["r"], rN["N"]
    # w_hat = Q r,  Var = Q - Q N Q
    eta_hat = (Qt @ r[..., None])[..., 0]
    eta_cov = _sym(Qt - Qt @ N @ Qt)
    if time1:
        eta_hat[:, 0] = np.nan
        eta_cov[:, 0] = np.nan
    eps_std = _standardised(eps_hat, eps_cov, Rt)
    eta_std = _standardised(eta_hat, eta_cov, Qt)
    out = [eps_hat, eps_cov, eta_hat, eta_cov, r, N, eps_std, eta_std]
    extra = [rN.get(k) for k in ("r1", "N1", "N2")]
    if not batched:
        out = [a[0] for a in out]
        extra = [None if a is None else a[0] for a in extra]
    return DisturbanceResult(*out, *extra)
