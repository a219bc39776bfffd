"""Forked worker processes sharing a SQL storage; optional GPU packing.

Processes share the study through its SQL storage, so CPU-bound Python
objectives really run in parallel (no GIL between them). Each process owns a
:class:`~tunesmith.execution.gpu.Slot`: one thread for numeric libraries
and, when GPUs are given, one device in ``CUDA_VISIBLE_DEVICES``.

The parent watches its workers. One that dies (killed, crashed, or stopped by
``trial_timeout``) has its running trial failed (re-queued if the study
re-queues lost trials; once per trial), a budget unit it held but never turned
into a trial is given back, and a new worker takes its place while trials are
left: ``n_trials`` trials end, whatever dies on the way. A killed worker is
replaced at once; the look for its trial waits SETTLE, and what that look
finds (a re-queued copy, a promotion, a unit given back) is left to the
replacement, or to a worker started for it once the replacement is gone.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import pickle
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import (
    STOPPING_SIGNALS,
    OutOfRoom,
    ResumeRefused,
    StorageError,
    Terminated,
    TrialNotFound,
    WorkersLost,
    interrupted,
)
from ..samplers import auto
from ..trial import FrozenTrial, TrialState
from .base import Executor, Job
from .callbacks import Callbacks
from .gpu import (
    EXIT_OOM,
    Slot,
    SlotPool,
    apply_env,
    is_oom_error,
    may_retry_oom,
    parse_gpus,
    plan_slots,
    retry_queued_first,
)
from .local import (
    STOPS,
    _held,
    _interrupted,
    _me,
    _unheld_mask,
    _unhold_in_worker,
    fail_stopped,
    left_running,
    said_stopped,
)
from .loop import EXHAUSTED, Budget, Run, Seat, units_back, worker_loop

logger = logging.getLogger("tunesmith")

#: seconds between the death of a worker with a trial in flight and the parent's look for
#: that trial (see _Pool._settled); a worker that died with nothing in flight is replaced at once
SETTLE = 0.5
#: workers in a row that exited with an error before running a trial (one that cannot
#: start): then no more replacements
MAX_BARREN_DEATHS = 10


def check_trial_timeout(trial_timeout: Any, name: str = "trial_timeout") -> float | None:
    """``trial_timeout`` as seconds (None: no limit), or a ValueError naming ``name`` (the argument)."""
    if trial_timeout is None:
        return None
    if isinstance(trial_timeout, bool) or not isinstance(trial_timeout, (int, float)) or not (
        math.isfinite(trial_timeout) and trial_timeout > 0
    ):
        raise ValueError(f"{name} must be a positive number of seconds or None, got {trial_timeout!r}")
    return float(trial_timeout)


class ProcessExecutor(Executor):
    """Forked worker processes sharing a SQL storage; optional GPU packing.

    Args:
        n_jobs: worker processes (with ``gpus``: at most that many).
        gpus: devices to use (ids, "0,1", or a count); None: CPU only.
        trials_per_gpu: concurrent trials per device.
        threads_per_trial: threads for numeric libraries in each worker
            (OMP_NUM_THREADS, torch); None leaves them as they are.
        trial_timeout: seconds a trial may run; then its worker is killed, the
            trial failed with the reason (never re-queued) and the worker replaced.
    """

    name = "process"

    def __init__(
        self,
        n_jobs: int | None = None,
        *,
        gpus: Sequence[int | str] | int | str | None = None,
        trials_per_gpu: int = 1,
        threads_per_trial: int | None = 1,
        trial_timeout: float | None = None,
    ) -> None:
        self.slots = plan_slots(n_jobs, parse_gpus(gpus), trials_per_gpu)
        self.threads = threads_per_trial
        self.trial_timeout = check_trial_timeout(trial_timeout)

    def run(self, job: Job) -> str | None:
        return _Pool(self, job).run()


@dataclass
class _Worker:
    slot: Slot
    proc: Any
    seat: Seat
    inbox: Any  # read end of the pipe the worker sends each ended record through (None: closed)
    timed_out: bool = False
    dead_at: float | None = None  # when the parent saw it exit
    unit_back: bool = False  # its exit gave back a budget unit it held (no trial of it was found then)
    born: float = 0.0  # when it started, by the storage's clock
    quiet: bool = False  # it died with nothing in flight (Seat.quiet, read as the parent saw it dead)
    vacated: tuple[int, int] | None = None  # its seat folded into the budget: (units held, refunded)
    heir: _Worker | None = None  # the worker started in its place
    owed: bool = False  # a worker it replaced left work it may have missed (a re-queued copy, a promotion, a unit back)


@dataclass
class Losses:
    """What went wrong in one optimize call, for the summary it logs."""

    deaths: int = 0
    failed: int = 0
    requeued: int = 0
    oom_requeued: int = 0  # out-of-memory trials a dead worker failed but had not queued again: queued by the parent
    timed_out: int = 0
    replaced: int = 0
    barren: int = 0  # deaths in a row without a trial
    looks: int = 0  # deaths in a row without a trial once no new trial may start (each replaced to look again)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str | None:
        if not self.deaths:
            return None
        parts = [f"{self.deaths} worker process(es) died during this optimize call"]
        if self.timed_out:
            parts.append(f"{self.timed_out} of them stopped by trial_timeout")
        parts.append(f"{self.failed} running trial(s) failed, {self.requeued} of them re-queued")
        if self.oom_requeued:
            parts.append(f"{self.oom_requeued} out-of-memory trial(s) they had failed re-queued")
        parts.append(f"{self.replaced} replacement worker(s) started")
        return "; ".join(parts) + " (the failed trials' errors say why)"


class _Pool:
    """The parent's side of one optimize call: starts, watches and replaces workers."""

    def __init__(self, ex: ProcessExecutor, job: Job) -> None:
        self.ex = ex
        self.job = job
        self.ctx: Any = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        self.budget = Budget(job.n_trials, job.timeout, self.ctx, seats=len(ex.slots))
        self.free = list(self.budget.seats)  # seats of no live worker (at most one worker per slot lives)
        self.run_ = Run(job.study, job.objective, self.budget, job.catch)
        self.calls = Callbacks(job.study, job.callbacks, self.budget)
        self.pool = SlotPool(ex.slots)
        self.workers: dict[int, _Worker] = {}
        self.losses = Losses()
        self.raised: BaseException | None = None  # the objective's error catch let through (the first)
        self.signalled = self.ctx.Value("i", 0, lock=False)  # the signal that stopped the run (0: Ctrl-C)
        # an outage the workers (and this process) ride out together is said once by one of them
        self.outage_said = self.ctx.Value("d", -math.inf)
        # the study's no-pruner warning was said by a worker (the first to ask, under this lock): no other says it
        self.said_no_pruner = self.ctx.Value("b", 0)

    def run(self) -> str | None:
        storage = self.run_.study._storage
        storage.share_outage_lines(self.outage_said)  # the workers forked from here share it
        try:
            for slot in self.ex.slots:  # a signal while they start stops those started too
                self._start(slot)
            self._watch()
        except KeyboardInterrupt as exc:
            self._interrupt(exc)
        finally:
            _wait([w.proc for w in self.workers.values()], 5.0)
            storage.share_outage_lines(None)
        if self.job.poll is not None:
            self.job.poll()
        # once per study object, as inline: a later call says it no more (read without the lock: a worker killed
        # as it held it would keep it for good)
        if self.said_no_pruner.get_obj().value:
            self.job.study._said_no_pruner = True
        if self.job.interrupted is None and self.budget.interrupted:  # a worker's objective raised it itself
            self.job.interrupted = interrupted()  # study.interrupted as inline
        summary = self.losses.summary()
        if summary:
            logger.warning(summary)
        self.calls.raise_error(_ended_since(self.run_.study, self.raised))
        if self.losses.barren > MAX_BARREN_DEATHS:
            raise WorkersLost(
                f"{self.losses.barren} worker processes in a row died before running a trial; "
                f"stopped replacing them ({'; '.join(self.losses.notes[-1:])}). See the log above"
            )
        return EXHAUSTED if self.budget.ran_out else None

    def _start(self, slot: Slot) -> _Worker:
        seat = self.free.pop()
        inbox, outbox = self.ctx.Pipe(duplex=True)
        args = (self.run_, slot, self.ex.threads, seat, outbox, bool(self.job.callbacks), self.signalled,
                _unheld_mask(), os.getpid(), self.said_no_pruner)
        p = self.ctx.Process(target=_child, args=args, daemon=False)
        born = self.run_.study._storage.clock()
        # a Ctrl-C or SIGTERM raised in the fork's own hooks is lost ("Exception ignored"): the run went on.
        # Held, it is delivered after (the worker unblocks them itself), once the worker is counted among
        # those the interrupt stops and waits for: raised before, it left that one running on its own
        with _held(STOPS):
            p.start()
            outbox.close()  # the worker holds the only write end: its death reads as end of file
            w = self.workers[slot.index] = _Worker(slot, p, seat, inbox, born=born)
        return w

    def _interrupt(self, exc: KeyboardInterrupt) -> None:
        # a second Ctrl-C or SIGTERM waits until the running trials are recorded: raised in the middle,
        # it left the trials of workers that had not recorded theirs (a busy database) running for good
        with _held(STOPS):
            name = exc.name if isinstance(exc, Terminated) else STOPPING_SIGNALS[0] if STOPPING_SIGNALS else None
            self.job.interrupted = _stop_error(0, name)
            if name is not None:  # SIGTERM: the workers, stopped with a Ctrl-C of their own, record it as sent
                self.signalled.value = signal.Signals[name].value  # first: a worker the SIGTERM reached inside
            self.budget.stop()  # the budget's lock waits for it (then raises) holding the lock
            busy = [w for w in self.workers.values() if not w.seat.quiet]  # a worker fails its own trial
            ran = any(w.seat.running for w in busy)  # not only asked for one: a trial that ended meanwhile ran
            handed = [(w.seat, w.seat.handed) for w in busy]
            alive = [w.proc for w in self.workers.values()]
            _wait(alive, 2.0, kill=False)  # a terminal's Ctrl-C reaches the workers too
            # a worker asking as the signal came that got its trial and ended it meanwhile ran one too
            ran = ran or any(seat.handed > before for seat, before in handed)
            # still running a trial as the signal is passed on: their trials are stopped (a signal to this process
            # alone reaches the workers 2 s late: a trial that ended meanwhile is recorded as it ended), or quiet
            # before it looked; one still asking for a trial fails it itself if it gets one (seat.stopped)
            still = any(w.seat.running for w in busy)
            for p in alive:  # the signal came to this process only: pass it on (a SIGTERM or SIGHUP as
                if p.is_alive():  # itself: a script's background job ignores SIGINT, and waited 12 s for a kill)
                    os.kill(p.pid, signal.Signals[name] if name is not None else signal.SIGINT)
            _wait(alive, 10.0)
            stopped = still or any(w.seat.stopped for w in self.workers.values())
            # all: a worker whose records of its stopped trial met a busy database exits 130 all the same,
            # its trial still running; looked at twice (see fail_stopped): the database may be free by now
            # a worker that died before (killed, SIGKILL, in its SETTLE) held none of its trial: held here, as the
            # workers the interrupt stopped hold theirs (it was failed, its recorded checkpoint never resumed)
            failed, left = fail_stopped(alive, lambda p: _fail_dead(self.run_, p.pid, _stop_error(p.exitcode, name),
                                                                 requeue=False))
            said_stopped(stopped or bool(failed), left_running(len(failed), len(left), "worker"), ended=ran,
                         held=self.run_.study.pruner.pauses)

    def _watch(self) -> None:
        # every exit is handled, the last ones too: a death noticed after the
        # others finished still fails (and may re-queue and re-run) its trial.
        # The run ends once every started worker's exit was handled (its slot left
        # pool.live), never on a second look at which are alive: a worker that died
        # between the two looks (while another's exit was handled) would be missed
        polled = 0.0
        while True:
            self._receive(self._patience())
            self.calls.check_stop()
            if self.job.poll is not None and time.monotonic() - polled >= 0.2:
                polled = time.monotonic()
                self.job.poll()
            self._stop_overdue()
            for w in list(self.workers.values()):
                if w.slot.index in self.pool.live and not w.proc.is_alive():
                    if self._settled(w):
                        self._exited(w)
                    else:
                        self._replace_early(w)
            if not self.pool.live and not self._sweep():
                return

    def _patience(self) -> float:
        """How long to wait for the workers' records: 0.2 s, less when a dead worker's
        SETTLE ends sooner (its replacement starts then)."""
        now = time.monotonic()
        due = [w.dead_at + SETTLE - now for w in self.workers.values()
               if w.dead_at is not None and w.slot.index in self.pool.live]
        return max(0.0, min([0.2, *due]))

    def _settled(self, w: _Worker) -> bool:
        """Whether a worker that exited can be handled: at once after a clean exit or a death
        with nothing in flight (Seat.quiet: a kill storm hits starting workers most); SETTLE
        seconds after a kill or crash amid a trial, so that a database server has finished
        (or rolled back) the transaction the worker died in before the parent looks for it."""
        if w.proc.exitcode in (0, 130, EXIT_OOM):
            return True
        if w.dead_at is None:
            w.dead_at, w.quiet = time.monotonic(), w.seat.quiet
        return w.quiet or time.monotonic() - w.dead_at >= SETTLE

    def _replace_early(self, w: _Worker) -> None:
        """A worker killed amid a trial: its seat is folded into the budget (a unit it held
        counts as spent until the look) and a new worker starts now while units are left;
        the look for its trial waits SETTLE. A crashed one waits for that look (which
        counts workers that cannot start)."""
        if w.vacated is not None:
            return
        self._vacate(w)
        code = w.proc.exitcode
        if code is not None and code < 0 and self.budget.may_start and self.losses.barren <= MAX_BARREN_DEATHS:
            self.losses.replaced += 1
            w.heir = self._start(self.pool.successor(w.slot))

    def _vacate(self, w: _Worker) -> None:
        w.vacated = self.budget.vacate(w.seat)
        self.free.append(w.seat)

    def _sweep(self) -> bool:
        """Last (every exit handled), fail any trial still running of a worker that died:
        one whose creation committed after the parent looked at its exit. It is handled
        like one found then: re-queued if the study re-queues lost trials, the copy run
        by a fresh worker within the same budget. Whether a worker started (then the
        watch goes on), so that no trial is left running and none is lost."""
        started = False
        for w in list(self.workers.values()):
            if w.proc.exitcode in (0, 130, EXIT_OOM):
                continue
            lost = _fail_dead(self.run_, w.proc.pid, self._error(w), timed_out=w.timed_out)
            if not lost:
                continue
            for t in lost:
                logger.warning("trial %d of a dead worker was found running at the end; failed%s", t.number,
                               "" if t.system.requeued_as is None else f", re-queued as {t.system.requeued_as}")
            self.losses.failed += sum(t.state is TrialState.FAILED for t in lost)
            self.losses.requeued += sum(t.system.requeued_as is not None for t in lost)
            # the unit its exit gave back (no trial of it was found then) was this trial's
            back, w.unit_back = w.unit_back, False
            started |= self._lost(w, lost, unit=-1 if back and _new_trial(lost) else 0)
        return started

    def _receive(self, wait: float) -> None:
        """Run the callbacks on the records the workers sent (waiting up to ``wait``)."""
        open_ = {w.inbox: w for w in self.workers.values() if w.inbox is not None}
        if not open_:
            time.sleep(wait)
            return
        for conn in mp_connection.wait(list(open_), timeout=wait):
            self._drain(open_[conn], everything=False)

    def _drain(self, w: _Worker, *, everything: bool = True) -> None:
        """The records waiting in ``w``'s pipe (all of them, up to its end when it exited)."""
        while w.inbox is not None and w.inbox.poll():
            try:
                record = w.inbox.recv()
            except (EOFError, OSError):  # exited (a record cut short by a kill is lost with it)
                w.inbox.close()
                w.inbox = None
                return
            if isinstance(record, _Raised):
                self.raised = self.raised or pickle.loads(record.pickled)
                continue
            self.calls(record)
            if self.job.callbacks:
                _reply(w.inbox)
            if not everything:
                return

    def _stop_overdue(self) -> None:
        """Kill the workers whose trial has run longer than ``trial_timeout``."""
        limit = self.ex.trial_timeout
        if limit is None:
            return
        now = time.time()
        for w in self.workers.values():
            since = w.seat.since
            if since and now - since > limit and not w.timed_out and w.proc.is_alive():
                w.timed_out = True
                os.kill(w.proc.pid, signal.SIGKILL)
                w.proc.join(5.0)

    def _exited(self, w: _Worker) -> None:
        self._drain(w)  # what it ended before it exited comes first
        code = w.proc.exitcode
        if code == EXIT_OOM:  # retired after an out-of-memory trial: its device keeps one fewer
            self._settle(w, kept=False, requeued=self._requeued_elsewhere(w, []))
            self._restart(self.pool.exited(w.slot, oom=True), held=w.owed, after=w)
            return
        lost = _fail_dead(self.run_, w.proc.pid, self._error(w), timed_out=w.timed_out) or []
        stopped = w.seat.stopped_trial()  # read before its seat is cleared for a new worker
        if w.slot.device is not None:
            self.losses.oom_requeued += _retry_lost_oom(self.run_, w.proc.pid, w.born)
        # a unit it held (taken, not yet recorded as placed) is kept if the trial it became
        # is in the storage: a new trial of this worker that was still running
        w.unit_back = self._settle(w, kept=_new_trial(lost), requeued=self._requeued_elsewhere(w, lost))
        if code in (0, 130) and not lost:  # finished, or interrupted after failing its own trial
            # on its own (the run's interrupt is not handled here): its place is refilled, unless the
            # objective raised it (the worker stopped the budget, see _stop_on_interrupt)
            # (what a worker it replaced left may have come after it last looked: one more looks)
            if self._restart(self.pool.exited(w.slot, oom=False, replace=w.owed or code == 130), held=True,
                             after=w) and code == 130:
                logger.warning("worker process %d was interrupted on its own (a SIGINT to it alone; %s): a new "
                               "worker takes its place", w.proc.pid, _stopped_fate(stopped))
            return
        self._count(w, code, lost)
        self._lost(w, lost, unit=0)

    def _requeued_elsewhere(self, w: _Worker, lost: list[FrozenTrial]) -> int:
        """How many trials dead ``w`` ran were failed and re-queued by others (a heartbeat
        check) while it ran them: it refunds each itself once its objective returns, unless
        it died first. Not those this parent failed (``lost``), nor any of an earlier worker
        with the same process id (ended before ``w`` started)."""
        me, mine = _me(w.proc.pid), {t.number for t in lost}
        try:
            trials = self.run_.study.trials
        except StorageError as exc:
            logger.warning("could not read the dead worker's trials: %s", exc)
            return 0
        return units_back(self.run_.study, [t for t in trials if _ended_by(t, me, w.born) and t.number not in mine])

    def _settle(self, w: _Worker, *, kept: bool, requeued: int = 0) -> bool:
        """Fold dead ``w``'s seat into the budget, freed for a new worker (unless done at its
        death), and settle what the look found (see Budget.settle); whether a unit it held
        was given back."""
        if w.vacated is None:
            self._vacate(w)
        assert w.vacated is not None
        held, refunded = w.vacated
        # units of its trials re-queued elsewhere that it never refunded come back only now: the worker in
        # its place may have found the budget spent before this and be ending, so one more looks
        w.owed |= requeued > refunded
        return self.budget.settle(held, refunded, kept=kept, requeued=requeued)

    def _error(self, w: _Worker) -> str:
        """The error a dead worker's running trial is failed with."""
        if w.timed_out:
            return f"trial_timeout: the trial ran longer than {self.ex.trial_timeout:g} s; its worker process was stopped"
        return f"worker process died (exit code {w.proc.exitcode})"

    def _lost(self, w: _Worker, lost: list[FrozenTrial], *, unit: int) -> bool:
        """After dead worker ``w``'s running trials were failed (``lost``): the callbacks,
        the budget (``unit``: -1, a unit given back at its exit, whose trial turned up
        since, is spent again), and a fresh worker in its place; whether one started."""
        for t in lost:
            self.calls(t)
        # a re-queued copy runs under this call's budget, in a fresh worker: the lost
        # attempt is not counted; nor is a budget unit the worker took but never started
        retries = units_back(self.run_.study, lost)
        if retries:
            self.budget.refund(retries)
        if unit < 0:
            self.budget.charge(-unit)
        # a resumed trial kept its promotion; a copy must run; once no new trial may start, it may
        # have died draining (claiming a promotion, its claim not written): one more worker looks, but
        # not for good when each dies so (a pruner's native crash: a signal, which barren does not count)
        self.losses.looks = self.losses.looks + 1 if not lost and not self.budget.may_start else 0
        looks = not self.budget.may_start and self.budget.may_drain and self._may_look_again()
        held = any(t.state is TrialState.PAUSED for t in lost) or retries > 0 or w.owed or looks
        heir = self._heir(w)
        if heir is not None:  # the worker in its place runs what it left, or has one more look when it ends
            heir.owed |= held or w.unit_back
            self.pool.exited(w.slot, oom=False)
            return False
        new = self.pool.exited(w.slot, oom=False, replace=self.losses.barren <= MAX_BARREN_DEATHS)
        return self._restart(new, held=held, after=w)

    def _may_look_again(self) -> bool:
        """Whether a worker that died with nothing found once no new trial may start is replaced
        (MAX_BARREN_DEATHS in a row are; then the promotions left stay paused, said once)."""
        if self.losses.looks <= MAX_BARREN_DEATHS:
            return True
        if self.losses.looks == MAX_BARREN_DEATHS + 1:
            logger.warning("%d worker processes in a row died looking for promotions to run (no new trial may "
                           "start); stopped replacing them: earned promotions stay paused, and a later "
                           "optimize(n_trials=0) runs them", self.losses.looks)
        return False

    def _heir(self, w: _Worker) -> _Worker | None:
        """The worker in ``w``'s place (or down a line of replacements) not handled yet."""
        heir = w.heir
        while heir is not None and heir.slot.index not in self.pool.live:
            heir = heir.heir
        return heir

    def _count(self, w: _Worker, code: int | None, lost: list[FrozenTrial]) -> None:
        ls = self.losses
        ls.deaths += 1
        ls.timed_out += w.timed_out
        ls.failed += sum(t.state is TrialState.FAILED for t in lost)
        ls.requeued += sum(t.system.requeued_as is not None for t in lost)
        # a worker that exits with an error before running anything cannot start (a
        # killed one, code < 0, may just have been unlucky: kill storms hit starting workers)
        ls.barren = ls.barren + 1 if not lost and code is not None and code > 0 else 0
        ls.notes.append(f"exit code {code}")
        if not w.timed_out:
            logger.warning("worker process %d died (exit code %s); %s", w.proc.pid, code, _fates(lost))

    def _restart(self, new: Slot | None, *, held: bool, after: _Worker) -> bool:
        """Start ``new`` in ``after``'s place if trials are left, or (``held``) a lost
        trial's copy or promotion must run; whether it started."""
        if new is None:
            return False
        budget = self.budget
        # held promotions, and re-queued copies after an exhausted search, still run
        if budget.may_start or (held and budget.may_drain):
            self.losses.replaced += 1
            after.heir = self._start(new)
            return True
        self.pool.exited(new, oom=False)
        return False


