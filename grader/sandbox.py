"""Run a command on untrusted code: its own namespaces, resource limits, a wall clock.

Three levels of isolation, chosen once per run (:func:`detect`):

``root``
    The grader runs as root: ``unshare --mount --net --pid`` makes new mount,
    network and PID namespaces; a small shell script builds a fresh root file
    system on a tmpfs that holds only what the command needs (``/usr``,
    ``/etc``, the Python installation, the virtual environment and the paths
    given as read-only or writable), ``pivot_root`` switches to it and the old
    root is detached, so nothing else of the machine is reachable by any path.
    The command then runs as ``nobody`` with every capability dropped
    (``setpriv``), so it cannot undo the mounts.
``userns``
    The same for an ordinary user, inside a user namespace
    (``unshare --user --map-root-user``); the command keeps the caller's uid
    but loses every capability.
``none``
    Namespaces are not available (e.g. a container that forbids ``unshare``):
    only the resource limits, a scratch working directory and a clean
    environment. The report says so.

In every mode: the network namespace has only a loopback interface (brought
up for nbgrader's kernel, which talks to it over TCP on 127.0.0.1); the
process runs in its own session and, with namespaces, as PID 1 of its own PID
namespace, so killing it kills everything it started; limits on address space
(memory), CPU time, file size, open files and processes apply to every process
it starts.

Where the machine lets the grader create cgroups (v2, or v1's ``cpu`` and
``pids`` hierarchies; as root), every sandboxed command also gets a cgroup of
its own: a CPU quota (one CPU by default), so that a notebook that starts many
busy processes slows only itself, a cap on its tasks, and at the end every
process in it is killed, including those that left the session with
``setsid``. Without cgroups the PID namespace (and, in root mode, the uid of
its own) does the killing, and the CPU share is not limited; :func:`cgroups`
says which applies. A disk quota (``Limits.disk``) on the writable paths is
watched while the command runs: above it the command is killed.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("root", "userns", "none")
# The interpreter by absolute path: sys.executable is relative when Python was
# started by a relative path, and the sandboxed child runs in another folder.
# (abspath, not resolve: a virtual environment's python is a symlink whose
# location is what makes it that environment's.)
PYTHON = os.path.abspath(sys.executable)
NOBODY = 65534
# In root mode each sandbox can run as its own unprivileged uid (no account needed), so
# that RLIMIT_NPROC, which counts a user's processes, limits each sandbox separately.
SANDBOX_UID_BASE = 1_700_000_000
_uid_lock = threading.Lock()
_uid_next = [0]


def fresh_uid() -> int:
    """A uid no other sandbox of this run uses at the moment (cycles through 10,000)."""
    with _uid_lock:
        _uid_next[0] = (_uid_next[0] + 1) % 10_000
        return SANDBOX_UID_BASE + 1 + _uid_next[0]

# Runs inside the new namespaces, as (mapped) root, before the command.
# $1 = new root (an empty directory), $2 = working directory in the sandbox,
# $3 = file with the mount list (one "ro|rw|tmp <path>" per line), then the command.
_SETUP = r"""
set -eu
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
R="$1"; WORK="$2"; LIST="$3"; shift 3
ip link set lo up 2>/dev/null || true
mount -t tmpfs -o size=16m,mode=755 kfgrade-root "$R"
for d in usr etc; do
    mkdir -p "$R/$d"; mount --rbind "/$d" "$R/$d"; mount -o remount,bind,ro "$R/$d"
done
for l in bin lib lib32 lib64 libx32 sbin; do
    if [ -L "/$l" ]; then ln -s "$(readlink "/$l")" "$R/$l"
    elif [ -d "/$l" ]; then mkdir -p "$R/$l"; mount --rbind "/$l" "$R/$l"; mount -o remount,bind,ro "$R/$l"
    fi
done
mkdir -p "$R/tmp"; mount -t tmpfs -o size=64m,mode=1777 kfgrade-tmp "$R/tmp"
mkdir -p "$R/dev"
for n in null zero full random urandom; do touch "$R/dev/$n"; mount --bind "/dev/$n" "$R/dev/$n"; done
mkdir -p "$R/dev/shm"; mount -t tmpfs -o size=16m,mode=1777 kfgrade-shm "$R/dev/shm"
while read -r kind path; do
    [ -n "$kind" ] || continue
    mkdir -p "$R$path"
    case "$kind" in
        ro) mount --bind "$path" "$R$path"; mount -o remount,bind,ro "$R$path" ;;
        rw) mount --bind "$path" "$R$path" ;;
    esac
