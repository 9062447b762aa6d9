"""book/_course.py, the module every chapter imports in its first cell: the plot
style it applies, the numbers glue_number stores for the text, rmse against
hand-computed values, and that every page of the book uses it instead of
pasting its own copy."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"


@pytest.fixture(scope="module")
def course():
    spec = importlib.util.spec_from_file_location("_course", BOOK / "_course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def glued(course, monkeypatch):
    """Records the glue(...) calls glue_number makes."""
    calls = []
    monkeypatch.setattr(course, "glue", lambda name, value, display=True: calls.append((name, value, display)))
    return calls


def test_the_style_is_applied_to_new_figures(course):
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        assert not matplotlib.rcParams["axes.grid"]
        course.use_book_style()
        fig, ax = plt.subplots()
        try:
            assert tuple(fig.get_size_inches()) == pytest.approx((9, 3.4))
            assert fig.dpi == 110
            assert not ax.spines["top"].get_visible() and not ax.spines["right"].get_visible()
            assert ax.spines["left"].get_visible()
            gridlines = ax.xaxis.get_gridlines() + ax.yaxis.get_gridlines()
            assert gridlines and all(line.get_visible() for line in gridlines)
            assert {line.get_alpha() for line in gridlines} == {0.3}
        finally:
            plt.close(fig)
    assert not matplotlib.rcParams["axes.grid"], "rc_context should undo the style"


@pytest.mark.parametrize("value, expected", [
    (np.int64(13), 13),
    (np.float64(0.125), 0.125),
    (np.float32(0.5), 0.5),
    (np.bool_(True), True),
    (np.array(2.5), 2.5),
    (np.array([7]), 7),
    (3, 3),
    (0.1, 0.1),
])
def test_glue_number_stores_a_plain_python_number(course, glued, value, expected):
    course.glue_number("x", value)
    assert len(glued) == 1
    name, stored, display = glued[0]
    assert name == "x" and display is False
    assert stored == expected and type(stored) is type(expected)
    assert repr(stored) == repr(expected)       # what the text shows: 13, not np.int64(13)


def test_glue_number_keeps_every_digit(course, glued):
    value = np.float64(1) / 3
    course.glue_number("third", value)
    assert glued[0][1] == 1 / 3
    assert f"{glued[0][1]:.2f}" == "0.33" and f"{glued[0][1]:.1%}" == "33.3%"


@pytest.mark.parametrize("value, message", [
    (np.array([1.0, 2.0]), "one number"),
    ("0.5", "must be a number"),
    ([1.0], "must be a number"),
    (None, "must be a number"),
    (np.complex128(1 + 2j), "real number"),
])
def test_glue_number_refuses_what_is_not_one_real_number(course, glued, value, message):
    with pytest.raises(TypeError, match=message):
        course.glue_number("x", value)
    assert not glued


def test_glue_number_needs_a_name(course, glued):
    for name in ("", None, 3):
        with pytest.raises(TypeError, match="name"):
            course.glue_number(name, 1.0)
    assert not glued


def test_rmse_matches_hand_computed_values(course):
    estimate = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 4.0]])
    truth = np.array([[1.0, 0.0, 3.0], [0.0, 0.0, 0.0]])
    # squared errors: [0, 4, 0] and [0, 0, 16]
    assert course.rmse(estimate, truth) == pytest.approx(math.sqrt(20 / 6))
    np.testing.assert_allclose(course.rmse(estimate, truth, axis=-1), [math.sqrt(4 / 3), math.sqrt(16 / 3)])
    np.testing.assert_allclose(course.rmse(estimate, truth, axis=0), [0.0, math.sqrt(2), math.sqrt(8)])
    assert course.rmse([3.0, 4.0], 0.0) == pytest.approx(math.sqrt(12.5))      # broadcasts
    assert course.rmse(estimate, estimate) == 0.0


PAGES = sorted(BOOK.glob("0*-*.md")) + [BOOK / "appendix-interview.md"]
CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```\s*$", re.M | re.S)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_every_page_imports_the_helpers_instead_of_pasting_them(page):
    code = CODE_CELL.findall(page.read_text())
    assert code, f"{page.name} has no code cells"
    assert "from _course import" in code[0] and "use_book_style()" in code[0], \
        f"{page.name}: the first code cell should import _course and apply the style"
    pasted = [src for src in code if "rcParams.update" in src or re.search(r"^def (glue_number|rmse)\(", src, re.M)]
    assert not pasted, f"{page.name} pastes a helper that _course.py provides:\n{pasted[0][:200]}"
