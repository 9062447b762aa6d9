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

from . import feedback, intake as intakes, nbg, sandbox, spec as specs, work as work_mod
from .course import Assignment, Layout, Submission, layout, load_assignment, read_submission, sha256
from .trusted import Settings, split_forbidden

REPORT_FIELDS = ["assignment", "student", "status", "nbgrader_score", "trusted_score", "max_score",
                 "grade", "flags", "reasons", "notes", "attempt", "submitted_at", "late", "source",
                 "notebook_sha256", "seconds"]
NOT_GRADED = ("not graded", "not attributed")    # statuses that make the exit status non-zero


@dataclass
class Options:
    root: Path
    assignments: list[str] = field(default_factory=list)    # empty: every one with submissions
    jobs: int = 2                     # tasks at a time on this machine
    isolation: str = "auto"
    timeout: int = 30                 # per cell / per call, in nbgrader and in the trusted check
    memory_mb: int = 2048             # trusted child's address space
    budget: float = 300.0             # per submission, trusted check
    keep_work: bool = False
    attempt_rule: str | None = None   # None: grading/intake.toml's rule, else "latest"
    force: bool = False               # grade again what is unchanged since the last run
    scheduler: str | None = None      # a Dask scheduler's address: grade on its workers


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
    """Progress lines, flushed at once (make shows them as they come); on a terminal a
    status line (the progress bar) stays below them."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self._status = ""

    def __call__(self, text: str = "") -> None:
        with self.lock:
            if self._status:
                self.stream.write("\r\x1b[K")
            self.stream.write(text + "\n")
            if self._status:
                self.stream.write(self._status)
            self.stream.flush()

    def status(self, text: str) -> None:
        if not self.tty:
            return
        with self.lock:
            self.stream.write("\r\x1b[K" + text)
            self._status = text
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
    subs: dict[str, Submission] = field(default_factory=dict)
    layouts: dict[str, Layout] = field(default_factory=dict)
    results: dict[str, "work_mod.StudentResult"] = field(default_factory=dict)
    fresh: set[str] = field(default_factory=set)          # graded in this run (not reused)
    cache: dict[str, dict] = field(default_factory=dict)  # student -> cache entry written
    rows: dict[str, Row] = field(default_factory=dict)
    spec_problem: str = ""
    env: str = ""                                         # the environment fingerprint
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
    out(f"Isolation of student code: {why}; per student and step: {sandbox.cgroups()[1]}")
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
    executor = None
    try:
        # 1. intake ----------------------------------------------------------
        t0 = time.monotonic()
        for name in names:
            try:
                jobs.append(_prepare(root, name, work, isettings, out, written))
            except Exception as exc:                     # noqa: BLE001 -- go on with the others
                out(f"ERROR: cannot grade {name}: {type(exc).__name__}: {exc}")
                failed_rows += _unassessable(root, name, f"{type(exc).__name__}: {exc}")
        timings["intake"] = time.monotonic() - t0
        # 2. what to grade: a result is reused while the notebook, the assignment, its
        #    spec, kflib, the grader and the settings are as they were
        t0 = time.monotonic()
        todo: list[tuple[_Job, work_mod.Task]] = []
        for job in jobs:
            todo += [(job, t) for t in _plan(root, job, settings, opts)]
        reused = sum(len(job.results) for job in jobs)
        timings["plan"] = time.monotonic() - t0
        # 3. grade: one task per student (nbgrader autograde and the trusted check, in a
        #    scratch of its own), --jobs at a time here or on a Dask cluster
        t0 = time.monotonic()
        if todo:
            if opts.scheduler:
                from . import cluster
                executor = cluster.DaskExecutor(opts.scheduler, out)
            else:
                executor = LocalExecutor(opts.jobs)
            out(f"Grading {len(todo)} submission(s) ({reused} unchanged since the last run, reused) "
                f"on {executor.describe()}")
            progress = Progress(len(todo), out)
            by_key = {t.key: (job, t) for job, t in todo}
            for task, result, error in executor.run([t for _, t in todo]):
                job, _ = by_key[task.key]
                if error is not None:
                    result = work_mod.StudentResult(task.assignment, task.student, task.key,
                                                    trusted_error=error)
                job.results[task.student] = result
                job.fresh.add(task.student)
                progress.done(job, task.student, result)
            progress.finish()
        elif reused:
            out(f"Nothing to grade: all {reused} submission(s) unchanged since the last run "
                "(python -m grader --force grades them again)")
        timings["grading"] = time.monotonic() - t0
        # 4. combine, gradebook ----------------------------------------------
        t0 = time.monotonic()
        for job in jobs:
            try:
                _combine(root, job, opts, out)
            except Exception as exc:                     # noqa: BLE001 -- go on with the others
                out(f"ERROR: recording {job.assignment.name} failed: {type(exc).__name__}: {exc}")
                for row in job.rows.values():
                    row.flag("gradebook-error", f"{type(exc).__name__}: {exc}")
        timings["gradebook"] = time.monotonic() - t0
        # 5. feedback, --jobs nbgrader processes at a time --------------------
        t0 = time.monotonic()
        for job in jobs:
            try:
                _feedback(root, job, work, opts, out)
            except Exception as exc:                     # noqa: BLE001
                out(f"ERROR: feedback for {job.assignment.name} failed: {type(exc).__name__}: {exc}")
                for row in job.rows.values():
                    row.flag("feedback-error", f"{type(exc).__name__}: {exc}")
        timings["feedback"] = time.monotonic() - t0
        for job in jobs:
            _save_cache(root, job)
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
        if executor is not None:
            executor.close()
        work_mod.forget_contexts()
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


class LocalExecutor:
    """Tasks on this machine, `jobs` at a time (each task's processes are sandboxed)."""

    def __init__(self, jobs: int):
        self.jobs = max(1, jobs)
        self.pool = cf.ThreadPoolExecutor(max_workers=self.jobs)

    def describe(self) -> str:
        return f"this machine, {self.jobs} at a time (--jobs)"

    def run(self, tasks):
        """Yield (task, result, None) or (task, None, error text) as tasks finish."""
        # the same process built the context from the same files: no fingerprint to compare
        futures = {self.pool.submit(work_mod.run_task, t, False): t for t in tasks}
        for fut in cf.as_completed(futures):
            task = futures[fut]
            try:
                yield task, fut.result(), None
            except Exception as exc:                     # noqa: BLE001 -- one task, not the run
                yield task, None, f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class Progress:
    """One line per finished submission with a bar, the count and an estimate of the
    time left; on a terminal also a status line that stays at the bottom."""

    WIDTH = 24

    def __init__(self, total: int, out: Out):
        self.total, self.out, self.n = total, out, 0
        self.start = time.monotonic()

    def bar(self) -> str:
        filled = round(self.WIDTH * self.n / self.total) if self.total else self.WIDTH
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.n * (self.total - self.n) if self.n else float("nan")
        left = "done" if self.n == self.total else (
            f"ETA {_duration(eta)}" if eta == eta else "ETA -")
        return (f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.n}/{self.total} "
                f"{_duration(elapsed)} elapsed, {left}")

    def done(self, job, student: str, res) -> None:
        self.n += 1
        tr = res.trusted
        if tr is not None:
            status = f"trusted {tr.score:g}/{job.assignment.max_score:g}"
            flags = ",".join(sorted({c for c, _ in tr.flags + res.flags})) or "-"
        elif res.trusted_error:
            status, flags = f"ERROR {res.trusted_error[:80]}", "-"
        else:
            status, flags = "nbgrader only", ",".join(sorted({c for c, _ in res.flags})) or "-"
        secs = sum(res.seconds.values())
        self.out(f"  [{self.n}/{self.total}] {job.assignment.name} {student}: {status} "
                 f"flags {flags} ({secs:.1f} s)   {self.bar()}")
        self.out.status(self.bar())

    def finish(self) -> None:
        self.out.status("")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


