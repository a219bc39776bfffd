"""PostgreSQL sessions that call no object another role created.

On a database shared by a team, a role that may create objects in a schema on a
session's search_path can define an operator or function that fits a query's
argument types better than PostgreSQL's own (``=`` on ``varchar``, say, where
pg_catalog's takes ``text``): the query then calls it, with the rights of the
role that runs the query (CVE-2018-1058). Putting ``pg_catalog`` first does not
help: an operator of closer argument types wins wherever it is on the path.

So each connection first finds the schema of tunesmith's tables (where the
role's search_path finds ``ts_studies``, else the schema it would create them
in: ``current_schema()``), then searches ``pg_catalog`` alone (``pg_temp``,
last, is never searched for functions or operators); every table is named with
its schema (SQLAlchemy's ``schema_translate_map`` on the engine and on the
compiled hot statements). The queries that find the schema name every function
and operator with its schema.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from ..exceptions import StorageError

logger = logging.getLogger("tunesmith")

#: the search path of every connection: PostgreSQL's own objects only
SAFE_SEARCH_PATH = "pg_catalog, pg_temp"

#: seconds the server lets a session of tunesmith's wait inside a transaction for its process before ending it
#: (``idle_in_transaction_session_timeout``; kept where anyone set one, 0 included: the URL's options, the role,
#: the database or the server's configuration). tunesmith's transactions run no user code, so only a process frozen
#: mid-transaction waits that long (stopped by a debugger or SIGSTOP, a suspended VM, a network partition): its
#: session held the study's row lock, and every other worker's ask and tell waited on it (not the beats: they
#: write their trials' rows alone) for as long as it stayed frozen (behind a partition, until the server's TCP
#: keepalive gave up: two hours by default). Ended, the lock is freed; the frozen process, woken, meets a lost
#: connection and runs its transaction again. Generous: a read of a study of millions of trials converts its
#: rows before it commits, slower on a loaded machine.
IDLE_IN_TRANSACTION = 300.0

#: libpq's connection settings tunesmith gives its PostgreSQL connections where the URL names none (each is
#: the user's to set: ``?connect_timeout=30&keepalives_idle=120``; a URL naming a ``service`` gets none, its
#: service file decides, and ``PGCONNECT_TIMEOUT`` is kept). libpq's own defaults wait forever for a server
#: that accepted the TCP connection and answers nothing (a stopped or overloaded postmaster), and for one that
#: vanished without a reset (a partition, an address failed over, a machine powered off) as long as the
#: kernel retransmits (about 15 minutes) or keeps an idle connection (2 hours); a pooled connection's check
#: before each use (``pool_pre_ping``) waited that long. With these a lost server is an error within a minute,
#: which the storage's retries wait out as any outage. A connection over a Unix socket ignores all but the
#: first. ``tcp_user_timeout`` needs libpq 12 or later (given only there).
CONNECTION_DEFAULTS: dict[str, int] = {
    "connect_timeout": 10,  # seconds for the whole start-up of each connection (its TCP connect and log in)
    "keepalives": 1,  # libpq's default already; named so that the three below count
    "keepalives_idle": 30,  # a connection idle 30 s (waiting on a lock, or pooled) is probed every 10 s,
    "keepalives_interval": 10,  # a live server's kernel answers the probe even while its query runs,
    "keepalives_count": 3,  # and 3 unanswered probes end the connection: about a minute
    "tcp_user_timeout": 30_000,  # ms a sent query may stay unacknowledged: a ping of a vanished server
}

#: the URL query keys of a libpq service, whose file holds the connection settings
_SERVICE_KEYS = ("service", "servicefile")


def connection_defaults(url: sa.URL) -> dict[str, Any]:
    """The ``connect_args`` of CONNECTION_DEFAULTS that the URL (or the environment) leaves to tunesmith,
    for a libpq driver (psycopg, psycopg2); another driver takes other names, and gets none."""
    libpq = _libpq_version(url.get_driver_name())
    if libpq is None or any(k in url.query for k in _SERVICE_KEYS) or os.environ.get("PGSERVICE"):
        return {}
    given = set(url.query) | ({"connect_timeout"} if _env_connect_timeout() else set())
    return {k: v for k, v in CONNECTION_DEFAULTS.items()
            if k not in given and (k != "tcp_user_timeout" or libpq >= 120000)}


def _env_connect_timeout() -> bool:
    """Whether ``PGCONNECT_TIMEOUT`` gives the connections' start-up limit. An empty one does not: it is
    taken as unset (``export PGCONNECT_TIMEOUT=$T`` with no ``T``), and said once."""
    value = os.environ.get("PGCONNECT_TIMEOUT")
    if value is None:
        return False
    if value.strip():
        return True
    _say_empty_connect_timeout()
    return False


@functools.cache
def _say_empty_connect_timeout() -> None:
    logger.warning(
        "PGCONNECT_TIMEOUT is set but empty: taken as unset, so PostgreSQL connections wait at most %d s to "
        "start (tunesmith's connect_timeout; psycopg refuses an empty value: 'bad value for connect_timeout'). "
        "Unset it, or give seconds: PGCONNECT_TIMEOUT=30", CONNECTION_DEFAULTS["connect_timeout"])


def _libpq_version(driver: str) -> int | None:
    """The libpq release of a libpq driver (as 180006), None for another driver."""
    try:
        if driver == "psycopg":
            import psycopg

            return int(psycopg.pq.version())
        if driver == "psycopg2":
            import psycopg2.extensions  # type: ignore[import-not-found, import-untyped, unused-ignore]

            return int(psycopg2.extensions.libpq_version())
    except ImportError:
        return None  # create_engine names the missing driver
    return None


#: where the role's own search path finds tunesmith's tables, else where it would create them; and whether
#: the session's idle-in-transaction timeout is to be kept: one is set, or someone chose it, 0 (none) included
#: (its source anything but PostgreSQL's built-in default: the URL's options or PGOPTIONS, ALTER ROLE, ALTER
#: DATABASE, ALTER ROLE ... IN DATABASE, and server-wide postgresql.conf, ALTER SYSTEM, ``postgres -c``); a
#: server without the setting (before PostgreSQL 9.6) has none to set
_FIND_SCHEMA = (
    "SELECT COALESCE((SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
    "ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
    "WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass('ts_studies'::pg_catalog.text)::pg_catalog.oid), "
    "pg_catalog.current_schema()), "
    "COALESCE((SELECT s.setting OPERATOR(pg_catalog.<>) '0'::pg_catalog.text OR s.source OPERATOR(pg_catalog.<>) "
    "'default'::pg_catalog.text FROM pg_catalog.pg_settings s "
    "WHERE s.name OPERATOR(pg_catalog.=) 'idle_in_transaction_session_timeout'::pg_catalog.text), true)"
)

#: roles but the schema's owner and this session's role that may create objects in the schema
_WRITERS = (
    "SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END "
    "FROM pg_catalog.pg_namespace n, "
    "pg_catalog.aclexplode(COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a "
    "WHERE n.nspname = :schema AND a.privilege_type = 'CREATE' AND a.grantee <> n.nspowner "
    "AND a.grantee <> (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) ORDER BY 1"
)

#: (storage, schema) pairs already warned about in this process
_warned: set[tuple[str, str]] = set()


def pin_search_path(engine: Engine, where: str) -> None:
    """Make each new connection of ``engine`` search pg_catalog alone, and name tunesmith's
    tables with the schema its first connection found (``where``: the storage, for messages).
    A session without an idle-in-transaction timeout gets IDLE_IN_TRANSACTION's."""

    def _on_connect(dbapi_conn: Any, _: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            cur.execute(_FIND_SCHEMA)  # psycopg2's execute returns None: fetched apart
            schema, timed = cur.fetchone()
            cur.execute(f"SET search_path TO {SAFE_SEARCH_PATH}" if timed else
                        f"SET search_path TO {SAFE_SEARCH_PATH}; "  # one round trip
                        f"SET idle_in_transaction_session_timeout = {max(1, round(IDLE_IN_TRANSACTION * 1000))}")
        finally:
            cur.close()
        dbapi_conn.commit()
        translate = engine.get_execution_options().get("schema_translate_map")
        problem = _schema_problem(schema, translate, where)
        if problem is not None:
            dbapi_conn.close()
            raise StorageError(problem)
        if translate is None:
            engine.update_execution_options(schema_translate_map={None: schema})

    # first: before SQLAlchemy's own first queries (its dialect looks up types by oid = regtype)
    event.listen(engine, "connect", _on_connect, insert=True)


def _schema_problem(schema: str | None, translate: dict[str | None, str] | None, where: str) -> str | None:
    if schema is None:
        return (f"storage {where!r}: no schema of the role's search_path exists, so there is none to keep "
                "tunesmith's tables in; create one (CREATE SCHEMA tunesmith AUTHORIZATION the_role) and name it "
                "in the URL (?options=-csearch_path%3Dtunesmith) or with ALTER ROLE the_role SET search_path")
    if translate is not None and translate.get(None) != schema:
        return (f"storage {where!r}: a new connection finds tunesmith's tables in schema {schema!r}, where this "
                f"process uses schema {translate.get(None)!r} (the search_path or the schemas changed meanwhile); "
                "name one schema in the URL (?options=-csearch_path%3Dname) and start again")
    return None


def tables_schema(conn: Connection) -> str | None:
    """The schema of tunesmith's tables on this connection's engine (None: SQLite, no schemas)."""
    translate = conn.get_execution_options().get("schema_translate_map")
    return None if translate is None else translate.get(None)


def qualified(conn: Connection, name: str) -> str:
    """A table's (or index's) name for hand-written SQL, with its schema where it has one."""
    schema, q = tables_schema(conn), conn.dialect.identifier_preparer
    return q.quote(name) if schema is None else f"{q.quote_schema(schema)}.{q.quote(name)}"


def warn_other_writers(conn: Connection, where: str) -> None:
    """Warn (once a process) when roles other than its owner (and this role) may create objects in
    the tables' schema: queries no longer call them, but such a role could have made tunesmith's
    tables first, with triggers that then run as each worker, or fill the schema with look-alikes."""
    schema = tables_schema(conn)
    if schema is None or (where, schema) in _warned:
        return
    roles = [r[0] for r in conn.execute(sa.text(_WRITERS), {"schema": schema})]
    _warned.add((where, schema))
    if roles:
        quoted = conn.dialect.identifier_preparer.quote_schema(schema)
        logger.warning(
            "storage %r: roles other than its owner may create objects in schema %s, which holds tunesmith's "
            "tables: %s. tunesmith's queries call nothing they create there, but a role that could create "
            "the tables before tunesmith did could own them (and their triggers); unless every such role is "
            "trusted, have the schema's owner run REVOKE CREATE ON SCHEMA %s FROM %s",
            where, quoted, ", ".join(roles), quoted, ", ".join(roles))
