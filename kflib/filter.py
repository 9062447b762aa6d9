"""The Kalman filter for linear-Gaussian state-space models.

Course: chapter 2 (book/02-kalman-filter.md); exercise ps02-kalman-filter;
tests: test_filter_smoother_vs_statsmodels.py,
test_filter_smoother_vs_dense.py, test_filter_smoother_properties.py,
test_dispatch.py, test_accuracy.py, test_external_references.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import freeze_arrays
from ._inputs import as_controls, as_observations, at, check_model

__all__ = ["FilterResult", "kalman_filter", "reference_filter", "predict_step",
           "gaussian_update"]

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

    def __post_init__(self):
        freeze_arrays(self)      # results are read-only, whichever path made them


def kalman_filter(model, y, u=None) -> FilterResult:
    r"""Filter observations ``y`` through a linear-Gaussian state-space model.

    Returns what :func:`reference_filter`, the step-by-step filter, returns
    (to round-off), computed by the fastest method that is exact for the model:

    * a start at time 1 (``a1, P1`` or an exact diffuse start):
      :func:`kflib.diffuse.exact_filter`, as in :func:`reference_filter`;
    * otherwise :func:`kflib.fast.fast_filter`: for a time-invariant model
      observed at every step, the covariance recursion until it settles and
      then the constant-gain recursion of the means; with missing values or
      time-varying matrices, the associative scan of :mod:`kflib.scan`, which
      hands the steps it cannot do exactly (a singular ``H Q H' + R``, a
      vague start next to a gap) to the step-by-step filter; with numba
      (``kflib[fast]``) and a long series, compiled loops of these same
      equations (the step-by-step filter itself where values are missing);
    * a short series (fewer than ``SEQUENTIAL_BELOW`` steps in all) goes to
      :func:`reference_filter` itself: the step-by-step loop is as quick there.

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
        For a batch, covariance arrays that every series shares (complete data,
        or one missing pattern) may be read-only views of one path.
    """
    model = check_model(model)
    if model.x0 is None:           # a start at time 1 (a1, P1 or exact diffuse)
        from .diffuse import exact_filter
        return exact_filter(model, y, u)
    y3, batched = as_observations(model, y)    # a clear error for a bad y, first
    if y3.shape[0] * y3.shape[1] < SEQUENTIAL_BELOW:
        return reference_filter(model, y, u)
    from .fast import _fast_filter
    return _fast_filter(model, y, u, 1e-15, y3, batched)


# Problems with fewer series-steps than this are filtered step by step.
SEQUENTIAL_BELOW = 16


@np.errstate(over="ignore", invalid="ignore")    # overflow is checked, and named, below
def reference_filter(model, y, u=None) -> FilterResult:
    r"""The Kalman filter written step by step: one loop iteration per time step.

    The readable reference; :func:`kalman_filter` returns the same numbers,
    faster. For t = 1..T:

    .. math::

        x_{t|t-1} &= F x_{t-1|t-1} + B u_t, & P_{t|t-1} &= F P_{t-1|t-1} F' + Q \\
        \nu_t &= y_t - H x_{t|t-1},        & S_t &= H P_{t|t-1} H' + R \\
        K_t &= P_{t|t-1} H' S_t^{-1},       & x_{t|t} &= x_{t|t-1} + K_t \nu_t \\
        P_{t|t} &= (I - K_t H) P_{t|t-1} (I - K_t H)' + K_t R K_t'

    (an update that shrinks a variance by a large factor is computed from the
    last filtered covariance and the steps since, without rounding
    P_{t|t-1} first: :func:`update_from_factors`)

    and :math:`\log L = -\tfrac12 \sum_t (m_t \log 2\pi + \log|S_t| + \nu_t' S_t^{-1} \nu_t)`.

    With intercepts, ``x_{t|t-1}`` adds ``c_t`` and ``nu_t`` subtracts ``d_t``. A
    model started at time 1 (``a1, P1`` or an exact diffuse start) is filtered
    by :func:`kflib.diffuse.exact_filter`, which returns a
    :class:`kflib.DiffuseFilterResult` for a diffuse start.

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
    if model.x0 is None:           # a start at time 1 (a1, P1 or exact diffuse)
        from .diffuse import exact_filter
        return exact_filter(model, y, u)
    y, batched = as_observations(model, y)
    nb, T, m = y.shape
    n = model.n
    u = as_controls(model, u, nb, T, batched)

    out = FilterSteps(nb, T, n, m)
    observed = ~np.isnan(y)
    x = np.broadcast_to(model.x0, (nb, n))
    P = np.broadcast_to(model.P0, (nb, n, n))
    # The update works from the last filtered covariance P_u and the steps
    # since: P_{t|t-1} = Phi P_u Phi' + W (see update_from_factors)
    P_u = P
    fresh = True        # every series updated at the step before: Phi = F, W = Q

    for t in range(T):
        F, H, R, Q = at(model.F, t), at(model.H, t), at(model.R, t), at(model.Q, t)
        x, P, nu, S = predict_step(model, t, x, P, y[:, t], None if u is None else u[:, t])
        out.predicted(t, x, P, nu, S)
        if fresh:
            Phi, W = F, Q
        else:
            Phi = F @ Phi
            W = _sym(F @ W @ F.T + Q)

        obs = observed[:, t]
        if not obs.any():                      # nothing observed: pure prediction
            out.filtered(t, x, P)
            fresh = False
            continue
        x_new, P_new, K, ll = gaussian_update(x, P, nu, H, R, obs, t)
        if _cancels(P, P_new):
            # the update leaves far less variance than P_{t|t-1} holds, which
            # rounding P_{t|t-1} may have lost: update from the factors instead
            x_new, P_new, K, ll = update_from_factors(x, Phi, P_u, W, nu, H, R, obs, t)
        x, P = x_new, P_new
        out.filtered(t, x, P, K)
        out.loglik += ll
        # series that observed something restart the factors from P_{t|t}
        seen = obs.any(-1)
        fresh = bool(seen.all())
        if fresh:
            P_u = P
        else:
            P_u = np.where(seen[:, None, None], P, P_u)
            Phi = np.where(seen[:, None, None], np.eye(n), Phi)
            W = np.where(seen[:, None, None], 0.0, W)

    require_finite_result(vars(out), observed, out.loglik)
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
    # Predict: x = F x + B u + c,  P = F P F' + Q
    x = x @ F.T
    if u_t is not None:
        x = x + u_t @ at(model.B, t).T
    if model.c is not None:
        x = x + at(model.c, t, 1)
    P = _sym(F @ P @ F.T + at(model.Q, t))
    # Innovation nu = y - H x - d and its covariance S = H P H' + R
    nu = y_t - x @ H.T
    if model.d is not None:
        nu = nu - at(model.d, t, 1)
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
        raise singular_innovation(t) from None
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


