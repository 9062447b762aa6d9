"""The interactive gain explorer of chapter 3 (book/03-gain.md), in both forms.

* The rendered page carries a kernel-free explorer: precomputed PNG frames for a
  grid of (q, r, P0), range sliders and a few lines of inline JavaScript that
  swap the frame and print the gains. The static tests read the built HTML;
  the browser test serves it from a loopback HTTP server, opens it in headless
  Chromium (Debian's, driven by Playwright) with no network, moves the
  sliders and checks the frame and the printed gains against the local level
  model's closed form -- an independent reference, not the chapter's own
  numbers.
* In a live notebook the chapter offers ipywidgets sliders. That cell is tagged
  `skip-execution` (widget state would make the page load the widget
  JavaScript from a CDN), so the build does not run it; the last test runs it,
  with the cells it needs, in a real kernel and moves a slider.

The page tests use the session's book build (`built_book` from conftest_book);
they skip, saying why, while the chapter is not in _toc.yml. Without Chromium
or Playwright the browser test skips; with CI=true it fails instead.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest_book import (REPO, browser, built_book, page_path,  # noqa: F401
                           server, toc_docnames)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("book")]   # needs the built book

DOCNAME = "book/03-gain"
SOURCE = REPO / f"{DOCNAME}.md"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def closed_form_gains(q: float, r: float, P0: float) -> tuple[float, float]:
    """Local level model: steady gain from P = (q + sqrt(q^2 + 4 q r)) / 2 and
    the first gain K_1 = (P0 + q) / (P0 + q + r)."""
    P = (q + np.sqrt(q * q + 4.0 * q * r)) / 2.0
    return P / (P + r), (P0 + q) / (P0 + q + r)


# --------------------------------------------------------------------------
# The built page

@pytest.fixture(scope="module")
def gain_page(request) -> Path:
    if DOCNAME not in toc_docnames():
        pytest.skip(f"{DOCNAME} is not in _toc.yml, so the book has no page for it")
    html_dir = request.getfixturevalue("built_book")
    page = page_path(html_dir, DOCNAME)
    assert page.is_file(), f"the build made no {page}"
    return page


@pytest.fixture(scope="module")
def explorer_data(gain_page) -> dict:
    raw = gain_page.read_text(encoding="utf-8")
    match = re.search(r'<script type="application/json" id="gain-data">(.*?)</script>',
                      raw, re.S)
    assert match, "the page has no explorer data (script#gain-data)"
    return json.loads(match.group(1))


def test_page_loads_no_widget_javascript(gain_page):
    raw = gain_page.read_text(encoding="utf-8")
    remote = re.findall(r'<script[^>]*\ssrc="(?:https?:)?//[^"]*"', raw)
    assert not remote, f"scripts from the network: {remote}"
    assert "application/vnd.jupyter.widget-state+json" not in raw, \
        "widget state was saved into the page (the ipywidgets cell ran at build)"
    assert "application/vnd.jupyter.widget-view+json" not in raw


def test_explorer_elements_have_stable_ids(gain_page):
    raw = gain_page.read_text(encoding="utf-8")
    for element_id in ("gain-explorer", "gain-q", "gain-r", "gain-p0", "gain-frame",
                       "gain-readout", "gain-k-value", "gain-k1-value"):
        assert f'id="{element_id}"' in raw, f"no element with id {element_id!r}"
    assert raw.count('type="range"') >= 3


def test_frames_cover_the_grid_and_are_distinct_pngs(explorer_data):
    d = explorer_data
    n = len(d["q"]) * len(d["r"]) * len(d["P0"])
    assert n >= 27, "the grid should have at least three values per slider"
    assert len(d["frames"]) == n == len(d["K1"])
    decoded = [base64.b64decode(f) for f in d["frames"]]
    assert all(png.startswith(PNG_SIGNATURE) for png in decoded)
    assert len(set(decoded)) == n, "two settings show the same picture"


def test_printed_gains_match_the_closed_form(explorer_data):
    d = explorer_data
    q_values = [float(v) for v in d["q"]]
    r_values = [float(v) for v in d["r"]]
    P0_values = [float(v) for v in d["P0"]]
    for i, q in enumerate(q_values):
        for j, r in enumerate(r_values):
            for k, P0 in enumerate(P0_values):
                K, K1 = closed_form_gains(q, r, P0)
                f = (i * len(r_values) + j) * len(P0_values) + k
                assert float(d["K"][i][j]) == pytest.approx(K, abs=5.1e-5), (q, r)
                assert float(d["K1"][f]) == pytest.approx(K1, abs=5.1e-5), (q, r, P0)


# --------------------------------------------------------------------------
# The page in a browser

@pytest.fixture(scope="module")
def origin(gain_page, server):
    """The loopback server of the built book, once the page is known to exist."""
    return server


def _readout(page) -> dict:
    return page.evaluate("""() => {
        const text = id => document.getElementById(id).textContent.trim();
        const img = document.getElementById('gain-frame');
        return {q: text('gain-q-text'), r: text('gain-r-text'), P0: text('gain-p0-text'),
                K: text('gain-k-value'), K1: text('gain-k1-value'),
                src: img.getAttribute('src'), frame: img.getAttribute('data-frame'),
                q_out: text('gain-q-value'), r_out: text('gain-r-value'),
                P0_out: text('gain-p0-value')};
    }""")


def _wait_for_image(page):
    page.wait_for_function("""() => {
        const img = document.getElementById('gain-frame');
        return img.complete && img.naturalWidth > 0;
    }""", timeout=300_000)


def _check_against_closed_form(state: dict):
    q, r, P0 = float(state["q"]), float(state["r"]), float(state["P0"])
    K, K1 = closed_form_gains(q, r, P0)
    assert float(state["K"]) == pytest.approx(K, abs=5.1e-5), state
    assert float(state["K1"]) == pytest.approx(K1, abs=5.1e-5), state
    assert (state["q_out"], state["r_out"], state["P0_out"]) == \
        (state["q"], state["r"], state["P0"])


def _set_slider(page, slider_id: str, value: int):
    """Set a range input as a script would, firing the input event."""
    page.evaluate("""([id, value]) => {
        const s = document.getElementById(id);
        s.value = String(value);
        s.dispatchEvent(new Event('input', {bubbles: true}));
    }""", [slider_id, value])


def test_sliders_swap_the_frame_and_the_printed_gain(browser, origin, explorer_data):
    d = explorer_data
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    requests, failed, page_errors = [], [], []
    page.on("request", lambda req: requests.append(req.url))
    page.on("requestfailed", lambda req: failed.append(f"{req.url} ({req.failure})"))
    page.on("pageerror", lambda err: page_errors.append(str(err)))
    try:
        page.goto(f"{origin}/{DOCNAME}.html", wait_until="load", timeout=300_000)
        explorer = page.locator("#gain-explorer")
        explorer.scroll_into_view_if_needed()
        page.wait_for_function(
            "() => document.getElementById('gain-explorer').dataset.ready === 'true'"
            " || document.getElementById('gain-explorer').dataset.error", timeout=300_000)
        assert explorer.get_attribute("data-error") is None, explorer.get_attribute("data-error")
        _wait_for_image(page)

        start = _readout(page)
        _check_against_closed_form(start)
        assert start["src"] == "data:image/png;base64," + d["frames"][int(start["frame"])]

        # A reader's move: focus the q slider and press the right arrow key.
        q_slider = page.locator("#gain-q")
        q_index = int(q_slider.input_value())
        assert q_index + 1 < len(d["q"]), "the q slider should not start at its end"
        q_slider.focus()
        page.keyboard.press("ArrowRight")
        moved = _readout(page)
        assert int(q_slider.input_value()) == q_index + 1
        assert moved["q"] == d["q"][q_index + 1]
        assert moved["src"] != start["src"] and moved["frame"] != start["frame"]
        assert moved["K"] != start["K"]
        _wait_for_image(page)
        _check_against_closed_form(moved)

        # Jump the sensor noise to the largest value: the gain must fall.
        _set_slider(page, "gain-r", len(d["r"]) - 1)
        noisy = _readout(page)
        assert noisy["r"] == d["r"][-1]
        assert noisy["src"] not in (start["src"], moved["src"])
        assert float(noisy["K"]) < float(moved["K"])
        _wait_for_image(page)
        _check_against_closed_form(noisy)

        # P0 changes the first gain and the picture, not the steady gain.
        p0_slider = page.locator("#gain-p0")
        p0_slider.focus()
        page.keyboard.press("Home")
        confident = _readout(page)
        assert confident["P0"] == d["P0"][0]
        assert confident["src"] != noisy["src"]
        assert confident["K"] == noisy["K"]
        assert confident["K1"] != noisy["K1"]
        _wait_for_image(page)
        _check_against_closed_form(confident)

        # Every frame index the sliders can reach shows its own picture.
        seen = set()
        for i in range(len(d["q"])):
            _set_slider(page, "gain-q", i)
            seen.add(_readout(page)["src"])
        assert len(seen) == len(d["q"])
    finally:
        context.close()

    outside = [u for u in requests
               if not u.startswith((origin, "data:", "blob:", "about:"))]
    assert not outside, f"requests that left the machine: {outside}"
    assert not failed, f"failed requests: {failed}"
    assert not [e for e in page_errors if "gain" in e.lower()], page_errors


# --------------------------------------------------------------------------
# The live widget cell

# Executes a notebook in place with nbclient, in its own process (this module's
# Playwright session keeps an asyncio loop in the test process). nbclient's
# stand-in for the browser's Output widget is switched off: with it, a cell
# that redraws inside an Output widget sometimes waits for its full timeout.
# Without it, what the widget shows arrives as ordinary outputs of the cell.
EXECUTE_NOTEBOOK = """
import sys
import nbclient, nbformat

