"""optimize: parallel workers (threads, processes), grid runs, and Ctrl-C."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import tunesmith as ts
from tunesmith.trial import TrialState

SVM_GRID = {"C": [0.1, 1, 10, 100], "gamma": [0.001, 0.01, 0.1, 1], "degree": [2, 3]}
SVM_GRID_SIZE = 4 + 16 + 32


def keys(study: ts.Study) -> list[str]:
    return [study.space.key(t.params) for t in study.trials]


def slow_objective(trial: ts.Trial) -> float:
    time.sleep(0.002)
    return float(trial.params["C"])


class BothWorkers:
    """An objective whose first trial in each process waits for the other
    worker's first trial, so a test can count on both workers running trials
    however the machine schedules them."""

    def __init__(self, objective: Any, n: int = 2) -> None:
        self.objective = objective
        self.barrier = mp.get_context("fork").Barrier(n)
        self.seen: set[int] = set()

    def __call__(self, trial: ts.Trial) -> float:
        if os.getpid() not in self.seen:
            self.seen.add(os.getpid())
            self.barrier.wait(timeout=60)
        return float(self.objective(trial))


def test_threads_on_memory_count_exact(svm_space: ts.Space) -> None:
    study = ts.Study(svm_space, sampler="random", seed=0)
    study.optimize(slow_objective, n_trials=60, n_jobs=4)
    trials = study.trials
    assert [t.number for t in trials] == list(range(60))
    assert all(t.state is TrialState.COMPLETE for t in trials)
    assert len({t.params["C"] for t in trials}) == 60  # workers draw different streams


def test_processes_on_sqlite_count_exact(svm_space: ts.Space, sqlite_url: str) -> None:
    study = ts.Study(svm_space, sampler="random", seed=0, storage=sqlite_url, name="p")
    study.optimize(BothWorkers(slow_objective), n_trials=40, n_jobs=2)
    trials = study.trials
    assert [t.number for t in trials] == list(range(40))
    assert all(t.state is TrialState.COMPLETE for t in trials)
    assert len({t.worker for t in trials}) == 2  # really two processes
    assert os.getpid() not in {int(t.worker.rsplit(":", 1)[1]) for t in trials if t.worker}


def test_timeout_with_processes(sqlite_url: str) -> None:
    study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0, storage=sqlite_url, name="t")
    t0 = time.monotonic()
    study.optimize(lambda t: time.sleep(0.05) or t.params["x"], timeout=1.0, n_jobs=2)
    assert time.monotonic() - t0 < 30  # a liveness bound (about 1.3 s): without the timeout it never ends
    n = len(study.trials)
    assert n >= 2 and all(t.state is TrialState.COMPLETE for t in study.trials)


# -- grid -------------------------------------------------------------------------------------------------------


def test_grid_is_exhaustive_and_conditional_aware(svm_space: ts.Space, caplog: pytest.LogCaptureFixture) -> None:
    study = ts.Study(svm_space, sampler=ts.GridSampler(SVM_GRID, seed=0))
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        study.optimize(slow_objective, n_trials=500)
    trials = study.trials
    assert len(trials) == SVM_GRID_SIZE  # stopped at the end of the grid, not at 500
    assert len(set(keys(study))) == SVM_GRID_SIZE
    # never two configurations that differ only in an inactive parameter
    linear = [t.params for t in trials if t.params["kernel"] == "linear"]
    assert sorted(p["C"] for p in linear) == [0.1, 1.0, 10.0, 100.0]
    assert all(set(p) == {"kernel", "C"} for p in linear)
    assert "exhausted" in caplog.text and "optimize stopped" in caplog.text
    with pytest.raises(ts.SearchExhausted, match="every configuration has been tried"):
        study.ask()


def test_grid_in_parallel_processes_has_no_duplicates(svm_space: ts.Space, sqlite_url: str) -> None:
    study = ts.Study(svm_space, sampler=ts.GridSampler(SVM_GRID, seed=0), storage=sqlite_url, name="g")
    study.optimize(BothWorkers(slow_objective), n_trials=500, n_jobs=2)
    k = keys(study)
    assert len(k) == SVM_GRID_SIZE and len(set(k)) == SVM_GRID_SIZE
    assert len({t.worker for t in study.trials}) == 2


def test_grid_threads_have_no_duplicates(svm_space: ts.Space) -> None:
    study = ts.Study(svm_space, sampler=ts.GridSampler(SVM_GRID, seed=0))
    study.optimize(slow_objective, n_jobs=4)
    assert sorted(keys(study)) == sorted(set(keys(study))) and len(keys(study)) == SVM_GRID_SIZE


def test_resumed_grid_runs_only_what_is_left(svm_space: ts.Space, sqlite_url: str) -> None:
    first = ts.Study(svm_space, sampler=ts.GridSampler(SVM_GRID, seed=0), storage=sqlite_url, name="g")
    first.optimize(slow_objective, n_trials=20)
    done = set(keys(first))
    resumed = ts.Study.load("g", sqlite_url)  # sampler and its grid come from the storage
    assert isinstance(resumed.sampler, ts.GridSampler)
    resumed.optimize(slow_objective, n_trials=100)
    later = keys(resumed)[20:]
    assert len(later) == SVM_GRID_SIZE - 20 and not done & set(later)


# -- Ctrl-C -----------------------------------------------------------------------------------------------------

INTERRUPTED = """
import pathlib, sys, time, tunesmith as ts
url, marker, n_jobs, executor = sys.argv[1], pathlib.Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0, storage=url, name="c")

