r"""Anomaly detection with the Kalman filter's innovations.

Under the model, the innovation of step t is Gaussian with mean zero and
covariance ``S_t`` given everything observed before, and innovations of
different steps are independent:

.. math::

    \nu_t = y_t - H x_{t|t-1} \sim N(0, S_t), \qquad
    \mathrm{NIS}_t = \nu_t' S_t^{-1} \nu_t \sim \chi^2(m_t),

where ``m_t`` is the number of components of ``y_t`` that were observed. A
step whose NIS exceeds the chi-square quantile ``chi2.ppf(1 - alpha, m_t)`` is
flagged; under the model that happens with probability ``alpha``.

Functions
---------
nis             normalised innovation squared (and degrees of freedom) per step
chi2_gate       the chi-square gate for given degrees of freedom and level
flag_anomalies  steps whose NIS exceeds the gate
windowed_nis    NIS summed over a sliding window, for slow drifts
nees            normalised estimation error squared, when the truth is known
robust_filter   a Kalman filter that skips (or down-weights) flagged updates
precision_recall  how well flags match known anomalies

Course: chapter 9 (book/09-anomaly.md); the consistency tests of chapter 5;
exercise ps09-anomaly; tests: test_anomaly.py.
"""

from __future__ import annotations

import numbers

import numpy as np

from ._checks import as_float_array, check_positive_int, shape_str
from ._inputs import as_controls, as_observations, at, check_model
from .filter import (FilterResult, FilterSteps, _sym, _T, gaussian_update,
                     mask_missing, predict_step)

__all__ = ["nis", "chi2_gate", "flag_anomalies", "windowed_nis", "nees",
           "robust_filter", "precision_recall"]


# --------------------------------------------------------------------------
# checks


def _check_filt(filt) -> FilterResult:
    if not isinstance(filt, FilterResult):
        raise TypeError("filt must be the FilterResult returned by kalman_filter or "
                        f"robust_filter; got {type(filt).__name__}")
    return filt


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a number in (0, 1); got {type(alpha).__name__}")
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1) (the false-alarm probability); got {alpha}")
    return alpha


# --------------------------------------------------------------------------
# NIS


