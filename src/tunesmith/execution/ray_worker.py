"""What runs inside a Ray actor (plain classes: the driver wraps them with ray.remote).

Nothing here imports Ray, so these pieces are testable without it.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from ..exceptions import TrialPruned, describe_exception, interrupted
from ..pruners import NopPruner
from ..samplers import auto
from ..space import space as stored_space
from ..storage import worker_id
from ..study.study import bad_value_reason
from ..study.trial import _as_float
from ..trial import FrozenTrial, TrialState
from .gpu import apply_env, is_oom_error, may_retry_oom, retry_queued_first
from .loop import Budget, Run, run_one

if TYPE_CHECKING:
    from ..study import Study
    from ..study.heartbeat import HeartbeatConfig

logger = logging.getLogger("tunesmith")


@dataclass(frozen=True)
class StudySpec:
    """Enough to open the study inside an actor (sampler and pruner travel pickled)."""

    url: str
    name: str
    sampler: Any
    pruner: Any
    session: int
    storage_options: dict[str, float] = field(default_factory=dict)  # a SQLStorage's waits, kept in actors
    copy_id: str | None = None  # a copy's own checkpoint folder (Study.copy_id)
    direction: Any = None  # for an in-memory study's detached trials (the integrations check a metric's)
    notes_no_pruner: bool = False  # the study has no pruner, not said yet: an answer notes should_prune() was asked
    note_key: str | None = None  # where an actor tells the driver so as it is asked (:func:`tell_driver`)
    heartbeat: HeartbeatConfig | None = None  # the driver's (requeue_failed too), not the stored ones an actor reads

    @classmethod
    def of(cls, study: Study, note_key: str | None = None) -> StudySpec:
        from ..storage import SQLStorage

        st = study.storage
        opts = {"retry_window": st.retry_window, "busy_timeout": st.busy_timeout} if isinstance(st, SQLStorage) else {}
        return cls(st.url, study.name, study.sampler, study.pruner, study.session, opts, study.copy_id, study.direction,
                   not study._said_no_pruner, note_key, study.heartbeat_config)

    def to_driver(self) -> Callable[[], None] | None:
        """What an actor's ``should_prune()`` calls as it first notes that the study has no pruner."""
        return None if self.note_key is None or not self.notes_no_pruner else functools.partial(tell_driver, self.note_key)

    def open_storage(self) -> Any:
        """The storage by URL, with the driver's ``retry_window`` and ``busy_timeout`` (actors used
        the defaults, so a longer window the driver was given did not cover its workers)."""
        from ..storage import SQLStorage

        if not self.storage_options:
            return self.url
        opts = self.storage_options
        return SQLStorage(self.url, retry_window=opts["retry_window"], busy_timeout=opts["busy_timeout"])


@dataclass
class Outcome:
    """An actor's answer for one trial."""

    worker: str
    record: FrozenTrial | None = None  # SQL mode: the finished record
    exhausted: str | None = None
    lost: bool = False  # SQL mode: the trial was failed elsewhere while it ran
    late: bool = False  # the call came after optimize's timeout or this actor's study.stop(): no trial was run
    stop: bool = False  # the objective called study.stop() on the actor's copy of the study: the driver stops
    interrupted: bool = False  # the objective raised KeyboardInterrupt: its trial failed as interrupted (and stop)
    asked_no_pruner: bool = False  # should_prune() was asked in a study without a pruner: the driver says so, once
    refunded: int = 0  # SQL mode: its trial was failed and re-queued elsewhere as it ran: the copy counts, not it
    ended_elsewhere: int | None = None  # SQL mode: the trial that ended elsewhere as it ran (no record): answered
    resumed: bool = False  # SQL mode, run_one: its trial was a paused one resumed, which takes no unit (record or not)
    # in-memory mode: what the driver must write
    sent: FrozenTrial | None = None
    value: Any = None
    state: str | None = None
    error: str | None = None
    uncaught: bool = False
    raised: BaseException | None = None  # the uncaught exception itself, when it pickles
    began: float | None = None  # when the objective began (the call may have waited in the actor's queue)
    intermediate: dict[int, float] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    checkpoint_step: int | None = None  # the step the checkpoint in attrs holds, as recorded with it


def past(deadline: float | None) -> bool:
    """Whether wall-clock ``deadline`` has passed (a call queued before optimize's timeout
    may reach the actor after it: it must not start a trial then)."""
    return deadline is not None and time.time() >= deadline


