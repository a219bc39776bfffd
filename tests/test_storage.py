"""Storage conformance suite: every storage must pass ``TestStorageConformance``.

It runs once per backend in ``conftest.STORAGE_BACKENDS`` (memory, SQLite and
PostgreSQL on the server the tests start); a new backend is done when it passes.
SQLite-only behaviour (schema versions, several processes) follows the class.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import tunesmith as ts
from tunesmith.execution import ProcessExecutor
from tunesmith.storage import SCHEMA_VERSION, make_storage
from tunesmith.storage.base import NewStudy, worker_id
from tunesmith.study.lifecycle import claim_waiting
from tunesmith.trial import Direction, FrozenTrial, SystemState, TrialState

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def new_study(st: ts.Storage, name: str = "s") -> int:
    return st.create_study(name, direction=Direction.MAXIMIZE, space=SPACE, config={"sampler": {"name": "random"}}).study_id


class TestStorageConformance:
    def test_fail_with_copy_writes_both_or_neither(self, storage: ts.Storage) -> None:
        sid = new_study(storage)
        a = storage.create_trial(sid, params={"x": 0.5}, worker="w")
        assert a is not None
        failed = a.replace(state=TrialState.FAILED, error="lost", completed=1.0)
        written = storage.fail_with_copy(sid, failed, claim="retry-of:0")
        assert written is not None and written.system.requeued_as == 1
        assert storage.get_trial(sid, 0) == written
        copy = storage.get_trial(sid, 1)
        assert copy.state is TrialState.WAITING and copy.params == {"x": 0.5} and copy.system.retry_of == 0
        b = storage.create_trial(sid, params={"x": 0.25}, worker="w")
        assert b is not None
        storage.update_trial(sid, b.replace(state=TrialState.COMPLETE, value=1.0, completed=1.0))
        assert storage.fail_with_copy(sid, b.replace(state=TrialState.FAILED, error="lost"), claim="retry-of:2") is None
        assert [t.state for t in storage.get_trials(sid)] == [TrialState.FAILED, TrialState.WAITING,
                                                                TrialState.COMPLETE]  # no copy of the live one

    def test_fail_with_copy_spares_a_trial_that_beat_since_it_was_read(self, storage: ts.Storage) -> None:
        """The heartbeat check reads the running trials, judges one lost by its old heartbeat, and fails it
        with a copy: a beat its worker wrote in between (alive after all) was overwritten, the trial failed
        and copied, and the worker's result refused when it ended, the trial run twice."""
        from tunesmith.study.lifecycle import lose

        sid = new_study(storage)
        assert storage.create_trial(sid, params={"x": 0.5}, worker="w", now=100.0) is not None
        read = storage.get_trial(sid, 0)
        storage.heartbeat(sid, [0], 200.0)  # its worker, alive, beats
        assert storage.fail_with_copy(sid, lose(read, "lost", 300.0), claim="retry-of:0") is None
        assert [(t.state, t.heartbeat) for t in storage.get_trials(sid)] == [(TrialState.RUNNING, 200.0)]
        again = storage.get_trial(sid, 0)  # read again: still without a beat at 300, it is lost
        written = storage.fail_with_copy(sid, lose(again, "lost", 300.0), claim="retry-of:0")
        assert written is not None and [t.state for t in storage.get_trials(sid)] == [TrialState.FAILED,
                                                                                     TrialState.WAITING]

    def test_fail_with_copy_spares_a_beat_trial_and_copies_it_once_lost_later(self, storage: ts.Storage) -> None:
        """As above, through ``Storage.fail_with_copy``'s default (a custom storage's): a beat since the read
        made it queue a copy and take it back, the copy holding the trial's claim; once the trial was lost
        after all, its failed record pointed to that failed copy and no copy was left to run it again."""
        from tunesmith.study.lifecycle import lose

        class DefaultCopy(type(storage)):  # type: ignore[misc]
            fail_with_copy = ts.Storage.fail_with_copy

        storage.__class__ = DefaultCopy
        sid = new_study(storage)
        assert storage.create_trial(sid, params={"x": 0.5}, worker="w", now=100.0) is not None
        read = storage.get_trial(sid, 0)
        storage.heartbeat(sid, [0], 200.0)
        assert storage.fail_with_copy(sid, lose(read, "lost", 300.0), claim="retry-of:0") is None
        written = storage.fail_with_copy(sid, lose(storage.get_trial(sid, 0), "lost", 400.0), claim="retry-of:0")
        assert written is not None and written.system.requeued_as is not None
        assert storage.get_trial(sid, written.system.requeued_as).state is TrialState.WAITING

    def test_fail_with_copy_s_default_copies_a_trial_that_beat_between_its_read_and_write_once_lost_later(
            self, storage: ts.Storage) -> None:
        """``Storage.fail_with_copy``'s default, with a beat between its own read and its write: the copy it
        took back held the trial's claim, so once the trial was lost after all its failed record pointed to
        that failed copy and nothing was left to run it again."""
        from tunesmith.study.lifecycle import lose

        class DefaultCopy(type(storage)):  # type: ignore[misc]
            fail_with_copy = ts.Storage.fail_with_copy
            beat_before_the_fail = False

            def update_trial(self, study_id: int, trial: FrozenTrial, **kw: Any) -> bool:
                if self.beat_before_the_fail and trial.state is TrialState.FAILED and trial.system.requeued_as:
                    self.beat_before_the_fail = False
                    self.heartbeat(study_id, [trial.number], 200.0)  # its worker, alive after all, beats
                return super().update_trial(study_id, trial, **kw)

        storage.__class__ = DefaultCopy
        sid = new_study(storage)
        assert storage.create_trial(sid, params={"x": 0.5}, worker="w", now=100.0) is not None
        storage.beat_before_the_fail = True  # type: ignore[attr-defined]
        assert storage.fail_with_copy(sid, lose(storage.get_trial(sid, 0), "lost", 300.0), claim="retry-of:0") is None
        assert [t.state for t in storage.get_trials(sid)] == [TrialState.RUNNING, TrialState.FAILED]  # taken back
        written = storage.fail_with_copy(sid, lose(storage.get_trial(sid, 0), "lost", 400.0), claim="retry-of:0")
        assert written is not None and written.system.requeued_as == 2
        assert [(t.state, t.system.retry_of) for t in storage.get_trials(sid)] == [
            (TrialState.FAILED, None), (TrialState.FAILED, 0), (TrialState.WAITING, 0)]
        again = storage.fail_with_copy(sid, lose(storage.get_trial(sid, 0), "lost", 400.0), claim="retry-of:0")
        assert again is None and len(storage.get_trials(sid)) == 3  # no second copy

    def test_fail_with_copy_s_default_names_the_next_copy_from_the_trial_s_claim_at_each_read(
            self, storage: ts.Storage) -> None:
        """``Storage.fail_with_copy``'s default, its copy's claim taken by another caller's copy that was then
        taken back too: it named the next copy from the claim it had tried (``retry-of:0/1/1/2``), not from the
        copies read (``retry-of:0/2``, as any caller reading the same copies names it), so two callers could
        queue a copy each."""
        from tunesmith.storage.base import NOT_NEEDED
        from tunesmith.study.lifecycle import lose

        def taken_back(st: ts.Storage, sid: int, copy: FrozenTrial | None) -> None:
            assert copy is not None
            why = f"{NOT_NEEDED}0 was still running (it beat) before its copy ran"
            assert st.update_trial(sid, copy.replace(state=TrialState.FAILED, error=why, completed=150.0),
                                   expect_state=TrialState.WAITING)

        class DefaultCopy(type(storage)):  # type: ignore[misc]
            fail_with_copy = ts.Storage.fail_with_copy
            raced = False

            def create_trial(self, study_id: int, **kw: Any) -> FrozenTrial | None:
                if kw.get("claim") == "retry-of:0/1" and not self.raced:  # another caller's copy, taken back
                    self.raced = True
                    taken_back(self, study_id, super().create_trial(study_id, **kw))
                return super().create_trial(study_id, **kw)

        storage.__class__ = DefaultCopy
        sid = new_study(storage)
        assert storage.create_trial(sid, params={"x": 0.5}, worker="w", now=100.0) is not None
        copy = {"params": {"x": 0.5}, "state": TrialState.WAITING, "system": SystemState(retry_of=0)}
        taken_back(storage, sid, storage.create_trial(sid, claim="retry-of:0", **copy))
        written = storage.fail_with_copy(sid, lose(storage.get_trial(sid, 0), "lost", 400.0), claim="retry-of:0")
        assert written is not None and written.system.requeued_as == 3
        assert storage.create_trial(sid, claim="retry-of:0/2", **copy) is None  # held by the copy queued
        assert [t.state for t in storage.get_trials(sid)] == [TrialState.FAILED] * 3 + [TrialState.WAITING]

    def test_fail_with_copy_s_default_keeps_the_claim_short_however_many_copies_it_took_back(
            self, storage: ts.Storage) -> None:
        """``Storage.fail_with_copy``'s default named each copy after one it took back by every copy taken back
        before (``retry-of:0/1/2/3/...``): a trial that beat between the read and the write again and again grew
        its claim by a number each time, past PostgreSQL's 2,048 characters in the end. Now the trial's claim
        and the last copy's number."""
        from tunesmith.study.lifecycle import lose

        claims: list[str] = []

        class DefaultCopy(type(storage)):  # type: ignore[misc]
            fail_with_copy = ts.Storage.fail_with_copy
            beat_before_the_fail = False

            def create_trial(self, study_id: int, **kw: Any) -> FrozenTrial | None:
                claims.extend([kw["claim"]] if kw.get("claim") else [])
                return super().create_trial(study_id, **kw)

            def update_trial(self, study_id: int, trial: FrozenTrial, **kw: Any) -> bool:
                if self.beat_before_the_fail and trial.state is TrialState.FAILED and trial.system.requeued_as:
                    self.beat_before_the_fail = False
                    self.heartbeat(study_id, [trial.number], 200.0 + len(claims))  # alive after all: it beats
                return super().update_trial(study_id, trial, **kw)

        storage.__class__ = DefaultCopy
        sid = new_study(storage)
        assert storage.create_trial(sid, params={"x": 0.5}, worker="w", now=100.0) is not None
        for _ in range(40):  # a beat between each call's read and write: each copy taken back
            storage.beat_before_the_fail = True  # type: ignore[attr-defined]
            assert storage.fail_with_copy(sid, lose(storage.get_trial(sid, 0), "lost", 300.0),
                                          claim="retry-of:0") is None
        written = storage.fail_with_copy(sid, lose(storage.get_trial(sid, 0), "lost", 400.0), claim="retry-of:0")
        assert written is not None and written.system.requeued_as == 41
        assert len(set(claims)) == 41 and max(map(len, claims)) == len("retry-of:0/40")

    def test_a_judged_write_loses_no_write_another_client_made_while_it_judged(self, storage: ts.Storage) -> None:
        """``update_trial`` with ``expect`` judges the stored record and writes it in one transaction. On
        PostgreSQL (READ COMMITTED) the trial's row was read without a lock: another client's write made
        between the judgement and the write (the trial put back in the queue and taken by another worker, a
        beat) committed, and was overwritten by a write that checked ``running`` alone."""
        from tunesmith.study.lifecycle import lose, same_run

        sid = new_study(storage)
        a = storage.create_trial(sid, params={"x": 0.5}, worker="a", now=100.0)
        assert a is not None
        other = storage if isinstance(storage, ts.MemoryStorage) else make_storage(storage.url)
        took: list[bool] = []
        threads: list[threading.Thread] = []

        def judge(stored: FrozenTrial) -> bool:  # another client's write, made while this one judges
            b = stored.replace(worker="b", started=200.0)
            threads.append(threading.Thread(target=lambda: took.append(
                other.update_trial(sid, b, expect_state=TrialState.RUNNING))))
            threads[0].start()
            threads[0].join(1.0)  # a write that waits for this one's transaction: on after it
            return same_run(a, stored)

        wrote = storage.update_trial(sid, lose(a, "lost", 300.0), expect_state=TrialState.RUNNING, expect=judge)
        threads[0].join(30.0)
        stored = storage.get_trial(sid, 0)
        assert took == [not wrote]  # one of the two writes won, and the other was told it lost
        assert (stored.state, stored.worker) == ((TrialState.FAILED, "a") if wrote else (TrialState.RUNNING, "b"))
        if other is not storage:
            other.close()

    def test_create_get_list_delete_study(self, storage: ts.Storage) -> None:
        rec = storage.create_study("a", direction=Direction.MAXIMIZE, space=SPACE, config={"k": [1, 2]})
        assert storage.get_study("a") == rec
        assert rec.direction is Direction.MAXIMIZE and rec.space == SPACE and rec.config == {"k": [1, 2]}
        new_study(storage, "b")
        assert [r.name for r in storage.list_studies()] == ["a", "b"]
        storage.delete_study("a")
        assert [r.name for r in storage.list_studies()] == ["b"]
        with pytest.raises(ts.StudyNotFound, match="no study named 'a'"):
            storage.get_study("a")
        with pytest.raises(ts.StudyNotFound, match="no study named 'a'"):
            storage.delete_study("a")

    def test_a_deleted_study_takes_its_trials_along(self, storage: ts.Storage) -> None:
        sid = new_study(storage, "a")
        storage.create_trial(sid, params={"x": 0.5})
        storage.delete_study("a")
        assert storage.get_trials(new_study(storage, "a")) == [] and storage.get_trials(sid) == []
        assert storage.count_trials(sid) == 0  # as get_trials reads it: nothing (memory raised KeyError)
        with pytest.raises(ts.StudyNotFound, match="no longer in"):
            storage.insert_trials(sid, [FrozenTrial(number=0, state=TrialState.COMPLETE, params={"x": 0.5}, value=1.0)])

    @pytest.mark.parametrize("exclude", [None, TrialState.WAITING])
    def test_get_trials_since_reads_the_listed_trials_and_those_from_a_number_on(
        self, storage: ts.Storage, exclude: TrialState | None
    ) -> None:
        sid = new_study(storage, "a")
        for n in range(12):
            storage.create_trial(sid, params={"x": n / 12},
                                 state=TrialState.WAITING if n % 3 == 0 else TrialState.RUNNING)
        got = storage.get_trials_since(sid, 9, also=[7, 1, 3, 9, 10, 30], exclude=exclude)
        assert [t.number for t in got] == ([1, 3, 7, 9, 10, 11] if exclude is None else [1, 7, 10, 11])
        assert got == [t for t in storage.get_trials(sid, exclude=exclude) if t.number in {1, 3, 7} or t.number >= 9]
        assert ts.Storage.get_trials_since(storage, sid, 9, also=[7, 1, 3], exclude=exclude) == got  # the default
        assert storage.get_trials_since(sid, 100, also=[2]) == [storage.get_trial(sid, 2)]
        storage.delete_study("a")
        assert storage.get_trials_since(sid, 0, also=[1, 2]) == []  # deleted: nothing, as get_trials reads it

    def test_count_and_insert_trials_agree_with_get_trials(self, storage: ts.Storage) -> None:
        a, b = new_study(storage, "a"), new_study(storage, "b")
        storage.create_trial(a, params={"x": 0.1}, worker="w")
        records = [FrozenTrial(number=0, state=state, params={"x": i / 10}, value=value, intermediate={1: 0.5},
                               attrs={"k": i}, error=error, started=1.0, completed=2.0)
                   for i, (state, value, error) in enumerate([(TrialState.COMPLETE, 1.0, None),
                                                              (TrialState.FAILED, None, "boom"),
                                                              (TrialState.WAITING, None, None)])]
        got = storage.insert_trials(a, records)
        assert [t.number for t in got] == [1, 2, 3] and got == storage.get_trials(a, min_number=1)
        assert [t.replace(trial_id=-1) for t in got] == [r.replace(number=i + 1) for i, r in enumerate(records)]
        assert storage.insert_trials(b, []) == []
        assert (storage.count_trials(a), storage.count_trials(b)) == (4, 0)
        with pytest.raises(ts.TrialFinishedError):
            storage.update_trial(a, got[0].replace(value=2.0))

    def test_a_study_made_with_its_trials_renamed_with_another_and_a_claimed_record(self, storage: ts.Storage) -> None:
        # the writes of copy/focus/import, rename with test results and a claimed known result: each one write
        # on SQL storages (tests/test_faults_storage.py kills a process inside them)
        records = [FrozenTrial(number=7, state=TrialState.COMPLETE, params={"x": i / 10}, value=i, intermediate={1: 0.5},
                               attrs={"k": i}, started=1.0, completed=2.0) for i in range(3)]
        rec = storage.create_study_with_trials("a", direction=Direction.MINIMIZE, space={}, config={}, trials=records)
        assert [t.replace(trial_id=-1) for t in storage.get_trials(rec.study_id)] == [
            r.replace(number=i) for i, r in enumerate(records)]
        assert storage.create_study_with_trials("e", direction=Direction.MINIMIZE, space={}, config={}, trials=[])
        new_study(storage, "a:test")
        with pytest.raises(ValueError, match="already exists"):
            storage.rename_studies([("a", "b"), ("a:test", "e")])  # the second taken: neither renamed
        assert sorted(r.name for r in storage.list_studies()) == ["a", "a:test", "e"]
        storage.rename_studies([("a", "b"), ("a:test", "b:test")])
        assert sorted(r.name for r in storage.list_studies()) == ["b", "b:test", "e"]
        sid = storage.get_study("b").study_id
        assert storage.get_trials(sid)[2].value == 2.0
        added = storage.insert_claimed(sid, records[0], "run:1")
        assert added is not None and added.number == 3 and storage.get_trial(sid, 3).state is TrialState.COMPLETE
        assert storage.insert_claimed(sid, records[1], "run:1") is None and storage.count_trials(sid) == 4
        with pytest.raises(ValueError, match="already exists"):  # the second taken: neither made
            storage.create_studies([NewStudy("c", Direction.MINIMIZE, {}, {}, records), NewStudy("e", Direction.MINIMIZE, {}, {})])
        made = storage.create_studies([NewStudy("c", Direction.MINIMIZE, {}, {}, records),
                                       NewStudy("c:test", Direction.MINIMIZE, {}, {}, records[:1])])
        assert [storage.count_trials(r.study_id) for r in made] == [3, 1]
        assert sorted(r.name for r in storage.list_studies()) == ["b", "b:test", "c", "c:test", "e"]

    def test_duplicate_study_name(self, storage: ts.Storage) -> None:
        new_study(storage, "a")
        with pytest.raises(ValueError, match="'a' already exists"):
            new_study(storage, "a")

    def test_trials_numbered_from_zero_per_study(self, storage: ts.Storage) -> None:
        a, b = new_study(storage, "a"), new_study(storage, "b")
        nums = [storage.create_trial(a, params={"x": i / 10}, worker="w") for i in range(3)]
        assert [t.number for t in nums if t] == [0, 1, 2]
        first_b = storage.create_trial(b, params={"x": 0.5})
        assert first_b is not None and first_b.number == 0
        t = storage.get_trial(a, 1)
        assert t.state is TrialState.RUNNING and t.params == {"x": 0.1} and t.worker == "w"
        assert t.started is not None and t.heartbeat is not None
        assert [t.number for t in storage.get_trials(a, min_number=1)] == [1, 2]
        with pytest.raises(KeyError):
            storage.get_trial(a, 7)

    def test_claims_are_unique(self, storage: ts.Storage) -> None:
        sid = new_study(storage)
        assert storage.create_trial(sid, params={"x": 0.0}, claim="k0") is not None
        assert storage.create_trial(sid, params={"x": 0.0}, claim="k0") is None
        assert storage.create_trial(sid, params={"x": 0.0}, claim="k1") is not None
        assert storage.create_trial(sid, params={"x": 0.0}) is not None  # unclaimed may repeat
        assert len(storage.get_trials(sid)) == 3
        other = new_study(storage, "other")
        assert storage.create_trial(other, params={"x": 0.0}, claim="k0") is not None  # per study

    def test_waiting_trials_pop_in_order(self, storage: ts.Storage) -> None:
        sid = new_study(storage)
        for x in (0.1, 0.2):
            w = storage.create_trial(sid, params={"x": x}, state=TrialState.WAITING, worker="ignored")
            assert w is not None and w.state is TrialState.WAITING and w.worker is None and w.started is None
        assert [t.number for t in storage.get_trials(sid, state=TrialState.WAITING)] == [0, 1]
        first = claim_waiting(storage, sid, "me", lambda: 123.0)
        assert first is not None and first.number == 0 and first.params == {"x": 0.1}
        assert first.state is TrialState.RUNNING and first.worker == "me" and first.started == 123.0
        assert storage.get_trial(sid, 0) == first
        assert [t.number for t in storage.get_trials(sid, state=TrialState.RUNNING)] == [0]
        second = claim_waiting(storage, sid, "me", lambda: 124.0)
        assert second is not None and second.number == 1
        assert claim_waiting(storage, sid, "me", lambda: 125.0) is None
        assert storage.get_trials(sid, state=TrialState.WAITING) == []

    def test_update_is_a_compare_and_set_on_the_state(self, storage: ts.Storage) -> None:
        sid = new_study(storage)
        w = storage.create_trial(sid, params={"x": 0.1}, state=TrialState.WAITING)
        assert w is not None
        mine = w.replace(state=TrialState.RUNNING, worker="a", heartbeat=1.0)
        theirs = w.replace(state=TrialState.RUNNING, worker="b", heartbeat=2.0)
        assert storage.update_trial(sid, mine, expect_state=TrialState.WAITING) is True
        assert storage.update_trial(sid, theirs, expect_state=TrialState.WAITING) is False  # lost the race
        assert storage.get_trial(sid, 0).worker == "a"
        assert storage.update_trial(sid, mine, expect_state=TrialState.WAITING) is False  # equal writes: one wins
        done = mine.replace(state=TrialState.COMPLETE, value=1.0, completed=3.0)
        assert storage.update_trial(sid, done, expect_state=TrialState.RUNNING) is True
        assert storage.update_trial(sid, done.replace(value=2.0), expect_state=TrialState.RUNNING) is False
        with pytest.raises(ts.TrialFinishedError):  # without an expected state: a finished trial never changes
            storage.update_trial(sid, done.replace(value=2.0))
        assert storage.get_trial(sid, 0).value == 1.0
        with pytest.raises(ts.TrialNotFound):
            storage.update_trial(sid, done.replace(number=7), expect_state=TrialState.RUNNING)

    def test_system_state_round_trips_apart_from_attrs(self, storage: ts.Storage) -> None:
        sid = new_study(storage)
        system = SystemState(retry_of=3, oom_retries=1)
        rec = storage.create_trial(sid, params={"x": 0.1}, state=TrialState.WAITING, attrs={"retry_of": "mine"},
                                   system=system)
        assert rec is not None and rec.system == system and rec.attrs == {"retry_of": "mine"}
        stored = storage.get_trial(sid, rec.number)
        assert stored.system == system and stored.attrs == {"retry_of": "mine"}
        held = stored.replace(state=TrialState.PAUSED, system=system.replace(held="lost", n_holds=1, resumed_step=4))
        storage.update_trial(sid, held)
        assert storage.get_trials(sid)[0].system == held.system and storage.get_trials(sid)[0].is_resumed

    def test_whole_record_update_round_trips(self, storage: ts.Storage) -> None:
        sid = new_study(storage)
        t = storage.create_trial(sid, params={"x": 0.5, "k": "a", "n": 3, "none": None})
        assert t is not None
        t = t.replace(intermediate={0: 0.5, 3: 0.25}, attrs={"ckpt": "/tmp/c", "n": [1, 2]}, heartbeat=5.0)
        storage.update_trial(sid, t)
        assert storage.get_trial(sid, 0) == t
        done = t.replace(state=TrialState.COMPLETE, value=0.75, completed=9.0)
        storage.update_trial(sid, done)
        got = storage.get_trial(sid, 0)
        assert got == done and got.intermediate == {0: 0.5, 3: 0.25} and isinstance(got.value, float)

    @pytest.mark.parametrize("final", [TrialState.COMPLETE, TrialState.FAILED, TrialState.PRUNED])
    def test_finished_trials_never_change(self, storage: ts.Storage, final: TrialState) -> None:
        sid = new_study(storage)
        t = storage.create_trial(sid, params={"x": 0.5})
        assert t is not None
        value = 1.0 if final is TrialState.COMPLETE else None
        done = t.replace(state=final, value=value, error="boom" if final is TrialState.FAILED else None)
        storage.update_trial(sid, done)
        with pytest.raises(ts.TrialFinishedError, match="trial 0 is already"):
            storage.update_trial(sid, done.replace(state=TrialState.COMPLETE, value=2.0, error=None))
        assert storage.get_trial(sid, 0) == done

    def test_heartbeat_touches_running_trials_only(self, storage: ts.Storage) -> None:
        sid = new_study(storage)
        a = storage.create_trial(sid, params={"x": 0.1}, now=1.0)
        b = storage.create_trial(sid, params={"x": 0.2}, now=1.0)
        assert a is not None and b is not None
        storage.update_trial(sid, b.replace(state=TrialState.FAILED, error="x"))
        storage.heartbeat(sid, [0, 1], now=50.0)
        storage.heartbeat(sid, [], now=60.0)
        assert storage.get_trial(sid, 0).heartbeat == 50.0
        assert storage.get_trial(sid, 1).heartbeat == 1.0

    def test_concurrent_threads_get_distinct_numbers(self, storage: ts.Storage) -> None:
        sid = new_study(storage)
        got: list[int] = []
        lock = threading.Lock()

        def work() -> None:
            for i in range(25):
                t = storage.create_trial(sid, params={"x": 0.0}, claim=f"c{i % 10}" if i % 2 else None)
                if t is not None:
                    with lock:
                        got.append(t.number)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        # 4 x 13 unclaimed + 5 distinct claims (c1, c3, ..., c9) taken once each
        assert sorted(got) == list(range(4 * 13 + 5))
        assert [t.number for t in storage.get_trials(sid)] == sorted(got)



