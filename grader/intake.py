"""Intake: which notebook of which student is graded, from what an LMS lets you download.

`make grade` reads, for each assignment,

* ``grading/downloaded/<assignment>/archive/``: whatever the LMS gave -- files,
  folders and zip archives, nested to any reasonable depth -- in one of the
  layouts below; and
* ``grading/submitted/<student>/<assignment>/``: notebooks the instructor put
  there by hand (nbgrader's own layout). A hand-placed folder is that
  student's submission: it wins over anything downloaded.

File names understood (the student's own file name is the part called <file>):

=============  ===================================================================
Canvas         ``<student>[_LATE]_<user id>_<file id>_<file>``; Canvas renames a
               re-upload of the same file ``<name>-1.ipynb``, ``<name>-2.ipynb``:
               that number is the attempt number
Moodle         ``<Full Name>_<id>_assignsubmission_file_/<file>`` (a folder per
               student) or ``<Full Name>_<id>_assignsubmission_file_<file>``
Blackboard     ``<Assignment>_<user>_attempt_<YYYY-MM-DD-HH-MM-SS>_<file>``, and the
               receipt ``<Assignment>_<user>_attempt_<YYYY-MM-DD-HH-MM-SS>.txt``
plain          ``<student>_<notebook>.ipynb`` (``-N`` or `` (N)`` before ``.ipynb``:
               attempt N), or nbgrader's ``<student>/<assignment>/<file>``
own zip        a zip whose own name is one of the above (``doejane_..._mywork.zip``):
               everything in it is that student's, whatever the inner names
=============  ===================================================================

Nothing here writes outside ``grading/attempts/`` (new folders only, never
overwritten) and nothing aborts the intake: a file that cannot be read or
attributed is listed with the reason, and the others are taken in.

The parsing and picking are pure functions (`parse_name`, `pick`), tested
without nbgrader in tests/test_intake.py.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

RULES = {
    "latest": "the latest attempt (by the LMS's attempt number, else its time stamp)",
    "first": "the first attempt (by the LMS's attempt number, else its time stamp)",
    "latest-on-time": "the latest attempt not marked late (the latest one if all are late)",
}
DEFAULT_RULE = "latest"
CONFIG_NAME = "intake.toml"              # grading/intake.toml
MAX_FILE_BYTES = 256 << 20               # one file taken from a download
MAX_TOTAL_BYTES = 4 << 30                # everything read from one assignment's downloads
MAX_ZIP_DEPTH = 4                        # zips inside zips
MAX_MEMBERS = 20000
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
JUNK_DIRS = {"__macosx", ".ipynb_checkpoints", "__pycache__"}
LAYOUTS = ("Canvas <student>_<id>_<id>_<file>, Moodle <Full Name>_<id>_assignsubmission_file_/<file>, "
           "Blackboard <assignment>_<user>_attempt_<YYYY-MM-DD-HH-MM-SS>_<file>, "
           "plain <student>_<notebook>.ipynb or <student>/<assignment>/<file>")

_CANVAS = re.compile(r"^(?P<student>[^_]+?)(?P<late>_LATE)?_(?P<uid>\d+)_(?P<fid>\d+)_(?P<file>.+)$")
_MOODLE = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_(?P<plugin>[a-z]+)_(?P<file>.*)$")
_BLACKBOARD = re.compile(r"^(?P<head>.+)_attempt_(?P<ts>\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)"
                         r"(?:_(?P<file>.+)|(?P<receipt>\.txt))$")
_SUFFIX = re.compile(r"^(?P<stem>.*?)(?:-(?P<dash>\d{1,3})| \((?P<paren>\d{1,3})\))$")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def student_id(name: str) -> str:
    """The student's id from a name in a file name: NFC, spaces to underscores.
    Raises ValueError for a name that cannot be a folder name."""
    sid = re.sub(r"\s+", "_", nfc(name).strip())
    if not sid or sid in (".", "..") or sid.startswith(".") or _UNSAFE.search(sid) or len(sid) > 100:
        raise ValueError(f"{name!r} cannot be a student id")
    return sid


def split_attempt(filename: str) -> tuple[str, int | None]:
    """('ps02.ipynb', 2) from 'ps02-2.ipynb' or 'ps02 (2).ipynb'; (name, None) otherwise."""
    stem, dot, ext = filename.rpartition(".")
    if not dot:
        stem, ext = filename, ""
    m = _SUFFIX.match(stem)
    if not m or not m["stem"]:
        return filename, None
    n = int(m["dash"] or m["paren"])
    return m["stem"] + (("." + ext) if dot else ""), n


@dataclass
class Parsed:
    """What a file's path says about it."""

    student: str
    lms: str                              # canvas | moodle | blackboard | plain | nbgrader
    filename: str                         # the student's own file name (LMS prefixes removed)
    attempt: int | None = None            # the LMS's attempt number
    timestamp: datetime | None = None     # the LMS's time stamp of the attempt
    late: bool = False                    # the LMS marks it late
    order: tuple = ()                     # a further LMS key (Canvas: the file id)
    receipt: bool = False                 # Blackboard's .txt receipt, not a submission file
    container: bool = False               # a folder the student's files are in (Moodle)