def _setup(index: int) -> None:
    threads = os.environ.get("OMP_NUM_THREADS", "1")
    apply_env({"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads})


class StudyWorker:
    """SQL mode: opens the study by URL and runs whole trials (ask, evaluate, tell)."""

    def __init__(self, spec: StudySpec, objective: Callable[..., Any], catch: tuple[type[BaseException], ...], index: int) -> None:
        from ..study import Study

        _setup(index)
        auto.SAY_PICK = index == 0  # every actor picks the same sampler: the first says which (its own process)
        stored_space.SAY_DROPPED = False  # the driver opened the study first and said what its space left out
        study = Study(storage=spec.open_storage(), name=spec.name, sampler=spec.sampler, pruner=spec.pruner)
        study.for_worker(10_000 + index, session=spec.session, heartbeat=spec.heartbeat)
        # the no-pruner warning: said by the driver when an answer notes it, never here (an actor lost after
        # saying it, before its answer came back, had another say it again; one never given such a trial, none)
        study._said_no_pruner = not spec.notes_no_pruner  # opened with the pruner given: it would note nothing
        study._no_pruner_said_by_driver = True
        study._no_pruner_to_driver = spec.to_driver()
        self.run = Run(study, retry_queued_first(objective, study), _Refunds(), catch)  # the driver may die
        self.notes_no_pruner = spec.notes_no_pruner
        self.me = worker_id()
        self.raylet = os.getppid()  # the process that started this actor: its node's raylet

    def whoami(self) -> str:
        return self.me

    def orphaned(self) -> bool:
        """Whether the process that started this actor (its node's raylet) is gone, this one outliving it:
        the driver counts the node lost and fails its trials, so a call queued here runs nothing (its trial
        would be no one's, left running until the study's heartbeat failed it)."""
        return os.getppid() != self.raylet

    def run_one(self, deadline: float | None = None) -> Outcome:
        """One whole trial; none once the wall-clock ``deadline`` (optimize's timeout) has passed, nor
        after an objective of this actor called ``study.stop()`` (a call queued behind that trial), nor
        once this actor's raylet is gone (:meth:`orphaned`)."""
        if past(deadline) or self.run.study.stopping or self.orphaned():
            return Outcome(self.me, late=True)
        resumes = self.run.resumes
        try:
            record = run_one(self.run)
        except KeyboardInterrupt:
            return self._noted(self._interrupted())
        except BaseException as exc:  # noqa: BLE001 - the study does not catch it: the driver raises it
            return self._noted(self._raised(exc))
        exhausted, self.run.exhausted = self.run.exhausted, None
        return self._noted(Outcome(self.me, record=record, exhausted=exhausted, stop=self.run.study.stopping,
                                   resumed=self.run.resumes > resumes))

    def run_only(self, only: str) -> Outcome:
        """Run one promoted paused trial (``only="promoted"``) or one waiting trial
        (``"waiting"``), if any (record None: none was, or ``lost``: it was failed
        elsewhere meanwhile); never a new configuration, and none once this actor's raylet is gone
        (``late``: not "none was", which would end the driver's last promotions with trials left)."""
        if self.orphaned():
            return Outcome(self.me, late=True)
        lost = self.run.lost
        try:
            record = run_one(self.run, only=only)
        except KeyboardInterrupt:
            return self._noted(self._interrupted())
        except BaseException as exc:  # noqa: BLE001
            return self._noted(self._raised(exc))
        return self._noted(Outcome(self.me, record=record, lost=self.run.lost > lost, stop=self.run.study.stopping))

    def _noted(self, out: Outcome) -> Outcome:
        """``out``, noting whether the objective asked ``should_prune()`` without a pruner in this actor (the
        first time: the driver says the warning), and the units its trial gave back (failed and re-queued
        elsewhere as it ran: the driver gives them back to ``n_trials``) with that trial's number (the driver
        does not count it again if this actor is lost later)."""
        out.asked_no_pruner = self.notes_no_pruner and self.run.study._said_no_pruner
        self.notes_no_pruner = self.notes_no_pruner and not out.asked_no_pruner
        budget = self.run.budget
        if isinstance(budget, _Refunds):
            out.refunded, budget.refunds = budget.refunds, 0
        out.ended_elsewhere, self.run.lost_trial = self.run.lost_trial, None
        return out

    def _raised(self, exc: BaseException) -> Outcome:
        """The objective raised what the study does not catch (``run_trial`` failed its trial): the
        driver raises it once the running trials end. Answered, not raised out of the actor: Ray
        ended the actor on a SystemExit (taken for a lost worker, optimize went on) and raised its own
        error for an exception the driver cannot rebuild."""
        self.run.study.stop()  # the calls queued behind it run nothing
        failed, self.run.raised_trial = self.run.raised_trial, None
        return Outcome(self.me, record=failed, uncaught=True, raised=sendable(exc), error=describe_exception(exc))

    def _interrupted(self) -> Outcome:
        """The objective raised KeyboardInterrupt (``run_trial`` failed its trial as interrupted): it stops
        the run, as inline (out of the actor, Ray made it a TaskCancelledError that optimize raised)."""
        self.run.study.stop()  # the calls queued behind it run nothing
        # its failed record, as the driver has it in memory mode: callbacks see it (tunesmith run's exit status)
        failed, self.run.stopped_trial = self.run.stopped_trial, None
        return Outcome(self.me, record=failed, stop=True, interrupted=True)


class _Refunds(Budget):
    """An actor's budget: no limit (the driver hands out the units), counting what :func:`run_one` refunds (a
    trial failed and re-queued elsewhere as it ran) for the answer to take back to the driver's budget."""

    def __init__(self) -> None:
        super().__init__(None, None)
        self.refunds = 0

    def refund(self, n: int = 1) -> None:
        self.refunds += max(0, n)


class EvalWorker:
    """In-memory mode: evaluates trials the driver asked; the driver tells."""

    def __init__(self, spec: StudySpec, objective: Callable[..., Any], catch: tuple[type[BaseException], ...], index: int) -> None:
        _setup(index)
        self.objective = objective
        self.catch = catch
        self.me = worker_id()
        self.name = spec.name  # the objective may use it (the trainer's checkpoint folder)
        self.copy_id = spec.copy_id
        self.direction, self.pruner = spec.direction, spec.pruner  # read by the integrations' callbacks
        self.stopped = False  # an objective here called study.stop(): a call queued behind it runs nothing
        self.notes_no_pruner = spec.notes_no_pruner  # its objective's should_prune() without a pruner is noted
        self.to_driver = spec.to_driver()

    def whoami(self) -> str:
        return self.me

    def evaluate(self, record: FrozenTrial, deadline: float | None = None) -> Outcome:
        """Evaluate the trial the driver asked, unless the wall-clock ``deadline`` has passed or an
        objective of this actor called ``study.stop()``."""
        from ..study.trial import DetachedTrial

        if past(deadline) or self.stopped:
            return Outcome(self.me, sent=record, late=True)
        trial = DetachedTrial(self.name, record, self.copy_id, direction=self.direction, pruner=self.pruner,
                              said_no_pruner=not self.notes_no_pruner, to_driver=self.to_driver)
        out = Outcome(self.me, sent=record, began=time.time())
        try:
            out.value, out.error = _unsent(self.objective(trial))
            out.state = None if out.error is None else TrialState.FAILED.value
        except TrialPruned:
            out.state = TrialState.PRUNED.value
        except KeyboardInterrupt as exc:  # stops the run, as inline (it was raised out of optimize)
            out.state, out.error, out.interrupted = TrialState.FAILED.value, interrupted(exc), True
            self.stopped = True
        except BaseException as exc:  # noqa: BLE001 - reported to the driver, which decides
            out.state, out.error = TrialState.FAILED.value, describe_exception(exc)
            out.uncaught = not isinstance(exc, self.catch)
            if out.uncaught:
                out.raised = sendable(exc)
        final = trial.record
        out.intermediate, out.attrs = dict(final.intermediate), dict(final.attrs)
        out.checkpoint_step = final.system.checkpoint_step
        out.stop = self.stopped = self.stopped or bool(getattr(trial.study, "stopping", False))
        out.asked_no_pruner = self.notes_no_pruner and bool(getattr(trial.study, "_said_no_pruner", True))
        self.notes_no_pruner = self.notes_no_pruner and not out.asked_no_pruner
        return out


#: the namespace of Ray's key-value store (its GCS) in which actors note that the study has no pruner
NOTES = "tunesmith"


#: what every key of :func:`note_key_for` starts with
NOTE_PREFIX = "no-pruner-"


def note_key_for(study: Study, job: str = "") -> str | None:
    """The key under which one optimize call's actors note ``should_prune()`` without a pruner (:func:`tell_driver`),
    its own: two calls on one cluster never read each other's, nor one left by a call that crashed. It names the
    driver's Ray ``job`` (its id in hex), so that a later driver can delete the key of one killed before it
    deleted its own (:func:`note_job`). None where nothing is to be noted (the driver reads nothing): the study
    has a pruner (one stored with it too, opened without ``pruner=``), or the warning was said already."""
    if study._said_no_pruner or not isinstance(study.pruner, NopPruner):
        return None
    return f"{NOTE_PREFIX}{job}-{secrets.token_hex(8)}" if job else f"{NOTE_PREFIX}{secrets.token_hex(8)}"


def note_job(key: bytes | str) -> str | None:
    """The Ray job id (hex) a key of :func:`note_key_for` names; None for one that names none (an older
    tunesmith's, or one not of this form): whose it is cannot be told."""
    text = key.decode(errors="replace") if isinstance(key, bytes) else key
    job, sep, token = text.removeprefix(NOTE_PREFIX).rpartition("-")
    if not text.startswith(NOTE_PREFIX) or not sep or not job or not token:
        return None
    return job


def tell_driver(key: str) -> None:
    """Note under ``key`` in Ray's key-value store that an objective asked ``should_prune()`` without a pruner, as
    it asks: the driver reads it while it waits and as optimize ends (:meth:`_Driver._read_note`), so the warning
    is said though the trial never answers (its actor lost, stopped by ``trial_timeout``, or interrupted). Never
    raises into the objective: on failure the answer's note (``Outcome.asked_no_pruner``) still says it."""
    try:
        from ray.experimental.internal_kv import _internal_kv_put

        _internal_kv_put(key, b"1", namespace=NOTES)
    except Exception as exc:  # noqa: BLE001 - a Ray without it, or its GCS out of reach
        logger.debug("could not note the study's missing pruner for the driver: %s", exc)


def apply_outcome(study: Study, out: Outcome) -> FrozenTrial:
    """Driver side of the in-memory mode: write reports, attributes, the actor's ``host:pid``
    as the trial's worker and when the objective began (the driver asked it, earlier), then tell."""
    assert out.sent is not None
    rec = out.sent.replace(intermediate=out.intermediate, attrs=out.attrs, worker=out.worker,
                           started=out.began or out.sent.started,
                           system=out.sent.system.replace(checkpoint_step=out.checkpoint_step))
    study.record_progress(rec)
    return study.tell(rec, out.value, state=out.state, error=out.error)


def _unsent(value: Any) -> tuple[Any, str | None]:
    """The objective's ``value`` as an actor sends it back, and why its trial failed (None: as
    returned), as inline. A number goes as itself (an int: the driver warns when it has no exact
    float) or as its float (a tensor, which the driver may not rebuild: a CUDA one without a GPU;
    one that did not pickle ended optimize with Ray's TypeError, its trial left running); what is
    not one is failed here, with the reason inline gives (the driver's tell said "tell() got")."""
    number = _as_float(value)
    if number is None:
        return None, bad_value_reason(value)
    return (value, None) if isinstance(value, (int, float, np.generic)) else (number, None)


def _pickler() -> ModuleType:
    """What Ray sends values with (cloudpickle: a class of the driver's script travels by value)."""
    try:
        from ray import cloudpickle
    except ImportError:  # pragma: no cover - an actor runs in Ray
        return pickle
    return cloudpickle


def _round_trips(value: Any) -> bool:
    """Whether the driver can rebuild ``value`` from its pickled copy."""
    try:
        pickler = _pickler()
        pickler.loads(pickler.dumps(value))
    except Exception:  # noqa: BLE001 - sent otherwise
        return False
    return True


def sendable(exc: BaseException) -> BaseException | None:
    """``exc`` when the driver can rebuild it from its pickled copy, else None: one that does not
    pickle, or whose ``__init__`` takes other arguments than its ``args``, ended optimize with Ray's
    own error (its whole traceback) and the other actors' trials left running."""
    return exc if _round_trips(exc) else None


def uncaught_error(number: int | None, error: str | None) -> RuntimeError:
    """What optimize raises for an uncaught exception that could not be sent back from an actor."""
    trial = "a trial" if number is None else f"trial {number}"
    return RuntimeError(f"{trial} raised an exception the study does not catch: {error}")


def fail_or_unqueue(study: Study, number: int, error: str, *, requeue: bool, started: bool) -> FrozenTrial | None:
    """In-memory mode, an actor was lost: fail the trial it was running (and
    queue a copy if asked), returned; put back in the queue the ones it never started."""
    if not started:
        study.unstart(number)
        return None
    again = requeue and study.trials[number].system.retry_of is None  # a lost copy is not copied again
    return study.fail_trial(number, error, requeue=again)


def retry_if_oom(study: Study, record: FrozenTrial) -> bool:
    """Queue again a trial that ran out of GPU memory; whether it did."""
    if record.state is not TrialState.FAILED or not is_oom_error(record.error):
        return False
    if may_retry_oom(record) and (n := study.requeue(record, oom=True)) is not None:  # an actor queues it first
        logger.warning("trial %d ran out of GPU memory; re-queued as %s", record.number, n)
    return True
