"""The trusted grading (`make grade`, grader/) against submissions that try to fool it.

One session fixture copies the course (config, solutions/, exercises/ of
ps01) to a temporary folder, fills grading/submitted/ with the adversarial
submissions of tests/grading_cases.py (plus one student who arrives only in an
LMS download, for the intake), and runs `make grade`'s Python entry point
(grader.pipeline.run) once: one nbgrader autograde call for all students, the
trusted checks two at a time. The repository's own grading/ is never touched.

Then, per case: the grade used (the trusted score), the flags in report.csv,
nbgrader's own score where it matters; and for the whole run: grades.csv,
report.csv, the gradebook, the feedback (no hidden test and no expected value
in any feedback file), the progress lines, and that no submission changed.

Faster tests below check the pieces without nbgrader: the sandbox, the copy of
kflib with tripwires, the reading of the child's output, the matching of cells
against the release, and every assignment spec against the instructor's and
the test submissions (tests/submissions/<assignment>/*.py).
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))     # the grader package
import grading_cases as gc                      # noqa: E402

from grader import course, nbg, pipeline, sandbox, spec, trusted  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
A = gc.ASSIGNMENT
pytestmark = [pytest.mark.xdist_group("grading"), pytest.mark.slow]
ARCHIVE_STUDENT = "fromzip"


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@dataclass
class Run:
    root: Path
    summary: pipeline.Summary
    output: str
    before: dict[str, str]

    def row(self, student: str) -> pipeline.Row:
        return self.summary.row(A, student)


@pytest.fixture(scope="session")
def run(tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("course")
    shutil.copy2(ROOT / "nbgrader_config.py", root)
    for folder in ("solutions", "exercises"):
        shutil.copytree(ROOT / folder / A, root / folder / A)
    for case in gc.cases():
        case.build(root / "grading" / "submitted" / case.student / A)
    archive = root / "grading" / "downloaded" / A / "archive"
    archive.mkdir(parents=True)
    with zipfile.ZipFile(archive / "lms-download.zip", "w") as z:
        z.writestr(f"{ARCHIVE_STUDENT}_{gc.NOTEBOOK}.ipynb", nbformat.writes(gc.with_answers()))
    before = hashes(root / "grading" / "submitted")
    out = io.StringIO()
    summary = pipeline.run(pipeline.Options(root=root, jobs=2, timeout=10), out=pipeline.Out(out))
    (tmp_path_factory.getbasetemp() / "make-grade-output.txt").write_text(out.getvalue())
    return Run(root, summary, out.getvalue(), before)


# --------------------------------------------------------------------------
# the adversarial cases


@pytest.mark.parametrize("case", gc.cases(), ids=lambda c: c.student)
def test_grade_and_flags(run, case):
    if case.needs_isolation and run.summary.isolation == "none":
        pytest.skip("no namespace isolation here: student code can read the course's files")
    row = run.row(case.student)
    detail = f"{case.student}: {row.as_csv()}"
    assert row.grade == case.grade, detail
    assert row.status == case.status, detail
    codes = set(row.flag_codes)
    assert case.flags <= codes <= case.flags | case.maybe, detail
    if case.nbgrader is not None and "nbgrader-failed" not in codes:
        assert row.nbgrader_score == case.nbgrader, detail
    if case.nbgrader_fails:
        assert row.nbgrader_score is None, detail


def test_correct_solution_full_marks_no_flags(run):
    for student in ("correct", "alternative", ARCHIVE_STUDENT):
        row = run.row(student)
        assert (row.grade, row.flags, row.status) == (10, [], "graded"), row.as_csv()


def test_archive_is_taken_in(run):
    """The download's attempt is kept under grading/attempts/ and graded; grading/submitted/
    is the instructor's alone."""
    kept = list((run.root / "grading" / "attempts" / A / ARCHIVE_STUDENT).glob(f"*/{gc.NOTEBOOK}.ipynb"))
    assert len(kept) == 1 and kept[0].read_bytes() == nbformat.writes(gc.with_answers()).encode()
    assert not (run.root / "grading" / "submitted" / ARCHIVE_STUDENT).exists()
    assert run.row(ARCHIVE_STUDENT).source == "lms-download.zip!fromzip_ps01-state-space.ipynb"
    assert f"{A}: intake: 1 files in grading/downloaded/{A}/archive/, 1 attributed, 0 not attributed" in run.output


