r"""Parallel-in-time Kalman filter and RTS smoother (associative scans).

Särkkä and García-Fernández (2021) write each filter step as an element

.. math::

    a_t = (A_t, b_t, C_t, \eta_t, J_t),

the Gaussian ``p(x_t | x_{t-1}, y_t) = N(A_t x_{t-1} + b_t, C_t)`` together
with the likelihood of ``y_t`` as a function of ``x_{t-1}``, in information
form ``exp(-x'J_t x / 2 + \eta_t' x)``. For step t, with ``c_t = B u_t``,

.. math::

    S &= H Q H' + R,  & K &= Q H' S^{-1},    & A_t &= (I - K H) F, \\
    b_t &= c_t + K (y_t - H c_t),  & C_t &= (I - K H) Q, &
    \eta_t &= F' H' S^{-1} (y_t - H c_t), \quad J_t = F' H' S^{-1} H F.

The first element carries the prior: it is the formula above with ``F = 0``,
``c = F x_0 + B u_1`` and ``Q = F P_0 F' + Q``, so that ``A = 0, J = 0``. Two
elements combine by the associative operator

.. math::

    M &= I + C_i J_j, \\
    A_{ij} &= A_j M^{-1} A_i, \quad
    b_{ij} = A_j M^{-1} (b_i + C_i \eta_j) + b_j, \quad
    C_{ij} = A_j M^{-1} C_i A_j' + C_j, \\
    \eta_{ij} &= A_i' M'^{-1} (\eta_j - J_j b_i) + \eta_i, \quad
    J_{ij} = A_i' M'^{-1} J_j A_i + J_i,

and the prefix ``a_1 * ... * a_t`` has ``b = x_{t|t}`` and ``C = P_{t|t}``.
For the smoother the elements are ``(E_t, g_t, L_t)`` with the RTS gain
``E_t = G_t = P_{t|t} F' P_{t+1|t}^{-1}``, ``g_t = x_{t|t} - E_t x_{t+1|t}``,
``L_t = P_{t|t} - E_t P_{t+1|t} E_t'`` (the last one ``(0, x_{T|T}, P_{T|T})``),
combined from the end by ``(E_i E_j, E_i g_j + g_i, E_i L_j E_i' + L_i)``.

A missing observation needs no special case: with the rows of H of the
missing components set to zero and those components given unit variance
(as :func:`kflib.filter.gaussian_update` does), an element with nothing
observed is the pure prediction ``(F, c, Q, 0, 0)``.

How it is computed in numpy. Every stack of small matrices is held with the
matrix axes *first* and time *last*, ``(n, n, batch, T)`` and C-ordered, so
that the products of the element algebra are ``einsum`` calls whose inner
loops run over long contiguous time axes: for 2 x 2 matrices this is about
ten times faster than ``matmul`` on a ``(T, 2, 2)`` stack (one tiny product
per matrix) and fifty times faster than ``einsum`` on it; writing the 2 x 2
products out entry by entry is no faster. No per-matrix LAPACK call is made
(those cost about a microsecond each): ``M = I + C_i J_j`` has ``det M >= 1``
(its eigenvalues are ``1 + eig(C_i J_j) >= 1``) and is inverted in closed
form for n <= 2 and by vectorised Gauss-Jordan elimination with partial
pivoting otherwise; ``S`` and ``P_{t+1|t}`` are symmetric positive definite
and are solved by a vectorised Cholesky factorisation. For a time-invariant
model the data-free parts of the elements depend on a step only through its
missing pattern, so they are computed once per pattern present.

The scan is the level-wise (Blelloch-style) recursion: combine neighbouring
pairs, scan the half-length sequence, then extend the prefixes to the even
positions. Each level is a handful of vectorised products over all pairs at
once, so there are only ``2 log2 T`` levels of Python work, and the work is
about T pair products and T extensions. In an extension the left operand is
a prefix (``A = 0``, ``J = 0``), so only ``b`` and ``C`` are computed.
Predicted moments, innovations, gains and the log-likelihood then follow
from the filtered moments in one vectorised pass.

The results equal :func:`kflib.filter.reference_filter` and
:func:`kflib.smoother.reference_smoother` (the step-by-step loops) to round-off
(about 1e-14 of the largest entry on 1e5 steps). When an
element's ``H Q H' + R`` is singular (for example ``R = 0`` and no process
noise along an observed direction), the element algebra does not apply and
:func:`scan_filter` runs the sequential filter instead.

Accuracy on ill-conditioned models (checked against 60-digit arithmetic in
tests/test_accuracy.py). An element's covariance is formed in the Joseph form
``(I - K H) Q (I - K H)' + K R K'``: the form ``Q - K H Q`` cancels and
loses digits in proportion to ``H Q H' / R`` (a vague start P0 = 1e16, a
tiny R). After a gap, a prefix is a rounded prediction ``F P F' + Q``; when
the next observation shrinks a variance by more than
:data:`kflib.filter.CANCEL_RATIO` (a vague start with missing values early
on), the sequential filter, which keeps those digits, takes the steps up to
there and the scan continues from its state.

Course: the performance appendix (book/appendix-performance.md); tests:
test_scan.py, test_dispatch.py.
"""

