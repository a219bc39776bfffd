"""What the dashboard knows of each study: its trials, read incrementally from the storage.

Finished trials never change, so each is read once; a refresh re-reads only the
unfinished ones and the trials numbered past the last one seen, in one read
(``Storage.get_trials_since``), so a record is never half-written. Every
change bumps the study's ``version``, which keys the caches of plots and pages.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..exceptions import StudyNotFound
from ..plots import Snapshot
from ..plots.records import command_url, pruner_label, pruner_rungs, sampler_seed
from ..pruners import as_stored, make_pruner
from ..space import Space
from ..storage import Storage, StudyRecord
from ..study.evaluate import SUFFIX, book_name, results_from
from ..study.manage import sampler_label
from ..trial import FrozenTrial, best_of, tied_best

#: the suffix of the companion study where ``study.evaluate_best`` records test scores
TEST_SUFFIX = SUFFIX
#: a study is read again at most this often (seconds), however many pages poll it
MIN_INTERVAL = 0.5


@dataclass
class _Entry:
    record: StudyRecord
    lock: threading.Lock = field(default_factory=threading.Lock)
    finished: dict[int, FrozenTrial] = field(default_factory=dict)
    live: dict[int, FrozenTrial] = field(default_factory=dict)
    next_number: int = 0
    version: int = 0
    read_at: float = 0.0
    read: bool = False  # read once: the first read is a new version, whatever it finds
    last_activity: float = 0.0
    trials: tuple[FrozenTrial, ...] = ()
    memo: dict[Any, Any] = field(default_factory=dict)  # (what, version) -> computed value


@dataclass(frozen=True)
class View:
    """One study as read now: its record, trials by number, and the version of both."""

    record: StudyRecord
    trials: tuple[FrozenTrial, ...]
    version: int
    last_activity: float
    memo: dict[Any, Any]

    @property
    def name(self) -> str:
        return self.record.name

    def counts(self) -> dict[str, int]:
        return self.cached("counts", lambda: dict(Counter(t.state.value for t in self.trials)))

    def best(self) -> FrozenTrial | None:
        return self.cached("best", lambda: best_of(self.trials, self.record.direction))

    def trial(self, number: int) -> FrozenTrial | None:
        t = self.trials[number] if 0 <= number < len(self.trials) else None
        if t is not None and t.number == number:
            return t
        return next((t for t in self.trials if t.number == number), None)

    def cached(self, what: Any, compute: Any) -> Any:
        """``compute()``, once per version of the study."""
        key = (what, self.version)
        if key not in self.memo:
            for old in [k for k in list(self.memo) if k[0] == what]:
                self.memo.pop(old, None)
            self.memo[key] = compute()
        return self.memo[key]

    def summary(self) -> dict[str, Any]:
        best = self.best()
        cfg = self.record.config
        return {
            "name": self.name, "direction": self.record.direction.value, "sampler": sampler_name(cfg),
            "pruner": pruner_name(cfg), "trials": len(self.trials), "states": self.counts(),
            "best": None if best is None else {"number": best.number, "value": best.value},
            "last_activity": self.last_activity or None, "version": self.version,
        }


def sampler_name(config: Any) -> str:
    return sampler_label(config) if config.get("sampler") else ""


def stored_pruner(config: Any) -> Any:
    """The pruner a study's stored config describes; None where it cannot be built here (a custom one)."""
    try:
        return make_pruner(as_stored(config.get("pruner")))
    except (ValueError, TypeError):
        return None


def pruner_name(config: Any) -> str:
    """The pruner's label as ``tunesmith show`` prints it ("asha (pause=True)"), "" for none."""
    p = config.get("pruner")
    try:
        return _label(json.dumps(p, sort_keys=True))
    except (ValueError, TypeError):  # one that cannot be built here (a custom pruner): its stored name
        name = p.get("name") if isinstance(p, dict) else p
        return "" if not name or str(name).lower() in ("nop", "none", "noppruner") else str(name)


@functools.lru_cache(maxsize=1024)
def _label(described: str) -> str:
    """The label of a stored pruner description, built once (the list of studies asks at each view)."""
    return pruner_label(make_pruner(json.loads(described)))


