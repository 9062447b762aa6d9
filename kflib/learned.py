"""Learned state estimators in torch, and a differentiable Kalman filter.

Four estimators that map observations ``y`` of shape (batch, T, m) to state
estimates of shape (batch, T, n), and one training loop for all of them:

- :class:`LSTMFilter`: a many-to-many LSTM (optionally bidirectional, which
  makes it a smoother);
- :class:`LearnedGainFilter`: the Kalman predict/update structure with known
  ``F`` and ``H``, where a GRU outputs the gain (as in KalmanNet,
  Revach et al. 2022);
- :class:`KalmanInspiredRNN`: a recurrent cell whose update is written like a
  Kalman update (learned transition, learned observation map, gated gain);
  every weight is a parameter created once, in ``__init__``;
- :class:`DifferentiableKalmanFilter`: the exact Kalman filter written in
  torch, whose ``Q`` and ``R`` are parameters trained on the negative
  log-likelihood.

Data come from any :class:`~kflib.LinearGaussianSSM` through
:func:`simulate_batch` (vectorised over sequences, seeded); :func:`fit` trains
with held-out evaluation, early stopping, a tqdm progress bar and the device
chosen by :func:`default_device`.

    >>> import torch
    >>> from kflib.models import local_level
    >>> from kflib.learned import LSTMFilter, fit, simulate_batch
    >>> model = local_level(1.0, 1.0, P0=0.0)
    >>> x, y = simulate_batch(model, 256, 50, seed=0)
    >>> xv, yv = simulate_batch(model, 64, 50, seed=1)
    >>> net = LSTMFilter(m=1, n=1, hidden_size=16, seed=0)
    >>> result = fit(net, y, x, yv, xv, epochs=2, progress=False)

Course: chapter 6 (book/06-lstm.md); exercise ps06-lstm; tests:
test_learned.py.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ._checks import check_positive_int
from ._inputs import check_model
from .simulate import psd_sqrt

__all__ = ["default_device", "as_sequences", "simulate_batch", "LSTMFilter",
           "LearnedGainFilter", "KalmanInspiredCell", "KalmanInspiredRNN",
           "DifferentiableKalmanFilter", "FitResult", "fit", "mse"]

LOG_2PI = math.log(2.0 * math.pi)


def default_device() -> torch.device:
    """A CUDA GPU when one is present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def as_sequences(y, m: int | None = None, name: str = "y",
                 dtype: torch.dtype | None = None) -> torch.Tensor:
    """Check that ``y`` is a batch of sequences of shape (batch, T, m).

    Accepts a torch tensor or anything numpy can convert. Raises ``TypeError``
    for non-numeric input and ``ValueError`` naming the expected and actual
    shape, or for non-finite values.
    """
    if isinstance(y, torch.Tensor):
        t = y
    else:
        arr = np.asarray(y)
        if arr.dtype == object or arr.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a real numeric array or tensor; got dtype "
                            f"{arr.dtype}")
        t = torch.from_numpy(np.array(arr, dtype=np.float32 if dtype is None else
                                      torch.empty((), dtype=dtype).numpy().dtype))
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must be a real floating tensor; got {t.dtype}")
    if not t.is_floating_point():
        t = t.float()
    if dtype is not None:
        t = t.to(dtype)
    want = f"(batch, T, {m})" if m is not None else "(batch, T, m)"
    if t.ndim != 3:
        raise ValueError(f"{name} must have shape {want}; got {tuple(t.shape)}"
                         + (" (add a batch axis: y[None])" if t.ndim == 2 else ""))
    if m is not None and t.shape[-1] != m:
        raise ValueError(f"{name} must have shape {want}; got {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one sequence of at least one step; "
                         f"got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def _plain_model(model, who: str):
    """The checked model, if it is one the torch code below handles: time-invariant, no
    controls, no intercepts, a start at time 0 (x0, P0). Anything else would be run
    silently wrong, so it is refused by name."""
    model = check_model(model)
    if model.time_varying or model.B is not None:
        raise ValueError(f"{who} needs a time-invariant model without controls")
    unsupported = [name for name in ("c", "d") if getattr(model, name) is not None]
    if unsupported:
        raise ValueError(f"{who} does not support the intercept{'s' if len(unsupported) > 1 else ''} "
                         f"{' and '.join(unsupported)} of this model (it runs x_t = F x_{{t-1}} + w_t, "
                         "y_t = H x_t + v_t); subtract a known d from y first")
    if model.x0 is None:
        start = "an exact diffuse start" if model.diffuse is not None else "a1, P1"
        raise ValueError(f"{who} needs a model started at time 0 (x0, P0); this one has {start}")
    return model



def simulate_batch(model, n_seq: int, T: int, seed: int = 0,
                   dtype: torch.dtype = torch.float32):
    r"""Draw ``n_seq`` independent paths of a time-invariant linear-Gaussian model.

    ``x_0 ~ N(x0, P0)``, ``x_t = F x_{t-1} + w_t``, ``y_t = H x_t + v_t``,
    vectorised over the sequences (one loop over time).

    Parameters
    ----------
    model : LinearGaussianSSM
        Time-invariant, without controls.
    n_seq, T : int
        Number of sequences and their length.
    seed : int
        Seed of the numpy generator that draws every random number.
    dtype : torch.dtype

    Returns
    -------
    x : (n_seq, T, n) tensor
    y : (n_seq, T, m) tensor
    """
    model = _plain_model(model, "simulate_batch")
    n_seq = check_positive_int(n_seq, "n_seq")
    T = check_positive_int(T, "T")
    rng = np.random.default_rng(seed)
    n, m = model.n, model.m
    z0 = rng.standard_normal((n_seq, n))
    zw = rng.standard_normal((n_seq, T, n))
    zv = rng.standard_normal((n_seq, T, m))
    w = zw @ psd_sqrt(model.Q).T
    v = zv @ psd_sqrt(model.R).T
    x = np.empty((n_seq, T, n))
    state = model.x0 + z0 @ psd_sqrt(model.P0).T
    for t in range(T):
        # x_t = F x_{t-1} + w_t
        state = state @ model.F.T + w[:, t]
        x[:, t] = state
    # y_t = H x_t + v_t
    y = x @ model.H.T + v
    return torch.as_tensor(x, dtype=dtype), torch.as_tensor(y, dtype=dtype)


def mse(estimate, target) -> float:
    """Mean squared error over every sequence, step and component.

    Accepts torch tensors or numpy arrays (copied, so read-only arrays are fine).
    """
    e = torch.tensor(estimate) if isinstance(estimate, np.ndarray) else torch.as_tensor(estimate)
    if isinstance(target, np.ndarray):
        target = np.array(target)
    t = torch.as_tensor(target, dtype=e.dtype, device=e.device)
    if e.shape != t.shape:
        raise ValueError(f"estimate and target must have the same shape; got "
                         f"{tuple(e.shape)} and {tuple(t.shape)}")
    return float(((e - t) ** 2).mean())


def _seeded(seed):
    if seed is not None:
        torch.manual_seed(seed)


class LSTMFilter(nn.Module):
    r"""A many-to-many LSTM state estimator: ``x_hat_t = W h_t + b``.

    Inputs are multiplied by ``input_scale`` before the LSTM and the output
    divided by it, so the network works in units where the data are of order
    one (tanh saturates on large inputs).

    Parameters
    ----------
    m, n : int
        Observation and state dimensions.
    hidden_size, num_layers : int
    bidirectional : bool
        Run a second LSTM backwards in time: the output at t then depends on
        the whole sequence (a smoother, not a filter).
    input_scale : float
    seed : int, optional
        ``torch.manual_seed`` before the weights are drawn.
    """

    def __init__(self, m: int = 1, n: int = 1, hidden_size: int = 64, num_layers: int = 1,
                 bidirectional: bool = False, input_scale: float = 0.1, seed: int | None = 0):
        super().__init__()
        self.m = check_positive_int(m, "m")
        self.n = check_positive_int(n, "n")
        check_positive_int(hidden_size, "hidden_size")
        if not input_scale > 0:
            raise ValueError(f"input_scale must be positive; got {input_scale}")
        self.input_scale = float(input_scale)
        _seeded(seed)
        self.lstm = nn.LSTM(m, hidden_size, num_layers=num_layers, batch_first=True,
                            bidirectional=bidirectional)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), n)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """(batch, T, m) observations -> (batch, T, n) state estimates."""
        y = as_sequences(y, self.m)
        h, _ = self.lstm(y * self.input_scale)
        return self.head(h) / self.input_scale


