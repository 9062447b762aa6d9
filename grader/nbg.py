"""nbgrader's own commands, run the way the trusted grading needs them.

Two kinds of runs:

* On a WORK copy of the course (a scratch folder), inside the sandbox: the
  command that executes student files, ``autograde``. The kernel that runs a student's notebook then sees only that
  copy (its own gradebook, holding this one assignment; the copies of the
  submissions), the Python installation and kflib, read-only; no network but
  loopback; and it cannot reach the repository, the real gradebook or the real
  submissions at all.
* On the real course, outside the sandbox: the commands that only read the
  instructor's files and the grader's results -- ``generate_assignment`` (into a
  scratch release folder, to keep the assignment in the real gradebook up to
  date) and ``generate_feedback`` (from the sanitized notebooks the grader
  builds). The gradebook is nbgrader's configured ``db_url`` (any SQLAlchemy
  URL; SQLite by default), read and written only by this process; grades.csv
  is written from it here (`export`).

Each submission gets an ``autograde`` call of its own, on a scratch course of
its own (grader/work.py), so these run in parallel; the real gradebook is
written only by the coordinating process, one submission after the other
(SQLite's gradebook is not safe for concurrent writers).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import sandbox

BIN = str(Path(sandbox.PYTHON).parent)


class GradebookError(RuntimeError):
    """The configured gradebook cannot be opened."""


def configured(root: Path):
    """nbgrader's CourseDirectory as nbgrader itself configures it when run in `root`:
    the nbgrader_config.py files of Jupyter's config path, then root's (which wins)."""
    from jupyter_core.paths import jupyter_config_path
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    cfg = Config()
    for folder in [*reversed(jupyter_config_path()), str(root)]:
        if (Path(folder) / "nbgrader_config.py").is_file():
            cfg.merge(PyFileConfigLoader("nbgrader_config.py", path=folder).load_config())
    cd = CourseDirectory(config=cfg)
    if not cd.root:
        cd.root = str(root)
    return cd


def db_url(root: Path) -> str:
    """The gradebook's URL: CourseDirectory.db_url as configured (nbgrader's default
    sqlite:///<course root>/gradebook.db when nothing sets it)."""
    return configured(root).db_url


def shown_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:                          # noqa: BLE001 -- not even a URL
        return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def check_gradebook(root: Path) -> str:
    """Open the configured gradebook once (nbgrader creates its tables if need be);
    GradebookError with a clear message if that fails. Returns the URL.

    Also makes sure the gradebook has a row for the configured course_id: nbgrader's
    commands file every assignment under CourseDirectory.course_id ("" by default)
    but create that course's row only when the id is not empty, which a database
    that enforces foreign keys (PostgreSQL; SQLite does not) refuses."""
    import warnings

    from nbgrader.api import Course, Gradebook

    try:
        cd = configured(root)
        url, course_id = cd.db_url, cd.course_id
    except Exception as exc:                   # noqa: BLE001 -- a broken nbgrader_config.py
        raise GradebookError(f"cannot read the gradebook's db_url from nbgrader_config.py: "
                             f"{type(exc).__name__}: {exc}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Gradebook(url) as gb:
                gb.students                    # one query: the database answers
                if gb.db.query(Course).filter(Course.id == course_id).first() is None:
                    gb.db.add(Course(id=course_id))
                    try:
                        gb.db.commit()
                    except Exception:          # noqa: BLE001 -- another grader added it meanwhile
                        gb.db.rollback()
                        if gb.db.query(Course).filter(Course.id == course_id).first() is None:
                            raise
    except Exception as exc:                   # noqa: BLE001 -- no driver, no server, no file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise GradebookError(
            f"cannot open the gradebook {shown_url(url)} (CourseDirectory.db_url in "
            f"nbgrader_config.py): {type(exc).__name__}: {first[:300]}. Nothing was graded.") from None
    return url


def work_db_url(course: Path) -> str:
    return "sqlite:///" + str(course / "grading" / "gradebook.db")