# An update that shrinks a variance by more than this factor is computed from
# the factors of P_{t|t-1} (rounding it loses about eps times the factor).
CANCEL_RATIO = 1e4


def _cancels(P_pred: np.ndarray, P_filt: np.ndarray) -> bool:
    """Whether some filtered variance is below 1 / CANCEL_RATIO of the predicted one."""
    n = P_pred.shape[-1]
    d_pred = P_pred.reshape(-1, n * n)[:, ::n + 1]
    d_filt = P_filt.reshape(-1, n * n)[:, ::n + 1]
    return bool((d_pred > CANCEL_RATIO * d_filt).any())


def update_from_factors(x, Phi, P_u, W, nu, H, R, obs, t=None):
    r"""The measurement update of :func:`gaussian_update`, from the factors of
    the predicted covariance :math:`P_{t|t-1} = \Phi P_u \Phi' + W`.

    ``P_u`` is the last filtered covariance (or P0), ``\Phi`` the product of
    the transitions since and ``W`` the process noise they added. With
    :math:`A = I - K H`, the Joseph form becomes

    .. math::

        P_{t|t} = (A \Phi) P_u (A \Phi)' + A W A' + K R K',
        \quad P_{t|t-1} H' = \Phi P_u (H \Phi)' + W H',
        \quad S = (H \Phi) P_u (H \Phi)' + H W H' + R.

    In exact arithmetic this is the same update. In floating point it keeps
    what forming P_{t|t-1} loses: a vague start (P0 = 1e16 I) mixed by F has
    entries of 1e16 whose rounding is larger than the O(1) variances the
    update leaves, while ``A Phi`` is small exactly in the directions where
    P_u is large. Arguments and results as for :func:`gaussian_update`;
    Phi, P_u, W are (Bt, n, n).
    """
    n = P_u.shape[-1]
    Hm, Rm, num = mask_missing(H, R, nu, obs)
    HPhi = Hm @ Phi
    PuHPhit = P_u @ _T(HPhi)
    WHt = W @ _T(Hm)
    PHt = Phi @ PuHPhit + WHt
    S = _sym(HPhi @ PuHPhit + Hm @ WHt + Rm)
    try:
        L = np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        raise singular_innovation(t) from None
    sol = np.linalg.solve(S, np.concatenate([_T(PHt), num[..., None]], axis=-1))
    K = _T(sol[..., :n])
    Sinv_nu = sol[..., n]
    x = x + (K @ num[..., None])[..., 0]
    A = np.eye(n) - K @ Hm
    APhi = A @ Phi
    P = _sym(APhi @ P_u @ _T(APhi) + A @ W @ _T(A) + K @ Rm @ _T(K))
    logdet = 2.0 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)
    ll = -0.5 * (obs.sum(-1) * LOG_2PI + logdet + (num * Sinv_nu).sum(-1))
    return x, P, K, ll


