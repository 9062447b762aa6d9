"""The seeded random inputs of the exercises' hidden tests, defined once.

The hidden tests of an exercise notebook and the course's trusted check of the
same assignment (``grader/checks/<assignment>.py``) both take their random cases
from here, so the two cannot drift apart: same seeds, same order of draws, same
labels. Each function returns a list of ``(label, args)``, ``args`` as the part's
function takes them; the references are computed by whoever uses the cases.
The hidden tests use the default seed; the trusted check adds cases drawn with
seeds of its own, so that an answer that recognises these inputs gains nothing.

    >>> [label for label, _ in ps02_predict()]
    ['n=1', 'n=2', 'n=3', 'n=4', 'n=4', 'n=3']
"""

from __future__ import annotations

import numpy as np

from .model import LinearGaussianSSM
from .simulate import simulate

__all__ = ["ps02_predict", "ps02_update", "ps02_filter", "ps02_missing"]


def _stable(rng, n):
    """A random (n, n) transition matrix with spectral radius in [0.5, 1.05)."""
    F = rng.normal(size=(n, n))
    return F * rng.uniform(0.5, 1.05) / np.max(np.abs(np.linalg.eigvals(F)))


def _random_model(rng, n, m):
    F = _stable(rng, n)
    H = rng.normal(size=(m, n))
    A = rng.normal(size=(n, n))
    Q = A @ A.T / n + 0.1 * np.eye(n)
    C = rng.normal(size=(m, m))
    R = C @ C.T / m + 0.1 * np.eye(m)
    B = rng.normal(size=(n, n))
    P0 = B @ B.T
    x0 = rng.normal(scale=3.0, size=n)
    return LinearGaussianSSM(F, H, Q, R, x0, P0)


def _model_args(model, y):
    return tuple(np.array(a) for a in (model.F, model.H, model.Q, model.R, model.x0, model.P0, y))


# --------------------------------------------------------------------------
# ps02-kalman-filter


def ps02_predict(seed=2101):
    """(a) kf_predict(x, P, F, Q): random models with one to four states."""
    rng = np.random.default_rng(seed)
    out = []
    for n in [1, 2, 3, 4, 4, 3]:
        F = _stable(rng, n)
        A = rng.normal(size=(n, n))
        Q = A @ A.T / n + 0.1 * np.eye(n)
        B = rng.normal(size=(n, n))
        P = B @ B.T
        Q, P = 0.5 * (Q + Q.T), 0.5 * (P + P.T)
        x = rng.normal(scale=3.0, size=n)
        out.append((f"n={n}", (x, P, F, Q)))
    return out


def ps02_update(seed=2202):
    """(b) kf_update(x_pred, P_pred, y, H, R): one to four states, one to three sensors."""
    rng = np.random.default_rng(seed)
    out = []
    for n, m in [(1, 1), (1, 3), (2, 1), (3, 2), (2, 3), (4, 1), (4, 3), (3, 3)]:
        B = rng.normal(size=(n, n))
        P = B @ B.T + 0.01 * np.eye(n)
        x = rng.normal(scale=3.0, size=n)
        H = rng.normal(size=(m, n))
        C = rng.normal(size=(m, m))
        R = C @ C.T / m + 0.1 * np.eye(m)
        y = H @ x + rng.normal(scale=2.0, size=m)
        out.append((f"n={n}, m={m}", (x, P, y, H, R)))
    return out


def ps02_filter(seed=2303):
    """(c) kalman_filter_loglik(F, H, Q, R, x0, P0, y): random models and simulated data."""
    rng = np.random.default_rng(seed)
    out = []
    for n, m, T in [(1, 1, 1), (1, 1, 20), (2, 1, 15), (1, 3, 10), (3, 2, 25), (2, 3, 12),
                    (4, 1, 30), (4, 3, 30)]:
        model = _random_model(rng, n, m)
        _, y = simulate(model, T, rng=rng)
        out.append((f"n={n}, m={m}, T={T}", _model_args(model, y)))
    return out


def ps02_missing(seed=2404):
    """(d) kalman_filter_missing(F, H, Q, R, x0, P0, y): as (c), with gaps -- fully missing
    steps (the first one too), partly missing ones, and a series never observed."""
    rng = np.random.default_rng(seed)
    out = []
    for n, m, T in [(1, 1, 1), (1, 1, 20), (2, 1, 15), (1, 3, 10), (3, 2, 25), (2, 3, 12),
                    (4, 1, 30), (4, 3, 30), (3, 3, 6)]:
        model = _random_model(rng, n, m)
        _, y = simulate(model, T, rng=rng)
        if T == 6:
            y[:] = np.nan                           # nothing observed at all
        elif T > 1:
            y_full = y.copy()
            y[rng.uniform(size=(T, m)) < 0.3] = np.nan
            y[0] = y[T // 2] = np.nan               # fully missing steps, the first one too
            if m > 1:                               # partly missing steps
                y[1], y[2] = y_full[1], y_full[2]
                y[1, 0] = y[2, 1:] = np.nan          # m - 1 and 1 observed
        label = f"n={n}, m={m}, T={T}, {int(np.isnan(y).sum())} of {T * m} values missing"
        out.append((label, _model_args(model, y)))
    return out
