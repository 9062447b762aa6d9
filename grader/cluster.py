"""Grading on a Dask distributed cluster: `python -m grader --scheduler tcp://HOST:8786`.

The coordinating process (grader/pipeline.py) does the intake, plans one task per
student and assignment (grader/work.py's :class:`~grader.work.Task`, plain data)
and alone writes the gradebook, the reports and the feedback. :class:`DaskExecutor`
sends the tasks to the workers of a Dask scheduler, which run
:func:`grader.work.run_task` and send back the :class:`~grader.work.StudentResult`.

Every worker needs the course checkout and its .venv at the same path as the
coordinator. Before anything is submitted each worker is asked for its
environment fingerprint (kflib, the grader and its specs, the assignment's source
and release, the versions of Python and the grading packages) for every
assignment of the run; a worker whose fingerprint differs from the coordinator's
is refused with a line naming the components that differ, and the tasks are
restricted to the workers that matched (``workers=[...]``,
``allow_other_workers=False``): a worker that joins later gets no task unless it
was checked. If every checked worker of an assignment is lost during the run, the
workers present then are checked and the remaining tasks resubmitted to those
that match; the tasks of a worker that dies are re-run elsewhere by the
scheduler, and every task is reported exactly once.

:func:`local_cluster` starts a real ``dask scheduler`` and ``dask worker``
processes on 127.0.0.1 (for the tests and grader/bench.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import CancelledError
from pathlib import Path

from . import work as work_mod

ROOT = Path(__file__).resolve().parent.parent
CONNECT_TIMEOUT = 20          # seconds to reach the scheduler
WORKER_WAIT = 60              # seconds to wait for a first worker
STRANDED_LIMIT = 120          # seconds tasks may wait with no checked worker left
WATCH_EVERY = 2.0             # seconds between looks at the cluster's workers
RETRIES = 1                   # a task that raised is tried once more
TREES = ("kflib", "grader", "assignment")


# --------------------------------------------------------------------------
# run on the workers (module-level functions: pickled by reference, so a worker
# must be able to import this checkout's grader package)


def probe(root: str, assignments: list[str]) -> dict:
    """This worker's environment for each assignment (grader.work.environment)."""
    envs: dict[str, dict | str] = {}
    for a in assignments:
        if not Path(root).is_dir():
            envs[a] = f"the course checkout {root} is not on this machine"
            continue
        try:
            envs[a] = work_mod.environment(Path(root), a)
        except Exception as exc:                     # noqa: BLE001 -- reported as a refusal
            envs[a] = f"its environment cannot be read: {type(exc).__name__}: {exc}"
    return {"host": socket.gethostname(), "python": sys.executable, "envs": envs}


def grade(task: work_mod.Task) -> tuple[work_mod.StudentResult, str]:
    """One task on a worker: the result and the address of the worker that computed it."""
    from distributed import get_worker

    return work_mod.run_task(task), get_worker().address


def forget() -> None:
    """Drop this worker's prepared contexts (as the coordinator does after a run), so the
    next run builds them from the files on disk then."""
    work_mod.forget_contexts()


# --------------------------------------------------------------------------
# the coordinator's side


def _is_result(value) -> bool:
    return (isinstance(value, tuple) and len(value) == 2
            and isinstance(value[0], work_mod.StudentResult) and isinstance(value[1], str))


def differences(mine: dict[str, str], theirs: dict[str, str]) -> list[str]:
    """The components of two environments that differ, in words."""
    what = []
    for k in TREES:
        if mine.get(k) != theirs.get(k):
            what.append(f"{k} (tree {str(mine.get(k))[:12]} here, {str(theirs.get(k))[:12]} there)")
    versions = [f"{k} {mine.get(k)} here, {theirs.get(k)} there"
                for k in sorted(set(mine) | set(theirs)) if k not in TREES and mine.get(k) != theirs.get(k)]
    if versions:
        what.append("versions (" + "; ".join(versions) + ")")
    return what


