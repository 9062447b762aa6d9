"""The child of the trusted check: runs ONE student's code in the sandbox.

This file is copied into the sandbox and run there as

    python -I -B runner.py LIB JOB

LIB holds the copy of kflib in which the functions that would answer a part
are tripwires; JOB is a JSON file written by the grader (grader/trusted.py):
the student's code cells in order, where to call which part's function, the
seeded inputs (plain numbers and arrays), and for each part the source of a
small function that turns the return value into plain arrays (and, optionally,
of one that turns the plain inputs into the call's arguments, and of stand-ins
for the student's functions of other parts). JOB may also name functions
outside kflib ("block") that are switched off by tripwires before any student
code runs. Every helper is compiled from its source before the first cell.

It reports on its standard output, one JSON object per line:
  {"event": "fatal", "message": ...}            the job could not be set up (a grader bug)
  {"event": "ready"}                            set up, before any student code
  {"event": "begin", "what": "cell", "index": i}  / {"event": "begin", "what": "case", ...}
  {"event": "cell", "index": i, "error": ...}
  {"event": "case", "part": p, "case": j, "outputs": {...} | "error": {...},
   "inputs_after": [...], ...}                  every argument as it is after the call
  {"event": "tampered", "where": ..., "changes": [...]}
  {"event": "done"}
Arrays travel as {"shape": [...], "data": [...]} (float64, flattened). The grader
trusts none of this: it rebuilds arrays from plain JSON, checks them against
kflib in its own process, compares the arguments after the call with the inputs
it rebuilt itself (no comparison whose verdict counts runs here), and kills this
process when a step overruns. The student's cells run in a fresh module that is
sys.modules["__main__"], not in this file's module, which is not registered at all.

It imports nothing of the grader: the grader's code and data are not visible here.
"""

import builtins
import importlib
import io
import json
import linecache
import math                             # noqa: F401 -- watched for tampering
import os
import re
import signal
import sys
import time
import traceback
import types

LIB, JOB = sys.argv[1], sys.argv[2]

# The result channel: a private copy of stdout; fd 1 and 2 then go to /dev/null,
# so whatever the student prints costs time but never reaches the grader.
_out = os.fdopen(os.dup(1), "w", buffering=1)
_devnull = os.open(os.devnull, os.O_WRONLY)
os.dup2(_devnull, 1)
os.dup2(_devnull, 2)
sys.stdout = io.TextIOWrapper(os.fdopen(os.dup(_devnull), "wb"), write_through=True)
sys.stderr = sys.stdout
_dumps = json.dumps
_monotonic = time.monotonic
_isinstance = isinstance


def emit(obj):
    try:
        _out.write(_dumps(obj, allow_nan=True) + "\n")
        _out.flush()
    except Exception:                   # noqa: BLE001  (the parent closed the pipe: nothing to report to)
        pass


sys.path.insert(0, LIB)
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np                      # noqa: E402
import numpy.linalg                     # noqa: E402,F401
import numpy.testing                    # noqa: E402,F401
try:
    import scipy.linalg                 # noqa: E402,F401
except Exception:                       # noqa: BLE001  (scipy is optional here)
    pass
import kflib                            # noqa: E402  (the tripwired copy in LIB)
import kflib._tripwire as _tripwire     # noqa: E402

with open(JOB) as fh:
    job = json.load(fh)

MAX_ELEMS = int(job.get("max_elements", 1_000_000))
MAX_TEXT = 600


class StepTimeout(BaseException):
    """Raised by SIGALRM when a cell or a call overruns (not an Exception, so that
    `except Exception` in student code does not swallow it)."""


def _on_alarm(signum, frame):
    raise StepTimeout()


def arm(seconds):
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))


def disarm():
    signal.setitimer(signal.ITIMER_REAL, 0.0)


# --------------------------------------------------------------------------
# what student code could tamper with: watched before the first cell, compared later

WATCH = ["builtins", "math", "numpy", "numpy.testing", "numpy.linalg", "scipy.linalg",
         "kflib", *sorted(m for m in sys.modules if m.startswith("kflib."))]


