"""Worker heartbeats: running trials prove their worker is alive; lost ones are failed.

A background thread writes the time into every running trial of this process
each ``interval`` seconds. Any worker, when it asks for a trial, fails the
running trials whose heartbeat is older than ``grace`` seconds (their worker
was killed or its machine lost) and, with ``requeue``, queues a copy with the
same parameters. The lifecycle does that with compare-and-set writes, so two
workers never fail or re-queue the same trial twice.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..storage import Storage
from ..storage.base import local_pid, worker_gone
from ..trial import FrozenTrial, TrialState
from .lifecycle import fail_lost

logger = logging.getLogger("tunesmith")


#: seconds between heartbeats at the least: each is a write to the storage
MIN_INTERVAL = 0.001
#: seconds between heartbeats at the most: a thread's sleep ends at the monotonic clock (counted from the
#: machine's start) plus the interval, which must stay below threading.TIMEOUT_MAX (9.22e9 s on Linux): at
#: that maximum itself it failed with "OSError: Invalid argument", and no beat was written
MAX_INTERVAL = threading.TIMEOUT_MAX / 2


@dataclass(frozen=True)
class HeartbeatConfig:
    """``interval`` and ``grace`` in seconds; ``interval=None`` turns heartbeats off."""

    interval: float | None = None
    grace: float | None = None
    requeue: bool = False

    @classmethod
    def build(cls, interval: Any, grace: Any, requeue: Any) -> HeartbeatConfig:
        """Validated settings; ``grace`` defaults to five intervals."""
        if interval is None:
            if grace is not None or requeue:
                raise ValueError(
                    "grace_period and requeue_failed need heartbeats: pass heartbeat_interval=SECONDS too"
                )
            return cls()
        seconds = _positive("heartbeat_interval", interval)
        if seconds == math.inf:  # was refused as a grace_period (inf) not longer than it
            raise ValueError("heartbeat_interval must be a finite number of seconds, got inf; leave it out "
                             "(None) to run without heartbeats")
        if seconds > MAX_INTERVAL:  # 1e300: the thread's sleep raised OverflowError, beating never
            raise ValueError(f"heartbeat_interval must be at most {MAX_INTERVAL:.3g} s, got {interval!r}")
        if seconds < MIN_INTERVAL:  # 1e-9 (a typo, or a value written into the database): a loop of writes
            raise ValueError(f"heartbeat_interval must be at least {MIN_INTERVAL:g} s, got {interval!r}")
        wait = 5.0 * seconds if grace is None else _positive("grace_period", grace)
        if wait <= seconds:
            raise ValueError(
                f"grace_period ({grace}) must be longer than heartbeat_interval ({interval}), "
                "or live trials would be failed between two beats; use e.g. 5x the interval"
            )
        if not isinstance(requeue, bool):
            raise TypeError(f"requeue_failed must be True or False, got {requeue!r}")
        return cls(seconds, wait, requeue)

    def to_dict(self) -> dict[str, Any]:
        return {"interval": self.interval, "grace": self.grace, "requeue": self.requeue}

    @classmethod
    def from_dict(cls, d: Any) -> HeartbeatConfig:
        """The settings as :meth:`to_dict` stored them; ``requeue`` read strictly (a JSON true or false,
        or none): another program's ``"requeue": "no"`` was true, and re-queued every lost trial."""
        d = d or {}
        requeue = d.get("requeue")
        if requeue is not None and not isinstance(requeue, bool):
            raise TypeError(f'"requeue" is {requeue!r}, not true or false; write true (lost trials re-queued) '
                            "or false there")
        return cls.build(d.get("interval"), d.get("grace"), bool(requeue))


#: what this process was told of a study's stored heartbeats (storage, name, what): told once, not at each open
_TOLD: set[tuple[object, ...]] = set()
#: a number of its own for each storage without a URL (memory), never reused, unlike ``id()`` once one is freed
_SERIALS: weakref.WeakKeyDictionary[Storage, int] = weakref.WeakKeyDictionary()
_NEXT_SERIAL = itertools.count()