def test_a_trial_completed_while_its_copy_is_being_queued_gets_no_copy(shared_storage_url: str) -> None:
    """Another client completes the trial in a transaction that is open while fail_with_copy runs
    (SQLite: its write lock; PostgreSQL, READ COMMITTED: the trial's row lock): the conditional write
    of the failed record waits, reads the completed row, and the copy goes with the rolled-back write."""
    import threading

    import sqlalchemy as sa

    storage = make_storage(shared_storage_url)
    sid = new_study(storage)
    a = storage.create_trial(sid, params={"x": 0.5}, worker="w")
    assert a is not None
    other = sa.create_engine(shared_storage_url)
    out: list[object] = []
    try:
        with other.connect() as conn:
            conn.execute(sa.text("UPDATE ts_trials SET state = 'complete', value = 1.0, completed = 2.0 "
                                 "WHERE study_id = :sid AND number = 0"), {"sid": sid})  # open: not committed
            failing = threading.Thread(target=lambda: out.append(storage.fail_with_copy(
                sid, a.replace(state=TrialState.FAILED, error="lost", completed=1.0), claim="retry-of:0")))
            failing.start()
            failing.join(1.0)  # it waits on the other client's lock
            assert failing.is_alive() and not out
            conn.commit()
        failing.join(60)
    finally:
        other.dispose()
    assert out == [None]
    assert [(t.state, t.value) for t in storage.get_trials(sid)] == [(TrialState.COMPLETE, 1.0)]  # no copy