def _fates(lost: list[FrozenTrial]) -> str:
    """What became of a dead worker's running trials, for the log."""
    if not lost:
        return "no running trial of it was found"
    fates = []
    for t in lost:
        if t.state is TrialState.PAUSED:
            fates.append(f"trial {t.number} paused again (it had been resumed from a checkpoint)" if t.is_resumed
                         else f"trial {t.number} paused to go on from its checkpoint (never paused before)")
        elif t.system.requeued_as is not None:
            fates.append(f"trial {t.number} failed, re-queued as {t.system.requeued_as}")
        else:
            fates.append(f"trial {t.number} failed")
    return "; ".join(fates)


def _stop_error(code: int | None, name: str | None) -> str:
    """A trial's error where its worker left it running as the run was interrupted (by ``name``): one that
    exited 130 was interrupted too (its own record met a busy database)."""
    return f"interrupted ({name or 'KeyboardInterrupt'})" if code in (0, 130) else f"interrupted (worker exit code {code})"


def _stopped_fate(stopped: tuple[int, str] | None) -> str:
    """What became of the trial a worker interrupted on its own was running (:meth:`Seat.stopped_trial`)."""
    if stopped is None:
        return "no trial of it was stopped"
    number, how = stopped
    if how == "paused":
        return f"trial {number} was paused to go on from its checkpoint, which is resumed first"
    return f"trial {number} failed as interrupted"


