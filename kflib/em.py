"""Maximum-likelihood parameters by expectation-maximisation (Shumway & Stoffer, 1982).

Course: chapter 5 (book/05-em.md); exercise ps05-em; tests: test_em.py,
test_em_m_step.py.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ._checks import check_positive_int, check_real, freeze_arrays
from ._inputs import as_controls, as_observations, at, check_model
from .fast import fast_filter, fast_smoother
from .filter import _sym, _T

__all__ = ["em", "EMResult", "ConvergenceWarning"]

LEARNABLE = ("F", "H", "Q", "R", "x0", "P0")


class ConvergenceWarning(UserWarning):
    """EM stopped at ``n_iter`` before the log-likelihood settled."""


@dataclass(frozen=True, eq=False)
class EMResult:
    """Outcome of :func:`em`.

    Attributes
    ----------
    model : LinearGaussianSSM
        The model after the last M-step.
    loglik_history : (n_iter + 1,) array
        Log-likelihood of the starting model and of the model after each M-step.
    converged : bool
        Whether the relative change fell below ``tol``.
    n_iter : int
        Number of M-steps taken.
    """

    model: object
    loglik_history: np.ndarray
    converged: bool
    n_iter: int

    def __post_init__(self):
        freeze_arrays(self)

    @property
    def loglik(self) -> float:
        """Log-likelihood of the final model."""
        return float(self.loglik_history[-1])


def _second_moments_obs(model, y, xs, Ps):
    """Sum over series and time of E[(y_t - H x_t)(y_t - H x_t)' | y].

    Missing components: the observation noise of a missing component depends on
    the data only through the observed components' noise, so
    E[v_m | y] = R_mo R_oo^{-1} E[v_o | y] and the conditional covariance adds
    R_mm - R_mo R_oo^{-1} R_om.
    """
    m = model.m
    nb, T, _ = y.shape
    observed = ~np.isnan(y)
    if model.H.ndim == 2 and observed.all():
        # everything observed, H constant: sum of e e' + H P H' in one go
        H = model.H
        e = (y - xs @ H.T).reshape(-1, m)
        return e.T @ e + H @ Ps.reshape(-1, *Ps.shape[-2:]).sum(0) @ H.T
    total = np.zeros((m, m))
    for t in range(T):
        H, R = at(model.H, t), at(model.R, t)
        Hx = xs[:, t] @ H.T                                     # (nb, m)
        HPH = H @ Ps[:, t] @ H.T                                # (nb, m, m)
        obs_t = observed[:, t]
        full = obs_t.all(axis=1)
        if full.any():
            e = y[full, t] - Hx[full]
            total += (e[:, :, None] * e[:, None, :] + HPH[full]).sum(0)
        for b in np.flatnonzero(~full):                         # partially/fully missing
            o = obs_t[b]
            mi = ~o
            M = np.zeros((m, int(o.sum())))
            M[o] = np.eye(int(o.sum()))
            cond = np.zeros((m, m))
            if o.any():
                A = np.linalg.solve(R[np.ix_(o, o)], R[np.ix_(o, mi)]).T   # R_mo R_oo^{-1}
                M[mi] = A
                cond[np.ix_(mi, mi)] = R[np.ix_(mi, mi)] - A @ R[np.ix_(o, mi)]
            else:
                cond = R.copy()
            e = y[b, t, o] - Hx[b, o]
            Eoo = np.outer(e, e) + HPH[b][np.ix_(o, o)]
            total += M @ Eoo @ M.T + cond
    return total


def em(y, model, n_iter: int = 100, tol: float = 1e-6, learn=("Q", "R"), u=None,
       progress: bool = False) -> EMResult:
    r"""Fit parameters of a linear-Gaussian model by the EM algorithm.

    E-step: the RTS smoother gives :math:`E[x_t]`, :math:`E[x_t x_t']` and
    :math:`E[x_t x_{t-1}']` (through the lag-one covariance). M-step, with the
    state at time 0 as the start (so every one of the T transitions counts):

    .. math::

        Q &= \frac1T \sum_{t=1}^T E[(x_t - F x_{t-1} - B u_t)(\cdot)'] \\
        R &= \frac1T \sum_{t=1}^T E[(y_t - H x_t)(\cdot)']
           = \frac1T \sum_t \left[(y_t - H x_{t|T})(\cdot)' + H P_{t|T} H'\right]

    F and H, when learned, come first (their closed forms), then Q and R with
    the new F and H; every iteration therefore never lowers the likelihood.

    Parameters
    ----------
    y : (T, m) or (batch, T, m) array
        Observations (NaN = missing). A batch holds independent series of one model.
    model : LinearGaussianSSM
        Starting model; the parameters not in ``learn`` stay fixed.
    n_iter : int
        Largest number of EM iterations.
    tol : float
        Stop when the log-likelihood rises by less than ``tol * |loglik|``.
    learn : sequence of str
        Which of "F", "H", "Q", "R", "x0", "P0" to re-estimate.
    u : (T, r) or (batch, T, r) array, optional
        Controls, when the model has ``B``.
    progress : bool
        Show a progress bar (tqdm).

    Returns
    -------
    EMResult
    """
    model = check_model(model)
    # The M-step below is written for x_t = F x_{t-1} + B u_t + w_t,
    # y_t = H x_t + v_t with a state at time 0: anything else would be fitted
    # silently wrong (intercepts would be absorbed into Q and R).
    unsupported = [name for name in ("c", "d") if getattr(model, name) is not None]
    if unsupported:
        raise ValueError(
            f"em does not support the intercept{'s' if len(unsupported) > 1 else ''} "
            f"{' and '.join(unsupported)} of this model (its M-step assumes "
            "x_t = F x_{t-1} + B u_t + w_t, y_t = H x_t + v_t); subtract a known d from y, "
            "or write c as a control through B")
    if model.x0 is None:
        start = "an exact diffuse start" if model.diffuse is not None else "a1, P1"
        raise ValueError(f"em needs a model started at time 0 (x0, P0); this one has {start} "
                         "(a start at time 1), which em does not support")
    n_iter = check_positive_int(n_iter, "n_iter")
    tol = check_real(tol, "tol")
    if tol < 0:
        raise ValueError(f"tol must be a non-negative number; got {tol}")
    if isinstance(learn, str):
        learn = (learn,)
    learn = tuple(learn)
    unknown = [p for p in learn if p not in LEARNABLE]
    if unknown or not learn:
        raise ValueError(f"learn must name some of {', '.join(LEARNABLE)}; got {learn!r}")
    for p in learn:
        if p in ("F", "H", "Q", "R") and getattr(model, p).ndim == 3:
            raise ValueError(f"{p} is time-varying in this model; EM learns only "
                             "time-invariant matrices")
    y3, _ = as_observations(model, y)
    nb, T, m = y3.shape
    u3 = as_controls(model, u, nb, T, y3.ndim == 3)
    if "H" in learn and np.isnan(y3).any():
        raise ValueError("learning H needs complete observations; y has missing values")

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=n_iter, desc="EM", unit="iter")

    history = []
    converged = False
    it = 0
    try:
        filt = fast_filter(model, y3, u=u3)
        history.append(float(np.sum(filt.loglik)))
        for it in range(1, n_iter + 1):
            model = _m_step(model, y3, u3, filt, learn)
            filt = fast_filter(model, y3, u=u3)
            history.append(float(np.sum(filt.loglik)))
            change = history[-1] - history[-2]
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loglik=f"{history[-1]:.6g}")
            if abs(change) <= tol * abs(history[-2]):
                converged = True
                break
    finally:
        if bar is not None:
            bar.close()
    if not converged:
        rel = abs(history[-1] - history[-2]) / max(abs(history[-2]), np.finfo(float).tiny)
        warnings.warn(f"EM did not converge in n_iter={n_iter} iterations (last relative "
                      f"change {rel:.2g} > tol={tol:g}); raise n_iter, loosen tol, or "
                      "start from parameters closer to the data", ConvergenceWarning,
                      stacklevel=2)
    return EMResult(model=model, loglik_history=np.array(history), converged=converged,
                    n_iter=it)


def _m_step(model, y, u, filt, learn):
    smooth = fast_smoother(model, filt)
    xs, Ps, L = smooth.x_smooth, smooth.P_smooth, smooth.P_lag1     # (nb, T, ...)
    x0s, P0s = smooth.x0_smooth, smooth.P0_smooth
    nb, T, n = xs.shape
    # previous state means/covariances: x_{t-1|T} for t = 1..T (x_{0|T} first)
    xprev = np.concatenate([x0s[:, None], xs[:, :-1]], axis=1)
    Pprev = np.concatenate([P0s[:, None], Ps[:, :-1]], axis=1)
    c = np.zeros((nb, T, n))
    if u is not None:
        B = model.B
        c = np.einsum("tij,btj->bti", B, u) if B.ndim == 3 else u @ B.T
    changes = {}

    if "F" in learn:
        # F = sum E[(x_t - c_t) x_{t-1}'] (sum E[x_{t-1} x_{t-1}'])^{-1}
        S10 = (L + (xs - c)[..., :, None] * xprev[..., None, :]).sum((0, 1))
        S00 = (Pprev + xprev[..., :, None] * xprev[..., None, :]).sum((0, 1))
        changes["F"] = np.linalg.solve(S00, S10.T).T
    if "H" in learn:
        Syx = (y[..., :, None] * xs[..., None, :]).sum((0, 1))
        S11 = (Ps + xs[..., :, None] * xs[..., None, :]).sum((0, 1))
        changes["H"] = np.linalg.solve(S11, Syx.T).T
    F = changes.get("F", model.F)
    H = changes.get("H", model.H)

    if "Q" in learn:
        Ft = np.broadcast_to(F, (T, n, n)) if F.ndim == 2 else F
        # residual mean e_t = x_{t|T} - F x_{t-1|T} - c_t and its covariance
        e = xs - np.einsum("tij,btj->bti", Ft, xprev) - c
        FL = Ft @ _T(L)                                       # F Cov(x_{t-1}, x_t)
        cov = Ps - FL - _T(FL) + Ft @ Pprev @ _T(Ft)
        changes["Q"] = _sym((e[..., :, None] * e[..., None, :] + cov).sum((0, 1)) / (nb * T))
    if "R" in learn:
        tmp = model.replace(H=H) if "H" in changes else model
        changes["R"] = _sym(_second_moments_obs(tmp, y, xs, Ps) / (nb * T))
    if "x0" in learn:
        changes["x0"] = x0s.mean(0)
    if "P0" in learn:
        x0 = changes.get("x0", model.x0)
        d = x0s - x0
        changes["P0"] = _sym((P0s + d[:, :, None] * d[:, None, :]).mean(0))
    return model.replace(**changes)
