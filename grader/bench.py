"""Benchmark of the trusted grading: N synthetic submissions per assignment.

    python -m grader.bench                   # N=20 for every assignment with a trusted check
    python -m grader.bench --n 50 ps01-state-space
    python -m grader.bench --trusted-only    # the trusted check alone, without nbgrader

Each assignment is graded in a scratch copy of the course (the repository's
grading/ is not touched) with N notebooks made from the release: the
instructor's answers, every third submission with one part left undone. It
prints the seconds per notebook -- the median of the trusted check, and the
whole `make grade` pipeline divided by N -- and appends the figures to
_build/bench.json as {"case", "library", "metric", "value", "unit"} records.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import nbformat

from . import spec
from .course import is_answer, load_assignment, nbgrader_meta
from .pipeline import Options, Out, run

ROOT = Path(__file__).resolve().parent.parent
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


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


def bench(name: str, n: int, jobs: int, trusted_only: bool, timeout: int) -> list[dict]:
    a = load_assignment(ROOT, name)
    with tempfile.TemporaryDirectory(prefix="kfgrade-bench-") as tmp:
        root = Path(tmp)
        shutil.copy2(ROOT / "nbgrader_config.py", root)
        for folder in ("solutions", "exercises"):
            shutil.copytree(ROOT / folder / name, root / folder / name)
        for i, nb in enumerate(synthetic(a, n)):
            d = root / "grading" / "submitted" / f"student{i:04d}" / name
            d.mkdir(parents=True)
            nbformat.write(nb, d / f"{a.notebook}.ipynb")
        log = io.StringIO()
        summary = run(Options(root=root, assignments=[name], jobs=jobs, timeout=timeout,
                              skip_nbgrader=trusted_only), out=Out(log))
    print(f"  {name}: " + ", ".join(f"{k} {v:.0f} s" for k, v in summary.timings.items())
          + f"; {summary.seconds:.0f} s in all")
    per_nb = [r.seconds for r in summary.rows if r.seconds]
    case = f"grade {name} N={n}"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    records = [
        {"case": case, "library": "grader trusted check", "metric": "median_wall_per_notebook",
         "value": round(statistics.median(per_nb), 3), "unit": "s"},
        {"case": case, "library": "make grade pipeline" + (" (no nbgrader)" if trusted_only else ""),
         "metric": "wall_per_notebook", "value": round(summary.seconds / n, 3), "unit": "s"},
        {"case": case, "library": "make grade pipeline" + (" (no nbgrader)" if trusted_only else ""),
         "metric": "total_wall", "value": round(summary.seconds, 2), "unit": "s"},
        {"case": case, "library": "machine", "metric": "loadavg_1min_at_end", "value": round(load, 2),
         "unit": "processes"},
    ]
    if not trusted_only:
        records.insert(1, {"case": case, "library": "nbgrader autograde (sandboxed)",
                           "metric": "wall_per_notebook",
                           "value": round(summary.timings.get("autograde", 0.0) / n, 3), "unit": "s"})
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
    p.add_argument("assignment", nargs="*", help="default: every assignment with a trusted check")
    p.add_argument("--n", type=int, default=20, help="synthetic submissions per assignment (default 20)")
    p.add_argument("--jobs", "-j", type=int, default=min(4, os.cpu_count() or 2))
    p.add_argument("--timeout", type=int, default=30)
    p.add_argument("--trusted-only", action="store_true", help="skip nbgrader (the trusted check alone)")
    p.add_argument("--out", type=Path, default=ROOT / "_build" / "bench.json")
    args = p.parse_args(argv)
    names = args.assignment or [d.name for d in sorted((ROOT / "solutions").iterdir())
                                if d.is_dir() and spec.load(d.name) is not None]
    all_records = []
    print(f"{'case':<34} {'library':<34} {'metric':<26} {'value':>9}")
    for name in names:
        records = bench(name, args.n, args.jobs, args.trusted_only, args.timeout)
        for r in records:
            print(f"{r['case']:<34} {r['library']:<34} {r['metric']:<26} {r['value']:>9g} {r['unit']}")
        all_records += records
    append_records(all_records, args.out)
    print(f"appended {len(all_records)} records to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
