"""The trial lifecycle: every change of a trial's state, in one place.

The transitions are pure functions from a record to the next record::

    waiting --start--> running --finish--> complete | pruned | failed
                        |   ^  \\--pause--> paused --resume--> running
                        |   |                 |  \\--abandon--> pruned
                        |   \\--unstart (never began: back to the queue)
                        \\--lose--> failed (a lost worker; maybe re-queued as a new waiting copy)
                        \\--hold--> paused (a resumed trial's worker died: it keeps its promotion;
                                         an interrupt stopped a trial that can go on from its checkpoint)

Below them, the few operations that apply a transition to the storage. Each
writes with a compare-and-set on the state the record was read in
(``Storage.update_trial(..., expect_state=...)``), so two workers never both
start, resume, fail or re-queue the same trial; the storage itself knows no
policy. The study's bookkeeping lives in ``FrozenTrial.system``
(:class:`~tunesmith.trial.SystemState`), never in the user's ``attrs``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence

from ..storage import Storage
from ..storage.base import still_lost, taken_back
from ..trial import UNIT_FREE, UNIT_OPEN, UNIT_REFUNDED, FrozenTrial, SystemState, TrialState

#: a trial whose worker dies each time it is resumed is held at most this often, then failed
MAX_HOLDS = 3

#: waiting trials read at once when starting one (read again if other workers took them first)
_QUEUE_HEAD = 1

#: the claim of a lost trial's re-queued copy: at most one copy per trial, whoever re-queues it
_RETRY_CLAIM = "retry-of:{number}"


# -- transitions (pure) -------------------------------------------------------------------
def start(rec: FrozenTrial, worker: str, now: float) -> FrozenTrial:
    """A waiting trial, running for ``worker``."""
    return rec.replace(state=TrialState.RUNNING, worker=worker, started=now, heartbeat=now)


def unstart(rec: FrozenTrial) -> FrozenTrial:
    """A running trial whose objective never began, back in the queue."""
    return rec.replace(state=TrialState.WAITING, worker=None, started=None, heartbeat=None)


def finish(rec: FrozenTrial, value: float | None, state: TrialState, error: str | None, now: float) -> FrozenTrial:
    """A running (or paused) trial ended: ``complete`` with its finite ``value``,
    ``pruned`` (value: the given one, else its last report), or ``failed``."""
    if state is TrialState.COMPLETE:
        return rec.replace(state=state, value=value, completed=now, error=None)
    if state is TrialState.PRUNED:
        if value is None and rec.intermediate:
            value = rec.intermediate[max(rec.intermediate)]
        return rec.replace(state=state, value=value, completed=now)
    return rec.replace(state=TrialState.FAILED, completed=now, error=error)


def pause(rec: FrozenTrial) -> FrozenTrial:
    """Stopped by a pausing pruner, resumable: value = its last report, no heartbeat."""
    last = rec.last_step
    value = rec.intermediate[last] if last is not None else None
    return rec.replace(state=TrialState.PAUSED, value=value, heartbeat=None)


def resume(rec: FrozenTrial, worker: str, now: float) -> FrozenTrial:
    """A paused trial, running again for ``worker`` from where it paused."""
    last = rec.last_step
    system = rec.system.replace(
        resumed_step=-1 if last is None else last, n_resumes=rec.system.n_resumes + 1, held=None
    )
    return rec.replace(state=TrialState.RUNNING, worker=worker, heartbeat=now, value=None, system=system)


def abandon(rec: FrozenTrial, now: float) -> FrozenTrial:
    """A paused trial no promotion can reach any more: pruned for good."""
    return finish(rec, rec.value, TrialState.PRUNED, None, now).replace(heartbeat=None)


def resumable(rec: FrozenTrial, *, pauses: bool) -> bool:
    """Whether running ``rec`` can go on from its checkpoint (``attrs["checkpoint"]``) in a later run
    rather than start over: it was resumed after a pause, or it reported under a pruner that pauses
    (``pauses``: its study resumes paused trials, and its objective resumes from ``trial.resume_from``)."""
    return bool(rec.attrs.get("checkpoint")) and (rec.is_resumed or (pauses and rec.last_step is not None))


def holds_promotion(rec: FrozenTrial, *, pauses: bool = False) -> bool:
    """Whether ``rec`` (running) is :func:`resumable`, progressed since it was last
    held and was held fewer than MAX_HOLDS times: losing its worker must not lose
    the promotion it earned, nor its training."""
    sys = rec.system
    progressed = sys.held_at_step is None or (rec.last_step is not None and rec.last_step > sys.held_at_step)
    return resumable(rec, pauses=pauses) and progressed and sys.n_holds < MAX_HOLDS


def hold(rec: FrozenTrial, error: str, *, lost: bool = True) -> FrozenTrial:
    """A resumed trial whose worker died, back to paused keeping its promotion
    (reports and checkpoint kept; ``system.held`` says why). ``lost=False``: its
    objective refused the checkpoint (``ResumeRefused``), or an interrupt stopped it
    (Ctrl-C, SIGTERM: the user's, not a crash loop), which counts no hold."""
    last = rec.last_step
    value = rec.intermediate[last] if last is not None else None
    system = rec.system.replace(held=error)
    if lost:
        system = system.replace(held_at_step=-1 if last is None else last, n_holds=rec.system.n_holds + 1)
    return rec.replace(state=TrialState.PAUSED, value=value, worker=None, heartbeat=None, system=system)


def lose(rec: FrozenTrial, error: str, now: float) -> FrozenTrial:
    """A running trial whose worker is lost: failed, its reports kept (its re-queued copy, if any,
    is pointed to by the storage's ``fail_with_copy``, which makes it)."""
    return rec.replace(state=TrialState.FAILED, error=error, completed=now)


def held_promotions(trials: Iterable[FrozenTrial]) -> list[int]:
    """Numbers of the paused trials that hold a promotion (their worker died while
    resuming them); they are resumed before any other."""
    return [t.number for t in trials if t.state is TrialState.PAUSED and t.system.held is not None]


# -- applied to a storage (each write a compare-and-set) ----------------------------------
def claim_waiting(storage: Storage, study_id: int, worker: str, clock: Callable[[], float]) -> FrozenTrial | None:
    """Start the oldest waiting trial for ``worker`` at ``clock()``, or None if none is waiting
    (the clock is read only then: every ask looks here first, and most find no waiting trial)."""
    while True:
        queue = storage.get_trials(study_id, state=TrialState.WAITING, limit=_QUEUE_HEAD)
        if not queue:
            return None
        now = clock()
        for rec in queue:
            running, same = start(rec, worker, now), None
            if rec.system.unit == UNIT_OPEN:  # a lost new trial's copy whose lost run was not refunded (yet):
                running = running.replace(system=rec.system.replace(unit=UNIT_FREE))  # this run takes no unit,
                same = _unit_is(UNIT_OPEN)  # unless the lost run's call refunds it first (:func:`claim_refund`)
            if storage.update_trial(study_id, running, expect_state=TrialState.WAITING, expect=same):
                return running
        # every one was taken by other workers meanwhile (or refunded): read the queue again


def claim_refund(storage: Storage, study_id: int, failed: FrozenTrial) -> bool:
    """Whether the call whose run of ``failed`` was lost (:attr:`SystemState.unit_back`) gets its unit of
    ``n_trials`` back: decided with its waiting copy in one compare-and-set against :func:`claim_waiting`,
    which runs the copy free of any unit instead; exactly one of the two counts the lost run. Asked again,
    the same answer. No where the copy is the out-of-memory retry its worker queued before it died (one of the
    ``n_trials`` of the call that runs it, as when its worker lives); yes for a copy an older tunesmith made."""
    number = failed.system.requeued_as
    assert number is not None, "only a re-queued trial's lost run is refunded"
    while True:
        copy = storage.get_trial(study_id, number)
        if copy.system.oom_retries > failed.system.oom_retries:
            return False
        if copy.system.unit != UNIT_OPEN or copy.state is not TrialState.WAITING:
            return copy.system.unit != UNIT_FREE
        refunded = copy.replace(system=copy.system.replace(unit=UNIT_REFUNDED))
        if storage.update_trial(study_id, refunded, expect_state=TrialState.WAITING, expect=_unit_is(UNIT_OPEN)):
            return True


def _unit_is(unit: str) -> Callable[[FrozenTrial], bool]:
    return lambda stored: stored.system.unit == unit


def claim_paused(storage: Storage, study_id: int, rec: FrozenTrial, worker: str, now: float) -> FrozenTrial | None:
    """Resume paused ``rec`` for ``worker``; None if another worker resumed (or ended) it first."""
    stored = _same_pause(storage, study_id, rec)
    if stored is None:
        return None
    running = resume(stored, worker, now)
    same = _is_pause_of(stored)
    return running if storage.update_trial(study_id, running, expect_state=TrialState.PAUSED, expect=same) else None


def abandon_paused(storage: Storage, study_id: int, rec: FrozenTrial, now: float) -> bool:
    """Prune paused ``rec`` for good; whether this call did (not another worker)."""
    stored = _same_pause(storage, study_id, rec)
    return stored is not None and storage.update_trial(
        study_id, abandon(stored, now), expect_state=TrialState.PAUSED, expect=_is_pause_of(stored)
    )


def _same_pause(storage: Storage, study_id: int, rec: FrozenTrial) -> FrozenTrial | None:
    """The stored record of paused ``rec`` if it is still the pause ``rec`` shows, else None.

    ``rec`` may come from a worker's cached history: meanwhile another worker may have
    resumed the trial, trained it further and paused it again. The state alone is then
    ``paused`` as before, and writing ``rec``'s record would undo that training (its
    reports, its resume count) and resume it from a step its checkpoint has left behind."""
    stored = storage.get_trial(study_id, rec.number)
    return stored if _is_pause_of(rec)(stored) else None


def _is_pause_of(rec: FrozenTrial) -> Callable[[FrozenTrial], bool]:
    """Whether a stored record is still paused ``rec``'s pause. Checked again inside
    the claiming write (``update_trial(expect=...)``): between the read above and the
    write, another worker may resume, train and pause the trial again."""
    def same(stored: FrozenTrial) -> bool:
        return (stored.state is TrialState.PAUSED and stored.system.n_resumes == rec.system.n_resumes
                and stored.last_step == rec.last_step)  # fmt: skip

    return same


def fail_lost(
    storage: Storage,
    study_id: int,
    lost: Sequence[FrozenTrial],
    *,
    error: str,
    now: float,
    requeue: bool,
    dead: bool,
    once: bool = False,
    judged: bool = False,
    confirm: Callable[[FrozenTrial], bool] | None = None,
    pauses: bool = False,
    hold_new: bool = False,
) -> list[FrozenTrial]:
    """End the running trials of lost workers; the records this call changed.

    Each is failed, its reports and attributes kept; with ``requeue`` it gets a
    waiting copy with the same parameters (``system.retry_of``), and the failed
    record points to it (``system.requeued_as``). With ``dead`` (the caller saw
    the worker's process exit), a trial that :func:`holds_promotion` goes back
    to paused instead (:func:`hold`): no copy, nothing failed; with ``pauses`` (the
    study's pruner pauses) and a copy due, a trial never paused that recorded a
    checkpoint and a report too: it resumes from there instead of running again from
    the start; with ``hold_new`` as well without a copy due (the worker died, no trial_timeout stopped it: the
    trial did not fail, and it goes on as one an interrupt stopped). Not otherwise: a
    worker judged lost by its heartbeat may write again, which a failed trial
    refuses. Two workers calling this at once never fail or re-queue the same
    trial twice: the copy is created under a claim unique to the trial, and the
    failed record is written with a compare-and-set on ``running``, both in one
    write (:meth:`Storage.fail_with_copy`): a caller killed midway leaves neither,
    never a copy of a trial whose worker was alive after all. With ``once``,
    a trial that is itself a copy is not re-queued again: parameters that kill
    every worker that runs them (a crash in native code, the kernel's OOM killer)
    would otherwise be copied and lose a worker forever. With ``judged`` (the heartbeat check:
    lost by an old heartbeat), a trial failed without a copy is failed only while it keeps the
    heartbeat it was read with, as :meth:`Storage.fail_with_copy` requires: a beat since says
    its worker is alive. Without it, only while it is the run that was read (:func:`same_run`), judged
    in the write: a trial put back in the queue and taken by another worker meanwhile is that worker's.
    ``confirm(trial)``, where given, is asked in the write as well (the heartbeat check's judgement again,
    with the outage the write itself waited out known): False leaves the trial running. An interrupt's
    sweep (no copy due) passes ``hold_new`` too: a worker that died just before it holds its trial never
    paused, as the interrupted workers hold theirs.
    """
    out = []
    for rec in lost:
        again = requeue and not (once and rec.system.retry_of is not None)
        promoted = dead and holds_promotion(rec, pauses=pauses and (again or hold_new))
        # both or neither: a caller killed midway (a copy queued already is pointed to, not held back to paused)
        check = None if confirm is None else functools.partial(confirm, rec)
        if (again and not promoted) or _copy_queued(storage, study_id, rec):
            failed = storage.fail_with_copy(study_id, lose(rec, error, now),  # queues no copy of a live trial
                                            claim=_RETRY_CLAIM.format(number=rec.number), confirm=check)  # fmt: skip
            out.extend([failed] if failed is not None else [])
            continue
        new = hold(rec, error) if promoted else lose(rec, error, now)
        beat = functools.partial(still_lost, failed=rec) if judged else functools.partial(same_run, rec)
        if storage.update_trial(study_id, new, expect_state=TrialState.RUNNING,
                                expect=beat if check is None else functools.partial(_confirmed, beat, check)):
            out.append(new)
    return out


def _confirmed(beat: Callable[[FrozenTrial], bool], check: Callable[[], bool], stored: FrozenTrial) -> bool:
    return beat(stored) and check()


def _copy_queued(storage: Storage, study_id: int, rec: FrozenTrial) -> bool:
    """Whether a copy of running ``rec`` was queued already: the out-of-memory retry its worker queues before
    writing the failure (``gpu.retry_queued_first``). A worker killed between the two left a resumed trial
    held back to paused, run twice (resumed, and its copy from the start), and any other failed without
    pointing to its copy (``show`` and the summary said it was not re-queued)."""
    return any(t.system.retry_of == rec.number and not taken_back(t)
               for t in storage.get_trials(study_id, min_number=rec.number + 1))


def same_run(read: FrozenTrial, stored: FrozenTrial) -> bool:
    """Whether ``stored`` is still the run of a trial that was ``read``: the same worker, start and
    resume (not a run of it that another worker, or a later ask, began since)."""
    return (stored.state is TrialState.RUNNING and (stored.worker, stored.started, stored.system.n_resumes)
            == (read.worker, read.started, read.system.n_resumes))


def requeue_copy(storage: Storage, study_id: int, rec: FrozenTrial, *, oom: bool = False) -> FrozenTrial | None:
    """Queue a copy of finished ``rec`` with the same parameters (``system.retry_of``;
    with ``oom``, counting one more out-of-memory run); None if one was queued already."""
    system = SystemState(retry_of=rec.number, oom_retries=rec.system.oom_retries + (1 if oom else 0))
    return storage.create_trial(
        study_id, params=rec.params, state=TrialState.WAITING, claim=_RETRY_CLAIM.format(number=rec.number),
        attrs={"reason": "CUDA out of memory"} if oom else None, system=system,
    )  # fmt: skip
