"""Study management: trials belong to their study; delete, copy, rename, add_trial."""

from __future__ import annotations

import pytest

import tunesmith as ts
from tunesmith.trial import TrialState

SPACE = {"x": ts.Float(0.0, 1.0), "k": ts.Categorical(["a", "b"])}


def test_a_trial_of_another_study_is_refused(storage_url: str | None) -> None:
    a = ts.Study(SPACE, sampler="random", seed=0, storage=storage_url, name="a")
    b = ts.Study(SPACE, sampler="random", seed=1, storage=a.storage, name="b")
    ta, tb = a.ask(), b.ask()
    assert ta.number == tb.number == 0
    with pytest.raises(ValueError, match="trial 0 belongs to study 'b', not to study 'a'"):
        a.tell(tb, 123.0)
    with pytest.raises(ValueError, match="belongs to another study"):
        a.tell(b.trials[0], 123.0)  # a FrozenTrial of b
    # nothing was written: both trials are still running and can be told to their own study
    assert a.trials[0].state is b.trials[0].state is TrialState.RUNNING
    assert a.tell(ta, 1.0).value == 1.0 and b.tell(tb, 2.0).value == 2.0
    assert a.trials[0].params == ta.params and b.trials[0].params == tb.params


def test_a_trial_told_through_another_handle_of_the_same_study_is_accepted(sqlite_url: str) -> None:
    a = ts.Study(SPACE, sampler="random", seed=0, storage=sqlite_url, name="a")
    again = ts.Study.load("a", sqlite_url)
    t = a.ask()
    assert again.tell(t, 0.5).value == 0.5
    t2 = a.ask()
    assert again.tell(a.trials[1], 0.25).value == 0.25 and t2.number == 1
