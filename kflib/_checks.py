"""Input validation shared by every kflib entry point.

One place turns user input into float arrays and says exactly what is wrong
when it cannot: the argument's name, the shape expected and the shape given.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["as_float_array", "check_shape", "check_finite", "check_covariance",
           "shape_str"]


def shape_str(shape) -> str:
    """Format a shape the way numpy prints it, with symbolic sizes allowed."""
    parts = [str(s) for s in shape]
    if len(parts) == 1:
        return f"({parts[0]},)"
    return "(" + ", ".join(parts) + ")"


def as_float_array(value, name: str, *, allow_nan: bool = False) -> np.ndarray:
    """Convert ``value`` to a float64 array or raise ``TypeError``.

    Booleans, strings, objects and complex numbers are refused: a Kalman
    filter over them is always a mistake.
    """
    if value is None:
        raise TypeError(f"{name} must be a numeric array; got None")
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array; got {type(value).__name__}")
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind in "USVb" or arr.dtype.kind == "c":
        kind = {"b": "bool", "c": "complex"}.get(arr.dtype.kind, str(arr.dtype))
        raise TypeError(f"{name} must be a real numeric array; got dtype {kind}")
    arr = np.array(arr, dtype=np.float64)  # always a private copy
    if not allow_nan:
        check_finite(arr, name)
    elif np.isinf(arr).any():
        raise ValueError(f"{name} contains inf; mark missing values with NaN")
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        where = f" at index {tuple(int(i) for i in bad)}" if arr.ndim else ""
        raise ValueError(f"{name} contains NaN or inf{where}")


def check_shape(arr: np.ndarray, name: str, *expected) -> None:
    """Raise ``ValueError`` unless ``arr.shape`` is one of ``expected``.

    Each expected shape is a tuple of ints (or ``None`` for "any size").
    """
    for shape in expected:
        if arr.ndim == len(shape) and all(s is None or s == a
                                          for s, a in zip(shape, arr.shape)):
            return
    options = " or ".join(shape_str(["T" if s is None else s for s in shape])
                          for shape in expected)
    raise ValueError(f"{name} must have shape {options}; got {shape_str(arr.shape)}")


def check_covariance(arr: np.ndarray, name: str, *, rtol: float = 1e-10) -> None:
    """Reject a matrix (or a stack of them) that is not symmetric PSD."""
    scale = max(float(np.max(np.abs(arr))), 1.0) if arr.size else 1.0
    asym = np.max(np.abs(arr - np.swapaxes(arr, -1, -2))) if arr.size else 0.0
    if asym > rtol * scale:
        raise ValueError(f"{name} must be symmetric; largest |{name} - {name}'| is {asym:.3g}")
    if arr.size == 0:
        return
    eig_min = float(np.min(np.linalg.eigvalsh(arr)))
    if eig_min < -1e-9 * scale:
        raise ValueError(f"{name} must be positive semidefinite; "
                         f"its smallest eigenvalue is {eig_min:.3g}")


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1; got {value}")
    return int(value)
