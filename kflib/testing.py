"""Switch off every kflib function an exercise does not allow (an allow-list).

The exercise notebooks' hidden tests call the student's answer through
:func:`call_allowing`; the course's trusted check (``grader/trusted.py``) builds
its sandboxed copy of kflib from :func:`switched_off_units`. Both follow ONE rule,
defined here:

* A *unit* is a function defined at the top level of a kflib module, or a method
  written in a class of a kflib module ("kflib.filter.kalman_filter",
  "kflib.model.LinearGaussianSSM.replace"), public or private, in every module
  of the package, including modules added later (the package folder is read).
* An exercise names what its answers may call (``allow``), e.g.
  ``("kflib.LinearGaussianSSM",)``; a class stands for all of its methods.
  What the allowed units themselves call inside kflib (found by reading their
  source) stays on too, so that, say, a model still checks its arguments.
* Every other unit is switched off while the answer runs. Classes stay types
  (``isinstance`` works, a dataclass still holds data), but their methods --
  including ``__post_init__``, which builds and checks them -- are switched off
  unless the class is allowed.

In the student's kernel (:func:`call_allowing`) a unit is switched off by
replacing the code of the function object itself, so every reference to it
(an alias, a default argument, a list, a closure) reaches the switch, and it is
put back when the call returns. A call that reached a switched-off unit fails
the test even when the answer caught the error. The trusted check goes further:
its copy of kflib does not contain the code of a switched-off unit at all.

    >>> import numpy as np, kflib
    >>> from kflib.testing import call_allowing, ReferenceCallBlocked
    >>> def cheat(y):
    ...     model = kflib.LinearGaussianSSM([[1.0]], [[1.0]], [[1.0]], [[1.0]], [0.0], [[1.0]])
    ...     return kflib.kalman_filter(model, y).x_filt
    >>> try:
    ...     call_allowing(("kflib.LinearGaussianSSM",), cheat, np.zeros((3, 1)))
    ... except ReferenceCallBlocked as exc:
    ...     print(str(exc).splitlines()[0])
    your answer called kflib.filter.kalman_filter, which is switched off here
    >>> call_allowing(("kflib.LinearGaussianSSM", "kflib.kalman_filter"), cheat, np.zeros((3, 1))).shape
    (3, 1)

Course: the exercises (every notebook's hidden tests); exercise all of them;
tests: test_allowlist.py.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import importlib.abc
import inspect
import sys
import types
from pathlib import Path

__all__ = ["ReferenceCallBlocked", "call_allowing", "call_part", "allowing", "part_rules",
           "EXERCISES", "switched_off_units", "allowed_units", "all_units", "describe_allowed"]

PACKAGE_DIR = Path(__file__).resolve().parent
_SELF = "kflib.testing"

# What each exercise part may call: (kflib allow-list, functions outside kflib switched
# off). The ONE definition, read by the notebooks' hidden tests (call_part) and by the
# trusted check's specs (grader/spec.py fills Part.allow and Part.forbid from it); each
# notebook states the same in its text (tests/test_allowlist.py checks that).
_MODEL = ("kflib.LinearGaussianSSM",)
_DARE = ("scipy.linalg.solve_discrete_are", "scipy.linalg._solvers._solve_discrete_are")
EXERCISES: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "ps01-state-space": dict.fromkeys(("cv_model", "simulate", "prior", "arima"), (_MODEL, ())),
    "ps02-kalman-filter": dict.fromkeys(("predict", "update", "filter", "missing"), (_MODEL, ())),
    "ps03-gain": {**dict.fromkeys(("ll_steady", "riccati", "steady_gain"), (_MODEL, _DARE)),
                  **dict.fromkeys(("ewma", "projection"), (_MODEL, ()))},
    "ps04-smoothing": {**dict.fromkeys(("gain", "smooth", "lag_one"), (_MODEL, ())),
                       "gap": (_MODEL + ("kflib.kalman_filter", "kflib.rts_smoother"), ())},
    "ps05-em": {**dict.fromkeys(("m_step_R", "m_step_Q"), (_MODEL, ())),
                "em_local_level": (_MODEL + ("kflib.kalman_filter", "kflib.rts_smoother",
                                             "kflib.models.local_level"), ())},
    "ps06-lstm": dict.fromkeys(("nll", "learned", "floors", "quiz"), ((), ())),
    "ps07-nonlinear": dict.fromkeys(("radar", "ekf", "unscented"), ((), ())),
    "ps08-structural": dict.fromkeys(("seasonal_dummy", "local_linear_trend", "trig_seasonal",
                                      "combine", "forecast"), (_MODEL, ())),
    "ps09-anomaly": dict.fromkeys(("nis", "gate", "robust", "scores", "consistency"), (_MODEL, ())),
}


def part_rules(assignment: str, part: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(allow, block) of one exercise part; block lists only functions that exist here
    (a private helper of another library may be missing from its version)."""
    try:
        allow, block = EXERCISES[assignment][part]
    except KeyError:
        raise ValueError(f"kflib.testing.EXERCISES has no part {part!r} of {assignment!r}") from None
    present = []
    for qual in block:
        modname, _, attr = qual.rpartition(".")
        try:
            ok = callable(getattr(importlib.import_module(modname), attr, None))
        except ImportError:
            ok = False
        if ok:
            present.append(qual)
        elif not any(p.startswith("_") for p in qual.split(".")):
            raise ValueError(f"{assignment} {part}: {qual} does not exist")
    return tuple(allow), tuple(present)