def objective(trial):
    if trial.number >= 2:
        marker.touch()
        time.sleep(60)
    return trial.params["x"]

study.optimize(objective, n_trials=50, n_jobs=n_jobs, executor=executor)
print("optimize returned;", study.interrupted, flush=True)
"""


@pytest.mark.parametrize(
    "n_jobs, executor, group",
    [(1, "process", True), (2, "process", True), (2, "process", False), (2, "thread", True)],
    ids=["inline", "processes", "parent-only", "threads"],
)
def test_ctrl_c_marks_the_running_trial_and_leaves_a_readable_db(
    n_jobs: int, executor: str, group: bool, sqlite_url: str, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """Ctrl-C in a terminal signals the whole process group; ``kill -INT`` the parent only. optimize returns
    normally, and ``study.interrupted`` tells the script it was interrupted (a script's next line, reading the
    best trial as after a full run, could not tell); the next optimize, run in full, sets it back to None."""
    marker = tmp_path / "started"
    proc = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED, sqlite_url, str(marker), str(n_jobs), executor],
        env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.3)
        if group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert "optimize returned; interrupted (KeyboardInterrupt)" in out and "interrupted" in err
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    study = ts.load_study("c", sqlite_url)
    trials = study.trials
    assert not [t for t in trials if t.state is TrialState.RUNNING]
    stopped = [t for t in trials if t.state is TrialState.FAILED]
    assert 1 <= len(stopped) <= n_jobs
    assert all("interrupted" in (t.error or "") and t.completed is not None for t in stopped)
    assert all(t.state is TrialState.COMPLETE for t in trials if t not in stopped)
    study.optimize(lambda t: t.params["x"], n_trials=2)  # the study goes on
    assert len(study.trials) == len(trials) + 2 and study.interrupted is None


def test_a_worker_process_that_dies_leaves_its_trial_marked(sqlite_url: str) -> None:
    study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0, storage=sqlite_url, name="die")

    def objective(trial: ts.Trial) -> float:
        if trial.number == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # the worker vanishes mid-trial
        time.sleep(0.01)
        return trial.params["x"]

    study.optimize(objective, n_trials=8, n_jobs=2)
    trials = study.trials
    assert len(trials) == 8 and not [t for t in trials if t.state is TrialState.RUNNING]
    dead = [t for t in trials if t.state is TrialState.FAILED]
    assert [t.number for t in dead] == [1]
    assert dead[0].error == "worker process died (exit code -9)"


def test_progress_bar_counts_trials_and_knows_when_a_grid_ends(capsys: pytest.CaptureFixture[str]) -> None:
    study = ts.Study({"k": ts.Categorical(["a", "b"]), "x": ts.Float(0, 1)}, sampler="grid", name="bar")
    study.optimize(lambda t: t.params["x"], n_trials=4, show_progress=True)
    assert "4/4 trials" in capsys.readouterr().err
    study.optimize(lambda t: t.params["x"], show_progress=True)  # 6 grid points left
    err = capsys.readouterr().err
    assert "6/6 trials" in err and "best 0" in err and "bar" in err
