"""Heartbeats through the Study: settings, live trials kept, lost ones failed and re-queued."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tunesmith import Float, Study, TrialState
from tunesmith.study.heartbeat import HeartbeatConfig

SPACE = {"x": Float(0, 1)}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"heartbeat_interval": 0}, "heartbeat_interval"),
        ({"heartbeat_interval": 1, "grace_period": 1}, "longer than"),
        ({"grace_period": 5}, "need heartbeats"),
        ({"requeue_failed": True}, "need heartbeats"),
        ({"heartbeat_interval": "1"}, "heartbeat_interval"),
    ],
)
def test_bad_heartbeat_settings(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Study(SPACE, **kwargs)


def test_settings_are_stored_and_used_by_later_workers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    Study(SPACE, storage=url, name="h", heartbeat_interval=2, requeue_failed=True)
    later = Study.load("h", url)
    assert later.heartbeat_config == HeartbeatConfig(2.0, 10.0, True)
    own = Study.load("h", url, heartbeat_interval=1, grace_period=30)
    assert own.heartbeat_config == HeartbeatConfig(1.0, 30.0, False)


def test_a_study_created_without_heartbeats_is_said_once_per_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A script passing heartbeat_interval to a study created without heartbeats was told so, with
    the same lines, at each open of the study (each run of a loop, each worker thread's study): once
    is enough. Another study of the same name elsewhere, or another study, is told its own."""
    for where in ("a", "b"):
        Study(SPACE, storage=f"sqlite:///{tmp_path / where}.db", name="s")
    told = "created without heartbeats"
    with caplog.at_level("WARNING", logger="tunesmith"):
        for _ in range(3):
            Study.load("s", f"sqlite:///{tmp_path / 'a'}.db", heartbeat_interval=1)
        assert caplog.text.count(told) == 1
        assert "pass heartbeat_interval to every worker of it" in caplog.text
        Study.load("s", f"sqlite:///{tmp_path / 'b'}.db", heartbeat_interval=1)
        assert caplog.text.count(told) == 2
        memory = [Study(SPACE, name="s") for _ in range(2)]
        for study in memory:  # each an in-memory storage of its own
            Study.load("s", study._storage, heartbeat_interval=1)
        assert caplog.text.count(told) == 4
    Study(SPACE, storage=f"sqlite:///{tmp_path / 'c'}.db", name="s", heartbeat_interval=3, grace_period=15)
    stored = "is stored with heartbeat_interval=3, grace_period=15"
    with caplog.at_level("WARNING", logger="tunesmith"):
        for _ in range(3):  # the same other settings asked again: said once
            Study.load("s", f"sqlite:///{tmp_path / 'c'}.db", heartbeat_interval=1, grace_period=2)
        assert caplog.text.count(stored) == 1 and "(said once per process)" in caplog.text
        Study.load("s", f"sqlite:///{tmp_path / 'c'}.db", heartbeat_interval=0.5, grace_period=2)
        assert caplog.text.count(stored) == 2  # other settings asked: said again


def test_a_new_storage_at_a_freed_storage_s_address_is_told_its_own(caplog: pytest.LogCaptureFixture) -> None:
    """Before: storages without a URL were told apart by id(): a new one at the address of one freed (CPython
    reuses it at once) was taken for it, and the warning its study was due was kept at debug."""
    import gc
    import weakref

    from tunesmith.storage import MemoryStorage

    told = "created without heartbeats"
    with caplog.at_level("WARNING", logger="tunesmith"):
        first = MemoryStorage()
        Study(SPACE, storage=first, name="s")
        Study.load("s", first, heartbeat_interval=1)
        address, gone = id(first), weakref.ref(first)
        del first
        gc.collect()
        assert gone() is None  # freed: its address may be reused
        held = []  # each kept (made, not yet set up), so the next one takes another address
        while len(held) < 200_000 and (not held or id(held[-1]) != address):
            held.append(MemoryStorage.__new__(MemoryStorage))
        if id(held[-1]) != address:
            pytest.skip("no new storage took the freed one's address")
        held[-1].__init__()  # type: ignore[misc]
        Study(SPACE, storage=held[-1], name="s")
        Study.load("s", held[-1], heartbeat_interval=1)
        assert caplog.text.count(told) == 2


