"""`make grade`: every assignment with submissions, from intake to grades.csv.

For each assignment that has submissions (grading/submitted/<student>/<a>/, or
LMS downloads in grading/downloaded/<a>/archive/):

1. intake (grader/intake.py): every file of the downloads is attributed to a
   student or listed with the reason it is not; one attempt per student is
   chosen by a visible rule (latest by default); each new attempt is kept under
   grading/attempts/; the chosen one (or the notebook the instructor placed in
   grading/submitted/, which wins) is copied to the work copy -- the originals
   are only ever read, and their checksums are compared before and after;
2. `nbgrader autograde` on the work copy, in the sandbox, one assignment at a
   time (the gradebook is SQLite: no concurrent writers); meanwhile
3. the trusted check of every submission (grader/trusted.py), --jobs at a time;
4. the real gradebook gets nbgrader's scores (auto_score) and the trusted ones
   (manual_score, which nbgrader's totals, feedback and export use);
5. feedback: sanitized notebooks (grader/feedback.py) -> `nbgrader generate_feedback`
   -> grading/feedback/<student>/<a>/<notebook>.html;
6. grading/grades.csv from the gradebook (nbgrader export's columns; blank where a
   student has no submission), grading/report.csv with one row per student and
   assignment (nbgrader's score, the trusted score, flags; kept for assignments not
   graded in this run) and one per file that could not be attributed, and
   grading/intake.csv with every attempt and which one was graded.

A bad submission never stops the run; every submission that could not be
graded and every file that could not be attributed is listed with the reason,
and `Summary.failures` counts them (the command's exit status).
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import os
import pkgutil
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import feedback, intake as intakes, nbg, sandbox, spec as specs
from .course import Assignment, Layout, Submission, layout, load_assignment, read_submission, sha256
from .trusted import Settings, TrustedChecker, TrustedResult

REPORT_FIELDS = ["assignment", "student", "status", "nbgrader_score", "trusted_score", "max_score",
                 "grade", "flags", "reasons", "notes", "attempt", "submitted_at", "late", "source",
                 "notebook_sha256", "seconds"]
NOT_GRADED = ("not graded", "not attributed")    # statuses that make the exit status non-zero


@dataclass
class Options:
    root: Path
    assignments: list[str] = field(default_factory=list)    # empty: every one with submissions
    jobs: int = 2
    isolation: str = "auto"
    timeout: int = 30                 # per cell / per call, in nbgrader and in the trusted check
    memory_mb: int = 2048             # trusted child's address space
    budget: float = 300.0             # per submission, trusted check
    keep_work: bool = False
    skip_nbgrader: bool = False       # benchmarks of the trusted check alone
    attempt_rule: str | None = None   # None: grading/intake.toml's rule, else "latest"


@dataclass
class Row:
    assignment: str
    student: str
    status: str = "graded"                        # graded | not graded | withdrawn | not attributed
    nbgrader_score: float | None = None
    trusted_score: float | None = None
    max_score: float = 0.0
    flags: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sha: str = ""
    seconds: float = 0.0
    part_nbgrader: dict[str, float | None] = field(default_factory=dict)
    part_trusted: dict[str, float] = field(default_factory=dict)
    attempt: str = ""                             # "2 of 3" (downloaded attempts), "by hand"
    submitted_at: str = ""
    late: str = ""                                # why it is late ("" if not)
    source: str = ""                              # where the graded file came from

    @property
    def grade(self) -> float | None:
        return self.trusted_score if self.trusted_score is not None else self.nbgrader_score

    def flag(self, code: str, reason: str) -> None:
        if (code, reason) not in self.flags:
            self.flags.append((code, reason))

    @property
    def flag_codes(self) -> list[str]:
        return sorted({c for c, _ in self.flags})

    def as_csv(self) -> dict:
        fmt = lambda v: "" if v is None else f"{v:g}"                       # noqa: E731
        return {"assignment": self.assignment, "student": self.student, "status": self.status,
                "nbgrader_score": fmt(self.nbgrader_score), "trusted_score": fmt(self.trusted_score),
                "max_score": fmt(self.max_score), "grade": fmt(self.grade),
                "flags": ";".join(self.flag_codes),
                "reasons": " | ".join(f"{c}: {r}" for c, r in self.flags),
                "notes": " | ".join(self.notes), "attempt": self.attempt,
                "submitted_at": self.submitted_at, "late": self.late, "source": self.source,
                "notebook_sha256": self.sha, "seconds": f"{self.seconds:.1f}" if self.seconds else ""}


@dataclass
class Summary:
    rows: list[Row]
    seconds: float
    isolation: str
    work: Path | None
    timings: dict[str, float] = field(default_factory=dict)
    intakes: dict[str, "intakes.Intake"] = field(default_factory=dict)

    @property
    def failures(self) -> list[Row]:
        """Submissions that could not be graded and files that could not be attributed."""
        return [r for r in self.rows if r.status in NOT_GRADED]

    def last_line(self) -> str:
        graded = sum(r.status == "graded" for r in self.rows)
        bad = sum(r.status == "not graded" for r in self.rows)
        lost = sum(r.status == "not attributed" for r in self.rows)
        if not bad and not lost:
            return f"make grade: all {graded} submissions graded; every downloaded file attributed."
        what = []
        if bad:
            what.append(f"{bad} submission(s) could not be graded")
        if lost:
            what.append(f"{lost} downloaded file(s) could not be attributed to a student")
        return (f"make grade: FAILED for some: {' and '.join(what)} ({graded} graded); "
                "see 'Could not grade' above and grading/report.csv.")

    def row(self, assignment: str, student: str) -> Row:
        for r in self.rows:
            if r.assignment == assignment and r.student == student:
                return r
        raise KeyError((assignment, student))


class Out:
    """Progress lines, flushed at once (make shows them as they come)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()

    def __call__(self, text: str = "") -> None:
        with self.lock:
            self.stream.write(text + "\n")
            self.stream.flush()