def _new_trial(lost: list[FrozenTrial]) -> bool:
    """Whether a dead worker's failed (or held) trials include a new one (not a resumed trial, which
    goes back to paused, nor a lost trial's copy it ran free): the trial a budget unit it held became. A new trial held back to paused to
    resume from its checkpoint is one (it counts among the call's new trials; its resume takes no unit)."""
    return any(not t.is_resumed and not t.system.free for t in lost)


def _ended_since(study: Any, raised: BaseException | None) -> BaseException | None:
    """``raised``, or where it is a worker's StorageError naming a trial it left running which this parent ended
    since (its dead worker's trial held to go on from its checkpoint, or failed), the same error saying so: its
    advice, to tell the trial failed, would fail a held trial for good."""
    if not isinstance(raised, StorageError) or raised.left_running is None:
        return raised
    number = raised.left_running
    try:
        now = study._storage.get_trial(study._study_id, number)
    except (StorageError, TrialNotFound):
        return raised
    if now.state is TrialState.RUNNING:
        return raised
    fate = ("paused: the next optimize resumes it from its checkpoint; do not tell it failed" if now.state is
            TrialState.PAUSED else f"{now.state.value}: nothing is left to end")
    raised.args = (f"{raised} [since then its worker process ended, and this run recorded trial {number} as "
                   f"{fate}]",)
    return raised


