"""Search spaces: validation errors, configurations, encodings, grids, serialization."""

from __future__ import annotations

import copy
import enum
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tunesmith as ts
from tunesmith.space import Prior

# -- every bad definition is a ValueError naming the parameter ----------------------


@pytest.mark.parametrize(
    "param, fragment",
    [
        (ts.Float(1.0, 1.0), "low (1.0) must be smaller than high"),
        (ts.Float(2.0, 1.0), "must be smaller than high"),
        (ts.Int(5, 5), "must be smaller than high"),
        (ts.Int(7, 3), "must be smaller than high"),
        (ts.Float(0.0, 1.0, log=True), "log scale needs low > 0"),
        (ts.Float(-1.0, 1.0, log=True), "log scale needs low > 0"),
        (ts.Int(0, 10, log=True), "log scale needs low > 0"),
        (ts.Float(0.0, 1.0, step=0.3), "does not divide the range"),
        (ts.Int(0, 10, step=3), "does not divide the range"),
        (ts.Float(0.0, 1.0, step=-0.1), "step must be a positive number"),
        (ts.Float(1e-3, 1.0, log=True, step=0.001), "cannot be combined"),
        (ts.Float(0.0, float("inf")), "finite number"),
        (ts.Float("a", 1.0), "finite number"),  # type: ignore[arg-type]
        (ts.Int(0.5, 3), "must be an integer"),  # type: ignore[arg-type]
        (ts.Categorical([]), "choices is empty"),
        (ts.Categorical(["a", "b", "a"]), "'a' is listed twice"),
        (ts.Categorical([[1, 2]]), "not hashable"),
        (ts.Categorical("abc"), "choices must be a list"),  # type: ignore[arg-type]
        (ts.Float(0.0, 1.0, grid=[0.5, 2.0]), "outside"),
        (ts.Float(0.0, 1.0, grid=0), "at least 1 point"),
        (ts.Float(0.0, 1.0, prior=5.0), "outside"),
    ],
)
def test_bad_parameter_names_it(param: ts.Space, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)) as err:
        ts.Space({"lr": param})
    assert "'lr'" in str(err.value)


def test_step_error_suggests_a_fix() -> None:
    with pytest.raises(ValueError, match=r"'x'.*adjust high to 0\.9"):
        ts.Space({"x": ts.Float(0.0, 1.0, step=0.3)})


def test_condition_on_unknown_parameter() -> None:
    with pytest.raises(ValueError, match=r"parameter 'gamma': condition on unknown parameter 'kernal'"):
        ts.Space({
            "kernel": ts.Categorical(["linear", "rbf"]),
            "gamma": ts.Float(1e-3, 1.0, log=True, when={"kernal": ["rbf"]}),
        })


def test_condition_on_impossible_value() -> None:
    with pytest.raises(ValueError, match=r"parameter 'gamma': condition 'kernel'.*\['sigmoid'\]"):
        ts.Space({
            "kernel": ts.Categorical(["linear", "rbf"]),
            "gamma": ts.Float(1e-3, 1.0, log=True, when={"kernel": ["rbf", "sigmoid"]}),
        })
    with pytest.raises(ValueError, match=r"for choices write 'k': Categorical\(\['a', 'b'\]\)"):
        ts.Space({"k": ts.Fixed(["a", "b"]), "w": ts.Float(0, 1, when={"k": "a"})})
    with pytest.raises(ValueError, match=r"parameter 'w'.*can never hold"):
        ts.Space({"n": ts.Int(1, 4), "w": ts.Float(0, 1, when={"n": [7]})})


def test_cycle_of_conditions() -> None:
    with pytest.raises(ValueError, match=r"cycle: a -> c -> b -> a") as err:
        ts.Space({
            "a": ts.Categorical([1, 2], when={"c": [1]}),
            "b": ts.Categorical([1, 2], when={"a": [1]}),
            "c": ts.Categorical([1, 2], when={"b": [1]}),
        })
    assert "parameter 'a'" in str(err.value)
    with pytest.raises(ValueError, match="cycle"):
        ts.Space({"a": ts.Categorical([1, 2], when={"a": [1]})})


