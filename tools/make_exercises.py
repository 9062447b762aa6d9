"""Regenerate exercises/ from solutions/ with nbgrader's own generate_assignment.

    python tools/make_exercises.py                 # every assignment in solutions/
    python tools/make_exercises.py ps01-state-space
    python tools/make_exercises.py --root /some/copy/of/the/course

Each assignment is a folder solutions/<assignment>/ holding at least one
notebook; nbgrader writes exercises/<assignment>/ (replacing what was there,
`--force`) and records the assignment in the gradebook under grading/. The
output is deterministic: the same solutions give byte-identical exercises.

nbgrader runs `alembic` by name to set up the gradebook, so the folder of this
interpreter (the virtual environment's bin/) is put first on PATH.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def assignments(root: Path) -> list[str]:
    """Names of the assignments under root/solutions, sorted."""
    solutions = root / "solutions"
    return sorted(p.name for p in solutions.iterdir()
                  if p.is_dir() and any(p.glob("*.ipynb")))


def nbgrader_env() -> dict[str, str]:
    """The environment for nbgrader subprocesses: this interpreter's bin/ first on PATH."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def generate(root: Path, assignment: str) -> None:
    """Run `nbgrader generate_assignment <assignment> --force` in root."""
    cmd = [sys.executable, "-m", "nbgrader", "generate_assignment", assignment,
           "--force", "--log-level=WARN"]
    proc = subprocess.run(cmd, cwd=root, env=nbgrader_env(),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"nbgrader generate_assignment {assignment} failed "
                         f"(exit code {proc.returncode})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assignment", nargs="*",
                        help="assignments to generate (default: all in solutions/)")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="course root holding nbgrader_config.py (default: this repository)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    names = args.assignment or assignments(root)
    if not names:
        raise SystemExit(f"no assignments under {root / 'solutions'}")
    for name in names:
        if not (root / "solutions" / name).is_dir():
            raise SystemExit(f"no assignment {name!r}: {root / 'solutions' / name} does not exist")
        generate(root, name)
        print(f"exercises/{name}/ regenerated from solutions/{name}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
