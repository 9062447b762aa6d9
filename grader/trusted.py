"""The trusted check of one submission.

The student's code runs in a sandboxed child process (grader/runner.py, see
grader/sandbox.py for the isolation) that only ever sends back plain numbers
and arrays as JSON; this process, which no student code ever touched, compares
them with kflib through the assignment's spec (grader/checks/). A step that
overruns, or a child that dies, costs only that step: the child is started
again without the offending cell (or part) and the other parts are graded.

Every kflib function is switched off except those a part allows (an allow-list,
Part.allow; the rule is kflib/testing.py's, which the hidden tests follow too).
Parts with different allow-lists are checked by several children (Spec.groups()),
each with its own copy of kflib; they run one after the other, share the
submission's time budget, and a cell that had to be skipped in one is skipped in
the next.

No check whose verdict counts runs in the child: it sends back the outputs AND
every argument as it is after the call (nested containers too), as plain data;
this process compares the outputs with references it computed itself and the
arguments with the inputs it rebuilt itself.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import sandbox
from .course import Assignment, Layout, Submission, layout
from .spec import Spec

RUNNER = Path(__file__).with_name("runner.py")
MAX_ELEMENTS = 1_000_000

TRIPWIRE_MODULE = '''"""Tripwires: kflib functions switched off while a submission is graded."""

HITS = []


class ReferenceCallBlocked(Exception):
    """A kflib function that would answer an exercise part was called."""


def tripwire(name):
    def blocked(*args, **kwargs):
        HITS.append(name)
        raise ReferenceCallBlocked(
            f"{name} is switched off while grading: this part asks for your own implementation")
    blocked.__name__ = blocked.__qualname__ = name.rsplit(".", 1)[-1]
    return blocked
'''


@dataclass
class Settings:
    isolation: str = "root"               # a mode from sandbox.detect()
    cell_timeout: float = 30.0            # per student cell (seconds)
    call_timeout: float = 30.0            # per call of a student's function
    memory_mb: int = 2048                 # address space of the child
    budget: float = 300.0                 # wall-clock seconds for one submission, all attempts
    grace: float = 5.0                    # beyond a step's timeout before the child is killed


@dataclass
class Group:
    """Parts checked by one child, with the copy of kflib (and the blocked functions
    outside kflib) that go with them."""

    parts: list[str]
    libdir: Path
    block: list[str] = field(default_factory=list)       # functions outside kflib, tripwired


@dataclass
class PartResult:
    grade_id: str
    max_points: float
    points: float = 0.0
    summary: str = ""                     # for the student
    details: list[str] = field(default_factory=list)     # for the student (no expected values)

    @property
    def passed(self) -> bool:
        return self.points >= self.max_points


@dataclass
class TrustedResult:
    parts: dict[str, PartResult]
    flags: list[tuple[str, str]] = field(default_factory=list)   # (code, reason) for the instructor
    notes: list[str] = field(default_factory=list)
    error: str = ""                       # the check itself failed (not the student's fault)
    seconds: float = 0.0
    attempts: int = 0

    @property
    def score(self) -> float:
        return sum(p.points for p in self.parts.values())

    def flag(self, code: str, reason: str) -> None:
        if (code, reason) not in self.flags:
            self.flags.append((code, reason))


# --------------------------------------------------------------------------
# the copy of kflib for the sandbox


def split_forbidden(forbidden: list[str]) -> tuple[list[str], list[str]]:
    """(kflib functions, functions of other libraries) of a list of names; the latter
    are checked to exist here (the sandbox has the same libraries)."""
    import importlib

    ours = [q for q in forbidden if q == "kflib" or q.startswith("kflib.")]
    others = [q for q in forbidden if q not in ours]
    for qual in others:
        modname, _, attr = qual.rpartition(".")
        try:
            obj = getattr(importlib.import_module(modname), attr, None) if modname else None
        except ImportError:
            obj = None
        if obj is None or not callable(obj):
            raise ValueError(f"the spec blocks {qual}, which does not exist")
    return ours, others


def _units_of(forbidden: list[str]) -> set[str]:
    """Block-list names ("kflib.kalman_filter", re-exported or defining) -> kflib units."""
    import importlib

    units = set()
    for qual in forbidden:
        modname, _, attr = qual.rpartition(".")
        obj = getattr(importlib.import_module(modname), attr, None)
        if obj is None or not callable(obj):
            raise ValueError(f"the spec forbids {qual}, which kflib does not have")
        if not obj.__module__.startswith("kflib"):
            raise ValueError(f"{qual} is defined in {obj.__module__}, not in kflib")
        units.add(f"{obj.__module__}.{obj.__name__}")
    return units


def build_kflib_copy(dest: Path, forbidden: list[str] | None = None, *,
                     allow: tuple[str, ...] | None = None) -> set[str]:
    """Copy kflib into dest/kflib with functions switched off: with `allow` (the allow-list
    of an assignment, see kflib/testing.py) every kflib unit -- top-level function or method
    written in a class, public or private, in every module -- except those allowed and what
    they call; without it, the `forbidden` functions only. Returns the units switched off.

    A switched-off unit's code is removed from the copy (AST rewrite) and a tripwire put in
    its place, so no reload or re-import inside the sandbox can bring it back. kflib.testing
    (the kernel-side switch) is left out of the copy.
    """
    import kflib
    from kflib.testing import switched_off_units

    src = Path(kflib.__file__).resolve().parent
    target = dest / "kflib"
    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "testing.py"))
    off = switched_off_units(allow, src) if allow is not None else _units_of(forbidden or [])
    by_module: dict[str, set[str]] = {}
    for unit in off:
        mod = unit
        while mod and not _module_path(target, mod):
            mod = mod.rpartition(".")[0]
        if not mod:
            raise ValueError(f"could not find the module of {unit}")
        by_module.setdefault(mod, set()).add(unit[len(mod) + 1:])
    for mod, names in by_module.items():
        path = _module_path(target, mod)
        tree = ast.parse(path.read_text())
        replaced: set[str] = set()
        tree.body = _switch_off(tree.body, mod, "", names, replaced)
        if replaced != names:
            raise ValueError(f"could not find {sorted(names - replaced)} in {path.name}")
        body = tree.body
        insert = 0
        while insert < len(body) and (
                (isinstance(body[insert], ast.Expr) and isinstance(getattr(body[insert], "value", None), ast.Constant))
                or (isinstance(body[insert], ast.ImportFrom) and body[insert].module == "__future__")):
            insert += 1
        body.insert(insert, ast.parse("from kflib._tripwire import tripwire as _kflib_tripwire").body[0])
        path.write_text(ast.unparse(ast.fix_missing_locations(tree)) + "\n")
    (target / "_tripwire.py").write_text(TRIPWIRE_MODULE)
    for folder, _, files in os.walk(dest):
        os.chmod(folder, 0o755)
        for f in files:
            os.chmod(os.path.join(folder, f), 0o644)
    return off


def _module_path(target: Path, mod: str) -> Path | None:
    rel = mod.split(".")[1:]
    if not rel:
        return target / "__init__.py"
    path = target.joinpath(*rel)
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def _switch_off(body: list, mod: str, prefix: str, names: set[str], replaced: set[str]) -> list:
    """A module's or class's statements with the named functions replaced by tripwires."""
    out = []
    for node in body:
        name = f"{prefix}{getattr(node, 'name', '')}"
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and name in names:
            out.append(ast.parse(f"{node.name} = _kflib_tripwire({mod + '.' + name!r})").body[0])
            replaced.add(name)
        elif isinstance(node, ast.ClassDef) and any(n.startswith(name + ".") for n in names):
            node.body = _switch_off(node.body, mod, name + ".", names, replaced) or [ast.Pass()]
            out.append(node)
        elif isinstance(node, ast.ClassDef) and name in names:
            raise ValueError(f"{mod}.{name} is a class: switch off its methods, not the class")
        else:
            out.append(node)
    return out


# --------------------------------------------------------------------------
# plain data in and out


def encode(value):
    if isinstance(value, np.ndarray) or isinstance(value, np.generic) and np.ndim(value):
        arr = np.asarray(value, dtype=float)
        return {"shape": list(arr.shape), "data": [float(x) for x in arr.ravel()]}
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    raise TypeError(f"cannot send {type(value).__name__} to the sandbox: plain numbers and arrays only")


def _decode_plain(value):
    """Case arguments as the child rebuilds them from JSON (the same rule as runner.decode)."""
    if isinstance(value, dict) and "shape" in value and "data" in value:
        return np.array(value["data"], dtype=float).reshape(value["shape"])
    if isinstance(value, list):
        return [_decode_plain(v) for v in value]
    return value


def plain_inputs(value, depth: int = 0):
    """An argument as plain data, nested containers and dataclass fields included (the same
    rule as runner.plain_inputs, which sends the arguments back after the call)."""
    import dataclasses

    if depth > 8:
        return None
    if isinstance(value, np.ndarray):
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            return None
        return {"shape": list(arr.shape), "data": [float(x) for x in arr.ravel().tolist()]}
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return {"seq": [plain_inputs(v, depth + 1) for v in value]}
    if isinstance(value, dict):
        return {"map": {str(k): plain_inputs(v, depth + 1) for k, v in value.items()}}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"fields": {f.name: plain_inputs(getattr(value, f.name, None), depth + 1)
                           for f in dataclasses.fields(value)}}
    return None


def inputs_plain(part, case) -> list:
    """The arguments of a case's call, built here the way the child builds them (through
    JSON, then the part's from_plain), as plain data: what 'unchanged' means."""
    args = _decode_plain(json.loads(json.dumps(encode(list(case.args)), allow_nan=True)))
    if part.from_plain is not None:
        args = list(part.from_plain(*args))
    return [plain_inputs(a) for a in args]


