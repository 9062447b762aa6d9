"""Shared fixtures: seeded random models and an independent statsmodels reference."""

from __future__ import annotations

import numpy as np
import pytest

from kflib import LinearGaussianSSM


def random_cov(rng, k, floor=0.1):
    A = rng.standard_normal((k, k))
    return A @ A.T / k + floor * np.eye(k)


def random_model(rng, n, m, *, r=0, T=None, tv=False):
    """A random model with a stable-ish F; time-varying when ``tv`` (needs T)."""
    def F_draw():
        F = rng.standard_normal((n, n))
        return 0.95 * F / max(1.0, np.max(np.abs(np.linalg.eigvals(F))))

    if tv:
        F = np.stack([F_draw() for _ in range(T)])
        H = rng.standard_normal((T, m, n))
        Q = np.stack([random_cov(rng, n) for _ in range(T)])
        R = np.stack([random_cov(rng, m) for _ in range(T)])
        B = rng.standard_normal((T, n, r)) if r else None
    else:
        F, H = F_draw(), rng.standard_normal((m, n))
        Q, R = random_cov(rng, n), random_cov(rng, m)
        B = rng.standard_normal((n, r)) if r else None
    return LinearGaussianSSM(F=F, H=H, Q=Q, R=R, x0=rng.standard_normal(n),
                             P0=random_cov(rng, n), B=B)


def statsmodels_reference(model, y, u=None):
    """Filter and smooth with statsmodels, mapped to kflib's conventions.

    statsmodels' state at array index t is kflib's; its transition T_t maps
    index t to t + 1, so it is kflib's F at index t + 1. The known
    initialisation is a1 = F x0 + B u_1, P1 = F P0 F' + Q.
    """
    from statsmodels.tsa.statespace.mlemodel import MLEModel

    T, m = y.shape
    n = model.n

    def tv(A, base):  # kflib (T, ...) or (...) -> per-index list
        return [A[t] if A.ndim == base + 1 else A for t in range(T)]

    Fs, Hs, Qs, Rs = (tv(model.F, 2), tv(model.H, 2), tv(model.Q, 2), tv(model.R, 2))
    c = np.zeros((T, n))
    if model.B is not None:
        Bs = tv(model.B, 2)
        c = np.stack([Bs[t] @ u[t] for t in range(T)])
    a1 = Fs[0] @ model.x0 + c[0]
    P1 = Fs[0] @ model.P0 @ Fs[0].T + Qs[0]
    shift = lambda lst: np.stack(lst[1:] + lst[-1:], axis=-1)  # noqa: E731
    mod = MLEModel(y, k_states=n, k_posdef=n, initialization="known",
                   initial_state=a1, initial_state_cov=P1)
    mod.ssm["design"] = np.stack(Hs, axis=-1)
    mod.ssm["obs_cov"] = np.stack(Rs, axis=-1)
    mod.ssm["transition"] = shift(Fs)
    mod.ssm["selection"] = np.eye(n)
    mod.ssm["state_cov"] = shift(Qs)
    mod.ssm["state_intercept"] = np.concatenate([c[1:], c[-1:]]).T
    return mod.ssm.smooth()


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)