def env_for_nbgrader(home: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    if home is not None:
        env["HOME"] = str(home)
    return env


# `python -m nbgrader`, a second faster: jsonschema, which nbgrader imports through
# nbformat, compiles a grammar for IRI formats at import time when rfc3987_syntax is
# installed (about 1 s); no notebook or gradebook check uses those formats.
NBGRADER = [sandbox.PYTHON, "-c",
            "import sys; sys.modules['rfc3987_syntax'] = None; sys.argv[0] = 'nbgrader'; "
            "from nbgrader.apps.nbgraderapp import main; main()"]


def run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """An nbgrader command on instructor data only (not sandboxed)."""
    return subprocess.run([*NBGRADER, *args], cwd=cwd, env=env_for_nbgrader(),
                          capture_output=True, text=True, timeout=timeout)


def make_work_course(root: Path, work: Path, assignment: str) -> Path:
    """A scratch course for one assignment: config and source; generate_assignment there
    creates its own gradebook with exactly this assignment."""
    course = work / "course"
    course.mkdir(parents=True)
    shutil.copy2(root / "nbgrader_config.py", course / "nbgrader_config.py")
    # whatever db_url the course uses, the work copy has its own SQLite gradebook
    # (student code runs next to it; the real gradebook is never in reach)
    with open(course / "nbgrader_config.py", "a") as fh:
        fh.write("\n# added by the grader for its scratch copy\n"
                 f"c.CourseDirectory.db_url = {work_db_url(course)!r}\n")
    shutil.copytree(root / "solutions" / assignment, course / "solutions" / assignment,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    proc = run(["generate_assignment", assignment, "--force", "--log-level=WARN"], course)
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment {assignment} failed in the work copy:\n"
                           + (proc.stdout + proc.stderr)[-2000:])
    return course


def hide_instructor_notebooks(course: Path, assignment: str) -> None:
    """Before student code runs in the work copy, remove what it need not see:
    the source notebooks (autograde takes the tests from the gradebook) and the
    generated release."""
    for nb in (course / "solutions" / assignment).glob("*.ipynb"):
        nb.unlink()
    shutil.rmtree(course / "exercises", ignore_errors=True)
    shutil.rmtree(course / "grading" / "source_with_tests", ignore_errors=True)


def _sandbox_env(course: Path) -> dict[str, str]:
    home = course / ".home"
    home.mkdir(exist_ok=True)
    (course / ".runtime").mkdir(exist_ok=True)
    return {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
            "JUPYTER_RUNTIME_DIR": str(course / ".runtime"), "IPYTHONDIR": str(home / ".ipython"),
            "MPLCONFIGDIR": str(home / ".matplotlib"), "MPLBACKEND": "Agg", "TMPDIR": "/tmp",
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            # the kernel imports the kflib the grader imported (the only part of its folder
            # that is visible in the sandbox), wherever the virtual environment points
            "PYTHONPATH": str(kflib_dir().parent)}


def _own_for_sandbox(course: Path, mode: str, uid: int) -> None:
    """In root mode the sandboxed command runs as an unprivileged uid: give it the work copy."""
    if mode != "root":
        return
    for folder, dirs, files in os.walk(course):
        os.chown(folder, uid, uid)
        for name in files:
            os.chown(os.path.join(folder, name), uid, uid, follow_symlinks=False)


def kflib_dir() -> Path:
    import kflib
    return Path(kflib.__file__).resolve().parent


@dataclass
class SandboxedRun:
    log: str
    seconds: float
    timed_out: bool
    returncode: int | None
    killed_reason: str = ""
    killed_code: str = ""             # "timeout" or "disk" when the sandbox stopped it


def sandboxed(course: Path, args: list[str], mode: str, *, wall: float,
              memory_mb: int = 4096, disk: int | None = None) -> SandboxedRun:
    """Run `nbgrader <args>` in the work copy, inside the sandbox: its own uid, PID
    namespace and (where available) cgroup with one CPU; `disk` bytes at most under
    the work copy."""
    env = _sandbox_env(course)
    uid = sandbox.fresh_uid()
    _own_for_sandbox(course, mode, uid)
    box = sandbox.Sandbox(mode, ro=[kflib_dir()], rw=[course], uid=uid)
    limits = sandbox.Limits(wall=wall, cpu=None, memory=memory_mb << 20, fsize=256 << 20,
                            nofile=1024, nproc=256, cpus=1.0, tasks=256, disk=disk)
    log_path = course.parent / f"nbgrader-{args[0]}.log"
    with open(log_path, "wb") as log:
        res = box.run([*NBGRADER, *args], cwd=course,
                      env=env, limits=limits, stdout=log, stderr=log)
    with open(log_path, "rb") as fh:                 # the log's end (student code can print)
        fh.seek(max(0, log_path.stat().st_size - (1 << 20)))
        text = fh.read().decode("utf-8", "replace")
    if res.timed_out:
        text += f"\n[grader] killed: {res.killed_reason}\n"
    return SandboxedRun(text, res.seconds, res.timed_out, res.returncode, res.killed_reason,
                        res.killed_code)


def autograde(course: Path, assignment: str, mode: str, *, n_cells: int, timeout: int,
              disk: int | None = None) -> SandboxedRun:
    """`nbgrader autograde` of the one submission in this work copy."""
    wall = 120 + n_cells * timeout + 60
    return sandboxed(course, ["autograde", assignment, "--force", f"--Execute.timeout={timeout}",
                              "--log-level=INFO"], mode, wall=wall, disk=disk)


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Entry|Died)\b")
_PROCESSING = re.compile(r"There was an error processing assignment: (.+)$")
_SUBMITTED = re.compile(r"[/\\]submitted[/\\]([^/\\]+)[/\\]")


