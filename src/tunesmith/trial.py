"""Trial records: frozen values that samplers, pruners and storages exchange."""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
import operator
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .exceptions import answers_optunas_names
from .nested import MAX_DEPTH, too_deep


class TrialState(str, enum.Enum):
    """Where a trial is in its life.

    ``waiting`` trials are queued (enqueued or re-queued) and not yet started;
    ``paused`` ones were stopped by a pruner that may promote them later.
    """

    WAITING = "waiting"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"

    @property
    def is_finished(self) -> bool:
        return self in _FINISHED

    def __str__(self) -> str:
        return self.value


_FINISHED = frozenset({TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED})


class Direction(str, enum.Enum):
    """Which way a study optimizes its objective's value."""

    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"

    @classmethod
    def parse(cls, value: str | Direction) -> Direction:
        try:
            return cls(str(value).lower())
        except ValueError:
            several = isinstance(value, (list, tuple))
            short = {"min": "minimize", "max": "maximize"}.get(str(value).lower()[:3]) if isinstance(value, str) else None
            raise ValueError(
                f"direction must be 'minimize' or 'maximize', got {value!r}"
                + ("; tunesmith optimizes one objective: combine yours into one value (a weighted sum), "
                   "or report the others with trial.set_attr" if several else "")
                + (f"; did you mean {short!r}?" if short else "")
            ) from None

    def sign(self) -> float:
        """Multiplier that turns a value into a loss (smaller is better)."""
        return 1.0 if self is Direction.MINIMIZE else -1.0

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass(frozen=True)
class SystemState:
    """The study's own record of a trial's life, kept apart from the user's ``attrs``.

    Only the study's lifecycle (:mod:`tunesmith.study.lifecycle`) writes it; an
    objective, ``set_attr``, ``enqueue`` or ``add_trial`` cannot.

    Attributes:
        resumed_step: set while a paused trial runs again: the last step it had
            reported when it was paused (-1: none). ``None``: never resumed.
        n_resumes: how often the trial was resumed after a pause.
        held: why a resumed trial went back to paused keeping its promotion
            (its worker was lost); it is resumed before any other. ``None``: not held.
        held_at_step: the last step reported when it was last held.
        n_holds: how often it was held (at most a few times, then it fails).
        retry_of: the trial this one re-runs (a lost worker's trial, or one
            that ran out of GPU memory), with the same parameters.
        requeued_as: the copy that re-runs this failed trial.
        oom_retries: how many of this configuration's runs ran out of GPU memory.
        unit: on a lost new trial's copy, who counts the run the copy makes
            good, decided once by a compare-and-set on the waiting copy:
            ``"open"`` (not yet), ``"refunded"`` (the lost run's call gave its
            unit of ``n_trials`` back: the copy is one of the ``n_trials`` of the
            call that runs it) or ``"free"`` (a call ran the copy taking no unit:
            the lost run stays counted where it ran). ``None``: any other trial, or
            a copy an older tunesmith made (it counts where it runs).
        checkpoint_step: the step the checkpoint in ``attrs["checkpoint"]`` holds,
            as recorded with it (``report(step, checkpoint=...)``, ``set_attr``).
            ``None``: no checkpoint, or one an older tunesmith recorded.
    """

    resumed_step: int | None = None
    n_resumes: int = 0
    held: str | None = None
    held_at_step: int | None = None
    n_holds: int = 0
    retry_of: int | None = None
    requeued_as: int | None = None
    oom_retries: int = 0
    unit: str | None = None
    checkpoint_step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields that differ from their defaults (what storages write)."""
        return {f.name: getattr(self, f.name) for f in _SYSTEM_FIELDS if getattr(self, f.name) != f.default}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SystemState:
        """Read back :meth:`to_dict`; a key or a type this version does not know is refused."""
        if not data:
            return NO_SYSTEM
        known = {f.name: f for f in _SYSTEM_FIELDS}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"trial system state has unknown keys {unknown}: written by a newer tunesmith?")
        for key, value in data.items():
            want = str if key in _TEXT_FIELDS else int
            if value is not None and (isinstance(value, bool) or not isinstance(value, want)):
                raise ValueError(f"trial system state {key!r} must be {want.__name__} or null, got {value!r}")
        if data.get("unit") not in _UNITS:
            raise ValueError(f"trial system state 'unit' must be one of {sorted(map(str, _UNITS - {None}))} or null, "
                             f"got {data['unit']!r}")
        return cls(**data)

    @property
    def free(self) -> bool:
        """Whether this run of a lost trial's copy took no unit of ``n_trials`` (see ``unit``)."""
        return self.unit == UNIT_FREE

    @property
    def took_unit(self) -> bool:
        """Whether this run took a unit of ``n_trials``: a new or waiting trial's run (not a resume's, nor a
        free copy's)."""
        return not self.n_resumes and self.unit != UNIT_FREE

    @property
    def unit_back(self) -> bool:
        """Whether a lost run of this failed trial may give its unit of ``n_trials`` back: it was re-queued (its
        copy takes a unit) and that run took one. Its copy decides whether it does (``unit``)."""
        return self.requeued_as is not None and self.took_unit

    def copy_of(self, number: int) -> SystemState:
        """The bookkeeping of a lost trial ``number``'s waiting copy, this being the lost trial's: undecided
        (``unit="open"``) where the lost run took a unit, else one that counts where it runs."""
        return SystemState(retry_of=number, unit=UNIT_OPEN if self.took_unit else None)

    def replace(self, **changes: Any) -> SystemState:
        return dataclasses.replace(self, **changes)


