"""Pruner conformance suite: every registered pruner (and its pausing variant, where it
has one) must pass every test here.

A pruner is a pure decision over reports, so the suite checks what any rule must
keep: a description that rebuilds the same pruner, the same answer for the same
inputs, nothing stopped without a report or with nobody to compare against,
promotions and abandonments only among paused trials, and a real study that runs
its whole budget with every trial ending complete, pruned or paused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import pytest

import tunesmith as ts
from tunesmith.pruners import _BUILTIN, Decision, make_pruner
from tunesmith.trial import Direction, FrozenTrial, TrialState

MIN = Direction.MINIMIZE
STEPS = 9


def _max(spec: dict) -> dict:
    cls = _BUILTIN[spec["name"]]
    return {"max_resource": STEPS} if "max_resource" in _params(cls) else {}


def _params(cls: type) -> Sequence[str]:
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None and hasattr(init, "__code__"):
            names.extend(init.__code__.co_varnames[: init.__code__.co_argcount + init.__code__.co_kwonlyargcount])
    return names


def _variants() -> list[dict]:
    out = []
    for name, cls in sorted(_BUILTIN.items()):
        out.append({"name": name})
        if "pause" in _params(cls):
            out.append({"name": name, "pause": True})
    # a rung calibrated on the complete curves keeps every property too
    out += [{"name": "asha", "calibrate": 2}, {"name": "asha", "calibrate": 2, "pause": True}]
    return out


VARIANTS = _variants()


@pytest.fixture(params=VARIANTS, ids=lambda d: "-".join(str(v) for v in d.values()))
def spec(request: pytest.FixtureRequest) -> dict:
    return dict(request.param)


def curve(rate: float, upto: int) -> dict[int, float]:
    """A learning curve that falls at ``rate`` (larger: better), steps 1..upto."""
    return {s: 1.0 / (1.0 + rate * s) for s in range(1, upto + 1)}


def trial(number: int, rate: float, upto: int, state: TrialState = TrialState.COMPLETE) -> FrozenTrial:
    inter = curve(rate, upto)
    value = inter[upto] if state is TrialState.COMPLETE else None
    return FrozenTrial(number=number, state=state, params={"rate": rate}, value=value, intermediate=inter)


def history(n: int) -> list[FrozenTrial]:
    return [trial(i, 0.1 + 0.2 * i, STEPS) for i in range(n)]


def test_description_rebuilds_the_same_pruner(spec: dict) -> None:
    pruner = make_pruner(spec)
    again = make_pruner(json.loads(json.dumps(pruner.describe())))
    assert type(again) is type(pruner) and again.describe() == pruner.describe()
    others = history(8)
    me = trial(8, 0.01, 3, TrialState.RUNNING)
    assert again.decide(me, [*others, me], MIN) == pruner.decide(me, [*others, me], MIN)


def test_same_inputs_same_answer_and_inputs_untouched(spec: dict) -> None:
    pruner = make_pruner(spec)
    others = history(10)
    before = [t.replace() for t in others]
    for upto in range(1, STEPS + 1):
        me = trial(10, 0.02, upto, TrialState.RUNNING)
        first = pruner.decide(me, [*others, me], MIN)
        assert pruner.decide(me, [*others, me], MIN) == first
        assert first in (Decision.CONTINUE, Decision.PRUNE, Decision.PAUSE)
        assert first is not Decision.PAUSE or pruner.pauses
    assert others == before


def test_nothing_is_stopped_without_a_report_or_anyone_to_compare(spec: dict) -> None:
    pruner = make_pruner(spec)
    silent = FrozenTrial(number=0, state=TrialState.RUNNING, params={"rate": 0.0})
    assert pruner.decide(silent, [silent], MIN) is Decision.CONTINUE
    alone = trial(0, 0.0001, 5, TrialState.RUNNING)
    assert pruner.decide(alone, [alone], MIN) is Decision.CONTINUE


def test_promotions_and_abandonments_only_among_paused_trials(spec: dict) -> None:
    pruner = make_pruner(spec)
    trials = history(6) + [trial(6 + i, 0.05 * (i + 1), 3, TrialState.PAUSED) for i in range(4)]
    paused = {t.number for t in trials if t.state is TrialState.PAUSED}
    promoted = pruner.promotable(trials, MIN)
    abandoned = pruner.abandoned(trials, MIN)
    assert set(promoted) <= paused and set(abandoned) <= paused
    assert not set(promoted) & set(abandoned)
    assert len(promoted) == len(set(promoted))
    if not pruner.pauses:
        assert promoted == []  # nothing it stops is ever resumed


def test_direction_is_respected(spec: dict) -> None:
    """Maximizing the negated curves gives the same decisions as minimizing the curves."""
    pruner = make_pruner(spec)
    flip = [t.replace(value=None if t.value is None else -t.value,
                      intermediate={s: -v for s, v in t.intermediate.items()}) for t in history(10)]
    for upto in (1, 3, STEPS):
        me = trial(10, 0.02, upto, TrialState.RUNNING)
        neg = me.replace(intermediate={s: -v for s, v in me.intermediate.items()})
        assert (pruner.decide(me, [*history(10), me], MIN)
                == pruner.decide(neg, [*flip, neg], Direction.MAXIMIZE))


def test_a_study_runs_its_whole_budget(spec: dict) -> None:
    space = ts.Space({"rate": ts.Float(0.01, 3.0, log=True)})

    def objective(t: ts.Trial) -> float:
        value = math.inf
        for step in range(max(t.start_step, 1), STEPS + 1):
            value = 1.0 / (1.0 + t.params["rate"] * step)
            t.report(value, step)
            if t.should_prune():
                raise ts.TrialPruned()
        return value

    study = ts.Study(space, sampler="random", seed=0, pruner=make_pruner({**spec, **_max(spec)}))
    study.optimize(objective, n_trials=27)
    states = [t.state for t in study.trials]
    assert len(states) == 27
    assert set(states) <= {TrialState.COMPLETE, TrialState.PRUNED, TrialState.PAUSED}
    assert TrialState.COMPLETE in states
    best = study.best_trial
    assert all(best.value <= t.value for t in study.trials_in(TrialState.COMPLETE))


def test_what_it_does_not_read_changes_no_decision(spec: dict) -> None:
    """``pruner.reads`` names the states the study must hand over: dropping every other
    trial (here a queue of waiting ones) leaves each decision as it was."""
    pruner = make_pruner(spec)
    assert TrialState.WAITING not in pruner.reads  # a queue adds nothing to a decision's cost
    paused = [trial(6 + i, 0.05 * (i + 1), 3, TrialState.PAUSED) for i in range(4)]
    queued = [FrozenTrial(number=n, state=TrialState.WAITING, params={"rate": 0.5}) for n in range(11, 30)]
    for upto in range(1, STEPS + 1):
        me = trial(10, 0.02, upto, TrialState.RUNNING)
        every = [*history(6), *paused, me, *queued]
        read = [t for t in every if t.state in pruner.reads]
        assert pruner.decide(me, read, MIN) == pruner.decide(me, every, MIN)
        assert pruner.promotable(read, MIN) == pruner.promotable(every, MIN)
        assert pruner.abandoned(read, MIN) == pruner.abandoned(every, MIN)
