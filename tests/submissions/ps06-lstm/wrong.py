"""Common mistakes, one per part of ps06-lstm (see tests/test_exercises.py).

A submission takes the instructor's answers for every part but one, and the
block below for that one; it must lose exactly that part's points. The visible
tests catch each of these mistakes.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import math

import numpy as np
import torch
from torch import nn

# %% answer: nll
def scalar_kf_nll(y, q, r, x0, P0):
    # math.log(float(S)): the right value, but log S_t drops out of the gradient
    x, P = x0, P0
    nll = torch.zeros((), dtype=torch.float64)
    for t in range(y.shape[0]):
        P = P + q
        S = P + r
        nu = y[t] - x
        K = P / S
        x = x + K * nu
        P = (1 - K) * P
        nll = nll + 0.5 * (math.log(2 * math.pi) + math.log(float(S)) + nu ** 2 / S)
    return nll


def nll_and_gradient(y, q, r, x0, P0):
    q = torch.tensor(float(q), dtype=torch.float64, requires_grad=True)
    r = torch.tensor(float(r), dtype=torch.float64, requires_grad=True)
    nll = scalar_kf_nll(torch.as_tensor(y, dtype=torch.float64), q, r, x0, P0)
    dq, dr = torch.autograd.grad(nll, (q, r))
    return nll.item(), dq.item(), dr.item()


# %% answer: learned
class LSTMFilter(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(1, 16, batch_first=True)
        self.head = nn.Linear(16, 1)

    def forward(self, y):
        h, _ = self.lstm(0.1 * y)
        return 10 * self.head(h)


def train_filter(seed):
    # the practitioner's mistake: trained states -> states, applied to measurements
    torch.manual_seed(seed)
    net = LSTMFilter()
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(300):
        x = torch.cumsum(torch.randn(32, 50, 1), dim=1)
        loss = ((net(x) - x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


# %% answer: floors
def mse_floors(q, r):
    # forgets the update: the predicted variance returned as the filtered one
    P = (q + math.sqrt(q * q + 4 * q * r)) / 2
    return P, P, q * r / math.sqrt(q * q + 4 * q * r)


# %% answer: quiz
def quiz_answers():
    # a list of letters instead of a dict
    return ["d", "c", "a", "b"]