def failure_reasons(log: str) -> dict[str, str]:
    """student -> why nbgrader could not grade them: the last line of the traceback
    autograde logs after "There was an error processing assignment: <path>"."""
    reasons: dict[str, str] = {}
    lines = log.splitlines()
    for i, line in enumerate(lines):
        m = _PROCESSING.search(line)
        if m:
            s = _SUBMITTED.search(m.group(1).rstrip("/\\") + "/")
            if not s:
                continue
            last = exc = ""
            for nxt in lines[i + 1:]:
                if nxt.startswith("[") and "Traceback" not in nxt:
                    break
                if nxt.strip() and not nxt.startswith("["):
                    last = nxt.strip()
                    if _EXCEPTION_LINE.match(last):
                        exc = last
            reason = exc or last or "see the autograde log"
            if i and "Kernel died" in lines[i - 1]:
                reason = f"the kernel died ({reason})"
            reasons[s.group(1)] = reason[:300]
        elif "No submitted file" in line:
            s = _SUBMITTED.search(line)
            if s:
                reasons.setdefault(s.group(1), "no notebook with the expected name")
    return reasons


def read_scores(course: Path, assignment: str, notebook: str, students: list[str]
                ) -> tuple[dict[str, dict[str, float | None]], str]:
    """nbgrader's auto scores (student -> test cell -> score) from the work gradebook.

    Student code ran next to that database, so its content is advisory only.
    """
    from nbgrader.api import Gradebook, MissingEntry

    scores: dict[str, dict[str, float | None]] = {}
    try:
        with Gradebook(work_db_url(course)) as gb:
            for student in students:
                try:
                    nb = gb.find_submission_notebook(notebook, assignment, student)
                except MissingEntry:
                    continue
                scores[student] = {g.name: (None if g.auto_score is None else float(g.auto_score))
                                   for g in nb.grades}
    except Exception as exc:                  # noqa: BLE001 -- a tampered database
        return {}, f"the work gradebook could not be read ({type(exc).__name__}: {exc})"
    return scores, ""


# --------------------------------------------------------------------------
# the real course


def ensure_assignment(root: Path, assignment: str, scratch: Path) -> None:
    """Record the assignment (notebooks, cells, points) in the real gradebook by running
    generate_assignment with its output sent to a scratch folder (exercises/ untouched)."""
    release = scratch / "release"
    proc = run(["generate_assignment", assignment, "--force", "--log-level=WARN",
                f"--CourseDirectory.release_directory={release}"], root)
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment {assignment} (for the gradebook) failed:\n"
                           + (proc.stdout + proc.stderr)[-2000:])


# several graders may write one gradebook at once (a database server): two of them
# creating the same student (one task per student and assignment) or submission race,
# and the loser's INSERT fails; its transaction is rolled back and the write done again,
# now finding the row. Deadlocks and serialisation failures are retried the same way.
WRITE_ATTEMPTS = 4


def _write(gb, fn) -> None:
    """fn() then commit, retried on a conflict with a concurrent writer."""
    import time

    from nbgrader.api import InvalidEntry
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(WRITE_ATTEMPTS):
        try:
            fn()
            gb.db.commit()
            return
        except (IntegrityError, OperationalError, InvalidEntry):
            gb.db.rollback()
            if attempt == WRITE_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
        except Exception:                      # noqa: BLE001 -- not a conflict: no retry
            gb.db.rollback()
            raise


