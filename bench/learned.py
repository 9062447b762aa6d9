"""Benchmark of kflib.learned: learned state estimators against the Kalman filter.

Trains, on the random walk q = r = 1 (T = 100), a one-layer LSTM, the
learned-gain filter (GRU), a bidirectional LSTM and the differentiable Kalman
filter; prints each one's held-out MSE divided by its floor (the Kalman filter,
or the RTS smoother for the bidirectional network) and the differentiable
filter's q, r against EM's. Also repeats two experiments of chapter 6: the
network trained state to state on one path with plain SGD (its MSE ratio to
the Kalman filter on its own path's measurements and on held-out steps inside
and outside the training path's range), and, with heavy-tailed measurement
noise, the learned-gain filter against the best linear filter, the gated
robust filter of kflib.anomaly and a bootstrap particle filter. Appends the
figures to _build/bench.json (records {"case", "library", "metric", "value",
"unit"}; earlier records of the same cases are replaced).

    python bench/learned.py            # about 4 minutes on two busy CPU cores
    python bench/learned.py --quick    # smaller sets, under a minute
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import records

from kflib import em, kalman_filter, rts_smoother
from kflib.anomaly import robust_filter
from kflib.nonlinear import NonlinearSSM, particle_filter
from kflib.learned import (DifferentiableKalmanFilter, LearnedGainFilter, LSTMFilter,
                           fit, mse, simulate_batch)
from kflib.models import local_level

CASE = "random walk q=r=1"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller training sets")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--out", type=Path, default=records.BENCH_JSON)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    n_train = 500 if args.quick else 4000
    n_small = 200 if args.quick else 1000
    epochs = 2 if args.quick else 6
    T = 100
    rw = local_level(1.0, 1.0, x0=0.0, P0=0.0)
    x_tr, y_tr = simulate_batch(rw, n_train, T, seed=0)
    x_va, y_va = simulate_batch(rw, 500, T, seed=1)
    x_te, y_te = simulate_batch(rw, 1000, T, seed=2)
    filt = kalman_filter(rw, y_te.double().numpy())
    mse_kf = mse(filt.x_filt, x_te.double())
    mse_ks = mse(rts_smoother(rw, filt).x_smooth, x_te.double())

    rows = [records.machine_record()]

    def record(library, metric, value, unit):
        rows.append(records.record(CASE, library, metric, value, unit))

    def held_out(net):
        with torch.no_grad():
            return mse(net(y_te), x_te)

    runs = [
        ("kflib.learned LSTM", LSTMFilter(hidden_size=64, seed=0), n_train, epochs, 32,
         dict(lr_decay=0.7), mse_kf),
        ("kflib.learned learned-gain GRU", LearnedGainFilter(rw, hidden_size=16, seed=0),
         n_small, max(1, epochs // 2), 50, {}, mse_kf),
        ("kflib.learned BiLSTM (vs smoother)",
         LSTMFilter(hidden_size=64, bidirectional=True, seed=0), n_train,
         epochs + 2 if not args.quick else epochs, 32, dict(lr_decay=0.75), mse_ks),
    ]
    print(f"{'model':40s} {'MSE / floor':>12s} {'train s':>8s}")
    for name, net, n, ep, bs, kw, floor in runs:
        res = fit(net, y_tr[:n], x_tr[:n], y_va, x_va, epochs=ep, batch_size=bs, lr=1e-2,
                  patience=3, progress=False, **kw)
        ratio = held_out(net) / floor
        metric = "mse_ratio_to_smoother" if "BiLSTM" in name else "mse_ratio_to_kf"
        record(name, metric, ratio, "x")
        record(name, "train_wall", res.seconds, "s")
        print(f"{name:40s} {ratio:12.4f} {res.seconds:8.1f}")

    _, y_mle = simulate_batch(rw, 20, T, seed=3, dtype=torch.float64)
    start = local_level(0.3, 3.0, x0=0.0, P0=0.0)
    ref = em(y_mle.numpy(), start, n_iter=2000, tol=1e-12).model
    dkf = DifferentiableKalmanFilter(start)
    res = fit(dkf, y_mle, None, epochs=100, batch_size=20, lr=0.1, patience=100,
              progress=False, clip=None)
    dq = abs(dkf.Q.item() / ref.Q[0, 0] - 1)
    dr = abs(dkf.R.item() / ref.R[0, 0] - 1)
    name = "kflib.learned differentiable KF"
    record(name, "q_rel_diff_to_em", dq, "fraction")
    record(name, "r_rel_diff_to_em", dr, "fraction")
    record(name, "train_wall", res.seconds, "s")
    print(f"{name:40s} q {dkf.Q.item():.4f} (EM {ref.Q[0, 0]:.4f}), "
          f"r {dkf.R.item():.4f} (EM {ref.R[0, 0]:.4f}); {res.seconds:.1f} s")

    # The practitioner's network: one path, state -> state, SGD without clipping,
    # the last epoch's weights kept
    name = "kflib.learned practitioner LSTM (state -> state, 1 path)"
    x1, y1 = simulate_batch(rw, 1, T, seed=13)
    net = LSTMFilter(hidden_size=64, input_scale=1.0, seed=0)
    fit(net, x1, x1, epochs=500, batch_size=1, lr=0.01, optimizer="sgd", clip=None,
        restore_best=False, patience=500, progress=False)
    with torch.no_grad():
        own, est = net(y1), net(y_te)
    kf1 = mse(kalman_filter(rw, y1.double().numpy()).x_filt, x1.double())
    inside = ((y_te >= x1.min()) & (y_te <= x1.max()))[..., 0]
    err_net = ((est - x_te) ** 2)[..., 0].double()
    err_kf = torch.from_numpy((filt.x_filt - x_te.double().numpy())[..., 0] ** 2)
    ratios = {"own_path_mse_ratio_to_kf": mse(own, x1) / kf1,
              "own_path_raw_mse_ratio_to_kf": mse(y1, x1) / kf1,
              "inside_range_mse_ratio_to_kf": float(err_net[inside].mean()
                                                    / err_kf[inside].mean()),
              "outside_range_mse_ratio_to_kf": float(err_net[~inside].mean()
                                                     / err_kf[~inside].mean())}
    for metric, value in ratios.items():
        record(name, metric, value, "x")
    print(f"{name}: " + ", ".join(f"{m} {v:.3f}" for m, v in ratios.items()))

    # Heavy-tailed noise: 0.95 N(0, 1) + 0.05 N(0, 10^2)
    n_heavy = 200 if args.quick else 1000
    g = torch.Generator().manual_seed(22)
    out = torch.rand(x_te.shape, generator=g) < 0.05
    yh = (x_te + torch.where(out, 10.0, 1.0) * torch.randn(x_te.shape, generator=g))[:n_heavy]
    gt = torch.Generator().manual_seed(20)
    xt = x_tr[:n_small]
    outt = torch.rand(xt.shape, generator=gt) < 0.05
    yht = xt + torch.where(outt, 10.0, 1.0) * torch.randn(xt.shape, generator=gt)
    xh, yh_np = x_te[:n_heavy].double(), yh.double().numpy()
    best_linear = mse(kalman_filter(rw.replace(R=[[5.95]]), yh_np).x_filt, xh)
    net = LearnedGainFilter(rw, hidden_size=16, seed=0)
    fit(net, yht, xt, epochs=max(1, epochs // 2), batch_size=50, lr=1e-2, patience=2,
        progress=False)
    with torch.no_grad():
        learned = mse(net(yh), x_te[:n_heavy])
    gated = mse(robust_filter(rw, yh_np, alpha=0.01, mode="inflate")[0].x_filt, xh)
    lw = (np.log(0.95) - 0.5 * np.log(2 * np.pi), np.log(0.05) - 0.5 * np.log(2 * np.pi * 100))

    def logpdf(y_t, y_pred):
        e2 = (y_t[0] - y_pred[:, 0]) ** 2
        return np.logaddexp(lw[0] - 0.5 * e2, lw[1] - 0.5 * e2 / 100)

    walk = NonlinearSSM(f=lambda x: x, h=lambda x: x, Q=[[1.0]], R=[[5.95]], x0=[0.0],
                        P0=[[0.0]])
    pf = np.stack([particle_filter(walk, yh_np[b], 500, rng=b, f=lambda X: X, h=lambda X: X,
                                   obs_logpdf=logpdf).x_filt for b in range(n_heavy)])
    case = "random walk q=1, heavy-tailed noise"
    for lib, value in (("kflib.learned learned-gain GRU", learned),
                       ("kflib.anomaly robust_filter (inflate, alpha 0.01)", gated),
                       ("kflib.nonlinear particle_filter (500 particles)", mse(pf, xh))):
        rows.append(records.record(case, lib, "mse_ratio_to_best_linear_kf",
                                   value / best_linear, "x"))
        print(f"{lib:50s} MSE / best linear = {value / best_linear:.3f}")

    print(f"wrote {len(rows)} records to {records.write(rows, args.out)}")


if __name__ == "__main__":
    main()
