"""In-memory storage: the default for scripts; shared by threads of one process."""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..exceptions import DuplicateStudyError, StudyNotFound, TrialFinishedError
from ..trial import Direction, FrozenTrial, TrialState
from .base import Storage, StudyRecord, check_study_name, held_record, holds_promotion, lost_record


class MemoryStorage(Storage):
    url = "memory"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._studies: dict[str, StudyRecord] = {}
        self._trials: dict[int, list[FrozenTrial]] = {}
        self._claims: dict[int, set[str]] = {}
        # per study: no trial numbered below this is waiting, so ask scans only
        # the trials created since (amortized O(1) instead of O(trials))
        self._no_waiting_below: dict[int, int] = {}
        self._ids = itertools.count()  # trial_id: unique over all studies of this storage

    def create_study(
        self, name: str, *, direction: Direction, space: Mapping[str, Any], config: Mapping[str, Any]
    ) -> StudyRecord:
        check_study_name(name)
        with self._lock:
            if name in self._studies:
                raise DuplicateStudyError(f"a study named {name!r} already exists in {self.url}")
            rec = StudyRecord(len(self._trials), name, direction, dict(space), dict(config), time.time())
            self._studies[name] = rec
            self._trials[rec.study_id] = []
            self._no_waiting_below[rec.study_id] = 0
            self._claims[rec.study_id] = set()
            self._no_waiting_below[rec.study_id] = 0
            return rec

    def get_study(self, name: str) -> StudyRecord:
        check_study_name(name)
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
            self._trials[rec.study_id] = []
            self._no_waiting_below[rec.study_id] = 0

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
    ) -> FrozenTrial | None:
        with self._lock:
            if claim is not None:
                if claim in self._claims[study_id]:
                    return None
                self._claims[study_id].add(claim)
            trials = self._trials[study_id]
            now = time.time() if now is None else now
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
            )
            trials.append(t)
            return t

    def pop_waiting(self, study_id: int, *, worker: str, now: float) -> FrozenTrial | None:
        with self._lock:
            trials = self._trials[study_id]
            for i in range(self._no_waiting_below.get(study_id, 0), len(trials)):
                t = trials[i]
                if t.state is TrialState.WAITING:
                    new = t.replace(state=TrialState.RUNNING, worker=worker, started=now, heartbeat=now)
                    trials[i] = new
                    self._no_waiting_below[study_id] = i + 1
                    return new
            self._no_waiting_below[study_id] = len(trials)
            return None

    def claim_paused(
        self, study_id: int, number: int, *, worker: str, now: float
    ) -> FrozenTrial | None:
        with self._lock:
            trials = self._trials[study_id]
            if number >= len(trials) or trials[number].state is not TrialState.PAUSED:
                return None
            new = trials[number].replace(state=TrialState.RUNNING, worker=worker, heartbeat=now)
            trials[number] = new
            return new

    def update_trial(self, study_id: int, trial: FrozenTrial) -> None:
        with self._lock:
            old = self._trials[study_id][trial.number]
            if old.state.is_finished:
                raise TrialFinishedError(
                    f"trial {trial.number} is already {old.state}; finished trials never change"
                )
            self._trials[study_id][trial.number] = trial
            if trial.state is TrialState.WAITING:  # re-queued: ask must look from here again
                below = self._no_waiting_below.get(study_id, 0)
                self._no_waiting_below[study_id] = min(below, trial.number)

    def get_trials(self, study_id: int, *, min_number: int = 0) -> list[FrozenTrial]:
        with self._lock:
            return list(self._trials[study_id][min_number:])

    def heartbeat(self, study_id: int, numbers: Sequence[int], now: float) -> None:
        with self._lock:
            trials = self._trials[study_id]
            for n in numbers:
                if trials[n].state is TrialState.RUNNING:
                    trials[n] = trials[n].replace(heartbeat=now)

    def fail_running(
        self,
        study_id: int,
        *,
        error: str,
        now: float,
        stale_before: float | None = None,
        worker: str | None = None,
        requeue: bool = False,
        dead: bool = False,
    ) -> list[FrozenTrial]:
        with self._lock:
            trials = self._trials[study_id]
            lost = [t for t in trials if _matches(t, stale_before, worker)]
            out = []
            for t in lost:
                if dead and holds_promotion(t):
                    trials[t.number] = held_record(t, error)
                    out.append(trials[t.number])
                    continue
                copy = None
                if requeue:
                    copy = FrozenTrial(
                        number=len(trials), state=TrialState.WAITING, params=dict(t.params),
                        attrs={"retry_of": t.number}, trial_id=next(self._ids),
                    )
                    trials.append(copy)
                failed = lost_record(t, error, now, None if copy is None else copy.number)
                trials[t.number] = failed
                out.append(failed)
            return out

    # -- study management ------------------------------------------------------------------
    def rename_study(self, name: str, new_name: str) -> None:
        with self._lock:
            rec = self.get_study(name)
            if new_name in self._studies:
                raise DuplicateStudyError(f"a study named {new_name!r} already exists in {self.url}")
            del self._studies[name]
            self._studies[new_name] = dataclasses.replace(rec, name=new_name)

    def set_study_config(self, study_id: int, config: Mapping[str, Any]) -> None:
        with self._lock:
            for name, rec in self._studies.items():
                if rec.study_id == study_id:
                    self._studies[name] = dataclasses.replace(rec, config=dict(config))


def _matches(t: FrozenTrial, stale_before: float | None, worker: str | None) -> bool:
    if t.state is not TrialState.RUNNING:
        return False
    if stale_before is not None and (t.heartbeat or 0.0) >= stale_before:
        return False
    return worker is None or t.worker == worker