def test_bad_space_containers() -> None:
    with pytest.raises(ValueError, match="at least one parameter"):
        ts.Space({})
    with pytest.raises(TypeError, match="mapping"):
        ts.Space([ts.Float(0, 1)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty strings"):
        ts.Space({"": ts.Float(0, 1)})
    with pytest.raises(ValueError, match="'x': when= must be a mapping"):
        ts.Space({"k": ts.Categorical(["a"]), "x": ts.Float(0, 1, when=["k"])})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'x': condition on 'k' lists no values"):
        ts.Space({"k": ts.Categorical(["a"]), "x": ts.Float(0, 1, when={"k": []})})


def test_prior_is_validated_and_kept() -> None:
    space = ts.Space({
        "lr": ts.Float(1e-5, 1e-1, log=True, prior=1e-3),
        "opt": ts.Categorical(["sgd", "adam"], prior={"adam": 3.0, "sgd": 1.0}),
        "depth": ts.Int(1, 8, prior=Prior(mode=4, width=0.2)),
    })
    assert space["lr"].prior == Prior(mode=1e-3)
    assert space["opt"].prior is not None and space["opt"].prior.weight == {"adam": 3.0, "sgd": 1.0}
    assert space["depth"].prior == Prior(mode=4, width=0.2)
    with pytest.raises(ValueError, match="'opt'.*prior choice 'rmsprop'"):
        ts.Space({"opt": ts.Categorical(["sgd", "adam"], prior={"rmsprop": 1.0})})
    with pytest.raises(ValueError, match="prior width"):
        Prior(mode=1, width=0.0)


@pytest.mark.parametrize(("prior", "message"), [
    ({"weight": [1, 2]}, r"'c': prior weight must map each choice to its weight, such as \{'a': 1, 'b': 2\}; got list"),
    ({"weights": {"a": 2}}, r"unknown key 'weights' in a categorical parameter's prior \(did you mean 'weight'\?\); "
                            r"its keys are \['mode', 'width', 'weight'\]"),
    ({"mdoe": "a"}, r"unknown key 'mdoe' .*\(did you mean 'mode'\?\)"),
])
def test_a_prior_written_with_a_wrong_key_or_a_list_of_weights_is_refused_by_name(prior: dict, message: str) -> None:
    """A study file's ``prior: {weight: [1, 2]}`` failed with Python's "'list' object has no attribute
    'items'", and ``prior: {weights: {...}}`` (or any misspelt key) was read without it: "prior needs a
    mode value", or a space without the weights meant."""
    with pytest.raises(ValueError, match=message):
        ts.Space.from_dict({"c": {"type": "categorical", "choices": ["a", "b"], "prior": prior}})
    with pytest.raises(ValueError, match="'c': prior weight must map each choice"):  # in Python too
        ts.Space({"c": ts.Categorical(["a", "b"], prior=Prior(weight=[1, 2]))})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown key 'mdoe' in a float parameter's prior"):
        ts.Space.from_dict({"x": {"type": "float", "low": 0, "high": 1, "prior": {"mdoe": 0.5}}})
    with pytest.raises(ValueError, match="unknown key 'mdoe' in an int parameter's prior"):  # was "a int"
        ts.Space.from_dict({"x": {"type": "int", "low": 0, "high": 1, "prior": {"mdoe": 0.5}}})



@pytest.mark.parametrize("param, message", [
    (lambda: ts.Float(0.0, 1.0, prior={"mode": 0.5}), r"'x': prior \{'mode': 0.5\} is read as the weights of a "
     r"categorical's choices .* go in ts.Prior\(mode=0.5\) in Python"),
    (lambda: ts.Int(1, 9, prior={"mode": 2, "width": 0.3}), r"ts.Prior\(mode=2, width=0.3\) in Python"),
    (lambda: ts.Categorical(["a", "b"], prior={"weight": {"a": 3, "b": 1}}),
     r"the choices \['a', 'b'\], and 'weight' is none of them .* ts.Prior\(weight=\{'a': 3, 'b': 1\}\) in Python"),
], ids=["float", "int", "categorical"])
def test_a_prior_written_in_python_as_a_study_file_writes_it_says_how_to_write_it(param, message: str) -> None:
    """In Python a mapping given as prior= is a categorical's weights, so the study file's form of a
    prior (``prior={"mode": 0.5}``) failed with "prior needs a mode value", the mode given, or with
    "prior choice 'weight' is not one of the choices"."""
    with pytest.raises(ValueError, match=message):
        ts.Space({"x": param()})
    assert ts.Space({"x": ts.Categorical(["mode", "b"], prior={"mode": 3, "b": 1})})["x"].prior.weight == {"mode": 3, "b": 1}


# -- configurations -----------------------------------------------------------------------


def test_validate_canonical_form(svm_space: ts.Space) -> None:
    cfg = svm_space.validate({"kernel": "poly", "C": 1, "gamma": 0.1, "degree": 3})
    assert cfg == {"kernel": "poly", "C": 1.0, "gamma": 0.1, "degree": 3}
    assert isinstance(cfg["C"], float)
    assert svm_space.validate({"kernel": "linear", "C": 2.0}) == {"kernel": "linear", "C": 2.0}


@pytest.mark.parametrize(
    "config, fragment",
    [
        ({"kernel": "linear", "C": 1.0, "gamma": 0.1}, "'gamma' is inactive here"),
        ({"kernel": "rbf", "C": 1.0}, "'gamma' is missing"),
        ({"kernel": "rbf", "C": 1.0, "gamma": 0.1, "coef": 1}, r"unknown parameter\(s\) \['coef'\]"),
        ({"kernel": "sigmoid", "C": 1.0}, "'kernel': value 'sigmoid' is not one of the choices"),
        ({"kernel": "linear", "C": 1e9}, "'C': value .* is outside"),
        ({"kernel": "poly", "C": 1.0, "gamma": 0.1, "degree": 2.5}, "'degree': value must be an integer"),
        ({"kernel": "linear", "C": float("nan")}, "'C': value must be a finite number"),
    ],
)
def test_bad_configuration(svm_space: ts.Space, config: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        svm_space.validate(config)


def test_fixed_values_and_nested_conditions() -> None:
    space = ts.Space({
        "model": ts.Categorical(["tree", "mlp"]),
        "layers": ts.Int(1, 4, when={"model": "mlp"}),
        "width": ts.Int(16, 256, log=True, when={"layers": [2, 3, 4]}),
        "max_iter": 500,
        "seed_of_tree": ts.Fixed(7, when={"model": "tree"}),
    })
    assert space.ndim == 3  # fixed values take no coordinate
    assert space.validate({"model": "tree"}) == {"model": "tree", "max_iter": 500, "seed_of_tree": 7}
    assert space.validate({"model": "mlp", "layers": 1}) == {"model": "mlp", "layers": 1, "max_iter": 500}
    deep = space.validate({"model": "mlp", "layers": 3, "width": 64})
    assert deep["width"] == 64
    with pytest.raises(ValueError, match="'width' is inactive"):
        space.validate({"model": "tree", "width": 64})
    with pytest.raises(ValueError, match="'max_iter': value 400 differs from the fixed value 500"):
        space.validate({"model": "tree", "max_iter": 400})
    assert not space.is_active("width", {"model": "tree", "layers": 3})


def test_encode_marks_inactive_as_nan(svm_space: ts.Space) -> None:
    x = svm_space.encode({"kernel": "linear", "C": 1.0})
    assert x.shape == (4,)
    assert x[0] == pytest.approx(0.5 / 3) and x[1] == pytest.approx(0.5)
    assert math.isnan(x[2]) and math.isnan(x[3])
    assert svm_space.decode(x) == {"kernel": "linear", "C": pytest.approx(1.0)}
    with pytest.raises(ValueError, match="3 coordinates, the space has 4"):
        svm_space.decode([0.1, 0.2, 0.3])


def test_steps_and_ints_map_to_equal_bins() -> None:
    p = ts.Space({"x": ts.Float(0.0, 1.0, step=0.25)})["x"]
    assert [p.from_unit(u) for u in (0.0, 0.19, 0.21, 0.5, 0.99, 1.0)] == [0.0, 0.0, 0.25, 0.5, 1.0, 1.0]
    assert p.to_unit(0.5) == pytest.approx(0.5)
    q = ts.Space({"n": ts.Int(1, 1000, log=True)})["n"]
    assert q.from_unit(0.0) == 1 and q.from_unit(1.0) == 1000


# -- property: encode/decode round-trips every valid configuration -----------------------------------


@st.composite
def numeric_params(draw: st.DrawFn) -> ts.space.Param:
    kind = draw(st.sampled_from(["float", "float_log", "float_step", "int", "int_log", "int_step"]))
    if kind.startswith("float"):
        if kind == "float_log":
            low = draw(st.floats(1e-8, 1e3))
            return ts.Float(low, low * draw(st.floats(1.01, 1e6)), log=True)
        low = draw(st.floats(-1e4, 1e4))
        if kind == "float_step":
            step = draw(st.sampled_from([0.1, 0.25, 0.5, 1.0, 3.0]))
            return ts.Float(low, low + step * draw(st.integers(1, 50)), step=step)
        return ts.Float(low, low + draw(st.floats(1e-3, 1e4)))
    low = draw(st.integers(1 if kind == "int_log" else -1000, 1000))
    if kind == "int_step":
        step = draw(st.integers(1, 7))
        return ts.Int(low, low + step * draw(st.integers(1, 30)), step=step)
    span = draw(st.one_of(st.integers(1, 8), st.integers(1, 10_000)))  # small ones can be parents
    return ts.Int(low, low + span, log=kind == "int_log")


@st.composite
def spaces(draw: st.DrawFn) -> ts.Space:
    """Random spaces: numeric and categorical parameters, fixed values, and
    conditions (possibly nested) on earlier categorical or small integer parameters."""
    params: dict[str, ts.space.Param] = {}
    choices_of: dict[str, list] = {}
    for i in range(draw(st.integers(1, 6))):
        name = f"p{i}"
        when = None
        if choices_of and draw(st.booleans()):
            parent = draw(st.sampled_from(sorted(choices_of)))
            opts = choices_of[parent]
            when = {parent: draw(st.lists(st.sampled_from(opts), min_size=1, max_size=len(opts), unique=True))}
        what = draw(st.sampled_from(["numeric", "categorical", "fixed"]))
        if what == "categorical":
            pool = ["a", "b", 1, 2.5, None, False, ("t", 1)]
            choices = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=5, unique_by=repr))
            params[name] = ts.Categorical(choices, when=when)
            choices_of[name] = choices
        elif what == "fixed":
            params[name] = ts.Fixed(draw(st.sampled_from([0, "x", 3.5])), when=when)
        else:
            p = draw(numeric_params())
            p.when = when or {}
            params[name] = p
            if isinstance(p, ts.Int) and not p.log and (p.high - p.low) // (p.step or 1) < 10:
                choices_of[name] = list(range(p.low, p.high + 1, p.step or 1))
    return ts.Space(params)


@st.composite
def space_and_config(draw: st.DrawFn) -> tuple[ts.Space, dict]:
    space = draw(spaces())
    config: dict = {}
    for name in space._order:
        if not space.is_active(name, config):
            continue
        p = space[name]
        if isinstance(p, ts.Categorical):
            config[name] = draw(st.sampled_from(list(p.choices)))
        elif isinstance(p, ts.Fixed):
            config[name] = p.value
        elif p.step is not None and (p.kind == "float" or p.step != 1 or not p.log):
            config[name] = p.low + p.step * draw(st.integers(0, int(p.n_values) - 1))
        elif p.kind == "int":
            config[name] = draw(st.integers(p.low, p.high))
        else:
            config[name] = draw(st.floats(p.low, p.high))
    return space, space.validate(config)


def _close(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space_and_config())
def test_encode_decode_round_trip(sc: tuple[ts.Space, dict]) -> None:
    space, config = sc
    x = space.encode(config)
    assert x.shape == (space.ndim,)
    active = x[~np.isnan(x)]
    assert np.all((active >= 0) & (active <= 1))
    back = space.decode(x)
    assert list(back) == list(config)
    assert all(_close(back[k], config[k]) for k in config), (config, back)
    assert space.validate(back) == back


@settings(max_examples=200, deadline=None)
@given(spaces(), st.data())
def test_decode_of_any_point_is_valid(space: ts.Space, data: st.DataObject) -> None:
    x = data.draw(st.lists(st.floats(0.0, 1.0), min_size=space.ndim, max_size=space.ndim))
    config = space.decode(x)
    assert space.validate(config) == config
    again = space.decode(space.encode(config))
    assert all(_close(again[k], config[k]) for k in config)


@settings(max_examples=100, deadline=None)
@given(spaces())
def test_json_and_yaml_round_trip(space: ts.Space) -> None:
    assert ts.Space.from_json(space.to_json()) == space
    assert ts.Space.from_yaml(space.to_yaml()) == space


# -- serialization -----------------------------------------------------------------------------------


def test_serialization_keeps_everything() -> None:
    space = ts.Space({
        "kernel": ts.Categorical(["linear", "poly", "rbf"], prior={"rbf": 2.0, "linear": 1.0, "poly": 1.0}),
        "C": ts.Float(1e-3, 1e3, log=True, grid=[0.1, 1, 10, 100], prior=1.0),
        "gamma": ts.Float(1e-5, 10.0, log=True, grid=4, when={"kernel": ["poly", "rbf"]}),
        "degree": ts.Int(2, 5, when={"kernel": "poly"}),
        "shape": ts.Categorical([(1, 2), (3, 4), None]),
        "pad": ts.Int(0, 3, when={"shape": [(1, 2)]}),  # condition on a tuple choice
        "tol": ts.Float(0.0, 1.0, step=0.25),
        "max_iter": 1000,
    })
    for text in (space.to_json(), space.to_yaml()):
        back = ts.Space.from_json(text) if text.startswith("{") else ts.Space.from_yaml(text)
        assert back == space
        assert back["C"].prior == Prior(mode=1.0)
        assert back["shape"].choices == ((1, 2), (3, 4), None)
        assert back.grid() == space.grid()
        assert back.is_active("pad", {"shape": (1, 2)}) and not back.is_active("pad", {"shape": None})


def test_yaml_shorthand() -> None:
    space = ts.Space.from_yaml(
        """
        kernel: [linear, rbf]
        C: {type: float, low: 0.001, high: 1000, log: true}
        gamma: {type: float, low: 1.0e-5, high: 10, log: true, when: {kernel: rbf}}
        max_iter: 200
        """
    )
    assert isinstance(space["kernel"], ts.Categorical)
    assert isinstance(space["max_iter"], ts.Fixed)
    assert space["gamma"].when == {"kernel": ("rbf",)}
    # YAML 1.1 reads 1e-5 as text; a float's bounds and grid take it as the number meant
    lr = ts.Space.from_yaml("lr: {type: float, low: 1e-5, high: 1e-1, log: true, grid: [1e-4, 1e-3]}")["lr"]
    assert (lr.low, lr.high, lr.grid()) == (1e-5, 1e-1, [1e-4, 1e-3])
    with pytest.raises(ValueError, match="'lr': low must be a finite number, got 'small'"):
        ts.Space.from_yaml("lr: {type: float, low: small, high: 1}")
    with pytest.raises(ValueError, match="categorical needs 'choices'"):
        ts.Space.from_yaml("k: {type: categorical}")
    with pytest.raises(ValueError, match="unknown parameter type 'flaot'"):
        ts.Space.from_yaml("x: {type: flaot, low: 0, high: 1}")
    with pytest.raises(ValueError, match=r"parameter .x.: unknown key .lo. in a float parameter \(did you mean .low.\?\)"):
        ts.Space.from_yaml("x: {type: float, lo: 0, high: 1}")
    with pytest.raises(ValueError, match=r"unknown key .lo. in an int parameter \(did"):  # was "in a int parameter"
        ts.Space.from_yaml("x: {type: int, lo: 0, high: 1}")
    with pytest.raises(ValueError, match="mapping of parameter name"):
        ts.Space.from_yaml("- a\n- b\n")


# -- grids ----------------------------------------------------------------------------------------------


def test_grid_points_and_log_spacing() -> None:
    p = ts.Space({"C": ts.Float(0.01, 100.0, log=True)})["C"]
    assert p.grid(5) == pytest.approx([0.01, 0.1, 1.0, 10.0, 100.0])
    assert ts.Space({"x": ts.Float(0.0, 1.0)})["x"].grid(3) == [0.0, 0.5, 1.0]
    assert ts.Space({"n": ts.Int(1, 4)})["n"].grid() == [1, 2, 3, 4]
    assert ts.Space({"n": ts.Int(0, 100, step=10)})["n"].grid(3) == [0, 50, 100]
    with pytest.raises(ValueError, match="'C': grid value 1000.0 is outside"):
        p.grid([1.0, 1000.0])
    with pytest.raises(ValueError, match="lists a value twice"):
        p.grid([1.0, 1.0])


def test_grid_is_conditional_aware(svm_space: ts.Space) -> None:
    grid = svm_space.grid({"C": [0.1, 1, 10, 100], "gamma": 4, "degree": [2, 3]})
    # linear: 4 C; rbf: 4 C x 4 gamma; poly: 4 C x 4 gamma x 2 degrees
    assert len(grid) == 4 + 16 + 32
    keys = {svm_space.key(c) for c in grid}
    assert len(keys) == len(grid)
    for c in grid:
        assert svm_space.validate(c) == c
        assert ("gamma" in c) == (c["kernel"] != "linear")
        assert ("degree" in c) == (c["kernel"] == "poly")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['coef0'\]"):
        svm_space.grid({"coef0": 3})


def test_cardinality() -> None:
    assert ts.Space({"a": ts.Categorical(["x", "y"]), "n": ts.Int(1, 3, when={"a": "x"})}).cardinality == 4
    assert math.isinf(ts.Space({"x": ts.Float(0, 1)}).cardinality)
    # each integer of a log range counts (its grid of 1,000 log-spaced points rounds to 424 of them)
    assert ts.Space({"n": ts.Int(1, 1000, log=True)}).cardinality == 1000
    space = ts.Space({"n": ts.Int(1, 1000, log=True), "x": ts.Float(0.1, 0.7, step=0.2), "k": ts.Categorical(["a", "b"])})
    assert space.every_value() == {"n": list(range(1, 1001)), "x": [0.1, 0.3, 0.5, 0.7]}


def test_validation_gaps_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"\[-1e\+308, 1e\+308\] is wider than the largest float \(1.798e\+308\)"):
        ts.Space({"x": ts.Float(-1e308, 1e308)})
    ts.Space({"x": ts.Float(-8e307, 8e307)})  # a finite span is fine
    with pytest.raises(ValueError, match="choice nan is not equal to itself.*use None"):
        ts.Space({"c": ts.Categorical([float("nan"), 1.0])})
    with pytest.raises(ValueError, match="condition on 'lr', a Float.*Categorical, an Int or a fixed value"):
        ts.Space({"lr": ts.Float(0, 1), "w": ts.Int(1, 3, when={"lr": [0.5]})})
    with pytest.raises(ValueError, match=r"a plain list is ambiguous; write Categorical\(\[1, 2, 3\]\).*Fixed"):
        ts.Space({"a": [1, 2, 3]})
    assert isinstance(ts.Space.from_yaml("a: [1, 2, 3]")["a"], ts.Categorical)  # YAML's list: choices
    assert ts.Space({"a": ts.Fixed([1, 2, 3])})["a"].n_values == 1
    with pytest.raises(ValueError, match=r"line 3: the key 'a' is given twice \(first on line 1\)"):
        ts.Space.from_yaml("a: [1, 2]\nb: 3\na: [4]\n")


