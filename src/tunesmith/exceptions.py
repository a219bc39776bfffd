"""Exceptions raised by tunesmith.

Bad definitions raise ``ValueError`` (or ``TypeError``) with a message that
names the parameter and the fix; the classes below cover the rest.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import os
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class TunesmithError(Exception):
    """Base class of tunesmith's own errors."""


class TrialPruned(TunesmithError):  # noqa: N818 - public name users raise
    """Raised by an objective to end its trial as pruned (stopped early)."""


class TrialPaused(TrialPruned):  # noqa: N818 - public name users raise
    """Raised by an objective to stop its trial as *paused*: a pausing pruner
    (``ASHA(pause=True)``, ``Hyperband(pause=True)``) may promote it later and
    the study then resumes it from ``trial.resume_from``. With a pruner that
    never pauses, the trial is recorded as pruned."""


class ResumeRefused(TunesmithError, RuntimeError):  # noqa: N818 - like TrialPaused
    """Raised by an objective when a trial the study resumed cannot continue from its checkpoint
    (written for another model or other settings, as after a study is reopened with a changed
    ``build_model``): the study puts the trial back to paused, its checkpoint and promotion kept, and
    ``optimize`` stops with this error, which says what differs. Raised for a trial that was not
    resumed, it fails that trial as any error does."""


class OutOfRoom(TunesmithError):  # noqa: N818 - a kind of error, named for what ran out
    """A file the objective had to write was refused for room (a full disk or quota, a limit on file
    size): a checkpoint's :class:`~tunesmith.train.checkpoint.CheckpointError` is one. A trial resumed
    after a pause that meets it is paused again, its checkpoint and promotion kept, and ``optimize``
    stops with this error (resumed first in the same run, it would meet the full disk again), as for
    :class:`ResumeRefused`; so is a trial never paused that recorded a checkpoint and a report under a pruner
    that pauses (held at that checkpoint, as on a Ctrl-C). Any other trial is failed with it."""


class UntrustedPathError(TunesmithError, PermissionError, ValueError):
    """A file or folder tunesmith was to read or write is refused because another user may have chosen it
    or may change it: their link in its place, a file or folder of theirs, one others may write (a Ray
    token, a TensorBoard log folder, a SQLite journal, a checkpoint folder). A ``PermissionError`` and a
    ``ValueError`` too; the message names the path, whose it is, and the fix."""


class StorageError(TunesmithError):
    """A storage could not be opened, read or written: the database is missing,
    damaged, full, read-only, or unreachable for longer than the storage's
    retry window. The message names the storage (password hidden) and the cause."""

    #: the number of the trial whose end this error left unwritten (still running as stored), if any
    left_running: int | None = None


class SchemaVersionError(StorageError):
    """The database's tables are not the ones this tunesmith reads: written by a
    newer version, its version row missing or not an integer, or a table
    lacking a column."""


class UnreadableSpaceError(StorageError):
    """A study's stored space is one this tunesmith refuses (an older version's checks let it pass, or it
    was changed outside tunesmith); its trials are still stored: ``tunesmith copy NAME NEW --space
    STUDY.yaml`` copies those that fit the space given."""


class DuplicateStudyError(TunesmithError, ValueError):
    """A study of that name already exists in the storage (a ``ValueError`` too)."""


class StudyNotFound(StorageError, KeyError):
    """No study of that name exists in the storage."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0]) if self.args else ""


class TrialNotFound(TunesmithError, KeyError):  # noqa: N818 - like StudyNotFound
    """The study has no trial of that number (a ``KeyError`` too)."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0]) if self.args else ""


class TrialFinishedError(TunesmithError):
    """A finished trial was written to again (finished trials never change), or a paused one
    through the handle that paused it."""


class TrialTakenOver(TrialFinishedError):  # noqa: N818 - a kind of TrialFinishedError, named for what happened
    """A running trial's handle wrote (a report, an attribute) after its worker was taken for lost and the
    trial held, then perhaps resumed by another worker: this run stops, writing nothing more; the trial's
    files are the other run's (or the held trial's) to go on from."""


class WorkersLost(TunesmithError, RuntimeError):  # noqa: N818
    """``optimize`` gave up: its worker processes or Ray actors keep dying before they run a
    trial, cannot start, or their cluster is gone; the message says which and what to do
    (a ``RuntimeError`` too; the command line prints it as one line)."""


class MetricNotEvaluated(TunesmithError, ValueError):  # noqa: N818 - says what happened, as TrialPruned
    """The metric a Transformers :class:`~tunesmith.integrations.transformers.PruningCallback` or
    ``objective`` monitors is not among those the Trainer's evaluations gave (a misspelt name, or one
    the ``compute_metrics`` does not return); a ``ValueError`` too. A setting that every trial shares:
    the integration's ``objective`` stops the study at the first trial that never got it."""


