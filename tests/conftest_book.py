"""Building the book once per test session, for test_book.py and test_book_browser.py.

The build runs the exact command of `make book`:

    jupyter-book build . --path-output . --builder html -W -n --keep-going

so a warning anywhere (a failing cell, a broken reference, a missing file)
fails it. Before building, the HTML output and Sphinx's environment are
removed: an incremental Sphinx build re-reads only changed pages and would not
repeat the warnings of unchanged ones. The execution cache
(`_build/.jupyter_cache`) is kept, so chapters whose code did not change are
not run again.

Test modules import the fixtures (`from conftest_book import built_book`); the
result is cached in this module, so the book is built once per process even
though each importing module registers the fixture on its own. The browser
tests also take `browser` (headless Chromium via Playwright) and `server` (the
built HTML on a loopback port) from here.
"""

from __future__ import annotations

import fcntl
import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BUILD_DIR = REPO / "_build"
HTML_DIR = BUILD_DIR / "html"
BUILD_LOG = BUILD_DIR / "book-build.log"
BUILD_TIMEOUT_S = 3600


def jupyter_book_executable() -> str:
    """The jupyter-book of the environment running the tests (the course .venv)."""
    beside_python = Path(sys.executable).parent / "jupyter-book"
    if beside_python.exists():
        return str(beside_python)
    venv = REPO / ".venv" / "bin" / "jupyter-book"
    if venv.exists():
        return str(venv)
    found = shutil.which("jupyter-book")
    if found:
        return found
    pytest.fail("jupyter-book is not installed: run `make setup` (pip install -e '.[book]')",
                pytrace=False)


def build_command() -> list[str]:
    return [jupyter_book_executable(), "build", ".", "--path-output", ".",
            "--builder", "html", "-W", "-n", "--keep-going"]


@dataclass(frozen=True)
class BuildResult:
    returncode: int
    seconds: float
    log: str
    html_dir: Path


_RESULT: BuildResult | None = None


def build_book() -> BuildResult:
    """Build the book (once per process); later calls return the first result."""
    global _RESULT
    if _RESULT is not None:
        return _RESULT
    BUILD_DIR.mkdir(exist_ok=True)
    # pytest-xdist workers of one run share _build/: the first builds, the
    # others wait for it on the lock and reuse its result.
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    marker = BUILD_DIR / f".book-build-{run_id}.json" if run_id else None
    with open(BUILD_DIR / ".book-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if marker is not None and marker.exists():
                done = json.loads(marker.read_text())
                _RESULT = BuildResult(done["returncode"], done["seconds"],
                                      BUILD_LOG.read_text(), HTML_DIR)
                return _RESULT
            for stale in (HTML_DIR, BUILD_DIR / ".doctrees"):
                shutil.rmtree(stale, ignore_errors=True)
            for old_marker in BUILD_DIR.glob(".book-build-*.json"):
                old_marker.unlink()
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            start = time.monotonic()
            proc = subprocess.run(build_command(), cwd=REPO, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=BUILD_TIMEOUT_S)
            seconds = time.monotonic() - start
            BUILD_LOG.write_text(proc.stdout)
            if marker is not None:
                marker.write_text(json.dumps({"returncode": proc.returncode,
                                              "seconds": seconds}))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _RESULT = BuildResult(proc.returncode, seconds, proc.stdout, HTML_DIR)
    return _RESULT


@pytest.fixture(scope="session")
def built_book() -> Path:
    """The HTML folder of a fresh, warning-free build of the book."""
    result = build_book()
    if result.returncode != 0:
        warnings = [line for line in result.log.splitlines()
                    if "WARNING" in line or "ERROR" in line or "Error" in line]
        tail = "\n".join(result.log.splitlines()[-40:])
        pytest.fail(
            f"the book build failed (exit code {result.returncode}); "
            f"full log in {BUILD_LOG}\n"
            + "warnings and errors:\n" + "\n".join(warnings[:60])
            + "\n--- last lines ---\n" + tail,
            pytrace=False,
        )
    return result.html_dir


# --------------------------------------------------------------------------
# The table of contents and the built pages

def toc_docnames(toc_path: Path = REPO / "_toc.yml") -> list[str]:
    """Every document named in _toc.yml (root first), without file extension."""
    toc = yaml.safe_load(toc_path.read_text())
    names = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                names.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk({k: v for k, v in toc.items() if k != "root"})
    return [re.sub(r"\.(md|ipynb|rst)$", "", n) for n in names]


def page_path(html_dir: Path, docname: str) -> Path:
    return html_dir / f"{docname}.html"


class _Assets(HTMLParser):
    """Collects what a page loads: script sources, link hrefs, image sources."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.scripts: list[str] = []
        self.links: list[tuple[str, str]] = []   # (rel, href)
        self.images: list[str] = []
        self.has_math = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        elif tag == "link" and a.get("href"):
            self.links.append((a.get("rel") or "", a["href"]))
        elif tag == "img" and a.get("src"):
            self.images.append(a["src"])
        classes = (a.get("class") or "").split()
        if "math" in classes:
            self.has_math = True


def page_assets(path: Path) -> _Assets:
    parser = _Assets()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def page_text(path: Path) -> str:
    """The visible text of a page, tags removed."""
    parser = _Text()
    parser.feed(path.read_text(encoding="utf-8"))
    return html.unescape("".join(parser.parts))


# --------------------------------------------------------------------------
# A real browser and a loopback server, for the browser tests

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def browser_unavailable_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright)"
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium; skips without it, except under CI=true, where it fails."""
    reason = browser_unavailable_reason()
    if reason:
        if in_ci():
            pytest.fail(f"browser tests must run in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(built_book):
    """Serves _build/html on 127.0.0.1 (a free port) for the module's tests."""
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