def test_another_library_s_distribution_is_refused_not_fixed() -> None:
    """Before, ``Space({"lr": tune.loguniform(1e-4, 0.1)})`` (or scipy's, Optuna's) made a fixed
    parameter holding the distribution object, handed to every trial as its value."""
    from scipy.stats import loguniform

    with pytest.raises(TypeError, match=r"'lr': scipy's rv_continuous_frozen is another library's search distribution, "
                                        r"which here would be a fixed value; write ts.Float\(low, high, log=True\)"):
        ts.Space({"lr": loguniform(1e-4, 0.1)})
    optuna = pytest.importorskip("optuna")
    with pytest.raises(TypeError, match=r"'n': optuna's IntDistribution is another library's"):
        ts.Space({"n": optuna.distributions.IntDistribution(1, 3)})
    tune = pytest.importorskip("ray.tune")
    with pytest.raises(TypeError, match=r"'k': ray's Categorical is another library's"):
        ts.Space({"k": tune.choice(["a", "b"])})
    assert ts.Space({"k": ts.Fixed(loguniform(1e-4, 0.1))})["k"].n_values == 1  # asked for in so many words


def test_a_distribution_inside_a_ray_tune_config_is_refused_and_scipy_s_other_objects_are_values() -> None:
    """Before, Ray Tune's nested ``param_space`` ({"train_loop_config": {"lr": tune.loguniform(...)}}) and
    ``tune.grid_search([...])`` (a dict) were still fixed values holding the search; a scipy.stats object
    that is no distribution (a qmc engine) was refused as one; the refusal never named ts.Fixed."""
    from scipy.stats import norm, qmc

    tune = pytest.importorskip("ray.tune")
    with pytest.raises(TypeError, match=r"'train_loop_config': its value holds at \['lr'\] ray's Float, another "
                                        r"library's search distribution.*a Space is flat"):
        ts.Space({"train_loop_config": {"lr": tune.loguniform(1e-4, 0.1), "epochs": 3}})
    with pytest.raises(TypeError, match=r"'w': Ray Tune's tune.grid_search\(\[...\]\) is another library's.*"
                                        r"sampler='grid'"):
        ts.Space({"w": tune.grid_search([4, 8])})
    with pytest.raises(TypeError, match=r"'noise': scipy's rv_continuous_frozen is .*or ts.Fixed\(value\) to pass the object"):
        ts.Space({"noise": norm(0, 1)})
    engine = qmc.Sobol(2, seed=0)
    assert ts.Space({"engine": engine, "x": ts.Float(0, 1)})["engine"].value is engine
    assert ts.Space({"cfg": {"depth": 3, "sizes": (1, 2)}})["cfg"].value == {"depth": 3, "sizes": (1, 2)}


def test_an_integer_too_large_for_a_float_is_a_value_error() -> None:
    space = ts.Space({"n": ts.Int(1, 10)})
    for big in (10**400, -(10**400), float("inf")):
        with pytest.raises(ValueError, match="parameter 'n'"):
            space.validate({"n": big})
    assert not space.fits({"n": 10**400}) and space.fits({"n": 3})


def test_a_tuple_stays_a_tuple_through_json_yaml_and_sqlite(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``Fixed((3, 4))`` came back from JSON as ``[3, 4]``: a reopened SQLite study
    handed the objective a list, and its own trials read back "did not fit the space"
    (a warning, and the sampler left them out). The repr shows the values as they are."""
    space = ts.Space({"a": ts.Categorical([None, (1, 2), "x"]), "f": ts.Fixed((3, 4)), "l": ts.Fixed([5, 6]),
                      "g": ts.Float(0.0, 1.0, when={"a": [(1, 2)]})})
    assert ts.Space.from_json(space.to_json()) == space == ts.Space.from_yaml(space.to_yaml())
    assert repr(space["f"]) == "Fixed(value=(3, 4))" and "choices=[None, (1, 2), 'x']" in repr(space["a"])
    assert "when={'a': [(1, 2)]}" in repr(space["g"])
    assert space["f"].validate([3, 4]) == (3, 4)  # the same constant, as JSON writes it
    url = f"sqlite:///{tmp_path / 't.db'}"
    seen = []
    with caplog.at_level("WARNING", logger="tunesmith"):
        for _ in range(2):
            study = ts.Study(space, sampler="random", seed=0, storage=url, name="tuples")
            study.optimize(lambda t: seen.append((t.params["f"], t.params["l"])) or 1.0, n_trials=2)
    assert seen == [((3, 4), [5, 6])] * 4
    assert [t.params["f"] for t in study.trials] == [(3, 4)] * 4
    assert "do not fit the space" not in caplog.text


@pytest.mark.parametrize("sampler", ["grid", "random", "sobol", "tpe", "bayes"])
def test_stepped_floats_are_the_values_written(sampler: str) -> None:
    """``Float(0.1, 0.7, step=0.2)`` gave 0.30000000000000004 and 0.7000000000000001,
    a value above ``high``, in ``best_params`` and in the objective; now the lattice's
    values as one writes them, under every sampler and in validate and grids."""
    space = ts.Space({"d": ts.Float(0.0, 0.5, step=0.1), "e": ts.Float(0.1, 0.7, step=0.2),
                      "f": ts.Float(1e-7, 1.1e-6, step=1e-7)})
    study = ts.Study(space, sampler=sampler, seed=0)
    study.optimize(lambda t: t.params["d"] + t.params["e"], n_trials=40)
    allowed = {"d": {0.0, 0.1, 0.2, 0.3, 0.4, 0.5}, "e": {0.1, 0.3, 0.5, 0.7},
               "f": {round(k * 1e-7, 7) for k in range(1, 12)}}
    for name, values in allowed.items():
        seen = {t.params[name] for t in study.trials}
        assert seen <= values, (name, seen - values)
    assert space.validate({"d": 0.30000000000000004, "e": 0.7, "f": 3e-7}) == {"d": 0.3, "e": 0.7, "f": 3e-7}
    assert space["e"].grid() == [0.1, 0.3, 0.5, 0.7]


def test_an_objective_that_changes_a_fixed_list_changes_no_other_trial() -> None:
    """``Fixed([64, 32])`` handed every trial the space's own list: an objective that
    appended to it changed the constant, every later trial's value and the records."""
    study = ts.Study({"x": ts.Float(0.0, 1.0), "sizes": ts.Fixed([64, 32])}, sampler="random", seed=0)

    def objective(trial: ts.Trial) -> float:
        sizes = trial.params["sizes"]
        sizes.append(10)
        return float(len(sizes))

    study.optimize(objective, n_trials=3)
    assert [t.value for t in study.trials] == [3.0, 3.0, 3.0]
    assert study.space["sizes"].value == [64, 32] and all(t.params["sizes"] == [64, 32] for t in study.trials)


def test_a_log_scale_bound_is_the_bound_written_not_exp_of_its_log() -> None:
    # math.exp(math.log(1e3)) == 999.9999999999989: a search at its bound showed C=999.9999999999989
    for low, high in ((1e-2, 1e3), (1e-5, 1e-1), (3e-4, 7.0)):
        p = ts.Float(low, high, log=True)
        assert (p.from_unit(0.0), p.from_unit(1.0)) == (low, high)
    assert ts.Float(1e-2, 1e3, log=True).from_unit(0.5) == pytest.approx(math.sqrt(1e-2 * 1e3))


@pytest.mark.parametrize(("choices", "pair"), [([2, 2.0, 3], r"2 and 2.0"), (["x", True, 1], r"True and 1")])
def test_choices_equal_across_types_are_refused_not_lost(choices: list, pair: str) -> None:
    # before: the grid sampler looped ("could not claim a configuration") and random draws lost 2.0
    with pytest.raises(ValueError, match=rf"choices {pair} are equal in Python .* cannot tell them apart"):
        ts.Space({"a": ts.Categorical(choices)})


def test_a_stepped_float_is_a_float_at_its_integer_bounds() -> None:
    # Float(0, 1, step=0.25) gave the int 1 (its high as written) for 1.0, and the random sampler showed ints
    space = ts.Space({"s": ts.Float(0, 1, step=0.25), "x": ts.Float(0, 2, step=1.0)})
    assert all(type(v) is float for v in space.validate({"s": 1, "x": 2}).values())
    study = ts.Study(space, sampler="random", seed=0)
    study.optimize(lambda t: t.params["s"], n_trials=20)
    assert {type(v) for t in study.trials for v in t.params.values()} == {float}


def test_a_partial_configuration_names_every_missing_parameter_not_an_inactive_child() -> None:
    # before: only the first missing one was named, and a child given without its parent was called
    # "inactive here ... must be left out" although the parent was what was missing
    space = ts.Space({
        "opt": ts.Categorical(["sgd", "adam"]),
        "momentum": ts.Float(0.0, 0.9, when={"opt": "sgd"}),
        "lr": ts.Float(1e-4, 1.0, log=True),
        "layers": ts.Int(1, 4),
    })
    with pytest.raises(ValueError, match=r"parameters 'opt', 'layers' are missing from the configuration: give a value for every active"):
        space.validate({"momentum": 0.5, "lr": 0.01})
    with pytest.raises(ValueError, match=r"\['kernal', 'layer'\] \('kernal': nothing close; 'layer': did you mean 'layers'\?\)"):
        space.validate({"kernal": 1, "layer": 2, "layers": 2})
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['layer'\] \(did you mean 'layers'\?\)"):
        space.validate({"layer": 2})
    study = ts.Study(space, sampler="random", seed=0)
    with pytest.raises(ValueError, match=r"'momentum', 'layers' are missing"):
        study.enqueue({"opt": "sgd", "lr": 0.01})


def test_grid_points_of_a_float_read_as_written() -> None:
    # before: Float(0.0, 0.99)'s 5 grid points included 0.7424999999999999 (a trial showed it as momentum)
    assert ts.Float(0.0, 0.99).grid() == [0.0, 0.2475, 0.495, 0.7425, 0.99]
    assert ts.Float(0.1, 0.7).grid(4) == [0.1, 0.3, 0.5, 0.7]
    assert ts.Float(1e-3, 1e3, log=True).grid(7) == [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]


def test_a_yaml_style_definition_in_python_is_refused_not_fixed() -> None:
    # before: Study({"lr": {"type": "float", "low": 1e-5, "high": 1.0}}) made lr a constant dict, silently
    with pytest.raises(ValueError, match=r"parameter 'lr': .* is a definition as YAML writes it.*Space.from_dict"):
        ts.Study({"lr": {"type": "float", "low": 1e-5, "high": 1.0}})
    assert isinstance(ts.Space.from_dict({"lr": {"type": "float", "low": 1e-5, "high": 1.0}})["lr"], ts.Float)
    assert ts.Space({"opt": ts.Fixed({"type": "float"}), "o2": {"type": "adam"}})["opt"].value == {"type": "float"}


def test_a_grid_too_large_to_list_is_refused_before_it_fills_the_memory() -> None:
    # before: sampler="grid" on 20 floats (5 points each, 9.5e13 configurations) listed them until MemoryError
    study = ts.Study({f"p{i}": ts.Float(0.0, 1.0) for i in range(20)}, sampler="grid")
    with pytest.raises(ValueError, match=r"more than 1,000,000 configurations \(points per parameter: p0: 5, .*"
                                         r"\.\.\. \(20 parameters\)\); give fewer points .*sampler='random'"):
        study.ask()


def test_a_grid_is_refused_as_it_grows_past_the_limit_not_after_a_parameter_multiplied_it() -> None:
    """Before: the size was checked after each parameter: three of 1,000 choices (a stored space of 20 KB)
    listed a billion configurations first (a MemoryError under 2 GiB, minutes and gigabytes without)."""
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31)); import tunesmith as ts\n"
            "try:\n    ts.Space({n: ts.Categorical(list(range(1000))) for n in 'abc'}).grid()\n"
            "except ValueError as exc:\n    print(exc)\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert "the grid has more than 1,000,000 configurations (points per parameter: a: 1000, b: 1000, c: 1000)" \
        in out.stdout, out.stderr[-500:]


