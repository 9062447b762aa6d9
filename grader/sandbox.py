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
"""

from __future__ import annotations

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


@dataclass
class Result:
    returncode: int | None             # None when killed by the wall clock
    timed_out: bool
    seconds: float
    mode: str
    stderr: str = ""                   # the last few kB of stderr (diagnostics)
    killed_reason: str = ""


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


def _preexec(limits: Limits, nproc: int | None):
    import resource

    def apply():
        os.setsid()
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
    try:
        cmd = _command(sandbox, argv, cwd, scratch)
        nproc = limits.nproc
        if nproc is not None and sandbox.mode != "root":
            # RLIMIT_NPROC counts every task of the (real) uid, not only the sandbox's
            nproc += _tasks_of_uid(os.getuid())
        proc = subprocess.Popen(
            cmd, cwd=cwd if sandbox.mode == "none" else "/", env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if on_line else stdout,
            stderr=stderr_file, preexec_fn=_preexec(limits, nproc), close_fds=True)
        reader = None
        if on_line:
            reader = threading.Thread(target=_read_lines, args=(proc.stdout, on_line), daemon=True)
            reader.start()
        timed_out, reason = False, ""
        while True:
            try:
                proc.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                pass
            elapsed = time.monotonic() - start
            why = deadline() if deadline else None
            if elapsed > limits.wall or why:
                timed_out = True
                reason = why or f"wall-clock limit of {limits.wall:g} s"
                _kill(proc)
                proc.wait()
                break
        if reader:
            reader.join(timeout=5)
        err = ""
        if stderr is None:
            stderr_file.seek(0, os.SEEK_END)
            size = stderr_file.tell()
            stderr_file.seek(max(0, size - 8192))
            err = stderr_file.read().decode("utf-8", "replace")
        return Result(None if timed_out else proc.returncode, timed_out,
                      time.monotonic() - start, sandbox.mode, err, reason)
    finally:
        if stderr is None:
            stderr_file.close()
        shutil.rmtree(scratch, ignore_errors=True)


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
