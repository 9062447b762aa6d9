"""One student cannot disturb another, and grading is parallel and incremental.

Through `make grade`'s entry point (grader.pipeline.run) on scratch copies of
ps01-state-space:

* a class of honest students is graded alone (the baseline), then again beside
  three attackers: a notebook that starts 70 busy processes that leave their
  session (`setsid`), one that fills the disk, and one that writes an IPython
  startup file and a `usercustomize.py` into its home and working folder. The
  honest students' grades, nbgrader scores and flags must be exactly those of
  the baseline;
* the same class graded with --jobs 1 and --jobs 2 gives byte-identical
  grades.csv, report.csv (seconds aside) and feedback pages;
* a re-run with nothing changed grades nothing again; one new submission is
  the only one graded; --force grades all again;
* a correct notebook with 27 MB of outputs is graded in full, and one above the
  stated size limit is reported as not graded, with the limit.
"""

from __future__ import annotations

import csv
import io
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import grading_cases as gc                      # noqa: E402

from grader import course, pipeline, sandbox    # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
A = gc.ASSIGNMENT
pytestmark = [pytest.mark.xdist_group("grading-scale"), pytest.mark.slow]

SPINNER = '''
import os, time
_kids = 0
for _ in range(70):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.setsid()
        _end = time.time() + 120
        while time.time() < _end:
            pass
        os._exit(0)
    _kids += 1
'''

DISK_FILLER = '''
import os
_block = b"x" * (16 << 20)
_written = 0
try:
    for _i in range(8 << 6):                     # up to 8 GB
        with open(f"filler-{_i}.bin", "wb") as _fh:
            _fh.write(_block)
        _written += len(_block)
except OSError:
    pass
'''

STARTUP_WRITER = '''
import os, site
_evil = "import numpy, numpy.testing\\nnumpy.allclose = lambda *a, **k: True\\n" \\
        "numpy.testing.assert_allclose = lambda *a, **k: None\\n"
for _folder in [os.path.expanduser("~/.ipython/profile_default/startup"), site.getusersitepackages(),
                os.getcwd(), os.environ.get("TMPDIR", "/tmp")]:
    try:
        os.makedirs(_folder, exist_ok=True)
        for _name in ("00-evil.py", "usercustomize.py", "sitecustomize.py"):
            with open(os.path.join(_folder, _name), "w") as _fh:
                _fh.write(_evil)
    except OSError:
        pass
'''


def _with_cell(code: str) -> nbformat.NotebookNode:
    nb = gc.with_answers()
    nb.cells.insert(2, nbformat.v4.new_code_cell(code))
    return nb


def _honest() -> dict[str, nbformat.NotebookNode]:
    """Honest students: full marks, another correct solution, typical mistakes."""
    return {"honest-correct": gc.with_answers(),
            "honest-alternative": gc.fill(gc.fragments("alternative.py")),
            "honest-wrong": gc.fill(gc.fragments("wrong.py"))}


def _attackers() -> dict[str, nbformat.NotebookNode]:
    return {"attack-spinner": _with_cell(SPINNER), "attack-disk": _with_cell(DISK_FILLER),
            "attack-startup": _with_cell(STARTUP_WRITER)}


def _course(root: Path, notebooks: dict[str, nbformat.NotebookNode]) -> Path:
    shutil.copy2(ROOT / "nbgrader_config.py", root)
    for folder in ("solutions", "exercises"):
        shutil.copytree(ROOT / folder / A, root / folder / A)
    for student, nb in notebooks.items():
        add(root, student, nb)
    return root


def add(root: Path, student: str, nb) -> None:
    d = root / "grading" / "submitted" / student / A
    d.mkdir(parents=True)
    nbformat.write(nb, d / f"{gc.NOTEBOOK}.ipynb")