from __future__ import annotations

import numpy as np

from ._inputs import as_controls, as_observations, check_model
from .diffuse import exact_filter, exact_smoother
from .filter import CANCEL_RATIO, LOG_2PI, FilterResult, reference_filter, require_finite_result
from .model import intercepts_as_inputs
from .smoother import (CHOLESKY_RTOL, GAIN_ILL, SmootherResult, _gain, check_filter_result,
                       reference_smoother)

__all__ = ["scan_filter", "scan_smoother"]

# A Cholesky pivot below this fraction of its diagonal entry counts as singular.
PIVOT_RTOL = 1e-12


class _NotPositiveDefinite(ValueError):
    """A matrix that should be positive definite is singular to working precision."""


# -- small-matrix algebra on stacks held as (rows, cols, *stack) ------------------

def _mm(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Matrix product of two stacks (matrix axes first, stack axes broadcast)."""
    if A.shape[1] == 1 and A.ndim == B.ndim:
        return A * B                       # an outer product: plain broadcasting is faster
    sa, sb = A.shape[2:], B.shape[2:]
    if sa != sb and np.prod(sa) > 1 and np.prod(sb) > 1:
        # einsum's own broadcasting of (1, T) against (batch, T) is slow
        stack = np.broadcast_shapes(sa, sb)
        A = np.broadcast_to(A, A.shape[:2] + stack)
        B = np.broadcast_to(B, B.shape[:2] + stack)
    return np.einsum("ij...,jk...->ik...", A, B)


def _mv(A: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Matrix-vector product of a stack of matrices and a stack of vectors."""
    return np.einsum("ij...,j...->i...", A, v)


def _tr(A: np.ndarray) -> np.ndarray:
    """Transpose each matrix of a stack."""
    return A.swapaxes(0, 1)


def _sym(A: np.ndarray) -> np.ndarray:
    return 0.5 * (A + _tr(A))


def _eye(n: int, ndim: int) -> np.ndarray:
    """The identity as a stack with ``ndim`` broadcastable stack axes."""
    return np.eye(n).reshape((n, n) + (1,) * ndim)


def _inverse(M: np.ndarray) -> np.ndarray:
    """Inverse of each matrix of a stack of nonsingular matrices ``M``."""
    n = M.shape[0]
    if n == 1:
        return 1.0 / M
    if n == 2:
        # [[a, b], [c, d]]^{-1} = [[d, -b], [-c, a]] / (a d - b c)
        a, b, c, d = M[0, 0], M[0, 1], M[1, 0], M[1, 1]
        r = 1.0 / (a * d - b * c)
        out = np.empty(M.shape)
        np.multiply(d, r, out=out[0, 0])
        np.multiply(a, r, out=out[1, 1])
        np.negative(r, out=r)
        np.multiply(b, r, out=out[0, 1])
        np.multiply(c, r, out=out[1, 0])
        return out
    # Gauss-Jordan elimination with partial pivoting on [M | I], for every
    # matrix of the stack at once
    stack = M.shape[2:]
    aug = np.concatenate([M, np.broadcast_to(_eye(n, len(stack)), M.shape)], axis=1)
    for j in range(n):
        rows = j + np.argmax(np.abs(aug[j:, j]), axis=0)
        where = np.broadcast_to(rows[None, None], (1, 2 * n) + stack)
        pivot_row = np.take_along_axis(aug, where, axis=0)
        np.put_along_axis(aug, where, aug[j:j + 1].copy(), axis=0)
        aug[j] = pivot_row[0] / pivot_row[0, j]
        factors = aug[:, j].copy()
        factors[j] = 0.0
        aug -= factors[:, None] * aug[j][None]
    return aug[:, n:]


def _cholesky(S: np.ndarray, strict: bool = True):
    """Lower Cholesky factor of each matrix of a stack of SPD matrices ``S``.

    With ``strict``, raises ``_NotPositiveDefinite`` when a pivot is not clearly
    positive; otherwise returns ``(L, ok)``, ``ok`` marking the matrices whose
    pivots were (the others get unit pivots and a meaningless factor).
    """
    k = S.shape[0]
    L = np.zeros(S.shape)
    ok = np.ones(S.shape[2:], dtype=bool)
    for j in range(k):
        # L_jj^2 = S_jj - sum_p L_jp^2
        d = S[j, j] - (L[j, :j] ** 2).sum(0)
        good = d > PIVOT_RTOL * np.abs(S[j, j])
        if not good.all():
            if strict:
                raise _NotPositiveDefinite(j)
            ok &= good
            d = np.where(good, d, 1.0)
        L[j, j] = np.sqrt(d)
        for i in range(j + 1, k):
            # L_ij = (S_ij - sum_p L_ip L_jp) / L_jj
            L[i, j] = (S[i, j] - (L[i, :j] * L[j, :j]).sum(0)) / L[j, j]
    return L if strict else (L, ok)


def _cho_solve(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``S^{-1} B`` for ``S = L L'``; B is (k, p, *stack) or (k, *stack)."""
    k = L.shape[0]
    if k == 1:
        d = L[0, 0] * L[0, 0]
        return B / (d[None, None] if B.ndim == L.ndim else d[None])
    vec = B.ndim == L.ndim - 1
    if vec:
        B = B[:, None]
    Lk = L[:, :, None]                     # broadcast over the columns of B
    z = [None] * k
    for i in range(k):                     # forward: L z = B
        acc = B[i] - sum(Lk[i, p] * z[p] for p in range(i)) if i else B[i]
        z[i] = acc / Lk[i, i]
    x = [None] * k
    for i in reversed(range(k)):           # backward: L' x = z
        acc = z[i] - sum(Lk[p, i] * x[p] for p in range(i + 1, k)) if i < k - 1 else z[i]
        x[i] = acc / Lk[i, i]
    out = np.stack(np.broadcast_arrays(*x))
    return out[:, 0] if vec else out


def _logdet(L: np.ndarray) -> np.ndarray:
    """``log|S|`` from the Cholesky factor of S."""
    return 2.0 * np.log(np.stack([L[i, i] for i in range(L.shape[0])])).sum(0)


# -- the generic level-wise scan ------------------------------------------------

def _prefix_scan(elems, pair, extend, head):
    """All prefixes ``e_0 * e_1 * ... * e_k`` of an associative product.

    Parameters
    ----------
    elems : tuple of arrays
        The elements, each field with its sequence as the last axis.
    pair : callable
        ``pair(left, right)``: the product of two full elements.
    extend : callable
        ``extend(prefix, e)``: the product of a prefix (which contains
        ``e_0``) and a full element, as a prefix.
    head : callable
        ``head(e)``: the prefix fields of ``e_0`` itself.

    Returns
    -------
    tuple of arrays: the prefix fields, sequence last.
    """
    N = elems[0].shape[-1]
    if N == 1:
        return head(elems)
    half = N // 2
    # products of neighbours (e_0 e_1), (e_2 e_3), ... and their prefixes,
    # which are the prefixes ending at the odd positions 1, 3, 5, ...
    left = tuple(a[..., 0:2 * half:2] for a in elems)
    right = tuple(a[..., 1::2] for a in elems)
    odd = _prefix_scan(pair(left, right), pair, extend, head)
    # prefixes ending at the even positions 2, 4, ...: (prefix at 2k-1) e_{2k}
    n_even = (N + 1) // 2
    even = extend(tuple(p[..., :n_even - 1] for p in odd),
                  tuple(a[..., 2::2] for a in elems))
    first = head(tuple(a[..., :1] for a in elems))
    out = []
    for f, e, o in zip(first, even, odd):
        full = np.empty(np.broadcast_shapes(f.shape[:-1], o.shape[:-1]) + (N,))
        full[..., 0:1] = f
        full[..., 2::2] = e
        full[..., 1::2] = o
        out.append(full)
    return tuple(out)


# -- filtering elements and their product ----------------------------------------

def _filter_pair(ei, ej):
    """The product of two full filtering elements (see the module docstring)."""
    A_i, b_i, C_i, eta_i, J_i = ei
    A_j, b_j, C_j, eta_j, J_j = ej
    # M^{-1} = (I + C_i J_j)^{-1};  X = A_j M^{-1};  W' = A_i' M'^{-1}
    Minv = _inverse(_mm(C_i, J_j) + _eye(A_i.shape[0], C_i.ndim - 2))
    X = _mm(A_j, Minv)
    W = _mm(Minv, A_i)
    b, C = _through(X, b_i, C_i, ej)
    A = _mm(X, A_i)
    eta = _mv(_tr(W), eta_j - _mv(J_j, b_i)) + eta_i
    J = _sym(_mm(_tr(W), _mm(J_j, A_i))) + J_i
    return A, b, C, eta, J


def _filter_extend(prefix, ej):
    """A filtering prefix ``(x_{t|t}, P_{t|t})`` times a full element."""
    b_i, C_i = prefix
    A_j, J_j = ej[0], ej[4]
    X = _mm(A_j, _inverse(_mm(C_i, J_j) + _eye(A_j.shape[0], C_i.ndim - 2)))
    return _through(X, b_i, C_i, ej)


def _through(X, b_i, C_i, ej):
    """``b, C`` of a product: ``X (b_i + C_i eta_j) + b_j``, ``X C_i A_j' + C_j``."""
    A_j, b_j, C_j, eta_j, _ = ej
    b = _mv(X, b_i + _mv(C_i, eta_j)) + b_j
    C = _sym(_mm(_mm(X, C_i), _tr(A_j))) + C_j
    return b, C


def _filter_head(e):
    return e[1], e[2]


def _masked(H, R, obs):
    """H with the rows of missing components zeroed, and R with those
    components given unit variance, uncorrelated with the rest."""
    return H * obs[:, None], _masked_cov(R, obs)


def _masked_cov(R, obs):
    """A covariance of the observation with the missing components replaced
    by unit variance, uncorrelated with the rest (they then add 0 to log|S|)."""
    pair = obs[:, None] & obs[None, :]
    return np.where(pair, R, 0.0) + _eye(obs.shape[0], obs.ndim - 1) * ~obs[None, :]


def _element_covariances(F, Hm, Q, Rm):
    """The parts of the filtering elements that do not depend on the data.

    Returns A, C, J, the gain K = Q H' S^{-1} and Z' = F' H' S^{-1}, which map
    the element's innovation to b and eta.
    """
    HQ = _mm(Hm, Q)
    HF = _mm(Hm, F)
    # S = H Q H' + R
    chol = _cholesky(_sym(_mm(HQ, _tr(Hm)) + Rm))
    # K = Q H' S^{-1};  Z = S^{-1} H F
    K = _tr(_cho_solve(chol, HQ))
    Z = _cho_solve(chol, HF)
    # A = (I - K H) F;  J = F' H' S^{-1} H F;  C = (I - K H) Q in the Joseph form
    # (I - K H) Q (I - K H)' + K R K': Q - K H Q cancels when H Q H' >> R (a
    # vague start, a tiny R) and loses digits in proportion to H Q H' / R,
    # while the Joseph form is a sum of PSD terms that is exact to first order
    # in the rounding of K
    IKH = _eye(F.shape[0], F.ndim - 2) - _mm(K, Hm)
    A = _mm(IKH, F)
    C = _sym(_mm(_mm(IKH, Q), _tr(IKH)) + _mm(_mm(K, Rm), _tr(K)))
    J = _sym(_mm(_tr(HF), Z))
    return A, C, J, K, _tr(Z)


def _covariance_parts(time_varying: bool, F, H, Q, R, obs):
    """:func:`_element_covariances` for every step, (..., Bc, T).

    For a time-invariant model they depend on the step only through its
    missing pattern: they are computed once per pattern present and taken
    from that small table.
    """
    m = obs.shape[0]
    if time_varying or m > 16:
        Hm, Rm = _masked(H, R, obs)
        return _element_covariances(F, Hm, Q, Rm)
    codes = (obs * (1 << np.arange(m)).reshape(m, 1, 1)).sum(0)
    present = np.flatnonzero(np.bincount(codes.ravel(), minlength=1 << m))
    lookup = np.zeros(1 << m, dtype=np.intp)
    lookup[present] = np.arange(present.size)
    patterns = (present[None, :] >> np.arange(m)[:, None]) & 1 == 1      # (m, P)
    Hm, Rm = _masked(H[..., 0], R[..., 0], patterns)
    table = _element_covariances(F[..., 0], Hm, Q[..., 0], Rm)
    index = lookup[codes]
    return tuple(np.take(part, index, axis=-1) for part in table)


def _stack_last(A: np.ndarray | None, base_ndim: int = 2) -> np.ndarray | None:
    """A model matrix as a stack (rows, cols, 1, T or 1): batch and time last."""
    if A is None:
        return None
    if A.ndim == base_ndim:
        return A.reshape(A.shape + (1, 1))
    return np.ascontiguousarray(np.moveaxis(A, 0, -1))[..., None, :]


def _prepend(first: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """``first`` (one step, broadcast) then ``rest`` along the last axis.

    Always a C-ordered array: ``np.concatenate`` keeps the memory order of its
    inputs, and einsum is slow on stacks stored time-major.
    """
    out = np.empty(np.broadcast_shapes(first.shape[:-1], rest.shape[:-1])
                   + (1 + rest.shape[-1],))
    out[..., :1] = first
    out[..., 1:] = rest
    return out


def _time_first(A: np.ndarray, nb: int) -> np.ndarray:
    """(*matrix, Bc, T) -> (nb, T, *matrix), a read-only view when Bc = 1 < nb."""
    out = np.ascontiguousarray(np.moveaxis(A, (-2, -1), (0, 1)))
    if out.shape[0] != nb:
        out = np.broadcast_to(out, (nb,) + out.shape[1:])
    return out


@np.errstate(over="ignore", invalid="ignore", divide="ignore")  # overflow: checked, named
def scan_filter(model, y, u=None) -> FilterResult:
    """The Kalman filter by a parallel-in-time associative scan.

    Same inputs and result as :func:`kflib.filter.reference_filter` (to round-off):
    NaN marks a missing component, time-varying matrices and controls are
    supported, and a batch of series is filtered at once. Vectorised over
    time, it is fast on long series whatever the missing pattern or the time
    variation (see the module docstring for the algorithm).

    Parameters
    ----------
    model : LinearGaussianSSM
    y : (T, m) or (batch, T, m) array
        Observations; NaN marks a missing component.
    u : (T, r) or (batch, T, r) array, optional
        Controls; required exactly when the model has ``B``.

    Returns
    -------
    FilterResult
        For a batch whose series share one missing pattern, the covariance
        arrays (``P_pred, P_filt, S, K``) are read-only views shared by all
        series.
    """
    model = check_model(model)
    if model.x0 is None:           # a start at time 1: the exact initial filter
        return exact_filter(model, y, u)
    model, y, u = intercepts_as_inputs(model, y, u)
    y3, batched = as_observations(model, y)
    nb, T, m = y3.shape
    u3 = as_controls(model, u, nb, T, batched)
    try:
        out, loglik = _scan_filter(model, y3, u3)
        R_diag = np.diagonal(model.R, axis1=-2, axis2=-1)
        cut = _vague_missing(out, ~np.isnan(y3), exact_obs=bool((R_diag <= 0).any()),
                             R_diag=R_diag)
        if cut is not None:
            out, loglik = _sequential_head(model, y3, u3, cut)
    except _NotPositiveDefinite:
        # H Q H' + R (or S) singular: the sequential filter handles what it can
        # and raises its own error otherwise
        return reference_filter(model, y, u=u)
    if out is None:
        return reference_filter(model, y, u=u)
    require_finite_result(out, ~np.isnan(y3), loglik)
    if not batched:
        return FilterResult(**{k: v[0] for k, v in out.items()}, loglik=float(loglik[0]))
    return FilterResult(**out, loglik=loglik)


def _vague_missing(out, observed, exact_obs=False, R_diag=None):
    """The step after which the scan may be trusted, or None if it may throughout.

    An element product starts from the prefix covariance of the step before.
    After a step with something missing, that prefix is a prediction
    F P F' + Q, rounded; when the next observation then shrinks a variance
    by more than CANCEL_RATIO (a vague start, a gap early on), the digits it
    needs were lost in that rounding, which the sequential filter keeps
    (:func:`kflib.filter.update_from_factors`). Returns the last such step,
    or the last of the steps right after it that shrink a variance as much.
    """
    Pp, Pf = out["P_pred"], out["P_filt"]
    n = Pp.shape[-1]
    idx = np.arange(n)
    Pp = Pp[:1] if Pp.strides[0] == 0 else Pp
    Pf = Pf[:1] if Pf.strides[0] == 0 else Pf
    d_pred, d_filt = Pp[..., idx, idx], Pf[..., idx, idx]
    shrink = d_pred > CANCEL_RATIO * d_filt
    if exact_obs:
        # with R singular a variance left at rounding size is an exact
        # observation: nothing was lost
        shrink &= d_filt > 64 * np.finfo(float).eps * d_pred
    shrink = shrink.any(-1).any(0)                                        # (T,)
    if R_diag is not None:
        # An update that shrinks the predicted variance of an observed
        # combination H x from S - R down to about R cancels as many digits
        # as S / R, whether or not a diagonal entry of P shrinks as much
        # (a vague start of several states observed through one sum).
        S = out["S"]
        S = S[:1] if S.strides[0] == 0 else S
        d_S = np.diagonal(S, axis1=-2, axis2=-1)                         # (nb, T, m)
        d_R = np.broadcast_to(R_diag, d_S.shape[-2:]) if R_diag.ndim == 2 else R_diag
        obs = observed[:1] if observed.shape[0] != d_S.shape[0] else observed
        with np.errstate(invalid="ignore"):
            big = obs & (d_R > 0) & (d_S > CANCEL_RATIO * d_R)
        shrink = shrink | big.any(-1).any(0)
    gap_before = np.zeros_like(shrink)
    # the first step predicts from P0, just as a step after a gap predicts from
    # its rounded prefix: a vague start is as fragile as a gap early on
    gap_before[0] = True
    gap_before[1:] = (~observed[:, :-1]).any(-1).any(0)
    risky = np.flatnonzero(shrink & gap_before)
    if not risky.size:
        return None
    # and on through the steps that go on shrinking it (the start is still vague)
    cut = int(risky[-1])
    calm = np.flatnonzero(~shrink[cut:])
    return cut + int(calm[0]) - 1 if calm.size else len(shrink) - 1


def _psd(P: np.ndarray) -> np.ndarray:
    """A filtered covariance as the start of the scan's tail: symmetric, and
    with the rounding-size negative eigenvalues a long sequential run can leave
    set to zero (the tail starts from a valid covariance; nothing else moves)."""
    P = 0.5 * (P + P.T)
    w, V = np.linalg.eigh(P)
    if w[0] >= 0:
        return P
    return (V * np.maximum(w, 0.0)) @ V.T


def _sequential_head(model, y3, u3, cut):
    """The sequential filter for steps 0..cut, the scan from its state for the
    rest; (out, loglik) as :func:`_scan_filter`, or (None, None) when the
    series of a batch leave the cut with different covariances."""
    nb, T, m = y3.shape
    u_head = None if u3 is None else u3[:, :cut + 1]
    head = reference_filter(_time_slice(model, 0, cut + 1), y3[:, :cut + 1], u=u_head)
    if cut == T - 1:
        tail_out, tail_ll = None, 0.0
    else:
        P_cut = head.P_filt[:, -1]
        if not np.all(P_cut == P_cut[:1]):
            return None, None
        tail_model = _time_slice(model, cut + 1, T).replace(x0=np.zeros(model.n),
                                                            P0=_psd(P_cut[0]))
        tail_out, tail_ll = _scan_filter(tail_model, y3[:, cut + 1:],
                                         None if u3 is None else u3[:, cut + 1:],
                                         x0=head.x_filt[:, -1])
    out = {}
    for key in ("x_pred", "P_pred", "x_filt", "P_filt", "innovations", "S", "K"):
        part = np.asarray(getattr(head, key))
        if tail_out is not None:
            rest = tail_out[key]
            part = np.concatenate([np.broadcast_to(part, (nb,) + part.shape[1:]),
                                   np.broadcast_to(rest, (nb,) + rest.shape[1:])], axis=1)
        out[key] = part
    return out, np.asarray(head.loglik) + tail_ll


def _time_slice(model, start, stop):
    """The model for array indices start..stop-1 (time-varying matrices sliced)."""
    if not model.time_varying:
        return model
    arrays = {k: getattr(model, k) for k in ("F", "H", "Q", "R", "B")}
    return model.replace(**{k: A[start:stop] for k, A in arrays.items()
                            if A is not None and A.ndim == 3})


def _scan_filter(model, y3, u3, x0=None):
    """The scan; ``x0`` (nb, n) overrides the model's x0 per series."""
    nb, T, m = y3.shape
    n = model.n
    F, H, Q, R = (_stack_last(model.F), _stack_last(model.H), _stack_last(model.Q),
                  _stack_last(model.R))
    y = np.ascontiguousarray(np.moveaxis(y3, -1, 0))     # (m, nb, T)
    obs = ~np.isnan(y)
    if nb > 1 and (obs == obs[:, :1]).all():
        obs_cov = obs[:, :1]                             # one pattern: share covariances
    else:
        obs_cov = obs
    # controls c_t = B u_t, (n, nb, T)
    if u3 is None:
        c = np.zeros((n, 1, T))
    else:
        c = _mv(_stack_last(model.B), np.ascontiguousarray(np.moveaxis(u3, -1, 0)))

    # Elements for every step, then the first one again with the prior:
    # F -> 0, c -> F x0 + B u_1, Q -> F P0 F' + Q
    A, C, J, K, Zt = _covariance_parts(model.time_varying, F, H, Q, R, obs_cov)
    F0, Q0 = F[..., 0], Q[..., 0]
    x0c = model.x0.reshape(n, 1) if x0 is None else np.ascontiguousarray(np.asarray(x0).T)
    x1 = _mv(F0, x0c) + c[..., 0]
    P1 = _sym(_mm(_mm(F0, model.P0.reshape(n, n, 1)), _tr(F0))) + Q0
    Hm0, Rm0 = _masked(H[..., :1], R[..., :1], obs_cov[..., :1])
    parts0 = _element_covariances(np.zeros_like(F0), Hm0[..., 0], P1, Rm0[..., 0])
    for whole, first in zip((A, C, J, K, Zt), parts0):
        whole[..., 0] = first
    c_eff = np.broadcast_to(c, (n, nb, T)).copy()
    c_eff[..., 0] = x1
    # the data part: innovation of y against the element's offset, 0 where missing
    v = np.where(obs, y - _mv(H, c_eff), 0.0)
    b = c_eff + _mv(K, v)
    eta = _mv(Zt, v)

    x_filt, P_filt = _prefix_scan((A, b, C, eta, J), _filter_pair, _filter_extend,
                                  _filter_head)

    # Predicted moments from the filtered ones: x_pred = F x + B u, P_pred = F P F' + Q
    x_prev = _prepend(x0c[..., None], x_filt[..., :-1])
    P_prev = _prepend(model.P0.reshape(n, n, 1, 1), P_filt[..., :-1])
    x_pred = _mv(F, x_prev) + c
    P_pred = _sym(_mm(_mm(F, P_prev), _tr(F))) + Q
    # nu = y - H x_pred;  S = H P_pred H' + R
    innov = y - _mv(H, x_pred)
    PHt = _mm(P_pred, _tr(H))
    S = _sym(_mm(H, PHt)) + R
    # observed components only: K = P H' S^{-1} and log L = sum log N(nu; 0, S)
    chol = _cholesky(_masked_cov(S, obs_cov))
    K = _tr(_cho_solve(chol, _tr(PHt * obs_cov[None])))
    num = np.where(obs, innov, 0.0)
    quad = (num * _cho_solve(chol, num)).sum(0)
    logdet = np.broadcast_to(_logdet(chol), quad.shape)
    loglik = -0.5 * (obs.sum(0) * LOG_2PI + logdet + quad).sum(-1)

    out = dict(x_pred=_time_first(x_pred, nb), P_pred=_time_first(P_pred, nb),
               x_filt=_time_first(x_filt, nb), P_filt=_time_first(P_filt, nb),
               innovations=_time_first(innov, nb),
               S=_time_first(np.broadcast_to(S, (m, m, obs_cov.shape[1], T)), nb),
               K=_time_first(K, nb))
    return out, loglik


# -- smoothing elements and their product ----------------------------------------

def _smoother_pair(later, earlier):
    """``earlier * later`` for smoothing elements: the scan runs from the end."""
    E_j, g_j, L_j = later
    g, L = _smoother_extend((g_j, L_j), earlier)
    return _mm(earlier[0], E_j), g, L


def _smoother_extend(suffix, earlier):
    """An earlier element times a suffix ``(x_{t|T}, P_{t|T})`` (whose E is 0):
    ``g = E_i g_j + g_i``, ``L = E_i L_j E_i' + L_i``."""
    g_j, L_j = suffix
    E_i, g_i, L_i = earlier
    g = _mv(E_i, g_j) + g_i
    L = _sym(_mm(_mm(E_i, L_j), _tr(E_i))) + L_i
    return g, L


def _smoother_head(e):
    return e[1], e[2]


def _shared_over_batch(A: np.ndarray) -> bool:
    """True for a batch of covariance paths that is one path broadcast (a view)."""
    return A.shape[0] == 1 or A.strides[0] == 0


# Series up to this length whose P(t+1|t) is ill-conditioned somewhere (a pivot
# below GAIN_ILL) go to reference_smoother; longer ones only when the gain is in
# doubt (see kflib.smoother._gain).
SEQUENTIAL_ILL_BELOW = 1024


def _smoother_gains(F, P_f, P_p, Q):
    """``G = P_f F' P_p^{-1}`` for stacks (n, n, Bc, T), through a Cholesky
    solve; returns G and ``F P_f``.

    Where ``P_p`` is singular, :func:`kflib.smoother._gain` (a pseudo-inverse)
    gives those gains, as in the sequential smoother.
    """
    rhs = np.broadcast_to(_mm(F, P_f), P_p.shape)          # (P_f F')'
    chol, ok = _cholesky(P_p, strict=False)
    G = _tr(_cho_solve(chol, rhs))
    # pivots small next to the largest variance: kflib.smoother._gain decides, as
    # in the sequential smoother (a pseudo-inverse, and a warning if need be)
    k = P_p.shape[0]
    top = np.max(np.stack([P_p[i, i] for i in range(k)]), axis=0)
    well = ok.copy()
    for i in range(k):
        ok &= chol[i, i] ** 2 > CHOLESKY_RTOL * top
        well &= chol[i, i] ** 2 > GAIN_ILL * top
    if not well.all() and P_p.shape[-1] <= SEQUENTIAL_ILL_BELOW:
        # a gain that amplifies rounding on a short series: reference_smoother,
        # exact there (the information or r/N form), costs little
        return None, None
    if not ok.all():
        # all of them in one batched call, matrices last -> first
        bad = ~ok
        Fb = np.broadcast_to(F, P_p.shape)
        Pfb = np.broadcast_to(P_f, P_p.shape)
        Qb = np.broadcast_to(Q, P_p.shape)
        pick = lambda A: np.moveaxis(A[:, :, bad], -1, 0)      # noqa: E731  (K, n, n)
        report = {}
        G[:, :, bad] = np.moveaxis(_gain(pick(Pfb), pick(Fb), pick(P_p), pick(Qb),
                                         report=report), 0, -1)
        if report["doubt"].any() or report["real"].any():
            return None, None       # a gain that amplifies rounding: reference_smoother
    return G, rhs


def scan_smoother(model, filt: FilterResult) -> SmootherResult:
    r"""The RTS smoother by a parallel-in-time associative scan.

    Same inputs and result as :func:`kflib.rts_smoother` (to round-off),
    including ``P_lag1`` and the smoothed initial state; any
    :class:`FilterResult` of the model will do (from :func:`scan_filter`,
    :func:`kflib.kalman_filter` or :func:`kflib.fast.fast_filter`).

    Parameters
    ----------
    model : LinearGaussianSSM
        The model the filter ran with.
    filt : FilterResult
        The filter's output (one series or a batch).

    Returns
    -------
    SmootherResult
        For a batch whose covariance arrays are shared views (as
        :func:`scan_filter` returns for one missing pattern), the smoothed
        covariances and gains are shared read-only views too.
    """
    model = check_model(model)
    if model.x0 is None:           # a start at time 1: the exact initial smoother
        return exact_smoother(model, filt)
    check_filter_result(model, filt)
    batched = filt.x_filt.ndim == 3
    xf, Pf, xp, Pp = filt.x_filt, filt.P_filt, filt.x_pred, filt.P_pred
    if not batched:
        xf, Pf, xp, Pp = xf[None], Pf[None], xp[None], Pp[None]
    nb, T, n = xf.shape
    if _shared_over_batch(Pf) and _shared_over_batch(Pp):
        Pf, Pp = Pf[:1], Pp[:1]
    # time last: (n, nb, T) and (n, n, nc, T); state s = 0 is the initial state
    # (the copies matter: einsum is slow on transposed views)
    xf = _prepend(model.x0.reshape(n, 1, 1), np.moveaxis(xf, -1, 0))
    Pf = _prepend(model.P0.reshape(n, n, 1, 1), np.moveaxis(Pf, (-2, -1), (0, 1)))
    xp = np.ascontiguousarray(np.moveaxis(xp, -1, 0))
    Pp = np.ascontiguousarray(np.moveaxis(Pp, (-2, -1), (0, 1)))
    F = _stack_last(model.F)

    # Elements for s = 0..T-1: E = G = P_f F' P_p^{-1}, g = x_f - G x_p,
    # L = P_f - G P_p G' in the Joseph form (I - G F) P_f (I - G F)' + G Q G'
    # (a sum of PSD terms; P_f - G F P_f cancels when P_f is large next to L);
    # the last (s = T) is (0, x_{T|T}, P_{T|T}).
    G, FP = _smoother_gains(F, Pf[..., :T], Pp, _stack_last(model.Q))
    if G is None:
        # P(t+1|t) nearly singular with a gain that amplifies rounding: the
        # step-by-step smoother switches to the information or r/N form there
        return reference_smoother(model, filt)
    g = xf[..., :T] - _mv(G, xp)
    IGF = _eye(n, G.ndim - 2) - _mm(G, F)
    L = _sym(_mm(_mm(IGF, Pf[..., :T]), _tr(IGF))) + _sym(_mm(_mm(G, _stack_last(model.Q)), _tr(G)))
    # the scan runs from the end: reverse time
    E_rev = _prepend(np.zeros((n, n, 1, 1)), G[..., ::-1])
    g_rev = _prepend(xf[..., T:], g[..., ::-1])
    L_rev = _prepend(Pf[..., T:], L[..., ::-1])
    xs_rev, Ps_rev = _prefix_scan((E_rev, g_rev, L_rev), _smoother_pair,
                                  _smoother_extend, _smoother_head)
    xs, Ps = xs_rev[..., ::-1], Ps_rev[..., ::-1]

    # Cov(x_t, x_{t-1} | y) = P_{t|T} G_{t-1}'
    P_lag1 = _mm(Ps[..., 1:], _tr(G))
    out = (_time_first(xs[..., 1:], nb), _time_first(Ps[..., 1:], nb),
           _time_first(P_lag1, nb), _time_first(G, nb),
           np.ascontiguousarray(np.moveaxis(xs[..., 0], 0, -1)),
           _time_first(Ps[..., None, 0], nb)[:, 0])
    if not batched:
        out = tuple(a[0] for a in out)
    return SmootherResult(*out)
