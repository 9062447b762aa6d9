"""The exercises and their grading, through nbgrader's own commands.

Everything runs in a temporary copy of the course (nbgrader_config.py,
solutions/, exercises/, tools/), never in the repository's grading/ folder:

1. `tools/make_exercises.py` (nbgrader generate_assignment) regenerates
   exercises/ from solutions/; the result must equal the committed exercises/.
2. Submissions made from the committed release notebooks are autograded with
   one `nbgrader autograde` call per assignment, and the scores are read from
   the gradebook (nbgrader's exit code is 1 whenever a submission fails a test,
   so it says nothing here):
   - the solution notebook itself scores full marks;
   - the untouched release notebook scores zero;
   - a second correct solution, written differently
     (tests/submissions/<assignment>/alternative.py), scores full marks;
   - a submission with exactly one part wrong (wrong.py: mistakes the visible
     tests catch; wrong_hidden.py: mistakes only the hidden tests catch;
     wrong_dimensions.py: mistakes that show only with n >= 3, m >= 2 or an odd
     period, which the visible tests catch too) loses exactly that part's points
     and keeps every other part's.

3. `nbgrader validate`, the student's own check, fails the untouched release,
   passes a correct answer and passes the wrong_hidden.py submissions.
4. The instructor's answers agree with an independent reference (statsmodels).

Submissions are source fragments: in tests/submissions/<assignment>/*.py each
block after a line `# %% answer: <grade_id>` replaces the answer cell with that
nbgrader grade_id.
"""

from __future__ import annotations

import difflib
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SUBMISSIONS = ROOT / "tests" / "submissions"
SOLUTION_BEGIN = "### BEGIN SOLUTION"
SOLUTION_END = "### END SOLUTION"
ANSWER_MARK = re.compile(r"^# %% answer: (?P<grade_id>[A-Za-z0-9_-]+)[ \t]*$", re.MULTILINE)
# The session fixtures below generate and grade once; under pytest-xdist keep
# this module on one worker (`--dist loadgroup`) so that they run once.
pytestmark = [pytest.mark.xdist_group("nbgrader"), pytest.mark.slow]
# Submissions with one part wrong: (student id prefix, file). wrong_dimensions.py holds
# mistakes that show only with n >= 3, m >= 2 or an odd period (the visible tests catch them).
WRONG_FILES = (("wrong", "wrong.py"), ("hidden", "wrong_hidden.py"), ("dims", "wrong_dimensions.py"))
# One autograde call grades every submission of an assignment; allow a few
# seconds per notebook (kernel start-up plus the tests) and then some.
AUTOGRADE_TIMEOUT = 900


# --------------------------------------------------------------------------
# helpers


def assignments() -> list[str]:
    """Every assignment in solutions/ (a folder holding a notebook)."""
    return sorted(p.name for p in (ROOT / "solutions").iterdir()
                  if p.is_dir() and any(p.glob("*.ipynb")))


def nbgrader_env() -> dict[str, str]:
    """nbgrader runs `alembic` by name: put this interpreter's bin/ first on PATH."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=nbgrader_env(), capture_output=True,
                          text=True, timeout=timeout)


def nbgrader(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "nbgrader", *args], cwd, timeout)


def copy_course(dest: Path) -> Path:
    """Copy what nbgrader needs of the course into dest (no grading/)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "nbgrader_config.py", dest / "nbgrader_config.py")
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    for folder in ("solutions", "exercises", "tools"):
        if (ROOT / folder).exists():
            shutil.copytree(ROOT / folder, dest / folder, ignore=ignore)
    return dest


def notebook_name(assignment: str) -> str:
    """The one notebook of an assignment (the grading tests assume one)."""
    found = sorted(p.stem for p in (ROOT / "solutions" / assignment).glob("*.ipynb"))
    assert len(found) == 1, f"solutions/{assignment}/ must hold exactly one notebook; found {found}"
    return found[0]


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def answer_cells(nb) -> dict[str, object]:
    """Autograded-answer cells (solution, not graded) by grade_id, in order."""
    return {nbgrader_meta(c)["grade_id"]: c for c in nb.cells
            if nbgrader_meta(c).get("solution") and not nbgrader_meta(c).get("grade")}


