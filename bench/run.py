"""Benchmarks: kflib beside statsmodels, filterpy and pykalman, in one process.

Prints one table per case: median wall time over repeats, each library's time
as a multiple of kflib's fastest and, for kflib, as a multiple of statsmodels'
and of a compiled sequential loop of the same filter (bench/compiled.py,
numba: what one step costs on this machine when nothing else is in the way).
Writes every figure to _build/bench.json as records {"case", "library",
"metric", "value", "unit"}.

    make bench            # installs the peers, then runs this
    python bench/run.py --quick
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

from kflib import (LinearGaussianSSM, em, kalman_filter, models, reference_filter,
                   reference_smoother, rts_smoother, simulate, steady_state)
from kflib.fast import fast_filter
from kflib.scan import scan_filter

import records

try:
    import compiled
except ImportError:                  # numba missing: no compiled yardstick
    compiled = None

ROOT = Path(__file__).resolve().parent.parent
RECORDS: list[dict] = [records.machine_record()]


def median_time(fn, repeats, min_total=0.3, max_repeats=200):
    """Median wall time of ``fn`` over at least ``repeats`` runs, and over as
    many more (up to max_repeats) as fit in ``min_total`` seconds: a call of a
    fraction of a millisecond is timed hundreds of times, so that the load of
    a shared machine does not decide its median."""
    times = []
    while len(times) < repeats or (sum(times) < min_total and len(times) < max_repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def record(case, library, metric, value, unit):
    RECORDS.append(records.record(case, library, metric, value, unit))


def statsmodels_filter(model, y, smooth=False):
    """statsmodels on kflib's model; NaN in y is missing for both.

    Time-varying matrices go in with time last; statsmodels' transition at
    index t maps t to t + 1, so it is kflib's F at index t + 1.
    """
    from statsmodels.tsa.statespace.mlemodel import MLEModel

    def first(A):
        return A[0] if A.ndim == 3 else A

    def time_last(A, shift=False):
        if A.ndim == 2:
            return A
        if shift:
            A = np.concatenate([A[1:], A[-1:]])
        return np.moveaxis(A, 0, -1)

    F0 = first(model.F)
    mod = MLEModel(y, k_states=model.n, k_posdef=model.n, initialization="known",
                   initial_state=F0 @ model.x0,
                   initial_state_cov=F0 @ model.P0 @ F0.T + first(model.Q))
    for k, v in (("design", time_last(model.H)), ("obs_cov", time_last(model.R)),
                 ("transition", time_last(model.F, shift=True)),
                 ("selection", np.eye(model.n)),
                 ("state_cov", time_last(model.Q, shift=True))):
        mod.ssm[k] = v
    return (lambda: mod.ssm.smooth()) if smooth else (lambda: mod.ssm.filter())


def filterpy_filter(model, y):
    from filterpy.kalman import KalmanFilter

    def run():
        kf = KalmanFilter(dim_x=model.n, dim_z=model.m)
        kf.x, kf.P = model.x0.copy(), model.P0.copy()
        kf.F, kf.H, kf.Q, kf.R = model.F, model.H, model.Q, model.R
        out = np.empty((len(y), model.n))
        for t, yt in enumerate(y):
            kf.predict()
            kf.update(yt)
            out[t] = kf.x
        return out
    return run


def pykalman_filter(model, y, smooth=False):
    from pykalman import KalmanFilter
    y = np.ma.masked_invalid(y)            # pykalman's mark for missing values
    kf = KalmanFilter(transition_matrices=model.F, observation_matrices=model.H,
                      transition_covariance=model.Q, observation_covariance=model.R,
                      initial_state_mean=model.F @ model.x0,
                      initial_state_covariance=model.F @ model.P0 @ model.F.T + model.Q)
    return (lambda: kf.smooth(y)) if smooth else (lambda: kf.filter(y))


def compare(case, entries, unit="s", yardsticks=None):
    """entries: {library: (callable, repeats, scale)}; scale converts to the case size.

    yardsticks: {kflib library: compiled library} -- that kflib path's time is
    also printed (and recorded, "ratio_to_compiled") as a multiple of the
    compiled loop's; every kflib path's time as a multiple of statsmodels'.
    """
    results = {}
    for lib, (fn, repeats, scale) in entries.items():
        if fn is None:
            continue
        try:
            fn()                                       # warm-up (numba compiles here)
            results[lib] = median_time(fn, repeats) * scale
        except ImportError as exc:
            print(f"  {lib}: not installed ({exc.name})")
            continue
        record(case, lib, "median_wall", results[lib], unit)
    best = min(v for k, v in results.items() if k.startswith("kflib"))
    sm = next((v for k, v in results.items() if k.startswith("statsmodels")), None)
    yardsticks = {k: c for k, c in (yardsticks or {}).items() if k in results and c in results}
    print(f"\n{case}")
    for lib, v in sorted(results.items(), key=lambda kv: kv[1]):
        line = f"  {lib:34s} {v * 1e3:11.2f} ms {v / best:8.1f} x kflib"
        if not lib.startswith("kflib"):
            record(case, lib, "ratio_to_kflib", v / best, "x")
        else:
            if sm is not None:
                line += f" {v / sm:8.2f} x statsmodels"
                record(case, lib, "ratio_to_statsmodels", v / sm, "x")
            if lib in yardsticks:
                c = yardsticks[lib]
                line += f" {v / results[c]:7.2f} x {c}"
                # the unit names the yardstick: "x compiled sequential loop"
                record(case, lib, "ratio_to_compiled", v / results[c], f"x {c}")
        print(line)
    return results


def _compiled(fn, *args):
    """A compiled yardstick's callable, or None when numba is not installed."""
    return None if compiled is None else (lambda: fn(*args))


