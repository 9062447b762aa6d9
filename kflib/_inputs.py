"""Checking and shaping the data arrays (observations and controls)."""

from __future__ import annotations

import numpy as np

from ._checks import as_float_array, shape_str
from .model import LinearGaussianSSM

__all__ = ["at", "as_observations", "as_controls", "check_model"]


def at(A: np.ndarray | None, t: int, base_ndim: int = 2):
    """The matrix in force at array index ``t`` (time-varying or not)."""
    if A is None or A.ndim == base_ndim:
        return A
    return A[t]


def check_model(model) -> LinearGaussianSSM:
    if not isinstance(model, LinearGaussianSSM):
        raise TypeError("model must be a kflib.LinearGaussianSSM; got "
                        f"{type(model).__name__}")
    return model


def as_observations(model: LinearGaussianSSM, y) -> tuple[np.ndarray, bool]:
    """Return ``y`` as a (Bt, T, m) float array and whether it was a batch.

    A 1-D ``y`` is accepted when m == 1 (it is read as (T, 1)).
    """
    y = as_float_array(y, "y", allow_nan=True)
    m = model.m
    if y.ndim == 1 and m == 1:
        y = y[:, None]
    if y.ndim not in (2, 3) or y.shape[-1] != m:
        raise ValueError(f"y must have shape (T, {m}) or (batch, T, {m}); "
                         f"got {shape_str(y.shape)}")
    batched = y.ndim == 3
    if not batched:
        y = y[None]
    if y.shape[1] < 1:
        raise ValueError("y must hold at least one time step; got T = 0")
    if model.T is not None and model.T != y.shape[1]:
        raise ValueError(f"the model's time-varying matrices have T = {model.T} steps "
                         f"but y has T = {y.shape[1]}")
    return y, batched


def as_controls(model: LinearGaussianSSM, u, batch: int, T: int,
                batched: bool) -> np.ndarray | None:
    """Return controls as a (Bt, T, r) array, or None for a model without B."""
    if model.B is None:
        if u is not None:
            raise ValueError("u was given but the model has no control matrix B")
        return None
    if u is None:
        raise ValueError(f"the model has a control matrix B, so u of shape "
                         f"({T}, {model.r}) is required")
    u = as_float_array(u, "u")
    r = model.r
    if u.ndim == 1 and r == 1:
        u = u[:, None]
    if u.ndim == 2 and u.shape == (T, r):
        return np.broadcast_to(u, (batch, T, r))
    if batched and u.shape == (batch, T, r):
        return u
    expected = f"({T}, {r})" + (f" or ({batch}, {T}, {r})" if batched else "")
    raise ValueError(f"u must have shape {expected}; got {shape_str(u.shape)}")
