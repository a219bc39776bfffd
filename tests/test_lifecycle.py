"""The trial lifecycle: its pure transitions, and the public study verbs executors use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import tunesmith as ts
from tunesmith.study import lifecycle
from tunesmith.trial import Direction, FrozenTrial, SystemState, TrialState

SPACE = {"x": ts.Float(0.0, 1.0)}


def running(**kw: object) -> FrozenTrial:
    base = {"number": 3, "state": TrialState.RUNNING, "params": {"x": 0.5}, "worker": "h:1", "started": 1.0,
            "heartbeat": 2.0, "intermediate": {0: 0.9, 1: 0.7}}
    return FrozenTrial(**{**base, **kw})  # type: ignore[arg-type]


def test_pause_and_resume_record_the_step_and_count() -> None:
    paused = lifecycle.pause(running())
    assert paused.state is TrialState.PAUSED and paused.value == 0.7 and paused.heartbeat is None
    again = lifecycle.resume(paused, "h:2", 5.0)
    assert again.state is TrialState.RUNNING and again.worker == "h:2" and again.value is None
    assert again.system == SystemState(resumed_step=1, n_resumes=1) and again.is_resumed
    assert lifecycle.resume(lifecycle.pause(again), "h:3", 6.0).system.n_resumes == 2


def test_hold_keeps_a_resumed_trial_s_promotion_a_few_times_only() -> None:
    resumed = running(attrs={"checkpoint": "c.pt"}, system=SystemState(resumed_step=0, n_resumes=1))
    assert lifecycle.holds_promotion(resumed)
    held = lifecycle.hold(resumed, "worker died")
    assert held.state is TrialState.PAUSED and held.worker is None and held.value == 0.7
    assert held.system.held == "worker died" and held.system.held_at_step == 1 and held.system.n_holds == 1
    assert lifecycle.held_promotions([held, running()]) == [3]
    back = lifecycle.resume(held, "h:2", 3.0)
    assert back.system.held is None and not lifecycle.holds_promotion(back)  # no progress since it was held
    progressed = back.replace(intermediate={**back.intermediate, 2: 0.6})
    assert lifecycle.holds_promotion(progressed)
    worn = progressed.replace(system=progressed.system.replace(n_holds=lifecycle.MAX_HOLDS))
    assert not lifecycle.holds_promotion(worn)
    assert not lifecycle.holds_promotion(running(attrs={"checkpoint": "c.pt"}))  # never resumed
    assert not lifecycle.holds_promotion(resumed.replace(attrs={}))  # nothing to resume from


def test_finish_lose_abandon_and_unstart() -> None:
    rec = running()
    assert lifecycle.finish(rec, 0.5, TrialState.COMPLETE, None, 9.0).value == 0.5
    pruned = lifecycle.finish(rec, None, TrialState.PRUNED, None, 9.0)
    assert pruned.state is TrialState.PRUNED and pruned.value == 0.7  # its last report
    failed = lifecycle.lose(rec, "lost", 9.0)
    assert failed.state is TrialState.FAILED and failed.intermediate == rec.intermediate
    assert failed.system.requeued_as is None and failed.completed == 9.0
    gone = lifecycle.abandon(lifecycle.pause(rec), 9.0)
    assert gone.state is TrialState.PRUNED and gone.value == 0.7
    queued = lifecycle.unstart(rec)
    assert queued.state is TrialState.WAITING and queued.worker is None and queued.started is None


def test_system_state_refuses_what_it_does_not_know() -> None:
    assert SystemState.from_dict(SystemState(retry_of=2).to_dict()) == SystemState(retry_of=2)
    assert SystemState().to_dict() == {}
    with pytest.raises(ValueError, match="unknown keys"):
        SystemState.from_dict({"resumed_step": 1, "run_this": "os.system"})
    with pytest.raises(ValueError, match="must be int"):
        SystemState.from_dict({"n_resumes": "3"})


def test_public_verbs_executors_use(tmp_path: Path) -> None:
    study = ts.Study(SPACE, storage=f"sqlite:///{tmp_path / 's.db'}", name="s", sampler="random", seed=1)
    a, b = study.ask(), study.ask()
    assert study.unstart(b.number) and study.trials[b.number].state is TrialState.WAITING
    assert not study.unstart(b.number)  # no longer running
    progressed = a.record.replace(intermediate={0: 0.4}, attrs={"note": "from a worker"})
    study.record_progress(progressed)
    lost = study.fail_trial(a.number, "worker lost", requeue=True)
    assert lost is not None and lost.state is TrialState.FAILED and lost.intermediate == {0: 0.4}
    assert lost.attrs == {"note": "from a worker"}
    copy = study.trials[lost.system.requeued_as]  # type: ignore[index]
    assert copy.state is TrialState.WAITING and copy.system.retry_of == a.number and copy.params == a.params
    assert study.fail_trial(a.number, "again") is None
    oom = study.requeue(lost, oom=True)
    assert oom is None  # one copy per trial, whoever queued it
    other = study.ask()  # the first waiting trial: b, back in the queue
    assert other.number == b.number
    study.tell(other, state="failed", error="CUDA out of memory")
    n = study.requeue(other.number, oom=True)
    assert n is not None and study.trials[n].system == SystemState(retry_of=b.number, oom_retries=1)
    assert study.trials[n].attrs == {"reason": "CUDA out of memory"}


class _BeatAfterRead(ts.MemoryStorage):
    """Beats a running trial once just after it is read, as a heartbeat thread of the process may."""

    beat = False

    def get_trial(self, study_id: int, number: int) -> FrozenTrial:
        rec = super().get_trial(study_id, number)
        if self.beat and rec.state is TrialState.RUNNING:
            self.beat = False
            self.heartbeat(study_id, [number], (rec.heartbeat or 0.0) + 1.0)
        return rec


def test_fail_trial_fails_a_trial_that_beat_since_it_was_read_with_one_copy() -> None:
    """fail_trial's caller knows the worker is lost (Ray's driver for a lost actor, which itself beats
    the trials it handed out in memory mode): a beat between its read and its write left the trial
    running for good (the copy's write requires the heartbeat it read) and no copy queued."""
    storage = _BeatAfterRead()
    study = ts.Study(SPACE, storage=storage, name="s", sampler="random", seed=1)
    a = study.ask()
    storage.beat = True
    lost = study.fail_trial(a.number, "actor lost", requeue=True)
    assert lost is not None and lost.state is TrialState.FAILED and lost.system.requeued_as == 1
    assert [(t.state, t.system.retry_of) for t in study.trials] == [(TrialState.FAILED, None),
                                                                   (TrialState.WAITING, a.number)]


class _BeatAfterList(ts.MemoryStorage):
    """Beats the running trials once just after they are listed, as their live worker may."""

    beat = False

    def get_trials(self, study_id: int, **kw: Any) -> list[FrozenTrial]:
        out = super().get_trials(study_id, **kw)
        if self.beat:
            self.beat = False
            self.heartbeat(study_id, [t.number for t in out if t.state is TrialState.RUNNING], self.clock())
        return out


def test_the_heartbeat_check_without_copies_spares_a_trial_that_beat_since_it_was_read() -> None:
    """The heartbeat check (requeue_failed off) read the running trials, judged one lost by its old heartbeat
    and failed it with a compare-and-set on running alone: a beat its worker wrote in between (alive after
    all) was overwritten, and the worker's result refused when it ended."""
    from tunesmith.study.heartbeat import Heartbeat, HeartbeatConfig

    storage = _BeatAfterList()
    sid = storage.create_study("s", direction=Direction.MINIMIZE, space={}, config={}).study_id
    assert storage.create_trial(sid, params={}, worker="w", now=100.0) is not None
    check = Heartbeat(storage, sid, HeartbeatConfig.build(1.0, 2.0, False))
    storage.beat = True
    assert check.reap(force=True) == []
    assert storage.get_trial(sid, 0).state is TrialState.RUNNING
    assert storage.create_trial(sid, params={}, worker="w2", now=100.0) is not None  # lost, no beat since
    assert [(t.number, t.state) for t in check.reap(force=True)] == [(1, TrialState.FAILED)]
    assert storage.get_trial(sid, 0).state is TrialState.RUNNING


class _TakenAgainBeforeTheFail(ts.MemoryStorage):
    """Puts a running trial back in the queue and lets another worker take it just before the write that
    fails it, as a worker's unstart and another's ask may come between a read and a write."""

    armed = False

    def update_trial(self, study_id: int, trial: FrozenTrial, **kw: Any) -> bool:
        if self.armed and trial.state is TrialState.FAILED:
            self.armed = False
            stored = self.get_trial(study_id, trial.number)
            assert super().update_trial(study_id, lifecycle.unstart(stored), expect_state=TrialState.RUNNING)
            assert lifecycle.claim_waiting(self, study_id, "other:1", lambda: (stored.started or 0.0) + 1.0) is not None
        return super().update_trial(study_id, trial, **kw)


@pytest.mark.parametrize("how", ["fail_worker", "fail_trial"])
def test_a_lost_run_failed_without_a_copy_spares_the_run_another_worker_began_since(how: str) -> None:
    """A lost worker's trial failed without a copy was written with a compare-and-set on ``running``
    alone: a trial that went back to the queue and was taken by another worker between the read and
    the write was failed under its new worker (its record rewritten as the old run's)."""
    storage = _TakenAgainBeforeTheFail()
    study = ts.Study(SPACE, storage=storage, name="s", sampler="random", seed=1)
    a = study.ask()
    storage.armed = True
    if how == "fail_worker":
        assert study.fail_worker(a.record.worker or "", "worker lost", requeue=False) == []
    else:
        assert study.fail_trial(a.number, "actor lost", requeue=False) is None
    stored = storage.get_trial(study._study_id, a.number)
    assert (stored.state, stored.worker) == (TrialState.RUNNING, "other:1")


def test_for_worker_seeds_workers_apart_and_reads_afresh(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    study = ts.Study(SPACE, storage=url, name="w", sampler="random", seed=3)
    study.optimize(lambda t: t["x"], n_trials=2)
    first = ts.Study(storage=url, name="w", sampler="random", seed=3).for_worker(1)
    second = ts.Study(storage=url, name="w", sampler="random", seed=3).for_worker(2)
    assert first.session == second.session == 2
    assert first.ask().params != second.ask().params
    same = ts.Study(storage=url, name="w", sampler="random", seed=3).for_worker(1, session=2)
    again = ts.Study(storage=url, name="w", sampler="random", seed=3).for_worker(1, session=2)
    assert same.ask().params == again.ask().params  # same seed, session and index: same draw


def test_a_taken_requeue_claim_without_its_copy_is_a_clear_storage_error(tmp_path: Path) -> None:
    """A trials table changed by hand: the claim of trial 0's copy exists, the copy does not."""
    from tunesmith.exceptions import StorageError
    from tunesmith.storage import make_storage

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = ts.Study(SPACE, storage=url, name="s", sampler="random", seed=1)
    a = study.ask()
    storage = make_storage(url)
    sid = storage.get_study("s").study_id
    storage.create_trial(sid, params=a.params, state=TrialState.WAITING, claim="retry-of:0")  # no retry_of
    with pytest.raises(StorageError, match="re-queue claim 'retry-of:0' is taken but no trial is its copy"):
        lifecycle.fail_lost(storage, sid, [a.record], error="lost", now=0.0, requeue=True, dead=True)
    assert storage.get_trial(sid, a.number).state is TrialState.RUNNING  # nothing was changed


def test_a_stale_copy_of_a_pause_neither_resumes_nor_abandons_a_later_pause(tmp_path: Path) -> None:
    """A worker's cached history still shows the first pause after another worker resumed
    the trial, trained it to step 3 and paused it again: the state matches, the pause does not."""
    from tunesmith.storage import make_storage

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = ts.Study(SPACE, storage=url, name="s", sampler="random", seed=1)
    a = study.ask()
    storage = make_storage(url)
    sid = storage.get_study("s").study_id
    stale = lifecycle.pause(a.record.replace(intermediate={0: 0.5, 1: 0.4}))
    assert storage.update_trial(sid, stale, expect_state=TrialState.RUNNING)
    first = lifecycle.claim_paused(storage, sid, stale, "w1", 1.0)
    assert first is not None and first.system.resumed_step == 1
    trained = first.replace(intermediate={**first.intermediate, 2: 0.3, 3: 0.2})
    assert storage.update_trial(sid, lifecycle.pause(trained), expect_state=TrialState.RUNNING)
    assert lifecycle.claim_paused(storage, sid, stale, "w2", 2.0) is None
    assert not lifecycle.abandon_paused(storage, sid, stale, 2.0)
    stored = storage.get_trial(sid, a.number)
    assert stored.state is TrialState.PAUSED and stored.last_step == 3 and stored.system.n_resumes == 1
    second = lifecycle.claim_paused(storage, sid, stored, "w2", 3.0)
    assert second is not None and second.system.resumed_step == 3 and second.system.n_resumes == 2


def test_a_pause_renewed_between_the_read_and_the_write_is_left_as_it_is(storage_url: str | None) -> None:
    """Right after this worker read the pause it means to claim (or abandon), another worker
    resumes the trial, trains it further and pauses it again. The read and the write are two
    transactions, so the write itself must see that the pause is no longer the one read, and
    leave the newer record (its reports, its resume count) as it is."""
    from tunesmith.storage import MemoryStorage, SQLStorage, Storage, make_storage

    def renew(st: Storage, sid: int, rec: FrozenTrial, step: int) -> None:  # the other worker
        running = lifecycle.claim_paused(st, sid, rec, "other", float(step))
        assert running is not None
        trained = running.replace(intermediate={**running.intermediate, step: 0.1 / step})
        assert st.update_trial(sid, lifecycle.pause(trained), expect_state=TrialState.RUNNING)

    class Interleaved(MemoryStorage if storage_url is None else SQLStorage):  # type: ignore[misc]
        armed = False
        other: Storage

        def get_trial(self, study_id: int, number: int) -> FrozenTrial:
            rec = super().get_trial(study_id, number)
            if self.armed:
                self.armed = False
                renew(self.other, study_id, rec, step=(rec.last_step or 0) + 1)
            return rec

    slow = Interleaved() if storage_url is None else Interleaved(storage_url)
    slow.other = slow if storage_url is None else make_storage(storage_url)
    sid = slow.create_study("s", direction=Direction.MINIMIZE, space={}, config={}).study_id
    first = slow.create_trial(sid, params={"x": 0.5}, state=TrialState.RUNNING)
    paused = lifecycle.pause(first.replace(intermediate={0: 0.5, 1: 0.4}))
    assert slow.update_trial(sid, paused, expect_state=TrialState.RUNNING)

    slow.armed = True
    assert lifecycle.claim_paused(slow, sid, paused, "me", 5.0) is None
    stored = slow.get_trial(sid, first.number)
    assert (stored.state, stored.last_step, stored.system.n_resumes) == (TrialState.PAUSED, 2, 1)

    slow.armed = True
    assert not lifecycle.abandon_paused(slow, sid, stored, 6.0)
    stored = slow.get_trial(sid, first.number)
    assert (stored.state, stored.last_step, stored.system.n_resumes) == (TrialState.PAUSED, 3, 2)


def test_update_trial_expect_needs_expect_state() -> None:
    from tunesmith.storage import MemoryStorage

    st = MemoryStorage()
    sid = st.create_study("s", direction=Direction.MINIMIZE, space={}, config={}).study_id
    rec = st.create_trial(sid, params={"x": 0.5}, state=TrialState.RUNNING)
    with pytest.raises(ValueError, match=r"update_trial\(expect=...\) needs expect_state"):
        st.update_trial(sid, rec, expect=lambda stored: True)


def test_a_record_s_replace_is_dataclasses_replace_checked_as_a_new_record() -> None:
    """``FrozenTrial.replace`` copies the fields itself (the hot path of every start, report and end):
    the copy must be the one ``dataclasses.replace`` makes, normalized and checked as a new record is,
    with the original untouched, and a misspelt field refused by name."""
    import dataclasses

    rec = running(attrs={"note": "a"}, system=SystemState(n_resumes=1))
    for changes in ({}, {"state": TrialState.COMPLETE, "value": 0.25, "completed": 3.0},
                    {"state": "pruned", "value": 1}, {"intermediate": {0: 1.0}, "attrs": {}, "heartbeat": None},
                    {"number": 7, "trial_id": 12, "system": SystemState(retry_of=2), "error": "x"}):
        new, expected = rec.replace(**changes), dataclasses.replace(rec, **changes)  # type: ignore[arg-type]
        assert new == expected and vars(new) == vars(expected) and type(new) is FrozenTrial
        assert type(new.state) is TrialState and (new.value is None or type(new.value) is float)
    assert rec == running(attrs={"note": "a"}, system=SystemState(n_resumes=1))  # the original is unchanged
    assert rec.replace(value=2).value == 2.0 and type(rec.replace(value=2).value) is float
    with pytest.raises(ValueError, match="trial 3: a complete trial needs a finite value"):
        rec.replace(state=TrialState.COMPLETE)
    with pytest.raises(ValueError, match="a complete trial needs a finite value"):
        rec.replace(state="complete", value=float("nan"))
    with pytest.raises(TypeError, match="unexpected keyword argument 'vaue'"):
        rec.replace(vaue=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.replace(value=1.0).value = 2.0  # type: ignore[misc]

    @dataclasses.dataclass(frozen=True)
    class Tagged(FrozenTrial):
        tag: str = ""

    tagged = Tagged(number=1, state=TrialState.RUNNING, params={}, tag="t").replace(tag="u")  # type: ignore[call-arg]
    assert type(tagged) is Tagged and tagged.tag == "u"
