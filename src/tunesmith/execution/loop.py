"""The worker loop shared by every executor: ask, evaluate, tell until the budget ends."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..exceptions import SearchExhausted, StorageError, TrialFinishedError, interrupted
from ..trial import FrozenTrial, TrialState, one_line

if TYPE_CHECKING:
    from ..study import Study, Trial

try:
    import fcntl
except ImportError:  # no POSIX record locks (Windows): a semaphore, taken over after LOCK_TIMEOUT
    fcntl = None  # type: ignore[assignment]


logger = logging.getLogger("tunesmith")

#: seconds after which the budget's lock counts as held by a dead worker (only where the
#: lock is a semaphore: without POSIX record locks, or with processes that are not forked)
LOCK_TIMEOUT = 5.0

#: what an executor returns when the search ran out of configurations
EXHAUSTED = "the search is exhausted: every configuration has been tried"

# Budget's shared stop flag: trials may start; stopped (interrupt, timeout, a callback);
# stopped because the search is exhausted (promotions earned and waiting trials still run)
_GOING, _STOPPED, _EXHAUSTED = 0, 1, 2

#: tests only: called in a worker process with the name of each point between two
#: writes where a SIGKILL must leave the counts exact ("took", "asked", "resumed", "seated", "promoted", "waiting"),
#: and where a worker has nothing in flight ("idle": before it takes a unit for its next trial)
KILL_POINT: Callable[[str], None] | None = None


class Budget:
    """Trials left and deadline, shared by threads (ctx=None) or forked processes.

    What is spent is never one shared "left" but a sum: ``left = n_trials - base -
    sum(seat.net)``, computed under the lock by whoever reads it. ``base`` is written
    by the parent only (threads, Ray: by everyone, under the lock; no thread is
    killed). Each worker process writes only its own :class:`Seat`, and each change
    there is one store of one counter, so a SIGKILL at any instruction leaves either
    the old or the new count, never half of a change:

    * ``take``: ``seat.taken += 1`` under the lock is the whole step (killed before:
      nothing taken; after: a unit held, which the parent settles).
    * the unit becomes a trial: ``placed += 1`` after ``ask`` returned, or goes back
      unused: ``unused += 1`` (a resume, an exhausted search, nothing waiting). Killed
      between the storage write and this store, the unit is still held; the parent,
      once the worker is dead, looks in the storage: a new trial of that worker still
      running is the unit's trial (kept), otherwise the unit goes back. Looking twice
      (the sweep finds a trial committed late) takes it again: idempotent.
    * a trial failed and re-queued elsewhere while it ran: ``refunded += 1``. Killed
      before (while its objective still ran, say), the parent finds more of its trials
      re-queued by others in the storage than the seat refunded, and refunds the rest.

    The parent then folds the dead seat into ``base`` (under the lock) and reuses it
    for the worker that replaces it.
    """

    def __init__(self, n_trials: int | None, timeout: float | None, ctx: Any = None, seats: int = 0) -> None:
        self.limited = n_trials is not None
        self.n_trials = n_trials if n_trials is not None else 0
        if ctx is None:
            self._base: Any = _Box(0)
            self._stop: Any = _Box(_GOING)
            self._ran_out: Any = _Box(0)
            self._raised: Any = _Box(0)
            self._lock: Any = threading.Lock()
        else:
            self._base = ctx.Value("q", 0, lock=False)
            self._stop = ctx.Value("b", _GOING, lock=False)
            self._ran_out = ctx.Value("b", 0, lock=False)
            self._raised = ctx.Value("b", 0, lock=False)
            self._lock = _RecordLock() if fcntl is not None and ctx.get_start_method() == "fork" else ctx.Lock()
        self._held = _Held(self._lock)
        self.seats = [Seat(ctx) for _ in range(seats)]  # created before any fork: all workers share them
        self.seat: Seat | None = None  # in a worker process: its own (see :meth:`bind`)
        self.deadline = None if timeout is None else time.monotonic() + timeout

    def bind(self, seat: Seat) -> None:
        """In a forked worker: count what it takes and gives back in ``seat`` alone."""
        self.seat = seat

    def _locked(self) -> _Held:
        """The budget's lock, held in a ``with`` block (see :class:`_Held`)."""
        return self._held

    @property
    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _left(self) -> int:
        """Units left (under the lock; below 0 after the parent took back a unit it had given)."""
        spent = self._base.value
        for s in self.seats:
            spent += s.net
        return self.n_trials - spent

    def take(self, n: int = 1, *, exhausted_ok: bool = False) -> int:
        """Reserve up to ``n`` trials; how many were granted (0: spent or stopped;
        with ``exhausted_ok``, a search that ran out still grants them: waiting
        trials need no new configuration). In a worker process the grant is one
        store in its seat (see the class's docstring)."""
        if self.expired:
            return 0
        with self._locked():
            if self._stop.value != _GOING and not (exhausted_ok and self._stop.value == _EXHAUSTED):
                return 0
            got = min(n, max(0, self._left())) if self.limited else n
            if got:
                if self.seat is not None:
                    self.seat._taken.value += got  # the commit point
                    if KILL_POINT is not None:
                        KILL_POINT("took")
                else:
                    self._base.value += got
            return int(got)

    def placed(self) -> None:
        """The unit this worker took became a (new) trial in the storage."""
        if self.seat is not None:
            self.seat._placed.value += 1

    def give_back(self, n: int = 1) -> None:
        """``n`` units taken but not turned into new trials."""
        if n <= 0:
            return
        if self.seat is not None:
            self.seat._unused.value += n  # its own counter: one store, no lock needed
        else:
            with self._locked():
                self._base.value -= n

    def refund(self, n: int = 1) -> None:
        """``n`` units whose trials do not count (failed and re-queued elsewhere: the copy runs)."""
        if n <= 0:
            return
        if self.seat is not None:
            self.seat._refunded.value += n
        else:
            with self._locked():
                self._base.value -= n

    def charge(self, n: int) -> None:
        """The parent counts ``n`` units spent even if none is left (a unit it gave back
        whose trial turned up later)."""
        with self._locked():
            self._base.value += n

    def vacate(self, seat: Seat) -> tuple[int, int]:
        """The parent, once ``seat``'s worker is dead: fold what it spent into ``base``, the
        units it held counted as spent until :meth:`settle` says, and clear the seat for a
        new worker. The units it held and those it refunded."""
        with self._locked():
            held, refunded = seat.held, seat.refunded
            self._base.value += seat.net
            seat.clear()
            return held, refunded

    def settle(self, held: int, refunded: int, *, kept: bool, requeued: int = 0) -> bool:
        """After :meth:`vacate` gave ``held`` and ``refunded``: a unit the dead worker held
        is spent if ``kept`` (its trial was found in the storage), else given back; of its
        trials that others failed and re-queued (``requeued``, found in the storage) those
        it did not refund itself are refunded. Whether a held unit was given back."""
        back = held > 0 and not kept
        self.charge(-(held if back else 0) - max(0, requeued - refunded))
        return back

    def stop(self, *, exhausted: bool = False, interrupted: bool = False) -> None:
        """No new trial starts; ``exhausted``: because the search has none left
        (earned promotions still run then, see :func:`finish_promoted`); ``interrupted``: because an
        objective raised KeyboardInterrupt itself in a worker thread or process (``study.interrupted``)."""
        with self._locked():  # an interrupt (plain stop) is never turned back into exhaustion
            self._stop.value = _EXHAUSTED if exhausted and self._stop.value != _STOPPED else _STOPPED
            if exhausted:
                self._ran_out.value = 1
            if interrupted:
                self._raised.value = 1

    @property
    def interrupted(self) -> bool:
        """Whether an objective's own KeyboardInterrupt stopped the run (:meth:`stop`)."""
        return bool(self._raised.value)

    @property
    def stopped(self) -> bool:
        return self._stop.value != _GOING

    @property
    def exhausted(self) -> bool:
        """Stopped because the search is exhausted (seen by every worker)."""
        return self._stop.value == _EXHAUSTED

    @property
    def ran_out(self) -> bool:
        """Whether a worker found the search exhausted, even if a stop came after (which
        ends :attr:`exhausted`, so that earned promotions no longer run)."""
        return bool(self._ran_out.value)

    @property
    def left(self) -> int | None:
        if not self.limited:
            return None
        with self._locked():
            return max(0, int(self._left()))

    @property
    def may_start(self) -> bool:
        """Whether a new trial may still start (a unit is left, nothing stopped the run)."""
        return not (self.stopped or self.expired or self.left == 0)

    @property
    def may_drain(self) -> bool:
        """Whether earned promotions (and, after an exhausted search, waiting trials)
        may still run: not once the timeout passed or the run was stopped otherwise."""
        return not self.expired and (not self.stopped or self.exhausted)


