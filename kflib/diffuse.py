r"""A start at time 1: known moments ``a1, P1`` or an exact diffuse start.

With ``a1, P1`` (statsmodels' ``initialization='known'``) the filter starts
with ``x_{1|0} = a1``, ``P_{1|0} = P1`` and goes on as usual.

With a diffuse start the covariance of the state is, for the first few steps,

.. math::

    P_t = \kappa P_{\infty,t} + P_{*,t} + O(\kappa^{-1}), \qquad \kappa \to \infty,

with ``P_inf,1 = diag(diffuse)``. Durbin and Koopman's exact initial Kalman
filter (Koopman 1997; Durbin and Koopman 2012, ch. 5) carries ``P_inf`` and
``P_star`` separately and takes the limit analytically; no large number
stands in for kappa. Each step is processed one observed component at a
time (the univariate treatment of D&K 2012, sec. 6.4, as in KFAS and
statsmodels; a non-diagonal ``R`` is first made diagonal by ``R = L D L'``,
``y -> L^{-1} y``). For component i with row z of H and noise variance
sigma^2,

.. math::

    F_\infty = z P_\infty z', \quad F_* = z P_* z' + \sigma^2, \quad
    M_\infty = P_\infty z', \quad M_* = P_* z', \quad v = y_i - z a.

If :math:`F_\infty > 0`, with :math:`K_0 = M_\infty / F_\infty`:

.. math::

    a &\leftarrow a + K_0 v, \qquad
    P_\infty \leftarrow P_\infty - K_0 M_\infty', \\
    P_* &\leftarrow P_* + K_0 K_0' F_* - K_0 M_*' - M_* K_0', \qquad
    \log L \mathrel{+}= -\tfrac12 (\log 2\pi + \log F_\infty);

otherwise the ordinary update with :math:`K = M_* / F_*`. Between steps
``P_inf <- F P_inf F'``. Once ``P_inf`` is zero (after ``n_diffuse`` steps)
the ordinary filter takes over. The log-likelihood is the diffuse
log-likelihood of D&K 2012 sec. 7.2.2 (statsmodels' ``llf``; KFAS leaves out
the ``log 2 pi`` terms of the components with :math:`F_\infty > 0`).

The exact initial smoother (D&K 2012 sec. 5.3, univariate form) runs the
recursions for :math:`r^{(0)}, r^{(1)}, N^{(0)}, N^{(1)}, N^{(2)}` backwards
through the diffuse steps and gives

.. math::

    \hat x_t &= a_t + P_{*,t} r^{(0)}_{t-1} + P_{\infty,t} r^{(1)}_{t-1}, \\
    V_t &= P_* - P_* N^{(0)} P_* - (P_\infty N^{(1)} P_*)' - P_\infty N^{(1)} P_*
          - P_\infty N^{(2)} P_\infty;

after the diffuse steps it is the RTS smoother.

Course: chapters 5 and 8 (the Nile and the structural models' diffuse start);
tests: test_diffuse.py, test_external_references.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._inputs import as_controls, as_observations, at, check_model
from .filter import (LOG_2PI, FilterResult, FilterSteps, _sym, _T, gaussian_update,
                     mask_missing, predict_step)
from .smoother import SmootherResult, check_filter_result

__all__ = ["DiffuseFilterResult", "exact_filter", "exact_smoother", "DIFFUSE_RTOL"]

# P_inf (and F_inf) count as zero below this fraction of the largest P_inf so far.
DIFFUSE_RTOL = 1e-10


@dataclass(frozen=True, eq=False)
class DiffuseFilterResult(FilterResult):
    """A filter's result for a model with an exact diffuse start.

    Besides the fields of :class:`kflib.FilterResult` (where ``P_pred``,
    ``P_filt`` and ``S`` are the finite parts ``P_star``, ``F_star`` during
    the diffuse steps):

    Attributes
    ----------
    P_inf_pred : (..., T, n, n) array
        Diffuse part of the predicted covariance; zero after the diffuse steps.
    P_inf_filt : (..., T, n, n) array
        Diffuse part of the filtered covariance.
    F_inf : (..., T, m, m) array
        Diffuse part of the innovation covariance, ``H P_inf_pred H'``.
    n_diffuse : int or (batch,) int array
        Number of diffuse steps d (``P_inf_pred[t] != 0`` exactly for t < d).
    """

    P_inf_pred: np.ndarray
    P_inf_filt: np.ndarray
    F_inf: np.ndarray
    n_diffuse: int | np.ndarray


# -- the univariate treatment of one time step ------------------------------------

def _ldl(R: np.ndarray):
    """``R = L D L'`` for a stack (nb, m, m) of PSD matrices, L unit lower
    triangular; zero pivots (a singular R) give zero columns below them."""
    nb, m, _ = R.shape
    L = np.zeros_like(R)
    D = np.zeros((nb, m))
    scale = np.maximum(np.abs(np.diagonal(R, axis1=1, axis2=2)).max(-1), 1e-300)
    for j in range(m):
        L[:, j, j] = 1.0
        D[:, j] = R[:, j, j] - (L[:, j, :j] ** 2 * D[:, :j]).sum(-1)
        ok = D[:, j] > 1e-14 * scale
        D[:, j] = np.where(ok, D[:, j], 0.0)
        if j + 1 < m:
            num = R[:, j + 1:, j] - (L[:, j + 1:, :j] * (L[:, j, :j] * D[:, :j])[:, None]).sum(-1)
            L[:, j + 1:, j] = np.where(ok[:, None], num / np.where(ok, D[:, j], 1.0)[:, None], 0.0)
    return L, D


def _components(H, R, nu, obs):
    """The step's observed components made uncorrelated.

    Returns Z (nb, m, n), v (nb, m), sigma^2 (nb, m) and Linv (nb, m, m) with
    v = Linv nu; missing components have zero rows of Z and v = 0.
    """
    nb, m = nu.shape
    Hm, Rm, num = mask_missing(H, R, nu, obs)
    Hm = np.broadcast_to(Hm, (nb,) + Hm.shape[-2:])
    Rm = np.broadcast_to(Rm, (nb, m, m))
    off = Rm - np.diagonal(Rm, axis1=1, axis2=2)[..., None] * np.eye(m)
    if not off.any():
        return Hm, num, np.diagonal(Rm, axis1=1, axis2=2).copy(), None
    L, D = _ldl(Rm)
    Linv = np.linalg.inv(L)                              # unit triangular, well conditioned
    return Linv @ Hm, (Linv @ num[..., None])[..., 0], D, Linv


class _Component:
    """What one univariate step computed (for the smoother)."""
    __slots__ = ("z", "v", "Fs", "Fi", "Ms", "Mi", "diff", "std")


def _univariate_step(x, P, Pi, nu, H, R, obs, scale, record=False):
    """One time step of the exact initial filter, component by component.

    x (nb, n), P = P_star (nb, n, n), Pi = P_inf (nb, n, n), nu = y - H x (nb, m),
    scale (nb,) the size of P_inf that counts as "not zero".
    Returns x, P, Pi, K (nb, n, m; the gain applied to nu), loglik (nb,) and,
    with ``record``, the list of per-component records.
    """
    nb, n = x.shape
    m = nu.shape[-1]
    Z, v, sig2, Linv = _components(H, R, nu, obs)
    x0 = x
    G = np.zeros((nb, n, m))                 # x - x0 = G v
    ll = np.zeros(nb)
    eye_m = np.eye(m)
    recs = []
    for i in range(m):
        z = Z[:, i]                                             # (nb, n)
        zz = (z * z).sum(-1)
        vi = v[:, i] - (z * (x - x0)).sum(-1)
        Ms = (P @ z[..., None])[..., 0]
        Mi = (Pi @ z[..., None])[..., 0]
        Fs = (z * Ms).sum(-1) + sig2[:, i]
        Fi = (z * Mi).sum(-1)
        diff = obs[:, i] & (Fi > DIFFUSE_RTOL * scale * zz)
        Pmax = np.abs(P).max(axis=(-1, -2))
        std = obs[:, i] & ~diff & (Fs > 1e-14 * (zz * Pmax + sig2[:, i])) & (Fs > 0)
        Fi_s = np.where(diff, Fi, 1.0)
        Fs_s = np.where(std, Fs, 1.0)
        # diffuse: K0 = M_inf / F_inf;  standard: K = M_* / F_*
        k = np.where(diff[:, None], Mi / Fi_s[:, None],
                     np.where(std[:, None], Ms / Fs_s[:, None], 0.0))
        x = x + k * vi[:, None]
        G = G + k[:, :, None] * (eye_m[i] - (z[:, :, None] * G).sum(1))[:, None, :]
        kk = k[:, :, None] * k[:, None, :]
        kMs = k[:, :, None] * Ms[:, None, :]
        # P_* <- P_* + K0 K0' F_* - K0 M_*' - M_* K0'  |  P_* <- P_* - K M_*'
        P_d = P + kk * Fs[:, None, None] - kMs - _T(kMs)
        P_s = P - kMs
        P = _sym(np.where(diff[:, None, None], P_d, np.where(std[:, None, None], P_s, P)))
        # P_inf <- P_inf - K0 M_inf'
        Pi = np.where(diff[:, None, None], _sym(Pi - k[:, :, None] * Mi[:, None, :]), Pi)
        ll = ll + np.where(diff, -0.5 * (LOG_2PI + np.log(Fi_s)), 0.0)
        ll = ll + np.where(std, -0.5 * (LOG_2PI + np.log(Fs_s) + vi ** 2 / Fs_s), 0.0)
        if record:
            rec = _Component()
            rec.z, rec.v, rec.Fs, rec.Fi, rec.Ms, rec.Mi = z, vi, Fs, Fi, Ms, Mi
            rec.diff, rec.std = diff, std
            recs.append(rec)
    K = G if Linv is None else G @ Linv
    return x, P, Pi, K, ll, recs


def _innovation(model, t, x, P, y_t):
    """nu = y - H x - d and S = H P H' + R at array index t (no prediction)."""
    H = at(model.H, t)
    nu = y_t - x @ H.T
    if model.d is not None:
        nu = nu - at(model.d, t, 1)
    S = _sym(H @ P @ H.T + at(model.R, t))
    return nu, S


