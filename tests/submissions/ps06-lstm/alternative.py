"""A second correct solution of ps06-lstm, written differently on purpose.

Each block after a `# %% answer: <grade_id>` line replaces the answer cell with
that nbgrader grade_id in the released notebook (tests/test_exercises.py).
Compared with the instructor's solution: (a) never runs the filter, it writes
-log L as the density of the joint Gaussian of y_1..y_T (dense covariance,
Cholesky factor) and reads the gradient from .backward() and .grad; (b)
learns one gain per time step inside the predict/update structure instead of
training an LSTM, with its own torch generator instead of torch.manual_seed;
(c) iterates the Riccati and the smoother recursions to their fixed points
instead of using closed forms; (d) answers in capitals. It must score full
marks.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import math

import numpy as np
import torch
from torch import nn

# %% answer: nll
def scalar_kf_nll(y, q, r, x0, P0):
    # y_t = x0 + (x_0 - x0) + w_1 + ... + w_t + v_t, so y is Gaussian with mean x0 and
    # Cov(y_s, y_t) = P0 + q min(s, t) + r [s == t]
    T = y.shape[0]
    steps = torch.arange(1, T + 1, dtype=torch.float64)
    cov = P0 + q * torch.minimum(steps[:, None], steps[None, :]) + r * torch.eye(T, dtype=torch.float64)
    L = torch.linalg.cholesky(cov)
    z = torch.linalg.solve_triangular(L, (y - x0).reshape(T, 1), upper=False)
    logdet = 2.0 * torch.sum(torch.log(torch.diagonal(L)))
    return 0.5 * (T * math.log(2.0 * math.pi) + logdet + torch.sum(z * z))


def nll_and_gradient(y, q, r, x0, P0):
    y = torch.tensor(np.array(y, dtype=np.float64))
    q = torch.tensor(q, dtype=torch.float64).requires_grad_()
    r = torch.tensor(r, dtype=torch.float64).requires_grad_()
    nll = scalar_kf_nll(y, q, r, x0, P0)
    nll.backward()
    return float(nll.detach()), float(q.grad), float(r.grad)


# %% answer: learned
class GainFilter(nn.Module):
    """x_t = x_{t-1} + K_t (y_t - x_{t-1}) from x_0 = 0, with one learned gain per step."""

    def __init__(self, max_steps=50):
        super().__init__()
        self.logit = nn.Parameter(torch.zeros(max_steps))

    def forward(self, y):
        gains = torch.sigmoid(self.logit)
        x = torch.zeros_like(y[:, 0])
        estimates = []
        for t in range(y.shape[1]):
            x = x + gains[t] * (y[:, t] - x)
            estimates.append(x)
        return torch.stack(estimates, dim=1)


def train_filter(seed):
    gen = torch.Generator().manual_seed(seed)
    net = GainFilter()
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    for _ in range(150):
        x = torch.cumsum(torch.randn(128, 50, 1, generator=gen), dim=1)
        y = x + torch.randn(128, 50, 1, generator=gen)
        loss = torch.mean((net(y) - x) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


# %% answer: floors
def mse_floors(q, r):
    # predicted variance: iterate P <- P r / (P + r) + q until it stops moving
    P = q
    for _ in range(1_000_000):
        new = P * r / (P + r) + q
        if abs(new - P) <= 1e-16 * new:
            break
        P = new
    P_filt = P * r / (P + r)
    # smoothed variance: iterate P_s <- P_f + G^2 (P_s - P) from P_s = P_f
    G = P_filt / P
    P_s = P_filt
    for _ in range(1_000_000):
        new = P_filt + G * G * (P_s - P)
        if abs(new - P_s) <= 1e-16 * new:
            break
        P_s = new
    return P, P_filt, P_s


# %% answer: quiz
def quiz_answers():
    return dict(zip(["q1", "q2", "q3", "q4"], "DCAB"))