# --------------------------------------------------------------------------


def _prepare(root: Path, name: str, work: Path, isettings: "intakes.Settings", out: Out,
             written: set[str]) -> _Job:
    awork = work / name
    awork.mkdir()
    assignment = load_assignment(root, name)
    try:
        spec = specs.load(name)
        problem = "" if spec is not None else (
            f"no grader/checks/{specs.module_name(name).split('.')[-1]}.py")
    except Exception as exc:                             # noqa: BLE001 -- a broken spec
        spec, problem = None, f"its spec does not load ({type(exc).__name__}: {exc})"
    if spec is not None:
        problem = _spec_fits(assignment, spec)
        if problem:
            spec, problem = None, f"its spec does not fit ({problem})"
    job = _Job(assignment, spec, awork)
    job.spec_problem = problem
    if problem:
        out(f"WARNING: {name} has no usable trusted check: {problem}. Its submissions keep "
            "nbgrader's score and are flagged 'no-trusted-check'.")
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
    dest = job.work / "submitted" / student / name
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


def _spec_fits(assignment: Assignment, spec: specs.Spec) -> str:
    """What is wrong with a spec for this notebook ("" when it fits); the trusted checker
    checks the same again where it is built."""
    missing = set(assignment.parts) - {p.grade_id for p in spec.parts}
    unknown = {p.grade_id for p in spec.parts} - set(assignment.parts)
    if missing or unknown:
        return (f"{spec.module} does not match the notebook: parts without a check {sorted(missing)}, "
                f"checks without a part {sorted(unknown)}")
    try:
        for _, _, forbidden in spec.groups():
            ours, _ = split_forbidden(forbidden)
            if ours:
                return f"{spec.module}: kflib functions in forbid ({ours}); use allow"
    except Exception as exc:                             # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"
    return ""