def _fail_dead(run: Run, pid: int, error: str, *, requeue: bool | None = None,
               timed_out: bool = False) -> list[FrozenTrial] | None:
    """Fail the running trials of a dead worker, or hold those that go on from their checkpoints
    (:meth:`Study.fail_worker`). Re-queued (as the study says, unless ``requeue`` is given; never after a
    trial_timeout) only if they are not re-queued copies themselves: a trial that kills its worker twice is
    given up. None when the storage could not be written."""
    me = _me(pid)
    requeue = False if timed_out else requeue
    try:
        if requeue is None and run.study.heartbeat_config.requeue:
            mine = [t for t in run.study.trials_in(TrialState.RUNNING) if t.worker == me]
            requeue = not any(t.system.retry_of is not None for t in mine)
        return run.study.fail_worker(me, error, dead=True, requeue=requeue, timed_out=timed_out)
    except StorageError as exc:
        logger.warning("could not mark the dead worker's trial failed: %s", exc)
        return None


def _retry_lost_oom(run: Run, pid: int, born: float) -> int:
    """A worker on a device, started at ``born`` (the storage's clock), that died between failing its
    out-of-memory trial and queueing it again (:func:`_oom_retirer`): queued now, once (a copy it had queued
    is kept, none is added). Not a trial of an earlier worker with the same process id (ended before it).
    How many were queued."""
    me, queued = _me(pid), 0
    try:
        for t in run.study.trials:
            if (_ended_by(t, me, born) and t.state is TrialState.FAILED and is_oom_error(t.error) and may_retry_oom(t)
                    and (n := run.study.requeue(t, oom=True)) is not None):  # fmt: skip
                queued += 1
                logger.warning("trial %d ran out of GPU memory and its worker died before queueing it again; "
                               "re-queued as %d", t.number, n)
    except StorageError as exc:
        logger.warning("could not queue the dead worker's out-of-memory trial again: %s", exc)
    return queued