def test_study_survives_reopening(shared_storage_url: str) -> None:
    """Persistent backends: a second storage object on the same URL sees everything."""
    storage = make_storage(shared_storage_url)
    sid = new_study(storage)
    t = storage.create_trial(sid, params={"x": 0.3})
    assert t is not None
    storage.update_trial(sid, t.replace(state=TrialState.COMPLETE, value=3.0))
    storage.close()
    again = make_storage(shared_storage_url)
    assert again.get_study("s").study_id == sid
    assert again.get_trial(sid, 0).value == 3.0
    again.delete_study("s")
    again.close()


def test_a_version_1_database_is_upgraded_in_place(shared_storage_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Schema 1 kept the study's bookkeeping in attrs: opening it moves those keys to ``system``."""
    import sqlalchemy as sa

    study = ts.Study({"x": ts.Float(0, 1)}, storage=shared_storage_url, name="old", sampler="random", seed=0)
    study.optimize(lambda t: t["x"], n_trials=2)
    legacy = {"checkpoint": "c.pt", "resumed_step": 3, "n_resumes": 1, "promotion_held": "lost", "retry_of": 0}
    study.storage.close()
    engine = sa.create_engine(shared_storage_url)
    with engine.begin() as c:  # what tunesmith 0.1 wrote: no system column, version 1, keys in attrs
        c.execute(sa.text("ALTER TABLE ts_trials DROP COLUMN system"))
        c.execute(sa.text("UPDATE ts_meta SET value = '1' WHERE key = 'schema_version'"))
        c.execute(sa.text("UPDATE ts_trials SET attrs = :a WHERE number = 1"), {"a": json.dumps(legacy)})
    engine.dispose()
    with pytest.raises(ts.SchemaVersionError, match="schema version 1.*opened read-only") as refused:
        make_storage(shared_storage_url, read_only=True).list_studies()
    if shared_storage_url.startswith("sqlite"):  # the command it names upgrades it (a server's names no password)
        command = str(refused.value).split("after): ")[1]
        assert command.startswith("python -c ")
        done = subprocess.run([sys.executable, "-c", command.split('"')[1]], check=True, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")})
        assert "from schema version 1 to 2: a tunesmith that reads only version 1" in done.stderr
    with caplog.at_level("WARNING", logger="tunesmith"):
        again = ts.load_study("old", shared_storage_url)
    if not shared_storage_url.startswith("sqlite"):  # (SQLite's was upgraded by the command above)
        assert "from schema version 1 to 2: a tunesmith that reads only version 1" in caplog.text
    first, second = again.trials
    assert first.attrs == {} and first.system == SystemState()
    assert second.attrs == {"checkpoint": "c.pt"} and second.state is TrialState.COMPLETE
    assert second.system == SystemState(resumed_step=3, n_resumes=1, held="lost", retry_of=0)
    again.optimize(lambda t: t["x"], n_trials=1)  # and it is written as version 2 from now on
    assert len(make_storage(shared_storage_url, read_only=True).get_trials(again.storage.get_study("old").study_id)) == 3


# -- URLs ------------------------------------------------------------------------------------------------


def test_make_storage_specs(tmp_path: Path) -> None:
    assert isinstance(make_storage(None), ts.MemoryStorage)
    assert isinstance(make_storage("memory"), ts.MemoryStorage)
    st = make_storage(str(tmp_path / "plain.db"))
    assert isinstance(st, ts.SQLStorage) and st.url.startswith("sqlite:///")
    with pytest.raises(ValueError, match="not a database URL; use 'sqlite:///results'"):
        make_storage("results")
    with pytest.raises(ValueError, match="does not exist; create it first"):
        make_storage(f"sqlite:///{tmp_path}/missing/dir/x.db")
    with pytest.raises(ValueError, match="in-memory SQLite database cannot be shared"):
        make_storage("sqlite://")
    # two slashes read the file's name as a host: it said "an in-memory SQLite database cannot be shared"
    with pytest.raises(ValueError, match=re.escape(
            "storage 'sqlite://tunesmith.db' names no file: a SQLite URL has three slashes before a relative "
            "path, 'sqlite:///tunesmith.db' (four before an absolute one, 'sqlite:////abs/path.db')")):
        make_storage("sqlite://tunesmith.db")
    # with a folder: the folder read as a host, and ./x.db read (read-only) or SQLAlchemy's ArgumentError
    for read_only in (False, True):
        with pytest.raises(ValueError, match=re.escape(
                "storage 'sqlite://runs/x.db' reads 'runs' as a host (a SQLite URL names none): a SQLite URL has "
                "three slashes before a relative path, 'sqlite:///runs/x.db' (four before an absolute one, ")):
            make_storage("sqlite://runs/x.db", read_only=read_only)
        with pytest.raises(ValueError, match=re.escape("as a host (a SQLite URL names none): a SQLite URL has three "
                                                       f"slashes before a relative path, 'sqlite:///{tmp_path}/x.db'")):
            make_storage(f"sqlite://localhost/{tmp_path}/x.db", read_only=read_only)
    assert not (tmp_path / "x.db").exists()
    with pytest.raises(TypeError, match="URL string or a Storage"):
        make_storage(3)  # type: ignore[arg-type]


# -- SQLite specifics --------------------------------------------------------------------------------------


def test_a_relative_sqlite_path_is_shown_as_the_absolute_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """'sqlite:///results.db' (a path relative to where the process started) is shown by the
    file's absolute path in messages and reprs, so a user knows which file is meant."""
    monkeypatch.chdir(tmp_path)
    absolute = f"sqlite:///{tmp_path.resolve() / 'results.db'}"
    storage = make_storage("sqlite:///results.db")
    assert storage.url == "sqlite:///results.db" and storage.display_url == absolute  # kept as given, to connect
    assert repr(storage) == f"SQLStorage({absolute!r})"
    with pytest.raises(ts.StudyNotFound, match=f"in {absolute}"):
        ts.load_study("nope", "sqlite:///results.db")
    given = f"sqlite:///{tmp_path / 'other.db'}"
    assert make_storage(given).display_url == given  # an absolute path: as given


def test_newer_schema_version_is_refused(sqlite_url: str) -> None:
    make_storage(sqlite_url).close()
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE ts_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(ts.SchemaVersionError, match=rf"schema version {SCHEMA_VERSION + 1}, written by a newer tunesmith.*pip install -U tunesmith"):
        make_storage(sqlite_url)
    with pytest.raises(ts.SchemaVersionError):
        ts.Study({"x": ts.Float(0, 1)}, storage=sqlite_url, name="s")


def test_sqlite_uses_wal(sqlite_url: str) -> None:
    st = make_storage(sqlite_url)
    new_study(st)
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _synchronous(storage: ts.SQLStorage) -> int:
    """``PRAGMA synchronous`` on a connection of ``storage``'s own pool (1 NORMAL, 2 FULL, 3 EXTRA)."""
    with storage.engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())


def _synchronous_objective(trial: ts.Trial) -> float:
    storage = trial.study.storage
    assert isinstance(storage, ts.SQLStorage)
    return float(_synchronous(storage))


@pytest.mark.parametrize(("query", "level"), [("", 1), ("?synchronous=normal", 1), ("?synchronous=FULL", 2),
                                              ("?Synchronous=extra", None), ("?synchronous=Extra", 3)])
def test_sqlite_url_asks_for_synchronous(tmp_path: Path, query: str, level: int | None) -> None:
    """``?synchronous=full`` makes each commit wait for the disk (a power cut loses none): set on
    every connection, kept in the URL shown and in the copy a worker process opens."""
    url = f"sqlite:///{tmp_path}/s.db{query}"
    if level is None:  # argument names are SQLite's, as written: only the value's case is free
        with pytest.raises(ValueError, match="unknown query argument 'Synchronous' .did you mean 'synchronous'"):
            ts.SQLStorage(url)
        return
    st = ts.SQLStorage(url)
    assert st.display_url == url
    assert _synchronous(st) == level
    new_study(st)
    assert _synchronous(copy.deepcopy(st)) == level  # pickled as a worker's copy is
    ro = ts.SQLStorage(url, read_only=True)  # reads only: opened with mode=ro, its rows read as written
    assert [s.name for s in ro.list_studies()] == ["s"]


def test_synchronous_in_process_workers(tmp_path: Path) -> None:
    study = ts.Study({"x": ts.Float(0, 1)}, storage=f"sqlite:///{tmp_path}/s.db?synchronous=full", name="s", sampler="random", seed=0)
    study.optimize(_synchronous_objective, n_trials=2, executor=ProcessExecutor(2))
    assert [t.value for t in study.trials] == [2.0, 2.0]
    assert {t.worker for t in study.trials}.isdisjoint({worker_id()})  # read in the workers, not here


def _synchronous_in_a_fresh_process(storage: ts.SQLStorage, out: Any) -> None:
    out.put(_synchronous(storage))


def test_the_synchronous_keyword_travels_in_the_url_to_worker_processes(tmp_path: Path) -> None:
    """There was no synchronous= keyword: the URL's query was the only way to ask for FULL. The keyword
    is written into the URL, which forked workers and a process given the storage (pickled, as Ray
    actors and `tunesmith worker` get it) open."""
    import multiprocessing

    st = ts.SQLStorage(f"sqlite:///{tmp_path}/s.db", synchronous="FULL")
    assert st.url == f"sqlite:///{tmp_path}/s.db?synchronous=full" and _synchronous(st) == 2
    study = ts.Study({"x": ts.Float(0, 1)}, storage=st, name="s", sampler="random", seed=0)
    study.optimize(_synchronous_objective, n_trials=2, executor=ProcessExecutor(2))
    assert [t.value for t in study.trials] == [2.0, 2.0]
    assert {t.worker for t in study.trials}.isdisjoint({worker_id()})  # read in the workers, not here
    spawn = multiprocessing.get_context("spawn")
    out = spawn.Queue()
    child = spawn.Process(target=_synchronous_in_a_fresh_process, args=(ts.SQLStorage(
        f"sqlite:///{tmp_path}/s.db", synchronous="extra"), out))
    child.start()
    assert out.get(timeout=120) == 3
    child.join(60)
    assert ts.SQLStorage(f"sqlite:///{tmp_path}/s.db?synchronous=full", synchronous="Full").url.endswith(
        "?synchronous=full")  # the same asked twice is fine
    for url, kw, message in [
        (f"sqlite:///{tmp_path}/s.db", "off", "synchronous='off' is not one of normal, full, extra"),
        (f"sqlite:///{tmp_path}/s.db?synchronous=full", "normal",
         "asks for synchronous='full' and the keyword for synchronous='normal'; give it once"),
        ("postgresql+psycopg://u:secret@db.invalid/t", "full", "u:\\*\\*\\*@.*synchronous= is a SQLite setting"),
    ]:
        with pytest.raises(ValueError, match=message):
            ts.SQLStorage(url, synchronous=kw)


def test_the_synchronous_keyword_joins_a_url_whose_query_is_empty(tmp_path: Path) -> None:
    """Before: "s.db?" became "s.db??synchronous=full", refused as an unknown argument '?synchronous'."""
    for query in ("?", "?synchronous=full&"):
        st = ts.SQLStorage(f"sqlite:///{tmp_path}/s.db{query}", synchronous="full")
        assert st.url.count("?") == 1 and _synchronous(st) == 2, st.url


@pytest.mark.parametrize(("query", "message"), [
    ("?synchronus=full", "unknown query argument 'synchronus' .did you mean 'synchronous'.*only 'synchronous'"),
    ("?timeout=5", "unknown query argument 'timeout'; a SQLite URL takes only 'synchronous' .normal, full or extra"),
    ("?synchronous=off", "synchronous='off' is not one of normal, full, extra"),
    ("?synchronous=full&synchronous=normal", "'synchronous' is given 2 times; give it once"),
])
def test_sqlite_url_refuses_other_query_arguments(tmp_path: Path, query: str, message: str) -> None:
    """The driver ignored them with a warning: a typo left commits unsynced, unnoticed."""
    url = f"sqlite:///{tmp_path}/s.db{query}"
    for read_only in (False, True):
        with pytest.raises(ValueError, match=message):
            ts.SQLStorage(url, read_only=read_only)
    with pytest.raises(ValueError, match=message):
        ts.Study({"x": ts.Float(0, 1)}, storage=url, name="s")
    assert not (tmp_path / "s.db").exists()


def test_corrupt_file_is_a_storage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ts.StorageError, match="cannot open storage"):
        make_storage(f"sqlite:///{bad}")


