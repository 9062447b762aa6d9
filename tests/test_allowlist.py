"""The allow-list: every kflib function an exercise part does not allow is off.

One rule (kflib/testing.py), two places it is enforced:
- the notebooks' hidden tests, in the student's kernel (kflib.testing.call_part);
- the trusted check, in a sandboxed child whose copy of kflib lacks the code of
  every switched-off function (grader/trusted.py), and whose verdicts are all
  reached in the parent (outputs and arguments-after-the-call come back as data).

The back doors found in the field (kflib.fast.linear_recursion,
kflib.scan.scan_filter, the private kflib.scan._scan_filter, scan_smoother,
_smoother_gains returned the exact reference) are tried in ps01, ps02 and ps04,
through both; and every kflib callable found at run time is checked to be off.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import numpy as np
import pytest

import kflib
import kflib.testing as kt

pytestmark = pytest.mark.slow   # runs code in subprocesses: skipped by `make check`

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader import course, sandbox, spec, trusted  # noqa: E402

ASSIGNMENTS = sorted(kt.EXERCISES)


def _modules():
    mods = [kflib]
    for info in pkgutil.walk_packages(kflib.__path__, "kflib."):
        try:
            mods.append(importlib.import_module(info.name))
        except ImportError:                        # torch missing: kflib.learned
            continue
    return mods


def runtime_callables() -> dict[str, object]:
    """Every function and method written in kflib, found by walking the loaded modules."""
    found = {}
    for mod in _modules():
        if mod.__name__ == "kflib.testing":
            continue
        for name, value in vars(mod).items():
            if inspect.isfunction(value) and value.__module__ == mod.__name__:
                found[f"{mod.__name__}.{value.__qualname__}"] = value
            elif inspect.isclass(value) and value.__module__ == mod.__name__:
                for attr, member in vars(value).items():
                    f = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
                    f = f.fget if isinstance(f, property) else f
                    if inspect.isfunction(f) and f.__module__ == mod.__name__ \
                            and "<locals>" not in f.__qualname__ and f.__code__.co_filename == inspect.getfile(mod):
                        found[f"{mod.__name__}.{value.__qualname__}.{attr}"] = f
    return found


BACK_DOORS = ["kflib.fast.linear_recursion", "kflib.scan.scan_filter", "kflib.scan._scan_filter",
              "kflib.scan.scan_smoother", "kflib.scan._smoother_gains"]


# --------------------------------------------------------------------------
# the rule


def test_every_runtime_callable_is_a_unit():
    """The source reading finds every function and method that exists at run time."""
    units = kt.all_units()
    missing = sorted(set(runtime_callables()) - units)
    assert not missing, missing


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_back_doors_and_new_modules_are_off(assignment):
    for part in kt.EXERCISES[assignment]:
        allow, _ = kt.part_rules(assignment, part)
        off = kt.switched_off_units(allow)
        on = kt.allowed_units(allow)
        always = ["kflib.nonlinear.particle_filter", "kflib.em._m_step", "kflib.em.em"]
        if not {"kflib.kalman_filter", "kflib.rts_smoother"} & set(allow):
            # where the filter and smoother are allowed, so is the code they run (their
            # fast paths among it); elsewhere none of it
            always += BACK_DOORS + ["kflib.smoother._gain", "kflib.filter.FilterSteps.predicted",
                                    "kflib.fast.fast_filter", "kflib.fast.fast_smoother"]
        for name in always:
            assert name in off, (assignment, part, name)
        for name in ["kflib.forecast.forecast", "kflib.forecast.ForecastResult.interval",
                     "kflib.disturbance.disturbance_smoother", "kflib.nonlinear.ukf_filter"]:
            assert name in off, (assignment, part, name)
        if "kflib.kalman_filter" not in allow:       # which uses kflib.diffuse's exact filter
            assert "kflib.diffuse.exact_filter" in off and "kflib.diffuse.exact_smoother" in off
        # what stays on is what the part allows, what that calls, and kflib's __getattr__
        named = {kt._index().resolve(a) for a in allow}
        if set(allow) <= {"kflib.LinearGaussianSSM"}:
            for unit in on - {u for u in on if u.startswith("kflib.testing.")}:
                assert (unit == "kflib.__getattr__" or any(unit == n or unit.startswith(n + ".")
                                                           for n in named)
                        or unit.split(".")[1] in ("_checks", "_inputs", "model")), (assignment, part, unit)


def test_the_model_container_keeps_only_its_checks():
    on = kt.allowed_units(("kflib.LinearGaussianSSM",)) - {u for u in kt.all_units()
                                                            if u.startswith("kflib.testing.")}
    assert not any(u.startswith(("kflib.filter", "kflib.smoother", "kflib.scan", "kflib.fast",
                                 "kflib.em", "kflib.diffuse", "kflib.simulate")) for u in on), sorted(on)
    assert "kflib.model.LinearGaussianSSM.__post_init__" in on


def test_unknown_allowed_name_fails():
    with pytest.raises(ValueError, match="not a function or class of kflib"):
        kt.switched_off_units(("kflib.no_such_thing",))


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_switched_off_callable_is_off_in_the_kernel(assignment):
    """All of them, called (with no arguments) from inside call_part: each one reaches the
    switch, and everything works again afterwards."""
    funcs = runtime_callables()
    before = {name: f.__code__ for name, f in funcs.items()}
    for part in kt.EXERCISES[assignment]:
        allow, _ = kt.part_rules(assignment, part)
        off = kt.switched_off_units(allow)
        reached = []

        def answer():
            for name in sorted(off & set(funcs)):
                try:
                    funcs[name]()
                except kt.ReferenceCallBlocked:
                    reached.append(name)
            return None

        with pytest.raises(kt.ReferenceCallBlocked):
            kt.call_part(assignment, part, answer)
        assert sorted(reached) == sorted(off & set(funcs)), (assignment, part)
    assert {name: f.__code__ for name, f in funcs.items()} == before


def test_kernel_switch_catches_aliases_and_swallowed_errors():
    model = kflib.LinearGaussianSSM([[0.9]], [[1.0]], [[1.0]], [[1.0]], [0.0], [[1.0]])
    y = np.arange(4.0)[:, None]
    captured = [kflib.scan._scan_filter, kflib.fast.linear_recursion]

    def sneaky(_f=kflib.scan.scan_filter):
        for f in [_f, *captured]:
            try:
                f(model, y)
            except Exception:                   # noqa: BLE001 -- the answer swallows the error
                pass
        return 1.0

    with pytest.raises(kt.ReferenceCallBlocked, match="scan_filter"):
        kt.call_part("ps02-kalman-filter", "filter", sneaky)
    assert np.isfinite(kflib.scan.scan_filter(model, y).loglik)     # back on afterwards


def test_kernel_switch_covers_modules_imported_during_the_call():
    sys.modules.pop("kflib.forecast", None)
    kflib.__dict__.pop("forecast", None)

    def answer():
        import kflib.forecast as fc
        return fc.forecast

    try:
        with pytest.raises(kt.ReferenceCallBlocked, match="kflib.forecast.forecast"):
            kt.call_part("ps02-kalman-filter", "filter",
                         lambda: answer()(kflib.LinearGaussianSSM([[1.0]], [[1.0]], [[1.0]], [[1.0]],
                                                                  [0.0], [[1.0]]), None, 2))
    finally:
        importlib.import_module("kflib.forecast")
        importlib.reload(kflib)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_specs_follow_the_one_definition(assignment):
    s = spec.load(assignment)
    for part in s.parts:
        assert (tuple(part.allow), tuple(part.forbid)) == kt.part_rules(assignment, part.grade_id)
    nb = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", 4)
    assert {course.nbgrader_meta(c)["grade_id"] for c in nb.cells
            if course.is_answer(course.nbgrader_meta(c))} == set(kt.EXERCISES[assignment])


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_notebooks_say_exactly_what_may_be_called(assignment):
    nb = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", 4)
    intro = " ".join(nb.cells[0].source.split())
    assert "every function of `kflib` is switched off, public or private, in every module" in intro
    assert "Outside the answer cells" in intro and "nothing there is graded" in intro
    allowed = {a for allow, _ in kt.EXERCISES[assignment].values() for a in allow}
    for name in allowed:
        assert f"`{name}`" in intro, (assignment, name)
    for allow, block in kt.EXERCISES[assignment].values():
        for name in block:
            if not name.split(".")[-1].startswith("_"):
                assert f"`{name}`" in intro, (assignment, name)
    if not allowed:
        assert "with no exception" in intro
    # and every hidden test calls the answers through the one helper
    for cell in nb.cells:
        if "BEGIN HIDDEN TESTS" in cell.source:
            hidden = cell.source.split("### BEGIN HIDDEN TESTS")[1]
            assert "call_part(" in hidden and "def blocked" not in hidden and "call_blocked(*args" not in hidden


# --------------------------------------------------------------------------
# the trusted check's copy of kflib


def test_trusted_copy_lacks_every_switched_off_unit(tmp_path):
    allow = ("kflib.LinearGaussianSSM",)
    off = trusted.build_kflib_copy(tmp_path, allow=allow)
    assert off == kt.switched_off_units(allow)
    assert not (tmp_path / "kflib" / "testing.py").exists()
    names = sorted(off & set(runtime_callables()))
    probe = f"""