def parse_name(parts: tuple[str, ...], assignment: str, notebook: str) -> Parsed | str:
    """Attribute a file by its path inside the download (folders..., file name).

    Returns a Parsed, or the reason it cannot be attributed (a str)."""
    parts = tuple(nfc(p) for p in parts)
    base = parts[-1]
    try:
        # Moodle: a folder per student, the file inside
        for i, folder in enumerate(parts[:-1]):
            m = _MOODLE.match(folder)
            if m and m["file"] == "":
                return Parsed(student_id(m["name"]), "moodle", "/".join(parts[i + 1:]), container=True)
        m = _BLACKBOARD.match(base)
        if m:
            head = m["head"]
            user = head.rsplit("_", 1)[-1] if "_" in head else head
            ts = datetime.strptime(m["ts"], "%Y-%m-%d-%H-%M-%S")
            return Parsed(student_id(user), "blackboard", m["file"] or base, timestamp=ts,
                          receipt=bool(m["receipt"]))
        m = _MOODLE.match(base)
        if m and m["file"]:
            return Parsed(student_id(m["name"]), "moodle", m["file"])
        m = _CANVAS.match(base)
        if m:
            filename, n = split_attempt(m["file"])
            return Parsed(student_id(m["student"]), "canvas", filename, attempt=n or 0,
                          late=bool(m["late"]), order=(int(m["fid"]),))
        # nbgrader's own layout: <student>/<assignment>/<file>
        if len(parts) >= 3 and parts[-2] in (assignment, notebook):
            return Parsed(student_id(parts[-3]), "nbgrader", base)
        # plain: <student>_<notebook>.ipynb (or .zip), with an optional attempt suffix
        stem, ext = os.path.splitext(base)
        core, n = split_attempt(stem + ".x")
        core = core[:-2]
        for name in sorted({notebook, assignment}, key=len, reverse=True):
            if core.endswith("_" + name) and len(core) > len(name) + 1:
                return Parsed(student_id(core[:-len(name) - 1]), "plain", notebook + ext, attempt=n)
    except ValueError as exc:
        return f"the student's name in it is not usable ({exc})"
    return f"its name matches none of the layouts understood ({LAYOUTS})"


# --------------------------------------------------------------------------
# attempts and the rule that picks one


