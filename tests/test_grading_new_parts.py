"""The graded parts added for forecasting (ps08 (e)) and the NIS consistency test
(ps09 (e)) grade correctly through `make grade` (grader.pipeline.run): the
instructor's answers get full marks from the trusted check and from nbgrader,
another correct answer full marks, and each typical mistake of
tests/submissions/<assignment>/wrong.py loses exactly that part's points.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import grading_cases as gc                      # noqa: E402

from grader import course, pipeline             # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NEW = {"ps08-structural": "forecast", "ps09-anomaly": "consistency"}
pytestmark = [pytest.mark.xdist_group("grading-scale"), pytest.mark.slow]


def fragments(assignment: str, name: str) -> dict[str, str]:
    text = (ROOT / "tests" / "submissions" / assignment / name).read_text()
    marks = list(gc.ANSWER_MARK.finditer(text))
    return {m["grade_id"]: text[m.end():(n.start() if n else len(text))].strip("\n") + "\n"
            for m, n in zip(marks, marks[1:] + [None])}


def notebook(a: course.Assignment, answers: dict[str, str]):
    nb = nbformat.from_dict(json.loads(json.dumps(a.release)))
    for cell in nb.cells:
        gid = course.nbgrader_meta(cell).get("grade_id")
        if course.is_answer(course.nbgrader_meta(cell)) and gid in answers:
            cell.source = answers[gid]
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("new-parts")
    shutil.copy2(ROOT / "nbgrader_config.py", root)
    assignments = {}
    for name, part in NEW.items():
        for folder in ("solutions", "exercises"):
            shutil.copytree(ROOT / folder / name, root / folder / name)
        a = course.load_assignment(ROOT, name)
        assignments[name] = a
        correct = {gid: "\n".join(ln for ln in c.source.splitlines() if ln.strip() not in gc.SOLUTION_MARKERS)
                   for c in a.source.cells
                   for gid in [course.nbgrader_meta(c).get("grade_id")] if course.is_answer(course.nbgrader_meta(c))}
        students = {"solution": correct,
                    "alternative": {**correct, part: fragments(name, "alternative.py")[part]},
                    "wrong": {**correct, part: fragments(name, "wrong.py")[part]},
                    "wrong-hidden": {**correct, part: fragments(name, "wrong_hidden.py")[part]}}
        for student, answers in students.items():
            d = root / "grading" / "submitted" / student / name
            d.mkdir(parents=True)
            nbformat.write(notebook(a, answers), d / f"{a.notebook}.ipynb")
    out = io.StringIO()
    summary = pipeline.run(pipeline.Options(root=root, jobs=2, timeout=30), out=pipeline.Out(out))
    return summary, assignments, out.getvalue()


@pytest.mark.parametrize("name", sorted(NEW))
def test_new_parts_grade_correctly(graded, name):
    summary, assignments, out = graded
    a, part = assignments[name], NEW[name]
    full = a.max_score
    for student in ("solution", "alternative"):
        row = summary.row(name, student)
        assert (row.status, row.trusted_score) == ("graded", full), (student, row.as_csv())
        assert row.part_trusted[part] == a.parts[part].points > 0
    row = summary.row(name, "solution")
    assert row.nbgrader_score == full and "disagree" not in row.flag_codes, row.as_csv()
    for student in ("wrong", "wrong-hidden"):
        row = summary.row(name, student)
        assert row.trusted_score == full - a.parts[part].points, (student, row.as_csv())
        assert row.part_trusted[part] == 0, (student, row.as_csv())
        assert all(pts == a.parts[g].points for g, pts in row.part_trusted.items() if g != part)
    # the visible tests pass for wrong-hidden: only nbgrader's hidden tests and the trusted
    # check catch it
    assert summary.row(name, "wrong-hidden").nbgrader_score == full - a.parts[part].points
    assert not summary.failures, out[-2000:]
