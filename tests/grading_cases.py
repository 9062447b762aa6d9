"""Adversarial submissions of ps01-state-space for tests/test_grading.py.

Each case builds one student's submission folder (usually one notebook made
from the RELEASE notebook with some answer cells replaced) and says what the
trusted grading must give it: the grade (the trusted score) and the flags in
grading/report.csv. `nbgrader` records what nbgrader's own autograde gives
the same notebook, where that is part of the point (it is fooled, or it drops
the submission); None means "not asserted".

Not a test module (no test_ prefix): test_grading.py imports it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nbformat

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "ps01-state-space"
NOTEBOOK = "ps01-state-space"
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
ANSWER_MARK = re.compile(r"^# %% answer: (?P<grade_id>[A-Za-z0-9_-]+)[ \t]*$", re.MULTILINE)


def meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def release() -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "exercises" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", 4)


def source() -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "solutions" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", 4)


def correct() -> dict[str, str]:
    """The instructor's answers, as a student would write them (markers removed)."""
    return {meta(c)["grade_id"]: "\n".join(ln for ln in c.source.splitlines()
                                           if ln.strip() not in SOLUTION_MARKERS)
            for c in source().cells if meta(c).get("solution") and not meta(c).get("grade")}


def fragments(name: str) -> dict[str, str]:
    text = (ROOT / "tests" / "submissions" / ASSIGNMENT / name).read_text()
    marks = list(ANSWER_MARK.finditer(text))
    return {m["grade_id"]: text[m.end():(n.start() if n else len(text))].strip("\n") + "\n"
            for m, n in zip(marks, marks[1:] + [None])}


def fill(answers: dict[str, str], nb=None) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(json.loads(json.dumps(nb if nb is not None else release())))
    for cell in nb.cells:
        gid = meta(cell).get("grade_id")
        if meta(cell).get("solution") and gid in answers:
            cell.source = answers[gid]
    return nb


def with_answers(**changes: str) -> nbformat.NotebookNode:
    return fill({**correct(), **changes})


def test_cell(nb, grade_id):
    return next(c for c in nb.cells if meta(c).get("grade_id") == grade_id)


# --------------------------------------------------------------------------
# wrong answers that only the hidden tests catch (they pass the visible tests)

CV_WRONG_UNLESS_VISIBLE = '''
def constant_velocity_model(dt, q, r):
    F = np.array([[1.0, dt], [0.0, 1.0]])
    H = np.array([[1.0, 0.0]])
    Q = q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
    if dt != 0.5:
        Q = 1.1 * Q          # wrong except for the visible tests' dt
    return F, H, Q, np.array([[float(r)]])
'''

PATCH_ALLCLOSE = '''
import numpy as np
np.allclose = lambda *a, **k: True
np.testing.assert_allclose = lambda *a, **k: None

def constant_velocity_model(dt, q, r):
    F = np.array([[1.0, dt], [0.0, 1.0]])
    H = np.array([[1.0, 0.0]])
    Q = 1.1 * q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])   # wrong everywhere
    return F, H, Q, np.array([[float(r)]])
'''

PATCH_BUILTINS = '''
import builtins, math
builtins.abs = lambda x: 0
builtins.all = lambda *a: True
math.isclose = lambda *a, **k: True
''' + CV_WRONG_UNLESS_VISIBLE

REPLACE_KFLIB = CV_WRONG_UNLESS_VISIBLE + '''
import types, kflib.models
kflib.models.constant_velocity = lambda dt, q, r: types.SimpleNamespace(
    **dict(zip("FHQR", constant_velocity_model(dt, q, r))))
'''

SYS_MODULES = CV_WRONG_UNLESS_VISIBLE + '''
import sys, types
_fake = types.ModuleType("kflib")
_fake.__dict__.update(sys.modules["kflib"].__dict__)
_fake.models = types.SimpleNamespace(constant_velocity=lambda dt, q, r: types.SimpleNamespace(
    **dict(zip("FHQR", constant_velocity_model(dt, q, r)))))
sys.modules["kflib"] = _fake
'''

READ_INSTRUCTOR_FILES = '''
import glob, json, os, sqlite3
ROOT = %r

def _steal():
    found = {}                  # function -> {source: how many notebooks have it}
    places, here = [os.path.join(ROOT, "solutions"), os.path.join(ROOT, "grading")], os.getcwd()
    for _ in range(5):
        if here not in ("/", ""):
            places.append(here)
        here = os.path.dirname(here)
    for place in places:
        for path in glob.glob(os.path.join(place, "**", "*.ipynb"), recursive=True)[:300]:
            try:
                cells = json.load(open(path))["cells"]
            except Exception:
                continue
            for c in cells:
                src = "".join(c.get("source", ""))
                if c.get("cell_type") != "code" or "NotImplementedError" in src or "_steal" in src:
                    continue
                for name in ("constant_velocity_model", "simulate_with_noise", "prior_moments",
                             "arima211_model"):
                    if f"def {name}(" in src:
                        found.setdefault(name, {}).setdefault(src, 0)
                        found[name][src] += 1
        for db in glob.glob(os.path.join(place, "**", "gradebook.db"), recursive=True)[:3]:
            try:
                for (text,) in sqlite3.connect(db).execute("select source from source_cell"):
                    print(text)           # the hidden tests, into this notebook's output
            except Exception:
                pass
    return found

for _versions in _steal().values():            # the version most notebooks have
    exec(max(_versions, key=_versions.get), globals())
''' % str(ROOT)