class ReferenceCallBlocked(AssertionError):
    """An answer called a kflib function the exercise switches off."""


# --------------------------------------------------------------------------
# reading kflib's source: units and what each one refers to


def _module_files(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """{module name: file} for every module of the package (folder walk; nothing imported)."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(package_dir).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(["kflib", *parts])] = path
    return out


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _imports(nodes, module: str, is_package: bool) -> dict[str, tuple[str, str | None]]:
    """Local name -> (module, attribute or None for the module itself)."""
    found = {}
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            src = (_resolve_relative(module, is_package, node.level, node.module) if node.level
                   else node.module or "")
            for alias in node.names:
                found[alias.asname or alias.name] = (src, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    found[alias.asname] = (alias.name, None)
                else:
                    top = alias.name.split(".")[0]
                    found[top] = (top, None)
    return found


def _chains(node) -> set[tuple[str, ...]]:
    """Every dotted name a piece of code refers to: ("np",), ("kst", "combine"), ..."""
    out = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute):
            chain, cur = [], sub
            while isinstance(cur, ast.Attribute):
                chain.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name):
                out.add(tuple([cur.id, *reversed(chain)]))
        elif isinstance(sub, ast.Name):
            out.add((sub.id,))
    return out


class _Index:
    """Units of kflib's source and the references of each one."""

    def __init__(self, package_dir: Path = PACKAGE_DIR):
        self.files = _module_files(package_dir)
        self.trees = {m: ast.parse(p.read_text(), str(p)) for m, p in self.files.items()}
        self.toplevel: dict[str, dict[str, ast.AST]] = {}    # module -> name -> def/class node
        self.imports: dict[str, dict] = {}
        self.units: dict[str, tuple[str, ast.AST, dict]] = {}   # unit -> (module, node, local imports)
        self.classes: dict[str, list[str]] = {}              # class -> its method units
        self.roots: set[str] = set()                         # needed to import kflib at all
        for mod, tree in self.trees.items():
            is_pkg = self.files[mod].name == "__init__.py"
            self.toplevel[mod] = {n.name: n for n in tree.body
                                  if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
            self.imports[mod] = _imports([n for n in tree.body
                                          if isinstance(n, (ast.Import, ast.ImportFrom))], mod, is_pkg)
        for mod, tree in self.trees.items():
            is_pkg = self.files[mod].name == "__init__.py"
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    unit = f"{mod}.{node.name}"
                    local = _imports([n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))],
                                     mod, is_pkg)
                    self.units[unit] = (mod, node, local)
                    if node.name.startswith("__") and node.name.endswith("__"):
                        self.roots.add(unit)          # module machinery (__getattr__)
                elif isinstance(node, ast.ClassDef):
                    cls = f"{mod}.{node.name}"
                    self.classes[cls] = []
                    for item in node.body:
                        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                            unit = f"{cls}.{item.name}"
                            local = _imports([n for n in ast.walk(item)
                                              if isinstance(n, (ast.Import, ast.ImportFrom))], mod, is_pkg)
                            self.units[unit] = (mod, item, local)
                            self.classes[cls].append(unit)
                        else:                          # class attributes run when kflib is imported
                            self.roots |= self._refs(mod, item, {})
                    for extra in [*node.bases, *node.keywords, *node.decorator_list]:
                        self.roots |= self._refs(mod, extra, {})
                elif not isinstance(node, (ast.Import, ast.ImportFrom)):
                    self.roots |= self._refs(mod, node, {})

    # ------------------------------------------------------------------

    def canonical(self, mod: str, name: str, depth: int = 0) -> str | None:
        """The unit, class or module that `name` in module `mod` stands for."""
        if depth > 20 or mod not in self.trees:
            return None
        if name in self.toplevel[mod]:
            return f"{mod}.{name}"
        if name in self.imports[mod]:
            src, attr = self.imports[mod][name]
            return self._target(src, attr, depth + 1)
        if f"{mod}.{name}" in self.trees:
            return f"{mod}.{name}"
        return None

    def _target(self, src: str, attr: str | None, depth: int) -> str | None:
        if attr is None:
            return src if src in self.trees else None
        if f"{src}.{attr}" in self.trees:
            return f"{src}.{attr}"
        return self.canonical(src, attr, depth)

    def resolve(self, dotted: str) -> str | None:
        """A name as a user writes it ("kflib.kalman_filter") -> its unit or class."""
        parts = dotted.split(".")
        if parts[0] != "kflib":
            return None
        return self._follow("kflib", parts[1:])

    def _follow(self, current: str, rest: list[str]) -> str | None:
        for i, attr in enumerate(rest):
            if current in self.trees:                  # a module
                nxt = self.canonical(current, attr)
                if nxt is None:
                    return None
                current = nxt
            elif current in self.classes:             # a method of a class
                unit = f"{current}.{attr}"
                return unit if unit in self.units and i == len(rest) - 1 else current
            else:
                return current
        return current

    def _refs(self, mod: str, node, local: dict) -> set[str]:
        out = set()
        for chain in _chains(node):
            first = chain[0]
            if first in local:
                src, attr = local[first]
                start = self._target(src, attr, 0)
            else:
                start = self.canonical(mod, first)
            if start is None:
                continue
            target = self._follow(start, list(chain[1:])) if len(chain) > 1 else start
            for t in {start, target}:
                if t is not None and (t in self.units or t in self.classes):
                    out.add(t)
        return out

    def references(self, unit: str) -> set[str]:
        mod, node, local = self.units[unit]
        refs = self._refs(mod, node, local)
        if "." in unit:
            owner = unit.rsplit(".", 1)[0]
            if owner in self.classes:                 # self.other_method
                refs |= set(self.classes[owner])
        return refs

    def closure(self, start: set[str]) -> set[str]:
        """Units reachable from `start` (units or classes), classes expanded to their methods."""
        seen: set[str] = set()
        todo = list(start)
        while todo:
            item = todo.pop()
            if item in seen:
                continue
            seen.add(item)
            if item in self.classes:
                todo.extend(self.classes[item])
            elif item in self.units:
                todo.extend(self.references(item))
        return {u for u in seen if u in self.units}


