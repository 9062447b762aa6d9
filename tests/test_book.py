"""The rendered book: it builds without warnings, has every page of the table of
contents, loads nothing from the network, and prints numbers that agree with
an independent computation."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest

from conftest_book import (REPO, built_book, page_assets, page_path,  # noqa: F401
                           page_text, toc_docnames)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("book")]   # needs the built book

DOCNAMES = toc_docnames()
CHAPTER1 = "book/01-state-space"
EXERCISE1 = "exercises/ps01-state-space/ps01-state-space"


def is_remote(url: str) -> bool:
    """True for anything fetched from another machine (http, https, //host)."""
    parts = urlsplit(url)
    return bool(parts.netloc) or parts.scheme not in ("", "file", "data", "blob")


def local_target(page: Path, url: str) -> Path:
    """The file a relative URL on `page` points to (query and fragment dropped)."""
    return (page.parent / unquote(urlsplit(url).path)).resolve()


def all_pages(html_dir: Path) -> list[Path]:
    """The built pages (not the theme's template snippets copied into _static)."""
    skip = {"_static", "_sources", "_downloads", "_images"}
    return sorted(p for p in html_dir.rglob("*.html")
                  if not skip.intersection(p.relative_to(html_dir).parts))


# ---------------------------------------------------------------------------

def test_build_succeeds_without_warnings(built_book):
    # The fixture fails with the build log when the exit code is not 0.
    assert (built_book / "index.html").exists()


def test_toc_names_the_expected_pages():
    assert DOCNAMES[0] == "book/preface"
    for name in (CHAPTER1, EXERCISE1, "book/appendix-instructor", "book/bibliography"):
        assert name in DOCNAMES


@pytest.mark.parametrize("docname", DOCNAMES)
def test_every_toc_page_has_html(built_book, docname):
    assert page_path(built_book, docname).is_file(), f"no HTML page for {docname}"


def test_no_page_loads_scripts_or_styles_from_the_network(built_book):
    problems = []
    for page in all_pages(built_book):
        assets = page_assets(page)
        rel = page.relative_to(built_book)
        for src in assets.scripts:
            if is_remote(src):
                problems.append(f"{rel}: <script src={src!r}>")
            elif not local_target(page, src).is_file():
                problems.append(f"{rel}: <script src={src!r}> has no file")
        for link_rel, href in assets.links:
            if is_remote(href):
                problems.append(f"{rel}: <link rel={link_rel!r} href={href!r}>")
            elif "stylesheet" in link_rel or "preload" in link_rel or "icon" in link_rel:
                if not local_target(page, href).is_file():
                    problems.append(f"{rel}: <link href={href!r}> has no file")
        for src in assets.images:
            if is_remote(src):
                problems.append(f"{rel}: <img src={src!r}>")
    assert not problems, "pages that need the network or miss files:\n" + "\n".join(problems)


CDN_HOSTS = ("unpkg.com", "cdn.jsdelivr.net", "cdnjs.cloudflare.com", "fonts.googleapis.com",
             "fonts.gstatic.com", "googletagmanager.com", "google-analytics.com",
             "plausible.io", "mybinder.org", "hypothes.is", "utteranc.es")


def test_no_page_mentions_a_cdn_or_tracker(built_book):
    """Inline scripts that would fetch code later (Thebe, analytics) are absent too."""
    offenders = []
    for page in all_pages(built_book):
        raw = page.read_text(encoding="utf-8").lower()
        offenders += [f"{page.relative_to(built_book)}: {host}" for host in CDN_HOSTS if host in raw]
    assert not offenders, "pages that refer to remote code:\n" + "\n".join(offenders)


def test_stylesheets_import_nothing_from_the_network(built_book):
    remote = re.compile(r"""(@import\s+(url\()?|url\()\s*['"]?(https?:)?//""")
    offenders = [str(css.relative_to(built_book))
                 for css in built_book.rglob("*.css") if remote.search(css.read_text(errors="replace"))]
    assert not offenders, f"stylesheets that fetch from the network: {offenders}"


def test_mathjax_is_served_locally(built_book):
    pages_with_math = []
    for page in all_pages(built_book):
        assets = page_assets(page)
        mathjax = [s for s in assets.scripts if "mathjax" in s.lower()]
        if assets.has_math:
            pages_with_math.append(page)
            assert mathjax, f"{page.relative_to(built_book)} has math but loads no MathJax"
        for src in mathjax:
            assert not is_remote(src), f"MathJax from the network: {src}"
            target = local_target(page, src)
            assert target.is_file(), f"MathJax file missing: {target}"
            assert target.stat().st_size > 10_000
    assert any(p.name == "01-state-space.html" for p in pages_with_math)
    # The fonts MathJax's CommonHTML output loads at run time must be there too.
    fonts = list((built_book / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff"))
    assert fonts, "MathJax's web fonts were not copied into _static/mathjax"


# --- chapter 1 -------------------------------------------------------------

# The ARIMA(2,1,1) example of chapter 1 (book/01-state-space.md): keep in step.
PHI, THETA, SIGMA2, Y0, T, SEED = (0.6, -0.25), (0.5,), 1.0, 50.0, 300, 7


def _number_after(label: str, text: str) -> float:
    match = re.search(re.escape(label) + r"\s*(-?\d+\.\d+)", text)
    assert match, f"chapter 1 does not print {label!r}"
    return float(match.group(1))


@pytest.fixture(scope="module")
def chapter1_text(built_book):
    return page_text(page_path(built_book, CHAPTER1))


@pytest.fixture(scope="module")
def arima_reference():
    """statsmodels' SARIMAX log-likelihood of the chapter's data: the independent reference."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    from kflib import simulate
    from kflib.models import arima

    model = arima(PHI, THETA, SIGMA2, d=1, y_presample=[Y0])
    _, y = simulate(model, T, rng=np.random.default_rng(SEED))
    y_full = np.concatenate([[Y0], y[:, 0]])
    mod = SARIMAX(y_full, order=(2, 1, 1), trend="n", simple_differencing=True)
    return {
        "loglik": float(mod.loglike(np.r_[PHI, THETA, SIGMA2])),
        "max_loglik": float(mod.fit(disp=False).llf),
    }


def test_chapter1_loglik_agrees_with_statsmodels(chapter1_text, arima_reference):
    ll_kflib = _number_after("log-likelihood, kflib:", chapter1_text)
    ll_sm = _number_after("log-likelihood, statsmodels:", chapter1_text)
    ref = arima_reference["loglik"]
    # printed with 6 decimals
    assert ll_kflib == pytest.approx(ref, abs=2e-6)
    assert ll_sm == pytest.approx(ref, abs=2e-6)


def test_chapter1_maximised_loglik_agrees_with_statsmodels(chapter1_text, arima_reference):
    ll_kflib = _number_after("maximised log-likelihood, kflib:", chapter1_text)
    ll_sm = _number_after("maximised log-likelihood, statsmodels:", chapter1_text)
    assert ll_kflib == pytest.approx(ll_sm, abs=2e-6)
    assert ll_sm == pytest.approx(arima_reference["max_loglik"], abs=1e-3)


def test_chapter1_pitfall_box_shows_the_computed_numbers(chapter1_text, arima_reference):
    box = chapter1_text[chapter1_text.index("Common pitfalls"):]
    box = box[: box.index("Simulating from a model")]
    assert f"{arima_reference['loglik']:.6f}" in box
    assert f"{arima_reference['loglik']:.1f}" in box
    wrong = _number_after("log-likelihood, wrong F on diffs:", chapter1_text)
    assert wrong < arima_reference["loglik"]
    assert f"{wrong:.1f}" in box


def test_chapter1_arima011_fit_of_the_local_level_series(chapter1_text):
    """The chapter's ARIMA(0,1,1) fit of its local level series (q = 0.5, r = 1, seed 2, the
    first 2,000 differences), refitted here by statsmodels, and theta = K_inf - 1 from the
    closed-form steady state P = (q + sqrt(q^2 + 4 q r)) / 2."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    from kflib import simulate
    from kflib.models import local_level

    q, r = 0.5, 1.0
    _, y = simulate(local_level(q, r, x0=0.0, P0=0.0), 50_000, rng=np.random.default_rng(2))
    fit = SARIMAX(y[:2001, 0], order=(0, 1, 1), trend="n", simple_differencing=True).fit(disp=False)
    theta_printed = _number_after("MA coefficient theta", chapter1_text)
    assert theta_printed == pytest.approx(fit.params[0], abs=6e-4)     # printed with 3 decimals
    P = (q + np.sqrt(q * q + 4 * q * r)) / 2
    theta_local_level = P / (P + r) - 1
    assert abs(fit.params[0] - theta_local_level) < 2 * fit.bse[0]


def test_chapter1_has_figures_that_exist(built_book):
    page = page_path(built_book, CHAPTER1)
    images = page_assets(page).images
    assert len(images) >= 3, f"chapter 1 has {len(images)} figures"
    for src in images:
        assert local_target(page, src).is_file(), f"missing image {src}"


def test_chapter1_outputs_have_no_errors_or_warnings(built_book):
    raw = page_path(built_book, CHAPTER1).read_text(encoding="utf-8")
    assert "Traceback" not in raw
    assert "output stderr" not in raw, "a cell wrote to stderr (a warning?)"
    assert "output error" not in raw
    assert "output traceback" not in raw


def test_chapter1_has_check_your_understanding_and_exercise_links(built_book):
    page = page_path(built_book, CHAPTER1)
    raw = page.read_text(encoding="utf-8")
    assert "Check your understanding" in raw
    assert raw.count("sd-dropdown") >= 3
    assert "ps01-state-space.html" in raw, "no link to the exercise page"
    downloads = re.findall(r'href="([^"]*_downloads/[^"]*ps01-state-space\.ipynb)"', raw)
    assert downloads, "no download link to the exercise notebook"
    notebook = local_target(page, downloads[0])
    assert notebook.is_file()
    assert json.loads(notebook.read_text())["cells"]


def test_exercise_page_is_not_executed(built_book):
    raw = page_path(built_book, EXERCISE1).read_text(encoding="utf-8")
    assert "NotImplementedError" in raw or "YOUR CODE HERE" in raw, \
        "the exercise page should show the student notebook"
    assert 'class="cell_output' not in raw, "the exercise notebook was executed during the build"


def test_bibliography_lists_the_course_references(built_book):
    text = page_text(page_path(built_book, "book/bibliography"))
    for author in ("Kalman", "Rauch", "Shumway", "Durbin", "Harvey", "Särkkä",
                   "Revach", "Hochreiter", "Box"):
        assert author in text, f"{author} missing from the bibliography"


def test_preface_explains_the_exercise_workflow(built_book):
    text = page_text(page_path(built_book, "book/preface"))
    assert "make lab" in text
    assert "nbgrader validate exercises/ps01-state-space/ps01-state-space.ipynb" in text
    assert "Notation" in text


# --- claims asserted in every chapter ----------------------------------------

def hidden_asserts(chapter: Path) -> int:
    """The `assert` statements in the chapter's code cells tagged `remove-cell`.

    Each sentence of a chapter that states a computed result is backed by such
    an assert, so that the build fails when a change makes the sentence false.
    """
    import ast

    import jupytext

    notebook = jupytext.read(chapter)
    count = 0
    for cell in notebook.cells:
        if cell.cell_type != "code" or "remove-cell" not in cell.metadata.get("tags", []):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:            # IPython syntax (magics): count the statements by text
            count += len(re.findall(r"^\s*assert\b", cell.source, flags=re.MULTILINE))
        else:
            count += sum(isinstance(node, ast.Assert) for node in ast.walk(tree))
    return count


def test_every_chapter_asserts_its_claims():
    chapters = sorted((REPO / "book").glob("0*-*.md"))
    assert len(chapters) >= 9, f"expected the nine chapters, found {[c.name for c in chapters]}"
    counts = {chapter.name: hidden_asserts(chapter) for chapter in chapters}
    listing = "\n".join(f"  {name}: {n}" for name, n in counts.items())
    assert all(counts.values()), (
        "asserts in remove-cell cells per chapter (a chapter with 0 has no claim checked):\n" + listing)


def test_mathjax_offline_extension_is_configured():
    config = (REPO / "_config.yml").read_text()
    assert "sphinx-mathjax-offline" in config
    assert re.search(r"execute_notebooks:\s*cache", config)
