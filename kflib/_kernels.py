"""Optional compiled loops for kflib.fast (numba: ``pip install kflib[fast]``).

Each kernel is the plain sequential loop of the equations it serves, so it
gives the numbers of the step-by-step reference (to round-off); without
numba, kflib.fast computes the same quantities with blocked numpy products
and the associative scan. Compiled once per machine (``cache=True``) on first
use, and only what a call needs: for two states and one observation (the
commonest case) the kernels ``*_2_1`` hold every quantity in scalars, which
compiles in a fraction of the time of the general loops and runs several
times faster.

Course: the performance appendix (book/appendix-performance.md); tests:
test_dispatch.py, test_fast.py (the numpy fallback, KFLIB_NO_NUMBA=1, gives the
same numbers).
"""

from __future__ import annotations

import importlib.util
import math
import os

import numpy as np

# numba is imported (and the kernels compiled, or loaded from numba's cache)
# on first use, not with kflib: importing numba alone takes most of a second.
AVAILABLE = (not os.environ.get("KFLIB_NO_NUMBA")
             and importlib.util.find_spec("numba") is not None)

__all__ = ["AVAILABLE", "linear_recursion", "riccati", "sequential_filter", "steady_outputs"]


_CACHE: dict = {}


def _compiled(fn):
    """``fn`` compiled by numba (once per process; numba caches it on disk).
    The small helpers the kernels call are compiled first, in place."""
    if fn.__name__ not in _CACHE:
        from numba import njit
        g = globals()
        for helper in ("_mul", "_chol_solve", "_head_2_1", "_steady_tail", "_steady_tail_2_1"):
            if not hasattr(g[helper], "py_func"):
                g[helper] = njit(cache=True, nogil=True)(g[helper])
        _CACHE[fn.__name__] = njit(cache=True, nogil=True)(fn)
    return _CACHE[fn.__name__]


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
                nu, S_out, K_out, loglik, check):
    """The sequential filter for each series; returns -1, or the first time
    index where an innovation covariance was not positive definite. check[0]
    receives a sum that is not finite when a stored mean or covariance is not
    (NaN and infinity do not leave the recursion: they reach the last state,
    its covariance or the log-likelihood)."""
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
        chk = ll
        for i in range(n):
            chk += x[i]
            for j in range(n):
                chk += P[i, j]
        check[0] += chk
    return -1


