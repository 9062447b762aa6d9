"""Command line of the trusted grading: `python -m grader` (what `make grade` runs)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .intake import CONFIG_NAME, DEFAULT_RULE, RULES

ROOT = Path(__file__).resolve().parent.parent


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m grader",
        description="Grade every assignment with submissions: intake of LMS downloads, nbgrader "
                    "autograde, the trusted check, feedback, grades.csv and report.csv.",
        epilog="Exit status: 0 when every submission was graded and every downloaded file "
               "attributed to a student; 1 when some could not be (the last line says how many; "
               "grading/report.csv lists them with the reason); 2 when grading could not run "
               "(say the gradebook at nbgrader's db_url cannot be opened).")
    p.add_argument("assignment", nargs="*", help="only these assignments (default: every one with submissions)")
    p.add_argument("--course", type=Path, default=ROOT,
                   help="course root holding nbgrader_config.py (default: this repository)")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 2,
                   help="submissions graded at a time on this machine, each in its own sandboxes "
                        "with one CPU (default: the number of CPUs)")
    p.add_argument("--force", action="store_true",
                   help="grade every submission again, also those unchanged since the last run "
                        "(by default a result is reused while the notebook, the assignment, its "
                        "spec, kflib, the grader and these settings are unchanged)")
    p.add_argument("--scheduler", metavar="tcp://HOST:8786",
                   help="grade on the workers of this Dask scheduler instead of this machine "
                        "(each worker needs this course checkout and its .venv at the same path)")
    p.add_argument("--timeout", type=int, default=30,
                   help="seconds per notebook cell and per call of a student's function (default 30)")
    p.add_argument("--memory-mb", type=int, default=2048,
                   help="address space of the trusted check's child process (default 2048)")
    p.add_argument("--isolation", choices=["auto", "root", "userns", "none"], default="auto",
                   help="sandbox for student code (default: the strongest that works here)")
    p.add_argument("--attempt", choices=sorted(RULES), default=None,
                   help="which attempt of a student with several is graded: "
                        + "; ".join(f"{k}: {v}" for k, v in RULES.items())
                        + f" (default: rule in grading/{CONFIG_NAME}, else {DEFAULT_RULE})")
    p.add_argument("--keep-work", action="store_true", help="keep the scratch folder (for debugging)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from .pipeline import Options, run

    opts = Options(root=args.course, assignments=args.assignment, jobs=args.jobs,
                   isolation=args.isolation, timeout=args.timeout, memory_mb=args.memory_mb,
                   keep_work=args.keep_work, attempt_rule=args.attempt, force=args.force,
                   scheduler=args.scheduler)
    try:
        summary = run(opts)
    except RuntimeError as exc:
        sys.stdout.flush()
        print(f"make grade: grading failed: {exc}",
              file=sys.stderr)
        return 2
    # every submission is graded or listed; the status says whether any could not be
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
