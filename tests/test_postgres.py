"""The gradebook on a real PostgreSQL server: `make grade` with db_url = postgresql+psycopg://...

The fixture of tests/pg_server.py starts a PostgreSQL server (Debian's package) in a
temporary folder on a loopback port and stops it after. One small scratch course of
ps01 is graded twice by grader.pipeline.run: with the default SQLite gradebook and
with CourseDirectory.db_url pointing at a database of that server. grades.csv and
report.csv must be the same, the PostgreSQL gradebook must hold the trusted
scores, and a second run (a re-grade with a resubmission and a changed withdrawal)
must work through it. Then several writers at once: threads recording different
students, and the same new student for two assignments, all against PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import shutil
import sys
import threading
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import grading_cases as gc                      # noqa: E402
from pg_server import postgres                  # noqa: E402,F401 -- the fixture

from grader import nbg, pipeline                # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
A, NB = gc.ASSIGNMENT, gc.NOTEBOOK
pytestmark = [pytest.mark.xdist_group("grading-scale"), pytest.mark.slow]
TIME_COLUMNS = {"grades.csv": {"timestamp"}, "report.csv": {"seconds"}}


def points_of(test_cell: str) -> float:
    """A test cell's points, read from the instructor's source notebook."""
    src = nbformat.read(ROOT / "solutions" / A / f"{NB}.ipynb", 4)
    return float(next(gc.meta(c)["points"] for c in src.cells if gc.meta(c).get("grade_id") == test_cell))


FULL = sum(points_of(t) for t in ("test_cv_model", "test_simulate", "test_prior", "test_arima"))
# two parts answered wrongly (tests/submissions/ps01-state-space/wrong.py): they lose their points
WRONG = FULL - points_of("test_simulate") - points_of("test_prior")


def correct_nb() -> bytes:
    return nbformat.writes(gc.with_answers()).encode()


def wrong_nb() -> bytes:
    frag = gc.fragments("wrong.py")
    return nbformat.writes(gc.with_answers(simulate=frag["simulate"], prior=frag["prior"])).encode()


def place(root: Path, student: str, data: bytes | None) -> None:
    folder = root / "grading" / "submitted" / student / A
    folder.mkdir(parents=True, exist_ok=True)
    if data is not None:
        (folder / f"{NB}.ipynb").write_bytes(data)


def build_course(root: Path, db_url: str | None) -> None:
    """ada: the instructor's solution; bob: two parts wrong; cyd: a download, withdrawn;
    dan: a folder with no notebook (graded 0, not graded)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "nbgrader_config.py", root)
    if db_url is not None:
        with open(root / "nbgrader_config.py", "a") as fh:
            fh.write(f"\nc.CourseDirectory.db_url = {db_url!r}\n")
    for folder in ("solutions", "exercises"):
        shutil.copytree(ROOT / folder / A, root / folder / A)
    place(root, "ada", correct_nb())
    place(root, "bob", wrong_nb())
    place(root, "dan", None)
    archive = root / "grading" / "downloaded" / A / "archive"
    archive.mkdir(parents=True)
    (archive / f"cyd_{NB}.ipynb").write_bytes(correct_nb())
    (root / "grading" / "intake.toml").write_text(f'[choose.{A}]\ncyd = "withdraw"\n')


def grade(root: Path) -> tuple[pipeline.Summary, str]:
    opts = pipeline.Options(root=root, jobs=2, timeout=10)
    out = io.StringIO()
    summary = pipeline.run(opts, out=pipeline.Out(out))
    return summary, out.getvalue()


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def without_times(rows: list[dict], name: str) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIME_COLUMNS[name]} for r in rows]


def cell_scores(url: str) -> dict:
    """(student, test cell) -> (auto_score, manual_score, needs_manual_grade), and
    student -> submission score, read with nbgrader's own API."""
    from nbgrader.api import Gradebook

    cells, totals = {}, {}
    with Gradebook(url) as gb:
        for sub in gb.assignment_submissions(A):
            totals[sub.student.id] = sub.score
            for g in gb.find_submission_notebook(NB, A, sub.student.id).grades:
                cells[(sub.student.id, g.name)] = (g.auto_score, g.manual_score, g.needs_manual_grade)
        students = sorted(s.id for s in gb.students)
    return {"cells": cells, "totals": totals, "students": students}