@functools.lru_cache(maxsize=None)
def _index(package_dir: str = str(PACKAGE_DIR)) -> _Index:
    return _Index(Path(package_dir))


def _canonical_allow(allow, index: _Index) -> set[str]:
    out = set()
    for name in allow:
        target = index.resolve(name)
        if target is None or (target not in index.units and target not in index.classes):
            raise ValueError(f"allow names {name!r}, which is not a function or class of kflib")
        out.add(target)
    return out


def all_units(package_dir: Path = PACKAGE_DIR) -> set[str]:
    """Every unit of kflib (top-level functions and methods written in its classes), but
    those of this module, which is not part of what an exercise can call (the trusted
    check's copy of kflib leaves it out)."""
    return {u for u in _index(str(package_dir)).units if not u.startswith(_SELF + ".")}


def allowed_units(allow, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """The units that stay on: those allowed, what they call, and module machinery."""
    index = _index(str(package_dir))
    start = _canonical_allow(allow, index) | index.roots
    return index.closure(start) | {u for u in index.units if u.startswith(_SELF + ".")}


def switched_off_units(allow, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """Every unit of kflib that an exercise allowing `allow` switches off."""
    return set(_switched_off(tuple(allow), str(package_dir)))


@functools.lru_cache(maxsize=64)
def _switched_off(allow: tuple[str, ...], package_dir: str) -> frozenset[str]:
    return frozenset(all_units(Path(package_dir)) - allowed_units(allow, Path(package_dir)))


def describe_allowed(allow) -> str:
    """How a notebook states it: "kflib.LinearGaussianSSM and kflib.kalman_filter"."""
    names = list(allow)
    if not names:
        return "no kflib function"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# --------------------------------------------------------------------------
# in a running Python: switching units off by replacing their code


_HITS: list[str] = []


def _trip(unit: str):
    _HITS.append(unit)
    return ReferenceCallBlocked(f"{unit} is switched off here: write this part yourself")


@functools.lru_cache(maxsize=None)
def _blocked_code(unit: str, freevars: tuple[str, ...]) -> types.CodeType:
    lines = ["def _outer():"]
    lines += [f"    {v} = None" for v in freevars]
    lines += ["    def _blocked(*args, **kwargs):"]
    if freevars:
        lines += ["        (" + ", ".join(freevars) + ",)"]
    lines += [f"        raise __import__({_SELF!r}, fromlist=['_trip'])._trip({unit!r})",
              "    return _blocked"]
    ns: dict = {}
    exec(compile("\n".join(lines), f"<switched off: {unit}>", "exec"), ns)
    return ns["_outer"]().__code__


def _functions_of(value):
    """The plain functions behind a module attribute or a class attribute."""
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, property):
        return [f for f in (value.fget, value.fset, value.fdel) if f is not None]
    out = []
    seen = set()
    while isinstance(value, types.FunctionType) and id(value) not in seen:
        seen.add(id(value))
        out.append(value)
        value = getattr(value, "__wrapped__", None)
    return out


def _loaded_units() -> dict[str, list[types.FunctionType]]:
    """Unit -> the function objects that carry its code, in every loaded kflib module."""
    found: dict[str, list[types.FunctionType]] = {}
    for name, mod in list(sys.modules.items()):
        if not (name == "kflib" or name.startswith("kflib.")) or name == _SELF or mod is None:
            continue
        try:
            table = dict(vars(mod))
        except TypeError:
            continue
        for key, value in table.items():
            if inspect.isclass(value) and getattr(value, "__module__", None) == name:
                for attr, member in list(vars(value).items()):
                    for f in _functions_of(member):
                        if f.__module__ == name:
                            found.setdefault(f"{name}.{value.__qualname__}.{attr}", []).append(f)
            else:
                for f in _functions_of(value):
                    if getattr(f, "__module__", None) == name and "." not in f.__qualname__.replace("<locals>", ""):
                        found.setdefault(f"{name}.{f.__qualname__}", []).append(f)
    return found


class _Switch:
    def __init__(self, off: set[str], namespaces: list[dict]):
        self.off = off
        self.namespaces = namespaces
        self.saved: dict[int, tuple[types.FunctionType, types.CodeType]] = {}
        self.replaced: list[tuple[dict, str, object]] = []

    def apply(self):
        for unit, functions in _loaded_units().items():
            if unit not in self.off:
                continue
            for f in functions:
                if id(f) in self.saved:
                    continue
                code = f.__code__
                new = _blocked_code(unit, code.co_freevars)
                if new.co_freevars == code.co_freevars:
                    self.saved[id(f)] = (f, code)
                    f.__code__ = new
                else:                                  # cannot happen with plain CPython; be safe
                    self._replace_everywhere(f, unit)

    def _replace_everywhere(self, f, unit):
        def stub(*args, **kwargs):
            raise _trip(unit)
        spaces = [vars(m) for n, m in list(sys.modules.items())
                  if n == "kflib" or n.startswith("kflib.")] + self.namespaces
        for space in spaces:
            for key, value in list(space.items()):
                if value is f:
                    self.replaced.append((space, key, value))
                    space[key] = stub

    def undo(self):
        for f, code in self.saved.values():
            f.__code__ = code
        for space, key, value in reversed(self.replaced):
            space[key] = value
        self.saved.clear()
        self.replaced.clear()


class _KflibImports(importlib.abc.MetaPathFinder):
    """While switched off, a kflib module imported for the first time is switched off too."""

    def __init__(self, switch: _Switch):
        self.switch = switch

    def find_spec(self, fullname, path, target=None):
        if not fullname.startswith("kflib.") or fullname == _SELF:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                loader = spec.loader
                if loader is not None and hasattr(loader, "exec_module"):
                    switch = self.switch

                    class Loader(importlib.abc.Loader):
                        def create_module(self, spec):
                            return loader.create_module(spec)

                        def exec_module(self, module):
                            loader.exec_module(module)
                            switch.apply()
                    spec.loader = Loader()
                return spec
        return None


def _other_functions(block) -> list[tuple[str, types.FunctionType]]:
    out = []
    for qual in block:
        modname, _, attr = qual.rpartition(".")
        obj = getattr(importlib.import_module(modname), attr, None)
        functions = _functions_of(obj)
        if not functions:
            raise ValueError(f"block names {qual!r}, which is not a Python function")
        out += [(qual, f) for f in functions]
    return out


@contextlib.contextmanager
def allowing(allow=(), *, block=(), namespace: dict | None = None, who: str = "your answer"):
    """Within the block, every kflib unit except `allow` (and what those call) is switched
    off, and so are the functions outside kflib named in `block` (say
    "scipy.linalg.solve_discrete_are"). Leaving the block puts everything back; if any
    switched-off function was reached, ReferenceCallBlocked is raised then, even when the
    code inside caught the error. `namespace` (the notebook's globals by default) is
    searched too where a function's code cannot be replaced."""
    allow = tuple(allow)
    off = switched_off_units(allow)
    if namespace is None:
        main = sys.modules.get("__main__")
        namespace = vars(main) if main is not None else {}
    switch = _Switch(off, [namespace])
    finder = _KflibImports(switch)
    others = _other_functions(block)
    before = len(_HITS)
    saved_others = []
    sys.meta_path.insert(0, finder)
    try:
        switch.apply()
        for qual, f in others:
            saved_others.append((f, f.__code__))
            f.__code__ = _blocked_code(qual, f.__code__.co_freevars)
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
        for f, code in saved_others:
            f.__code__ = code
        switch.undo()
        hits = list(dict.fromkeys(_HITS[before:]))
        del _HITS[before:]
        if hits:
            may = describe_allowed(allow)
            raise ReferenceCallBlocked(
                f"{who} called {', '.join(hits)}, which is switched off here\n"
                f"(this part may call {may} of kflib; write the rest yourself)")


def call_part(assignment: str, part: str, function, *args, **kwargs):
    """function(*args, **kwargs) under the rules of one exercise part (EXERCISES)."""
    allow, block = part_rules(assignment, part)
    with allowing(allow, block=block):
        return function(*args, **kwargs)


def call_allowing(allow, function, *args, block=(), namespace: dict | None = None, **kwargs):
    """function(*args, **kwargs) with every kflib function but `allow` switched off
    (see :func:`allowing`); returns what it returns."""
    with allowing(allow, block=block, namespace=namespace):
        return function(*args, **kwargs)