def _storage_key(storage: Storage) -> object:
    """What tells ``storage`` from the others: its URL, else a number of its own (a storage that cannot be
    weakly referenced or hashed: its ``id()``, which a later one may reuse once it is freed)."""
    if storage.url != Storage.url:
        return storage.url
    try:
        return ("memory", _SERIALS.setdefault(storage, next(_NEXT_SERIAL)))
    except TypeError:
        return ("id", id(storage))


def _once(storage: Storage, study: str, *what: object) -> Callable[..., None]:
    """logger.warning the first time this process says ``what`` of ``study`` in ``storage``, logger.debug after."""
    told = (_storage_key(storage), study, *what)  # memory: each its own
    first = told not in _TOLD
    _TOLD.add(told)
    return logger.warning if first else logger.debug


def reconcile(mine: HeartbeatConfig, stored: HeartbeatConfig, study: str, storage: Storage) -> HeartbeatConfig:
    """The settings a process uses on an existing study when it passed its own: beating as often
    and waiting as long as either asks. Workers that judged lost with a grace shorter than another
    worker's interval failed that worker's live trials (and threw away their results)."""
    if stored.interval is None or stored.grace is None or mine.interval is None or mine.grace is None:
        if stored.interval is None and mine.interval is not None:
            _once(storage, study, "no beats")(
                "study %r was created without heartbeats: its workers that were opened without heartbeat_interval "
                "do not beat, and this process fails their running trials after %g s; pass heartbeat_interval to "
                "every worker of it (said once per process)", study, mine.grace)
        return mine
    used = HeartbeatConfig(min(mine.interval, stored.interval), max(mine.grace, stored.grace), mine.requeue)
    if (used.interval, used.grace) != (mine.interval, mine.grace):
        _once(storage, study, stored.interval, stored.grace, mine.interval, mine.grace)(
            "study %r is stored with heartbeat_interval=%g, grace_period=%g; this process asked for %g and %g, "
            "so it beats every %g s and judges a trial lost after %g s (a shorter grace than another worker's "
            "interval would fail that worker's live trials). Leave both out to use the stored ones (said once "
            "per process)",
            study, stored.interval, stored.grace, mine.interval, mine.grace, used.interval, used.grace,
        )  # fmt: skip
    return used


