"""The handle an objective receives: its configuration, reports and pruning."""

from __future__ import annotations

import copy
import functools
import logging
import math
import operator
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

from ..exceptions import TrialFinishedError, TrialTakenOver, no_attribute
from ..paths import PLANTED_FIX, refuse_planted
from ..pruners import Decision, NopPruner
from ..space.params import a_type, did_you_mean
from ..storage.base import who
from ..trial import FrozenTrial, SystemState, TrialState, _as_float_or_nan, json_attrs, short_repr
from . import lifecycle

if TYPE_CHECKING:
    from .study import Study


class Trial:
    """One running trial of a study.

    Attributes:
        number: the trial's number in its study.
        params: its configuration (inactive conditional parameters absent).
        study: the study it belongs to.
    """

    def __init__(self, study: Study, record: FrozenTrial) -> None:
        self.study = study
        self._record = record
        self._last_decision = Decision.CONTINUE

    @property
    def number(self) -> int:
        return self._record.number

    @property
    def params(self) -> dict[str, Any]:
        return Params(self._record.params, getattr(self.study, "space", None))  # a Ray stand-in has none

    @property
    def record(self) -> FrozenTrial:
        """The latest record of this trial as written to the storage."""
        return self._record

    @property
    def state(self) -> TrialState:
        return self._record.state

    @property
    def value(self) -> float | None:
        return self._record.value

    @property
    def intermediate(self) -> Mapping[int, float]:
        return self._record.intermediate

    def __getitem__(self, name: str) -> Any:
        return self.params[name]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("suggest_"):  # Optuna's define-by-run calls
            raise AttributeError(
                f"Trial has no {name}(): tunesmith declares parameters up front. Put the parameter "
                "in the Space (ts.Float(low, high, log=True), ts.Int, ts.Categorical; when= for one "
                "that depends on another) and read trial.params['name'] (docs/guide.md, section 1)"
            )
        return no_attribute(self, name)

    def report(self, value: float, step: int | None = None, *, checkpoint: Any = None) -> None:
        """Record an intermediate value (a validation score after an epoch).

        ``step`` defaults to one past the last reported step (1 for the first report:
        steps count from 1, as the trainer and the integrations count epochs and rounds,
        and as the pruners' rungs assume). Values are stored with the trial, survive
        restarts, and drive pruning.

        ``checkpoint`` (a path, or any JSON value), where given, is recorded as
        ``attrs["checkpoint"]`` in the same write as the report: a worker killed (or
        interrupted) between two writes would leave the trial to resume from a
        checkpoint one epoch ahead of its reports, or behind them. Save each epoch's
        checkpoint to a new file and pass it here (docs/pruning.md).
        """
        v = _as_float(value)
        if v is None:
            raise ValueError(f"trial {self.number}: report() takes a finite number, got {short_repr(value)}; " + (
                "a run that diverged should stop (raise ts.TrialPruned) instead of reporting it"
                if _as_float_or_nan(value) is not None
                else "pass the score itself (a float, a NumPy number or a 0-d tensor)" + _as_item(value)
            ))
        last = self._record.last_step
        if step is None:
            step = 1 if last is None else last + 1
        step = _as_step(step, self.number)
        if last is not None and step <= last:
            paused_at = self._record.system.resumed_step
            if paused_at is not None and step <= paused_at:
                raise ValueError(
                    f"trial {self.number} was paused after step {paused_at} and resumed, and then "
                    f"reported step {step} again: a resumed run continues where it paused. Start "
                    "the loop at trial.start_step and load trial.resume_from (docs/pruning.md, "
                    "'Pause and resume'), or use a pruner without pause=True"
                )
            raise ValueError(
                f"trial {self.number}: step {step} "
                + ("was reported already" if step == last else f"was reported after step {last}")
                + "; steps must increase (report each step once)"
            )
        inter = {**self._record.intermediate, step: v}
        if checkpoint is None:
            self._write(self._record.replace(intermediate=inter, heartbeat=self._now()))
            return
        where = os.fspath(checkpoint) if isinstance(checkpoint, os.PathLike) else checkpoint
        attrs = {**self._record.attrs, **json_attrs({"checkpoint": where}, f"trial {self.number}: report(checkpoint=...)")}
        system = self._record.system.replace(checkpoint_step=step)
        self._write(self._record.replace(intermediate=inter, attrs=attrs, heartbeat=self._now(), system=system))

    def should_prune(self) -> bool:
        """Whether the study's pruner says to stop this trial now.

        End the objective by raising :class:`tunesmith.TrialPruned` when true;
        when the pruner paused the trial (rather than pruned it) the study
        records it as paused and may resume it later (see :attr:`resume_from`). A study without a pruner
        (the default) never stops a trial: the first call says so, once per study (not with ``pruner="none"``
        given: no early stopping is meant).
        """
        decision = self.decision()
        study = self.study
        if isinstance(getattr(study, "pruner", None), NopPruner) and not getattr(study, "_said_no_pruner", True):
            study._said_no_pruner = True
            shared = getattr(study, "_said_no_pruner_to", None)  # worker processes: the first of them to ask says it
            first = shared is None or claim_once(shared)
            if first and not getattr(study, "_no_pruner_said_by_driver", False):  # a Ray actor's: the driver says it
                say_no_pruner(study.name)
            tell = getattr(study, "_no_pruner_to_driver", None)  # a Ray actor's: told to the driver now, as asked
            if first and tell is not None:
                tell()
        return decision is not Decision.CONTINUE

    def decision(self) -> Decision:
        """The pruner's full answer: continue, prune, or pause (resumable)."""
        self._last_decision = self.study.decide(self._record)
        return self._last_decision

    @property
    def is_resumed(self) -> bool:
        """Whether this trial was paused and is now resumed (promoted) by the study."""
        return self._record.is_resumed

    @property
    def start_step(self) -> int:
        """The first step to run: 0 for a new trial, one past the last report for a resumed one.
        Steps count from 1 (as the pruners' rungs assume): loop from ``max(trial.start_step, 1)``."""
        last = self._record.last_step
        return 0 if not self.is_resumed or last is None else last + 1

    @property
    def resume_from(self) -> Any:
        """The checkpoint to continue from (``attrs["checkpoint"]``) when resumed, else None.

        None also for a resumed trial that set no ``attrs["checkpoint"]`` before it was
        paused (the study logs a warning at that pause). A path another user may have chosen is
        refused (:func:`~tunesmith.paths.refuse_planted`): whoever may write the study's database
        can change it; so is a path not there where another user may make it before your code loads it."""
        return checkpoint_to_resume(self, missing=True)

    @property
    def attrs(self) -> Mapping[str, Any]:
        return self._record.attrs

    @property
    def system(self) -> SystemState:
        """The study's bookkeeping of this trial (resumes, re-queues; read-only)."""
        return self._record.system

    def set_attr(self, key: str, value: Any, *, step: int | None = None) -> None:
        """Store a JSON-serializable attribute with the trial (checkpoint path, notes).

        These are the user's own: the study's bookkeeping (resumes, re-queues) is in
        ``record.system``, which no attribute can change. ``step``, for ``"checkpoint"`` only:
        the step that checkpoint holds (default: the last one reported), which the study names
        where a trial goes on from it (``record.system.checkpoint_step``)."""
        plain = json_attrs({key: value}, f"trial {self.number}: set_attr")
        record = self._record.replace(attrs={**self._record.attrs, **plain})
        if key == "checkpoint":  # no checkpoint (None) holds no step
            held = None if value is None else self._record.last_step if step is None else _as_step(step, self.number)
            record = record.replace(system=record.system.replace(checkpoint_step=held))
        elif step is not None:
            raise ValueError(f"trial {self.number}: set_attr({key!r}, ..., step={step!r}): step= is the step a "
                             "checkpoint holds, for set_attr('checkpoint', path, step=...) only")
        self._write(record)

    def _write(self, record: FrozenTrial) -> None:
        if self._record.state is TrialState.PAUSED:
            # a stale handle: its reports would move the trial off the rung it waits at (never
            # promoted), or overwrite the run of a worker that resumed it meanwhile
            raise TrialFinishedError(
                f"trial {self.number} is paused: this handle ended with the pause and writes nothing more. "
                "When the pruner promotes the trial, study.ask() (or optimize) resumes it with a new handle"
            )
        run = self._record
        if run.state is TrialState.RUNNING and lifecycle.resumable(run, pauses=True):
            self._write_if_same_run(run, record)
        else:
            self.study._storage.update_trial(self.study._study_id, record)
        self._record = record

    def _write_if_same_run(self, run: FrozenTrial, record: FrozenTrial) -> None:
        """Write ``record`` only while the stored trial is still ``run``: a trial that can go on from its checkpoint
        is held when its worker is taken for lost (a Ray node cut off from its cluster, not from the database) and
        may be resumed by another worker, whose run a report of this one would overwrite (its worker, reports and
        resume count), taking the trial back for a worker that goes on beside the other."""
        storage, sid = self.study._storage, self.study._study_id
        if storage.update_trial(sid, record, expect_state=TrialState.RUNNING,
                                expect=functools.partial(lifecycle.same_run, run)):
            return
        self._refuse_other_run(run, storage.get_trial(sid, run.number))

    def check_run(self) -> None:
        """Raise :class:`~tunesmith.TrialTakenOver` where another worker took this trial over since this run of it
        began, or held it back (this worker was taken for lost), and :class:`~tunesmith.TrialFinishedError` where it
        is finished: a read, nothing written. Reports and attributes raise these already; call this between them
        before a costly write of the run's own (a framework's checkpoint save), which would else go on until the next
        report. Only a trial that can go on from its checkpoint (paused or resumed) is checked, as only such a
        trial is taken over."""
        run = self._record
        if run.state is TrialState.RUNNING and lifecycle.resumable(run, pauses=True):
            stored = self.study._storage.get_trial(self.study._study_id, run.number)
            if not lifecycle.same_run(run, stored):
                self._refuse_other_run(run, stored)

    @staticmethod
    def _refuse_other_run(run: FrozenTrial, stored: FrozenTrial) -> NoReturn:
        """Raise what a run of trial ``run`` meets where the stored trial is ``stored``, another run (or finished)."""
        if stored.state.is_finished:
            raise TrialFinishedError(f"trial {run.number} is already {stored.state}; finished trials never change")
        raise TrialTakenOver(
            f"trial {run.number} was started again by {who(stored.worker)} since this run of it began (this worker "
            "was taken for lost): this run stops and records nothing more; that run goes on from the trial's recorded "
            "checkpoint" if stored.state is TrialState.RUNNING else f"trial {run.number} was held back to "
            f"{stored.state} since this run of it began (this worker was taken for lost): this run stops and records "
            "nothing more; the next ask resumes the trial from its recorded checkpoint")

    def _now(self) -> float:
        return self.study._storage.clock()  # heartbeats go by the storage's clock

    def __repr__(self) -> str:
        return f"Trial(number={self.number}, params={self.params})"


