"""Callbacks behave the same under every executor: in the driver, in order per worker;
a raising callback stops the run and optimize raises it; study.stop() ends it cleanly."""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tunesmith import Float, Study, TrialState
from tunesmith.trial import FrozenTrial

# (executor, n_jobs, SQL storage?, most trials in flight beyond the ones called back)
EXECUTORS = {
    "inline": ("inline", 1, False, 0),
    "thread": ("thread", 2, False, 2),
    "process": ("process", 2, True, 2),
}


def _objective(trial: Any) -> float:
    time.sleep(0.02)
    return float(trial.params["x"])


def make_study(kind: str, tmp_path: Path) -> Study:
    url = f"sqlite:///{tmp_path / 'c.db'}" if EXECUTORS[kind][2] else None
    return Study({"x": Float(0, 1)}, storage=url, name="c", sampler="random", seed=0)


def optimize(study: Study, kind: str, n_trials: int, callbacks: list[Any]) -> None:
    executor, n_jobs, _, _ = EXECUTORS[kind]
    study.optimize(_objective, n_trials=n_trials, n_jobs=n_jobs, executor=executor, callbacks=callbacks)


def check_driver_side(study: Study, seen: list[tuple[int, int, FrozenTrial]], n: int) -> None:
    """Every trial called back once, in this process's calling thread, in order per worker."""
    assert sorted(r.number for _, _, r in seen) == list(range(n))
    assert {(pid, tid) for pid, tid, _ in seen} == {(os.getpid(), threading.get_ident())}
    by_worker: dict[str | None, list[float]] = defaultdict(list)
    for _, _, r in seen:
        assert r.state is TrialState.COMPLETE and r == study.trials[r.number]
        by_worker[r.worker].append(r.completed or 0.0)
    assert all(times == sorted(times) for times in by_worker.values())


@pytest.mark.parametrize("kind", list(EXECUTORS))
def test_callbacks_run_in_the_driver_once_per_trial_in_order(kind: str, tmp_path: Path) -> None:
    study = make_study(kind, tmp_path)
    seen: list[tuple[int, int, FrozenTrial]] = []
    optimize(study, kind, 10, [lambda s, r: seen.append((os.getpid(), threading.get_ident(), r))])
    check_driver_side(study, seen, 10)


def check_stopped(study: Study, called: int, kind: str) -> None:
    """The run stopped after ``called`` callbacks: the trials in flight ended, none is left running."""
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    assert called <= len(states) <= called + EXECUTORS[kind][3], states


@pytest.mark.parametrize("kind", list(EXECUTORS))
def test_a_raising_callback_stops_the_study_and_optimize_raises_it(kind: str, tmp_path: Path) -> None:
    study = make_study(kind, tmp_path)
    calls: list[int] = []

    def third_raises(s: Study, r: FrozenTrial) -> None:
        calls.append(r.number)
        if len(calls) == 3:
            raise ValueError("callback says no")

    with pytest.raises(ValueError, match="callback says no"):
        optimize(study, kind, 20, [third_raises])
    assert len(calls) == 3  # no callback after the one that raised
    check_stopped(study, 3, kind)


@pytest.mark.parametrize("kind", list(EXECUTORS))
def test_study_stop_in_a_callback_ends_optimize_cleanly(kind: str, tmp_path: Path) -> None:
    study = make_study(kind, tmp_path)
    calls: list[int] = []

    def stop_at_three(s: Study, r: FrozenTrial) -> None:
        calls.append(r.number)
        if len(calls) == 3:
            s.stop()

    optimize(study, kind, 20, [stop_at_three])
    check_stopped(study, 3, kind)
    assert len(calls) == len(study.trials)  # the trials in flight were called back too
    before = len(study.trials)
    optimize(study, kind, 2, [])  # the next call is not stopped
    assert len(study.trials) == before + 2



def test_a_process_worker_starts_no_trial_before_its_last_one_was_called_back(tmp_path: Path) -> None:
    """With callbacks, a worker process waits for the calling process to run them on the trial it
    recorded (as inline): a callback that stops the run at the third trial leaves three trials, however
    long it takes. A worker that did not wait would have started (and recorded) the next ones meanwhile."""
    from tunesmith.execution import ProcessExecutor

    study = make_study("process", tmp_path)

    def slow_stop_at_three(s: Study, r: FrozenTrial) -> None:
        time.sleep(0.3)
        if r.number == 2:
            s.stop()

    study.optimize(_objective, n_trials=10, executor=ProcessExecutor(1), callbacks=[slow_stop_at_three])
    assert [t.number for t in study.trials] == [0, 1, 2]

