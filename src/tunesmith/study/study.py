"""Study: ties a space, a sampler, a pruner and a storage together."""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from ..cv import CV_ATTR, is_summary
from ..exceptions import (
    DuplicateStudyError,
    SearchExhausted,
    StorageError,
    StudyNotFound,
    TrialFinishedError,
    TrialNotFound,
    answers_optunas_names,
    describe_exception,
)
from ..importance import Importances, importance
from ..pruners import Decision, NopPruner, Pruner, as_stored, make_pruner
from ..pruners import is_known as is_pruner
from ..samplers import AutoSampler, Sampler, is_known, make_sampler
from ..space import Space
from ..space.params import Int, check_flag, did_you_mean, plural, same_definition, uncallable_with
from ..space.space import same_spaces
from ..storage import MemoryStorage, Storage, make_storage, worker_id
from ..storage.base import NewStudy, command_line, password_note, who
from ..trial import Direction, FrozenTrial, TrialState, best_of, json_attrs
from . import lifecycle
from .heartbeat import Heartbeat, HeartbeatConfig, reconcile
from .manage import (
    COPY_ID,
    check_book_free,
    check_name_before_file,
    check_new_name,
    in_companion,
    record_pick,
    record_sampler,
    sampler_label,
)
from .resume import resume_next
from .trial import Trial, _as_float, _of_shape, short_repr

logger = logging.getLogger("tunesmith")
#: the line of a study opened with a space that holds trials (a search says its own instead)
RESUMING = "study %r in %s holds %s: resuming it (its trials count as this objective's; another name starts a new study)"
T = TypeVar("T")
#: the most trial numbers a refresh that left the queue out notes as skipped at once: more apart
#: is no queue but a number written into the database by hand, read again from there instead
MAX_SKIPPED = 100_000

Objective = Callable[[Trial], Any]


