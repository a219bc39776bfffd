"""Reliability of many worker processes on one study (SQLite file and PostgreSQL).

Every worker is a separate OS process started through the CLI, as on another
machine; nothing is shared but the database.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from workers import start_worker, wait_all, write_study

from tunesmith import Float, Int, Space, Study, TrialState

pytestmark = pytest.mark.slow

SPACE = Space({"x": Int(0, 39), "y": Int(0, 24)})  # a 1,000-point grid


def _url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    return str(request.getfixturevalue("pg_url"))


def _value(params: dict) -> float:  # type: ignore[type-arg]
    return float(params["x"]) * 3.0 + float(params.get("y", 0)) * 0.5


def _check_all_readable(study: Study, n: int) -> None:
    trials = study.trials
    assert len(trials) == n
    assert [t.number for t in trials] == list(range(n))  # no duplicate, no gap
    assert all(t.state is TrialState.COMPLETE for t in trials), {t.state for t in trials}
    for t in trials:
        assert t.value == pytest.approx(_value(dict(t.params)))
        assert t.intermediate == {0: pytest.approx(t.value)}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("sampler", ["random", "grid"])
def test_four_workers_1000_trials(backend: str, sampler: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = _url(backend, tmp_path, request)
    spec = {"name": "grid", "points": {"x": list(range(40)), "y": list(range(25))}} if sampler == "grid" else sampler
    Study(SPACE, storage=url, name="s", sampler=spec, seed=1)
    path = write_study(tmp_path, url)
    procs = [start_worker(path, "--n-trials", "250") for _ in range(4)]
    outs = wait_all(procs)
    study = Study.load("s", url)
    _check_all_readable(study, 1000)
    assert len({t.worker for t in study.trials}) == 4, outs
    if sampler == "grid":
        points = {(t.params["x"], t.params["y"]) for t in study.trials}
        assert len(points) == 1000  # every grid point exactly once


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_worker_mid_trial_is_failed_after_grace_and_requeued(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = _url(backend, tmp_path, request)
    grace = 1.5
    Study({"x": Float(0, 1)}, storage=url, name="s", sampler="random", seed=2,
          heartbeat_interval=0.25, grace_period=grace, requeue_failed=True)
    victim_file = write_study(tmp_path, url, objective="objectives.py:victim").rename(tmp_path / "victim.yaml")
    path = write_study(tmp_path, url)
    marker = tmp_path / "victim.marker"
    victim = start_worker(victim_file, "--n-trials", "1", VICTIM_MARKER=str(marker))
    end = time.monotonic() + 60
    while not marker.exists():
        assert victim.poll() is None and time.monotonic() < end, "victim never started its trial"
        time.sleep(0.05)
    pid, number = map(int, marker.read_text().split())
    time.sleep(0.6)  # it has beaten a few times meanwhile
    os.kill(pid, signal.SIGKILL)
    victim.wait(10)
    killed_at = time.time()
    time.sleep(grace)  # 60 fast trials can end before the grace does: start once it has passed
    workers = [start_worker(path, "--n-trials", "60", "--executor", "inline") for _ in range(2)]
    # they reap the lost trial once its heartbeat is older than the grace, and run its copy
    wait_all(workers)
    study = Study.load("s", url)
    trials = {t.number: t for t in study.trials}
    lost = trials[number]
    assert lost.state is TrialState.FAILED and "worker lost" in (lost.error or "")
    assert lost.intermediate == {0: 123.0}  # its reports are kept
    assert lost.completed is not None and lost.completed - killed_at >= grace - 1.0
    assert lost.completed - (lost.heartbeat or 0) >= grace
    copy = trials[lost.system.requeued_as]
    assert copy.params == lost.params and copy.attrs == {} and copy.system.retry_of == number
    assert copy.state is TrialState.COMPLETE and copy.system.unit == "free"
    others = [t for n, t in trials.items() if n != number]
    # each worker runs its 60 trials of its own; the copy of the killed call's trial is run free of them
    assert len(others) == 121 and all(t.state is TrialState.COMPLETE for t in others)


def test_postgres_restarted_mid_run_workers_carry_on(tmp_path: Path, pg_server, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    Study({"x": Float(0, 1)}, storage=pg_url, name="s", sampler="random", seed=3)
    path = write_study(tmp_path, pg_url, objective="objectives.py:slow")
    procs = [start_worker(path, "--n-trials", "100") for _ in range(4)]
    study = Study.load("s", pg_url)
    end = time.monotonic() + 60
    while len(study.trials) < 40:
        assert time.monotonic() < end
        time.sleep(0.1)
    pg_server.restart(down_for=1.0)
    wait_all(procs)
    study = Study.load("s", pg_url)
    trials = study.trials
    assert [t.number for t in trials] == list(range(400))
    assert all(t.state is TrialState.COMPLETE for t in trials)