def exact_filter(model, y, u=None) -> FilterResult:
    """The Kalman filter for a model started at time 1 (``a1, P1`` or diffuse).

    :func:`kflib.kalman_filter` calls this for such a model; the arguments and
    the result are the same (a :class:`DiffuseFilterResult` when the model has
    a diffuse part). With ``a1, P1``, ``x_pred[0] = a1`` and ``P_pred[0] = P1``.
    """
    model = check_model(model)
    if model.x0 is not None:
        raise ValueError("exact_filter is for a model started at time 1 (a1, P1 or "
                         "diffuse); this one has x0, P0: use kflib.kalman_filter")
    y, batched = as_observations(model, y)
    nb, T, m = y.shape
    n = model.n
    u = as_controls(model, u, nb, T, batched)
    out = FilterSteps(nb, T, n, m)
    observed = ~np.isnan(y)
    x = np.broadcast_to(model.a1, (nb, n))
    P = np.broadcast_to(model.P1, (nb, n, n))
    diffuse = model.diffuse is not None
    if diffuse:
        Pi = np.broadcast_to(model.P_inf, (nb, n, n))
        Pinf_pred = np.zeros((nb, T, n, n))
        Pinf_filt = np.zeros((nb, T, n, n))
        F_inf = np.zeros((nb, T, m, m))
        n_diffuse = np.zeros(nb, dtype=int)
        scale = np.zeros(nb)
    active = np.zeros(nb, dtype=bool)

    for t in range(T):
        H, R = at(model.H, t), at(model.R, t)
        u_t = None if u is None else u[:, t]
        if t == 0:
            nu, S = _innovation(model, 0, x, P, y[:, 0])
        else:
            x, P, nu, S = predict_step(model, t, x, P, y[:, t], u_t)
        out.predicted(t, x, P, nu, S)
        obs = observed[:, t]
        if diffuse:
            if t > 0 and active.any():
                F = at(model.F, t)
                Pi = _sym(F @ Pi @ F.T)                   # P_inf <- F P_inf F'
            size = np.abs(Pi).max(axis=(-1, -2))
            scale = np.maximum(scale, size)
            active = size > DIFFUSE_RTOL * scale
            Pi = np.where(active[:, None, None], Pi, 0.0)
            if active.any():
                n_diffuse[active] = t + 1
                Pinf_pred[:, t] = Pi
                F_inf[:, t] = _sym(H @ Pi @ H.T)
                x, P, Pi, K, ll = _univariate_step(x, P, Pi, nu, H, R, obs, scale)[:5]
                Pinf_filt[:, t] = Pi
                out.filtered(t, x, P, K)
                out.loglik += ll
                continue
            diffuse = False                               # the ordinary filter from here on
        if not obs.any():
            out.filtered(t, x, P)
            continue
        x, P, K, ll = gaussian_update(x, P, nu, H, R, obs, t)
        out.filtered(t, x, P, K)
        out.loglik += ll

    base = out.result(batched)
    if model.diffuse is None:
        return base
    fields = {k: getattr(base, k) for k in ("x_pred", "P_pred", "x_filt", "P_filt",
                                            "innovations", "S", "K", "loglik")}
    extra = (Pinf_pred, Pinf_filt, F_inf)
    if not batched:
        extra = tuple(a[0] for a in extra)
        nd = int(n_diffuse[0])
    else:
        nd = n_diffuse
    return DiffuseFilterResult(**fields, P_inf_pred=extra[0], P_inf_filt=extra[1],
                               F_inf=extra[2], n_diffuse=nd)