def _ended_by(t: FrozenTrial, me: str, born: float) -> bool:
    """Whether trial ``t`` ended in worker ``me`` (``host:pid``) started at ``born``: not in an earlier
    worker with the same process id, which ended before it started."""
    return t.worker == me and (t.completed or 0.0) >= born


def _oom_retirer(run: Run) -> Any:
    def after(record: FrozenTrial) -> bool:
        if record.state is not TrialState.FAILED or not is_oom_error(record.error):
            return True
        if may_retry_oom(record) and (n := run.study.requeue(record, oom=True)) is not None:  # queued before
            logger.warning("trial %d ran out of GPU memory; re-queued as %s", record.number, n)  # it failed, mostly
        return False  # this worker retires: its device keeps one trial fewer (the retry, fewer neighbours)

    return after


def _reply(conn: Any) -> None:
    try:
        conn.send(True)
    except OSError:  # it exited meanwhile
        pass


def _hand_over(outbox: Any, parent: int, record: FrozenTrial) -> None:
    """The record to the parent, which runs the callbacks; back once they ran (as inline), or once the
    parent is gone (``parent`` was its process id): the other workers, forked holding its end of this pipe,
    keep the read from ever seeing its end."""
    outbox.send(record)
    while not outbox.poll(ORPHAN_CHECK_S):
        if os.getppid() != parent:
            return
    outbox.recv()