def server_side_totals(url: str) -> list[tuple[str, float]]:
    """(student, sum of the manual scores) read with SQL from the server itself."""
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    with psycopg.connect(host=u.host, port=u.port, dbname=u.database, user=u.username,
                         password=u.password, connect_timeout=10) as conn:
        got = conn.execute(
            "SELECT st.id, sum(g.manual_score) FROM grade g "
            "JOIN submitted_notebook n ON g.notebook_id = n.id "
            "JOIN submitted_assignment s ON n.assignment_id = s.id "
            "JOIN student st ON s.student_id = st.id GROUP BY st.id ORDER BY st.id").fetchall()
    return [(s, None if v is None else float(v)) for s, v in got]


class Runs:
    pass


@pytest.fixture(scope="module")
def runs(postgres, tmp_path_factory) -> Runs:                  # noqa: F811
    r = Runs()
    r.url = postgres.new_database("course_gradebook")
    from sqlalchemy.engine import make_url
    r.password = make_url(r.url).password
    assert r.password and len(r.password) >= 16
    r.lite = tmp_path_factory.mktemp("pg-sqlite-course")
    r.pg = tmp_path_factory.mktemp("pg-postgres-course")
    build_course(r.lite, None)
    build_course(r.pg, r.url)
    r.lite_summary, r.lite_out = grade(r.lite)
    r.pg_summary, r.pg_out = grade(r.pg)
    base = tmp_path_factory.getbasetemp()
    (base / "pg-sqlite-run.txt").write_text(r.lite_out)
    (base / "pg-postgres-run.txt").write_text(r.pg_out)
    r.csv = {name: (read_csv(r.lite / "grading" / name), read_csv(r.pg / "grading" / name))
             for name in ("grades.csv", "report.csv")}
    r.gb_first = cell_scores(r.url)
    r.sql_first = server_side_totals(r.url)
    # the re-grade: ada resubmits (now two parts wrong), bob is withdrawn, cyd no longer
    place(r.pg, "ada", wrong_nb())
    (r.pg / "grading" / "intake.toml").write_text(f'[choose.{A}]\nbob = "withdraw"\n')
    r.second_summary, r.second_out = grade(r.pg)
    (base / "pg-postgres-second-run.txt").write_text(r.second_out)
    r.gb_second = cell_scores(r.url)
    r.sql_second = server_side_totals(r.url)
    r.grades_second = {row["student_id"]: row for row in read_csv(r.pg / "grading" / "grades.csv")}
    return r


def test_the_postgres_run_uses_postgres(runs):
    from nbgrader.api import Gradebook

    with Gradebook(runs.url) as gb:
        assert gb.db.bind.dialect.name == "postgresql"
    assert nbg.db_url(runs.pg) == runs.url and runs.url.startswith("postgresql+psycopg://")
    assert nbg.db_url(runs.lite).startswith("sqlite:///")
    assert "Gradebook: postgresql+psycopg://course_gradebook:***@127.0.0.1:" in runs.pg_out
    assert runs.password not in runs.pg_out and runs.password not in runs.second_out
    assert not (runs.pg / "grading" / "gradebook.db").exists()        # no SQLite file on the side
    assert (runs.lite / "grading" / "gradebook.db").is_file()


def test_expected_grades(runs):
    want = {("ada", "graded"): FULL, ("bob", "graded"): WRONG, ("cyd", "withdrawn"): None,
            ("dan", "not graded"): 0.0}
    for summary, out in ((runs.lite_summary, runs.lite_out), (runs.pg_summary, runs.pg_out)):
        by = {(r.student, r.status): r.grade for r in summary.rows}
        assert by == want, out[-3000:]


@pytest.mark.parametrize("name", ["grades.csv", "report.csv"])
def test_csv_equal_to_the_sqlite_run(runs, name):
    lite, pg = runs.csv[name]
    assert len(lite) == 4 and [r["student" if name == "report.csv" else "student_id"] for r in pg] == [
        "ada", "bob", "cyd", "dan"]
    assert without_times(pg, name) == without_times(lite, name)


