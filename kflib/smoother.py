"""The Rauch-Tung-Striebel (RTS) fixed-interval smoother."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._inputs import at, check_model
from .filter import FilterResult, _sym, _T

__all__ = ["SmootherResult", "rts_smoother"]


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


def _gain(P_filt: np.ndarray, F: np.ndarray, P_pred_next: np.ndarray) -> np.ndarray:
    """G = P_filt F' P_pred_next^{-1}, by a solve (P_pred_next is symmetric)."""
    rhs = F @ P_filt                                      # = (P_filt F')'
    try:
        return _T(np.linalg.solve(P_pred_next, rhs))
    except np.linalg.LinAlgError:
        # A singular predicted covariance (a deterministic state direction):
        # the pseudo-inverse gives the correct Gaussian conditioning there.
        return _T(np.linalg.pinv(P_pred_next, hermitian=True) @ rhs)


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
    check_filter_result(model, filt)
    batched = filt.x_filt.ndim == 3
    xf, Pf = filt.x_filt, filt.P_filt
    xp, Pp = filt.x_pred, filt.P_pred
    if not batched:
        xf, Pf, xp, Pp = xf[None], Pf[None], xp[None], Pp[None]
    nb, T, n = xf.shape

    xs = np.empty_like(xf)
    Ps = np.empty_like(Pf)
    G_all = np.empty((nb, T, n, n))
    xs[:, -1], Ps[:, -1] = xf[:, -1], Pf[:, -1]
    x0 = np.broadcast_to(model.x0, (nb, n))
    P0 = np.broadcast_to(model.P0, (nb, n, n))

    # k runs over array indices T-2 .. 0, then -1 for the initial state.
    for k in range(T - 2, -2, -1):
        F = at(model.F, k + 1)
        x_k, P_k = (xf[:, k], Pf[:, k]) if k >= 0 else (x0, P0)
        # G = P_{k|k} F' P_{k+1|k}^{-1}
        G = _gain(P_k, F, Pp[:, k + 1])
        # x_{k|T} = x_{k|k} + G (x_{k+1|T} - x_{k+1|k})
        x_s = x_k + (G @ (xs[:, k + 1] - xp[:, k + 1])[..., None])[..., 0]
        # P_{k|T} = P_{k|k} + G (P_{k+1|T} - P_{k+1|k}) G'
        P_s = _sym(P_k + G @ (Ps[:, k + 1] - Pp[:, k + 1]) @ _T(G))
        G_all[:, k + 1] = G
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