#: seconds between a worker's looks for its parent while it waits for it
ORPHAN_CHECK_S = 0.5


def _stop_if_orphaned(parent: int, index: int, record: FrozenTrial) -> None:
    """Exit once the run's process (``parent``) is gone (SIGKILL, its machine's OOM killer): the trial just
    recorded is kept, and no other starts, where orphaned workers ran trials for no one, until ``n_trials``
    or forever (the run's own --n-trials or none)."""
    if os.getppid() == parent:
        return
    logging.getLogger("tunesmith").warning("worker %d: the run's process %d is gone (killed); this worker stops "
                                           "after recording trial %d", index, parent, record.number)
    _flush_streams()
    os._exit(1)


def _flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # what the objective printed can go
            stream.flush()  # nowhere (`tunesmith run | head -1`, >&-): the worker still ends with its own code


@dataclass
class _Raised:
    """An exception the objective raised that ``catch`` lets through, sent to the parent pickled by
    value: sent as it is, a tensor in it went by torch's shared memory, gone once the worker exited
    (the parent's read failed, taken for the worker's exit, and the error was lost)."""

    pickled: bytes


def _send_raised(outbox: Any, exc: Exception) -> None:
    """``exc`` to the parent (as a RuntimeError naming it when it does not pickle), its
    traceback in the worker as a note."""
    note = "raised in a worker process:\n" + "".join(traceback.format_exception(exc)).rstrip()
    try:
        error: Exception = pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - an exception that does not pickle
        error = RuntimeError(f"{type(exc).__name__}: {exc}")
    if hasattr(error, "add_note"):
        error.add_note(note)
    try:
        outbox.send(_Raised(pickle.dumps(error)))
    except (OSError, ValueError):
        logging.getLogger("tunesmith").error("%s", note)


