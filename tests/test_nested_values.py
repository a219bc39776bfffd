"""Nested parameter values: the one walk of mappings, lists and tuples (tunesmith.nested) and the
rules built on it: tuple marks, depth limits, non-text keys, NaN, NumPy scalars."""

from __future__ import annotations

import decimal
import json
import logging
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tunesmith as ts
from tunesmith import nested


def _lists(levels: int, leaf: Any = 0) -> Any:
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


def _tuples(levels: int, leaf: Any = 0) -> Any:
    value = leaf
    for _ in range(levels):
        value = (value,)
    return value


def test_walk_visits_each_container_and_object_in_order_with_its_path_and_passes_numbers_over() -> None:
    value = {"a": [1, (2, {"b": np.int64(3)})], "s": {4}, "t": "x"}
    seen = list(nested.walk(value))
    assert [at for at, _ in seen] == [(), ("a",), ("a", 1), ("a", 1, 1), ("a", 1, 1, "b"), ("s",)]
    assert seen[-1][1] == {4} and seen[-2][1] == np.int64(3)  # a set is not looked into
    assert list(nested.walk(5)) == [((), 5)]


@pytest.mark.parametrize("make", [_lists, _tuples, lambda n: _lists(n - 1, {}) if n else 0])
def test_the_depth_limit_is_the_same_in_every_walk(make: Any) -> None:
    """``too_deep``, ``walk`` and every rebuild count the same levels: ``limit`` containers nest, one more
    does not, and 5,000 levels are refused by name, not with a RecursionError."""
    as_json = nested.rebuilder()
    for limit in (1, 3, nested.MAX_DEPTH):
        assert not nested.too_deep(make(limit), limit) and nested.too_deep(make(limit + 1), limit)
        list(nested.walk(make(limit), limit))
        as_json(make(limit), "v", limit)
        with pytest.raises(nested.TooDeep, match=f"^v nests lists more than {limit} levels deep"):
            list(nested.walk(make(limit + 1), limit, "v"))
        with pytest.raises(nested.TooDeep, match=f"^v nests lists more than {limit} levels deep"):
            as_json(make(limit + 1), "v", limit)
    assert nested.too_deep(make(5_000))
    with pytest.raises(nested.TooDeep):
        as_json(make(5_000))


def test_a_rebuild_makes_each_shape_as_asked() -> None:
    value = {"a": (1, [np.float64(0.5), (np.int64(2),)]), "b": None}
    assert nested.rebuilder()(value) == {"a": [1, [0.5, [2]]], "b": None}
    python = nested.rebuilder(leaf=nested.python_scalar, sequence=None)(value)
    assert python == {"a": (1, [0.5, (2,)]), "b": None} and type(python["a"][1][0]) is float
    assert nested.rebuilder(mapping=frozenset, sequence=tuple)(value) == frozenset({("a", (1, (0.5, (2,)))), ("b", None)})
    assert nested.rebuilder(mapping=None, sequence=tuple, into=(list,))([[1, {"k": [2]}], (3, [4])]) == ((1, {"k": [2]}), (3, [4]))
    typed = nested.rebuilder(plain=lambda v: type(v).__name__)([1, 1.0, True, None, "x"])
    assert typed == ["int", "float", "bool", "NoneType", "str"]


def test_nan_inside_finds_a_nan_at_any_depth() -> None:
    nan = float("nan")
    for value in (nan, [1, nan], (1, (2, nan)), {"a": {"b": [np.float32("nan")]}}, [np.float64("nan")]):
        found = nested.nan_inside(value)
        assert found is not None and found != found, value
    for value in (1.0, [math.inf, -math.inf], {"a": "nan"}, None, (1, 2)):
        assert nested.nan_inside(value) is None, value


@pytest.mark.parametrize(("spec", "what"), [
    ({"c": {"type": "categorical", "choices": [_lists(5_000)]}}, "choice"),
    ({"c": [_lists(5_000), 1]}, "choice"),
    ({"f": {"type": "fixed", "value": _lists(5_000), "tuple": True}}, "fixed value"),
    ({"c": {"type": "categorical", "choices": [1, 2], "prior": {"mode": _lists(5_000)}}}, "prior"),
    ({"a": [1, 2], "c": {"type": "float", "low": 0, "high": 1, "when": {"a": [_lists(5_000)]}}}, "condition on 'a'"),
])
def test_a_definition_read_from_a_file_that_nests_thousands_deep_is_refused_by_name(spec: dict[str, Any],
                                                                                       what: str) -> None:
    """A space read with ``Space.from_dict`` (a study file, ``from_json``, ``from_yaml``) holding a choice, a
    fixed tuple, a prior or a condition 5,000 lists deep ended in a RecursionError traceback."""
    name = next(iter(spec)) if what != "condition on 'a'" else "c"
    with pytest.raises(ValueError, match=f"^parameter '{name}': {what} nests lists more than"):
        ts.Space.from_dict(spec)