_SYSTEM_FIELDS = dataclasses.fields(SystemState)
_TEXT_FIELDS = frozenset({"held", "unit"})
#: a lost new trial's copy: who counts the lost run it makes good is not decided yet (:attr:`SystemState.unit`)
UNIT_OPEN = "open"
#: the lost run's call gave its unit back: the copy counts in the call that runs it
UNIT_REFUNDED = "refunded"
#: a call runs the copy taking no unit: the lost run stays counted
UNIT_FREE = "free"
_UNITS = frozenset({None, UNIT_OPEN, UNIT_REFUNDED, UNIT_FREE})
#: the bookkeeping of a trial the study never resumed, held or re-queued (shared, immutable)
NO_SYSTEM = SystemState()


@answers_optunas_names
@dataclasses.dataclass(frozen=True)
class FrozenTrial:
    """One trial as recorded.

    Attributes:
        number: position of the trial in its study, 0, 1, 2, ... with no gaps.
        state: a :class:`TrialState`.
        params: the configuration; inactive conditional parameters are absent.
        value: the objective's value (``None`` until complete; for a pruned
            trial its last reported value).
        intermediate: reported values by step (epoch), for pruning and plots.
        attrs: the user's free-form attributes (checkpoint path, notes, ...).
        system: the study's bookkeeping (resumes, holds, re-queues, retries):
            a :class:`SystemState`, never part of ``attrs``.
        error: why the trial failed, if it did.
        worker: the worker that ran it (``host:pid``).
        started, completed, heartbeat: wall-clock times (seconds since epoch).
        trial_id: the storage's own key.
    """

    number: int
    state: TrialState
    params: Mapping[str, Any]
    value: float | None = None
    intermediate: Mapping[int, float] = dataclasses.field(default_factory=dict)
    attrs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None
    worker: str | None = None
    started: float | None = None
    completed: float | None = None
    heartbeat: float | None = None
    trial_id: int = -1
    system: SystemState = NO_SYSTEM

    def __post_init__(self) -> None:
        if type(self.state) is not TrialState:  # a str from a caller ("complete"); TrialState(...) is an enum lookup
            object.__setattr__(self, "state", TrialState(self.state))
        if self.value is not None and not isinstance(self.value, float):
            object.__setattr__(self, "value", float(self.value))
        if self.state is TrialState.COMPLETE and (
            self.value is None or not math.isfinite(self.value)
        ):
            raise ValueError(f"trial {self.number}: a complete trial needs a finite value")

    @property
    def duration(self) -> float | None:
        if self.started is None or self.completed is None:
            return None
        return self.completed - self.started

    @property
    def last_step(self) -> int | None:
        return max(self.intermediate) if self.intermediate else None

    @property
    def is_resumed(self) -> bool:
        """Whether the trial runs again after a pause (promoted by its pruner)."""
        return self.system.resumed_step is not None

    def __getitem__(self, name: str) -> Any:
        """``trial["x"]``, as a running Trial reads it (one function serves the objective and
        ``evaluate_best``)."""
        return self.params[name]

    def replace(self, **changes: Any) -> FrozenTrial:
        """A copy with some fields changed (records themselves never change), checked as a new
        record is (``__post_init__``).

        What ``dataclasses.replace`` does, without its walk over every field's metadata and its
        keyword call of ``__init__`` (3-4x the time; a trial's record is replaced at each start,
        report and end). A subclass goes through ``dataclasses.replace``."""
        if type(self) is not FrozenTrial:
            return dataclasses.replace(self, **changes)
        unknown = changes.keys() - _TRIAL_FIELDS
        if unknown:
            raise TypeError(f"FrozenTrial.replace() got an unexpected keyword argument {min(unknown)!r} "
                            f"(the fields: {', '.join(_TRIAL_FIELDS_IN_ORDER)})")
        new = object.__new__(FrozenTrial)
        put = object.__setattr__  # field by field: a __dict__ filled by update() makes every later read of the
        for name in _TRIAL_FIELDS_IN_ORDER:  # record's fields slower (1.4x: the pruners read every record)
            put(new, name, changes[name] if name in changes else getattr(self, name))
        new.__post_init__()
        return new