def parts(nb) -> dict[str, list[str]]:
    """Each answer cell's grade_id -> the grade (test) cells after it, up to the next answer."""
    result: dict[str, list[str]] = {}
    current = None
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if meta.get("solution") and not meta.get("grade"):
            current = meta["grade_id"]
            result[current] = []
        elif meta.get("grade"):
            assert current is not None, f"grade cell {meta['grade_id']} comes before any answer cell"
            result[current].append(meta["grade_id"])
    return result


def solution_code(source: str) -> str:
    """An answer cell of the solution notebook as a student would write it (markers removed)."""
    return "\n".join(line for line in source.splitlines()
                     if line.strip() not in (SOLUTION_BEGIN, SOLUTION_END))


def read_fragments(path: Path) -> dict[str, str]:
    """grade_id -> code from a submission file (blocks after `# %% answer: <grade_id>`)."""
    text = path.read_text()
    marks = list(ANSWER_MARK.finditer(text))
    assert marks, f"{path} has no '# %% answer: <grade_id>' line"
    fragments = {}
    for mark, following in zip(marks, marks[1:] + [None]):
        end = following.start() if following else len(text)
        grade_id = mark["grade_id"]
        assert grade_id not in fragments, f"{path}: answer {grade_id} given twice"
        fragments[grade_id] = text[mark.end():end].strip("\n") + "\n"
    return fragments


def fill(release_nb, answers: dict[str, str]):
    """A copy of the release notebook with the given answer cells replaced."""
    nb = nbformat.from_dict(json.loads(json.dumps(release_nb)))
    cells = answer_cells(nb)
    unknown = set(answers) - set(cells)
    assert not unknown, f"no answer cells {sorted(unknown)} in the release notebook; it has {list(cells)}"
    for grade_id, code in answers.items():
        cells[grade_id].source = code
    return nb


# --------------------------------------------------------------------------
# 1. exercises/ is exactly what nbgrader generates from solutions/


@pytest.fixture(scope="session")
def course(tmp_path_factory) -> Path:
    """A copy of the course whose exercises/ was regenerated by tools/make_exercises.py.

    Its gradebook then knows every assignment, ready for autograding.
    """
    root = copy_course(tmp_path_factory.mktemp("course"))
    shutil.rmtree(root / "exercises", ignore_errors=True)
    proc = run([sys.executable, "tools/make_exercises.py"], root, timeout=1200)
    assert proc.returncode == 0, f"make_exercises failed:\n{proc.stdout}\n{proc.stderr}"
    return root


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")
            if p.is_file() and ".ipynb_checkpoints" not in p.parts and "__pycache__" not in p.parts}


def describe_notebook_difference(committed: Path, generated: Path) -> str:
    """Where two notebooks differ, cell by cell, for the failure message."""
    a, b = nbformat.read(committed, 4), nbformat.read(generated, 4)
    lines = []
    if a.metadata != b.metadata:
        lines.append(f"notebook metadata differs: {dict(a.metadata)} vs {dict(b.metadata)}")
    if len(a.cells) != len(b.cells):
        lines.append(f"{len(a.cells)} cells committed, {len(b.cells)} generated")
    for i, (ca, cb) in enumerate(zip(a.cells, b.cells)):
        if ca != cb:
            if ca.get("source") != cb.get("source"):
                old, new = ca.get("source", "").splitlines(), cb.get("source", "").splitlines()
            else:
                old, new = (json.dumps({k: v for k, v in c.items() if k != "source"},
                                       indent=1, sort_keys=True).splitlines() for c in (ca, cb))
            diff = difflib.unified_diff(old, new, "committed", "generated", lineterm="", n=1)
            lines.append(f"cell {i} ({ca.get('id')}) differs:\n" + "\n".join(list(diff)[:40]))
            break
    return "\n".join(lines) or "the files differ in formatting only"