@dataclass
class _Box:
    value: int = 0


class _RecordLock:
    """A lock between forked processes that the kernel frees the moment its holder dies
    (a POSIX record lock on an unnamed temporary file), so a worker killed inside the
    budget's few locked instructions stalls nobody and no one takes over a lock that a
    slow, living holder still has. Record locks belong to a process: a thread lock,
    made anew in each forked process, keeps one process's threads apart too."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()
        self._pid = os.getpid()
        self._threads = threading.Lock()

    def acquire(self, timeout: float | None = None) -> bool:
        """Wait until it is free (a dead holder's is: no ``timeout`` is needed between processes);
        whether this process's thread lock was free within ``timeout``: a Ctrl-C or SIGTERM raised in
        the instructions between the acquire and the block that releases it leaves that held by the
        very thread that asks again (the interrupt's stop of the budget), which takes it over then."""
        if self._pid != os.getpid():  # in a forked process: its own thread lock
            self._pid, self._threads = os.getpid(), threading.Lock()
        mine = self._threads.acquire(timeout=-1 if timeout is None else timeout)
        try:
            fcntl.lockf(self._file.fileno(), fcntl.LOCK_EX)
        except BaseException:
            if mine:
                self._threads.release()
            raise
        return mine

    def release(self) -> None:
        fcntl.lockf(self._file.fileno(), fcntl.LOCK_UN)
        self._threads.release()


#: what :attr:`Seat.stopped` holds: how an interrupt stopped a trial its worker ran (0: none stopped)
_STOPPED_AS = {"unknown": 1, "failed": 2, "paused": 3}


class Seat:
    """What one forked worker shares with its parent: monotone counters of the budget
    units it took, turned into trials, gave back unused, and had refunded (each
    written by that worker alone, one store per change; see :class:`Budget`),
    since when it asks for or runs a trial (0: neither; set before the trial is
    written, cleared after its end is: see :attr:`quiet`), whether it runs one
    (:attr:`running`: a trial was handed to it, not only asked for) and how many
    were handed to it (:attr:`handed`)."""

    def __init__(self, ctx: Any) -> None:
        box = (lambda code, v: _Box(v)) if ctx is None else (lambda code, v: ctx.Value(code, v, lock=False))
        self._taken = box("q", 0)
        self._placed = box("q", 0)
        self._unused = box("q", 0)
        self._refunded = box("q", 0)
        self._since = box("d", 0.0)
        self._running = box("b", 0)  # 1: asked for a trial and got it (0 while asking)
        self._handed = box("q", 0)  # trials handed to this worker so far (never cleared: compared, not read)
        self._stopped = box("q", 0)  # an interrupt stopped a trial this worker ran (the parent says so): _STOPPED_AS
        self._stopped_number = box("q", 0)  # that trial's number, where this worker knows it

    @property
    def held(self) -> int:
        """Units taken that are neither a trial yet nor given back."""
        return int(self._taken.value - self._placed.value - self._unused.value)

    @property
    def refunded(self) -> int:
        return int(self._refunded.value)

    @property
    def net(self) -> int:
        """Units this seat has spent (held ones included)."""
        return int(self._taken.value - self._unused.value - self._refunded.value)

    @property
    def since(self) -> float:
        return float(self._since.value)

    @property
    def quiet(self) -> bool:
        """Nothing in flight: no unit held, no trial being asked for or run. A worker
        that died quiet left nothing in the storage to look for (read once it is dead)."""
        return self.held == 0 and self._since.value == 0.0

    @property
    def running(self) -> bool:
        """A trial was handed to this worker and has not ended: not merely asked for (an
        interrupt that came while it asked stopped no trial)."""
        return bool(self._running.value)

    def started(self, running: bool) -> None:
        """A trial is asked for and then runs (``running``), or none."""
        if not running:
            self._running.value = 0
        self._since.value = time.time() if running else 0.0

    @property
    def handed(self) -> int:
        """How many trials were handed to this seat's workers: one that grew ran a trial meanwhile, even
        one asked for before and ended since (then :attr:`running` never showed it)."""
        return int(self._handed.value)

    def seated(self) -> None:
        """The trial asked for was handed over: it runs."""
        self._running.value = 1
        self._handed.value += 1

    @property
    def stopped(self) -> bool:
        """An interrupt failed (or paused) a trial this worker ran (it went quiet before its parent looked)."""
        return bool(self._stopped.value)

    def stop(self, record: FrozenTrial | None = None) -> None:
        """An interrupt stopped a trial of this worker: ``record``, failed or paused to go on from its
        checkpoint (``Study.run_trial``), where the worker has it."""
        if record is None:
            self._stopped.value = _STOPPED_AS["unknown"]
            return
        self._stopped_number.value = record.number
        self._stopped.value = _STOPPED_AS["paused" if record.state is TrialState.PAUSED else "failed"]

    def stopped_trial(self) -> tuple[int, str] | None:
        """The number of the trial an interrupt stopped in this worker and what became of it ("failed",
        "paused"); None where no trial was stopped, or the worker did not know which."""
        how = next((k for k, v in _STOPPED_AS.items() if v == self._stopped.value), "unknown")
        return None if how == "unknown" else (int(self._stopped_number.value), how)

    def clear(self) -> None:
        for v in (self._taken, self._placed, self._unused, self._refunded, self._since, self._stopped, self._running,
                  self._stopped_number):
            v.value = 0


class _Held:
    """A lock held for a ``with`` block (a class, not a generator: taken once per trial). A
    worker process killed while it holds it (a few instructions) must not block the others: a
    record lock is freed by the kernel as the holder dies; a semaphore (no record locks) is
    taken over after LOCK_TIMEOUT seconds (and released after)."""

    __slots__ = ("_lock",)

    def __init__(self, lock: Any) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        if not self._lock.acquire(timeout=LOCK_TIMEOUT):
            logger.warning("the trial budget's lock was held for %g s (its worker died, or an interrupt came as it "
                           "was taken); taken over", LOCK_TIMEOUT)

    def __exit__(self, *exc: object) -> None:
        try:
            self._lock.release()
        except (ValueError, RuntimeError):  # taken over, and released meanwhile
            pass


@dataclass
class Run:
    """A worker's view of a job: the study, objective, shared budget and hooks."""

    study: Study
    objective: Callable[..., Any]
    budget: Budget
    catch: tuple[type[BaseException], ...]
    ended: Callable[[FrozenTrial], None] | None = None  # each record, to the driver's callbacks
    on_trial: Callable[[FrozenTrial], None] | None = None
    exhausted: str | None = None  # why this worker's search ended early (SearchExhausted's message)
    after_trial: Callable[[FrozenTrial], bool] | None = None  # False: this worker retires
    retired: bool = False
    lost: int = 0  # trials that were failed elsewhere while this worker ran them
    lost_trial: int | None = None  # the last of them that ended there for good (a Ray actor's answer names it)
    resumes: int = 0  # trials its asks resumed or ran free (a copy), taking no unit (a Ray actor's answer says whether its call's was)
    seat: Seat | None = None  # a forked worker's state, shared with its parent
    interrupted: str | None = None  # threads: the error of the trials an interrupt failed (then none starts)
    stopped: bool = False  # an interrupt came out of a trial's objective, and run_trial marked the trial failed
    stopped_trial: FrozenTrial | None = None  # that trial's failed record (a Ray actor answers with it)
    raised_trial: FrozenTrial | None = None  # the failed record of the trial whose objective raised out of run_one

    def started(self, running: bool) -> None:
        if self.seat is not None:
            self.seat.started(running)

    def seated(self) -> None:
        if self.seat is not None:
            self.seat.seated()


def worker_loop(run: Run) -> None:
    """Ask, evaluate, tell until the budget ends, the search is exhausted, or
    ``after_trial`` retires this worker; then resume the paused trials that
    have earned a promotion (see :func:`finish_promoted`)."""
    while True:
        if KILL_POINT is not None:
            KILL_POINT("idle")
        if not run.budget.take():
            break
        record = run_one(run)
        if record is None:
            if run.exhausted is not None:
                break
            continue
        if run.after_trial is not None and not run.after_trial(record):
            run.retired = True
            return
    finish_promoted(run)


def finish_promoted(run: Run) -> None:
    """Once no new trial may start, run the promotions the last trials earned.

    A pausing pruner (ASHA, Hyperband with ``pause=True``) decides promotions as
    results arrive, so the trial that ends the budget often promotes a paused
    one. Resumes do not count against ``n_trials``; each continues one trial
    to its next rung, so this ends. Not once ``timeout`` has passed.
    """
    while run.budget.may_drain:
        lost = run.lost
        if run_one(run, only="promoted") is not None or run.lost > lost:
            continue  # a trial failed elsewhere meanwhile is over; look again
        # an exhausted search still runs waiting trials (re-queued copies of lost ones,
        # queued ones), each under the budget like any new trial
        if not (run.budget.exhausted and run.budget.take(exhausted_ok=True)):
            return
        if run_one(run, only="waiting") is None and run.lost == lost:
            run.budget.give_back()  # none was waiting
            return


def _ask(run: Run, only: str | None) -> Trial | None:
    """The next trial to run (see :func:`run_one`), its budget unit settled: placed
    (a new trial, a waiting one) or given back (a resume continues a trial: n_trials
    counts new ones; a lost trial's copy run free; an exhausted search). ``only="promoted"`` takes no unit. The
    worker counts as running a trial from before the storage is asked (see Seat.quiet)."""
    budget = run.budget
    run.started(True)
    if only is not None:
        picked = run.study.ask_promoted() if only == "promoted" else run.study.ask_waiting()
        if KILL_POINT is not None and picked is not None:
            KILL_POINT(only)
        if picked is not None and only == "waiting":
            _settle_unit(run, picked)
        run.started(picked is not None)
        if picked is not None:
            run.seated()
        return picked
    try:
        trial = run.study.ask()
    except SearchExhausted as exc:
        budget.give_back()
        budget.stop(exhausted=True)
        run.exhausted = str(exc)
        run.started(False)
        return None
    run.seated()
    if KILL_POINT is not None:
        KILL_POINT("resumed" if trial.is_resumed else "asked")
    _settle_unit(run, trial)
    if KILL_POINT is not None:
        KILL_POINT("seated")
    return trial


def _settle_unit(run: Run, trial: Trial) -> None:
    """The unit taken for ``trial``: placed, or given back where its run takes none (a resume, a lost trial's
    copy run free: :attr:`SystemState.free`)."""
    if trial.is_resumed or trial.record.system.free:
        run.budget.give_back()
        run.resumes += 1
    else:
        run.budget.placed()


def run_one(run: Run, *, only: str | None = None) -> FrozenTrial | None:
    """One trial; None when the search is exhausted or it was failed elsewhere.
    ``only="promoted"``: a promoted paused trial, ``only="waiting"``: a waiting
    one (None: there is none), never a new configuration."""
    trial = _ask(run, only)
    if trial is None:
        return None
    if run.interrupted is not None:  # asked as an interrupt failed the running trials (it came after
        run.started(False)  # their look, or it would have been failed with them): failed, not run
        with contextlib.suppress(TrialFinishedError):  # failed with them after all
            run.study.tell(trial, state=TrialState.FAILED, error=run.interrupted)
        return None
    resumed = trial.is_resumed
    failed: FrozenTrial | None = None  # the trial whose objective raised what catch= lets through
    try:
        record = run.study.run_trial(run.objective, trial, run.catch)
    except TrialFinishedError:  # failed meanwhile (interrupted, or its heartbeat was judged lost)
        run.lost += 1
        stored = run.study.trials[trial.number]
        if stored.state is TrialState.WAITING:  # put back in the queue (its objective found the budget spent)
            logger.info("trial %d went back to the queue while it ran here", trial.number)
            return None
        if stored.state is TrialState.RUNNING:  # held as lost while it ran here, then resumed by another worker
            logger.warning("trial %d was taken over by another worker while it ran here (this one was taken for "
                           "lost and the trial resumed there): this run's result is not recorded", trial.number)
            return None
        if stored.state is TrialState.PAUSED:  # held back to paused (this worker taken for lost): it goes on later
            logger.warning("trial %d was held back to paused while it ran here (%s): this run's result is not recorded; "
                           "the trial goes on from its recorded checkpoint when resumed", trial.number,
                           one_line(stored.system.held or "paused elsewhere"))
            return None
        run.lost_trial = trial.number  # ended for good (not back in the queue: this worker may run it again)
        again = "" if stored.system.requeued_as is None else f"; re-queued as trial {stored.system.requeued_as}"
        logger.warning("trial %d ended elsewhere while it ran here (%s%s): this run's result is not recorded",
                       trial.number, one_line(stored.error) if stored.error else stored.state.value, again)  # it was dropped silently
        if units_back(run.study, [stored]):
            run.budget.refund()  # its copy runs under this call's budget: the lost attempt is not counted
        return None
    except KeyboardInterrupt as exc:  # not one that came once its result was written (in tell)
        run.stopped = stopped_by(trial.record, interrupted(exc))
        run.stopped_trial = trial.record if run.stopped else None
        raise
    except BaseException:  # what catch= lets through: run_trial failed the trial (a Ray actor answers with it)
        failed = run.raised_trial = trial.record if trial.record.state is TrialState.FAILED else None
        raise
    finally:
        run.started(False)
        if run.study.stopping:  # study.stop() from the objective (a worker process's own copy of the study),
            run.budget.stop()  # its trial recorded or failed elsewhere: the budget is shared, no worker starts one after
        if failed is not None:  # the callbacks see it before optimize raises it, as every trial that ended;
            run.budget.stop()  # first: no worker starts a trial while they do (its own stopped it after them)
            _hand_on(run, failed, resumed)
    _hand_on(run, record, resumed)
    return record


def units_back(study: Study, ended: Iterable[FrozenTrial]) -> int:
    """How many of the trials ``ended`` as lost (here or elsewhere, as they ran) give their unit of ``n_trials``
    back (:meth:`Study.refunds`: not where another call ran the copy free, nor where the copy is the
    out-of-memory retry its worker queued before it died). Asked again, the same count. Read unsure (a storage
    error): each re-queued one."""
    back = [t for t in ended if t.system.unit_back]
    try:
        return sum(study.refunds(t) for t in back)
    except StorageError:
        return len(back)


def stopped_by(record: FrozenTrial, error: str) -> bool:
    """Whether ``record`` is a trial that the interrupt of ``error`` stopped: failed with that error,
    or paused with it to resume from its checkpoint (``Study.run_trial``)."""
    if record.state is TrialState.PAUSED:
        return record.system.held == error
    return record.state is TrialState.FAILED and record.error == error


def _hand_on(run: Run, record: FrozenTrial, resumed: bool) -> None:
    """A trial's record, once it ended, to the driver's callbacks and the progress bar."""
    if run.ended is not None:
        run.ended(record)
    if run.on_trial is not None and not resumed:
        run.on_trial(record)
