"""Executor conformance suite: inline, threads, processes and Ray keep the same promises.

Every executor must run exactly ``n_trials`` new trials, stop at an exhausted grid
with every point run once, run the promotions its last trials earned before
``optimize`` returns, and leave no trial running when its worker dies (processes and
Ray: the parent sees the death). A new executor is added to ``EXECUTORS`` and is done
when it passes.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import tunesmith as ts
from tunesmith.pruners import ASHA
from tunesmith.trial import TrialState

try:  # Ray workers cannot import this test module: ship its functions by value
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
except ImportError:  # pragma: no cover - the Ray cases skip without Ray
    pass

EXECUTORS = ["inline", "thread", "process", pytest.param("ray", marks=pytest.mark.slow)]
DIES = ["process", pytest.param("ray", marks=pytest.mark.slow)]  # executors whose workers are processes the parent can watch


def study_for(kind: str, tmp_path: Path, request: pytest.FixtureRequest, **kwargs: Any) -> ts.Study:
    if kind.startswith("ray"):  # "ray-memory": Ray with the study in the driver's memory
        request.getfixturevalue("ray_local")
    storage = f"sqlite:///{tmp_path / 'study.db'}" if kind in ("process", "ray") else None
    space = kwargs.pop("space", ts.Space({"x": ts.Float(0.0, 1.0), "k": ts.Categorical(["a", "b"])}))
    return ts.Study(space, storage=storage, name="conformance", seed=0, **kwargs)


def jobs(kind: str) -> dict[str, Any]:
    return {"n_jobs": 1 if kind == "inline" else 2, "executor": kind.removesuffix("-memory")}


def square(trial: ts.Trial) -> float:
    return float(trial.params["x"]) ** 2


@pytest.mark.parametrize("kind", EXECUTORS)
def test_exactly_n_trials(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    study = study_for(kind, tmp_path, request, sampler="random")
    study.optimize(square, n_trials=9, **jobs(kind))
    states = [t.state for t in study.trials]
    assert len(states) == 9 and set(states) == {TrialState.COMPLETE}
    study.optimize(square, n_trials=4, **jobs(kind))  # a second call adds exactly its own
    assert len(study.trials) == 13


@pytest.mark.parametrize("kind", EXECUTORS)
def test_an_exhausted_grid_runs_every_point_once(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    space = ts.Space({"a": ts.Categorical([1, 2, 3]), "b": ts.Categorical(["u", "v"])})
    study = study_for(kind, tmp_path, request, space=space, sampler="grid")
    study.optimize(lambda t: float(t.params["a"]), n_trials=50, **jobs(kind))
    points = sorted((t.params["a"], t.params["b"]) for t in study.trials)
    assert points == sorted((a, b) for a in (1, 2, 3) for b in ("u", "v"))
    assert all(t.state is TrialState.COMPLETE for t in study.trials)


def curve_objective(trial: ts.Trial) -> float:
    value = 1.0
    for step in range(max(trial.start_step, 1), 10):
        value = 1.0 / (1.0 + 3 * trial.params["x"] * step)
        trial.report(value, step)
        trial.set_attr("checkpoint", f"step-{step}")
        if trial.should_prune():
            raise ts.TrialPruned()
    return value


@pytest.mark.parametrize("kind", EXECUTORS)
def test_earned_promotions_run_before_optimize_returns(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    study = study_for(kind, tmp_path, request, sampler="random",
                      pruner=ASHA(min_resource=1, max_resource=9, reduction_factor=3, pause=True))
    study.optimize(curve_objective, n_trials=12, **jobs(kind))
    promotable = study.pruner.promotable(study.trials, study.direction)
    assert promotable == []  # nothing earned and left waiting
    assert not study.trials_in(TrialState.RUNNING, TrialState.WAITING)
    assert len(study.trials) == 12


def dies_on_the_third(trial: ts.Trial) -> float:
    if trial.number == 2:
        os._exit(0)  # the worker process vanishes without a word
    return float(trial.params["x"])


@pytest.mark.parametrize("kind", DIES)
def test_a_lost_worker_leaves_no_trial_running(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    study = study_for(kind, tmp_path, request, sampler="random")
    study.optimize(dies_on_the_third, n_trials=8, **jobs(kind))
    trials = study.trials
    assert not [t.number for t in trials if t.state is TrialState.RUNNING]
    assert trials[2].state is TrialState.FAILED
    assert sum(t.state is TrialState.COMPLETE for t in trials) == 7  # the budget is honoured


def fails_on_the_third(trial: ts.Trial) -> float:
    if trial.number == 2:
        raise ValueError("objective says no")
    return float(trial.params["x"])


@pytest.mark.parametrize("kind", [*EXECUTORS, pytest.param("ray-memory", marks=pytest.mark.slow)])
def test_callbacks_see_the_trial_whose_exception_ends_optimize(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """An exception ``catch`` does not cover fails its trial and ends optimize: the callbacks see that
    failed trial once, before optimize raises, like every other trial that ended (inline, threads and
    processes called none; Ray did)."""
    study = study_for(kind, tmp_path, request, sampler="random")
    seen: list[tuple[int, TrialState, str | None]] = []
    with pytest.raises(ValueError, match="objective says no"):
        study.optimize(fails_on_the_third, n_trials=20, catch=(), callbacks=[lambda s, r: seen.append((r.number, r.state, r.error))],
                       **jobs(kind))
    trials = study.trials
    assert all(t.state.is_finished for t in trials), [t.state for t in trials]
    assert sorted(n for n, _, _ in seen) == [t.number for t in trials]  # each ended trial once
    assert (2, TrialState.FAILED) in [(n, state) for n, state, _ in seen]
    assert trials[2].state is TrialState.FAILED and "objective says no" in (trials[2].error or "")


def says_no_on_failed(study: ts.Study, record: Any) -> None:
    if record.state is TrialState.FAILED:
        raise RuntimeError("callback says no")


@pytest.mark.parametrize("kind", [*EXECUTORS, pytest.param("ray-memory", marks=pytest.mark.slow)])
def test_the_objectives_exception_wins_over_a_callbacks_on_its_trial(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback that raises on the failed trial does not hide why the run stopped: optimize raises the
    objective's exception, and the callback's is logged."""
    study = study_for(kind, tmp_path, request, sampler="random")
    with pytest.raises(ValueError, match="objective says no"):
        study.optimize(fails_on_the_third, n_trials=20, catch=(), callbacks=[says_no_on_failed], **jobs(kind))
    assert "a callback raised RuntimeError after trial 2" in caplog.text