done < "$LIST"
mkdir -p "$R/proc"; mount -t proc proc "$R/proc"
mkdir "$R/.oldroot"; cd "$R"; pivot_root . .oldroot; umount -l /.oldroot; rmdir /.oldroot
mount -o remount,bind,ro /
cd "$WORK"
exec "$@"
"""


@dataclass
class Limits:
    """Resource limits of a sandboxed command (None: no limit)."""

    wall: float = 60.0                 # seconds of wall-clock time, then SIGKILL
    cpu: int | None = None             # seconds of CPU time per process (RLIMIT_CPU)
    memory: int | None = 2 << 30       # bytes of address space per process (RLIMIT_AS)
    fsize: int | None = 64 << 20       # bytes per file written (RLIMIT_FSIZE)
    nofile: int | None = 256           # open files per process
    nproc: int | None = 256            # processes and threads of the sandbox's user
    cpus: float | None = 1.0           # CPU quota of the whole command (cgroup), in CPUs
    tasks: int | None = 256            # processes and threads of the whole command (cgroup)
    disk: int | None = None            # bytes under the writable paths, watched while it runs


@dataclass
class Result:
    returncode: int | None             # None when killed by the wall clock
    timed_out: bool
    seconds: float
    mode: str
    stderr: str = ""                   # the last few kB of stderr (diagnostics)
    killed_reason: str = ""
    killed_code: str = ""              # "timeout" (wall clock or deadline) or "disk"


@dataclass
class Sandbox:
    """Where and how to run: the isolation mode and the paths made visible."""

    mode: str
    ro: list[Path] = field(default_factory=list)     # visible read-only, same absolute path
    rw: list[Path] = field(default_factory=list)     # visible and writable
    uid: int = NOBODY                                # root mode: the (unprivileged) user to run as

    def visible_paths(self) -> list[tuple[str, Path]]:
        """Python itself (base installation and virtual environment) plus the extra paths."""
        paths = [("ro", Path(sys.base_prefix).resolve()), ("ro", Path(sys.prefix).resolve())]
        # the interpreter binary may live outside both prefixes (symlinked venv python)
        exe = Path(sys.executable).resolve()
        if not any(_inside(exe, p) for _, p in paths):
            paths.append(("ro", exe.parent))
        paths += [("ro", Path(p).resolve()) for p in self.ro]
        paths += [("rw", Path(p).resolve()) for p in self.rw]
        return paths

    def run(self, argv: list[str], *, cwd: Path, env: dict[str, str], limits: Limits,
            stdout=None, stderr=None, on_line=None, deadline=None) -> Result:
        """Run argv and wait for it (or kill it).

        stdout, stderr: open binary files for the command's output (stderr
        defaults to a scratch file whose last 8 kB end up in Result.stderr).
        on_line: instead of stdout, read the output line by line (at most 8 MB
        in all) and pass each line (bytes) to on_line.
        deadline: polled every 50 ms; returns a reason to kill the command
        early, or None.
        """
        return _run(self, argv, cwd=cwd, env=env, limits=limits, stdout=stdout,
                    stderr=stderr, on_line=on_line, deadline=deadline)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _tasks_of_uid(uid: int) -> int:
    """How many processes and threads the user runs now (RLIMIT_NPROC counts them all)."""
    count = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status") as fh:
                uid_line = threads = None
                for line in fh:
                    if line.startswith("Uid:"):
                        uid_line = int(line.split()[1])
                    elif line.startswith("Threads:"):
                        threads = int(line.split()[1])
            if uid_line == uid:
                count += threads or 1
        except (OSError, ValueError, IndexError):
            continue
    return count


def _preexec(limits: Limits, nproc: int | None, group: "CGroup | None" = None):
    import resource

    def apply():
        os.setsid()
        if group is not None:
            group.join()
        for name, value in (("RLIMIT_AS", limits.memory), ("RLIMIT_CPU", limits.cpu),
                            ("RLIMIT_FSIZE", limits.fsize), ("RLIMIT_NOFILE", limits.nofile),
                            ("RLIMIT_NPROC", nproc), ("RLIMIT_CORE", 0)):
            if value is not None:
                resource.setrlimit(getattr(resource, name), (value, value))
    return apply


def _command(sandbox: Sandbox, argv: list[str], cwd: Path, scratch: Path) -> list[str]:
    if sandbox.mode == "none":
        return list(argv)
    newroot = scratch / "root"
    newroot.mkdir()
    mounts = scratch / "mounts"
    mounts.write_text("".join(f"{kind} {path}\n" for kind, path in sandbox.visible_paths()))
    setup = scratch / "setup.sh"
    setup.write_text(_SETUP)
    unshare = ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child",
               "--mount-proc", "--propagation", "private"]
    drop = ["setpriv", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all"]
    if sandbox.mode == "root":
        drop[1:1] = [f"--reuid={sandbox.uid}", f"--regid={sandbox.uid}", "--clear-groups"]
    else:
        unshare[1:1] = ["--user", "--map-root-user"]
    return [*unshare, "sh", str(setup), str(newroot), str(cwd), str(mounts), *drop, "--", *argv]


def _run(sandbox, argv, *, cwd, env, limits, stdout, stderr, on_line, deadline) -> Result:
    scratch = Path(tempfile.mkdtemp(prefix="kfgrade-sbx-"))
    os.chmod(scratch, 0o700)
    stderr_file = stderr if stderr is not None else tempfile.TemporaryFile()
    start = time.monotonic()
    group = None
    try:
        cmd = _command(sandbox, argv, cwd, scratch)
        nproc = limits.nproc
        if nproc is not None and sandbox.mode != "root":
            # RLIMIT_NPROC counts every task of the (real) uid, not only the sandbox's
            nproc += _tasks_of_uid(os.getuid())
        if (limits.cpus or limits.tasks) and cgroups()[0]:
            group = CGroup(limits.cpus, limits.tasks)
        proc = subprocess.Popen(
            cmd, cwd=cwd if sandbox.mode == "none" else "/", env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if on_line else stdout,
            stderr=stderr_file, preexec_fn=_preexec(limits, nproc, group), close_fds=True)
        reader = None
        if on_line:
            reader = threading.Thread(target=_read_lines, args=(proc.stdout, on_line), daemon=True)
            reader.start()
        timed_out, reason, code = False, "", ""
        writable = [p for kind, p in sandbox.visible_paths() if kind == "rw"] or [cwd]
        next_disk_check = start + 0.5
        while True:
            try:
                proc.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            why = deadline() if deadline else None
            if limits.disk is not None and now >= next_disk_check:
                next_disk_check = now + 0.5
                used = sum(disk_usage(p) for p in writable)
                if used > limits.disk:
                    why, code = (f"wrote more than the disk quota of {limits.disk / 2**20:.0f} MB "
                                 f"({used / 2**20:.0f} MB)"), "disk"
            if now - start > limits.wall or why:
                timed_out = True
                reason = why or f"wall-clock limit of {limits.wall:g} s"
                code = code or "timeout"
                _kill(proc)
                proc.wait()
                break
        # whatever the command left behind (setsid, daemons) ends with it
        if group is not None:
            group.kill_all()
        elif sandbox.mode == "root" and sandbox.uid != NOBODY:
            _kill_uid(sandbox.uid)
        if reader:
            reader.join(timeout=5)
        err = ""
        if stderr is None:
            stderr_file.seek(0, os.SEEK_END)
            size = stderr_file.tell()
            stderr_file.seek(max(0, size - 8192))
            err = stderr_file.read().decode("utf-8", "replace")
        return Result(None if timed_out else proc.returncode, timed_out,
                      time.monotonic() - start, sandbox.mode, err, reason, code)
    finally:
        if group is not None:
            group.remove()
        if stderr is None:
            stderr_file.close()
        shutil.rmtree(scratch, ignore_errors=True)


def disk_usage(folder: Path) -> int:
    """Bytes of the files under folder (symbolic links not followed)."""
    total = 0
    stack = [str(folder)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_blocks * 512
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def _kill_until_gone(find, rounds: int, pause: float) -> None:
    """SIGKILL the processes find() returns, again and again, until it returns none."""
    for _ in range(rounds):
        pids = find()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(pause)


def _pids_of_uid(uid: int) -> list[int]:
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.stat(f"/proc/{pid}").st_uid == uid:
                    pids.append(int(pid))
            except OSError:
                continue
    return pids


def _kill_uid(uid: int) -> None:
    """Kill every process of this (sandbox-only) uid, until none is left."""
    _kill_until_gone(lambda: _pids_of_uid(uid), 50, 0.02)


# --------------------------------------------------------------------------
# cgroups

CGROUP_FS = Path("/sys/fs/cgroup")
_cgroup_ids = itertools.count()
_cgroups: list[tuple[str, str]] = []


def _own_cgroup(controller: str | None) -> str:
    """This process's cgroup path in a v1 hierarchy (controller) or in v2 (None)."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            num, ctrls, path = line.split(":", 2)
            if (controller is None and num == "0") or (controller and controller in ctrls.split(",")):
                return path
    except (OSError, ValueError):
        pass
    return "/"


