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
   reference results they need (``Case.expect``, computed with kflib); the random
   inputs of the hidden tests come from ``kflib.exercise_cases``, which the
   notebooks' hidden tests call too, so that the two cannot drift apart;
2. sends only ``Case.args`` (plain numbers and float arrays) to the sandbox, where
   the student's function is called and its return value is turned into plain
   arrays as ``Part.returns`` declares (below; the converter is generated from
   the declaration and its source sent to the sandbox), or, for a
   return value no declaration covers, by ``Part.to_plain`` -- a small
   self-contained function whose *source* is sent to the sandbox (it may use
   ``np`` and ``kflib``, nothing else);
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
``Part.returns``
    What the student's function returns, declared (one of):

    ``"G"``                          one array, sent as ``G``
    ``("x_pred", "P_pred")``          a tuple of exactly these elements, in this order
    ``Attrs("kflib.LinearGaussianSSM", "F", "H", ..., none=("B",))``
                                     an instance of that kflib class; the named attributes
                                     are sent, those in ``none`` must be None
    ``Keys("q1:letter", ...)``        a dict with exactly these keys

    Each element is ``"name"`` (an array of floats), ``"name:number"`` (one number,
    sent with shape (); anything ``float()`` takes, a torch scalar too) or
    ``"name:letter"`` (a one-letter string, case and spaces ignored, sent as its
    index: a -> 0, b -> 1, ...). A return value of another type or length, or an
    element that is not what it says, is an error whose message names the function
    and what it must return. A dict {function name: declaration} when the cases
    call several functions.
``Part.to_plain``
    Instead of ``returns``: a self-contained converter (return value -> {name:
    array-like}), for a value no declaration covers (ps06's trained network, which
    the converter runs). May be a dict {function name: converter} too.
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
stand-ins; here ``plain_returns``, the engine of the converters generated from
``returns``) must be a plain ``def`` at the top level of its module, using
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

import kflib  # noqa: F401 -- plain_returns, which the sandbox runs from its source, sees kflib


@dataclass
class Case:
    """One call of the student's function."""

    args: tuple                       # plain numbers and numpy float arrays
    label: str                        # shown to the student, e.g. "n=3, m=2, T=20" -- never values
    expect: Any = None                # grader-side only: what check() compares with
    function: str | None = None       # the function to call, if not the part's own (see above)
    kwargs: dict = field(default_factory=dict)   # keyword arguments (plain values)


@dataclass(frozen=True)
class Attrs:
    """``returns=Attrs("kflib.LinearGaussianSSM", "F", "H", none=("B",))``: an instance of
    that kflib class, its named attributes sent as arrays; those in ``none`` must be None."""

    type: str
    names: tuple[str, ...]
    none: tuple[str, ...]

    def __init__(self, type: str, *names: str, none: tuple[str, ...] = ()):
        if not (type == "kflib" or type.startswith("kflib.")):
            raise ValueError(f"Attrs: the class must be kflib's (a path 'kflib.X'), not {type!r}")
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "names", tuple(names))
        object.__setattr__(self, "none", tuple(none))


@dataclass(frozen=True)
class Keys:
    """``returns=Keys("q1:letter", "q2:letter")``: a dict with exactly these keys."""

    names: tuple[str, ...]

    def __init__(self, *names: str):
        object.__setattr__(self, "names", tuple(names))


ELEMENT_KINDS = ("array", "number", "letter")


def _element(text) -> tuple[str, str]:
    if not isinstance(text, str) or not text:
        raise TypeError(f"returns: an element must be a name such as 'x_filt' or 'loglik:number', "
                        f"not {text!r}")
    name, _, kind = text.partition(":")
    kind = kind or "array"
    if not name.isidentifier() or kind not in ELEMENT_KINDS:
        raise ValueError(f"returns: {text!r} is not 'name' or 'name:kind' with kind one of "
                         f"{', '.join(ELEMENT_KINDS)}")
    return name, kind


def returns_form(declared) -> tuple:
    """A ``returns`` declaration (one function's) as plain, repr-able data, checked:
    ("one", element), ("tuple", elements), ("attrs", class path, elements, none) or
    ("keys", elements), an element being (name, kind)."""
    if isinstance(declared, str):
        return ("one", _element(declared))
    if isinstance(declared, tuple):
        if not declared:
            raise ValueError("returns: an empty tuple declares nothing")
        form = ("tuple", tuple(_element(e) for e in declared))
    elif isinstance(declared, Attrs):
        form = ("attrs", declared.type, tuple(_element(e) for e in declared.names),
                tuple(_element(e)[0] for e in declared.none))
    elif isinstance(declared, Keys):
        form = ("keys", tuple(_element(e) for e in declared.names))
    else:
        raise TypeError(f"returns: {declared!r} is not a name, a tuple of names, Attrs(...) or Keys(...)")
    names = [name for name, _ in form[2 if form[0] == "attrs" else 1]]
    if len(set(names)) != len(names):
        raise ValueError(f"returns: a name appears twice in {declared!r}")
    return form