class DaskExecutor:
    """The tasks on the workers of a Dask scheduler (see the module's docstring)."""

    def __init__(self, address: str, out, connect_timeout: float | None = None,
                 worker_wait: float | None = None):
        from distributed import Client

        self.address, self.out = address, out
        connect_timeout = CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
        worker_wait = WORKER_WAIT if worker_wait is None else worker_wait
        try:
            self.client = Client(address, timeout=connect_timeout, set_as_default=False)
        except Exception as exc:                     # noqa: BLE001 -- OSError, TimeoutError, ValueError
            raise RuntimeError(f"cannot connect to the Dask scheduler at {address}: "
                               f"{type(exc).__name__}: {exc} (is `dask scheduler` running there, "
                               "and is the port reachable from this machine?)") from None
        try:
            self.client.wait_for_workers(1, timeout=worker_wait)
        except Exception:                            # noqa: BLE001 -- TimeoutError
            self.client.close()
            raise RuntimeError(f"no worker connected to the Dask scheduler at {address} within "
                               f"{worker_wait:.0f} s (start `dask worker {address}` on the "
                               "grading machines)") from None
        self.checked: dict[str, dict] = {}            # worker address -> its probe (or error text)
        self.refused: dict[tuple[str, str], str] = {}  # (worker, assignment) -> why
        self.placements: dict[tuple[str, str], str] = {}   # (assignment, student) -> worker address
        self.futures: dict = {}

    # -- the cluster's workers ---------------------------------------------

    def workers(self) -> dict[str, dict]:
        return dict(self.client.scheduler_info(n_workers=-1)["workers"])

    def _name(self, addr: str, info: dict | None = None) -> str:
        info = info if info is not None else self.workers().get(addr, {})
        name = info.get("name")
        return f"{addr} ({name})" if name not in (None, "", addr) else addr

    def describe(self) -> str:
        ws = self.workers()
        threads = sum(w.get("nthreads", 0) for w in ws.values())
        return (f"the Dask cluster at {self.address}: {len(ws)} worker(s), {threads} thread(s); "
                "each worker's environment is checked before it grades")

    def _check(self, addrs: list[str], roots: dict[str, set[str]]) -> None:
        """Ask these workers for their environments (all roots and assignments of the run)."""
        infos = self.workers()
        for root, names in roots.items():
            answers = self.client.run(probe, root, sorted(names), workers=addrs, on_error="return")
            for addr in addrs:
                ans = answers.get(addr)
                if ans is None:
                    ans = "it did not answer (it left the cluster)"
                elif isinstance(ans, BaseException):
                    ans = (f"it cannot run the grader: {type(ans).__name__}: {ans} (start the worker "
                           "with the course checkout importable and its .venv's Python)")
                entry = self.checked.setdefault(addr, {"name": self._name(addr, infos.get(addr, {})),
                                                       "roots": {}})
                entry["roots"][root] = ans

    def _matching(self, addrs, root: str, assignment: str, env: str) -> list[str]:
        """Which of these checked workers may grade this assignment; refusals are printed."""
        ok = []
        mine = work_mod.environment(Path(root), assignment)
        for addr in addrs:
            entry = self.checked[addr]
            ans = entry["roots"].get(root)
            theirs = ans["envs"].get(assignment) if isinstance(ans, dict) else ans
            if isinstance(theirs, dict) and work_mod.fingerprint(theirs) == env:
                ok.append(addr)
                continue
            if (addr, assignment) in self.refused:
                continue
            if isinstance(theirs, dict):
                what = differences(mine, theirs) or [
                    "the fingerprint (this machine's files changed since the run was planned)"]
                host = ans.get("host", "?")
                why = f"its {', '.join(what)} {'differs' if len(what) == 1 else 'differ'} from this machine's"
            else:
                host, why = (ans.get("host", "?") if isinstance(ans, dict) else "?"), str(theirs)
            self.refused[(addr, assignment)] = why
            self.out(f"REFUSED: Dask worker {entry['name']} on host {host} may not grade {assignment}: "
                     f"{why}. It gets no task of {assignment}; install the same checkout of the "
                     f"course ({root}) and its .venv, at the same paths, on it and restart it.")
        return ok

    # -- the run -------------------------------------------------------------

    def _submit(self, i: int, task: work_mod.Task, allowed: list[str]):
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in task.student)[:40]
        key = f"grade-{task.assignment}-{safe}-{i}-{uuid.uuid4().hex[:8]}"
        fut = self.client.submit(grade, task, key=key, pure=False, workers=list(allowed),
                                 allow_other_workers=False, retries=RETRIES)
        self.futures[fut.key] = (i, fut)
        return fut

    def run(self, tasks):
        """Yield (task, result, None) or (task, None, error text) once for every task."""
        from distributed import as_completed

        tasks = list(tasks)
        if not tasks:
            return
        groups: dict[tuple[str, str, str], list[int]] = {}
        for i, t in enumerate(tasks):
            groups.setdefault((t.root, t.assignment, t.env), []).append(i)
        roots: dict[str, set[str]] = {}
        for root, a, _ in groups:
            roots.setdefault(root, set()).add(a)
        self._roots = roots
        live = sorted(self.workers())
        self._check(live, roots)
        allowed: dict[tuple, list[str]] = {}
        for g in groups:
            allowed[g] = self._matching(live, *g)
        missing = [g for g, ws in allowed.items() if not ws]
        if missing:
            raise RuntimeError(
                "no worker of the Dask cluster at " + self.address + " may grade "
                + ", ".join(a for _, a, _ in missing) + ": "
                + "; ".join(f"{self.checked[w]['name']}: {why}" for (w, a), why in self.refused.items()
                            if any(a == m[1] for m in missing))
                + " -- install the same checkout of the course and its .venv on the workers")
        for g, ws in allowed.items():
            names = ", ".join(self.checked[w]["name"] for w in ws)
            self.out(f"  {g[1]}: {len(groups[g])} task(s) on {len(ws)} checked worker(s): {names}")
        current: dict[int, object] = {}          # task index -> its live future
        for g, idx in groups.items():
            for i in idx:
                current[i] = self._submit(i, tasks[i], allowed[g])
        done: set[int] = set()
        stranded_since: dict[tuple, float] = {}
        # with_results: each result is fetched as soon as it is computed, not when the
        # loop gets to it (a worker that dies loses the results it still holds)
        ac = as_completed(list(current.values()), loop=self.client.loop, with_results=True,
                          raise_errors=False)
        next_watch = time.monotonic() + WATCH_EVERY
        try:
            while len(done) < len(tasks):
                batch = ac.next_batch(block=False) if ac.has_ready() else []
                for fut, value in batch:
                    i, _ = self.futures.get(fut.key, (None, None))
                    if i is None or i in done or current.get(i) is not fut:
                        self.futures.pop(fut.key, None)
                        continue                     # replaced by a resubmission
                    if not _is_result(value) and fut.status in ("lost", "pending"):
                        ac.add(fut)                  # its result died with a worker: computed again
                        continue
                    self.futures.pop(fut.key, None)
                    item = self._outcome(tasks[i], fut, value)
                    done.add(i)
                    del current[i]
                    fut.release()
                    yield item
                if batch:
                    continue
                time.sleep(0.1)
                if time.monotonic() < next_watch:
                    continue
                next_watch = time.monotonic() + WATCH_EVERY
                for item in self._watch(tasks, groups, allowed, current, done, stranded_since, ac):
                    yield item
        finally:
            for fut in current.values():
                fut.cancel()
        counts: dict[str, int] = {}
        for w in self.placements.values():
            counts[w] = counts.get(w, 0) + 1
        if counts:
            self.out("  Dask: tasks graded per worker: " + ", ".join(
                f"{self.checked.get(w, {}).get('name', w)} {n}" for w, n in sorted(counts.items())))

    def _outcome(self, task: work_mod.Task, fut, value):
        if _is_result(value):
            res, addr = value
            self.placements[(task.assignment, task.student)] = addr
            return task, res, None
        if fut.status == "error":
            # as_completed gives (type, exception, traceback) for a task that raised
            exc = next((v for v in (value if isinstance(value, tuple) else (value,))
                        if isinstance(v, BaseException)), None) or fut.exception()
            return task, None, f"{type(exc).__name__}: {exc}"
        if isinstance(value, BaseException) and not isinstance(value, CancelledError):
            return task, None, f"{type(value).__name__}: {value}"
        return task, None, f"the Dask task was {fut.status} (the scheduler lost it)"

    def _watch(self, tasks, groups, allowed, current, done, stranded_since, ac):
        """Pending tasks whose checked workers are all gone: check the workers present now
        and resubmit to those that match; after STRANDED_LIMIT seconds without any, report
        the tasks as not graded (yielded here)."""
        live = set(self.workers())
        for g, idx in groups.items():
            pending = [i for i in idx if i not in done]
            if not pending or live & set(allowed[g]):
                stranded_since.pop(g, None)
                continue
            new = sorted(live - set(self.checked))
            if new:
                self._check(new, self._roots)        # every assignment of the run, once
            candidates = sorted(w for w in live if w in self.checked and w not in allowed[g])
            ok = self._matching(candidates, *g) if candidates else []
            if ok:
                self.out(f"  {g[1]}: every checked worker left; {len(pending)} task(s) go to "
                         f"newly checked worker(s) " + ", ".join(self.checked[w]["name"] for w in ok))
                allowed[g] = sorted(set(allowed[g]) | set(ok))
                for i in pending:
                    old = current[i]
                    current[i] = self._submit(i, tasks[i], allowed[g])
                    old.cancel()
                    ac.add(current[i])
                stranded_since.pop(g, None)
                continue
            first = stranded_since.setdefault(g, time.monotonic())
            if time.monotonic() - first > STRANDED_LIMIT:
                for i in pending:
                    fut = current.pop(i)
                    fut.cancel()
                    done.add(i)
                    yield (tasks[i], None, f"no checked worker of the Dask cluster at {self.address} "
                           f"was left to grade it for {STRANDED_LIMIT} s")

    def close(self) -> None:
        try:
            ok = [w for w in self.checked if w in self.workers()]
            if ok:
                self.client.run(forget, workers=ok, on_error="ignore")
        except Exception:                            # noqa: BLE001 -- the run is over anyway
            pass
        self.client.close()