@answers_optunas_names
class Study:
    """A search for the best configuration of a space.

    Args:
        space: the :class:`Space` (or a dict of parameters). May be omitted
            when loading an existing study from a storage.
        direction: "minimize" or "maximize" the objective's value.
        sampler: "auto" (default), "grid", "random", "sobol", "bayes", "tpe",
            or a :class:`~tunesmith.samplers.Sampler`.
        pruner: None, a name ("median", "asha", ...) or a Pruner.
        seed: seed of the sampler: the same seed gives the same trials.
        storage: None (in memory), "sqlite:///file.db", a PostgreSQL URL, or a
            Storage. With a persistent storage, opening the same ``name``
            again resumes the study.
        name: the study's name in the storage.
        load_if_exists: resume an existing study of that name (else raise).
        heartbeat_interval: seconds between heartbeats of running trials
            (None: off). Stored with a new study; workers that open it later
            use the stored settings unless they pass their own.
        grace_period: a running trial whose heartbeat is older than this is
            failed ("worker lost") by the next worker that asks (default 5x
            the interval).
        requeue_failed: also queue a copy of each lost trial, same parameters.
    """


    def __init__(
        self,
        space: Space | Mapping[str, Any] | None = None,
        *,
        direction: str | Direction | None = None,
        sampler: str | Sampler | type[Sampler] | dict[str, Any] | None = None,
        pruner: str | Pruner | dict[str, Any] | None = None,
        seed: int | None = None,
        storage: str | os.PathLike[str] | Storage | None = None,
        name: str | None = None,
        load_if_exists: bool = True,
        heartbeat_interval: float | None = None,
        grace_period: float | None = None,
        requeue_failed: bool = False,
        _settings: Mapping[str, Any] | None = None,
        _read_in: Space | None = None,
        _trials: Sequence[FrozenTrial] = (),
        _book: Sequence[FrozenTrial] | None = None,
    ) -> None:
        load_if_exists = _checked_arguments(space, sampler, pruner, name, load_if_exists)
        if space is not None and name is not None:
            check_name_before_file(name, storage)
        self._storage = make_storage(storage, create=space is not None)  # resumed: a missing file is not made
        self.name = name if name is not None else f"study-{uuid.uuid4().hex[:8]}"
        beat = HeartbeatConfig.build(heartbeat_interval, grace_period, requeue_failed)
        self._stored_space: Space | None = None  # the stored space as _check_same read it (read once)
        self._counted: int | None = None  # the trials _open counted (counted once)
        record = self._open(space, direction, sampler, pruner, seed, load_if_exists, beat, _settings, _trials, _book)
        if name is None and not isinstance(self._storage, MemoryStorage):  # a rerun would make another one
            logger.info("created study %r in %s; a study made without name= gets a new name at each run: "
                        "pass name=... to resume it from a later run", self.name, self._storage.display_url)
        self._take_record(record, _read_in)
        cfg = dict(record.config)
        self._take_algorithms(sampler, pruner, seed, cfg)
        self._start_cache(copying=_read_in is not None)
        if "heartbeat" in cfg:
            stored_beat = _from_config(self._where, "heartbeat", lambda: HeartbeatConfig.from_dict(cfg["heartbeat"]))
            beat = stored_beat if heartbeat_interval is None else reconcile(beat, stored_beat, self.name, self._storage)
        self._heartbeat = Heartbeat(self._storage, self._study_id, beat)
        self._start_warnings()
        self._said_no_pruner = pruner is not None  # pruner="none" given: no early stopping is meant, nothing to say
        if sampler is not None:
            self.sampler.check(self.space)
            record_sampler(self, cfg)  # an override on an existing study is recorded

    @property
    def _where(self) -> str:
        """The study as messages name it: its name and its storage."""
        return f"study {self.name!r} in {self._storage.display_url}"

    def _take_record(self, record: Any, read_in: Space | None) -> None:
        """The opened study's stored identity: id, creation time, direction, space and copy id."""
        self._study_id = record.study_id
        #: when the study was created (seconds since the epoch): tells two studies of one name apart
        self.created: float = record.created
        self.direction = record.direction
        # read_in: the space to read a study whose stored one is unreadable in (to copy its trials out)
        read = read_in if read_in is not None else self._stored_space  # the stored space, read once
        self.space = read if read is not None else Space.stored(record.space, self._where)
        cfg = record.config
        #: the study's own id, made with it (a copy, import or focus gets a new one): its checkpoints go to a
        #: folder of its own (checkpoint.study_folder); None for a study an earlier tunesmith made
        self.copy_id: str | None = cfg[COPY_ID] if isinstance(cfg.get(COPY_ID), str) else None

    def _take_algorithms(self, sampler: Any, pruner: Any, seed: int | None, cfg: Mapping[str, Any]) -> None:
        """The sampler and pruner given, else the stored ones; a pruner given that differs from the
        stored one is warned about (other workers decide with the stored one)."""
        self.sampler: Sampler = (make_sampler(sampler, seed) if sampler is not None
                                 else _from_config(self._where, "sampler",
                                                   lambda: _stored_sampler(self.name, cfg["sampler"], seed),
                                                   fix=_NAME_A_SAMPLER))
        self.pruner = make_pruner(pruner) if pruner is not None else _stored_pruner(self.name, cfg)
        stored = cfg.get("pruner")
        if pruner is not None and stored is not None and _described(stored) != self.pruner.describe():
            logger.warning(
                "study %r was created with pruner %s; this process uses %s, so its decisions differ "
                "from other workers' (a pruner that does not pause never resumes paused trials). "
                "Pass the same pruner, or leave pruner= out to use the stored one",
                self.name, stored, self.pruner.describe(),
            )  # fmt: skip

    def _start_cache(self, *, copying: bool) -> None:
        """An empty cache of trials read (the first refresh reads them all), and the sampler seeded
        by the trials the study holds now."""
        self._lock = threading.RLock()
        self._finished: dict[int, FrozenTrial] = {}
        self._canonical_params: dict[int, Mapping[str, Any]] = {}  # live trials' params, checked
        self._unfit: set[int] = set()  # trials whose params do not fit the space: not shown to the sampler
        self._copying = copying  # read to be copied: the copy says which trials do not fit, not the sampler
        self._next = 0  # one past the highest trial number read: the next refresh reads from it on
        self._live: set[int] = set()  # numbers below it that may hold an unfinished trial: read again
        # counted, not read: opening stays quick
        self._session = self._storage.count_trials(self._study_id) if self._counted is None else self._counted
        self.sampler.reseed(self._session, 0)

    def _start_warnings(self) -> None:
        """The once-per-study warnings, none given yet, and what is noted once asked."""
        self._warned_no_checkpoint = False
        self._warned_idle = False
        self._warned_repeat = False  # every configuration of a finite space tried; the sampler repeats them
        self._warned_inexact = False  # an integer value beyond 2**53 stored as the nearest float
        self._size: float | None = None  # the space's number of configurations, once asked
        self._stop_requested = False
        self._interrupted: str | None = None  # what interrupted the last optimize call (Study.interrupted)
        self._said_no_reports = False  # the pruner-without-reports warning: once per study object
        self._said_no_pruner = False  # should_prune() in a study without a pruner: said once per study object
        self._said_no_pruner_to: Any = None  # a run's shared flag set as it is said (worker processes)
        self._no_pruner_said_by_driver = False  # a Ray actor's copy: should_prune() only marks it, the driver says it
        self._no_pruner_to_driver: Callable[[], None] | None = None  # a Ray actor's copy: tells the driver as asked
        self._picked: str | None = None  # what sampler "auto" picked, once recorded

    @property
    def pruner(self) -> Pruner:
        return self._pruner

    @pruner.setter
    def pruner(self, pruner: Pruner) -> None:
        """Setting it also tells the sampler whether trials stop early ("auto" picks its
        strategy from that at its first suggestion, and keeps it)."""
        self._pruner = pruner
        self.sampler.set_early_stopping(not isinstance(pruner, NopPruner) and getattr(pruner, "auto_tpe", True))

    # -- opening ----------------------------------------------------------------
    def _open(
        self,
        space: Space | Mapping[str, Any] | None,
        direction: str | Direction | None,
        sampler: Any,
        pruner: Any,
        seed: int | None,
        load_if_exists: bool,
        beat: HeartbeatConfig,
        settings: Mapping[str, Any] | None = None,
        trials: Sequence[FrozenTrial] = (),
        book: Sequence[FrozenTrial] | None = None,
    ) -> Any:
        missing = ""
        try:
            record = self._storage.get_study(self.name)
        except StudyNotFound as exc:
            record, missing = None, str(exc)  # with the storage's "did you mean" when a name is close
        if record is not None:
            if not load_if_exists:
                raise DuplicateStudyError(
                    f"a study named {self.name!r} already exists in {self._storage.display_url}; "
                    "pass load_if_exists=True to resume it or choose another name"
                )
            self._check_same(record, space, direction)
            # load_study, and evaluate_best opening its companion: the study wanted, nothing to say
            if space is not None and not in_companion() and (n := self._count(record.study_id)):
                logger.info(RESUMING, self.name, self._storage.display_url, plural(n, "trial"))
            return record
        if space is None:
            raise ValueError(f"{missing}{self._storage.held_beside(self.name)}: pass a space to create it")
        check_new_name(self.name)
        check_book_free(self._storage, self.name)  # "<name>:test" left by another writer: shown as its own
        settings = {COPY_ID: uuid.uuid4().hex, **(settings or {})}  # its own checkpoint folder (study_folder)
        space = space if isinstance(space, Space) else Space(space)
        dirn = Direction.parse(direction or "minimize")
        config = _new_config(space, sampler, pruner, seed, beat, settings)
        try:
            # a new study's trials (a focus's, an import's) in the same write: none is ever left without them
            if book is None:
                return self._storage.create_study_with_trials(self.name, direction=dirn, space=space.to_dict(),
                                                              config=config, trials=trials)
            return self._storage.create_studies([  # and an import's test results, as a copy's
                NewStudy(self.name, dirn, space.to_dict(), config, trials), _book(self.name, space, dirn, book)])[0]
        except ValueError as exc:  # another worker created it a moment ago: the same study, or refused
            try:
                record = self._storage.get_study(self.name)
            except StudyNotFound:
                raise exc from None  # refused (its name): no study found by it either
            mine = all(record.config.get(k) == v for k, v in settings.items())  # a retried write
            if isinstance(exc, DuplicateStudyError) and not load_if_exists and not mine:  # that had committed
                raise exc from None  # another writer's: not this one's to join
            self._check_same(record, space, dirn)
            return record

    def _count(self, study_id: int) -> int:
        """The study's trials, counted once (the session starts past them)."""
        self._counted = self._storage.count_trials(study_id)
        return self._counted

    def _check_same(self, record: Any, space: Any, direction: Any) -> None:
        if space is not None:
            space = space if isinstance(space, Space) else Space(space)
            given = space.to_dict()
            self._stored_space = Space.stored(record.space, self._where)
            stored = self._stored_space.to_dict()
            if not same_spaces(given, stored):
                raise ValueError(
                    f"study {self.name!r} exists with a different space ({_space_change(stored, given)}); use "
                    "another name, or leave the space out (space= in Python, space: in a study file) to "
                    "resume it as it is; to go on in the new space with the trials that fit it, copy it: "
                    f"Study.load({self.name!r}, storage).copy(NEW_NAME, space=...) in Python, "
                    f"{_copy_command(self.name, self._storage)}{_fill_hint(stored, given)}"
                )
        if direction is not None and Direction.parse(direction) is not record.direction:
            raise ValueError(
                f"study {self.name!r} exists with direction {record.direction}, not {direction}; use another "
                "name, or leave the direction out (direction= in Python, direction: in a study file) to resume it"
            )

    @classmethod
    def load(cls, name: str, storage: str | os.PathLike[str] | Storage, **kwargs: Any) -> Study:
        """Open an existing study (raises StudyNotFound if there is none)."""
        if _looks_like_storage(name) and isinstance(storage, str) and not _looks_like_storage(storage):
            raise ValueError(f"the study's name comes first, then its storage: load_study(name, storage); got the "
                             f"name {name!r} and the storage {storage!r}")
        st = make_storage(storage, create=False)  # a misspelt SQLite path is not found, not made empty
        try:
            st.get_study(name)
        except StudyNotFound as exc:
            raise StudyNotFound(f"{exc}{st.held_beside(name)}") from None
        return cls(storage=st, name=name, **kwargs)

    # -- records -------------------------------------------------------------------
    @property
    def storage(self) -> Storage:
        return self._storage

    @property
    def trials(self) -> list[FrozenTrial]:
        """Every trial of the study, by number (all workers' included)."""
        return self._history()

    def _history(self, *, exclude: TrialState | None = None) -> list[FrozenTrial]:
        """All trials (but those in ``exclude``). Finished ones are kept since they never change; a
        refresh reads the trials after the last one seen and again the unfinished ones below it."""
        with self._lock:
            fresh = self._storage.get_trials_since(self._study_id, self._next, also=self._live, exclude=exclude)
            if not fresh and self._next > 0 and self._storage.count_trials(self._study_id) == 0:
                self._current_name()  # trials seen, none stored: deleted by another handle (it raises, saying so)
            live: dict[int, FrozenTrial] = {}
            for t in fresh:
                if t.state.is_finished:
                    self._finished[t.number] = self._canonical(t)
                    self._canonical_params.pop(t.number, None)
                else:
                    live[t.number] = self._canonical_live(t)
            self._track_live(live, fresh, exclude)
            merged = {**self._finished, **live}
            return [merged[n] for n in sorted(merged)]

    def _track_live(self, live: dict[int, FrozenTrial], fresh: list[FrozenTrial], exclude: TrialState | None) -> None:
        """Note which trials the next refresh reads again: the unfinished ones. One in ``exclude`` is
        not read, so each number it may hold stays noted: the noted ones not read (none if all were
        read: a row gone) and the numbers skipped between the last seen and the last read."""
        if exclude is None:
            self._live = set(live)
            self._next = max(self._next, max((t.number for t in fresh), default=-1) + 1)
            return
        got = {t.number for t in fresh}
        self._live = {n for n in self._live if n not in got} | set(live)
        for n in sorted(n for n in got if n >= self._next):
            if n - self._next > MAX_SKIPPED:  # no queue: a number written by hand; read from here again
                break
            self._live.update(range(self._next, n))
            self._next = n + 1

    def _canonical_live(self, t: FrozenTrial) -> FrozenTrial:
        """:meth:`_canonical`, validating each unfinished trial's params once, not on every read
        (a queue of waiting trials is read again on every pruning decision)."""
        if self._canonical_params.get(t.number) == t.params:
            return t
        out = self._canonical(t)
        if out is t:
            self._canonical_params[t.number] = t.params
        return out

    def _canonical(self, t: FrozenTrial) -> FrozenTrial:
        if not t.params and t.state is TrialState.FAILED:  # no point (a row read as unreadable, said once there)
            return t
        try:
            params = self.space.validate(t.params)
        except (ValueError, TypeError, OverflowError) as exc:
            if t.number not in self._unfit:
                self._unfit.add(t.number)
                if not self._copying:
                    logger.warning("study %r, trial %d: its parameters do not fit the space (%s), so the sampler "
                                   "leaves it out; was it changed in the database?", self.name, t.number,
                                   str(exc)[:200])
            return t
        return t if params == t.params else t.replace(params=params)

    def trials_in(self, *states: TrialState | str) -> list[FrozenTrial]:
        if len(states) == 1 and isinstance(states[0], (list, tuple, set, frozenset)):
            raise TypeError(f"trials_in takes the states as separate arguments, got one {type(states[0]).__name__}: "
                            f"write trials_in({', '.join(map(repr, states[0]))})")
        wanted = {_as_state(s) for s in states}
        return [t for t in self._history() if t.state in wanted]

    @property
    def best_trial(self) -> FrozenTrial:
        """The complete trial with the best value; among ties, the one whose reports were better,
        read from the last backwards, then the earliest (:func:`~tunesmith.trial.tie_key`)."""
        trials = self._history()
        best = best_of(trials, self.direction)
        if best is None:
            counts = Counter(t.state for t in trials)
            said = ", ".join(f"{counts[state]} {state.value}" for state in TrialState if counts[state])
            raise ValueError(
                f"study {self.name!r} has no complete trial yet" + (f" ({said})" if said else "")
                + ("; a paused trial completes only once its pruner promotes it and optimize resumes it: "
                   "run more trials" if counts[TrialState.PAUSED] else "")
            )
        return best

    @property
    def best_params(self) -> dict[str, Any]:
        return dict(self.best_trial.params)

    @property
    def best_value(self) -> float:
        return float(self.best_trial.value)  # type: ignore[arg-type]

    def evaluate_best(self, fn: Callable[..., Any], k: int = 5, *, seeds: Sequence[int] | None = None) -> Any:
        """Re-evaluate the ``k`` best configurations on data the search never saw.

        ``fn(trial)`` (or ``fn(trial, seed)`` for each of ``seeds``) returns a test
        score. The results are recorded apart from the search (no sampler or pruner
        reads them) and returned as an :class:`~tunesmith.study.evaluate.Evaluation`
        (validation next to test, the gap, the winner by test); ``best_trial`` stays
        what the search found. See docs/trust.md.
        """
        from .evaluate import evaluate_best

        self._current_name()  # its test results go beside the study's name now
        return evaluate_best(self, fn, k=k, seeds=seeds)

    def to_dataframe(self) -> Any:
        """The trials as a pandas DataFrame (one row each, a column per parameter). Integer columns with
        empty rows (``stopped_at_step``, an ``Int`` parameter whose condition some trials did not meet) are
        pandas' nullable ``Int64`` (``<NA>`` where empty), not floats."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_dataframe needs pandas: pip install 'tunesmith[sklearn]'") from None
        rows = trial_rows(self.trials, self.space)
        frame = pd.DataFrame(rows)
        ints = [f"params_{name}" for name, param in self.space.items() if isinstance(param, Int)]
        for column in ["stopped_at_step", *ints]:
            values = [row[column] for row in rows]
            if column in frame and (column == "stopped_at_step" or None in values) and _all_int64(values):
                frame[column] = pd.array(values, dtype="Int64")  # (not the floats pandas made: 2**60 + 1 kept)
        return frame

    def importance(self, method: str = "fanova", *, params: Sequence[str] | None = None, seed: int = 0,
                   options: Any = None) -> Importances:
        """Which parameters matter: :func:`tunesmith.importance.importance` on this study's
        trials ("fanova": shares of the variance; "ped-anova": what sets the good trials apart); a
        ValueError with fewer than 10 complete trials, saying how many more to run."""
        return importance(self.trials, self.space, method=method, direction=self.direction, params=params,
                          seed=seed, options=options)

    # -- ask / tell ----------------------------------------------------------------------
    def enqueue(
        self, params: Mapping[str, Any], *, skip_if_exists: bool = False, attrs: Mapping[str, Any] | None = None
    ) -> int | None:
        """Queue a configuration to evaluate before the sampler's own picks.

        Returns the queued trial's number, or None when ``skip_if_exists`` and
        the configuration was already tried or queued. ``attrs`` are stored
        with the queued trial (JSON-serializable).
        """
        skip_if_exists = check_flag("skip_if_exists", skip_if_exists)  # "no" was read as true
        canon = self.space.validate(params)
        attrs = json_attrs(attrs, "enqueue") if attrs is not None else None
        if skip_if_exists and any(t.params == canon for t in self._history()):
            return None
        rec = self._storage.create_trial(self._study_id, params=canon, state=TrialState.WAITING, attrs=attrs)
        assert rec is not None
        return rec.number

    def ask_promoted(self) -> Trial | None:
        """Resume the best promotable paused trial, or None; never a new
        configuration. ``optimize`` calls it once its budget of new trials is
        spent, so promotions earned by the last trials still run."""
        return self._ask_only(lambda me: resume_next(self, me))

    def ask_waiting(self) -> Trial | None:
        """Start the first waiting trial (queued, or a re-queued copy of a lost
        one), or None; never a new configuration (``optimize`` after the search
        is exhausted)."""
        return self._ask_only(self._pop_waiting)

    def _pop_waiting(self, me: str) -> FrozenTrial | None:
        return lifecycle.claim_waiting(self._storage, self._study_id, me, self._storage.clock)

    def _ask_only(self, pick: Callable[[str], FrozenTrial | None], me: str | None = None) -> Trial | None:
        """The trial ``pick(worker)`` claims (``me``: this process's worker_id), started (heartbeat), or None."""
        me = worker_id() if me is None else me
        with self._lock:
            self._heartbeat.reap()
            rec = pick(me)
            if rec is None:
                return None
            self._heartbeat.started(rec.number)
            return Trial(self, self._canonical(rec))

    def ask(self) -> Trial:
        """Start a trial: a queued configuration if any, else the sampler's next.

        Raises :class:`~tunesmith.exceptions.SearchExhausted` when the sampler
        has nothing left (every grid point taken).
        """
        me = worker_id()
        with self._lock:
            # promoted paused trials go first, then queued ones
            queued = self._ask_only(lambda w: resume_next(self, w) or self._pop_waiting(w), me)
            if queued is not None:
                return queued
            for _ in range(1000):
                history = self._history() if self.sampler.uses_history else []
                if self._unfit:
                    history = [t for t in history if t.number not in self._unfit]
                suggestion = self.sampler.suggest(self.space, history, self.direction)
                self._record_pick()
                if suggestion is None:
                    raise SearchExhausted(
                        f"{self.sampler.name} search of study {self.name!r} is exhausted: "
                        f"every configuration has been tried or is running ({len(history)} trials)"
                    )
                params = self.space.validate(suggestion.params)
                claim = (suggestion.claim or self.space.key(params)) if suggestion.unique else None
                if claim is not None and suggestion.then:  # the next points, claimed in the same write
                    then = [self.space.validate(c) for c in suggestion.then]
                    rec = self._storage.create_first_free(
                        self._study_id, [(params, claim), *((c, self.space.key(c)) for c in then)], worker=me)
                else:
                    rec = self._storage.create_trial(self._study_id, params=params, claim=claim, worker=me)
                if rec is not None:  # its params are canonical already (validated just above)
                    self._heartbeat.started(rec.number)
                    if (claim is None or suggestion.claim) and not self._warned_repeat:
                        self._warn_repeat(rec.number)
                    return Trial(self, rec)
        raise RuntimeError(  # before: "could not claim a configuration after 1000 attempts", no cause named
            f"{type(self.sampler).__name__} ({self.sampler.name!r}) proposed 1000 configurations in a row that "
            f"trials of study {self.name!r} already hold, the last {short_repr(dict(params))}: a Suggestion with "
            "unique=True runs once, so the sampler must skip the configurations of the trials it is given (finished "
            "and running) and return None when none is left, or return unique=False to let a configuration repeat"
            + ("" if self.sampler.uses_history else  # before: told to skip trials it is never given
               f"; {type(self.sampler).__name__}.uses_history is False, so it is given no trials: set it to True")
        )

    def _record_pick(self) -> None:
        """Store, once per study object, what sampler "auto" picked (shown as "auto (bayes)")."""
        chosen = getattr(self.sampler, "chosen", None) if isinstance(self.sampler, AutoSampler) else None
        if chosen is not None and self._picked != chosen.name:
            self._picked = chosen.name
            record_pick(self, chosen.name)

    @property
    def sampler_label(self) -> str:
        """The sampler as ``tunesmith show``, the report and the dashboard print it: its name,
        and for "auto" what it picked ("auto (bayes)") once a process has picked."""
        if self._picked is not None and self.sampler.name == "auto":
            return f"auto ({self._picked})"
        if self.sampler.name != "auto":
            return self.sampler.name
        return sampler_label(self._storage.get_study(self._current_name()).config)

    def _warn_repeat(self, number: int) -> None:
        """Say once when every configuration of a finite space has been tried and the
        sampler (random, Sobol, TPE, bayes: not grid, which stops) goes on repeating them."""
        size = self._size = self.space.cardinality if self._size is None else self._size  # once per study
        if size > 100_000:  # continuous, or too many to be tried: never said
            self._warned_repeat = True
            return
        if number < size or (number != size and number & (number - 1)):  # looked at size, then at powers of 2
            return
        seen = {self.space.key(t.params) for t in self._history() if t.state is not TrialState.WAITING}
        if len(seen) < size:
            return
        self._warned_repeat = True
        logger.warning(
            "study %r: every one of the %d configurations of its finite space has been tried; sampler %r "
            "now repeats them (worth it only for a noisy objective). sampler='grid' stops when all are done",
            self.name, int(size), self.sampler.name)

    def tell(
        self,
        trial: Trial | FrozenTrial | int,
        value: Any = None,
        *,
        state: TrialState | str | None = None,
        error: str | None = None,
    ) -> FrozenTrial:
        """Finish a trial with its value, or with ``state="failed"``/``"pruned"``.

        A value that is not a finite number (NaN, inf, None, a string) marks
        the trial failed with the reason stored. Returns the finished record.
        ``state="paused"`` instead stops the trial without finishing it: a
        pausing pruner may promote it later and ``ask`` then resumes it. A
        trial the pruner could never resume (no pausing pruner, or not stopped
        at a rung) is recorded as pruned instead.
        """
        record = self._record_of(trial)
        end = _end_state(state)
        _check_tellable(record, end)
        final = self._ended(record, value, end, error)
        # stop beating before the write: once paused, another worker may resume the
        # trial and start its own heartbeat for it, which this must not cancel
        self._heartbeat.finished(final.number)
        self._write_end(record, final)
        if isinstance(trial, Trial):
            trial._record = final
        if final.state is TrialState.FAILED:
            logger.warning("trial %d failed: %s", final.number, final.error)
        elif final.state is TrialState.COMPLETE and not self._warned_idle:
            self._warn_idle(final)
        return final

    def _ended(self, record: FrozenTrial, value: Any, end: TrialState | None, error: str | None) -> FrozenTrial:
        """The record :meth:`tell` writes: paused, if the pruner could resume it (else pruned), or finished."""
        if end is not TrialState.PAUSED:
            return self._finish(record, value, end, error)
        if self.pruner.can_resume(record):
            final = lifecycle.pause(record)
            self._warn_no_checkpoint(final)
            return final
        final = self._finish(record, None, TrialState.PRUNED, None)  # nothing would ever resume it: stopped for good
        logger.warning(
            "trial %d was asked to pause, but %s, so nothing would ever resume it: recorded as pruned",
            record.number, f"pruner {self.pruner.name!r} does not pause (e.g. ASHA(pause=True) does)"
            if not self.pruner.pauses else "it is not at a rung the pruner promotes from, or reported "
            "nothing since it was last resumed")
        return final

    def _write_end(self, record: FrozenTrial, final: FrozenTrial) -> None:
        """Write ``final`` over ``record``, or raise TrialFinishedError saying who changed it since."""
        # a paused record (a stale handle's, an old list's) must still be the stored pause: another
        # worker may have resumed, trained and paused the trial again, and this write would undo that
        # a running one that a lost worker's trial is held as (lifecycle.fail_lost: one that can go on from its
        # checkpoint) must still be the run read: held, then resumed by another worker, this end would end that
        # run. Others are failed, not held, when lost: the state suffices (the check reads and decodes the row)
        same = lifecycle._is_pause_of(record) if record.state is TrialState.PAUSED \
            else functools.partial(lifecycle.same_run, record) \
            if record.state is TrialState.RUNNING and lifecycle.resumable(record, pauses=True) else None
        if not self._storage.update_trial(self._study_id, final, expect_state=record.state, expect=same):
            stored = self._storage.get_trial(self._study_id, record.number)
            # the worker that last resumed (or paused) it; its heartbeat, by this process's clock, tells a process
            # that has its pid now from it
            beat = None if stored.heartbeat is None else \
                stored.heartbeat - self._storage.clock() + self._storage.local_clock()
            now, by = stored.state, who(stored.worker, beat)
            raise TrialFinishedError(
                f"trial {record.number} is already {now}; finished trials never change" if now.is_finished
                else f"trial {record.number} is no longer {record.state} but {now}: {by} changed it"
                if now is not record.state else f"trial {record.number} was resumed and paused again by {by} "
                "since this record of it was read: read it again (study.trials) before ending it"
                if now is TrialState.PAUSED else f"trial {record.number} was started again by {by} since "
                "this run of it began (this one was taken for lost): that run goes on and ends it; this end is "
                "not recorded"
            )

    def _warn_idle(self, final: FrozenTrial) -> None:
        """Once per study: a pruner whose settings can never stop a trial as long as ``final``
        (only now is it known: ``max_resource`` is learnt, or given beyond where the trials end)."""
        if self.pruner.idle_warning(final) is None:
            return
        # judged by the longest complete trial: a short one (stopped early by its own patience,
        # an epochs parameter) says nothing about the full runs
        done = [t for t in self._history() if t.state is TrialState.COMPLETE and t.last_step is not None]
        longest = max(done, key=lambda t: (t.last_step or 0, -t.number), default=final)
        warning = self.pruner.idle_warning(longest)
        self._warned_idle = True  # either way: trials only get longer, so a "no" from the longest stays a no
        if warning:
            logger.warning("%s. (Logged once per study.)", warning)

    def _warn_about_budget(self, n_trials: Any) -> None:
        """Log the pruner's :meth:`~tunesmith.pruners.Pruner.budget_warning` for the trial
        numbers this call will reach (queued trials are run within ``n_trials``)."""
        if type(self.pruner).budget_warning is Pruner.budget_warning:
            return
        if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 0:
            return  # optimize's own check says what is wrong
        # counted, not read: each call of a notebook's optimize decoded the whole history (3 MB at 3,000 trials)
        total = self._storage.count_trials(self._study_id)
        waiting = len(self._storage.get_trials(self._study_id, state=TrialState.WAITING))
        warning = self.pruner.budget_warning(total + max(0, n_trials - waiting))
        if warning:
            logger.warning(warning)

    def _warn_no_checkpoint(self, record: FrozenTrial) -> None:
        """Once per study: a trial paused without ``attrs["checkpoint"]`` has nothing to resume from
        (one of ``cv.cross_validate`` has: it resumes after the folds in ``attrs["cv"]``)."""
        if "checkpoint" in record.attrs or is_summary(record.attrs.get(CV_ATTR)) or self._warned_no_checkpoint:
            return
        self._warned_no_checkpoint = True
        logger.warning(
            "trial %d was paused without attrs['checkpoint']: when it is promoted, "
            "trial.resume_from is None. Save a checkpoint and call trial.set_attr('checkpoint', "
            "path) before asking the pruner (docs/pruning.md, 'Pause and resume'), or use a pruner "
            "without pause=True. (Logged once per study.)",
            record.number,
        )

    def _record_of(self, trial: Trial | FrozenTrial | int) -> FrozenTrial:
        """The record to finish; a trial of another study is refused (it would
        overwrite this study's trial of the same number)."""
        if isinstance(trial, Trial):
            if trial.study is self:
                return trial.record
            self._check_owner(trial.study.name, trial.record)
            return trial.record
        if isinstance(trial, FrozenTrial):
            return self._check_owner(self.name, trial)
        if not isinstance(trial, (int, np.integer)) or isinstance(trial, bool):  # 0.5 was taken for trial 0
            raise TypeError(f"the trial comes first, as a Trial, a FrozenTrial or its number: tell(trial, value); "
                            f"got {type(trial).__name__} {trial!r}")
        return self._storage.get_trial(self._study_id, int(trial))

    def _check_owner(self, owner: str, record: FrozenTrial) -> FrozenTrial:
        """The stored record of ``record``'s number, if it is the same trial
        (same storage key); else a ValueError naming both studies."""
        stored: FrozenTrial | None = None
        if owner == self.name:
            try:
                stored = self._storage.get_trial(self._study_id, record.number)
            except LookupError:
                stored = None
        if stored is None or stored.trial_id != record.trial_id:
            where = f"study {owner!r}" if owner != self.name else "another study (or another storage)"
            raise ValueError(
                f"trial {record.number} belongs to {where}, not to study {self.name!r}: tell a "
                "trial to the study that asked it (study.tell(trial) with trial = study.ask()), "
                "or pass this study's own trial number"
            )
        return stored

    def _finish(
        self, rec: FrozenTrial, value: Any, state: TrialState | None, error: str | None
    ) -> FrozenTrial:
        now = self._storage.clock()
        if state is None or state is TrialState.COMPLETE:
            v = _as_float(value)
            if v is None:
                return lifecycle.finish(rec, None, TrialState.FAILED, error or bad_value_reason(value, "tell() got"), now)
            self._warn_inexact(rec.number, value, v)
            return lifecycle.finish(rec, v, TrialState.COMPLETE, None, now)
        if state is TrialState.PRUNED:
            return lifecycle.finish(rec, _as_float(value), state, None, now)
        # FAILED (tell() has refused every other state)
        return lifecycle.finish(rec, None, TrialState.FAILED, error or "marked failed by tell()", now)

    def _warn_inexact(self, number: int, value: Any, stored: float) -> None:
        """Say once when an integer value has no exact float (beyond 2**53): values are stored
        as floats, so it may tie with a neighbour (a tie goes to the better reports, then the
        earlier trial)."""
        if self._warned_inexact or not isinstance(value, (int, np.integer)) or int(value) == stored:
            return
        self._warned_inexact = True
        logger.warning("study %r: trial %d's value %d has no exact float and is stored as %r; values beyond 2**53 "
                       "differing by less than their float spacing tie (a tie goes to the better reports, then the "
                       "earlier trial): return a scaled value, e.g. value / 1e6", self.name, number, int(value), stored)

    def decide(self, record: FrozenTrial) -> Decision:
        """The pruner's answer for ``record`` (a running trial's latest reports):
        continue, prune or pause. :meth:`Trial.decision` asks it."""
        if not (record.intermediate and self.pruner.needs_trials(record)):
            return _checked(self.pruner, self.pruner.decide(record, [], self.direction))
        skip = TrialState.WAITING if TrialState.WAITING not in self.pruner.reads else None
        others = self._history(exclude=skip)  # a queue of waiting trials adds nothing to read
        return _checked(self.pruner, self.pruner.decide(record, others, self.direction))

    # -- running ---------------------------------------------------------------------------
    def optimize(
        self,
        objective: Objective,
        n_trials: int | None = None,
        timeout: float | None = None,
        n_jobs: int = 1,
        *,
        catch: type[BaseException] | Sequence[type[BaseException]] = (Exception,),
        callbacks: Callable[[Study, FrozenTrial], None] | Sequence[Callable[[Study, FrozenTrial], None]] | None = (),
        show_progress: bool | None = None,
        executor: Any = None,
        **executor_options: Any,
    ) -> None:
        """Run trials until ``n_trials`` are done, ``timeout`` seconds pass, or the
        search is exhausted; whichever comes first.

        Args:
            objective: ``objective(trial) -> float``. An exception in ``catch``,
                or a value that is not a finite number, fails that trial (the
                reason is stored) and the study goes on. Raise
                :class:`tunesmith.TrialPruned` to end a trial as pruned.
            n_trials: trials to run in this call (over all workers).
            timeout: seconds after which no new trial starts.
            n_jobs: parallel workers (-1: one per core). With a SQL storage they
                are processes sharing the database; in memory, threads.
            callbacks: called as ``callback(study, record)`` after each trial
                (None: no callbacks),
                in this process (the driver) under every executor, in the order
                each worker ended its trials (a trial failed because its worker
                died included). An exception in a callback stops the run: no
                new trial starts, running ones end, then optimize raises it.
                ``study.stop()`` in a callback ends the call cleanly. A callback
                with a method ``on_optimize_end(study, error)`` has it called once
                the call is over (``error``: the exception optimize raises, else
                None), e.g. :class:`~tunesmith.integrations.mlflow.MLflowCallback`
                ends the study's parent run there.
            show_progress: a progress bar (default: when stderr is a terminal).
            executor: "thread", "process" or "ray" (or an
                :class:`~tunesmith.execution.Executor`) to override the default.
            executor_options: passed to the executor: ``gpus``,
                ``trials_per_gpu``, ``threads_per_trial`` (process);
                ``ray_address``, ``resources_per_trial``, ``trials_per_gpu``
                (ray), ``ray_start_timeout`` (ray: seconds with no actor able to
                start before optimize fails); ``trial_timeout`` (process and ray: seconds a trial
                may run before its worker is stopped and the trial failed;
                refused by the inline and thread executors, which cannot stop
                a running objective). See docs/distributed.md.

        Ctrl-C stops cleanly: running trials are marked failed ("interrupted"),
        nothing is half-written, and optimize returns. A trial that can go on from
        its checkpoint (``attrs["checkpoint"]``: resumed after a pause, or reported
        under a pruner that pauses) is paused instead, and the next optimize resumes it first.
        :attr:`interrupted` says afterwards whether an interrupt stopped the call.
        """
        from .runner import runner

        n_trials, timeout, n_jobs = _py(n_trials), _py(timeout), _py(n_jobs)
        self._warn_about_budget(n_trials)
        self._stop_requested = False  # a stop() before this call does not end it
        self._interrupted = None
        self._interrupted = runner()(
            self,
            objective,
            n_trials=n_trials,
            timeout=timeout,
            n_jobs=n_jobs,
            catch=_as_catch(catch),
            callbacks=_as_callbacks(callbacks),
            show_progress=show_progress,
            executor=executor,
            options=executor_options,
        )
        self._warn_pruner_unused()

    def _warn_pruner_unused(self) -> None:
        """A pruner decides on reports: say once when complete trials ran and none reported."""
        if isinstance(self.pruner, NopPruner) or self._said_no_reports:
            return
        trials = self.trials
        if sum(t.state is TrialState.COMPLETE for t in trials) >= 2 and not any(t.intermediate for t in trials):
            self._said_no_reports = True
            logger.warning(
                "study %r has a pruner (%s), but no trial reported an intermediate value, so none can be stopped "
                "early: call trial.report(value, step) in the objective (each epoch; ts.cv.cross_validate "
                "reports each fold), or leave pruner= out", self.name, type(self.pruner).__name__)

    def stop(self) -> None:
        """End the running ``optimize`` call cleanly: no new trial starts, the
        running ones finish and are recorded, and ``optimize`` returns normally.
        Call it from a callback (they run in the calling process under every
        executor), from another thread, or from the objective (in a worker
        process or Ray actor, which holds its own copy of the study, the run is
        stopped once that trial ends)."""
        self._stop_requested = True

    @property
    def interrupted(self) -> str | None:
        """Whether an interrupt (Ctrl-C, SIGTERM) stopped the last ``optimize`` call of this object, which
        then returned normally: the error its stopped trials got (``"interrupted (KeyboardInterrupt)"``,
        ``"interrupted (SIGTERM)"``), else None. A script checks it before going on as after a full run."""
        return self._interrupted

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called since the current (or last) ``optimize`` call began."""
        return self._stop_requested

    def run_trial(
        self,
        objective: Objective,
        trial: Trial,
        catch: tuple[type[BaseException], ...] = (Exception,),
    ) -> FrozenTrial:
        """Evaluate ``objective`` on an asked trial and record the outcome. A storage that refuses the
        outcome's write (a full disk) raises a StorageError that names the trial it left running; a study
        deleted meanwhile raises StudyNotFound as it is (no trial of it is left)."""
        try:
            return self._run_and_tell(objective, trial, catch)
        except StudyNotFound:
            raise
        except StorageError as exc:
            if not self._left_running(trial.number):
                raise
            error = self._left_running_error(exc, [trial.number])
            error.left_running = trial.number  # a worker process's parent may end it since (execution.process)
            raise error from exc

    def _left_running_error(self, exc: StorageError, numbers: list[int]) -> StorageError:
        """``exc``, a refused write that left running trials ``numbers`` of this study running, with those
        trials named and how to end them once the storage can be written again."""
        beat = self.heartbeat_config
        one = len(numbers) == 1
        it = "it" if one else "them"
        later = (f"a later run of this study fails {it} {beat.grace:g} s after {'its' if one else 'their'} last "
                 "heartbeat (grace_period)" if beat.interval is not None and beat.grace is not None else
                 f"open the study with heartbeat_interval=S and grace_period=G so that a later run fails {it} "
                 "after G seconds")
        which = f"trial {numbers[0]}" if one else f"trials {', '.join(map(str, numbers))}"
        tells = " and ".join(f"study.tell({n}, state='failed')" for n in numbers)
        return StorageError(
            f"{exc}; {which} of study {self.name!r} {'stays' if one else 'stay'} running, {'its end' if one else 'their ends'} "
            f"not written: once the storage has room (or can be written) again, end {it} in Python with {tells} on "
            f"the study opened again (tunesmith tell ends paused trials only), or {later}")

    def _left_running(self, number: int) -> bool:
        """Whether trial ``number`` is still running as stored (a storage that cannot be read: taken as so; a
        study or trial no longer there: not)."""
        try:
            return self._storage.get_trial(self._study_id, number).state is TrialState.RUNNING
        except (StudyNotFound, TrialNotFound):
            return False
        except StorageError:
            return True

    def _run_and_tell(
        self, objective: Objective, trial: Trial, catch: tuple[type[BaseException], ...]
    ) -> FrozenTrial:
        from ..exceptions import OutOfRoom, ResumeRefused, TrialPaused, TrialPruned

        try:
            value = objective(trial)
        except (ResumeRefused, OutOfRoom) as exc:
            if isinstance(exc, OutOfRoom) and trial._last_decision is Decision.PAUSE and lifecycle.resumable(
                    trial.record, pauses=self.pruner.pauses):
                self._pause_as_asked(trial, exc)
                raise
            # a full disk holds a trial never paused that can go on from its recorded checkpoint, as a Ctrl-C does
            held = trial.is_resumed or isinstance(exc, OutOfRoom) and lifecycle.resumable(
                trial.record, pauses=self.pruner.pauses)
            if not held:
                return self.tell(trial, state=TrialState.FAILED, error=describe_exception(exc))
            self._pause_again(trial, describe_exception(exc))
            if isinstance(exc, OutOfRoom):  # what became of the trial, with what to do (said in the error itself:
                # a new one of its type would call a subclass's own __init__, which may take other arguments)
                exc.args = (f"{exc}; " + (
                    f"trial {trial.number} (resumed after a pause) was paused again, its checkpoint and promotion kept"
                    f"{_checkpoint_of(trial)}" if trial.record.is_resumed else f"trial {trial.number} was paused at step "
                    f"{trial.record.last_step}, its last recorded checkpoint kept{_checkpoint_of(trial)}") + (
                    ": once there is room, the next optimize resumes it first"),)
            raise
        except TrialPruned as exc:
            asked = isinstance(exc, TrialPaused) or trial._last_decision is Decision.PAUSE
            return self.tell(trial, state=TrialState.PAUSED if asked else TrialState.PRUNED)
        except KeyboardInterrupt as exc:
            self._mark_interrupted(trial, exc)
            raise
        except catch as exc:
            return self.tell(trial, state=TrialState.FAILED, error=describe_exception(exc))
        except BaseException as exc:
            self.tell(trial, state=TrialState.FAILED, error=describe_exception(exc))
            raise
        try:
            if _as_float(value) is None:  # the reason names the objective (tell() alone names itself)
                return self.tell(trial, state=TrialState.FAILED, error=bad_value_reason(value))
            return self.tell(trial, value)
        except KeyboardInterrupt as exc:  # before the end was written: as one inside the objective
            self._mark_interrupted(trial, exc)
            raise

    def _pause_as_asked(self, trial: Trial, exc: Exception) -> None:
        """The pruner paused ``trial`` at its last report and the disk refused that pause's own checkpoint
        (``checkpoint_every`` had skipped the validation): paused as the pruner asked, its older recorded
        checkpoint kept (a promotion resumes it from there, replaying the validations after it), and ``exc`` says
        so. Held instead (as for a full disk at any other point), the next optimize resumed it first and trained it
        past the rung it was paused at, unpromoted."""
        final = self.tell(trial, state=TrialState.PAUSED)
        exc.args = (f"{exc}; " + (
            f"trial {trial.number} was paused at step {final.last_step} as its pruner asked, its last recorded "
            f"checkpoint kept{_checkpoint_of(trial)}: a promotion resumes it from there" if final.state is TrialState.PAUSED
            else f"trial {trial.number} was recorded as {final.state}"),)

    def _pause_again(self, trial: Trial, reason: str) -> None:
        """A resumed trial whose objective refused its checkpoint (:class:`ResumeRefused`) or met a full disk
        (:class:`OutOfRoom`), or an interrupted one that can go on, paused again as it was, its reports, checkpoint and promotion kept (resumed first, as after a lost
        worker: its rung's quota may have filled since). Only while the stored trial is still this run
        (:func:`lifecycle.same_run`), else TrialFinishedError: a worker taken for dead that was not (a
        Ray node cut off from its cluster, not from the database) had its trial held, and another
        process may have resumed it since; the state alone (running) let this write pause that run."""
        final = lifecycle.hold(trial.record, reason, lost=False)
        self._heartbeat.finished(final.number)
        if not self._storage.update_trial(self._study_id, final, expect_state=TrialState.RUNNING,
                                          expect=functools.partial(lifecycle.same_run, trial.record)):
            raise TrialFinishedError(f"trial {trial.number} was ended, held or resumed by another worker while "
                                     "it ran here: this run's end is not recorded")
        trial._record = final

    # -- lost workers (heartbeat.py does the work) ----------------------------------------
    def fail_worker(
        self, worker: str, error: str, *, requeue: bool | None = None, dead: bool = False, timed_out: bool = False
    ) -> list[FrozenTrial]:
        """Fail the running trials of ``worker`` (``host:pid``); re-queued as well
        if ``requeue`` (default: as the study's requeue_failed, a trial that is a copy
        already excepted). With ``dead``
        (its process is seen to have exited), a trial resumed from a checkpoint
        goes back to paused, keeping its promotion, and so does one never paused that recorded a checkpoint and a
        report under a pruner that pauses, to resume from there (:func:`lifecycle.fail_lost`). Not with
        ``timed_out`` (a trial_timeout stopped it): resumed, it would run past the limit again, its worker killed
        each time, up to MAX_HOLDS times; it is failed, as the Ray executor fails it."""
        running = self._storage.get_trials(self._study_id, state=TrialState.RUNNING)
        mine = [t for t in running if t.worker == worker]
        held = dead and not timed_out
        try:
            return lifecycle.fail_lost(
                self._storage, self._study_id, mine, error=error,
                now=self._storage.clock(), requeue=self._heartbeat.config.requeue if requeue is None else requeue,
                dead=held, once=requeue is None, pauses=self.pruner.pauses, hold_new=held,
            )  # fmt: skip
        except StudyNotFound:
            raise
        except StorageError as exc:  # a full disk: the trials it read stay running, named with how to end them
            left = [t.number for t in mine if self._left_running(t.number)]
            if not left:
                raise
            raise self._left_running_error(exc, left) from exc

    def reap_lost(self) -> list[FrozenTrial]:
        """Fail the running trials whose worker has not beat for the grace period, or is a process of this
        machine gone since before this study was opened here (:meth:`Heartbeat.reap`) (re-queued as
        ``requeue_failed`` says), as the next :meth:`ask` would: for a reader that asks no trial (a stored
        comparison at its budget). The failed records; none where the study runs without heartbeats."""
        with self._lock:
            return self._heartbeat.reap(force=True)

    def fail_trial(self, number: int, error: str, *, requeue: bool = False) -> FrozenTrial | None:
        """Fail running trial ``number`` (its worker is lost), queueing a copy with the
        same parameters if ``requeue``; the failed record, or None if it was no longer running.
        The caller knows the worker is lost: a beat since the read (this process's own heartbeat
        thread beats the trials it handed to a Ray actor) is no sign of life, so it reads again; a run of
        the trial that another worker began meanwhile (it went back to the queue) is not failed."""
        first: FrozenTrial | None = None
        for _ in range(3):  # a beat comes once an interval: a second read and write follows it
            rec = self._storage.get_trial(self._study_id, number)
            if rec.state is not TrialState.RUNNING or not lifecycle.same_run(first or rec, rec):
                return None
            first = first or rec
            lost = lifecycle.fail_lost(self._storage, self._study_id, [rec], error=error, now=self._storage.clock(),
                                       requeue=requeue, dead=False)  # fmt: skip
            if lost:
                return lost[0]
        return None

    def unstart(self, number: int) -> bool:
        """Put running trial ``number``, whose objective never began, back in the queue;
        whether it was (it is no longer running otherwise)."""
        rec = self._storage.get_trial(self._study_id, number)
        return rec.state is TrialState.RUNNING and self._storage.update_trial(
            self._study_id, lifecycle.unstart(rec), expect_state=TrialState.RUNNING
        )

    def refunds(self, failed: FrozenTrial) -> bool:
        """Whether the ``optimize`` call whose run of re-queued ``failed`` was lost gives that run's unit of
        ``n_trials`` back (its copy then counts where it runs), rather than a call running the copy free of any
        unit: decided once, by whichever of the two comes first (:func:`lifecycle.claim_refund`)."""
        return failed.system.unit_back and lifecycle.claim_refund(self._storage, self._study_id, failed)

    def requeue(self, trial: FrozenTrial | int, *, oom: bool = False) -> int | None:
        """Queue a copy of finished ``trial`` with the same parameters, pointing back to
        it (``system.retry_of``; ``oom``: it ran out of GPU memory, counted in
        ``system.oom_retries``). Returns the copy's number, or None if it was queued already."""
        rec = self._storage.get_trial(self._study_id, trial if isinstance(trial, int) else trial.number)
        copy = lifecycle.requeue_copy(self._storage, self._study_id, rec, oom=oom)
        return None if copy is None else copy.number

    def record_progress(self, record: FrozenTrial) -> None:
        """Write the reports, attributes, worker and start time of running ``record`` (made
        elsewhere, e.g. in a worker without storage access); its state and bookkeeping are the study's."""
        stored = self._check_owner(self.name, record)
        progress = stored.replace(intermediate=dict(record.intermediate), attrs=dict(record.attrs),
                                  worker=record.worker or stored.worker, started=record.started or stored.started,
                                  system=stored.system.replace(checkpoint_step=record.system.checkpoint_step))
        self._storage.update_trial(self._study_id, progress, expect_state=stored.state)

    @property
    def session(self) -> int:
        """How many trials the study had when this object opened it: with a worker's
        index, it seeds each worker's sampler differently (see :meth:`for_worker`)."""
        return self._session

    def for_worker(self, index: int, *, session: int | None = None, speaks: bool = True,
                   heartbeat: HeartbeatConfig | None = None) -> Study:
        """Prepare this (forked or newly opened) study object for parallel worker
        ``index``: its sampler seeded apart from other workers' (by ``session``,
        default this object's) and its cache of trials read afresh. ``speaks=False``
        (a worker started once another said them): the once-a-study warnings about the
        objective (``should_prune()`` without a pruner) are not said again. ``heartbeat``: the
        settings of the study object that started the worker (a worker opened by name reads the stored
        ones, which another run made: its driver's ``requeue_failed=True`` did not re-queue the lost
        trials it judged). Returns it."""
        self.sampler.reseed(self._session if session is None else session, index)
        if heartbeat is not None:
            self._heartbeat.config = heartbeat
        if not speaks:
            self._said_no_pruner = True
        with self._lock:
            self._finished.clear()
            self._canonical_params.clear()
            self._next = 0
            self._live.clear()
        return self

    @property
    def heartbeat_config(self) -> HeartbeatConfig:
        return self._heartbeat.config

    def _mark_interrupted(self, trial: Trial, exc: KeyboardInterrupt | None = None) -> None:
        """Record a trial whose objective an interrupt stopped: back to paused where it can go on from its
        checkpoint (:func:`lifecycle.resumable`; the next ``optimize`` resumes it first, ``system.held``
        says why), else failed as interrupted."""
        from ..exceptions import interrupted

        error = interrupted(exc)
        try:
            if not self._catch_up(trial):
                return  # ended, held or resumed elsewhere meanwhile: not this run's to mark
            if lifecycle.resumable(trial.record, pauses=self.pruner.pauses):
                self._pause_again(trial, error)
                return
            self.tell(trial, state=TrialState.FAILED, error=error)
        except TrialFinishedError:
            pass
        except StorageError as error:  # a busy database: the interrupt goes on (it turned into this error, the
            # trial left running), and the executor's handling of it looks again at what still runs
            logger.warning("could not mark the interrupted trial %d failed: %s", trial.number, error)

    def _catch_up(self, trial: Trial) -> bool:
        """Give ``trial``'s handle its stored record where this run wrote a newer one: an interrupt raised after a
        report's write committed, before the handle took the record, left the handle a report behind (held or
        failed with it, that report and its checkpoint were overwritten). Whether the stored trial is still
        this run (not ended, held or resumed by another worker since)."""
        stored = self._storage.get_trial(self._study_id, trial.number)
        if not lifecycle.same_run(trial.record, stored):
            return False
        trial._record = stored
        return True

    # -- management (manage.py does the work) -------------------------------------------------
    def add_trial(
        self,
        params: Mapping[str, Any],
        value: Any = None,
        *,
        state: TrialState | str = TrialState.COMPLETE,
        intermediate: Mapping[int, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
        error: str | None = None,
        started: float | None = None,
        completed: float | None = None,
    ) -> FrozenTrial:
        """Record a known result as a finished trial (a run made elsewhere, a
        baseline): ``params`` are validated against the space; ``state``
        "complete" (needs ``value``), "pruned" or "failed" (``error`` says why);
        ``intermediate`` reports by step drive pruning and plots as any trial's.
        Samplers and pruners see it like the trials they ran. Returns the record."""
        rec = self._add_claimed(None, params, value, state=state, intermediate=intermediate, attrs=attrs,
                                error=error, started=started, completed=completed)  # fmt: skip
        assert rec is not None
        return rec

    def _add_claimed(self, claim: str | None, params: Mapping[str, Any], value: Any = None, **known: Any
                     ) -> FrozenTrial | None:
        """:meth:`add_trial`, unless a trial of the study holds ``claim`` already (None then,
        nothing recorded): the storage decides atomically, across processes."""
        from .manage import insert_record, known_result

        return insert_record(self._storage, self._study_id, known_result(self.space, params, value, **known), claim)

    def copy(self, name: str | None = None, *, storage: str | Storage | None = None,
             space: Space | Mapping[str, Any] | None = None, fill: Mapping[str, Any] | None = None) -> Study:
        """Copy this study (settings, every trial with the same numbers, and its test
        results) as ``name``, in ``storage`` (default: this one; then the name must differ).
        A running trial is copied as failed. ``space``: the copy's space instead (a wider
        range, a new choice); only the trials that are configurations of it are copied (a
        warning says how many are left out), ``fill`` giving the values they ran with of
        parameters the space adds (``{"wd": 0.0}``). Returns the copy, opened."""
        from .manage import copy_study

        self._current_name()
        return copy_study(self, name, storage, space, fill)

    def focus(self, keep: Sequence[str] | None = None, *, threshold: float | None = None, name: str | None = None,
              storage: str | Storage | None = None, carry: str = "all", method: str = "fanova",
              seed: int | None = None) -> Study:
        """Start a study (``name``, default ``"<name>-focus"``) in the space of the parameters
        that matter: ``keep`` names them, or ``threshold`` keeps those whose importance
        (``method``; main effect plus pairs) is at least that. The others are fixed at the best
        trial's values; the complete trials are carried over (``carry``: "all", "exact" or
        "none"; see :mod:`tunesmith.study.focus`), the best first. Returns the new study;
        ``tunesmith.study.focus.plan_focus`` shows the plan without writing."""
        from .focus import focus_study

        self._current_name()
        return focus_study(self, keep=keep, threshold=threshold, name=name, storage=storage, carry=carry,
                           method=method, seed=seed)[0]

    @property
    def notes(self) -> list[dict[str, Any]]:
        """The study's notes, oldest first: ``{"time": seconds since the epoch, "text": ...}`` each."""
        from .manage import study_notes

        return study_notes(self._storage.get_study(self._current_name()).config)

    def add_note(self, text: str) -> None:
        """Keep a note with the study (what changed, why a run was stopped): listed by
        ``tunesmith show`` and the dashboard, carried by copies and exports."""
        from .manage import add_note

        add_note(self._storage, self._current_name(), text)

    def rename(self, new_name: str) -> None:
        """Rename the study in its storage (ValueError if the name is taken), with its test
        results (:meth:`evaluate_best`). Other processes that have it open go on: their
        trials, copies, notes, test results and deletes find it under its new name."""
        from .manage import rename_study

        self._current_name()
        rename_study(self, new_name)
        self.name = new_name

    def delete(self) -> None:
        """Delete the study, all its trials and its test results from the storage (for good)."""
        from .manage import delete_study

        delete_study(self.storage, self._current_name())

    def _current_name(self) -> str:
        """The study's name in its storage now, looked up by its id: another process (or handle)
        may have renamed it, and the verbs that go by name (copy, delete, notes, test results)
        must not act on a study created since under the old name, or on none."""
        for rec in self._storage.list_studies():
            if rec.study_id == self._study_id:
                if rec.name != self.name:
                    logger.info("study %r was renamed %r (by another process or handle)", self.name, rec.name)
                    self.name = rec.name
                return self.name
        raise StudyNotFound(f"study {self.name!r} is no longer in {self._storage.display_url}: it was deleted "
                            "while this process had it open")

    def __repr__(self) -> str:
        return f"Study(name={self.name!r}, direction={self.direction.value!r}, storage={self._storage.display_url!r})"


def _checkpoint_of(trial: Trial) -> str:
    """The step of the checkpoint a trial stopped on a full disk goes on from, where older than its last report
    (``checkpoint_every`` skipped the validations after it, or a resumed run replays them): said, as the steps
    after it are trained again. As recorded with the checkpoint, in this run or an earlier one."""
    at, last = trial.record.system.checkpoint_step, trial.record.last_step
    return "" if at is None or last is None or at >= last else f", that of step {at} (the steps after it are trained again)"


def _new_config(space: Space, sampler: Any, pruner: Any, seed: int | None, beat: HeartbeatConfig,
                settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a new study is stored with (its sampler checked against ``space`` first)."""
    samp = make_sampler(sampler if sampler is not None else "auto", seed)
    samp.check(space)  # a grid's points for another space: refused before the study is stored
    return {
        "sampler": samp.describe(),
        "pruner": make_pruner(pruner).describe(),
        "heartbeat": beat.to_dict(),
        **settings,  # its copy_id (and a copy's pick), in the same write: a study never lacks it
    }


def _book(name: str, space: Space, direction: Direction, results: Sequence[FrozenTrial]) -> NewStudy:
    """The companion holding study ``name``'s test results ``results``, as evaluate_best makes it."""
    from .evaluate import room_for_book

    return NewStudy(room_for_book(name), direction, space.to_dict(),
                    _new_config(space, "random", None, None, HeartbeatConfig.build(None, None, False),
                                {COPY_ID: uuid.uuid4().hex}), results)


def _copy_command(name: str, storage: Storage) -> str:
    """``tunesmith copy`` of study ``name`` into a study file's space, naming its storage: the command's
    default storage is the current folder's, not the study file's (relative to the file's folder)."""
    where = [] if isinstance(storage, MemoryStorage) else ["--storage", storage.display_url]
    return command_line("copy", name, "NEW_NAME", options=["--space", "STUDY.yaml", *where]) + password_note(*where)


def _fill_hint(stored: Mapping[str, Any], given: Mapping[str, Any]) -> str:
    """How a copy gives the old trials the parameters a new space adds (none: "")."""
    added = [n for n in given if n not in stored]
    example = ", ".join(f"{n!r}: VALUE" for n in added)
    return (f"; the old trials lack {added}: give the values they ran with, fill={{{example}}} "
            f"(--fill {added[0]}=VALUE)") if added else ""


def _space_change(stored: Mapping[str, Any], given: Mapping[str, Any]) -> str:
    """Which parameters differ between a stored space and a given one, each with both definitions."""
    parts = [f"{n}: stored {json.dumps(stored.get(n))}, given {json.dumps(given.get(n))}"
             for n in dict.fromkeys([*stored, *given]) if not same_definition(stored.get(n), given.get(n))]
    return "; ".join(parts) if parts else "the same parameters in another order"


class _UnknownSampler(Sampler):
    """Stands in for a stored sampler this process cannot rebuild (a custom class not registered
    here): the study and its trials read as usual, and ``ask`` says what to do."""

    def __init__(self, stored: Any, reason: str) -> None:
        super().__init__(0)
        self.stored, self.reason = stored, reason
        self.name = str(stored.get("name") if isinstance(stored, Mapping) else stored)

    def suggest(self, space: Space, trials: Any, direction: Direction) -> None:
        raise ValueError(self.reason)

    def describe(self) -> dict[str, Any]:
        return dict(self.stored) if isinstance(self.stored, Mapping) else {"name": self.name}


def _stored_sampler(study: str, stored: Any, seed: int | None) -> Sampler:
    """The stored sampler; one whose class is not registered here opens the study for reading
    (a known one whose stored options are spoiled raises, as the caller reports it as storage)."""
    name = stored.get("name") if isinstance(stored, Mapping) else stored
    if is_known(name):
        return make_sampler(stored, seed)
    try:
        return make_sampler(stored, seed)
    except ValueError as exc:
        return _UnknownSampler(stored, (
            f"study {study!r} was created with a sampler this process cannot rebuild ({exc}); or open it "
            f"with another to search on: ts.Study(name={study!r}, storage=..., sampler='auto')"))


def _looks_like_storage(text: Any) -> bool:
    """A database URL or a SQLite file's name (a swapped name and storage are told apart by it)."""
    return isinstance(text, str) and ("://" in text or text.endswith((".db", ".sqlite", ".sqlite3")))


def _py(x: Any) -> Any:
    """A NumPy number as Python's (an n_trials, timeout or n_jobs computed with NumPy)."""
    return x.item() if isinstance(x, np.generic) else x


def _as_state(state: TrialState | str) -> TrialState:
    """A trial state from its name in any case, or a ValueError listing the states."""
    try:
        return TrialState(state.lower() if isinstance(state, str) else state)
    except ValueError:
        names = [s.value for s in TrialState]
        raise ValueError(f"unknown trial state {state!r}{did_you_mean(str(state).lower(), names)}; "
                         f"the states are {names}") from None


def _end_state(state: TrialState | str | None) -> TrialState | None:
    """The state :meth:`Study.tell` was asked for (a name in any case), if it ends or pauses a trial."""
    if isinstance(state, str) and state.lower() in _STATE_NAMES:  # "Pruned", "PAUSED"
        state = TrialState(state.lower())
    ends = {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED, TrialState.PAUSED}
    if state is not None and state not in ends:
        raise ValueError(
            "tell() finishes a trial as 'complete', 'pruned' or 'failed', or pauses it "
            f"('paused'), not {getattr(state, 'value', state)!s}"
        )
    return None if state is None else TrialState(state)


def _check_tellable(record: FrozenTrial, end: TrialState | None) -> None:
    """A trial :meth:`Study.tell` may end as ``end`` (None: by its value): not finished, and a paused
    one only pruned or failed."""
    if record.state.is_finished:
        raise TrialFinishedError(
            f"trial {record.number} is already {record.state}; finished trials never change"
        )
    if record.state is TrialState.PAUSED and (end is None or end is TrialState.COMPLETE):
        raise ValueError(
            f"trial {record.number} is paused: stopped before the end of its run, it cannot complete "
            "with a value (it could become the best trial on a partial run). It completes when its "
            "pruner promotes it and study.ask() (or optimize) resumes it; end it for good with "
            f"study.tell({record.number}, state='pruned')"
        )
    if record.state is TrialState.PAUSED and end is TrialState.PAUSED:
        raise ValueError(f"trial {record.number} is paused already")


def _as_catch(catch: Any) -> tuple[type[BaseException], ...]:
    """``catch`` as a tuple of exception classes: one class, a tuple or a list; anything else is
    refused before a trial starts (else the first exception would leave trials running)."""
    classes = tuple(catch) if isinstance(catch, (tuple, list)) else (catch,)
    for c in classes:
        if not (isinstance(c, type) and issubclass(c, BaseException)):
            raise TypeError(f"catch= takes exception classes (catch=(ValueError, RuntimeError)), got {c!r}")
    return classes


def _as_callbacks(callbacks: Any) -> tuple[Callable[[Study, FrozenTrial], None], ...]:
    """``callbacks`` as a tuple: one callable or a sequence of them (None: none), checked before a trial starts."""
    if callbacks is None:
        return ()
    if not callable(callbacks) and (isinstance(callbacks, (str, bytes, Mapping)) or not isinstance(callbacks, Iterable)):
        raise TypeError(f"callbacks= takes a function callback(study, record) or a list of them, got {callbacks!r}")
    cbs = (callbacks,) if callable(callbacks) else tuple(callbacks)
    for cb in cbs:
        if not callable(cb):
            raise TypeError(f"callbacks= takes functions callback(study, record), got {cb!r}")
        wrong = uncallable_with(cb, 2)
        if wrong:  # it failed once the first trial had run, e.g. the objective passed as callbacks=
            raise TypeError(f"callbacks= takes functions of two arguments, callback(study, record); {wrong} "
                            "cannot be called so")
    return cbs


def bad_value_reason(value: Any, source: str = "objective returned") -> str:
    give = "return" if source.startswith("objective") else "tell it"
    if isinstance(value, (list, tuple)):
        return (
            f"{source} a {type(value).__name__} {value!r}; tunesmith optimizes a single "
            f"value: {give} one float"
        )
    shaped, item = _of_shape(value)
    return f"{source} {short_repr(value)} ({type(value).__name__}{shaped}); {give} a finite number{item}"


_STATE_NAMES = frozenset(s.value for s in TrialState)


_NAME_A_SAMPLER = ("; or open it with a sampler named, which is then recorded: Study(name=..., storage=..., "
                   "sampler='random'), on the command line --sampler random")


def _from_config(where: str, what: str, build: Callable[[], T], *, fix: str = "") -> T:
    """``build()`` of a setting read from the study's config column: a StorageError naming the
    study and the setting when the stored one cannot be rebuilt (before: a bare TypeError or
    AttributeError, a traceback from ``tunesmith show``)."""
    try:
        return build()
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StorageError(f"{where}: column config: its stored {what} cannot be rebuilt ({exc}); if it was "
                           f"changed outside tunesmith, restore it from a backup or delete the study{fix}") from None


def _described(stored: Any) -> Any:
    """A stored pruner's description as this tunesmith writes it: rebuilt, so that a setting
    added since the study was made (``calibrate``) reads as its default, not as another pruner;
    as stored when it cannot be rebuilt here."""
    try:
        return make_pruner(as_stored(stored)).describe()
    except (ValueError, TypeError, KeyError, AttributeError):
        return stored


def _stored_pruner(name: str, cfg: Mapping[str, Any]) -> Pruner:
    """The pruner a stored study was created with; a pruner this process does not
    know (a custom class not registered here) gives none, with a warning."""
    try:
        return make_pruner(as_stored(cfg.get("pruner")))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        logger.warning(
            "study %r: its stored pruner cannot be rebuilt here (%s); opened without a pruner. "
            "Register the class (tunesmith.pruners.register) or pass pruner=... to keep pruning",
            name, exc,
        )
        return NopPruner()


def _all_int64(values: Sequence[Any]) -> bool:
    """Whether each of ``values`` is None or an integer that int64 holds: a column :meth:`Study.to_dataframe`
    makes pandas' ``Int64``. A value a database's writer changed (2.5 or "3" for an ``Int``, as a study loaded
    with another space holds) leaves the column as pandas makes it, where casting it raised a TypeError."""
    return all(v is None or (isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                             and -2**63 <= v < 2**63) for v in values)


def trial_rows(trials: Iterable[FrozenTrial], space: Space) -> list[dict[str, Any]]:
    """Flat rows for tables and exports: number, state, value, a column per parameter, one per
    attribute any trial set (``attrs_<key>``), duration, error, worker, and the step of a pruned or
    paused trial's last report (``stopped_at_step``; None for the others and one stopped before reporting)."""
    trials = list(trials)
    attr_keys = list(dict.fromkeys(k for t in trials for k in t.attrs))
    rows = []
    for t in trials:
        row: dict[str, Any] = {"number": t.number, "state": t.state.value, "value": t.value}
        for name in space:
            row[f"params_{name}"] = t.params.get(name)
        for key in attr_keys:
            row[f"attrs_{key}"] = t.attrs.get(key)
        row["duration"] = t.duration
        row["error"] = t.error
        row["worker"] = t.worker
        # last, so that a reader of the columns before it by position reads them as before
        row["stopped_at_step"] = t.last_step if t.state in (TrialState.PRUNED, TrialState.PAUSED) else None
        rows.append(row)
    return rows


def _checked_arguments(space: Any, sampler: Any, pruner: Any, name: str | None, load_if_exists: Any) -> bool:
    """Study's arguments checked before anything is opened: ``load_if_exists`` as a bool."""
    if isinstance(space, str):  # Study("my-study"): "Space takes a mapping ..., got str"
        raise TypeError(f"Study's first argument is the space, got the text {space!r}; name the study with "
                        "name=..., and open one that exists with ts.load_study(name, storage)")
    if callable(space) and not isinstance(space, (Mapping, type)):  # Study(objective)
        raise TypeError(f"Study's first argument is the space, got the function "
                        f"{getattr(space, '__qualname__', space)!r}; the objective goes to "
                        "study.optimize(objective, n_trials=...) (a function that builds the space: call it)")
    if not isinstance(load_if_exists, (bool, np.bool_)):  # "no" is true: the study would be resumed
        raise TypeError(f"load_if_exists must be True or False, got {load_if_exists!r}")
    _check_roles(sampler, pruner)
    if space is None and name is None:  # said "no study named 'study-1a2b3c4d'": a name never given
        raise ValueError("a new study needs a space: ts.Study(space, direction=...); to resume a stored "
                         "study, give its name and storage: ts.load_study(name, storage)")
    return bool(load_if_exists)  # NumPy's (n > 0 of a NumPy count), as check_field_types takes it


def _check_roles(sampler: Any, pruner: Any) -> None:
    """A ValueError when a pruner is given as the sampler or a sampler as the pruner (by name, ``{"name": ...}``,
    class or object): each would be refused as an unknown name, which does not say the two were swapped."""

    def role(spec: Any) -> str | None:
        kind = spec if isinstance(spec, type) else type(spec)
        if issubclass(kind, (Sampler, Pruner)):
            return "sampler" if issubclass(kind, Sampler) else "pruner"
        name = spec.get("name") if isinstance(spec, Mapping) else spec
        if isinstance(name, str) and is_known(name) != is_pruner(name):
            return "sampler" if is_known(name) else "pruner"
        return None

    for given, spec in (("sampler", sampler), ("pruner", pruner)):
        if role(spec) not in (None, given):
            shown = (repr(spec) if isinstance(spec, (str, Mapping)) else spec.__name__ if isinstance(spec, type)
                     else f"{type(spec).__name__}(...)")
            raise ValueError(f"{given}={shown} is a {role(spec)}, not a {given}: pass it as {role(spec)}={shown}")


def _checked(pruner: Pruner, answer: Any) -> Decision:
    """``answer``, a pruner's decision, if it is one: anything else (True, "continue", None) would
    read as "stop" to :meth:`Trial.should_prune`, and every trial would be stopped without a word."""
    if isinstance(answer, Decision):
        return answer
    raise TypeError(
        f"{type(pruner).__name__}.decide returned {short_repr(answer)} ({type(answer).__name__}), not a "
        "Decision: return tunesmith.pruners.Decision.CONTINUE, Decision.PRUNE or Decision.PAUSE"
    )