class SearchExhausted(TunesmithError):  # noqa: N818
    """The sampler has no configuration left to suggest (a finished grid)."""


class Terminated(KeyboardInterrupt):  # noqa: N818 - an interruption, as KeyboardInterrupt
    """A stop asked by a signal other than Ctrl-C (``SIGTERM``: ``kill``, systemd, a batch scheduler),
    which the command line turns into this: handled as Ctrl-C, recorded as what it was."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


#: the signals (their names) stopping this process's optimize, noted by the command line's handler
#: while it runs: Ray's wait turns the :class:`Terminated` raised inside it into a plain KeyboardInterrupt
STOPPING_SIGNALS: list[str] = []


def is_interrupt(error: str | None) -> bool:
    """Whether a trial's ``error`` (or ``system.held``) is one :func:`interrupted` gave."""
    return (error or "").startswith("interrupted (")


def interrupted(exc: BaseException | None = None) -> str:
    """The error of a trial an interruption stopped: ``interrupted (SIGTERM)`` for :class:`Terminated`
    (or while the command line notes a SIGTERM in :data:`STOPPING_SIGNALS`), else
    ``interrupted (KeyboardInterrupt)`` (Ctrl-C)."""
    if isinstance(exc, Terminated):
        return f"interrupted ({exc.name})"
    return f"interrupted ({STOPPING_SIGNALS[0]})" if STOPPING_SIGNALS else "interrupted (KeyboardInterrupt)"


_TRIAL_PY = os.path.join("tunesmith", "study", "trial.py")


def add_exception_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)``; Python 3.10 has no ``add_note`` (an AttributeError would replace
    ``exc``): the note is kept in ``__notes__`` all the same, where :func:`describe_exception` reads it."""
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:
        setattr(exc, "__notes__", [*getattr(exc, "__notes__", []), note])  # noqa: B010 (no such attribute on 3.10)


def describe_exception(exc: BaseException) -> str:
    """``Type: message at file:line`` (where it was raised): what a failed trial stores as its error."""
    import traceback

    tb = traceback.extract_tb(exc.__traceback__)
    # trial.params["lrr"], trial.report(...), trial.suggest_float(...) raise in the trial's own module: point at the caller's line
    while len(tb) > 1 and tb[-1].filename.endswith(_TRIAL_PY):
        tb.pop()
    where = f" at {tb[-1].filename}:{tb[-1].lineno}" if tb else ""
    notes = [str(n) for n in getattr(exc, "__notes__", None) or []]  # what add_note said: cv's fold, ...
    peer = _peer_pruned(exc)
    if peer is not None:  # optuna.TrialPruned kept from a port, or a class of the user's made from it
        owner = f"{peer.__module__.split('.')[0]}'s TrialPruned"
        what = owner if peer is type(exc) else f"{type(exc).__name__} subclasses {owner}, which"
        notes.append(f"{what} fails the trial: raise ts.TrialPruned() (or subclass it) to prune it")
    return f"{type(exc).__name__}: {exc}{where}" + (f" ({'; '.join(notes)})" if notes else "")


def _peer_pruned(exc: BaseException) -> type | None:
    """Another package's ``TrialPruned`` (Optuna's) that ``exc``'s class is or subclasses under any name;
    None for tunesmith's (and its subclasses) and every other exception."""
    if isinstance(exc, TrialPruned):
        return None
    return next((c for c in type(exc).__mro__ if c.__name__ == "TrialPruned"), None)


#: Optuna's names for what a Study, Trial or FrozenTrial spells otherwise, and what to write instead
OPTUNA_NAMES = {
    "enqueue_trial": "write study.enqueue(params)",
    "trials_dataframe": "write study.to_dataframe()",
    "get_trials": "write study.trials or study.trials_in('complete', ...)",
    "set_user_attr": "write trial.set_attr(key, value) (a study keeps dated notes: study.add_note(text))",
    "user_attrs": "write trial.attrs or record.attrs (a study keeps dated notes: study.notes)",
    "intermediate_values": "write .intermediate",
    "datetime_start": "write .started (seconds since the epoch)",
    "datetime_complete": "write .completed (seconds since the epoch)",
    "study_name": "write study.name",
}


#: OptunaSearchCV's fitted attributes that TunedSearchCV spells otherwise, and what to write instead
OPTUNA_SEARCH_NAMES = {
    "trials_": "write search.study_.trials (search.cv_results_ has a row per trial)",
    "best_trial_": "write search.study_.best_trial (search.best_index_ is its row of cv_results_)",
    "n_trials_": "write len(search.cv_results_['params'])",
    "user_attrs_": "write search.study_.notes (a trial's own: search.study_.trials[i].attrs)",
    "sample_indices_": "TunedSearchCV fits every sample of each training fold (it has no subsample=)",
}