def require_finite(t, what: str, a: np.ndarray) -> None:
    """A ValueError naming ``what`` and the time index ``t`` unless ``a`` is finite."""
    if not np.isfinite(a).all():
        raise ValueError(
            f"{what} is not finite at time index {t}: float64 overflowed (or a NaN came "
            "in from the model); the model or the data are beyond float64's range "
            "(about 1e308), so rescale them")


def require_finite_result(arrays: dict, observed: np.ndarray, loglik) -> None:
    """:func:`require_finite` for a whole filter result, (Bt, T, ...) arrays:
    names the first time index and quantity that is not finite."""
    names = {"x_pred": "the predicted mean x(t|t-1)", "P_pred": "the predicted covariance P(t|t-1)",
             "x_filt": "the filtered mean x(t|t)", "P_filt": "the filtered covariance P(t|t)",
             "innovations": "the innovation nu = y - H x(t|t-1)"}
    first = None
    for key, what in names.items():
        a = arrays[key]
        if a.shape[0] > 1 and a.strides[0] == 0:     # one path shared by a batch
            a = a[:1]
        bad = ~np.isfinite(a)
        if key == "innovations":
            bad &= observed
        bad_t = np.flatnonzero(bad.reshape(bad.shape[0], bad.shape[1], -1).any((0, 2)))
        if bad_t.size and (first is None or bad_t[0] < first[0]):
            first = (int(bad_t[0]), what)
    if first is not None:
        require_finite(first[0], first[1], np.array(np.nan))
    if not np.isfinite(loglik).all():
        # every moment is finite: the quadratic form nu' S^-1 nu (or log|S|) overflowed
        S = arrays["S"]
        d = np.diagonal(S, axis1=-2, axis2=-1)
        nu = np.where(observed, arrays["innovations"], 0.0)
        term = (nu * nu / np.where(observed, d, 1.0) + np.abs(np.log(np.abs(d)))).sum(-1)
        bad_t = np.flatnonzero((~np.isfinite(term)).any(0))
        require_finite(int(bad_t[0]) if bad_t.size else "(unknown)",
                       "the log-likelihood term -(log|S| + nu' S^-1 nu) / 2", np.array(np.nan))


def singular_innovation(t=None) -> np.linalg.LinAlgError:
    """The error for an innovation covariance that is not positive definite."""
    where = f" at time index {t}" if t is not None else ""
    return np.linalg.LinAlgError(
        f"the innovation covariance S = H P H' + R is not positive definite{where}; "
        "R must be positive definite wherever the predicted covariance leaves an "
        "observed direction certain")


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
