"""Fault injection: kill storms, database restarts, a Ray actor killed, with exact counts afterwards.

Each test runs a real load (worker processes, SQLite files, a PostgreSQL
server on 127.0.0.1, a private Ray instance), injects a fault, then checks the
study as a whole: trial numbers 0..N-1 with no duplicate and no gap, every grid
point evaluated exactly once, every value read back as its parameters give it,
nothing left running or waiting, and exactly ``n_trials`` results. The loads
are the ones docs/distributed.md ("What is guaranteed under which faults")
states.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kill_storm import Storm
from workers import start_worker, wait_all, write_study

from tunesmith import Float, Int, Space, Study, TrialState

pytestmark = pytest.mark.slow

try:  # Ray workers cannot import this test module: ship its functions by value
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
except ImportError:  # pragma: no cover - the Ray test skips without Ray
    pass


def value_of(params: Any) -> float:
    """The objective's value (as tests/workers.py's objectives compute it)."""
    return float(params["x"]) * 3.0 + float(params.get("y", 0)) * 0.5


def _url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    return str(request.getfixturevalue("pg_url"))


def check_study(study: Study, *, results: int, grid: int | None = None) -> Counter[str]:
    """No duplicate or missing number, no value read back wrong, exactly ``results``
    results (a failed attempt re-queued as a copy is not one), nothing left running or
    waiting, and with ``grid`` every grid point's result exactly once."""
    trials = study.trials
    assert [t.number for t in trials] == list(range(len(trials)))
    states = Counter(t.state.value for t in trials)
    assert states["running"] == states["waiting"] == 0, states
    final = [t for t in trials if t.state.is_finished and t.system.requeued_as is None]
    assert len(final) == results, states
    for t in trials:
        if t.state is TrialState.COMPLETE:
            assert t.value == value_of(t.params), t
        if t.system.requeued_as is not None:  # its copy: same parameters, pointing back
            copy = trials[t.system.requeued_as]
            assert copy.params == t.params and copy.system.retry_of == t.number
    if grid is not None:
        points = Counter((t.params["x"], t.params["y"]) for t in final)
        assert len(points) == grid and set(points.values()) == {1}
    return states


# -- many processes on one study -----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_six_worker_processes_share_a_1200_point_grid(backend: str, tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    """6 processes x 300 trials asked of a 1,200-point grid: each point once, then exhausted."""
    url = _url(backend, tmp_path, request)
    grid = {"name": "grid", "points": {"x": list(range(48)), "y": list(range(25))}}
    Study(Space({"x": Int(0, 47), "y": Int(0, 24)}), storage=url, name="s", sampler=grid, seed=1)
    path = write_study(tmp_path, url)
    outs = wait_all([start_worker(path, "--n-trials", "300") for _ in range(6)], timeout=600)
    study = Study.load("s", url)
    assert check_study(study, results=1200, grid=1200) == Counter({"complete": 1200})
    assert len({t.worker for t in study.trials}) == 6, outs
    assert all(t.intermediate == {0: t.value} for t in study.trials)


# -- kill storms -----------------------------------------------------------------------------------


def _sleepy(trial: Any) -> float:
    time.sleep(0.08)
    trial.report(value_of(trial.params), 0)
    return value_of(trial.params)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("requeue", [True, False], ids=["requeue", "fail"])
