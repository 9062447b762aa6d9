r"""Fast paths for long series: the filter and smoother once the covariances settle.

For a time-invariant model observed at every step, the Riccati recursion
for :math:`P_{t|t-1}` does not depend on the data and converges within a few
dozen steps. After that the gain is constant and the means follow the linear
recursion

.. math::

    x_{t|t} = A x_{t-1|t-1} + b_t, \qquad A = (I - K H) F, \quad
    b_t = K y_t + (I - K H) B u_t,

which :func:`linear_recursion` evaluates in blocks with matrix products
instead of one Python step per observation. The covariances of the exact
filter are used up to the step where they stop changing (to round-off), so
the results equal :func:`kflib.kalman_filter`'s to about 1e-12.

Missing values and time-varying matrices go to the parallel-in-time
associative scan of :mod:`kflib.scan` instead, which is vectorised over time
whatever the covariances do; so do long series whose covariances have not
settled within an eighth of their length (Q = 0: they never do). The
step-by-step :func:`kflib.filter.reference_filter` stays the readable
reference; :func:`kflib.kalman_filter` and :func:`kflib.rts_smoother` call
:func:`fast_filter` and :func:`fast_smoother`.

With numba (the optional extra ``kflib[fast]``) problems of at least
``COMPILED_ABOVE`` series-steps run compiled loops of the same equations
(:mod:`kflib._kernels`): the covariance recursion until it settles and one
pass over the data for every mean, innovation and log-likelihood term
(complete data); the step-by-step filter itself (missing values,
time-varying matrices); the step-by-step RTS pass (two states, wherever
every P(t+1|t) is well inside float64). The outputs are allocated as one
block of memory.

Course: the performance appendix (book/appendix-performance.md); kalman_filter
and rts_smoother take these paths where they are exact; tests: test_fast.py,
test_dispatch.py.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg

from ._checks import check_real
from ._inputs import as_controls, as_observations, check_model
from .diffuse import exact_filter, exact_smoother
from .filter import (CANCEL_RATIO, LOG_2PI, FilterResult, _sym, _T, reference_filter,
                     require_finite, require_finite_result, singular_innovation)
from .model import intercepts_as_inputs
from .scan import scan_filter, scan_smoother
from . import _kernels
from .smoother import (SmootherResult, _backward_cov, _gain, _smoothed_cov, check_filter_result,
                       reference_smoother)

__all__ = ["linear_recursion", "riccati_path", "fast_filter", "fast_smoother"]

BLOCK = 64
# Largest accepted ``rtol`` for "the covariances have settled": a looser one
# would freeze the gain while it still changes, a visibly wrong answer.
RTOL_MAX = 1e-6
# Series longer than this whose covariances do not settle go to the scan.
SCAN_ABOVE = 1024
# The compiled loops (numba, the optional extra kflib[fast]) when it is
# installed; blocked numpy products and the scan otherwise, with the same
# numbers to round-off. Only problems of at least COMPILED_ABOVE series-steps
# use them: importing numba and loading the kernels from its disk cache costs
# a few tenths of a second once per process, more than the numpy path takes
# on a series of a few thousand steps (compiling them the first time on a
# machine takes a few seconds, once: numba caches them on disk).
# The step-by-step loop of the general case (missing values, time-varying
# matrices) for sizes other than two states and one observation takes numba
# longer to compile (over ten seconds on a loaded machine): it serves
# problems of at least COMPILED_GENERAL_ABOVE series-steps, where the scan
# takes longer than that once or twice.
COMPILED = _kernels.AVAILABLE
COMPILED_ABOVE = 20_000
COMPILED_GENERAL_ABOVE = 100_000


def linear_recursion(A: np.ndarray, b: np.ndarray, x_init: np.ndarray,
                     block: int = BLOCK) -> np.ndarray:
    """Evaluate ``x_t = A x_{t-1} + b_t`` for t = 0..N-1, starting from ``x_init``.

    Within a block of L steps, ``x_{s+j} = A^{j+1} x_{s-1} + sum_{i<=j} A^{j-i} b_{s+i}``:
    the sums for every block come from one product with a block-Toeplitz
    matrix of powers of A, and only the carry from block to block is sequential.

    Parameters
    ----------
    A : (n, n) array
    b : (..., N, n) array
        Inputs; leading axes are a batch.
    x_init : (..., n) array
        The state before the first step.

    Returns
    -------
    (..., N, n) array
    """
    if COMPILED and b.size >= COMPILED_ABOVE * b.shape[-1]:     # the plain loop, compiled
        return _kernels.linear_recursion(A, b, x_init)
    return _blocked_recursion(A, b, x_init, block)


def _blocked_recursion(A, b, x_init, block):
    """:func:`linear_recursion` in blocks of numpy products (see there)."""
    *batch, N, n = b.shape
    L = max(1, min(block, N))
    nblk = -(-N // L)
    pad = nblk * L - N
    bb = np.concatenate([b, np.zeros((*batch, pad, n))], axis=-2) if pad else b
    bb = bb.reshape(*batch, nblk, L * n)
    # powers[j] = A^j, j = 0..L
    powers = np.empty((L + 1, n, n))
    powers[0] = np.eye(n)
    for j in range(1, L + 1):
        powers[j] = A @ powers[j - 1]
    # Toeplitz M with block (j, i) = A^{j-i} for i <= j: sums = M @ [b_s .. b_{s+L-1}]
    lag = np.arange(L)[:, None] - np.arange(L)[None, :]              # j - i
    M = np.where((lag >= 0)[:, :, None, None], powers[np.maximum(lag, 0)], 0.0)
    M = M.transpose(0, 2, 1, 3).reshape(L * n, L * n)
    z = (bb @ M.T).reshape(*batch, nblk, L, n)          # zero-start response per block
    # The state at the end of each block obeys the same kind of recursion,
    # c_k = A^L c_{k-1} + z_k[L-1], with nblk = N / L steps: solve it the same
    # way (recursively), then add each block's start-up term A^{j+1} c_{k-1}.
    x_init = np.broadcast_to(np.asarray(x_init, dtype=float), (*batch, n))
    if nblk > 1:
        ends = _blocked_recursion(powers[L], z[..., :-1, L - 1, :], x_init, block)
        starts = np.concatenate([x_init[..., None, :], ends], axis=-2)
    else:
        starts = x_init[..., None, :]
    out = z + np.einsum("jab,...kb->...kja", powers[1:], starts)
    return out.reshape(*batch, nblk * L, n)[..., :N, :]


def _steady_index(P_pred: np.ndarray, rtol: float) -> int | None:
    """First index after which P_pred no longer changes (to rtol), or None."""
    scale = np.abs(P_pred).max(axis=(-1, -2))
    change = np.abs(np.diff(P_pred, axis=0)).max(axis=(-1, -2))
    ok = change <= rtol * scale[1:]
    # settled at k when every later change is tiny as well
    if not ok[-1]:
        return None
    bad = np.flatnonzero(~ok)
    return int(bad[-1] + 2) if bad.size else 1


# P_pred counts as settled at step ks when every later P_pred lies within rtol
# (of its largest entry) of P_pred at ks, over a window of at least
# CONFIRM + ks // 4 steps and at least 1 / (1 - rho^2) steps (below).
CONFIRM = 16


def _window(ks: int, minwin: int) -> int:
    return max(CONFIRM + ks // 4, minwin)


def _contraction(model, K: np.ndarray) -> float:
    """1 - rho^2 for the closed loop A = (I - K H) F at the settled gain, rho its
    spectral radius: near the fixed point a deviation of P_pred shrinks by
    about rho^2 per step, so a path that stays within rtol of its value at ks
    for 1 / (1 - rho^2) steps is within about rtol of the limit (a path still
    creeping towards it would have moved further). 0 when the loop is not
    stable (the covariances are not at a fixed point)."""
    A = (np.eye(model.n) - K @ model.H) @ model.F
    if model.n == 1:
        rho2 = float(A[0, 0]) ** 2
    elif model.n == 2:
        # the roots of z^2 - tr z + det: a complex pair has |z|^2 = det
        tr, det = float(A[0, 0] + A[1, 1]), float(A[0, 0] * A[1, 1] - A[0, 1] * A[1, 0])
        disc = 0.25 * tr * tr - det
        rho2 = det if disc < 0 else (0.5 * abs(tr) + disc ** 0.5) ** 2
    else:
        rho2 = float(np.abs(np.linalg.eigvals(A)).max()) ** 2
    return max(0.0, 1.0 - rho2) if np.isfinite(rho2) else 0.0


def _settled_index(P_pred: np.ndarray, rtol: float, minwin: int = 0) -> int | None:
    """The first step ks whose P_pred every later one is within rtol of (of its
    largest entry), when the head holds at least ``_window(ks, minwin)`` steps
    after it; else None."""
    k = P_pred.shape[0]
    flat = P_pred.reshape(k, -1)
    hi = np.maximum.accumulate(flat[::-1], axis=0)[::-1]       # max over t >= c
    lo = np.minimum.accumulate(flat[::-1], axis=0)[::-1]
    dev = np.maximum(hi - flat, flat - lo).max(-1)
    ok = np.flatnonzero(dev <= rtol * np.abs(flat).max(-1))       # NaN: not settled
    if ok.size and k - 1 - ok[0] >= _window(int(ok[0]), minwin):
        return int(ok[0])
    return None


def settled_path(model, T: int, rtol: float, compiled: bool = False):
    """The exact covariance recursion (data-free) up to the step ks where it
    settles: ``(head, ks)``, head a :class:`_Path` of at least ks + 1 steps.
    ks = T - 1 when it does not settle within the series (every step's
    covariances are then exact). ``(None, None)`` when, without the compiled
    loops, a long series has not settled within an eighth of its length.

    Settled means: every P_pred after ks lies within ``rtol`` of P_pred at ks
    (relative to its largest entry) for at least ``CONFIRM + ks // 4`` and
    ``1 / (1 - rho^2)`` steps, rho the spectral radius of the settled closed
    loop (I - K H) F (see :func:`_contraction`): the covariances after ks
    then equal the recursion's to about rtol of their size, which is the
    recursion's own round-off (it ends in a cycle of an ulp or two) for the
    default rtol.
    """
    minwin = 0
    k = min(T, 1024 if compiled else 128)
    for _ in range(64):
        if compiled:
            Pp, Pf, K, S, ks, bad = _kernels.riccati(
                model.F, model.H, model.Q, model.R, model.P0, CANCEL_RATIO, rtol, CONFIRM,
                minwin, k)
            if bad >= 0:
                _require_finite_path(Pp)
                raise singular_innovation(bad)
            head = _Path(0, model.n, model.m)
            head.P_pred, head.P_filt, head.K, head.S = Pp, Pf, K, S
            k_done = Pp.shape[0]
            settled = ks < k_done - 1 and bool(np.isfinite(Pp[ks]).all())
            if not settled:
                _require_finite_path(Pp)
        else:
            head = riccati_path(model, k)
            k_done = k
            ks = _settled_index(head.P_pred, rtol, minwin) if k > 1 else None
            settled = ks is not None
        if settled:
            c = _contraction(model, head.K[ks])
            need = T + 1 if c <= 0.0 else int(np.ceil(1.0 / c))
            if k_done - 1 - ks >= need:
                return head, ks
            minwin = need                # a longer window, perhaps in this head
            ks2 = _settled_index(head.P_pred, rtol, minwin) if not compiled else None
            if ks2 is not None:
                return head, ks2
            if compiled:
                continue
        if k == T:
            if k_done == T:
                return head, T - 1       # never settles: the gains vary to the end
            minwin = T + 1               # the whole path, every step
            continue
        if not compiled and T > SCAN_ABOVE and 2 * k > T // 8:
            return None, None
        k = min(T, (8 if compiled else 2) * k)
    return None, None


class _Path:
    """Covariances, gains and innovation covariances of the first k steps."""

    def __init__(self, k, n, m):
        self.P_pred, self.P_filt = np.empty((k, n, n)), np.empty((k, n, n))
        self.K, self.S = np.empty((k, n, m)), np.empty((k, m, m))


def riccati_path(model, k: int) -> _Path:
    """The filter's covariance recursion alone (it does not depend on the data),
    for a time-invariant model observed at every step; one series, plain 2-D
    arrays. The same equations as :func:`kflib.kalman_filter`, Joseph form;
    an update that shrinks a variance by a large factor is computed from the
    previous filtered covariance (:func:`kflib.filter.update_from_factors`
    with Phi = F, W = Q)."""
    F, H, Q, R = model.F, model.H, model.Q, model.R
    Ft, Ht = F.T.copy(), H.T.copy()
    n, m = model.n, model.m
    out = _Path(k, n, m)
    P = model.P0
    eye = np.eye(n)
    HF = H @ F
    HFt, QHt = HF.T.copy(), Q @ Ht
    HQHt_R = H @ QHt + R
    for t in range(k):
        # P = F P F' + Q;  S = H P H' + R;  K = P H' S^{-1}
        P_prev = P
        P = F @ P @ Ft + Q
        P = 0.5 * (P + P.T)
        for factored in (False, True):
            if factored:
                # P_pred H' = F P_prev (H F)' + Q H';  S = (H F) P_prev (H F)' + H Q H' + R
                PHFt = P_prev @ HFt
                PHt = F @ PHFt + QHt
                S = HF @ PHFt + HQHt_R
            else:
                PHt = P @ Ht
                S = H @ PHt + R
            S = 0.5 * (S + S.T)
            if not (S[0, 0] > 0.0 if m == 1 else _is_positive_definite(S)):
                out.P_pred[t] = P
                _require_finite_path(out.P_pred[:t + 1])
                raise singular_innovation(t)
            K = PHt / S[0, 0] if m == 1 else np.linalg.solve(S, PHt.T).T
            # P = (I - K H) P (I - K H)' + K R K'
            A = eye - K @ H
            if factored:          # with P = F P_prev F' + Q, not rounded first
                AF = A @ F
                P_new = AF @ P_prev @ AF.T + A @ Q @ A.T + K @ R @ K.T
            else:
                P_new = A @ P @ A.T + K @ R @ K.T
            if factored or not (P.ravel()[::n + 1] > CANCEL_RATIO * P_new.ravel()[::n + 1]).any():
                break
        out.P_pred[t], out.S[t], out.K[t] = P, S, K
        P = 0.5 * (P_new + P_new.T)
        out.P_filt[t] = P
    _require_finite_path(out.P_pred)
    return out


def _require_finite_path(P_pred: np.ndarray) -> None:
    """An error naming the first step whose P(t|t-1) overflowed, if one did."""
    bad = np.flatnonzero(~np.isfinite(P_pred).all(axis=(1, 2)))
    if bad.size:
        require_finite(int(bad[0]), "the predicted covariance P(t|t-1) = F P F' + Q", np.nan)


def _is_positive_definite(S: np.ndarray) -> bool:
    try:
        np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        return False
    return True


def _gaussian_loglik(nu: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Sum over time of log N(nu_t; 0, S_t): nu (Bt, N, m), S (N, m, m) or (1, m, m)."""
    m = nu.shape[-1]
    L = np.linalg.cholesky(S)
    logdet = 2.0 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)       # (N,) or (1,)
    if S.shape[0] == 1:
        # nu' S^{-1} nu = |L^{-1} nu|^2 with S = L L'
        Linv = scipy.linalg.solve_triangular(L[0], np.eye(m), lower=True)
        z = nu @ Linv.T
        quad = (z * z).sum(-1)
        return -0.5 * (nu.shape[-2] * (m * LOG_2PI + logdet[0]) + quad.sum(-1))
    # nu' S^{-1} nu with S^{-1} = L^{-T} L^{-1}: one small inverse per step
    Linv = np.linalg.inv(L)                                                  # (N, m, m)
    z = np.einsum("tij,btj->bti", Linv, nu)
    quad = (z * z).sum(-1)
    return -0.5 * ((m * LOG_2PI + logdet).sum() + quad.sum(-1))