def test_one_parameter_s_grid_of_too_many_points_is_refused_before_they_are_made() -> None:
    """Before: a number of points was spaced whole, then checked for neighbours one by one against the list
    made so far: a stored space's `"grid": 1000000000` (30 bytes) filled 8 GB as every reader opened the
    study (a MemoryError under 2 GiB), and `"grid": 20000` took 6.7 s at each open (n**2)."""
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31)); import tunesmith as ts\n"
            "for grid in ({'type': 'float', 'low': 0, 'high': 1, 'grid': 10**9}, {'type': 'int', 'low': 0, "
            "'high': 9, 'grid': 10**12}):\n"
            "    try:\n        ts.Space.from_dict({'x': grid})\n    except ValueError as exc:\n        print(exc)\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    for n in ("1,000,000,000", "1,000,000,000,000"):
        assert f"parameter 'x': grid of {n} points: a grid lists at most 1,000,000 configurations; give fewer" \
            in out.stdout, out.stderr[-500:]
    assert ts.Int(0, 9).grid(1000) == list(range(10))  # a lattice's merged neighbours, in order
    assert len(ts.Float(0, 1).grid(1_000_000)) == 1_000_000


def test_a_log_scale_value_at_a_round_point_reads_as_written() -> None:
    # before: the Bayesian design's first point, at the prior mode 1e-3, was lr=0.0010000000000000002
    p = ts.Float(1e-5, 1e-1, log=True)
    assert p.from_unit(p.to_unit(1e-3)) == 1e-3 and p.from_unit(0.5) == 1e-3
    study = ts.Study({"lr": ts.Float(1e-5, 1e-1, log=True, prior=1e-3)}, sampler="bayes", seed=0)
    assert study.ask().params["lr"] == 1e-3


def test_ints_beyond_float_precision_are_exact(tmp_path: Path) -> None:
    """Integers above 2**53 have no exact float: validating, encoding and storing them must
    not round them (2**53 + 1 was refused as 'not an integer', and the model saw 2**53 + 1
    and 2**53 as one point, so 'bayes' could not claim a new configuration)."""
    low = 2**53
    p = ts.Int(low, low + 10)
    assert p.validate(low + 1) == low + 1 and p.validate(np.int64(low + 3)) == low + 3
    assert [p.from_unit(p.to_unit(v)) for v in range(low, low + 11)] == list(range(low, low + 11))
    wide = ts.Int(-(2**63), 2**63 - 1)
    assert wide.from_unit(wide.to_unit(2**63 - 1)) == 2**63 - 1
    space = ts.Space({"n": p})
    study = ts.Study(space, sampler="random", seed=0, storage=f"sqlite:///{tmp_path / 'big.db'}", name="big")
    study.enqueue({"n": low + 1})
    study.optimize(lambda t: float(t.params["n"] - low), n_trials=6)
    again = ts.load_study("big", f"sqlite:///{tmp_path / 'big.db'}")
    assert [t.state.value for t in again.trials] == ["complete"] * 6
    assert again.trials[0].params["n"] == low + 1 and again.trials[0].value == 1.0
    assert all(isinstance(t.params["n"], int) and low <= t.params["n"] <= low + 10 for t in again.trials)


@pytest.mark.parametrize("sampler", ["random", "sobol", "tpe", "bayes"])
def test_a_float_step_of_many_levels_takes_its_own_values(sampler: str) -> None:
    """Float(0, 1, step=1e-12) has 1e12 levels: k = x / step carries a rounding error of ~1e-4,
    which the fixed 1e-6 tolerance refused ('0.506160712801 is not on the step 1e-12 ...; the
    nearest allowed value is 0.506160712801'), so every sampler but grid failed its first trial."""
    p = ts.Float(0, 1, step=1e-12)
    assert p.validate(0.506160712801) == 0.506160712801
    with pytest.raises(ValueError, match="not on the step 1e-12 from 0; the nearest allowed value is 0.5$"):
        p.validate(0.5 + 3e-13)
    study = ts.Study({"x": p}, sampler=sampler, seed=0)
    study.optimize(lambda t: t.params["x"], n_trials=3, catch=())
    assert all(t.value is not None for t in study.trials)


@pytest.mark.parametrize("param, fit", [
    (lambda: ts.Int(0, 10**12 + 1, step=2), "adjust high to 1000000000000 or"),
    (lambda: ts.Int(0, 2**60, step=7), f"adjust high to {2**60 - 1} or"),
    (lambda: ts.Float(0, 1e12 + 0.5, step=1.0), "adjust high to 1e+12 or"),
])
def test_a_step_that_does_not_divide_a_wide_range_is_refused(param, fit: str) -> None:
    """The divisibility test forgave 1e-9 of the level count: past ~1e9 levels a whole step, so
    Int(0, 10**12 + 1, step=2) was taken and its high, off the step, failed the grid's last point
    ('not on the step 2 from 0; the nearest allowed value is 1000000000001')."""
    with pytest.raises(ValueError, match=f"does not divide the range .*; {re.escape(fit)}"):
        ts.Space({"n": param()})
    assert ts.Float(0, 1000000.1, step=0.1).validate(1000000.1) == 1000000.1  # decimal noise still forgiven


def test_numpy_float32_bounds_and_steps_are_taken_as_written() -> None:
    """np.float32(0.1) is 0.10000000149011612 as a float: Float(np.float32(0.1), np.float32(0.7),
    step=0.2) was refused ('adjust high to 0.5'), and a float32 step drew 0.20000000298023224."""
    p = ts.Space({"p": ts.Float(np.float32(0.1), np.float32(0.7), step=0.2)})["p"]
    assert (p.low, p.high, p.grid()) == (0.1, 0.7, [0.1, 0.3, 0.5, 0.7])
    space = ts.Space({"q": ts.Float(0, 1, step=np.float32(0.1))})
    assert space["q"].grid() == [0.0, 0.2, 0.5, 0.8, 1.0] and type(space["q"].step) is float
    assert space.to_json() == '{"q": {"type": "float", "low": 0, "high": 1, "step": 0.1}}'