WORKER = """
import sys, tunesmith as ts
ts.set_verbosity("WARNING")
study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", storage=sys.argv[1], name="shared")
study.optimize(lambda t: t.params["x"], n_trials=int(sys.argv[2]))
"""


def test_two_processes_share_one_sqlite_study(shared_storage_url: str, subprocess_env: dict[str, str]) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, shared_storage_url, "40"], env=subprocess_env)
        for _ in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    study = ts.Study.load("shared", shared_storage_url)
    trials = study.trials
    assert [t.number for t in trials] == list(range(80))
    assert all(t.state is TrialState.COMPLETE for t in trials)
    assert len({t.worker for t in trials}) == 2


def test_frozen_trial_rules() -> None:
    with pytest.raises(ValueError, match="complete trial needs a finite value"):
        FrozenTrial(number=0, state=TrialState.COMPLETE, params={}, value=float("nan"))
    t = FrozenTrial(number=0, state="running", params={}, started=1.0, completed=3.5)  # type: ignore[arg-type]
    assert t.state is TrialState.RUNNING and t.duration == 2.5
    assert not t.state.is_finished and TrialState.PRUNED.is_finished
    with pytest.raises(AttributeError):
        t.value = 1.0  # type: ignore[misc]


def test_the_head_of_the_queue_is_read_through_the_state_index(sqlite_url: str) -> None:
    """Reading the waiting trials must not scan the study's finished ones (the number index)."""
    st = make_storage(sqlite_url)
    new_study(st)
    with st.engine.connect() as c:  # type: ignore[attr-defined]
        plan = c.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT * FROM ts_trials WHERE study_id = 1 AND state = 'waiting' "
            "AND number >= 0 ORDER BY number LIMIT 4"
        ).fetchall()
    assert "ts_trials_state" in str(plan), plan