def test_a_condition_on_a_choice_deeper_than_a_study_stores_is_refused_when_defined(tmp_path: Path) -> None:
    """The deepest tuple choice a study stores (97 levels, kept 3 levels down) is one level too deep as a
    condition's value (kept 4 down): the study was created, then could not be opened ("column space nests
    more than 100 levels deep; it was changed outside tunesmith")."""
    choice = _tuples(nested.MAX_DEPTH - 3)
    ts.Space({"a": ts.Categorical([choice, 1])})  # the choice alone is stored and read back
    with pytest.raises(ValueError, match=r"^parameter 'x': condition on 'a' nests lists more than 96 levels deep"):
        ts.Space({"a": ts.Categorical([choice, 1]), "x": ts.Float(0, 1, when={"a": [choice]})})
    near = _tuples(nested.MAX_DEPTH - 4)
    space = ts.Space({"a": ts.Categorical([near, 1]), "x": ts.Float(0, 1, when={"a": [near]})})
    url = f"sqlite:///{tmp_path / 'w.db'}"
    ts.Study(space, sampler="random", seed=0, storage=url, name="w").optimize(lambda t: 0.0, n_trials=2)
    assert len(ts.Study.load("w", url).trials) == 2


def test_a_value_deeper_than_a_study_stores_given_for_a_fixed_parameter_is_refused_by_its_name() -> None:
    """``enqueue`` or ``add_trial`` of a value 150 or 5,000 lists deep for a fixed parameter ended in a
    ValueError that named no parameter ("value nests lists more than 100 levels deep") where a flatter
    one says "parameter 'f': value ... differs from the fixed value"."""
    space = ts.Space({"f": ts.Fixed((1, (2,))), "x": ts.Float(0, 1)})
    study = ts.Study(space, sampler="random", seed=0)
    for levels in (150, 5_000):
        with pytest.raises(ValueError, match="^parameter 'f': value nests lists more than 100 levels deep"):
            study.enqueue({"f": _lists(levels), "x": 0.5})
        with pytest.raises(ValueError, match="^parameter 'f': fixed value nests lists more than 100 levels deep"):
            space["f"].validate(_lists(levels), what="fixed value")
    with pytest.raises(ValueError, match=r"^parameter 'f': value \[1, \[3\]\] differs from the fixed value"):
        study.enqueue({"f": [1, [3]], "x": 0.5})
    assert study.enqueue({"f": [1, [2]], "x": 0.5}) == 0  # as JSON gives it back: the same constant


@pytest.mark.parametrize("value", [float("nan"), [1, float("nan")], (1, float("nan")), {"a": [np.float64("nan")]}])
def test_a_fixed_value_holding_nan_is_refused(value: Any) -> None:
    """NaN is not equal to itself: ``Fixed(nan)`` failed every ask ("value nan differs from the fixed value
    nan"), and ``Fixed([1, nan])`` ran in memory, but each trial read back from a database "did not fit the
    space" and the study could not be opened again with its own space. A choice that is NaN was refused."""
    holds = "is" if isinstance(value, float) else r"holds \S*nan\S*, which is"  # not "nan holds nan"
    with pytest.raises(ValueError, match=rf"^parameter 'f': fixed value .*nan\S* {holds} not equal to itself"):
        ts.Space({"f": ts.Fixed(value)})
    ts.Space({"f": ts.Fixed([1, math.inf, None, "nan"])})  # infinities are equal to themselves


def test_a_tuple_choice_holding_nan_is_refused_as_a_nan_choice_is(tmp_path: Path) -> None:
    """``(1, nan) == (1, nan)`` holds for the same tuple (the same nan object), so the NaN check let the
    choice pass; a trial that drew it read back as ``[1, nan]``, "not one of the choices", and the study
    could not be opened with its own space."""
    with pytest.raises(ValueError, match=r"^parameter 'c': choice \(1, nan\) holds nan, which is not equal to itself"):
        ts.Space({"c": ts.Categorical([(1, float("nan")), 2])})
    with pytest.raises(ValueError, match=r"^parameter 'c': choice nan is not equal to itself"):
        ts.Space({"c": ts.Categorical([float("nan"), 2])})



@pytest.mark.parametrize("nan", [complex("nan"), complex(1, float("nan")), decimal.Decimal("NaN"),
                                 decimal.Decimal("sNaN"), np.complex128(complex("nan"))], ids=repr)
def test_a_complex_or_decimal_nan_inside_a_choice_or_fixed_value_is_refused_as_a_float_nan_is(nan: Any) -> None:
    """Before: only a float NaN was looked for inside a tuple choice or a fixed value: ``(1, complex("nan"))``
    and ``[Decimal("NaN")]`` were taken, though no more equal to themselves once read back."""
    assert nested.is_nan(nan) and nested.nan_inside((1, (2, nan))) is nan and nested.nan_inside({"a": [nan]}) is nan
    hashable = not isinstance(nan, decimal.Decimal) or not nan.is_snan()  # a tuple holding sNaN: "not hashable"
    if hashable:
        with pytest.raises(ValueError, match=r"^parameter 'c': choice \(1, \S+\) holds \S+, which is not equal to "):
            ts.Space({"c": ts.Categorical([(1, nan), 2])})
    for value in ((1, nan), [nan], {"a": [1, nan]})[0 if hashable else 1:]:
        with pytest.raises(ValueError, match=r"^parameter 'f': fixed value .* holds \S+, which is not equal to itself"):
            ts.Space({"f": ts.Fixed(value)})
    for number in (complex(1, 2), decimal.Decimal("1.5"), decimal.Decimal("Infinity"), complex(math.inf, 0)):
        assert not nested.is_nan(number) and nested.nan_inside((1, number)) is None