@dataclass
class Attempt:
    student: str
    lms: str
    files: dict[str, bytes]               # file name as stored -> content
    origins: list[str]                    # where in the download each file came from
    attempt: int | None = None
    timestamp: datetime | None = None
    late: bool = False
    late_reason: str = ""
    order: tuple = ()
    mtime: datetime | None = None         # the file's own time (zip entry / file system)
    notebook_name: str = ""               # the notebook that would be graded ("" if none)

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        return h.hexdigest()

    @property
    def id(self) -> str:
        return self.sha256[:10]

    def key(self) -> tuple:
        """The order of attempts: the LMS's attempt number, then its time stamp, then its
        further key (Canvas' file id), then the file's own time."""
        far = datetime.min
        return (self.attempt if self.attempt is not None else -1,
                _naive(self.timestamp) or far, self.order, _naive(self.mtime) or far)

    def describe(self) -> str:
        bits = [f"attempt {self.id}"]
        if self.attempt:
            bits.append(f"#{self.attempt}")
        if self.timestamp:
            bits.append(f"of {self.timestamp:%Y-%m-%d %H:%M:%S}")
        if self.late:
            bits.append("(late)")
        return " ".join(bits) + f" [{', '.join(self.origins[:2])}{' ...' if len(self.origins) > 2 else ''}]"