_BLOCKED_FILES = {}                     # source file of a blocked function -> its name


def _audit(event, args):
    # Running a blocked function's module again (importlib.reload, a fresh import after
    # deleting it from sys.modules) would bring the real function back: that trips the wire.
    if event == "exec" and _BLOCKED_FILES and args:
        qual = _BLOCKED_FILES.get(getattr(args[0], "co_filename", None))
        if qual is not None:
            _tripwire.HITS.append(qual)
            raise _tripwire.ReferenceCallBlocked(
                f"{qual} is switched off while grading: its module cannot be loaded again")


def block_functions(names):
    """Switch off functions outside kflib (say scipy.linalg.solve_discrete_are): each one is
    replaced by a tripwire wherever a loaded module holds it; running its module's code
    again trips the wire too (an audit hook, which cannot be removed), and its modules are
    watched, so that any other way of putting it back shows up as tampering."""
    for qual in names:
        modname, _, attr = qual.rpartition(".")
        module = importlib.import_module(modname)
        real = getattr(module, attr)
        stub = _tripwire.tripwire(qual)
        code = getattr(real, "__code__", None)
        if code is not None:
            _BLOCKED_FILES.setdefault(code.co_filename, qual)
        for mod in list(sys.modules.values()):
            try:
                table = vars(mod)
                hits = [key for key, value in list(table.items()) if value is real]
                for key in hits:
                    table[key] = stub
            except Exception:           # noqa: BLE001  (a module whose namespace cannot be read is skipped)
                continue
        for name in (modname, getattr(real, "__module__", None)):
            if _isinstance(name, str) and name in sys.modules and name not in WATCH:
                WATCH.append(name)
    if _BLOCKED_FILES:
        sys.addaudithook(_audit)


_CHECKER = globals()


def snapshot():
    snap = {"<the checker>": (0, {key: id(value) for key, value in list(_CHECKER.items())
                                  if callable(value)})}
    for name in WATCH:
        mod = sys.modules.get(name)
        if mod is None:
            continue
        attrs = {}
        ours = name == "kflib" or name.startswith("kflib.")
        for key, value in list(vars(mod).items()):
            # functions, classes, ufuncs; submodules only within kflib (numpy and scipy load
            # some of theirs lazily, which would look like a change)
            if callable(value) or (ours and _isinstance(value, types.ModuleType)):
                attrs[key] = id(value)
        snap[name] = (id(mod), attrs)
    return snap


def changes(before):
    found = []
    for name, (mod_id, attrs) in before.items():
        if name == "<the checker>":
            found += [f"the checker's {key} was replaced" for key, value_id in attrs.items()
                      if id(_CHECKER.get(key)) != value_id]
            continue
        mod = sys.modules.get(name)
        if mod is None:
            found.append(f"sys.modules[{name!r}] was removed")
            continue
        if id(mod) != mod_id:
            found.append(f"sys.modules[{name!r}] was replaced")
        current = vars(mod)
        for key, value_id in attrs.items():
            if key not in current:
                found.append(f"{name}.{key} was deleted")
            elif id(current[key]) != value_id:
                found.append(f"{name}.{key} was replaced")
    return found[:20]


# --------------------------------------------------------------------------
# running cells


_MAGIC = re.compile(r"^(\s*)([%!].*)$")


def to_python(source):
    """IPython syntax a notebook may hold: line magics and shell escapes become no-ops."""
    try:
        compile(source, "<cell>", "exec")
        return source
    except SyntaxError:
        pass
    if source.lstrip().startswith("%%"):
        return "pass  # cell magic skipped\n"
    return "\n".join(_MAGIC.sub(r"\1pass  # magic skipped", line) for line in source.splitlines())


class _Shell:
    """Enough of get_ipython() for notebooks that call it (magics do nothing)."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


# The student's cells run in a module of their own that is sys.modules["__main__"], as in
# a notebook's kernel; this file's module is then registered nowhere, so that
# sys.modules["__main__"] does not reach the checker's code.
_student_main = types.ModuleType("__main__")
namespace = _student_main.__dict__
namespace.update({"__builtins__": builtins, "get_ipython": lambda: _Shell()})
sys.modules["__main__"] = _student_main


def where(tb):
    """The last place in the student's cells a traceback passed through."""
    last = None
    for frame, lineno in traceback.walk_tb(tb):
        name = frame.f_code.co_filename
        if name.startswith("<cell "):
            last = f"{name[1:-1]}, line {lineno}"
    return last


