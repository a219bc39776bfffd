"""A trial that trained in full is never stopped: the full budget, given or learnt."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import tunesmith as ts
from tunesmith.pruners import ASHA, Decision, Hyperband, SuccessiveHalving
from tunesmith.pruners.halving import full_budget
from tunesmith.trial import Direction, FrozenTrial, TrialState

MIN = Direction.MINIMIZE
STEPS = 27


def dips(step: int) -> float:
    """Best at step 20 (0.01), ends at 0.50: best-so-far flatters it."""
    return 0.01 if step == 20 else 0.50


def steady(step: int) -> float:
    return 0.05


def scripted(curves: dict[int, object]) -> ts.Study:
    """A study whose trial ``n`` reports ``curves[n](step)`` for steps 1..27 and returns the last."""

    def objective(trial: ts.Trial) -> float:
        curve = curves[trial.number]
        for step in range(1, STEPS + 1):
            value = curve(step)  # type: ignore[operator]
            trial.report(value, step)
            if trial.should_prune():
                raise ts.TrialPruned()
        return value

    return objective  # type: ignore[return-value]


@pytest.mark.parametrize("kind", ["asha", "hyperband"])
def test_a_fully_trained_trial_is_never_pruned_at_its_last_step(kind: str) -> None:
    # two trials dip to 0.01 at step 20 and end at 0.50; one is steady at 0.05 and is the best.
    # Rungs at 1, 3, 9 and 27 (the last step), scored best-so-far: the dips would rank first there.
    # Hyperband: trials 0, 2 and 4 share bracket 0; 1 and 3 are in bracket 1
    settings = {"min_resource": 1, "reduction_factor": 3, "curve": "best"}
    pruner = ASHA(**settings) if kind == "asha" else Hyperband(**settings)  # type: ignore[arg-type]
    if kind == "asha":
        curves = {0: dips, 1: dips, 2: steady}
    else:
        curves = {0: dips, 1: lambda s: 0.9, 2: dips, 3: lambda s: 0.9, 4: steady}
        assert {pruner.bracket(n) for n in (0, 2, 4)} == {0}  # type: ignore[attr-defined]
    study = ts.Study({"x": ts.Float(0.0, 1.0)}, pruner=pruner, sampler="random", seed=0)
    study.optimize(scripted(curves), n_trials=len(curves))
    best = max(curves)
    assert study.trials[best].state is TrialState.COMPLETE
    assert study.best_trial.number == best and study.best_value == 0.05


def trial(number: int, steps: Sequence[int], state: str = "running", value: float = 0.5) -> FrozenTrial:
    return FrozenTrial(
        number=number,
        state=TrialState(state),
        params={"x": number},
        value=value if state == "complete" else None,
        intermediate={s: value for s in steps},
    )


def test_the_full_budget_is_learnt_from_the_complete_trials() -> None:
    me = trial(9, range(1, 10))
    done = [trial(0, range(1, 28), "complete"), trial(1, range(1, 4), "pruned")]
    assert full_budget(me, done) == 27
    # before any trial completed: the furthest step another trial reported
    assert full_budget(me, [trial(0, range(1, 13)), trial(1, range(1, 4), "pruned")]) == 12
    # failed trials and the trial itself say nothing; with nothing known there is no budget
    assert full_budget(me, [me, trial(1, range(1, 40), "failed")]) is None


def test_without_max_resource_the_last_step_is_no_rung() -> None:
    asha = ASHA(min_resource=1, reduction_factor=3, curve="best")  # rungs 1, 3, 9, 27, 81, ...
    better = [trial(n, range(1, 28), "complete", value=0.1) for n in range(3)]
    at_27 = trial(5, range(1, 28), value=0.9)  # the worst of four at step 27: its last step
    assert asha.decide(at_27, better, MIN) is Decision.CONTINUE
    at_9 = trial(5, range(1, 10), value=0.9)  # step 9 is below the budget: a rung as before
    assert asha.decide(at_9, better, MIN) is Decision.PRUNE
    # before anything completed: a step that no other trial went past is not judged
    running = [trial(n, range(1, 10), value=0.1) for n in range(3)]
    assert asha.decide(at_9, running, MIN) is Decision.CONTINUE
    assert asha.decide(at_9, [*running, trial(4, range(1, 11))], MIN) is Decision.PRUNE
    # a given max_resource decides, as before
    assert ASHA(min_resource=1, reduction_factor=3, max_resource=81).decide(at_27, better, MIN) is Decision.PRUNE
    assert SuccessiveHalving(min_resource=1, reduction_factor=3, cohort_size=9).decide(at_27, better, MIN) is Decision.CONTINUE
    hb = Hyperband(min_resource=1, reduction_factor=3, n_brackets=4)
    assert hb.decide(trial(0, range(1, 28), value=0.9), better, MIN) is Decision.CONTINUE
