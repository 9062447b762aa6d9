"""Trusted grading of the course's nbgrader assignments: `make grade` (python -m grader).

    cli.py       the command line (python -m grader --help)
    intake.py    LMS downloads -> one attempt per student (Canvas, Moodle, Blackboard, plain)
    pipeline.py  intake, the incremental cache, the tasks, gradebook, feedback, export, report
    work.py      one task: a student's nbgrader autograde and trusted check, in a scratch of its own
    cluster.py   the tasks on a Dask cluster (--scheduler); a local cluster for tests and benchmarks
    nbg.py       nbgrader's commands: sandboxed on a work copy, or on the real course
    course.py    source/release notebooks, parts and points; reading submissions untrusted
    trusted.py   the trusted check of one submission: sandboxed child, plain arrays back, compare
    runner.py    the child that runs the student's code (copied into the sandbox)
    sandbox.py   namespaces, a minimal root file system, cgroups, resource limits, a wall clock
    spec.py      what a per-assignment check spec provides
    checks/      one spec per assignment (grader/checks/<assignment>.py)
    feedback.py  the notebooks generate_feedback renders: no hidden tests, no expected values
    bench.py     python -m grader.bench: a class graded --jobs 1, --jobs 2, on Dask, incrementally

Nothing here is ever released to students: nbgrader copies every extra file of
solutions/<assignment>/ into exercises/, so instructor code lives outside it.
"""
