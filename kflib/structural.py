r"""Structural time-series models: trend, seasonal and cycle blocks and their sum.

A structural model writes a series as a sum of unobserved components,

.. math::

    y_t = \mu_t + \gamma_t + c_t + \varepsilon_t, \qquad
    \varepsilon_t \sim N(0, \sigma^2_\varepsilon),

a trend :math:`\mu_t`, a seasonal :math:`\gamma_t`, a cycle :math:`c_t` and an
irregular :math:`\varepsilon_t`. Each component is a small state-space *block*
``(F_b, H_b, Q_b)``: its own states, transition, loading and noise. The model
is the blocks side by side: ``F`` and ``Q`` block-diagonal, ``H`` the blocks'
loadings concatenated, ``R`` the irregular variance.

    >>> from kflib import structural as st
    >>> blocks = [st.local_linear_trend(1.0, 0.01), st.seasonal_dummy(12, 0.1)]
    >>> model = st.combine(*blocks, irregular_var=4.0)       # a LinearGaussianSSM
    >>> model.n
    13

:func:`components` turns states (filtered, smoothed or simulated) back into
each component's contribution ``H_b x_b``.

State orderings follow statsmodels' ``UnobservedComponents`` within each
block, so a model combined in statsmodels' order (trend, seasonal, cycle) has
the same state vector, with one exception: for an even period and all
``s/2`` harmonics, :func:`seasonal_trig` gives the last harmonic (frequency
:math:`\pi`) one state, statsmodels gives it two (the second never reaches the
observation).

Course: chapter 8 (book/08-structural.md); exercise ps08-structural; tests:
test_structural.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

from ._checks import as_float_array, check_covariance, check_positive_int, shape_str
from .model import LinearGaussianSSM

__all__ = ["Block", "local_level", "local_linear_trend", "seasonal_dummy",
           "seasonal_trig", "cycle", "irregular", "combine", "block_slices",
           "state_names", "components", "component_variances"]

VAGUE = 1e6


# --------------------------------------------------------------------------
# the block container


@dataclass(frozen=True, eq=False)
class Block:
    r"""One component of a structural model: a small state-space block.

    .. math::

        x^{(b)}_t = F_b x^{(b)}_{t-1} + w^{(b)}_t, \quad w^{(b)}_t \sim N(0, Q_b),
        \qquad \text{contribution to } y_t = H_b x^{(b)}_t

    Parameters
    ----------
    name : str
        The component's name (``"trend"``, ``"seasonal"``, ...); the key of
        its contribution in :func:`components`.
    F : (k, k) array
        Transition of the block's k states.
    H : (1, k) array
        Loading of the states on the observation.
    Q : (k, k) array
        Covariance of the block's disturbances (symmetric PSD).
    state_names : tuple of k str
        A name for each state, in order.

    Arrays are copied and made read-only.
    """

    name: str
    F: np.ndarray
    H: np.ndarray
    Q: np.ndarray
    state_names: tuple = ()
    k: int = field(init=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty str; got {self.name!r}")
        F = as_float_array(self.F, "F")
        if F.ndim != 2 or F.shape[0] != F.shape[1] or F.shape[0] < 1:
            raise ValueError(f"F must have shape (k, k) with k >= 1; got {shape_str(F.shape)}")
        k = F.shape[0]
        H = as_float_array(self.H, "H")
        if H.shape != (1, k):
            raise ValueError(f"H must have shape (1, {k}); got {shape_str(H.shape)}")
        Q = as_float_array(self.Q, "Q")
        if Q.shape != (k, k):
            raise ValueError(f"Q must have shape ({k}, {k}); got {shape_str(Q.shape)}")
        check_covariance(Q, "Q")
        names = tuple(self.state_names) or tuple(f"{self.name}.{i}" for i in range(k))
        if len(names) != k or not all(isinstance(s, str) for s in names):
            raise ValueError(f"state_names must be {k} strings; got {self.state_names!r}")
        for attr, value in (("F", F), ("H", H), ("Q", Q), ("state_names", names), ("k", k)):
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
            object.__setattr__(self, attr, value)

    def __repr__(self) -> str:
        return f"Block({self.name!r}, k={self.k})"


# --------------------------------------------------------------------------
# validation of the scalar parameters


def _scalar(value, name: str) -> float:
    arr = as_float_array(value, name)
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a number; got an array of shape {shape_str(arr.shape)}")
    return float(arr)


def _variance(value, name: str) -> float:
    v = _scalar(value, name)
    if v < 0:
        raise ValueError(f"{name} must be a non-negative variance; got {v}")
    return v


def _name(name) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str; got {name!r}")
    return name


# --------------------------------------------------------------------------
# trend


def local_level(level_var, *, name: str = "level") -> Block:
    r"""The local level: a random walk, one state.

    .. math::

        \mu_t = \mu_{t-1} + \eta_t, \qquad \eta_t \sim N(0, \sigma^2_\eta)

    ``F = [[1]]``, ``H = [[1]]``, ``Q = [[level_var]]``.

    Parameters
    ----------
    level_var : float
        :math:`\sigma^2_\eta` (non-negative; 0 gives a constant level).
    name : str
        Name of the component.
    """
    q = _variance(level_var, "level_var")
    return Block(_name(name), F=[[1.0]], H=[[1.0]], Q=[[q]], state_names=(name,))


def local_linear_trend(level_var, slope_var, *, name: str = "trend") -> Block:
    r"""The local linear trend: a level that moves by a random-walk slope.

    .. math::

        \mu_t &= \mu_{t-1} + \beta_{t-1} + \eta_t, & \eta_t &\sim N(0, \sigma^2_\eta) \\
        \beta_t &= \beta_{t-1} + \zeta_t, & \zeta_t &\sim N(0, \sigma^2_\zeta)

    States ``(level, slope)``; ``F = [[1, 1], [0, 1]]``, ``H = [[1, 0]]``,
    ``Q = diag(level_var, slope_var)``. With ``level_var = 0`` it is the
    "smooth trend"; with both zero, a straight line.

    Parameters
    ----------
    level_var, slope_var : float
        :math:`\sigma^2_\eta` and :math:`\sigma^2_\zeta` (non-negative).
    name : str
        Name of the component.
    """
    q_level = _variance(level_var, "level_var")
    q_slope = _variance(slope_var, "slope_var")
    return Block(_name(name), F=[[1.0, 1.0], [0.0, 1.0]], H=[[1.0, 0.0]],
                 Q=np.diag([q_level, q_slope]),
                 state_names=(f"{name}.level", f"{name}.slope"))


# --------------------------------------------------------------------------
# seasonal


def seasonal_dummy(period, var, *, name: str = "seasonal") -> Block:
    r"""The dummy-form seasonal of period s: s - 1 states.

    .. math::

        \gamma_t = -\sum_{j=1}^{s-1} \gamma_{t-j} + \omega_t, \qquad
        \omega_t \sim N(0, \sigma^2_\omega)

    so any s consecutive effects sum to :math:`\omega_t`, zero on average.
    States :math:`(\gamma_t, \gamma_{t-1}, \ldots, \gamma_{t-s+2})`: ``F`` has
    a first row of -1 and ones below the diagonal, ``H = [[1, 0, ..., 0]]``,
    ``Q = var`` in the top-left entry and 0 elsewhere.

    Parameters
    ----------
    period : int
        Number of seasons s (at least 2), e.g. 12 for monthly data.
    var : float
        :math:`\sigma^2_\omega` (non-negative; 0 gives a fixed pattern).
    name : str
        Name of the component.
    """
    s = check_positive_int(period, "period")
    if s < 2:
        raise ValueError(f"period must be at least 2; got {s}")
    q = _variance(var, "var")
    k = s - 1
    F = np.zeros((k, k))
    F[0, :] = -1.0                                  # gamma_t = -(gamma_{t-1} + ... )
    F[np.arange(1, k), np.arange(k - 1)] = 1.0      # shift the lags down
    H = np.zeros((1, k))
    H[0, 0] = 1.0
    Q = np.zeros((k, k))
    Q[0, 0] = q
    names = (name,) + tuple(f"{name}.lag{j}" for j in range(1, k))
    return Block(_name(name), F=F, H=H, Q=Q, state_names=names)


def _rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, s], [-s, c]])


def seasonal_trig(period, var, harmonics=None, *, name: str = "seasonal") -> Block:
    r"""The trigonometric seasonal of period s with h harmonics.

    .. math::

        \gamma_t = \sum_{j=1}^{h} \gamma_{j,t}, \qquad
        \begin{pmatrix} \gamma_{j,t} \\ \gamma^*_{j,t} \end{pmatrix}
        = \begin{pmatrix} \cos\lambda_j & \sin\lambda_j \\
                          -\sin\lambda_j & \cos\lambda_j \end{pmatrix}
          \begin{pmatrix} \gamma_{j,t-1} \\ \gamma^*_{j,t-1} \end{pmatrix}
        + \begin{pmatrix} \omega_{j,t} \\ \omega^*_{j,t} \end{pmatrix},
        \qquad \lambda_j = \frac{2\pi j}{s},

    every disturbance :math:`N(0, \sigma^2_\omega)` and independent. Harmonic
    j is a sinusoid of period s/j. For even s the harmonic ``j = s/2`` has
    frequency :math:`\pi`; there :math:`\sin\lambda_j = 0`, the starred state
    never reaches :math:`\gamma_t`, and the block keeps one state,
    :math:`\gamma_{j,t} = -\gamma_{j,t-1} + \omega_{j,t}`. With all
    ``floor(s/2)`` harmonics the block has s - 1 states, as many as the dummy
    form, and without noise it spans the same patterns.

    statsmodels' ``freq_seasonal`` keeps two states for the frequency-pi
    harmonic; the extra one is unobserved and changes no likelihood.

    Parameters
    ----------
    period : int
        Number of seasons s (at least 2).
    var : float
        :math:`\sigma^2_\omega`, shared by every harmonic (non-negative).
    harmonics : int, optional
        Number of harmonics h, ``1 <= h <= floor(s/2)`` (default ``floor(s/2)``).
    name : str
        Name of the component.
    """
    s = check_positive_int(period, "period")
    if s < 2:
        raise ValueError(f"period must be at least 2; got {s}")
    q = _variance(var, "var")
    h_max = s // 2
    h = h_max if harmonics is None else check_positive_int(harmonics, "harmonics")
    if h > h_max:
        raise ValueError(f"harmonics must be at most floor(period / 2) = {h_max} "
                         f"for period {s}; got {h}")
    F_parts, H_parts, names = [], [], []
    for j in range(1, h + 1):
        if 2 * j == s:                               # frequency pi: one state
            F_parts.append(np.array([[-1.0]]))
            H_parts.append([1.0])
            names.append(f"{name}.{j}")
        else:
            F_parts.append(_rotation(2 * np.pi * j / s))
            H_parts.append([1.0, 0.0])
            names += [f"{name}.{j}", f"{name}.{j}*"]
    F = scipy.linalg.block_diag(*F_parts)
    H = np.concatenate(H_parts)[None, :]
    Q = q * np.eye(F.shape[0])
    return Block(_name(name), F=F, H=H, Q=Q, state_names=tuple(names))


# --------------------------------------------------------------------------
# cycle and irregular


def cycle(frequency, damping, var, *, name: str = "cycle") -> Block:
    r"""The stochastic cycle: a damped rotation driven by noise.

    .. math::

        \begin{pmatrix} c_t \\ c^*_t \end{pmatrix}
        = \rho \begin{pmatrix} \cos\lambda_c & \sin\lambda_c \\
                               -\sin\lambda_c & \cos\lambda_c \end{pmatrix}
          \begin{pmatrix} c_{t-1} \\ c^*_{t-1} \end{pmatrix}
        + \begin{pmatrix} \kappa_t \\ \kappa^*_t \end{pmatrix},
        \qquad \kappa_t, \kappa^*_t \sim N(0, \sigma^2_\kappa),

    observed through :math:`c_t`. The period is :math:`2\pi / \lambda_c`
    steps; for :math:`\rho < 1` the cycle is stationary with variance
    :math:`\sigma^2_\kappa / (1 - \rho^2)`. statsmodels' ``cycle=True,
    damped_cycle=True, stochastic_cycle=True`` is the same block, with
    parameters ``frequency.cycle``, ``damping.cycle`` and ``sigma2.cycle``.

    Parameters
    ----------
    frequency : float
        :math:`\lambda_c` in radians per step, ``0 < frequency <= pi``.
    damping : float
        :math:`\rho`, ``0 <= damping <= 1`` (1: undamped).
    var : float
        :math:`\sigma^2_\kappa` (non-negative).
    name : str
        Name of the component.
    """
    lam = _scalar(frequency, "frequency")
    if not 0.0 < lam <= np.pi:
        raise ValueError(f"frequency must be in (0, pi] radians per step; got {lam}")
    rho = _scalar(damping, "damping")
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"damping must be in [0, 1]; got {rho}")
    q = _variance(var, "var")
    return Block(_name(name), F=rho * _rotation(lam), H=[[1.0, 0.0]], Q=q * np.eye(2),
                 state_names=(name, f"{name}*"))


def irregular(var, *, name: str = "irregular") -> Block:
    r"""White noise written as a state: ``F = [[0]]``, ``H = [[1]]``, ``Q = [[var]]``.

    .. math::

        \varepsilon_t = 0 \cdot \varepsilon_{t-1} + \epsilon_t, \qquad
        \epsilon_t \sim N(0, \sigma^2_\varepsilon)

    The same model as putting :math:`\sigma^2_\varepsilon` in ``R``
    (``combine(..., irregular_var=var)``), with the same likelihood; as a
    state, the smoother also estimates each :math:`\varepsilon_t`. Use one or
    the other, not both.

    Parameters
    ----------
    var : float
        :math:`\sigma^2_\varepsilon` (non-negative).
    name : str
        Name of the component.
    """
    q = _variance(var, "var")
    return Block(_name(name), F=[[0.0]], H=[[1.0]], Q=[[q]], state_names=(name,))


# --------------------------------------------------------------------------
# combining blocks and taking them apart


def _check_blocks(blocks, where: str) -> tuple:
    if len(blocks) == 1 and isinstance(blocks[0], (list, tuple)):
        raise TypeError(f"{where}: pass the blocks as separate arguments, "
                        f"{where}(*blocks, ...), not one list")
    if not blocks:
        raise ValueError(f"{where} needs at least one block")
    for i, b in enumerate(blocks):
        if not isinstance(b, Block):
            raise TypeError(f"blocks[{i}] must be a kflib.structural.Block; "
                            f"got {type(b).__name__}")
    return tuple(blocks)


def _as_block_sequence(blocks) -> tuple:
    if isinstance(blocks, Block):
        blocks = (blocks,)
    if not isinstance(blocks, (list, tuple)):
        raise TypeError("blocks must be a list or tuple of kflib.structural.Block; "
                        f"got {type(blocks).__name__}")
    blocks = _check_blocks(tuple(blocks), "blocks")
    names = [b.name for b in blocks]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"block names must be unique; {', '.join(map(repr, repeated))} "
                         "repeated (pass name=... when making the blocks)")
    return blocks


def combine(*blocks, irregular_var, x0=None, P0=None) -> LinearGaussianSSM:
    r"""Put blocks side by side: one linear-Gaussian state-space model.

    .. math::

        F = \operatorname{diag}(F_1, \ldots, F_B), \quad
        Q = \operatorname{diag}(Q_1, \ldots, Q_B), \quad
        H = \begin{pmatrix} H_1 & \cdots & H_B \end{pmatrix}, \quad
        R = \sigma^2_\varepsilon

    so that :math:`y_t = \sum_b H_b x^{(b)}_t + \varepsilon_t`. The states are
    the blocks' states in the order given.

    Parameters
    ----------
    *blocks : Block
        The components, e.g. ``local_linear_trend(...)``, ``seasonal_dummy(...)``.
    irregular_var : float
        :math:`\sigma^2_\varepsilon`, the variance of the irregular (``R``).
    x0 : (n,) array, optional
        Mean of the state at time 0 (default zeros).
    P0 : (n, n) array, optional
        Covariance of the state at time 0 (default ``1e6 I``, a vague prior).
        The first filter step predicts ``x_{1|0} = F x0``, ``P_{1|0} = F P0 F' + Q``.

    Returns
    -------
    LinearGaussianSSM
        With ``n = sum(b.k)`` states and ``m = 1``.
    """
    blocks = _check_blocks(blocks, "combine")
    r = _variance(irregular_var, "irregular_var")
    F = scipy.linalg.block_diag(*(b.F for b in blocks))
    Q = scipy.linalg.block_diag(*(b.Q for b in blocks))
    H = np.concatenate([b.H for b in blocks], axis=1)
    n = F.shape[0]
    x0 = np.zeros(n) if x0 is None else x0
    P0 = VAGUE * np.eye(n) if P0 is None else P0
    return LinearGaussianSSM(F=F, H=H, Q=Q, R=[[r]], x0=x0, P0=P0)


def block_slices(blocks) -> dict:
    """Where each block's states sit in the combined state: ``{name: slice}``.

    Parameters
    ----------
    blocks : sequence of Block
        The blocks, in the order given to :func:`combine`; names must be unique.
    """
    blocks = _as_block_sequence(blocks)
    out, start = {}, 0
    for b in blocks:
        out[b.name] = slice(start, start + b.k)
        start += b.k
    return out


def state_names(blocks) -> tuple:
    """The names of the combined model's states, in order."""
    blocks = _as_block_sequence(blocks)
    return tuple(s for b in blocks for s in b.state_names)