# --------------------------------------------------------------------------
# the incremental cache: grading/cache/<assignment>/<student>.json


CACHE = Path("grading") / "cache"


def _cache_file(root: Path, assignment: str, student: str) -> Path:
    import hashlib
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in student)[:60]
    return (root / CACHE / assignment
            / f"{safe}-{hashlib.sha256(student.encode()).hexdigest()[:10]}.json")


def _autograded_path(root: Path, a: Assignment, student: str) -> Path:
    return root / "grading" / "autograded" / student / a.name / f"{a.notebook}.ipynb"


def _plan(root: Path, job: _Job, settings: Settings, opts: Options) -> list["work_mod.Task"]:
    """The tasks to run for this assignment; unchanged submissions get their cached result."""
    import dataclasses
    import hashlib
    import json

    a = job.assignment
    env = work_mod.fingerprint(work_mod.environment(root, a.name))
    job.env = env
    sdict = dataclasses.asdict(settings)
    tasks = []
    for student, sub in sorted(job.subs.items()):
        if sub.problem:
            continue
        files = {}
        for p in sorted(sub.folder.rglob("*")):
            if p.is_file() and not p.is_symlink():
                data = p.read_bytes()
                files[str(p.relative_to(sub.folder))] = (work_mod.strip_outputs(data)
                                                         if p.suffix == ".ipynb" else data)
        key = work_mod.task_key(files, env, sdict)
        cached = None
        cf_path = _cache_file(root, a.name, student)
        if not opts.force and cf_path.is_file():
            try:
                entry = json.loads(cf_path.read_text(encoding="utf-8"))
                if entry.get("key") == key and entry.get("student") == student:
                    ag = _autograded_path(root, a, student)
                    want = entry["result"].get("autograded_sha256", "")
                    data = ag.read_bytes() if want and ag.is_file() else None
                    if not want or (data is not None and hashlib.sha256(data).hexdigest() == want):
                        cached = work_mod.StudentResult.from_json(entry["result"], data)
                        job.cache[student] = entry
            except Exception:                            # noqa: BLE001 -- a stale or broken entry
                cached = None
        if cached is not None:
            job.results[student] = cached
        else:
            tasks.append(work_mod.Task(a.name, student, files, key, env, str(root), sdict))
    return tasks


def _save_cache(root: Path, job: _Job) -> None:
    """Keep each result of this run with the key it was computed for (a result that
    could not be recorded or whose check failed is not kept: it is graded again)."""
    import json

    for student in job.fresh:
        res, row = job.results[student], job.rows.get(student)
        path = _cache_file(root, job.assignment.name, student)
        if row is None or res.trusted_error or any(c in ("gradebook-error", "checker-error", "feedback-error")
                                                   for c, _ in row.flags):
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"student": student, "key": res.key, "result": res.to_json(),
                 "feedback": job.cache.get(student, {}).get("feedback", "")}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry), encoding="utf-8")
        tmp.replace(path)


def _combine(root: Path, job: _Job, opts: Options, out: Out) -> None:
    a = job.assignment
    students = sorted(job.subs)
    if any(not r.release_matches for r in job.results.values()):
        out(f"WARNING: solutions/{a.name} no longer generates the released exercises/{a.name} "
            "(run make exercises): grading uses the current source and release.")
    _ensure_assignment(root, job)
    entries = []
    for student in students:
        sub, row = job.subs[student], job.rows[student]
        res = job.results.get(student)
        if res is not None and student not in job.fresh:
            row.notes.append("unchanged since the last run: its result was reused")
        # nbgrader's view
        nb_scores = None
        if res is not None and not sub.problem:
            for code, reason in res.flags:
                row.flag(code, reason)
            if res.nbgrader_problem or res.nbgrader is None:
                row.flag("nbgrader-failed", res.nbgrader_problem or res.trusted_error
                         or "nbgrader did not run")
            else:
                nb_scores = res.nbgrader
                for gid, part in a.parts.items():
                    vals = [nb_scores.get(t) for t in part.tests]
                    row.part_nbgrader[gid] = sum(v or 0.0 for v in vals)
                row.nbgrader_score = sum(v or 0.0 for v in nb_scores.values())
        # the trusted view
        trusted_cells = None
        tr = res.trusted if res is not None else None
        if sub.problem:
            row.trusted_score = 0.0
            trusted_cells = {t: 0.0 for p in a.parts.values() for t in p.tests}
        elif job.spec is None:
            row.flag("no-trusted-check", f"{job.spec_problem}: nbgrader's score kept, unverified")
        elif tr is None or tr.error:
            row.status = "not graded"
            row.flag("checker-error", (tr.error if tr is not None else "")
                     or (res.trusted_error if res is not None else "") or "the trusted check did not run")
        else:
            row.seconds = tr.seconds
            for code, reason in tr.flags:
                row.flag(code, reason)
            row.notes += tr.notes
            row.trusted_score = tr.score
            trusted_cells = {}
            for gid, part in a.parts.items():
                pres = tr.parts[gid]
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
        if res is not None and student in job.fresh:
            dest = _autograded_path(root, a, student)
            shutil.rmtree(dest.parent, ignore_errors=True)
            if res.autograded is not None:
                dest.parent.mkdir(parents=True)
                dest.write_bytes(res.autograded)
    for student, error in nbg.record(root, a.name, a.notebook, entries).items():
        job.rows[student].flag("gradebook-error", error)
    for student, error in nbg.remove_submissions(root, a.name, job.unrecorded).items():
        job.rows[student].flag("gradebook-error", f"could not take it out of the gradebook: {error}")