def describe(exc):
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return {"type": type(exc).__name__, "message": text[:MAX_TEXT],
            "where": where(exc.__traceback__)}


def run_cell(index, source):
    code_text = to_python(source)
    filename = f"<cell {index + 1}>"   # counted from 1, as a student counts
    linecache.cache[filename] = (len(code_text), None, code_text.splitlines(True), filename)
    emit({"event": "begin", "what": "cell", "index": index})
    hits_before = len(_tripwire.HITS)
    error = None
    try:
        code = compile(code_text, filename, "exec")
        arm(job["cell_timeout"])
        try:
            exec(code, namespace)
        finally:
            disarm()
    except StepTimeout:
        error = {"type": "Timeout", "message": f"the cell did not finish within {job['cell_timeout']:g} s",
                 "where": None}
    except BaseException as exc:        # noqa: BLE001 -- SystemExit, KeyboardInterrupt too
        error = describe(exc)
    emit({"event": "cell", "index": index, "error": error,
          "tripwires": list(_tripwire.HITS[hits_before:])[:20]})


# --------------------------------------------------------------------------
# calling a part's function


def decode(value):
    if _isinstance(value, dict) and "shape" in value and "data" in value:
        return np.array(value["data"], dtype=float).reshape(value["shape"])
    if _isinstance(value, list):
        return [decode(v) for v in value]
    return value


def encode(name, value):
    arr = np.asarray(value, dtype=float)
    if arr.size > MAX_ELEMS:
        raise ValueError(f"{name} has {arr.size} numbers; that is far too many")
    return {"shape": list(arr.shape), "data": [float(x) for x in arr.ravel().tolist()]}


def _make_plain_inputs(_isinstance=_isinstance, _float=float, _list=list, _str=str,
                       _ndarray=np.ndarray, _asarray=np.asarray):
    import dataclasses

    def plain_inputs(value, depth=0):
        """An argument as plain data, nested containers and dataclass fields included (the
        same rule as grader.trusted.plain_inputs, which builds the inputs the parent
        compares with). Its helpers, itself included, are bound in this closure."""
        if depth > 8:
            return None
        if _isinstance(value, _ndarray):
            try:
                arr = _asarray(value, dtype=_float)
            except (TypeError, ValueError):
                return None
            return {"shape": _list(arr.shape), "data": [_float(x) for x in arr.ravel().tolist()]}
        if _isinstance(value, (bool, int, _float, _str)) or value is None:
            return value
        if _isinstance(value, (np.floating, np.integer, np.bool_)):
            return value.item()
        if _isinstance(value, (_list, tuple)):
            return {"seq": [plain_inputs(v, depth + 1) for v in value]}
        if _isinstance(value, dict):
            return {"map": {_str(k): plain_inputs(v, depth + 1) for k, v in value.items()}}
        if dataclasses.is_dataclass(value) and not _isinstance(value, type):
            return {"fields": {f.name: plain_inputs(getattr(value, f.name, None), depth + 1)
                               for f in dataclasses.fields(value)}}
        return None

    return plain_inputs


plain_inputs = _make_plain_inputs()


def build(src):
    """A spec's helper, from its source; it sees np and kflib and nothing of the student's."""
    ns = {"np": np, "kflib": kflib}
    exec(compile(src["source"], f"<grader {src['name']}>", "exec"), ns)
    return ns[src["name"]]


HELPERS = {}
_MISSING = object()


def prepare(parts):
    for gid, spec in parts.items():
        tp = spec["to_plain"]
        HELPERS[gid] = {
            "to_plain": ({k: build(v) for k, v in tp["by_function"].items()} if "by_function" in tp
                         else build(tp)),
            "from_plain": build(spec["from_plain"]) if spec.get("from_plain") else None,
            "stand_ins": {name: build(src) for name, src in (spec.get("stand_ins") or {}).items()},
        }