def no_attribute(obj: object, name: str, names: Mapping[str, str] = OPTUNA_NAMES,
                 peer: str = "Optuna's name", guide: str = "docs/guide.md, 'Coming from Optuna'") -> Any:
    """What a class's ``__getattr__`` gives for ``obj.<name>``: the AttributeError, saying what to write
    instead where ``name`` is the peer's (one of ``names``, read in ``guide``). A property whose getter raised an
    AttributeError of its own (a custom storage's missing method under ``study.trials``) is run again, so that
    error is the one raised, not a bare "no attribute 'trials'"."""
    hint = names.get(name)
    if hint is None and hasattr(type(obj), name):
        return object.__getattribute__(obj, name)
    raise AttributeError(f"{type(obj).__name__!r} object has no attribute {name!r}"
                          + (f": this is {peer}; {hint} ({guide})" if hint else ""))


def answers_optunas_names(cls: type[T]) -> type[T]:
    """Class decorator: each of :data:`OPTUNA_NAMES` that ``cls`` lacks, read, raises :func:`no_attribute`'s
    error (and is left out of ``dir()``). Not a ``__getattr__``: on a class that has one, CPython reads every
    attribute of every instance the slow way (a record's fields 2-5x the time, and a pruner reads them for each
    trial of the study at each report)."""
    for name in OPTUNA_NAMES:
        if not hasattr(cls, name):
            setattr(cls, name, _OptunasName(name))
    shown = cls.__dir__

    def __dir__(self: object) -> list[str]:
        return [n for n in shown(self) if not isinstance(inspect.getattr_static(self, n, None), _OptunasName)]

    cls.__dir__ = __dir__  # type: ignore[method-assign]
    return cls


class _OptunasName:
    """One of Optuna's names on a class that lacks it. Not a property: an instance (a subclass's field, its
    ``__init__``, a user's ``study.user_attrs = ...``) may still hold the name, as with the ``__getattr__``
    before; and the class itself has no such attribute (``hasattr(Study, "user_attrs")`` is false, a
    dataclass subclass's field of the name gets no default from it)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            raise AttributeError(f"type object {getattr(owner, '__name__', owner)!r} has no attribute {self.name!r}: "
                                 f"this is Optuna's name; {OPTUNA_NAMES[self.name]} (docs/guide.md, 'Coming from Optuna')")
        return no_attribute(obj, self.name)  # raises: the name is one of OPTUNA_NAMES


#: Optuna's and Ray Tune's argument names of pruners and samplers, and tunesmith's for the same setting
PEER_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "n_warmup_steps": ("warmup_steps",),
    "interval_steps": ("interval",),
    "n_min_trials": ("min_trials_at_step",),
    "max_t": ("max_resource",),
    "grace_period": ("min_resource",),
    "n_startup_trials": ("n_startup", "n_init"),  # TPE's, the Bayesian sampler's
    "n_ei_candidates": ("n_candidates",),
}


def guard_keywords(cls: type) -> None:
    """Make ``cls()`` answer a keyword its ``__init__`` does not take with the name to write: tunesmith's for
    Optuna's and Ray Tune's (``n_warmup_steps=`` -> ``warmup_steps=``), else the closest, and the list
    (Python's own error names none). Called from ``__init_subclass__`` of the pruner and sampler bases; an
    ``__init__`` taking ``**options`` checks them itself."""
    init = cls.__dict__.get("__init__")
    if init is None:
        return
    params = inspect.signature(init).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    known = frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)) - {"self"}

    @functools.wraps(init)
    def checked(self: Any, *args: Any, **kwargs: Any) -> None:
        if not known.issuperset(kwargs):
            key = next(k for k in kwargs if k not in known)
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {key!r}"
                            f"{peer_hint(key, known)}; it takes {sorted(known)}")
        init(self, *args, **kwargs)

    cls.__init__ = checked  # type: ignore[misc]


def peer_hint(key: str, known: Iterable[str]) -> str:
    """What to write for keyword ``key`` among ``known``: tunesmith's name for Optuna's or Ray Tune's, else the
    closest (`` (did you mean 'x'?)``), else ``""``."""
    names = sorted(known)
    peer = next((p for p in PEER_ARGUMENTS.get(key, ()) if p in names), None)
    if peer is not None:
        return f": that is Optuna's or Ray Tune's name; write {peer}= (docs/guide.md, 'Coming from Optuna')"
    close = difflib.get_close_matches(key, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
