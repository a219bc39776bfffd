"""Storage operations that distributed workers rely on, on memory, SQLite and a real PostgreSQL.

Failing lost workers' trials (the lifecycle's compare-and-set writes), idempotent
retries (token), retries across a server restart, and atomicity of re-queueing
under concurrent reapers.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_storage_perf_paths import _lose_connection_after_commit

from tunesmith import MemoryStorage, SQLStorage, Storage, TrialState
from tunesmith.storage.sql import trials_table
from tunesmith.study.lifecycle import claim_waiting, fail_lost
from tunesmith.trial import Direction, FrozenTrial, SystemState


def fail_running(
    st: Storage, sid: int, *, error: str, now: float, stale_before: float | None = None,
    worker: str | None = None, requeue: bool = False,
) -> list[FrozenTrial]:
    """What a reaper does: fail the running trials that are stale and/or of ``worker``."""
    lost = [
        t for t in st.get_trials(sid, state=TrialState.RUNNING)
        if (stale_before is None or (t.heartbeat or 0.0) < stale_before) and worker in (None, t.worker)
    ]  # fmt: skip
    return fail_lost(st, sid, lost, error=error, now=now, requeue=requeue, dead=False)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "memory":
        return MemoryStorage()
    if request.param == "sqlite":
        return SQLStorage(f"sqlite:///{tmp_path / 'study.db'}")
    return SQLStorage(request.getfixturevalue("pg_url"))


def _study(st: Storage) -> int:
    return st.create_study("s", direction=Direction.MINIMIZE, space={}, config={}).study_id


def _sql_storage(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> SQLStorage:
    return SQLStorage(f"sqlite:///{tmp_path / 'db.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url"))


def test_fail_running_stale_fails_and_requeues_keeping_reports(storage: Storage) -> None:
    sid = _study(storage)
    old = storage.create_trial(sid, params={"x": 1}, worker="h:1", now=100.0)
    live = storage.create_trial(sid, params={"x": 2}, worker="h:2", now=100.0)
    assert old is not None and live is not None
    storage.update_trial(sid, old.replace(intermediate={0: 0.5, 1: 0.25}))
    storage.heartbeat(sid, [live.number], now=200.0)
    lost = fail_running(storage, sid, error="lost", now=210.0, stale_before=150.0, requeue=True)
    assert [t.number for t in lost] == [old.number]
    trials = storage.get_trials(sid)
    failed, alive, copy = trials
    assert failed.state is TrialState.FAILED and failed.error == "lost"
    assert failed.intermediate == {0: 0.5, 1: 0.25}
    assert failed.attrs == {} and failed.system == SystemState(requeued_as=copy.number)
    assert alive.state is TrialState.RUNNING
    assert copy.state is TrialState.WAITING and copy.params == {"x": 1} and copy.system == SystemState(retry_of=0, unit="open")
    # the copy is popped like any queued trial; the failed record never changes again
    popped = claim_waiting(storage, sid, "h:3", lambda: 220.0)
    assert popped is not None and popped.number == copy.number and popped.state is TrialState.RUNNING
    assert fail_running(storage, sid, error="again", now=230.0, stale_before=150.0, requeue=True) == []


def test_fail_running_by_worker(storage: Storage) -> None:
    sid = _study(storage)
    for w in ("h:1", "h:2", "h:1"):
        storage.create_trial(sid, params={}, worker=w, now=time.time())
    lost = fail_running(storage, sid, error="died", now=time.time(), worker="h:1")
    assert sorted(t.number for t in lost) == [0, 2]
    states = [t.state for t in storage.get_trials(sid)]
    assert states == [TrialState.FAILED, TrialState.RUNNING, TrialState.FAILED]


def test_concurrent_reapers_requeue_once(storage: Storage) -> None:
    sid = _study(storage)
    for i in range(5):
        storage.create_trial(sid, params={"i": i}, worker="dead:1", now=1.0)
    barrier = threading.Barrier(6)
    results: list[int] = []

    def reap() -> None:
        barrier.wait()
        results.append(len(fail_running(storage, sid, error="lost", now=10.0, stale_before=5.0, requeue=True)))

    threads = [threading.Thread(target=reap) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 5
    trials = storage.get_trials(sid)
    assert len(trials) == 10
    copies = [t for t in trials if t.state is TrialState.WAITING]
    assert sorted(t.system.retry_of for t in copies) == [0, 1, 2, 3, 4]  # type: ignore[type-var]
    assert sorted(t.system.requeued_as for t in trials[:5]) == [t.number for t in copies]  # type: ignore[type-var]


def test_a_reaper_that_died_after_requeueing_leaves_one_copy(storage: Storage) -> None:
    """A reaper killed between creating the copy and failing the trial: the next finds that copy."""
    sid = _study(storage)
    lost = storage.create_trial(sid, params={"i": 1}, worker="dead:1", now=1.0)
    assert lost is not None
    first = storage.create_trial(sid, params={"i": 1}, state=TrialState.WAITING, claim="retry-of:0",
                                 system=SystemState(retry_of=0))  # what the dead reaper had done
    assert first is not None
    failed = fail_running(storage, sid, error="lost", now=10.0, stale_before=5.0, requeue=True)
    assert [t.system.requeued_as for t in failed] == [first.number]
    assert len(storage.get_trials(sid)) == 2


def test_a_trial_that_ends_while_being_requeued_gets_no_copy(storage: Storage) -> None:
    """The worker was alive after all and finished the trial before the reaper failed it: the copy and
    the failure are one write (a copy was queued, then cancelled as "not needed")."""
    sid = _study(storage)
    rec = storage.create_trial(sid, params={"i": 1}, worker="slow:1", now=1.0)
    assert rec is not None
    storage.update_trial(sid, rec.replace(state=TrialState.COMPLETE, value=1.0, completed=2.0))
    assert fail_lost(storage, sid, [rec], error="lost", now=10.0, requeue=True, dead=False) == []
    assert [t.state for t in storage.get_trials(sid)] == [TrialState.COMPLETE]


def test_create_trial_attrs(storage: Storage) -> None:
    sid = _study(storage)
    rec = storage.create_trial(sid, params={"x": 1}, state=TrialState.WAITING, attrs={"retry_of": 7})
    assert rec is not None and storage.get_trials(sid)[0].attrs == {"retry_of": 7}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_retry_after_committed_write_writes_nothing_twice(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = _sql_storage(backend, tmp_path, request)
    sid = _study(st)
    st.create_trial(sid, params={"q": 1}, state=TrialState.WAITING)
    left = _lose_connection_after_commit(monkeypatch, 1)
    rec = st.create_trial(sid, params={"x": 1}, worker="w:1")
    assert left[0] == 0 and rec is not None and rec.number == 1
    _lose_connection_after_commit(monkeypatch, 1)
    popped = claim_waiting(st, sid, "w:1", time.time)
    assert popped is not None and popped.number == 0
    _lose_connection_after_commit(monkeypatch, 1)
    st.update_trial(sid, rec.replace(state=TrialState.COMPLETE, value=1.0, completed=time.time()))
    trials = st.get_trials(sid)
    assert [(t.number, t.state) for t in trials] == [(0, TrialState.RUNNING), (1, TrialState.COMPLETE)]
    with st.engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(trials_table)).scalar_one() == 2


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_lost_trial_s_failure_committed_as_its_connection_broke_is_returned_though_the_retry_judges_otherwise(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the heartbeat check's confirm() asks the storage's outages, and the retry after a lost connection is
    # one (this thread's wait under way): the retry took the committed failure and copy for a trial left
    # running and returned None, so the check neither counted nor reported the trial it had failed
    from tunesmith.study.lifecycle import lose

    st = _sql_storage(backend, tmp_path, request)
    sid = _study(st)
    read = st.create_trial(sid, params={"x": 1}, worker="w:1", now=100.0)
    assert read is not None
    left = _lose_connection_after_commit(monkeypatch, 1)
    written = st.fail_with_copy(sid, lose(read, "lost", 300.0), claim="retry-of:0",
                                confirm=lambda: not st.outages())  # fmt: skip
    assert left == [0] and written is not None and written.system.requeued_as == 1
    assert [(t.number, t.state) for t in st.get_trials(sid)] == [(0, TrialState.FAILED), (1, TrialState.WAITING)]
    assert st.get_trial(sid, 0) == written


def test_the_heartbeat_check_s_judgement_in_its_write_asks_the_server_clock_on_no_second_connection(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # confirm() asks outages() inside the write's transaction, the study row locked: with the server clock's
    # measure due (every CLOCK_CHECK s), outages() measured it again with a query on a second connection
    from tunesmith.storage import prepared
    from tunesmith.storage import sql as sql_module
    from tunesmith.study.lifecycle import lose

    st = SQLStorage(pg_url)
    sid = _study(st)
    read = st.create_trial(sid, params={"x": 1}, worker="w:1", now=100.0)
    assert read is not None
    st.clock()
    assert st._offset is not None
    st._offset = (st._offset[0], time.monotonic() - 2 * sql_module.CLOCK_CHECK)  # a measure due
    real, left = prepared.run_transaction, [1]

    def broken_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        if left[0] > 0:  # the first attempt's connection lost before it ran: the retry's wait is under way
            left[0] -= 1
            raise sa.exc.OperationalError("BEGIN", {}, Exception("server closed the connection unexpectedly"))
        return real(*args, **kwargs)

    monkeypatch.setattr(sql_module, "run_transaction", broken_once)
    asked: list[str] = []
    sa.event.listen(st.engine, "before_cursor_execute", lambda *a: asked.append(a[2]))
    seen: list[list[tuple[float, float]]] = []
    written = st.fail_with_copy(sid, lose(read, "lost", 300.0), claim="retry-of:0",
                                confirm=lambda: seen.append(st.outages()) is None)  # fmt: skip
    assert written is not None and left == [0] and len(seen) == 1 and len(seen[0]) == 1
    assert not [q for q in asked if "clock_timestamp" in q], asked
    (last, again), now = seen[0][0], st.clock()
    assert last <= again <= now


def test_postgres_restart_is_retried(pg_server, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    st = SQLStorage(pg_url)
    sid = _study(st)
    st.create_trial(sid, params={"x": 0}, worker="w:1")
    pg_server.stop()
    done: list[object] = []
    t = threading.Thread(target=lambda: done.append(st.create_trial(sid, params={"x": 1}, worker="w:1")))
    t.start()
    time.sleep(1.0)  # the write is retrying against a stopped server
    assert not done
    pg_server.start()
    t.join(30)
    assert done and done[0] is not None
    assert [tr.number for tr in st.get_trials(sid)] == [0, 1]
