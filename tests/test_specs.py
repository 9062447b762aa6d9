"""The trusted check's specs (grader/checks/): one per assignment, and the ``returns=``
vocabulary from which the converters sent into the sandbox are generated.

The converters are rebuilt here exactly as grader/runner.py's ``build`` does in the
sandboxed child: their source alone, compiled in a namespace that holds only ``np``
and ``kflib``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import kflib
from grader import spec
from grader.spec import Attrs, Case, Keys, Part

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir()
                     if p.is_dir() and any(p.glob("*.ipynb")))


def build(source: dict):
    """grader/runner.py's build: a helper from its source, seeing np and kflib only."""
    ns = {"np": np, "kflib": kflib}
    exec(compile(source["source"], f"<grader {source['name']}>", "exec"), ns)
    return ns[source["name"]]


def converter(returns, function="f"):
    part = Part("p", function, f"{function}(...)", lambda: [], check=lambda case, got: [],
                returns=returns)
    return build(part.to_plain_source())


def assert_plain(got: dict, want: dict):
    assert list(got) == list(want)
    for name, value in want.items():
        assert isinstance(got[name], np.ndarray) and got[name].dtype == float, name
        assert got[name].shape == np.shape(value), (name, got[name].shape)
        np.testing.assert_array_equal(got[name], value, err_msg=name)


# --------------------------------------------------------------------------
# one spec per assignment


def test_the_assignments_are_found():
    assert len(ASSIGNMENTS) >= 9 and "ps01-state-space" in ASSIGNMENTS


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_assignment_has_a_spec(assignment):
    name = spec.module_name(assignment)
    assert importlib.util.find_spec(name) is not None, (
        f"solutions/{assignment} has no trusted-check spec: add grader/checks/{name.rpartition('.')[2]}.py "
        "(see grader/spec.py)")
    loaded = spec.load(assignment)
    assert loaded is not None and loaded.assignment == assignment and loaded.parts


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_converter_builds_from_its_source_alone(assignment):
    loaded = spec.load(assignment)
    for part in loaded.parts:
        source = part.to_plain_source()
        for one in (source["by_function"].values() if "by_function" in source else [source]):
            assert callable(build(one)), (assignment, part.grade_id)


# --------------------------------------------------------------------------
# the returns vocabulary


def test_a_tuple_of_arrays_and_numbers():
    to_plain = converter(("x_filt", "P_filt", "loglik:number"), "kalman_filter_loglik")
    got = to_plain(([1, 2], np.eye(2, dtype=np.float32), np.float64(-3.5)))
    assert_plain(got, {"x_filt": [1.0, 2.0], "P_filt": np.eye(2), "loglik": np.array(-3.5)})
    # one number given as an array of one element is that number
    assert_plain(to_plain((0.0, 0.0, np.array([[2.0]]))), {"x_filt": 0.0, "P_filt": 0.0, "loglik": 2.0})


@pytest.mark.parametrize("value, message", [
    ((1.0, 2.0), r"^kalman_filter_loglik must return the tuple \(x_filt, P_filt, loglik\); "
                 r"it returned tuple of length 2$"),
    ([1.0, 2.0, 3.0], r"it returned list of length 3$"),
    (np.zeros(3), r"it returned ndarray$"),
    ((np.zeros(2), np.eye(2), np.zeros(2)), r"^kalman_filter_loglik: loglik must be one number; "
                                           r"it has shape \(2,\)$"),
    ((np.zeros(2), "two", 1.0), r"^kalman_filter_loglik: P_filt must be an array of numbers; it is str"),
    ((np.zeros(2), [[1.0], [1.0, 2.0]], 1.0), r"P_filt must be an array of numbers; it is list of length 2"),
    ((np.zeros(2), np.eye(2), None), r"^kalman_filter_loglik: loglik is None; it must be one number$"),
    ((None, np.eye(2), 1.0), r"^kalman_filter_loglik: x_filt is None; it must be an array of numbers$"),
])
def test_a_wrong_return_value_is_named(value, message):
    to_plain = converter(("x_filt", "P_filt", "loglik:number"), "kalman_filter_loglik")
    with pytest.raises(TypeError, match=message):
        to_plain(value)


def test_one_array():
    to_plain = converter("G", "smoother_gain")
    assert_plain(to_plain([[1, 2], [3, 4]]), {"G": [[1.0, 2.0], [3.0, 4.0]]})
    assert_plain(to_plain(2), {"G": 2.0})
    with pytest.raises(TypeError, match=r"^smoother_gain: G must be an array of numbers; it is dict"):
        to_plain({"G": 1})


class _GradScalar:
    """Like a torch scalar that requires grad: np.asarray refuses it, float() takes it."""

    def __init__(self, value):
        self.value = value

    def __array__(self, *args, **kwargs):
        raise RuntimeError("Can't call numpy() on Tensor that requires grad.")

    def detach(self):
        return float(self.value)