def test_a_parameter_used_before_its_space_checks_its_bounds_as_written() -> None:
    """A numeric parameter's range (with its rounding margin) is computed once and kept; one read before
    the Space takes its np.float32 bound as written must not keep the float32 range, where values
    compare as float32: 0.1 - 1e-9, below the low bound 0.1 as written, was accepted."""
    p = ts.Float(np.float32(0.1), 1.0)
    assert p.validate(0.5) == 0.5  # before binding: low is still np.float32(0.1)
    space = ts.Space({"p": p})
    assert space.validate({"p": 0.1}) == {"p": 0.1}
    with pytest.raises(ValueError, match="outside"):
        space.validate({"p": 0.1 - 1e-9})


def test_a_parameter_copied_after_use_and_changed_checks_its_new_range_and_step() -> None:
    """A numeric parameter keeps its range, step lattice and step decimals once computed; a copy of
    one already used, given another high or step, kept them: 1.5 was "outside [0.0, 2.0]", and the
    lattice stayed the old one's."""
    p = ts.Float(0.0, 1.0, step=0.5)
    assert p.validate(0.5) == 0.5 and p.n_values == 3
    q = copy.copy(p)
    q.high, q.step = 2.0, 0.25
    assert q.validate(1.75) == 1.75
    assert q.n_values == 9 and q.from_unit(0.99) == 2.0 and q.grid(3) == [0.0, 1.0, 2.0]
    assert p.validate(1.0) == 1.0 and p.n_values == 3  # the original as it was
    with pytest.raises(ValueError, match="outside"):
        p.validate(1.5)


@pytest.mark.parametrize("low", [10**13, -(10**13) - 100, 2**60])
def test_a_large_integer_range_takes_no_integer_outside_it(low: int) -> None:
    """A relative 1e-12 margin for float rounding is a whole integer or more past 1e12: an Int's
    range took values below low and above high."""
    space = ts.Space({"n": ts.Int(low, low + 100)})
    assert space.validate({"n": low}) == {"n": low} and space.validate({"n": low + 100}) == {"n": low + 100}
    for outside in (low - 10, low - 1, low + 101, low + 110):
        with pytest.raises(ValueError, match="outside"):
            space.validate({"n": outside})


@pytest.mark.parametrize("nan", [float("nan"), np.float32("nan"), np.float64("nan")])
def test_an_integer_parameter_given_nan_names_itself(nan: Any) -> None:
    """NaN for an Int raised int()'s own "cannot convert float NaN to integer", naming no parameter."""
    space = ts.Space({"n": ts.Int(0, 10), "x": ts.Float(0, 1)})
    with pytest.raises(ValueError, match=r"parameter 'n': value must be an integer, got (np\.float\d+\()?nan"):
        space.validate({"n": nan, "x": 0.5})
    assert not space.fits({"n": nan, "x": 0.5})


def test_numpy_scalar_choices_are_stored_as_python_values(storage_url: str | None) -> None:
    """`Categorical([np.int64(3), "a"])` was accepted, then the study failed at its first write with
    json's "Object of type int64 is not JSON serializable"; the choices are Python's values now."""
    choices = [np.int64(3), "a", np.bool_(True), (np.int64(1), np.float64(0.5))]
    study = ts.Study({"c": ts.Categorical(choices)}, sampler="grid", storage=storage_url, name="np")
    study.optimize(lambda t: 0.0, n_trials=4)
    assert study.space["c"].choices == (3, "a", True, (1, 0.5))
    assert sorted(map(repr, (t.params["c"] for t in study.trials))) == sorted(map(repr, [3, "a", True, (1, 0.5)]))
    assert ts.Study.load("np", study.storage).space["c"].choices in ((3, "a", True, (1, 0.5)), (3, "a", True, [1, 0.5]))
    # a prior's weights, a mode and a condition's values read from an array are stored too
    space = {"c": ts.Categorical([np.int64(3), "a"], prior={np.int64(3): 2.0, "a": 1.0}),
             "n": ts.Int(1, 8, prior=ts.Prior(mode=np.int64(4))),
             "x": ts.Float(0, 1, when={"c": [np.int64(3)]})}
    other = ts.Study(space, storage=storage_url, name="np2")
    other.optimize(lambda t: 0.0, n_trials=2)
    assert other.space.to_dict()["x"]["when"] == {"c": [3]} and other.space.to_dict()["n"]["prior"]["mode"] == 4


def test_prior_weights_on_number_choices_are_read_back(storage_url: str | None) -> None:
    """JSON stored ``prior={1: 3.0}`` as ``{"1": 3.0}``, which was then no choice: the study was created and
    run, then ``Study.load``, ``show`` and every resume failed ("its stored space is unreadable")."""
    choices = [1, 2.5, None, False, "a"]
    weight = {1: 3.0, 2.5: 1.0, None: 0.5, False: 2.0, "a": 1.0}
    space = {"c": ts.Categorical(choices, prior=ts.Prior(weight=weight))}
    study = ts.Study(space, storage=storage_url, name="w", sampler="random", seed=0)
    study.optimize(lambda t: 0.0, n_trials=3)
    back = ts.Study.load("w", study.storage)
    assert dict(back.space["c"].prior.weight) == weight and len(back.trials) == 3
    assert [type(k) for k in back.space["c"].prior.weight] == [type(k) for k in weight]
    ts.Study(space, storage=study.storage, name="w")  # the same space, reopened
    with pytest.raises(ValueError, match="the prior weight of 1 would be stored under the key '1' .* also a choice's"):
        ts.Study({"c": ts.Categorical([*choices, "1"], prior=ts.Prior(weight={1: 3.0}))})


def test_a_prior_weight_on_a_number_equal_to_a_choice_of_another_type_is_read_back(storage_url: str | None) -> None:
    """``prior={1.0: 3.0}`` on the choice ``1`` (accepted: 1.0 == 1) was stored under ``"1.0"``, the text of
    no choice: the study ran, then ``Study.load`` said "its stored space is unreadable"."""
    weight = {1.0: 3.0, 2: 1.0, 2.5: 0.5}
    space = {"c": ts.Categorical([1, 2.0, 2.5], prior=ts.Prior(weight=weight))}
    study = ts.Study(space, storage=storage_url, name="eq", sampler="random", seed=0)
    study.optimize(lambda t: 0.0, n_trials=2)
    back = ts.Study.load("eq", study.storage)
    assert dict(back.space["c"].prior.weight) == weight and len(back.trials) == 2
    ts.Study(space, storage=study.storage, name="eq")  # the same space, reopened


def test_prior_weights_on_tuple_choices_are_stored_and_read_back(storage_url: str | None) -> None:
    """Before: a weight on a tuple choice (``prior={(1, 2): 3.0}``) failed the study's first write with
    json's "keys must be str, int, float, bool or None, not tuple"; it is stored under its JSON text."""
    weight = {(1, 2): 3.0, ((0, "a"), 1.5): 1.0, 7: 0.5}
    space = {"c": ts.Categorical([(1, 2), ((0, "a"), 1.5), 7], prior=ts.Prior(weight=weight))}
    study = ts.Study(space, storage=storage_url, name="tw", sampler="random", seed=0)
    study.optimize(lambda t: 0.0, n_trials=2)
    back = ts.Study.load("tw", study.storage)
    assert dict(back.space["c"].prior.weight) == weight and len(back.trials) == 2
    ts.Study(space, storage=study.storage, name="tw")  # the same space, reopened
    with pytest.raises(ValueError, match=r"the prior weight of \(1, 2\) would be stored under the key '\[1, 2\]'"):
        ts.Study({"c": ts.Categorical([(1, 2), "[1, 2]"], prior=ts.Prior(weight={(1, 2): 3.0}))})


def test_nested_tuple_choices_are_read_back_and_a_list_inside_one_is_named(storage_url: str | None) -> None:
    """Before: a choice ``((0, "a"), 1.5)`` was stored as JSON lists and read back with its inner tuple a list:
    "its stored space is unreadable (choice ([0, 'a'], 1.5) is not hashable; use a tuple instead of a
    tuple)", a message that also named the outer tuple, not the list inside it."""
    space = {"c": ts.Categorical([((0, "a"), 1.5), 7])}
    study = ts.Study(space, storage=storage_url, name="nt", sampler="grid")
    study.optimize(lambda t: 0.0, n_trials=2)
    back = ts.Study.load("nt", study.storage)
    assert back.space["c"].choices == (((0, "a"), 1.5), 7)
    assert sorted((t.params["c"] for t in back.trials), key=str) == [((0, "a"), 1.5), 7]
    with pytest.raises(ValueError, match=r"choice \(\(0, \[1\]\), 2\) is not hashable; use a tuple instead of a list$"):
        ts.Study({"c": ts.Categorical([((0, [1]), 2), 3])})


def test_a_zero_dimensional_array_is_its_choice_when_enqueued_or_a_prior_mode() -> None:
    """Before: taken as a choice (its scalar), a 0-d array was refused where a value is looked up:
    ``enqueue({"c": np.array(3)})`` and ``Prior(mode=np.array(3))`` said "array(3) is not one of the
    choices [3, 4.5]"."""
    space = {"c": ts.Categorical([3, 4.5], prior=ts.Prior(mode=np.array(3)))}
    study = ts.Study(space, name="a0e", sampler="random", seed=0)
    study.enqueue({"c": np.array(4.5)})
    study.optimize(lambda t: 0.0, n_trials=1)
    assert study.trials[0].params["c"] == 4.5 and type(study.trials[0].params["c"]) is float


def test_the_yaml_list_shorthand_makes_a_list_inside_a_choice_a_tuple() -> None:
    """Before: ``x: [[[0, 1], 2], 3]`` made only a choice's outer list a tuple and refused ``([0, 1], 2)``
    as not hashable, while the same choices written as a definition were read."""
    space = ts.Space.from_yaml("x: [[[0, 1], 2], 3]\n")
    assert space["x"].choices == (((0, 1), 2), 3)


def test_a_condition_on_a_nested_tuple_choice_round_trips(storage_url: str | None) -> None:
    """Before: ``when={"c": [((0, "a"), 1.5)]}`` read back from JSON kept the inner list:
    "condition 'c' in [([0, 'a'], 1.5)] can never hold", so ``Space.from_json`` and the stored study failed."""
    space = ts.Space({"c": ts.Categorical([((0, "a"), 1.5), 7]), "y": ts.Float(0, 1, when={"c": [((0, "a"), 1.5)]})})
    assert ts.Space.from_json(space.to_json()) == space
    study = ts.Study(space, storage=storage_url, name="wn", sampler="grid")
    study.optimize(lambda t: 0.0, n_trials=2)
    assert ts.Study.load("wn", study.storage).space == space


