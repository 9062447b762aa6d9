"""The linear-Gaussian state-space model: a frozen, validated bundle of arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._checks import as_float_array, check_covariance, check_shape

__all__ = ["LinearGaussianSSM"]


def _promote_scalar(arr: np.ndarray, ndim: int) -> np.ndarray:
    """A 0-d number stands for a 1x1 matrix (or a length-1 vector)."""
    return arr.reshape((1,) * ndim) if arr.ndim == 0 else arr


@dataclass(frozen=True, eq=False)
class LinearGaussianSSM:
    r"""A linear-Gaussian state-space model.

    .. math::

        x_t = F_t x_{t-1} + B_t u_t + w_t, \quad w_t \sim N(0, Q_t) \\
        y_t = H_t x_t + v_t, \quad v_t \sim N(0, R_t), \quad x_0 \sim N(x_0, P_0)

    ``x0`` and ``P0`` describe the state at time 0, *before* the first
    observation; the first filter step predicts ``x_{1|0} = F x0 + B u_1``.

    Parameters
    ----------
    F : (n, n) or (T, n, n) array
        Transition matrix; a leading T axis makes it time-varying
        (``F[t]`` maps the state at array index ``t - 1`` to index ``t``).
    H : (m, n) or (T, m, n) array
        Observation matrix.
    Q : (n, n) or (T, n, n) array
        Process-noise covariance (symmetric positive semidefinite).
    R : (m, m) or (T, m, m) array
        Observation-noise covariance (symmetric positive semidefinite).
    x0 : (n,) array
        Mean of the state at time 0.
    P0 : (n, n) array
        Covariance of the state at time 0.
    B : (n, r) or (T, n, r) array, optional
        Control matrix; when given, the filter needs controls ``u`` of shape (T, r).

    A plain number is accepted for a 1x1 matrix. Arrays are copied and made
    read-only; the model cannot be changed after it is made.
    """

    F: np.ndarray
    H: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    x0: np.ndarray
    P0: np.ndarray
    B: np.ndarray | None = None
    n: int = field(init=False)
    m: int = field(init=False)
    r: int = field(init=False)
    T: int | None = field(init=False)

    def __post_init__(self):
        F = _promote_scalar(as_float_array(self.F, "F"), 2)
        if F.ndim not in (2, 3) or F.shape[-1] != F.shape[-2]:
            raise ValueError("F must have shape (n, n) or (T, n, n); got "
                             f"{F.shape}")
        n = F.shape[-1]
        H = _promote_scalar(as_float_array(self.H, "H"), 2)
        if H.ndim not in (2, 3) or H.shape[-1] != n:
            raise ValueError(f"H must have shape (m, {n}) or (T, m, {n}); got {H.shape}")
        m = H.shape[-2]
        Q = _promote_scalar(as_float_array(self.Q, "Q"), 2)
        check_shape(Q, "Q", (n, n), (None, n, n))
        R = _promote_scalar(as_float_array(self.R, "R"), 2)
        check_shape(R, "R", (m, m), (None, m, m))
        x0 = _promote_scalar(as_float_array(self.x0, "x0"), 1)
        check_shape(x0, "x0", (n,))
        P0 = _promote_scalar(as_float_array(self.P0, "P0"), 2)
        check_shape(P0, "P0", (n, n))
        check_covariance(Q, "Q")
        check_covariance(R, "R")
        check_covariance(P0, "P0")
        B = None
        r = 0
        if self.B is not None:
            B = as_float_array(self.B, "B")
            if B.ndim not in (2, 3) or B.shape[-2] != n:
                raise ValueError(f"B must have shape ({n}, r) or (T, {n}, r); got {B.shape}")
            r = B.shape[-1]

        lengths = {name: a.shape[0] for name, a, base in
                   (("F", F, 2), ("H", H, 2), ("Q", Q, 2), ("R", R, 2), ("B", B, 2))
                   if a is not None and a.ndim == base + 1}
        if len(set(lengths.values())) > 1:
            desc = ", ".join(f"{k} has {v}" for k, v in lengths.items())
            raise ValueError(f"time-varying matrices must share one length T; {desc}")
        T = next(iter(lengths.values())) if lengths else None

        for name, value in (("F", F), ("H", H), ("Q", Q), ("R", R), ("x0", x0),
                            ("P0", P0), ("B", B), ("n", n), ("m", m), ("r", r),
                            ("T", T)):
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def time_varying(self) -> bool:
        """True when any matrix has a leading time axis."""
        return self.T is not None

    def replace(self, **changes) -> "LinearGaussianSSM":
        """A copy with some parameters changed (and validated again)."""
        params = {k: getattr(self, k) for k in ("F", "H", "Q", "R", "x0", "P0", "B")}
        unknown = set(changes) - set(params)
        if unknown:
            raise TypeError(f"unknown model parameter(s): {', '.join(sorted(unknown))}")
        params.update(changes)
        return LinearGaussianSSM(**params)

    def __repr__(self) -> str:
        tv = f", T={self.T}" if self.T is not None else ""
        return f"LinearGaussianSSM(n={self.n}, m={self.m}, r={self.r}{tv})"