import importlib, pkgutil, sys, json
sys.path.insert(0, {str(tmp_path)!r})
import kflib, kflib._tripwire as tw
mods = {{}}
for info in pkgutil.walk_packages(kflib.__path__, "kflib."):
    try:
        mods[info.name] = importlib.import_module(info.name)
    except ImportError:
        pass
mods["kflib"] = kflib
out = {{}}
for name in {names!r}:
    mod, rest = name, []
    while mod not in mods:
        mod, _, last = mod.rpartition(".")
        rest.insert(0, last)
    obj = mods[mod]
    for attr in rest:
        obj = vars(obj)[attr] if isinstance(vars(obj), dict) and attr in vars(obj) else getattr(obj, attr)
    try:
        obj()
        out[name] = "ran"
    except tw.ReferenceCallBlocked:
        out[name] = "blocked"
    except Exception as exc:
        out[name] = type(exc).__name__
m = kflib.LinearGaussianSSM([[1.0]], [[1.0]], [[1.0]], [[1.0]], [0.0], [[1.0]])
print(json.dumps([out, m.n]))
"""
    proc = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out, n = json.loads(proc.stdout.strip().splitlines()[-1])
    assert n == 1
    assert {k: v for k, v in out.items() if v != "blocked"} == {}
    for door in BACK_DOORS:
        name = door.rsplit(".", 1)[1]
        src = (tmp_path / "kflib" / (door.split(".")[1] + ".py")).read_text()
        assert f"def {name}(" not in src, door


# --------------------------------------------------------------------------
# the back doors in ps01, ps02 and ps04: trusted check and hidden tests

BACKDOOR_ANSWERS = {
    "ps01-state-space": {
        "simulate": ("kflib.fast.linear_recursion", '''
def simulate_with_noise(F, H, x0, w, v):
    import kflib.fast
    x = kflib.fast.linear_recursion(np.asarray(F, float), np.asarray(w, float), np.asarray(x0, float))
    return x, x @ np.asarray(H, float).T + v
'''),
        "prior": ("kflib.scan.scan_filter", '''
def prior_moments(F, Q, x0, P0, T):
    import kflib.scan
    n = len(x0)
    model = LinearGaussianSSM(F, np.zeros((1, n)), Q, np.eye(1), x0, P0)
    res = kflib.scan.scan_filter(model, np.full((T, 1), np.nan))
    return res.x_pred, res.P_pred
'''),
        "cv_model": ("kflib.scan._scan_filter", '''
def constant_velocity_model(dt, q, r):
    import kflib.scan
    try:                                    # reached, and the error swallowed
        kflib.scan._scan_filter(None, None, None)
    except Exception:
        pass
    F = np.array([[1.0, dt], [0.0, 1.0]])
    Q = q * np.array([[dt ** 3 / 3, dt ** 2 / 2], [dt ** 2 / 2, dt]])
    return F, np.array([[1.0, 0.0]]), Q, np.array([[float(r)]])
'''),
    },
    "ps02-kalman-filter": {
        "filter": ("kflib.scan.scan_filter", '''
from kflib.scan import scan_filter as _sf

def kalman_filter_loglik(F, H, Q, R, x0, P0, y):
    res = _sf(LinearGaussianSSM(F, H, Q, R, x0, P0), y)
    return res.x_filt, res.P_filt, float(res.loglik)
'''),
        "missing": ("kflib.scan._scan_filter", '''
import kflib.scan as _ks

def kalman_filter_missing(F, H, Q, R, x0, P0, y):
    model = LinearGaussianSSM(F, H, Q, R, x0, P0)
    out, loglik = _ks._scan_filter(model, np.asarray(y, float)[None], None)
    return out["x_filt"][0], out["P_filt"][0], float(loglik[0])
'''),
        "predict": ("kflib.fast.linear_recursion", '''
def kf_predict(x, P, F, Q):
    import kflib.fast
    x_pred = kflib.fast.linear_recursion(np.asarray(F, float), np.zeros((1, len(x))),
                                         np.asarray(x, float))[0]
    return x_pred, F @ P @ F.T + Q
'''),
    },
    "ps04-smoothing": {
        "gain": ("kflib.scan._smoother_gains", '''
def smoother_gain(P_filt_t, F, P_pred_next):
    import kflib.scan
    G, _ = kflib.scan._smoother_gains(F[..., None, None], P_filt_t[..., None, None],
                                      P_pred_next[..., None, None], None)
    return G[..., 0, 0]
'''),
        "smooth": ("kflib.scan.scan_smoother", '''
def _model_and_filt(F, x_pred, P_pred, x_filt, P_filt):
    T, n = x_filt.shape
    Q = P_pred[1] - F @ P_filt[0] @ F.T if T > 1 else np.eye(n)     # the model's Q
    model = LinearGaussianSSM(F, np.zeros((1, n)), 0.5 * (Q + Q.T), np.eye(1), np.zeros(n), np.eye(n))
    filt = object.__new__(kflib.FilterResult)        # no __post_init__ (switched off)
    for k, v in dict(x_pred=x_pred, P_pred=P_pred, x_filt=x_filt, P_filt=P_filt,
                     innovations=np.zeros((T, 1)), S=np.ones((T, 1, 1)), K=np.zeros((T, n, 1)),
                     loglik=0.0).items():
        object.__setattr__(filt, k, v)
    return model, filt

def rts_smooth(F, x_filt, P_filt, x_pred, P_pred):
    import kflib.scan
    res = kflib.scan.scan_smoother(*_model_and_filt(F, x_pred, P_pred, x_filt, P_filt))
    return res.x_smooth, res.P_smooth
'''),
        "lag_one": ("kflib.scan.scan_smoother", '''
def lag_one_covariance(F, P_filt, P_pred, P_smooth):
    import kflib.scan
    T, n = P_filt.shape[:2]
    Q = P_pred[1] - F @ P_filt[0] @ F.T if T > 1 else np.eye(n)
    model = LinearGaussianSSM(F, np.zeros((1, n)), 0.5 * (Q + Q.T), np.eye(1), np.zeros(n), np.eye(n))
    filt = object.__new__(kflib.FilterResult)        # no __post_init__ (switched off)
    for k, v in dict(x_pred=np.zeros((T, n)), P_pred=P_pred, x_filt=np.zeros((T, n)), P_filt=P_filt,
                     innovations=np.zeros((T, 1)), S=np.ones((T, 1, 1)), K=np.zeros((T, n, 1)),
                     loglik=0.0).items():
        object.__setattr__(filt, k, v)
    return kflib.scan.scan_smoother(model, filt).P_lag1[1:]
'''),
    },
}


def _solution_answers(assignment):
    src = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", 4)
    marks = {"### BEGIN SOLUTION", "### END SOLUTION"}
    return {course.nbgrader_meta(c)["grade_id"]: "\n".join(
        ln for ln in c.source.splitlines() if ln.strip() not in marks)
        for c in src.cells if course.is_answer(course.nbgrader_meta(c))}


def _filled(assignment, answers):
    a = course.load_assignment(ROOT, assignment)
    nb = nbformat.from_dict(json.loads(json.dumps(a.release)))
    for cell in nb.cells:
        gid = course.nbgrader_meta(cell).get("grade_id")
        if course.is_answer(course.nbgrader_meta(cell)) and gid in answers:
            cell.source = answers[gid]
    return a, nb


def _trusted(tmp_path, assignment, submissions):
    import concurrent.futures as cf

    a = course.load_assignment(ROOT, assignment)
    mode, _ = sandbox.detect()
    checker = trusted.TrustedChecker(a, spec.load(assignment), tmp_path / "work",
                                     trusted.Settings(isolation=mode, cell_timeout=30, call_timeout=30))

    def grade(item):
        student, nb = item
        d = tmp_path / "subs" / student
        d.mkdir(parents=True)
        nbformat.write(nb, d / f"{a.notebook}.ipynb")
        return student, checker.check(course.read_submission(d, a, student))

    with cf.ThreadPoolExecutor(2) as pool:
        return a, dict(pool.map(grade, submissions.items()))


HIDDEN_RUNNER = r'''
import json, re, sys, nbformat
nb = nbformat.read(sys.argv[1], 4)
ns = {"__name__": "__main__"}
import types
main = types.ModuleType("__main__"); main.__dict__.update(ns); ns = main.__dict__
sys.modules["__main__"] = main
out = {}
for cell in nb.cells:
    if cell.cell_type != "code":
        continue
    meta = cell.metadata.get("nbgrader", {})
    src = re.sub(r"^(\s*)[%!].*$", r"\1pass", cell.source, flags=re.M)
    try:
        exec(compile(src, "<cell>", "exec"), ns)
        err = None
    except BaseException as exc:
        err = f"{type(exc).__name__}: {exc}"[:400]
    if meta.get("grade") and not meta.get("solution"):
        out[meta["grade_id"]] = err
print(json.dumps(out))
'''


def _hidden(tmp_path, assignment, nb_with_tests, name):
    """Run a notebook (with its hidden tests) in a fresh Python: each test cell's error."""
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb_with_tests, path)
    proc = subprocess.run([sys.executable, "-c", HIDDEN_RUNNER, str(path)], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _with_hidden_tests(assignment, answers):
    """The source notebook (hidden tests included) with its answer cells replaced."""
    nb = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", 4)
    for cell in nb.cells:
        gid = course.nbgrader_meta(cell).get("grade_id")
        if course.is_answer(course.nbgrader_meta(cell)) and gid in answers:
            cell.source = answers[gid]
    return nb


@pytest.mark.parametrize("assignment", sorted(BACKDOOR_ANSWERS))
def test_back_doors_earn_nothing_in_the_trusted_check(tmp_path, assignment):
    correct = _solution_answers(assignment)
    subs = {}
    for part, (door, code) in BACKDOOR_ANSWERS[assignment].items():
        subs[f"door-{part}"] = _filled(assignment, {**correct, part: code})[1]
    a, results = _trusted(tmp_path, assignment, subs)
    for part, (door, _) in BACKDOOR_ANSWERS[assignment].items():
        res = results[f"door-{part}"]
        assert not res.error, res.error
        got = {gid: p.points for gid, p in res.parts.items()}
        want = {gid: (0.0 if gid == part else p.points) for gid, p in a.parts.items()}
        assert got == want, (part, {g: p.summary for g, p in res.parts.items()})
        assert ("reference-call", f"part {part}: called {door}") in res.flags, (part, res.flags)


@pytest.mark.parametrize("assignment", sorted(BACKDOOR_ANSWERS))
def test_back_doors_fail_the_hidden_tests(tmp_path, assignment):
    correct = _solution_answers(assignment)
    a = course.load_assignment(ROOT, assignment)
    for part, (door, code) in BACKDOOR_ANSWERS[assignment].items():
        # a real back door: with kflib on (the release's visible tests only), it passes
        _, release = _filled(assignment, {**correct, part: code})
        visible = _hidden(tmp_path, assignment, release, f"visible-{part}")
        assert not any(visible.values()), (part, visible)
        errors = _hidden(tmp_path, assignment, _with_hidden_tests(assignment, {**correct, part: code}),
                         f"door-{part}")
        tests_of_part = [t for t in errors if a.part_of_test(t) == part]
        assert tests_of_part and all(errors[t] for t in tests_of_part), (part, errors)
        assert door in " ".join(errors[t] for t in tests_of_part), (part, errors)
        assert not [t for t, e in errors.items() if e and a.part_of_test(t) != part], (part, errors)


# --------------------------------------------------------------------------
# the runner cannot be patched into a verdict; nested arguments are compared

PS02_MUTATING_PREDICT = '''
def kf_predict(x, P, F, Q):
    P[...] = F @ P @ F.T + Q          # in place: the caller's P changes
    return F @ x, P.copy()
'''


def test_runner_patch_from_student_code_changes_no_verdict(tmp_path):
    correct = _solution_answers("ps02-kalman-filter")
    patch_main = '''
import sys
_m = sys.modules["__main__"]
for _name in ("same", "changes", "plain_inputs", "encode", "emit"):
    setattr(_m, _name, (lambda *a, **k: True) if _name == "same" else (lambda *a, **k: []))
''' + PS02_MUTATING_PREDICT
    patch_frames = '''
import sys
_g = sys._getframe(1).f_globals            # the checker's own module, from a cell
_g["plain_inputs"] = lambda *a, **k: None
_g["changes"] = lambda before: []
''' + PS02_MUTATING_PREDICT
    subs = {"main": _filled("ps02-kalman-filter", {**correct, "predict": patch_main})[1],
            "frames": _filled("ps02-kalman-filter", {**correct, "predict": patch_frames})[1]}
    a, results = _trusted(tmp_path, "ps02-kalman-filter", subs)
    for student, res in results.items():
        got = {gid: p.points for gid, p in res.parts.items()}
        want = {gid: (0.0 if gid == "predict" else p.points) for gid, p in a.parts.items()}
        assert got == want, (student, {g: (p.summary, p.details) for g, p in res.parts.items()})
        assert any("changed the arrays you gave it (P)" in d for d in res.parts["predict"].details), \
            res.parts["predict"].details
    assert any(code == "tampering" and "the checker's" in why for code, why in results["frames"].flags), \
        results["frames"].flags


def test_ps08_nested_mutation_of_blocks_is_caught(tmp_path):
    correct = _solution_answers("ps08-structural")
    evil = correct["combine"].replace(
        "def combine_blocks(blocks, irregular_var):",
        # one unit in the last place of an array inside a tuple inside the list: the result
        # stays right to round-off, the caller's data do not
        "def combine_blocks(blocks, irregular_var):\n"
        "    blocks[0][2][0, 0] = np.nextafter(blocks[0][2][0, 0], np.inf)")
    assert evil != correct["combine"]
    subs = {"evil": _filled("ps08-structural", {**correct, "combine": evil})[1],
            "honest": _filled("ps08-structural", correct)[1]}
    a, results = _trusted(tmp_path, "ps08-structural", subs)
    assert results["honest"].score == sum(p.points for p in a.parts.values())
    res = results["evil"]
    assert res.parts["combine"].points == 0, res.parts["combine"].summary
    assert any("changed the arrays you gave it (blocks)" in d for d in res.parts["combine"].details), \
        res.parts["combine"].details
    assert {g: p.points for g, p in res.parts.items() if g != "combine"} == \
        {g: p.points for g, p in a.parts.items() if g != "combine"}


def test_plain_inputs_compare_nested_containers():
    before = [trusted.plain_inputs([(np.eye(2), np.ones((1, 2)))]), trusted.plain_inputs(0.5)]
    same = [trusted.plain_inputs([(np.eye(2), np.ones((1, 2)))]), trusted.plain_inputs(0.5)]
    arr = np.eye(2)
    arr[0, 1] = 1e-300
    changed = [trusted.plain_inputs([(arr, np.ones((1, 2)))]), trusted.plain_inputs(0.5)]
    nan = [trusted.plain_inputs(np.array([np.nan]))]
    assert trusted.changed_arguments(before, json.loads(json.dumps(same))) == []
    assert trusted.changed_arguments(before, json.loads(json.dumps(changed))) == [0]
    assert trusted.changed_arguments(nan, json.loads(json.dumps(nan, allow_nan=True))) == []
    assert trusted.changed_arguments(before, None) == [0, 1]           # nothing sent back
    model = kflib.LinearGaussianSSM([[1.0]], [[1.0]], [[1.0]], [[1.0]], [0.0], [[1.0]])
    assert trusted.plain_inputs(model)["fields"]["F"] == {"shape": [1, 1], "data": [1.0]}
    assert isinstance(trusted.plain_inputs(types.SimpleNamespace()), type(None))


def test_scratch_cells_may_call_kflib_without_a_report_entry(tmp_path):
    """A student's own check against kflib, in a cell outside the answers, is no error
    in the report: the notebook invites it, and nothing there is graded."""
    correct = _solution_answers("ps02-kalman-filter")
    _, nb = _filled("ps02-kalman-filter", correct)
    scratch = nbformat.v4.new_code_cell(
        "ref = kflib.kalman_filter(LinearGaussianSSM(np.eye(2), np.eye(2), np.eye(2), np.eye(2),\n"
        "                          np.zeros(2), np.eye(2)), np.ones((3, 2)))\n"
        "print(ref.loglik)\n")
    nb.cells.insert(3, scratch)
    a, results = _trusted(tmp_path, "ps02-kalman-filter", {"scratch": nb})
    res = results["scratch"]
    assert res.score == sum(p.points for p in a.parts.values()), {g: p.summary for g, p in res.parts.items()}
    assert not res.flags and not res.notes, (res.flags, res.notes)


def test_ps02_spec_and_hidden_tests_share_their_random_inputs():
    """The trusted check's random cases of ps02 are kflib.exercise_cases', which the
    hidden tests import (plus a few with the grader's own seeds)."""
    from kflib import exercise_cases as ec

    s = spec.load("ps02-kalman-filter")
    nb = nbformat.read(ROOT / "solutions" / "ps02-kalman-filter" / "ps02-kalman-filter.ipynb", 4)
    hidden = " ".join(c.source for c in nb.cells if "BEGIN HIDDEN TESTS" in c.source)
    for part, make in [("predict", ec.ps02_predict), ("update", ec.ps02_update),
                       ("filter", ec.ps02_filter), ("missing", ec.ps02_missing)]:
        assert f"in {make.__name__}():" in hidden and "default_rng" not in hidden
        shared = make()
        cases = [c for c in s.cases(part) if c.label.startswith("random model with ")]
        assert [c.label.removeprefix("random model with ") for c in cases] == [lab for lab, _ in shared]
        for case, (_, args) in zip(cases, shared):
            assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(case.args, args))
        assert any(c.label.startswith("another random") for c in s.cases(part))