def test_every_assignment_is_released():
    released = sorted(p.name for p in (ROOT / "exercises").iterdir() if p.is_dir())
    assert released == assignments(), (
        "exercises/ must hold one folder per assignment in solutions/; "
        "run `python tools/make_exercises.py` (make exercises)")


@pytest.mark.parametrize("assignment", assignments())
def test_exercises_equal_generated(course, assignment):
    committed, generated = ROOT / "exercises" / assignment, course / "exercises" / assignment
    assert files_under(committed) == files_under(generated), (
        f"exercises/{assignment}/ has other files than nbgrader generates; "
        "run `python tools/make_exercises.py`")
    for name in sorted(files_under(generated)):
        if not filecmp.cmp(committed / name, generated / name, shallow=False):
            detail = (describe_notebook_difference(committed / name, generated / name)
                      if name.endswith(".ipynb") else "")
            pytest.fail(f"exercises/{assignment}/{name} is not what nbgrader generates from "
                        f"solutions/; run `python tools/make_exercises.py`.\n{detail}")


@pytest.mark.parametrize("assignment", assignments())
def test_release_hides_solutions_and_hidden_tests(assignment):
    for path in (ROOT / "exercises" / assignment).glob("*.ipynb"):
        text = path.read_text()
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert marker not in text, f"{path.name} contains {marker!r}"
        assert "raise NotImplementedError()" in text


@pytest.mark.parametrize("assignment", assignments())
def test_every_assignment_has_test_submissions(assignment):
    """DESIGN: each assignment is tested with a second correct solution and wrong ones."""
    folder = SUBMISSIONS / assignment
    source = nbformat.read(ROOT / "solutions" / assignment / f"{notebook_name(assignment)}.ipynb", 4)
    answers = set(answer_cells(source))
    assert answers, f"solutions/{assignment} has no autograded-answer cells"
    alternative = read_fragments(folder / "alternative.py")
    assert set(alternative) == answers, (
        f"{folder}/alternative.py must answer every part {sorted(answers)}; it answers {sorted(alternative)}")
    wrong = read_fragments(folder / "wrong.py")
    assert set(wrong) == answers, (
        f"{folder}/wrong.py must get every part {sorted(answers)} wrong once; it has {sorted(wrong)}")


# --------------------------------------------------------------------------
# 2. grading: one autograde call per assignment, scores from the gradebook


@dataclass
class Graded:
    assignment: str
    parts: dict[str, list[str]]            # answer grade_id -> its test cells
    max_scores: dict[str, float]           # test cell -> points
    scores: dict[str, dict[str, float]]    # student -> test cell -> score
    log: str                               # nbgrader's output, for failure messages

    def of(self, student: str) -> dict[str, float]:
        assert student in self.scores, (
            f"no autograded submission for {student!r} (a dead kernel drops it):\n{self.log[-3000:]}")
        return self.scores[student]


def submissions_for(assignment: str) -> dict[str, object]:
    """student id -> notebook to submit."""
    name = notebook_name(assignment)
    source = nbformat.read(ROOT / "solutions" / assignment / f"{name}.ipynb", 4)
    release = nbformat.read(ROOT / "exercises" / assignment / f"{name}.ipynb", 4)
    correct = {gid: solution_code(cell.source) for gid, cell in answer_cells(source).items()}
    folder = SUBMISSIONS / assignment
    subs = {
        "solution": source,
        "release": release,
        "alternative": fill(release, read_fragments(folder / "alternative.py")),
    }
    for kind, filename in WRONG_FILES:
        if (folder / filename).exists():
            for gid, code in read_fragments(folder / filename).items():
                subs[f"{kind}-{gid}"] = fill(release, {**correct, gid: code})
    return subs