def _same_plain(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_plain(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_plain(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def changed_arguments(before: list, after) -> list[int]:
    """Positions of the arguments whose plain data differ after the call (all of them when
    the child did not send them back as it must)."""
    if not isinstance(after, list) or len(after) != len(before):
        return list(range(len(before)))
    return [i for i, (b, a) in enumerate(zip(before, after)) if not _same_plain(b, a)]


def decode_outputs(raw) -> dict[str, np.ndarray]:
    """Arrays from the child's JSON, checked to be exactly what they claim to be."""
    if not isinstance(raw, dict) or len(raw) > 64:
        raise ValueError("not a table of arrays")
    out = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not isinstance(value, dict):
            raise ValueError("not a table of arrays")
        shape, data = value.get("shape"), value.get("data")
        if (not isinstance(shape, list) or len(shape) > 8
                or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_ELEMENTS
                           for s in shape)):
            raise ValueError(f"{name}: bad shape")
        if not isinstance(data, list) or len(data) != math.prod(shape) or len(data) > MAX_ELEMENTS:
            raise ValueError(f"{name}: the data does not fit the shape")
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in data):
            raise ValueError(f"{name}: not all numbers")
        out[name] = np.array(data, dtype=float).reshape(shape)
    return out


# --------------------------------------------------------------------------


class TrustedChecker:
    """Checks the submissions of one assignment (thread-safe: one child per call)."""

    def __init__(self, assignment: Assignment, spec: Spec, workdir: Path, settings: Settings):
        self.assignment, self.spec, self.settings = assignment, spec, settings
        missing = set(assignment.parts) - {p.grade_id for p in spec.parts}
        unknown = {p.grade_id for p in spec.parts} - set(assignment.parts)
        if missing or unknown:
            raise ValueError(f"{spec.module} does not match the notebook: parts without a check "
                             f"{sorted(missing)}, checks without a part {sorted(unknown)}")
        self.workdir = workdir
        self.groups: list[Group] = []
        for i, (gids, allow, forbidden) in enumerate(spec.groups()):
            ours, others = split_forbidden(forbidden)
            if ours:
                raise ValueError(f"{spec.module}: kflib functions in forbid ({ours}); use allow")
            libdir = workdir / ("lib" if i == 0 else f"lib{i + 1}")
            libdir.mkdir(parents=True)
            build_kflib_copy(libdir, allow=allow)
            shutil.copy2(RUNNER, libdir / "runner.py")
            os.chmod(libdir / "runner.py", 0o644)
            self.groups.append(Group(list(gids), libdir, others))
        self.libdir = self.groups[0].libdir
        os.chmod(workdir, 0o755)
        self.parts_json = {}
        self.inputs: dict[tuple[str, int], object] = {}   # (gid, case) -> the arguments, as plain data
        for part in spec.parts:
            cases = spec.cases(part.grade_id)     # computed once, here, with the real kflib
            for j, c in enumerate(cases):
                self.inputs[(part.grade_id, j)] = inputs_plain(part, c)
            self.parts_json[part.grade_id] = {
                "function": part.function,
                "to_plain": part.to_plain_source(),
                "from_plain": part.from_plain_source(),
                "stand_ins": part.stand_in_sources(),
                "cases": [_case_json(c) for c in cases],
            }
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------

    def check(self, sub: Submission, lay: Layout | None = None) -> TrustedResult:
        start = time.monotonic()
        lay = lay or layout(sub, self.assignment)
        result = TrustedResult({gid: PartResult(gid, part.points)
                                for gid, part in self.assignment.parts.items()})
        for change in lay.test_changes:
            result.flag("test-cells-modified", change)
        box = self.workdir / "subs" / sub.student
        box.mkdir(parents=True, exist_ok=True)
        os.chmod(box, 0o755)
        os.chmod(box.parent, 0o755)
        state = _State()
        state.answer_cells = {i for i in lay.answers.values() if isinstance(i, int)}
        try:
            self._attempts(sub, lay, box, state, result)
        except Exception as exc:                  # noqa: BLE001 -- a grader bug must not stop the run
            result.error = f"the trusted check failed: {type(exc).__name__}: {exc}"
        if not result.error:
            self._score(state, result)
        result.seconds = time.monotonic() - start
        return result

    def _attempts(self, sub, lay, box, state, result):
        s = self.settings
        deadline_total = time.monotonic() + s.budget
        max_attempts = len(self.assignment.parts) + 3 + len(self.groups)
        for group in self.groups:
            steps = _group_steps(lay.steps, group.parts, cut=len(self.groups) > 1)
            if not self._group_attempts(sub, box, state, result, group, steps, deadline_total,
                                        max_attempts):
                return

    def _group_attempts(self, sub, box, state, result, group, steps, deadline_total,
                        max_attempts) -> bool:
        """Run one group's children until its parts are done; False when the submission's
        budget ran out (every part not yet done is then marked so)."""
        s = self.settings
        while True:
            pending = [st for st in steps
                       if (st["kind"] == "cell" and st["index"] not in state.skip)
                       or (st["kind"] == "call" and st["part"] not in state.finished_parts)]
            if not any(st["kind"] == "call" for st in pending):
                return True
            if result.attempts >= max_attempts or time.monotonic() > deadline_total:
                for gid in self.parts_json:
                    if gid not in state.finished_parts:
                        state.part_failure.setdefault(
                            gid, ("budget", "grading stopped: the submission used up the "
                                            "time allowed for it"))
                        state.finished_parts.add(gid)
                result.flag("timeout", "the submission used up its time budget "
                                       f"({s.budget:g} s, {result.attempts} attempts)")
                return False
            result.attempts += 1
            run = self._run_child(sub, box, pending, state, group)
            if run.ready is False:
                raise RuntimeError("the sandboxed child did not start: "
                                   + (run.fatal or run.sandbox.stderr.strip()[-500:]
                                      or f"exit {run.sandbox.returncode}"))
            if run.done:
                for st in pending:
                    if st["kind"] == "call":
                        state.finished_parts.add(st["part"])
                return True
            for gid in self.parts_json:
                if all((gid, j) in state.cases for j in range(len(self.parts_json[gid]["cases"]))):
                    state.finished_parts.add(gid)
            # the child stopped during a step: that step is to blame
            why, code = _why_stopped(run, s)
            cur = run.current or _next_step(pending, run)
            if cur is None:
                raise RuntimeError(f"the child stopped outside any step ({why})")
            if cur.get("what") == "cell" or cur.get("kind") == "cell":
                idx = cur["index"]
                state.skip.add(idx)
                state.cell_errors[idx] = {"type": code, "message": why}
                result.flag(code, f"cell {idx}: {why}")
            else:
                gid = cur["part"]
                state.part_failure[gid] = (code, why)
                state.finished_parts.add(gid)
                result.flag(code, f"part {gid}: {why}")

    def _run_child(self, sub, box, pending, state, group: Group | None = None) -> "_Run":
        s = self.settings
        group = group or self.groups[0]
        job = {
            "steps": pending,
            "block": group.block,
            "parts": {st["part"]: self.parts_json[st["part"]] for st in pending if st["kind"] == "call"},
            "cell_timeout": s.cell_timeout,
            "call_timeout": s.call_timeout,
            "max_elements": MAX_ELEMENTS,
        }
        job_path = box / "job.json"
        job_path.write_text(json.dumps(job))
        os.chmod(job_path, 0o644)
        run = _Run()

        def on_line(line: bytes):
            run.lines += 1
            if run.lines > 100_000 or len(line) > 4 << 20:
                return
            try:
                ev = json.loads(line)
            except (ValueError, RecursionError):
                return
            if not isinstance(ev, dict):
                return
            with self._lock:
                run.handle(ev, state)

        def deadline():
            cur, since = run.current, run.since
            if cur is None:
                if run.ready is None and time.monotonic() - run.started > 120:
                    return "the child did not start within 120 s"
                if run.ready and time.monotonic() - run.last_event > s.call_timeout + s.grace:
                    return "stalled the checker between two steps"
                return None
            limit = s.cell_timeout if cur.get("what") == "cell" else s.call_timeout
            if time.monotonic() - since > limit + s.grace:
                return f"did not finish within {limit:g} s"
            return None

        limits = sandbox.Limits(
            wall=s.budget, cpu=int(s.budget) + 10, memory=s.memory_mb << 20,
            fsize=16 << 20, nofile=256, nproc=128)
        env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "TMPDIR": "/tmp",
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"}
        box_sandbox = sandbox.Sandbox(s.isolation, ro=[group.libdir, box], uid=sandbox.fresh_uid())
        run.started = time.monotonic()
        run.sandbox = box_sandbox.run(
            [sandbox.PYTHON, "-I", "-B", str(group.libdir / "runner.py"), str(group.libdir),
             str(job_path)],
            cwd=box, env=env, limits=limits, on_line=on_line, deadline=deadline)
        if run.ready is None:
            run.ready = False
        return run

    # ----------------------------------------------------------------------

    def _score(self, state: "_State", result: TrustedResult) -> None:
        for gid, pres in result.parts.items():
            part = self.spec.part(gid)
            cases = self.spec.cases(gid)
            label = part.signature
            if gid in state.part_failure:
                code, why = state.part_failure[gid]
                pres.summary = f"{label}: 0 / {pres.max_points:g} points. Your function {why}."
                continue
            problems: list[tuple[str, str]] = []      # (case label, problem)
            tripwires: set[str] = set()
            skipped = 0
            for j, case in enumerate(cases):
                ev = state.cases.get((gid, j))
                if ev is None:
                    problems.append((case.label, "was not called (the grading stopped before)"))
                    continue
                for hit in ev.get("tripwires") or []:
                    if isinstance(hit, str):
                        tripwires.add(hit[:100])
                err = ev.get("error")
                if isinstance(err, dict) and err.get("type") == "Skipped":
                    skipped += 1
                    continue
                if isinstance(err, dict):
                    problems.append((case.label, _error_text(err)))
                    if err.get("type") == "MemoryError":
                        result.flag("memory", f"part {gid}: ran out of memory "
                                              f"(limit {self.settings.memory_mb} MB)")
                    if err.get("type") == "Timeout":
                        result.flag("timeout", f"part {gid}: {err.get('message')}")
                    continue
                try:
                    outputs = decode_outputs(ev.get("outputs"))
                except ValueError as exc:
                    problems.append((case.label, f"returned something that could not be read back ({exc})"))
                    continue
                try:
                    found = list(part.check(case, outputs))
                except Exception as exc:          # noqa: BLE001 -- odd outputs must not crash a spec
                    found = [f"its result could not be compared ({type(exc).__name__}: {exc})"]
                if part.check_mutation:
                    mutated = changed_arguments(self.inputs[(gid, j)], ev.get("inputs_after"))
                    if mutated:
                        names = [part.arg_names[i] if isinstance(i, int) and i < len(part.arg_names)
                                 else str(i) for i in mutated]
                        found.append(f"it changed the arrays you gave it ({', '.join(map(str, names))}); "
                                     "work on copies")
                problems += [(case.label, p) for p in found]
            if tripwires:
                names = ", ".join(sorted(tripwires))
                result.flag("reference-call", f"part {gid}: called {names}")
                pres.summary = (f"{label}: 0 / {pres.max_points:g} points. It called {names}, which is "
                                "switched off while grading: this part asks for your own implementation.")
                continue
            if not problems:
                pres.points = pres.max_points
                pres.summary = (f"{label}: {pres.max_points:g} / {pres.max_points:g} points. "
                                f"Correct on all {len(cases)} test inputs.")
                continue
            n_bad = len({lab for lab, _ in problems})
            rest = f" (the other {skipped} were not tried after it)" if skipped else ""
            pres.summary = (f"{label}: 0 / {pres.max_points:g} points. Wrong on {n_bad} of "
                            f"{len(cases)} test inputs{rest}, for example:")
            seen = set()
            for lab, prob in problems:
                key = _ERR_SIZE.sub("", prob)
                if key not in seen:
                    seen.add(key)
                    pres.details.append(f"{lab}: {prob}" if lab else prob)
                if len(pres.details) >= 4:
                    break
        # A cell outside the answers (a student's scratch check against kflib, say) that
        # reached a switched-off kflib function is no report entry: nbgrader's kernel runs
        # it with kflib on, and the check never grades it.
        cell_errors = [f"cell {i}: {e.get('message', '')}" for i, e in sorted(state.cell_errors.items())
                       if isinstance(e, dict) and (i in state.answer_cells
                                                   or e.get("type") != "ReferenceCallBlocked")]
        if cell_errors:
            result.notes.append("errors in the notebook's own cells: " + "; ".join(cell_errors[:5]))
        if state.tampered:
            result.flag("tampering", "after the student's cells ran: " + "; ".join(sorted(state.tampered)[:8]))
        answer_hits = sorted({h for i, hits in state.cell_tripwires.items() if i in state.answer_cells
                              for h in hits})
        if answer_hits:
            result.notes.append("answer cells called " + ", ".join(answer_hits)
                                + " outside the graded functions (switched off in the trusted check)")


_ERR_SIZE = re.compile(r"\(largest error [^)]*\)")


def _case_json(case) -> dict:
    out = {"args": encode(list(case.args))}
    if case.function:
        out["function"] = case.function
    if case.kwargs:
        out["kwargs"] = {str(k): encode(v) for k, v in case.kwargs.items()}
    return out


def _group_steps(steps: list[dict], parts: list[str], cut: bool) -> list[dict]:
    """A group's share of a submission's steps: every cell, and the calls of its parts;
    with `cut`, nothing after its last call (the cells there cannot change its grade)."""
    mine = set(parts)
    out = [st for st in steps if st["kind"] == "cell" or st["part"] in mine]
    if cut:
        last = max((i for i, st in enumerate(out) if st["kind"] == "call"), default=-1)
        out = out[:last + 1]
    return out


def _error_text(err: dict) -> str:
    msg = str(err.get("message") or err.get("type") or "an error")[:300]
    where = err.get("where")
    if err.get("type") in ("Timeout", "ReferenceCallBlocked", "Undefined"):
        return msg
    return f"raised {msg}" + (f" ({where})" if isinstance(where, str) else "")


@dataclass
class _State:
    skip: set = field(default_factory=set)                    # cells not to run again
    finished_parts: set = field(default_factory=set)
    part_failure: dict = field(default_factory=dict)          # gid -> (code, why)
    cases: dict = field(default_factory=dict)                 # (gid, j) -> event
    cell_errors: dict = field(default_factory=dict)
    tampered: set = field(default_factory=set)
    cell_tripwires: dict = field(default_factory=dict)        # cell index -> kflib units it reached
    answer_cells: set = field(default_factory=set)


@dataclass
class _Run:
    ready: bool | None = None
    done: bool = False
    current: dict | None = None
    since: float = 0.0
    started: float = 0.0
    lines: int = 0
    sandbox: sandbox.Result | None = None
    last_cell: int | None = None
    last_part: str | None = None
    last_event: float = 0.0
    fatal: str = ""

    def handle(self, ev: dict, state: _State) -> None:
        kind = ev.get("event")
        self.last_event = time.monotonic()
        if kind == "fatal" and self.ready is None:
            self.fatal = str(ev.get("message"))[:500]
        elif kind == "ready":
            self.ready = True
        elif self.ready is not True:
            return                                   # nothing counts before the child is set up
        elif kind == "begin":
            what = ev.get("what")
            if what == "cell" and isinstance(ev.get("index"), int):
                self.current = {"what": "cell", "index": ev["index"]}
            elif what == "case" and isinstance(ev.get("part"), str):
                self.current = {"what": "case", "part": ev["part"], "case": ev.get("case")}
            self.since = time.monotonic()
        elif kind == "cell" and isinstance(ev.get("index"), int):
            cur = self.current or {}
            if cur.get("what") != "cell" or cur.get("index") != ev["index"]:
                return
            if ev.get("error") is not None:
                state.cell_errors[ev["index"]] = ev["error"]
            hits = ev.get("tripwires")
            if isinstance(hits, list):
                state.cell_tripwires[ev["index"]] = [str(h)[:100] for h in hits[:20]]
            self.last_cell = ev["index"]
            self.last_part = None
            self.current = None
        elif kind == "case" and isinstance(ev.get("part"), str) and isinstance(ev.get("case"), int):
            cur = self.current or {}
            if cur.get("what") == "case" and cur.get("part") == ev["part"] and cur.get("case") == ev["case"]:
                state.cases[(ev["part"], ev["case"])] = ev
                self.last_part = ev["part"]
                self.current = None
        elif kind == "tampered" and isinstance(ev.get("changes"), list):
            state.tampered.update(str(c)[:200] for c in ev["changes"][:20])
        elif kind == "done":
            self.done = True
            self.current = None


def _why_stopped(run: _Run, s: Settings) -> tuple[str, str]:
    res = run.sandbox
    if res.timed_out:
        return res.killed_reason or "did not finish in time", "timeout"
    rc = res.returncode
    if rc is not None and rc < 0:
        import signal as _signal
        try:
            name = _signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        if name == "SIGXCPU":
            return "used up its CPU time", "timeout"
        if name == "SIGXFSZ":
            return "wrote a file larger than allowed", "process-exit"
        return f"was killed by {name}", "process-exit"
    return f"ended the Python process (exit code {rc})", "process-exit"


def _next_step(pending: list[dict], run: _Run) -> dict | None:
    """The step to blame when the child died between steps: the part whose cases were
    being reported, else the step after the last cell that finished."""
    if run.last_part is not None:
        return {"kind": "call", "part": run.last_part}
    if run.last_cell is None:
        return pending[0] if pending else None
    after = False
    for st in pending:
        if after:
            return st
        if st["kind"] == "cell" and st["index"] == run.last_cell:
            after = True
    return None
