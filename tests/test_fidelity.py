"""Multi-fidelity observations for samplers (BOHB's largest-budget-with-enough-points rule)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import tunesmith as ts
from tunesmith.samplers import (
    MultiFidelitySampler,
    Sampler,
    Suggestion,
    fidelity_history,
    make_sampler,
)
from tunesmith.space import Space
from tunesmith.trial import Direction, FrozenTrial, TrialState

MIN = Direction.MINIMIZE


def tr(number: int, curve: Sequence[float], state: str) -> FrozenTrial:
    value = curve[-1] if state in ("complete", "pruned") else None
    return FrozenTrial(number, TrialState(state), {"x": number / 10}, value, dict(enumerate(curve)))


def test_enough_complete_trials_leave_the_history_unchanged() -> None:
    trials = [tr(n, [1.0, 0.5], "complete") for n in range(4)]
    assert fidelity_history(trials, MIN, min_points=4) == trials


def test_largest_budget_with_enough_points_best_so_far_values() -> None:
    trials = [
        tr(0, [0.9, 0.5, 0.4, 0.3, 0.2], "complete"),
        tr(1, [0.8, 0.6, 0.7], "pruned"),  # best by step 2: 0.6
        tr(2, [0.7, 0.9, 0.8, 0.5], "paused"),  # best by step 2: 0.7
        tr(3, [1.0, 1.0, 0.95, 0.1], "running"),  # best by step 2: 0.95
        tr(4, [2.0], "pruned"),  # stopped at step 0: below the budget
        tr(5, [0.1, 0.1, 0.1], "failed"),  # failed: never an observation
        FrozenTrial(6, TrialState.RUNNING, {"x": 0.6}),  # pending, no report yet
    ]
    out = fidelity_history(trials, MIN, min_points=4)
    obs = {t.number: t.value for t in out if t.state is TrialState.COMPLETE}
    assert obs == {0: 0.4, 1: 0.6, 2: 0.7, 3: 0.95}  # budget = step 2, the largest with 4 trials
    assert [t.number for t in out] == list(range(7))  # all kept, in order
    assert [t.state.value for t in out[4:]] == ["pruned", "failed", "running"]
    # maximizing: best means largest
    up = fidelity_history(trials, Direction.MAXIMIZE, min_points=4)
    assert {t.number: t.value for t in up if t.state is TrialState.COMPLETE}[2] == 0.9


def test_trials_on_different_step_grids_count_only_where_they_have_a_report() -> None:
    # steps = optimizer steps with a searched batch size: one trial first reports at step 10
    trials = [
        FrozenTrial(n, TrialState.PRUNED, {"x": n / 10}, 0.8, {1: 1.0, 2: 0.9, 3: 0.8})
        for n in range(3)
    ]
    trials.append(FrozenTrial(3, TrialState.PRUNED, {"x": 0.9}, 0.5, {10: 0.5, 20: 0.4}))
    out = fidelity_history(trials, MIN, min_points=3)
    assert {t.number: t.value for t in out if t.state is TrialState.COMPLETE} == {
        0: 0.8, 1: 0.8, 2: 0.8
    }  # budget = step 3; trial 3 has no report by then and stays pruned
    assert out[3] == trials[3]
    assert fidelity_history(trials, MIN, min_points=4) == trials  # no budget has 4


class Recorder(Sampler):
    name = "recorder"

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(seed)
        self.seen: list[list[FrozenTrial]] = []

    def suggest(
        self, space: Space, trials: Sequence[FrozenTrial], direction: Direction
    ) -> Suggestion:
        self.seen.append(list(trials))
        return Suggestion(space.sample(self.rng))


def test_wrapped_sampler_sees_early_stopped_trials_as_observations() -> None:
    base = Recorder(seed=0)
    study = ts.Study(
        {"x": ts.Float(0, 1)},
        sampler=MultiFidelitySampler(base),
        pruner=ts.pruners.ASHA(min_resource=1, reduction_factor=4),
        seed=0,
    )

    def objective(trial: ts.Trial) -> float:
        for step in range(9):
            trial.report((trial.params["x"] - 0.3) ** 2 + 1 / (step + 1), step)
            if trial.should_prune():
                raise ts.TrialPruned()
        return (trial.params["x"] - 0.3) ** 2

    study.optimize(objective, n_trials=20)
    complete = sum(t.state is TrialState.COMPLETE for t in study.trials)
    assert complete < 4  # ASHA stopped most trials...
    observed = [sum(t.state is TrialState.COMPLETE for t in seen) for seen in base.seen]
    assert max(observed) >= 4  # ...yet the sampler was given at least 4 observations


def test_by_name_it_is_bohb_s_model_tpe_and_its_description_round_trips() -> None:
    study = ts.Study({"x": ts.Float(0, 1)}, sampler="multifidelity", pruner="asha", seed=3)
    sampler = study.sampler
    assert isinstance(sampler, MultiFidelitySampler) and isinstance(sampler.base, ts.TPESampler)
    again = make_sampler(sampler.describe())
    assert isinstance(again, MultiFidelitySampler) and again.describe() == sampler.describe()


def test_bad_min_points() -> None:
    with pytest.raises(ValueError, match="min_points must be None or an integer >= 1"):
        MultiFidelitySampler("random", min_points=0)