class Ends:
    """A callback with on_optimize_end: records each trial, then how the call ended."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.trials: list[int] = []
        self.ends: list[tuple[int, str | None]] = []
        self.fail_at = fail_at

    def __call__(self, s: Study, r: FrozenTrial) -> None:
        self.trials.append(r.number)
        if len(self.trials) == self.fail_at:
            raise ValueError("callback says no")

    def on_optimize_end(self, s: Study, error: BaseException | None) -> None:
        self.ends.append((threading.get_ident(), None if error is None else str(error)))


@pytest.mark.parametrize("kind", list(EXECUTORS))
def test_on_optimize_end_is_called_once_after_the_last_trial(kind: str, tmp_path: Path) -> None:
    study = make_study(kind, tmp_path)
    ok, failing = Ends(), Ends(fail_at=2)
    optimize(study, kind, 4, [ok])
    assert len(ok.trials) == 4 and ok.ends == [(threading.get_ident(), None)]
    with pytest.raises(ValueError, match="callback says no"):
        optimize(study, kind, 10, [failing])
    assert failing.ends == [(threading.get_ident(), "callback says no")]


class _StoppedAtEnd(Ends):
    """A callback whose on_optimize_end a (real) second Ctrl-C stops, as it logs what is behind."""

    def on_optimize_end(self, s: Study, error: BaseException | None) -> None:
        import signal

        super().on_optimize_end(s, error)
        signal.raise_signal(signal.SIGINT)


def test_a_ctrl_c_in_one_on_optimize_end_still_ends_the_others(tmp_path: Path) -> None:
    """A KeyboardInterrupt out of one callback's on_optimize_end skipped the callbacks after it: what they opened
    (an MLflow parent run) stayed open. They are called with that interrupt as the error; optimize raises it."""
    study = make_study("inline", tmp_path)
    first, stopped, last = Ends(), _StoppedAtEnd(), Ends()
    with pytest.raises(KeyboardInterrupt):
        optimize(study, "inline", 2, [first, stopped, last])
    assert first.ends == stopped.ends == [(threading.get_ident(), None)]
    assert len(last.trials) == 2 and last.ends == [(threading.get_ident(), "")]  # str(KeyboardInterrupt()): ""


def _lost_and_stops(trial: Any) -> float:
    """Trial 0 is failed elsewhere while it runs (as a worker judged lost), then stops the study."""
    if trial.number == 0:
        trial.study.tell(trial.number, state="failed", error="failed elsewhere")
        trial.study.stop()
    time.sleep(0.05)
    return float(trial.params["x"])


@pytest.mark.parametrize("kind", ["inline", "thread", "process"])
def test_study_stop_from_an_objective_whose_trial_ended_elsewhere_stops_the_run(kind: str, tmp_path: Path) -> None:
    """An objective's study.stop() was read only once its trial was recorded: when the trial had been
    failed elsewhere meanwhile (its result dropped), the worker started its next trial, and under the
    process executor the stop took effect only once that one ended. No trial starts after it now."""
    study = make_study(kind, tmp_path)
    study.optimize(_lost_and_stops, n_trials=6, n_jobs=1, executor=kind)
    assert [(t.number, t.state) for t in study.trials] == [(0, TrialState.FAILED)]


def test_the_run_is_stopped_before_the_trial_whose_exception_ends_it_is_called_back() -> None:
    """The hand-off of the failed trial waits for the driver's callbacks (threads, processes); the other
    workers, let go meanwhile, must find the run stopped already (they started new trials)."""
    from tunesmith.execution.loop import Budget, Run, run_one

    def refuses(trial: Any) -> float:
        raise ValueError("objective says no")

    study = Study({"x": Float(0, 1)}, sampler="random", seed=0)
    run = Run(study, refuses, Budget(10, None), catch=())
    stopped_when_called_back: list[bool] = []
    run.ended = lambda record: stopped_when_called_back.append(run.budget.stopped)
    with pytest.raises(ValueError, match="objective says no"):
        run_one(run)
    assert stopped_when_called_back == [True]
    assert study.trials[0].state is TrialState.FAILED
