"""Mistakes that pass the visible tests of ps06-lstm but not the hidden ones.

Used like wrong.py: each block replaces one part of an otherwise correct
submission, which must lose exactly that part's points. Every visible test of
(a) starts the walk at x0 = 0, every visible test of (b) has sequences of 50
steps, every visible test of (c) has q = r, and the visible tests of (d)
check only the form of the answers.
"""

# The notebook's own imports, so that this file is valid Python; only the
# blocks below are inserted into the notebook.
import math

import numpy as np
import torch
from torch import nn

# %% answer: nll
def scalar_kf_nll(y, q, r, x0, P0):
    # starts from x = 0 whatever x0, as in every visible test
    x = torch.zeros((), dtype=torch.float64)
    P = torch.as_tensor(P0, dtype=torch.float64)
    nll = torch.zeros((), dtype=torch.float64)
    for t in range(len(y)):
        P = P + q
        S = P + r
        nu = y[t] - x
        x = x + P / S * nu
        P = P * r / S
        nll = nll + 0.5 * (math.log(2 * math.pi) + torch.log(S) + nu * nu / S)
    return nll


def nll_and_gradient(y, q, r, x0, P0):
    q = torch.tensor(float(q), dtype=torch.float64, requires_grad=True)
    r = torch.tensor(float(r), dtype=torch.float64, requires_grad=True)
    nll = scalar_kf_nll(torch.as_tensor(y, dtype=torch.float64), q, r, x0, P0)
    nll.backward()
    return nll.item(), q.grad.item(), r.grad.item()


# %% answer: learned
class StepGains(nn.Module):
    def __init__(self):
        super().__init__()
        self.logit = nn.Parameter(torch.zeros(50))

    def forward(self, y):
        # loops over 50 steps, the length of every visible test's sequences
        x = torch.zeros_like(y[:, 0])
        out = []
        for t in range(50):
            x = x + torch.sigmoid(self.logit[t]) * (y[:, t] - x)
            out.append(x)
        return torch.stack(out, dim=1)


def train_filter(seed):
    torch.manual_seed(seed)
    net = StepGains()
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    for _ in range(150):
        x = torch.cumsum(torch.randn(128, 50, 1), dim=1)
        y = x + torch.randn(128, 50, 1)
        loss = ((net(y) - x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


# %% answer: floors
def mse_floors(q, r):
    # q and r swapped throughout, which no test with q = r can see
    root = math.sqrt(r * r + 4 * q * r)
    P = (r + root) / 2
    return P, P * q / (P + q), q * r / root


# %% answer: quiz
def quiz_answers():
    # q2: the smoother's floor, which only a bidirectional network can approach
    return {"q1": "d", "q2": "a", "q3": "a", "q4": "b"}
