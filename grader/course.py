"""The course's notebooks as the grader reads them.

Trusted: the SOURCE notebook (solutions/<a>/) and the RELEASE notebook
(exercises/<a>/), both the instructor's. Untrusted: everything in a
submission, including its cell metadata -- students can edit, delete, move
and re-point cells. So the grader decides what is a test cell by comparing a
submitted cell's *source* with the release's test cells (after removing any
hidden-test block, which appears when someone submits an autograded or source
notebook), never by believing the submitted metadata.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

HIDDEN = re.compile(r"[ \t]*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS[ \t]*\n?", re.S)
# The largest notebook file graded (outputs included; they are stripped before grading,
# so a notebook with many plots is fine). Above it: not graded, flagged too-large.
MAX_NOTEBOOK_BYTES = 200 << 20


def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata", {}) if isinstance(cell, dict) else {}
    nb = meta.get("nbgrader", {}) if isinstance(meta, dict) else {}
    return nb if isinstance(nb, dict) else {}


def cell_source(cell) -> str:
    src = cell.get("source", "") if isinstance(cell, dict) else ""
    if isinstance(src, list):
        src = "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def normalize(source: str) -> str:
    """Source compared modulo trailing spaces, blank edges and hidden-test blocks."""
    lines = [line.rstrip() for line in HIDDEN.sub("", source).splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def is_autograder_test(meta: dict) -> bool:
    return bool(meta.get("grade")) and not meta.get("solution")


def is_answer(meta: dict) -> bool:
    return bool(meta.get("solution")) and not meta.get("grade")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class PartInfo:
    grade_id: str                         # the answer cell
    tests: dict[str, float]               # its test cells (grade_id -> points), in order

    @property
    def points(self) -> float:
        return float(sum(self.tests.values()))


@dataclass
class Assignment:
    """An assignment as the instructor wrote it (source) and released it."""

    name: str
    notebook: str                         # notebook name without .ipynb
    source: nbformat.NotebookNode
    release: nbformat.NotebookNode
    parts: dict[str, PartInfo]            # answer grade_id -> part
    manual: dict[str, float]              # manually graded cells (grade_id -> points)
    release_tests: dict[str, str] = field(default_factory=dict)   # test grade_id -> normalized source

    @property
    def max_score(self) -> float:
        return sum(p.points for p in self.parts.values()) + sum(self.manual.values())

    def part_of_test(self, test_id: str) -> str | None:
        for gid, part in self.parts.items():
            if test_id in part.tests:
                return gid
        return None

    def hidden_test_lines(self) -> list[str]:
        """Every line of the hidden tests (for checking that feedback does not show them)."""
        lines = []
        for cell in self.source.cells:
            for block in HIDDEN.findall(cell_source(cell)):
                lines += [ln.strip() for ln in block.splitlines()
                          if ln.strip() and "HIDDEN TESTS" not in ln]
        return lines


def find_notebook(folder: Path) -> str:
    found = sorted(p.stem for p in folder.glob("*.ipynb"))
    if len(found) != 1:
        raise ValueError(f"{folder} must hold exactly one notebook; found {found}")
    return found[0]


def load_assignment(root: Path, name: str) -> Assignment:
    """Read solutions/<name>/ and exercises/<name>/ (one notebook each)."""
    nb_name = find_notebook(root / "solutions" / name)
    source = nbformat.read(root / "solutions" / name / f"{nb_name}.ipynb", 4)
    release_path = root / "exercises" / name / f"{nb_name}.ipynb"
    if not release_path.exists():
        raise FileNotFoundError(f"{release_path} is missing: release the assignment first "
                                "(make exercises)")
    release = nbformat.read(release_path, 4)
    parts: dict[str, PartInfo] = {}
    manual: dict[str, float] = {}
    current = None
    for cell in source.cells:
        meta = nbgrader_meta(cell)
        if is_answer(meta) and cell.cell_type == "code":
            current = meta["grade_id"]
            parts[current] = PartInfo(current, {})
        elif is_autograder_test(meta):
            if current is None:
                raise ValueError(f"{name}: test cell {meta['grade_id']} comes before any answer cell")
            parts[current].tests[meta["grade_id"]] = float(meta.get("points", 0))
        elif meta.get("grade") and meta.get("solution"):
            manual[meta["grade_id"]] = float(meta.get("points", 0))
    parts = {gid: p for gid, p in parts.items() if p.tests}
    release_tests = {nbgrader_meta(c)["grade_id"]: normalize(cell_source(c))
                     for c in release.cells if is_autograder_test(nbgrader_meta(c))}
    missing = {t for p in parts.values() for t in p.tests} - set(release_tests)
    if missing:
        raise ValueError(f"{name}: the release lacks test cells {sorted(missing)}; "
                         "regenerate exercises/ (make exercises)")
    return Assignment(name, nb_name, source, release, parts, manual, release_tests)


# --------------------------------------------------------------------------
# submissions


@dataclass
class Submission:
    assignment: str
    student: str
    folder: Path                          # grading/submitted/<student>/<assignment>/ (never written)
    path: Path | None = None              # the notebook graded (None: nothing to grade)
    cells: list[dict] = field(default_factory=list)
    problem: str = ""                     # why it cannot be graded ("" if it can)
    problem_code: str = ""                # empty | unreadable | ambiguous
    renamed_from: str = ""                # a notebook with another name was graded
    sha256: str = ""


def read_submission(folder: Path, assignment: Assignment, student: str) -> Submission:
    """Find and parse a student's notebook, leniently and without trusting it."""
    sub = Submission(assignment.name, student, folder)
    expected = folder / f"{assignment.notebook}.ipynb"
    notebooks = sorted(p for p in folder.glob("*.ipynb") if p.is_file())
    if expected.is_file():
        sub.path = expected
    elif len(notebooks) == 1:
        sub.path = notebooks[0]
        sub.renamed_from = notebooks[0].name
    elif not notebooks:
        others = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        sub.problem_code = "empty"
        sub.problem = ("no notebook submitted" + (f" (the folder holds {', '.join(others[:5])})"
                                                  if others else " (the folder is empty)"))
        return sub
    else:
        sub.problem_code = "ambiguous"
        sub.problem = (f"no {expected.name}, and {len(notebooks)} other notebooks "
                       f"({', '.join(p.name for p in notebooks[:5])}): cannot tell which to grade")
        return sub
    sub.sha256 = sha256(sub.path)
    size = sub.path.stat().st_size
    if size == 0:
        sub.problem_code, sub.problem = "unreadable", f"{sub.path.name} is an empty file"
        return sub
    if size > MAX_NOTEBOOK_BYTES:
        sub.problem_code = "too-large"
        sub.problem = (f"{sub.path.name} is {size / 2**20:.0f} MB, above the limit of "
                       f"{MAX_NOTEBOOK_BYTES / 2**20:.0f} MB for a notebook file (clear its outputs "
                       "and submit again, or raise grader.course.MAX_NOTEBOOK_BYTES)")
        return sub
    try:
        sub.cells = parse_cells(sub.path.read_bytes())
    except ValueError as exc:
        sub.problem_code, sub.problem = "unreadable", f"{sub.path.name} is not a readable notebook: {exc}"
    return sub