def plain_returns(out, form, function):
    """The generated converters' engine (runs in the sandbox, from its source): the return
    value ``out`` of ``function`` -> {name: float array}, as ``form`` (returns_form) says."""
    def what_it_is(value):
        text = type(value).__name__
        if isinstance(value, (tuple, list, dict)):
            text += f" of length {len(value)}"
        return text

    def convert(name, kind, value):
        if value is None:                       # np.asarray would make it NaN
            raise TypeError(f"{function}: {name} is None; it must be "
                            + ("one letter" if kind == "letter" else "one number" if kind == "number"
                               else "an array of numbers"))
        if kind == "letter":
            letter = value.strip().lower() if isinstance(value, str) else None
            if letter is None or len(letter) != 1 or not ("a" <= letter <= "z"):
                raise TypeError(f"{function}: {name} must be one letter such as 'a'; "
                                f"it is {value!r}"[:300])
            return np.array(float(ord(letter) - ord("a")))
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError, RuntimeError) as exc:
            if kind != "number":
                raise TypeError(f"{function}: {name} must be an array of numbers; "
                                f"it is {what_it_is(value)} ({exc})"[:300]) from None
            try:
                if hasattr(value, "detach"):            # a torch scalar that requires grad, say
                    value = value.detach()
                array = np.asarray(float(value))
            except (TypeError, ValueError, RuntimeError):
                raise TypeError(f"{function}: {name} must be one number; "
                                f"it is {what_it_is(value)}") from None
        if kind == "number":
            if array.size != 1:
                raise TypeError(f"{function}: {name} must be one number; "
                                f"it has shape {array.shape}")
            array = array.reshape(())
        return array

    shape = form[0]
    if shape == "one":
        name, kind = form[1]
        return {name: convert(name, kind, out)}
    if shape == "tuple":
        elements = form[1]
        if not isinstance(out, tuple) or len(out) != len(elements):
            raise TypeError(f"{function} must return the tuple "
                            f"({', '.join(name for name, _ in elements)}); it returned {what_it_is(out)}")
        return {name: convert(name, kind, value) for (name, kind), value in zip(elements, out)}
    if shape == "attrs":
        path, elements, none = form[1], form[2], form[3]
        cls = kflib
        for step in path.split(".")[1:]:
            cls = getattr(cls, step)
        if not isinstance(out, cls):
            raise TypeError(f"{function} must return a {path}; it returned {what_it_is(out)}")
        for name in none:
            if getattr(out, name, None) is not None:
                raise ValueError(f"{function} must return a {path.split('.')[-1]} with {name} = None "
                                 f"(no {name})")
        return {name: convert(name, kind, getattr(out, name, None)) for name, kind in elements}
    if shape == "keys":
        elements = form[1]
        names = [name for name, _ in elements]
        if not isinstance(out, dict):
            raise TypeError(f"{function} must return a dict; it returned {what_it_is(out)}")
        if sorted(str(k) for k in out) != sorted(names):
            keys = ", ".join(repr(k) for k in list(out)[:10])
            raise TypeError(f"{function} must return a dict with the keys "
                            f"{', '.join(repr(n) for n in names)}; its keys are {keys or 'none'}"[:300])
        return {name: convert(name, kind, out[name]) for name, kind in elements}
    raise ValueError(f"unknown returns form {shape!r}")


def returns_source(declared, function: str) -> dict:
    """The converter of a ``returns`` declaration, as the sandbox rebuilds it (name, source):
    plain_returns' own source and a one-line wrapper that holds the declaration."""
    form = returns_form(declared)
    wrapper = (f"\n\ndef returns_to_plain(out):\n"
               f"    return plain_returns(out, {form!r}, {function!r})\n")
    return {"name": "returns_to_plain", "source": source_of(plain_returns)["source"] + wrapper}


@dataclass
class Part:
    grade_id: str                     # the answer cell's nbgrader grade_id
    function: str                     # the name the student's notebook must define
    signature: str                    # shown in messages, e.g. "constant_velocity_model(dt, q, r)"
    cases: Callable[[], list[Case]]
    to_plain: Callable | dict | None = None   # runs in the sandbox: return value -> {name: array-like}
    check: Callable[[Case, dict], list[str]] | None = None
    allow: tuple[str, ...] | None = None   # kflib the answer may call; None: kflib.testing.EXERCISES
    forbid: tuple[str, ...] | None = None  # functions OUTSIDE kflib switched off; None: the same
    check_mutation: bool = True
    arg_names: tuple[str, ...] = ()   # for "do not change the arrays you are given (w)"
    from_plain: Callable | None = None            # runs in the sandbox: Case.args -> call arguments
    stand_ins: dict[str, Callable] = field(default_factory=dict)   # other parts' functions, replaced
    returns: Any = None               # what the function returns, declared (see the module's doc)

    def __post_init__(self):
        if self.check is None:
            raise TypeError(f"Part {self.grade_id!r}: check is required")
        if (self.to_plain is None) == (self.returns is None):
            raise TypeError(f"Part {self.grade_id!r}: give returns= or to_plain=, one of the two")
        if self.returns is not None:
            self.to_plain_source()             # a declaration that makes no sense fails here

    def to_plain_source(self) -> dict:
        if self.returns is not None:
            if isinstance(self.returns, dict):
                return {"by_function": {name: returns_source(d, name) for name, d in self.returns.items()}}
            return returns_source(self.returns, self.function)
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