# -- smoothing --------------------------------------------------------------------

def backward_rN(model, xp, Pp, innov, stop: int = 0):
    r"""The backward recursion for :math:`r` and :math:`N` over steps T-1 .. stop.

    ``r[t]`` and ``N[t]`` are such that ``x_{t|T} = x_pred[t] + P_pred[t] r[t]``
    and ``P_{t|T} = P_pred[t] - P_pred[t] N[t] P_pred[t]`` (D&K's
    :math:`r_{t-1}, N_{t-1}` for the state at 1-based time t). With
    ``u_t = S^{-1} nu_t``, ``K_t = P_pred[t] H' S^{-1}`` (observed components):

    .. math::

        \tilde r_t = F_{t+1}' r_{t+1}, \quad r_t = H' u_t + (I - K_t H)' \tilde r_t, \\
        \tilde N_t = F_{t+1}' N_{t+1} F_{t+1}, \quad
        N_t = H' S^{-1} H + (I - K_t H)' \tilde N_t (I - K_t H).

    Arrays have a leading batch axis. Returns a dict with ``r, N`` (values at
    ``x_pred[t]``), ``r_next, N_next`` (the tilde quantities), ``u``, ``Sinv``
    (the inverse of the observed block, zero elsewhere), ``K`` for t >= stop.
    """
    nb, T, n = xp.shape
    m = innov.shape[-1]
    out = {"r": np.zeros((nb, T, n)), "N": np.zeros((nb, T, n, n)),
           "r_next": np.zeros((nb, T, n)), "N_next": np.zeros((nb, T, n, n)),
           "u": np.zeros((nb, T, m)), "Sinv": np.zeros((nb, T, m, m)),
           "K": np.zeros((nb, T, n, m))}
    r = np.zeros((nb, n))
    N = np.zeros((nb, n, n))
    eye = np.eye(n)
    for t in range(T - 1, stop - 1, -1):
        if t < T - 1:
            F = at(model.F, t + 1)
            r = r @ F                                   # F' r
            N = _sym(F.T @ N @ F)
        out["r_next"][:, t], out["N_next"][:, t] = r, N
        obs = ~np.isnan(innov[:, t])
        if not obs.any():
            out["r"][:, t], out["N"][:, t] = r, N
            continue
        H, R = at(model.H, t), at(model.R, t)
        Hm, Rm, num = mask_missing(H, R, innov[:, t], obs)
        Hm = np.broadcast_to(Hm, (nb, m, n))
        P = Pp[:, t]
        S = _sym(Hm @ P @ _T(Hm) + Rm)
        Sinv = np.linalg.inv(S)
        pair = obs[:, :, None] & obs[:, None, :]
        Sinv = _sym(np.where(pair, Sinv, 0.0))
        u = (Sinv @ num[..., None])[..., 0]
        K = P @ _T(Hm) @ Sinv
        A = eye - K @ Hm                                 # I - K H
        r = (u[:, None, :] @ Hm)[:, 0] + (r[:, None, :] @ A)[:, 0]
        N = _sym(_T(Hm) @ Sinv @ Hm + _T(A) @ N @ A)
        out["r"][:, t], out["N"][:, t] = r, N
        out["u"][:, t], out["Sinv"][:, t], out["K"][:, t] = u, Sinv, K
    return out