# --------------------------------------------------------------------------


def preload_kflib() -> None:
    """Import all of kflib now, before any student code runs anywhere: the references
    then come from what was on disk when grading started."""
    import kflib
    for info in pkgutil.iter_modules(kflib.__path__, "kflib."):
        try:
            importlib.import_module(info.name)
        except ImportError:
            pass                      # optional parts (e.g. torch) need not be there


def tree_hashes(folder: Path, skip_caches: bool = False) -> dict[str, str]:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()
            and not (skip_caches and ("__pycache__" in p.parts or ".ipynb_checkpoints" in p.parts))}


def discover(root: Path) -> list[str]:
    sol = root / "solutions"
    if not sol.is_dir():
        return []
    names = []
    for folder in sorted(p for p in sol.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))):
        a = folder.name
        submitted = any((s / a).is_dir() for s in (root / "grading" / "submitted").glob("*"))
        archive = root / "grading" / "downloaded" / a / "archive"
        if submitted or (archive.is_dir() and any(archive.iterdir())):
            names.append(a)
    return names


@dataclass
class _Job:
    assignment: Assignment
    spec: specs.Spec | None
    work: Path
    course: Path | None = None
    checker: TrustedChecker | None = None
    subs: dict[str, Submission] = field(default_factory=dict)
    layouts: dict[str, Layout] = field(default_factory=dict)
    trusted: dict[str, TrustedResult] = field(default_factory=dict)
    rows: dict[str, Row] = field(default_factory=dict)
    spec_problem: str = ""
    intake: "intakes.Intake | None" = None
    unrecorded: list[str] = field(default_factory=list)   # withdrawn or undecided: not in the gradebook
    unattributed: list[Row] = field(default_factory=list)


