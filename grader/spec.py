"""What a per-assignment check spec (grader/checks/<assignment>.py) provides.

A spec module defines

    ASSIGNMENT = "ps01-state-space"        # the folder name under solutions/
    PARTS = [Part(...), ...]               # one per autograded answer cell (grade_id)

and nothing of it ever reaches a student: it lives outside solutions/ (whose
extra files nbgrader would copy into exercises/) and is not visible inside the
sandbox. Points are not in the spec: they are read from the source notebook
(the sum of the points of the test cells that follow each answer cell).

For each part, the grader
1. builds the seeded inputs once, in its own process (``cases()``), with any
   reference results they need (``Case.expect``, computed with kflib);
2. sends only ``Case.args`` (plain numbers and float arrays) to the sandbox, where
   the student's function is called and its return value is turned into plain
   arrays by ``to_plain`` -- a small self-contained function whose *source* is
   sent to the sandbox (it may use ``np`` and ``kflib``, nothing else);
3. compares the plain arrays it gets back with ``check(case, outputs)``, which
   returns a list of problems (empty: the case passes). Problems are shown to the
   student: describe what is wrong, never the expected values.

A part earns its points when every case passes, no input was changed (unless
``check_mutation=False``; the child sends back every argument after the call,
nested containers too, and this process compares them with the inputs), and no
switched-off kflib function was called during the part's calls.

``Part.allow`` and ``Part.forbid`` come from ``kflib.testing.EXERCISES``, the one
    definition the hidden tests use too (a spec may only override them in tests).
``Part.allow`` is an ALLOW-list: the kflib functions and classes the answer may call
    (say ``("kflib.LinearGaussianSSM",)``; a class stands for its methods). Every
    other kflib function -- public or private, top-level or a method written in a
    class, in every module -- is switched off while the part's cases run, in the
    trusted check (its copy of kflib lacks their code; see kflib/testing.py for the
    rule, which the hidden tests' ``kflib.testing.call_allowing`` follows too).
    What the allowed functions call inside kflib stays on.
``Part.forbid`` names functions outside kflib that are switched off too, e.g.
    ``"scipy.linalg.solve_discrete_are"``. Those cannot be left out of the
    sandbox (the library is installed there), so before any student code runs the
    child replaces the function by a tripwire in every module that holds it (so a
    reference captured by an import is a tripwire too), trips the wire when the
    function's module is run again (importlib.reload, a re-import; an audit hook)
    and watches that module for tampering. This stops calls and the usual ways
    around them, but unlike kflib's the real code is still on disk: a student
    who executes the library's source under another name, or who patches the
    child's own code, is not caught. Name private helpers that do the work too
    (ps03 forbids scipy's ``_solve_discrete_are`` as well, where it exists).
    kflib names are not accepted here: kflib is governed by ``allow`` alone.
Parts with different ``allow`` or ``forbid`` are checked in several sandboxed
    children, one per distinct pair, each with its own copy of kflib.
``Case.function``
    The name of the function this case calls, when one answer cell defines
    several (say ``ewma_weight`` and ``steady_filter``) and the part's points need
    both: the part's cases may call different functions; None (the default)
    calls ``Part.function``.
``Case.kwargs``
    Keyword arguments of the call (plain values), for tests that call with keywords.
``Part.to_plain``
    May be a dict {function name: converter} when the cases call several functions.
``Part.from_plain``
    A self-contained function, sent to the sandbox like ``to_plain``, that turns
    ``Case.args`` (plain data) into the arguments of the call (a tuple), for
    functions that take objects, e.g. ``def gap_args(F, H, Q, R, x0, P0, y): return
    (kflib.LinearGaussianSSM(F, H, Q, R, x0, P0), y)``. The mutation check then
    applies to the arguments it returns (``arg_names`` names those): the grader runs
    it in its own process too, to rebuild the inputs the child's arguments-after-
    the-call are compared with (nested containers and dataclass fields included).
``Part.stand_ins``
    {name: function}: while this part's cases run, the student's functions of
    those names (from other parts) are replaced by these self-contained functions
    (sent to the sandbox like ``to_plain``), and put back afterwards -- so that a
    part is graded on its own, like hidden tests that swap a notebook's other
    answers for correct versions. Sandbox-side helpers see the part's copy of kflib:
    one that calls a function the part does not allow trips the wire, as it does in
    the notebook (ps04's stand-ins therefore use numpy alone).

Every function whose source goes to the sandbox (``to_plain``, ``from_plain``,
stand-ins) must be a plain ``def`` at the top level of the spec module, using
nothing but its arguments, ``np`` and ``kflib``: it is compiled in the child,
before any student code runs, from its source alone.
"""

from __future__ import annotations

import importlib
import inspect
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass
class Case:
    """One call of the student's function."""

    args: tuple                       # plain numbers and numpy float arrays
    label: str                        # shown to the student, e.g. "n=3, m=2, T=20" -- never values
    expect: Any = None                # grader-side only: what check() compares with
    function: str | None = None       # the function to call, if not the part's own (see above)
    kwargs: dict = field(default_factory=dict)   # keyword arguments (plain values)