def parse_cells(data: bytes) -> list[dict]:
    """The cells of a notebook file as plain dicts (cell_type, source, id, metadata)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if isinstance(raw, dict) and "worksheets" in raw:          # nbformat 3
        try:
            raw = nbformat.reads(text, as_version=4)
        except Exception as exc:                               # noqa: BLE001
            raise ValueError(f"an nbformat 3 notebook that cannot be converted ({exc})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise ValueError("no list of cells in it")
    cells = []
    for c in raw["cells"]:
        if not isinstance(c, dict):
            continue
        cells.append({"cell_type": c.get("cell_type") if isinstance(c.get("cell_type"), str) else "",
                      "source": cell_source(c),
                      "id": c.get("id") if isinstance(c.get("id"), str) else None,
                      "metadata": c.get("metadata") if isinstance(c.get("metadata"), dict) else {}})
    return cells


@dataclass
class Layout:
    """How a submission lines up with the release."""

    steps: list[dict]                     # for the sandbox: cells to run and where to call parts
    test_changes: list[str]               # test cells edited, deleted, moved or re-pointed
    answers: dict[str, int]               # answer grade_id -> index of the submitted cell
    extra: list[int]                      # submitted cells matching nothing in the release


def layout(sub: Submission, assignment: Assignment) -> Layout:
    release_by_source: dict[str, str] = {}
    for tid, src in assignment.release_tests.items():
        release_by_source.setdefault(src, tid)
    steps: list[dict] = []
    seen_tests: dict[str, int] = {}
    called: set[str] = set()
    changes: list[str] = []
    for i, cell in enumerate(sub.cells):
        if cell["cell_type"] != "code":
            continue
        src = normalize(cell["source"])
        tid = release_by_source.get(src)
        if tid is not None:
            if tid in seen_tests:
                changes.append(f"test cell {tid} appears twice")
            seen_tests.setdefault(tid, i)
            meta = nbgrader_meta(cell)
            rel_meta = _release_meta(assignment, tid)
            for key in ("grade_id", "points", "grade", "solution", "locked"):
                if key in rel_meta and meta.get(key) != rel_meta.get(key):
                    changes.append(f"test cell {tid}: metadata {key} changed "
                                   f"({rel_meta.get(key)!r} -> {meta.get(key)!r})")
            part = assignment.part_of_test(tid)
            if part and part not in called:
                steps.append({"kind": "call", "part": part})
                called.add(part)
            continue
        steps.append({"kind": "cell", "index": i, "source": cell["source"]})
        meta = nbgrader_meta(cell)
        gid = meta.get("grade_id")
        if gid in assignment.release_tests:
            changes.append(f"test cell {gid}: its code was edited")
        elif gid is not None:
            rel_meta = _release_meta(assignment, gid)
            if not rel_meta and (meta.get("grade") or meta.get("solution")):
                changes.append(f"cell {i + 1} claims nbgrader grade_id {gid!r}, which the release does not have")
            for key in ("grade", "solution", "locked", "points"):
                if rel_meta and meta.get(key, rel_meta.get(key)) != rel_meta.get(key):
                    changes.append(f"cell {gid}: metadata {key} changed "
                                   f"({rel_meta.get(key)!r} -> {meta.get(key)!r})")
    for tid in assignment.release_tests:
        if tid not in seen_tests and not any(tid in c for c in changes):
            changes.append(f"test cell {tid} was deleted")
    for part in assignment.parts:
        if part not in called:
            steps.append({"kind": "call", "part": part})
    return Layout(steps, changes, _match_answers(sub, assignment), [])


def _release_meta(assignment: Assignment, test_id: str) -> dict:
    for cell in assignment.release.cells:
        meta = nbgrader_meta(cell)
        if meta.get("grade_id") == test_id:
            return meta
    return {}


_DEF = re.compile(r"^\s*def\s+([A-Za-z_]\w*)", re.M)


def _match_answers(sub: Submission, assignment: Assignment) -> dict[str, int]:
    """Which submitted cell is each answer (for the feedback): by cell id, then grade_id,
    then by the function it defines."""
    found: dict[str, int] = {}
    release_answers = [c for c in assignment.release.cells if is_answer(nbgrader_meta(c))]
    for rc in release_answers:
        gid = nbgrader_meta(rc)["grade_id"]
        names = set(_DEF.findall(cell_source(rc)))
        candidates = [i for i, c in enumerate(sub.cells) if rc.get("id") and c["id"] == rc.get("id")]
        candidates += [i for i, c in enumerate(sub.cells) if nbgrader_meta(c).get("grade_id") == gid]
        candidates += [i for i, c in enumerate(sub.cells)
                       if c["cell_type"] == "code" and names and names & set(_DEF.findall(c["source"]))]
        for i in candidates:
            if i not in found.values() and sub.cells[i]["cell_type"] == rc.cell_type:
                found[gid] = i
                break
    return found