def say_no_pruner(name: str) -> None:
    """The warning that study ``name`` has no pruner, said once per study object (see :meth:`Trial.should_prune`)."""
    logging.getLogger("tunesmith").warning(
        "study %r has no pruner (pruner=None, the default), so trial.should_prune() is always False and "
        "no trial is stopped early: pass pruner='asha' (or 'median', 'hyperband'; Optuna's default is "
        "the median) to ts.Study, or a study file's pruner: (docs/pruning.md); pruner='none' says that no early "
        "stopping is meant, and silences this", name)


def claim_once(flag: Any) -> bool:
    """Set a run's shared once-flag (a ``multiprocessing`` ``Value`` with its lock, seen by every worker process);
    whether this call set it. A lock not had within a second (a worker killed as it held it) counts as set:
    the warning it guards is then left unsaid rather than any worker kept waiting."""
    lock = flag.get_lock()
    if not lock.acquire(timeout=1.0):
        return False
    try:
        if flag.value:
            return False
        flag.value = 1
        return True
    finally:
        lock.release()


class _Named:
    """The study of a detached trial, as its objective sees it: its name (and a copy's id), its direction
    and its pruner (which the integrations' callbacks read: without them they failed every trial with an
    AttributeError; the pruner never stops a detached trial)."""

    def __init__(self, name: str, copy_id: str | None = None, *, direction: Any = None, pruner: Any = None,
                 said_no_pruner: bool = True, to_driver: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.name = name
        self.copy_id = copy_id
        self.direction, self.pruner = direction, pruner
        self._said_no_pruner = said_no_pruner  # False: should_prune() notes once that no pruner stops a trial
        self._no_pruner_said_by_driver = True  # a Ray actor's detached trial: the note goes back with the answer
        self._no_pruner_to_driver = to_driver  # and is told to the driver as it is asked (a trial that never answers)
        self.stopping = False  # stop() from the objective: the driver stops the run (Study.stop)

    def stop(self) -> None:
        self.stopping = True


class DetachedTrial(Trial):
    """A trial evaluated where its study's storage is out of reach (a Ray actor of an
    in-memory study): reports and attributes are kept in :attr:`record` for the
    driver to write (:meth:`Study.record_progress`), and pruning never stops it. ``said_no_pruner=False``:
    its ``should_prune()`` notes that the study has no pruner (once: it is then True on :attr:`study`), and calls
    ``to_driver`` then; the driver says the warning when it reads either."""

    def __init__(self, study_name: str, record: FrozenTrial, copy_id: str | None = None, *,
                 direction: Any = None, pruner: Any = None, said_no_pruner: bool = True,
                 to_driver: Callable[[], None] | None = None) -> None:  # fmt: skip
        named = _Named(study_name, copy_id, direction=direction, pruner=pruner, said_no_pruner=said_no_pruner,
                       to_driver=to_driver)
        super().__init__(cast("Study", named), record)

    def decision(self) -> Decision:
        self._last_decision = Decision.CONTINUE
        return self._last_decision

    def _write(self, record: FrozenTrial) -> None:
        self._record = record

    def check_run(self) -> None:
        """Nothing to check: the storage is out of reach, and the driver writes the reports."""

    def _now(self) -> float:
        return time.time()  # the driver writes the reports, never this heartbeat


def _as_step(step: Any, number: int) -> int:
    """``step`` as a Python int in [0, 2**63) (NumPy integers accepted), else a ValueError."""
    try:
        out = operator.index(step)
    except TypeError:
        out = -1
    if isinstance(step, bool) or out < 0:
        raise ValueError(f"trial {number}: step must be an integer >= 0, got {short_repr(step)}")
    if out >= 2**63:  # a SQL storage keeps 64-bit steps: the trial would become unreadable
        raise ValueError(f"trial {number}: step {short_repr(step)} is too large; steps must be below 2**63, "
                         "the 64-bit integers a SQL storage keeps")
    return int(out)


def _as_float(value: Any) -> float | None:
    """``float(value)`` for finite real numbers (Python, NumPy, 0-d tensors), else None."""
    v = _as_float_or_nan(value)
    return v if v is not None and math.isfinite(v) else None


def _of_shape(value: Any) -> tuple[str, str]:
    """For an array or tensor that is not 0-d: its shape (" of shape (1,)") and the way to its number."""
    shape = getattr(value, "shape", None) if getattr(value, "ndim", 0) else None
    if not isinstance(shape, tuple):  # torch.Size is a tuple; an object with ndim but no shape is neither
        return "", ""
    return f" of shape {tuple(shape)}", " (a 0-d array or tensor, or .item() of a one-element one)"


def _as_item(value: Any) -> str:
    """What report() adds for an array or tensor with dimensions (before: ``tensor([0.5])``, taken
    until such values were refused, was not told ``.item()``)."""
    shaped = _of_shape(value)[0]
    return f": this is {a_type(value)}{shaped} (.item() of a one-element one is its number)" if shaped else ""


class Params(dict[str, Any]):
    """A trial's configuration: a plain dict whose missing key says why it is missing.

    ``trial.params["lrr"]`` raises a ``KeyError`` that names the space's parameters
    (and the likely one); ``trial.params["gamma"]`` for a conditional parameter that
    is inactive in this trial says which condition does not hold.
    """

    __slots__ = ("_space",)

    def __init__(self, params: Mapping[str, Any], space: Any) -> None:
        # mutable values (a Fixed list) are copied: the stored record must not change
        super().__init__({k: copy.deepcopy(v) if isinstance(v, (list, dict)) else v for k, v in params.items()})
        self._space = space
        _yaml_as_dict()

    def __reduce__(self) -> Any:  # pickles (and copies) as a plain dict
        return (dict, (dict(self),))

    def __missing__(self, name: Any) -> Any:
        raise KeyError(missing_reason(name, self, self._space))

    def __getattr__(self, name: str) -> Any:  # trial.params.lr, as a namespace or OmegaConf reads
        names = list(self._space) if self._space is not None else list(self)
        if name.startswith("_") or name not in names:
            raise AttributeError(f"'Params' object has no attribute {name!r}")
        raise AttributeError(f"trial.params is a dict: write trial.params[{name!r}]"
                             + ("" if name in self else f" ({missing_reason(name, self, self._space)})"))


_YAML_DONE = [False]


def _yaml_as_dict() -> None:
    """yaml.safe_dump(trial.params) writes a plain mapping (SafeDumper refuses dict
    subclasses). Done once yaml is imported (by the user or tunesmith), never importing it."""
    yaml = sys.modules.get("yaml")
    if yaml is None or _YAML_DONE[0]:
        return
    _YAML_DONE[0] = True
    for name in ("SafeDumper", "Dumper", "CSafeDumper", "CDumper"):
        dumper = getattr(yaml, name, None)
        if dumper is not None:
            yaml.add_representer(Params, lambda d, p: d.represent_dict(dict(p)), Dumper=dumper)


def missing_reason(name: Any, params: Mapping[str, Any], space: Any) -> str:
    """Why ``name`` is not in a trial's ``params``: not a parameter of ``space``, or inactive."""
    names = list(space) if space is not None else list(params)
    if name not in names:
        hint = did_you_mean(str(name), [str(n) for n in names])
        shown = ", ".join(map(repr, names[:12])) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
        return f"{name!r} is not a parameter of the study's space{hint} (its parameters: {shown})"
    unmet = [f"{parent}={params[parent]!r}" if parent in params else f"{parent} (inactive itself)"
             for parent, values in space[name].when.items() if parent not in params or params[parent] not in values]
    need = " and ".join(f"{parent} in {list(values)!r}" for parent, values in space[name].when.items())
    return (f"{name!r} is inactive in this trial: it needs {need}, here {', '.join(unmet)}. Inactive "
            f"parameters are absent from trial.params: use trial.params.get({name!r}) or check the condition")


def checkpoint_to_resume(trial: Trial, *, missing: bool) -> Any:
    """``trial.resume_from``; with ``missing=False`` a path not there is not refused for its folder: for the
    integrations' callbacks, which load only a file of their own checked folder (the stored path re-rooted
    there where the folder moved since the pause: a default folder in /tmp, since removed)."""
    if not isinstance(trial, Trial):  # another kind of trial: its own rule
        return trial.resume_from
    path = trial._record.attrs.get("checkpoint") if trial.is_resumed else None
    if isinstance(path, str) and path:
        refuse_planted(Path(path).expanduser(), f"trial {trial.number}'s checkpoint to resume from", PLANTED_FIX,
                       missing=missing)
    return path