def _diffuse_backward(recs, r0, r1, N0, N1, N2):
    """The exact initial smoother's recursions back through one time step."""
    n = r0.shape[-1]
    eye = np.eye(n)
    for rec in reversed(recs):
        z, v, Fs, Fi, Ms, Mi = rec.z, rec.v, rec.Fs, rec.Fi, rec.Ms, rec.Mi
        d, s = rec.diff, rec.std
        zzT = z[:, :, None] * z[:, None, :]
        # diffuse component: K0 = M_inf/F_inf, K1 = M_*/F_inf - M_inf F_*/F_inf^2,
        # L0 = I - K0 z', L1 = -K1 z'
        Fi_s = np.where(d, Fi, 1.0)
        K0 = Mi / Fi_s[:, None]
        K1 = Ms / Fi_s[:, None] - Mi * (Fs / Fi_s ** 2)[:, None]
        L0 = eye - K0[:, :, None] * z[:, None, :]
        L1 = -K1[:, :, None] * z[:, None, :]
        L0T, L1T = _T(L0), _T(L1)
        F1, F2 = 1.0 / Fi_s, -Fs / Fi_s ** 2
        r1_d = z * (v * F1)[:, None] + (L0T @ r1[..., None] + L1T @ r0[..., None])[..., 0]
        r0_d = (L0T @ r0[..., None])[..., 0]
        N2_d = (zzT * F2[:, None, None] + L0T @ N2 @ L0 + L0T @ N1 @ L1
                + L1T @ _T(N1) @ L0 + L1T @ N0 @ L1)
        N1_d = zzT * F1[:, None, None] + L0T @ N1 @ L0 + L1T @ N0 @ L0
        N0_d = L0T @ N0 @ L0
        # ordinary component: K = M_*/F_*, L = I - K z'
        Fs_s = np.where(s, Fs, 1.0)
        Ls = eye - (Ms / Fs_s[:, None])[:, :, None] * z[:, None, :]
        r0_s = z * (v / Fs_s)[:, None] + (_T(Ls) @ r0[..., None])[..., 0]
        N0_s = zzT / Fs_s[:, None, None] + _T(Ls) @ N0 @ Ls
        N1_s = N1 @ Ls
        dm, sm = d[:, None], s[:, None]
        dM, sM = d[:, None, None], s[:, None, None]
        r0 = np.where(dm, r0_d, np.where(sm, r0_s, r0))
        r1 = np.where(dm, r1_d, r1)
        N0 = np.where(dM, _sym(N0_d), np.where(sM, _sym(N0_s), N0))
        N1 = np.where(dM, N1_d, np.where(sM, N1_s, N1))
        N2 = np.where(dM, _sym(N2_d), N2)
    return r0, r1, N0, N1, N2