def _masked_nis(nu: np.ndarray, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NIS over the observed (non-NaN) components of ``nu`` and their number.

    ``nu`` is (..., m) with NaN for missing components, ``S`` is (..., m, m).
    The missing rows and columns of S are replaced by those of the identity
    and the missing innovations by 0, so one batched solve gives
    ``nu_o' S_oo^{-1} nu_o`` for every step whatever its pattern of gaps.
    """
    m = nu.shape[-1]
    obs = ~np.isnan(nu)
    dof = obs.sum(-1)
    pair = obs[..., :, None] & obs[..., None, :]
    S_o = np.where(pair, S, 0.0) + np.eye(m) * ~obs[..., None, :]
    nu_o = np.where(obs, nu, 0.0)
    try:
        # NIS = nu' S^{-1} nu, with a solve rather than an inverse
        Sinv_nu = np.linalg.solve(S_o, nu_o[..., None])[..., 0]
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError(
            "an innovation covariance S is singular on the observed components; "
            "the NIS is defined only where S_t is positive definite") from None
    value = np.sum(nu_o * Sinv_nu, axis=-1)
    return np.where(dof > 0, value, np.nan), dof


def nis(filt, *, return_dof: bool = False):
    r"""Normalised innovation squared of every step.

    .. math::

        \mathrm{NIS}_t = \nu_t' S_t^{-1} \nu_t \sim \chi^2(m_t) \text{ under the model},

    computed over the observed components only: with ``o`` the components
    observed at step t, :math:`\nu_{t,o}' (S_t)_{oo}^{-1} \nu_{t,o}`, which has
    ``m_t = len(o)`` degrees of freedom.

    Parameters
    ----------
    filt : FilterResult
        Output of :func:`kflib.kalman_filter` (or :func:`robust_filter`), one
        series or a batch; its innovations are NaN where ``y`` was missing.
    return_dof : bool, default False
        Also return the degrees of freedom (the number of observed components).

    Returns
    -------
    nis : (..., T) array
        NaN at steps where nothing was observed.
    dof : (..., T) int array
        Only with ``return_dof=True``.
    """
    filt = _check_filt(filt)
    value, dof = _masked_nis(filt.innovations, filt.S)
    n_diffuse = getattr(filt, "n_diffuse", None)
    if n_diffuse is not None:
        # During an exact diffuse start S holds only the finite part F_star of
        # an infinite innovation variance: those steps carry no NIS.
        steps = np.arange(value.shape[-1])
        diffuse = steps < np.asarray(n_diffuse)[..., None]
        value = np.where(diffuse, np.nan, value)
        dof = np.where(diffuse, 0, dof)
    return (value, dof) if return_dof else value


def chi2_gate(dof, alpha=0.01):
    r"""The chi-square gate: the ``1 - alpha`` quantile of :math:`\chi^2(\mathrm{dof})`.

    ``scipy.stats.chi2.ppf(1 - alpha, dof)``, computed as ``chi2.isf(alpha, dof)``
    (the same number, accurate also for very small alpha). A statistic that
    is :math:`\chi^2(\mathrm{dof})` exceeds it with probability ``alpha``.

    Parameters
    ----------
    dof : int or array of int
        Degrees of freedom (non-negative); 0 (nothing observed) gives NaN.
    alpha : float in (0, 1), default 0.01
        False-alarm probability per test.

    Returns
    -------
    float or array of the shape of ``dof``
    """
    alpha = _check_alpha(alpha)
    d = np.asarray(dof)
    if d.dtype == object or d.dtype.kind not in "iuf" or d.dtype.kind == "b":
        raise TypeError(f"dof must be an integer or an array of integers; got dtype {d.dtype}")
    if d.size and (not np.isfinite(d).all() or (d != np.round(d)).any()):
        raise ValueError("dof must hold whole numbers (the number of observed components)")
    if d.size and (d < 0).any():
        raise ValueError(f"dof must be non-negative; got {d.min()}")
    from scipy.stats import chi2        # here, not at import: scipy.stats takes ~0.8 s to load

    gate = np.where(d > 0, chi2.isf(alpha, np.maximum(d, 1)), np.nan)
    return float(gate) if gate.ndim == 0 else gate


def flag_anomalies(filt, alpha=0.01):
    r"""Flag the steps whose NIS exceeds the chi-square gate.

    .. math::

        \text{flag}_t = \mathrm{NIS}_t > \chi^2_{m_t,\,1-\alpha}.

    Under the model each step is flagged with probability ``alpha``,
    independently of the others. Steps with nothing observed are not flagged.

    Parameters
    ----------
    filt : FilterResult
        One series or a batch.
    alpha : float in (0, 1), default 0.01

    Returns
    -------
    (..., T) bool array
    """
    alpha = _check_alpha(alpha)
    value, dof = nis(filt, return_dof=True)
    gate = chi2_gate(dof, alpha)
    flags = np.zeros(value.shape, dtype=bool)
    np.greater(value, gate, out=flags, where=dof > 0)
    return flags


def windowed_nis(filt, window: int):
    r"""NIS summed over a sliding window of steps, with its degrees of freedom.

    .. math::

        W_t = \sum_{s=t-w+1}^{t} \mathrm{NIS}_s \sim \chi^2\Big(\sum_{s=t-w+1}^{t} m_s\Big)
        \text{ under the model},

    because innovations of different steps are independent. A small, lasting
    bias (a slow sensor drift) raises every NIS a little; the sum accumulates
    it. The first ``w - 1`` windows hold the steps available so far, and steps
    with nothing observed add 0 to both sums. Compare ``W`` with
    ``chi2_gate(dof, alpha)``.

    Parameters
    ----------
    filt : FilterResult
        One series or a batch.
    window : int
        Number of steps ``w`` in each window (at least 1).

    Returns
    -------
    W : (..., T) array
        Windowed NIS (0 where the window holds no observation).
    dof : (..., T) int array
        Summed degrees of freedom of each window.
    """
    window = check_positive_int(window, "window")
    value, dof = nis(filt, return_dof=True)
    csum = np.cumsum(np.nan_to_num(value, nan=0.0), axis=-1)
    cdof = np.cumsum(dof, axis=-1)
    W, D = csum.copy(), cdof.copy()
    if window < value.shape[-1]:
        # sum over s = t-w+1..t is csum[t] - csum[t-w]
        W[..., window:] -= csum[..., :-window]
        D[..., window:] -= cdof[..., :-window]
    return W, D


# --------------------------------------------------------------------------
# NEES


def nees(x_true, x_est, P):
    r"""Normalised estimation error squared, for filters whose truth is known.

    .. math::

        \mathrm{NEES}_t = (x_t - \hat x_t)' P_t^{-1} (x_t - \hat x_t) \sim \chi^2(n)

    when the filter is consistent (its covariance ``P_t`` is the covariance of
    its error). Averaged over independent runs, values above ``n`` say the
    filter is overconfident, values below ``n`` that it is too cautious.

    Parameters
    ----------
    x_true : (..., T, n) array
        True states (e.g. from :func:`kflib.simulate`).
    x_est : (..., T, n) array
        Estimates, e.g. ``filt.x_filt``; broadcast against ``x_true``.
    P : (..., T, n, n) array
        Their covariances, e.g. ``filt.P_filt`` (positive definite).

    Returns
    -------
    (..., T) array
    """
    x_true = as_float_array(x_true, "x_true")
    x_est = as_float_array(x_est, "x_est")
    P = as_float_array(P, "P")
    if x_est.ndim < 1:
        raise ValueError(f"x_est must have shape (..., T, n); got {shape_str(x_est.shape)}")
    n = x_est.shape[-1]
    if x_true.ndim < 1 or x_true.shape[-1] != n:
        raise ValueError(f"x_true must have shape (..., T, {n}) like x_est; "
                         f"got {shape_str(x_true.shape)}")
    if P.ndim < 2 or P.shape[-2:] != (n, n):
        raise ValueError(f"P must have shape (..., T, {n}, {n}); got {shape_str(P.shape)}")
    try:
        err = x_true - x_est
    except ValueError:
        raise ValueError(f"x_true of shape {shape_str(x_true.shape)} and x_est of shape "
                         f"{shape_str(x_est.shape)} do not broadcast") from None
    try:
        np.broadcast_shapes(err.shape, P.shape[:-1])
    except ValueError:
        raise ValueError(f"P of shape {shape_str(P.shape)} does not match the estimates "
                         f"of shape {shape_str(err.shape)}") from None
    try:
        np.linalg.cholesky(P)
    except np.linalg.LinAlgError:
        raise ValueError("P must be positive definite at every step") from None
    # NEES = e' P^{-1} e, with a solve rather than an inverse
    Pinv_e = np.linalg.solve(P, err[..., None])[..., 0]
    return np.sum(err * Pinv_e, axis=-1)


# --------------------------------------------------------------------------
# robust filtering


def _inflation(A: np.ndarray, R: np.ndarray, nu: np.ndarray, gate: np.ndarray,
               max_iter: int = 200) -> np.ndarray:
    r"""The factor lam >= 1 with nu' (A + lam R)^{-1} nu = gate, for a stack.

    ``A`` = H P H' and ``R`` are (k, m, m), masked so that missing components
    carry identity rows of R and zero rows of A and nu. With R = L L' and
    L^{-1} A L^{-T} = V diag(d) V', the left side is
    f(lam) = sum_i z_i^2 / (d_i + lam) with z = V' L^{-1} nu: convex and
    decreasing, so Newton's method from lam = 1 (where f > gate) climbs
    monotonically to the root.
    """
    try:
        L = np.linalg.cholesky(R)
    except np.linalg.LinAlgError:
        raise ValueError("mode='inflate' needs R positive definite on the observed "
                         "components; use mode='skip'") from None
    LinvA = np.linalg.solve(L, A)
    C = np.linalg.solve(L, _T(LinvA))                 # L^{-1} A L^{-T}
    d, V = np.linalg.eigh(_sym(C))
    d = np.maximum(d, 0.0)
    z2 = (_T(V) @ np.linalg.solve(L, nu[..., None]))[..., 0] ** 2
    lam = np.ones(len(gate))
    for _ in range(max_iter):
        f = np.sum(z2 / (d + lam[:, None]), axis=-1)
        df = -np.sum(z2 / (d + lam[:, None]) ** 2, axis=-1)
        step = (f - gate) / df                         # <= 0 while f > gate
        lam_new = np.maximum(lam - step, lam)
        if np.all(lam_new - lam <= 1e-13 * lam_new):
            lam = lam_new
            break
        lam = lam_new
    return lam


def robust_filter(model, y, alpha=0.01, mode: str = "skip", u=None, max_skips=None):
    r"""A Kalman filter that does not let flagged observations corrupt the state.

    At each step it predicts, computes the innovation and its NIS over the
    observed components (as :func:`nis`), and compares it with the gate
    :math:`\chi^2_{m_t, 1-\alpha}`. An unflagged step is the ordinary Kalman
    update. A flagged step is

    - ``mode="skip"``: not used at all (treated as missing), so
      :math:`x_{t|t} = x_{t|t-1}` and :math:`P_{t|t} = P_{t|t-1}`;
    - ``mode="inflate"``: used with ``R`` scaled by the smallest factor
      :math:`\lambda \ge 1` that brings it onto the gate,
      :math:`\nu_t' (H P_{t|t-1} H' + \lambda R)^{-1} \nu_t = \chi^2_{m_t,1-\alpha}`,
      which shrinks the gain (the scaling of Chang 2014).

    With no step flagged the result is exactly that of :func:`kflib.kalman_filter`.

    Skipping has a failure mode: if the state really changed (or the filter
    was wrong), every later observation is flagged too and the filter never
    recovers. ``max_skips`` bounds the damage: a flagged step that follows
    ``max_skips`` consecutive flagged steps is used as an ordinary update.

    Parameters
    ----------
    model : LinearGaussianSSM
    y : (T, m) or (batch, T, m) array
        Observations; NaN marks a missing component.
    alpha : float in (0, 1), default 0.01
        False-alarm probability of the test at each step.
    mode : {"skip", "inflate"}, default "skip"
    u : (T, r) or (batch, T, r) array, optional
        Controls; required exactly when the model has ``B``.
    max_skips : int, optional
        At most this many consecutive flagged steps are skipped (or
        down-weighted); the next one is used as it is. Default: no limit.

    Returns
    -------
    filt : FilterResult
        As from :func:`kflib.kalman_filter`, except: ``innovations`` and ``S``
        are those the test used (the model's ``S = H P H' + R``, also on flagged
        steps, so ``nis(filt)`` gives the tested values); ``K`` is the gain
        applied (zero on skipped steps); ``loglik`` leaves out the steps that
        were skipped or down-weighted.
    flags : (T,) or (batch, T) bool array
        The steps whose NIS exceeded the gate (all of them, also those that
        ``max_skips`` let through).
    """
    model = check_model(model)
    alpha = _check_alpha(alpha)
    if mode not in ("skip", "inflate"):
        raise ValueError(f"mode must be 'skip' or 'inflate'; got {mode!r}")
    if max_skips is not None:
        if isinstance(max_skips, bool) or not isinstance(max_skips, numbers.Integral):
            raise TypeError(f"max_skips must be an int or None; got {type(max_skips).__name__}")
        if max_skips < 0:
            raise ValueError(f"max_skips must be non-negative; got {max_skips}")
    if model.x0 is None:
        raise ValueError("robust_filter needs a model started at time 0 (x0, P0); this model "
                         f"has a {model.initialization!r} start (a1/P1 or diffuse), which only "
                         "kalman_filter supports")
    y, batched = as_observations(model, y)
    nb, T, m = y.shape
    n = model.n
    u = as_controls(model, u, nb, T, batched)

    out = FilterSteps(nb, T, n, m)
    flags = np.zeros((nb, T), dtype=bool)
    run = np.zeros(nb, dtype=int)             # consecutive flagged steps so far

    observed = ~np.isnan(y)
    gates = np.concatenate([[np.inf], chi2_gate(np.arange(1, m + 1), alpha)])
    x = np.broadcast_to(model.x0, (nb, n))
    P = np.broadcast_to(model.P0, (nb, n, n))

    for t in range(T):
        H, R = at(model.H, t), at(model.R, t)
        x, P, nu, S = predict_step(model, t, x, P, y[:, t], None if u is None else u[:, t])
        out.predicted(t, x, P, nu, S)

        # Test: NIS over the observed components against chi2_{m_t, 1 - alpha}
        value, dof = _masked_nis(nu, S)
        flag = np.zeros(nb, dtype=bool)
        np.greater(value, gates[dof], out=flag, where=dof > 0)
        flags[:, t] = flag
        handle = flag                                  # the flagged steps to skip or down-weight
        if max_skips is not None:
            handle = flag & (run < max_skips)          # a long run is a change, not an outlier
            run = np.where(flag, run + 1, 0)

        obs = observed[:, t]
        if mode == "skip":
            obs = obs & ~handle[:, None]               # a skipped step is a missing one
        if not obs.any():                              # nothing used: pure prediction
            out.filtered(t, x, P)
            continue
        R_used = R
        if mode == "inflate" and handle.any():
            # R -> lam R on the observed block of each handled series
            h = handle
            Hm, Rm, num = mask_missing(np.broadcast_to(H, (int(h.sum()), m, n)), R, nu[h], obs[h])
            lam = np.ones(nb)
            lam[h] = _inflation(Hm @ P[h] @ _T(Hm), Rm, num, gates[dof[h]])
            R_used = R * lam[:, None, None]
        x, P, K, term = gaussian_update(x, P, nu, H, R_used, obs, t)
        out.filtered(t, x, P, K)
        # the log-likelihood counts the steps used as they are
        out.loglik += np.where(handle, 0.0, term)

    return out.result(batched), (flags if batched else flags[0])


# --------------------------------------------------------------------------
# scoring


def precision_recall(flags, labels) -> tuple[float, float]:
    r"""Precision and recall of flags against known anomalous steps.

    .. math::

        \text{precision} = \frac{TP}{TP + FP}, \qquad
        \text{recall} = \frac{TP}{TP + FN},

    counted over all entries (every step of every series).

    Parameters
    ----------
    flags : bool array
        Flagged steps, any shape.
    labels : bool array
        True where an anomaly was really present; same shape as ``flags``.

    Returns
    -------
    precision : float
        NaN when nothing is flagged.
    recall : float
        NaN when there is no anomaly.
    """
    f, lab = np.asarray(flags), np.asarray(labels)
    for name, a in (("flags", f), ("labels", lab)):
        if a.dtype != bool and not (a.dtype.kind in "iu" and np.isin(a, (0, 1)).all()):
            raise TypeError(f"{name} must be a bool array (or of 0s and 1s); got dtype {a.dtype}")
    if f.shape != lab.shape:
        raise ValueError(f"flags and labels must have the same shape; got "
                         f"{shape_str(f.shape)} and {shape_str(lab.shape)}")
    f, lab = f.astype(bool), lab.astype(bool)
    tp = int(np.sum(f & lab))
    n_flag, n_true = int(f.sum()), int(lab.sum())
    precision = tp / n_flag if n_flag else float("nan")
    recall = tp / n_true if n_true else float("nan")
    return precision, recall
