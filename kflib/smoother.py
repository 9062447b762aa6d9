"""The Rauch-Tung-Striebel (RTS) fixed-interval smoother."""

from __future__ import annotations

from dataclasses import dataclass

import warnings

import numpy as np

from ._checks import freeze_arrays
from ._inputs import at, check_model
from .filter import FilterResult, _sym, _T

__all__ = ["SmootherResult", "rts_smoother"]


class ConditioningWarning(UserWarning):
    """A model beyond float64 conditioning: results lose accuracy (see the message)."""


@dataclass(frozen=True, eq=False)
class SmootherResult:
    """Smoothed moments ``p(x_t | y_{1:T})``. Time is the first axis after any batch axis.

    Attributes
    ----------
    x_smooth : (..., T, n) array
        Smoothed means ``x_{t|T}``, t = 1..T.
    P_smooth : (..., T, n, n) array
        Smoothed covariances ``P_{t|T}``.
    P_lag1 : (..., T, n, n) array
        ``Cov(x_t, x_{t-1} | y_{1:T}) = P_{t|T} G_{t-1}'``, t = 1..T
        (for t = 1 the earlier state is the initial state x_0).
    G : (..., T, n, n) array
        Smoother gains ``G_t = P_{t|t} F' P_{t+1|t}^{-1}`` for t = 0..T-1:
        ``G[0]`` belongs to the initial state, ``G[k]`` to the state at array index k-1.
    x0_smooth : (..., n) array
        Smoothed mean of the initial state ``x_{0|T}``.
    P0_smooth : (..., n, n) array
        Smoothed covariance of the initial state ``P_{0|T}``.
    """

    x_smooth: np.ndarray
    P_smooth: np.ndarray
    P_lag1: np.ndarray
    G: np.ndarray
    x0_smooth: np.ndarray
    P0_smooth: np.ndarray

    def __post_init__(self):
        freeze_arrays(self)      # results are read-only, whichever path made them


# The smoother gain's pseudo-inverse of P_{t+1|t} drops its eigenvalues below
# GAIN_FLOOR of the largest: F P F' + Q is rounded at about 1e-16 of it, so
# a smaller eigenvalue is rounding, not variance.
GAIN_FLOOR = 16 * np.finfo(float).eps
# ... and an eigenvalue below GAIN_RCOND of the largest is not resolved.
GAIN_RCOND = 1e-10
# Cholesky pivots of P_{t+1|t} above this fraction of its largest variance:
# a plain solve is accurate (the eigendecomposition is not needed).
CHOLESKY_RTOL = 1e-10


def _gain(P_filt: np.ndarray, F: np.ndarray, P_pred_next: np.ndarray,
          Q: np.ndarray | None = None) -> np.ndarray:
    """G = P_filt F' P_pred_next^{+}, stable for a nearly singular P_pred_next.

    A plain solve is unstable there: a direction that carries no variance (a
    known start, a fixed seasonal pattern), written in a rotated basis, has
    an eigenvalue of rounding size, perhaps far below the rounding of its
    correlation with x_t, and their ratio multiplies noise into the
    smoothed means. In the eigenbasis V of P_pred_next, eigenvalues below
    ``GAIN_FLOOR`` of the largest count as zero (the pseudo-inverse, the
    correct Gaussian conditioning for a direction without variance); a
    direction just above it gets a gain of at most rounding size over the
    cutoff, and a resolved one its exact gain.

    With ``Q`` (P_pred_next = F P_filt F' + Q), ``V' P_pred_next V`` is
    formed again as ``(F'V)' P_filt (F'V) + V'QV``: a vague start mixed by F
    leaves P_pred_next with entries whose rounding exceeds its small
    eigenvalues, while this form resolves them (to round-off of P_filt).
    Stacks broadcast over leading axes.
    """
    rhs = F @ P_filt                                      # = (P_filt F')'
    try:
        # the common case, well inside float64: Cholesky pivots far from zero
        L = np.linalg.cholesky(P_pred_next)
        n = L.shape[-1]
        pivots = L.reshape(-1, n * n)[:, ::n + 1] ** 2
        scale = P_pred_next.reshape(-1, n * n)[:, ::n + 1].max(-1, keepdims=True)
        if (pivots > CHOLESKY_RTOL * scale).all():
            return _T(np.linalg.solve(P_pred_next, rhs))
    except np.linalg.LinAlgError:
        pass
    w, V = np.linalg.eigh(P_pred_next)
    proj = _T(V) @ rhs                                    # V' F P_filt
    if Q is not None and np.any(w[..., 0] < GAIN_RCOND * w[..., -1]):
        B = _T(F) @ V
        M = _sym(_T(B) @ P_filt @ B + _T(V) @ Q @ V)
        # a direction float64 does not resolve in P_pred_next whose variance is
        # real (far above the rounding of (F'v)' P_filt (F'v) + v'Qv): the
        # smoother cannot be accurate there
        eps = np.finfo(float).eps
        noise = eps * (np.diagonal(_T(np.abs(B)) @ np.abs(P_filt) @ np.abs(B), 0, -2, -1)
                       + np.diagonal(_T(np.abs(V)) @ np.abs(Q) @ np.abs(V), 0, -2, -1))
        m_diag = np.diagonal(M, 0, -2, -1)
        real = ((w < GAIN_RCOND * w[..., -1:]) & (m_diag > 1e3 * noise)
                & (m_diag > 1e3 * eps * eps * w[..., -1:]))   # not an exact zero's residue
        if real.any():
            warnings.warn(
                "the predicted covariance P(t+1|t) has a variance below "
                f"{GAIN_RCOND:g} of its largest that is real but not resolved in float64 "
                "(a vague P0 mixed by F, or a tiny Q or R next to the rest): the model is "
                "beyond float64 conditioning and the smoothed moments lose accuracy; use "
                "a smaller P0 or rescale the model", ConditioningWarning, stacklevel=3)
        w, U = np.linalg.eigh(M)                          # V' P V = U diag(w) U'
        V, proj = V @ U, _T(U) @ proj
    # the pseudo-inverse: an eigenvalue of rounding size counts as zero
    w = np.where(w > GAIN_FLOOR * np.maximum(w[..., -1:], 0.0), w, np.inf)
    return _T(V @ (proj / w[..., :, None]))