def grade(root: Path, **kw) -> tuple[pipeline.Summary, str]:
    out = io.StringIO()
    summary = pipeline.run(pipeline.Options(root=root, timeout=10, **kw), out=pipeline.Out(out))
    return summary, out.getvalue()


def view(row: pipeline.Row) -> tuple:
    return (row.status, row.grade, row.nbgrader_score, row.trusted_score, tuple(row.flags))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = _course(tmp_path_factory.mktemp("honest"), _honest())
    alone = grade(base, jobs=2)
    mixed_root = _course(tmp_path_factory.mktemp("mixed"), {**_honest(), **_attackers()})
    mixed = grade(mixed_root, jobs=2)
    serial_root = _course(tmp_path_factory.mktemp("serial"), _honest())
    serial = grade(serial_root, jobs=1)
    return {"alone": (base, *alone), "mixed": (mixed_root, *mixed), "serial": (serial_root, *serial)}


# --------------------------------------------------------------------------
# one student cannot disturb another


def test_honest_grades_are_those_of_a_run_without_attackers(runs):
    _, alone, _ = runs["alone"]
    _, mixed, out = runs["mixed"]
    for student in _honest():
        assert view(mixed.row(A, student)) == view(alone.row(A, student)), (student, out[-3000:])
    assert alone.row(A, "honest-correct").grade == 10
    assert alone.row(A, "honest-alternative").grade == 10
    assert alone.row(A, "honest-wrong").grade < 10


def test_honest_students_have_no_flags_beside_attackers(runs):
    _, mixed, _ = runs["mixed"]
    for student in ("honest-correct", "honest-alternative"):
        assert mixed.row(A, student).flags == [], mixed.row(A, student).as_csv()


def test_attackers_are_graded_and_the_disk_filler_flagged(runs):
    _, mixed, out = runs["mixed"]
    for student in _attackers():
        assert mixed.row(A, student).status == "graded", mixed.row(A, student).as_csv()
    # the notebooks' answers are correct: the trusted check gives them full marks
    assert mixed.row(A, "attack-startup").grade == 10
    assert mixed.row(A, "attack-disk").grade == 10
    codes = mixed.row(A, "attack-disk").flag_codes
    assert "disk" in codes or "nbgrader-failed" in codes, mixed.row(A, "attack-disk").as_csv()


def test_no_process_of_a_student_outlives_the_run(runs):
    import os
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"ipykernel" in cmd and b"kfgrade" in cmd:
            left.append(pid)
    assert not left, f"kernels of graded students still running: {left}"
    if sandbox.cgroups()[0]:
        # this process's own (other test processes may be grading at the same time)
        mine = [d for parent in sandbox._cgroup_dirs()[1] for d in parent.glob(f"kfgrade-{os.getpid()}-*")]
        assert not mine, f"cgroups left behind: {mine}"


def test_the_output_says_how_students_are_kept_apart(runs):
    _, _, out = runs["mixed"]
    assert "per student and step:" in out


# --------------------------------------------------------------------------
# parallel = serial


def _csv_rows(path: Path, drop=("seconds",)) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(fh)]


def test_jobs_1_and_jobs_2_give_the_same_grades_reports_and_feedback(runs):
    par, _, _ = runs["alone"]
    ser, _, _ = runs["serial"]
    assert (ser / "grading" / "grades.csv").read_bytes() == (par / "grading" / "grades.csv").read_bytes()
    assert _csv_rows(ser / "grading" / "report.csv") == _csv_rows(par / "grading" / "report.csv")
    pages = sorted(p.relative_to(par) for p in (par / "grading" / "feedback").rglob("*.html"))
    assert len(pages) == len(_honest())
    for rel in pages:
        assert (ser / rel).read_bytes() == (par / rel).read_bytes(), rel


def test_progress_bar_counts_and_estimates(runs):
    _, _, out = runs["alone"]
    n = len(_honest())
    assert f"] {n}/{n} " in out and "done" in out
    assert "ETA" in out


# --------------------------------------------------------------------------
# incremental


