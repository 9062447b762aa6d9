"""Trusted grading of the course's nbgrader assignments: `make grade` (python -m grader).

    cli.py       the command line (python -m grader --help)
    intake.py    LMS downloads -> one attempt per student (Canvas, Moodle, Blackboard, plain)
    pipeline.py  intake, nbgrader autograde, trusted checks, gradebook, feedback, export, report
    nbg.py       nbgrader's commands: sandboxed on a work copy, or on the real course
    course.py    source/release notebooks, parts and points; reading submissions untrusted
    trusted.py   the trusted check of one submission: sandboxed child, plain arrays back, compare
    runner.py    the child that runs the student's code (copied into the sandbox)
    sandbox.py   namespaces, a minimal root file system, resource limits, a wall clock
    spec.py      what a per-assignment check spec provides
    checks/      one spec per assignment (grader/checks/<assignment>.py)
    feedback.py  the notebooks generate_feedback renders: no hidden tests, no expected values
    bench.py     python -m grader.bench: seconds per notebook, appended to _build/bench.json

Nothing here is ever released to students: nbgrader copies every extra file of
solutions/<assignment>/ into exercises/, so instructor code lives outside it.
"""
