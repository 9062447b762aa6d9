"""Input validation shared by every kflib entry point.

One place turns user input into float arrays and says exactly what is wrong
when it cannot: the argument's name, the shape expected and the shape given.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["as_float_array", "check_shape", "check_finite", "check_covariance",
           "shape_str", "check_real", "freeze_arrays"]


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
    mask = None
    if np.ma.isMaskedArray(value):
        # a masked entry is a missing value, never the number stored under it
        mask = np.ma.getmaskarray(value)
        value = np.ma.getdata(value)
    try:
        arr = np.asarray(value)
    except ValueError as exc:
        if "inhomogeneous" in str(exc) or "sequence" in str(exc):
            raise ValueError(f"{name} is ragged: its rows have different lengths; "
                             "give a rectangular array") from None
        raise TypeError(f"{name} must be a numeric array; got {type(value).__name__} "
                        f"that numpy cannot read ({exc})") from None
    if arr.dtype == object or arr.dtype.kind in "USVbmM" or arr.dtype.kind == "c":
        kind = {"b": "bool", "c": "complex"}.get(arr.dtype.kind, str(arr.dtype))
        hint = ("; dates and durations are not data: convert them to numbers"
                if arr.dtype.kind in "mM" else "")
        raise TypeError(f"{name} must be a real numeric array; got dtype {kind}{hint}")
    arr = np.array(arr, dtype=np.float64)  # always a private copy
    if mask is not None and mask.any():
        if not allow_nan:
            bad = tuple(int(i) for i in np.argwhere(mask)[0])
            raise ValueError(f"{name} has masked entries (the first at index {bad}); "
                             f"only observations may be missing, {name} must be complete")
        arr[mask] = np.nan
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


# A covariance may be off symmetric by SYM_RTOL, and have eigenvalues down to
# -PSD_RTOL, of its own scale (largest |entry|, largest |eigenvalue|): rounding
# in a computed covariance is about 1e-16 of that, whatever the units.
SYM_RTOL = 1e-10
PSD_RTOL = 1e-11


def check_covariance(arr: np.ndarray, name: str, *, rtol: float = SYM_RTOL) -> None:
    """Reject a matrix (or a stack of them) that is not symmetric PSD.

    Both tests are relative to each matrix's own scale, so that a model in
    small units (Q ~ 1e-5, R ~ 1e-12) is judged as strictly as one in large
    ones; a zero matrix and an exactly singular PSD one pass.
    """
    if arr.size == 0:
        return
    n = arr.shape[-1]
    mats = arr.reshape(-1, n, n)
    stacked = arr.ndim > 2
    scale = np.abs(mats).max(axis=(-1, -2))
    asym = np.abs(mats - np.swapaxes(mats, -1, -2)).max(axis=(-1, -2))
    bad = np.flatnonzero(asym > rtol * scale)
    if bad.size:
        i = int(bad[0])
        where = f" (at time index {i})" if stacked else ""
        raise ValueError(f"{name} must be symmetric{where}; largest |{name} - {name}'| is "
                         f"{asym[i]:.3g}, against entries up to {scale[i]:.3g}")
    eig = np.linalg.eigvalsh(0.5 * (mats + np.swapaxes(mats, -1, -2)))
    top = np.abs(eig).max(-1)
    bad = np.flatnonzero(eig[:, 0] < -PSD_RTOL * top)
    if bad.size:
        i = int(bad[0])
        where = f" (at time index {i})" if stacked else ""
        raise ValueError(f"{name} must be positive semidefinite{where}; its smallest "
                         f"eigenvalue is {eig[i, 0]:.3g} (largest {eig[i, -1]:.3g})")


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1; got {value}")
    return int(value)


def check_real(value, name: str, *, low: float | None = None, high: float | None = None,
               low_open: bool = False) -> float:
    """``value`` as a float, or a ``TypeError``/``ValueError`` naming ``name``.

    A real number (a Python or numpy scalar, or a 0-d array; not a bool),
    finite, and within ``[low, high]`` (``(low, high]`` with ``low_open``).
    """
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}"
                        + (f" {value!r}" if isinstance(value, (str, bytes)) else ""))
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite; got {v}")
    if (low is not None and (v < low or (low_open and v == low))) or \
            (high is not None and v > high):
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        interval = ("(" if low_open or low is None else "[") + f"{lo}, {hi}" + \
            (")" if high is None else "]")
        raise ValueError(f"{name} must be in {interval}; got {v:g}")
    return v


def freeze_arrays(result) -> None:
    """Make every array field of a frozen result dataclass read-only.

    A writeable array is swapped for a read-only view of it, so that an
    array the caller also holds is never changed itself.
    """
    import dataclasses

    for f in dataclasses.fields(result):
        value = getattr(result, f.name, None)
        if isinstance(value, np.ndarray) and value.flags.writeable:
            view = value.view()
            view.flags.writeable = False
            object.__setattr__(result, f.name, view)