@np.errstate(over="ignore", invalid="ignore")    # overflow is checked, and named
def fast_filter(model, y, u=None, rtol: float = 1e-15) -> FilterResult:
    """Same result as :func:`kflib.filter.reference_filter`, faster on long series.

    Uses the steady-state recursion (see the module docstring) when the model
    is time-invariant and ``y`` has no missing values; the covariances do not
    depend on the data then, so they are computed once, and for a batch the
    covariance arrays are read-only views shared by all series. Otherwise
    (missing values or time-varying matrices) it is
    :func:`kflib.scan.scan_filter`.
    """
    model = check_model(model)
    rtol = check_real(rtol, "rtol", low=0.0, high=RTOL_MAX)
    if model.x0 is None:           # a start at time 1: the exact initial filter
        return exact_filter(model, y, u)
    return _fast_filter(model, y, u, rtol)


@np.errstate(over="ignore", invalid="ignore")
def _fast_filter(model, y, u, rtol, y3=None, batched=None):
    """:func:`fast_filter` for a checked model with x0; ``y3, batched`` from
    :func:`kflib._inputs.as_observations` (when the caller has them already)."""
    if y3 is None or model.c is not None or model.d is not None:
        model, y, u = intercepts_as_inputs(model, y, u)
        y3, batched = as_observations(model, y)
    nb, T, m = y3.shape
    u3 = as_controls(model, u, nb, T, batched)
    if model.time_varying or np.isnan(y3).any():
        if COMPILED and nb * T >= (COMPILED_ABOVE if (model.n, m) == (2, 1)
                                   else COMPILED_GENERAL_ABOVE):
            return _compiled_sequential(model, y, u, y3, u3, batched)
        return scan_filter(model, y, u=u)
    n = model.n
    F, H = model.F, model.H

    # The covariance path does not depend on y: the exact recursion (one
    # series) until P_pred stops changing. Without the compiled loops a
    # sequential step costs about ten scan steps: when the covariances have
    # not settled within a share of a long series (Q = 0: they never do), the
    # associative scan is faster.
    compiled = COMPILED and nb * T >= COMPILED_ABOVE
    head, ks = settled_path(model, T, rtol, compiled)
    if head is None:
        return scan_filter(model, y, u=u)
    if compiled:
        return _compiled_steady(model, head, ks, y3, u3, batched)

    K, S = head.K[ks], head.S[ks]
    # Means for steps 0..ks with the time-varying gains, all series at once:
    # x_pred = F x + B u, nu = y - H x_pred, x_filt = x_pred + K_t nu
    # The loop works on (n, batch) blocks, time first, so that every product
    # is one small-by-wide matrix product and every store is contiguous.
    # The outputs are views (batch, T, n) of these time-major buffers.
    pred_tm, filt_tm, nu_tm = np.empty((T, n, nb)), np.empty((T, n, nb)), np.empty((T, m, nb))
    x_pred, x_filt, innov = (a.transpose(2, 0, 1) for a in (pred_tm, filt_tm, nu_tm))
    y_tm = np.ascontiguousarray(np.moveaxis(y3[:, :ks + 1], 0, -1))          # (ks+1, m, nb)
    u_tm = None if u3 is None else np.ascontiguousarray(np.moveaxis(u3[:, :ks + 1], 0, -1))
    x = np.repeat(model.x0[:, None], nb, axis=1)                             # (n, nb)
    for t in range(ks + 1):
        x = F @ x
        if u_tm is not None:
            x = x + model.B @ u_tm[t]
        pred_tm[t] = x
        nu = np.subtract(y_tm[t], H @ x, out=nu_tm[t])
        x = x + head.K[t] @ nu
        filt_tm[t] = x
    loglik = _gaussian_loglik(innov[:, :ks + 1], head.S[:ks + 1])

    if ks < T - 1:
        # steady part: x_filt_t = (I - K H) F x_filt_{t-1} + K y_t + (I - K H) B u_t
        I_KH = np.eye(n) - K @ H
        A = I_KH @ F
        rest = slice(ks + 1, T)
        b = y3[:, rest] @ K.T
        if u3 is not None:
            b = b + u3[:, rest] @ (I_KH @ model.B).T
        x_filt[:, rest] = linear_recursion(A, b, x_filt[:, ks])
        x_pred[:, rest] = x_filt[:, ks:T - 1] @ F.T
        if u3 is not None:
            x_pred[:, rest] += u3[:, rest] @ model.B.T
        innov[:, rest] = y3[:, rest] - x_pred[:, rest] @ H.T
        loglik = loglik + _gaussian_loglik(innov[:, rest], S[None])
    return _filter_result(head, ks, T, nb, n, m, x_pred, x_filt, innov, loglik, y3, batched)


