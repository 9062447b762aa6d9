"""Drawing state and observation paths from a linear-Gaussian model.

Course: chapter 1 (book/01-state-space.md); exercise ps01-state-space; tests:
test_simulate_and_models.py.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_positive_int
from ._inputs import as_controls, at, check_model

__all__ = ["simulate", "psd_sqrt"]


def psd_sqrt(C: np.ndarray) -> np.ndarray:
    """A factor L with L L' = C for a symmetric PSD C (singular allowed).

    Cholesky when C is positive definite, a symmetric eigen-square-root otherwise.
    Works on stacks of matrices.
    """
    try:
        return np.linalg.cholesky(C)
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(C)
        return V * np.sqrt(np.clip(w, 0.0, None))[..., None, :]


def simulate(model, T: int, rng=None, u=None):
    r"""Draw one path of states and observations.

    ``x_0 ~ N(x0, P0)``, then for t = 1..T: ``x_t = F x_{t-1} + B u_t + c_t + w_t``,
    ``y_t = H x_t + d_t + v_t`` with ``w_t ~ N(0, Q)``, ``v_t ~ N(0, R)``.
    For a model started at time 1, ``x_1 ~ N(a1, P1)`` instead (and the
    transition at array index 0 is not used). A diffuse start has no
    distribution to draw from: give such a model a finite ``a1, P1`` first.

    Parameters
    ----------
    model : LinearGaussianSSM
    T : int
        Number of time steps.
    rng : numpy.random.Generator or int, optional
        Source of randomness (an int seeds a new generator). Pass one for
        reproducible draws.
    u : (T, r) array, optional
        Controls; required exactly when the model has ``B``.

    Returns
    -------
    x : (T, n) array
        States x_1..x_T.
    y : (T, m) array
        Observations y_1..y_T.
    """
    model = check_model(model)
    if model.diffuse is not None:
        raise ValueError("cannot simulate a model with a diffuse start (its diffuse states "
                         "have no distribution to draw from); give it a finite start "
                         "first, e.g. model.replace(a1=..., P1=..., diffuse=None)")
    T = check_positive_int(T, "T")
    if model.T is not None and model.T != T:
        raise ValueError(f"the model's time-varying matrices have T = {model.T} steps "
                         f"but T = {T} was asked for")
    if rng is None or isinstance(rng, (int, np.integer)):
        rng = np.random.default_rng(rng)
    elif not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator or an int seed; got "
                        f"{type(rng).__name__}")
    u = as_controls(model, u, 1, T, False)
    n, m = model.n, model.m

    # Draw all standard normals first, in a fixed order: x_0, then w, then v.
    z0 = rng.standard_normal(n)
    zw = rng.standard_normal((T, n))
    zv = rng.standard_normal((T, m))
    Lq = psd_sqrt(model.Q)
    Lr = psd_sqrt(model.R)
    w = np.einsum("...ij,tj->ti", Lq, zw) if Lq.ndim == 2 else np.einsum("tij,tj->ti", Lq, zw)
    v = np.einsum("...ij,tj->ti", Lr, zv) if Lr.ndim == 2 else np.einsum("tij,tj->ti", Lr, zv)

    x = np.empty((T, n))
    time1 = model.x0 is None
    state = (model.a1 + psd_sqrt(model.P1) @ z0) if time1 else \
        (model.x0 + psd_sqrt(model.P0) @ z0)
    for t in range(T):
        if t > 0 or not time1:
            state = at(model.F, t) @ state + w[t]
            if u is not None:
                state = state + at(model.B, t) @ u[0, t]
            if model.c is not None:
                state = state + at(model.c, t, 1)
        x[t] = state
    H = model.H
    y = (x @ H.T if H.ndim == 2 else np.einsum("tij,tj->ti", H, x)) + v
    if model.d is not None:
        y = y + model.d
    return x, y