def _ensure_assignment(root: Path, job: _Job) -> None:
    """The assignment (notebooks, cells, points) in the real gradebook; skipped when the
    gradebook holds it already, recorded from this same source."""
    import json
    import warnings

    from nbgrader.api import Gradebook, MissingEntry

    a = job.assignment
    stamp = root / CACHE / a.name / "_assignment.json"
    want = {"env": job.env, "db": nbg.shown_url(nbg.db_url(root))}
    try:
        if json.loads(stamp.read_text()) == want:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Gradebook(nbg.db_url(root)) as gb:
                    gb.find_assignment(a.name)
                    gb.find_notebook(a.notebook, a.name)
            return
    except (OSError, ValueError, MissingEntry):
        pass
    nbg.ensure_assignment(root, a.name, job.work)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(want))


def _feedback(root: Path, job: _Job, work: Path, opts: Options, out: Out) -> None:
    """Feedback for every submission graded in this run, and for those whose page is
    missing or was made from another result; `nbgrader generate_feedback` renders them,
    --jobs processes at a time (each on its share of the students)."""
    a = job.assignment
    fb_dir = root / "grading" / "feedback"
    page = lambda s: fb_dir / s / a.name / f"{a.notebook}.html"                  # noqa: E731
    todo = []
    for student in sorted(job.subs):
        res = job.results.get(student)
        key = res.key if res is not None else ""
        if (student in job.fresh or not key or job.cache.get(student, {}).get("feedback") != key
                or not page(student).is_file()):
            todo.append(student)
    if not todo:
        return
    shares = [todo[i::max(1, min(opts.jobs, len(todo)))] for i in range(max(1, min(opts.jobs, len(todo))))]
    stagings = []
    for k, share in enumerate(shares):
        staging = work / f"feedback-src-{k}" / a.name
        for student in share:
            _feedback_notebook(root, job, student, staging / student / a.name)
        stagings.append(staging)
    with cf.ThreadPoolExecutor(max_workers=len(stagings)) as pool:
        procs = list(pool.map(lambda st: nbg.generate_feedback(root, a.name, st), stagings))
    made = [s for s in todo if page(s).exists()]
    feedback.localize_pages(fb_dir, [page(s) for s in sorted(made)])
    for s in made:
        res = job.results.get(s)
        if res is not None:
            job.cache.setdefault(s, {})["feedback"] = res.key
    missing = sorted(set(todo) - set(made))
    if any(p.returncode != 0 for p in procs) or missing:
        out(f"  nbgrader generate_feedback {a.name}: no feedback for {missing}:\n"
            + "".join((p.stdout + p.stderr)[-1500:] for p in procs if p.returncode != 0))
        for s in missing:
            job.rows[s].flag("feedback-error", "no feedback HTML was generated")


def _feedback_notebook(root: Path, job: _Job, student: str, dest: Path) -> None:
    a = job.assignment
    sub, row = job.subs[student], job.rows[student]
    res = job.results.get(student)
    tr = res.trusted if res is not None else None
    messages, rows = {}, []
    visible = feedback.visible_messages(a, _autograded_path(root, a, student))
    for gid, part in a.parts.items():
        if tr is not None and not tr.error and gid in tr.parts and job.spec is not None:
            pres = tr.parts[gid]
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
    dest.mkdir(parents=True)
    nbformat.write(nb, dest / f"{a.notebook}.ipynb")


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