def output_arrays(nb: int, T: int, n: int, m: int, shared: bool = False) -> dict:
    """Empty arrays for a FilterResult's fields, all in one block of memory
    (one allocation: the memory allocator hands the same block back call
    after call, while seven separate ones are returned to the system and
    page-faulted in again each time). With ``shared``, the covariance fields
    have one path, (1, T, ...), for every series."""
    nc = 1 if shared else nb
    shapes = dict(x_pred=(nb, T, n), x_filt=(nb, T, n), innovations=(nb, T, m),
                  P_pred=(nc, T, n, n), P_filt=(nc, T, n, n), S=(nc, T, m, m),
                  K=(nc, T, n, m))
    sizes = {k: math.prod(v) for k, v in shapes.items()}
    block = np.empty(sum(sizes.values()))
    out, start = {}, 0
    for key, shape in shapes.items():
        out[key] = block[start:start + sizes[key]].reshape(shape)
        start += sizes[key]
    return out


def _compiled_steady(model, head, ks, y3, u3, batched):
    """fast_filter's steady path in compiled loops: every mean, innovation and
    log-likelihood term in one pass over the data, the covariance path of
    ``head`` up to ks and constant after."""
    nb, T, m = y3.shape
    K_h, S_h = head.K[:ks + 1], head.S[:ks + 1]
    if m == 1:
        Linv = 1.0 / np.sqrt(S_h)
        logdet = np.log(S_h[:, 0, 0])
    else:
        L = np.linalg.cholesky(S_h)
        Linv = np.linalg.inv(L)
        logdet = 2.0 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)
    out = output_arrays(nb, T, model.n, m, shared=True)
    loglik, check = _kernels.steady_outputs(
        model.F, model.H, None if u3 is None else model.B, model.x0, y3, u3, K_h, Linv,
        logdet, ks, out["x_pred"], out["x_filt"], out["innovations"], head.P_pred[:ks + 1],
        head.P_filt[:ks + 1], S_h, out["P_pred"][0], out["P_filt"][0], out["S"][0],
        out["K"][0])
    if nb > 1:         # one covariance path serves every series: read-only views
        for key in ("P_pred", "P_filt", "S", "K"):
            out[key] = np.broadcast_to(out[key], (nb,) + out[key].shape[1:])
    if not (np.isfinite(check) and np.isfinite(loglik).all()):
        require_finite_result(out, ~np.isnan(y3), loglik)     # names the step
    if not batched:
        return FilterResult(**{k_: v[0] for k_, v in out.items()}, loglik=float(loglik[0]))
    return FilterResult(**out, loglik=loglik)