def _naive(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts.astimezone(timezone.utc).replace(tzinfo=None) if ts.tzinfo else ts


def pick(attempts: list[Attempt], rule: str, notebook: str) -> tuple[Attempt | None, str]:
    """The attempt the rule chooses, and '' -- or None and why none can be chosen.

    Attempts holding the expected notebook name come first; among those the rule
    decides. Two different attempts the rule cannot tell apart are ambiguous:
    nothing is picked, never a guess."""
    if rule not in RULES:
        raise ValueError(f"unknown attempt rule {rule!r}; choose one of {', '.join(RULES)}")
    with_nb = [a for a in attempts if a.notebook_name]
    if not with_nb:
        return None, "no notebook submitted"
    named = [a for a in with_nb if a.notebook_name == f"{notebook}.ipynb"]
    pool = named or with_nb
    if rule == "latest-on-time":
        on_time = [a for a in pool if not a.late]
        pool = on_time or pool
    ordered = sorted(pool, key=Attempt.key)
    best = ordered[0] if rule == "first" else ordered[-1]
    ties = [a for a in pool if a.key() == best.key() and a.sha256 != best.sha256]
    if ties:
        return None, ("attempts that the rule cannot tell apart: "
                      + "; ".join(a.describe() for a in [best] + ties)
                      + f" -- choose one in grading/{CONFIG_NAME}")
    return best, ""


# --------------------------------------------------------------------------
# reading the download


@dataclass
class Item:
    """A file found in a download (on disk or inside an archive)."""

    origin: str                           # e.g. "canvas.zip!doejane_1_2_ps02.ipynb"
    parts: tuple[str, ...]                # its path inside the download
    data: bytes
    mtime: datetime | None
    owner: Parsed | None = None           # the student whose own zip (or folder) holds it


@dataclass
class Problem:
    origin: str
    reason: str


def _is_junk(parts: tuple[str, ...]) -> bool:
    return (any(p.lower() in JUNK_DIRS for p in parts[:-1]) or parts[-1].lower() in JUNK_NAMES
            or parts[-1].startswith("._") or parts[-1].endswith("-checkpoint.ipynb"))


class _Reader:
    def __init__(self, assignment: str, notebook: str):
        self.assignment, self.notebook = assignment, notebook
        self.items: list[Item] = []
        self.problems: list[Problem] = []
        self.ignored: list[Problem] = []
        self.total = 0
        self.members = 0

    def read_folder(self, folder: Path) -> None:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            parts = tuple(nfc(p) for p in rel.parts)
            if path.is_symlink():
                self.problems.append(Problem(str(rel), "a symbolic link (not followed)"))
                continue
            if not path.is_file():
                continue
            if _is_junk(parts):
                self.ignored.append(Problem(str(rel), "system file (ignored)"))
                continue
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                self.problems.append(Problem(str(rel), f"larger than {MAX_FILE_BYTES >> 20} MB"))
                continue
            mtime = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).replace(tzinfo=None)
            self._add(nfc(str(rel)), parts, path.read_bytes(), mtime, None, 0)

    def _add(self, origin, parts, data, mtime, owner, depth):
        self.total += len(data)
        if self.total > MAX_TOTAL_BYTES:
            self.problems.append(Problem(origin, "the downloads hold more than "
                                                 f"{MAX_TOTAL_BYTES >> 30} GB; not read"))
            return
        name = parts[-1].lower()
        if name.endswith(".zip") or (data[:4] == b"PK\x03\x04" and not name.endswith(".ipynb")):
            self._read_zip(origin, parts, data, owner, depth + 1)
        else:
            self.items.append(Item(origin, parts, data, mtime, owner))

    def _owner_of_zip(self, parts: tuple[str, ...]) -> Parsed | None:
        """A zip whose own name says whose it is is that student's; None for a bulk
        download (say submissions.zip)."""
        name = parts[-1]
        stem = name[:-4] if name.lower().endswith(".zip") else name
        parsed = parse_name(parts[:-1] + (stem + ".ipynb",), self.assignment, self.notebook)
        if not isinstance(parsed, Parsed) or parsed.receipt:
            return None
        return replace(parsed, filename="", container=True)

    def _read_zip(self, origin, parts, data, owner, depth):
        if depth > MAX_ZIP_DEPTH:
            self.problems.append(Problem(origin, f"zip archives nested more than {MAX_ZIP_DEPTH} deep"))
            return
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
            infos = zf.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            self.problems.append(Problem(origin, f"not a readable zip archive ({exc})"))
            return
        if owner is None:
            owner = self._owner_of_zip(parts)
        for info in infos:
            if info.is_dir():
                continue
            self.members += 1
            if self.members > MAX_MEMBERS:
                self.problems.append(Problem(origin, f"more than {MAX_MEMBERS} files in the archives"))
                return
            name = nfc(info.filename.replace("\\", "/"))
            inner = tuple(p for p in PurePosixPath(name).parts if p not in ("", ".", "..", "/"))
            where = f"{origin}!{name}"
            if not inner:
                continue
            if _is_junk(inner):
                self.ignored.append(Problem(where, "system file (ignored)"))
                continue
            if info.flag_bits & 0x1:
                self.problems.append(Problem(where, "encrypted (password-protected) in the zip"))
                continue
            if info.file_size > MAX_FILE_BYTES:
                self.problems.append(Problem(where, f"larger than {MAX_FILE_BYTES >> 20} MB"))
                continue
            try:
                with zf.open(info) as fh:
                    content = fh.read(MAX_FILE_BYTES + 1)
            except Exception as exc:                      # noqa: BLE001 -- a damaged entry
                self.problems.append(Problem(where, f"cannot be unpacked ({type(exc).__name__}: {exc})"))
                continue
            if len(content) > MAX_FILE_BYTES:
                self.problems.append(Problem(where, f"larger than {MAX_FILE_BYTES >> 20} MB"))
                continue
            try:
                mtime = datetime(*info.date_time)
            except ValueError:
                mtime = None
            # inside a bulk download the zip's own folders still count (Moodle's folders)
            self._add(where, inner if owner is not None else parts[:-1] + inner, content, mtime,
                      owner, depth)


def read(archive: Path, assignment: str, notebook: str) -> tuple[list[Item], list[Problem], list[Problem]]:
    """Every file in the download, zips unpacked in memory (nothing is extracted).
    Returns (items, problems, ignored)."""
    reader = _Reader(assignment, notebook)
    if archive.is_dir():
        reader.read_folder(archive)
    return reader.items, reader.problems, reader.ignored


# --------------------------------------------------------------------------
# from files to attempts to one submission per student