_TRIAL_FIELDS_IN_ORDER = tuple(f.name for f in dataclasses.fields(FrozenTrial))
_TRIAL_FIELDS = frozenset(_TRIAL_FIELDS_IN_ORDER)


def best_of(trials: Iterable[FrozenTrial], direction: Direction | str) -> FrozenTrial | None:
    """The complete trial with the best value by ``direction``, or None if none is complete: the
    one rule every part of tunesmith uses to name the best trial. Among trials tied on the value,
    :func:`tie_key` decides: the better reports, read from the last backwards, then the earliest."""
    tied = tied_best(trials, direction)
    sign = Direction.parse(direction).sign()
    return min(tied, key=lambda t: tie_key(t, sign)) if len(tied) > 1 else next(iter(tied), None)


def tied_best(trials: Iterable[FrozenTrial], direction: Direction | str) -> list[FrozenTrial]:
    """The complete trials whose value is the best by ``direction`` (more than one: a tie, which
    their reports decide, so a reader of trials without their reports reads these whole)."""
    sign = Direction.parse(direction).sign()
    done = [t for t in trials if t.state is TrialState.COMPLETE and t.value is not None]
    low = min((sign * float(t.value) for t in done), default=None)  # type: ignore[arg-type]
    return [t for t in done if sign * float(t.value) == low]  # type: ignore[arg-type]


def ranked(trials: Iterable[FrozenTrial], direction: Direction | str, top: int | None = None) -> list[FrozenTrial]:
    """The complete trials, best first, as :func:`best_of` ranks them (ties: :func:`tie_key`); ``top``: the
    best ``top`` of them only (the ties of the values past them are not ranked: a table of the best 10 of
    5,000 trials tied in groups of ~100 ranked them all)."""
    if top is not None and top < 0:  # done[:-1] without a tie, nothing with one
        raise ValueError(f"top must be an integer >= 0 (how many of the best trials), got {top!r}")
    sign = Direction.parse(direction).sign()
    done = by_value(trials, sign)
    if len(set(map(_VALUE, done))) == len(done):  # no two equal: no tie to rank (as groupby, == decides)
        return done if top is None else done[:top]
    out: list[FrozenTrial] = []
    for _, group in itertools.groupby(done, key=_VALUE):
        if top is not None and len(out) >= top:
            return out[:top]
        tied = list(group)
        out += tied if len(tied) == 1 else sorted(tied, key=lambda t: tie_key(t, sign))
    return out if top is None else out[:top]


def by_value(trials: Iterable[FrozenTrial], sign: float) -> list[FrozenTrial]:
    """The complete trials by value in the direction of ``sign`` (``Direction.sign()``), then by number:
    :func:`ranked`'s order before its ties are ranked (each run of equal values ranks by :func:`tie_key`)."""
    done = [t for t in trials if t.state is TrialState.COMPLETE and t.value is not None]
    done.sort(key=lambda t: (sign * float(t.value), t.number))  # type: ignore[arg-type]
    return done