def _compiled_sequential(model, y, u, y3, u3, batched):
    """The step-by-step filter's equations in one compiled loop (numba)."""
    nb, T, m = y3.shape
    out, loglik = _kernels.sequential_filter(model, y3, u3, CANCEL_RATIO,
                                             output_arrays(nb, T, model.n, m))
    if out is None:               # S not positive definite: the reference names the step
        return reference_filter(model, y, u=u)
    if not (np.isfinite(out.pop("check")) and np.isfinite(loglik).all()):
        require_finite_result(out, ~np.isnan(y3), loglik)     # names the step
    if not batched:
        return FilterResult(**{k_: v[0] for k_, v in out.items()}, loglik=float(loglik[0]))
    return FilterResult(**out, loglik=loglik)


def _filter_result(head, ks, T, nb, n, m, x_pred, x_filt, innov, loglik, y3, batched):
    """fast_filter's FilterResult: the covariance path of ``head`` up to ks,
    constant after."""
    Pp, Pf, K, S = head.P_pred[ks], head.P_filt[ks], head.K[ks], head.S[ks]

    def cov(head_part, steady, shape):
        full = np.empty((T,) + shape)
        full[:ks + 1] = head_part[:ks + 1]
        full[ks + 1:] = steady
        # one covariance path serves every series of a batch: a read-only view
        return np.broadcast_to(full, (nb, T) + shape)

    # overflow checks: the covariances after ks repeat those at ks
    head_part = dict(P_pred=head.P_pred[None, :ks + 1], P_filt=head.P_filt[None, :ks + 1],
                     S=head.S[None, :ks + 1], K=head.K[None, :ks + 1])
    require_finite_result(dict(x_pred=x_pred, x_filt=x_filt, innovations=innov, **head_part),
                          ~np.isnan(y3), loglik)
    out = dict(x_pred=x_pred, P_pred=cov(head.P_pred, Pp, (n, n)), x_filt=x_filt,
               P_filt=cov(head.P_filt, Pf, (n, n)), innovations=innov,
               S=cov(head.S, S, (m, m)), K=cov(head.K, K, (n, m)))
    if not batched:
        return FilterResult(**{k_: v[0] for k_, v in out.items()}, loglik=float(loglik[0]))
    return FilterResult(**out, loglik=np.asarray(loglik))