def _backward_cov(P_filt, F, Q, G):
    r"""``L = P_{k|k} - G P_{k+1|k} G'``, the covariance of x_k given x_{k+1} and
    y_{1:k}, in the Joseph form :math:`(I - G F) P_{k|k} (I - G F)' + G Q G'`.

    The difference form cancels when P_{k|k} is large next to the result (a
    vague start, a nearly deterministic state) and can come out indefinite;
    the Joseph form is a sum of PSD terms and exact to first order in the
    rounding of G. Stacks broadcast over leading axes.
    """
    A = np.eye(P_filt.shape[-1]) - G @ F
    return _sym(A @ P_filt @ _T(A) + G @ Q @ _T(G))


def _smoothed_cov(P_filt, F, Q, G, P_smooth_next):
    """``P_{k|T} = L + G P_{k+1|T} G'``, a sum of PSD terms (see _backward_cov):
    ``(I - G F) P_{k|k} (I - G F)' + G (Q + P_{k+1|T}) G'``."""
    A = np.eye(P_filt.shape[-1]) - G @ F
    return _sym(A @ P_filt @ _T(A) + G @ (Q + P_smooth_next) @ _T(G))


def rts_smoother(model, filt: FilterResult) -> SmootherResult:
    r"""Run the RTS backward pass over a Kalman filter's output.

    .. math::

        G_t &= P_{t|t} F_{t+1}' P_{t+1|t}^{-1} \\
        x_{t|T} &= x_{t|t} + G_t (x_{t+1|T} - x_{t+1|t}) \\
        P_{t|T} &= P_{t|t} + G_t (P_{t+1|T} - P_{t+1|t}) G_t'

    Parameters
    ----------
    model : LinearGaussianSSM
        The model the filter ran with.
    filt : FilterResult
        Output of :func:`kalman_filter` on that model (one series or a batch).

    Returns
    -------
    SmootherResult
    """
    model = check_model(model)
    if model.x0 is None:           # a start at time 1 (a1, P1 or exact diffuse)
        from .diffuse import exact_smoother
        return exact_smoother(model, filt)
    check_filter_result(model, filt)
    batched = filt.x_filt.ndim == 3
    xf, Pf = filt.x_filt, filt.P_filt
    xp, Pp = filt.x_pred, filt.P_pred
    if not batched:
        xf, Pf, xp, Pp = xf[None], Pf[None], xp[None], Pp[None]
    nb, T, n = xf.shape

    xs = np.empty_like(xf)
    Ps = np.empty_like(Pf)
    xs[:, -1], Ps[:, -1] = xf[:, -1], Pf[:, -1]
    x0 = np.broadcast_to(model.x0, (nb, n))
    P0 = np.broadcast_to(model.P0, (nb, n, n))

    # The gains and L = P_{k|k} - G P_{k+1|k} G' depend on the filter's
    # covariances only: all steps at once. Index k + 1 = 0..T-1 holds step k
    # (k = -1 the initial state): G = P_{k|k} F' P_{k+1|k}^{-1}.
    P_prev = np.concatenate([P0[:, None], Pf[:, :-1]], axis=1)
    G_all = _gain(P_prev, model.F, Pp, model.Q)
    L_all = _backward_cov(P_prev, model.F, model.Q, G_all)

    # k runs over array indices T-2 .. 0, then -1 for the initial state.
    for k in range(T - 2, -2, -1):
        x_k = xf[:, k] if k >= 0 else x0
        G = G_all[:, k + 1]
        # x_{k|T} = x_{k|k} + G (x_{k+1|T} - x_{k+1|k})
        x_s = x_k + (G @ (xs[:, k + 1] - xp[:, k + 1])[..., None])[..., 0]
        # P_{k|T} = P_{k|k} + G (P_{k+1|T} - P_{k+1|k}) G', as the sum of two
        # PSD terms L + G P_{k+1|T} G' (see _backward_cov)
        P_s = _sym(L_all[:, k + 1] + G @ Ps[:, k + 1] @ _T(G))
        if k >= 0:
            xs[:, k], Ps[:, k] = x_s, P_s
        else:
            x0s, P0s = x_s, P_s

    # Cov(x_t, x_{t-1} | y) = P_{t|T} G_{t-1}'
    P_lag1 = Ps @ _T(G_all)
    out = (xs, Ps, P_lag1, G_all, x0s, P0s)
    if not batched:
        out = tuple(a[0] for a in out)
    return SmootherResult(*out)


def check_filter_result(model, filt) -> None:
    """A clear error unless ``filt`` is a filter's result for ``model``'s sizes."""
    if not isinstance(filt, FilterResult):
        raise TypeError("filt must be the FilterResult returned by kalman_filter; "
                        f"got {type(filt).__name__}")
    if filt.x_filt.shape[-1] != model.n:
        raise ValueError(f"filt has state dimension {filt.x_filt.shape[-1]} but the "
                         f"model has n = {model.n}")
    T = filt.x_filt.shape[-2]
    if model.T is not None and model.T != T:
        raise ValueError(f"the model has T = {model.T} steps but filt has T = {T}")
