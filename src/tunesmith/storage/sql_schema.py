"""The SQL schema: tables, and the statements of the ask/tell hot path.

The hot statements are plain SQLAlchemy Core with named bind parameters; each
engine compiles them once for its dialect (see :mod:`.prepared`), so SQLite and
PostgreSQL run the same statements, each in its own SQL.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from ..exceptions import StorageError
from ..nested import MAX_DEPTH, too_deep
from ..trial import Direction, FrozenTrial, SystemState, TrialState
from .base import StudyRecord

T = TypeVar("T")
logger = logging.getLogger("tunesmith")

metadata = sa.MetaData()

meta_table = sa.Table(
    "ts_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

studies_table = sa.Table(
    "ts_studies",
    metadata,
    sa.Column("study_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(512), nullable=False, unique=True),
    sa.Column("direction", sa.String(16), nullable=False),
    sa.Column("space", sa.Text, nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
)

trials_table = sa.Table(
    "ts_trials",
    metadata,
    sa.Column("trial_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "study_id", sa.Integer, sa.ForeignKey("ts_studies.study_id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("intermediate", sa.Text, nullable=False),
    sa.Column("attrs", sa.Text, nullable=False),
    sa.Column("system", sa.Text, nullable=False, server_default="{}"),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("worker", sa.String(256), nullable=True),
    sa.Column("claim", sa.String(2048), nullable=True),
    sa.Column("token", sa.String(32), nullable=False),
    sa.Column("started", sa.Float, nullable=True),
    sa.Column("completed", sa.Float, nullable=True),
    sa.Column("heartbeat", sa.Float, nullable=True),
    sa.UniqueConstraint("study_id", "number", name="ts_trials_number"),
    sa.UniqueConstraint("study_id", "claim", name="ts_trials_claim"),
    sa.UniqueConstraint("token", name="ts_trials_token"),
    # the queue (and the paused, the running trials) in order, without scanning finished ones
    sa.Index("ts_trials_state", "study_id", "state", "number"),
)

_FINISHED = [s.value for s in TrialState if s.is_finished]

# -- the ask/tell hot path: Core statements compiled once per engine (see prepared.py) --
_b = sa.bindparam
_tc = trials_table.c
_TRIAL_COLS = (
    _tc.trial_id, _tc.number, _tc.state, _tc.params, _tc.value, _tc.intermediate,
    _tc.attrs, _tc.error, _tc.worker, _tc.started, _tc.completed, _tc.heartbeat, _tc.system,
)
#: _TRIAL_COLS without what a list of studies does not show (parameters, reports, attrs, texts); the heartbeat
#: is kept: ``show`` tells a running trial whose beats stopped from a live one by it
_HEAD_COLS = (
    _tc.trial_id, _tc.number, _tc.state, sa.null(), _tc.value, sa.null(),
    sa.null(), sa.null(), sa.null(), _tc.started, _tc.completed, _tc.heartbeat, sa.null(),
)
_RECORD_KEYS = (
    "state", "params", "value", "intermediate", "attrs", "system", "error", "worker", "started", "completed",
    "heartbeat",
)


#: the lengths of the ``number IN (...)`` lists a refresh reads with (:func:`since_args`); the widest
#: stays under SQLite's oldest limit of 999 bound values a statement
SINCE_WIDTHS = (8, 64, 512)


def _hot_statements() -> dict[str, Any]:
    record: dict[str, Any] = {k: _b(k) for k in _RECORD_KEYS}
    of_study = _tc.study_id == _b("sid")
    at = (_tc.study_id == _b("w_sid"), _tc.number == _b("w_number"))
    insert = sa.insert(trials_table).values(
        study_id=_b("sid"), number=_b("number"), claim=_b("claim"), token=_b("token"), **record
    )
    out: dict[str, Any] = {
        "lock_study": sa.select(studies_table.c.study_id)
        .where(studies_table.c.study_id == _b("sid"))
        .with_for_update(),
        "by_token": sa.select(*_TRIAL_COLS).where(_tc.token == _b("token")),
        "claimed": sa.select(_tc.number).where(of_study, _tc.claim == _b("claim")).limit(1),
        "count_trials": sa.select(sa.func.count()).select_from(trials_table).where(of_study),
        "next_number": sa.select(sa.func.coalesce(sa.func.max(_tc.number) + 1, 0)).where(of_study),
        "insert": insert,
        "insert_returning": insert.returning(_tc.trial_id),
        "update_unfinished": sa.update(trials_table)
        .where(*at, *(_tc.state != s for s in _FINISHED))
        .values(**record),
        "update_if_state": sa.update(trials_table).where(*at, _tc.state == _b("w_state")).values(**record),
        # and the heartbeat the record was read with (a beat since: its worker is alive)
        "update_if_beat": sa.update(trials_table)
        .where(*at, _tc.state == _b("w_state"), _tc.heartbeat.is_not_distinct_from(_b("heartbeat")))
        .values(**record),
        "get_stored": sa.select(*(_tc[k] for k in _RECORD_KEYS)).where(of_study, _tc.number == _b("number")),
        "trials_in_state": sa.select(*_TRIAL_COLS)
        .where(of_study, _tc.state == _b("state"), _tc.number >= _b("min_number"))
        .order_by(_tc.number),
        "one_trial": sa.select(*_TRIAL_COLS).where(of_study, _tc.number == _b("number")),
        # a record judged before a write in the same transaction: no other writer changes it in between
        # (PostgreSQL's READ COMMITTED; SQLite's BEGIN IMMEDIATE already holds every writer off)
        "one_trial_locked": sa.select(*_TRIAL_COLS).where(of_study, _tc.number == _b("number")).with_for_update(),
        "trials_from": sa.select(*_TRIAL_COLS)
        .where(of_study, _tc.number >= _b("min_number"))
        .order_by(_tc.number),
        "trial_heads": sa.select(*_HEAD_COLS).where(of_study).order_by(_tc.number),
        "paused_systems": sa.select(_tc.number, _tc.system).where(of_study, _tc.state == "paused").order_by(_tc.number),
    }
    out["trials_except"] = (
        sa.select(*_TRIAL_COLS)
        .where(of_study, _tc.number >= _b("min_number"), _tc.state != _b("exclude"))
        .order_by(_tc.number)
    )
    for name in ("trials_from", "trials_in_state", "trials_except"):  # the first ``limit`` rows (the head of the queue)
        out[f"{name}_head"] = out[name].limit(_b("limit"))
    # PostgreSQL: the numbers as one integer array (the column's type: a bigint[] is no index
    # condition), any count in one statement; psycopg parses a statement of more than 50 bind
    # values again at each run (12 ms a run for 512 of them)
    lists: dict[str, Any] = {f"since_{width}": _tc.number.in_([_b(f"n{i}") for i in range(width)]) for width in SINCE_WIDTHS}
    lists["since_any"] = _tc.number == sa.any_(sa.bindparam("numbers", type_=sa.ARRAY(sa.Integer)))
    for name, listed in lists.items():  # a refresh: the trials from a number on, and some before it
        out[name] = _since(of_study, listed)
        out[f"{name}_except"] = _since(of_study, listed, _tc.state != _b("exclude"))
    return out


def _since(of_study: Any, listed: Any, *where: Any) -> Any:
    """The trials whose number is ``listed`` and those from ``min_number`` on, by number: a UNION
    of two index searches (one ``WHERE ... OR ...`` made SQLite visit every row of the study)."""
    listed = sa.select(*_TRIAL_COLS).where(of_study, listed, *where)
    after = sa.select(*_TRIAL_COLS).where(of_study, _tc.number >= _b("min_number"), *where)
    return sa.union_all(listed, after).order_by("number")


def since_args(numbers: Sequence[int], min_number: int | None) -> tuple[str, dict[str, Any]]:
    """The ``since_<width>`` statement that reads ``numbers`` (at most the widest) and the trials
    from ``min_number`` on (none with None: ``number >= NULL`` holds for no row), and its bind
    values: the list padded to the width by repeating its last number, so each width compiles
    once whatever the count."""
    width = next(w for w in SINCE_WIDTHS if w >= len(numbers))
    padded = [*numbers, *[numbers[-1]] * (width - len(numbers))]
    return f"since_{width}", {"min_number": min_number, **{f"n{i}": n for i, n in enumerate(padded)}}


_HOT = _hot_statements()


def tuple_to_trial(r: Sequence[Any], warned: set[str] | None = None, *, head: bool = False) -> FrozenTrial:
    """A trial from a row of ``_TRIAL_COLS`` (a plain DBAPI tuple).

    Whoever can write the database can put anything in a row. A row that does not
    hold what tunesmith writes (JSON that does not parse or nests too deep, a field
    of the wrong type, an unknown state, a complete trial without a finite value)
    is read as a failed trial whose error names the row, the column and what is
    wrong, so the study's other trials stay readable; nothing is written back.
    ``head``: a row of ``_HEAD_COLS``, its number, state, value and times (heartbeat included) only.
    """
    try:
        return _decode(r, head)
    except _BadColumn as bad:
        if not _numbered(r):
            raise StorageError(f"unreadable row trial_id={r[0]!r} of table ts_trials: column number {bad.why}; "
                               "it was changed outside tunesmith: restore it from a backup or delete the row") from None
        message = (
            f"unreadable record: column {bad.column} of trial {r[1]} (table ts_trials, trial_id={r[0]}) "
            f"{bad.why}; it was changed outside tunesmith: restore it from a backup or delete the row"
        )
        _warn_once(message, warned)
        return FrozenTrial(number=r[1], state=TrialState.FAILED, params={}, error=message, trial_id=r[0])


def study_record(r: Any) -> StudyRecord:
    """A study's record from its row of ``ts_studies``; ValueError saying which column
    does not hold what tunesmith writes."""
    try:
        return StudyRecord(
            int(r.study_id), _text("name", r.name) or "", _direction(r.direction), _json_object("space", r.space),
            _json_object("config", r.config), _number("created", r.created, finite=True) or 0.0,
        )
    except _BadColumn as bad:
        raise ValueError(f"column {bad.column} {bad.why}") from None


def _direction(v: Any) -> Direction:
    if v not in _DIRECTIONS:
        raise _BadColumn("direction", f"holds {_short(v)}, not one of {sorted(_DIRECTIONS)}")
    return Direction(v)


def rows_to_trials(rows: Sequence[Sequence[Any]], warned: set[str] | None = None, *,
                   head: bool = False) -> list[FrozenTrial]:
    """:func:`tuple_to_trial` of each row; a row without an integer number (it has no
    place in the study) is left out, with a warning that names it."""
    out = []
    for r in rows:
        if _numbered(r):
            out.append(tuple_to_trial(r, warned, head=head))
        else:
            _warn_once(f"unreadable row trial_id={r[0]!r} of table ts_trials left out: column number holds "
                       f"{_short(r[1])}, not an integer; it was changed outside tunesmith", warned)
    return out


class DecodedRows:
    """The unfinished trials a storage's refreshes read, each with the row it was decoded from.

    A study's refresh reads its unfinished trials again each time; a paused or queued trial's row
    stays the same until another worker changes it, so a row equal to the one last read for its
    trial_id (floats' signs included) gives back the trial decoded then instead of parsing its
    JSON again. A trial read finished is dropped (a reader keeps it itself); past ``limit``
    entries (trials left unfinished by readers gone) all are."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._by_id: dict[Any, tuple[Sequence[Any], FrozenTrial]] = {}

    def trials(self, rows: Sequence[Sequence[Any]], warned: set[str] | None = None) -> list[FrozenTrial]:
        """:func:`rows_to_trials` of ``rows``."""
        if len(self._by_id) > self.limit:
            self._by_id.clear()
        out: list[FrozenTrial] = []
        for r in rows:
            hit = self._by_id.get(r[0])
            if hit is not None and _same_row(hit[0], r):
                out.append(hit[1])
                continue
            got = rows_to_trials([r], warned)
            out += got
            if got and not got[0].state.is_finished:
                self._by_id[r[0]] = (r, got[0])
            else:
                self._by_id.pop(r[0], None)
        return out


#: the positions of value, started, completed and heartbeat in a row of ``_TRIAL_COLS``
_FLOAT_COLUMNS = (4, 9, 10, 11)


def _same_row(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Equal rows, 0.0 and -0.0 told apart (they decode to different values)."""
    if a != b:
        return False
    for i in _FLOAT_COLUMNS:
        x = a[i]
        if x == 0.0 and isinstance(x, float) and math.copysign(1.0, x) != math.copysign(1.0, b[i]):
            return False
    return True


def _warn_once(message: str, warned: set[str] | None) -> None:
    """Log ``message`` unless it is in ``warned`` (a storage's messages so far): a bad row
    comes back with every read (a text number sorts after every integer, so each
    incremental read returns it again), its warning once."""
    if warned is None or message not in warned:
        if warned is not None:
            warned.add(message)
        logger.warning("%s", message)


def _numbered(r: Sequence[Any]) -> bool:
    return isinstance(r[1], int) and not isinstance(r[1], bool)


class _BadColumn(Exception):
    def __init__(self, column: str, why: str) -> None:
        super().__init__(column, why)
        self.column, self.why = column, why


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text):,} characters)"


def _column(column: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except _BadColumn:
        raise
    except RecursionError:
        raise _BadColumn(column, "nests too deep") from None
    except (ValueError, TypeError, OverflowError, AttributeError) as exc:
        raise _BadColumn(column, f"is not what tunesmith writes ({_short(str(exc))[1:-1]})") from None


def _json_object(column: str, text: Any) -> dict[str, Any]:
    if not isinstance(text, str):
        raise _BadColumn(column, f"holds {type(text).__name__} {_short(text)}, not JSON text")
    value = _column(column, lambda: json.loads(text))
    if not isinstance(value, dict):
        raise _BadColumn(column, f"holds JSON {type(value).__name__}, not an object")
    if text.count("[") + text.count("{") > MAX_DEPTH and too_deep(value):  # the count: walk only where it may be
        raise _BadColumn(column, f"nests more than {MAX_DEPTH} levels deep")
    if "\\ud" in text or "\\uD" in text:  # maybe half a surrogate pair ("\ud800"): no file or terminal takes it
        value = _whole_characters(value)
    return value


def _whole_characters(x: Any) -> Any:
    """``x`` with each lone surrogate in its texts as U+FFFD (before: ``show``, ``export`` and the
    report ended in "surrogates not allowed", and the dashboard's study page in a 400)."""
    if isinstance(x, str):
        return x.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(x, dict):
        return {_whole_characters(k): _whole_characters(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_whole_characters(v) for v in x]
    return x


def _number(column: str, v: Any, *, finite: bool = False) -> float | None:
    if v is None:
        return None
    if type(v) is float:  # most columns read: float() would give it back (several per trial read)
        out = v
    elif isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _BadColumn(column, f"holds {type(v).__name__} {_short(v)}, not a number")
    else:
        out = _column(column, lambda: float(v))
    if finite and not math.isfinite(out):
        raise _BadColumn(column, f"holds {out!r}, not a finite number")
    return out


def _text(column: str, v: Any) -> str | None:
    if v is not None and not isinstance(v, str):
        raise _BadColumn(column, f"holds {type(v).__name__} {_short(v)}, not text")
    return v


def _step(key: str) -> int:
    """A stored report's step, as tunesmith writes it: ASCII digits without a leading zero. int() also
    took " 1", "+1", "-5", "1_0" and other scripts' digits, steps no report() writes."""
    if not (key.isascii() and key.isdigit() and (key == "0" or key[0] != "0")):
        raise _BadColumn("intermediate", f"holds the step {_short(key)}, not an integer >= 0 as tunesmith writes it")
    return int(key)


def _head_state(r: Sequence[Any]) -> tuple[TrialState, float | None]:
    """The state and value of a row's head (number, state, value), checked as the head read checks them."""
    if not _numbered(r):
        raise _BadColumn("number", f"holds {type(r[1]).__name__} {_short(r[1])}, not an integer")
    if not isinstance(r[2], str) or r[2] not in _STATES:
        raise _BadColumn("state", f"holds {_short(r[2])}, not one of {sorted(_STATES)}")
    state = TrialState(r[2])
    value = _number("value", r[4], finite=True)
    if value is None and state is TrialState.COMPLETE:
        raise _BadColumn("value", "is empty (or not finite) for a complete trial")
    return state, value


def _decode(r: Sequence[Any], head: bool = False) -> FrozenTrial:
    state, value = _head_state(r)
    if head:
        return FrozenTrial(number=r[1], state=state, params={}, value=value, started=_number("started", r[9]),
                           completed=_number("completed", r[10]), heartbeat=_number("heartbeat", r[11]),
                           trial_id=r[0])
    params = _json_object("params", r[3])
    raw = _json_object("intermediate", r[5])
    intermediate = _column("intermediate", lambda: {_step(k): float(v) for k, v in raw.items()})
    if intermediate and not max(intermediate) < 2**63:
        raise _BadColumn("intermediate", "holds a step out of the 64-bit range")
    attrs = _json_object("attrs", r[6])
    system_data = _json_object("system", r[12])
    system = _column("system", lambda: SystemState.from_dict(system_data))
    return FrozenTrial(
        number=r[1],
        state=state,
        params=params,
        value=value,
        intermediate=intermediate,
        attrs=attrs,
        error=_text("error", r[7]),
        worker=_text("worker", r[8]),
        started=_number("started", r[9]),
        completed=_number("completed", r[10]),
        heartbeat=_number("heartbeat", r[11]),
        trial_id=r[0],
        system=system,
    )


_STATES = frozenset(s.value for s in TrialState)


def held_number(number: Any, raw: Any) -> int | None:
    """A row of the paused trials' numbers and ``system`` column: the number where the trial is held to resume
    first (``system.held``), else None (not held, or a column changed outside tunesmith: the whole read, which
    reads it as a failed trial, says so)."""
    try:
        data = _json_object("system", raw)
        held = _column("system", lambda: SystemState.from_dict(data)).held
    except _BadColumn:
        return None
    return number if held is not None and isinstance(number, int) else None


def last_step_row(trial_id: Any, number: Any, state: Any, value: Any, started: Any, completed: Any,
                  last: Any, raw: Any) -> tuple[TrialState, int] | None:
    """A row of :meth:`SQLStorage.get_last_steps`'s query as the whole read gives it: the trial's state and its
    last report's step, or None for a trial without reports, or one the head read (number, state, value, times:
    what ``show`` counts) or the reports' read fails as unreadable (its reports are then not read). ``raw``: the
    ``intermediate`` text, where the query could not take its steps (JSON the database does not parse, as
    ``NaN``; a key or a value not as tunesmith writes them)."""
    try:  # the head read's checks, without the record it builds (a tenth of a second on 5,000 trials)
        _head_state((trial_id, number, state, None, value))
        _number("started", started)
        _number("completed", completed)
    except _BadColumn:
        return None
    if raw is not None:
        try:
            reports = _json_object("intermediate", raw)
            steps = _column("intermediate", lambda: [_step(k) for k, v in reports.items() if float(v) is not None])
        except _BadColumn:
            return None
        last = max(steps, default=None)
        if last is not None and not last < 2**63:
            return None
    return None if last is None else (TrialState(state), int(last))
_DIRECTIONS = frozenset(d.value for d in Direction)