@dataclass
class Entry:
    """One student's submission of one assignment, as the intake decided it."""

    student: str
    status: str = "graded"                # graded | not graded | withdrawn
    reason: str = ""                      # why not graded / withdrawn
    folder: Path | None = None            # a hand-placed grading/submitted/<student>/<a>/
    attempt: Attempt | None = None        # else the attempt chosen from the downloads
    attempts: list[Attempt] = field(default_factory=list)    # every downloaded attempt, in order
    notes: list[str] = field(default_factory=list)

    @property
    def source(self) -> str:
        if self.folder is not None:
            return f"grading/submitted/{self.folder.parent.name}/{self.folder.name}/ (placed by hand)"
        if self.attempt is not None:
            return "; ".join(self.attempt.origins)
        return ""

    @property
    def late(self) -> bool:
        return bool(self.attempt and self.attempt.late)

    @property
    def timestamp(self) -> datetime | None:
        return self.attempt.timestamp if self.attempt else None

    def position(self) -> str:
        """'2 of 3' (the graded attempt among the downloaded ones)."""
        if self.attempt is None or not self.attempts:
            return ""
        return f"{self.attempts.index(self.attempt) + 1} of {len(self.attempts)}"


@dataclass
class Intake:
    assignment: str
    rule: str
    entries: dict[str, Entry] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)     # files not attributed
    ignored: list[Problem] = field(default_factory=list)
    files_found: int = 0
    files_attributed: int = 0

    @property
    def graded(self) -> list[Entry]:
        return [e for e in self.entries.values() if e.status == "graded"]


@dataclass
class Settings:
    rule: str = DEFAULT_RULE
    due: dict[str, datetime] = field(default_factory=dict)            # assignment -> due date
    choose: dict[str, dict[str, str]] = field(default_factory=dict)   # assignment -> student -> choice


def load_settings(path: Path, rule: str | None = None) -> Settings:
    """grading/intake.toml (all keys optional):

        rule = "latest"                                   # or "first", "latest-on-time"
        [due]
        ps02-kalman-filter = 2026-11-02T23:59:00          # attempts after it are late
        [choose.ps02-kalman-filter]
        doejane = "3f2a9c01"                              # grade this attempt (its id)
        roe = "withdraw"                                  # grade nothing of this student

    `rule` (the command line's --attempt) overrides the file's rule."""
    s = Settings()
    if path.is_file():
        import tomllib

        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} is not valid TOML: {exc}") from None
        s.rule = str(data.get("rule", s.rule))
        for a, when in (data.get("due") or {}).items():
            if isinstance(when, str):
                try:
                    when = datetime.fromisoformat(when)
                except ValueError:
                    raise ValueError(f"{path}: due date of {a} is not a date and time: {when!r}") from None
            if not isinstance(when, datetime):
                raise ValueError(f"{path}: due date of {a} must be a date and time, e.g. 2026-11-02T23:59:00")
            s.due[a] = when
        for a, table in (data.get("choose") or {}).items():
            if not isinstance(table, dict):
                raise ValueError(f"{path}: [choose.{a}] must be a table of student = attempt id")
            s.choose[a] = {nfc(str(k)): str(v).strip() for k, v in table.items()}
    if rule:
        s.rule = rule
    if s.rule not in RULES:
        raise ValueError(f"unknown attempt rule {s.rule!r} (from {'--attempt' if rule else path}); "
                         f"choose one of {', '.join(RULES)}")
    return s


def _stored_name(parts: tuple[str, ...], taken: dict[str, bytes], data: bytes) -> str:
    name = parts[-1]
    if name in taken and taken[name] != data:
        name = "_".join(parts[-2:]) if len(parts) > 1 else name
    name = _UNSAFE.sub("_", name).lstrip(".") or "file"
    if len(name.encode()) > 180:                       # file systems stop at 255 bytes
        stem, ext = os.path.splitext(name)
        name = stem.encode()[:160].decode(errors="ignore") + ext[:16]
    while name in taken and taken[name] != data:
        name = "_" + name
    return name