def test_a_prior_mode_on_a_tuple_choice_reads_back_as_the_tuple(storage_url: str | None) -> None:
    """Before: ``Prior(mode=(1, 2))`` came back from JSON as the list ``[1, 2]``: the space read back
    was not the one written (``Space.from_json(space.to_json()) != space``)."""
    space = ts.Space({"c": ts.Categorical([((0, "a"), 1.5), (1, 2), 7], prior=ts.Prior(mode=((0, "a"), 1.5)))})
    assert ts.Space.from_json(space.to_json()) == space
    study = ts.Study(space, storage=storage_url, name="pm", sampler="random", seed=0)
    study.optimize(lambda t: 0.0, n_trials=2)
    assert ts.Study.load("pm", study.storage).space["c"].prior.mode == ((0, "a"), 1.5)


def test_tuple_choices_and_their_weights_round_trip_through_json_yaml_and_a_grid(storage_url: str | None) -> None:
    """A weight on a tuple choice (``prior={(1, 2): 2.0}``) failed the study's creation, and
    ``space.to_json()``, with json's "keys must be str, int, float, bool or None, not tuple"."""
    weight = {(1, 2): 2.0, (3, (4, "a")): 1.0, "b": 0.5}
    space = ts.Space({"c": ts.Categorical([(1, 2), (3, (4, "a")), "b"], prior=ts.Prior(weight=weight))})
    assert dict(ts.Space.from_json(space.to_json())["c"].prior.weight) == weight
    assert dict(ts.Space.from_yaml(space.to_yaml())["c"].prior.weight) == weight
    study = ts.Study(space, storage=storage_url, name="t", sampler="random", seed=0)
    study.optimize(lambda t: 0.0, n_trials=2)
    assert dict(ts.Study.load("t", study.storage).space["c"].prior.weight) == weight
    with pytest.raises(ValueError, match=r"the prior weight of \(1, 2\) would be stored under the key '\[1, 2\]'"):
        ts.Space({"c": ts.Categorical([(1, 2), "[1, 2]"], prior=ts.Prior(weight={(1, 2): 3.0}))})
    nested = ts.Space({"c": ts.Categorical([(3, (4, "a")), "b"])})  # read back as (3, [4, "a"]): unhashable
    assert ts.Space.from_json(nested.to_json()) == nested
    grid = ts.Study(nested, storage=storage_url, name="n", sampler="grid")
    grid.optimize(lambda t: 0.0, n_trials=3)  # a stored trial's (3, [4, "a"]) was no choice: run again
    assert sorted(map(repr, (t.params["c"] for t in ts.Study.load("n", grid.storage).trials))) == ["'b'", "(3, (4, 'a'))"]
    with pytest.raises(ValueError, match=r"choice \(3, \[4\]\) is not hashable; use a tuple instead of a list$"):
        ts.Space({"c": ts.Categorical([(3, [4]), "b"])})  # was "use a tuple instead of a tuple"
    fixed = ts.Space({"f": ts.Fixed((1, (2, 3))), "g": ts.Fixed([1, [2, 3]])})  # a list stays a list
    assert ts.Space.from_json(fixed.to_json()) == fixed


def test_zero_dimensional_array_choices_are_their_scalars_and_an_array_choice_is_named() -> None:
    """`Categorical([np.array(3), np.array(4)])` (values taken from arrays by indexing ``a[()]`` or
    ``np.asarray``) was refused with "choice array(3) is not hashable; use a tuple instead of a list":
    a 0-d array is a scalar, taken as Python's; a 1-d one is named as an array."""
    study = ts.Study({"c": ts.Categorical([np.array(3), np.array(4.5)])}, sampler="grid", name="a0")
    study.optimize(lambda t: 0.0, n_trials=2)
    assert study.space["c"].choices == (3, 4.5) and {t.params["c"] for t in study.trials} == {3, 4.5}
    with pytest.raises(ValueError, match=r"choice array\(\[1, 2\]\) is not hashable; use a tuple instead of an array"):
        ts.Study({"c": ts.Categorical([np.array([1, 2]), 3])})


def test_a_prior_weight_on_a_tuple_json_cannot_write_or_a_numpy_number_is_checked_as_stored() -> None:
    """Before: a weight on a tuple choice holding an Enum raised json's "Object of type E is not JSON
    serializable" as the space was built (an in-memory study ran with it before tuple keys were stored
    as text); a weight keyed by ``np.int64(1)`` beside the string choice ``"1"`` was not refused, stored
    under ``"1"`` and read back as the string choice's."""
    color = enum.Enum("color", ["RED", "BLUE"])
    space = ts.Space({"c": ts.Categorical([(color.RED, 1), (color.BLUE, 2)], prior={(color.RED, 1): 3.0})})
    study = ts.Study(space, sampler="random", seed=0)
    study.optimize(lambda t: 0.0, n_trials=2)
    assert space == ts.Space({"c": ts.Categorical([(color.RED, 1), (color.BLUE, 2)], prior={(color.RED, 1): 3.0})})
    with pytest.raises(ValueError, match=r"the prior weight of (np\.int64\()?1\)? would be stored under the key '1'"):
        ts.Space({"c": ts.Categorical([1, "1"], prior=ts.Prior(weight={np.int64(1): 3.0}))})


@pytest.mark.parametrize("kind", [enum.IntEnum, str])
def test_an_enum_choice_is_refused_before_a_stored_study_is_made(tmp_path: Path, kind: type) -> None:
    """Before: JSON wrote an IntEnum or a str Enum as its value, so the study was made; then its trials
    read back "did not fit the space" (a str Enum) or reopening it met "a different space (c: stored
    [1, 2], given [1, 2])" (an IntEnum). A date or any other object was refused so already."""
    level = (enum.IntEnum("level", ["LOW", "HIGH"]) if kind is enum.IntEnum
             else enum.Enum("level", {"LOW": "low", "HIGH": "high"}, type=str))
    space = {"c": ts.Categorical(list(level)), "x": ts.Float(0, 1, when={"c": [level.LOW]})}
    url = f"sqlite:///{tmp_path / 'enum.db'}"
    with pytest.raises(ValueError, match=r"parameter 'c': <level\.LOW: .*> is an Enum member \(JSON keeps only "
                                         r"its value, .*\), which a stored study cannot keep"):
        ts.Study(space, storage=url, name="s")
    assert ts.storage.make_storage(url).list_studies() == []
    study = ts.Study(space, sampler="random", seed=0)  # in memory: as before
    study.optimize(lambda t: 0.0, n_trials=4)
    assert {t.params["c"] for t in study.trials} <= set(level)


def test_the_repr_of_a_weight_on_a_tuple_choice_shows_the_tuple() -> None:
    """Before: ``repr`` showed the key a tuple choice's weight is stored under (``{'[1, 2]': 3.0}``), a
    string no choice is, where it shows the choices and the conditions as the values themselves."""
    param = ts.Space({"c": ts.Categorical([(1, 2), 3], prior={(1, 2): 3.0, np.int64(3): 1.0})})["c"]
    assert repr(param) == "Categorical(choices=[(1, 2), 3], prior={'width': 0.15, 'weight': {(1, 2): 3.0, 3: 1.0}})"


def test_a_prior_weight_keyed_by_a_value_equal_to_its_choice_reopens_the_same_space(storage_url: str | None) -> None:
    """Before: a weight on ``(1, 2.0)`` of the choice ``(1, 2)`` was stored under ``'[1, 2.0]'`` and read back as
    ``(1, 2)``, so reopening the study with the same space said "exists with a different space"; a weight on
    ``1.0`` of the choice ``1`` read back equal but with another hash. Weights are keyed by the choices."""
    space = ts.Space({"c": ts.Categorical([(1, 2), 3], prior={(1, 2.0): 3.0, 3: 1.0})})
    study = ts.Study(space, storage=storage_url, name="wk", sampler="random", seed=0)
    study.optimize(lambda t: 0.0, n_trials=2)
    ts.Study(space, storage=study.storage, name="wk")  # the same space, reopened
    assert ts.Study.load("wk", study.storage).space == space
    numbers = ts.Space({"c": ts.Categorical([1, 2], prior={1.0: 3.0, 2: 1.0})})
    assert hash(ts.Space.from_json(numbers.to_json())) == hash(numbers)


def test_a_study_reopened_with_choices_of_another_type_is_refused(storage_url: str | None) -> None:
    """Before: ``[True, False] == [1, 0]`` in Python, so a study stored with the choices ``[1, 0]`` was
    reopened with ``[True, False]`` in code (and ``[1.0, 2.0]`` for ``[1, 2]``, ``Fixed(True)`` for
    ``Fixed(1)``) as the same space: the objective went on getting ``1`` where it tests ``is True``."""
    space = {"c": ts.Categorical([1, 0]), "n": ts.Categorical([1, 2]), "f": ts.Fixed(1)}
    study = ts.Study(space, storage=storage_url, name="ty", sampler="random", seed=0)
    study.optimize(lambda t: 0.0, n_trials=1)
    ts.Study(space, storage=study.storage, name="ty")  # the same space, reopened
    for name, other in (("c", ts.Categorical([True, False])), ("n", ts.Categorical([1.0, 2.0])), ("f", ts.Fixed(True))):
        with pytest.raises(ValueError, match=rf"exists with a different space \({name}: stored "):
            ts.Study({**space, name: other}, storage=study.storage, name="ty")
        assert ts.Space({**space, name: other}) != ts.Space(space)
    assert ts.Study.load("ty", study.storage).space == ts.Space(space)


def test_equal_spaces_hash_equal() -> None:
    """Before: ``Space.__hash__`` was of ``to_json`` (and a parameter's of its ``repr``), which writes 0 and
    0.0 apart: ``Float(0, 1)`` and ``Float(0.0, 1.0)``, a prior mode 1 and 1.0, a condition on 1 or 1.0 of the
    choice 1 made equal spaces with other hashes (a set or dict of spaces held both)."""
    pairs = [({"x": ts.Float(0, 1)}, {"x": ts.Float(0.0, 1.0)}),
             ({"x": ts.Float(0, 2, prior=1)}, {"x": ts.Float(0, 2, prior=1.0)}),
             ({"c": ts.Categorical([1, 2], prior=ts.Prior(mode=1))}, {"c": ts.Categorical([1, 2], prior=ts.Prior(mode=1.0))}),
             ({"c": ts.Categorical([1, 2]), "y": ts.Float(0, 1, when={"c": [1]})},
              {"c": ts.Categorical([1, 2]), "y": ts.Float(0, 1, when={"c": [1.0]})})]
    for a, b in pairs:
        assert ts.Space(a) == ts.Space(b) and hash(ts.Space(a)) == hash(ts.Space(b)), a
        assert ts.Space(a) == ts.Space.from_json(ts.Space(b).to_json()) == ts.Space.from_yaml(ts.Space(b).to_yaml())
        assert len({ts.Space(a), ts.Space(b)}) == 1 and len({*ts.Space(a).values(), *ts.Space(b).values()}) == len(a)