_VALUE = operator.attrgetter("value")


def tie_key(t: FrozenTrial, sign: float) -> tuple[bool, tuple[float, ...], int]:
    """How trials tied on the value rank, best first: by their reports (``intermediate``, in the
    study's direction: ``sign`` is ``Direction.sign()``) read from the last one backwards, the
    better at the first place they differ (equal so far, the one whose reports run out first);
    trials that reported nothing after those that did; then by number. So one noisy last value
    does not decide among equals: the trial that was also better before it does. Trials with
    different values never reach this key, and a study whose trials report nothing ranks its ties
    by number, the earliest first. A report that is no number (NaN: ``report`` takes none, a row
    written by hand may hold one) ranks as the worst: NaN compares unequal to everything, so it
    made the order depend on the trials' order and ``best_of`` disagree with ``ranked``."""
    # sign * float(report), latest first, through C-level maps (a generator's call a report was most of the
    # dashboard's sort of 5,000 trials tied in groups of ~100); a NaN found after, in one pass
    reports = tuple(map(sign.__mul__, map(float, map(t.intermediate.__getitem__, sorted(t.intermediate, reverse=True)))))
    if any(map(math.isnan, reports)):
        reports = tuple(map(_worst_if_nan, reports))
    return not reports, reports, t.number


def _worst_if_nan(x: float) -> float:
    return math.inf if math.isnan(x) else x


def as_count(text: Any, digits: int = 18) -> int | None:
    """``text`` of at most ``digits`` ASCII digits as its number, else None: a name read from storage or
    a shared folder, where ``"²"`` passes ``str.isdigit`` but not ``int()`` and 4,301 digits raise in it."""
    ok = isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= digits
    return int(text) if ok else None


def finite_float(v: Any) -> float | None:
    """``v`` as a float if it is a finite number (NumPy's scalars too), else None (text, a bool, NaN, an
    infinity, or an int beyond a float's range: JSON keeps ``10**400`` whole, and ``float()`` of it raises
    OverflowError)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        return None
    try:
        out = float(v)
    except OverflowError:
        return None
    return out if math.isfinite(out) else None


def mean_and_spread(values: Iterable[float]) -> tuple[float, float]:
    """The mean and standard deviation (``ddof=0``) of ``values``, computed on values scaled by the
    power of two of the largest finite magnitude, so that finite scores near the float limit (1e308
    and 1.5e308) give a finite mean where their sum overflowed to inf; scaling by a power of two is
    exact, so any other mean is ``np.mean``'s to the last digit. Equal finite values give themselves and
    exactly 0 (``np.std`` of three equal values was 5.6e-17); NaN and infinities give what NumPy gives."""
    arr = np.asarray(list(values), dtype=float)
    finite = np.abs(arr[np.isfinite(arr)])
    if len(finite) == len(arr) and len(arr) and np.all(arr == arr[0]):
        return float(arr[0]), 0.0
    exp = math.frexp(float(finite.max()))[1] if len(finite) else 0
    with np.errstate(invalid="ignore"):  # inf and -inf: NaN
        scaled = np.ldexp(arr, -exp)
        return float(np.ldexp(np.mean(scaled), exp)), float(np.ldexp(np.std(scaled), exp))


def json_finite(x: Any) -> Any:
    """``x`` (dicts, lists and plain values) with NaN and infinities as null: JSON has neither, and
    Python's ``json`` writes a ``NaN`` that strict readers (jq, a browser's JSON.parse) refuse."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {str(k): json_finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_finite(v) for v in x]
    return x


def json_attrs(attrs: Mapping[Any, Any] | None, where: str) -> dict[str, Any]:
    """The user's attributes as the JSON every storage keeps, so a record reads the same before
    and after a reload: NumPy values and tensors as numbers and lists, tuples and sets as lists,
    paths as text, integer keys as text; names must be strings, and any other value is refused with ``where`` named."""
    if attrs is not None and not isinstance(attrs, Mapping):  # a list was an AttributeError traceback
        raise TypeError(f"{where}: attrs must be a dict {{name: value}}, got {type(attrs).__name__}")
    try:
        out: dict[str, Any] | None = _json_dict(attrs, where)
    except RecursionError:  # lists in lists hundreds deep (an export file's): a RecursionError traceback
        out = None
    if out is None or too_deep(out):
        raise ValueError(f"{where}: attrs nest more than {MAX_DEPTH} levels deep; store flatter values")
    return out


