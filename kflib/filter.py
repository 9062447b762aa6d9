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

    out = FilterSteps(nb, T, n, m)
    observed = ~np.isnan(y)
    x = np.broadcast_to(model.x0, (nb, n))
    P = np.broadcast_to(model.P0, (nb, n, n))

    for t in range(T):
        H, R = at(model.H, t), at(model.R, t)
        x, P, nu, S = predict_step(model, t, x, P, y[:, t], None if u is None else u[:, t])
        out.predicted(t, x, P, nu, S)

        obs = observed[:, t]
        if not obs.any():                      # nothing observed: pure prediction
            out.filtered(t, x, P)
            continue
        x, P, K, ll = gaussian_update(x, P, nu, H, R, obs, t)
        out.filtered(t, x, P, K)
        out.loglik += ll

    return out.result(batched)


class FilterSteps:
    """The outputs of a forward filter, allocated once and filled in step by step.

    Arrays have a leading batch axis (of length 1 for one series); ``K`` starts
    at zero, so steps with nothing observed keep a zero gain.
    """

    def __init__(self, nb: int, T: int, n: int, m: int):
        self.x_pred = np.empty((nb, T, n))
        self.P_pred = np.empty((nb, T, n, n))
        self.x_filt = np.empty((nb, T, n))
        self.P_filt = np.empty((nb, T, n, n))
        self.innovations = np.empty((nb, T, m))
        self.S = np.empty((nb, T, m, m))
        self.K = np.zeros((nb, T, n, m))
        self.loglik = np.zeros(nb)

    def predicted(self, t, x, P, nu, S):
        self.x_pred[:, t], self.P_pred[:, t] = x, P
        self.innovations[:, t], self.S[:, t] = nu, S

    def filtered(self, t, x, P, K=None):
        self.x_filt[:, t], self.P_filt[:, t] = x, P
        if K is not None:
            self.K[:, t] = K

    def result(self, batched: bool) -> FilterResult:
        """A FilterResult; without ``batched``, the batch axis is dropped."""
        arrays = (self.x_pred, self.P_pred, self.x_filt, self.P_filt, self.innovations,
                  self.S, self.K)
        if batched:
            return FilterResult(*arrays, loglik=self.loglik)
        return FilterResult(*(a[0] for a in arrays), loglik=float(self.loglik[0]))


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
    n = P.shape[-1]
    Hm, Rm, num = mask_missing(H, R, nu, obs)
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


def mask_missing(H, R, nu, obs):
    """H, R and the innovation with the missing components taken out of play.

    Missing components get zero rows of H, a zero innovation and unit variance
    uncorrelated with the rest: an update then uses the observed components
    only, and they add 0 to log|S|. With everything observed, the inputs are
    returned as they are.

    Parameters
    ----------
    H : (m, n) or (Bt, m, n) array
    R : (m, m) or (Bt, m, m) array
    nu : (Bt, m) array
    obs : (Bt, m) bool array
    """
    if obs.all():
        return H, R, nu
    m = obs.shape[-1]
    Hm = H * obs[:, :, None]
    pair = obs[:, :, None] & obs[:, None, :]
    Rm = np.where(pair, R, 0.0) + np.eye(m) * ~obs[:, None, :]
    return Hm, Rm, np.where(obs, nu, 0.0)
