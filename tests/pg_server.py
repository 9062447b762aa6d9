"""A real PostgreSQL server for tests, started in a temporary folder and stopped after.

Not a test module (no test_ prefix): tests import the fixture `postgres` from here
(`from pg_server import postgres`) and ask it for a fresh database with
`postgres.new_database("name")`, which returns a SQLAlchemy URL with a password,
as an instructor's nbgrader_config.py would hold it.

The server is Debian's `postgresql` package (binaries under
/usr/lib/postgresql/<version>/bin; `.ci/run` installs it). It runs as an
unprivileged user (PostgreSQL refuses to run as root): the `postgres` system user
if there is one, else `nobody`, with the temporary folder owned by that user. It
listens on 127.0.0.1 only, on a free port, and on a unix socket inside the
temporary folder; password (SCRAM) authentication over TCP, as on a real server.
Without the binaries or the driver the fixture fails when CI=true (CI must test
this) and skips otherwise, saying why.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DRIVER = "postgresql+psycopg"            # psycopg 3 (the `grading` extra installs it)
START_TIMEOUT = 120.0                    # seconds; a loaded CI machine can be slow


def _version_key(bindir: Path) -> tuple:
    """/usr/lib/postgresql/15/bin -> (15,); 9.6 -> (9, 6)."""
    return tuple(int(x) if x.isdigit() else 0 for x in bindir.parent.name.split("."))


def find_bindir() -> Path | None:
    """The newest PostgreSQL server's bin folder (PG_BINDIR overrides)."""
    if os.environ.get("PG_BINDIR"):
        d = Path(os.environ["PG_BINDIR"])
        return d if (d / "initdb").is_file() and (d / "pg_ctl").is_file() else None
    found = sorted((p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")
                    if (p.parent / "initdb").is_file()), key=_version_key)
    return found[-1] if found else None


def unavailable(why: str):
    """Fail in CI (the test must run there), skip elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL test cannot run in CI: {why}", pytrace=False)
    pytest.skip(why)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    bindir: Path
    base: Path                           # the temporary folder (data, socket, log)
    port: int
    admin: str
    admin_password: str
    uid: int
    gid: int
    databases: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "socket"

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    def url(self, database: str, user: str | None = None, password: str | None = None) -> str:
        user = user or self.admin
        password = self.admin_password if password is None else password
        return f"{DRIVER}://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres", **kw):
        import psycopg
        return psycopg.connect(host="127.0.0.1", port=self.port, dbname=database, user=self.admin,
                               password=self.admin_password, connect_timeout=10, **kw)

    def new_database(self, name: str) -> str:
        """A database owned by a role of its own (what the instructor's guide says to
        create); returns its SQLAlchemy URL, with that role's password."""
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
        password = secrets.token_hex(12)
        with self.connect(autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
            conn.execute(f"CREATE DATABASE {name} OWNER {name} ENCODING 'UTF8'")
        self.databases.append(name)
        return self.url(name, user=name, password=password)

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"


def _run_as(argv: list[str], uid: int, gid: int, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run a server binary as the unprivileged user (directly when we are not root)."""
    if os.geteuid() == 0:
        argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", *argv]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C", "LC_ALL": "C", "HOME": str(cwd), "TZ": "UTC"}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def _server_user() -> tuple[int, int]:
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return pw.pw_uid, pw.pw_gid
    return 65534, 65534


@contextlib.contextmanager
def running_server():
    """Start a server; yield a PgServer; stop it and remove its folder."""
    bindir = find_bindir()
    if bindir is None:
        unavailable("no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin: "
                    "install Debian's `postgresql` package (.ci/run does)")
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        unavailable(f"the PostgreSQL driver is not installed ({exc}): pip install 'psycopg[binary]' "
                    "(part of the `grading` extra)")
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        unavailable("running as root and setpriv (util-linux) is missing: PostgreSQL cannot be "
                    "started as an unprivileged user")
    uid, gid = _server_user()
    # in /tmp itself when root: a TMPDIR inside root's own (0700) folders would be out of
    # the server user's reach, and the socket's path must stay short
    base = Path(tempfile.mkdtemp(prefix="kf-pg-", dir="/tmp" if os.geteuid() == 0 and Path("/tmp").is_dir()
                                 else None))
    started = False
    server = None
    try:
        (base / "socket").mkdir()
        os.chmod(base, 0o700)
        pwfile = base / "pwfile"
        password = secrets.token_hex(16)
        pwfile.write_text(password + "\n")
        for p in (base, base / "socket", pwfile):
            os.chown(p, uid, gid)
        server = PgServer(bindir, base, 0, "kfadmin", password, uid, gid)
        init = _run_as([str(bindir / "initdb"), "-D", str(server.data), "-U", server.admin,
                        f"--pwfile={pwfile}", "--auth-local=scram-sha-256", "--auth-host=scram-sha-256",
                        "-E", "UTF8", "--no-locale", "--no-sync"], uid, gid, base, timeout=300)
        pwfile.unlink()
        if init.returncode != 0:
            pytest.fail(f"initdb failed ({init.returncode}):\n{init.stdout[-2000:]}\n{init.stderr[-2000:]}",
                        pytrace=False)
        last = None
        for _attempt in range(3):                   # the free port may be taken before we bind it
            server.port = free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -p {server.port} -k {server.socket_dir} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                    "-c max_connections=40 -c shared_buffers=16MB")
            last = _run_as([str(bindir / "pg_ctl"), "-D", str(server.data), "-l", str(server.log),
                            "-o", opts, "-w", "-t", str(int(START_TIMEOUT)), "start"],
                           uid, gid, base, timeout=START_TIMEOUT + 30)
            started = (server.data / "postmaster.pid").exists()
            if last.returncode == 0:
                break
            _stop(server)
            started = False
        else:
            pytest.fail(f"pg_ctl start failed ({last.returncode}):\n{last.stdout[-1500:]}\n"
                        f"{last.stderr[-1500:]}\nserver log:\n{server.tail()}", pytrace=False)
        _wait_ready(server)
        yield server
    finally:
        if server is not None and (started or (server.data / "postmaster.pid").exists()):
            _stop(server)
        shutil.rmtree(base, ignore_errors=True)


def _wait_ready(server: PgServer) -> None:
    """pg_ctl -w has waited for the server; also wait until a real login works."""
    deadline = time.monotonic() + START_TIMEOUT
    last = None
    while time.monotonic() < deadline:
        try:
            with server.connect() as conn:
                conn.execute("SELECT 1")
            return
        except Exception as exc:                 # noqa: BLE001 -- not up yet
            last = exc
            time.sleep(0.2)
    pytest.fail(f"PostgreSQL on 127.0.0.1:{server.port} did not accept a login within "
                f"{START_TIMEOUT:.0f} s: {last}\nserver log:\n{server.tail()}", pytrace=False)


def _postmaster_pid(server: PgServer) -> int | None:
    try:
        return int((server.data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _stop(server: PgServer) -> None:
    """pg_ctl stop (fast, then immediate); the postmaster we started is killed if it
    still runs after that."""
    pid = _postmaster_pid(server)
    for mode in ("fast", "immediate"):
        proc = _run_as([str(server.bindir / "pg_ctl"), "-D", str(server.data), "-m", mode, "-w",
                        "-t", "60", "stop"], server.uid, server.gid, server.base, timeout=90)
        if proc.returncode == 0 or not (server.data / "postmaster.pid").exists():
            return
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def postgres():
    """A running PostgreSQL server for the session (see the module's docstring)."""
    with running_server() as server:
        yield server