def test_a_read_only_sqlite_storage_serves_many_threads_at_once(sqlite_url: str) -> None:
    study = ts.Study({"x": ts.Float(0, 1)}, storage=sqlite_url, name="r", sampler="random", seed=0)
    study.optimize(lambda t: t["x"], n_trials=30)
    ro = make_storage(sqlite_url, read_only=True)
    assert type(ro.engine.pool).__name__ == "QueuePool"  # type: ignore[attr-defined]
    sid = ro.get_study("r").study_id
    counts: list[int] = []
    barrier = threading.Barrier(8)

    def read() -> None:
        barrier.wait()
        for _ in range(20):
            counts.append(len(ro.get_trials(sid)))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts == [30] * 160


def test_an_unknown_url_scheme_is_a_storage_error_with_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    """postgres:// (Heroku's spelling, no SQLAlchemy alias) ended in a traceback that showed no fix."""
    from tunesmith.cli import main

    with pytest.raises(ts.StorageError, match=r"unknown database kind 'postgres' \(SQLAlchemy has no 'postgres' "
                                              r"alias\); use sqlite:///path/to/file.db or postgresql\+psycopg://"):
        ts.Study({"x": ts.Float(0, 1)}, storage="postgres://tuner:secret@127.0.0.1:1/x", name="s")
    assert main(["studies", "--storage", "postgres://tuner:secret@127.0.0.1:1/x"]) == 2
    err = capsys.readouterr().err
    assert "unknown database kind 'postgres'" in err and "secret" not in err