class LearnedGainFilter(nn.Module):
    r"""Kalman predict/update with known ``F``, ``H`` and a gain from a GRU.

    .. math::

        x_{t|t-1} = F x_{t-1|t-1}, \quad \nu_t = y_t - H x_{t|t-1}, \quad
        K_t = g_\theta(h_t), \quad x_{t|t} = x_{t|t-1} + K_t \nu_t,

    where the GRU state ``h_t`` is fed the innovation ``nu_t``, the change in
    the observation ``y_t - y_{t-1}`` and the previous correction
    ``x_{t-1|t-1} - x_{t-1|t-2}`` (the features of KalmanNet). Nothing
    stands for ``P``: the GRU learns what the gain should be.

    Parameters
    ----------
    model : LinearGaussianSSM
        Supplies ``F``, ``H`` and ``x0`` (``Q``, ``R`` and ``P0`` are not used).
    hidden_size : int
    feature_scale : float
        Multiplies the GRU's input features.
    seed : int, optional
    """

    def __init__(self, model, hidden_size: int = 32, feature_scale: float = 1.0,
                 seed: int | None = 0):
        super().__init__()
        model = _plain_model(model, "LearnedGainFilter")
        self.n, self.m = model.n, model.m
        check_positive_int(hidden_size, "hidden_size")
        self.feature_scale = float(feature_scale)
        self.register_buffer("F", torch.tensor(np.array(model.F), dtype=torch.float32))
        self.register_buffer("H", torch.tensor(np.array(model.H), dtype=torch.float32))
        self.register_buffer("x0", torch.tensor(np.array(model.x0), dtype=torch.float32))
        _seeded(seed)
        self.gru = nn.GRUCell(2 * self.m + self.n, hidden_size)
        self.head = nn.Linear(hidden_size, self.n * self.m)
        nn.init.zeros_(self.head.weight)       # start from a constant gain of 0.5
        nn.init.constant_(self.head.bias, 0.5)

    def forward(self, y: torch.Tensor, return_gain: bool = False):
        """(batch, T, m) observations -> (batch, T, n) filtered means.

        With ``return_gain=True`` also returns the gains, (batch, T, n, m).
        """
        y = as_sequences(y, self.m).to(self.F.dtype)
        B, T, _ = y.shape
        x = self.x0.expand(B, self.n)
        h = y.new_zeros(B, self.gru.hidden_size)
        y_prev = y.new_zeros(B, self.m) + self.x0 @ self.H.T
        dx = y.new_zeros(B, self.n)
        outs, gains = [], []
        for t in range(T):
            # Predict: x = F x
            x_pred = x @ self.F.T
            # Innovation: nu = y - H x
            nu = y[:, t] - x_pred @ self.H.T
            feats = torch.cat([nu, y[:, t] - y_prev, dx], dim=-1) * self.feature_scale
            h = self.gru(feats, h)
            K = self.head(h).view(B, self.n, self.m)
            # Update: x = x + K nu
            x = x_pred + (K @ nu[..., None])[..., 0]
            dx, y_prev = x - x_pred, y[:, t]
            outs.append(x)
            if return_gain:
                gains.append(K)
        out = torch.stack(outs, 1)
        return (out, torch.stack(gains, 1)) if return_gain else out