# --------------------------------------------------------------------------
# a real cluster on this machine (tests, benchmark)


class LocalDaskCluster:
    """A `dask scheduler` and `dask worker` processes on 127.0.0.1, in a temporary folder.

    ``address``: the scheduler's; ``start_worker()`` adds a worker (with extra
    environment variables, e.g. another PYTHONPATH), ``kill_worker()`` kills one
    (SIGKILL to its process group: the worker and the processes it started).
    """

    def __init__(self, n_workers: int, env: dict[str, str] | None = None, timeout: float = 120.0):
        from distributed import Client

        self.timeout = timeout
        self.env = dict(env or {})
        self.dir = Path(tempfile.mkdtemp(prefix="kfgrade-dask-"))
        os.chmod(self.dir, 0o755)                   # sandboxed student code runs as another uid
        self.workers: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.client = None
        self._n = 0
        try:
            sched_file = self.dir / "scheduler.json"
            self.scheduler = self._spawn(
                "scheduler", ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                              "--no-dashboard", "--scheduler-file", str(sched_file)], {})
            deadline = time.monotonic() + timeout
            self.address = ""
            while not self.address:
                self._alive(self.scheduler, "scheduler")
                if sched_file.is_file():
                    try:
                        self.address = json.loads(sched_file.read_text())["address"]
                    except (ValueError, KeyError):
                        pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the dask scheduler did not start within {timeout:.0f} s:\n"
                                       + self.log("scheduler"))
                time.sleep(0.1)
            self.client = Client(self.address, timeout=timeout, set_as_default=False)
            names = [self.start_worker(wait=False) for _ in range(n_workers)]
            self._wait(lambda ws: all(n in {w.get("name") for w in ws.values()} for n in names),
                       f"{n_workers} workers", names)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, args: list[str], extra: dict[str, str]) -> subprocess.Popen:
        env = {**os.environ, **self.env, **extra}
        # this checkout's grader must be importable; what else this process has on its
        # PYTHONPATH the workers have too, after what the caller puts first
        paths = [p for v in (extra.get("PYTHONPATH"), self.env.get("PYTHONPATH"), os.environ.get("PYTHONPATH"))
                 for p in (v or "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(paths + [str(ROOT)])
        tmp = self.dir / name / "tmp"
        tmp.mkdir(parents=True)
        for p in (tmp.parent, tmp):
            os.chmod(p, 0o755)
        env["TMPDIR"] = str(tmp)                     # a killed worker's scratch is removed in stop()
        self.logs[name] = self.dir / name / "log.txt"
        with open(self.logs[name], "wb") as log:
            return subprocess.Popen([sys.executable, "-m", *args], cwd=self.dir / name, env=env,
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)

    def log(self, name: str) -> str:
        try:
            return self.logs[name].read_text(errors="replace")[-3000:]
        except (KeyError, OSError):
            return ""

    def _alive(self, proc: subprocess.Popen, name: str) -> None:
        if proc.poll() is not None:
            raise RuntimeError(f"the dask {name} exited with status {proc.returncode}:\n" + self.log(name))

    def _wait(self, cond, what: str, names: list[str]) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            for n in names:
                self._alive(self.workers[n], n)
            if cond(self.client.scheduler_info(n_workers=-1)["workers"]):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the scheduler at {self.address} did not see {what} within "
                                   f"{self.timeout:.0f} s:\n" + "\n".join(self.log(n) for n in names))
            time.sleep(0.2)

    def start_worker(self, env: dict[str, str] | None = None, wait: bool = True) -> str:
        """Start one more worker (one process, one thread); its name."""
        name = f"w{self._n}"
        self._n += 1
        self.workers[name] = self._spawn(
            name, ["distributed.cli.dask_worker", self.address, "--name", name, "--nthreads", "1",
                   "--nworkers", "1", "--no-nanny", "--host", "127.0.0.1", "--no-dashboard",
                   "--local-directory", str(self.dir / name), "--death-timeout", "60"], env or {})
        if wait:
            self._wait(lambda ws: name in {w.get("name") for w in ws.values()}, f"worker {name}", [name])
        return name

    def address_of(self, name: str) -> str:
        for addr, w in self.client.scheduler_info(n_workers=-1)["workers"].items():
            if w.get("name") == name:
                return addr
        raise KeyError(name)

    def names(self) -> list[str]:
        """The live workers' names."""
        return sorted(w.get("name") for w in self.client.scheduler_info(n_workers=-1)["workers"].values())

    def kill_worker(self, name: str | None = None) -> str:
        """Kill a worker (the first live one if no name is given) and wait until the
        scheduler has noticed; its name."""
        if name is None:
            name = next(n for n, p in self.workers.items() if p.poll() is None)
        proc = self.workers[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self._wait(lambda ws: name not in {w.get("name") for w in ws.values()}, f"{name} gone", [])
        return name

    def stop(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
        # a worker without nanny may hang in its close on SIGTERM; it holds nothing to
        # keep: its process group (it and its children) is killed, the scheduler stopped
        for proc in self.workers.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        sched = getattr(self, "scheduler", None)
        if sched is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(sched.pid, signal.SIGTERM)
            try:
                sched.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(sched.pid, signal.SIGKILL)
            sched.wait()
        _unmount_under(self.dir)        # a killed worker's student scratch (a tmpfs when root)
        shutil.rmtree(self.dir, ignore_errors=True)


def _unmount_under(folder: Path) -> None:
    try:
        points = [ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines() if len(ln.split()) > 1]
    except OSError:
        return
    inside = [m for m in points if m.startswith(str(folder) + "/")]
    for m in sorted(inside, key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)


@contextlib.contextmanager
def local_cluster(n_workers: int, env: dict[str, str] | None = None, timeout: float = 120.0):
    """A real Dask cluster on this machine with n one-thread workers (see LocalDaskCluster)."""
    cluster = LocalDaskCluster(n_workers, env, timeout)
    try:
        yield cluster
    finally:
        cluster.stop()