def test_a_negative_zero_value_reads_back_equal_and_only_sqlite_drops_its_sign(storage_url: str | None) -> None:
    """As the guide says: -0.0 reads back from SQLite as 0.0 (its REAL column drops the sign), from memory
    and PostgreSQL as written; reports and parameters (JSON) keep the sign everywhere."""
    import math

    study = ts.Study({"x": ts.Float(-1.0, 1.0)}, sampler="random", seed=0, storage=storage_url, name="z")
    study.enqueue({"x": -0.0})
    trial = study.ask()
    trial.report(-0.0, 1)
    study.tell(trial, -0.0)
    back = ts.load_study("z", study.storage).trials[0]
    assert back.value == 0.0 and math.copysign(1.0, back.value) == (1.0 if storage_url and "sqlite" in storage_url else -1.0)
    assert math.copysign(1.0, back.intermediate[1]) == math.copysign(1.0, back.params["x"]) == -1.0


def _descriptors_of(path: Path) -> int:
    """How many of this process's file descriptors are open on ``path`` or its -wal/-shm files."""
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd).startswith(str(path)))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
def test_study_load_in_a_loop_beside_an_open_study_keeps_no_descriptors(tmp_path: Path) -> None:
    """Each dropped storage's connections stayed open until the cyclic collector (a listener of its
    engine held the storage), and SQLite keeps a closed connection's descriptor while another
    connection of the process holds the file: 25-29 descriptors after 100-500 loads beside an open
    study. Now a dropped storage closes its connections at once, and the count stays flat."""
    import gc
    import weakref

    path = tmp_path / "m.db"
    first = ts.Study({"x": ts.Float(0, 1)}, storage=f"sqlite:///{path}", name="m", sampler="random", seed=0)
    first.optimize(lambda t: t.params["x"], n_trials=3)
    gc.disable()  # the collector would close what the loop leaves, at moments of its own
    try:
        counts = []
        for _ in range(30):
            study = ts.Study.load("m", f"sqlite:///{path}")
            study.optimize(lambda t: t.params["x"], n_trials=1)
            dropped = weakref.ref(study.storage)
            del study
            assert dropped() is None  # freed by its last reference, not left to the collector
            counts.append(_descriptors_of(path))
    finally:
        gc.enable()
    assert counts == [counts[0]] * len(counts) and len(first.trials) == 33


