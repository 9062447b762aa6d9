"""One student's grading: nbgrader autograde and the trusted check, in a scratch of its own.

A *task* is one submission of one student for one assignment. It is plain data
(the submission's files as bytes, outputs stripped), so it runs in this
process's thread pool (``--jobs N``) or on a Dask worker of another machine
(``--scheduler``, grader/cluster.py) alike; its result is plain data too
(:class:`StudentResult`). The coordinating process alone writes the gradebook,
the reports and the feedback.

Every task gets a fresh scratch folder that nothing of another student's
survives into: a copy of the assignment's scratch course with a gradebook of
its own, its own home folder and temp, its own sandboxes (own uid, PID
namespace and, where the machine allows, cgroup: one CPU, a cap on tasks,
every process killed when the step ends) and a disk quota on what it writes
(a tmpfs of that size when the grader runs as root, else a watch that kills
the step above it). Its nbgrader run grades this one notebook only.

:func:`environment` is the fingerprint of what a grade depends on besides the
notebook (kflib, the grader and its spec, the assignment's source and
release, the versions of Python, numpy, scipy and nbgrader). A worker whose
fingerprint differs from the coordinator's refuses the task
(:class:`EnvironmentMismatch`), and the incremental cache keys every result by
it (grader/pipeline.py).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import nbg, sandbox, spec as specs
from .course import Assignment, load_assignment, read_submission, layout
from .trusted import PartResult, Settings, TrustedChecker, TrustedResult

GRADER_DIR = Path(__file__).resolve().parent
DISK_QUOTA = 1 << 30          # bytes a student's scratch may hold (course copy, outputs, files)
AUTOGRADED_MAX = 64 << 20     # nbgrader's executed notebook is read back up to this size


class EnvironmentMismatch(RuntimeError):
    """This machine's course environment is not the coordinator's: it must not grade."""


@dataclass
class Task:
    assignment: str
    student: str
    files: dict[str, bytes]            # the submission folder: relative path -> content
    key: str                           # the cache key (content, environment, settings)
    env: str                           # the coordinator's environment fingerprint
    root: str                          # the course checkout (the same path on every worker)
    settings: dict                     # Settings as a dict


@dataclass
class StudentResult:
    assignment: str
    student: str
    key: str
    nbgrader: dict[str, float | None] | None = None   # test cell -> nbgrader's score
    nbgrader_problem: str = ""         # why nbgrader gave no score ("" if it did)
    autograded: bytes | None = None    # nbgrader's executed notebook (advisory, untrusted)
    trusted: TrustedResult | None = None
    trusted_error: str = ""
    flags: list[tuple[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    worker: str = ""
    release_matches: bool = True       # the source still generates the committed release

    # the incremental cache stores results as JSON (without the notebook bytes)
    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("autograded")
        d["autograded_sha256"] = hashlib.sha256(self.autograded).hexdigest() if self.autograded else ""
        return d

    @classmethod
    def from_json(cls, d: dict, autograded: bytes | None) -> "StudentResult":
        d = dict(d)
        d.pop("autograded_sha256", None)
        tr = d.pop("trusted")
        res = cls(**d, autograded=autograded)
        res.flags = [tuple(f) for f in res.flags]
        if tr is not None:
            parts = {k: PartResult(**v) for k, v in tr.pop("parts").items()}
            res.trusted = TrustedResult(parts, **tr)
            res.trusted.flags = [tuple(f) for f in res.trusted.flags]
        return res


# --------------------------------------------------------------------------
# the environment fingerprint


def _tree_hash(folder: Path, h) -> None:
    if not folder.exists():
        h.update(b"<missing>")
        return
    for p in sorted(folder.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts:
            h.update(str(p.relative_to(folder)).encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())


def environment(root: Path, assignment: str) -> dict[str, str]:
    """What a grade depends on besides the notebook, component by component."""
    import sys
    from importlib.metadata import version

    def tree(*folders: Path) -> str:
        h = hashlib.sha256()
        for f in folders:
            _tree_hash(f, h)
        return h.hexdigest()[:16]

    return {
        "kflib": tree(nbg.kflib_dir()),
        "grader": tree(GRADER_DIR),
        "assignment": tree(root / "solutions" / assignment, root / "exercises" / assignment),
        "python": sys.version.split()[0],
        **{pkg: version(pkg) for pkg in ("numpy", "scipy", "nbgrader", "nbconvert", "ipykernel")},
    }


def fingerprint(env: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()


def task_key(files: dict[str, bytes], env_print: str, settings: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    h.update(env_print.encode())
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()


def strip_outputs(data: bytes) -> bytes:
    """A notebook without its outputs (they play no part in grading; a notebook of
    27 MB of plots is a few kB without them). Returned unchanged when not JSON."""
    try:
        nb = json.loads(data.decode("utf-8"))
        cells = nb["cells"]
    except Exception:                          # noqa: BLE001 -- the grader reports it later
        return data
    if not isinstance(cells, list):
        return data
    for c in cells:
        if isinstance(c, dict) and c.get("cell_type") == "code":
            c["outputs"] = []
            c["execution_count"] = None
        if isinstance(c, dict) and isinstance(c.get("attachments"), dict) and c.get("cell_type") != "markdown":
            c.pop("attachments")
    return (json.dumps(nb, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


# --------------------------------------------------------------------------
# per process: one prepared context per assignment


class Context:
    """What every task of one assignment needs on this machine: the assignment, the
    trusted checker (its copies of kflib), and a scratch course template with a
    gradebook that holds the assignment."""

    def __init__(self, root: Path, name: str, settings: Settings, base: Path):
        self.root, self.name, self.settings = root, name, settings
        self.base = base / name
        self.base.mkdir(parents=True)
        os.chmod(self.base, 0o755)
        self.assignment: Assignment = load_assignment(root, name)
        self.spec = specs.load(name)
        try:
            self.checker = (TrustedChecker(self.assignment, self.spec, self.base / "trusted", settings)
                            if self.spec is not None else None)
        except Exception:                            # noqa: BLE001 -- the coordinator reports it
            self.checker = None
        self.template = nbg.make_work_course(root, self.base / "template", name)
        gen = self.template / "exercises" / name / f"{self.assignment.notebook}.ipynb"
        committed = root / "exercises" / name / f"{self.assignment.notebook}.ipynb"
        self.release_matches = not (gen.exists() and committed.exists()
                                    and gen.read_bytes() != committed.read_bytes())
        nbg.hide_instructor_notebooks(self.template, name)
        self.n_cells = sum(1 for c in self.assignment.release.cells if c.cell_type == "code")
        self.env = fingerprint(environment(root, name))


_contexts: dict[tuple, Context] = {}
_contexts_lock = threading.Lock()
_building: dict[tuple, threading.Lock] = {}
_base: list[Path] = []


def _scratch_base() -> Path:
    if not _base:
        _base.append(Path(tempfile.mkdtemp(prefix="kfgrade-")))
        os.chmod(_base[0], 0o755)
        atexit.register(shutil.rmtree, _base[0], True)
    return _base[0]


def context(root: Path, name: str, settings: Settings, rebuild: bool = False) -> Context:
    """The prepared context of an assignment in this process (built once, thread-safe;
    `rebuild` prepares it again from the files as they are now)."""
    key = (str(root), name, tuple(sorted(asdict(settings).items())))
    with _contexts_lock:
        if rebuild and key in _contexts:
            shutil.rmtree(_contexts.pop(key).base.parent, ignore_errors=True)
        if key in _contexts:
            return _contexts[key]
        lock = _building.setdefault(key, threading.Lock())
    with lock:
        with _contexts_lock:
            if key in _contexts:
                return _contexts[key]
        ctx = Context(root, name, settings, Path(tempfile.mkdtemp(prefix="ctx-", dir=_scratch_base())))
        with _contexts_lock:
            _contexts[key] = ctx
        return ctx


def forget_contexts() -> None:
    """Drop the prepared contexts (the coordinator does so at the end of a run)."""
    with _contexts_lock:
        for ctx in _contexts.values():
            shutil.rmtree(ctx.base.parent, ignore_errors=True)
        _contexts.clear()
        _building.clear()


# --------------------------------------------------------------------------
# the task


def run_task(task: Task, verify_env: bool = True) -> StudentResult:
    """Grade one submission (run by the coordinator's threads or by a Dask worker).

    verify_env: refuse (EnvironmentMismatch) when this machine's course environment is
    not the one the coordinator planned with; the coordinator's own threads skip it."""
    import socket

    settings = Settings(**task.settings)
    root = Path(task.root)
    ctx = context(root, task.assignment, settings)
    if verify_env and ctx.env != task.env and fingerprint(environment(root, task.assignment)) == task.env:
        # this worker's files changed since it prepared the assignment (an update of the
        # checkout between two runs): prepare it again from the files as they are now
        ctx = context(root, task.assignment, settings, rebuild=True)
    if verify_env and ctx.env != task.env:
        mine = environment(root, task.assignment)
        raise EnvironmentMismatch(
            f"this worker ({socket.gethostname()}) has another course environment than the "
            f"coordinator (fingerprint {ctx.env[:12]} here, {task.env[:12]} there; here: "
            + ", ".join(f"{k} {v}" for k, v in mine.items())
            + "): install the same checkout of the course and its .venv on every worker")
    res = StudentResult(task.assignment, task.student, task.key, worker=socket.gethostname(),
                        release_matches=ctx.release_matches)
    with student_scratch(ctx.base / "students", task.student) as scratch:
        course = scratch / "course"
        shutil.copytree(ctx.template, course, symlinks=True)
        with open(course / "nbgrader_config.py", "a") as fh:
            fh.write(f"c.CourseDirectory.db_url = {nbg.work_db_url(course)!r}\n")
        dest = course / "grading" / "submitted" / task.student / task.assignment
        dest.mkdir(parents=True)
        for rel, data in task.files.items():
            p = dest / rel
            if not p.resolve().is_relative_to(dest.resolve()):
                continue                         # the coordinator never sends such names
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            p.chmod(0o644)
        sub = read_submission(dest, ctx.assignment, task.student)
        if sub.renamed_from:
            (dest / sub.renamed_from).rename(dest / f"{ctx.assignment.notebook}.ipynb")
            sub = read_submission(dest, ctx.assignment, task.student)
        # 1. nbgrader, on this one notebook, in a sandbox of its own
        t0 = time.monotonic()
        ag = nbg.autograde(course, task.assignment, settings.isolation,
                           n_cells=ctx.n_cells, timeout=int(settings.cell_timeout),
                           disk=DISK_QUOTA - sandbox.disk_usage(scratch))
        res.seconds["nbgrader"] = time.monotonic() - t0
        if ag.killed_code == "disk":
            res.flags.append(("disk", f"nbgrader's run was stopped: the notebook {ag.killed_reason}"))
        scores, problem = nbg.read_scores(course, task.assignment, ctx.assignment.notebook,
                                          [task.student])
        nb_file = (course / "grading" / "autograded" / task.student / task.assignment
                   / f"{ctx.assignment.notebook}.ipynb")
        if nb_file.is_file() and nb_file.stat().st_size <= AUTOGRADED_MAX:
            res.autograded = nb_file.read_bytes()
        res.nbgrader = scores.get(task.student)
        if problem:
            res.nbgrader_problem = problem
        elif res.nbgrader is None or res.autograded is None:
            res.nbgrader = None
            res.nbgrader_problem = (nbg.failure_reasons(ag.log).get(task.student)
                                    or ("nbgrader ran out of time" if ag.timed_out
                                        else "no autograded notebook (see the autograde log)"))
        # 2. the trusted check (its children have sandboxes and cgroups of their own)
        if ctx.checker is not None and not sub.problem:
            t0 = time.monotonic()
            try:
                res.trusted = ctx.checker.check(sub, layout(sub, ctx.assignment))
            except Exception as exc:             # noqa: BLE001 -- reported, not raised
                res.trusted_error = f"{type(exc).__name__}: {exc}"
            finally:
                shutil.rmtree(ctx.checker.workdir / "subs" / task.student, ignore_errors=True)
            res.seconds["trusted"] = time.monotonic() - t0
        elif sub.problem:
            res.trusted_error = sub.problem
    return res


class student_scratch:
    """A fresh folder for one task, on a tmpfs of DISK_QUOTA bytes when this process
    may mount one (root), removed afterwards."""

    def __init__(self, parent: Path, student: str):
        parent.mkdir(parents=True, exist_ok=True)
        os.chmod(parent, 0o755)
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in student)[:40]
        self.path = Path(tempfile.mkdtemp(prefix=f"{safe}-", dir=parent))
        self.mounted = False

    def __enter__(self) -> Path:
        if os.geteuid() == 0 and shutil.which("mount"):
            proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_QUOTA},mode=755",
                                   "kfgrade-student", str(self.path)], capture_output=True)
            self.mounted = proc.returncode == 0
        os.chmod(self.path, 0o755)
        return self.path

    def __exit__(self, *exc) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)
        shutil.rmtree(self.path, ignore_errors=True)