def _child(run: Run, slot: Slot, threads: int | None, seat: Seat, outbox: Any, wait: bool, signalled: Any,
           mask: set[int] | None, parent: int, said_no_pruner: Any) -> None:
    code = 0
    try:
        _unhold_in_worker()
        _take_ctrl_c_as(signalled)
        if mask is not None:  # held by the parent as it forked: its mask from before (a signal it blocks stays)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        run.seat = seat
        run.budget.bind(seat)
        run.ended = _record_sender(outbox, parent, slot.index, wait)
        apply_env(slot.env(threads))
        # the no-pruner warning: the first worker whose objective asks says it (set as it is said: a worker may
        # die right after); one named in advance may run no such trial, and nothing said it
        speaks = not said_no_pruner.get_obj().value  # without the lock (see _Pool.run)
        run.study.for_worker(slot.index + 1, speaks=speaks)
        if speaks:
            run.study._said_no_pruner_to = said_no_pruner
        auto.SAY_PICK = slot.index == 0  # the same pick in every worker: said once per run
        if slot.device is not None:
            run.objective = retry_queued_first(run.objective, run.study)
            run.after_trial = _oom_retirer(run)
        worker_loop(run)
        if run.retired and run.exhausted is None:
            code = EXIT_OOM
    except KeyboardInterrupt as exc:
        code = 130  # first: a second interrupt raised in the middle of the write still exits as interrupted
        _stop_on_interrupt(run, seat, slot.index, exc)
    except Exception as exc:
        code = _stop_on_error(run, outbox, slot.index, exc)
    except BaseException:  # noqa: BLE001 - report and exit with failure
        logging.getLogger("tunesmith").exception("worker %d crashed", slot.index)
        code = 1
    finally:
        _flush_streams()
        os._exit(code)


