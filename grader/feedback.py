"""The notebooks `nbgrader generate_feedback` turns into each student's feedback HTML.

nbgrader's own feedback renders the autograded notebook: the hidden tests,
their tracebacks (with expected values) and whatever the student's code
printed while they ran. Instead the grader builds, for each submission, a
notebook from trusted parts only:

* the RELEASE notebook's cells (text, visible tests -- never the hidden ones);
* the student's answer cells (their own source), without outputs;
* under each test cell, one output: the trusted check's score and message for
  that part (scores and what is wrong, never expected values);

and generate_feedback adds the scores per cell from the gradebook, where the
trusted scores are. Everything a student wrote goes into code cells or plain
text outputs, which the HTML escapes.
"""

from __future__ import annotations

import copy

import nbformat

from .course import HIDDEN, Assignment, Layout, Submission, is_answer, is_autograder_test, nbgrader_meta


def build(assignment: Assignment, sub: Submission | None, lay: Layout | None,
          messages: dict[str, str], header: str) -> nbformat.NotebookNode:
    """messages: answer grade_id -> text shown under that part's test cell.
    header: plain text shown first (fixed wording and numbers only)."""
    release = assignment.release
    nb = nbformat.v4.new_notebook(metadata=copy.deepcopy(dict(release.metadata)))
    intro = nbformat.v4.new_code_cell(source="# Feedback on your submission (trusted grading)")
    intro.outputs = [nbformat.v4.new_output("stream", name="stdout", text=header)]
    nb.cells.append(intro)
    shown: set[str] = set()
    for rcell in release.cells:
        meta = nbgrader_meta(rcell)
        cell = copy.deepcopy(rcell)
        cell.pop("attachments", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        if is_answer(meta):
            gid = meta["grade_id"]
            idx = lay.answers.get(gid) if lay else None
            if sub is not None and idx is not None:
                cell.source = HIDDEN.sub("", sub.cells[idx]["source"])
            else:
                cell.source = ("# (this answer was not found in your notebook)"
                               if cell.cell_type == "code" else "(this answer was not found in your notebook)")
        elif is_autograder_test(meta):
            part = assignment.part_of_test(meta["grade_id"])
            if part and part not in shown:
                shown.add(part)
                text = messages.get(part, "")
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text + "\n")]
        nb.cells.append(cell)
    return nb


def part_message(summary: str, details: list[str]) -> str:
    lines = ["Trusted check: " + summary]
    lines += ["  - " + d for d in details]
    return "\n".join(lines)


def header_text(assignment: Assignment, rows: list[tuple[str, float, float, str]], problem: str) -> str:
    """rows: (part, points, max, one-line result)."""
    lines = []
    if problem:
        lines.append(f"Your submission could not be graded: {problem}")
        lines.append("")
    total = sum(r[1] for r in rows)
    maximum = sum(r[2] for r in rows)
    lines.append(f"Score: {total:g} / {maximum:g}")
    for gid, pts, mx, result in rows:
        lines.append(f"  {gid:<16} {pts:g} / {mx:g}   {result}")
    lines.append("")
    lines.append("Each part is checked by calling your functions on many inputs, including "
                 "ones you have not seen, and comparing the results with the course library.")
    return "\n".join(lines)