def run(opts: Options, out: Out | None = None) -> Summary:
    out = out or Out()
    t_start = time.monotonic()
    root = opts.root.resolve()
    preload_kflib()
    mode, why = sandbox.detect(opts.isolation)
    out(f"Grading the course in {root}")
    out(f"Isolation of student code: {why}")
    if mode == "none":
        out("WARNING: without namespaces student code can read and write this machine's files "
            "as the grader's user; run as root or enable unprivileged user namespaces.")
    try:
        url = nbg.check_gradebook(root)
    except nbg.GradebookError as exc:
        out(f"ERROR: {exc}")
        raise
    out(f"Gradebook: {nbg.shown_url(url)}")
    try:
        isettings = intakes.load_settings(root / "grading" / intakes.CONFIG_NAME, opts.attempt_rule)
    except ValueError as exc:
        out(f"ERROR: {exc}")
        raise RuntimeError(str(exc)) from None
    out(f"Attempt rule: {isettings.rule} -- {intakes.RULES[isettings.rule]}; a notebook placed in "
        f"grading/submitted/<student>/<assignment>/ wins (change: --attempt or grading/{intakes.CONFIG_NAME})")
    submitted_dir = root / "grading" / "submitted"
    attempts_dir = root / "grading" / "attempts"
    guarded = {"grading/submitted": tree_hashes(submitted_dir),
               "grading/downloaded": tree_hashes(root / "grading" / "downloaded"),
               "grading/attempts": tree_hashes(attempts_dir)}
    instructor = {name: tree_hashes(root / name, True) for name in ("solutions", "exercises")}
    instructor["kflib"] = tree_hashes(nbg.kflib_dir(), True)
    names = opts.assignments or discover(root)
    if not names:
        out("No submissions found (grading/submitted/<student>/<assignment>/ or "
            "grading/downloaded/<assignment>/archive/).")
        return Summary([], time.monotonic() - t_start, mode, None)
    work = Path(tempfile.mkdtemp(prefix="kfgrade-"))
    os.chmod(work, 0o755)
    settings = Settings(isolation=mode, cell_timeout=opts.timeout, call_timeout=opts.timeout,
                        memory_mb=opts.memory_mb, budget=opts.budget)
    timings: dict[str, float] = {}
    jobs: list[_Job] = []
    failed_rows: list[Row] = []
    written: set[str] = set()           # attempts kept under grading/attempts/ by this run
    pool = None
    try:
        # 1. intake ----------------------------------------------------------
        t0 = time.monotonic()
        for name in names:
            try:
                jobs.append(_prepare(root, name, work, mode, settings, isettings, out, written))
            except Exception as exc:                     # noqa: BLE001 -- go on with the others
                out(f"ERROR: cannot grade {name}: {type(exc).__name__}: {exc}")
                failed_rows += _unassessable(root, name, f"{type(exc).__name__}: {exc}")
        timings["intake"] = time.monotonic() - t0
        # 2 + 3. nbgrader autograde (sequential) while the trusted checks run (parallel)
        t0 = time.monotonic()
        pool = cf.ThreadPoolExecutor(max_workers=max(1, opts.jobs))
        futures = {}
        todo = [(job, student, sub) for job in jobs if job.checker
                for student, sub in job.subs.items() if not sub.problem]
        total = len(todo)
        for job, student, sub in todo:
            futures[pool.submit(job.checker.check, sub, job.layouts[student])] = (job, student)
        done_count = [0]
        last_done = [0.0]

        def report_progress(fut):
            job, student = futures[fut]
            done_count[0] += 1
            try:
                res = fut.result()
            except Exception as exc:                     # noqa: BLE001
                res = TrustedResult({}, error=f"{type(exc).__name__}: {exc}")
            job.trusted[student] = res
            last_done[0] = time.monotonic()
            flags = ",".join(sorted({c for c, _ in res.flags})) or "-"
            status = (f"trusted {res.score:g}/{job.assignment.max_score:g}" if not res.error
                      else f"ERROR {res.error[:80]}")
            out(f"  [{done_count[0]}/{total}] {job.assignment.name} {student}: {status} "
                f"flags {flags} ({res.seconds:.1f} s)")

        for fut in futures:
            fut.add_done_callback(report_progress)
        autograde_logs = {}
        if not opts.skip_nbgrader:
            for job in jobs:
                if job.course is None or not job.subs:
                    continue
                n_cells = sum(1 for c in job.assignment.release.cells if c.cell_type == "code")
                out(f"  nbgrader autograde {job.assignment.name}: {len(job.subs)} submissions "
                    f"({'sandboxed, ' if mode != 'none' else ''}one assignment at a time)")
                res = nbg.autograde(job.course, job.assignment.name, mode, n_submissions=len(job.subs),
                                    n_cells=n_cells, timeout=opts.timeout)
                autograde_logs[job.assignment.name] = res
                out(f"  nbgrader autograde {job.assignment.name}: finished in {res.seconds:.0f} s"
                    + (" (KILLED: took too long)" if res.timed_out else ""))
        timings["autograde"] = time.monotonic() - t0
        pool.shutdown(wait=True)           # the callbacks have run when the workers are joined
        timings["trusted checks"] = (last_done[0] or time.monotonic()) - t0
        # 4. combine, gradebook ----------------------------------------------
        t0 = time.monotonic()
        for job in jobs:
            try:
                _combine(root, job, autograde_logs.get(job.assignment.name), opts, out)
            except Exception as exc:                     # noqa: BLE001 -- go on with the others
                out(f"ERROR: recording {job.assignment.name} failed: {type(exc).__name__}: {exc}")
                for row in job.rows.values():
                    row.flag("gradebook-error", f"{type(exc).__name__}: {exc}")
        timings["gradebook"] = time.monotonic() - t0
        # 5. feedback ---------------------------------------------------------
        t0 = time.monotonic()
        for job in jobs:
            try:
                _feedback(root, job, work, out)
            except Exception as exc:                     # noqa: BLE001
                out(f"ERROR: feedback for {job.assignment.name} failed: {type(exc).__name__}: {exc}")
                for row in job.rows.values():
                    row.flag("feedback-error", f"{type(exc).__name__}: {exc}")
        timings["feedback"] = time.monotonic() - t0
        # 6. export, report ----------------------------------------------------
        rows = ([row for job in jobs for row in job.rows.values()] + failed_rows
                + [row for job in jobs for row in job.unattributed])
        t0 = time.monotonic()
        try:
            nbg.export(root, root / "grading" / "grades.csv")
        except Exception as exc:                         # noqa: BLE001
            out(f"ERROR: writing grading/grades.csv from the gradebook failed: {type(exc).__name__}: {exc}")
            for row in rows:
                if row.status == "graded":
                    row.flag("gradebook-error", f"grades.csv not written: {type(exc).__name__}: {exc}")
        timings["export"] = time.monotonic() - t0
        write_report(root / "grading" / "report.csv", rows, set(names))
        intakes.write_csv(root / "grading" / "intake.csv",
                          [r for job in jobs if job.intake for r in intakes.csv_rows(job.intake)],
                          set(names), intakes.INTAKE_FIELDS)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if not opts.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    # checksums: the submissions and the instructor's files are as they were
    after_sub = tree_hashes(submitted_dir)
    changed = [p for p, h in guarded["grading/submitted"].items() if after_sub.get(p) != h]
    unexpected_new = sorted(set(after_sub) - set(guarded["grading/submitted"]))
    after_dl = tree_hashes(root / "grading" / "downloaded")
    changed += ["downloaded/" + p for p, h in guarded["grading/downloaded"].items() if after_dl.get(p) != h]
    after_att = tree_hashes(attempts_dir)
    changed += ["attempts/" + p for p, h in guarded["grading/attempts"].items() if after_att.get(p) != h]
    new_attempts = sorted(set(after_att) - set(guarded["grading/attempts"]))
    unexpected_new += ["attempts/" + p for p in new_attempts if p not in written]
    summary = Summary(rows, time.monotonic() - t_start, mode, work if opts.keep_work else None, timings,
                      {job.assignment.name: job.intake for job in jobs if job.intake})
    _print_summary(summary, out)
    for name, before in instructor.items():
        now = tree_hashes(nbg.kflib_dir() if name == "kflib" else root / name, True)
        if now != before:
            out(f"WARNING: {name}/ changed while grading ran (not by student code, which cannot "
                "reach it); the references come from kflib as imported when grading started.")
    if changed or unexpected_new:
        out(f"ERROR: files changed during grading: {changed + unexpected_new}")
        raise RuntimeError(f"files changed during grading: {changed + unexpected_new}")
    out(f"Submissions untouched: {len(after_sub)} files under grading/submitted/, "
        f"{len(after_dl)} under grading/downloaded/ and {len(guarded['grading/attempts'])} kept attempts "
        f"have the same SHA-256 as before ({len(new_attempts)} new attempt files kept under "
        "grading/attempts/).")
    n_subs = sum(r.status != "not attributed" for r in rows)
    out(f"Wrote grading/grades.csv, grading/report.csv, grading/intake.csv and feedback for {n_subs} "
        f"submissions in {summary.seconds:.0f} s ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ").")
    out(summary.last_line())
    return summary