def test_no_submission_changed(run):
    after = hashes(run.root / "grading" / "submitted")
    assert after == run.before
    assert "Submissions untouched:" in run.output


def test_progress_line_per_submission(run):
    n = len(gc.cases()) + 1 - 2                 # the unreadable and the empty one are not run
    for case in gc.cases():
        if case.status == "graded":
            assert re.search(rf"\[\d+/{n}\] {A} {re.escape(case.student)}: trusted ", run.output), case.student


def test_could_not_grade_is_reported_with_reason(run):
    section = run.output.split("Could not grade")[1].split("\n\n")[0]
    assert "corrupt-notebook: ps01-state-space.ipynb is not a readable notebook" in section
    assert "empty-submission: no notebook submitted" in section


def test_grades_csv_has_the_trusted_scores(run):
    with open(run.root / "grading" / "grades.csv", encoding="utf-8-sig") as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    for case in gc.cases():
        assert float(rows[case.student]["score"]) == case.grade, case.student
        assert float(rows[case.student]["max_score"]) == 10


def test_report_csv(run):
    with open(run.root / "grading" / "report.csv", encoding="utf-8-sig") as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert list(next(iter(rows.values()))) == pipeline.REPORT_FIELDS
    assert set(rows) == {c.student for c in gc.cases()} | {ARCHIVE_STUDENT}
    for case in gc.cases():
        r = rows[case.student]
        assert float(r["grade"]) == case.grade and float(r["max_score"]) == 10
        assert set(filter(None, r["flags"].split(";"))) == set(run.row(case.student).flag_codes)
        for code in r["flags"].split(";"):
            if code:
                assert f"{code}: " in r["reasons"], r
    assert rows["patch-allclose"]["nbgrader_score"] == "2" and rows["patch-allclose"]["trusted_score"] == "8"


def test_gradebook_keeps_both_scores(run):
    from nbgrader.api import Gradebook

    with Gradebook(nbg.db_url(run.root)) as gb:
        grades = {g.name: g for g in gb.find_submission_notebook(gc.NOTEBOOK, A, "replace-kflib").grades}
        assert (grades["test_cv_model"].auto_score, grades["test_cv_model"].manual_score) == (2.0, 0.0)
        assert grades["test_cv_model"].score == 0.0
        sub = gb.find_submission_notebook(gc.NOTEBOOK, A, "delete-tests")
        assert sub.score == 10.0


# --------------------------------------------------------------------------
# feedback