def _sequential_2_1(F, H, Q, R, Bc, x0, P0, y, u, cancel_ratio, x_pred, P_pred, x_filt,
                    P_filt, nu, S_out, K_out, loglik, check):
    """:func:`_sequential` for two states and one observation, every quantity
    in scalars (registers): the same equations, products and order."""
    nb, T, _ = y.shape
    r = u.shape[2]
    tvF, tvH, tvQ, tvR, tvB = F.shape[0] > 1, H.shape[0] > 1, Q.shape[0] > 1, R.shape[0] > 1, Bc.shape[0] > 1
    LOG_2PI = np.log(2.0 * np.pi)
    chk_all = 0.0
    for b in range(nb):
        x0_, x1_ = x0[0], x0[1]
        p00, p01, p10, p11 = P0[0, 0], P0[0, 1], P0[1, 0], P0[1, 1]
        u00, u01, u10, u11 = p00, p01, p10, p11               # P_u
        g00, g01, g10, g11 = 1.0, 0.0, 0.0, 1.0               # Phi
        w00, w01, w10, w11 = 0.0, 0.0, 0.0, 0.0               # W
        fresh = True
        ll = 0.0
        for t in range(T):
            k = t if tvF else 0
            f00, f01, f10, f11 = F[k, 0, 0], F[k, 0, 1], F[k, 1, 0], F[k, 1, 1]
            k = t if tvQ else 0
            q00, q01, q10, q11 = Q[k, 0, 0], Q[k, 0, 1], Q[k, 1, 0], Q[k, 1, 1]
            k = t if tvH else 0
            h0, h1 = H[k, 0, 0], H[k, 0, 1]
            rr = R[t if tvR else 0, 0, 0]
            # predict: x = F x + B u, P = sym(F P F' + Q)
            a0 = f00 * x0_ + f01 * x1_
            a1 = f10 * x0_ + f11 * x1_
            kb = t if tvB else 0
            for j in range(r):
                a0 += Bc[kb, 0, j] * u[b, t, j]
                a1 += Bc[kb, 1, j] * u[b, t, j]
            x0_, x1_ = a0, a1
            m00 = f00 * p00 + f01 * p10
            m01 = f00 * p01 + f01 * p11
            m10 = f10 * p00 + f11 * p10
            m11 = f10 * p01 + f11 * p11
            p00 = m00 * f00 + m01 * f01 + q00
            p01 = m00 * f10 + m01 * f11 + q01
            p10 = m10 * f00 + m11 * f01 + q10
            p11 = m10 * f10 + m11 * f11 + q11
            v = 0.5 * (p01 + p10)
            p01 = v
            p10 = v
            # factors of P_{t|t-1} = Phi P_u Phi' + W
            if fresh:
                g00, g01, g10, g11 = f00, f01, f10, f11
                w00, w01, w10, w11 = q00, q01, q10, q11
            else:
                n00 = f00 * g00 + f01 * g10
                n01 = f00 * g01 + f01 * g11
                n10 = f10 * g00 + f11 * g10
                n11 = f10 * g01 + f11 * g11
                g00, g01, g10, g11 = n00, n01, n10, n11
                m00 = f00 * w00 + f01 * w10
                m01 = f00 * w01 + f01 * w11
                m10 = f10 * w00 + f11 * w10
                m11 = f10 * w01 + f11 * w11
                w00 = m00 * f00 + m01 * f01 + q00
                w01 = m00 * f10 + m01 * f11 + q01
                w10 = m10 * f00 + m11 * f01 + q10
                w11 = m10 * f10 + m11 * f11 + q11
                v = 0.5 * (w01 + w10)
                w01 = v
                w10 = v
            # innovation and S = H P H' + R
            yt = y[b, t, 0]
            e = yt - (h0 * x0_ + h1 * x1_)
            nu[b, t, 0] = e
            hp0 = h0 * p00 + h1 * p10
            hp1 = h0 * p01 + h1 * p11
            S_out[b, t, 0, 0] = hp0 * h0 + hp1 * h1 + rr
            x_pred[b, t, 0], x_pred[b, t, 1] = x0_, x1_
            P_pred[b, t, 0, 0], P_pred[b, t, 0, 1] = p00, p01
            P_pred[b, t, 1, 0], P_pred[b, t, 1, 1] = p10, p11
            if np.isnan(yt):                     # pure prediction
                x_filt[b, t, 0], x_filt[b, t, 1] = x0_, x1_
                K_out[b, t, 0, 0], K_out[b, t, 1, 0] = 0.0, 0.0
                P_filt[b, t, 0, 0], P_filt[b, t, 0, 1] = p00, p01
                P_filt[b, t, 1, 0], P_filt[b, t, 1, 1] = p10, p11
                fresh = False
                continue
            for attempt in range(2):
                factored = attempt == 1
                if factored:
                    # P H' = Phi P_u (H Phi)' + W H';  S = (H Phi) P_u (H Phi)' + H W H' + R
                    c0 = h0 * g00 + h1 * g10
                    c1 = h0 * g01 + h1 * g11
                    d0 = u00 * c0 + u01 * c1
                    d1 = u10 * c0 + u11 * c1
                    s = (c0 * d0 + c1 * d1) + ((h0 * w00 * h0 + h0 * w01 * h1)
                                               + (h1 * w10 * h0 + h1 * w11 * h1)) + rr
                    r0 = (g00 * d0 + g01 * d1) + (w00 * h0 + w01 * h1)
                    r1 = (g10 * d0 + g11 * d1) + (w10 * h0 + w11 * h1)
                else:
                    r0 = p00 * h0 + p01 * h1
                    r1 = p10 * h0 + p11 * h1
                    s = (h0 * r0 + h1 * r1) + rr
                if not s > 0.0:
                    return t
                logdet = np.log(s)
                k0 = r0 / s
                k1 = r1 / s
                quad = e * (e / s)
                xn0 = x0_ + k0 * e
                xn1 = x1_ + k1 * e
                # A = I - K H
                a00 = 1.0 - k0 * h0
                a01 = 0.0 - k0 * h1
                a10 = 0.0 - k1 * h0
                a11 = 1.0 - k1 * h1
                if factored:
                    # (A Phi) P_u (A Phi)' + A W A'
                    b00 = a00 * g00 + a01 * g10
                    b01 = a00 * g01 + a01 * g11
                    b10 = a10 * g00 + a11 * g10
                    b11 = a10 * g01 + a11 * g11
                    m00 = b00 * u00 + b01 * u10
                    m01 = b00 * u01 + b01 * u11
                    m10 = b10 * u00 + b11 * u10
                    m11 = b10 * u01 + b11 * u11
                    n00 = m00 * b00 + m01 * b01
                    n01 = m00 * b10 + m01 * b11
                    n10 = m10 * b00 + m11 * b01
                    n11 = m10 * b10 + m11 * b11
                    m00 = a00 * w00 + a01 * w10
                    m01 = a00 * w01 + a01 * w11
                    m10 = a10 * w00 + a11 * w10
                    m11 = a10 * w01 + a11 * w11
                    n00 += m00 * a00 + m01 * a01
                    n01 += m00 * a10 + m01 * a11
                    n10 += m10 * a00 + m11 * a01
                    n11 += m10 * a10 + m11 * a11
                else:
                    m00 = a00 * p00 + a01 * p10
                    m01 = a00 * p01 + a01 * p11
                    m10 = a10 * p00 + a11 * p10
                    m11 = a10 * p01 + a11 * p11
                    n00 = m00 * a00 + m01 * a01
                    n01 = m00 * a10 + m01 * a11
                    n10 = m10 * a00 + m11 * a01
                    n11 = m10 * a10 + m11 * a11
                # + K R K'
                n00 += k0 * rr * k0
                n01 += k0 * rr * k1
                n10 += k1 * rr * k0
                n11 += k1 * rr * k1
                v = 0.5 * (n01 + n10)
                n01 = v
                n10 = v
                if factored:
                    break
                if not (p00 > cancel_ratio * n00 or p11 > cancel_ratio * n11):
                    break
            x0_, x1_ = xn0, xn1
            p00, p01, p10, p11 = n00, n01, n10, n11
            u00, u01, u10, u11 = n00, n01, n10, n11
            x_filt[b, t, 0], x_filt[b, t, 1] = x0_, x1_
            K_out[b, t, 0, 0], K_out[b, t, 1, 0] = k0, k1
            P_filt[b, t, 0, 0], P_filt[b, t, 0, 1] = p00, p01
            P_filt[b, t, 1, 0], P_filt[b, t, 1, 1] = p10, p11
            ll += -0.5 * (LOG_2PI + logdet + quad)
            fresh = True
        loglik[b] = ll
        chk_all += ll + x0_ + x1_ + p00 + p01 + p10 + p11
    check[0] += chk_all
    return -1


