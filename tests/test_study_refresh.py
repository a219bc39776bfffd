"""A study's refresh of its trials: it reads the trials after the last one it saw and again the
unfinished ones it holds, never the finished ones between, and sees every change other workers
make (a trial finished, paused, resumed, failed as lost, queued, a row deleted)."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa

import tunesmith as ts
from tunesmith import MemoryStorage, SQLStorage, Storage, TrialState
from tunesmith.pruners import Decision, Pruner
from tunesmith.storage.prepared import Cursor
from tunesmith.storage.sql_schema import SINCE_WIDTHS
from tunesmith.trial import Direction, FrozenTrial

SPACE = {"x": ts.Float(0.0, 1.0)}


class Seeing(Pruner):
    """Never stops a trial; keeps the trials it was last shown (a decision's view of the study)."""

    reads = frozenset(TrialState) - {TrialState.WAITING}  # the study reads them leaving the queue out

    def __init__(self) -> None:
        self.seen: list[tuple[int, TrialState, float | None]] = []

    def decide(self, trial: FrozenTrial, trials: Sequence[FrozenTrial], direction: Direction) -> Decision:
        self.seen = _view(trials)
        return Decision.CONTINUE


def _view(trials: Sequence[FrozenTrial]) -> list[tuple[int, TrialState, float | None]]:
    return [(t.number, t.state, t.value) for t in trials]


def _truth(storage: Storage, sid: int, *, queue: bool = True) -> list[tuple[int, TrialState, float | None]]:
    """What a fresh read of every trial holds (without the waiting ones unless ``queue``)."""
    return _view([t for t in storage.get_trials(sid) if queue or t.state is not TrialState.WAITING])


def _write(storage: Storage, sid: int, number: int, state: TrialState, **changes: Any) -> None:
    """Another worker's write: trial ``number`` from its stored state to ``state``."""
    rec = storage.get_trial(sid, number)
    done = {"completed": 2.0} if state.is_finished else {}
    assert storage.update_trial(sid, rec.replace(state=state, **done, **changes), expect_state=rec.state)


def _step(rng: random.Random, writer: ts.Study, sid: int) -> None:
    """One random change of another worker: a new, a queued or a known trial, one finished,
    paused, resumed, or failed as lost."""
    st = writer.storage
    by_state: dict[TrialState, list[int]] = {}
    for t in st.get_trials(sid):
        by_state.setdefault(t.state, []).append(t.number)
    running = [n for n in by_state.get(TrialState.RUNNING, []) if n != 0]  # 0: the reader's own, kept running
    paused = by_state.get(TrialState.PAUSED, [])
    move = rng.choice(["ask", "ask", "enqueue", "add", "finish", "finish", "pause", "resume", "lost"])
    if move == "ask" or (move in ("finish", "pause", "lost") and not running) or (move == "resume" and not paused):
        writer.ask()  # takes the head of the queue when there is one
    elif move == "enqueue":
        writer.enqueue({"x": rng.random()})
    elif move == "add":  # a finished trial numbered past the queue (a peer that did not see it yet does the same)
        writer.add_trial({"x": rng.random()}, rng.random())
    elif move == "finish":
        state = rng.choice([TrialState.COMPLETE, TrialState.PRUNED])
        _write(st, sid, rng.choice(running), state, value=rng.random() if state is TrialState.COMPLETE else None)
    elif move == "pause":
        _write(st, sid, rng.choice(running), TrialState.PAUSED)
    elif move == "resume":
        _write(st, sid, rng.choice(paused), TrialState.RUNNING)
    else:
        _write(st, sid, rng.choice(running), TrialState.FAILED, error="worker lost")


def test_a_refresh_sees_every_change_another_worker_makes(storage_url: str | None) -> None:
    pruner = Seeing()
    reader = ts.Study(SPACE, sampler="random", seed=0, storage=storage_url, name="r", pruner=pruner)
    writer = ts.Study(storage=reader.storage, name="r", sampler="random", seed=1, pruner="none")
    sid = reader._study_id
    probe = reader.ask()  # trial 0, running throughout: every refresh starts below it
    rng = random.Random(0)
    states = set()
    for step in range(1, 151):
        for _ in range(rng.randint(1, 3)):
            _step(rng, writer, sid)
        if rng.random() < 0.3:  # runs of decisions in a row: what one skipped must be seen by the next
            assert _view(reader.trials) == _truth(reader.storage, sid)
            states |= {t.state for t in reader.trials}
        else:  # a decision: the queue left out of the read
            probe.report(0.5, step)
            assert not probe.should_prune()
            assert pruner.seen == _truth(reader.storage, sid, queue=False)
    assert states == set(TrialState)


def test_queued_trials_a_decision_left_out_are_seen_once_another_worker_runs_them(storage_url: str | None) -> None:
    pruner = Seeing()
    reader = ts.Study(SPACE, sampler="random", seed=0, storage=storage_url, name="r", pruner=pruner)
    writer = ts.Study(storage=reader.storage, name="r", sampler="random", seed=1, pruner="none")
    probe = reader.ask()
    writer.enqueue({"x": 0.1})
    writer.enqueue({"x": 0.2})
    writer.add_trial({"x": 0.3}, 0.3)  # trial 3, past the queue
    probe.report(0.5, 1)
    probe.should_prune()
    assert [n for n, _, _ in pruner.seen] == [0, 3]  # the queue (1, 2) not read
    writer.optimize(lambda t: t.params["x"], n_trials=2)  # runs 1 and 2
    probe.report(0.5, 2)
    probe.should_prune()
    assert pruner.seen == _truth(reader.storage, reader._study_id)
    assert [t.value for t in reader.trials] == [None, 0.1, 0.2, 0.3]


FINISH_IT = """
import sys, tunesmith as ts
ts.Study.load("s", sys.argv[1]).tell(int(sys.argv[2]), 0.25)
"""

RESUME_IT = """
import sys, time, tunesmith as ts
from tunesmith.study import lifecycle
from tunesmith.trial import TrialState
study = ts.Study.load("s", sys.argv[1])
rec = study.storage.get_trial(study._study_id, int(sys.argv[2]))
assert study.storage.update_trial(study._study_id, lifecycle.resume(rec, "other:1", time.time()),
                                  expect_state=TrialState.PAUSED)
"""


def _other_process(code: str, url: str, number: int, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-c", code, url, str(number)], env=env, check=True, timeout=120)


def test_an_early_running_trial_finished_by_another_process_is_seen(
    shared_storage_url: str, subprocess_env: dict[str, str]
) -> None:
    study = ts.Study(SPACE, sampler="random", seed=0, storage=shared_storage_url, name="s")
    stuck = study.ask()  # trial 0 stays running while 30 later trials finish
    study.optimize(lambda t: t.params["x"], n_trials=30)
    assert [t.state for t in study.trials][:2] == [TrialState.RUNNING, TrialState.COMPLETE]
    _other_process(FINISH_IT, shared_storage_url, stuck.number, subprocess_env)
    first = study.trials[0]
    assert (first.state, first.value) == (TrialState.COMPLETE, 0.25)
    assert study.best_trial.number == min(study.trials, key=lambda t: t.value or 0.0).number


def test_an_early_paused_trial_resumed_then_finished_elsewhere_is_seen(
    shared_storage_url: str, subprocess_env: dict[str, str]
) -> None:
    study = ts.Study(SPACE, sampler="random", seed=0, storage=shared_storage_url, name="s")
    paused = study.ask()
    paused.report(0.9, 1)
    study.storage.update_trial(study._study_id, study.storage.get_trial(study._study_id, 0).replace(
        state=TrialState.PAUSED), expect_state=TrialState.RUNNING)
    study.optimize(lambda t: t.params["x"], n_trials=20)
    assert study.trials[0].state is TrialState.PAUSED
    _other_process(RESUME_IT, shared_storage_url, paused.number, subprocess_env)
    assert (study.trials[0].state, study.trials[0].worker) == (TrialState.RUNNING, "other:1")
    _other_process(FINISH_IT, shared_storage_url, paused.number, subprocess_env)
    assert (study.trials[0].state, study.trials[0].value) == (TrialState.COMPLETE, 0.25)


def test_a_running_trial_failed_as_lost_by_another_worker_is_seen(shared_storage_url: str) -> None:
    study = ts.Study(SPACE, sampler="random", seed=0, storage=shared_storage_url, name="s")
    study.ask()
    study.optimize(lambda t: t.params["x"], n_trials=10)
    assert study.trials[0].state is TrialState.RUNNING
    other = ts.Study.load("s", shared_storage_url, heartbeat_interval=1.0, grace_period=2.0, requeue_failed=True)
    other.storage.heartbeat(other._study_id, [0], 0.0)  # its last beat long ago: its worker is lost
    other.optimize(lambda t: t.params["x"], n_trials=1)  # reaps it first, re-queued as trial 11, then runs that
    trials = study.trials
    assert trials[0].state is TrialState.FAILED and trials[0].system.requeued_as == 11
    assert (trials[11].state, trials[11].params) == (TrialState.COMPLETE, trials[0].params)


def test_a_deleted_row_of_a_running_trial_leaves_the_history(sqlite_url: str) -> None:
    study = ts.Study(SPACE, sampler="random", seed=0, storage=sqlite_url, name="s")
    study.ask()
    study.optimize(lambda t: t.params["x"], n_trials=5)
    assert len(study.trials) == 6
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:  # by hand, outside tunesmith
        conn.execute(sa.text("DELETE FROM ts_trials WHERE number = 0"))
    engine.dispose()
    assert [t.number for t in study.trials] == [1, 2, 3, 4, 5]


class Counting:
    """Counts the trials a storage hands out (the queue's head and the refreshes' reads)."""

    read = 0

    def get_trials(self, study_id: int, **kw: Any) -> list[FrozenTrial]:
        out: list[FrozenTrial] = super().get_trials(study_id, **kw)  # type: ignore[misc]
        self.read += len(out)
        return out

    def get_trials_since(self, study_id: int, min_number: int, **kw: Any) -> list[FrozenTrial]:
        out: list[FrozenTrial] = super().get_trials_since(study_id, min_number, **kw)  # type: ignore[misc]
        self.read += len(out)
        return out


class CountingMemory(Counting, MemoryStorage):
    pass


class CountingSQL(Counting, SQLStorage):
    pass


@pytest.mark.parametrize("stale", [TrialState.RUNNING, TrialState.PAUSED])
@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_one_early_unfinished_trial_does_not_make_each_refresh_read_the_later_ones(
    kind: str, stale: TrialState, sqlite_url: str
) -> None:
    storage = CountingMemory() if kind == "memory" else CountingSQL(sqlite_url)
    study = ts.Study(SPACE, sampler="tpe", seed=0, storage=storage, name="s")
    first = study.ask()
    if stale is TrialState.PAUSED:
        _write(storage, study._study_id, first.number, TrialState.PAUSED)
    study.optimize(lambda t: t.params["x"], n_trials=300)
    _ = study.trials
    before = storage.read
    study.optimize(lambda t: t.params["x"], n_trials=5)  # each ask reads the history once
    assert storage.read - before <= 5 * 4  # the early trial and the last one or two, not ~300 a read
    assert len(study.trials) == 306


def test_more_unfinished_trials_than_one_statement_lists_are_all_read_in_order(
    shared_storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = ts.Study(SPACE, sampler="random", seed=0, storage=shared_storage_url, name="s")
    many = SINCE_WIDTHS[-1] + 40
    for i in range(2 * many):
        trial = study.ask()
        if i % 2:
            study.tell(trial, 0.5)
    assert [t.state for t in study.trials].count(TrialState.RUNNING) == many
    for n in range(0, 2 * many, 4):  # another worker finishes half the running trials
        _write(study.storage, study._study_id, n, TrialState.COMPLETE, value=0.1)
    study.optimize(lambda t: 1.0, n_trials=3)
    assert _view(study.trials) == _truth(study.storage, study._study_id)
    storage = study.storage
    sid = study._study_id
    real, ran = Cursor.all, []
    monkeypatch.setattr(Cursor, "all", lambda cur, name, args: ran.append(name) or real(cur, name, args))
    fresh = storage.get_trials_since(sid, 2 * many, also=range(1, 2 * many, 2))
    assert [t.number for t in fresh] == [*range(1, 2 * many, 2), *range(2 * many, 2 * many + 3)]
    # PostgreSQL: one statement, the numbers as one array (as 512 bind values psycopg parsed it at each run)
    assert ran == (["since_512", "since_64"] if shared_storage_url.startswith("sqlite") else ["since_any"])
    monkeypatch.undo()
    assert [t.number for t in storage.get_trials_since(sid, 10**6, also=[5, 3, 10**5])] == [3, 5]


def test_a_huge_number_written_by_hand_does_not_stall_a_decision(sqlite_url: str) -> None:
    """A decision's read notes the numbers it skipped (the queue); a row renumbered by hand far past
    the rest is no queue: the read goes on, and the queued trials before it are still seen."""
    pruner = Seeing()
    study = ts.Study(SPACE, sampler="random", seed=0, storage=sqlite_url, name="s", pruner=pruner)
    probe = study.ask()
    study.enqueue({"x": 0.5})
    study.add_trial({"x": 0.25}, 0.25)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE ts_trials SET number = 4000000000000 WHERE number = 2"))
    engine.dispose()
    probe.report(0.5, 1)
    probe.should_prune()
    assert [n for n, _, _ in pruner.seen] == [0, 4_000_000_000_000]
    study.tell(study.ask(), 0.75)  # runs the queued trial 1
    probe.report(0.5, 2)
    probe.should_prune()
    assert [(n, s) for n, s, _ in pruner.seen] == [(0, TrialState.RUNNING), (1, TrialState.COMPLETE),
                                                    (4_000_000_000_000, TrialState.COMPLETE)]


def test_an_unchanged_unfinished_trial_is_not_decoded_again_and_a_changed_one_is(shared_storage_url: str) -> None:
    """Each refresh reads the unfinished trials again; one whose row is the same as last read
    (a paused trial) is the trial decoded then, one that changed (a heartbeat, a report, the sign
    of a zero, which PostgreSQL keeps) is decoded anew."""
    study = ts.Study(SPACE, sampler="random", seed=0, storage=shared_storage_url, name="s")
    storage, sid = study.storage, study._study_id
    paused = study.ask()
    paused.report(0.5, 1)
    _write(storage, sid, paused.number, TrialState.PAUSED, value=0.0)
    running = study.ask()
    study.optimize(lambda t: t.params["x"], n_trials=3)
    first = study.trials
    again = study.trials
    assert again[0] is first[0] and again[1] is first[1]  # unchanged: not decoded again
    storage.heartbeat(sid, [running.number], 5.0)
    _write(storage, sid, paused.number, TrialState.PAUSED, value=-0.0)
    third = study.trials
    assert third[1] is not first[1] and third[1].heartbeat == 5.0
    stored = storage.get_trial(sid, paused.number).value
    assert third[0].value == 0.0 and stored is not None
    assert math.copysign(1.0, third[0].value) == math.copysign(1.0, stored)  # -0.0 on PostgreSQL
    running.report(0.25, 1)
    _write(storage, sid, paused.number, TrialState.COMPLETE, value=0.125)
    fourth = study.trials
    assert fourth[1].intermediate == {1: 0.25} and (fourth[0].state, fourth[0].value) == (TrialState.COMPLETE, 0.125)
    assert _view(fourth) == _truth(storage, sid)


class HidingOdd:
    """A user's storage that filters in ``get_trials`` alone: the trials numbered odd are not shown."""

    def get_trials(self, study_id: int, **kw: Any) -> list[FrozenTrial]:
        return [t for t in super().get_trials(study_id, **kw) if t.number % 2 == 0]  # type: ignore[misc]


class HidingOddMemory(HidingOdd, MemoryStorage):
    pass


class HidingOddSQL(HidingOdd, SQLStorage):
    pass


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_storage_overriding_only_get_trials_is_read_through_it_by_a_refresh(kind: str, sqlite_url: str) -> None:
    """Before: a subclass of a SQL or memory storage that filtered (or counted) in ``get_trials`` was passed
    over: a study's refresh reads ``get_trials_since``, which read the tables itself. One that overrides
    both (``Counting`` above) keeps its own ``get_trials_since``."""
    storage = HidingOddMemory() if kind == "memory" else HidingOddSQL(sqlite_url)
    study = ts.Study(SPACE, sampler="random", seed=0, storage=storage, name="s")
    for i in range(5):
        study.add_trial({"x": i / 10}, i / 10)
    assert [t.number for t in study.trials] == [0, 2, 4]
    running = study.ask()  # number 5: hidden, as the user's get_trials hides it
    study.add_trial({"x": 0.6}, 0.6)
    assert [t.number for t in study.trials] == [0, 2, 4, 6] and running.number == 5
    assert [t.number for t in storage.get_trials_since(study._study_id, 3, also=[0, 1])] == [0, 4, 6]
    if kind == "sqlite":  # the same tables, read by a plain storage: each trial asked for
        plain = SQLStorage(sqlite_url).get_trials_since(study._study_id, 3, also=[0, 1])
        assert [t.number for t in plain] == [0, 1, 3, 4, 5, 6]