def body_text(path: Path) -> str:
    """The visible text of a feedback page (no CSS, no scripts, tags removed)."""
    raw = path.read_text()
    raw = re.sub(r"<(style|script)\b.*?</\1>", "", raw, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def reference_strings() -> set[str]:
    """The spec's expected values for the hidden inputs, as they would be printed."""
    s = spec.load(A)
    release_text = squash((ROOT / "exercises" / A / f"{gc.NOTEBOOK}.ipynb").read_text())
    found = set()
    for part in s.parts:
        for case in part.cases():
            if "visible" in case.label:
                continue
            for value in case.expect.values():
                for v in np.ravel(np.asarray(value, dtype=float)):
                    if not np.isfinite(v) or abs(v - round(v, 3)) < 1e-9 or abs(v) < 1e-3:
                        continue
                    mantissa = f"{abs(v):.12e}"
                    digits = mantissa[0] + mantissa[2:7]                   # 6 significant digits, cut
                    for text in (mantissa[:7], _fixed_prefix(abs(v), digits)):
                        if text not in release_text:
                            found.add(text)
    return found


def _fixed_prefix(v: float, digits: str) -> str:
    exp = int(np.floor(np.log10(v)))
    if exp >= 0:
        return digits[:exp + 1] + "." + digits[exp + 1:] if exp + 1 < len(digits) else digits
    return "0." + "0" * (-exp - 1) + digits


def test_feedback_for_every_submission(run):
    for student in [c.student for c in gc.cases()] + [ARCHIVE_STUDENT]:
        page = run.root / "grading" / "feedback" / student / A / f"{gc.NOTEBOOK}.html"
        assert page.is_file(), student


def test_feedback_shows_scores_and_messages(run):
    text = body_text(run.root / "grading" / "feedback" / "patch-allclose" / A / f"{gc.NOTEBOOK}.html")
    assert "Score: 8 / 10" in text and "(Score: 8.0 / 10.0)" in text
    assert "constant_velocity_model(dt, q, r): 0 / 2 points" in text
    assert "Q is wrong" in text
    text = body_text(run.root / "grading" / "feedback" / "kflib-reference" / A / f"{gc.NOTEBOOK}.html")
    assert "kflib.models.constant_velocity" in text and "switched off while grading" in text
    text = body_text(run.root / "grading" / "feedback" / "corrupt-notebook" / A / f"{gc.NOTEBOOK}.html")
    assert "could not be graded" in text and "Score: 0 / 10" in text


def test_feedback_has_no_hidden_tests_and_no_expected_values(run):
    a = course.load_assignment(ROOT, A)
    release_text = squash(nbformat.writes(a.release))
    hidden = [squash(ln) for ln in a.hidden_test_lines()
              if len(ln) >= 20 and squash(ln) not in release_text]
    assert len(hidden) > 30
    refs = reference_strings()
    assert len(refs) > 100
    # the check itself works: nbgrader's own autograded notebooks hold hidden tests
    leaky = squash(json.dumps(json.loads((run.root / "grading" / "autograded" / "patch-allclose" / A
                                          / f"{gc.NOTEBOOK}.ipynb").read_text())))
    assert any(h in leaky for h in hidden)
    pages = sorted((run.root / "grading" / "feedback").rglob("*.html"))
    assert len(pages) == len(gc.cases()) + 1
    for page in pages:
        text = squash(body_text(page))
        raw = page.read_text()
        for line in hidden:
            assert line not in text, f"{page}: hidden test line {line!r}"
        assert "HIDDEN TESTS" not in raw and "_hidden_tests" not in raw, page
        leaked = [r for r in refs if r in text]
        assert not leaked, f"{page}: expected values {leaked[:5]}"


# --------------------------------------------------------------------------
# the pieces, without nbgrader


def sandboxed_python(code: str, tmp_path: Path, **kw) -> tuple[int | None, str]:
    mode, _ = sandbox.detect()
    os.chmod(tmp_path, 0o755)
    script = tmp_path / "probe.py"
    script.write_text(code)
    os.chmod(script, 0o644)
    outfile = tmp_path / "out"
    with open(outfile, "wb") as fh:
        res = sandbox.Sandbox(mode, ro=[tmp_path]).run(
            [sys.executable, "-I", str(script), str(ROOT)], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
            limits=sandbox.Limits(**kw), stdout=fh)
    return res.returncode, outfile.read_text()


def test_isolation_does_not_depend_on_how_python_was_started(tmp_path):
    """Started by a relative path (`../.venv/bin/python`), the grader still isolates."""
    mode, why = sandbox.detect("auto")
    if mode == "none":
        pytest.skip(f"no isolation on this machine: {why}")
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
            "from grader import sandbox; print(sandbox.detect('auto')[0])")
    rel = os.path.relpath(sys.executable, tmp_path)
    assert not os.path.isabs(rel)
    res = subprocess.run([rel, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == mode


def test_sandbox_hides_the_course_and_the_network(tmp_path):
    mode, why = sandbox.detect()
    if mode == "none":
        pytest.skip(f"no namespace isolation here: {why}")
    code, out = sandboxed_python(
        "import os, socket, subprocess, sys\n"
        "root = sys.argv[1]\n"
        "print('solutions', os.path.exists(os.path.join(root, 'solutions')))\n"
        "print('grading', os.path.exists(os.path.join(root, 'grading')))\n"
        "print('tests', os.path.exists(os.path.join(root, 'tests')))\n"
        "try:\n    socket.create_connection(('192.0.2.1', 80), timeout=1); print('net True')\n"
        "except OSError:\n    print('net False')\n"
        "try:\n    open('/etc/kfgrade-probe', 'w'); print('write True')\n"
        "except OSError:\n    print('write False')\n"
        "r = subprocess.run(['umount', '-l', '/etc'], capture_output=True)\n"
        "print('umount', r.returncode == 0)\n"
        "print('pids', sorted(int(p) for p in os.listdir('/proc') if p.isdigit())[:3])\n",
        tmp_path, wall=60)
    assert code == 0, out
    for line in ("solutions False", "grading False", "tests False", "net False", "write False",
                 "umount False"):
        assert line in out, out
    assert re.search(r"pids \[1[,\]]", out), out      # its own PID namespace: the probe is PID 1


def test_sandbox_limits_memory_and_time(tmp_path):
    code, out = sandboxed_python(
        "try:\n    x = bytearray(3 << 30)\n    print('allocated')\nexcept MemoryError:\n    print('MemoryError')\n",
        tmp_path, memory=1 << 30, wall=60)
    assert "MemoryError" in out, out
    code, out = sandboxed_python("while True:\n    pass\n", tmp_path, wall=3)
    assert code is None                             # killed by the wall clock


def test_kflib_copy_has_tripwires_not_code(tmp_path):
    trusted.build_kflib_copy(tmp_path, ["kflib.models.constant_velocity", "kflib.kalman_filter"])
    models = (tmp_path / "kflib" / "models.py").read_text()
    assert "def constant_velocity" not in models and "kflib.models.constant_velocity" in models
    assert "def kalman_filter" not in (tmp_path / "kflib" / "filter.py").read_text()
    probe = ("import importlib, sys\n"
             f"sys.path.insert(0, {str(tmp_path)!r})\n"
             "import kflib, kflib.models, kflib.filter\n"
             "importlib.reload(kflib.filter)\n"
             "for f in (kflib.models.constant_velocity, kflib.kalman_filter, kflib.filter.kalman_filter):\n"
             "    try:\n        f(1, 1, 1)\n    except kflib._tripwire.ReferenceCallBlocked as e:\n"
             "        print('blocked', e)\n"
             "print(kflib.models.local_level(1, 1).n, kflib._tripwire.HITS)\n")
    out = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.stdout.count("blocked") == 3, out.stdout + out.stderr
    assert "1 ['kflib.models.constant_velocity', 'kflib.filter.kalman_filter'" in out.stdout


def test_spec_forbidding_an_unknown_function_fails(tmp_path):
    with pytest.raises(ValueError, match="does not have"):
        trusted.build_kflib_copy(tmp_path, ["kflib.models.no_such_function"])


@pytest.mark.parametrize("raw", [
    None, [], {"x": [1, 2]}, {"x": {"shape": [2], "data": [1.0]}},
    {"x": {"shape": [-1], "data": []}}, {"x": {"shape": [1], "data": ["1"]}},
    {"x": {"shape": [1], "data": [True]}}, {"x": {"shape": [10**9], "data": []}},
    {"x": {"shape": [1], "data": [[1.0]]}},
])
def test_child_output_is_checked(raw):
    with pytest.raises(ValueError):
        trusted.decode_outputs(raw)


def test_child_output_round_trip():
    arr = np.array([[1.0, np.nan], [np.inf, -2.5]])
    out = trusted.decode_outputs(json.loads(json.dumps({"a": trusted.encode(arr)})))
    np.testing.assert_array_equal(out["a"], arr)


def test_test_cells_are_found_by_source_not_metadata():
    a = course.load_assignment(ROOT, A)
    nb = gc.with_answers()
    for cell in nb.cells:                                # lie in every cell's metadata
        if "nbgrader" in cell.metadata:
            cell.metadata["nbgrader"]["grade"] = False
            cell.metadata["nbgrader"]["grade_id"] = "x"
    moved = gc.test_cell(gc.with_answers(), "test_prior")
    moved = nbformat.from_dict(json.loads(json.dumps(moved)))
    moved.id = "a-copy"
    nb.cells.append(moved)
    sub = course.Submission(A, "s", Path("."), cells=course.parse_cells(nbformat.writes(nb).encode()))
    lay = course.layout(sub, a)
    calls = [st["part"] for st in lay.steps if st["kind"] == "call"]
    assert calls == ["cv_model", "simulate", "prior", "arima"]
    run_sources = " ".join(st["source"] for st in lay.steps if st["kind"] == "cell")
    assert "_visible_tests" not in run_sources              # test cells are not student code
    assert any("appears twice" in c for c in lay.test_changes)


def test_unreadable_notebooks():
    for data, why in [(b"", "JSON"), (b"\xff\xfe", "UTF-8"), (b"[1, 2]", "cells"), (b'{"cells": 3}', "cells")]:
        with pytest.raises(ValueError, match=why):
            course.parse_cells(data)


# --------------------------------------------------------------------------
# every assignment spec against the course's own test submissions


def spec_assignments() -> list[str]:
    return sorted(p.name for p in (ROOT / "solutions").iterdir()
                  if p.is_dir() and spec.load(p.name) is not None)


@pytest.mark.parametrize("assignment", spec_assignments())
def test_spec_agrees_with_test_submissions(tmp_path, assignment):
    """The instructor's solution and alternative.py score full marks in the trusted check;
    each wrong.py / wrong_hidden.py block loses exactly its part."""
    import concurrent.futures as cf

    a = course.load_assignment(ROOT, assignment)
    s = spec.load(assignment)
    mode, _ = sandbox.detect()
    checker = trusted.TrustedChecker(a, s, tmp_path / "work",
                                     trusted.Settings(isolation=mode, cell_timeout=20, call_timeout=20))
    src = nbformat.read(ROOT / "solutions" / assignment / f"{a.notebook}.ipynb", 4)
    correct = {course.nbgrader_meta(c)["grade_id"]: "\n".join(
        ln for ln in c.source.splitlines() if ln.strip() not in gc.SOLUTION_MARKERS)
        for c in src.cells if course.is_answer(course.nbgrader_meta(c))}
    folder = ROOT / "tests" / "submissions" / assignment
    subs = {"solution": (src, None)}

    def frag(name):
        text = (folder / name).read_text()
        marks = list(gc.ANSWER_MARK.finditer(text))
        return {m["grade_id"]: text[m.end():(n.start() if n else len(text))].strip("\n") + "\n"
                for m, n in zip(marks, marks[1:] + [None])}

    def fill(answers):
        nb = nbformat.from_dict(json.loads(json.dumps(a.release)))
        for cell in nb.cells:
            gid = course.nbgrader_meta(cell).get("grade_id")
            if course.is_answer(course.nbgrader_meta(cell)) and gid in answers:
                cell.source = answers[gid]
        return nb

    if (folder / "alternative.py").exists():
        subs["alternative"] = (fill(frag("alternative.py")), None)
    for name in ("wrong.py", "wrong_hidden.py"):
        if (folder / name).exists():
            for gid, code in frag(name).items():
                subs[f"{name[:-3]}-{gid}"] = (fill({**correct, gid: code}), gid)

    def grade(item):
        student, (nb, wrong) = item
        d = tmp_path / "subs" / student
        d.mkdir(parents=True)
        nbformat.write(nb, d / f"{a.notebook}.ipynb")
        return student, wrong, checker.check(course.read_submission(d, a, student))

    with cf.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(grade, subs.items()))
    for student, wrong, res in results:
        assert not res.error, (student, res.error)
        got = {gid: p.points for gid, p in res.parts.items()}
        want = {gid: (0.0 if gid == wrong else part.points) for gid, part in a.parts.items()}
        assert got == want, (student, {g: (p.summary, p.details) for g, p in res.parts.items()})
        # a wrong part may be wrong by calling what its hidden tests switch off (say
        # ps04's lag_one through kflib.rts_smoother): flagged for that part, nothing else
        allowed = {("reference-call", wrong)} if wrong else set()
        assert not [f for f in res.flags if f[0] != "test-cells-modified"
                    and (f[0], f[1].split(":")[0].removeprefix("part ")) not in allowed], (student, res.flags)


# --------------------------------------------------------------------------
# functions outside kflib switched off per part: ps03's DARE solver


PS03_DARE_TRICKS = {
    # (a): a plain call of scipy's DARE solver, which the hidden tests of (a) switch off
    "ll_steady": '''
def local_level_steady_state(q, r):
    P = scipy.linalg.solve_discrete_are(np.ones((1, 1)), np.ones((1, 1)), np.array([[q]]),
                                        np.array([[r]]))[0, 0]
    return P, P / (P + r), r * P / (P + r)
''',
    # (b): the solver captured before any test could switch it off, the answer otherwise
    # right; then its module reloaded, which would bring the real solver back
    "riccati": '''
import importlib
import scipy.linalg._solvers
from scipy.linalg import solve_discrete_are as _dare

def riccati_iterate(F, H, Q, R, P0, n_steps):
    _dare(F.T, H.T, Q, R)
    P, out_P, out_K = np.asarray(P0, dtype=float), [], []
    for _ in range(n_steps):
        P = F @ P @ F.T + Q
        K = np.linalg.solve(H @ P @ H.T + R, H @ P).T
        out_P.append(P)
        out_K.append(K)
        P = P - K @ H @ P
    return np.array(out_P), np.array(out_K)

importlib.reload(scipy.linalg._solvers)
''',
    # (c): the private function that does the work in recent scipy versions
    "steady_gain": '''
import scipy.linalg._solvers as _solvers

def steady_gain(F, H, Q, R, tol=1e-10):
    solve = getattr(_solvers, "_solve_discrete_are", None) or _solvers.solve_discrete_are
    args = (F.T, H.T, Q, R) + ((None, None, True) if solve is not _solvers.solve_discrete_are else ())
    P = solve(*args)
    return P, np.linalg.solve(H @ P @ H.T + R, H @ P).T
''',
    # (d): the DARE solver where the exercise allows it (as tests/submissions' alternative.py)
    "ewma": '''
def ewma_weight(q, r):
    P = scipy.linalg.solve_discrete_are(np.ones((1, 1)), np.ones((1, 1)), np.array([[q]]),
                                        np.array([[r]]))[0, 0]
    return P / (P + r)


def steady_filter(y, q, r, x0):
    a, x, level = ewma_weight(q, r), [], x0
    for obs in y:
        level = (1 - a) * level + a * obs
        x.append(level)
    return np.array(x)
''',
}


def test_ps03_dare_is_switched_off_only_where_the_hidden_tests_do(tmp_path):
    """scipy.linalg.solve_discrete_are is a tripwire in (a)-(c) -- called, captured before,
    through its private implementation, or brought back by reloading its module -- and
    allowed in (d), as in the notebook's hidden tests."""
    name = "ps03-gain"
    a = course.load_assignment(ROOT, name)
    s = spec.load(name)
    mode, _ = sandbox.detect()
    checker = trusted.TrustedChecker(a, s, tmp_path / "work",
                                     trusted.Settings(isolation=mode, cell_timeout=20, call_timeout=20))
    assert len(checker.groups) == 2 and any(g.block for g in checker.groups)
    src = nbformat.read(ROOT / "solutions" / name / f"{a.notebook}.ipynb", 4)
    correct = {course.nbgrader_meta(c)["grade_id"]: "\n".join(
        ln for ln in c.source.splitlines() if ln.strip() not in gc.SOLUTION_MARKERS)
        for c in src.cells if course.is_answer(course.nbgrader_meta(c))}

    nb = nbformat.from_dict(json.loads(json.dumps(a.release)))
    for cell in nb.cells:
        meta = course.nbgrader_meta(cell)
        if course.is_answer(meta):
            cell.source = {**correct, **PS03_DARE_TRICKS}[meta["grade_id"]]
    d = tmp_path / "subs" / "tricks"
    d.mkdir(parents=True)
    nbformat.write(nb, d / f"{a.notebook}.ipynb")
    res = checker.check(course.read_submission(d, a, "tricks"))
    assert not res.error, res.error
    full = {gid: part.points for gid, part in a.parts.items()}
    assert {g: p.points for g, p in res.parts.items()} == {**full, "ll_steady": 0.0, "riccati": 0.0,
                                                           "steady_gain": 0.0}
    flagged = {f[1].split(":")[0] for f in res.flags if f[0] == "reference-call"}
    assert flagged == {"part ll_steady", "part riccati", "part steady_gain"}, res.flags
    assert all("switched off while grading" in res.parts[g].summary
               for g in ("ll_steady", "riccati", "steady_gain"))
    assert any("cannot be loaded again" in n for n in res.notes), res.notes