def compiled_steady(model, y):
    """The compiled constant-gain recursion with the model's steady-state gain."""
    if compiled is None:
        return None
    _, K, _ = steady_state(model)
    A = (np.eye(model.n) - K @ model.H) @ model.F
    return lambda: compiled.steady_filter(A, K, model.F, model.H, model.x0, y)


def compiled_filter_and_smoother(model, y):
    if compiled is None:
        return None

    def run():
        out, _ = compiled.sequential_filter(model, y)
        return compiled.sequential_smoother(model, out)
    return run


def irregular_constant_velocity(T, rng, q=0.05, r=9.0):
    """Constant velocity observed at irregular times: F_t and Q_t follow dt_t."""
    dt = rng.uniform(0.5, 1.5, T)
    F = np.zeros((T, 2, 2))
    F[:, 0, 0] = F[:, 1, 1] = 1.0
    F[:, 0, 1] = dt
    Q = q * np.stack([np.stack([dt**3 / 3, dt**2 / 2], -1),
                      np.stack([dt**2 / 2, dt], -1)], -2)
    return LinearGaussianSSM(F=F, H=[[1.0, 0.0]], Q=Q, R=[[r]], x0=[0.0, 0.0],
                             P0=np.eye(2))


def record_error_vs_sequential(case, library, fn, model, y):
    """Largest difference of ``fn`` from the step-by-step reference filter, relative."""
    got, ref = fn(model, y), reference_filter(model, y)

    def rel(k):
        a, b = getattr(got, k), getattr(ref, k)
        return np.abs(a - b).max() / np.abs(b).max()
    err = max(rel(k) for k in ("x_filt", "P_filt", "x_pred", "P_pred", "K"))
    err = max(err, abs(got.loglik - ref.loglik) / abs(ref.loglik))
    record(case, library, "max_rel_error_vs_sequential", err, "1")
    print(f"  {library} vs kflib.reference_filter: max relative difference {err:.1e}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = p.parse_args(argv)
    quick = args.quick
    rep = 3 if quick else 7
    print(records.machine())

    cv = models.constant_velocity(1.0, 0.05, 9.0, x0=[0.0, 0.0], P0=np.eye(2))
    T = 20_000 if quick else 100_000
    _, y = simulate(cv, T, rng=0)
    short = y[: T // 20]                  # the slow peers run on a 1/20 prefix, scaled up
    SEQ = "compiled sequential loop"
    STEADY = "compiled steady-state recursion"
    case = f"filter T={T:.0e} n=2 m=1"
    compare(case, {
        "kflib.kalman_filter": (lambda: kalman_filter(cv, y), rep, 1.0),
        "kflib.fast_filter": (lambda: fast_filter(cv, y), rep, 1.0),
        "kflib.reference_filter": (lambda: reference_filter(cv, short), 1, 20.0),
        "statsmodels": (statsmodels_filter(cv, y), rep, 1.0),
        "filterpy": (filterpy_filter(cv, short), 1, 20.0),
        "pykalman": (pykalman_filter(cv, short), 1, 20.0),
        SEQ: (_compiled(compiled.sequential_filter, cv, y) if compiled else None, rep, 1.0),
        STEADY: (compiled_steady(cv, y), rep, 1.0),
    }, yardsticks={"kflib.kalman_filter": STEADY, "kflib.fast_filter": STEADY,
                   "kflib.reference_filter": SEQ})
    case = f"filter+smoother T={T:.0e} n=2 m=1"
    compare(case, {
        "kflib.kalman_filter+rts_smoother": (lambda: rts_smoother(cv, kalman_filter(cv, y)),
                                             rep, 1.0),
        "kflib.reference (step by step)": (
            lambda: reference_smoother(cv, reference_filter(cv, short)), 1, 20.0),
        "statsmodels": (statsmodels_filter(cv, y, smooth=True), rep, 1.0),
        "pykalman": (pykalman_filter(cv, short, smooth=True), 1, 20.0),
        SEQ: (compiled_filter_and_smoother(cv, y), rep, 1.0),
    }, yardsticks={"kflib.kalman_filter+rts_smoother": SEQ,
                   "kflib.reference (step by step)": SEQ})

    # One long series with scattered missing values: the associative scan
    y_miss = y.copy()
    y_miss[np.random.default_rng(1).random(T) < 0.1] = np.nan
    short_miss = y_miss[: T // 20]
    case = f"filter T={T:.0e} n=2 m=1, 10% missing"
    compare(case, {
        "kflib.kalman_filter": (lambda: kalman_filter(cv, y_miss), rep, 1.0),
        "kflib.scan_filter": (lambda: scan_filter(cv, y_miss), rep, 1.0),
        "kflib.reference_filter": (lambda: reference_filter(cv, short_miss), 1, 20.0),
        "statsmodels": (statsmodels_filter(cv, y_miss), rep, 1.0),
        "pykalman": (pykalman_filter(cv, short_miss), 1, 20.0),
        SEQ: (_compiled(compiled.sequential_filter, cv, y_miss) if compiled else None,
              rep, 1.0),
    }, yardsticks={"kflib.kalman_filter": SEQ, "kflib.scan_filter": SEQ,
                   "kflib.reference_filter": SEQ})
    record_error_vs_sequential(case, "kflib.kalman_filter", kalman_filter, cv, short_miss)
    case = f"filter+smoother T={T:.0e} n=2 m=1, 10% missing"
    compare(case, {
        "kflib.kalman_filter+rts_smoother": (
            lambda: rts_smoother(cv, kalman_filter(cv, y_miss)), rep, 1.0),
        "kflib.reference (step by step)": (
            lambda: reference_smoother(cv, reference_filter(cv, short_miss)), 1, 20.0),
        "statsmodels": (statsmodels_filter(cv, y_miss, smooth=True), rep, 1.0),
        "pykalman": (pykalman_filter(cv, short_miss, smooth=True), 1, 20.0),
        SEQ: (compiled_filter_and_smoother(cv, y_miss), rep, 1.0),
    }, yardsticks={"kflib.kalman_filter+rts_smoother": SEQ,
                   "kflib.reference (step by step)": SEQ})

    # Time-varying matrices: constant velocity sampled at irregular times
    tv = irregular_constant_velocity(T, rng=np.random.default_rng(2))
    _, y_tv = simulate(tv, T, rng=3)
    tv_short = tv.replace(**{k: getattr(tv, k)[: T // 20] for k in ("F", "Q")})
    case = f"filter T={T:.0e} n=2 m=1, time-varying (irregular dt)"
    compare(case, {
        "kflib.kalman_filter": (lambda: kalman_filter(tv, y_tv), rep, 1.0),
        "kflib.reference_filter": (lambda: reference_filter(tv_short, y_tv[: T // 20]),
                                   1, 20.0),
        "statsmodels": (statsmodels_filter(tv, y_tv), rep, 1.0),
        SEQ: (_compiled(compiled.sequential_filter, tv, y_tv) if compiled else None,
              rep, 1.0),
    }, yardsticks={"kflib.kalman_filter": SEQ, "kflib.reference_filter": SEQ})
    record_error_vs_sequential(case, "kflib.kalman_filter", kalman_filter, tv_short,
                               y_tv[: T // 20])

    nb, Tb = (2000, 100) if quick else (10_000, 100)
    Y = np.stack([simulate(cv, Tb, rng=i)[1] for i in range(nb)])
    sm_one = [statsmodels_filter(cv, Y[i]) for i in range(200)]
    case = f"batch {nb} series x T={Tb}"
    res = compare(case, {
        "kflib.kalman_filter (batch)": (lambda: kalman_filter(cv, Y), max(1, rep // 2), 1.0),
        "kflib.reference_filter (batch)": (lambda: reference_filter(cv, Y), 1, 1.0),
        "statsmodels one by one": (lambda: [f() for f in sm_one], 1, nb / 200),
        SEQ + " (per series)": (_compiled(compiled.sequential_filter_batch, cv, Y)
                                if compiled else None, rep, 1.0),
    }, yardsticks={"kflib.kalman_filter (batch)": SEQ + " (per series)",
                   "kflib.reference_filter (batch)": SEQ + " (per series)"})
    for lib, v in res.items():
        record(case, lib, "series_steps_per_s", nb * Tb / v, "1/s")
        print(f"  {lib:34s} {nb * Tb / v:11.3g} series-steps/s")

    ll = models.local_level(1.0, 1.0, x0=0.0, P0=1.0)
    _, yl = simulate(ll, 1000, rng=1)
    start = ll.replace(Q=[[5.0]], R=[[0.2]])

    def kflib_em():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            em(yl, start, n_iter=20, tol=0.0)

    def pykalman_em():
        from pykalman import KalmanFilter
        KalmanFilter(transition_matrices=[[1.0]], observation_matrices=[[1.0]],
                     transition_covariance=[[5.0]], observation_covariance=[[0.2]],
                     initial_state_mean=[0.0], initial_state_covariance=[[2.0]],
                     em_vars=["transition_covariance", "observation_covariance"]
                     ).em(yl, n_iter=20)
    compare("EM local level T=1000, 20 iterations", {
        "kflib.em": (kflib_em, max(1, rep // 2), 1.0),
        "pykalman": (pykalman_em, 1, 1.0),
    })

    print_distance_table(RECORDS, batch_case=case)
    out = records.write(RECORDS)
    print(f"\nwrote {len(RECORDS)} records to {out.relative_to(ROOT)}")


# The goals of the performance issue: each kflib path within GOAL_COMPILED times
# its compiled yardstick, the default functions within GOAL_STATSMODELS times
# statsmodels, the batch at GOAL_BATCH series-steps per second or more.
GOAL_COMPILED = 3.0
GOAL_STATSMODELS = 1.0
GOAL_BATCH = 3e7


def print_distance_table(recs, batch_case):
    """One table of every kflib path's time as a multiple of its compiled
    yardstick and of statsmodels, with the goals and whether each is met."""
    by, yard = {}, {}
    for r in recs:
        by.setdefault((r["case"], r["library"]), {})[r["metric"]] = r["value"]
        if r["metric"] == "ratio_to_compiled":
            yard[(r["case"], r["library"])] = r["unit"][2:]
    print("\nDistance to the compiled loops (goal <= "
          f"{GOAL_COMPILED:g}x) and to statsmodels (goal <= {GOAL_STATSMODELS:g}x "
          "for the default functions)")
    print(f"  {'case':52s} {'kflib path':34s} {'x compiled':>10s}  {'yardstick':31s} "
          f"{'x statsm.':>9s}")
    for (case, lib), m in by.items():
        if not lib.startswith("kflib") or "ratio_to_compiled" not in m:
            continue
        rc, rs = m["ratio_to_compiled"], m.get("ratio_to_statsmodels")
        # the step-by-step reference and the scan (the numpy fallback when numba
        # is absent) are shown, not judged
        step = "reference" in lib or "scan" in lib
        ok_c = "" if step else (" ok" if rc <= GOAL_COMPILED else " MISSED")
        ok_s = "" if step or rs is None else (" ok" if rs <= GOAL_STATSMODELS else " MISSED")
        rs_txt = "" if rs is None else f"{rs:9.3f}"
        print(f"  {case:52s} {lib:34s} {rc:10.2f}{ok_c:7s} {yard.get((case, lib), ''):25s}"
              f"{rs_txt}{ok_s}")
    rate = by.get((batch_case, "kflib.kalman_filter (batch)"), {}).get("series_steps_per_s")
    if rate is not None:
        print(f"  {batch_case}: kflib.kalman_filter {rate:.3g} series-steps/s (goal >= "
              f"{GOAL_BATCH:.0e}: {'ok' if rate >= GOAL_BATCH else 'MISSED'})")


if __name__ == "__main__":
    main()