# --------------------------------------------------------------------------


def _prepare(root: Path, name: str, work: Path, mode: str, settings: Settings,
             isettings: "intakes.Settings", out: Out, written: set[str]) -> _Job:
    awork = work / name
    awork.mkdir()
    assignment = load_assignment(root, name)
    try:
        spec = specs.load(name)
        problem = "" if spec is not None else (
            f"no grader/checks/{specs.module_name(name).split('.')[-1]}.py")
    except Exception as exc:                             # noqa: BLE001 -- a broken spec
        spec, problem = None, f"its spec does not load ({type(exc).__name__}: {exc})"
    job = _Job(assignment, spec, awork)
    if spec is not None:
        try:
            job.checker = TrustedChecker(assignment, spec, awork / "trusted", settings)
        except Exception as exc:                         # noqa: BLE001
            job.spec, problem = None, f"its spec does not fit ({type(exc).__name__}: {exc})"
    job.spec_problem = problem
    if problem:
        out(f"WARNING: {name} has no usable trusted check: {problem}. Its submissions keep "
            "nbgrader's score and are flagged 'no-trusted-check'.")
    job.course = nbg.make_work_course(root, awork, name)
    _check_release(root, job, out)
    nbg.hide_instructor_notebooks(job.course, name)
    # intake: one submission per student, every file accounted for
    intake = intakes.take_in(root, name, assignment.notebook, isettings)
    job.intake = intake
    kept = intakes.store(root, intake)
    written.update(str(p.relative_to(root / "grading" / "attempts")) for p in kept)
    _say_intake(intake, out, kept)
    for prob in intake.problems:
        row = Row(name, "", status="not attributed", source=prob.origin)
        row.flag("unattributed", f"{prob.origin}: {prob.reason}")
        job.unattributed.append(row)
    for student, entry in sorted(intake.entries.items()):
        row = Row(name, student, max_score=assignment.max_score, source=entry.source)
        job.rows[student] = row
        try:
            _take(job, student, entry, row, out)
        except Exception as exc:                         # noqa: BLE001 -- one student, not all
            job.subs.pop(student, None)
            job.layouts.pop(student, None)
            row.status = "not graded"
            row.flag("intake-error", f"could not be taken in: {type(exc).__name__}: {exc}")
            job.unrecorded.append(student)
            out(f"  {name} {student}: cannot be graded: could not be taken in ({exc})")
    return job