def test_a_worker_with_a_shorter_grace_never_fails_another_workers_live_trial(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Worker A opened the study with the stored settings (beats every 3 s, grace 15 s); worker B
    passed its own (0.5 s, grace 1 s). B judged A's live trial lost between two of A's beats and
    failed it (A's result was then thrown away); now B waits as long as the study's grace."""
    url = f"sqlite:///{tmp_path / 'h.db'}"
    a = Study(SPACE, storage=url, name="h", sampler="random", heartbeat_interval=3, grace_period=15)
    live = a.ask()  # beats every 3 s
    b = Study.load("h", url, heartbeat_interval=0.5, grace_period=1)
    assert "stored with heartbeat_interval=3, grace_period=15" in caplog.text
    assert b.heartbeat_config == HeartbeatConfig(0.5, 15.0, False)
    time.sleep(1.5)
    b._heartbeat.reap(force=True)
    assert b.trials[live.number].state is TrialState.RUNNING
    a.tell(live, 1.0)
    assert b.trials[live.number].state is TrialState.COMPLETE
    # and a worker that beats less often than the study's grace beats as often as the study asks
    slow = Study.load("h", url, heartbeat_interval=20, grace_period=100)
    assert slow.heartbeat_config == HeartbeatConfig(3.0, 100.0, False)


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_a_beating_trial_outlives_the_grace_a_silent_one_does_not(storage: str, tmp_path: Path) -> None:
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 'h.db'}"
    study = Study(SPACE, storage=url, name="h", sampler="random", heartbeat_interval=0.1, grace_period=0.4)
    long = study.ask()  # beats in the background while "running"
    silent = study.ask()
    study._heartbeat.finished(silent.number)  # its worker stops beating: as if killed
    time.sleep(1.0)
    third = study.ask()  # asking reaps lost trials
    states = {t.number: t.state for t in study.trials}
    assert states[long.number] is TrialState.RUNNING
    assert states[silent.number] is TrialState.FAILED
    assert states[third.number] is TrialState.RUNNING
    study.tell(long, 1.0)
    assert study.trials[long.number].state is TrialState.COMPLETE
    study.tell(third, 2.0)  # else its beat (every 0.1 s) went on for the rest of the test run, warning once
    beat = study._heartbeat._thread  # tmp_path was deleted, in the tests that came after
    assert beat is not None
    beat.join(5.0)
    assert not beat.is_alive()


def test_a_worker_that_comes_back_after_being_judged_lost_cannot_overwrite(tmp_path: Path) -> None:
    study = Study(SPACE, storage=f"sqlite:///{tmp_path / 'h.db'}", name="h", sampler="random",
                  heartbeat_interval=0.05, grace_period=0.2)
    t = study.ask()
    study._heartbeat.finished(t.number)
    time.sleep(0.4)
    study._heartbeat.reap(force=True)
    from tunesmith import TrialFinishedError

    with pytest.raises(TrialFinishedError):
        study.tell(t, 0.5)
    # and optimize carries on past such a trial
    study.optimize(lambda tr: tr.params["x"], n_trials=3)
    assert sum(x.state is TrialState.COMPLETE for x in study.trials) == 3


def test_heartbeat_thread_stops_when_idle() -> None:
    study = Study(SPACE, heartbeat_interval=0.05)
    study.optimize(lambda tr: tr.params["x"], n_trials=2)
    beat = study._heartbeat._thread
    if beat is not None:  # it ends at its next beat (0.05 s; longer on a loaded machine), not a thread left for good
        beat.join(10.0)
        assert not beat.is_alive()


def _open_and_exit(url: str) -> None:
    assert Study.load("beating", url).trials  # opens the file and reads
    os._exit(0)


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_forking_while_a_heartbeat_writes_never_hangs_the_child(tmp_path: Path) -> None:
    # The heartbeat thread writes every millisecond; a fork in the middle of a write
    # used to leave the child blocked on a lock of the database library
    # (about 1 fork in 10 hung before the fix).
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = Study({"x": Float(0, 1)}, storage=url, name="beating", heartbeat_interval=0.001)
    trial = study.ask()
    time.sleep(0.05)
    codes = []
    for _ in range(100):
        p = mp.get_context("fork").Process(target=_open_and_exit, args=(url,))
        p.start()
        p.join(10)
        if p.exitcode is None:  # hung
            p.kill()
            p.join()
        codes.append(p.exitcode)
    study.tell(trial, 0.0)
    assert codes == [0] * 100


@pytest.mark.parametrize("skewed", ["worker", "reaper"])
@pytest.mark.parametrize("skew", [-120.0, 120.0], ids=["behind", "ahead"])
def test_heartbeats_on_postgresql_use_the_servers_clock(pg_url: str, skewed: str, skew: float) -> None:
    """Two workers on one PostgreSQL study whose machines' clocks are 2 minutes apart
    (one storage's local clock skewed, the server untouched): a beating trial is never
    failed as lost, a silent one is failed once its grace has passed."""
    worker = Study(SPACE, storage=pg_url, name="c", sampler="random", heartbeat_interval=0.2, grace_period=1.0)
    reaper = Study.load("c", pg_url)
    real = time.time
    (worker if skewed == "worker" else reaper)._storage.local_clock = lambda: real() + skew
    live = worker.ask()  # beats in the background
    dead = worker.ask()
    worker._heartbeat.finished(dead.number)  # its worker stops beating: as if killed
    time.sleep(2.0)
    reaper._heartbeat.reap(force=True)
    states = {t.number: t.state for t in reaper.trials}
    assert states[live.number] is TrialState.RUNNING
    assert states[dead.number] is TrialState.FAILED
    worker.tell(live, 1.0)
    # stamps are the server's too: a trial's start and end read right wherever it ran
    done = reaper.trials[live.number]
    assert done.started is not None and done.completed is not None and 1.5 < done.completed - done.started < 10


@pytest.mark.parametrize("stepped", ["worker", "reaper"])
@pytest.mark.parametrize("step", [-120.0, 120.0], ids=["back", "forward"])
def test_a_clock_stepped_between_two_measures_of_the_server_s_fails_no_live_trial(
    pg_url: str, stepped: str, step: float
) -> None:
    """One machine's clock stepped (NTP, a date set by hand, a resume from suspend) just after its storage
    measured the server's: the old lead shifted every beat it wrote, or every age it judged, by the step
    until the next measure (CLOCK_CHECK later), and a live trial read as lost in that time was failed."""
    worker = Study(SPACE, storage=pg_url, name="c", sampler="random", heartbeat_interval=0.2, grace_period=1.0)
    reaper = Study.load("c", pg_url)
    live = worker.ask()  # beats in the background
    reaper._heartbeat.reap(force=True)  # both storages have measured the server's clock
    real = time.time
    (worker if stepped == "worker" else reaper)._storage.local_clock = lambda: real() + step
    time.sleep(1.0)  # beats written after the step (within CLOCK_CHECK of the measures)
    reaper._heartbeat.reap(force=True)
    assert reaper.trials[live.number].state is TrialState.RUNNING, reaper.trials[live.number].error
    worker.tell(live, 1.0)
    assert reaper.trials[live.number].state is TrialState.COMPLETE


def test_a_clock_stepped_while_the_server_s_is_queried_does_not_shift_the_measure(pg_url: str) -> None:
    """The step lands between the measure's two readings of this process's clock (here: as the query is sent):
    the measure set the server's time against their middle, half the step off, until the next one."""
    import sqlalchemy as sa

    from tunesmith.storage import SQLStorage

    storage = SQLStorage(pg_url)
    real, step = time.time, [0.0]
    storage.local_clock = lambda: real() + step[0]

    def stepped(*_: object) -> None:
        step[0] = 120.0

    sa.event.listen(storage.engine, "before_cursor_execute", stepped)
    try:
        lead = storage.clock() - storage.local_clock()  # the first measure: stepped during its query
    finally:
        sa.event.remove(storage.engine, "before_cursor_execute", stepped)
    assert abs(lead + 120.0) < 1.0, lead  # the server's clock (this machine's) is 120 s behind the stepped one
    storage.close()


def test_a_lost_copy_is_failed_not_copied_again(tmp_path: Path) -> None:
    """Parameters that kill every worker that runs them (a crash in native code, the OOM killer):
    with requeue_failed each lost copy got a copy of its own, so a fleet of restarted workers
    lost one worker and one grace period per copy, forever. Now a copy is re-queued no more."""
    study = Study(SPACE, storage=f"sqlite:///{tmp_path / 'h.db'}", name="h", sampler="random",
                  heartbeat_interval=0.05, grace_period=0.2, requeue_failed=True)
    first = study.ask()
    study._heartbeat.finished(first.number)  # its worker dies
    time.sleep(0.4)
    study._heartbeat.reap(force=True)
    copy = study.trials[first.number].system.requeued_as
    assert copy is not None
    again = study.ask()  # the copy runs first, and kills its worker too
    assert again.number == copy
    study._heartbeat.finished(again.number)
    time.sleep(0.4)
    study._heartbeat.reap(force=True)
    lost = study.trials[copy]
    assert lost.state is TrialState.FAILED and lost.system.requeued_as is None
    assert [t.state for t in study.trials] == [TrialState.FAILED, TrialState.FAILED]


def test_a_worker_whose_trial_was_judged_lost_says_its_result_is_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker paused past the grace period (SIGSTOP, a swapping machine) comes back: its trial
    was failed and re-queued by another worker, and its result was dropped without a word."""
    from tunesmith.storage import worker_id

    study = Study(SPACE, storage=f"sqlite:///{tmp_path / 'h.db'}", name="h", sampler="random",
                  heartbeat_interval=5, requeue_failed=True)

    def judged_lost_once(trial: Any) -> float:
        if trial.number == 0:  # what another worker's heartbeat check does meanwhile
            trial.study.fail_worker(worker_id(), "worker lost: no heartbeat for 25 s (test)", requeue=True)
        return float(trial.params["x"])

    study.optimize(judged_lost_once, n_trials=2)
    assert ("trial 0 ended elsewhere while it ran here (worker lost: no heartbeat for 25 s (test); re-queued as "
            "trial 1): this run's result is not recorded") in caplog.text


def test_reap_lost_fails_only_running_trials_past_the_stored_grace(shared_storage_url: str) -> None:
    """``Study.reap_lost()`` (a reader that asks no trial: a stored comparison at its budget) fails a running
    trial with no heartbeat for the grace period and queues its copy, by the study's stored rule; a live worker's
    trial whose beat is merely late (within the grace), a paused trial and a study without heartbeats are left."""
    from tunesmith import load_study

    url = shared_storage_url
    study = Study({"x": Float(0, 1)}, storage=url, name="r", heartbeat_interval=1, grace_period=30,
                  requeue_failed=True)
    storage, sid = study.storage, study._study_id
    now = storage.clock()
    stale = storage.create_trial(sid, params={"x": 0.1}, worker="elsewhere:1", now=now - 3600)
    late = storage.create_trial(sid, params={"x": 0.2}, worker="elsewhere:2", now=now - 20)
    paused = storage.create_trial(sid, params={"x": 0.3}, state=TrialState.PAUSED, worker="elsewhere:3",
                                  now=now - 3600)
    assert stale is not None and late is not None and paused is not None
    reader = load_study("r", url)  # no heartbeat settings of its own: the stored ones
    assert [t.number for t in reader.reap_lost()] == [stale.number]
    assert reader.reap_lost() == []  # again at once: nothing more (the copy waits)
    assert [(t.state, t.system.requeued_as) for t in load_study("r", url).trials] == [
        (TrialState.FAILED, 3), (TrialState.RUNNING, None), (TrialState.PAUSED, None), (TrialState.WAITING, None)]
    plain = Study({"x": Float(0, 1)}, storage=url, name="plain")
    assert plain.storage.create_trial(plain._study_id, params={"x": 0.1}, now=now - 3600) is not None
    assert plain.reap_lost() == [] and plain.trials[0].state is TrialState.RUNNING