def test_kill_storm_leaves_exact_counts(backend: str, requeue: bool, tmp_path: Path,
                                        request: pytest.FixtureRequest) -> None:
    """4 worker processes running a grid (600 points on SQLite, 300 on PostgreSQL, where
    each new worker takes longer to start) while workers are SIGKILLed at random: every
    point has exactly one result, lost attempts are failed (and re-queued), none is left
    running or waiting."""
    url = _url(backend, tmp_path, request)
    nx = 24 if backend == "sqlite" else 12
    grid = {"name": "grid", "points": {"x": list(range(nx)), "y": list(range(25))}}
    beat: dict[str, Any] = {"heartbeat_interval": 5.0, "requeue_failed": True} if requeue else {}
    study = Study(Space({"x": Int(0, nx - 1), "y": Int(0, 24)}), storage=url, name="s", sampler=grid, seed=2, **beat)
    with Storm(seed=3, low=0.05, high=0.3) as storm:  # killed workers are replaced at once: runs are short
        study.optimize(_sleepy, n_trials=nx * 25, n_jobs=4)
    states = check_study(study, results=nx * 25, grid=nx * 25)
    print(f"{storm.kills} kills, {states}")  # the figures docs/distributed.md states
    assert storm.kills >= 20, storm.kills
    assert states["failed"] >= 1  # the storm hit running trials
    if requeue:  # every lost attempt but a copy's second loss ran again
        lost = [t for t in study.trials if t.state is TrialState.FAILED]
        assert all(t.system.requeued_as is not None or t.system.retry_of is not None for t in lost)


# -- PostgreSQL restarts -------------------------------------------------------------------------


def test_postgres_fast_and_immediate_restarts_under_load(tmp_path: Path, pg_server: Any) -> None:
    """4 worker processes x 250 trials while the server restarts three times with a fast
    shutdown (sessions closed) and three times with an immediate one (as a crash):
    1,000 trials, numbered 0..999, every one complete and read back right. The database
    commits durably (synchronous_commit on, PostgreSQL's default; the test server's
    other databases trade that for speed, and a crash then loses acknowledged commits)."""
    import psycopg

    db = f"faults_{os.getpid()}"
    pg_url = pg_server.create_database(db)
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{db}" SET synchronous_commit = on')
    Study({"x": Float(0, 1)}, storage=pg_url, name="s", sampler="random", seed=3)
    path = write_study(tmp_path, pg_url, objective="objectives.py:slow")
    procs = [start_worker(path, "--n-trials", "250") for _ in range(4)]
    study = Study.load("s", pg_url)
    for i, mode in enumerate([signal.SIGINT, signal.SIGQUIT] * 3):  # fast, immediate, ...
        end = time.monotonic() + 120
        while len(study.trials) < 100 * (i + 1) and all(p.poll() is None for p in procs):
            assert time.monotonic() < end, "the workers stalled"
            time.sleep(0.05)
        pg_server.stop(mode=mode)
        time.sleep(0.5)
        pg_server.start()
    wait_all(procs, timeout=600)
    assert check_study(Study.load("s", pg_url), results=1000) == Counter({"complete": 1000})


# -- Ray -------------------------------------------------------------------------------------------


def _ray_objective(marker: str) -> Any:
    def objective(trial: Any) -> float:
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.2)
        return value_of(trial.params)

    return objective


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_ray_actor_killed_from_outside(ray_local: Any, tmp_path: Path, storage: str) -> None:
    """A Ray actor's process SIGKILLed mid-run (not by its objective): its trial is failed
    and re-queued, a new actor takes over, exactly n_trials results."""
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 's.db'}"
    study = Study({"x": Float(0, 1)}, sampler="random", seed=0, storage=url, name="s",
                  heartbeat_interval=1.0, requeue_failed=True)
    marker = tmp_path / "pids"
    killed: list[int] = []

    def kill_one() -> None:
        end = time.monotonic() + 120
        while time.monotonic() < end:
            pids = marker.read_text().split() if marker.exists() else []
            if len(pids) >= 6:
                killed.append(int(pids[-1]))
                os.kill(killed[0], signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    study.optimize(_ray_objective(str(marker)), n_trials=20, n_jobs=2, executor="ray")
    killer.join()
    assert killed
    states = check_study(study, results=20)
    assert states["failed"] == 1 and states["complete"] == 20, states
    lost = next(t for t in study.trials if t.state is TrialState.FAILED)
    assert "ray worker lost" in (lost.error or "")
