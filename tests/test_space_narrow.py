"""Space.fix: parameters fixed at values, conditions resolved, bad names refused."""

from __future__ import annotations

import pytest

import tunesmith as ts
from tunesmith.space import Categorical, Fixed, Float, Int, Space


def svm() -> Space:
    return Space({
        "kernel": Categorical(["linear", "poly", "rbf"]),
        "C": Float(1e-3, 1e3, log=True),
        "gamma": Float(1e-5, 10.0, log=True, when={"kernel": ["poly", "rbf"]}),
        "degree": Int(2, 5, when={"kernel": ["poly"]}),
        "coef": Float(0.0, 1.0, when={"degree": [3]}),
        "max_iter": 1000,
    })


def test_fixing_a_parent_drops_the_branches_it_switches_off_and_frees_the_rest() -> None:
    space = svm()
    rbf = space.fix({"kernel": "rbf"})
    assert list(rbf) == ["kernel", "C", "gamma", "max_iter"]  # degree and coef (below it) never active
    assert rbf.free == ("C", "gamma") and rbf["kernel"] == Fixed("rbf")
    assert not rbf.is_conditional  # gamma's condition always holds now
    assert rbf.validate({"C": 1.0, "gamma": 0.1}) == {"kernel": "rbf", "C": 1.0, "gamma": 0.1, "max_iter": 1000}
    poly = space.fix({"kernel": "poly", "C": 2.0})
    assert poly.free == ("gamma", "degree", "coef") and dict(poly["coef"].when) == {"degree": (3,)}
    assert poly.validate({"gamma": 0.1, "degree": 2}) == {"kernel": "poly", "C": 2.0, "gamma": 0.1, "degree": 2,
                                                         "max_iter": 1000}
    assert space.free == ("kernel", "C", "gamma", "degree", "coef")  # the original is unchanged


def test_fixing_a_conditional_child_keeps_its_condition_on_a_free_parent() -> None:
    space = svm().fix({"degree": 3})
    assert space["degree"] == Fixed(3, when={"kernel": ["poly"]})
    assert dict(space["coef"].when) == {"degree": (3,)}
    assert space.validate({"kernel": "poly", "C": 1.0, "gamma": 0.1, "coef": 0.5})["degree"] == 3
    assert "degree" not in space.validate({"kernel": "linear", "C": 1.0})
    assert Space.from_json(space.to_json()) == space  # a narrowed space is stored like any


def test_fixed_values_are_validated_and_unknown_names_refused() -> None:
    space = svm()
    with pytest.raises(ValueError, match=r"cannot fix unknown parameter\(s\) \['nope'\]; the space has"):
        space.fix({"nope": 1})
    with pytest.raises(ValueError, match="parameter 'C': value 1000000.0 is outside"):
        space.fix({"C": 1e6})
    with pytest.raises(ValueError, match="parameter 'max_iter': value 5 differs from the fixed value 1000"):
        space.fix({"max_iter": 5})
    assert ts.Space({"x": Float(0, 1)}).fix({"x": 0.25}).ndim == 0