def _record_sender(outbox: Any, parent: int, index: int, wait: bool) -> Callable[[FrozenTrial], None]:
    """What worker ``index`` calls with each trial it recorded: the record to the parent (with ``wait``,
    back once the parent ran the callbacks); the worker exits where the parent is gone."""
    send = functools.partial(_hand_over, outbox, parent) if wait else outbox.send  # the parent runs the callbacks

    def ended(record: FrozenTrial) -> None:
        global _SIGNAL_CAME
        _SIGNAL_CAME = False  # a trial recorded: a Ctrl-C its objective caught is not why this worker stops
        _stop_if_orphaned(parent, index, record)  # first: a record larger than the pipe holds, sent to a
        try:  # parent gone, blocked until each other worker (holding the pipe's end) exited
            send(record)
        except OSError:  # the pipe's other end closed: its parent gone
            _stop_if_orphaned(parent, index, record)
            raise
        _stop_if_orphaned(parent, index, record)

    return ended


def _stop_on_interrupt(run: Run, seat: Seat, index: int, exc: KeyboardInterrupt) -> None:
    """A KeyboardInterrupt in worker ``index``: the objective's own (no signal came) stops the run, as
    inline (replaced, it churned a worker per trial for good); a SIGINT to this worker alone is replaced."""
    if not _SIGNAL_CAME:
        run.budget.stop(interrupted=True)
        logging.getLogger("tunesmith").warning(
            "worker %d: the objective raised KeyboardInterrupt (no Ctrl-C came): the run stops", index)
    failed = _interrupted(run, exc)  # and the parent fails what was left running
    if run.stopped or failed:  # the trial run_trial failed or paused, else one failed out of its objective
        seat.stop(run.stopped_trial if run.stopped else failed[0] if failed else None)


def _stop_on_error(run: Run, outbox: Any, index: int, exc: Exception) -> int:
    """The exit code of worker ``index`` after ``exc``: 0 where the run stops and the parent raises ``exc``,
    1 for a crash of the worker itself."""
    # the storage failed past its retries (replacements died of it too, or wrote a new file), or a resumed
    # trial's checkpoint does not fit the objective's model or met a full disk (each replacement resumed it
    # again): stop the run, the parent raises it
    if isinstance(exc, (StorageError, ResumeRefused, OutOfRoom)):
        run.budget.stop()
        _send_raised(outbox, exc)
    elif isinstance(exc, run.catch):  # not the objective's (catch covers those): a crash
        logging.getLogger("tunesmith").exception("worker %d crashed", index)
        return 1
    else:  # the objective's, which catch lets through: its trial is recorded; stop the run, parent raises it
        run.budget.stop()
        _send_raised(outbox, exc)
    return 0


_SIGNAL_CAME = False  # in a worker: a Ctrl-C or a stopping signal reached it since its last recorded trial
# (see _take_ctrl_c_as)


def _take_ctrl_c_as(signalled: Any) -> None:
    """In a worker: the parent stops it with a Ctrl-C (SIGINT) of its own, which stands for the signal
    the parent got (``signalled``, 0: a Ctrl-C): a SIGTERM is raised as :class:`Terminated`, so that the
    trials record it. A SIGTERM (or SIGHUP) to the worker itself is raised so too where the command line's
    handler takes it (``stops_optimize``: sent to the command's process group, systemd, a batch scheduler); sent to the
    worker alone (``kill PID``, an out-of-memory killer), the worker dies of it, as a killed worker
    (its trial failed by the parent, re-queued with ``requeue_failed``). A signal that is ignored or
    left to the system stays so, a program's own SIGTERM handler runs in the worker as in its parent, and
    a process the objective forks handles them as its parent did."""
    me = os.getpid()
    own = STOPS - {signal.SIGINT}  # sent, not passed on as a Ctrl-C

    def wrap(before: Any) -> Any:
        def stop(signum: int, frame: Any) -> None:
            global _SIGNAL_CAME
            if os.getpid() != me:
                before(signum, frame)
                return
            _SIGNAL_CAME = True  # a KeyboardInterrupt without it was the objective's own
            if signum in own and not _stopping(signalled):
                signal.signal(signum, signal.SIG_DFL)
                os.kill(me, signum)
            elif signum in own or signalled.value:
                raise Terminated(signal.Signals(signum if signum in own else signalled.value).name)
            else:
                before(signum, frame)

        return stop

    for signum in (signal.SIGINT, *own):
        before = signal.getsignal(signum)
        if callable(before) and (signum == signal.SIGINT or getattr(before, "stops_optimize", False)):
            signal.signal(signum, wrap(before))


def _stopping(signalled: Any, wait: float = 3.0) -> bool:
    """Whether the parent stops the run for a signal (a SIGTERM it got too), looked for up to ``wait``
    seconds: a signal to the process group reaches the workers as soon as their parent, whose handler
    a loaded machine can delay past a second (then the worker died of it, as if killed alone)."""
    end = time.monotonic() + wait
    while not signalled.value and time.monotonic() < end:
        time.sleep(0.01)
    return bool(signalled.value)


def _wait(procs: list[Any], timeout: float, *, kill: bool = True) -> None:
    end = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, end - time.monotonic()))
    for p in procs:
        if kill and p.is_alive():
            os.kill(p.pid, signal.SIGTERM)
            p.join(1.0)