def test_grades_csv_scores_and_blanks(runs):
    rows = {r["student_id"]: r for r in runs.csv["grades.csv"][1]}
    assert float(rows["ada"]["score"]) == FULL and float(rows["bob"]["score"]) == WRONG
    assert float(rows["dan"]["score"]) == 0.0                        # submitted, nothing gradable
    assert rows["cyd"]["score"] == rows["cyd"]["raw_score"] == rows["cyd"]["timestamp"] == ""  # withdrawn
    assert {r["max_score"] for r in rows.values()} == {f"{FULL}"}
    report = {r["student"]: r for r in runs.csv["report.csv"][1]}
    assert report["bob"]["flags"] == "" and report["dan"]["flags"] == "empty"
    assert report["cyd"]["status"] == "withdrawn" and report["cyd"]["grade"] == ""


def test_postgres_gradebook_holds_the_trusted_scores(runs):
    gb_pg, gb_lite = runs.gb_first, cell_scores(nbg.db_url(runs.lite))
    assert gb_pg == gb_lite                                  # cell by cell, both scores
    assert gb_pg["students"] == ["ada", "bob", "cyd", "dan"]
    assert gb_pg["totals"] == {"ada": FULL, "bob": WRONG, "dan": 0.0}
    for (student, cell), (auto, manual, needs) in gb_pg["cells"].items():
        assert manual is not None and not needs, (student, cell)
    assert gb_pg["cells"][("bob", "test_prior")][1] == 0.0
    assert gb_pg["cells"][("bob", "test_arima")][1] == points_of("test_arima")
    assert gb_pg["cells"][("ada", "test_prior")][0] == points_of("test_prior")      # nbgrader's own
    # straight from the server too, no nbgrader in between: the trusted score is the manual one
    assert runs.sql_first == [("ada", FULL), ("bob", WRONG), ("dan", 0.0)]


def test_regrade_through_postgres(runs):
    assert {r.student for r in runs.second_summary.failures} == {"dan"}
    by = {r.student: (r.status, r.grade) for r in runs.second_summary.rows}
    assert by == {"ada": ("graded", WRONG), "bob": ("withdrawn", None), "cyd": ("graded", FULL),
                  "dan": ("not graded", 0.0)}, runs.second_out[-3000:]
    assert not any(code == "gradebook-error" for r in runs.second_summary.rows for code in r.flag_codes)
    assert runs.gb_second["totals"] == {"ada": WRONG, "cyd": FULL, "dan": 0.0}
    assert runs.sql_second == [("ada", WRONG), ("cyd", FULL), ("dan", 0.0)]
    assert runs.gb_second["cells"][("ada", "test_prior")][1] == 0.0        # the old score replaced
    g = runs.grades_second
    assert float(g["ada"]["score"]) == WRONG and float(g["cyd"]["score"]) == FULL
    assert g["bob"]["score"] == "" and g["bob"]["raw_score"] == ""          # taken out of the gradebook
    assert runs.second_out.strip().splitlines()[-1].startswith("make grade: FAILED for some: 1 submission")


# --------------------------------------------------------------------------
# several writers at once


def _setup_concurrent(postgres, root: Path, name: str) -> str:     # noqa: F811
    """A course folder whose nbgrader_config.py points at a new database, holding two
    small assignments of one notebook and two graded cells each (made with nbgrader's API)."""
    from nbgrader.api import Gradebook

    url = postgres.new_database(name)
    root.mkdir()
    shutil.copy2(ROOT / "nbgrader_config.py", root)
    with open(root / "nbgrader_config.py", "a") as fh:
        fh.write(f"\nc.CourseDirectory.db_url = {url!r}\n")
    assert nbg.check_gradebook(root) == url
    with Gradebook(url) as gb:
        for a in ("lab1", "lab2"):
            gb.add_assignment(a)
            gb.add_notebook("nb", a)
            for cell, pts in (("t1", 1.0), ("t2", 2.0)):
                gb.add_grade_cell(cell, "nb", a, max_score=pts, cell_type="code")
    return url


def _writers(targets) -> list:
    """Start one thread per (root, assignment, entries) at the same instant; returns
    what record() returned per thread (or the exception it raised)."""
    barrier = threading.Barrier(len(targets))
    results: list = [None] * len(targets)

    def work(i, root, a, entries):
        barrier.wait()
        try:
            results[i] = nbg.record(root, a, "nb", entries)
        except Exception as exc:                                   # noqa: BLE001 -- reported below
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i, *t)) for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a writer hangs"
    return results