def attempts_of(items: list[Item], assignment: str, notebook: str, due: datetime | None
                ) -> tuple[dict[str, list[Attempt]], list[Problem], int]:
    """Group the files of a download into attempts per student.
    Returns (student -> attempts in the rule's order, files not attributed, files attributed)."""
    groups: dict[tuple, list[tuple[Item, Parsed]]] = {}
    problems: list[Problem] = []
    attributed = 0
    for item in items:
        if item.owner is not None:
            p = replace(item.owner, filename=item.parts[-1])
            key = ("zip", p.student, item.origin.split("!")[0] if "!" not in item.origin
                   else item.origin.rsplit("!", 1)[0])
        else:
            parsed = parse_name(item.parts, assignment, notebook)
            if isinstance(parsed, str):
                problems.append(Problem(item.origin, parsed))
                continue
            p = parsed
            if p.container:
                key = ("folder", p.student, "/".join(item.parts[:-len(PurePosixPath(p.filename).parts)]))
            else:
                key = (p.lms, p.student, p.attempt, p.timestamp)
        attributed += 1
        groups.setdefault(key, []).append((item, p))
    out: dict[str, list[Attempt]] = {}
    for key, members in groups.items():
        for sub in _split_conflicts(members):
            att = _attempt(sub, notebook, due)
            same = [a for a in out.get(att.student, []) if a.sha256 == att.sha256 and a.key() == att.key()]
            if same:                                  # the same file in two downloads
                same[0].origins += [o for o in att.origins if o not in same[0].origins]
                continue
            out.setdefault(att.student, []).append(att)
    for student in out:
        out[student].sort(key=Attempt.key)
    return out, problems, attributed


def _split_conflicts(members: list[tuple[Item, Parsed]]) -> list[list[tuple[Item, Parsed]]]:
    """Two different files of the same name in one attempt are two attempts (say the
    same Canvas name in two downloads): split by the LMS's further key, then by file."""
    seen: dict[str, bytes] = {}
    for item, p in members:
        if p.receipt:
            continue
        name = PurePosixPath(p.filename).name if p.filename else item.parts[-1]
        if name in seen and seen[name] != item.data:
            break
        seen[name] = item.data
    else:
        return [members]
    by: dict[tuple, list] = {}
    for item, p in members:
        by.setdefault((p.order, item.origin.split("!")[0]), []).append((item, p))
    return list(by.values()) if len(by) > 1 else [[m] for m in members]


def _attempt(members: list[tuple[Item, Parsed]], notebook: str, due: datetime | None) -> Attempt:
    first = members[0][1]
    files: dict[str, bytes] = {}
    origins: list[str] = []
    late, reasons, order, mtimes = False, [], (), []
    for item, p in members:
        origins.append(item.origin)
        if item.mtime:
            mtimes.append(item.mtime)
        order = max(order, p.order)
        if p.late:
            late = True
            reasons.append(f"{p.lms.capitalize()} marks it LATE")
        if p.receipt:
            continue                                  # Blackboard's receipt: metadata only
        filename = PurePosixPath(p.filename).name if p.filename else item.parts[-1]
        name = _stored_name((*item.parts[:-1], filename), files, item.data)
        files[name] = item.data
    att = Attempt(first.student, first.lms, files, origins, first.attempt, first.timestamp,
                  order=order, mtime=max(mtimes) if mtimes else None)
    if due is not None and att.timestamp is not None and _naive(att.timestamp) > _naive(due):
        late = True
        reasons.append(f"submitted {att.timestamp:%Y-%m-%d %H:%M:%S}, due {due:%Y-%m-%d %H:%M:%S}")
    att.late, att.late_reason = late, "; ".join(dict.fromkeys(reasons))
    notebooks = sorted(n for n in files if n.lower().endswith(".ipynb"))
    expected = f"{notebook}.ipynb"
    att.notebook_name = expected if expected in notebooks else (notebooks[0] if notebooks else "")
    return att