def _total_states(blocks) -> int:
    return sum(b.k for b in blocks)


def components(blocks, x) -> dict:
    r"""Each component's contribution to the observation, ``H_b x^{(b)}``.

    .. math::

        y_t = \sum_b \underbrace{H_b x^{(b)}_t}_{\text{component } b} + \varepsilon_t

    Parameters
    ----------
    blocks : sequence of Block
        The blocks, in the order given to :func:`combine`; names must be unique.
    x : (..., n) array
        States of the combined model: smoothed means ``(T, n)``, filtered
        means, simulated states, a batch ``(batch, T, n)``, or one state ``(n,)``.

    Returns
    -------
    dict
        ``{name: (...) array}``, the leading axes of ``x`` kept. The
        components add up to ``x @ H.T`` of the combined model.
    """
    blocks = _as_block_sequence(blocks)
    n = _total_states(blocks)
    x = as_float_array(x, "x", allow_nan=True)
    if x.ndim < 1 or x.shape[-1] != n:
        raise ValueError(f"x must have shape (..., {n}), one column per state of the "
                         f"blocks; got {shape_str(x.shape)}")
    return {name: x[..., sl] @ b.H[0]
            for b, (name, sl) in zip(blocks, block_slices(blocks).items())}


def component_variances(blocks, P) -> dict:
    r"""The variance of each component, ``H_b P_{bb} H_b'``.

    Parameters
    ----------
    blocks : sequence of Block
        The blocks, in the order given to :func:`combine`; names must be unique.
    P : (..., n, n) array
        State covariances of the combined model, e.g. smoothed ``(T, n, n)``.

    Returns
    -------
    dict
        ``{name: (...) array}`` of variances (for bands: mean +- 2 sqrt(var)).
    """
    blocks = _as_block_sequence(blocks)
    n = _total_states(blocks)
    P = as_float_array(P, "P")
    if P.ndim < 2 or P.shape[-2:] != (n, n):
        raise ValueError(f"P must have shape (..., {n}, {n}); got {shape_str(P.shape)}")
    out = {}
    for b, (name, sl) in zip(blocks, block_slices(blocks).items()):
        h = b.H[0]
        out[name] = np.einsum("i,...ij,j->...", h, P[..., sl, sl], h)
    return out
