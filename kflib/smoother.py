"""The Rauch-Tung-Striebel (RTS) fixed-interval smoother.

Course: chapter 4 (book/04-smoothing.md); exercise ps04-smoothing; tests:
test_filter_smoother_vs_statsmodels.py, test_filter_smoother_vs_dense.py,
test_filter_smoother_properties.py, test_dispatch.py, test_accuracy.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import warnings

import numpy as np

from ._checks import freeze_arrays
from ._inputs import at, check_model
from .filter import FilterResult, _sym, _T

__all__ = ["SmootherResult", "rts_smoother", "reference_smoother"]


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


# A Cholesky pivot of P_{t+1|t} below GAIN_ILL of its largest variance: the
# gain amplifies rounding by up to 1/GAIN_ILL ("ill" in _gain's report), and
# reference_smoother takes the information (or r/N) form at that step.
GAIN_ILL = 1e-6
# A kept eigenvalue of P_{t+1|t} below GAIN_DOUBT of its largest multiplies the
# rounding of x_{t+1|T} by more than 1/GAIN_DOUBT in the gain: the RTS step is in
# doubt there (the r/N form of the smoother is used instead, see reference_smoother).
GAIN_DOUBT = 1e-8


def _warn_conditioning(stacklevel=3):
    warnings.warn(
        "the predicted covariance P(t+1|t) has a variance below "
        f"{GAIN_RCOND:g} of its largest that is real but not resolved in float64 "
        "(a vague P0 mixed by F, or a tiny Q or R next to the rest), and the "
        "r/N form of the smoother cancels there too (a vague P0): the model is "
        "beyond float64 conditioning and the smoothed moments lose accuracy; use "
        "a smaller P0, an exact diffuse start (diffuse=True) or rescale the model",
        ConditioningWarning, stacklevel=stacklevel)


def _gain(P_filt: np.ndarray, F: np.ndarray, P_pred_next: np.ndarray,
          Q: np.ndarray | None = None, report: dict | None = None) -> np.ndarray:
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

    With ``report`` (a dict) nothing is warned; it receives boolean masks
    over the leading axes: ``"ill"`` (a Cholesky pivot of P_pred_next below
    ``GAIN_ILL`` of its largest variance), ``"doubt"`` (a kept eigenvalue below
    ``GAIN_DOUBT`` of the largest: the gain amplifies rounding) and
    ``"real"`` (a real variance float64 does not resolve). Without it, a
    ``ConditioningWarning`` is issued for ``"real"``.
    """
    rhs = F @ P_filt                                      # = (P_filt F')'
    lead = np.broadcast_shapes(rhs.shape, P_pred_next.shape)[:-2]
    if report is not None:
        for key in ("ill", "doubt", "real"):
            report[key] = np.zeros(lead, dtype=bool)
    try:
        # the common case, well inside float64: Cholesky pivots far from zero
        L = np.linalg.cholesky(P_pred_next)
        n = L.shape[-1]
        pivots = L.reshape(-1, n * n)[:, ::n + 1] ** 2
        scale = P_pred_next.reshape(-1, n * n)[:, ::n + 1].max(-1, keepdims=True)
        good = (pivots > CHOLESKY_RTOL * scale).all(-1)
        ill = np.broadcast_to(~(pivots > GAIN_ILL * scale).all(-1).reshape(
            P_pred_next.shape[:-2]), lead)
        if good.all():
            if report is not None:
                report["ill"] = ill.copy()
            return _T(np.linalg.solve(P_pred_next, rhs))
    except np.linalg.LinAlgError:
        ill = None
    w, V = np.linalg.eigh(P_pred_next)
    if ill is None:
        ill = np.broadcast_to(w[..., 0] <= GAIN_ILL * w[..., -1], lead)
    proj = _T(V) @ rhs                                    # V' F P_filt
    real = np.zeros(lead, dtype=bool)
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
                & (m_diag > 1e3 * eps * eps * w[..., -1:])).any(-1)   # not an exact zero's residue
        w, U = np.linalg.eigh(M)                          # V' P V = U diag(w) U'
        V, proj = V @ U, _T(U) @ proj
    # the pseudo-inverse: an eigenvalue of rounding size counts as zero
    top = np.maximum(w[..., -1:], 0.0)
    kept = w > GAIN_FLOOR * top
    if report is not None:
        report["ill"] = np.broadcast_to(ill, lead).copy()
        report["real"] = np.broadcast_to(real, lead).copy()
        report["doubt"] = np.broadcast_to((kept & (w < GAIN_DOUBT * top)).any(-1), lead).copy()
    elif real.any():
        _warn_conditioning()
    w = np.where(kept, w, np.inf)
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

    Returns what :func:`reference_smoother`, the step-by-step backward pass,
    returns (to round-off), by the fastest method that is exact for the
    model: :func:`kflib.diffuse.exact_smoother` for a start at time 1 (as
    the reference does); :func:`kflib.fast.fast_smoother` otherwise, which
    runs the step-by-step pass compiled (with numba, two states, long
    series, every P(t+1|t) well inside float64), uses a constant smoother
    gain where the filter's covariances have settled, the associative scan
    of :mod:`kflib.scan` on long series whose covariances do not settle
    (missing values, time-varying matrices), and :func:`reference_smoother`
    for the rest.

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
    from .fast import fast_smoother
    return fast_smoother(model, filt)


