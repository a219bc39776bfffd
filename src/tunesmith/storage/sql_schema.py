"""The SQL schema: tables, and the statements of the ask/tell hot path.

The hot statements are plain SQLAlchemy Core with named bind parameters; each
engine compiles them once for its dialect (see :mod:`.prepared`), so SQLite and
PostgreSQL run the same statements, each in its own SQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ..trial import FrozenTrial, SystemState, TrialState

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
_RECORD_KEYS = (
    "state", "params", "value", "intermediate", "attrs", "system", "error", "worker", "started", "completed",
    "heartbeat",
)


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
        "next_number": sa.select(sa.func.coalesce(sa.func.max(_tc.number) + 1, 0)).where(of_study),
        "insert": insert,
        "insert_returning": insert.returning(_tc.trial_id),
        "update_unfinished": sa.update(trials_table)
        .where(*at, *(_tc.state != s for s in _FINISHED))
        .values(**record),
        "update_if_state": sa.update(trials_table).where(*at, _tc.state == _b("w_state")).values(**record),
        "get_stored": sa.select(*(_tc[k] for k in _RECORD_KEYS)).where(of_study, _tc.number == _b("number")),
        "trials_in_state": sa.select(*_TRIAL_COLS)
        .where(of_study, _tc.state == _b("state"), _tc.number >= _b("min_number"))
        .order_by(_tc.number),
        "one_trial": sa.select(*_TRIAL_COLS).where(of_study, _tc.number == _b("number")),
        "trials_from": sa.select(*_TRIAL_COLS)
        .where(of_study, _tc.number >= _b("min_number"))
        .order_by(_tc.number),
    }
    out["trials_except"] = (
        sa.select(*_TRIAL_COLS)
        .where(of_study, _tc.number >= _b("min_number"), _tc.state != _b("exclude"))
        .order_by(_tc.number)
    )
    for name in ("trials_from", "trials_in_state", "trials_except"):  # the first ``limit`` rows (the head of the queue)
        out[f"{name}_head"] = out[name].limit(_b("limit"))
    return out


_HOT = _hot_statements()


def tuple_to_trial(r: Sequence[Any]) -> FrozenTrial:
    """A trial from a row of ``_TRIAL_COLS`` (a plain DBAPI tuple)."""
    return FrozenTrial(
        number=r[1],
        state=TrialState(r[2]),
        params=json.loads(r[3]),
        value=r[4],
        intermediate={int(k): float(v) for k, v in json.loads(r[5]).items()},
        attrs=json.loads(r[6]),
        error=r[7],
        worker=r[8],
        started=r[9],
        completed=r[10],
        heartbeat=r[11],
        trial_id=r[0],
        system=SystemState.from_dict(json.loads(r[12])),
    )