def exact_smoother(model, filt: FilterResult) -> SmootherResult:
    """The smoother for a model started at time 1 (``a1, P1`` or diffuse).

    :func:`kflib.rts_smoother` calls this for such a model. There is no state
    at time 0: ``x0_smooth`` and ``P0_smooth`` are None, and ``G[0]`` and
    ``P_lag1[0]`` are NaN. During the diffuse steps the smoothed means and
    covariances come from the exact initial smoother; ``G`` and ``P_lag1``
    are NaN there (and ``P_lag1`` at the first step after them).
    """
    out, batched, _ = _exact_smooth(model, filt)
    if not batched:
        out = tuple(a[0] for a in out)
    return SmootherResult(*out, x0_smooth=None, P0_smooth=None)


def _exact_smooth(model, filt):
    """exact_smoother's work: ((xs, Ps, P_lag1, G) with a batch axis, batched,
    dict of r, N (D&K's r^(0), N^(0)) and, with a diffuse part, r1, N1, N2)."""
    model = check_model(model)
    check_filter_result(model, filt)
    if model.x0 is not None:
        raise ValueError("exact_smoother is for a model started at time 1 (a1, P1 or "
                         "diffuse); this one has x0, P0: use kflib.rts_smoother")
    batched = filt.x_filt.ndim == 3
    arrays = [filt.x_filt, filt.P_filt, filt.x_pred, filt.P_pred, filt.innovations]
    is_diffuse = isinstance(filt, DiffuseFilterResult)
    if model.diffuse is not None and not is_diffuse:
        raise TypeError("the model has a diffuse start but filt has no diffuse part; "
                        "filter with kflib.kalman_filter on this model")
    if is_diffuse:
        arrays += [filt.P_inf_pred, filt.P_inf_filt]
    if not batched:
        arrays = [a[None] for a in arrays]
    xf, Pf, xp, Pp, innov = arrays[:5]
    nb, T, n = xf.shape
    d = int(np.max(filt.n_diffuse)) if is_diffuse else 0
    if is_diffuse:
        Pi_pred, Pi_filt = arrays[5:]
        if d == T and np.abs(Pi_filt[:, -1]).max() > 0:
            raise ValueError(
                "the data do not determine every diffuse state: the diffuse part P_inf "
                "of the covariance is still nonzero after the last observation, so "
                "some smoothed states have infinite variance")

    xs = np.full((nb, T, n), np.nan)
    Ps = np.full((nb, T, n, n), np.nan)
    G_all = np.full((nb, T, n, n), np.nan)
    P_lag1 = np.full((nb, T, n, n), np.nan)
    # The ordinary steps d .. T-1 by the r, N form of the smoother (D&K 2012
    # sec. 4.4), which needs no inverse of P_pred: x_s = x_pred + P_pred r,
    # P_s = P_pred - P_pred N P_pred.
    rn = backward_rN(model, xp, Pp, innov, stop=d) if d < T else None
    rN = {"r": np.zeros((nb, T, n)), "N": np.zeros((nb, T, n, n))}
    if rn is not None:
        rN["r"][:, d:], rN["N"][:, d:] = rn["r"][:, d:], rn["N"][:, d:]
    if is_diffuse:
        rN.update(r1=np.zeros((nb, T, n)), N1=np.zeros((nb, T, n, n)),
                  N2=np.zeros((nb, T, n, n)))
    if d < T:
        P, r, N = Pp[:, d:], rn["r"][:, d:], rn["N"][:, d:]
        xs[:, d:] = xp[:, d:] + (P @ r[..., None])[..., 0]
        Ps[:, d:] = _sym(P - P @ N @ P)
        eye = np.eye(n)
        for k in range(d, T - 1):
            F = at(model.F, k + 1)
            # Cov(x_{k+1}, x_k | y) = (I - P_{k+1} N_{k+1}) L_k P_k, L_k = F (I - K_k H_k)
            L = F @ (eye - rn["K"][:, k] @ at(model.H, k))
            P_lag1[:, k + 1] = (eye - Pp[:, k + 1] @ rn["N"][:, k + 1]) @ L @ Pp[:, k]
            # the RTS gain, reported for reference (the moments above do not use it)
            G_all[:, k + 1] = Pf[:, k] @ F.T @ np.linalg.pinv(Pp[:, k + 1], hermitian=True)
    if d > 0:
        # r, N at step d from the ordinary backward recursion, then the exact
        # initial smoother back through the diffuse steps
        if d < T:
            r0, N0 = rn["r"][:, d], rn["N"][:, d]
        else:
            r0, N0 = np.zeros((nb, n)), np.zeros((nb, n, n))
        r1, N1, N2 = np.zeros((nb, n)), np.zeros((nb, n, n)), np.zeros((nb, n, n))
        scale = np.maximum.accumulate(np.abs(Pi_pred).max(axis=(-1, -2)), axis=1)
        for k in range(d - 1, -1, -1):
            if k + 1 < T:
                # from x_pred[k + 1] back to the end of step k: r <- F' r, N <- F' N F
                F = at(model.F, k + 1)
                r0, r1 = r0 @ F, r1 @ F
                N0, N1, N2 = _sym(F.T @ N0 @ F), F.T @ N1 @ F, _sym(F.T @ N2 @ F)
            obs = ~np.isnan(innov[:, k])
            recs = _univariate_step(xp[:, k], Pp[:, k], Pi_pred[:, k], innov[:, k],
                                    at(model.H, k), at(model.R, k), obs, scale[:, k],
                                    record=True)[5]
            r0, r1, N0, N1, N2 = _diffuse_backward(recs, r0, r1, N0, N1, N2)
            rN["r"][:, k], rN["N"][:, k] = r0, N0
            rN["r1"][:, k], rN["N1"][:, k], rN["N2"][:, k] = r1, N1, N2
            P, Pi = Pp[:, k], Pi_pred[:, k]
            xs[:, k] = xp[:, k] + (P @ r0[..., None] + Pi @ r1[..., None])[..., 0]
            PiN1P = Pi @ N1 @ P
            Ps[:, k] = _sym(P - P @ N0 @ P - _T(PiN1P) - PiN1P - Pi @ N2 @ Pi)
    return (xs, Ps, P_lag1, G_all), batched, rN