KFLIB_DIRECT = '''
def constant_velocity_model(dt, q, r):
    m = kflib.models.constant_velocity(dt, q, r)
    return m.F, m.H, m.Q, m.R
'''

KFLIB_CAPTURED_CV = '''
_cv = kflib.models.constant_velocity          # captured before the hidden tests switch it off

def constant_velocity_model(dt, q, r):
    m = _cv(dt, q, r)
    return m.F, m.H, m.Q, m.R
'''

KFLIB_CAPTURED_PRIOR = '''
_kf = kflib.kalman_filter

def prior_moments(F, Q, x0, P0, T):
    n = len(x0)
    model = LinearGaussianSSM(F, np.zeros((1, n)), Q, np.eye(1), x0, P0)
    filt = _kf(model, np.full((T, 1), np.nan))
    return filt.x_pred, filt.P_pred
'''

INFINITE = '''
def simulate_with_noise(F, H, x0, w, v):
    while True:
        pass
'''

INFINITE_IGNORING_ALARM = '''
import signal

def arima211_model(phi1, phi2, theta1, sigma2, y0):
    signal.signal(signal.SIGALRM, signal.SIG_IGN)      # a timer cannot stop this one
    while True:
        pass
'''

OS_EXIT = '''
import os

def simulate_with_noise(F, H, x0, w, v):
    os._exit(0)
'''

SYS_EXIT = '''
import sys

def prior_moments(F, Q, x0, P0, T):
    sys.exit(1)
'''

MEMORY = '''
def prior_moments(F, Q, x0, P0, T):
    x = np.empty(10**9)                        # 8 GB, then touched
    x[:] = 1.0
    return x, x
'''

HUGE_OUTPUT = '''
print("x" * 5_000_000)
for _i in range(20_000):
    print(_i, "is a line of output that nobody asked for")
'''

WRONG_RETURNS = {
    "cv_model": '''
def constant_velocity_model(dt, q, r):
    F = np.array([[1.0, dt], [0.0, 1.0]])
    Q = q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
    return [F, np.array([[1.0, 0.0]]), Q, np.array([[float(r)]])]   # a list, not the tuple
''',
    "simulate": '''
def simulate_with_noise(F, H, x0, w, v):
    x = np.empty(w.shape)
    state = np.asarray(x0, dtype=float)
    for t in range(len(w)):
        state = F @ state + w[t]
        x[t] = state
    return x.T, (x @ H.T + v).T                                     # (n, T) instead of (T, n)
''',
    "prior": '''
def prior_moments(F, Q, x0, P0, T):
    n = len(x0)
    return np.full((T, n), np.nan), np.full((T, n, n), np.nan)      # NaN
''',
    "arima": '''
def arima211_model(phi1, phi2, theta1, sigma2, y0):
    return {"phi": (phi1, phi2), "theta": theta1}                   # not a model at all
''',
}


# --------------------------------------------------------------------------


@dataclass
class Case:
    student: str
    build: Callable[[Path], None]           # writes the submission into the given folder
    grade: float                            # the trusted score, used as the grade
    flags: set[str] = field(default_factory=set)     # exactly these flag codes ...
    maybe: set[str] = field(default_factory=set)     # ... plus possibly these (nbgrader's luck)
    nbgrader: float | None = None           # nbgrader's score (None: not asserted / no score)
    nbgrader_fails: bool = False            # nbgrader gives no score at all
    status: str = "graded"
    why: str = ""
    needs_isolation: bool = False           # only holds when the sandbox hides the file system


def notebook(nb_factory, name=f"{NOTEBOOK}.ipynb"):
    def build(folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb_factory(), folder / name)
    return build


def _edit_tests():
    nb = with_answers(simulate=fragments("wrong.py")["simulate"])
    test_cell(nb, "test_simulate").source = 'print("(b): the visible tests pass.")'
    return nb


def _delete_tests():
    nb = with_answers()
    nb.cells = [c for c in nb.cells if not meta(c).get("grade")]
    return nb


def _repoint():
    nb = with_answers(arima=fragments("wrong.py")["arima"])
    t = test_cell(nb, "test_arima")
    t.metadata["nbgrader"]["points"] = 30
    t.metadata["nbgrader"]["grade_id"] = "test_cv_model"         # a duplicate id
    ans = next(c for c in nb.cells if meta(c).get("grade_id") == "arima")
    ans.metadata["nbgrader"].update(grade=True, points=100)       # the answer claims points
    ans.id = "my-own-id"
    return nb


def _steal():
    nb = with_answers(cv_model=READ_INSTRUCTOR_FILES, simulate="pass", prior="pass", arima="pass")
    return nb


