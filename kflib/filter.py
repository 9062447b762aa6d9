"""The Kalman filter for linear-Gaussian state-space models."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._inputs import as_controls, as_observations, at, check_model

__all__ = ["FilterResult", "kalman_filter", "predict_step", "gaussian_update"]

LOG_2PI = np.log(2.0 * np.pi)


def _T(A: np.ndarray) -> np.ndarray:
    """Transpose the last two axes (a stack of matrices)."""
    return np.swapaxes(A, -1, -2)


def _sym(A: np.ndarray) -> np.ndarray:
    return 0.5 * (A + _T(A))


@dataclass(frozen=True, eq=False)
class FilterResult:
    """What the Kalman filter computes. Time is the first axis after any batch axis.

    Attributes
    ----------
    x_pred : (..., T, n) array
        Predicted means ``x_{t|t-1}``.
    P_pred : (..., T, n, n) array
        Predicted covariances ``P_{t|t-1}``.
    x_filt : (..., T, n) array
        Filtered means ``x_{t|t}``.
    P_filt : (..., T, n, n) array
        Filtered covariances ``P_{t|t}``.
    innovations : (..., T, m) array
        ``y_t - H x_{t|t-1}``; NaN where ``y_t`` is missing.
    S : (..., T, m, m) array
        Innovation covariances ``H P_{t|t-1} H' + R`` (all components, observed or not).
    K : (..., T, n, m) array
        The gain applied; its columns for missing components are zero.
    loglik : float or (batch,) array
        Log-likelihood of the observed components, by prediction-error decomposition.
    """

    x_pred: np.ndarray
    P_pred: np.ndarray
    x_filt: np.ndarray
    P_filt: np.ndarray
    innovations: np.ndarray
    S: np.ndarray
    K: np.ndarray
    loglik: float | np.ndarray


def kalman_filter(model, y, u=None) -> FilterResult:
    r"""Filter observations ``y`` through a linear-Gaussian state-space model.

    For t = 1..T:

    .. math::

        x_{t|t-1} &= F x_{t-1|t-1} + B u_t, & P_{t|t-1} &= F P_{t-1|t-1} F' + Q \\
        \nu_t &= y_t - H x_{t|t-1},        & S_t &= H P_{t|t-1} H' + R \\
        K_t &= P_{t|t-1} H' S_t^{-1},       & x_{t|t} &= x_{t|t-1} + K_t \nu_t \\
        P_{t|t} &= (I - K_t H) P_{t|t-1} (I - K_t H)' + K_t R K_t'

    and :math:`\log L = -\tfrac12 \sum_t (m_t \log 2\pi + \log|S_t| + \nu_t' S_t^{-1} \nu_t)`.

    Parameters
    ----------
    model : LinearGaussianSSM
    y : (T, m) or (batch, T, m) array
        Observations; NaN marks a missing component. A batch is filtered at
        once (vectorised), with the same result as one series at a time.
    u : (T, r) or (batch, T, r) array, optional
        Controls; required exactly when the model has ``B``.

    Returns
    -------
    FilterResult
    """
    model = check_model(model)
    y, batched = as_observations(model, y)
    nb, T, m = y.shape
    n = model.n
    u = as_controls(model, u, nb, T, batched)

    x_pred = np.empty((nb, T, n))
    P_pred = np.empty((nb, T, n, n))
    x_filt = np.empty((nb, T, n))
    P_filt = np.empty((nb, T, n, n))
    innov = np.empty((nb, T, m))
    S_all = np.empty((nb, T, m, m))
    K_all = np.zeros((nb, T, n, m))
    loglik = np.zeros(nb)

    observed = ~np.isnan(y)
    x = np.broadcast_to(model.x0, (nb, n))
    P = np.broadcast_to(model.P0, (nb, n, n))

    for t in range(T):
        H, R = at(model.H, t), at(model.R, t)
        x, P, nu, S = predict_step(model, t, x, P, y[:, t], None if u is None else u[:, t])
        x_pred[:, t], P_pred[:, t] = x, P
        innov[:, t], S_all[:, t] = nu, S

        obs = observed[:, t]
        if not obs.any():                      # nothing observed: pure prediction
            x_filt[:, t], P_filt[:, t] = x, P
            continue
        x, P, K, ll = gaussian_update(x, P, nu, H, R, obs, t)
        x_filt[:, t], P_filt[:, t], K_all[:, t] = x, P, K
        loglik += ll

    out = (x_pred, P_pred, x_filt, P_filt, innov, S_all, K_all)
    if not batched:
        out = tuple(a[0] for a in out)
        return FilterResult(*out, loglik=float(loglik[0]))
    return FilterResult(*out, loglik=loglik)


def predict_step(model, t, x, P, y_t, u_t=None):
    """Predict step ``t`` and form its innovation, for a stack of Gaussians.

    Returns x_{t|t-1} (Bt, n), P_{t|t-1} (Bt, n, n), the innovation
    nu_t = y_t - H x_{t|t-1} (Bt, m) and S_t = H P_{t|t-1} H' + R (Bt, m, m).
    """
    F, H = at(model.F, t), at(model.H, t)
    # Predict: x = F x + B u,  P = F P F' + Q
    x = x @ F.T
    if u_t is not None:
        x = x + u_t @ at(model.B, t).T
    P = _sym(F @ P @ F.T + at(model.Q, t))
    # Innovation nu = y - H x and its covariance S = H P H' + R
    nu = y_t - x @ H.T
    S = _sym(H @ P @ H.T + at(model.R, t))
    return x, P, nu, S


def gaussian_update(x, P, nu, H, R, obs, t=None):
    r"""One measurement update of a stack of Gaussians, observed components only.

    Parameters
    ----------
    x : (Bt, n) array
        Predicted means.
    P : (Bt, n, n) array
        Predicted covariances.
    nu : (Bt, m) array
        Innovations ``y - E[y]`` (anything where not observed).
    H : (m, n) or (Bt, m, n) array
        Observation matrix (or its linearisation).
    R : (m, m) array
        Observation-noise covariance.
    obs : (Bt, m) bool array
        Which components were observed.
    t : int, optional
        Time index, for error messages.

    Returns
    -------
    x, P : updated means and covariances (Joseph form)
    K : (Bt, n, m) array, the gain (zero columns for missing components)
    loglik : (Bt,) array, this step's log-likelihood term
    """
    n, m = P.shape[-1], nu.shape[-1]
    if obs.all():
        Hm, Rm, num = H, R, nu
    else:
        # Missing components: zero their rows of H and their innovation, give
        # them unit variance uncorrelated with the rest. The update then uses
        # the observed components only, and they add 0 to log|S|.
        Hm = H * obs[:, :, None]
        pair = obs[:, :, None] & obs[:, None, :]
        Rm = np.where(pair, R, 0.0) + np.eye(m) * ~obs[:, None, :]
        num = np.where(obs, nu, 0.0)
    # S = H P H' + R
    PHt = P @ _T(Hm)
    S = _sym(Hm @ PHt + Rm)
    try:
        L = np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        where = f" at time index {t}" if t is not None else ""
        raise np.linalg.LinAlgError(
            f"the innovation covariance S = H P H' + R is not positive definite{where}; "
            "R must be positive definite wherever the predicted covariance leaves an "
            "observed direction certain") from None
    # K' = S^{-1} H P and S^{-1} nu, in one solve
    sol = np.linalg.solve(S, np.concatenate([_T(PHt), num[..., None]], axis=-1))
    K = _T(sol[..., :n])
    Sinv_nu = sol[..., n]

    # Update: x = x + K nu,  Joseph form P = (I - K H) P (I - K H)' + K R K'
    x = x + (K @ num[..., None])[..., 0]
    A = np.eye(n) - K @ Hm
    P = _sym(A @ P @ _T(A) + K @ Rm @ _T(K))

    # log L_t = -1/2 (m_t log 2 pi + log|S_t| + nu' S^{-1} nu)
    logdet = 2.0 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)
    ll = -0.5 * (obs.sum(-1) * LOG_2PI + logdet + (num * Sinv_nu).sum(-1))
    return x, P, K, ll
