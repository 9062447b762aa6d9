"""The benchmark record file, _build/bench.json (format in DESIGN.md, "Benchmarks").

A list of records {"case", "library", "metric", "value", "unit"}. Each
benchmark script replaces the records of the cases it measured and keeps the
others, so the scripts can run in any order and one at a time.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH_JSON = ROOT / "_build" / "bench.json"


def record(case: str, library: str, metric: str, value: float, unit: str) -> dict:
    return dict(case=case, library=library, metric=metric, value=float(value), unit=unit)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line naming the machine, for the printed table."""
    return (f"machine: {cpu_name()}, {os.cpu_count()} CPUs, {platform.machine()}, "
            f"python {platform.python_version()}, numpy {np.__version__}")


def machine_record() -> dict:
    """The machine as a record: case "machine", the CPU and software as the library."""
    return record("machine", f"{cpu_name()}; python {platform.python_version()}, "
                  f"numpy {np.__version__}", "cpu_count", os.cpu_count() or 0, "CPUs")


def write(records: list[dict], out: Path = BENCH_JSON) -> Path:
    """Replace the earlier records of these cases in ``out``; keep every other record."""
    out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(out.read_text()) if out.exists() else []
    cases = {r["case"] for r in records}
    out.write_text(json.dumps([r for r in old if r.get("case") not in cases] + records,
                              indent=1) + "\n")
    if out == BENCH_JSON:
        forget_cached_appendix()
    return out


def forget_cached_appendix(page: str = "book/appendix-performance.md") -> None:
    """Drop the performance appendix from the book's execution cache.

    The cache is keyed on a page's code, not on the files the code reads, so
    without this the next ``make book`` would show the previous figures.
    """
    cache_dir = ROOT / "_build" / ".jupyter_cache"
    if not cache_dir.is_dir():
        return
    from jupyter_cache import get_cache

    cache = get_cache(cache_dir)
    for rec in cache.list_cache_records():
        if Path(rec.uri) == ROOT / page:
            cache.remove_cache(rec.pk)
