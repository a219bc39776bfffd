"""What runs inside a Ray actor (plain classes: the driver wraps them with ray.remote).

Nothing here imports Ray, so these pieces are testable without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from ..exceptions import TrialPruned
from ..pruners import Decision
from ..storage import worker_id
from ..trial import FrozenTrial, TrialState
from .gpu import apply_env, is_oom_error, retry_attrs
from .loop import Budget, Run, run_one

if TYPE_CHECKING:
    from ..study import Study

logger = logging.getLogger("tunesmith")


@dataclass(frozen=True)
class StudySpec:
    """Enough to open the study inside an actor (sampler and pruner travel pickled)."""

    url: str
    name: str
    sampler: Any
    pruner: Any
    session: int

    @classmethod
    def of(cls, study: Study) -> StudySpec:
        return cls(study.storage.url, study.name, study.sampler, study.pruner, study._session)


@dataclass
class Outcome:
    """An actor's answer for one trial."""

    worker: str
    record: FrozenTrial | None = None  # SQL mode: the finished record
    exhausted: str | None = None
    lost: bool = False  # SQL mode: the trial was failed elsewhere while it ran
    # in-memory mode: what the driver must write
    sent: FrozenTrial | None = None
    value: Any = None
    state: str | None = None
    error: str | None = None
    uncaught: bool = False
    intermediate: dict[int, float] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)


def _setup(index: int) -> None:
    import os

    threads = os.environ.get("OMP_NUM_THREADS", "1")
    apply_env({"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads})


class StudyWorker:
    """SQL mode: opens the study by URL and runs whole trials (ask, evaluate, tell)."""

    def __init__(self, spec: StudySpec, objective: Callable[..., Any], catch: tuple[type[BaseException], ...], index: int) -> None:
        from ..study import Study

        _setup(index)
        study = Study(storage=spec.url, name=spec.name, sampler=spec.sampler, pruner=spec.pruner)
        study.sampler.reseed(spec.session, 10_000 + index)
        self.run = Run(study, objective, Budget(None, None), catch)
        self.me = worker_id()

    def whoami(self) -> str:
        return self.me

    def run_one(self) -> Outcome:
        record = run_one(self.run)
        exhausted = self.run.exhausted.pop() if self.run.exhausted else None
        return Outcome(self.me, record=record, exhausted=exhausted)

    def run_only(self, only: str) -> Outcome:
        """Run one promoted paused trial (``only="promoted"``) or one waiting trial
        (``"waiting"``), if any (record None: none was, or ``lost``: it was failed
        elsewhere meanwhile); never a new configuration."""
        lost = self.run.lost
        record = run_one(self.run, only=only)
        return Outcome(self.me, record=record, lost=self.run.lost > lost)


class _Detached:
    """What a Trial asks of its study, answered inside the actor: writes are
    kept for the driver; pruning is not decided remotely; ``name`` is the study's."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._storage = self
        self._study_id = 0
        self.last: FrozenTrial | None = None

    def update_trial(self, study_id: int, record: FrozenTrial) -> None:
        self.last = record

    def _decide(self, record: FrozenTrial) -> Decision:
        return Decision.CONTINUE


class EvalWorker:
    """In-memory mode: evaluates trials the driver asked; the driver tells."""

    def __init__(self, spec: StudySpec, objective: Callable[..., Any], catch: tuple[type[BaseException], ...], index: int) -> None:
        _setup(index)
        self.objective = objective
        self.catch = catch
        self.me = worker_id()
        self.name = spec.name  # the objective may use it (the trainer's checkpoint folder)

    def whoami(self) -> str:
        return self.me

    def evaluate(self, record: FrozenTrial) -> Outcome:
        from ..study import Trial
        from ..study.study import _describe

        box = _Detached(self.name)
        trial = Trial(cast("Study", box), record)
        out = Outcome(self.me, sent=record)
        try:
            out.value = self.objective(trial)
        except TrialPruned:
            out.state = TrialState.PRUNED.value
        except BaseException as exc:  # noqa: BLE001 - reported to the driver, which decides
            out.state, out.error = TrialState.FAILED.value, _describe(exc)
            out.uncaught = not isinstance(exc, self.catch)
        final = box.last or record
        out.intermediate, out.attrs = dict(final.intermediate), dict(final.attrs)
        return out


def apply_outcome(study: Study, out: Outcome) -> FrozenTrial:
    """Driver side of the in-memory mode: write reports and attributes, then tell."""
    assert out.sent is not None
    rec = out.sent
    if out.intermediate != dict(rec.intermediate) or out.attrs != dict(rec.attrs):
        rec = rec.replace(intermediate=out.intermediate, attrs=out.attrs)
        study.storage.update_trial(study._study_id, rec)
    final = study.tell(rec, out.value, state=out.state, error=out.error)
    if out.uncaught:
        raise RuntimeError(f"trial {rec.number} raised an exception the study does not catch: {out.error}")
    return final


def fail_or_unqueue(study: Study, number: int, error: str, *, requeue: bool, started: bool) -> FrozenTrial | None:
    """In-memory mode, an actor was lost: fail the trial it was running (and
    queue a copy if asked), returned; put back in the queue the ones it never started."""
    st, sid = study.storage, study._study_id
    rec = st.get_trial(sid, number)
    if not started:
        st.update_trial(sid, rec.replace(state=TrialState.WAITING, worker=None, started=None, heartbeat=None))
        return None
    if requeue:
        copy = study.enqueue(rec.params, attrs={"retry_of": number})
        st.update_trial(sid, rec.replace(attrs={**rec.attrs, "requeued_as": copy}))
    return study.tell(number, state=TrialState.FAILED, error=error)


def retry_if_oom(study: Study, record: FrozenTrial) -> bool:
    """Queue again a trial that ran out of GPU memory; whether it did."""
    if record.state is not TrialState.FAILED or not is_oom_error(record.error):
        return False
    attrs = retry_attrs(record.number, record.attrs)
    if attrs is not None:
        n = study.enqueue(record.params, attrs=attrs)
        logger.warning("trial %d ran out of GPU memory; re-queued as %s", record.number, n)
    return True