#: an int of more bits may have more digits than Python writes as text (4,300 unless changed)
_LONG_INT_BITS = 10_000


def _check_digits(v: int, where: str) -> None:
    """Refuse an int whose JSON text Python will not write (or read back): the storage's write
    ended in json's "Exceeds the limit (4300 digits)", an export of a study in memory likewise."""
    try:
        str(v)
    except ValueError:
        raise ValueError(f"{where} is an integer of more than {sys.get_int_max_str_digits()} digits, which is "
                         "not stored as JSON; store it as text (str(value)) or as a float") from None


def _json_dict(attrs: Mapping[Any, Any] | None, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (attrs or {}).items():
        if not isinstance(key, str):
            raise TypeError(f"{where}: attribute names and their dicts' keys are strings, got {key!r}")
        out[key] = _json_value(value, f"{where}: attribute {key!r}")
    return out


def _json_value(v: Any, where: str) -> Any:
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > _LONG_INT_BITS:
        _check_digits(v, where)
    if v is None or isinstance(v, (str, bool, int, float)):
        return v
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if callable(getattr(v, "tolist", None)):  # NumPy scalars and arrays, tensors
        return _json_value(v.tolist(), where)
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_json_value(x, where) for x in v]
    if isinstance(v, Mapping):  # integer keys become text, as JSON writes them
        return _json_dict({str(k) if isinstance(k, int) and not isinstance(k, bool) else k: x for k, x in v.items()},
                          where)
    raise ValueError(
        f"{where} is of type {type(v).__name__}, which is not stored as JSON; store numbers, text, lists "
        f"or dicts of them (str(value), or the fields you need)"
    )


_BOOL_DTYPES = frozenset({"bool", "torch.bool"})


def _as_float_or_nan(value: Any) -> float | None:
    """``float(value)`` for real numbers, NaN and infinities included; None for other types
    (booleans too, NumPy's and torch's as Python's: ``acc > 0.9`` is no score)."""
    if isinstance(value, (bool, str, bytes)) or value is None or str(getattr(value, "dtype", "")) in _BOOL_DTYPES:
        return None
    if type(value).__module__.partition(".")[0] == "torch" and hasattr(value, "detach"):  # a tensor, a Parameter:
        value = value.detach()  # float() of one with a graph warns
    if getattr(value, "ndim", 0):  # tensor([0.5]) as NumPy's array([0.5]): a 0-d one, or .item(), is the number
        return None
    try:
        return float(value)
    except OverflowError:  # an integer (or fraction) beyond a float's range, e.g. 10**400
        return math.inf if value > 0 else -math.inf
    except (TypeError, ValueError):
        return None


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to about ``limit`` characters, saying how long it was
    (an error message must stay readable when an objective returns 10**400)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}...{text[-10:]} ({len(text)} characters)"


#: Unicode's line and paragraph separators (a terminal shows them as a space, or nothing) and the
#: direction marks and overrides, which reorder what follows them on the line
UNSEEN = "\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"

#: C0 and C1 control characters (ESC starts a terminal's escape sequences, so does CSI, U+009B), and UNSEEN
CONTROL = re.compile(rf"[\x00-\x1f\x7f-\x9f{UNSEEN}]")

#: CONTROL but tabs and line ends: what text of several lines (a page, a CSV) shows nothing for
CONTROL_BUT_LINES = re.compile(rf"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{UNSEEN}]")


def as_escape(m: re.Match[str]) -> str:
    """The matched character as Python writes it in a string (``\\x1b``, ``\\u202e``)."""
    return repr(m.group())[1:-1]


def one_line(text: str, limit: int | None = 300) -> str:
    """``text`` read from storage as part of one line (of a log, a terminal): each control character
    (a line break too) written as its escape, so that a value another writer stored cannot drive the
    terminal of whoever reads it (a clipboard write, a cleared screen) nor add a line of its own; cut
    past ``limit`` characters (``None``: never)."""
    text = CONTROL.sub(as_escape, text)
    return text if limit is None or len(text) <= limit else f"{text[: limit - 40]}... ({len(text):,} characters)"
