"""Benchmark of `make grade`: a synthetic class per assignment, graded three ways.

    python -m grader.bench                       # ps02 and ps04, N=30 each
    python -m grader.bench --n 10 ps01-state-space
    python -m grader.bench --modes jobs1,jobs2   # without the Dask cluster

For each assignment, N notebooks are made from the release (the instructor's
answers; every third submission with one part left undone) and graded end to
end -- intake, nbgrader autograde, the trusted check, gradebook, feedback,
grades.csv -- in scratch copies of the course (the repository's grading/ is
never touched):

* ``jobs1``: ``--jobs 1`` on this machine;
* ``jobs2``: ``--jobs 2`` on this machine;
* ``dask2``: a real Dask scheduler and 2 workers on loopback (``--scheduler``);

then the ``jobs2`` course is graded again with nothing changed (the
incremental re-run) and once more after one new submission arrived.

It prints, per run, the wall time, the wall time per notebook (the run's
total divided by N: what a class costs per student) and the median seconds of
one submission's trusted check, and appends the figures to _build/bench.json as
{"case", "library", "metric", "value", "unit"} records.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from .course import is_answer, load_assignment, nbgrader_meta
from .pipeline import Options, Out, run

ROOT = Path(__file__).resolve().parent.parent
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
MODES = ("jobs1", "jobs2", "dask2")
DEFAULT = ["ps02-kalman-filter", "ps04-smoothing"]


def synthetic(assignment, n: int) -> list[nbformat.NotebookNode]:
    answers = {nbgrader_meta(c)["grade_id"]: "\n".join(ln for ln in c.source.splitlines()
                                                       if ln.strip() not in MARKERS)
               for c in assignment.source.cells if is_answer(nbgrader_meta(c))}
    parts = list(assignment.parts)
    notebooks = []
    for i in range(n):
        nb = nbformat.from_dict(json.loads(json.dumps(assignment.release)))
        undone = parts[(i // 3) % len(parts)] if i % 3 == 2 else None
        for cell in nb.cells:
            gid = nbgrader_meta(cell).get("grade_id")
            if is_answer(nbgrader_meta(cell)) and gid in answers and gid != undone:
                cell.source = answers[gid]
        notebooks.append(nb)
    return notebooks


def make_course(root: Path, name: str, notebooks) -> None:
    a = load_assignment(ROOT, name)
    root.mkdir(parents=True)
    shutil.copy2(ROOT / "nbgrader_config.py", root)
    for folder in ("solutions", "exercises"):
        shutil.copytree(ROOT / folder / name, root / folder / name)
    for i, nb in enumerate(notebooks):
        add(root, name, a.notebook, f"student{i:04d}", nb)


def add(root: Path, name: str, notebook: str, student: str, nb) -> None:
    d = root / "grading" / "submitted" / student / name
    d.mkdir(parents=True)
    nbformat.write(nb, d / f"{notebook}.ipynb")


def timed(root: Path, name: str, **opts) -> tuple[float, list[float]]:
    log = io.StringIO()
    t0 = time.monotonic()
    summary = run(Options(root=root, assignments=[name], **opts), out=Out(log))
    wall = time.monotonic() - t0
    if summary.failures:
        raise RuntimeError(f"the benchmark class did not grade cleanly:\n{log.getvalue()[-3000:]}")
    return wall, [r.seconds for r in summary.rows if r.seconds]     # the trusted checks' seconds


def bench(name: str, n: int, modes: list[str], timeout: int) -> list[dict]:
    a = load_assignment(ROOT, name)
    notebooks = synthetic(a, n)
    case = f"grade {name} N={n}"
    records = []

    def record(library, metric, value, unit="s"):
        records.append({"case": case, "library": library, "metric": metric,
                        "value": round(value, 3), "unit": unit})

    with tempfile.TemporaryDirectory(prefix="kfgrade-bench-") as tmp:
        courses = {}
        for mode in modes:
            root = Path(tmp) / mode
            make_course(root, name, notebooks)
            courses[mode] = root
            with contextlib.ExitStack() as stack:
                if mode == "dask2":
                    from .cluster import local_cluster
                    cluster = stack.enter_context(local_cluster(2))
                    opts = {"scheduler": cluster.address, "jobs": 2}
                else:
                    opts = {"jobs": 1 if mode == "jobs1" else 2}
                wall, tasks = timed(root, name, timeout=timeout, **opts)
            label = {"jobs1": "make grade --jobs 1", "jobs2": "make grade --jobs 2",
                     "dask2": "make grade, Dask 2 workers"}[mode]
            record(label, "total_wall", wall)
            record(label, "wall_per_notebook", wall / n)
            record(label, "median_trusted_check", statistics.median(tasks) if tasks else 0.0)
            print(f"  {name} {label}: {wall:.0f} s, {wall / n:.2f} s per notebook", flush=True)
        if "jobs2" in courses:
            root = courses["jobs2"]
            first = next(r["value"] for r in records
                         if r["library"] == "make grade --jobs 2" and r["metric"] == "total_wall")
            wall, _ = timed(root, name, jobs=2, timeout=timeout)
            record("re-run, nothing changed", "total_wall", wall)
            record("re-run, nothing changed", "share_of_first_run", wall / first, "ratio")
            add(root, name, a.notebook, "latecomer", notebooks[0])
            wall1, _ = timed(root, name, jobs=2, timeout=timeout)
            record("re-run, one new submission", "total_wall", wall1)
            print(f"  {name} re-run: {wall:.1f} s with nothing changed ({100 * wall / first:.0f} % of the "
                  f"first run), {wall1:.1f} s after one new submission", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    record("machine", "loadavg_1min_at_end", load, "processes")
    return records


def append_records(records: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        existing = json.loads(path.read_text())
        if not isinstance(existing, list):
            existing = []
    except (OSError, ValueError):
        existing = []
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(existing + records, indent=1) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m grader.bench", description=__doc__.splitlines()[0])
    p.add_argument("assignment", nargs="*", help=f"default: {' '.join(DEFAULT)}")
    p.add_argument("--n", type=int, default=30, help="synthetic submissions per assignment (default 30)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    p.add_argument("--timeout", type=int, default=30)
    p.add_argument("--out", type=Path, default=ROOT / "_build" / "bench.json")
    args = p.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    bad = set(modes) - set(MODES)
    if bad:
        p.error(f"unknown modes {sorted(bad)}; choose from {MODES}")
    names = args.assignment or DEFAULT
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}")
    all_records = []
    for name in names:
        all_records += bench(name, args.n, modes, args.timeout)
    print()
    print(f"{'case':<30} {'run':<30} {'metric':<26} {'value':>9}")
    for r in all_records:
        print(f"{r['case']:<30} {r['library']:<30} {r['metric']:<26} {r['value']:>9g} {r['unit']}")
    per_nb = [r["value"] for r in all_records
              if r["library"] == "make grade --jobs 2" and r["metric"] == "wall_per_notebook"]
    if per_nb:
        mean = statistics.mean(per_nb)
        total = 300 * 9 * mean
        print(f"\n300 students x 9 assignments at {mean:.2f} s per notebook (--jobs 2, mean of the "
              f"assignments above): {total / 3600:.1f} h on this machine, about {total / 600:.0f} min on 10 "
              "such machines (Dask, if it scales linearly), first run; a re-run grades only what changed.")
    append_records(all_records, args.out)
    print(f"appended {len(all_records)} records to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
