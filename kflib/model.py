"""The linear-Gaussian state-space model: a frozen, validated bundle of arrays.

Course: chapter 1 (book/01-state-space.md); exercise ps01-state-space; tests:
test_simulate_and_models.py, test_model_intercepts.py, test_errors.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._checks import as_float_array, check_covariance, check_shape

__all__ = ["LinearGaussianSSM", "intercepts_as_inputs"]


def _promote_scalar(arr: np.ndarray, ndim: int) -> np.ndarray:
    """A 0-d number stands for a 1x1 matrix (or a length-1 vector)."""
    return arr.reshape((1,) * ndim) if arr.ndim == 0 else arr


def _intercept(value, name: str, size: int, sym: str) -> np.ndarray | None:
    """An intercept as a float array of shape (size,) or (T, size), or None."""
    if value is None:
        return None
    arr = _promote_scalar(as_float_array(value, name), 1)
    if arr.ndim == 1 and arr.shape[0] != size or arr.ndim == 2 and arr.shape[1] != size \
            or arr.ndim not in (1, 2):
        raise ValueError(f"{name} must have shape ({size},) or (T, {size}) "
                         f"({sym} = {size}); got {arr.shape}")
    return arr


def _initial_state(x0, P0, a1, P1, diffuse, n: int):
    """Validate the start: ``x0, P0`` (time 0), or ``a1, P1`` and/or ``diffuse``
    (time 1). Returns ``x0, P0, a1, P1, mask`` with the unused ones None; with
    a diffuse mask, ``P1`` is returned as the full (n, n) ``P_star``."""
    time0 = x0 is not None or P0 is not None
    if isinstance(diffuse, (bool, np.bool_)):
        diffuse = True if diffuse else None
    time1 = a1 is not None or P1 is not None or diffuse is not None
    if time0 and time1:
        given = [k for k, v in (("x0", x0), ("P0", P0), ("a1", a1), ("P1", P1),
                                ("diffuse", diffuse)) if v is not None]
        raise ValueError("give the start either as x0, P0 (the state at time 0) or as "
                         "a1, P1 and/or diffuse (the state at time 1), not both; got "
                         + ", ".join(given))
    if not time0 and not time1:
        raise ValueError("the model needs a start: x0 and P0 (the state at time 0), "
                         "a1 and P1 (the state at time 1), or diffuse=True")
    if time0:
        if x0 is None or P0 is None:
            raise ValueError(f"x0 and P0 must be given together; got only "
                             f"{'x0' if P0 is None else 'P0'}")
        x0 = _promote_scalar(as_float_array(x0, "x0"), 1)
        check_shape(x0, "x0", (n,))
        P0 = _promote_scalar(as_float_array(P0, "P0"), 2)
        check_shape(P0, "P0", (n, n))
        check_covariance(P0, "P0")
        return x0, P0, None, None, None

    mask = None
    if diffuse is not None:
        if diffuse is True:
            mask = np.ones(n, dtype=bool)
        else:
            if isinstance(diffuse, (str, bytes)):
                raise TypeError("diffuse must be True, False, None or a boolean mask of "
                                f"length {n}; got {type(diffuse).__name__}")
            mask = np.asarray(diffuse)
            if mask.dtype != bool:
                raise TypeError("diffuse must be True, False, None or a boolean mask of "
                                f"length {n}; got an array of dtype {mask.dtype}")
            if mask.shape != (n,):
                raise ValueError(f"diffuse as a mask must have shape ({n},); got "
                                 f"{mask.shape}")
            mask = mask.copy()
        if not mask.any():
            mask = None                              # nothing diffuse: a known start
    if mask is None:
        if a1 is None or P1 is None:
            raise ValueError("a1 and P1 must be given together (without a diffuse "
                             f"start); got only {'a1' if P1 is None else 'P1'}")
    a1 = np.zeros(n) if a1 is None else _promote_scalar(as_float_array(a1, "a1"), 1)
    check_shape(a1, "a1", (n,))
    k = n if mask is None else int((~mask).sum())
    if P1 is None:
        if k > 0:
            raise ValueError(f"P1 is required for the {k} non-diffuse state(s) "
                             f"(index {np.flatnonzero(~mask).tolist()}); give their "
                             f"({k}, {k}) covariance")
        P1 = np.zeros((n, n))
    else:
        P1 = _promote_scalar(as_float_array(P1, "P1"), 2)
        if mask is not None and P1.shape == (k, k) and k != n:
            full = np.zeros((n, n))
            keep = np.flatnonzero(~mask)
            full[np.ix_(keep, keep)] = P1
            P1 = full
        elif mask is not None and P1.shape == (n, n):
            rows = np.abs(P1[mask]).max() if mask.any() else 0.0
            cols = np.abs(P1[:, mask]).max() if mask.any() else 0.0
            if max(rows, cols) > 0.0:
                raise ValueError("P1 must be zero in the rows and columns of the diffuse "
                                 f"states (index {np.flatnonzero(mask).tolist()}): their "
                                 "variance is the diffuse part P_inf; give P1 for the "
                                 f"others only, as a ({k}, {k}) block or zero-padded")
        elif mask is not None:
            raise ValueError(f"P1 must have shape ({k}, {k}) (the non-diffuse states) or "
                             f"({n}, {n}); got {P1.shape}")
        check_shape(P1, "P1", (n, n))
        check_covariance(P1, "P1")
    return None, None, a1, P1, mask


@dataclass(frozen=True, eq=False)
class LinearGaussianSSM:
    r"""A linear-Gaussian state-space model.

    .. math::

        x_t = F_t x_{t-1} + B_t u_t + c_t + w_t, \quad w_t \sim N(0, Q_t) \\
        y_t = H_t x_t + d_t + v_t, \quad v_t \sim N(0, R_t)

    The start is given in one of three ways:

    * ``x0, P0``: the state at time 0, *before* the first observation,
      ``x_0 ~ N(x0, P0)``; the first filter step predicts
      ``x_{1|0} = F_1 x0 + B_1 u_1 + c_1``.
    * ``a1, P1``: the moments of ``x_1`` themselves, ``x_1 ~ N(a1, P1)``
      (statsmodels' ``initialization='known'``); the first step does not
      predict, so ``F, Q, B u, c`` at array index 0 are not used.
    * ``diffuse``: an exact diffuse start at time 1 (Durbin and Koopman's
      exact initial Kalman filter, statsmodels' ``initialization='diffuse'``).
      ``diffuse=True`` makes every state diffuse; a boolean mask of length n
      makes those states diffuse, ``P_inf = diag(mask)``, and the others
      take their covariance from ``P1``. ``a1`` defaults to zeros.

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
    x0 : (n,) array, optional
        Mean of the state at time 0 (give with ``P0``).
    P0 : (n, n) array, optional
        Covariance of the state at time 0.
    B : (n, r) or (T, n, r) array, optional
        Control matrix; when given, the filter needs controls ``u`` of shape (T, r).
    a1 : (n,) array, optional
        Mean of the state at time 1 (instead of ``x0, P0``).
    P1 : (n, n) or (k, k) array, optional
        Covariance of the state at time 1. With a diffuse mask it is the
        covariance ``P_star`` of the k non-diffuse states: either that
        (k, k) block, or an (n, n) matrix that is zero in the rows and
        columns of the diffuse states.
    diffuse : bool or (n,) bool array, optional
        Which states have an exact diffuse start (``True``: all of them).
    c : (n,) or (T, n) array, optional
        State intercept ``c_t`` (``c[t]`` enters the state at array index t).
    d : (m,) or (T, m) array, optional
        Observation intercept ``d_t``.

    A plain number is accepted for a 1x1 matrix. Arrays are copied and made
    read-only; the model cannot be changed after it is made.
    """

    F: np.ndarray
    H: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    x0: np.ndarray | None = None
    P0: np.ndarray | None = None
    B: np.ndarray | None = None
    a1: np.ndarray | None = None
    P1: np.ndarray | None = None
    diffuse: np.ndarray | None = None
    c: np.ndarray | None = None
    d: np.ndarray | None = None
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
        if n == 0:
            raise ValueError("F must describe at least one state (n >= 1); got shape "
                             f"{F.shape}")
        H = _promote_scalar(as_float_array(self.H, "H"), 2)
        if H.ndim not in (2, 3) or H.shape[-1] != n:
            raise ValueError(f"H must have shape (m, {n}) or (T, m, {n}); got {H.shape}")
        m = H.shape[-2]
        if m == 0:
            raise ValueError("H must have at least one row (m >= 1 observed components); "
                             f"got shape {H.shape}")
        Q = _promote_scalar(as_float_array(self.Q, "Q"), 2)
        check_shape(Q, "Q", (n, n), (None, n, n))
        R = _promote_scalar(as_float_array(self.R, "R"), 2)
        check_shape(R, "R", (m, m), (None, m, m))
        check_covariance(Q, "Q")
        check_covariance(R, "R")
        x0, P0, a1, P1, diffuse = _initial_state(self.x0, self.P0, self.a1, self.P1,
                                                 self.diffuse, n)
        B = None
        r = 0
        if self.B is not None:
            B = as_float_array(self.B, "B")
            if B.ndim not in (2, 3) or B.shape[-2] != n:
                raise ValueError(f"B must have shape ({n}, r) or (T, {n}, r); got {B.shape}")
            r = B.shape[-1]
        c = _intercept(self.c, "c", n, "n")
        d = _intercept(self.d, "d", m, "m")

        lengths = {name: a.shape[0] for name, a, base in
                   (("F", F, 2), ("H", H, 2), ("Q", Q, 2), ("R", R, 2), ("B", B, 2),
                    ("c", c, 1), ("d", d, 1))
                   if a is not None and a.ndim == base + 1}
        if len(set(lengths.values())) > 1:
            desc = ", ".join(f"{k} has {v}" for k, v in lengths.items())
            raise ValueError(f"time-varying matrices must share one length T; {desc}")
        T = next(iter(lengths.values())) if lengths else None
        if T == 0:
            raise ValueError(f"time-varying matrices must have at least one step; "
                             f"{', '.join(lengths)} have T = 0")

        for name, value in (("F", F), ("H", H), ("Q", Q), ("R", R), ("x0", x0),
                            ("P0", P0), ("B", B), ("a1", a1), ("P1", P1),
                            ("diffuse", diffuse), ("c", c), ("d", d), ("n", n),
                            ("m", m), ("r", r), ("T", T)):
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def time_varying(self) -> bool:
        """True when any matrix has a leading time axis."""
        return self.T is not None

    @property
    def initialization(self) -> str:
        """How the start is given: ``"x0"`` (time 0), ``"known"`` (``a1, P1`` at
        time 1) or ``"diffuse"`` (an exact diffuse start at time 1)."""
        if self.x0 is not None:
            return "x0"
        return "diffuse" if self.diffuse is not None else "known"

    @property
    def P_inf(self) -> np.ndarray | None:
        """The diffuse part of the covariance of x_1, ``diag(diffuse)`` (or None)."""
        if self.diffuse is None:
            return None
        return np.diag(self.diffuse.astype(float))

    def replace(self, **changes) -> "LinearGaussianSSM":
        """A copy with some parameters changed (and validated again).

        Giving ``x0``/``P0`` drops a time-1 start (``a1, P1, diffuse``) and
        giving any of those drops ``x0, P0``.
        """
        names = ("F", "H", "Q", "R", "x0", "P0", "B", "a1", "P1", "diffuse", "c", "d")
        params = {k: getattr(self, k) for k in names}
        unknown = set(changes) - set(params)
        if unknown:
            raise TypeError(f"unknown model parameter(s): {', '.join(sorted(unknown))}")
        time0, time1 = {"x0", "P0"}, {"a1", "P1", "diffuse"}
        if changes.keys() & time0 and not changes.keys() & time1:
            params.update(a1=None, P1=None, diffuse=None)
        elif changes.keys() & time1 and not changes.keys() & time0:
            params.update(x0=None, P0=None)
        params.update(changes)
        return LinearGaussianSSM(**params)

    def __repr__(self) -> str:
        tv = f", T={self.T}" if self.T is not None else ""
        return f"LinearGaussianSSM(n={self.n}, m={self.m}, r={self.r}{tv})"


def intercepts_as_inputs(model: LinearGaussianSSM, y, u=None):
    """The same filtering problem without intercepts, for paths that have none.

    ``d_t`` is taken off the observations (``y - d``) and ``c_t`` becomes a
    control with an identity column block of B (``B' = [B, I]``,
    ``u' = [u, c]``): every predicted and filtered moment, innovation and the
    log-likelihood are unchanged. Returns ``(model, y, u)``; ``y`` and ``u``
    keep a leading batch axis when they have one.
    """
    if model.c is None and model.d is None:
        return model, y, u
    changes = {"c": None, "d": None}
    if model.d is not None:
        y = np.asarray(y, dtype=float)
        d = model.d
        if y.ndim == 1 and model.m == 1:
            y = y[:, None]
        y = y - d                                   # (m,) or (T, m) broadcasts over a batch
    if model.c is not None:
        n = model.n
        T = None if np.ndim(y) < 2 else np.shape(y)[-2]
        c = np.broadcast_to(model.c, (T, n))
        if u is None:
            if model.B is not None:
                raise ValueError(f"the model has a control matrix B, so u of shape "
                                 f"({T}, {model.r}) is required")
            u_new = c
        else:
            u = np.asarray(u, dtype=float)
            if u.ndim == 1 and model.r == 1:
                u = u[:, None]
            u_new = np.concatenate([u, np.broadcast_to(c, u.shape[:-1] + (n,))], axis=-1)
        if model.B is None:
            B = np.eye(n)
        elif model.B.ndim == 2:
            B = np.concatenate([model.B, np.eye(n)], axis=-1)
        else:
            B = np.concatenate([model.B, np.broadcast_to(np.eye(n), (model.B.shape[0], n, n))],
                               axis=-1)
        changes["B"] = B
        u = u_new
    return model.replace(**changes), y, u