def test_rerun_reuses_unchanged_results_and_grades_only_what_is_new(runs):
    root, first, _ = runs["serial"]
    again, out = grade(root, jobs=2)
    assert "Nothing to grade" in out, out[-2000:]
    assert [view(r) for r in again.rows] == [view(first.row(A, r.student)) for r in again.rows]
    assert all("unchanged since the last run" in " ".join(r.notes) for r in again.rows)
    add(root, "late-arrival", gc.with_answers())
    third, out = grade(root, jobs=2)
    assert "Grading 1 submission(s) (3 unchanged" in out, out[-2000:]
    assert third.row(A, "late-arrival").grade == 10
    forced, out = grade(root, jobs=2, force=True)
    assert "Grading 4 submission(s) (0 unchanged" in out, out[-2000:]
    assert [view(forced.row(A, s)) for s in _honest()] == [view(first.row(A, s)) for s in _honest()]


def test_a_changed_spec_or_kflib_changes_the_cache_key(tmp_path):
    from grader import work
    env = work.environment(ROOT, A)
    files = {"ps01-state-space.ipynb": b"{}"}
    key = work.task_key(files, work.fingerprint(env), {"cell_timeout": 10})
    for component in ("kflib", "grader", "assignment", "numpy"):
        other = {**env, component: env[component] + "x"}
        assert work.task_key(files, work.fingerprint(other), {"cell_timeout": 10}) != key
    assert work.task_key({"ps01-state-space.ipynb": b"{ }"}, work.fingerprint(env),
                         {"cell_timeout": 10}) != key
    assert work.task_key(files, work.fingerprint(env), {"cell_timeout": 20}) != key


# --------------------------------------------------------------------------
# big notebooks


def test_a_correct_notebook_with_27_mb_of_outputs_is_graded(tmp_path):
    nb = gc.with_answers()
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="y" * (27 << 20))]
            break
    root = _course(tmp_path, {"big": nb})
    path = root / "grading" / "submitted" / "big" / A / f"{gc.NOTEBOOK}.ipynb"
    assert path.stat().st_size > 27 << 20
    summary, out = grade(root, jobs=1)
    row = summary.row(A, "big")
    assert (row.status, row.grade) == ("graded", 10), row.as_csv()
    assert row.nbgrader_score == 10, row.as_csv()


def test_a_notebook_above_the_size_limit_is_not_graded_and_says_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(course, "MAX_NOTEBOOK_BYTES", 1 << 20)
    nb = gc.with_answers()
    nb.cells[0].outputs = []
    nb.cells.insert(1, nbformat.v4.new_code_cell("pass", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="z" * (2 << 20))]))
    folder = tmp_path / "s" / A
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{gc.NOTEBOOK}.ipynb")
    a = course.load_assignment(ROOT, A)
    sub = course.read_submission(folder, a, "s")
    assert sub.problem_code == "too-large"
    assert "1 MB" in sub.problem and "limit" in sub.problem


def test_the_benchmark_builds_a_gradable_class(tmp_path):
    """python -m grader.bench's class: N notebooks from the release, every third with
    one part undone, in nbgrader's layout (the benchmark itself is not run here)."""
    from grader import bench
    a = course.load_assignment(ROOT, A)
    notebooks = bench.synthetic(a, 4)
    bench.make_course(tmp_path / "class", A, notebooks)
    subs = sorted((tmp_path / "class" / "grading" / "submitted").glob(f"*/{A}/{gc.NOTEBOOK}.ipynb"))
    assert len(subs) == 4
    assert (tmp_path / "class" / "nbgrader_config.py").is_file()
    done = [sum(1 for c in nbformat.read(p, 4).cells
                if course.is_answer(course.nbgrader_meta(c)) and "NotImplementedError" not in c.source)
            for p in subs]
    assert done[:2] == [len(a.parts)] * 2 and done[2] == len(a.parts) - 1
