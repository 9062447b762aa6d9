"""The notebooks `nbgrader generate_feedback` turns into each student's feedback HTML.

nbgrader's own feedback renders the autograded notebook: the hidden tests,
their tracebacks (with expected values) and whatever the student's code
printed while they ran. Instead the grader builds, for each submission, a
notebook from trusted parts only:

* the RELEASE notebook's cells (text, visible tests -- never the hidden ones);
* the student's answer cells (their own source), without outputs;
* under each test cell, one output: the trusted check's score and message for
  that part (scores and what is wrong, never expected values) and, for a part
  that failed, the message of the notebook's own visible test that failed in
  nbgrader's run -- only a message written in the release's visible tests,
  matched against them, never other text of that run;

and generate_feedback adds the scores per cell from the gradebook, where the
trusted scores are. The pages then load nothing from the network: nbconvert's
MathJax from a CDN is replaced by the MathJax 3 of sphinx-mathjax-offline (as
the book uses), copied once to grading/feedback/_static/mathjax/. Everything a
student wrote goes into code cells or plain text outputs, which the HTML escapes.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
from pathlib import Path

import nbformat

from .course import HIDDEN, Assignment, Layout, Submission, is_answer, is_autograder_test, nbgrader_meta


def build(assignment: Assignment, sub: Submission | None, lay: Layout | None,
          messages: dict[str, str], header: str) -> nbformat.NotebookNode:
    """messages: answer grade_id -> text shown under that part's test cell.
    header: plain text shown first (fixed wording and numbers only)."""
    release = assignment.release
    nb = nbformat.v4.new_notebook(metadata=copy.deepcopy(dict(release.metadata)))
    intro = nbformat.v4.new_code_cell(source="# Feedback on your submission (trusted grading)")
    intro.id = "trusted-feedback"        # a fixed id: the same result gives the same page
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


def part_message(summary: str, details: list[str], visible: str = "") -> str:
    """visible: the message of the notebook's own visible test that failed ('' if none)."""
    lines = ["Trusted check: " + summary]
    lines += ["  - " + d for d in details]
    if visible:
        lines.append("The visible test in your notebook says:")
        lines += ["  " + ln for ln in visible.splitlines()]
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


# --------------------------------------------------------------------------
# the visible tests' own messages


_PLACEHOLDER = r"[\w(), .+\-\[\]]{0,40}"        # what an f-string's {...} may stand for


def release_messages(source: str) -> list[re.Pattern]:
    """The messages the release's visible test cell can print when it fails: the
    message of every `assert`, and every `err_msg=` / `msg=` string, as patterns
    (an f-string's fields match short numbers and shapes only)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and node.msg is not None:
            found.append(node.msg)
        elif isinstance(node, ast.Call):
            found += [kw.value for kw in node.keywords if kw.arg in ("err_msg", "msg")]
            if isinstance(node.func, ast.Name) and node.func.id == "AssertionError" and node.args:
                found.append(node.args[0])
    patterns = []
    for node in found:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip():
            patterns.append(re.compile(re.escape(node.value)))
        elif isinstance(node, ast.JoinedStr):
            bits = [re.escape(v.value) if isinstance(v, ast.Constant) else _PLACEHOLDER
                    for v in node.values]
            if any(isinstance(v, ast.Constant) and len(v.value.strip()) >= 8 for v in node.values):
                patterns.append(re.compile("".join(bits)))
    return patterns


def visible_messages(assignment: Assignment, autograded: Path | None) -> dict[str, str]:
    """part -> the message of its visible test that failed in nbgrader's run.

    Only the release's own messages are ever taken (matched against the patterns of
    `release_messages`), never other text of that run: student code ran in it and
    can print anything, and the hidden tests' messages may hold expected values."""
    if autograded is None or not autograded.is_file():
        return {}
    try:
        nb = json.loads(autograded.read_text(encoding="utf-8"))
        cells = nb["cells"]
    except Exception:                                  # noqa: BLE001 -- nbgrader's run, untrusted
        return {}
    patterns = {tid: release_messages(src) for tid, src in assignment.release_tests.items()}
    out: dict[str, str] = {}
    for cell in cells if isinstance(cells, list) else []:
        if not isinstance(cell, dict):
            continue
        tid = nbgrader_meta(cell).get("grade_id")
        part = assignment.part_of_test(tid) if isinstance(tid, str) else None
        if part is None or part in out or tid not in patterns:
            continue
        for o in cell.get("outputs") or []:
            if not isinstance(o, dict) or o.get("output_type") != "error":
                continue
            text = str(o.get("evalue", ""))[:20000]
            hits = [m.group(0) for p in patterns[tid] for m in [p.search(text)] if m]
            if hits:
                out[part] = max(hits, key=len).strip()
                break
    return out


