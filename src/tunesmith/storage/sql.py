"""SQL storage through SQLAlchemy: SQLite (embedded default) and PostgreSQL.

One row per trial, rewritten whole at each change of state. Trial numbers are
assigned inside a write transaction that holds the study's lock (SQLite:
``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT ... FOR UPDATE`` on the study row),
so concurrent workers on many processes or machines never share a number and
never take the same claimed (grid) point twice.

SQLite runs in WAL mode so readers never block the writer; a busy database is
waited on (busy timeout) and whole operations are retried on transient errors.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from ..exceptions import SchemaVersionError, StorageError, StudyNotFound, TrialFinishedError
from ..trial import Direction, FrozenTrial, TrialState
from .base import Storage, StudyRecord, held_record, holds_promotion, lost_record
from .prepared import Cursor, Statements, run_transaction
from .sql_schema import (
    _HOT,
    meta_table,
    metadata,
    studies_table,
    trials_table,
    tuple_to_trial,
)

SCHEMA_VERSION = 1

T = TypeVar("T")

# SQLite busy handling: the driver's own wait (seconds), then our retry steps.
_SQLITE_DRIVER_WAIT = 0.0
_BUSY_STEP = 0.0002
_BUSY_STEP_MAX = 0.005


def _is_busy(exc: DBAPIError) -> bool:
    text = str(exc.orig if exc.orig is not None else exc).lower()
    return "locked" in text or "busy" in text


def _dumps(x: Any) -> str:
    return json.dumps(x, separators=(",", ":"), default=_json_default)


def _json_default(x: Any) -> Any:
    if hasattr(x, "item"):  # numpy scalars
        return x.item()
    if isinstance(x, (set, frozenset, tuple)):
        return list(x)
    return repr(x)


def _finite_or_none(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _row_to_trial(r: Any) -> FrozenTrial:
    return FrozenTrial(
        number=r.number,
        state=TrialState(r.state),
        params=json.loads(r.params),
        value=r.value,
        intermediate={int(k): float(v) for k, v in json.loads(r.intermediate).items()},
        attrs=json.loads(r.attrs),
        error=r.error,
        worker=r.worker,
        started=r.started,
        completed=r.completed,
        heartbeat=r.heartbeat,
        trial_id=r.trial_id,
    )


def _trial_values(t: FrozenTrial) -> dict[str, Any]:
    return {
        "state": t.state.value,
        "params": _dumps(dict(t.params)),
        "value": _finite_or_none(t.value),
        "intermediate": _dumps({str(k): v for k, v in t.intermediate.items()}),
        "attrs": _dumps(dict(t.attrs)),
        "error": t.error,
        "worker": t.worker,
        "started": t.started,
        "completed": t.completed,
        "heartbeat": t.heartbeat,
    }


class SQLStorage(Storage):
    """Storage in a SQL database, by SQLAlchemy URL.

    ``sqlite:///tunesmith.db`` (a file; the folder must exist) or
    ``postgresql+psycopg://user:pass@host/db``. Tables are created on first use
    and carry a schema version.

    Args:
        url: the database URL.
        retries: attempts for an operation that meets a transient error
            (database busy, connection lost, serialization conflict).
        busy_timeout: seconds SQLite waits for a lock before giving up an attempt.
    """

    def __init__(self, url: str, *, retries: int = 20, busy_timeout: float = 30.0) -> None:
        self.url = url
        self.retries = retries
        self.busy_timeout = busy_timeout
        self._engine: Engine | None = None
        self._statements: Statements | None = None
        self._pid = -1
        self._check_url()
        self._init_schema()

    # -- connections ------------------------------------------------------------
    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    def _check_url(self) -> None:
        try:
            parsed = sa.engine.make_url(self.url)
        except sa.exc.ArgumentError:
            raise ValueError(
                f"storage {self.url!r} is not a database URL; use e.g. 'sqlite:///tunesmith.db' "
                "or 'postgresql+psycopg://user:password@host/dbname'"
            ) from None
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            folder = Path(parsed.database).expanduser().resolve().parent
            if not folder.is_dir():
                raise ValueError(f"storage {self.url!r}: folder {folder} does not exist; create it first")
        if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
            raise ValueError(
                "an in-memory SQLite database cannot be shared; use storage=None for memory "
                "or 'sqlite:///path/to/file.db'"
            )

    @property
    def engine(self) -> Engine:
        # a forked worker must not reuse its parent's connections
        if self._engine is None or self._pid != os.getpid():
            if self._engine is not None:
                self._engine.dispose(close=False)
            self._engine = self._make_engine()
            self._statements = Statements(_HOT, self._engine.dialect)
            self._pid = os.getpid()
        return self._engine

    def _make_engine(self) -> Engine:
        if not self.is_sqlite:
            try:
                return sa.create_engine(self.url, pool_pre_ping=True, future=True)
            except ModuleNotFoundError as exc:
                raise ImportError(
                    f"storage {self.url!r} needs a database driver ({exc.name}); for PostgreSQL "
                    "install the extra: pip install 'tunesmith[postgres]'"
                ) from None
        # SQLite's own busy handler sleeps 1, 2, 5, 10, ... ms between tries, long
        # next to our sub-millisecond transactions: it only gets a short wait here,
        # and _retry waits on a busy database in short randomized steps instead.
        engine = sa.create_engine(
            self.url,
            connect_args={"timeout": min(_SQLITE_DRIVER_WAIT, self.busy_timeout), "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get("tunesmith_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    def _run(self, fn: Callable[[Connection], T], *, write: bool) -> T:
        """Run ``fn`` in one SQLAlchemy transaction, retrying transient failures."""

        def once() -> T:
            with self.engine.connect() as conn:
                if write:
                    conn.execution_options(tunesmith_write=True)
                with conn.begin():
                    return fn(conn)

        return self._retry(once)

    def _tx(self, fn: Callable[[Cursor], T], *, write: bool) -> T:
        """Run ``fn`` on a DBAPI cursor in one transaction (the hot path; see prepared.py).

        SQLite writes open with ``BEGIN IMMEDIATE``; a lone SQLite read runs in
        autocommit mode (one statement sees one snapshot); PostgreSQL opens its
        transactions implicitly and writes take the study's row lock in ``fn``.
        """
        begin = "BEGIN IMMEDIATE" if write and self.is_sqlite else None
        engine = self.engine
        stmts = self._statements
        assert stmts is not None
        return self._retry(lambda: run_transaction(engine, stmts, fn, begin=begin))

    def _retry(self, once: Callable[[], T]) -> T:
        """``once()``, again after transient errors: a busy (locked) database is
        waited on in short randomized steps for up to ``busy_timeout`` seconds;
        other transient errors (lost connection, serialization) are retried
        ``retries`` times with exponential backoff."""
        delay, step, attempt = 0.005, _BUSY_STEP, 0
        busy_since: float | None = None
        while True:
            try:
                return once()
            except (OperationalError, DBAPIError) as exc:
                if isinstance(exc, IntegrityError) or not self._transient(exc):
                    raise
                if _is_busy(exc):
                    now = time.monotonic()
                    busy_since = now if busy_since is None else busy_since
                    if now - busy_since >= self.busy_timeout:
                        raise
                    time.sleep(step * (0.5 + random.random()))
                    step = min(step * 1.5, _BUSY_STEP_MAX)
                    continue
                attempt += 1
                if attempt >= self.retries:
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 1.0)
            except Exception as exc:  # noqa: BLE001 - filtered just below
                if not isinstance(exc, (sa.exc.DisconnectionError, *self._driver_errors())):
                    raise
                # connecting failed (server restarting), raised by the driver unwrapped
                attempt += 1
                if attempt >= self.retries:
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 1.0)

    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        dbapi = getattr(self.engine.dialect, "dbapi", None)
        err = getattr(dbapi, "OperationalError", None)
        return (err,) if isinstance(err, type) else ()

    @staticmethod
    def _transient(exc: DBAPIError) -> bool:
        if exc.connection_invalidated:
            return True
        text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
        return any(
            s in text
            for s in (
                "database is locked",
                "database is busy",
                "could not serialize",
                "deadlock detected",
                "connection",
                "server closed",
                "terminating",
                "timeout",
            )
        )

    # -- schema ---------------------------------------------------------------------
    def _init_schema(self) -> None:
        try:
            self._run(self._create_schema, write=True)
        except (OperationalError, DBAPIError) as exc:
            raise StorageError(f"cannot open storage {self.url!r}: {exc.orig or exc}") from exc

    def _create_schema(self, conn: Connection) -> None:
        metadata.create_all(conn, checkfirst=True)
        row = conn.execute(
            sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")
        ).first()
        if row is None:
            conn.execute(sa.insert(meta_table).values(key="schema_version", value=str(SCHEMA_VERSION)))
            return
        found = int(row.value)
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"storage {self.url!r} has schema version {found}, written by a newer tunesmith; "
                f"this one reads up to version {SCHEMA_VERSION}. Upgrade: pip install -U tunesmith"
            )
        if found < SCHEMA_VERSION:  # pragma: no cover - no older schema exists yet
            self._migrate(conn, found)

    def _migrate(self, conn: Connection, found: int) -> None:  # pragma: no cover
        raise SchemaVersionError(f"no migration from schema version {found} to {SCHEMA_VERSION}")

    # -- studies ------------------------------------------------------------------------
    def create_study(
        self, name: str, *, direction: Direction, space: Mapping[str, Any], config: Mapping[str, Any]
    ) -> StudyRecord:
        def op(conn: Connection) -> StudyRecord:
            exists = conn.execute(
                sa.select(studies_table.c.study_id).where(studies_table.c.name == name)
            ).first()
            if exists:
                raise ValueError(f"a study named {name!r} already exists in {self.url}")
            now = time.time()
            res = conn.execute(
                sa.insert(studies_table).values(
                    name=name,
                    direction=direction.value,
                    space=_dumps(dict(space)),
                    config=_dumps(dict(config)),
                    created=now,
                )
            )
            (sid,) = res.inserted_primary_key  # type: ignore[misc]
            return StudyRecord(int(sid), name, direction, dict(space), dict(config), now)

        try:
            return self._run(op, write=True)
        except IntegrityError:
            raise ValueError(f"a study named {name!r} already exists in {self.url}") from None

    @staticmethod
    def _study(r: Any) -> StudyRecord:
        return StudyRecord(
            r.study_id, r.name, Direction(r.direction), json.loads(r.space), json.loads(r.config), r.created
        )

    def get_study(self, name: str) -> StudyRecord:
        row = self._run(
            lambda c: c.execute(sa.select(studies_table).where(studies_table.c.name == name)).first(),
            write=False,
        )
        if row is None:
            raise StudyNotFound(f"no study named {name!r} in {self.url}")
        return self._study(row)

    def list_studies(self) -> list[StudyRecord]:
        rows = self._run(
            lambda c: c.execute(sa.select(studies_table).order_by(studies_table.c.study_id)).all(),
            write=False,
        )
        return [self._study(r) for r in rows]

    def delete_study(self, name: str) -> None:
        sid = self.get_study(name).study_id

        def op(conn: Connection) -> None:
            conn.execute(sa.delete(trials_table).where(trials_table.c.study_id == sid))
            conn.execute(sa.delete(studies_table).where(studies_table.c.study_id == sid))

        self._run(op, write=True)

    # -- trials ---------------------------------------------------------------------------
    def _lock_study(self, conn: Connection, study_id: int) -> None:
        if not self.is_sqlite:  # SQLite's BEGIN IMMEDIATE already serializes writers
            conn.execute(
                sa.select(studies_table.c.study_id)
                .where(studies_table.c.study_id == study_id)
                .with_for_update()
            )

    def create_trial(
        self,
        study_id: int,
        *,
        params: Mapping[str, Any],
        state: TrialState = TrialState.RUNNING,
        claim: str | None = None,
        worker: str | None = None,
        now: float | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> FrozenTrial | None:
        token = uuid.uuid4().hex
        now = time.time() if now is None else now
        running = state is TrialState.RUNNING
        template = FrozenTrial(
            number=0,
            state=state,
            params=dict(params),
            worker=worker if running else None,
            started=now if running else None,
            heartbeat=now if running else None,
            attrs=dict(attrs or {}),
        )
        values = {"sid": study_id, "claim": claim, "token": token, **_trial_values(template)}
        returning = not self.is_sqlite  # SQLite: cursor.lastrowid works on every version
        tried = [False]

        def op(cur: Cursor) -> FrozenTrial | None:
            done = self._begin_write(cur, study_id, token, tried)
            if done is not None:
                return done
            if claim is not None and cur.first("claimed", {"sid": study_id, "claim": claim}):
                return None
            number = int(cur.first("next_number", {"sid": study_id})[0])
            cur.execute("insert_returning" if returning else "insert", {**values, "number": number})
            trial_id = cur.fetchone()[0] if returning else cur.lastrowid
            return template.replace(number=number, trial_id=int(trial_id))

        try:
            return self._tx(op, write=True)
        except IntegrityError:
            if claim is not None:
                return None
            raise

    def _begin_write(self, cur: Cursor, study_id: int, token: str, tried: list[bool]) -> FrozenTrial | None:
        """Lock the study; on a retry, the record an earlier attempt of this very
        operation committed before its connection broke (found by its token)."""
        self._lock_hot(cur, study_id)
        if tried[0]:
            done = cur.first("by_token", {"token": token})
            if done is not None:
                return tuple_to_trial(done)
        tried[0] = True
        return None

    def _lock_hot(self, cur: Cursor, study_id: int) -> None:
        if not self.is_sqlite:  # SQLite's BEGIN IMMEDIATE already serializes writers
            cur.execute("lock_study", {"sid": study_id})

    def pop_waiting(self, study_id: int, *, worker: str, now: float) -> FrozenTrial | None:
        # cheap read first (one autocommit statement): most asks find no queued trial
        if self._tx(lambda c: c.first("has_waiting", {"sid": study_id}), write=False) is None:
            return None
        token = uuid.uuid4().hex  # marks the popped row, so a retried pop returns it again
        tried = [False]

        def op(cur: Cursor) -> FrozenTrial | None:
            done = self._begin_write(cur, study_id, token, tried)
            if done is not None:
                return done
            row = cur.first("first_waiting", {"sid": study_id})
            if row is None:
                return None
            rec = tuple_to_trial(row).replace(
                state=TrialState.RUNNING, worker=worker, started=now, heartbeat=now
            )
            cur.execute("pop_by_id", {"w_id": rec.trial_id, "token": token, **_trial_values(rec)})
            return rec

        return self._tx(op, write=True)

    def claim_paused(
        self, study_id: int, number: int, *, worker: str, now: float
    ) -> FrozenTrial | None:
        t = trials_table.c
        where = (t.study_id == study_id, t.number == number)

        def op(conn: Connection) -> FrozenTrial | None:
            res = conn.execute(
                sa.update(trials_table)
                .where(*where, t.state == TrialState.PAUSED.value)
                .values(state=TrialState.RUNNING.value, worker=worker, heartbeat=now)
            )
            row = conn.execute(sa.select(trials_table).where(*where)).first()
            if row is None:
                return None
            mine = row.state == TrialState.RUNNING.value and row.worker == worker and row.heartbeat == now
            # rowcount 0 but ours: a retried attempt whose first try had committed
            return _row_to_trial(row) if res.rowcount == 1 or mine else None

        return self._run(op, write=True)

    def update_trial(self, study_id: int, trial: FrozenTrial) -> None:
        values = _trial_values(trial)
        where = {"w_sid": study_id, "w_number": trial.number}

        def op(cur: Cursor) -> None:
            if cur.execute("update_unfinished", {**values, **where}).rowcount != 0:
                return
            row = cur.first("get_stored", {"sid": study_id, "number": trial.number})
            if row is None:
                raise KeyError(f"study has no trial number {trial.number}")
            stored = dict(zip(("state", "params", "value", "intermediate", "attrs", "error"), row, strict=True))
            if any(stored[k] != values[k] for k in stored):  # a retried write that had committed is fine
                raise TrialFinishedError(
                    f"trial {trial.number} is already {stored['state']}; finished trials never change"
                )

        self._tx(op, write=True)

    def get_trials(self, study_id: int, *, min_number: int = 0) -> list[FrozenTrial]:
        rows = self._tx(
            lambda c: c.all("trials_from", {"sid": study_id, "min_number": min_number}), write=False
        )
        return [tuple_to_trial(r) for r in rows]

    def get_trial(self, study_id: int, number: int) -> FrozenTrial:
        row = self._tx(lambda c: c.first("one_trial", {"sid": study_id, "number": number}), write=False)
        if row is None:
            raise KeyError(f"study has no trial number {number}")
        return tuple_to_trial(row)

    def heartbeat(self, study_id: int, numbers: Sequence[int], now: float) -> None:
        if not numbers:
            return
        t = trials_table.c
        self._run(
            lambda c: c.execute(
                sa.update(trials_table)
                .where(t.study_id == study_id, t.number.in_(list(numbers)), t.state == "running")
                .values(heartbeat=now)
            ),
            write=True,
        )

    def fail_running(
        self,
        study_id: int,
        *,
        error: str,
        now: float,
        stale_before: float | None = None,
        worker: str | None = None,
        requeue: bool = False,
        dead: bool = False,
    ) -> list[FrozenTrial]:
        t = trials_table.c
        cond = [t.study_id == study_id, t.state == "running"]
        if stale_before is not None:
            cond.append(sa.func.coalesce(t.heartbeat, 0.0) < stale_before)
        if worker is not None:
            cond.append(t.worker == worker)
        # cheap unlocked read first: almost always nothing is lost
        if self._run(lambda c: c.execute(sa.select(t.number).where(*cond).limit(1)).first(), write=False) is None:
            return []

        def op(conn: Connection) -> list[FrozenTrial]:
            self._lock_study(conn, study_id)  # the re-check below runs under the lock
            rows = conn.execute(sa.select(trials_table).where(*cond).order_by(t.number)).all()
            return [self._fail_row(conn, study_id, r, error, now, requeue, dead) for r in rows]

        return self._run(op, write=True)

    def _fail_row(
        self, conn: Connection, study_id: int, row: Any, error: str, now: float, requeue: bool,
        dead: bool,
    ) -> FrozenTrial:
        t = trials_table.c
        trial = _row_to_trial(row)
        if dead and holds_promotion(trial):
            held = held_record(trial, error)
            conn.execute(sa.update(trials_table).where(t.trial_id == row.trial_id).values(**_trial_values(held)))
            return held
        copy_number = None
        if requeue:
            copy_number = int(
                conn.execute(sa.select(sa.func.max(t.number) + 1).where(t.study_id == study_id)).scalar_one()
            )
            copy = FrozenTrial(
                number=copy_number, state=TrialState.WAITING, params=json.loads(row.params),
                attrs={"retry_of": row.number},
            )
            conn.execute(
                sa.insert(trials_table).values(
                    study_id=study_id, number=copy_number, claim=None, token=uuid.uuid4().hex,
                    **_trial_values(copy),
                )
            )
        failed = lost_record(trial, error, now, copy_number)
        conn.execute(sa.update(trials_table).where(t.trial_id == row.trial_id).values(**_trial_values(failed)))
        return failed

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- study management ------------------------------------------------------------------
    def rename_study(self, name: str, new_name: str) -> None:
        sid = self.get_study(name).study_id
        table = studies_table

        def op(conn: Connection) -> None:
            if conn.execute(sa.select(table.c.study_id).where(table.c.name == new_name)).first():
                raise ValueError(f"a study named {new_name!r} already exists in {self.url}")
            conn.execute(sa.update(table).where(table.c.study_id == sid).values(name=new_name))

        try:
            self._run(op, write=True)
        except IntegrityError:
            raise ValueError(f"a study named {new_name!r} already exists in {self.url}") from None

    def set_study_config(self, study_id: int, config: Mapping[str, Any]) -> None:
        stmt = sa.update(studies_table).where(studies_table.c.study_id == study_id).values(config=_dumps(dict(config)))
        self._run(lambda conn: conn.execute(stmt), write=True)