def _cgroup_dirs() -> tuple[str, list[Path]]:
    """("v2" or "v1", the parent folders new cgroups go into), or ("", [])."""
    v2 = CGROUP_FS / "cgroup.controllers"
    if v2.is_file():
        base = CGROUP_FS / _own_cgroup(None).lstrip("/")
        ctrls = (base / "cgroup.subtree_control")
        try:
            if not {"cpu", "pids"} <= set(ctrls.read_text().split()):
                ctrls.write_text("+cpu +pids")
            if {"cpu", "pids"} <= set(ctrls.read_text().split()):
                return "v2", [base]
        except OSError:
            pass
        return "", []
    dirs = [CGROUP_FS / c / _own_cgroup(c).lstrip("/") for c in ("cpu", "pids")]
    if all((d / "tasks").is_file() for d in dirs):
        return "v1", dirs
    return "", []


def cgroups() -> tuple[str, str]:
    """("v2" or "v1", a sentence) when a cgroup per sandboxed command works here, else ("", why)."""
    if _cgroups:
        return _cgroups[0]
    kind, parents = _cgroup_dirs()
    for parent in parents:
        _sweep(parent)
    if not kind:
        _cgroups.append(("", "no cgroups (the CPU share of a submission is not limited; the PID "
                             "namespace ends its processes)"))
        return _cgroups[0]
    try:
        CGroup(1.0, 16).remove()
    except OSError as exc:
        _cgroups.append(("", f"no cgroups ({exc.strerror or exc}; the CPU share of a submission is "
                             "not limited; the PID namespace ends its processes)"))
        return _cgroups[0]
    _cgroups.append((kind, f"a cgroup ({kind}) per command: one CPU, a task cap, every process "
                           "killed at the end"))
    return _cgroups[0]