def grade(course: Path, assignment: str) -> Graded:
    from nbgrader.api import Gradebook, MissingEntry

    name = notebook_name(assignment)
    subs = submissions_for(assignment)
    for student, nb in subs.items():
        folder = course / "grading" / "submitted" / student / assignment
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{name}.ipynb")
    proc = nbgrader(["autograde", assignment, "--force"], course, timeout=AUTOGRADE_TIMEOUT)
    log = proc.stdout + proc.stderr

    source = nbformat.read(ROOT / "solutions" / assignment / f"{name}.ipynb", 4)
    max_scores = {nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c)["points"])
                  for c in source.cells if nbgrader_meta(c).get("grade")}
    scores = {}
    db_url = "sqlite:///" + str(course / "grading" / "gradebook.db")
    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = nbgrader_env()["PATH"]
    try:
        with Gradebook(db_url) as gb:
            for student in subs:
                try:
                    submitted = gb.find_submission_notebook(name, assignment, student)
                except MissingEntry:
                    continue
                scores[student] = {g.name: float(g.score) for g in submitted.grades}
    finally:
        os.environ["PATH"] = old_path
    return Graded(assignment, parts(source), max_scores, scores, log)


@pytest.fixture(scope="session")
def graded(course):
    cache: dict[str, Graded] = {}

    def get(assignment: str) -> Graded:
        if assignment not in cache:
            cache[assignment] = grade(course, assignment)
        return cache[assignment]

    return get


def wrong_cases() -> list[tuple[str, str]]:
    cases = []
    for assignment in assignments():
        for kind, filename in WRONG_FILES:
            path = SUBMISSIONS / assignment / filename
            if path.exists():
                cases += [(assignment, f"{kind}-{gid}") for gid in read_fragments(path)]
    return cases


@pytest.mark.parametrize("assignment", assignments())
def test_solution_scores_full_marks(graded, assignment):
    g = graded(assignment)
    assert g.of("solution") == g.max_scores, f"the solution notebook lost points:\n{g.log[-3000:]}"


@pytest.mark.parametrize("assignment", assignments())
def test_untouched_release_scores_zero(graded, assignment):
    g = graded(assignment)
    assert g.of("release") == {cell: 0.0 for cell in g.max_scores}


@pytest.mark.parametrize("assignment", assignments())
def test_alternative_solution_scores_full_marks(graded, assignment):
    g = graded(assignment)
    assert g.of("alternative") == g.max_scores, (
        f"a second correct solution (tests/submissions/{assignment}/alternative.py) lost points")


@pytest.mark.parametrize("assignment,student", wrong_cases())
def test_one_wrong_part_loses_exactly_its_points(graded, assignment, student):
    g = graded(assignment)
    wrong_part = student.split("-", 1)[1]
    assert wrong_part in g.parts, f"{student}: no answer cell {wrong_part} in {assignment}"
    expected = {cell: (0.0 if cell in g.parts[wrong_part] else points)
                for cell, points in g.max_scores.items()}
    assert g.of(student) == expected


# --------------------------------------------------------------------------
# 3. what a student sees: nbgrader validate