def _compiled_rts(model, filt, batched):
    """The step-by-step RTS pass compiled (two states), or None where some
    P(t+1|t) is ill-conditioned (a Cholesky pivot below GAIN_ILL of its largest
    variance), where reference_smoother itself takes the information or r/N
    form."""
    from .smoother import GAIN_ILL
    xf, Pf, xp, Pp = filt.x_filt, filt.P_filt, filt.x_pred, filt.P_pred
    if not batched:
        xf, Pf, xp, Pp = xf[None], Pf[None], xp[None], Pp[None]
    nb = xf.shape[0]
    shared = nb > 1 and all(A.strides[0] == 0 for A in (Pf, Pp))
    if shared:
        Pf, Pp = Pf[:1], Pp[:1]
    out = _kernels.rts_2(model, xf, Pf, xp, Pp, GAIN_ILL)
    if out is None:
        return None
    xs, Ps, Pl, G, x0s, P0s = out
    if shared:        # one covariance path serves every series: read-only views
        Ps, Pl, G, P0s = (np.broadcast_to(A, (nb,) + A.shape[1:]) for A in (Ps, Pl, G, P0s))
    res = (xs, Ps, Pl, G, x0s, P0s)
    if not batched:
        res = tuple(a[0] for a in res)
    return SmootherResult(*res)