def entry(student: str, t1: float, t2: float) -> dict:
    return {"student": student, "auto": {"t1": 1.0, "t2": 2.0}, "trusted": {"t1": t1, "t2": t2},
            "timestamp": None}


# nbgrader's SQLAlchemy chatter, which record() silences with warnings.catch_warnings; that
# is process-wide, not per thread, so with writers in threads some of it gets out
QUIET = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")


@QUIET
def test_concurrent_writers_to_postgres(postgres, tmp_path):             # noqa: F811
    from nbgrader.api import Gradebook

    root = tmp_path / "course"
    url = _setup_concurrent(postgres, root, "concurrent_writers")
    # two writers, different students, the same assignment
    assert _writers([(root, "lab1", [entry("eve", 1.0, 0.0)]),
                     (root, "lab1", [entry("fay", 0.0, 2.0)])]) == [{}, {}]
    # four writers, each a batch of students; and the same new student recorded for
    # two assignments at once (one task per student and assignment, as on a cluster)
    batches = [[entry(f"s{w}{i}", 1.0, float(i % 3)) for i in range(4)] for w in range(2)]
    same = [entry(f"twin{k}", 1.0, 1.0) for k in range(3)]
    results = _writers([(root, "lab1", batches[0]), (root, "lab1", batches[1]),
                        (root, "lab1", same), (root, "lab2", same)])
    assert results == [{}, {}, {}, {}], results
    with Gradebook(url) as gb:
        got = {(s.assignment.name, s.student.id): s.score for a in ("lab1", "lab2")
               for s in gb.assignment_submissions(a)}
        manual = {g.name: g.manual_score for g in gb.find_submission_notebook("nb", "lab1", "eve").grades}
    want = {("lab1", "eve"): 1.0, ("lab1", "fay"): 2.0}
    want |= {("lab1", e["student"]): e["trusted"]["t1"] + e["trusted"]["t2"] for b in batches for e in b}
    want |= {(a, f"twin{k}"): 2.0 for a in ("lab1", "lab2") for k in range(3)}
    assert got == want
    assert manual == {"t1": 1.0, "t2": 0.0}


@QUIET
def test_two_writers_creating_the_same_student(postgres, tmp_path, monkeypatch):   # noqa: F811
    """The race made certain: both writers look the new student up, find nothing, and
    only then insert; one INSERT fails, and that writer must write again, not lose it."""
    from nbgrader.api import Gradebook, MissingEntry

    root = tmp_path / "course"
    url = _setup_concurrent(postgres, root, "same_student")
    both_looked = threading.Barrier(2)
    find_student = Gradebook.find_student

    def find_then_wait(self, name):
        try:
            return find_student(self, name)
        except MissingEntry:
            if name == "zoe":
                try:
                    both_looked.wait(timeout=20)
                except threading.BrokenBarrierError:
                    pass
            raise

    monkeypatch.setattr(Gradebook, "find_student", find_then_wait)
    results = _writers([(root, "lab1", [entry("zoe", 1.0, 2.0)]), (root, "lab2", [entry("zoe", 0.0, 2.0)])])
    assert not both_looked.broken, "the two writers did not race"
    assert results == [{}, {}], results
    monkeypatch.undo()
    with Gradebook(url) as gb:
        assert [s.id for s in gb.students] == ["zoe"]
        assert (gb.find_submission("lab1", "zoe").score, gb.find_submission("lab2", "zoe").score) == (3.0, 2.0)


def test_unreachable_postgres_fails_clearly(postgres, tmp_path):        # noqa: F811
    shutil.copy2(ROOT / "nbgrader_config.py", tmp_path)
    bad = postgres.url("no_such_database", user="nobody_here", password="s3cret-pw")
    with open(tmp_path / "nbgrader_config.py", "a") as fh:
        fh.write(f"\nc.CourseDirectory.db_url = {bad!r}\n")
    with pytest.raises(nbg.GradebookError) as err:
        nbg.check_gradebook(tmp_path)
    msg = str(err.value)
    assert f"cannot open the gradebook postgresql+psycopg://nobody_here:***@127.0.0.1:{postgres.port}" in msg
    assert "s3cret-pw" not in msg and "Nothing was graded" in msg
    assert "password authentication failed" in msg or "does not exist" in msg, msg