class KalmanInspiredCell(nn.Module):
    r"""A recurrent cell written like a Kalman update, every weight learned.

    With cell state ``c`` (the belief) and output ``h = tanh(c)``:

    .. math::

        \bar c_t = A c_{t-1} \;\text{(prediction)}, \quad
        \nu_t = y_t - C \bar c_t \;\text{(innovation)}, \quad
        k_t = \sigma(W_k [\nu_t, h_{t-1}] + b_k) \;\text{(gain, an input gate)}, \\
        c_t = \bar c_t + k_t \odot (G \nu_t) \;\text{(update)}.

    ``A``, ``C``, ``G``, ``W_k`` and ``b_k`` are parameters made once in
    ``__init__``; ``forward`` draws nothing at random. The Kalman filter of a
    model with ``n <= hidden_size`` is one setting of these weights.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size = check_positive_int(input_size, "input_size")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.A = nn.Parameter(torch.eye(hidden_size))
        self.C = nn.Parameter(torch.randn(input_size, hidden_size) / math.sqrt(hidden_size))
        self.G = nn.Parameter(torch.randn(hidden_size, input_size) / math.sqrt(input_size))
        self.gate = nn.Linear(input_size + hidden_size, hidden_size)

    def forward(self, y_t: torch.Tensor, state):
        """One step: ``y_t`` (batch, input_size), ``state = (h, c)`` -> new ``(h, c)``."""
        h, c = state
        c_pred = c @ self.A.T                          # prediction
        nu = y_t - c_pred @ self.C.T                   # innovation
        k = torch.sigmoid(self.gate(torch.cat([nu, h], dim=-1)))   # gain
        c = c_pred + k * (nu @ self.G.T)               # update
        return torch.tanh(c), c


class KalmanInspiredRNN(nn.Module):
    """:class:`KalmanInspiredCell` unrolled over time, with a linear read-out of ``c``.

    Inputs are multiplied by ``input_scale`` and the output divided by it.
    """

    def __init__(self, m: int = 1, n: int = 1, hidden_size: int = 16,
                 input_scale: float = 0.1, seed: int | None = 0):
        super().__init__()
        self.m, self.n = check_positive_int(m, "m"), check_positive_int(n, "n")
        self.input_scale = float(input_scale)
        _seeded(seed)
        self.cell = KalmanInspiredCell(m, hidden_size)
        self.head = nn.Linear(hidden_size, n)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """(batch, T, m) observations -> (batch, T, n) state estimates."""
        y = as_sequences(y, self.m) * self.input_scale
        B, T, _ = y.shape
        h = y.new_zeros(B, self.cell.hidden_size)
        c = y.new_zeros(B, self.cell.hidden_size)
        outs = []
        for t in range(T):
            h, c = self.cell(y[:, t], (h, c))
            outs.append(self.head(c))
        return torch.stack(outs, 1) / self.input_scale


def _chol_param(C: np.ndarray) -> torch.Tensor:
    """Unconstrained parameters of a positive-definite C: tril(L) with log diagonal."""
    L = np.linalg.cholesky(np.asarray(C, dtype=np.float64))
    P = L.copy()
    np.fill_diagonal(P, np.log(np.diag(L)))
    return torch.as_tensor(P[np.tril_indices(len(C))])


def _chol_value(p: torch.Tensor, k: int) -> torch.Tensor:
    idx = torch.tril_indices(k, k)
    L = p.new_zeros(k, k)
    L = L.index_put((idx[0], idx[1]), p)
    d = torch.arange(k)
    L = L.index_put((d, d), torch.exp(L[d, d]))
    return L @ L.T


class DifferentiableKalmanFilter(nn.Module):
    r"""The Kalman filter in torch, with ``Q`` and ``R`` as trainable parameters.

    Same recursion and log-likelihood as :func:`kflib.kalman_filter`
    (Joseph form; no missing data). ``Q = L_Q L_Q'`` and ``R = L_R L_R'`` are
    parameterised by Cholesky factors with log-diagonals, so every value of
    the parameters is a valid covariance. ``F``, ``H``, ``x0`` and ``P0`` are
    fixed buffers taken from ``model``, as are ``Q``/``R`` when not in ``learn``.

    Parameters
    ----------
    model : LinearGaussianSSM
        Time-invariant, without controls; its ``Q`` and ``R`` (positive
        definite) are the starting values.
    learn : tuple of {"Q", "R"}
    dtype : torch.dtype
        ``torch.float64`` to match kflib to rounding error.
    """

    def __init__(self, model, learn=("Q", "R"), dtype: torch.dtype = torch.float64):
        super().__init__()
        model = _plain_model(model, "DifferentiableKalmanFilter")
        bad = set(learn) - {"Q", "R"}
        if bad:
            raise ValueError(f"learn may contain 'Q' and 'R' only; got {sorted(bad)}")
        self.n, self.m = model.n, model.m
        for name in ("F", "H", "x0", "P0"):
            self.register_buffer(name, torch.tensor(np.array(getattr(model, name)), dtype=dtype))
        for name, k in (("Q", self.n), ("R", self.m)):
            C = getattr(model, name)
            if np.linalg.eigvalsh(C).min() <= 0:
                raise ValueError(f"{name} must be positive definite to start from; got "
                                 f"eigenvalues {np.linalg.eigvalsh(C)}")
            p = _chol_param(C).to(dtype)
            if name in learn:
                self.register_parameter(f"{name}_param", nn.Parameter(p))
            else:
                self.register_buffer(f"{name}_param", p)

    @property
    def Q(self) -> torch.Tensor:
        """Process-noise covariance, (n, n)."""
        return _chol_value(self.Q_param, self.n)

    @property
    def R(self) -> torch.Tensor:
        """Observation-noise covariance, (m, m)."""
        return _chol_value(self.R_param, self.m)

    def forward(self, y: torch.Tensor):
        """Filter ``y`` (batch, T, m): returns ``x_filt`` (batch, T, n) and ``loglik`` (batch,)."""
        y = as_sequences(y, self.m, dtype=self.F.dtype).to(self.F.device)
        B, T, m = y.shape
        F, H, Q, R = self.F, self.H, self.Q, self.R
        eye = torch.eye(self.n, dtype=F.dtype, device=F.device)
        x = self.x0.expand(B, self.n)
        P = self.P0
        loglik = y.new_zeros(B)
        outs = []
        for t in range(T):
            # Predict: x = F x,  P = F P F' + Q
            x = x @ F.T
            P = F @ P @ F.T + Q
            P = 0.5 * (P + P.T)
            # nu = y - H x,  S = H P H' + R
            nu = y[:, t] - x @ H.T
            S = H @ P @ H.T + R
            S = 0.5 * (S + S.T)
            L = torch.linalg.cholesky(S)
            # K = P H' S^{-1}
            K = torch.cholesky_solve(H @ P, L).T
            Sinv_nu = torch.cholesky_solve(nu.T, L).T
            # Update: x = x + K nu,  P = (I - K H) P (I - K H)' + K R K'
            x = x + nu @ K.T
            A = eye - K @ H
            P = A @ P @ A.T + K @ R @ K.T
            P = 0.5 * (P + P.T)
            # log L_t = -1/2 (m log 2 pi + log|S| + nu' S^{-1} nu)
            logdet = 2.0 * torch.log(torch.diagonal(L)).sum()
            loglik = loglik - 0.5 * (m * LOG_2PI + logdet + (nu * Sinv_nu).sum(-1))
            outs.append(x)
        return torch.stack(outs, 1), loglik

    def training_loss(self, y, x=None) -> torch.Tensor:
        """Negative log-likelihood per sequence and step (the states ``x`` are not used)."""
        _, ll = self(y)
        return -ll.mean() / y.shape[1]

    def to_model(self, model):
        """``model`` with ``Q`` and ``R`` replaced by the current values."""
        with torch.no_grad():
            return check_model(model).replace(Q=self.Q.double().cpu().numpy(),
                                              R=self.R.double().cpu().numpy())


@dataclass(frozen=True, eq=False)
class FitResult:
    """Outcome of :func:`fit`.

    Attributes
    ----------
    net : torch.nn.Module
        The trained module, holding the weights of the best held-out epoch.
    train_loss, val_loss : list of float
        Loss per epoch (training: mean over batches; held-out: on the whole set).
    best_epoch : int
        Epoch (1-based) whose weights were kept: the best held-out epoch, or
        the last epoch when :func:`fit` ran with ``restore_best=False``.
    seconds : float
        Wall time of the training.
    stopped_early : bool
        True when the held-out loss had not improved for ``patience`` epochs
        (or the time budget ran out).
    """

    net: nn.Module
    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    stopped_early: bool = False

    @property
    def best_val_loss(self) -> float:
        return float(self.val_loss[self.best_epoch - 1])


def _loss(net, inputs, targets):
    if hasattr(net, "training_loss"):
        return net.training_loss(inputs, targets)
    out = net(inputs)
    return ((out - targets) ** 2).mean()


def fit(net: nn.Module, y_train, x_train, y_val=None, x_val=None, *, epochs: int = 30,
        batch_size: int = 64, lr: float = 1e-3, optimizer: str = "adam",
        patience: int = 5, seed: int = 0, progress: bool = True, device=None,
        max_seconds: float | None = None, clip: float | None = 1.0,
        lr_decay: float = 1.0, restore_best: bool = True) -> FitResult:
    r"""Train ``net`` to map ``y`` to ``x`` by minibatch gradient descent.

    The loss is the mean squared error of ``net(y)`` against ``x``, or
    ``net.training_loss(y, x)`` when the module defines one (the differentiable
    Kalman filter's negative log-likelihood). After each epoch the loss on the
    held-out set is computed; the weights of the best epoch are kept (unless
    ``restore_best=False``) and training stops after ``patience`` epochs
    without improvement.

    Parameters
    ----------
    net : torch.nn.Module
    y_train : (N, T, m) array or tensor
        Inputs (observations).
    x_train : (N, T, n) array or tensor, or None
        Targets (states); None for modules with their own ``training_loss``.
    y_val, x_val : held-out inputs and targets, optional
        Default: the training set (then early stopping watches the training loss).
    epochs, batch_size : int
    lr : float
    optimizer : {"adam", "sgd"}
    patience : int
    seed : int
        ``torch.manual_seed`` for the batch order.
    progress : bool
        Show a tqdm progress bar.
    device : torch.device or str, optional
        Default :func:`default_device`.
    max_seconds : float, optional
        Stop after this much wall time (checked after each epoch).
    clip : float or None
        Clip the gradient norm at this value; None does not clip.
    lr_decay : float
        Multiply the learning rate by this after every epoch.
    restore_best : bool
        Keep the weights of the epoch with the lowest held-out loss (default).
        With False the weights of the last epoch are kept, as a plain training
        loop does; ``FitResult.best_epoch`` is then the last epoch.

    Returns
    -------
    FitResult
    """
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be a torch.nn.Module; got {type(net).__name__}")
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    patience = check_positive_int(patience, "patience")
    if not 0 < lr_decay <= 1:
        raise ValueError(f"lr_decay must be in (0, 1]; got {lr_decay}")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd'; got {optimizer!r}")
    if not isinstance(restore_best, (bool, np.bool_)):
        raise TypeError(f"restore_best must be True or False; got {type(restore_best).__name__}")
    device = torch.device(device) if device is not None else default_device()
    param = next(iter(net.parameters()), None)
    if param is None:
        raise ValueError("net has no trainable parameters")
    dtype = param.dtype
    y_train = as_sequences(y_train, name="y_train", dtype=dtype)
    x_train = None if x_train is None else as_sequences(x_train, name="x_train", dtype=dtype)
    if x_train is not None and (y_val is None) != (x_val is None):
        raise ValueError("give both y_val and x_val, or neither")
    if y_val is None:
        y_val, x_val = y_train, x_train
    y_val = as_sequences(y_val, y_train.shape[-1], name="y_val", dtype=dtype)
    x_val = None if x_val is None else as_sequences(x_val, name="x_val", dtype=dtype)
    for yy, xx, nm in ((y_train, x_train, "train"), (y_val, x_val, "val")):
        if xx is not None and xx.shape[:2] != yy.shape[:2]:
            raise ValueError(f"x_{nm} and y_{nm} must have the same (batch, T); got "
                             f"{tuple(xx.shape)} and {tuple(yy.shape)}")
    net.to(device)
    y_train, y_val = y_train.to(device), y_val.to(device)
    x_train = None if x_train is None else x_train.to(device)
    x_val = None if x_val is None else x_val.to(device)

    torch.manual_seed(seed)
    opt = (torch.optim.Adam(net.parameters(), lr=lr) if optimizer == "adam"
           else torch.optim.SGD(net.parameters(), lr=lr))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=lr_decay)
    N = y_train.shape[0]
    best, best_state, best_epoch, since = math.inf, None, 0, 0
    train_hist, val_hist = [], []
    stopped = False
    start = time.perf_counter()
    from tqdm.auto import tqdm
    bar = tqdm(range(1, epochs + 1), disable=not progress, desc=type(net).__name__)
    for epoch in bar:
        net.train()
        perm = torch.randperm(N, device=device)
        total = 0.0
        for i in range(0, N, batch_size):
            idx = perm[i:i + batch_size]
            loss = _loss(net, y_train[idx], None if x_train is None else x_train[idx])
            opt.zero_grad()
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
            total += float(loss.detach()) * len(idx)
        train_hist.append(total / N)
        sched.step()
        net.eval()
        with torch.no_grad():
            val = float(_loss(net, y_val, x_val))
        val_hist.append(val)
        bar.set_postfix(train=f"{train_hist[-1]:.4g}", val=f"{val:.4g}")
        if val < best:
            best, best_epoch, since = val, epoch, 0
            if restore_best:
                best_state = copy.deepcopy(net.state_dict())
        else:
            since += 1
        if since >= patience or (max_seconds is not None
                                 and time.perf_counter() - start > max_seconds):
            stopped = epoch < epochs
            break
    bar.close()
    if not restore_best:
        best_epoch = len(val_hist)
    elif best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return FitResult(net=net, train_loss=train_hist, val_loss=val_hist,
                     best_epoch=best_epoch, seconds=time.perf_counter() - start,
                     stopped_early=stopped)