def sequential_filter(model, y3, u3, cancel_ratio, out=None):
    """The step-by-step filter for every series (y3 (nb, T, m), u3 or None);
    a dict of FilterResult fields (into ``out``'s arrays when given) with the
    check sum under "check", and the log-likelihoods; or (None, None) when an
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
    if out is None:
        out = dict(x_pred=np.empty((nb, T, n)), P_pred=np.empty((nb, T, n, n)),
                   x_filt=np.empty((nb, T, n)), P_filt=np.empty((nb, T, n, n)),
                   innovations=np.empty((nb, T, m)), S=np.empty((nb, T, m, m)),
                   K=np.empty((nb, T, n, m)))
    loglik = np.empty(nb)
    check = np.zeros(1)
    fn = _compiled(_sequential_2_1 if n == 2 and m == 1 else _sequential)
    bad = fn(stack(model.F), stack(model.H), stack(model.Q), stack(model.R), Bc,
             np.asarray(model.x0, dtype=float), np.ascontiguousarray(model.P0, dtype=float),
             np.ascontiguousarray(y3, dtype=float), u, float(cancel_ratio),
             out["x_pred"], out["P_pred"], out["x_filt"], out["P_filt"],
             out["innovations"], out["S"], out["K"], loglik, check)
    out["check"] = check[0]
    if bad >= 0:
        return None, None
    return out, loglik


# -- the time-invariant, complete-data filter: covariances until they settle,
#    then every output in one pass (kflib.fast.fast_filter) --

def _riccati(F, H, Q, R, P0, cancel_ratio, rtol, confirm, minwin, P_pred, P_filt, K, S):
    """The covariance recursion of the step-by-step filter (Joseph form; an
    update that shrinks a variance by more than cancel_ratio from the factors
    Phi = F, W = Q of the last filtered covariance) for a time-invariant model
    observed at every step, for at most len(P_pred) steps.

    It stops once every P_pred of the last max(confirm + ks // 4, minwin)
    steps lies within rtol (of the largest entry) of P_pred at step ks.
    Returns (k, ks, bad): the steps computed, that step ks (k - 1 when the
    path has not settled) and -1, or the step whose innovation covariance
    was not positive definite.
    """
    kmax = P_pred.shape[0]
    n = F.shape[0]
    m = H.shape[0]
    P = np.empty((n, n))
    Pu = np.empty((n, n))
    Pp = np.empty((n, n))
    Pnew = np.empty((n, n))
    tmp = np.empty((n, n))
    tmp2 = np.empty((n, n))
    A = np.empty((n, n))
    Kt = np.empty((n, m))
    Sm = np.empty((m, m))
    L = np.empty((m, m))
    rhs = np.empty((m, n))
    HF = np.empty((m, n))
    PHF = np.empty((n, m))
    _mul(H, F, HF, False)
    for i in range(n):
        for j in range(n):
            P[i, j] = P0[i, j]
    cand = 0
    for t in range(kmax):
        for i in range(n):
            for j in range(n):
                Pu[i, j] = P[i, j]
        # P_pred = sym(F P F' + Q)
        _mul(F, P, tmp, False)
        _mul(tmp, F, tmp2, True)
        for i in range(n):
            for j in range(n):
                Pp[i, j] = tmp2[i, j] + Q[i, j]
        for i in range(n):
            for j in range(i + 1, n):
                v = 0.5 * (Pp[i, j] + Pp[j, i])
                Pp[i, j] = v
                Pp[j, i] = v
        for attempt in range(2):
            factored = attempt == 1
            if factored:
                # P_pred H' = F P_u (H F)' + Q H';  S = (H F) P_u (H F)' + H Q H' + R
                for i in range(n):
                    for q in range(m):
                        acc = 0.0
                        for j in range(n):
                            acc += Pu[i, j] * HF[q, j]
                        PHF[i, q] = acc
                for q in range(m):
                    for i in range(n):
                        acc = 0.0
                        for j in range(n):
                            acc += F[i, j] * PHF[j, q]
                        acc2 = 0.0
                        for j in range(n):
                            acc2 += Q[i, j] * H[q, j]
                        rhs[q, i] = acc + acc2
                for i in range(m):
                    for j in range(m):
                        acc = 0.0
                        for q in range(n):
                            acc += HF[i, q] * PHF[q, j]
                        acc2 = 0.0
                        for q in range(n):
                            for p in range(n):
                                acc2 += H[i, q] * Q[q, p] * H[j, p]
                        Sm[i, j] = acc + acc2 + R[i, j]
            else:
                for q in range(m):
                    for i in range(n):
                        acc = 0.0
                        for j in range(n):
                            acc += Pp[i, j] * H[q, j]
                        rhs[q, i] = acc                 # (P H')' = H P
                for i in range(m):
                    for j in range(m):
                        acc = 0.0
                        for q in range(n):
                            acc += H[i, q] * rhs[j, q]
                        Sm[i, j] = acc + R[i, j]
            for i in range(m):
                for j in range(i + 1, m):
                    v = 0.5 * (Sm[i, j] + Sm[j, i])
                    Sm[i, j] = v
                    Sm[j, i] = v
            for i in range(m):
                for j in range(m):
                    S[t, i, j] = Sm[i, j]
            if np.isnan(_chol_solve(Sm, m, rhs, n, L)):
                for i in range(n):
                    for j in range(n):
                        P_pred[t, i, j] = Pp[i, j]
                return t + 1, t, t
            for i in range(n):
                for q in range(m):
                    Kt[i, q] = rhs[q, i]
            for i in range(n):
                for j in range(n):
                    acc = 1.0 if i == j else 0.0
                    for q in range(m):
                        acc -= Kt[i, q] * H[q, j]
                    A[i, j] = acc
            # Joseph form: A P A' + K R K'  (factored: (A F) P_u (A F)' + A Q A' + K R K')
            if factored:
                _mul(A, F, tmp2, False)
                _mul(tmp2, Pu, tmp, False)
                _mul(tmp, tmp2, Pnew, True)
                _mul(A, Q, tmp, False)
                _mul(tmp, A, tmp2, True)
                for i in range(n):
                    for j in range(n):
                        Pnew[i, j] += tmp2[i, j]
            else:
                _mul(A, Pp, tmp, False)
                _mul(tmp, A, Pnew, True)
            for i in range(n):
                for j in range(n):
                    acc = 0.0
                    for p in range(m):
                        for q in range(m):
                            acc += Kt[i, p] * R[p, q] * Kt[j, q]
                    Pnew[i, j] += acc
            if factored:
                break
            cancels = False
            for i in range(n):
                if Pp[i, i] > cancel_ratio * Pnew[i, i]:
                    cancels = True
            if not cancels:
                break
        dev = 0.0
        scale = 0.0
        for i in range(n):
            for j in range(n):
                v = 0.5 * (Pnew[i, j] + Pnew[j, i])
                P[i, j] = v
                P_filt[t, i, j] = v
                P_pred[t, i, j] = Pp[i, j]
                d = abs(Pp[i, j] - P_pred[cand, i, j])
                if not d <= dev:                # NaN counts as a deviation
                    dev = d
                if abs(P_pred[cand, i, j]) > scale:
                    scale = abs(P_pred[cand, i, j])
        for i in range(n):
            for q in range(m):
                K[t, i, q] = Kt[i, q]
        if not dev <= rtol * scale:
            cand = t                            # a new candidate for the settled value
        if t - cand >= max(confirm + cand // 4, minwin):
            return t + 1, cand, -1
    return kmax, kmax - 1, -1


def _riccati_2_1(F, H, Q, R, P0, cancel_ratio, rtol, confirm, minwin, P_pred, P_filt, K, S):
    """:func:`_riccati` for two states and one observation, in scalars: the
    same equations, products and order."""
    kmax = P_pred.shape[0]
    f00, f01, f10, f11 = F[0, 0], F[0, 1], F[1, 0], F[1, 1]
    q00, q01, q10, q11 = Q[0, 0], Q[0, 1], Q[1, 0], Q[1, 1]
    h0, h1 = H[0, 0], H[0, 1]
    rr = R[0, 0]
    # H F, Q H', H Q H' (the factored update with Phi = F, W = Q)
    c0 = h0 * f00 + h1 * f10
    c1 = h0 * f01 + h1 * f11
    wh0 = q00 * h0 + q01 * h1
    wh1 = q10 * h0 + q11 * h1
    hwh = (h0 * q00 * h0 + h0 * q01 * h1) + (h1 * q10 * h0 + h1 * q11 * h1)
    p00, p01, p10, p11 = P0[0, 0], P0[0, 1], P0[1, 0], P0[1, 1]
    cand = 0
    for t in range(kmax):
        u00, u01, u10, u11 = p00, p01, p10, p11
        # P_pred = sym(F P F' + Q)
        m00 = f00 * p00 + f01 * p10
        m01 = f00 * p01 + f01 * p11
        m10 = f10 * p00 + f11 * p10
        m11 = f10 * p01 + f11 * p11
        p00 = m00 * f00 + m01 * f01 + q00
        p01 = m00 * f10 + m01 * f11 + q01
        p10 = m10 * f00 + m11 * f01 + q10
        p11 = m10 * f10 + m11 * f11 + q11
        v = 0.5 * (p01 + p10)
        p01 = v
        p10 = v
        for attempt in range(2):
            factored = attempt == 1
            if factored:
                d0 = u00 * c0 + u01 * c1
                d1 = u10 * c0 + u11 * c1
                r0 = (f00 * d0 + f01 * d1) + wh0
                r1 = (f10 * d0 + f11 * d1) + wh1
                s = (c0 * d0 + c1 * d1) + hwh + rr
            else:
                r0 = p00 * h0 + p01 * h1
                r1 = p10 * h0 + p11 * h1
                s = (h0 * r0 + h1 * r1) + rr
            S[t, 0, 0] = s
            if not s > 0.0:
                P_pred[t, 0, 0], P_pred[t, 0, 1], P_pred[t, 1, 0], P_pred[t, 1, 1] = \
                    p00, p01, p10, p11
                return t + 1, t, t
            k0 = r0 / s
            k1 = r1 / s
            a00 = 1.0 - k0 * h0
            a01 = 0.0 - k0 * h1
            a10 = 0.0 - k1 * h0
            a11 = 1.0 - k1 * h1
            if factored:
                b00 = a00 * f00 + a01 * f10
                b01 = a00 * f01 + a01 * f11
                b10 = a10 * f00 + a11 * f10
                b11 = a10 * f01 + a11 * f11
                m00 = b00 * u00 + b01 * u10
                m01 = b00 * u01 + b01 * u11
                m10 = b10 * u00 + b11 * u10
                m11 = b10 * u01 + b11 * u11
                n00 = m00 * b00 + m01 * b01
                n01 = m00 * b10 + m01 * b11
                n10 = m10 * b00 + m11 * b01
                n11 = m10 * b10 + m11 * b11
                m00 = a00 * q00 + a01 * q10
                m01 = a00 * q01 + a01 * q11
                m10 = a10 * q00 + a11 * q10
                m11 = a10 * q01 + a11 * q11
                n00 += m00 * a00 + m01 * a01
                n01 += m00 * a10 + m01 * a11
                n10 += m10 * a00 + m11 * a01
                n11 += m10 * a10 + m11 * a11
            else:
                m00 = a00 * p00 + a01 * p10
                m01 = a00 * p01 + a01 * p11
                m10 = a10 * p00 + a11 * p10
                m11 = a10 * p01 + a11 * p11
                n00 = m00 * a00 + m01 * a01
                n01 = m00 * a10 + m01 * a11
                n10 = m10 * a00 + m11 * a01
                n11 = m10 * a10 + m11 * a11
            n00 += k0 * rr * k0
            n01 += k0 * rr * k1
            n10 += k1 * rr * k0
            n11 += k1 * rr * k1
            if factored or not (p00 > cancel_ratio * n00 or p11 > cancel_ratio * n11):
                break
        P_pred[t, 0, 0], P_pred[t, 0, 1], P_pred[t, 1, 0], P_pred[t, 1, 1] = p00, p01, p10, p11
        K[t, 0, 0], K[t, 1, 0] = k0, k1
        v = 0.5 * (n01 + n10)
        p00, p01, p10, p11 = n00, v, v, n11
        P_filt[t, 0, 0], P_filt[t, 0, 1], P_filt[t, 1, 0], P_filt[t, 1, 1] = p00, p01, p10, p11
        # the deviation from the candidate settled value (NaN counts as one)
        dev = 0.0
        scale = 0.0
        for i in range(2):
            for j in range(2):
                d = abs(P_pred[t, i, j] - P_pred[cand, i, j])
                if not d <= dev:
                    dev = d
                if abs(P_pred[cand, i, j]) > scale:
                    scale = abs(P_pred[cand, i, j])
        if not dev <= rtol * scale:
            cand = t
        if t - cand >= max(confirm + cand // 4, minwin):
            return t + 1, cand, -1
    return kmax, kmax - 1, -1


def riccati(F, H, Q, R, P0, cancel_ratio, rtol, confirm, minwin, kmax):
    """:func:`_riccati` with its output arrays: (P_pred, P_filt, K, S, ks, bad),
    the arrays cut to the steps computed."""
    n, m = F.shape[0], H.shape[0]
    P_pred, P_filt = np.empty((kmax, n, n)), np.empty((kmax, n, n))
    K, S = np.empty((kmax, n, m)), np.empty((kmax, m, m))
    c = np.ascontiguousarray
    fn = _compiled(_riccati_2_1 if (n, m) == (2, 1) else _riccati)
    k, ks, bad = fn(c(F, dtype=float), c(H, dtype=float), c(Q, dtype=float),
                                     c(R, dtype=float), c(P0, dtype=float), float(cancel_ratio),
                                     float(rtol), int(confirm), int(minwin), P_pred, P_filt, K, S)
    return P_pred[:k], P_filt[:k], K[:k], S[:k], int(ks), int(bad)


def _steady_outputs(F, H, B, A, BA, x0, y, u, Kh, Linv, logdet, ks, x_pred, x_filt, nu,
                    loglik, Pp_h, Pf_h, S_h, Pp, Pf, S, K):
    """The means, innovations and log-likelihood of the filter with gains
    Kh[t] (Kh[ks] from step ks on), every series. Steps before ks are the
    reference's x_pred = F x + B u, nu = y - H x_pred, x_filt = x_pred + K nu;
    from ks on, with the gain K constant, x_filt = A x + K y + BA u with
    A = (I - K H) F and BA = (I - K H) B (the same numbers to round-off; the
    recursion then waits for one product, not three). Returns a number that
    is not finite when some stored value is not (NaN and infinity do not
    leave the recursion: they reach the last state or the log-likelihood).
    The first series' pass also stores the covariance path, Pp, Pf, S, K
    (T, ...): the head's Pp_h, Pf_h, S_h, Kh up to ks, constant after."""
    nb, T, m = y.shape
    n = F.shape[0]
    r = B.shape[1]
    LOG_2PI = np.log(2.0 * np.pi)
    xp = np.empty(n)
    x = np.empty(n)
    v = np.empty(m)
    check = 0.0
    for b in range(nb):
        for i in range(n):
            x[i] = x0[b, i]
        ll = 0.0
        if b == 0:
            for t in range(min(ks, T)):
                for i in range(n):
                    for j in range(n):
                        Pp[t, i, j] = Pp_h[t, i, j]
                        Pf[t, i, j] = Pf_h[t, i, j]
                    for j in range(m):
                        K[t, i, j] = Kh[t, i, j]
                for i in range(m):
                    for j in range(m):
                        S[t, i, j] = S_h[t, i, j]
        for t in range(min(ks, T)):
            # the reference's steps, with this step's gain
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
                    acc += Kh[t, i, j] * v[j]
                x[i] = acc
                x_filt[b, t, i] = acc
            # nu' S^-1 nu = |L^-1 nu|^2 with S = L L'
            quad = 0.0
            for i in range(m):
                acc = 0.0
                for j in range(i + 1):
                    acc += Linv[t, i, j] * v[j]
                quad += acc * acc
            ll += -0.5 * (m * LOG_2PI + logdet[t] + quad)
        if ks < T:
            quad = _steady_tail(F, H, B, A, BA, y, u, Kh[ks], Linv[ks], ks, b, x,
                                x_pred, x_filt, nu)
            if b == 0:
                for t in range(ks, T):
                    for i in range(n):
                        for j in range(n):
                            Pp[t, i, j] = Pp_h[ks, i, j]
                            Pf[t, i, j] = Pf_h[ks, i, j]
                        for j in range(m):
                            K[t, i, j] = Kh[ks, i, j]
                    for i in range(m):
                        for j in range(m):
                            S[t, i, j] = S_h[ks, i, j]
            ll += -0.5 * ((T - ks) * (m * LOG_2PI + logdet[ks]) + quad)
        loglik[b] = ll
        check += ll
        for i in range(n):
            check += x[i]
    return check


def _steady_outputs_2_1(F, H, B, A, BA, x0, y, u, Kh, Linv, logdet, ks, x_pred, x_filt, nu,
                        loglik, Pp_h, Pf_h, S_h, Pp, Pf, S, K):
    """:func:`_steady_outputs` for two states and one observation, in scalars;
    the covariances of the steps before ks are the caller's to store."""
    nb, T, _ = y.shape
    LOG_2PI = np.log(2.0 * np.pi)
    x = np.empty(2)
    check = 0.0
    for b in range(nb):
        x[0] = x0[b, 0]
        x[1] = x0[b, 1]
        ll = _head_2_1(F, H, B, y, u, Kh, Linv, logdet, min(ks, T), b, x, x_pred, x_filt, nu)
        if ks < T:
            quad = _steady_tail_2_1(F, H, B, A, BA, y, u, Kh[ks], Linv[ks, 0, 0], ks, b,
                                    x, x_pred, x_filt, nu, Pp_h[ks], Pf_h[ks], S_h[ks, 0, 0],
                                    Pp, Pf, S, K)
            ll += -0.5 * ((T - ks) * (LOG_2PI + logdet[ks]) + quad)
        loglik[b] = ll
        check += ll + x[0] + x[1]
    return check


def _head_2_1(F, H, B, y, u, Kh, Linv, logdet, ks, b, x, x_pred, x_filt, nu):
    """Steps 0..ks-1 of series b, two states and one observation, the state in
    scalars: x_pred = F x + B u, nu = y - H x_pred, x_filt = x_pred + K_t nu;
    x is updated in place. Returns the log-likelihood of these steps."""
    r = B.shape[1]
    LOG_2PI = np.log(2.0 * np.pi)
    f00, f01, f10, f11 = F[0, 0], F[0, 1], F[1, 0], F[1, 1]
    h0, h1 = H[0, 0], H[0, 1]
    x0, x1 = x[0], x[1]
    ll = 0.0
    for t in range(ks):
        p0 = f00 * x0 + f01 * x1
        p1 = f10 * x0 + f11 * x1
        for j in range(r):
            p0 += B[0, j] * u[b, t, j]
            p1 += B[1, j] * u[b, t, j]
        x_pred[b, t, 0] = p0
        x_pred[b, t, 1] = p1
        v = y[b, t, 0] - (h0 * p0 + h1 * p1)
        nu[b, t, 0] = v
        x0 = p0 + Kh[t, 0, 0] * v
        x1 = p1 + Kh[t, 1, 0] * v
        x_filt[b, t, 0] = x0
        x_filt[b, t, 1] = x1
        z = Linv[t, 0, 0] * v
        ll += -0.5 * (LOG_2PI + logdet[t] + z * z)
    x[0] = x0
    x[1] = x1
    return ll


def _steady_tail(F, H, B, A, BA, y, u, K, Linv, ks, b, x, x_pred, x_filt, nu):
    """Steps ks.. of series b with the constant gain K: x_filt = A x + K y + BA u,
    x_pred = F x + B u, nu = y - H x_pred; x (the state before step ks) is
    updated in place. Returns the sum of nu' S^-1 nu."""
    T, m = y.shape[1], y.shape[2]
    n = F.shape[0]
    r = B.shape[1]
    xn = np.empty(n)
    quad = 0.0
    for t in range(ks, T):
        for i in range(n):
            acc = 0.0
            for j in range(n):
                acc += F[i, j] * x[j]
            for j in range(r):
                acc += B[i, j] * u[b, t, j]
            x_pred[b, t, i] = acc
        for i in range(m):
            acc = 0.0
            for j in range(n):
                acc += H[i, j] * x_pred[b, t, j]
            nu[b, t, i] = y[b, t, i] - acc
        for i in range(m):
            acc = 0.0
            for j in range(i + 1):
                acc += Linv[i, j] * nu[b, t, j]
            quad += acc * acc
        for i in range(n):
            acc = 0.0
            for j in range(m):
                acc += K[i, j] * y[b, t, j]
            for j in range(r):
                acc += BA[i, j] * u[b, t, j]
            for j in range(n):
                acc += A[i, j] * x[j]
            xn[i] = acc
        for i in range(n):
            x[i] = xn[i]
            x_filt[b, t, i] = xn[i]
    return quad


def _steady_tail_2_1(F, H, B, A, BA, y, u, K, linv, ks, b, x, x_pred, x_filt, nu,
                     Pp_s, Pf_s, s_s, Pp, Pf, S, Kout):
    """:func:`_steady_tail` for two states and one observation, the state in
    scalars (registers): the same operations in the same order. For b == 0
    it stores the constant covariances too (in the same pass: the stores
    overlap the recursion's wait)."""
    T = y.shape[1]
    store = b == 0
    pp00, pp01, pp10, pp11 = Pp_s[0, 0], Pp_s[0, 1], Pp_s[1, 0], Pp_s[1, 1]
    pf00, pf01, pf10, pf11 = Pf_s[0, 0], Pf_s[0, 1], Pf_s[1, 0], Pf_s[1, 1]
    r = B.shape[1]
    f00, f01, f10, f11 = F[0, 0], F[0, 1], F[1, 0], F[1, 1]
    a00, a01, a10, a11 = A[0, 0], A[0, 1], A[1, 0], A[1, 1]
    h0, h1 = H[0, 0], H[0, 1]
    k0, k1 = K[0, 0], K[1, 0]
    x0, x1 = x[0], x[1]
    quad = 0.0
    for t in range(ks, T):
        p0 = f00 * x0 + f01 * x1
        p1 = f10 * x0 + f11 * x1
        c0 = k0 * y[b, t, 0]
        c1 = k1 * y[b, t, 0]
        for j in range(r):
            p0 += B[0, j] * u[b, t, j]
            p1 += B[1, j] * u[b, t, j]
            c0 += BA[0, j] * u[b, t, j]
            c1 += BA[1, j] * u[b, t, j]
        x_pred[b, t, 0] = p0
        x_pred[b, t, 1] = p1
        v = y[b, t, 0] - (h0 * p0 + h1 * p1)
        nu[b, t, 0] = v
        z = linv * v
        quad += z * z
        n0 = c0 + a00 * x0 + a01 * x1
        x1 = c1 + a10 * x0 + a11 * x1
        x0 = n0
        x_filt[b, t, 0] = x0
        x_filt[b, t, 1] = x1
        if store:
            Pp[t, 0, 0], Pp[t, 0, 1], Pp[t, 1, 0], Pp[t, 1, 1] = pp00, pp01, pp10, pp11
            Pf[t, 0, 0], Pf[t, 0, 1], Pf[t, 1, 0], Pf[t, 1, 1] = pf00, pf01, pf10, pf11
            S[t, 0, 0] = s_s
            Kout[t, 0, 0], Kout[t, 1, 0] = k0, k1
    x[0] = x0
    x[1] = x1
    return quad


def steady_outputs(F, H, B, x0, y3, u3, Kh, Linv, logdet, ks, x_pred, x_filt, nu,
                   Pp_h, Pf_h, S_h, Pp, Pf, S, K):
    """:func:`_steady_outputs` into the given x_pred, x_filt (nb, T, n),
    innovations (nb, T, m) and covariance paths (T, ...); returns the
    log-likelihoods (nb,) and the check sum."""
    nb, T, m = y3.shape
    n = F.shape[0]
    if B is None or u3 is None:
        B, u3 = np.zeros((n, 0)), np.zeros((nb, T, 0))
    I_KH = np.eye(n) - Kh[ks] @ H
    loglik = np.empty(nb)
    c = np.ascontiguousarray
    if (n, m) == (2, 1):
        fn = _compiled(_steady_outputs_2_1)
        head = min(ks, T)
        for out, part in ((Pp, Pp_h), (Pf, Pf_h), (S, S_h), (K, Kh)):
            out[:head] = part[:head]
    else:
        fn = _compiled(_steady_outputs)
    check = fn(
        c(F, dtype=float), c(H, dtype=float), c(B, dtype=float), I_KH @ F, I_KH @ B,
        c(np.broadcast_to(x0, (nb, n)), dtype=float), c(y3, dtype=float),
        c(u3, dtype=float), c(Kh, dtype=float), c(Linv, dtype=float), c(logdet, dtype=float),
        int(ks), x_pred, x_filt, nu, loglik, c(Pp_h, dtype=float), c(Pf_h, dtype=float),
        c(S_h, dtype=float), Pp, Pf, S, K)
    return loglik, check


# -- the RTS smoother, two states (kflib.smoother.reference_smoother's equations
#    where every P(t+1|t) is well inside float64) --

def _rts_2(F, Q, x0, P0, xf, Pf, xp, Pp, gain_ill, xs, Ps, Pl, G, x0s, P0s):
    """The backward pass for every series: G_j = P_{j-1|j-1} F_j' P_{j|j-1}^{-1}
    (P_{-1|-1} = P0), x_{k|T} = x_{k|k} + G (x_{k+1|T} - x_{k+1|k}),
    P_{k|T} = sym(sym(A P A' + G Q G') + G P_{k+1|T} G') with A = I - G F, and
    P_lag1 = P_{j|T} G_j'. Covariance arrays are (nc, T, 2, 2), nc = 1 when the
    series share them. Returns -1, or the first step j whose P_{j|j-1} has a
    Cholesky pivot below gain_ill of its largest variance (the reference
    smoother then takes another form there: nothing is stored)."""
    nb, T, _ = xf.shape
    nc = Pf.shape[0]
    tvF, tvQ = F.shape[0] > 1, Q.shape[0] > 1
    for c in range(nc):
        # the gains: P_pred X = F P_prev by LU with partial pivoting, G = X'
        for j in range(T):
            a, b_, d = Pp[c, j, 0, 0], Pp[c, j, 0, 1], Pp[c, j, 1, 1]
            cc = Pp[c, j, 1, 0]
            top = a if a > d else d
            # Cholesky pivots of P_pred (as kflib.smoother._gain checks them)
            if not a > gain_ill * top:
                return j
            l10 = cc / np.sqrt(a)
            if not d - l10 * l10 > gain_ill * top:
                return j
            k = j if tvF else 0
            f00, f01, f10, f11 = F[k, 0, 0], F[k, 0, 1], F[k, 1, 0], F[k, 1, 1]
            if j == 0:
                q00, q01, q10, q11 = P0[0, 0], P0[0, 1], P0[1, 0], P0[1, 1]
            else:
                q00, q01 = Pf[c, j - 1, 0, 0], Pf[c, j - 1, 0, 1]
                q10, q11 = Pf[c, j - 1, 1, 0], Pf[c, j - 1, 1, 1]
            r00 = f00 * q00 + f01 * q10
            r01 = f00 * q01 + f01 * q11
            r10 = f10 * q00 + f11 * q10
            r11 = f10 * q01 + f11 * q11
            if abs(cc) > abs(a):              # row swap
                m00, m01, m10, m11 = cc, d, a, b_
                s00, s01, s10, s11 = r10, r11, r00, r01
            else:
                m00, m01, m10, m11 = a, b_, cc, d
                s00, s01, s10, s11 = r00, r01, r10, r11
            f = m10 / m00
            u11 = m11 - f * m01
            s10 = s10 - f * s00
            s11 = s11 - f * s01
            x10 = s10 / u11
            x11 = s11 / u11
            x00 = (s00 - m01 * x10) / m00
            x01 = (s01 - m01 * x11) / m00
            G[c, j, 0, 0], G[c, j, 0, 1] = x00, x10
            G[c, j, 1, 0], G[c, j, 1, 1] = x01, x11
        # the covariances, backwards
        for i in range(2):
            for j in range(2):
                Ps[c, T - 1, i, j] = Pf[c, T - 1, i, j]
        for k in range(T - 2, -2, -1):
            j = k + 1
            g00, g01, g10, g11 = G[c, j, 0, 0], G[c, j, 0, 1], G[c, j, 1, 0], G[c, j, 1, 1]
            kk = j if tvF else 0
            f00, f01, f10, f11 = F[kk, 0, 0], F[kk, 0, 1], F[kk, 1, 0], F[kk, 1, 1]
            kk = j if tvQ else 0
            w00, w01, w10, w11 = Q[kk, 0, 0], Q[kk, 0, 1], Q[kk, 1, 0], Q[kk, 1, 1]
            if k >= 0:
                p00, p01, p10, p11 = Pf[c, k, 0, 0], Pf[c, k, 0, 1], Pf[c, k, 1, 0], Pf[c, k, 1, 1]
            else:
                p00, p01, p10, p11 = P0[0, 0], P0[0, 1], P0[1, 0], P0[1, 1]
            # A = I - G F
            a00 = 1.0 - (g00 * f00 + g01 * f10)
            a01 = 0.0 - (g00 * f01 + g01 * f11)
            a10 = 0.0 - (g10 * f00 + g11 * f10)
            a11 = 1.0 - (g10 * f01 + g11 * f11)
            m00 = a00 * p00 + a01 * p10
            m01 = a00 * p01 + a01 * p11
            m10 = a10 * p00 + a11 * p10
            m11 = a10 * p01 + a11 * p11
            e00 = m00 * a00 + m01 * a01
            e01 = m00 * a10 + m01 * a11
            e10 = m10 * a00 + m11 * a01
            e11 = m10 * a10 + m11 * a11
            m00 = g00 * w00 + g01 * w10
            m01 = g00 * w01 + g01 * w11
            m10 = g10 * w00 + g11 * w10
            m11 = g10 * w01 + g11 * w11
            e00 += m00 * g00 + m01 * g01
            e01 += m00 * g10 + m01 * g11
            e10 += m10 * g00 + m11 * g01
            e11 += m10 * g10 + m11 * g11
            v = 0.5 * (e01 + e10)
            e01, e10 = v, v
            # + G P_{k+1|T} G'
            s00, s01, s10, s11 = Ps[c, j, 0, 0], Ps[c, j, 0, 1], Ps[c, j, 1, 0], Ps[c, j, 1, 1]
            m00 = g00 * s00 + g01 * s10
            m01 = g00 * s01 + g01 * s11
            m10 = g10 * s00 + g11 * s10
            m11 = g10 * s01 + g11 * s11
            e00 += m00 * g00 + m01 * g01
            e01 += m00 * g10 + m01 * g11
            e10 += m10 * g00 + m11 * g01
            e11 += m10 * g10 + m11 * g11
            v = 0.5 * (e01 + e10)
            if k >= 0:
                Ps[c, k, 0, 0], Ps[c, k, 0, 1], Ps[c, k, 1, 0], Ps[c, k, 1, 1] = e00, v, v, e11
            else:
                P0s[c, 0, 0], P0s[c, 0, 1], P0s[c, 1, 0], P0s[c, 1, 1] = e00, v, v, e11
        # Cov(x_j, x_{j-1} | y) = P_{j|T} G_j'
        for j in range(T):
            s00, s01, s10, s11 = Ps[c, j, 0, 0], Ps[c, j, 0, 1], Ps[c, j, 1, 0], Ps[c, j, 1, 1]
            g00, g01, g10, g11 = G[c, j, 0, 0], G[c, j, 0, 1], G[c, j, 1, 0], G[c, j, 1, 1]
            Pl[c, j, 0, 0] = s00 * g00 + s01 * g01
            Pl[c, j, 0, 1] = s00 * g10 + s01 * g11
            Pl[c, j, 1, 0] = s10 * g00 + s11 * g01
            Pl[c, j, 1, 1] = s10 * g10 + s11 * g11
    # the means, every series
    for b in range(nb):
        c = b if nc > 1 else 0
        s0, s1 = xf[b, T - 1, 0], xf[b, T - 1, 1]
        xs[b, T - 1, 0], xs[b, T - 1, 1] = s0, s1
        for k in range(T - 2, -2, -1):
            j = k + 1
            d0 = s0 - xp[b, j, 0]
            d1 = s1 - xp[b, j, 1]
            if k >= 0:
                b0, b1 = xf[b, k, 0], xf[b, k, 1]
            else:
                b0, b1 = x0[0], x0[1]
            s0 = b0 + (G[c, j, 0, 0] * d0 + G[c, j, 0, 1] * d1)
            s1 = b1 + (G[c, j, 1, 0] * d0 + G[c, j, 1, 1] * d1)
            if k >= 0:
                xs[b, k, 0], xs[b, k, 1] = s0, s1
            else:
                x0s[b, 0], x0s[b, 1] = s0, s1
    return -1


def rts_2(model, xf, Pf, xp, Pp, gain_ill):
    """:func:`_rts_2` with its output arrays (xf, xp (nb, T, 2); Pf, Pp (nc, T, 2, 2)):
    (x_smooth, P_smooth, P_lag1, G, x0_smooth, P0_smooth), or None when some
    P(t+1|t) is too ill-conditioned for the plain RTS step."""
    nb, T, n = xf.shape
    nc = Pf.shape[0]

    def stack(A):
        A = np.asarray(A, dtype=float)
        return np.ascontiguousarray(A if A.ndim == 3 else A[None])

    block = np.empty(nb * T * 2 + nb * 2 + nc * (3 * T * 4 + 4))
    sizes = [(nb, T, 2), (nc, T, 2, 2), (nc, T, 2, 2), (nc, T, 2, 2), (nb, 2), (nc, 2, 2)]
    outs, start = [], 0
    for shape in sizes:
        size = math.prod(shape)
        outs.append(block[start:start + size].reshape(shape))
        start += size
    c = np.ascontiguousarray
    bad = _compiled(_rts_2)(stack(model.F), stack(model.Q), c(model.x0, dtype=float),
                            c(model.P0, dtype=float), c(xf, dtype=float), c(Pf, dtype=float),
                            c(xp, dtype=float), c(Pp, dtype=float), float(gain_ill), *outs)
    return None if bad >= 0 else tuple(outs)