def _python_calls(f: Callable[[], Any]) -> tuple[int, Any]:
    """(how many Python functions ``f()`` called, its answer): one called for each choice is a look at
    each; what C runs over a list (``==``, ``map(type, ...)``) calls none."""
    calls = 0

    def trace(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        calls += event == "call"

    before = sys.gettrace()
    sys.settrace(trace)
    try:
        answer = f()
    finally:
        sys.settrace(before)
    return calls, answer


def test_a_space_of_many_plain_choices_is_compared_without_a_look_at_each() -> None:
    """``to_dict``, ``hash`` and ``==`` of a Categorical of 100,000 ints (each study open compares the
    given space with the stored one) took 0.04 / 0.065 / 0.17 s: each choice was looked into (NumPy
    scalar? a mapping? a tuple?) several times over. A choice of a plain type (int, float, str, bool,
    None) is taken as it is; the answers are the same, types told apart as before. ``==`` then took
    0.15 s again: it typed each choice by a call; a list of plain choices has its types listed by C."""
    a, b = (ts.Space({"c": ts.Categorical(list(range(10_000)))}) for _ in range(2))
    for compare in (lambda: a == b, lambda: hash(a) == hash(b), lambda: a.to_dict() == b.to_dict()):
        calls, answer = _python_calls(compare)
        # before: 60,000 (each choice, three ways, in each space), then 20,000 (== typed each choice by a call)
        assert answer is True and calls < 1_000, calls
    c, d = (ts.Space({"c": ts.Categorical([(i,) for i in range(10_000)])}) for _ in range(2))
    calls, answer = _python_calls(lambda: c == d and hash(c) == hash(d) and c.to_dict() == d.to_dict())
    assert answer is True and calls >= 30_000, calls  # tuples are looked into, and the count sees it

    class Level(enum.IntEnum):
        LOW = 1

    class Name(str):
        pass

    same = [([1, 2.5, "a", None, False], [np.int64(1), np.float64(2.5), np.str_("a"), None, np.bool_(False)]),
            ([(1, 2), 3], [(np.int64(1), 2), 3])]
    other = [([1, 2], [True, 2]), ([1, 2], [1.0, 2]), ([1, 2], [Level.LOW, 2]), (["a", "b"], [Name("a"), "b"])]
    for x, y in same:
        assert ts.Space({"c": ts.Categorical(x)}) == ts.Space({"c": ts.Categorical(y)}), (x, y)
        assert hash(ts.Space({"c": ts.Categorical(x)})) == hash(ts.Space({"c": ts.Categorical(y)}))
    for x, y in other:
        assert ts.Space({"c": ts.Categorical(x)}) != ts.Space({"c": ts.Categorical(y)}), (x, y)


def test_a_stored_trial_of_a_fixed_nested_tuple_fits_its_space(storage_url: str | None) -> None:
    """Before: a stored trial's ``Fixed((1, (2, 3)))`` came back as ``[1, [2, 3]]`` and was compared a level
    deep only: "its parameters do not fit the space", left out by the sampler, shown as the list; a tuple
    inside a fixed mapping likewise."""
    space = ts.Space({"f": ts.Fixed((1, (2, 3))), "g": ts.Fixed({"b": (1, 2)}), "x": ts.Float(0, 1)})
    study = ts.Study(space, storage=storage_url, name="fn", sampler="random", seed=0)
    study.optimize(lambda t: 0.0, n_trials=2)
    for trial in ts.Study.load("fn", study.storage).trials:
        assert trial.params["f"] == (1, (2, 3))
        assert space.validate(trial.params)["g"] == {"b": (1, 2)}
    with pytest.raises(ValueError, match=r"value \[1, \[2, 4\]\] differs from the fixed value \(1, \(2, 3\)\)"):
        space["f"].validate([1, [2, 4]])


def test_a_tuple_inside_a_fixed_mapping_or_list_stays_a_tuple_in_a_reopened_study(storage_url: str | None) -> None:
    """``Fixed({"shape": (3, 4)})`` came back from SQL storage as ``{"shape": [3, 4]}``: an objective run
    from the loaded study (a Ray actor, ``tunesmith worker``, a later ``Study.load``) got a list where a
    study in memory gave a tuple, and the study could not be reopened with its own space ("exists with a
    different space", both sides printed alike). The tuples are marked where the space is stored."""
    value = {"shape": (3, 4), "layers": [1, (2, [3, (4,)])], "plain": [5, [6]]}
    space = ts.Space({"f": ts.Fixed(value), "g": ts.Fixed([(1, 2), [3]]), "x": ts.Float(0, 1)})
    assert ts.Space.from_json(space.to_json()) == space == ts.Space.from_yaml(space.to_yaml())
    assert repr(space["f"]) == f"Fixed(value={value!r})"
    study = ts.Study(space, storage=storage_url, name="ft", sampler="random", seed=0)
    seen: list[object] = []
    study.optimize(lambda t: seen.append((t.params["f"], t.params["g"])) or 0.0, n_trials=1)
    again = ts.Study(space, storage=study.storage, name="ft", load_if_exists=True)  # was refused
    loaded = ts.Study.load("ft", study.storage)
    loaded.optimize(lambda t: seen.append((t.params["f"], t.params["g"])) or 0.0, n_trials=1)
    assert seen == [(value, [(1, 2), [3]])] * 2 and repr(seen[1]) == repr(seen[0])
    assert again.space == loaded.space == space and repr(loaded.trials[0].params["f"]) == repr(value)
    with pytest.raises(ValueError, match=r"parameter 'f': tuples must be a list of paths .*, got \[\['a', 1.5\]\]"):
        ts.Space.from_dict({"f": {"type": "fixed", "value": {"a": [1, 2]}, "tuples": [["a", 1.5]]}})


def test_a_fixed_none_is_stored_and_read_back(storage_url: str | None) -> None:
    """``Fixed(None)`` (sklearn's ``class_weight=None``, a YAML ``null``) raised AttributeError as its
    definition was written: the look for tuples inside a fixed value took None for "not looked yet"."""
    space = ts.Space({"cw": ts.Fixed(None), "x": ts.Float(0, 1)})
    assert space.to_dict()["cw"] == {"type": "fixed", "value": None}
    assert ts.Space.from_yaml("cw: null\nx: {type: float, low: 0, high: 1}") == space == ts.Space.from_json(space.to_json())
    study = ts.Study(space, storage=storage_url, name="none", sampler="random", seed=0)
    study.optimize(lambda t: t.params["x"] if t.params["cw"] is None else 9.0, n_trials=2)
    again = ts.Study(space, storage=study.storage, name="none", load_if_exists=True)
    assert again.space == space and [t.params["cw"] for t in again.trials] == [None, None]


@pytest.mark.parametrize(("value", "key", "back"), [
    ({1: "a"}, "1", "'1'"), ({"a": [{None: 1}]}, "None", "'null'"), ([{"b": {2.5: 1}}], "2.5", "'2.5'"),
    ({(1, 2): "a"}, r"\(1, 2\)", None),
])
def test_a_fixed_mapping_with_a_key_that_is_not_a_string_is_refused(value: object, key: str, back: str | None) -> None:
    """``Fixed({1: "a"})`` was stored as JSON, whose keys are strings: in memory the objective got
    ``{1: "a"}``, from SQLite and PostgreSQL ``{"1": "a"}``, and each stored trial "did not fit the space"
    (left out by the sampler); a key beside a string one failed the study's first write ("'<' not
    supported between instances of 'str' and 'int'"). Refused where the space is made, naming the key."""
    told = f"it would come back from a database as {back}" if back else "it cannot be stored"
    with pytest.raises(ValueError, match=rf"'f': fixed value .* has the key {key}, which is not a string.*{told}; "
                                         r"write the keys as strings"):
        ts.Space({"f": ts.Fixed(value), "x": ts.Float(0, 1)})


@pytest.mark.parametrize(("value", "fix"), [
    (({"a": 1},), r"write it as a list, ts.Fixed\(\[\{'a': 1\}\]\)$"),
    ((1, [2]), r"write it as a list, ts.Fixed\(\[1, \[2\]\]\)$"),
    ({1, 2}, r"give a number, a string, a tuple, a list or a dict \(an array: its .tolist\(\)\)$"),
    # a list of these is no better: Fixed([np.array([1, 2])]) is not code to paste, and is refused at the study
    (({1, 2},), r"give a number, a string, a tuple, a list or a dict \(an array: its .tolist\(\)\)$"),
    ((np.array([1, 2]),), r"give a number, a string, a tuple, a list or a dict \(an array: its .tolist\(\)\)$"),
])
def test_an_unhashable_fixed_value_is_refused_with_the_form_to_write(value: object, fix: str) -> None:
    """Before: "fixed value ({'a': 1},) is not hashable", with no word on what to write, for a tuple (the
    guide's form of a constant list) holding a dict; the list it names reaches the objective as written."""
    with pytest.raises(ValueError, match=rf"'f': fixed value .* is not hashable; {fix}"):
        ts.Space({"f": ts.Fixed(value), "x": ts.Float(0, 1)})
    study = ts.Study({"f": ts.Fixed([{"a": 1}]), "x": ts.Float(0, 1)}, storage=None, name="fl", sampler="random")
    got: list[object] = []
    study.optimize(lambda t: got.append(t.params["f"]) or 0.0, n_trials=1)
    assert got == [[{"a": 1}]]


def test_a_fixed_mapping_of_string_keys_reaches_the_objective_as_stored(storage_url: str | None) -> None:
    space = {"f": ts.Fixed({"1": "a", "b": [{"2": 3}]}), "x": ts.Float(0, 1)}
    study = ts.Study(space, storage=storage_url, name="fk", sampler="random", seed=0)
    got: list[object] = []
    study.optimize(lambda t: got.append(t.params["f"]) or 0.0, n_trials=1)
    reopened = ts.Study.load("fk", study.storage)
    assert got == [{"1": "a", "b": [{"2": 3}]}] and reopened.trials[0].params["f"] == got[0]
    assert reopened.space == ts.Space(space)


def test_numpy_bounds_a_fixed_numpy_value_and_numpy_weights_are_stored(storage_url: str | None) -> None:
    """Before: ``Float(np.int64(0), np.int64(1))`` (bounds taken from an array) and ``Fixed(np.int64(3))`` failed the
    study's first write with json's "Object of type int64 is not JSON serializable", and ``to_yaml`` of those, of
    ``Fixed(np.float64(0.5))`` and of a ``np.float32`` prior width or weight with yaml's "cannot represent an object"."""
    space = ts.Space({"x": ts.Float(np.int64(0), np.int64(1), prior=ts.Prior(mode=np.int64(1), width=np.float32(0.25))),
                      "f": ts.Fixed(np.int64(3)), "g": ts.Fixed(np.float64(0.5)),
                      "c": ts.Categorical(["a", "b"], prior={"a": np.float32(2), "b": np.int64(1)})})
    assert ts.Space.from_yaml(space.to_yaml()) == space == ts.Space.from_json(space.to_json())
    study = ts.Study(space, storage=storage_url, name="np", sampler="random", seed=0)
    study.optimize(lambda t: 0.0, n_trials=2)
    ts.Study(space, storage=study.storage, name="np")  # the same space, reopened
    back = ts.Study.load("np", study.storage)
    assert back.space == space and hash(back.space) == hash(space) and len(back.trials) == 2


@pytest.mark.parametrize("weight", [[1, 2], "ab", 3], ids=["list", "text", "number"])
def test_prior_weights_that_are_no_mapping_are_named_in_a_new_and_a_stored_space(weight) -> None:
    """Before: Python's "'list' object has no attribute 'items'", also as the reason a stored space
    (written by another program) was unreadable."""
    from tunesmith.exceptions import StorageError

    says = r"parameter 'c': prior weight must map each choice to its weight, such as \{'a': [12]"
    with pytest.raises(ValueError, match=says):
        ts.Space({"c": ts.Categorical(["a", "b"], prior=ts.Prior(weight=weight))})
    with pytest.raises(StorageError, match=says):
        ts.Space.stored({"c": {"type": "categorical", "choices": ["a", "b"], "prior": {"weight": weight}}}, "study 's'")


@pytest.mark.parametrize("log", ["false", "no", 1, None], ids=["false-text", "no-text", "one", "none"])
def test_log_that_is_not_a_flag_is_refused_not_read_as_true(log) -> None:
    """``Float(0.1, 1, log="false")`` (a quoted YAML value, a stored space edited outside tunesmith) was
    ``bool("false")``: a log scale, the study searching another space than the one written."""
    from tunesmith.exceptions import StorageError

    says = rf"parameter 'x': log must be True or False, got {re.escape(repr(log))}"
    for kind, low in ((ts.Float, 0.1), (ts.Int, 1)):
        with pytest.raises(ValueError, match=says):
            ts.Space({"x": kind(low, 10, log=log)})
    with pytest.raises(StorageError, match=says):
        ts.Space.stored({"x": {"type": "float", "low": 0.1, "high": 1, "log": log}}, "study 's'")
    assert ts.Space({"x": ts.Float(0.1, 1, log=np.True_)})["x"].log is True


def test_a_prior_mode_beside_weights_and_weights_on_a_number_are_checked() -> None:
    """Before: a Categorical's ``Prior(mode="zzz", weight={"a": 1.0})`` was stored with a mode that is no
    choice, and ``Float(0, 1, prior=Prior(mode=0.5, weight={"a": 1.0}))`` stored weights nothing reads."""
    with pytest.raises(ValueError, match=r"parameter 'c': prior 'zzz' is not one of the choices \['a', 'b'\]"):
        ts.Space({"c": ts.Categorical(["a", "b"], prior=ts.Prior(mode="zzz", weight={"a": 1.0}))})
    with pytest.raises(ValueError, match=r"parameter 'x': prior weight= is for a Categorical's choices; leave it out"):
        ts.Space({"x": ts.Float(0, 1, prior=ts.Prior(mode=0.5, weight={"a": 1.0}))})
    space = ts.Space({"c": ts.Categorical(["a", "b"], prior=ts.Prior(mode="b", weight={"a": 1.0}))})
    assert ts.Space.from_json(space.to_json()) == space


def test_a_study_reopened_with_its_space_reads_the_stored_space_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reopening a stored study with its space read the stored space twice, once to compare it and once
    to keep it (2 x 30 ms with 100,000 choices); the one read is kept, and is the study's space."""
    url = f"sqlite:///{tmp_path / 'once.db'}"
    space = ts.Space({"c": ts.Categorical(list(range(1000))), "x": ts.Float(0, 1)})
    ts.Study(space, storage=url, name="once", sampler="random", seed=0).optimize(lambda t: 0.0, n_trials=1)
    reads: list[str] = []
    real = ts.Space.stored.__func__  # type: ignore[attr-defined]

    def counted(cls: type[ts.Space], d: object, where: str) -> ts.Space:
        reads.append(where)
        return real(cls, d, where)

    monkeypatch.setattr(ts.Space, "stored", classmethod(counted))
    assert ts.Study(space, storage=url, name="once").space == space
    assert len(reads) == 1
    assert ts.Study(storage=url, name="once").space == space and len(reads) == 2  # without a space: read once too


@pytest.mark.parametrize("space", [
    {"data": ts.Categorical(["set-\udcff", "b"]), "x": ts.Float(0, 1)},
    {"x-\udcff": ts.Float(0, 1)},
], ids=["a choice", "a name"])
def test_half_a_surrogate_pair_in_a_choice_or_a_name_is_refused(tmp_path: Path, space: dict[str, object]) -> None:
    """Before: ts.Categorical(os.listdir(folder)) with a file name whose bytes are not UTF-8 ("set-\\udcff")
    was taken; SQLite read its trials back as "set-\\ufffd\\ufffd\\ufffd", which fit no choice ("its parameters
    do not fit the space ... was it changed in the database?") and the sampler left them out; a report
    of the study in memory ended in "surrogates not allowed". Refused, naming the repair."""
    with pytest.raises(ValueError, match=r"holds half a surrogate pair .* repair the text as the storage reads it "
                                         r"back \(name.encode\('utf-8', 'surrogatepass'\).decode\('utf-8', 'replace'\)"):
        ts.Study(space, storage=f"sqlite:///{tmp_path / 's.db'}", name="s")


def test_a_study_an_older_tunesmith_stored_with_half_a_pair_resumes_with_the_repair_named(tmp_path: Path) -> None:
    """Before, the refusal named os.fsencode(name).decode('utf-8', 'replace'), "set-\\ufffd"; a study an older
    tunesmith stored with "set-\\udcff" reads back as "set-\\ufffd\\ufffd\\ufffd", so the repaired script was
    refused there ("exists with a different space"). The repair named is the storage's own: the study resumes,
    and its trials of that choice fit it."""
    import json

    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'old.db'}"
    ts.Study({"data": ts.Categorical(["x1", "b"]), "n": ts.Int(0, 1)}, storage=url, name="ls",
             sampler="grid").optimize(lambda t: t.params["n"], n_trials=4)
    engine = sa.create_engine(url)
    with engine.begin() as c:  # "set-\udcff" as an older tunesmith stored it: a JSON escape
        for table, column in (("ts_studies", "space"), ("ts_trials", "params")):
            c.execute(sa.text(f"UPDATE {table} SET {column} = replace({column}, '\"x1\"', :a)"),
                      {"a": json.dumps("set-\udcff")})
    engine.dispose()
    with pytest.raises(ValueError) as refused:
        ts.Space({"data": ts.Categorical(["set-\udcff", "b"])})
    assert "(name.encode('utf-8', 'surrogatepass').decode('utf-8', 'replace'):" in str(refused.value)
    repaired = "set-\udcff".encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    study = ts.Study({"data": ts.Categorical([repaired, "b"]), "n": ts.Int(0, 1)}, storage=url, name="ls",
                     load_if_exists=True, sampler="random")
    assert sorted(t.params["data"] for t in study.trials) == ["b", "b", repaired, repaired]
    study.optimize(lambda t: t.params["n"], n_trials=1)
    assert len(study.trials) == 5