def record(root: Path, assignment: str, notebook: str, entries: list[dict]) -> dict[str, str]:
    """Write submissions' scores into the real gradebook, in one session: nbgrader's as
    auto_score, the trusted ones as manual_score (which nbgrader's totals, feedback and
    export use). entries: {"student", "auto": {cell: score|None}|None,
    "trusted": {cell: score}|None, "timestamp"}. Returns student -> error, if any.
    Safe with other writers at once on a database server (see _write)."""
    import warnings

    from nbgrader.api import Gradebook

    def one(gb, e):
        gb.update_or_create_student(e["student"])
        kwargs = {"timestamp": e["timestamp"]} if e.get("timestamp") is not None else {}
        gb.update_or_create_submission(assignment, e["student"], **kwargs)
        nb = gb.find_submission_notebook(notebook, assignment, e["student"])
        for grade in nb.grades:
            if e.get("auto") is not None:
                grade.auto_score = e["auto"].get(grade.name)
            if e.get("trusted") is not None and grade.name in e["trusted"]:
                grade.manual_score = e["trusted"][grade.name]
                grade.needs_manual_grade = False

    errors = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # SQLAlchemy chatter inside nbgrader's API
        with Gradebook(db_url(root)) as gb:
            for e in entries:
                try:
                    _write(gb, lambda: one(gb, e))
                except Exception as exc:       # noqa: BLE001
                    errors[e["student"]] = f"{type(exc).__name__}: {exc}"
    return errors


def generate_feedback(root: Path, assignment: str, staging: Path) -> subprocess.CompletedProcess:
    return run(["generate_feedback", assignment, "--force", "--log-level=WARN",
                f"--CourseDirectory.autograded_directory={staging}"], root)


def remove_submissions(root: Path, assignment: str, students: list[str]) -> dict[str, str]:
    """Take submissions out of the gradebook (withdrawn, or no longer decidable), so that
    grades.csv shows no grade for them. Returns student -> error, if any."""
    import warnings

    from nbgrader.api import Gradebook, MissingEntry

    errors = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Gradebook(db_url(root)) as gb:
            for student in students:
                try:
                    # a row in grades.csv, blank
                    _write(gb, lambda: gb.update_or_create_student(student))
                    gb.remove_submission(assignment, student)
                except MissingEntry:
                    pass
                except Exception as exc:       # noqa: BLE001
                    gb.db.rollback()
                    errors[student] = f"{type(exc).__name__}: {exc}"
    return errors


GRADES_FIELDS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name",
                 "email", "raw_score", "late_submission_penalty", "score", "max_score"]


def export(root: Path, to: Path) -> int:
    """grades.csv from the gradebook: nbgrader's export columns, one row per assignment
    and student; the score cells are blank (not 0) where a student has no submission.
    UTF-8 with a byte-order mark (Excel reads it as UTF-8), CRLF line ends. Returns the
    number of rows."""
    import csv
    import warnings

    from nbgrader.api import Gradebook, MissingEntry

    from .intake import spreadsheet_safe

    fmt = lambda v: "" if v is None else str(v)                                # noqa: E731
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Gradebook(db_url(root)) as gb:
            # nbgrader's order (due date, name; last, first name) made total and the same on
            # every database: empty values first (as SQLite sorts NULL), then the id, compared
            # by code point (not by the server's collation)
            assignments = sorted(gb.assignments, key=lambda a: (a.duedate is not None, a.duedate or 0, a.name))
            students = sorted(gb.students, key=lambda s: (s.last_name is not None, s.last_name or "",
                                                          s.first_name is not None, s.first_name or "", s.id))
            for a in assignments:
                for st in students:
                    row = {"assignment": a.name, "duedate": fmt(a.duedate), "student_id": st.id,
                           "last_name": fmt(st.last_name), "first_name": fmt(st.first_name),
                           "email": fmt(st.email), "max_score": fmt(a.max_score),
                           "timestamp": "", "raw_score": "", "late_submission_penalty": "", "score": ""}
                    try:
                        sub = gb.find_submission(a.name, st.id)
                    except MissingEntry:
                        pass
                    else:
                        penalty = sub.late_submission_penalty or 0.0
                        row.update(timestamp=fmt(sub.timestamp), raw_score=fmt(sub.score),
                                   late_submission_penalty=fmt(penalty),
                                   score=fmt(max(0.0, sub.score - penalty)))
                    rows.append(row)
    to.parent.mkdir(parents=True, exist_ok=True)
    tmp = to.with_name(to.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8-sig") as fh:
        w = csv.DictWriter(fh, fieldnames=GRADES_FIELDS)
        w.writeheader()
        for row in rows:
            w.writerow(spreadsheet_safe(row))
    tmp.replace(to)
    return len(rows)
