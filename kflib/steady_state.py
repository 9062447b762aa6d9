"""The steady-state (time-invariant) Kalman filter from the Riccati equation.

Course: chapter 3, the gain (book/03-gain.md); exercise ps03-gain; tests:
test_steady_state.py.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ._inputs import check_model

__all__ = ["steady_state"]


def steady_state(model):
    r"""Steady-state covariances and gain of a time-invariant model.

    The predicted covariance solves the discrete algebraic Riccati equation

    .. math::

        P = F P F' - F P H' (H P H' + R)^{-1} H P F' + Q,

    and then ``K = P H' (H P H' + R)^{-1}`` and ``P_filt = (I - K H) P``.

    Parameters
    ----------
    model : LinearGaussianSSM
        Time-invariant; ``(F, H)`` detectable and ``(F, Q^{1/2})`` stabilisable
        for the limit to exist.

    Returns
    -------
    P_pred : (n, n) array
    K : (n, m) array
    P_filt : (n, n) array
    """
    model = check_model(model)
    if model.time_varying:
        raise ValueError("steady_state needs a time-invariant model; this one has "
                         f"time-varying matrices (T = {model.T})")
    F, H, Q, R = model.F, model.H, model.Q, model.R
    # The solution scales with Q and R together (P(sQ, sR) = s P(Q, R), the gain
    # does not change): solve at unit scale, where the solver's absolute
    # tolerances and its symplectic pencil behave, then scale back.
    s = max(float(np.abs(Q).max()), float(np.abs(R).max()))
    s = s if s > 0 else 1.0
    try:
        # scipy solves A'XA - X - A'XB (R + B'XB)^{-1} B'XA + Q = 0; the filter's
        # Riccati equation is its dual: A = F', B = H'.
        P = s * scipy.linalg.solve_discrete_are(F.T, H.T, Q / s, R / s)
    except (np.linalg.LinAlgError, ValueError) as exc:
        raise ValueError("the Riccati equation has no stabilising solution for this "
                         "model (check that (F, H) is detectable and that Q and R "
                         f"make the filter well posed): {exc}") from None
    P = 0.5 * (P + P.T)
    S = H @ P @ H.T + R
    if not np.all(np.linalg.eigvalsh(0.5 * (S + S.T)) > 0):
        raise ValueError("the steady-state innovation covariance S = H P H' + R is "
                         "singular, so the gain is undefined: R must be positive "
                         "definite, or Q must keep every observed direction uncertain "
                         "(here R and Q leave it certain, e.g. R = Q = 0)")
    # K = P H' S^{-1}
    K = np.linalg.solve(S, H @ P).T
    A = np.eye(model.n) - K @ H
    P_filt = A @ P @ A.T + K @ R @ K.T
    return P, K, 0.5 * (P_filt + P_filt.T)
