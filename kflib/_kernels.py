"""Optional compiled loops for kflib.fast (numba: ``pip install kflib[fast]``).

Each kernel is the plain sequential loop of the equations it serves, so it
gives the numbers of the step-by-step reference (to round-off); without
numba, kflib.fast computes the same quantities with blocked numpy products.
Compiled once per machine (``cache=True``) on first use.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

# numba is imported (and the kernels compiled, or loaded from numba's cache)
# on first use, not with kflib: importing numba alone takes most of a second.
AVAILABLE = (not os.environ.get("KFLIB_NO_NUMBA")
             and importlib.util.find_spec("numba") is not None)

__all__ = ["AVAILABLE", "filter_means", "linear_recursion", "sequential_filter"]


_CACHE: dict = {}


def _compiled(fn):
    """``fn`` compiled by numba (once per process; numba caches it on disk).
    The small helpers the kernels call are compiled first, in place."""
    if fn.__name__ not in _CACHE:
        from numba import njit
        g = globals()
        for helper in ("_mul", "_chol_solve"):
            if not hasattr(g[helper], "py_func"):
                g[helper] = njit(cache=True, nogil=True)(g[helper])
        _CACHE[fn.__name__] = njit(cache=True, nogil=True)(fn)
    return _CACHE[fn.__name__]


def _filter_means(F, H, K, B, x0, y, u, x_pred, x_filt, nu):
    # For every series b and step t, with the gain K[min(t, len(K) - 1)]:
    # x_pred = F x + B u_t, nu = y_t - H x_pred, x_filt = x_pred + K nu
    nb, T, m = y.shape
    n = F.shape[0]
    nk = K.shape[0]
    r = B.shape[1]
    xp = np.empty(n)
    x = np.empty(n)
    v = np.empty(m)
    for b in range(nb):
        for i in range(n):
            x[i] = x0[b, i]
        for t in range(T):
            k = t if t < nk else nk - 1
            for i in range(n):
                acc = 0.0
                for j in range(n):
                    acc += F[i, j] * x[j]
                for j in range(r):
                    acc += B[i, j] * u[b, t, j]
                xp[i] = acc
                x_pred[b, t, i] = acc
            for i in range(m):
                acc = 0.0
                for j in range(n):
                    acc += H[i, j] * xp[j]
                v[i] = y[b, t, i] - acc
                nu[b, t, i] = v[i]
            for i in range(n):
                acc = xp[i]
                for j in range(m):
                    acc += K[k, i, j] * v[j]
                x[i] = acc
                x_filt[b, t, i] = acc


def _linear_recursion(A, b, x_init, out):
    # x_t = A x_{t-1} + b_t for every series
    nb, N, n = b.shape
    x = np.empty(n)
    for s in range(nb):
        for i in range(n):
            x[i] = x_init[s, i]
        for t in range(N):
            for i in range(n):
                acc = b[s, t, i]
                for j in range(n):
                    acc += A[i, j] * x[j]
                out[s, t, i] = acc
            for i in range(n):
                x[i] = out[s, t, i]


def filter_means(F, H, K, x0, y, B=None, u=None):
    """Means and innovations of the filter with given gains, all series.

    F (n, n), H (m, n), K (k, n, m) (step t >= k uses K[k - 1]), x0 (nb, n),
    y (nb, T, m) complete; B (n, r) and u (nb, T, r) optional. Returns
    x_pred, x_filt (nb, T, n) and the innovations (nb, T, m).
    """
    nb, T, m = y.shape
    n = F.shape[0]
    if B is None:
        B, u = np.zeros((n, 0)), np.zeros((nb, T, 0))
    x_pred, x_filt, nu = np.empty((nb, T, n)), np.empty((nb, T, n)), np.empty((nb, T, m))
    c = np.ascontiguousarray
    _compiled(_filter_means)(c(F, dtype=float), c(H, dtype=float), c(K, dtype=float),
                    c(B, dtype=float), c(np.broadcast_to(x0, (nb, n)), dtype=float),
                    c(y, dtype=float), c(np.broadcast_to(u, (nb, T, B.shape[1])), dtype=float),
                    x_pred, x_filt, nu)
    return x_pred, x_filt, nu


def linear_recursion(A, b, x_init):
    """``x_t = A x_{t-1} + b_t``, b (..., N, n), x_init (..., n): the plain loop."""
    *batch, N, n = b.shape
    bb = np.ascontiguousarray(np.reshape(b, (-1, N, n)), dtype=float)
    xi = np.ascontiguousarray(np.broadcast_to(x_init, (*batch, n)).reshape(-1, n), dtype=float)
    out = np.empty(bb.shape)
    _compiled(_linear_recursion)(np.ascontiguousarray(A, dtype=float), bb, xi, out)
    return out.reshape(*batch, N, n)


# -- the step-by-step filter, compiled (kflib.filter.reference_filter's equations) --

def _chol_solve(S, k, rhs, ncol, L):
    """log|S| from the Cholesky factor of S[:k, :k] (NaN when S is not positive
    definite), and S X = rhs (k, ncol) solved in place; L is work space."""
    if k == 1:                             # one observed component: a division
        if not S[0, 0] > 0.0:
            return np.nan
        for c in range(ncol):
            rhs[0, c] = rhs[0, c] / S[0, 0]
        return np.log(S[0, 0])
    logdet = 0.0
    for j in range(k):
        d = S[j, j]
        for p in range(j):
            d -= L[j, p] * L[j, p]
        if not d > 0.0:
            return np.nan
        L[j, j] = np.sqrt(d)
        logdet += 2.0 * np.log(L[j, j])
        for i in range(j + 1, k):
            acc = S[i, j]
            for p in range(j):
                acc -= L[i, p] * L[j, p]
            L[i, j] = acc / L[j, j]
    # the solve as LAPACK's gesv does it (LU, partial pivoting), as in the
    # reference: for k = 1 a plain division, which keeps a gain of exactly 1
    # where P H' and S round to the same number (a vague start)
    for i in range(k):
        for j in range(k):
            L[i, j] = S[i, j]              # L now holds the LU factors
    for j in range(k):
        piv = j
        for i in range(j + 1, k):
            if abs(L[i, j]) > abs(L[piv, j]):
                piv = i
        if piv != j:
            for c in range(k):
                L[j, c], L[piv, c] = L[piv, c], L[j, c]
            for c in range(ncol):
                rhs[j, c], rhs[piv, c] = rhs[piv, c], rhs[j, c]
        for i in range(j + 1, k):
            f = L[i, j] / L[j, j]
            for c in range(j + 1, k):
                L[i, c] -= f * L[j, c]
            for c in range(ncol):
                rhs[i, c] -= f * rhs[j, c]
    for c in range(ncol):
        for i in range(k - 1, -1, -1):
            acc = rhs[i, c]
            for p in range(i + 1, k):
                acc -= L[i, p] * rhs[p, c]
            rhs[i, c] = acc / L[i, i]
    return logdet


def _mul(A, B, out, transpose_b):
    """out = A @ B (or A @ B')."""
    n, k = A.shape
    p = out.shape[1]
    for i in range(n):
        for j in range(p):
            acc = 0.0
            for q in range(k):
                acc += A[i, q] * (B[j, q] if transpose_b else B[q, j])
            out[i, j] = acc


def _sequential(F, H, Q, R, Bc, x0, P0, y, u, cancel_ratio, x_pred, P_pred, x_filt, P_filt,
                nu, S_out, K_out, loglik):
    """The sequential filter for each series; returns -1, or the first time
    index where an innovation covariance was not positive definite."""
    nb, T, m = y.shape
    n = x0.shape[0]
    r = u.shape[2]
    tvF, tvH, tvQ, tvR, tvB = F.shape[0] > 1, H.shape[0] > 1, Q.shape[0] > 1, R.shape[0] > 1, Bc.shape[0] > 1
    LOG_2PI = np.log(2.0 * np.pi)
    x = np.empty(n)
    P = np.empty((n, n))
    Pu = np.empty((n, n))
    Phi = np.empty((n, n))
    W = np.empty((n, n))
    tmp = np.empty((n, n))
    tmp2 = np.empty((n, n))
    Hm = np.empty((m, n))
    Rm = np.empty((m, m))
    Sm = np.empty((m, m))
    L = np.empty((m, m))
    rhs = np.empty((m, n + 1))
    K = np.empty((n, m))
    A = np.empty((n, n))
    num = np.empty(m)
    HPhi = np.empty((m, n))
    Pnew = np.empty((n, n))
    xnew = np.empty(n)
    # this step's matrices, copied into work arrays (views would cost a
    # reference count each)
    Ft = F[0].copy()
    Ht = H[0].copy()
    Qt = Q[0].copy()
    Rt = R[0].copy()
    Bt = Bc[0].copy()
    for b in range(nb):
        for i in range(n):
            x[i] = x0[i]
            for j in range(n):
                P[i, j] = P0[i, j]
                Pu[i, j] = P0[i, j]
        fresh = True
        ll = 0.0
        for t in range(T):
            if tvF:
                for i in range(n):
                    for j in range(n):
                        Ft[i, j] = F[t, i, j]
            if tvH:
                for i in range(m):
                    for j in range(n):
                        Ht[i, j] = H[t, i, j]
            if tvQ:
                for i in range(n):
                    for j in range(n):
                        Qt[i, j] = Q[t, i, j]
            if tvR:
                for i in range(m):
                    for j in range(m):
                        Rt[i, j] = R[t, i, j]
            if tvB:
                for i in range(n):
                    for j in range(r):
                        Bt[i, j] = Bc[t, i, j]
            # predict: x = F x + B u, P = sym(F P F' + Q)
            for i in range(n):
                acc = 0.0
                for j in range(n):
                    acc += Ft[i, j] * x[j]
                for j in range(r):
                    acc += Bt[i, j] * u[b, t, j]
                xnew[i] = acc
            for i in range(n):
                x[i] = xnew[i]
            _mul(Ft, P, tmp, False)
            _mul(tmp, Ft, tmp2, True)
            for i in range(n):
                for j in range(n):
                    P[i, j] = tmp2[i, j] + Qt[i, j]
            for i in range(n):
                for j in range(i + 1, n):
                    v = 0.5 * (P[i, j] + P[j, i])
                    P[i, j] = v
                    P[j, i] = v
            # factors of P_{t|t-1} = Phi P_u Phi' + W
            if fresh:
                for i in range(n):
                    for j in range(n):
                        Phi[i, j] = Ft[i, j]
                        W[i, j] = Qt[i, j]
            else:
                _mul(Ft, Phi, tmp, False)
                for i in range(n):
                    for j in range(n):
                        Phi[i, j] = tmp[i, j]
                _mul(Ft, W, tmp, False)
                _mul(tmp, Ft, tmp2, True)
                for i in range(n):
                    for j in range(n):
                        W[i, j] = tmp2[i, j] + Qt[i, j]
                for i in range(n):
                    for j in range(i + 1, n):
                        v = 0.5 * (W[i, j] + W[j, i])
                        W[i, j] = v
                        W[j, i] = v
            # innovation and S = sym(H P H' + R), every component
            n_obs = 0
            for i in range(m):
                acc = 0.0
                for j in range(n):
                    acc += Ht[i, j] * x[j]
                nu[b, t, i] = y[b, t, i] - acc
                if not np.isnan(y[b, t, i]):
                    n_obs += 1
            _mul(Ht, P, Hm, False)
            for i in range(m):
                for j in range(m):
                    acc = 0.0
                    for q in range(n):
                        acc += Hm[i, q] * Ht[j, q]
                    Sm[i, j] = acc + Rt[i, j]
            for i in range(m):
                for j in range(m):
                    S_out[b, t, i, j] = 0.5 * (Sm[i, j] + Sm[j, i])
            for i in range(n):
                x_pred[b, t, i] = x[i]
                for j in range(n):
                    P_pred[b, t, i, j] = P[i, j]
            if n_obs == 0:                   # pure prediction
                for i in range(n):
                    x_filt[b, t, i] = x[i]
                    for q in range(m):
                        K_out[b, t, i, q] = 0.0
                    for j in range(n):
                        P_filt[b, t, i, j] = P[i, j]
                fresh = False
                continue
            # masked H, R, innovation (missing: zero row, unit variance)
            for i in range(m):
                o_i = not np.isnan(y[b, t, i])
                num[i] = nu[b, t, i] if o_i else 0.0
                for j in range(n):
                    Hm[i, j] = Ht[i, j] if o_i else 0.0
                for j in range(m):
                    o_j = not np.isnan(y[b, t, j])
                    Rm[i, j] = Rt[i, j] if (o_i and o_j) else (1.0 if i == j else 0.0)
            for attempt in range(2):
                factored = attempt == 1
                # PHt (n, m) into K's buffer first; S = sym(H P H' + R)
                if factored:
                    _mul(Hm, Phi, HPhi, False)
                    # PuHPhit = P_u (H Phi)' : (n, m)
                    for i in range(n):
                        for q in range(m):
                            acc = 0.0
                            for j in range(n):
                                acc += Pu[i, j] * HPhi[q, j]
                            K[i, q] = acc
                    # PHt = Phi PuHPhit + W H'; S = HPhi PuHPhit + H W H' + R
                    for i in range(m):
                        for j in range(m):
                            acc = 0.0
                            for q in range(n):
                                acc += HPhi[i, q] * K[q, j]
                            acc2 = 0.0
                            for q in range(n):
                                for p in range(n):
                                    acc2 += Hm[i, q] * W[q, p] * Hm[j, p]
                            Sm[i, j] = acc + acc2 + Rm[i, j]
                    for i in range(n):
                        for q in range(m):
                            acc = 0.0
                            for j in range(n):
                                acc += Phi[i, j] * K[j, q]
                            acc2 = 0.0
                            for j in range(n):
                                acc2 += W[i, j] * Hm[q, j]
                            rhs[q, i] = acc + acc2
                else:
                    for i in range(n):
                        for q in range(m):
                            acc = 0.0
                            for j in range(n):
                                acc += P[i, j] * Hm[q, j]
                            rhs[q, i] = acc            # (P H')' = H P
                    for i in range(m):
                        for j in range(m):
                            acc = 0.0
                            for q in range(n):
                                acc += Hm[i, q] * rhs[j, q]
                            Sm[i, j] = acc + Rm[i, j]
                for i in range(m):
                    for j in range(i + 1, m):
                        v = 0.5 * (Sm[i, j] + Sm[j, i])
                        Sm[i, j] = v
                        Sm[j, i] = v
                    rhs[i, n] = num[i]
                logdet = _chol_solve(Sm, m, rhs, n + 1, L)
                if np.isnan(logdet):
                    return t
                quad = 0.0
                for i in range(m):
                    quad += num[i] * rhs[i, n]
                for i in range(n):
                    for q in range(m):
                        K[i, q] = rhs[q, i]
                # x = x + K nu; A = I - K H
                for i in range(n):
                    acc = x[i]
                    for q in range(m):
                        acc += K[i, q] * num[q]
                    xnew[i] = acc
                for i in range(n):
                    for j in range(n):
                        acc = 1.0 if i == j else 0.0
                        for q in range(m):
                            acc -= K[i, q] * Hm[q, j]
                        A[i, j] = acc
                # Joseph form: A P A' + K R K'  (factored: (A Phi) P_u (A Phi)' + A W A' + K R K')
                if factored:
                    _mul(A, Phi, tmp2, False)            # A Phi
                    _mul(tmp2, Pu, tmp, False)
                    _mul(tmp, tmp2, Pnew, True)
                    _mul(A, W, tmp, False)
                    _mul(tmp, A, tmp2, True)
                    for i in range(n):
                        for j in range(n):
                            Pnew[i, j] += tmp2[i, j]
                else:
                    _mul(A, P, tmp, False)
                    _mul(tmp, A, Pnew, True)
                for i in range(n):
                    for j in range(n):
                        acc = 0.0
                        for p in range(m):
                            for q in range(m):
                                acc += K[i, p] * Rm[p, q] * K[j, q]
                        Pnew[i, j] += acc
                for i in range(n):
                    for j in range(i + 1, n):
                        v = 0.5 * (Pnew[i, j] + Pnew[j, i])
                        Pnew[i, j] = v
                        Pnew[j, i] = v
                if factored:
                    break
                cancels = False
                for i in range(n):
                    if P[i, i] > cancel_ratio * Pnew[i, i]:
                        cancels = True
                if not cancels:
                    break
            for i in range(n):
                x[i] = xnew[i]
                x_filt[b, t, i] = x[i]
                for q in range(m):
                    K_out[b, t, i, q] = K[i, q]
                for j in range(n):
                    P[i, j] = Pnew[i, j]
                    Pu[i, j] = Pnew[i, j]
                    P_filt[b, t, i, j] = Pnew[i, j]
            ll += -0.5 * (n_obs * LOG_2PI + logdet + quad)
            fresh = True
        loglik[b] = ll
    return -1


def sequential_filter(model, y3, u3, cancel_ratio):
    """The step-by-step filter for every series (y3 (nb, T, m), u3 or None);
    a dict of FilterResult fields and the log-likelihoods, or None when an
    innovation covariance is not positive definite (the caller then runs the
    reference, which names the step)."""
    nb, T, m = y3.shape
    n = model.n

    def stack(A, k=2):
        A = np.asarray(A, dtype=float)
        return np.ascontiguousarray(A if A.ndim == k + 1 else A[None])

    if model.B is None or u3 is None:
        Bc, u = np.zeros((1, n, 0)), np.zeros((nb, T, 0))
    else:
        Bc, u = stack(model.B), np.ascontiguousarray(u3, dtype=float)
    out = dict(x_pred=np.empty((nb, T, n)), P_pred=np.empty((nb, T, n, n)),
               x_filt=np.empty((nb, T, n)), P_filt=np.empty((nb, T, n, n)),
               innovations=np.empty((nb, T, m)), S=np.empty((nb, T, m, m)),
               K=np.empty((nb, T, n, m)))
    loglik = np.empty(nb)
    fn = _compiled(_sequential)
    bad = fn(stack(model.F), stack(model.H), stack(model.Q), stack(model.R), Bc,
             np.asarray(model.x0, dtype=float), np.ascontiguousarray(model.P0, dtype=float),
             np.ascontiguousarray(y3, dtype=float), u, float(cancel_ratio),
             out["x_pred"], out["P_pred"], out["x_filt"], out["P_filt"],
             out["innovations"], out["S"], out["K"], loglik)
    if bad >= 0:
        return None, None
    return out, loglik