@pytest.mark.parametrize("value", [[{1, 2}], {"a": [1, frozenset({2})]}, [np.array([1, 2])]],
                         ids=["a set", "a frozenset", "an array"])
def test_a_fixed_list_holding_a_set_or_an_array_is_refused(value: object, tmp_path: Path) -> None:
    """Before: ts.Fixed([{1, 2}]) was taken and stored as [[1, 2]]; every trial then "differs from the
    fixed value" (warned as changed in the database) and the sampler left them all out; an array in a list
    was refused at the study with "can only convert an array of size 1 to a Python scalar"."""
    with pytest.raises(ValueError, match=r"'f': fixed value .* holds .*, which a study stores as a list, so its "
                                         r"trials would not match it; write a list \(sorted\(\.\.\.\), an array's"):
        ts.Study({"f": ts.Fixed(value), "x": ts.Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'f.db'}", name="f")


def _nested(levels: int, kind: type = list) -> object:
    value = kind()
    for _ in range(levels - 1):
        value = kind([value])
    return value


def test_a_fixed_value_or_choice_nested_deeper_than_a_study_stores_is_refused_up_front(tmp_path: Path) -> None:
    """A fixed value of 99 nested lists (a tuple choice of 98) made its study, which then opened nowhere
    ("column space nests more than 100 levels deep; it was changed outside tunesmith"); one of 5,000
    ended Space(...) in a RecursionError."""
    url = f"sqlite:///{tmp_path}/deep.db"
    for levels in (99, 5000):
        for kind in (list, tuple):
            with pytest.raises(ValueError, match=r"'a': fixed value nests lists more than 98 levels deep"):
                ts.Space({"a": ts.Fixed(_nested(levels, kind)), "x": ts.Float(0, 1)})
    for levels in (98, 5000):
        with pytest.raises(ValueError, match=r"'a': choice nests lists more than 97 levels deep"):
            ts.Space({"a": ts.Categorical([_nested(levels, tuple), "b"])})
    deepest = {"a": ts.Fixed(_nested(98)), "c": ts.Categorical([_nested(97, tuple), "b"]), "x": ts.Float(0, 1)}
    ts.Study(deepest, storage=url, name="s", sampler="random").optimize(lambda t: t.params["x"], n_trials=1)
    assert len(ts.Study.load("s", url).trials) == 1