#: a space of nested tuples in fixed values, choices, conditions and a prior, and its stored form
NESTED = {
    "c": ts.Categorical([((1, 2), 3), (4, (5, (6,))), "x"], prior=ts.Prior(weight={((1, 2), 3): 2.0, "x": 1.0})),
    "f": ts.Fixed((1, (2, 3), ((4,),))),
    "m": ts.Fixed({"shape": ((3, 4), 5), "rows": [(1, (2,)), [3, (4, [5])]], "plain": [6, [7]]}),
    "g": ts.Float(0.0, 1.0, when={"c": [(4, (5, (6,)))]}),
}
STORED = {
    "c": {"type": "categorical", "choices": [[[1, 2], 3], [4, [5, [6]]], "x"],
          "prior": {"width": 0.15, "weight": {"[[1, 2], 3]": 2.0, "x": 1.0}}},
    "f": {"type": "fixed", "value": [1, [2, 3], [[4]]], "tuple": True},
    "m": {"type": "fixed", "value": {"shape": [[3, 4], 5], "rows": [[1, [2]], [3, [4, [5]]]], "plain": [6, [7]]},
          "tuples": [["shape"], ["shape", 0], ["rows", 0], ["rows", 0, 1], ["rows", 1, 1]]},
    "g": {"type": "float", "low": 0.0, "high": 1.0, "when": {"c": [[4, [5, [6]]]]}},
}


def test_nested_tuples_keep_their_stored_form_and_come_back_from_every_storage(storage_url: str | None,
                                                                                   tmp_path: Path,
                                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Tuples inside tuples, in fixed values (alone and in a mapping) and in choices, a condition and a
    prior's weights: stored as tunesmith has written them (studies written before reopen), and given back
    to the objective as tuples by a study in memory, a reopened one and a loaded one."""
    space = ts.Space(NESTED)
    assert json.loads(space.to_json()) == STORED and ts.Space.from_dict(STORED) == space
    assert ts.Space.from_yaml(space.to_yaml()) == space and hash(ts.Space.from_dict(STORED)) == hash(space)
    seen: list[tuple[Any, ...]] = []

    def objective(t: ts.Trial) -> float:
        seen.append((t.params["c"], t.params["f"], t.params["m"]))
        return 0.0

    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        study = ts.Study(space, storage=storage_url, name="nested", sampler="grid")
        study.optimize(objective, n_trials=2)
        again = ts.Study(space, storage=study.storage, name="nested", load_if_exists=True)
        again.optimize(objective, n_trials=1)
        ts.Study.load("nested", study.storage).optimize(objective, n_trials=1)
    assert "do not fit" not in caplog.text
    assert {repr(c) for c, _, _ in seen} <= {repr(c) for c in NESTED["c"].choices}
    assert {repr(f) for _, f, _ in seen} == {repr(NESTED["f"].value)}
    assert {repr(m) for _, _, m in seen} == {repr(NESTED["m"].value)}
    assert [repr(t.params["f"]) for t in ts.Study.load("nested", study.storage).trials] == [repr(NESTED["f"].value)] * 4
    if storage_url is not None and storage_url.startswith("sqlite"):
        db = sqlite3.connect(storage_url.removeprefix("sqlite:///"))
        try:
            assert json.loads(db.execute("SELECT space FROM ts_studies").fetchone()[0]) == STORED
        finally:
            db.close()



@pytest.mark.parametrize("depth", [99, 330, 5000])
def test_a_parameter_nesting_deeper_than_a_study_stores_has_a_repr_and_names_itself_in_eq_and_hash(depth: int) -> None:
    """Before: ``repr`` of a parameter whose value nests 99 or more levels (in no Space yet, which refuses it)
    raised TooDeep, and ``==`` and ``hash`` raised it without saying which parameter held the value."""
    deep: Any = 1
    for _ in range(depth):
        deep = (deep,)
    for param, kind in ((ts.Fixed((deep,)), "fixed"), (ts.Categorical([deep, 2]), "categorical"),
                        (ts.Fixed([deep]), "fixed")):
        assert repr(param) == f"{type(param).__name__}(<a value nesting more than 100 levels, not shown>)"
        named = rf"^a {kind} parameter \(in no Space yet\): its value nests lists more than 100 levels deep"
        for compare in (hash, lambda p: p == p, lambda p: type(p)([1]) != p):  # the deep one on either side
            with pytest.raises(ValueError, match=named):
                compare(param)
    assert repr(ts.Fixed(((1,),))) == "Fixed(value=((1,),))" and ts.Fixed([[1]]) == ts.Fixed([[1]])
