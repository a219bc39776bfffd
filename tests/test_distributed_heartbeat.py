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


#: the first call: its optimize(n_trials=2) runs trial 0, then stops (SIGSTOP) as it runs trial 1, beating no more
_STOPPED_CALL = """
import os, signal, sys
import tunesmith as ts
study = ts.Study({"x": ts.Float(0, 1)}, storage=sys.argv[1], name="s", sampler="random", seed=0,
                 heartbeat_interval=1, grace_period=2)
def objective(trial):
    if trial.number == 1:
        os.kill(os.getpid(), signal.SIGSTOP)
    return 0.5
study.optimize(objective, n_trials=2)
"""


@pytest.mark.parametrize("executor", ["inline", "thread", "process"])
def test_a_copy_of_a_trial_an_earlier_call_lost_is_not_one_of_the_next_call_s_n_trials(
    executor: str, shared_storage_url: str, subprocess_env: dict[str, str]
) -> None:
    """A trial judged lost by its heartbeat is run again by the next call as a copy. That call must still run
    n_trials trials of its own (the copy counted where the lost run took its unit), and the lost call, once it
    goes on, gives back no unit for a run another call made good (it ran 2 trials, its lost one counted)."""
    import contextlib
    import signal
    import subprocess

    from tunesmith.exceptions import StudyNotFound

    first = subprocess.Popen([sys.executable, "-c", _STOPPED_CALL, shared_storage_url], env=subprocess_env)
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and first.poll() is None:
            with contextlib.suppress(StudyNotFound):
                trials = Study.load("s", shared_storage_url).trials
                if len(trials) == 2 and trials[1].state is TrialState.RUNNING:
                    break
            time.sleep(0.1)
        time.sleep(3)  # past the grace period
        study = Study(SPACE, storage=shared_storage_url, name="s", sampler="random", seed=1, heartbeat_interval=1,
                      grace_period=2, requeue_failed=True)
        study.optimize(lambda t: 0.25, n_trials=3, n_jobs=1 if executor == "inline" else 2,
                       executor=None if executor == "inline" else executor)
        first.send_signal(signal.SIGCONT)
        assert first.wait(60) == 0
    finally:
        first.kill()
        first.wait()
    trials = Study.load("s", shared_storage_url).trials
    seen = [(t.number, t.state.value, t.value, t.system.retry_of, t.system.requeued_as) for t in trials]
    lost = trials[1]
    assert lost.state is TrialState.FAILED and lost.system.requeued_as is not None, seen
    copy = trials[lost.system.requeued_as]
    assert copy.state is TrialState.COMPLETE and copy.value == 0.25, seen
    assert sum(t.value == 0.25 and t.system.retry_of is None for t in trials) == 3, seen  # the second call's own
    assert [t.number for t in trials if t.value == 0.5] == [0], seen  # the first: trial 0, and its lost trial 1
    assert copy.system.free, seen


def _lost_with_copy(study: Study) -> Any:
    """A new trial asked, then failed as lost and re-queued (as the heartbeat check does): its failed record."""
    trial = study.ask()
    study._heartbeat.finished(trial.number)
    failed = study.fail_trial(trial.number, "worker lost: no heartbeat for 25 s (test)", requeue=True)
    assert failed is not None and failed.system.unit_back
    return failed