# --------------------------------------------------------------------------
# MathJax served beside the feedback, never from a CDN

STATIC = "_static"                             # grading/feedback/_static/mathjax/
_MJ_FILES = ("tex-svg.js", "input/tex/extensions")
_MJ_CONFIG = ("<script>window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], "
              "displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']], processEscapes: true, "
              "processEnvironments: true}};</script>")
_REMOTE_SCRIPT = re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//[^>]*>\s*</script>", re.I)
_MJ2_CONFIG = re.compile(r"<script\b[^>]*type=[\"']text/x-mathjax-config[\"'][^>]*>.*?</script>", re.I | re.S)
_REMOTE_LINK = re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//[^>]*>", re.I)


def mathjax_source() -> Path | None:
    """The MathJax 3 of the sphinx-mathjax-offline package (what the book serves), if installed."""
    from importlib import metadata

    try:
        dist = metadata.distribution("sphinx-mathjax-offline")
    except metadata.PackageNotFoundError:
        return None
    folder = Path(str(dist.locate_file("sphinx-mathjax-offline/static/mathjax")))
    return folder if (folder / "tex-svg.js").is_file() else None


def install_mathjax(feedback_dir: Path) -> Path | None:
    """Copy MathJax (tex-svg.js and the TeX extensions it loads) to
    <feedback_dir>/_static/mathjax/; returns that folder, or None without MathJax."""
    src = mathjax_source()
    if src is None:
        return None
    dest = feedback_dir / STATIC / "mathjax"
    for rel in _MJ_FILES:
        s, d = src / rel, dest / rel
        if s.is_dir():
            shutil.copytree(s, d, dirs_exist_ok=True)
        elif not d.is_file() or d.stat().st_size != s.stat().st_size:
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(s, d)
    for p in [dest, *dest.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dest


def localize(html: str, mathjax_url: str | None) -> str:
    """The page with no script or style sheet from the network: nbconvert's MathJax 2
    from a CDN becomes the local MathJax 3 at mathjax_url (a relative URL), or is
    dropped when there is none (formulas then show as TeX)."""
    html = _MJ2_CONFIG.sub("", html)
    local = (_MJ_CONFIG + f'\n<script defer src="{mathjax_url}"></script>') if mathjax_url else ""
    done = [False]

    def swap(m):
        if "mathjax" in m.group(0).lower() and not done[0]:
            done[0] = True
            return local
        return ""
    html = _REMOTE_SCRIPT.sub(swap, html)
    return _REMOTE_LINK.sub("", html)


def localize_pages(feedback_dir: Path, pages: list[Path]) -> None:
    """Rewrite the given feedback pages (grading/feedback/<student>/<a>/<nb>.html)."""
    mj = install_mathjax(feedback_dir)
    for page in pages:
        rel = None
        if mj is not None:
            rel = Path(*[".."] * (len(page.relative_to(feedback_dir).parts) - 1), STATIC, "mathjax",
                       "tex-svg.js").as_posix()
        text = page.read_text(encoding="utf-8")
        new = localize(text, rel)
        if new != text:
            page.write_text(new, encoding="utf-8")