def test_a_number_that_numpy_refuses():
    to_plain = converter(("nll:number", "G"), "nll_and_gradient")
    assert_plain(to_plain((_GradScalar(6.0), 1.0)), {"nll": 6.0, "G": 1.0})
    with pytest.raises(TypeError, match=r"^nll_and_gradient: G must be an array of numbers; it is _GradScalar"):
        to_plain((1.0, _GradScalar(1.0)))


@pytest.mark.slow
def test_a_torch_number_that_requires_grad():
    torch = pytest.importorskip("torch")
    q = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    to_plain = converter(("nll:number", "dnll_dq:number"), "nll_and_gradient")
    assert_plain(to_plain((3 * q, 1.5)), {"nll": 6.0, "dnll_dq": 1.5})


def test_the_attributes_of_a_kflib_class():
    to_plain = converter(Attrs("kflib.LinearGaussianSSM", "F", "H", "x0", none=("B",)), "arima211_model")
    model = kflib.LinearGaussianSSM([[0.5]], [[1.0]], [[1.0]], [[2.0]], [3.0], [[4.0]])
    assert_plain(to_plain(model), {"F": [[0.5]], "H": [[1.0]], "x0": [3.0]})
    with pytest.raises(TypeError, match=r"^arima211_model must return a kflib.LinearGaussianSSM; "
                                        r"it returned tuple of length 2$"):
        to_plain((model.F, model.H))
    with pytest.raises(ValueError, match=r"^arima211_model must return a LinearGaussianSSM with B = None"):
        to_plain(model.replace(B=[[1.0]]))


def test_a_dict_with_these_keys():
    to_plain = converter(Keys("q1:letter", "q2:letter", "q3"), "quiz_answers")
    assert_plain(to_plain({"q3": [1, 2], "q1": " C ", "q2": "a"}), {"q1": 2.0, "q2": 0.0, "q3": [1.0, 2.0]})
    for value, message in [
            ({"q1": "a", "q2": "b"}, r"^quiz_answers must return a dict with the keys 'q1', 'q2', 'q3'; "
                                     r"its keys are 'q1', 'q2'$"),
            ({"q1": "a", "q2": "b", "q3": 1, "q4": 2}, r"its keys are 'q1', 'q2', 'q3', 'q4'$"),
            (["a", "b", 1], r"^quiz_answers must return a dict; it returned list of length 3$")]:
        with pytest.raises(TypeError, match=message):
            to_plain(value)
    for letter in ["ab", "", 1, "?"]:
        with pytest.raises(TypeError, match=r"^quiz_answers: q1 must be one letter such as 'a'"):
            to_plain({"q1": letter, "q2": "a", "q3": 1})


def test_one_declaration_per_function():
    part = Part("radar", "radar_h", "radar_h(x) and radar_jacobian(x)", lambda: [],
                check=lambda case, got: [], returns={"radar_h": "h", "radar_jacobian": ("H", "n:number")})
    source = part.to_plain_source()
    assert set(source["by_function"]) == {"radar_h", "radar_jacobian"}
    assert_plain(build(source["by_function"]["radar_h"])([1, 2]), {"h": [1.0, 2.0]})
    with pytest.raises(TypeError, match=r"^radar_jacobian must return the tuple \(H, n\)"):
        build(source["by_function"]["radar_jacobian"])(np.eye(2))


def test_a_converter_written_out_still_works():
    def to_plain(out):
        return {"twice": 2 * np.asarray(out, dtype=float)}

    part = Part("p", "f", "f()", lambda: [Case((), "once")], to_plain, lambda case, got: [])
    assert build(part.to_plain_source())(3.0) == {"twice": 6.0}


@pytest.mark.parametrize("kwargs, error, message", [
    ({"returns": ("x", "x")}, ValueError, "a name appears twice"),
    ({"returns": ("x:vector",)}, ValueError, r"'x:vector' is not 'name' or 'name:kind'"),
    ({"returns": ("2x",)}, ValueError, r"'2x' is not 'name'"),
    ({"returns": ()}, ValueError, "declares nothing"),
    ({"returns": ["x", "y"]}, TypeError, "is not a name, a tuple of names"),
    ({"returns": ("x",), "to_plain": lambda out: {}}, TypeError, "one of the two"),
    ({}, TypeError, "one of the two"),
])
def test_a_declaration_that_makes_no_sense_fails_at_once(kwargs, error, message):
    with pytest.raises(error, match=message):
        Part("p", "f", "f()", lambda: [], check=lambda case, got: [], **kwargs)


def test_attrs_take_kflib_classes_only():
    with pytest.raises(ValueError, match="must be kflib's"):
        Attrs("numpy.ndarray", "shape")
