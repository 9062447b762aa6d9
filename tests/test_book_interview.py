"""The interview appendix, checked from its source (no book build): it parses,
it is in the table of contents, it has at least 20 questions answered in
dropdowns, every answer links to a section, and every cross-reference points
to a label that exists in the book's pages."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jupytext
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "book" / "appendix-interview.md"

FENCE_OPEN = re.compile(r"^(?P<fence>`{3,}|:{3,})\{dropdown\}")
ROLE = re.compile(r"\{(?P<role>ref|numref)\}`(?P<body>[^`]+)`")
GLUE_USE = re.compile(r"\{glue:text\}`(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::[^`]*)?`")


def dropdowns(text: str) -> list[str]:
    """The bodies of the ```{dropdown} and :::{dropdown} blocks of a MyST page."""
    bodies, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = FENCE_OPEN.match(lines[i].strip())
        if not match:
            i += 1
            continue
        fence = match["fence"]
        close = re.compile(rf"^{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j].strip()):
            j += 1
        assert j < len(lines), f"dropdown opened at line {i + 1} is never closed"
        bodies.append("\n".join(lines[i + 1:j]))
        i = j + 1
    return bodies


def target(body: str) -> str:
    """The label of a {ref}/{numref} role: `label` or `text <label>`."""
    inner = re.search(r"<([^<>]+)>\s*$", body)
    return (inner[1] if inner else body).strip()


def book_labels() -> tuple[set[str], set[str]]:
    """Section labels `(name)=` and figure names (`name:` of a mystnb figure,
    or `:name:` of a figure directive) of every page in book/."""
    sections, figures = set(), set()
    for page in (REPO / "book").glob("*.md"):
        text = page.read_text()
        sections |= set(re.findall(r"^\(([A-Za-z0-9_.:-]+)\)=\s*$", text, flags=re.MULTILINE))
        figures |= set(re.findall(r"^\s+name:\s*(fig-[A-Za-z0-9_-]+)\s*$", text, flags=re.MULTILINE))
        figures |= set(re.findall(r"^:name:\s*([A-Za-z0-9_-]+)\s*$", text, flags=re.MULTILINE))
    return sections, figures


@pytest.fixture(scope="module")
def text() -> str:
    assert PAGE.is_file(), f"missing {PAGE}"
    return PAGE.read_text()


@pytest.fixture(scope="module")
def notebook():
    return jupytext.read(PAGE)


def test_page_parses_and_its_code_is_python(notebook):
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code, "the page has no code cells"
    for cell in code:
        ast.parse(cell.source)          # raises SyntaxError with the cell's line
    assert notebook.metadata["jupytext"]["text_representation"]["format_name"] == "myst"
    assert notebook.metadata["kernelspec"]["name"] == "python3"


def test_page_is_in_the_toc_after_the_performance_appendix():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    appendices = next(p for p in toc["parts"] if p["caption"] == "Appendices")
    files = [c["file"] for c in appendices["chapters"]]
    assert "book/appendix-interview" in files
    assert files.index("book/appendix-interview") == files.index("book/appendix-performance") + 1


def test_at_least_twenty_questions_each_with_a_section_link(text):
    bodies = dropdowns(text)
    assert len(bodies) >= 20, f"only {len(bodies)} dropdown answers"
    no_link = [i + 1 for i, body in enumerate(bodies)
               if not any(m["role"] == "ref" for m in ROLE.finditer(body))]
    assert not no_link, f"answers without a {{ref}} link to a section: {no_link}"


def test_every_reference_points_to_an_existing_label(text):
    sections, figures = book_labels()
    assert "chap-kalman-filter" in sections and "fig-kf-fusion" in figures  # the parser works
    missing = []
    for match in ROLE.finditer(text):
        label = target(match["body"])
        known = figures if match["role"] == "numref" else sections | figures
        if label not in known:
            missing.append(f"{{{match['role']}}}`{match['body']}`")
    assert not missing, "references to labels that no page defines:\n" + "\n".join(missing)


def test_every_glued_number_is_glued_on_the_page(notebook, text):
    """Each {glue:text} name of the text is a string literal of a hidden cell
    (where the page glues it), so a renamed or misspelt name fails here."""
    literals = set()
    for cell in notebook.cells:
        if cell.cell_type == "code" and "remove-cell" in cell.metadata.get("tags", []):
            literals |= {node.value for node in ast.walk(ast.parse(cell.source))
                         if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    used = set(GLUE_USE.findall(text))
    assert used, "the page uses no glued numbers"
    assert not used - literals, f"numbers used in the text but never glued: {sorted(used - literals)}"
    glue_cells = [c for c in notebook.cells if c.cell_type == "code"
                  and re.search(r"\bglue(_number)?\(", c.source) and "def glue_number" not in c.source]
    assert glue_cells and all("remove-cell" in c.metadata.get("tags", []) for c in glue_cells), \
        "glue(...) calls belong in cells tagged remove-cell"


def test_claims_are_asserted_and_figures_have_captions_and_alt_text(notebook):
    hidden = [c for c in notebook.cells
              if c.cell_type == "code" and "remove-cell" in c.metadata.get("tags", [])]
    n_asserts = sum(isinstance(node, ast.Assert)
                    for cell in hidden for node in ast.walk(ast.parse(cell.source)))
    assert n_asserts >= 30, f"only {n_asserts} asserts in hidden cells"
    figures = [c for c in notebook.cells
               if c.cell_type == "code" and "figure" in c.metadata.get("mystnb", {})]
    assert len(figures) >= 2, "the design question should have its figures"
    for cell in figures:
        meta = cell.metadata["mystnb"]
        assert meta["figure"].get("caption") and meta["figure"].get("name"), cell.source[:80]
        assert meta.get("image", {}).get("alt"), f"figure {meta['figure']['name']} has no alt text"