def fast_smoother(model, filt: FilterResult, rtol: float = 1e-15) -> SmootherResult:
    """Same result as :func:`kflib.smoother.reference_smoother`, faster on long steady series.

    Where the filter's covariances are constant the smoother gain G is
    constant too, and the backward mean recursion is evaluated in blocks; the
    smoothed covariances are iterated exactly until they settle. After
    missing values (NaN innovations) or with time-varying matrices the
    covariances do not settle, and :func:`kflib.scan.scan_smoother` is used.
    """
    model = check_model(model)
    rtol = check_real(rtol, "rtol", low=0.0, high=RTOL_MAX)
    if model.x0 is None:           # a start at time 1: the exact initial smoother
        return exact_smoother(model, filt)
    check_filter_result(model, filt)
    batched = filt.x_filt.ndim == 3
    if COMPILED and model.n == 2 and filt.x_filt.size // 2 >= COMPILED_ABOVE:
        out = _compiled_rts(model, filt, batched)
        if out is not None:
            return out
    if model.time_varying or np.isnan(filt.innovations).any():
        return scan_smoother(model, filt)
    Pp_all = filt.P_pred if not batched else filt.P_pred[0]
    T = Pp_all.shape[0]
    if batched and not (np.array_equal(filt.P_pred, np.broadcast_to(filt.P_pred[:1], filt.P_pred.shape))):
        return reference_smoother(model, filt)
    ks = _steady_index(Pp_all, rtol) if T > 2 else None
    if ks is None or ks >= T - 3 or (T > SCAN_ABOVE and ks > T // 8):
        # the covariances do not settle (soon enough): one sequential step
        # costs about ten scan steps
        return scan_smoother(model, filt) if T > SCAN_ABOVE else reference_smoother(model, filt)
    n = model.n
    F = model.F
    xf, Pf_all = filt.x_filt, filt.P_filt if not batched else filt.P_filt[0]
    xp = filt.x_pred
    if not batched:
        xf, xp = xf[None], xp[None]
    nb = xf.shape[0]

    # Covariances and gains do not depend on y: exact backward pass on them.
    # On [ks, T-2] the gain is constant and P_{k|T} converges (backwards) to a
    # fixed point; once it stops changing it stays, so the rest is filled in.
    Ps = np.empty((T, n, n))
    G_all = np.empty((T, n, n))
    Ps[-1] = Pf_all[-1]
    report = {}
    G_s = _gain(Pf_all[ks], F, Pp_all[ks], model.Q, report=report)
    if report["doubt"].any() or report["real"].any():
        return reference_smoother(model, filt)    # the information or r/N form there
    G_all[ks + 1:] = G_s
    Q = model.Q
    # P_{k|T} = L + G P_{k+1|T} G' with L = P_{k|k} - G P_{k+1|k} G' (Joseph form)
    L_s = _backward_cov(Pf_all[ks], F, Q, G_s)
    for k in range(T - 2, ks - 1, -1):
        P_s = _sym(L_s + G_s @ Ps[k + 1] @ G_s.T)
        Ps[k] = P_s
        if np.abs(P_s - Ps[k + 1]).max() <= rtol * np.abs(P_s).max():
            Ps[ks:k] = P_s
            break
    for k in range(ks - 1, -2, -1):
        P_k = Pf_all[k] if k >= 0 else model.P0
        G = _gain(P_k, F, Pp_all[k + 1], model.Q, report=report)
        if (report["doubt"].any() or report["real"].any()
                or (report["ill"].any() and T <= SCAN_ABOVE)):
            return reference_smoother(model, filt)    # the information or r/N form there
        P_s = _smoothed_cov(P_k, F, Q, G, Ps[k + 1])
        G_all[k + 1] = G
        if k >= 0:
            Ps[k] = P_s
        else:
            P0s = P_s
    # Means: constant G on [ks, T-2], blocked; exact loop before
    xs = np.empty_like(xf)
    xs[:, -1] = xf[:, -1]
    # reversed recursion: s_k = G s_{k+1} + (xf_k - G xp_{k+1}) for k = T-2 .. ks
    idx = np.arange(T - 2, ks - 1, -1)
    b = xf[:, idx] - xp[:, idx + 1] @ G_s.T
    if COMPILED and nb * T >= COMPILED_ABOVE:
        xs[:, idx] = _kernels.linear_recursion(G_s, b, xs[:, -1])
    else:
        xs[:, idx] = linear_recursion(G_s, b, xs[:, -1])
    for k in range(ks - 1, -2, -1):
        x_k = xf[:, k] if k >= 0 else np.broadcast_to(model.x0, (nb, n))
        G = G_all[k + 1]
        x_s = x_k + (xs[:, k + 1] - xp[:, k + 1]) @ G.T
        if k >= 0:
            xs[:, k] = x_s
        else:
            x0s = x_s
    P_lag1 = Ps @ _T(G_all)
    if not batched:
        return SmootherResult(xs[0], Ps, P_lag1, G_all, x0s[0], P0s)
    rep = lambda a: np.broadcast_to(a, (nb,) + a.shape).copy()  # noqa: E731
    return SmootherResult(xs, rep(Ps), rep(P_lag1), rep(G_all), x0s, rep(P0s))
