"""Compiled sequential loops (numba): how fast one step can be on this machine.

The benchmark's yardstick for kflib's paths, not part of kflib: the same
filter and smoother written as one compiled loop over time, for n = 2 states
and m = 1 observation, storing what kflib's FilterResult holds (x_pred,
P_pred, x_filt, P_filt, innovation, S, K, log-likelihood).

* :func:`sequential_filter` -- the full covariance recursion (Joseph form),
  NaN = missing (a pure prediction), F and Q optionally time-varying;
* :func:`steady_filter` -- the time-invariant, complete-data filter once the
  gain is constant: only the means (x_filt = A x + K y) and the innovations;
* :func:`sequential_smoother` -- the RTS backward pass over a filter's output.

numba is a benchmark-only dependency (``make bench`` installs it).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LOG_2PI = math.log(2.0 * math.pi)


@njit(cache=True, fastmath=False)
def _filter(F, Q, H, R, x0, P0, y, x_pred, P_pred, x_filt, P_filt, nu, S, K):
    T = y.shape[0]
    tvF, tvQ = F.shape[0] > 1, Q.shape[0] > 1
    h0, h1, r = H[0], H[1], R
    x0_, x1_ = x0[0], x0[1]
    p00, p01, p11 = P0[0, 0], P0[0, 1], P0[1, 1]
    ll = 0.0
    for t in range(T):
        f = F[t] if tvF else F[0]
        q = Q[t] if tvQ else Q[0]
        # predict: x = F x, P = F P F' + Q
        a, b, c, d = f[0, 0], f[0, 1], f[1, 0], f[1, 1]
        xp0 = a * x0_ + b * x1_
        xp1 = c * x0_ + d * x1_
        # F P
        m00 = a * p00 + b * p01
        m01 = a * p01 + b * p11
        m10 = c * p00 + d * p01
        m11 = c * p01 + d * p11
        pp00 = m00 * a + m01 * b + q[0, 0]
        pp01 = m00 * c + m01 * d + q[0, 1]
        pp11 = m10 * c + m11 * d + q[1, 1]
        x_pred[t, 0], x_pred[t, 1] = xp0, xp1
        P_pred[t, 0, 0], P_pred[t, 0, 1], P_pred[t, 1, 0], P_pred[t, 1, 1] = pp00, pp01, pp01, pp11
        # innovation and its variance
        ph0 = pp00 * h0 + pp01 * h1
        ph1 = pp01 * h0 + pp11 * h1
        s = h0 * ph0 + h1 * ph1 + r
        v = y[t] - (h0 * xp0 + h1 * xp1)
        nu[t], S[t] = v, s
        if math.isnan(y[t]):
            x0_, x1_ = xp0, xp1
            p00, p01, p11 = pp00, pp01, pp11
            K[t, 0], K[t, 1] = 0.0, 0.0
        else:
            k0, k1 = ph0 / s, ph1 / s
            K[t, 0], K[t, 1] = k0, k1
            x0_, x1_ = xp0 + k0 * v, xp1 + k1 * v
            # Joseph form (I - K H) P (I - K H)' + K R K'
            a00, a01 = 1.0 - k0 * h0, -k0 * h1
            a10, a11 = -k1 * h0, 1.0 - k1 * h1
            n00 = a00 * pp00 + a01 * pp01
            n01 = a00 * pp01 + a01 * pp11
            n10 = a10 * pp00 + a11 * pp01
            n11 = a10 * pp01 + a11 * pp11
            p00 = n00 * a00 + n01 * a01 + k0 * r * k0
            p01 = n00 * a10 + n01 * a11 + k0 * r * k1
            p11 = n10 * a10 + n11 * a11 + k1 * r * k1
            ll += -0.5 * (LOG_2PI + math.log(s) + v * v / s)
        x_filt[t, 0], x_filt[t, 1] = x0_, x1_
        P_filt[t, 0, 0], P_filt[t, 0, 1], P_filt[t, 1, 0], P_filt[t, 1, 1] = p00, p01, p01, p11
    return ll


def _as_stack(A):
    A = np.asarray(A, dtype=float)
    return np.ascontiguousarray(A if A.ndim == 3 else A[None])


def sequential_filter(model, y):
    """The full filter, one compiled step per observation (n = 2, m = 1)."""
    y = np.ascontiguousarray(np.asarray(y, dtype=float).reshape(-1))
    T = y.shape[0]
    out = dict(x_pred=np.empty((T, 2)), P_pred=np.empty((T, 2, 2)), x_filt=np.empty((T, 2)),
               P_filt=np.empty((T, 2, 2)), nu=np.empty(T), S=np.empty(T), K=np.empty((T, 2)))
    ll = _filter(_as_stack(model.F), _as_stack(model.Q), np.asarray(model.H, float)[0].copy(),
                 float(model.R[0, 0]), model.x0, model.P0, y, out["x_pred"], out["P_pred"],
                 out["x_filt"], out["P_filt"], out["nu"], out["S"], out["K"])
    return out, ll


@njit(cache=True)
def _filter_batch(F, Q, H, R, x0, P0, Y, X):
    nb, T = Y.shape
    x_pred, P_pred = np.empty((T, 2)), np.empty((T, 2, 2))
    P_filt = np.empty((T, 2, 2))
    nu, S, K = np.empty(T), np.empty(T), np.empty((T, 2))
    ll = np.empty(nb)
    for i in range(nb):
        ll[i] = _filter(F, Q, H, R, x0, P0, Y[i], x_pred, P_pred, X[i], P_filt, nu, S, K)
    return ll


def sequential_filter_batch(model, Y):
    """The full filter for each series of a batch (Y: (nb, T) or (nb, T, 1));
    returns the filtered means (nb, T, 2) and the log-likelihoods."""
    Y = np.ascontiguousarray(np.asarray(Y, dtype=float).reshape(Y.shape[0], -1))
    X = np.empty(Y.shape + (2,))
    ll = _filter_batch(_as_stack(model.F), _as_stack(model.Q),
                       np.asarray(model.H, float)[0].copy(), float(model.R[0, 0]),
                       model.x0, model.P0, Y, X)
    return X, ll


@njit(cache=True)
def _steady(A, K, F, H, x_init, y, x_pred, x_filt, nu):
    T = y.shape[0]
    a00, a01, a10, a11 = A[0, 0], A[0, 1], A[1, 0], A[1, 1]
    f00, f01, f10, f11 = F[0, 0], F[0, 1], F[1, 0], F[1, 1]
    k0, k1, h0, h1 = K[0], K[1], H[0], H[1]
    x0, x1 = x_init[0], x_init[1]
    for t in range(T):
        xp0 = f00 * x0 + f01 * x1
        xp1 = f10 * x0 + f11 * x1
        x_pred[t, 0], x_pred[t, 1] = xp0, xp1
        nu[t] = y[t] - (h0 * xp0 + h1 * xp1)
        # x_filt = (I - K H) F x + K y
        x0n = a00 * x0 + a01 * x1 + k0 * y[t]
        x1 = a10 * x0 + a11 * x1 + k1 * y[t]
        x0 = x0n
        x_filt[t, 0], x_filt[t, 1] = x0, x1


def steady_filter(A, K, F, H, x_init, y):
    """The constant-gain recursion of the means (time-invariant, complete data)."""
    y = np.ascontiguousarray(np.asarray(y, dtype=float).reshape(-1))
    T = y.shape[0]
    x_pred, x_filt, nu = np.empty((T, 2)), np.empty((T, 2)), np.empty(T)
    _steady(np.ascontiguousarray(A), np.ascontiguousarray(K).reshape(-1),
            np.ascontiguousarray(F), np.ascontiguousarray(H).reshape(-1),
            np.asarray(x_init, float), y, x_pred, x_filt, nu)
    return x_pred, x_filt, nu


@njit(cache=True)
def _smoother(F, x_pred, P_pred, x_filt, P_filt, x_s, P_s):
    T = x_filt.shape[0]
    tvF = F.shape[0] > 1
    x_s[T - 1] = x_filt[T - 1]
    P_s[T - 1] = P_filt[T - 1]
    for k in range(T - 2, -1, -1):
        f = F[k + 1] if tvF else F[0]
        pp = P_pred[k + 1]
        det = pp[0, 0] * pp[1, 1] - pp[0, 1] * pp[1, 0]
        i00, i01, i11 = pp[1, 1] / det, -pp[0, 1] / det, pp[0, 0] / det
        pf = P_filt[k]
        # P_f F'
        c00 = pf[0, 0] * f[0, 0] + pf[0, 1] * f[0, 1]
        c01 = pf[0, 0] * f[1, 0] + pf[0, 1] * f[1, 1]
        c10 = pf[1, 0] * f[0, 0] + pf[1, 1] * f[0, 1]
        c11 = pf[1, 0] * f[1, 0] + pf[1, 1] * f[1, 1]
        # G = P_f F' P_pred^{-1}
        g00 = c00 * i00 + c01 * i01
        g01 = c00 * i01 + c01 * i11
        g10 = c10 * i00 + c11 * i01
        g11 = c10 * i01 + c11 * i11
        d0 = x_s[k + 1, 0] - x_pred[k + 1, 0]
        d1 = x_s[k + 1, 1] - x_pred[k + 1, 1]
        x_s[k, 0] = x_filt[k, 0] + g00 * d0 + g01 * d1
        x_s[k, 1] = x_filt[k, 1] + g10 * d0 + g11 * d1
        # P_s = P_f + G (P_s' - P_pred) G'
        e00 = P_s[k + 1, 0, 0] - pp[0, 0]
        e01 = P_s[k + 1, 0, 1] - pp[0, 1]
        e11 = P_s[k + 1, 1, 1] - pp[1, 1]
        m00 = g00 * e00 + g01 * e01
        m01 = g00 * e01 + g01 * e11
        m10 = g10 * e00 + g11 * e01
        m11 = g10 * e01 + g11 * e11
        s00 = pf[0, 0] + m00 * g00 + m01 * g01
        s01 = pf[0, 1] + m00 * g10 + m01 * g11
        s11 = pf[1, 1] + m10 * g10 + m11 * g11
        P_s[k, 0, 0], P_s[k, 0, 1], P_s[k, 1, 0], P_s[k, 1, 1] = s00, s01, s01, s11


def sequential_smoother(model, filt):
    """The RTS backward pass over :func:`sequential_filter`'s output."""
    T = filt["x_filt"].shape[0]
    x_s, P_s = np.empty((T, 2)), np.empty((T, 2, 2))
    _smoother(_as_stack(model.F), filt["x_pred"], filt["P_pred"], filt["x_filt"],
              filt["P_filt"], x_s, P_s)
    return x_s, P_s