def hand_placed(submitted: Path, assignment: str) -> tuple[dict[str, Path], dict[str, str]]:
    """grading/submitted/<student>/<assignment>/ folders: (student id -> folder, and
    student id -> problem for names that clash or cannot be ids)."""
    found: dict[str, list[Path]] = {}
    bad: dict[str, str] = {}
    if not submitted.is_dir():
        return {}, {}
    for folder in sorted(submitted.iterdir()):
        target = folder / assignment
        if not folder.is_dir() or not target.is_dir():
            continue
        try:
            sid = student_id(folder.name)
        except ValueError:
            bad[folder.name] = f"grading/submitted/{folder.name!r} is not a usable student id"
            continue
        found.setdefault(sid, []).append(target)
    out = {}
    for sid, folders in found.items():
        if len(folders) > 1:
            bad[sid] = ("grading/submitted/ has several folders for this student (their names differ "
                        "only in Unicode normalisation or spacing): "
                        + ", ".join(repr(f.parent.name) for f in folders))
        else:
            out[sid] = folders[0]
    return out, bad


def take_in(root: Path, assignment: str, notebook: str, settings: Settings) -> Intake:
    """Read the downloads and the hand-placed submissions of one assignment and decide,
    per student, what is graded. Writes nothing."""
    grading = root / "grading"
    intake = Intake(assignment, settings.rule)
    items, problems, ignored = read(grading / "downloaded" / assignment / "archive", assignment, notebook)
    intake.ignored = ignored
    due = settings.due.get(assignment)
    downloaded, unattributed, attributed = attempts_of(items, assignment, notebook, due)
    intake.problems = problems + unattributed
    intake.files_found = len(items) + len(problems)
    intake.files_attributed = attributed
    placed, bad = hand_placed(grading / "submitted", assignment)
    choose = settings.choose.get(assignment, {})
    for student in sorted(set(downloaded) | set(placed) | set(bad)):
        e = Entry(student, attempts=downloaded.get(student, []))
        intake.entries[student] = e
        choice = choose.get(student, "")
        if student in bad:
            e.status, e.reason = "not graded", bad[student]
            continue
        if choice.lower() == "withdraw":
            e.status, e.reason = "withdrawn", f"withdrawn in grading/{CONFIG_NAME}"
            continue
        if student in placed:
            e.folder = placed[student]
            if e.attempts:
                e.notes.append(f"graded the notebook placed by hand in grading/submitted/; "
                               f"{len(e.attempts)} downloaded attempt(s) not used")
            continue
        if choice:
            hits = [a for a in e.attempts if a.sha256.startswith(choice.lower())]
            if len(hits) != 1:
                e.status = "not graded"
                e.reason = (f"grading/{CONFIG_NAME} chooses attempt {choice!r}, which "
                            + ("matches several attempts" if hits else "is none of this student's")
                            + ": " + "; ".join(a.describe() for a in e.attempts))
                continue
            e.attempt = hits[0]
            how = f"chosen in grading/{CONFIG_NAME}"
        else:
            e.attempt, why = pick(e.attempts, settings.rule, notebook)
            if e.attempt is None:
                e.status = "not graded"
                others = sorted({n for a in e.attempts for n in a.files})
                e.reason = why + (f" (the download holds {', '.join(others[:5])})"
                                  if why == "no notebook submitted" and others else "")
                continue
            how = f"rule: {settings.rule}"
        if len(e.attempts) > 1:
            e.notes.append(f"graded {e.attempt.describe()}, {e.position()} ({how}); not graded: "
                           + "; ".join(a.describe() for a in e.attempts if a is not e.attempt))
    return intake


def store(root: Path, intake: Intake) -> list[Path]:
    """Keep every downloaded attempt under grading/attempts/<assignment>/<student>/<id>/
    (a new folder per new attempt; an existing one is never written again).
    Returns the files written."""
    written = []
    for e in intake.entries.values():
        for a in e.attempts:
            folder = root / "grading" / "attempts" / intake.assignment / e.student / a.id
            if folder.exists():
                continue
            tmp = folder.with_name(folder.name + ".partial")
            try:
                tmp.mkdir(parents=True, exist_ok=True)
                for name, data in a.files.items():
                    (tmp / name).write_bytes(data)
                    os.chmod(tmp / name, 0o644)
                os.chmod(tmp, 0o755)
                tmp.rename(folder)
            except OSError as exc:                    # a full disk: grading goes on without the copy
                e.notes.append(f"attempt {a.id} could not be kept under grading/attempts/ ({exc})")
                continue
            written += [folder / n for n in a.files]
    return written


