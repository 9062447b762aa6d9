r"""Forecasting: the moments of future states and observations after the data.

From the last filtered moments :math:`x_{T|T}, P_{T|T}`, for h = 1..steps,

.. math::

    x_{T+h|T} &= F x_{T+h-1|T} + B u_{T+h} + c, &
    P_{T+h|T} &= F P_{T+h-1|T} F' + Q, \\
    \hat y_{T+h|T} &= H x_{T+h|T} + d, &
    \operatorname{Var}(y_{T+h} \mid y_{1:T}) &= H P_{T+h|T} H' + R,

and a prediction interval at level :math:`1 - \alpha` for component i is
:math:`\hat y_i \pm z_{1 - \alpha/2} \sqrt{\operatorname{Var}_{ii}}`
(statsmodels' ``get_forecast(...).conf_int(alpha)``).

Course: chapter 8, section sec-structural-forecast (book/08-structural.md);
exercise ps08-structural part (e); tests: test_forecast.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import check_positive_int, check_real, freeze_arrays
from ._inputs import as_controls, at, check_model
from .filter import FilterResult, _sym
from .smoother import check_filter_result

__all__ = ["ForecastResult", "forecast"]


@dataclass(frozen=True, eq=False)
class ForecastResult:
    """Moments of ``steps`` future states and observations given ``y_{1:T}``.

    Attributes
    ----------
    x_mean : (..., steps, n) array
        ``E[x_{T+h} | y_{1:T}]``, h = 1..steps.
    P : (..., steps, n, n) array
        ``Cov(x_{T+h} | y_{1:T})``.
    y_mean : (..., steps, m) array
        ``E[y_{T+h} | y_{1:T}]``.
    y_cov : (..., steps, m, m) array
        ``Cov(y_{T+h} | y_{1:T})``.
    """

    x_mean: np.ndarray
    P: np.ndarray
    y_mean: np.ndarray
    y_cov: np.ndarray

    def __post_init__(self):
        freeze_arrays(self)

    def interval(self, level: float = 0.95, of: str = "y"):
        """Central prediction intervals, component by component.

        Parameters
        ----------
        level : float in (0, 1)
            Coverage, e.g. 0.95 (statsmodels' ``conf_int(alpha=1 - level)``).
        of : {"y", "x"}
            Intervals for the observations (default) or for the states.

        Returns
        -------
        lower, upper : (..., steps, m) arrays (or (..., steps, n) for the states)
        """
        level = check_real(level, "level", low=0.0, high=1.0, low_open=True)
        if level >= 1.0:
            raise ValueError(f"level must be in (0, 1); got {level:g}")
        if of not in ("y", "x"):
            raise ValueError(f'of must be "y" or "x"; got {of!r}')
        mean, cov = (self.y_mean, self.y_cov) if of == "y" else (self.x_mean, self.P)
        from scipy.stats import norm    # here, not at import: scipy.stats takes ~0.8 s to load

        half = norm.ppf(0.5 + level / 2) * np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
        return mean - half, mean + half


def forecast(model, filt: FilterResult, steps: int, u=None, future=None) -> ForecastResult:
    """Forecast ``steps`` steps past the end of the filtered data.

    Parameters
    ----------
    model : LinearGaussianSSM
        The model the filter ran with.
    filt : FilterResult
        Its :func:`kflib.kalman_filter` result (one series or a batch).
    steps : int
        Forecast horizon.
    u : (steps, r) or (batch, steps, r) array, optional
        Future controls; required exactly when the model has ``B``.
    future : LinearGaussianSSM, optional
        The matrices in force over the forecast steps, for a model whose
        matrices (or intercepts) vary in time: time-invariant, or with a time
        axis of length ``steps`` (``future.F[h - 1]`` maps step T+h-1 to T+h).
        Defaults to ``model`` (which must then be time-invariant).

    Returns
    -------
    ForecastResult
    """
    model = check_model(model)
    check_filter_result(model, filt)
    steps = check_positive_int(steps, "steps")
    if future is None:
        if model.time_varying:
            raise ValueError(
                f"the model's matrices vary in time and cover only the T = {model.T} steps "
                "of the data; pass future=, a model holding the matrices of the forecast "
                "steps")
        future = model
    else:
        future = check_model(future)
        if (future.n, future.m) != (model.n, model.m):
            raise ValueError(f"future must have n = {model.n}, m = {model.m}; got "
                             f"n = {future.n}, m = {future.m}")
        if future.T is not None and future.T != steps:
            raise ValueError(f"future's time-varying matrices have T = {future.T} steps; "
                             f"forecasting needs steps = {steps}")
    P_inf = getattr(filt, "P_inf_filt", None)
    if P_inf is not None and np.abs(P_inf[..., -1, :, :]).max() > 0:
        raise ValueError("the data do not determine every diffuse state (P_inf is still "
                         "nonzero after the last observation): the forecast variance is "
                         "infinite")
    batched = filt.x_filt.ndim == 3
    x = filt.x_filt[..., -1, :]
    P = filt.P_filt[..., -1, :, :]
    if not batched:
        x, P = x[None], P[None]
    nb, n = x.shape
    m = model.m
    u = as_controls(future, u, nb, steps, batched)

    xs, Ps = np.empty((nb, steps, n)), np.empty((nb, steps, n, n))
    ys, Ss = np.empty((nb, steps, m)), np.empty((nb, steps, m, m))
    for h in range(steps):
        F, H = at(future.F, h), at(future.H, h)
        # x = F x + B u + c,  P = F P F' + Q
        x = x @ F.T
        if u is not None:
            x = x + u[:, h] @ at(future.B, h).T
        if future.c is not None:
            x = x + at(future.c, h, 1)
        P = _sym(F @ P @ F.T + at(future.Q, h))
        # y = H x + d,  Var y = H P H' + R
        yh = x @ H.T
        if future.d is not None:
            yh = yh + at(future.d, h, 1)
        xs[:, h], Ps[:, h] = x, P
        ys[:, h], Ss[:, h] = yh, _sym(H @ P @ H.T + at(future.R, h))
    out = (xs, Ps, ys, Ss)
    if not batched:
        out = tuple(a[0] for a in out)
    return ForecastResult(*out)