def _positive(name: str, v: Any) -> float:
    """``v`` as a float, or a ValueError unless it is a positive number (an int beyond a float's range,
    such as ``10**400`` written into a study's settings by another program, included: an OverflowError)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {v!r}")
    try:
        return float(v)
    except OverflowError:  # only an int overflows a float
        raise ValueError(f"{name} must be a number of seconds a float holds, got an integer of {int(v).bit_length()} "
                         "bits") from None


def excused(beat: float, outages: Sequence[tuple[float, float]], *, now: float, grace: float) -> bool:
    """Whether a trial whose last heartbeat is ``beat`` may owe its silence to an outage of the storage
    (:meth:`Storage.outages`): one that ended less than ``grace`` ago, the trial not lost yet when it began.
    Its worker could not write its beats then either, and gets ``grace`` after it to write one. A trial
    lost before an outage is not excused by it, nor by any later one: a process meeting outages again
    and again (a lock held a second or more every few seconds) kept a dead worker's trial running for good
    when every outage excused every trial."""
    return any(again > now - grace and beat >= last - grace for last, again in outages)


LOST = "worker lost: no heartbeat for {grace:g} s (process killed or machine lost)"
GONE = "worker lost: its process {pid} of this machine no longer runs (killed, with the run that started it)"


#: Held by a heartbeat thread while it writes, and by any thread that forks
#: this process: a fork in the middle of a beat would hand the child a
#: database library lock that no thread of the child ever releases (measured:
#: 14 of 150 forked children hung opening the study's SQLite file).
_WRITING = threading.Lock()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_WRITING.acquire, after_in_parent=_WRITING.release, after_in_child=_WRITING.release
    )


class Heartbeat:
    """Beats for this process's running trials and reaps other workers' lost ones."""

    def __init__(self, storage: Storage, study_id: int, config: HeartbeatConfig) -> None:
        self.storage = storage
        self.study_id = study_id
        self.config = config
        self.opened = time.time()  # kept by a forked worker: its siblings' beats come after it
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._numbers: set[int] = set()
        self._thread: threading.Thread | None = None
        self._last_reap = 0.0

    def _mine(self) -> None:
        if self._pid != os.getpid():  # a forked worker: the parent's thread did not come along
            self._reset()

    @property
    def enabled(self) -> bool:
        return self.config.interval is not None

    def started(self, number: int) -> None:
        if not self.enabled:
            return
        self._mine()
        with self._lock:
            self._numbers.add(number)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="tunesmith-heartbeat", daemon=True)
                self._thread.start()

    def finished(self, number: int) -> None:
        if self.enabled:
            self._mine()
            with self._lock:
                self._numbers.discard(number)

    def _loop(self) -> None:
        assert self.config.interval is not None
        while True:
            time.sleep(self.config.interval)
            with self._lock:
                numbers = sorted(self._numbers)
                if not numbers:
                    self._thread = None
                    return
            try:
                with _WRITING:
                    self.storage.heartbeat(self.study_id, numbers, self.storage.clock())
            except Exception as exc:  # noqa: BLE001 - keep beating; the next beat may pass
                logger.warning("heartbeat not recorded (%s); retrying in %g s", exc, self.config.interval)

    def reap(self, *, force: bool = False) -> list[FrozenTrial]:
        """Fail (and maybe re-queue) trials of lost workers; at most once per interval."""
        cfg = self.config
        if cfg.interval is None or cfg.grace is None:
            return []
        self._mine()
        now = self.storage.clock()  # the clock the beats were written with (the server's on PostgreSQL)
        if not force and now - self._last_reap < cfg.interval:
            return []
        self._last_reap = now
        running = self.storage.get_trials(self.study_id, state=TrialState.RUNNING)
        outages = self.storage.outages()  # after the trials: that read may itself have waited one out
        stale = [t for t in running if (t.heartbeat or 0.0) < now - cfg.grace
                 and not excused(t.heartbeat or 0.0, outages, now=now, grace=cfg.grace)]  # fmt: skip
        gone = [t for t in running if t not in stale and self._gone_before_us(t, now)]
        if not stale and not gone:
            return []
        grace = cfg.grace

        def confirm(t: FrozenTrial) -> bool:  # in the write: it may have waited out a lock the beats met too
            return not excused(t.heartbeat or 0.0, self.storage.outages(), now=now, grace=grace)

        lost = self._fail(stale, LOST.format(grace=cfg.grace), now, confirm)
        for t in gone:  # judged in the write too: a beat since (a live worker after all) leaves it running
            lost += self._fail([t], GONE.format(pid=local_pid(t.worker)), now, None, " (its process no longer runs)")
        return lost

    def _gone_before_us(self, trial: FrozenTrial, now: float) -> bool:
        """Whether ``trial``'s worker is a process of this machine that no longer runs and wrote its last beat
        before this study was opened here (a run killed whole, its workers with it): lost now, not a grace
        later, so a run started again at once takes its trials back. Not a sibling worker that died as this
        one ran (its parent holds or fails that trial), nor, with a beat within two intervals, a live worker
        of another machine of the same host name. A zombie is gone, and so is a worker whose pid went to a
        process started after its last beat (a container restarted gives its run the same pids)."""
        assert self.config.interval is not None
        lead = now - time.time()  # the storage's clock (the server's on PostgreSQL) less this process's
        beat = trial.heartbeat or 0.0
        return beat < min(self.opened + lead, now - 2 * self.config.interval) and worker_gone(trial.worker, beat - lead)

    def _fail(self, trials: list[FrozenTrial], error: str, now: float,
              confirm: Callable[[FrozenTrial], bool] | None, why: str = "") -> list[FrozenTrial]:
        if not trials:
            return []
        lost = fail_lost(self.storage, self.study_id, trials, error=error, now=now, requeue=self.config.requeue,
                         dead=False, once=True, judged=True, confirm=confirm)  # fmt: skip
        for t in lost:
            again = f"; re-queued as trial {t.system.requeued_as}" if t.system.requeued_as is not None else ""
            # %r: a name read from the database, its terminal escapes shown, never sent to the terminal
            logger.warning("trial %d: worker %r lost%s%s", t.number, t.worker, why, again)
        return lost