def interrupts_on_the_third(trial: ts.Trial) -> float:
    if trial.number == 2:
        raise KeyboardInterrupt
    return float(trial.params["x"])


@pytest.mark.parametrize("kind", [*EXECUTORS, pytest.param("ray-memory", marks=pytest.mark.slow)])
def test_the_objectives_own_keyboard_interrupt_stops_the_run(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A KeyboardInterrupt from the objective stops the run as a Ctrl-C does (optimize returns): its trial
    is recorded failed as interrupted, and called back under Ray alone (the guide says so), and
    ``study.interrupted`` says so whatever runs the objective (it stayed None in worker processes and Ray
    actors, where the command exited 130 all the same)."""
    study = study_for(kind, tmp_path, request, sampler="random")
    seen: list[int] = []
    study.optimize(interrupts_on_the_third, n_trials=20, callbacks=[lambda s, r: seen.append(r.number)], **jobs(kind))
    trials = study.trials
    assert all(t.state.is_finished for t in trials), [t.state for t in trials]
    assert trials[2].state is TrialState.FAILED and trials[2].error == "interrupted (KeyboardInterrupt)"
    assert len(seen) == len(set(seen)) and set(seen) <= {t.number for t in trials}
    assert (2 in seen) == kind.startswith("ray")
    assert study.interrupted == "interrupted (KeyboardInterrupt)", kind
    study.optimize(square, n_trials=1, **jobs(kind))
    assert study.interrupted is None  # the next call not interrupted


def slow_unless_the_third(trial: ts.Trial) -> float:
    if trial.number == 2:
        raise ValueError("objective says no")
    time.sleep(0.02)
    return float(trial.params["x"])


@pytest.mark.parametrize("kind", ["thread", "process"])  # Ray's driver stops the run before its callbacks
def test_no_trial_starts_while_the_callbacks_see_the_trial_whose_exception_ends_optimize(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The objective's exception stops the run as it is raised, not once the callbacks are done with its
    trial: the other workers, let go as their own trials were called back after it, started new ones."""
    study = study_for(kind, tmp_path, request, sampler="random")
    done: list[float] = []

    def slow_on_failed(s: ts.Study, record: Any) -> None:
        if record.state is TrialState.FAILED:
            time.sleep(1.0)
            done.append(time.time())

    with pytest.raises(ValueError, match="objective says no"):
        study.optimize(slow_unless_the_third, n_trials=200, catch=(), callbacks=[slow_on_failed], n_jobs=6,
                       executor=kind)
    # (one whose unit was taken as the exception came may start while the callback runs, never after it)
    started_after = [t.number for t in study.trials if (t.started or 0.0) > done[0]]
    assert not started_after, started_after


def _wait_for(path: Path, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def raises_on_the_second_later(started: Path, called_back: Path, trial: ts.Trial) -> float:
    """Trial 0 ends once trial 1 runs; trial 1 raises once trial 0's callback raised (files, not timings:
    a second Ray actor can take seconds to start on a loaded machine)."""
    if trial.number == 0:
        _wait_for(started)
    elif trial.number == 1:
        started.touch()
        _wait_for(called_back)
        time.sleep(0.2)  # the callback's exception is being recorded as this wakes
        raise ValueError("objective says no")
    return float(trial.params["x"])


def says_no_on_the_first(called_back: Path, study: ts.Study, record: Any) -> None:
    if record.number == 0:
        called_back.touch()
        raise RuntimeError("callback says no")


@pytest.mark.parametrize("kind", [*EXECUTORS[1:], pytest.param("ray-memory", marks=pytest.mark.slow)])
def test_a_callbacks_exception_that_stopped_the_run_first_wins(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A callback that raised on an earlier trial stopped the run: optimize raises its exception, not that of
    an objective still running then (the objective's wins only over a callback's raised on its own trial)."""
    study = study_for(kind, tmp_path, request, sampler="random")
    with pytest.raises(RuntimeError, match="callback says no"):
        started, called_back = tmp_path / "trial-1-started", tmp_path / "trial-0-called-back"
        objective = functools.partial(raises_on_the_second_later, started, called_back)
        study.optimize(objective, n_trials=20, catch=(), callbacks=[functools.partial(says_no_on_the_first, called_back)],
                       **jobs(kind))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAILED]  # trial 1 ran