def _sweep(parent: Path) -> None:
    """Remove the cgroups left by grader processes that no longer run (killed before
    they could clean up); every process in them is killed first."""
    for d in parent.glob("kfgrade-*-*"):
        try:
            owner = int(d.name.split("-")[1])
        except ValueError:
            continue
        if owner == os.getpid() or Path(f"/proc/{owner}").exists():
            continue
        group = CGroup.__new__(CGroup)
        group.dirs = [d]
        group.remove()


class CGroup:
    """A cgroup for one sandboxed command: a CPU quota, a cap on tasks; kill everything in it."""

    def __init__(self, cpus: float | None, tasks: int | None):
        self.kind, parents = _cgroup_dirs()
        name = f"kfgrade-{os.getpid()}-{next(_cgroup_ids)}"
        self.dirs = [p / name for p in parents]
        for d in self.dirs:
            d.mkdir()
        try:
            quota = None if not cpus else max(1000, int(cpus * 100_000))
            if self.kind == "v2":
                d = self.dirs[0]
                if quota:
                    (d / "cpu.max").write_text(f"{quota} 100000")
                if tasks:
                    (d / "pids.max").write_text(str(tasks))
            else:
                cpu, pids = self.dirs
                if quota:
                    (cpu / "cpu.cfs_period_us").write_text("100000")
                    (cpu / "cpu.cfs_quota_us").write_text(str(quota))
                if tasks:
                    (pids / "pids.max").write_text(str(tasks))
        except OSError:
            self.remove()
            raise
        self.procs = [str(d / "cgroup.procs") for d in self.dirs]

    def join(self) -> None:
        """Move the calling process into the cgroup (run in the child before exec)."""
        pid = str(os.getpid())
        for f in self.procs:
            with open(f, "w") as fh:
                fh.write(pid)

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs:
            try:
                found |= {int(x) for x in (d / "cgroup.procs").read_text().split()}
            except (OSError, ValueError):
                pass
        return found

    def kill_all(self) -> None:
        _kill_until_gone(self.pids, 200, 0.01)

    def remove(self) -> None:
        """Kill what is left and remove the cgroup (a cgroup whose last tasks are still
        exiting cannot be removed yet: wait for them, up to 30 s)."""
        self.kill_all()
        for d in self.dirs:
            deadline = time.monotonic() + 30
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
                    self.kill_all()