def write_files(folder: Path, attempt: Attempt) -> None:
    """The attempt as a submission folder (nbgrader's layout), modes 0644/0755."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)
    for name, data in attempt.files.items():
        (folder / name).write_bytes(data)
        os.chmod(folder / name, 0o644)
    if attempt.timestamp is not None:
        (folder / "timestamp.txt").write_text(f"{_naive(attempt.timestamp):%Y-%m-%d %H:%M:%S.%f} UTC\n")
        os.chmod(folder / "timestamp.txt", 0o644)


INTAKE_FIELDS = ["assignment", "student", "attempt", "graded", "reason", "lms", "attempt_number",
                 "submitted_at", "late", "files", "source", "sha256"]


def csv_rows(intake: Intake) -> list[dict]:
    rows = []
    for e in intake.entries.values():
        if e.folder is not None:
            rows.append({"assignment": intake.assignment, "student": e.student, "attempt": "by hand",
                         "graded": "yes" if e.status == "graded" else e.status, "reason": e.reason,
                         "lms": "", "attempt_number": "", "submitted_at": "", "late": "",
                         "files": " ".join(sorted(p.name for p in e.folder.iterdir() if p.is_file())),
                         "source": e.source, "sha256": ""})
        for a in e.attempts:
            graded = "yes" if a is e.attempt and e.status == "graded" else (
                e.status if e.status != "graded" else "no")
            rows.append({"assignment": intake.assignment, "student": e.student, "attempt": a.id,
                         "graded": graded, "reason": e.reason if graded != "no" else "",
                         "lms": a.lms, "attempt_number": "" if a.attempt is None else str(a.attempt),
                         "submitted_at": f"{a.timestamp:%Y-%m-%d %H:%M:%S}" if a.timestamp else "",
                         "late": a.late_reason if a.late else "", "files": " ".join(sorted(a.files)),
                         "source": "; ".join(a.origins), "sha256": a.sha256})
        if not e.attempts and e.folder is None:
            rows.append({"assignment": intake.assignment, "student": e.student, "attempt": "",
                         "graded": e.status, "reason": e.reason, "lms": "", "attempt_number": "",
                         "submitted_at": "", "late": "", "files": "", "source": "", "sha256": ""})
    for p in intake.problems:
        rows.append({"assignment": intake.assignment, "student": "", "attempt": "",
                     "graded": "not attributed", "reason": p.reason, "lms": "", "attempt_number": "",
                     "submitted_at": "", "late": "", "files": "", "source": p.origin, "sha256": ""})
    return rows


def write_csv(path: Path, rows: list[dict], assignments: set[str], fields: list[str]) -> None:
    """Write rows, keeping the rows of other assignments already in the file. UTF-8 with a
    byte-order mark (Excel reads it as UTF-8) and CRLF line ends, like grades.csv."""
    keep = []
    if path.is_file():
        with open(path, newline="", encoding="utf-8-sig") as fh:
            keep = [r for r in csv.DictReader(fh) if r.get("assignment") not in assignments]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8-sig") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore", restval="")
        w.writeheader()
        for r in sorted(keep + rows, key=lambda r: (r.get("assignment", ""), r.get("student", ""))):
            w.writerow(spreadsheet_safe(r))
    tmp.replace(path)


def spreadsheet_safe(row: dict) -> dict:
    """Text that students chose (names, file names, reasons) must not start a formula."""
    return {k: ("'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r")
                and k not in ("assignment",) and not _NUMBER.match(v) else v)
            for k, v in row.items()}


_NUMBER = re.compile(r"^[-+]?\d+(\.\d*)?(e[-+]?\d+)?$")
