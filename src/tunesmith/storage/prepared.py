"""Hot-path SQL: statements compiled once per dialect, run on the DBAPI cursor.

Building a SQLAlchemy Core statement and executing it through a
``Connection`` costs about 0.3-0.5 ms of Python per statement (coercions,
cache keys, execution context, result wrapping), more than SQLite itself takes
to run it. The few statements on the ask/tell path are therefore written once
as SQLAlchemy Core (so every dialect quotes, casts and binds them its own
way), compiled once per engine, and executed on the pooled DBAPI connection
inside a transaction this module manages. Everything else in the storage uses
SQLAlchemy as usual.

Errors of the driver are re-raised as SQLAlchemy's wrappers
(:class:`sqlalchemy.exc.OperationalError`, ``IntegrityError``, ...), so the
storage's retry logic treats both paths alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler

T = TypeVar("T")


class Prepared:
    """One statement compiled for one dialect.

    ``args(params)`` turns a dict of bind values (by bind name) into what the
    driver takes: a tuple for positional paramstyles (SQLite's ``?``), the dict
    for named ones (psycopg's ``%(name)s``). Literal values written into the
    statement (``state == "waiting"``, ``LIMIT 1``) are filled in from the
    compilation.
    """

    __slots__ = ("sql", "names", "defaults")

    def __init__(self, stmt: sa.sql.ClauseElement, dialect: sa.engine.Dialect,
                 schema_translate_map: Mapping[str | None, str] | None = None) -> None:
        compiled = cast(SQLCompiler, stmt.compile(dialect=dialect, schema_translate_map=schema_translate_map,
                                                  render_schema_translate=schema_translate_map is not None))
        self.sql: str = compiled.string
        self.defaults: dict[str, Any] = {
            k: v for k, v in compiled.params.items() if not compiled.binds[k].required
        }
        self.names: tuple[str, ...] | None = (
            tuple(compiled.positiontup or ()) if compiled.positional else None
        )

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        merged = {**self.defaults, **params} if self.defaults else params
        if self.names is None:
            return dict(merged)
        try:
            return tuple([merged[n] for n in self.names])
        except KeyError as exc:
            raise KeyError(f"no value for bind parameter {exc.args[0]!r} of: {self.sql}") from None


class Statements:
    """The compiled forms of a fixed set of Core statements, for one engine; each compiled
    at its first use (a connection is open by then: the engine's ``schema_translate_map``,
    which its first connection may set, names the tables' schema)."""

    def __init__(self, builders: Mapping[str, sa.sql.ClauseElement], engine: Engine) -> None:
        self._stmts = dict(builders)
        self._engine = engine
        self._compiled: dict[str, Prepared] = {}

    def __getitem__(self, name: str) -> Prepared:
        p = self._compiled.get(name)
        if p is None:
            translate = self._engine.get_execution_options().get("schema_translate_map")
            p = self._compiled[name] = Prepared(self._stmts[name], self._engine.dialect, translate)
        return p


class Cursor:
    """A DBAPI cursor that runs :class:`Prepared` statements by name."""

    __slots__ = ("_cur", "_stmts")

    def __init__(self, cur: Any, stmts: Statements) -> None:
        self._cur = cur
        self._stmts = stmts

    def execute(self, name: str, params: Mapping[str, Any]) -> Any:
        p = self._stmts[name]
        self._cur.execute(p.sql, p.args(params))
        return self._cur

    def first(self, name: str, params: Mapping[str, Any]) -> Any:
        return self.execute(name, params).fetchone()

    def all(self, name: str, params: Mapping[str, Any]) -> list[Any]:
        return list(self.execute(name, params).fetchall())

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)

    @property
    def lastrowid(self) -> Any:
        return self._cur.lastrowid


def run_transaction(
    engine: Engine, stmts: Statements, fn: Callable[[Cursor], T], *, begin: str | None
) -> T:
    """Run ``fn`` in one transaction on a pooled DBAPI connection; commit or roll back.

    ``begin`` is the statement that opens the transaction (SQLite:
    ``BEGIN IMMEDIATE`` for writes; ``None`` where the driver opens it
    implicitly, or for a lone read in autocommit mode). Driver errors come out
    as SQLAlchemy's exception wrappers, with ``connection_invalidated`` set
    when the connection was lost (it is then discarded from the pool).
    """
    dialect = engine.dialect
    raw = engine.raw_connection()
    cur = None
    try:
        cur = raw.cursor()
        if begin is not None:
            cur.execute(begin)
        out = fn(Cursor(cur, stmts))
        raw.commit()
        return out
    except dialect.loaded_dbapi.Error as exc:
        lost = _rollback(raw, dialect, exc, cur)
        raise DBAPIError.instance(
            None, None, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=dialect
        ) from exc
    except BaseException:
        _rollback(raw, dialect, None, cur)
        raise
    finally:
        if cur is not None:
            try:
                cur.close()
            except dialect.loaded_dbapi.Error:
                pass
        raw.close()


def _rollback(raw: Any, dialect: sa.engine.Dialect, exc: Exception | None, cur: Any) -> bool:
    """Roll back (best effort); True when the connection is lost and was invalidated."""
    lost = exc is not None and dialect.is_disconnect(exc, raw, cur)  # type: ignore[arg-type]
    if not lost:
        try:
            raw.rollback()
        except dialect.loaded_dbapi.Error:
            lost = True
    if lost:
        raw.invalidate()
    return lost