@pytest.mark.parametrize("assignment", assignments())
def test_validate_tells_the_student(tmp_path, assignment):
    """What `nbgrader validate` (the student's check) says.

    It fails every test cell of the untouched release, passes the second
    correct solution, and passes the wrong_hidden.py submissions too: their
    mistakes are for the hidden tests to find. Its exit code is 0 either way,
    so the test reads what it prints; one call validates all the notebooks,
    in the order given.
    """
    name = notebook_name(assignment)
    release = nbformat.read(ROOT / "exercises" / assignment / f"{name}.ipynb", 4)
    n_tests = sum(1 for c in release.cells if nbgrader_meta(c).get("grade"))
    notebooks = {"untouched": release,
                 "alternative": fill(release, read_fragments(SUBMISSIONS / assignment / "alternative.py"))}
    hidden = SUBMISSIONS / assignment / "wrong_hidden.py"
    if hidden.exists():
        source = nbformat.read(ROOT / "solutions" / assignment / f"{name}.ipynb", 4)
        correct = {gid: solution_code(cell.source) for gid, cell in answer_cells(source).items()}
        for gid, code in read_fragments(hidden).items():
            notebooks[f"hidden-{gid}"] = fill(release, {**correct, gid: code})
    paths = []
    for label, nb in notebooks.items():
        (tmp_path / label).mkdir()
        nbformat.write(nb, tmp_path / label / f"{name}.ipynb")
        paths.append(f"{label}/{name}.ipynb")
    proc = nbgrader(["validate", *paths], tmp_path)
    out = proc.stdout
    failed = f"VALIDATION FAILED ON {n_tests} CELL(S)!"
    success = "Success! Your notebook passes all the tests."
    assert out.count("VALIDATION FAILED") == 1 and out.count(failed) == 1, out + proc.stderr
    assert out.count(success) == len(notebooks) - 1, out + proc.stderr
    before, report = out.split(success)[0].split(failed)
    assert not before.strip(), out   # the untouched notebook comes first and fails
    assert "NotImplementedError" in report, out


# --------------------------------------------------------------------------
# 4. the instructor's solution against an independent reference


def solution_namespace(assignment: str) -> dict:
    """Run the solution notebook's code cells (not the tests) in a fresh namespace."""
    source = nbformat.read(ROOT / "solutions" / assignment / f"{notebook_name(assignment)}.ipynb", 4)
    namespace: dict = {}
    for cell in source.cells:
        if cell.cell_type == "code" and not nbgrader_meta(cell).get("grade"):
            exec(compile(solution_code(cell.source), f"<{nbgrader_meta(cell).get('grade_id')}>", "exec"),
                 namespace)
    return namespace


@pytest.mark.skipif("ps01-state-space" not in assignments(), reason="no ps01")
def test_ps01_arima_solution_matches_statsmodels():
    """The ARIMA(2,1,1) answer and the visible test's stored numbers agree with SARIMAX."""
    import numpy as np
    import kflib
    from statsmodels.tsa.arima_process import arma_acovf
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    ns = solution_namespace("ps01-state-space")
    # the series and numbers stored in the visible test of part (d)
    y = np.array([6.42, 5.28, 5.89, 4.72, 2.62, 0.49, -1.42, -0.83, -0.43, -0.85, -0.11, 0.11, -0.43])
    sarimax = SARIMAX(y, order=(2, 1, 1), trend="n", simple_differencing=True)
    assert sarimax.smooth([0.5, -0.3, 0.4, 1.5]).llf == pytest.approx(-18.459400655457955, rel=1e-10)
    assert arma_acovf([1, -0.5, 0.3], [1, 0.4], nobs=1, sigma2=1.5)[0] == pytest.approx(159 / 56, rel=1e-12)

    rng = np.random.default_rng(5)
    for phi1, phi2, theta1, sigma2 in [(0.5, -0.3, 0.4, 1.5), (1.2, -0.5, -0.6, 0.3), (-0.2, 0.7, 0.9, 4.0)]:
        e = rng.normal(scale=np.sqrt(sigma2), size=300)
        dy = np.zeros(300)
        for t in range(2, 300):
            dy[t] = phi1 * dy[t - 1] + phi2 * dy[t - 2] + e[t] + theta1 * e[t - 1]
        y = 3.0 + np.cumsum(dy[-81:])
        model = ns["arima211_model"](phi1, phi2, theta1, sigma2, y[0])
        filt = kflib.kalman_filter(model, y[1:, None])
        res = SARIMAX(y, order=(2, 1, 1), trend="n", simple_differencing=True).smooth(
            [phi1, phi2, theta1, sigma2])
        assert filt.loglik == pytest.approx(res.llf, rel=1e-9)
        # one-step predictions of the levels: y_{t-1} + forecast of the difference
        np.testing.assert_allclose((filt.x_pred @ model.H.T)[:, 0], y[:-1] + res.forecasts[0],
                                   rtol=1e-9, atol=1e-9)