@dataclass
class Part:
    grade_id: str                     # the answer cell's nbgrader grade_id
    function: str                     # the name the student's notebook must define
    signature: str                    # shown in messages, e.g. "constant_velocity_model(dt, q, r)"
    cases: Callable[[], list[Case]]
    to_plain: Callable | dict         # runs in the sandbox: return value -> {name: array-like}
    check: Callable[[Case, dict], list[str]]
    allow: tuple[str, ...] | None = None   # kflib the answer may call; None: kflib.testing.EXERCISES
    forbid: tuple[str, ...] | None = None  # functions OUTSIDE kflib switched off; None: the same
    check_mutation: bool = True
    arg_names: tuple[str, ...] = ()   # for "do not change the arrays you are given (w)"
    from_plain: Callable | None = None            # runs in the sandbox: Case.args -> call arguments
    stand_ins: dict[str, Callable] = field(default_factory=dict)   # other parts' functions, replaced

    def to_plain_source(self) -> dict:
        if isinstance(self.to_plain, dict):
            return {"by_function": {name: source_of(f) for name, f in self.to_plain.items()}}
        return source_of(self.to_plain)

    def from_plain_source(self) -> dict | None:
        return None if self.from_plain is None else source_of(self.from_plain)

    def stand_in_sources(self) -> dict:
        return {name: source_of(f) for name, f in self.stand_ins.items()}


def source_of(function: Callable) -> dict:
    """What the sandbox needs to rebuild a spec's helper: its name and source."""
    return {"name": function.__name__, "source": textwrap.dedent(inspect.getsource(function))}


@dataclass
class Spec:
    assignment: str
    parts: list[Part]
    module: str
    _cases: dict = field(default_factory=dict)

    def cases(self, grade_id: str) -> list[Case]:
        if grade_id not in self._cases:
            part = self.part(grade_id)
            self._cases[grade_id] = part.cases()
        return self._cases[grade_id]

    def part(self, grade_id: str) -> Part:
        for p in self.parts:
            if p.grade_id == grade_id:
                return p
        raise KeyError(grade_id)

    def groups(self) -> list[tuple[list[str], tuple[str, ...], list[str]]]:
        """The parts checked together by one sandboxed child, with what they may call of
        kflib and what is switched off outside it: [(grade_ids, allow, forbid)]."""
        found: dict[tuple, list[str]] = {}
        for p in self.parts:
            key = (tuple(sorted(set(p.allow))), tuple(sorted(set(p.forbid))))
            found.setdefault(key, []).append(p.grade_id)
        return [(gids, allow, list(forbid)) for (allow, forbid), gids in found.items()]


def module_name(assignment: str) -> str:
    """grader.checks.<assignment with - and . as _>."""
    return "grader.checks." + "".join(c if c.isalnum() else "_" for c in assignment)


def load(assignment: str) -> Spec | None:
    """The spec of an assignment, or None when grader/checks/ has none."""
    name = module_name(assignment)
    try:
        mod = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise
    if getattr(mod, "ASSIGNMENT", None) != assignment:
        raise ValueError(f"{name}.ASSIGNMENT must be {assignment!r}")
    parts = list(mod.PARTS)
    ids = [p.grade_id for p in parts]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{name}: a grade_id appears twice in PARTS: {ids}")
    from kflib.testing import EXERCISES, part_rules

    if set(EXERCISES.get(assignment, {})) != set(ids):
        raise ValueError(f"{name}: the parts {ids} are not those of kflib.testing.EXERCISES"
                         f"[{assignment!r}] ({sorted(EXERCISES.get(assignment, {}))})")
    for p in parts:
        allow, block = part_rules(assignment, p.grade_id)
        if p.allow is None:
            p.allow = allow
        if p.forbid is None:
            p.forbid = block
        ours = [q for q in p.forbid if q == "kflib" or q.startswith("kflib.")]
        if ours:
            raise ValueError(f"{name}: part {p.grade_id} forbids {ours}; kflib is switched off by "
                             "the allow-list (Part.allow), not by forbid")
    return Spec(assignment, parts, name)


# --------------------------------------------------------------------------
# helpers for check() functions


def compare(name: str, got, want, *, rtol: float = 1e-7, atol: float = 0.0) -> list[str]:
    """Problems with one returned array, described without the expected values."""
    want = np.asarray(want, dtype=float)
    if got is None:
        return [f"{name} is missing"]
    got = np.asarray(got, dtype=float)
    if got.shape != want.shape:
        return [f"{name} has shape {got.shape}; it should have shape {want.shape}"]
    bad_got = ~np.isfinite(got)
    if np.any(bad_got & np.isfinite(want)):
        return [f"{name} contains NaN or infinity"]
    if not np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True):
        scale = np.maximum(np.abs(want), atol / rtol if rtol else 1.0)
        scale = np.where(scale > 0, scale, 1.0)
        err = np.nanmax(np.abs(got - want) / scale)
        return [f"{name} is wrong (largest error {err:.1e} relative to its size)"]
    return []
