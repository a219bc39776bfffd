"""In-memory storage: the default for scripts; shared by threads of one process."""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from ..exceptions import DuplicateStudyError, StudyNotFound, TrialFinishedError, TrialNotFound
from ..trial import NO_SYSTEM, Direction, FrozenTrial, SystemState, TrialState
from .base import (
    Storage,
    StudyRecord,
    check_expect,
    check_study_name,
    reads_through_get_trials,
    still_lost,
)


class MemoryStorage(Storage):
    """Studies in this process's memory (``storage=None``): shared by threads, gone when the process ends."""

    url = "memory"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._studies: dict[str, StudyRecord] = {}
        self._trials: dict[int, list[FrozenTrial]] = {}
        self._claims: dict[int, set[str]] = {}
        # per study: the numbers of the unfinished trials by state, so reading the
        # queue (or the paused or running trials) never scans the finished ones
        self._live: dict[int, dict[TrialState, set[int]]] = {}
        self._ids = itertools.count()  # trial_id: unique over all studies of this storage
        self._study_ids = itertools.count()  # never reused: a deleted study's handles find nothing

    def __deepcopy__(self, memo: dict[int, Any]) -> MemoryStorage:
        """Copied as itself, as scikit-learn's ``clone`` of a search given this storage copies it: the
        copy holds the same studies, as a copied SQL storage opens the same database (a copy of the
        studies failed on the storage's lock)."""
        return self

    def create_study(
        self, name: str, *, direction: Direction, space: Mapping[str, Any], config: Mapping[str, Any]
    ) -> StudyRecord:
        check_study_name(name)
        with self._lock:
            if name in self._studies:
                raise DuplicateStudyError(f"a study named {name!r} already exists in {self.url}")
            rec = StudyRecord(next(self._study_ids), name, direction, dict(space), dict(config), time.time())
            self._studies[name] = rec
            self._trials[rec.study_id] = []
            self._claims[rec.study_id] = set()
            self._live[rec.study_id] = {}
            return rec

    def get_study(self, name: str) -> StudyRecord:
        check_study_name(name, lookup=True)
        with self._lock:
            if name not in self._studies:
                raise StudyNotFound(f"no study named {name!r} in {self.url}")
            return self._studies[name]

    def list_studies(self) -> list[StudyRecord]:
        with self._lock:
            return list(self._studies.values())

    def delete_study(self, name: str) -> None:
        with self._lock:
            rec = self.get_study(name)
            del self._studies[name]
            for table in (self._trials, self._claims, self._live):
                del table[rec.study_id]  # a handle still open on it writes nowhere: _trials_of raises

    def create_trial(
        self,
        study_id: int,
        *,
        params: Mapping[str, Any],
        state: TrialState = TrialState.RUNNING,
        claim: str | None = None,
        worker: str | None = None,
        now: float | None = None,
        attrs: Mapping[str, Any] | None = None,
        system: SystemState | None = None,
    ) -> FrozenTrial | None:
        with self._lock:
            trials = self._trials_of(study_id)
            if claim is not None:
                if claim in self._claims[study_id]:
                    return None
                self._claims[study_id].add(claim)
            now = self.clock() if now is None else now
            running = state is TrialState.RUNNING
            t = FrozenTrial(
                number=len(trials),
                state=state,
                params=dict(params),
                worker=worker if running else None,
                started=now if running else None,
                heartbeat=now if running else None,
                attrs=dict(attrs or {}),
                trial_id=next(self._ids),
                system=system or NO_SYSTEM,
            )
            self._index(study_id, t)
            trials.append(t)
            return t

    def _trials_of(self, study_id: int) -> list[FrozenTrial]:
        try:
            return self._trials[study_id]
        except KeyError:
            raise StudyNotFound(f"the study (id {study_id}) is no longer in {self.url}: it was deleted while this "
                                "process ran it (Study.delete)") from None

    def _index(self, study_id: int, trial: FrozenTrial) -> None:
        """Index unfinished ``trial`` under its state, before it is stored (and the record it replaces
        taken out after: :meth:`_unindex`): a Ctrl-C between the steps leaves a number indexed that
        does not hold that state (reads check it), never a trial unindexed."""
        if not trial.state.is_finished:
            self._live[study_id].setdefault(trial.state, set()).add(trial.number)

    def _unindex(self, study_id: int, old: FrozenTrial, new: FrozenTrial) -> None:
        if not old.state.is_finished and old.state is not new.state:
            self._live[study_id][old.state].discard(old.number)

    def fail_with_copy(
        self, study_id: int, failed: FrozenTrial, *, claim: str, confirm: Callable[[], bool] | None = None
    ) -> FrozenTrial | None:
        with self._lock:  # both or neither: no other thread writes between
            if not still_lost(self.get_trial(study_id, failed.number), failed) or not (confirm is None or confirm()):
                return None
            return super().fail_with_copy(study_id, failed, claim=claim)

    def update_trial(
        self,
        study_id: int,
        trial: FrozenTrial,
        *,
        expect_state: TrialState | None = None,
        expect: Callable[[FrozenTrial], bool] | None = None,
    ) -> bool:
        check_expect(expect_state, expect)
        with self._lock:
            trials = self._trials_of(study_id)
            if not 0 <= trial.number < len(trials):
                raise TrialNotFound(f"study has no trial number {trial.number}")
            old = trials[trial.number]
            if expect_state is not None and (old.state is not expect_state or (expect is not None and not expect(old))):
                return False
            if old.state.is_finished:
                if old == trial:  # the same write again
                    return True
                raise TrialFinishedError(
                    f"trial {trial.number} is already {old.state}; finished trials never change"
                )
            self._index(study_id, trial)
            trials[trial.number] = trial
            self._unindex(study_id, old, trial)
            return True

    def get_trials(
        self,
        study_id: int,
        *,
        min_number: int = 0,
        state: TrialState | None = None,
        limit: int | None = None,
        exclude: TrialState | None = None,
    ) -> list[FrozenTrial]:
        with self._lock:
            if study_id not in self._trials:  # deleted: nothing, as a SQL storage reads
                return []
            trials = self._trials[study_id]
            if state is None:
                out = trials[min_number:] if exclude is None else [t for t in trials[min_number:] if t.state is not exclude]
            elif state.is_finished:
                out = [t for t in trials[min_number:] if t.state is state]
            else:
                live = self._live[study_id].get(state, ())
                # a write a Ctrl-C cut short may have left a number indexed that does not hold the state
                numbers = [n for n in live if min_number <= n < len(trials) and trials[n].state is state]
                if limit == 1:  # the head of the queue
                    return [trials[min(numbers)]] if numbers else []
                numbers = sorted(numbers) if limit is None else heapq.nsmallest(limit, numbers)
                return [trials[n] for n in numbers]
            return list(out if limit is None else out[:limit])

    def get_trials_since(
        self, study_id: int, min_number: int, *, also: Collection[int] = (), exclude: TrialState | None = None
    ) -> list[FrozenTrial]:
        if reads_through_get_trials(self, MemoryStorage):  # a subclass filtering or counting in get_trials
            return super().get_trials_since(study_id, min_number, also=also, exclude=exclude)
        with self._lock:
            trials = self._trials.get(study_id)
            if trials is None:  # deleted: nothing, as a SQL storage reads
                return []
            start = max(min_number, 0)
            out = [trials[n] for n in sorted(set(also)) if 0 <= n < min(start, len(trials))] + trials[start:]
            return out if exclude is None else [t for t in out if t.state is not exclude]

    def count_trials(self, study_id: int) -> int:
        with self._lock:
            return len(self._trials.get(study_id, ()))  # deleted: none, as get_trials and SQL read it

    def heartbeat(self, study_id: int, numbers: Sequence[int], now: float) -> None:
        with self._lock:
            trials = self._trials.get(study_id, [])  # deleted: nothing to beat for, as in SQL
            for n in numbers:
                if trials[n].state is TrialState.RUNNING:
                    trials[n] = trials[n].replace(heartbeat=now)

    # -- study management ------------------------------------------------------------------
    def rename_study(self, name: str, new_name: str) -> None:
        check_study_name(new_name)
        with self._lock:
            rec = self.get_study(name)
            if new_name in self._studies:
                raise DuplicateStudyError(f"a study named {new_name!r} already exists in {self.url}")
            del self._studies[name]
            self._studies[new_name] = dataclasses.replace(rec, name=new_name)

    def set_study_config(
        self, study_id: int, config: Mapping[str, Any], *, expect: Mapping[str, Any] | None = None
    ) -> bool:
        with self._lock:
            for name, rec in self._studies.items():
                if rec.study_id == study_id:
                    if expect is not None and rec.config != dict(expect):
                        return False
                    self._studies[name] = dataclasses.replace(rec, config=dict(config))
        return True