class Client(nbclient.NotebookClient):
    def on_comm_open_jupyter_widget(self, msg):
        return None

path, cwd = sys.argv[1], sys.argv[2]
nb = nbformat.read(path, as_version=4)
Client(nb, timeout=300, kernel_name="python3",
       resources={"metadata": {"path": cwd}}).execute()
nbformat.write(nb, path)
"""


def test_widget_cell_runs_in_a_kernel(tmp_path):
    """Runs the chapter's ipywidgets cell (after the cells it needs) in a fresh
    kernel, then moves a slider and checks the redrawn gain against the closed form."""
    jupytext = pytest.importorskip("jupytext")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipywidgets")
    import nbformat

    nb = jupytext.read(SOURCE)
    code = [c for c in nb.cells if c.cell_type == "code"]
    widget_cells = [c for c in code if "skip-execution" in c.metadata.get("tags", [])]
    assert len(widget_cells) == 1, "chapter 3 should have exactly one skip-execution cell"
    widget_cell = widget_cells[0]
    assert "widgets.interactive" in widget_cell.source
    widget_cell.metadata["tags"] = []
    # What the widget cell needs: the import cell and the cell defining show_gain.
    definitions = [c for c in code if re.search(r"^def show_gain\(", c.source, re.M)]
    assert len(definitions) == 1, "chapter 3 should define show_gain in one cell"
    nb.cells = [code[0], definitions[0], widget_cell]
    cut = 2
    nb.cells.append(nbformat.v4.new_code_cell(
        "import json\n"
        "before = explorer.result\n"
        "q_slider, r_slider, p0_slider = explorer.children[:3]\n"
        "q_slider.value = 0.01\n"
        "r_slider.value = 1.0\n"
        "p0_slider.value = 1.0\n"
        "print('RESULT', json.dumps({'before': before, 'after': explorer.result,\n"
        "      'q': q_slider.value, 'r': r_slider.value}))\n"))

    path = tmp_path / "widget-cell.ipynb"
    nbformat.write(nb, path)
    proc = subprocess.run([sys.executable, "-c", EXECUTE_NOTEBOOK, str(path),
                           str(SOURCE.parent)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"the widget cell failed in a kernel:\n{proc.stderr[-4000:]}"
    nb = nbformat.read(path, as_version=4)

    def shows(cell, mime):
        return any(mime in o.get("data", {}) for o in cell.outputs)

    errors = [o for c in nb.cells[cut:] for o in c.outputs if o.output_type == "error"]
    assert not errors, f"errors in the widget cells: {errors}"
    assert shows(nb.cells[cut], "application/vnd.jupyter.widget-view+json"), \
        "the widget cell displayed no widget"
    assert shows(nb.cells[cut], "image/png"), "the widget drew no figure"
    assert shows(nb.cells[-1], "image/png"), "moving a slider drew no figure"
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs
                      if o.output_type == "stream")
    match = re.search(r"RESULT (\{.*\})", printed)
    assert match, f"no result printed: {printed!r}"
    result = json.loads(match.group(1))
    K_start, _ = closed_form_gains(0.1, 1.0, 100.0)
    K_after, _ = closed_form_gains(result["q"], result["r"], 1.0)
    assert result["before"] == pytest.approx(K_start, rel=1e-9)
    assert result["after"] == pytest.approx(K_after, rel=1e-9)
    assert result["after"] != pytest.approx(result["before"])