def call_part(gid, spec):
    helpers = HELPERS[gid]
    saved = {}
    # the student's functions of other parts give way to the stand-ins during this part
    for name, stand_in in helpers["stand_ins"].items():
        saved[name] = namespace.get(name, _MISSING)
        namespace[name] = stand_in
    try:
        call_cases(gid, spec, helpers)
    finally:
        for name, old in saved.items():
            if old is _MISSING:
                namespace.pop(name, None)
            else:
                namespace[name] = old


def call_cases(gid, spec, helpers, emit=emit, decode=decode, encode=encode,
               plain_inputs=plain_inputs, describe=describe, arm=arm, disarm=disarm):
    # the checker's helpers are bound here, when this file is loaded: replacing them in this
    # module later (from a student's cell) does not change what this function calls
    stop = None
    for j, case in enumerate(spec["cases"]):
        emit({"event": "begin", "what": "case", "part": gid, "case": j})
        result = {"event": "case", "part": gid, "case": j}
        if stop is not None:
            # the part already failed on a timeout or memory: the rest would only cost time
            result["error"] = {"type": "Skipped", "message": f"not run after the {stop}", "where": None}
            emit(result)
            continue
        fname = case.get("function") or spec["function"]
        function = namespace.get(fname)
        if function is None or not callable(function):
            result["error"] = {"type": "Undefined",
                               "message": f"your notebook defines no function {fname}",
                               "where": None}
            emit(result)
            continue
        to_plain = helpers["to_plain"]
        if _isinstance(to_plain, dict):
            to_plain = to_plain[fname]
        args = [decode(a) for a in case["args"]]
        kwargs = {str(k): decode(v) for k, v in (case.get("kwargs") or {}).items()}
        hits_before = len(_tripwire.HITS)
        start = _monotonic()
        try:
            if helpers["from_plain"] is not None:
                args = list(helpers["from_plain"](*args))
        except BaseException as exc:    # noqa: BLE001 -- a tampered kflib, say
            result["error"] = describe(exc)
            emit(result)
            continue
        try:
            arm(job["call_timeout"])
            try:
                out = function(*args, **kwargs)
                plain = to_plain(out)
                result["outputs"] = {str(k): encode(k, v) for k, v in plain.items()}
            finally:
                disarm()
        except StepTimeout:
            result["error"] = {"type": "Timeout",
                               "message": f"did not return within {job['call_timeout']:g} s",
                               "where": None}
        except BaseException as exc:    # noqa: BLE001
            result["error"] = describe(exc)
        result["seconds"] = _monotonic() - start
        result["tripwires"] = list(_tripwire.HITS[hits_before:])
        try:
            result["inputs_after"] = [plain_inputs(a) for a in args]
        except BaseException:           # noqa: BLE001 -- the parent then counts every argument changed
            result["inputs_after"] = None
        if result.get("error", {}).get("type") in ("Timeout", "MemoryError"):
            stop = {"Timeout": "timeout", "MemoryError": "memory error"}[result["error"]["type"]]
        emit(result)


# --------------------------------------------------------------------------


def main(changes=changes, call_part=call_part, emit=emit):
    try:
        block_functions(job.get("block") or [])
        prepare(job["parts"])
    except Exception as exc:            # noqa: BLE001 -- the grader's job, not the student's code
        emit({"event": "fatal", "message": f"{type(exc).__name__}: {exc}"[:MAX_TEXT]})
        _out.flush()
        os._exit(3)
    before = snapshot()
    emit({"event": "ready"})
    for step in job["steps"]:
        if step["kind"] == "cell":
            run_cell(step["index"], step["source"])
        else:
            found = changes(before)
            if found:
                emit({"event": "tampered", "where": step["part"], "changes": found})
            call_part(step["part"], job["parts"][step["part"]])
    top = list(_tripwire.HITS)
    emit({"event": "done", "tripwires": top[:50]})


main()
_out.flush()
os._exit(0)