def _huge_output():
    nb = with_answers()
    nb.cells.insert(2, nbformat.v4.new_code_cell(HUGE_OUTPUT))
    return nb


def _corrupt(folder: Path):
    folder.mkdir(parents=True)
    text = nbformat.writes(with_answers())
    (folder / f"{NOTEBOOK}.ipynb").write_text(text[: len(text) // 2])


def _empty(folder: Path):
    folder.mkdir(parents=True)


def cases() -> list[Case]:
    return [
        Case("correct", notebook(with_answers), 10, set(), nbgrader=10),
        Case("alternative", notebook(lambda: fill(fragments("alternative.py"))), 10, set(), nbgrader=10),
        Case("untouched-release", notebook(release), 0, set(), nbgrader=0),
        Case("patch-allclose", notebook(lambda: with_answers(cv_model=PATCH_ALLCLOSE)), 8,
             {"tampering", "disagree"}, nbgrader=2,
             why="np.allclose and np.testing.assert_allclose replaced: nbgrader passes the wrong (a) "
                 "and fails the right (b)-(d), whose visible tests assert `not np.allclose(...)`"),
        Case("patch-builtins", notebook(lambda: with_answers(cv_model=PATCH_BUILTINS)), 8,
             {"tampering", "disagree"}, nbgrader=0,
             why="abs, all and math.isclose replaced: every nbgrader test breaks"),
        Case("replace-kflib", notebook(lambda: with_answers(cv_model=REPLACE_KFLIB)), 8,
             {"tampering", "disagree"}, nbgrader=10,
             why="kflib.models.constant_velocity replaced by the student's own function"),
        Case("sys-modules", notebook(lambda: with_answers(cv_model=SYS_MODULES)), 8,
             {"tampering", "disagree"}, nbgrader=7,
             why="sys.modules['kflib'] replaced: nbgrader passes the wrong (a), fails the right (d)"),
        Case("edit-tests", notebook(_edit_tests), 8, {"test-cells-modified"}, nbgrader=8,
             why="test cell (b) replaced by a print; its answer is wrong"),
        Case("delete-tests", notebook(_delete_tests), 10, {"test-cells-modified", "disagree"}, nbgrader=0,
             why="every test cell deleted: nbgrader gives 0 to correct answers"),
        Case("repoint-metadata", notebook(_repoint), 7, {"test-cells-modified", "nbgrader-failed"},
             nbgrader_fails=True,
             why="points 3 -> 30, a duplicate grade_id, an answer cell claiming 100 points: "
                 "nbgrader stops on the metadata"),
        Case("read-instructor-files", notebook(_steal), 0, set(), nbgrader=0,
             why="looks for answers in any notebook it can reach and for the gradebook's hidden "
                 "tests: each submission is graded in a scratch course of its own, which holds no "
                 "other student's notebook, so nbgrader's run finds nothing to copy either",
             needs_isolation=True),
        Case("kflib-reference", notebook(lambda: with_answers(cv_model=KFLIB_DIRECT)), 8,
             {"reference-call"}, nbgrader=8),
        Case("kflib-reference-captured",
             notebook(lambda: with_answers(cv_model=KFLIB_CAPTURED_CV, prior=KFLIB_CAPTURED_PRIOR)), 5,
             {"reference-call"}, {"disagree"},
             why="kflib functions captured before nbgrader's hidden tests switch them off (hidden "
                 "tests that switch kflib off before any student cell runs give 5 as well; older "
                 "ones gave 10, and the row was flagged disagree)"),
        Case("infinite-loop", notebook(lambda: with_answers(simulate=INFINITE)), 8, {"timeout"}, nbgrader=8),
        Case("infinite-loop-no-alarm", notebook(lambda: with_answers(arima=INFINITE_IGNORING_ALARM)), 7,
             {"timeout"}, nbgrader=7, why="ignores SIGALRM: the grader kills the child and goes on"),
        Case("os-exit", notebook(lambda: with_answers(simulate=OS_EXIT)), 8, {"process-exit", "nbgrader-failed"},
             nbgrader_fails=True, why="the kernel dies: nbgrader drops the submission"),
        Case("sys-exit", notebook(lambda: with_answers(prior=SYS_EXIT)), 7, set(), nbgrader=7),
        Case("huge-output", notebook(_huge_output), 10, set(), {"nbgrader-failed", "disagree"},
             why="5 MB and 20,000 lines printed by a cell"),
        Case("memory", notebook(lambda: with_answers(prior=MEMORY)), 7, {"memory"}, nbgrader=7,
             why="asks for 8 GB and writes to it: without a limit this would take the machine's memory"),
        Case("wrong-returns", notebook(lambda: with_answers(**WRONG_RETURNS)), 0, set(), nbgrader=0,
             why="(a) a list, not the tuple; (b) arrays transposed; (c) NaN; (d) a dict, not a model"),
        Case("corrupt-notebook", _corrupt, 0, {"unreadable"}, status="not graded"),
        Case("wrong-notebook-name", notebook(with_answers, name="ps01.ipynb"), 10, {"wrong-name"}, nbgrader=10),
        Case("empty-submission", _empty, 0, {"empty"}, status="not graded"),
    ]