def test_the_lost_run_s_refund_and_its_copy_s_free_run_are_one_compare_and_set(storage_url: str | None) -> None:
    """Exactly one of the two counts a lost new trial: its call's refund, or a call that runs its copy free;
    asked again, each says the same; a race of the two (threads, their own connections) gives one each time."""
    import threading

    study = Study(SPACE, storage=storage_url, name="cas", sampler="random", seed=0)
    failed = _lost_with_copy(study)
    assert study.refunds(failed) and study.refunds(failed)  # the lost run's call first: the copy counts where it runs
    copy = study.ask()
    assert copy.number == failed.system.requeued_as and not copy.record.system.free
    assert study.refunds(failed)
    study.tell(copy, 1.0)

    failed = _lost_with_copy(study)
    copy = study.ask()  # another call first: it runs the copy free, and the lost run stays counted
    assert copy.number == failed.system.requeued_as and copy.record.system.free
    assert not study.refunds(failed) and not study.refunds(failed)
    study.tell(copy, 1.0)

    other = study if storage_url is None else Study.load("cas", storage_url)
    for _ in range(20):
        failed = _lost_with_copy(study)
        gate, out = threading.Barrier(2), {}

        def refund(failed: Any = failed, gate: threading.Barrier = gate, out: dict[str, Any] = out) -> None:
            gate.wait()
            out["refunded"] = study.refunds(failed)

        def run_copy(gate: threading.Barrier = gate, out: dict[str, Any] = out) -> None:
            gate.wait()
            out["copy"] = other.ask_waiting()

        threads = [threading.Thread(target=refund), threading.Thread(target=run_copy)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert out["copy"] is not None and out["copy"].number == failed.system.requeued_as
        assert out["refunded"] != out["copy"].record.system.free, out
        assert study.refunds(failed) == out["refunded"]
        other.tell(out["copy"], 1.0)


def test_a_copy_an_older_tunesmith_made_counts_where_it_runs_and_its_lost_run_is_refunded(tmp_path: Path) -> None:
    """An older tunesmith wrote no ``unit`` (a study file it made opens as before): its copy of a lost trial counts
    in the call that runs it and the lost run's call gets its unit back, as then; a ``unit`` no tunesmith writes
    is refused by name."""
    from tunesmith.trial import SystemState

    url = f"sqlite:///{tmp_path / 'old.db'}"
    study = Study(SPACE, storage=url, name="old", sampler="random", seed=0)
    failed = _lost_with_copy(study)
    st = study.storage
    made = st.get_trial(study._study_id, failed.system.requeued_as)
    assert made.system.unit == "open"
    old = made.replace(system=SystemState(retry_of=failed.number))  # as an older tunesmith queued it
    assert st.update_trial(study._study_id, old, expect_state=TrialState.WAITING)
    assert Study.load("old", url).trials[old.number].system == SystemState(retry_of=failed.number)
    assert study.refunds(failed)
    copy = study.ask()
    assert copy.number == old.number and not copy.record.system.free
    with pytest.raises(ValueError, match="'unit' must be one of .*'free'.*got 'gratis'"):
        SystemState.from_dict({"retry_of": 1, "unit": "gratis"})


# a run of two worker processes whose trials hang once started (each leaves a file), killed whole by the test
_KILLED_WHOLE = """
import os, sys, time
import tunesmith as ts

def hangs(trial):
    open(os.path.join(sys.argv[2], str(trial.number)), "w").close()
    time.sleep(600)
    return 0.0

study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0, storage=sys.argv[1], name="h",
                 heartbeat_interval=0.2, grace_period=60, requeue_failed=True)
if sys.argv[2] == "again":  # the run started again: its trials end at once
    study.optimize(lambda trial: trial.params["x"], n_trials=2)
else:
    study.optimize(hangs, n_trials=4, n_jobs=2)
"""


def test_a_run_killed_whole_and_started_again_at_once_takes_its_trials_back(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """A run SIGKILLed with its worker processes (the OOM killer, a killed job) and started again within its
    grace left both trials ``running`` through the whole next run, which said nothing of them (a grid's run
    then said "every configuration has been tried" without them); they were failed only by a run going a
    grace (60 s) after their last beat. Their processes of this machine no longer run and beat last before
    this process started: they are lost now, and their copies run in this call, free of its n_trials (the killed
    call counted the lost runs and never refunds them): 2 new trials of its own besides."""
    import signal
    import subprocess

    url, marks = f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "started"
    marks.mkdir()
    (tmp_path / "run.py").write_text(_KILLED_WHOLE)
    run = subprocess.Popen([sys.executable, str(tmp_path / "run.py"), url, str(marks)], env=subprocess_env,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(os.listdir(marks)) < 2 and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.02)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert sorted(os.listdir(marks)) == ["0", "1"]
    time.sleep(0.5)  # past two beats; the grace (60 s) is far off
    again = subprocess.run([sys.executable, str(tmp_path / "run.py"), url, "again"], env=subprocess_env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    trials = Study.load("h", url).trials
    seen = [(t.number, t.state.value, t.system) for t in trials]
    assert [t.state for t in trials] == [TrialState.FAILED] * 2 + [TrialState.COMPLETE] * 4, seen
    assert [t.system.requeued_as for t in trials[:2]] == [2, 3]
    assert [t.params for t in trials[2:4]] == [t.params for t in trials[:2]]
    assert [t.system.unit for t in trials[2:]] == ["free", "free", None, None], seen
    assert "no longer runs" in (trials[0].error or "")
    assert "(its process no longer runs); re-queued as trial" in again.stderr


def test_a_beating_trial_of_a_process_of_this_machine_that_no_longer_runs_is_left_to_the_grace(
    tmp_path: Path,
) -> None:
    """The host name and pid a trial names may be another machine's of the same name (containers sharing
    their host's): a trial still beating, or one whose last beat came after the study was opened here (a
    sibling worker that died now: its parent holds or fails that trial), is left to the grace."""
    import socket
    import subprocess

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    study = Study(SPACE, storage=f"sqlite:///{tmp_path / 'h.db'}", name="h", sampler="random",
                  heartbeat_interval=0.2, grace_period=60)
    st, sid, opened = study._storage, study._study_id, study._heartbeat.opened
    rec = st.create_trial(sid, params={"x": 0.5}, worker=f"{socket.gethostname()}:{gone.pid}")
    assert rec is not None
    for beat, state in ((st.clock(), TrialState.RUNNING), (opened + 0.1, TrialState.RUNNING),
                        (opened - 1.0, TrialState.FAILED)):
        st.heartbeat(sid, [rec.number], beat)
        study._heartbeat.reap(force=True)
        assert study.trials[rec.number].state is state, beat

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


def _state_letter(pid: int) -> str:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rpartition(b")")[2].split()[0].decode()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc")
def test_a_trial_whose_worker_is_a_zombie_of_this_machine_is_taken_back_at_once(tmp_path: Path) -> None:
    """A run killed whole under a parent that never waits for its workers (a Python program as a container's
    pid 1 adopts them) leaves them zombies: ended, their pids still there. The rule took a zombie for a live
    worker and left its trial ``running`` for the whole grace (60 s); now it is failed at once."""
    import socket
    import subprocess

    dead = subprocess.Popen([sys.executable, "-c", "pass"])  # not waited for: a zombie once it exits
    try:
        deadline = time.monotonic() + 30
        while _state_letter(dead.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _state_letter(dead.pid) == "Z"
        study = Study(SPACE, storage=f"sqlite:///{tmp_path / 'h.db'}", name="h", sampler="random",
                      heartbeat_interval=0.2, grace_period=60)
        st, sid = study._storage, study._study_id
        rec = st.create_trial(sid, params={"x": 0.5}, worker=f"{socket.gethostname()}:{dead.pid}")
        assert rec is not None
        st.heartbeat(sid, [rec.number], study._heartbeat.opened - 1.0)
        study._heartbeat.reap(force=True)
        assert study.trials[rec.number].state is TrialState.FAILED
        assert f"its process {dead.pid} of this machine no longer runs" in (study.trials[rec.number].error or "")
    finally:
        dead.wait()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc")
def test_a_trial_whose_worker_s_pid_went_to_a_later_process_is_taken_back_at_once(tmp_path: Path) -> None:
    """A container restarted after its run was killed whole gives the new run the same pids (a new pid
    namespace, the same host name), so the killed worker's pid may be a process again: the rule took it for
    the worker, alive, and left its trial ``running`` for the grace. A process of that pid started after the
    trial's last beat is not its worker; one started before it (the worker itself) is left to the grace."""
    import socket
    import subprocess

    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        url = f"sqlite:///{tmp_path / 'h.db'}"
        study = Study(SPACE, storage=url, name="h", sampler="random", heartbeat_interval=0.2, grace_period=60)
        st, sid = study._storage, study._study_id
        rec = st.create_trial(sid, params={"x": 0.5}, worker=f"{socket.gethostname()}:{later.pid}")
        assert rec is not None
        st.heartbeat(sid, [rec.number], st.clock())  # after the process started: it may be the worker
        time.sleep(0.5)  # past two beats
        again = Study.load("h", url)  # opened after the beat
        again._heartbeat.reap(force=True)
        assert again.trials[rec.number].state is TrialState.RUNNING
        st.heartbeat(sid, [rec.number], st.clock() - 30.0)  # before the process started: a later one's pid
        again._heartbeat.reap(force=True)
        assert again.trials[rec.number].state is TrialState.FAILED
        assert "no longer runs" in (again.trials[rec.number].error or "")
    finally:
        later.kill()
        later.wait()