def _kill(proc: subprocess.Popen) -> None:
    """Kill the command's whole session (with namespaces, --kill-child ends PID 1 and
    with it every process of the PID namespace)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass


MAX_STDOUT = 8 << 20


def _read_lines(pipe, on_line) -> None:
    total, buf = 0, b""
    while True:
        chunk = pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536)
        if not chunk:
            break
        total += len(chunk)
        if total > MAX_STDOUT:
            continue        # keep draining so that the writer is not blocked; ignore the rest
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            on_line(line)
    if buf and total <= MAX_STDOUT:
        on_line(buf)
    pipe.close()


# --------------------------------------------------------------------------
# choosing the mode


_detected: dict[str, tuple[str, str]] = {}


def detect(requested: str = "auto") -> tuple[str, str]:
    """The isolation mode to use and a sentence saying why.

    requested: "auto" (the strongest that works here), or one of MODES to insist.
    """
    if requested in _detected:
        return _detected[requested]
    if requested not in ("auto", *MODES):
        raise ValueError(f"isolation must be auto or one of {MODES}; got {requested!r}")
    candidates = [requested] if requested != "auto" else (
        ["root", "userns"] if os.geteuid() == 0 else ["userns"])
    why = []
    for mode in candidates:
        if mode == "none":
            _detected[requested] = ("none", "isolation switched off (--isolation none)")
            return _detected[requested]
        missing = [t for t in ("unshare", "setpriv", "pivot_root", "mount") if not _which(t)]
        if missing:
            why.append(f"{mode}: {', '.join(missing)} not found")
            continue
        ok, detail = _probe(mode)
        if ok:
            _detected[requested] = (mode, f"namespaces ({mode}): own mount, network and PID "
                                          "namespaces, a minimal root file system, no capabilities")
            return _detected[requested]
        why.append(f"{mode}: {detail}")
    if requested != "auto":
        raise RuntimeError(f"isolation {requested!r} does not work here: {'; '.join(why)}")
    _detected[requested] = ("none", "NO namespace isolation (" + "; ".join(why) +
                            "): resource limits and a scratch folder only")
    return _detected[requested]


def _which(tool: str) -> str | None:
    return shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin")


def _probe(mode: str) -> tuple[bool, str]:
    """Can this mode run Python here, with the network and the repository out of sight?"""
    probe = ("import os, socket, sys\n"
             "assert not os.path.exists(sys.argv[1]), 'repository visible'\n"
             "try:\n"
             "    socket.create_connection(('192.0.2.1', 9), timeout=0.5); print('network')\n"
             "except OSError:\n"
             "    print('ok')\n")
    with tempfile.TemporaryDirectory(prefix="kfgrade-probe-") as tmp:
        os.chmod(tmp, 0o755)
        script = Path(tmp) / "probe.py"
        script.write_text(probe)
        os.chmod(script, 0o644)
        out = Path(tmp) / "out"
        hidden = Path(__file__).resolve().parent.parent / "solutions"
        box = Sandbox(mode, ro=[Path(tmp)])
        with open(out, "wb") as fh:
            try:
                res = box.run([PYTHON, "-I", str(script), str(hidden)], cwd=Path(tmp),
                              env={"PATH": "/usr/bin:/bin"}, limits=Limits(wall=30), stdout=fh)
            except OSError as exc:
                return False, str(exc)
        text = out.read_text().strip()
        if res.returncode == 0 and text == "ok":
            return True, ""
        return False, (f"probe failed (exit {res.returncode}, output {text!r}): "
                       + " ".join(res.stderr.split())[-300:])