def _interrupted_at_line(k: int, write: Any) -> bool:
    """``write()`` with a KeyboardInterrupt raised before the ``k``-th line the memory storage runs (as a
    Ctrl-C lands at any instruction of the main thread); whether it was raised."""
    from tunesmith.storage import memory

    seen = [0]

    def trace(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != memory.__file__:
            return None
        if event == "line":
            seen[0] += 1
            if seen[0] == k:
                raise KeyboardInterrupt
        return trace

    sys.settrace(trace)
    try:
        write()
    except KeyboardInterrupt:
        return True
    finally:
        sys.settrace(None)
    return False


def test_a_ctrl_c_at_any_line_of_a_memory_write_leaves_its_reads_by_state_whole() -> None:
    """A Ctrl-C between the memory storage's record and its index of unfinished trials left them
    apart: a trial created running that no read of the running ones found (an interrupted run could
    not fail it, it stayed running for good), or a finished one read as running."""
    from collections.abc import Callable

    from tunesmith.storage import MemoryStorage

    writes: dict[str, Callable[[MemoryStorage, int], Any]] = {
        "create": lambda st, sid: st.create_trial(sid, params={"x": 0.5}),
        "finish": lambda st, sid: st.update_trial(
            sid, st.get_trial(sid, 0).replace(state=TrialState.COMPLETE, value=1.0), expect_state=TrialState.RUNNING),
        "wait": lambda st, sid: st.update_trial(
            sid, st.get_trial(sid, 0).replace(state=TrialState.WAITING), expect_state=TrialState.RUNNING),
    }
    for name, write in writes.items():
        k = 0
        while True:
            k += 1
            st = MemoryStorage()
            sid = st.create_study("s", direction=Direction.MINIMIZE, space={}, config={}).study_id
            if name != "create":
                st.create_trial(sid, params={"x": 0.1})
            if not _interrupted_at_line(k, functools.partial(write, st, sid)):
                break
            every = st.get_trials(sid)
            for state in TrialState:
                assert st.get_trials(sid, state=state) == [t for t in every if t.state is state], (name, k, state)
        assert k > 3, (name, k)


def test_each_trial_s_last_step_is_read_as_the_whole_trials_give_it(storage_url: str | None) -> None:
    """``tunesmith show``'s budget line reads each trial's state and last report's step alone (one query on
    SQL): the same steps, and the same line, as from the trials read whole, for every state, steps reported
    out of order, from 0 and past 2**53, values in every notation, and trials without reports."""
    from tunesmith.report import budget_of_steps, budget_spent

    study = ts.Study({"x": ts.Float(0, 1)}, storage=storage_url, name="s", sampler="random", seed=0,
                     pruner=ts.pruners.ASHA(min_resource=1, reduction_factor=3, max_resource=50, pause=True))
    study.add_trial({"x": 0.1}, 0.1, intermediate={step: 1.0 / step for step in range(1, 51)})
    study.add_trial({"x": 0.2}, 0.2, intermediate={0: 3.0, 7: 2.0, 3: 1.0})  # reported out of order
    study.add_trial({"x": 0.4}, state="pruned", intermediate={4: -1e-300, 2: 5e300})
    study.add_trial({"x": 0.5}, state="failed", intermediate={9: 1.0})
    study.add_trial({"x": 0.6}, state="pruned")  # stopped before its first report
    study.add_trial({"x": 0.3}, state="pruned", intermediate={1: 2.0, 2: 1e-7})
    study.add_trial({"x": 0.7}, state="pruned", intermediate={2**60: 1.5e300})
    for step in (3, 3, 8):
        study.add_trial({"x": 0.8}, state="pruned", intermediate={1: 0.5, step: 0.25})
    paused = study.ask()
    paused.report(0.5, 1)
    paused.report(0.4, 3)  # a rung (1, 3, 9, 27)
    study.tell(paused, state="paused")
    running = study.ask()
    running.report(0.9, 5)
    study.ask()  # running, without reports
    storage = study.storage
    whole = storage.get_trials(study._study_id)
    last = storage.get_last_steps(study._study_id)
    assert last == [(t.state, t.last_step) for t in whole if t.last_step is not None]
    assert (TrialState.PRUNED, 2) in last and (TrialState.PAUSED, 3) in last and (TrialState.RUNNING, 5) in last
    for max_resource in (None, 50, 10):
        said = budget_spent(whole, max_resource)
        assert said.startswith("1,152,921,504,606,847,")
        assert budget_of_steps(last, max_resource) == said