def reference_smoother(model, filt: FilterResult) -> SmootherResult:
    r"""The RTS backward pass written step by step (the readable reference;
    :func:`rts_smoother` returns the same numbers, faster).

    .. math::

        G_t &= P_{t|t} F_{t+1}' P_{t+1|t}^{-1} \\
        x_{t|T} &= x_{t|t} + G_t (x_{t+1|T} - x_{t+1|t}) \\
        P_{t|T} &= P_{t|t} + G_t (P_{t+1|T} - P_{t+1|t}) G_t'

    (the covariance as the sum of PSD terms, see :func:`_smoothed_cov`). At a
    step whose ``P_{t+1|t}`` is not well inside float64 (a variance that is
    zero or tiny next to the largest: no measurement noise, a known start, a
    moving-average root) the gain multiplies rounding into the result; there
    the smoothed moments and ``P_lag1`` come from the r/N recursion instead
    (:func:`_rN_moments`), which never inverts ``P_{t+1|t}``, unless that form
    cancels (a vague ``P_{t|t}``). ``G`` is the RTS gain (a pseudo-inverse
    where ``P_{t+1|t}`` is singular) in any case. A ``ConditioningWarning``
    says that neither form is accurate at some step.

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
    report = {}
    G_all = _gain(P_prev, model.F, Pp, model.Q, report=report)
    L_all = _backward_cov(P_prev, model.F, model.Q, G_all)
    ill = np.broadcast_to(report["ill"], (nb, T))
    # at those steps: the information form (R positive definite), else the r/N form
    info = _info_moments(model, filt, P_prev, batched) if ill.any() else None
    rn = _rN_moments(model, filt, P_prev, batched) if ill.any() and info is None else None
    use_rn = np.zeros((nb, T), dtype=bool)

    # k runs over array indices T-2 .. 0, then -1 for the initial state.
    for k in range(T - 2, -2, -1):
        x_k = xf[:, k] if k >= 0 else x0
        G = G_all[:, k + 1]
        # x_{k|T} = x_{k|k} + G (x_{k+1|T} - x_{k+1|k})
        x_s = x_k + (G @ (xs[:, k + 1] - xp[:, k + 1])[..., None])[..., 0]
        # P_{k|T} = P_{k|k} + G (P_{k+1|T} - P_{k+1|k}) G', as the sum of two
        # PSD terms L + G P_{k+1|T} G' (see _backward_cov)
        P_s = _sym(L_all[:, k + 1] + G @ Ps[:, k + 1] @ _T(G))
        if info is not None and ill[:, k + 1].any():
            u = ill[:, k + 1]
            use_rn[:, k + 1] = u
            x_s = np.where(u[:, None], info["x"][:, k + 1], x_s)
            P_s = np.where(u[:, None, None], info["P"][:, k + 1], P_s)
        elif rn is not None and ill[:, k + 1].any():
            # the r/N form where it does not cancel (next to both results)
            top = np.minimum(np.diagonal(P_s, axis1=-2, axis2=-1).max(-1),
                             rn["diag"][:, k + 1])
            u = ill[:, k + 1] & (rn["cancel"][:, k + 1]
                                 <= RN_CANCEL * np.maximum(top, np.finfo(float).tiny))
            use_rn[:, k + 1] = u
            # P_{k+1|k} nearly singular: the r/N form, which never inverts it
            x_s = np.where(u[:, None], rn["x"][:, k + 1], x_s)
            P_s = np.where(u[:, None, None], rn["P"][:, k + 1], P_s)
        if k >= 0:
            xs[:, k], Ps[:, k] = x_s, P_s
        else:
            x0s, P0s = x_s, P_s

    if (np.broadcast_to(report["real"], (nb, T)) & ~use_rn).any():
        _warn_conditioning()
    # Cov(x_t, x_{t-1} | y) = P_{t|T} G_{t-1}' (RTS), or from r, N (see _rN_moments)
    P_lag1 = Ps @ _T(G_all)
    if use_rn.any() and info is not None:
        # Cov(x_{k+1}, x_k | y) = (I + Q A_{k+1})^{-1} F P_{k|T} (see _info_moments)
        P_prev_s = np.concatenate([P0s[:, None], Ps[:, :-1]], axis=1)
        lag = np.linalg.solve(info["IQA"], info["F"] @ P_prev_s)
        P_lag1 = np.where(use_rn[..., None, None], lag, P_lag1)
    elif use_rn.any():
        P_lag1 = np.where(use_rn[..., None, None], rn["lag1"], P_lag1)
    out = (xs, Ps, P_lag1, G_all, x0s, P0s)
    if not batched:
        out = tuple(a[0] for a in out)
    return SmootherResult(*out)


# R's Cholesky pivots above this fraction of its largest variance: R^{-1} is
# accurate and the information form of the smoother applies.
INFO_RTOL = 1e-12


def _psd_sqrt(P):
    """L with L L' = P for a stack of PSD matrices. For a P of full rank, the
    Cholesky factor with diagonal pivoting (LAPACK dpstrf; the largest
    remaining variance first), which keeps the small variances of a graded P
    to their own precision; for a singular one (a pivot below LAPACK's
    n eps max|P|), the eigendecomposition with rounding-negative eigenvalues
    clipped, which does not turn rounding into a factor of its square root."""
    from scipy.linalg import lapack
    flat = P.reshape(-1, *P.shape[-2:])
    n = flat.shape[-1]
    out = np.zeros_like(flat)
    for i, A in enumerate(flat):
        c, piv, rank, info = lapack.dpstrf(A, lower=1, tol=-1.0)
        if info == 0 and rank == n:
            out[i, piv - 1] = np.tril(c)                 # P = (Pi L)(Pi L)'
        else:
            w, V = np.linalg.eigh(A)
            out[i] = V * np.sqrt(np.maximum(w, 0.0))[None, :]
    return out.reshape(P.shape)


def _info_moments(model, filt, P_prev, batched):
    r"""Smoothed moments of the state at array index k = -1 .. T-2 (stored at
    k + 1) from the filter's ``x_{k|k}, P_{k|k}`` and a backward information
    filter over the later observations (the two-filter form), or None when an
    observed block of R is not safely positive definite.

    The information the data y_{k+1..T} carry about x_k, :math:`\tilde\Omega_k`
    and :math:`\tilde\omega_k` (a likelihood
    :math:`\exp(-e'\tilde\Omega e/2 + \tilde\omega' e)` of the deviation
    :math:`e = x_k - x_{k|k}`, centred so that nothing of the size of x
    cancels), does not depend on the start, so a vague P0 does not enter it.
    Backwards, with ``A_t = Omega~_t + H_o' R_oo^{-1} H_o`` and
    ``a_t = omega~_t + Omega~_t (x_{t|t} - x_{t|t-1}) + H_o' R_oo^{-1} nu_t``
    (centred at x_{t|t-1}; ``nu_t`` the innovation):

    .. math::

        \tilde\Omega_{t-1} = F_t' (I + A_t Q_t)^{-1} A_t F_t, \qquad
        \tilde\omega_{t-1} = F_t' (I + A_t Q_t)^{-1} a_t,

    (centred at x_{t-1|t-1}: the transition's constant B u + c drops out), and
    with :math:`P_{k|k} = L L'`:
    :math:`P_{k|T} = L (I + L'\tilde\Omega_k L)^{-1} L'`,
    :math:`x_{k|T} = x_{k|k} + P_{k|T} \tilde\omega_k`.
    Only ``I + L' Omega~ L`` (eigenvalues >= 1) is inverted: neither P(t+1|t)
    nor P(t|t). The regression of x_{k+1} on x_k given y is
    ``(I + Q A_{k+1})^{-1} F``, so ``Cov(x_{k+1}, x_k | y) = (I + Q A_{k+1})^{-1} F P_{k|T}``.
    """
    from .filter import mask_missing
    xf, xp, innov = filt.x_filt, filt.x_pred, filt.innovations
    if not batched:
        xf, xp, innov = xf[None], xp[None], innov[None]
    nb, T, n = xf.shape
    m = innov.shape[-1]
    eye = np.eye(n)
    observed = ~np.isnan(innov)
    x_prev = np.concatenate([np.broadcast_to(model.x0, (nb, 1, n)), xf[:, :-1]], axis=1)
    Om, om = np.zeros((nb, n, n)), np.zeros((nb, n))
    Om_all, om_all = np.empty((nb, T, n, n)), np.empty((nb, T, n))
    IQA_all, F_all = np.empty((nb, T, n, n)), np.empty((T, n, n))
    for t in range(T - 1, -1, -1):
        H, R, F, Q = (at(model.H, t), at(model.R, t), at(model.F, t), at(model.Q, t))
        obs = observed[:, t]
        # om is centred at x_{t|t}: centre it at x_{t|t-1}
        A = Om
        a = om + (Om @ (xf[:, t] - xp[:, t])[..., None])[..., 0]
        if obs.any():
            Hm, Rm, num = mask_missing(H, R, innov[:, t], obs)
            Hm = np.broadcast_to(Hm, (nb, m, n))
            Rm = np.broadcast_to(Rm, (nb, m, m))
            try:
                C = np.linalg.cholesky(Rm)
            except np.linalg.LinAlgError:
                return None
            piv = np.diagonal(C, axis1=-2, axis2=-1) ** 2
            if not (piv > INFO_RTOL * np.diagonal(Rm, axis1=-2, axis2=-1).max(-1,
                                                                              keepdims=True)).all():
                return None
            RiH = np.linalg.solve(Rm, Hm)                                      # R^{-1} H
            A = _sym(A + _T(Hm) @ RiH)
            a = a + (_T(RiH) @ num[..., None])[..., 0]       # num = y - d - H x_{t|t-1}
        # back through x_t - x_{t|t-1} = F (x_{t-1} - x_{t-1|t-1}) + w_t: centred
        # at x_{t-1|t-1}, so the transition's constant (B u, c) drops out
        IAQ = eye + A @ Q
        Om = _sym(F.T @ np.linalg.solve(IAQ, A) @ F)
        om = np.linalg.solve(IAQ, a[..., None])[..., 0] @ F
        Om_all[:, t], om_all[:, t] = Om, om
        IQA_all[:, t], F_all[t] = eye + Q @ A, F
    L = _psd_sqrt(P_prev)
    IM = eye + _sym(_T(L) @ Om_all @ L)
    Minv = np.linalg.inv(IM)
    P = _sym(L @ Minv @ _T(L))
    x = x_prev + (P @ om_all[..., None])[..., 0]
    return {"x": x, "P": P, "IQA": IQA_all, "F": F_all}


# The r/N form is used where its cancellation loses at most this factor over
# round-off: (|P_{k|k}| + |P_{k|k} N~ P_{k|k}|) / |P_{k|T}| (a vague P_{k|k} with a
# small P_{k|T} cancels, where the RTS form, a sum of PSD terms, does not).
RN_CANCEL = 1e4


def _rN_moments(model, filt, P_prev, batched):
    r"""Smoothed moments of the state at array index k = -1 .. T-2 (stored at
    k + 1) by the r/N recursion (Bryson-Frazier / de Jong; D&K 2012 sec. 4.4),
    which inverts only the innovation covariances, never P_{k+1|k}:

    .. math::

        x_{k|T} = x_{k|k} + P_{k|k} \tilde r_k, \qquad
        P_{k|T} = P_{k|k} - P_{k|k} \tilde N_k P_{k|k}, \qquad
        \operatorname{Cov}(x_{k+1}, x_k \mid y) = (I - P_{k+1|k} N_{k+1}) F_{k+1} P_{k|k},

    with :math:`\tilde r_k = F_{k+1}' r_{k+1}`, :math:`\tilde N_k = F_{k+1}' N_{k+1} F_{k+1}`
    (D&K (4.69) with L_k P_k = F (I - K_k H_k) P_{k|k-1} = F P_{k|k}); for the
    initial state P_{-1|-1} = P0. ``cancel`` is ``|P_{k|k}| + |P_{k|k} N~ P_{k|k}|``,
    the size of what the difference form cancels (see ``RN_CANCEL``), ``diag``
    the largest variance of the result.
    """
    from .diffuse import backward_rN              # diffuse imports this module
    xf, xp, Pp, innov = filt.x_filt, filt.x_pred, filt.P_pred, filt.innovations
    if not batched:
        xf, xp, Pp, innov = xf[None], xp[None], Pp[None], innov[None]
    nb, T, n = xf.shape
    Pp = np.broadcast_to(Pp, (nb, T, n, n))
    rn = backward_rN(model, xp, Pp, innov)
    F0 = at(model.F, 0)
    x_prev = np.concatenate([np.broadcast_to(model.x0, (nb, 1, n)), xf[:, :-1]], axis=1)
    r_t = np.concatenate([(rn["r"][:, 0] @ F0)[:, None], rn["r_next"][:, :-1]], axis=1)
    N_t = np.concatenate([_sym(F0.T @ rn["N"][:, 0] @ F0)[:, None], rn["N_next"][:, :-1]],
                         axis=1)
    x = x_prev + (P_prev @ r_t[..., None])[..., 0]
    PNP = _sym(P_prev @ N_t @ P_prev)
    P = _sym(P_prev - PNP)
    size = lambda A: np.abs(A).max(axis=(-1, -2))  # noqa: E731
    eye = np.eye(n)
    Fs = np.stack([at(model.F, k) for k in range(T)]) if model.F.ndim == 3 else model.F
    lag1 = (eye - Pp @ rn["N"]) @ (Fs @ P_prev)
    return {"x": x, "P": P, "lag1": lag1, "cancel": size(P_prev) + size(PNP),
            "diag": np.diagonal(P, axis1=-2, axis2=-1).max(-1)}


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
