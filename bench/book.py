"""How long the book takes to build: clean, and again with nothing changed.

Copies the tracked files of the repository (``git ls-files``) to a temporary
folder, so the build starts with no execution cache and no _build/, then runs
the command of ``make book`` there twice:

* clean: every chapter executes;
* cached: nothing changed, so the execution cache answers for every chapter
  and Sphinx re-reads nothing (the HTML of the first build is kept, as it is
  after ``make book``).

Prints both wall times and writes them to _build/bench.json.

    python bench/book.py
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import records

ROOT = Path(__file__).resolve().parent.parent
CASE = "book build"


def build_command() -> list[str]:
    exe = Path(sys.executable).parent / "jupyter-book"
    return [str(exe) if exe.exists() else "jupyter-book", "build", ".", "--path-output", ".",
            "--builder", "html", "-W", "-n", "--keep-going"]


def copy_tracked(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def timed_build(where: Path, log: Path) -> float:
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run(build_command(), cwd=where, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"the book build failed (exit {proc.returncode}); see {log}")
    return seconds


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    print(records.machine())
    with tempfile.TemporaryDirectory(prefix="kf-book-bench-") as tmp:
        work = Path(tmp)
        copy_tracked(work)
        log = ROOT / "_build" / "bench-book.log"
        log.parent.mkdir(exist_ok=True)
        clean = timed_build(work, log)
        cached = timed_build(work, log)
    rows = [records.machine_record(), records.record(CASE, "jupyter-book", "clean_wall", clean, "s"),
            records.record(CASE, "jupyter-book", "cached_wall", cached, "s")]
    print(f"\n{CASE}\n  clean (every chapter executes)   {clean:8.1f} s"
          f"\n  cached, nothing changed          {cached:8.1f} s")
    out = records.write(rows)
    print(f"\nwrote {len(rows)} records to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