class StudyCache:
    """The studies of one storage, each read incrementally (thread-safe)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        #: held around every use of the storage: the server's threads take turns (a read-only
        #: SQLite storage is not safe to use from many threads at once)
        self.io = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        # the highest version of a study dropped: a study made again under its name starts past it.
        # It starts at this run's start in ms: a page left open across a restart of the dashboard
        # holds a version the new run never gives, so its next poll hears of a change
        self._floor = time.time_ns() // 1_000_000

    def records(self) -> list[StudyRecord]:
        """The studies, without the companions where ``evaluate_best`` keeps test scores. What is
        known of a study no longer listed (deleted or renamed elsewhere) is dropped: a dashboard
        kept up for weeks while studies come and go holds only the trials of studies that exist."""
        with self.io:
            records = self.storage.list_studies()
        listed = {r.name for r in records}
        with self._lock:
            gone = [name for name in self._entries if name not in listed]
        self._drop(gone)
        return [r for r in records if not r.name.endswith(TEST_SUFFIX)]

    def view(self, name: str) -> View:
        """The study as it is now (StudyNotFound if there is none)."""
        with self.io:
            try:
                record = self.storage.get_study(name)
            except StudyNotFound:
                self.forget(name)  # deleted elsewhere: its trials are not kept
                raise
        entry = self._entry(record)
        with entry.lock:
            if not entry.read_at or time.monotonic() - entry.read_at >= MIN_INTERVAL:
                with self.io:
                    _refresh(self.storage, entry)
            return View(entry.record, entry.trials, entry.version, entry.last_activity, entry.memo)

    def listed(self, record: StudyRecord) -> View:
        """The study as the list of studies shows it: once it has been read whole (shown, or
        read ahead by the server), its view; before, its trials' numbers, states, values and
        times only (``Storage.get_trial_heads``), so listing decodes no trial's parameters or
        reports, but those of the complete trials tied for the best value (their reports rank
        them: :func:`~tunesmith.trial.tie_key`), read whole in one query. A trial changed outside
        tunesmith in those is counted by its state until the study is shown (then as the failed
        trial it is read as)."""
        entry = self._entry(record)
        if entry.read_at:
            return self.view(record.name)
        with self.io:
            heads = with_tied_whole(self.storage, record, self.storage.get_trial_heads(record.study_id))
        last = max((max(t.completed or 0.0, t.started or 0.0) for t in heads), default=0.0)
        return View(record, heads, entry.version, last, {})  # a memo of its own: not the whole trials'

    def forget(self, name: str) -> None:
        """Drop what is known of ``name`` (it was deleted)."""
        self._drop([name])

    def _drop(self, names: Iterable[str]) -> None:
        with self._lock:
            for name in names:
                entry = self._entries.pop(name, None)
                self._floor = max(self._floor, entry.version if entry else 0)

    def stale(self, name: str) -> None:
        """Read ``name`` again at its next view (this process just changed it)."""
        entry = self._entries.get(name)
        if entry is not None:
            entry.read_at = 0.0

    def _entry(self, record: StudyRecord) -> _Entry:
        with self._lock:
            entry = self._entries.get(record.name)
            same = entry is not None and (entry.record.study_id, entry.record.created) == (record.study_id, record.created)
            if entry is None or not same:  # new, or deleted and made again under its name
                # a study made again continues the old one's versions: a page open on the old one sees a change
                entry = self._entries[record.name] = _Entry(record, version=entry.version + 1 if entry else self._floor)
            elif entry.record.config != record.config:
                entry.record = record
                entry.version += 1
            return entry

    def snapshot(self, view: View) -> Snapshot:
        """What the plots read: the study's :class:`~tunesmith.plots.Snapshot`."""
        def build() -> Snapshot:
            cfg = view.record.config
            pruner = stored_pruner(cfg)
            return Snapshot(
                name=view.name, direction=view.record.direction, space=Space.stored(view.record.space, f"study {view.name!r}"),
                trials=view.trials, sampler=sampler_name(cfg), pruner=pruner_name(cfg),
                rungs=pruner_rungs(pruner), tests=self._tests(view.record), storage=command_url(self.storage),
                seed=sampler_seed(cfg.get("sampler")),
            )

        snap: Snapshot = view.cached("snapshot", build)
        return snap

    def _tests(self, record: StudyRecord) -> dict[int, float]:
        """Mean test score by search-trial number, as ``study.evaluate_best`` recorded them."""
        name = book_name(record.name)
        if name is None:
            return {}
        with self.io:
            try:
                book = self.storage.get_study(name)
            except KeyError:
                return {}
            trials = self.storage.get_trials(book.study_id)
        found = results_from(trials, record.direction, where=book.name, quiet=True)
        return {number: r.mean for number, r in found.items()}


def with_tied_whole(storage: Storage, record: StudyRecord, heads: Sequence[FrozenTrial]) -> tuple[FrozenTrial, ...]:
    """``heads`` (trials without their reports) with the complete trials tied for the best value
    read whole, so that :func:`~tunesmith.trial.best_of` ranks them by their reports: one query
    for the tied trials alone, not the study's whole history (40 % of the pruning replay's
    studies tie for their best)."""
    tied = tied_best(heads, record.direction)
    if len(tied) < 2:
        return tuple(heads)
    numbers = {t.number for t in tied}
    past = max(t.number for t in heads) + 1  # trials made since the heads were read are not asked for
    whole = {t.number: t for t in storage.get_trials_since(record.study_id, past, also=numbers)
             if t.number in numbers}
    return tuple(whole.get(t.number, t) for t in heads)


def _refresh(storage: Storage, e: _Entry) -> None:
    fresh = storage.get_trials_since(e.record.study_id, e.next_number, also=e.live)
    e.read_at = time.monotonic()
    changed = False
    for t in fresh:
        old = e.finished.get(t.number) or e.live.get(t.number)
        if old is None or _differs(old, t):
            changed = True
            e.last_activity = max(e.last_activity, t.completed or 0.0, t.started or 0.0, t.heartbeat or 0.0)
        if t.state.is_finished:
            e.finished[t.number] = t
            e.live.pop(t.number, None)
        else:
            e.live[t.number] = t
        e.next_number = max(e.next_number, t.number + 1)
    if changed or not e.read:
        e.read = True
        e.version += 1
        merged = {**e.finished, **e.live}
        e.trials = tuple(merged[n] for n in sorted(merged))


def _differs(a: FrozenTrial, b: FrozenTrial) -> bool:
    """A change worth redrawing: not a heartbeat alone."""
    return replace(a, heartbeat=None) != replace(b, heartbeat=None)