def _take(job: _Job, student: str, entry: "intakes.Entry", row: Row, out: Out) -> None:
    """One student's submission into the work copy (job.subs, job.layouts)."""
    assignment, name = job.assignment, job.assignment.name
    row.notes += entry.notes
    row.attempt = "by hand" if entry.folder is not None else entry.position()
    if entry.timestamp is not None:
        row.submitted_at = f"{entry.timestamp:%Y-%m-%d %H:%M:%S}"
    if entry.late:
        row.late = entry.attempt.late_reason
        row.flag("late", entry.attempt.late_reason)
    dest = job.course / "grading" / "submitted" / student / name
    if entry.status == "withdrawn":
        row.status = "withdrawn"
        row.notes.append(entry.reason)
        job.unrecorded.append(student)
        return
    if entry.status != "graded" and not entry.reason.startswith("no notebook"):
        row.status = "not graded"
        row.flag("ambiguous", entry.reason)
        job.unrecorded.append(student)
        out(f"  {name} {student}: cannot be graded: {entry.reason}")
        return
    if entry.status != "graded":                     # files, but no notebook among them
        dest.mkdir(parents=True)
        sub = Submission(name, student, dest, problem=entry.reason, problem_code="empty")
    elif entry.folder is not None:
        shutil.copytree(entry.folder, dest, symlinks=True,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        for p in [dest, *dest.rglob("*")]:              # sane modes whatever the original's
            if not p.is_symlink():
                p.chmod(0o755 if p.is_dir() else 0o644)
        sub = read_submission(dest, assignment, student)
    else:
        intakes.write_files(dest, entry.attempt)
        sub = read_submission(dest, assignment, student)
    job.subs[student] = sub
    row.sha = sub.sha256
    if sub.renamed_from:
        (dest / sub.renamed_from).rename(dest / f"{assignment.notebook}.ipynb")
        row.flag("wrong-name", f"submitted {sub.renamed_from} instead of {assignment.notebook}.ipynb "
                               "(graded anyway)")
    if sub.problem:
        row.status = "not graded"
        row.flag(sub.problem_code, sub.problem)
        out(f"  {name} {student}: cannot be graded: {sub.problem}")
    else:
        job.layouts[student] = layout(sub, assignment)


def _say_intake(intake: "intakes.Intake", out: Out, kept: list[Path]) -> None:
    a = intake.assignment
    entries = list(intake.entries.values())
    by_hand = sum(e.folder is not None for e in entries)
    late = sum(e.late for e in entries)
    withdrawn = sum(e.status == "withdrawn" for e in entries)
    undecided = sum(e.status == "not graded" for e in entries)
    several = sum(len(e.attempts) > 1 for e in entries)
    out(f"{a}: intake: {intake.files_found} files in grading/downloaded/{a}/archive/, "
        f"{intake.files_attributed} attributed, {len(intake.problems)} not attributed; "
        f"{len(entries)} students ({by_hand} placed by hand in grading/submitted/): "
        f"{len(entries) - withdrawn - undecided} to grade, {undecided} not gradable, {withdrawn} withdrawn; "
        f"{several} with several attempts, {late} late; {len(set(p.parent for p in kept))} new attempts kept")
    for p in intake.problems:
        out(f"  not attributed: {p.origin}: {p.reason}")


def _unassessable(root: Path, name: str, why: str) -> list[Row]:
    """Rows for the students of an assignment that cannot be graded at all."""
    students: set[str] = set()
    try:
        nb = name
        folder = root / "solutions" / name
        if folder.is_dir():
            found = sorted(p.stem for p in folder.glob("*.ipynb"))
            nb = found[0] if len(found) == 1 else name
        got = intakes.take_in(root, name, nb, intakes.Settings())
        students = {s for s, e in got.entries.items() if e.status != "withdrawn"}
    except Exception:                                    # noqa: BLE001 -- fall back to the folders
        base = root / "grading" / "submitted"
        students = {p.parent.name for p in base.glob(f"*/{name}")} if base.is_dir() else set()
    rows = []
    for student in sorted(students):
        row = Row(name, student, status="not graded")
        row.flag("assignment-error", why)
        rows.append(row)
    return rows


def _check_release(root: Path, job: _Job, out: Out) -> None:
    """Students hold exercises/<a>/; warn if the source no longer generates it."""
    name = job.assignment.name
    gen = job.course / "exercises" / name / f"{job.assignment.notebook}.ipynb"
    committed = root / "exercises" / name / f"{job.assignment.notebook}.ipynb"
    if gen.exists() and committed.exists() and gen.read_bytes() != committed.read_bytes():
        out(f"WARNING: solutions/{name} no longer generates the released exercises/{name} "
            "(run make exercises): grading uses the current source and release.")


def _combine(root: Path, job: _Job, ag: "nbg.SandboxedRun | None", opts: Options, out: Out) -> None:
    a = job.assignment
    students = sorted(job.subs)
    scores: dict = {}
    reasons: dict = {}
    db_problem = ""
    if ag is not None:
        scores, db_problem = nbg.read_scores(job.course, a.name, a.notebook, students)
        reasons = nbg.failure_reasons(ag.log)
        autograded = job.course / "grading" / "autograded"
    else:
        autograded = None
    nbg.ensure_assignment(root, a.name, job.work)
    entries = []
    for student in students:
        sub, row = job.subs[student], job.rows[student]
        res = job.trusted.get(student)
        # nbgrader's view
        nb_scores = scores.get(student)
        nb_file = autograded / student / a.name / f"{a.notebook}.ipynb" if autograded else None
        if ag is not None and not sub.problem:
            if db_problem:
                row.flag("nbgrader-failed", db_problem)
            elif nb_file is None or not nb_file.exists() or nb_scores is None:
                why = reasons.get(student) or ("nbgrader ran out of time" if ag.timed_out
                                               else "no autograded notebook (see the autograde log)")
                row.flag("nbgrader-failed", why)
                nb_scores = None
            if nb_scores is not None:
                for gid, part in a.parts.items():
                    vals = [nb_scores.get(t) for t in part.tests]
                    row.part_nbgrader[gid] = sum(v or 0.0 for v in vals)
                row.nbgrader_score = sum(v or 0.0 for v in nb_scores.values())
        # the trusted view
        trusted_cells = None
        if sub.problem:
            row.trusted_score = 0.0
            trusted_cells = {t: 0.0 for p in a.parts.values() for t in p.tests}
        elif job.spec is None:
            row.flag("no-trusted-check", f"{job.spec_problem}: nbgrader's score kept, unverified")
        elif res is None or res.error:
            row.status = "not graded"
            row.flag("checker-error", res.error if res else "the trusted check did not run")
        else:
            row.seconds = res.seconds
            for code, reason in res.flags:
                row.flag(code, reason)
            row.notes += res.notes
            row.trusted_score = res.score
            trusted_cells = {}
            for gid, part in a.parts.items():
                pres = res.parts[gid]
                row.part_trusted[gid] = pres.points
                frac = pres.points / part.points if part.points else 0.0
                for t, pts in part.tests.items():
                    trusted_cells[t] = frac * pts
            if row.nbgrader_score is not None:
                diffs = [f"part {gid}: nbgrader {row.part_nbgrader.get(gid, 0):g}, trusted {pts:g}"
                         for gid, pts in row.part_trusted.items()
                         if abs(row.part_nbgrader.get(gid, 0.0) - pts) > 1e-9]
                if diffs:
                    row.flag("disagree", "; ".join(diffs) + " (the trusted score is used)")
        ts = None
        ts_file = sub.folder / "timestamp.txt"
        if ts_file.is_file():
            try:
                from nbgrader.utils import parse_utc
                ts = parse_utc(ts_file.read_text().strip())
            except Exception:                          # noqa: BLE001
                row.notes.append("timestamp.txt could not be read")
        entries.append({"student": student, "auto": nb_scores, "trusted": trusted_cells, "timestamp": ts})
        # the instructor's copy of nbgrader's autograded notebook
        if nb_file is not None:
            dest = root / "grading" / "autograded" / student / a.name
            shutil.rmtree(dest, ignore_errors=True)
            if nb_file.exists():
                dest.mkdir(parents=True)
                shutil.copy(nb_file, dest / nb_file.name)
    for student, error in nbg.record(root, a.name, a.notebook, entries).items():
        job.rows[student].flag("gradebook-error", error)
    for student, error in nbg.remove_submissions(root, a.name, job.unrecorded).items():
        job.rows[student].flag("gradebook-error", f"could not take it out of the gradebook: {error}")


def _feedback(root: Path, job: _Job, work: Path, out: Out) -> None:
    a = job.assignment
    staging = work / "feedback-src" / a.name
    for student, sub in job.subs.items():
        row = job.rows[student]
        res = job.trusted.get(student)
        messages, rows = {}, []
        visible = feedback.visible_messages(
            a, job.course / "grading" / "autograded" / student / a.name / f"{a.notebook}.ipynb")
        for gid, part in a.parts.items():
            if res is not None and not res.error and gid in res.parts:
                pres = res.parts[gid]
                messages[gid] = feedback.part_message(pres.summary, pres.details,
                                                      "" if pres.passed else visible.get(gid, ""))
                rows.append((gid, pres.points, part.points, "correct" if pres.passed else "not correct"))
            elif sub.problem:
                messages[gid] = f"Not graded: {sub.problem}"
                rows.append((gid, 0.0, part.points, "not graded"))
            else:
                pts = row.part_nbgrader.get(gid)
                messages[gid] = ("Checked by nbgrader's tests only: "
                                 + ("no score" if pts is None else f"{pts:g} / {part.points:g}")
                                 + (f"\nThe visible test in your notebook says:\n  {visible[gid]}"
                                    if gid in visible else ""))
                rows.append((gid, pts or 0.0, part.points, "nbgrader's tests"))
        header = feedback.header_text(a, rows, sub.problem if sub.problem else "")
        nb = feedback.build(a, sub if not sub.problem else None, job.layouts.get(student), messages, header)
        dest = staging / student / a.name
        dest.mkdir(parents=True)
        nbformat.write(nb, dest / f"{a.notebook}.ipynb")
    if not job.subs:
        return
    proc = nbg.generate_feedback(root, a.name, staging)
    made = {s for s in job.subs
            if (root / "grading" / "feedback" / s / a.name / f"{a.notebook}.html").exists()}
    feedback.localize_pages(root / "grading" / "feedback",
                            [root / "grading" / "feedback" / s / a.name / f"{a.notebook}.html"
                             for s in sorted(made)])
    missing = sorted(set(job.subs) - made)
    if proc.returncode != 0 or missing:
        out(f"  nbgrader generate_feedback {a.name}: no feedback for {missing}:\n"
            + (proc.stdout + proc.stderr)[-1500:])
        for s in missing:
            job.rows[s].flag("feedback-error", "no feedback HTML was generated")


def write_report(path: Path, rows: list[Row], assignments: set[str] | None = None) -> None:
    """report.csv: these rows, and the rows of assignments not graded in this run as the
    file had them. UTF-8 with a byte-order mark, CRLF line ends (as grades.csv)."""
    assignments = {r.assignment for r in rows} if assignments is None else assignments
    intakes.write_csv(path, [r.as_csv() for r in rows], assignments, REPORT_FIELDS)


def _print_summary(summary: Summary, out: Out) -> None:
    rows = sorted(summary.rows, key=lambda r: (r.assignment, r.student))
    if not rows:
        return
    fmt = lambda v: "-" if v is None else f"{v:g}"                              # noqa: E731
    out("")
    out(f"{'assignment':<20} {'student':<24} {'nbgrader':>8} {'trusted':>8} {'max':>5}  flags")
    for r in rows:
        if r.status == "not attributed":
            continue
        out(f"{r.assignment:<20} {r.student:<24} {fmt(r.nbgrader_score):>8} {fmt(r.trusted_score):>8} "
            f"{r.max_score:>5g}  {','.join(r.flag_codes) or ('withdrawn' if r.status == 'withdrawn' else '-')}")
    bad = [r for r in rows if r.status == "not graded"]
    if bad:
        out("")
        out(f"Could not grade {len(bad)} submission(s):")
        for r in bad:
            out(f"  {r.assignment}/{r.student}: " + "; ".join(reason for _, reason in r.flags))
    lost = [r for r in rows if r.status == "not attributed"]
    if lost:
        out("")
        out(f"Could not attribute {len(lost)} downloaded file(s) to a student (rename the file as the "
            "LMS would, or place it in grading/submitted/<student>/<assignment>/):")
        for r in lost:
            out(f"  {r.assignment}: " + "; ".join(reason for _, reason in r.flags))
    flagged = [r for r in rows if r.flags and r.status == "graded"]
    if flagged:
        out("")
        out(f"Flagged for a look ({len(flagged)}); grade used = trusted score:")
        for r in flagged:
            out(f"  {r.assignment}/{r.student}:")
            for code, reason in r.flags:
                out(f"      {code}: {reason}")
