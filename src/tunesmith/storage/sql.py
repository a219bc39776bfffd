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

import collections
import datetime
import difflib
import enum
import functools
import itertools
import json
import logging
import math
import os
import random
import shlex
import stat
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from ..exceptions import (
    DuplicateStudyError,
    SchemaVersionError,
    StorageError,
    StudyNotFound,
    TrialFinishedError,
    TrialNotFound,
    UntrustedPathError,
)
from ..nested import walk
from ..paths import NotRegularFile, kind_of, open_regular, refuse_foreign_link
from ..space.params import did_you_mean, plural
from ..trial import NO_SYSTEM, Direction, FrozenTrial, SystemState, TrialState, as_count
from .base import (
    NewStudy,
    Storage,
    StudyRecord,
    check_expect,
    check_study_name,
    copy_missing,
    mask_url,
    password_note,
    reads_through_get_trials,
    unencoded_at,
)
from .prepared import Cursor, Statements, run_transaction
from .sql_pg import (
    connection_defaults,
    pin_search_path,
    qualified,
    tables_schema,
    warn_other_writers,
)
from .sql_schema import (
    _HOT,
    SINCE_WIDTHS,
    DecodedRows,
    _BadColumn,
    _json_object,
    held_number,
    last_step_row,
    meta_table,
    metadata,
    rows_to_trials,
    since_args,
    studies_table,
    study_record,
    trials_table,
    tuple_to_trial,
)

SCHEMA_VERSION = 2

logger = logging.getLogger("tunesmith")

#: trial numbers stay below this (far from the 64-bit limit of the INTEGER column)
_MAX_NUMBER = 2**62

T = TypeVar("T")

#: seconds between two measures of a database server's clock against this process's (see SQLStorage.clock)
CLOCK_CHECK = 5.0
#: seconds a query of the server's clock may take for its measure to be kept at once: the server's reading lies
#: anywhere in the query's time, so the measure is off by up to half of it (a query that waited out a 2 s server
#: restart put the lead a second or more ahead, and the heartbeat check failed a live worker's trial as lost)
CLOCK_ROUND_TRIP = 0.05
#: queries of the server's clock at most per measure, the quickest one kept
CLOCK_TRIES = 3
#: seconds this process's clock may move apart from its monotonic one since the last measure before the server's
#: is measured again: a step of the clock (NTP, a date set by hand, a machine resumed from suspend) would
#: otherwise shift every beat written and judged until the next measure, and a live trial read as lost
CLOCK_STEP = 0.1
#: the server's clock, seconds since the epoch, by dialect (SQLite has no server)
_SERVER_NOW = {
    "postgresql": "SELECT extract(epoch FROM clock_timestamp())",
    "mysql": "SELECT UNIX_TIMESTAMP(NOW(6))",
}

# SQLite busy handling: the driver's own wait (seconds), then our retry steps.
_SQLITE_DRIVER_WAIT = 0.0

#: seconds between two checks, on reads, that the SQLite file is still the one opened (writes check each time)
FILE_CHECK = 0.5

_BUSY_STEP = 0.0002
_BUSY_STEP_MAX = 0.005

#: seconds a SQLite lock must keep every writer out before it counts as an outage (Storage.outages):
#: shorter waits are the ordinary traffic of workers sharing a file, and would put off every heartbeat check
OUTAGE_BUSY = 1.0
#: outages a storage keeps for the heartbeat check (Storage.outages): the recent ones, each a second or more
OUTAGES_KEPT = 16


def _is_busy(exc: DBAPIError) -> bool:
    text = str(exc.orig if exc.orig is not None else exc).lower()
    return "locked" in text or "busy" in text


#: pg_advisory_xact_lock key that serializes creating the tables ("tune")
_SCHEMA_LOCK = 0x74756E65

#: what to do about a database error that is not transient, by a piece of its message
_HINTS = {
    "disk is full": "free space on the disk that holds the database, then run again",
    "no space left": "free space on the disk that holds the database, then run again",
    "disk i/o error": "the file or its -wal/-shm files beside it could not be read or written (deleted or "
                      "moved while in use, a limit on file size such as ulimit -f, or a failing disk); check "
                      "the folder and the limits of the processes that write it",
    "malformed": "the file is damaged; restore it from a backup (sqlite3's .recover may save its rows)",
    "not a database": "the file is not a SQLite database (or is damaged); check the path",
    "readonly database": "the database or its folder is read-only; reading commands open it read-only, "
                         "runs need write access",
    "unable to open": "check that the file exists, that you can read it and write its folder (reading "
                      "commands, tunesmith studies/show/export, open it read-only)",
    "no password supplied": "the server asks for a password: set PGPASSWORD (or a ~/.pgpass file) where each "
                            "worker runs (on a Ray cluster, in the environment of `ray start` on every node), "
                            "or write it in the URL",
    "password authentication failed": "check the password in the URL, PGPASSWORD or ~/.pgpass of the machine "
                                      "that opened the storage",
}


#: messages of errors that no retry can fix, though they mention a connection
_FATAL = ("does not exist", "authentication failed", "no password supplied", "no pg_hba.conf entry",
          "permission denied",
          "disk is full", "no space left", "disk i/o error", "malformed", "not a database",
          # a URL's bad connection option (?sslmode=bogus, ?connect_timeout=x): the same on every try
          "invalid connection option", "invalid sslmode value", "invalid integer value", "bad value for")


def _hint(cause: str, path: Path | None = None) -> str | None:
    """What to do about ``cause``; for SQLite's "disk I/O error" where the database's folder ``path`` is on a
    full disk, that it is: opening a database needs its WAL index (the -shm file), which a full disk refuses
    with that error, not with "disk is full"."""
    text = cause.lower()
    if "disk i/o error" in text and path is not None and _no_space(path.parent):
        return f"{path.parent} is full: {_HINTS['disk is full']}"
    return next((h for key, h in _HINTS.items() if key in text), None)


def _no_space(folder: Path) -> bool:
    """Whether the file system of ``folder`` has less room than a page of a database's WAL index."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs on Windows
        return False
    return st.f_bavail * st.f_frsize < 32768


def _check_regular(path: Path, url: str) -> None:
    """A ValueError where ``path`` is there but is no regular file: a FIFO hung or failed with
    "disk i/o error", a directory or device was read as an empty storage ("no studies")."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # absent (made at the first write) or unreadable (SQLite says so)
    if not stat.S_ISREG(mode):
        raise ValueError(f"storage {url!r}: {path} is {kind_of(mode)}, not a SQLite database file; "
                         "pass the path of a database file (or of one to create)")


def _study_row(conn: Connection, name: str, *columns: Any) -> Any:
    """The row of study ``name`` (``columns`` of ``ts_studies``, with its name), or None. On SQLite, a
    name another program wrote in bytes that are not UTF-8 is read with U+FFFD for them
    (:data:`_LENIENT_TEXT`): such a name, as read, finds its study when no other reads the same."""
    row = conn.execute(sa.select(*columns).where(studies_table.c.name == name)).first()
    if row is None and "\ufffd" in name and conn.dialect.name == "sqlite":
        alike = [r for r in conn.execute(sa.select(*columns)) if r.name == name]  # one row a study: a short scan
        row = alike[0] if len(alike) == 1 else None
    return row


def _check_link(path: Path, url: str) -> None:
    """An UntrustedPathError where the database file is a symbolic link of another user (but root): in a folder
    others can write, they chose which file of this user's tunesmith writes its tables into."""
    try:
        st = path.lstat()
    except OSError:
        return
    refuse_foreign_link(path, st, f"storage {url!r}", "give that file's path if it is the database you mean, or "
                        "remove the link")


def log_alone(path: Path) -> str:
    """What happened where SQLite file ``path`` is missing and its write-ahead log (``path-wal``) is there,
    and how to get the study back; "" otherwise. The log holds the latest writes (all of them, where no
    checkpoint copied any into the file): the file was moved or deleted while a process had it open."""
    wal = path.with_name(path.name + "-wal")
    try:
        if path.exists() or not wal.is_file():
            return ""
        with open_regular(wal) as f:  # opened, then looked at: a FIFO swapped in after the look never blocks
            header = f.read(32)
            held, size = _pages_logged(f, header)
            length = os.fstat(f.fileno()).st_size
    except (OSError, NotRegularFile):
        return ""
    if not held:
        return ""
    said = (f"the database file is missing but its write-ahead log {str(wal)!r} ({length} bytes) is there: the "
            "file was moved or deleted while a process had it open, and the study's latest writes are in the log. "
            "If the file was moved, put it back beside the log. ")
    start_over = (f"To start the study over instead, without what the log holds, delete {wal.name!r} and "
                  f"{path.name + '-shm'!r}")
    if len(held) < size:  # a checkpoint copied the rest into the file: a database made from the log lacks it
        return (said + f"The log holds {len(held)} of the database's {size} pages (a checkpoint copied the "
                "others into the file), so the study cannot be rebuilt from it: restore the file (from where it "
                "was moved, or a backup) beside the log before anything opens it. " + start_over)
    page = int.from_bytes(header[8:12], "big")
    name = str(path)
    literal = json.dumps(name, ensure_ascii=not name.isprintable())  # a Python string, as the shell passes it
    make = "python -c " + shlex.quote(f"import sqlite3; c = sqlite3.connect({literal}); "
                                      f'c.execute("PRAGMA page_size={page}"); c.execute("PRAGMA journal_mode=wal"); '
                                      "c.close()")
    return (said + f"Otherwise SQLite can rebuild the database from the log, which holds all {size} of its pages: "
            f"move the log aside, make an empty database in WAL mode of the log's page size ({make}), move the log "
            f"back as {wal.name!r}, then check it (tunesmith show; PRAGMA integrity_check says 'ok'). Make no "
            "database there before that: SQLite deletes a log it finds beside an empty file. " + start_over)


def _pages_logged(log: Any, header: bytes) -> tuple[set[int], int]:
    """The pages a SQLite write-ahead log's committed frames hold and the database's size in pages at its
    last commit (``header``: its first 32 bytes, read from ``log``; set() where it is no log with a commit).
    Frames are read up to the first of another salt (left from before the log restarted) or of page 0, as SQLite
    reads them (no page is numbered 0: a sparse file of 100 GB, which costs its writer no disk, read as 200 million
    frames of a log whose salt is 0 kept ``show`` reading for many minutes); checksums are not checked (SQLite
    checks them as it reads the log)."""
    if len(header) < 32 or header[:4] not in (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83"):
        return set(), 0
    page, salt = int.from_bytes(header[8:12], "big"), header[16:24]
    if page < 512 or page > 65536 or page & (page - 1):
        return set(), 0
    held, pending, size = set[int](), set[int](), 0
    while len(frame := log.read(24)) == 24 and frame[8:16] == salt and frame[:4] != bytes(4):
        pending.add(int.from_bytes(frame[:4], "big"))
        if commit := int.from_bytes(frame[4:8], "big"):  # a commit: the database's size after it, in pages
            held, size = held | pending, commit
            pending = set()
        log.seek(page, os.SEEK_CUR)
    return {p for p in held if p <= size}, size


def _check_beside(path: Path, url: str, read_only: bool = False) -> None:
    """An UntrustedPathError for a journal, WAL or WAL index beside the database file that someone who may
    not write the database made: SQLite reads the WAL as part of the database and copies it into
    the file, so whoever can create ``db-wal`` (any user, in a folder such as /tmp) changed what
    every reader saw and what writers kept. Links there SQLite refuses itself (unhelpfully). One made by a
    user of the database's group that has their own group is theirs to make, and read (``read_only``), but
    refused for writing where this user may not write it (their SQLite could not)."""
    if not hasattr(os, "getuid"):
        return
    try:
        db = path.stat()
    except OSError:
        db = None
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        try:
            st = side.lstat()
        except OSError:
            continue
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
            why = "is a link" if stat.S_ISLNK(st.st_mode) else "is not a regular file"
        elif st.st_uid in (0, os.getuid()) or db is None or st.st_uid == db.st_uid:
            continue
        elif db.st_mode & 0o002 or (db.st_mode & 0o020 and st.st_gid == db.st_gid):
            continue  # its owner may write the database itself: a user of a shared database
        elif db.st_mode & 0o020 and _in_group(st.st_uid, db.st_gid):
            if read_only or os.access(side, os.W_OK):  # root, or a user of the maker's own group, writes it
                continue
            raise UntrustedPathError(_teammate_s_journal(url, side, st, db))
        else:
            why = f"belongs to uid {st.st_uid}, who may not write the database"
        raise UntrustedPathError(f"storage {url!r}: {side} {why}, so it could change what is read from the database "
                         "and written into it; remove it (when no process has the database open) or move the "
                         "database to a folder only its users can write")


def _in_group(uid: int, gid: int) -> bool:
    """Whether the user ``uid`` is in group ``gid`` (their primary group or, as the system's group database
    says, another of theirs); False for a user it does not name."""
    import pwd

    try:
        user = pwd.getpwuid(uid)
        return gid == user.pw_gid or gid in os.getgrouplist(user.pw_name, user.pw_gid)
    except (KeyError, OSError):
        return False


def _teammate_s_journal(url: str, side: Path, st: os.stat_result, db: os.stat_result) -> str:
    """The refusal of a journal made by a user of the database's group, in a folder that gave it their own group:
    SQLite cannot write it for the others (who are not in that group), so it is refused as any other."""
    folder = side.parent
    return (f"storage {url!r}: {side} belongs to uid {st.st_uid}, a user of the database's group (gid {db.st_gid}), "
            f"but has their group (gid {st.st_gid}), since the folder gives new files their maker's group: your "
            "processes could not write it while theirs have the database open (SQLite: attempt to write a readonly "
            f"database). Have the folder give its files its own group: chgrp {db.st_gid} {str(folder)!r} and chmod "
            f"g+s {str(folder)!r} (then their next run's journals get gid {db.st_gid}); meanwhile wait for their run "
            "to end (reading commands, tunesmith show and export, read it meanwhile)")


def _check_beside_at_connect(path: Path, url: str, read_only: bool, dbapi_conn: Any, _: Any) -> None:
    """:func:`_check_beside` as a new connection opens, before any statement (SQLite opens the journals at the
    first read): one planted after the storage was made (a study made, then run; a forked worker's connection)
    was read as part of the database. A refused connection is closed unread."""
    try:
        _check_beside(path, url, read_only)
    except UntrustedPathError:
        dbapi_conn.close()  # nothing read: SQLite has not opened the journal, so its close copies nothing in
        raise


@functools.lru_cache(maxsize=1)
def _sqlite_json() -> bool:
    """Whether the SQLite library Python's sqlite3 uses has the JSON functions (built in since 3.38; before, a
    compile option some builds left out): where not, what a query of them would tell is read the Python way."""
    import sqlite3

    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("SELECT json_valid('{}'), json_type('{}')").fetchone()
        conn.execute("SELECT key FROM json_each('{}')").fetchall()
    except sqlite3.OperationalError:  # "no such function" / "no such table" (json_each)
        return False
    finally:
        conn.close()
    return True


def missing_sqlite_file(url: str) -> bool:
    """Whether ``url`` names a SQLite database file that is not there (relative paths from the
    current folder, as :class:`SQLStorage` opens them)."""
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return False  # SQLStorage says what is wrong with it
    db = parsed.database
    if parsed.get_backend_name() != "sqlite" or db in (None, "", ":memory:") or str(db).startswith("file:"):
        return False
    return not Path(str(db)).expanduser().exists()


#: what a SQLite database file is commonly named with (the files named beside a missing one)
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def databases_beside(url: str, *, limit: int = 3, study: str | None = None) -> list[str]:
    """URLs of the tunesmith databases (:func:`holds_studies`) in the folder of the missing
    database ``url`` names, the closest to its name first: ``sqlite:///boost.db`` where a study was
    written to ``boost.db`` and a command read the default ``tunesmith.db``. With ``study``, those
    other than ``url``'s own file that hold a study of that name."""
    parsed = sa.engine.make_url(url)
    path = Path(str(parsed.database)).expanduser()
    try:
        entries = list(itertools.islice(path.parent.iterdir(), 10_000))  # a huge folder is not read whole
        names = sorted(p.name for p in entries if p.suffix.lower() in SQLITE_SUFFIXES and p.is_file()
                       and p.name != path.name)
    except OSError:
        return []
    close = difflib.get_close_matches(path.name, names, n=limit, cutoff=0.6)
    ordered = [*close, *(n for n in names if n not in close)][:_LOOKED_AT]
    picked = [n for n in ordered if holds_studies(path.with_name(n), study)][:limit]
    return [parsed.set(database=str(Path(str(parsed.database)).with_name(n))).render_as_string(hide_password=False)
            for n in picked]


#: how many SQLite files beside a missing database are opened to see whether they hold studies
_LOOKED_AT = 20

#: the seconds of SQLite work spent on one file beside (see :func:`_bounded`), and the longest value it makes
_LOOK_SECONDS = 0.25
_LOOK_LENGTH = 1_000_000


def _bounded(conn: Any) -> None:
    """Bound the work on a file that may have been planted beside the user's: a column computed from
    an expression (``name AS (replace(hex(zeroblob(...)), ...))``), read as each new study was created,
    held it for 40 s. The work is stopped after :data:`_LOOK_SECONDS` (the file is then not named), and no
    value longer than :data:`_LOOK_LENGTH` is made, so no single step runs long between the checks."""
    import sqlite3

    deadline = time.monotonic() + _LOOK_SECONDS
    conn.set_progress_handler(lambda: time.monotonic() > deadline, 100)  # a step may be long
    if sys.version_info >= (3, 11):  # on 3.10 (no setlimit) the time bound alone, a step of a long value outlasting it
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, _LOOK_LENGTH)


def holds_studies(path: Path, study: str | None = None) -> bool:
    """Whether the SQLite file ``path`` is a tunesmith database (its schema has tunesmith's tables),
    and with ``study``, one holding a study of that name: ``mlflow.db`` beside a missing ``study.db``
    was suggested as if it held the study. The file is opened read-only as a regular file (a FIFO is
    never waited on) and immutable (no lock taken, no journal read or made beside it); only the
    names of its tables and studies are read, nothing of ours is run with it, and SQLite's own work on
    what the file declares (a computed column) is stopped after a moment (:func:`_bounded`)."""
    import sqlite3

    try:
        f = open_regular(path)
    except (OSError, NotRegularFile):
        return False
    with f:
        if f.read(16) != b"SQLite format 3\x00":
            return False
        opened = Path(f"/dev/fd/{f.fileno()}")  # the file looked at, not one swapped in under its name since
        uri = (opened if opened.exists() else path).absolute().as_uri() + "?mode=ro&immutable=1"
        try:
            conn = sqlite3.connect(uri, uri=True)
        except sqlite3.Error:
            return False
        _bounded(conn)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            named = study is None or set(metadata.tables) <= tables and conn.execute(
                f"SELECT 1 FROM {studies_table.name} WHERE name = ?", (study,)).fetchone() is not None
        except sqlite3.Error:  # not a database, encrypted, corrupt
            return False
        finally:
            conn.close()
    return set(metadata.tables) <= tables and named


def storage_options(url: str) -> str:
    """``--storage sqlite:///boost.db, --storage 'sqlite:///my runs.db'``: the SQLite files beside the
    missing database ``url`` names as a command's options, quoted for a shell; "" for none."""
    return ", ".join(f"--storage {shlex.quote(u)}" for u in databases_beside(url))


def beside_text(url: str) -> str:
    """``; its folder holds sqlite:///boost.db`` for a missing SQLite file with databases beside it, else ``""``."""
    found = databases_beside(url)
    return f"; its folder holds {', '.join(found)}" if found else ""


#: the query arguments a SQLite URL takes, and their values (``?synchronous=full``)
SQLITE_QUERY = {"synchronous": ("normal", "full", "extra")}


def _sqlite_synchronous(query: Mapping[str, Any], shown: str) -> str:
    """SQLite's ``synchronous`` setting asked by a SQLite URL's query (``normal`` when none): any
    other argument, a repeated one or another value was ignored by the driver, and is refused."""
    for key, value in query.items():
        if key not in SQLITE_QUERY:
            raise ValueError(f"storage {shown!r}: unknown query argument {key!r}{did_you_mean(key, list(SQLITE_QUERY))}; "
                             "a SQLite URL takes "
                             "only 'synchronous' (normal, full or extra), e.g. 'sqlite:///tunesmith.db?synchronous=full'")
        allowed = SQLITE_QUERY[key]
        if not isinstance(value, str):
            raise ValueError(f"storage {shown!r}: {key!r} is given {len(value)} times; give it once")
        if value.lower() not in allowed:
            raise ValueError(f"storage {shown!r}: {key}={value!r} is not one of {', '.join(allowed)}, "
                             f"e.g. 'sqlite:///tunesmith.db?{key}=full'")
    return str(query.get("synchronous", "normal")).upper()


def _with_synchronous(url: str, synchronous: Any) -> str:
    """``url`` with SQLite's ``synchronous`` setting of the keyword written into its query (unchanged
    where none is given): what a worker process or Ray actor opens is the URL, so it asks for it too."""
    if synchronous is None:
        return url
    allowed = SQLITE_QUERY["synchronous"]
    if not isinstance(synchronous, str) or synchronous.lower() not in allowed:
        raise ValueError(f"synchronous={synchronous!r} is not one of {', '.join(allowed)}")
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return url  # not a URL: _check_url says so
    shown = mask_url(url)
    if parsed.get_backend_name() != "sqlite":
        raise ValueError(f"storage {shown!r}: synchronous= is a SQLite setting; a PostgreSQL server's durability is "
                         "its own (synchronous_commit, fsync in postgresql.conf): leave synchronous= out")
    given = parsed.query.get("synchronous")
    if given is not None and not (isinstance(given, str) and given.lower() == synchronous.lower()):
        raise ValueError(f"storage {shown!r} asks for synchronous={given!r} and the keyword for "
                         f"synchronous={synchronous!r}; give it once")
    sep = "" if url.endswith(("?", "&")) else "&" if parsed.query else "?"  # "db.sqlite?": no second "?"
    return url if given is not None else f"{url}{sep}synchronous={synchronous.lower()}"


def _seconds(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def _dumps(x: Any) -> str:
    """``x`` as compact JSON; an empty mapping (most trials' reports and attrs) as "{}" without the encoder."""
    if not x and isinstance(x, dict):
        return "{}"
    return _ENCODER.encode(x)


def _space_text(space: Mapping[str, Any]) -> str:
    """A space's definitions as JSON; a ValueError naming the parameter whose definition holds a value
    JSON cannot keep (before: written as its repr, "datetime.date(2024, 1, 1)", and the study's first
    trial failed with "Object of type date is not JSON serializable")."""
    for name, definition in space.items():
        try:
            member = next((v for _, v in walk(definition) if isinstance(v, enum.Enum)), None)
            if member is not None:  # an IntEnum or a str Enum: JSON writes its value, which is no choice of the space
                raise TypeError(f"{member!r} is an Enum member (JSON keeps only its value, {member.value!r})")
            json.dumps(definition, default=_plain_or_refused)
        except TypeError as exc:
            raise ValueError(f"parameter {name!r}: {exc}, which a stored study cannot keep (it stores its space "
                             "as JSON); list strings or numbers and convert them in the objective") from None
    return _dumps(dict(space))


def _plain_or_refused(x: Any) -> Any:
    if hasattr(x, "item") or isinstance(x, (set, frozenset, tuple)):
        return _json_default(x)
    if isinstance(x, datetime.date):
        raise TypeError(f"{x!r} is a date (YAML reads an unquoted date as one: quote it)")
    raise TypeError(f"{x!r} is of type {type(x).__name__}")


def _json_default(x: Any) -> Any:
    if hasattr(x, "item"):  # numpy scalars
        return x.item()
    if isinstance(x, (set, frozenset, tuple)):
        return list(x)
    return repr(x)


#: a trial number past every trial's (PostgreSQL's column is a 32-bit integer): :meth:`SQLStorage.get_trials_since`
#: from it reads the numbers it lists alone (and any number from it on, which a caller filters out)
_PAST_EVERY_NUMBER = 2**31 - 1

#: each trial's head (as ``get_trial_heads`` reads it) and its last report's step, where the database's JSON takes
#: its reports as tunesmith writes them (steps as canonical integers, values numbers: PostgreSQL's numeric refuses
#: exponents past its range and JSON refuses a leading zero; SQLite reads an integer past a float's range as an
#: infinity, which Python's float() refuses); else its reports' text, read as the whole read does (``NaN``, a
#: diverged trial's report, is no JSON to SQLite or PostgreSQL). SQLite's gives both in one column (the step, or
#: the text), each row's reports walked once: a column of a subquery in FROM used twice was computed twice (SQLite
#: puts its expression in each place), three walks of ``json_each`` a row, 0.2 s on 5,000 trials; json_type apart
#: from json_valid, in a WHEN of its own: in an OR it could be asked of what is no JSON. A column that is no text
#: (a blob written outside tunesmith: SQLite's json_valid reads its bytes as text) is given back as it is, for the
#: whole read's refusal, and only an integer in the last column is a step
_LAST_STEPS_SQLITE = """
SELECT trial_id, number, state, value, started, completed,
       CASE WHEN typeof(intermediate) <> 'text' OR NOT json_valid(intermediate) THEN intermediate
            WHEN json_type(intermediate) <> 'object' THEN intermediate
            ELSE (SELECT CASE WHEN count(*) = count(CASE WHEN key = CAST(CAST(key AS INTEGER) AS TEXT)
                                                              AND CAST(key AS INTEGER) >= 0
                                                              AND (type = 'real' OR type = 'integer'
                                                                   AND abs(atom) <= 1.7976931348623157e308)
                                                         THEN 1 END)
                              THEN max(CAST(key AS INTEGER)) ELSE intermediate END
                  FROM json_each(intermediate)) END
FROM {trials} WHERE study_id = :sid AND intermediate <> '{{}}'
ORDER BY number
"""
_LAST_STEPS_PG = """
SELECT t.trial_id, t.number, t.state, t.value, t.started, t.completed,
       CASE WHEN ok THEN (SELECT max(k::bigint) FROM pg_catalog.jsonb_object_keys(t.intermediate::jsonb) AS k) END,
       CASE WHEN ok THEN NULL ELSE t.intermediate END
FROM (SELECT trial_id, number, state, value, started, completed, intermediate,
             intermediate ~ '^\\{{("(0|[1-9][0-9]{{0,17}})":-?(0|[1-9][0-9]{{0,254}})(\\.[0-9]{{1,255}})?([eE][-+]?[0-9]{{1,4}})?,?)*\\}}$'
             AS ok
      FROM {trials} WHERE study_id = :sid) AS t
WHERE t.intermediate <> '{{}}'
ORDER BY t.number
"""

#: json.dumps(x, separators=..., default=...) builds an encoder at each call (several per trial written);
#: one, made once, writes the same text (it keeps no state between calls, so threads share it)
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_json_default)


def _finite_or_none(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


#: schema version 1 kept the study's bookkeeping in the user's attrs under these keys
_LEGACY_KEYS = {
    "resumed_step": "resumed_step", "n_resumes": "n_resumes", "promotion_held": "held",
    "held_at_step": "held_at_step", "n_holds": "n_holds", "retry_of": "retry_of",
    "requeued_as": "requeued_as", "oom_retries": "oom_retries",
}  # fmt: skip

_STORED_KEYS = (
    "state", "params", "value", "intermediate", "attrs", "system", "error", "worker", "started", "completed",
    "heartbeat",
)


def _trial_values(t: FrozenTrial, reports: str | None = None) -> dict[str, Any]:
    """The columns of ``t``; ``reports``: its intermediate values encoded already (see :class:`_Reports`)."""
    return {
        "state": t.state.value,
        "params": _dumps(dict(t.params)),
        "value": _finite_or_none(t.value),
        "intermediate": _encode_reports(t.intermediate) if reports is None else reports,
        "attrs": _dumps(dict(t.attrs)),
        "system": "{}" if t.system is NO_SYSTEM else _dumps(t.system.to_dict()),
        # PostgreSQL's text refuses NUL: an objective's error holding one (bytes of a data file)
        # ended optimize with a StorageError and left its trial running; JSON columns escape it
        "error": t.error.replace("\x00", "\ufffd") if t.error else t.error,
        "worker": t.worker,
        "started": t.started,
        "completed": t.completed,
        "heartbeat": t.heartbeat,
    }


#: ts_meta's key for the largest study id a delete freed: never given to a new study, so that a
#: process still holding the deleted study writes nowhere rather than into a new one
_DELETED_ID = "deleted_study_id"


def _deleted_id(conn: Connection) -> int:
    text = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == _DELETED_ID)).scalar()
    number = as_count(str(text), digits=15)  # as written; "²" (a digit to str.isdigit) or "x" by hand: none
    return 0 if number is None else number


def _next_study_id(conn: Connection) -> int:
    top = conn.execute(sa.select(sa.func.max(studies_table.c.study_id))).scalar()
    return max(int(top or 0), _deleted_id(conn)) + 1


def _set_meta(conn: Connection, key: str, value: str) -> None:
    where = meta_table.c.key == key
    if conn.execute(sa.update(meta_table).where(where).values(value=value)).rowcount == 0:
        conn.execute(sa.insert(meta_table).values(key=key, value=value))


def _encode_reports(intermediate: Mapping[int, float]) -> str:
    return _dumps({str(k): v for k, v in intermediate.items()})


class _Reports:
    """The intermediate values of the trials this process writes, encoded incrementally.

    A trial is rewritten whole at each report, so encoding all its reports again made
    each report cost time in proportion to the reports before it (5.6 ms a report at
    5,000 reports on SQLite). When a trial's reports are the ones last encoded for it
    plus steps after them (what ``Trial.report`` writes), only the new steps are
    encoded and appended; the same reports again (``Trial.set_attr``), none. The text
    is the same as a whole encoding's; a trial's entry is dropped when it finishes,
    and short reports are never kept."""

    SHORT = 32

    def __init__(self) -> None:
        self._last: dict[tuple[int, int], tuple[dict[int, float], str]] = {}

    def encode(self, study_id: int, t: FrozenTrial) -> str:
        key, new = (study_id, t.number), t.intermediate
        if t.state.is_finished or len(new) < self.SHORT:
            self._last.pop(key, None)
            return _encode_reports(new)
        hit = self._last.get(key)
        if hit is not None and len(hit[0]) <= len(new) and _starts_with(new, hit[0]):
            old, text = hit
            if len(old) == len(new):  # the same reports (set_attr, a pause): the same text
                return text
            more = _encode_reports(dict(itertools.islice(new.items(), len(old), None)))
            text = text[:-1] + "," + more[1:]
        else:
            text = _encode_reports(new)
        self._last[key] = (dict(new), text)
        return text


def _starts_with(new: Mapping[int, float], old: dict[int, float]) -> bool:
    """Whether ``new`` holds ``old``'s items first, in order, with the same values (0.0 and
    -0.0 told apart: they are encoded differently)."""
    head = list(itertools.islice(new.items(), len(old)))
    return head == list(old.items()) and (0.0 not in old.values() or all(
        math.copysign(1.0, a[1]) == math.copysign(1.0, b) for a, b in zip(head, old.values(), strict=True)))


def _first_to_say(said: Any, began: float, ended: float) -> bool:
    """Whether this process says the outage it waited through from ``began`` to ``ended`` (monotonic, one
    clock for the machine's processes): none of the run's processes said one that ended since (``said``, a
    shared ``Value("d")``; None: this process alone). Its lock is waited for briefly: a process killed holding
    it must not keep the others' storages waiting (they say their line then, as before)."""
    if said is None:
        return True
    lock = said.get_lock()
    if not lock.acquire(timeout=0.5):
        return True
    try:
        if began <= said.value:
            return False
        said.value = ended
        return True
    finally:
        lock.release()


class _Backoff:
    """Waits between attempts of one operation. A busy (locked) SQLite database is
    waited on in short randomized steps for up to ``busy_timeout`` seconds; other
    transient errors (lost connection, server restarting, serialization) are
    retried with exponential backoff for up to ``retry_window`` seconds."""

    def __init__(self, busy_timeout: float, retry_window: float) -> None:
        self.busy_timeout, self.retry_window = busy_timeout, retry_window
        self.step, self.delay = _BUSY_STEP, 0.005
        self.busy_since: float | None = None
        self.failing_since: float | None = None

    def outage(self) -> bool:
        """Whether the attempts so far met an outage: any transient error, or a lock held OUTAGE_BUSY s."""
        return self.failing_since is not None or (
            self.busy_since is not None and time.monotonic() - self.busy_since >= OUTAGE_BUSY)

    def wait(self, *, busy: bool) -> str | None:
        """Sleep before the next attempt; or, past the limit, say why not (no sleep)."""
        now = time.monotonic()
        if busy:
            self.busy_since = now if self.busy_since is None else self.busy_since
            if now - self.busy_since >= self.busy_timeout:
                return f"still locked by another writer after busy_timeout={self.busy_timeout:g} s"
            time.sleep(self.step * (0.5 + random.random()))
            self.step = min(self.step * 1.5, _BUSY_STEP_MAX)
            return None
        self.failing_since = now if self.failing_since is None else self.failing_since
        if now - self.failing_since >= self.retry_window:
            return f"still failing after retry_window={self.retry_window:g} s of retries"
        time.sleep(self.delay * (1 + random.random()))
        self.delay = min(self.delay * 2, 1.0)
        return None


#: SQLite's texts as str, a byte that is not UTF-8 as U+FFFD (C-level: no cost per row)
_LENIENT_TEXT = functools.partial(str, encoding="utf-8", errors="replace")


def _sqlite_uri_engine(uri: str, connect_args: Mapping[str, Any]) -> Engine:
    """An engine whose connections open SQLite's ``uri`` (``mode=ro``, ``mode=rw``): a pool of
    connections, as for a file URL; "sqlite://" alone would pick SQLAlchemy's one-connection-per-thread
    pool for in-memory databases, which crashed under concurrent readers (the dashboard's threads)."""
    import sqlite3

    return sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, **connect_args),
                            poolclass=sa.pool.QueuePool)


def _listen_to_sqlite(engine: Engine, *, read_only: bool, synchronous: str) -> None:
    """Each new SQLite connection set up (WAL, ``synchronous``, foreign keys; none of the writing
    pragmas when ``read_only``), and each transaction begun by us: IMMEDIATE when it writes."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        # a text that is not UTF-8 (written by another program) ended every read of the file,
        # the study list's too; decoded with U+FFFD, its row is read as the others are
        dbapi_conn.text_factory = _LENIENT_TEXT
        cur = dbapi_conn.cursor()
        if not read_only:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")  # one of SQLITE_QUERY's, checked
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("tunesmith_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _close_pool(engine: Engine, pid: int) -> None:
    """Close the pooled connections of a storage no longer referenced, at once, in the process that
    opened them (a forked child leaves its parent's alone): SQLAlchemy's pool waited for the cyclic
    collector, and while another connection of the process held the file, SQLite kept each closed
    one's descriptor (``Study.load`` in a loop beside an open study: 25-29 descriptors)."""
    if os.getpid() == pid:
        engine.dispose()


class _NotRunning(Exception):
    """Raised inside a write transaction to roll it back: the trial it would fail no longer runs."""


class SQLStorage(Storage):
    """Storage in a SQL database, by SQLAlchemy URL.

    ``sqlite:///tunesmith.db`` (a file; the folder must exist) or
    ``postgresql+psycopg://user:pass@host/db``. A SQLite URL takes one query
    argument, ``?synchronous=normal`` (the default: WAL mode, a crashed process
    loses no commit, a power cut may lose the last ones), ``full`` or ``extra``
    (each commit waits for the disk); any other is refused. Tables are created on first use
    (on PostgreSQL under an advisory lock, so many workers may start at once on
    an empty database) and carry a schema version.

    Errors come out as :class:`~tunesmith.exceptions.StorageError` (naming the
    storage, password hidden, and the cause), or as its subclass
    :class:`~tunesmith.exceptions.SchemaVersionError` for tables this version
    does not read.

    Args:
        url: the database URL. It is kept as given, to connect (and to hand to
            worker processes); :attr:`display_url` hides its password.
        retry_window: seconds during which an operation that meets a transient
            error (connection lost, server restarting, serialization conflict)
            is retried with backoff before it fails with ``StorageError``
            (default 30: a database restart rides through; an outage longer
            than that stops the study).
        busy_timeout: seconds a SQLite write waits for another writer's lock.
        read_only: open for reading only (``tunesmith studies``, ``show`` and
            ``export`` do): a database on read-only media or in a folder the
            user cannot write is read without creating or changing anything;
            any write fails with ``StorageError``.
        synchronous: SQLite only, ``"normal"``, ``"full"`` or ``"extra"``: the
            URL's ``?synchronous=`` given as a keyword. It is written into
            :attr:`url`, which worker processes and Ray actors open, so they
            set it too; a URL that asks for another value is refused.
    """

    def __init__(
        self, url: str, *, retry_window: float = 30.0, busy_timeout: float = 30.0, read_only: bool = False,
        synchronous: str | None = None,
    ) -> None:
        if not isinstance(url, str):
            raise TypeError(f"SQLStorage takes a database URL ('sqlite:///path/to/file.db' or "
                            f"'postgresql+psycopg://user:password@host/db'), got {type(url).__name__} {url!r}")
        self.url = _with_synchronous(url, synchronous)
        self._sqlite = self.url.startswith("sqlite")  # read at every transaction and clock read
        self.retry_window = _seconds("retry_window", retry_window)
        self.busy_timeout = _seconds("busy_timeout", busy_timeout)
        self.read_only = read_only
        self._engine: Engine | None = None
        self._statements: Statements | None = None
        self._pid = -1
        self._warned: set[str] = set()  # unreadable rows already logged (see rows_to_trials)
        self._decoded = DecodedRows()  # unfinished trials a refresh read, not decoded again while unchanged
        self._reports = _Reports()  # running trials' intermediate values, encoded as last written
        self._immutable = False  # read-only SQLite that SQLite can only open as immutable
        self._absent = False  # read-only, and no file or no tables there: no studies
        self._path: Path | None = None  # SQLite: the database file
        self._path_text = ""  # the same as a str (stat at every write)
        self._synchronous = "NORMAL"  # SQLite: PRAGMA synchronous of a connection that writes (the URL's query)
        self._shown: str | None = None  # SQLite given by a relative path: the URL with the absolute one
        self._file_id: tuple[int, int] | None = None  # SQLite: its (device, inode) once opened
        self._file_checked = 0.0  # monotonic time of the last check of _file_id on a read
        self._wrote = False  # whether this storage wrote to the file (then a replaced file is an error)
        self._offset: tuple[float, float, float] | None = None  # (server - local clock, monotonic and local then)
        self._wrote_at = time.monotonic()  # when a write last got through (or the storage opened)
        self._outages: collections.deque[tuple[float, float]] = collections.deque(maxlen=OUTAGES_KEPT)  # monotonic
        self._said_lock, self._said_until = threading.Lock(), -math.inf  # the last outage warned of (_say_outage)
        self._said_shared: Any = None  # the same, shared with a run's other processes (share_outage_lines)
        self._waits: dict[object, tuple[int, float, _Backoff]] = {}  # operations retrying: (thread, _wrote_at, ...)
        self._check_url()
        self._init_schema()
        if self._path is not None and not self._absent:
            self._file_id = self._identity()

    def __reduce__(self) -> Any:
        """Pickled (and copied, as scikit-learn's ``clone`` of a search given this storage copies
        it) as its URL (password included) and settings: the copy opens its own connections to
        the same database (a SQLite file by its absolute path)."""
        return self._reopener(), ()

    def _reopener(self) -> functools.partial[SQLStorage]:
        """What opens this database again, with these settings, when called (a SQLite file by
        its absolute path); it pickles as text and numbers and opens nothing until called."""
        return functools.partial(type(self), self._shown or self.url, retry_window=self.retry_window,
                                 busy_timeout=self.busy_timeout, read_only=self.read_only)

    @property
    def display_url(self) -> str:
        """:attr:`url` with any password hidden, and a SQLite file given by a relative path
        (``sqlite:///x.db``) by its absolute one: messages say which file is meant."""
        return self._shown or super().display_url

    def clock(self) -> float:
        """Now by the database server's clock on PostgreSQL and MySQL (workers on several
        machines compare heartbeats with it): this process's clock plus the server's lead
        over it, measured with one query at most every CLOCK_CHECK seconds, and again as
        soon as this process's clock has stepped (CLOCK_STEP). SQLite (and any other
        database) has no server: this process's clock, so the machines that share a
        SQLite file must keep their clocks in step (NTP)."""
        if self._sqlite:  # read at every ask and tell: no property, no engine
            return self.local_clock()
        query = _SERVER_NOW.get(self.engine.dialect.name)
        if query is None:
            return self.local_clock()
        mono, local, then = time.monotonic(), self.local_clock(), self._offset
        if then is None or mono - then[1] >= CLOCK_CHECK or abs(local - then[2] - (mono - then[1])) > CLOCK_STEP:
            lead = self._lead(query)
            mono, local = time.monotonic(), self.local_clock()
            self._offset = then = (lead, mono, local)
        return local + then[0]

    def _lead(self, query: str) -> float:
        """The server's clock (``query``) less this process's, by the quickest of up to CLOCK_TRIES queries:
        the first one's retries may have waited out an outage, the next ones meet the server back. A query
        during which this process's clock stepped (its time and the monotonic clock's apart by over CLOCK_STEP)
        measured half the step too: another is made, and it is kept only where every one stepped."""
        best = (math.inf, 0.0)  # (the query's time, the lead it measured)
        lead = 0.0
        for _ in range(CLOCK_TRIES):
            start, before = time.monotonic(), self.local_clock()
            server = float(self._run(lambda c: c.execute(sa.text(query)).scalar_one(), write=False))
            took, after = time.monotonic() - start, self.local_clock()
            lead = server - (before + after) / 2
            if abs(after - before - took) <= CLOCK_STEP:
                best = min(best, (took, lead))
                if took <= CLOCK_ROUND_TRIP:
                    break
        return best[1] if best[0] < math.inf else lead

    # -- connections ------------------------------------------------------------
    @property
    def is_sqlite(self) -> bool:
        return self._sqlite

    def _check_url(self) -> None:
        if unencoded_at(self.url) is not None:
            raise ValueError(
                f"storage {self.display_url!r}: its user name or password holds an '@' that is not "
                "percent-encoded, so the host cannot be told apart; write '@' as %40 ('/' as %2F, ':' as %3A, "
                "'%' as %25), e.g. urllib.parse.quote(password, safe='')"
            )
        try:
            parsed = sa.engine.make_url(self.url)
        except sa.exc.ArgumentError:
            raise ValueError(
                f"storage {self.display_url!r} is not a database URL; use e.g. 'sqlite:///tunesmith.db' "
                "or 'postgresql+psycopg://user:password@host/dbname'"
            ) from None
        except ValueError as exc:  # a port that is not a number: int()'s message named no storage
            raise ValueError(f"storage {self.display_url!r}: its port must be a number ({exc})") from None
        if parsed.get_backend_name() == "sqlite":
            self._check_sqlite_url(parsed)

    def _check_sqlite_url(self, parsed: sa.engine.URL) -> None:
        """A SQLite URL's file: named with three slashes, not in memory, in a folder that exists, a regular
        file; the URL's ``synchronous`` and the resolved path noted."""
        if parsed.host:
            # "sqlite://tunesmith.db": the file's name read as a host; "sqlite://runs/t.db": the folder, and
            # ./t.db was read (read-only) or SQLAlchemy's "Invalid SQLite URL" came as a traceback (writing)
            db = parsed.database or ""
            meant = db if db.startswith("/") else "/".join(p for p in (parsed.host, db) if p)
            raise ValueError(
                f"storage {self.display_url!r} " + ("names no file" if not db else
                                                    f"reads {parsed.host!r} as a host (a SQLite URL names none)")
                + f": a SQLite URL has three slashes before a relative path, 'sqlite:///{meant}' (four before "
                "an absolute one, 'sqlite:////abs/path.db')"
            )
        if parsed.database in (None, "", ":memory:"):
            raise ValueError(
                "an in-memory SQLite database cannot be shared; use storage=None for memory "
                "or 'sqlite:///path/to/file.db'"
            )
        self._synchronous = _sqlite_synchronous(parsed.query, self.display_url)
        if not self.read_only:
            _check_link(Path(str(parsed.database)).expanduser(), self.url)
        path = self._path = Path(str(parsed.database)).expanduser().resolve()
        self._path_text = str(path)
        if not Path(str(parsed.database)).is_absolute():  # "sqlite:///x.db", "~/x.db": which file
            self._shown = parsed.set(database=str(path)).render_as_string(hide_password=False)
        if not path.parent.is_dir() and not self.read_only:  # read-only: a file not there, read as empty
            raise ValueError(f"storage {self.url!r}: folder {path.parent} does not exist; create it first")
        _check_regular(path, self.url)
        _check_beside(path, self.url, self.read_only)
        alone = "" if self.read_only else log_alone(path)
        if alone:  # creating the file here would have SQLite delete the log: the study's writes
            raise ValueError(f"storage {self.display_url!r}: {alone}")
        self._absent = self.read_only and not path.is_file()  # read as empty, never created

    @property
    def engine(self) -> Engine:
        # a forked worker must not reuse its parent's connections
        if self._engine is None or self._pid != os.getpid():
            if self._engine is not None:
                self._engine.dispose(close=False)
                self._waits = {}  # the parent's threads' waits: none of this process, under way for good here
            self._engine = self._make_engine()
            self._statements = Statements(_HOT, self._engine)
            self._pid = os.getpid()
            weakref.finalize(self, _close_pool, self._engine, self._pid).atexit = False
        return self._engine

    def _make_engine(self) -> Engine:
        if not self.is_sqlite:
            return self._server_engine()
        engine = self._sqlite_engine()
        # not self: the listener would keep the storage, and its connections, to a collection
        _listen_to_sqlite(engine, read_only=self.read_only, synchronous=self._synchronous)
        if self._path is not None:  # looked at again as each connection opens, before SQLite reads them
            event.listen(engine, "connect", functools.partial(_check_beside_at_connect, self._path, self.url,
                                                                 self.read_only),
                         insert=True)
        return engine

    def _server_engine(self) -> Engine:
        """The engine of a database server's URL (PostgreSQL), or an error naming the missing driver
        or the unknown kind of database."""
        try:
            url = sa.engine.make_url(self.url)
            engine = sa.create_engine(url, pool_pre_ping=True, future=True,
                                      connect_args=connection_defaults(url) if url.get_backend_name() == "postgresql"
                                      else {})
        except ModuleNotFoundError as exc:
            raise ImportError(
                f"storage {self.display_url!r} needs a database driver ({exc.name}); for PostgreSQL "
                "install the extra: pip install 'tunesmith[postgres]'"
            ) from None
        except sa.exc.NoSuchModuleError:  # an unknown scheme: it ended in a traceback
            scheme = self.url.split("://", 1)[0]
            hint = " (SQLAlchemy has no 'postgres' alias)" if scheme == "postgres" else ""
            raise StorageError(
                f"storage {self.display_url!r}: unknown database kind {scheme!r}{hint}; use "
                "sqlite:///path/to/file.db or postgresql+psycopg://user:password@host/db"
            ) from None
        if engine.dialect.name == "postgresql":  # a database others may create objects in
            pin_search_path(engine, self.display_url)
        return engine

    def _sqlite_engine(self) -> Engine:
        """The engine of the SQLite file: read only, opened again (a forked worker's), or opened first."""
        # SQLite's own busy handler sleeps 1, 2, 5, 10, ... ms between tries, long
        # next to our sub-millisecond transactions: it only gets a short wait here,
        # and _retry waits on a busy database in short randomized steps instead.
        connect_args: dict[str, Any] = {"timeout": min(_SQLITE_DRIVER_WAIT, self.busy_timeout),
                                        "check_same_thread": False}
        if self.read_only:
            return _sqlite_uri_engine(self._read_only_uri(), connect_args)
        if self._file_id is not None:  # the file was opened: a new connection (a forked worker's)
            # never makes a new, empty database where it was deleted (mode=rw)
            uri = self._path.expanduser().resolve().as_uri() + "?mode=rw" if self._path is not None else ""
            return _sqlite_uri_engine(uri, connect_args)
        # the path checked in _check_url: "~" expanded (SQLite itself looked for a folder named "~")
        assert self._path is not None
        url = sa.engine.make_url(self.url).set(database=str(self._path), query={})  # the query is ours
        return sa.create_engine(url, connect_args=connect_args)

    def _read_only_uri(self) -> str:
        """SQLite's URI for reading the file without writing: ``mode=ro``; ``immutable=1``
        where SQLite cannot create the WAL index beside it (a read-only folder or
        medium: then nobody is writing it either)."""
        path = Path(str(sa.engine.make_url(self.url).database)).expanduser().resolve()
        return path.as_uri() + ("?mode=ro&immutable=1" if self._immutable else "?mode=ro")

    def _run(self, fn: Callable[[Connection], T], *, write: bool) -> T:
        """Run ``fn`` in one SQLAlchemy transaction, retrying transient failures."""
        self._check_writable(write)

        def once() -> T:
            with self.engine.connect() as conn:
                if write:
                    conn.execution_options(tunesmith_write=True)
                with conn.begin():
                    return fn(conn)

        return self._retry(once, write=write)

    def _tx(self, fn: Callable[[Cursor], T], *, write: bool) -> T:
        """Run ``fn`` on a DBAPI cursor in one transaction (the hot path; see prepared.py).

        SQLite writes open with ``BEGIN IMMEDIATE``; a lone SQLite read runs in
        autocommit mode (one statement sees one snapshot); PostgreSQL opens its
        transactions implicitly and writes take the study's row lock in ``fn``.
        """
        self._check_writable(write)
        begin = "BEGIN IMMEDIATE" if write and self._sqlite else None
        return self._retry(lambda: run_transaction(self.engine, self._stmts(), fn, begin=begin), write=write)

    def _check_writable(self, write: bool) -> None:
        if write and self.read_only:
            raise StorageError(f"storage {self.display_url!r} was opened read-only (read_only=True); "
                               "open it without read_only to write")
        if self._file_id is not None:
            self._check_file(write)

    def _check_file(self, write: bool) -> None:
        """Whether the SQLite file is still the one opened: at every write, and at a
        read at most every FILE_CHECK seconds (a stat each). A file deleted or
        replaced under a process that wrote to it is an error (its trials in
        flight belong to the old file); a process that only read (a dashboard,
        ``tunesmith show``) reopens a replaced file, as after a restore from a backup."""
        if not write:
            now = time.monotonic()
            if now - self._file_checked < FILE_CHECK:
                return
            self._file_checked = now
        current = self._identity()
        if current == self._file_id:
            self._wrote = self._wrote or write
            return
        if current is not None and not write and not self._wrote:
            logger.warning("storage %r: the database file was replaced; reading the new one", self.display_url)
            self.engine.dispose()
            self._file_id = current
            return
        raise StorageError(
            f"storage {self.display_url!r}: the database file was "
            f"{'deleted' if current is None else 'replaced'} while this process had it open, so "
            f"{'what it writes would go to no file' if write else 'what it reads would be stale'}; "
            "restore the file from a backup or start the study again"
        )

    def _identity(self) -> tuple[int, int] | None:
        """The SQLite file's (device, inode); None where there is no file."""
        assert self._path is not None
        try:
            st = os.stat(self._path_text)  # a str: Path.stat costs 3 Python calls more (at every write)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def _stmts(self) -> Statements:
        assert self._statements is not None  # set with the engine
        return self._statements

    def _retry(self, once: Callable[[], T], *, write: bool) -> T:
        """``once()``, again after transient errors (see :class:`_Backoff`); what
        still fails is raised as StorageError (IntegrityError, which callers
        handle, as it is)."""
        try:
            result = once()
        except IntegrityError:
            raise
        except Exception as exc:  # noqa: BLE001 - sorted by _kind in _wait_out
            return self._wait_out(once, exc, write=write)
        if write:
            self._wrote_at = time.monotonic()
        return result

    def _wait_out(self, once: Callable[[], T], exc: Exception, *, write: bool) -> T:
        """``once()`` again, its first attempt having failed with ``exc``. Meanwhile the wait is an outage
        under way (:meth:`outages`), counted from the last write that got through before it: a SQLite read
        passes while another process holds the write lock that keeps every worker's beats out, and a worker
        may have met the outage long before this process did."""
        backoff = _Backoff(self.busy_timeout, self.retry_window)
        token = object()
        self._waits[token] = (threading.get_ident(), self._wrote_at, backoff)
        began, first, retries = time.monotonic(), exc, 0
        try:
            while True:
                kind = self._kind(exc)
                if kind is None:
                    raise exc
                gave_up = "" if kind == "fatal" else backoff.wait(busy=kind == "busy")
                if gave_up is not None:
                    raise self._error(exc, gave_up) from exc
                retries += 1
                try:
                    result = once()
                except IntegrityError:
                    raise
                except Exception as again:  # noqa: BLE001 - sorted by _kind above
                    exc = again
                    continue
                now = time.monotonic()
                if backoff.outage():
                    self._outages.append((self._waits[token][1], now))
                    self._say_outage(began, now, retries, first)
                if write:
                    self._wrote_at = now
                return result
        finally:
            self._waits.pop(token, None)  # (a forked child's storage starts without its parent's)

    def _say_outage(self, began: float, ended: float, retries: int, first: Exception) -> None:
        """One warning as an outage of at least OUTAGE_BUSY s that this process rode out ends: how long,
        how many retries, the first error. A team running many machines saw nothing at all, not even in a
        worker's log, and could not tell why its trials took longer. Once per outage: the other threads'
        operations that waited through the same one (a heartbeat's) say nothing more, nor do the other
        processes of the same run (:meth:`share_outage_lines`: ``n_jobs`` worker processes wrote one each)."""
        with self._said_lock:
            if ended - began < OUTAGE_BUSY or began <= self._said_until:
                return
            self._said_until = ended
            if not _first_to_say(self._said_shared, began, ended):
                return
        cause = (str(getattr(first, "orig", None) or first).strip().splitlines() or [type(first).__name__])[0]
        logger.warning("storage %r did not answer for %.1f s (%s, after: %s); it answers again",
                       self.display_url, ended - began, plural(retries, "retry", "retries"), cause[:200])

    def share_outage_lines(self, said: Any) -> None:
        self._said_shared = said

    def outages(self) -> list[tuple[float, float]]:
        """:meth:`Storage.outages`, and those under way: this thread's operation waiting (any wait: it is
        what a write judging a trial in its transaction has met) and other threads' waits of an outage's
        length (a beat of this process held up by a lock), each until now."""
        if not self._outages and not self._waits:
            return []
        now, me = time.monotonic(), threading.get_ident()
        spans = list(self._outages) + [(last, now) for thread, last, backoff in self._waits.copy().values()
                                       if thread == me or backoff.outage()]  # fmt: skip
        # the server's lead as last measured (the heartbeat check read the clock just before): asked inside a
        # write's transaction, a new measure would be a second connection's query, the study row locked meanwhile
        lead = self._offset[0] if self._offset is not None else self.clock() - self.local_clock()
        shift = self.local_clock() + lead - time.monotonic()
        return [(last + shift, again + shift) for last, again in spans]

    def _kind(self, exc: Exception) -> str | None:
        """``busy``, ``transient`` or ``fatal`` for a database error; None for any other."""
        if isinstance(exc, DBAPIError):
            if not self._transient(exc):
                return "fatal"
            return "busy" if _is_busy(exc) else "transient"
        if isinstance(exc, sa.exc.DisconnectionError):
            return "transient"
        dbapi = getattr(self.engine.dialect, "dbapi", None)
        if dbapi is not None and isinstance(exc, dbapi.Error):  # raised by the driver unwrapped
            fatal = not isinstance(exc, dbapi.OperationalError) or any(s in str(exc).lower() for s in _FATAL)
            return "fatal" if fatal else "transient"
        return None

    def _error(self, exc: BaseException, gave_up: str | None = None) -> StorageError:
        """A StorageError naming this storage (password hidden) and the cause."""
        cause = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
        hint = _hint(cause, self._path)
        parts = [f"storage {self.display_url!r}: {cause}", gave_up, hint]
        return StorageError("; ".join(p for p in parts if p))

    @staticmethod
    def _transient(exc: DBAPIError) -> bool:
        text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
        if any(s in text for s in _FATAL):  # retrying cannot help: say so at once
            return False
        if exc.connection_invalidated:
            return True
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
                "the database system is starting up",
                "the database system is shutting down",
            )
        )

    # -- schema ---------------------------------------------------------------------
    def _init_schema(self) -> None:
        if self._absent:
            return
        try:
            if self.read_only:
                self._run(self._check_schema, write=False)
            else:
                self._run(self._create_schema, write=True)
            if not self.is_sqlite:
                self._run(lambda c: warn_other_writers(c, self.display_url), write=False)
        except StorageError as exc:
            cannot_index = any(k in str(exc) for k in ("readonly", "unable to open"))
            if self.read_only and self.is_sqlite and not self._immutable and cannot_index:
                self._immutable = True  # no WAL index can be made beside it: read it as immutable
                self.close()
                return self._init_schema()
            if isinstance(exc, SchemaVersionError):
                raise
            raise StorageError(f"cannot open {exc}") from exc.__cause__

    def _create_schema(self, conn: Connection) -> None:
        if conn.dialect.name == "postgresql":  # workers starting at once on an empty database
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        found = set(sa.inspect(conn).get_table_names(schema=tables_schema(conn))) & set(metadata.tables)
        if not found:
            metadata.create_all(conn)
            conn.execute(sa.insert(meta_table).values(key="schema_version", value=str(SCHEMA_VERSION)))
            return
        self._check_schema(conn)

    def _check_schema(self, conn: Connection) -> None:
        """Refuse tables this version cannot read: a newer or unreadable schema
        version, a missing version row, a table lacking a column."""
        tables = set(sa.inspect(conn).get_table_names(schema=tables_schema(conn))) & set(metadata.tables)
        if not tables:  # only when read-only (else they were just made): a database with no study yet
            self._absent = True
            return
        if tables != set(metadata.tables):
            missing = sorted(set(metadata.tables) - tables)
            raise SchemaVersionError(
                f"storage {self.display_url!r} has tunesmith's tables but not {missing}: it was damaged or "
                "altered; restore it from a backup or use a new database"
            )
        found = self._stored_version(conn)
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"storage {self.display_url!r} has schema version {found}, written by a newer tunesmith; "
                f"this one reads up to version {SCHEMA_VERSION}. Upgrade: pip install -U tunesmith"
            )
        if found < SCHEMA_VERSION:
            self._migrate(conn, found)
        self._check_columns(conn)

    def _stored_version(self, conn: Connection) -> int:
        where = f"storage {self.display_url!r}"
        try:
            row = conn.execute(
                sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")
            ).first()
        except DBAPIError as exc:
            if self._kind(exc) != "fatal":  # a connection lost as it read: retried (it ended the worker)
                raise
            raise SchemaVersionError(f"{where}: cannot read its schema version ({exc.orig})") from exc
        if row is None:
            raise SchemaVersionError(
                f"{where}: table ts_meta has no schema_version row, so which tunesmith wrote it is unknown; "
                f"if it holds version {SCHEMA_VERSION} tables, restore the row: "
                f"INSERT INTO ts_meta VALUES ('schema_version', '{SCHEMA_VERSION}')"
            )
        try:
            return int(row.value)
        except ValueError:
            raise SchemaVersionError(
                f"{where}: its schema version {row.value!r} (table ts_meta) is not an integer"
            ) from None

    def _legacy_split(self, trial: str, attrs_text: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """A schema-1 row's attrs without the bookkeeping keys, and those keys as ``system``; None
        when it holds none, or when it does not hold what tunesmith writes (changed outside it): that
        row is left as it is, so the upgrade goes on and the row reads as unreadable, its column named."""
        try:
            attrs = _json_object("attrs", attrs_text)
            system = {new: attrs.pop(old) for old, new in _LEGACY_KEYS.items() if old in attrs}
            return (attrs, SystemState.from_dict(system).to_dict()) if system else None
        except (_BadColumn, ValueError, TypeError) as exc:
            logger.warning("upgrading %s: the attrs of %s left as they are: %s",
                           self.display_url, trial, f"column {exc.column} {exc.why}"
                           if isinstance(exc, _BadColumn) else exc)
            return None

    def _check_columns(self, conn: Connection) -> None:
        inspector = sa.inspect(conn)
        for table in metadata.sorted_tables:
            have = {c["name"] for c in inspector.get_columns(table.name, schema=tables_schema(conn))}
            missing = [c.name for c in table.columns if c.name not in have]
            if missing:
                raise SchemaVersionError(
                    f"storage {self.display_url!r}: table {table.name} lacks column(s) {missing} of "
                    f"schema version {SCHEMA_VERSION}; it was altered or damaged: restore it from a backup "
                    "or use a new database"
                )

    def _migrate(self, conn: Connection, found: int) -> None:
        """Bring an older schema up to :data:`SCHEMA_VERSION`, in the opening transaction.

        1 -> 2: trials get the ``system`` column; the study's bookkeeping keys move
        there out of the user's ``attrs`` (where version 1 kept them); the state
        index also orders by number (reading the head of the queue uses it).
        """
        if found != 1:
            raise SchemaVersionError(f"no migration from schema version {found} to {SCHEMA_VERSION}")
        if self.read_only:
            raise SchemaVersionError(
                f"storage {self.display_url!r} has schema version {found}; this tunesmith uses version "
                f"{SCHEMA_VERSION}, and opened read-only (read_only=True, as tunesmith studies, show, export, "
                "plot and report open it) it cannot upgrade it. Upgrade it in place once (older tunesmith versions cannot read it "
                f"after): python -c \"import tunesmith as ts; ts.SQLStorage('{self.display_url}')\""
                + password_note(self.display_url)
            )
        conn.execute(sa.text(f"ALTER TABLE {qualified(conn, 'ts_trials')} ADD COLUMN system TEXT NOT NULL DEFAULT '{{}}'"))
        conn.execute(sa.text(f"DROP INDEX {qualified(conn, 'ts_trials_state')}"))
        next(i for i in trials_table.indexes if i.name == "ts_trials_state").create(conn)
        t = trials_table.c
        rows = sa.select(t.trial_id, t.attrs, t.number, studies_table.c.name).outerjoin(studies_table)  # every row
        for trial_id, attrs_text, number, study in conn.execute(rows).all():
            moved = self._legacy_split(f"trial {number} of study {study!r} (trial_id={trial_id} in table ts_trials)", attrs_text)
            if moved:
                conn.execute(
                    sa.update(trials_table).where(t.trial_id == trial_id)
                    .values(attrs=_dumps(moved[0]), system=_dumps(moved[1]))
                )  # fmt: skip
        conn.execute(
            sa.update(meta_table).where(meta_table.c.key == "schema_version").values(value=str(SCHEMA_VERSION))
        )
        logger.warning("upgraded %s from schema version %d to %d: a tunesmith that reads only version %d "
                       "(on another machine, say) cannot open it now; upgrade it there too",
                       self.display_url, found, SCHEMA_VERSION, found)

    # -- studies ------------------------------------------------------------------------
    def create_study(
        self, name: str, *, direction: Direction, space: Mapping[str, Any], config: Mapping[str, Any]
    ) -> StudyRecord:
        return self._create_study(name, direction, space, config, ())

    def create_study_with_trials(
        self, name: str, *, direction: Direction, space: Mapping[str, Any], config: Mapping[str, Any],
        trials: Sequence[FrozenTrial],
    ) -> StudyRecord:
        if not trials:  # as create_study (a subclass's own, too)
            return self.create_study(name, direction=direction, space=space, config=config)
        return self._create_study(name, direction, space, config, trials)

    def create_studies(self, new: Sequence[NewStudy]) -> list[StudyRecord]:
        made: list[StudyRecord] = []

        def op(conn: Connection) -> list[StudyRecord]:
            made.clear()  # a retry starts again
            for n in new:
                made.append(self._create_study(n.name, n.direction, n.space, n.config, n.trials, conn=conn))
            return made

        try:
            return self._run(op, write=True)
        except IntegrityError:
            names = " or ".join(repr(n.name) for n in new)
            raise DuplicateStudyError(f"a study named {names} already exists in {self.display_url}") from None

    def _create_study(self, name: str, direction: Direction, space: Mapping[str, Any], config: Mapping[str, Any],
                      trials: Sequence[FrozenTrial], *, conn: Connection | None = None) -> StudyRecord:
        """The study and its ``trials`` (numbered 0, 1, ... in order) in one transaction (``conn``'s)."""
        check_study_name(name)
        space_text = _space_text(space)
        rows = [{"number": i, "claim": None, "token": uuid.uuid4().hex, **_trial_values(t)}
                for i, t in enumerate(trials)]

        def op(conn: Connection) -> StudyRecord:
            exists = conn.execute(
                sa.select(studies_table.c.study_id).where(studies_table.c.name == name)
            ).first()
            if exists:
                raise DuplicateStudyError(f"a study named {name!r} already exists in {self.display_url}")
            now = time.time()
            row = {"name": name, "direction": direction.value, "space": space_text,
                   "config": _dumps(dict(config)), "created": now}
            if conn.dialect.name == "sqlite":  # SQLite reuses the largest id once deleted (PostgreSQL never)
                row["study_id"] = _next_study_id(conn)
            res = conn.execute(sa.insert(studies_table).values(**row))
            (sid,) = res.inserted_primary_key  # type: ignore[misc]
            if rows:
                conn.execute(sa.insert(trials_table), [{**r, "study_id": sid} for r in rows])
            # as the database keeps it (PostgreSQL 11 prints 15 digits, MySQL's FLOAT is single): what
            # every other process reads, and the checkpoint folders' marks name (train/retention.py)
            now = float(conn.execute(sa.select(studies_table.c.created).where(studies_table.c.study_id == sid)).scalar_one())
            return StudyRecord(int(sid), name, direction, dict(space), dict(config), now)

        if conn is not None:
            return op(conn)
        try:
            return self._run(op, write=True)
        except IntegrityError:
            raise DuplicateStudyError(f"a study named {name!r} already exists in {self.display_url}") from None

    def _study(self, r: Any) -> StudyRecord:
        """A study's record from its row; a row that does not hold what tunesmith writes
        is a StorageError naming the study and the column (see :func:`tuple_to_trial`)."""
        try:
            return study_record(r)
        except ValueError as exc:
            raise StorageError(
                f"storage {self.display_url!r}: study {r.name!r} (table ts_studies, study_id={r.study_id}) {exc}; "
                "it was changed outside tunesmith: restore it from a backup or delete the study"
            ) from None

    def get_study(self, name: str) -> StudyRecord:
        check_study_name(name, lookup=True)
        if self._absent:
            where = ("it holds no studies" if self._path is None or self._path.is_file()
                     else log_alone(self._path) or "there is no database file at " + repr(str(self._path))
                     + beside_text(self.url))  # fmt: skip
            raise StudyNotFound(f"no study named {name!r} in {self.display_url} ({where})")
        row = self._run(lambda c: _study_row(c, name, studies_table), write=False)
        if row is None:
            raise StudyNotFound(f"no study named {name!r} in {self.display_url}{self._closest(name)}")
        return self._study(row)

    def _closest(self, name: str) -> str:
        """`` (did you mean 'x'?)`` for the stored study name closest to ``name``, or ``""``."""
        names = self._run(lambda c: c.execute(sa.select(studies_table.c.name)).scalars().all(), write=False)
        close = difflib.get_close_matches(name, [str(n) for n in names], n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""

    def held_beside(self, name: str) -> str:
        """`` (sqlite:///search.db in its folder holds one)`` for the SQLite files beside this one that
        hold a study ``name`` (a search stored in ``search.db``, a command reading ``tunesmith.db``), where
        no stored name is close. Not part of :meth:`get_study`: each new study's lookup opened them all."""
        if self._path is None or self._absent or self._closest(name):
            return ""
        found = databases_beside(self.url, study=name)
        return f" ({', '.join(found)} in its folder {'hold' if len(found) > 1 else 'holds'} one)" if found else ""

    def list_studies(self) -> list[StudyRecord]:
        if self._absent:
            return []
        rows = self._run(
            lambda c: c.execute(sa.select(studies_table).order_by(studies_table.c.study_id)).all(),
            write=False,
        )
        out = []
        for r in rows:  # one unreadable study hides none of the others
            try:
                out.append(self._study(r))
            except StorageError as exc:
                logger.warning("%s (left out of the list)", exc)
        return out

    def delete_study(self, name: str) -> None:
        check_study_name(name, lookup=True)
        if self._absent:
            raise StudyNotFound(f"no study named {name!r} in {self.display_url} (it holds no studies)")

        def op(conn: Connection) -> bool:
            # the id, not get_study: a study whose row is unreadable can be deleted too
            row = _study_row(conn, name, studies_table.c.study_id, studies_table.c.name)
            if row is None:
                return False
            sid = row.study_id
            conn.execute(sa.delete(trials_table).where(trials_table.c.study_id == sid))
            conn.execute(sa.delete(studies_table).where(studies_table.c.study_id == sid))
            if conn.dialect.name == "sqlite":
                _set_meta(conn, _DELETED_ID, str(max(int(sid), _deleted_id(conn))))
            return True

        if not self._run(op, write=True):  # looked up and deleted in one transaction
            raise StudyNotFound(f"no study named {name!r} in {self.display_url}")

    # -- trials ---------------------------------------------------------------------------
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
        system: SystemState | None = None,
    ) -> FrozenTrial | None:
        now = self.clock() if now is None else now
        running = state is TrialState.RUNNING
        template = FrozenTrial(
            number=0,
            state=state,
            params=dict(params),
            worker=worker if running else None,
            started=now if running else None,
            heartbeat=now if running else None,
            attrs=dict(attrs or {}),
            system=system or NO_SYSTEM,
        )
        return self._insert_first(study_id, [(template, claim)], uuid.uuid4().hex)

    def create_first_free(
        self, study_id: int, candidates: Sequence[tuple[Mapping[str, Any], str]], *, worker: str | None = None,
    ) -> FrozenTrial | None:
        now = self.clock()
        records = [(FrozenTrial(number=0, state=TrialState.RUNNING, params=dict(params), worker=worker, started=now,
                                heartbeat=now), claim) for params, claim in candidates]
        return self._insert_first(study_id, records, uuid.uuid4().hex)

    def insert_claimed(self, study_id: int, record: FrozenTrial, claim: str | None) -> FrozenTrial | None:
        return self._insert_first(study_id, [(record, claim)], uuid.uuid4().hex)

    def _insert_first(self, study_id: int, records: Sequence[tuple[FrozenTrial, str | None]],
                      token: str) -> FrozenTrial | None:
        """Insert the first of ``records`` whose claim is free as the study's next trial, in one
        transaction; None if every one's claim is held."""
        tried = [False]

        def op(cur: Cursor) -> FrozenTrial | None:
            done = self._begin_write(cur, study_id, token, tried)
            if done is not None:
                return done
            for record, claim in records:
                if claim is not None and cur.first("claimed", {"sid": study_id, "claim": claim}):
                    continue
                number = self._next_number(cur, study_id)
                values = {"sid": study_id, "claim": claim, "token": token, **_trial_values(record), "number": number}
                return record.replace(number=number, trial_id=self._insert(cur, values))
            return None

        try:
            return self._tx(op, write=True)
        except IntegrityError as exc:
            if any(claim is not None for _, claim in records):
                return None
            raise self._collision(study_id, exc) from exc

    def insert_trials(self, study_id: int, records: Sequence[FrozenTrial]) -> list[FrozenTrial]:
        """All in one transaction: a copy of thousands of trials commits once, not twice a trial."""
        if not records:
            return []
        tokens = [uuid.uuid4().hex for _ in records]
        values = [{"sid": study_id, "claim": None, "token": tok, **_trial_values(r)} for r, tok in zip(records, tokens, strict=True)]
        tried = [False]

        def op(cur: Cursor) -> list[FrozenTrial]:
            if self._begin_write(cur, study_id, tokens[0], tried) is not None:  # an earlier attempt committed them all
                return [tuple_to_trial(cur.first("by_token", {"token": tok}), self._warned) for tok in tokens]
            first = self._next_number(cur, study_id)
            return [r.replace(number=first + i, trial_id=self._insert(cur, {**v, "number": first + i}))
                    for i, (r, v) in enumerate(zip(records, values, strict=True))]

        try:
            return self._tx(op, write=True)
        except IntegrityError as exc:
            raise self._collision(study_id, exc) from exc

    def _next_number(self, cur: Cursor, study_id: int) -> int:
        number = cur.first("next_number", {"sid": study_id})[0]
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < _MAX_NUMBER:
            raise StorageError(
                f"storage {self.display_url!r}: the next trial number of study id {study_id} would be "
                f"{number!r}: the trial numbers in table ts_trials were changed outside tunesmith; restore "
                "the table from a backup or delete the rows whose number is not a small integer"
            )
        return number

    def _insert(self, cur: Cursor, values: dict[str, Any]) -> int:
        """Insert one trial row; its trial_id."""
        returning = not self._sqlite  # SQLite: cursor.lastrowid works on every version
        cur.execute("insert_returning" if returning else "insert", values)
        return int(cur.fetchone()[0] if returning else cur.lastrowid)

    def _collision(self, study_id: int, exc: IntegrityError) -> Exception:
        if not self._study_exists(study_id):  # the foreign key: deleted while this process used it
            return self._deleted(study_id)
        return StorageError(
            f"storage {self.display_url!r}: a new trial of study id {study_id} collides with a stored row "
            f"({self._error(exc)}): the trial numbers in table ts_trials were changed outside tunesmith; "
            "restore the table from a backup or delete the rows whose number is not a small integer"
        )

    def _deleted(self, study_id: int) -> StudyNotFound:
        return StudyNotFound(
            f"the study (id {study_id}) is no longer in {self.display_url}: it was deleted while this process "
            "ran it (tunesmith delete, Study.delete, or by hand)"
        )

    def _study_exists(self, study_id: int) -> bool:
        table = studies_table
        row = self._run(lambda c: c.execute(sa.select(table.c.study_id).where(table.c.study_id == study_id)).first(),
                        write=False)
        return row is not None

    def _begin_write(self, cur: Cursor, study_id: int, token: str, tried: list[bool]) -> FrozenTrial | None:
        """Lock the study; on a retry, the record an earlier attempt of this very
        operation committed before its connection broke (found by its token)."""
        self._lock_hot(cur, study_id)
        if tried[0]:
            done = cur.first("by_token", {"token": token})
            if done is not None:
                return tuple_to_trial(done, self._warned)
        tried[0] = True
        return None

    def _lock_hot(self, cur: Cursor, study_id: int) -> None:
        if not self._sqlite:  # SQLite's BEGIN IMMEDIATE already serializes writers
            cur.execute("lock_study", {"sid": study_id})

    def update_trial(
        self,
        study_id: int,
        trial: FrozenTrial,
        *,
        expect_state: TrialState | None = None,
        expect: Callable[[FrozenTrial], bool] | None = None,
    ) -> bool:
        check_expect(expect_state, expect)
        try:
            return self._update_trial(study_id, trial, expect_state, expect)
        except TrialNotFound:
            if not self._study_exists(study_id):
                raise self._deleted(study_id) from None
            raise

    def _update_trial(
        self,
        study_id: int,
        trial: FrozenTrial,
        expect_state: TrialState | None,
        expect: Callable[[FrozenTrial], bool] | None,
    ) -> bool:
        values = _trial_values(trial, self._reports.encode(study_id, trial))
        where = {"w_sid": study_id, "w_number": trial.number}
        if expect_state is not None:
            args = {**values, **where}
            return self._compare_and_set(study_id, trial.number, args, TrialState(expect_state), expect)

        def op(cur: Cursor) -> bool:
            if cur.execute("update_unfinished", {**values, **where}).rowcount != 0:
                return True
            row = cur.first("get_stored", {"sid": study_id, "number": trial.number})
            if row is None:
                raise TrialNotFound(f"study has no trial number {trial.number}")
            stored = dict(zip(_STORED_KEYS, row, strict=True))
            if any(stored[k] != values[k] for k in _STORED_KEYS):  # a retried write that had committed is fine
                raise TrialFinishedError(
                    f"trial {trial.number} is already {stored['state']}; finished trials never change"
                )
            return True

        return self._tx(op, write=True)

    def _compare_and_set(
        self,
        study_id: int,
        number: int,
        args: dict[str, Any],
        state: TrialState,
        expect: Callable[[FrozenTrial], bool] | None = None,
    ) -> bool:
        """A conditional UPDATE. Only a retry (the connection broke after a commit whose
        answer was lost) may find its own record stored and count it as won. With
        ``expect``, the stored record is read and judged in the write transaction,
        the study and the trial's row locked (PostgreSQL; SQLite's BEGIN IMMEDIATE
        already is), so no other writer changes it between the judgement and the
        write (a beat, or a worker taking the trial, locks no study)."""
        args = {**args, "w_state": state.value}
        tried = [False]
        at = {"sid": study_id, "number": number}

        def own(cur: Cursor) -> bool:
            row = cur.first("get_stored", at)
            if row is None:
                raise TrialNotFound(f"study has no trial number {number}")
            return all(a == args[k] for k, a in zip(_STORED_KEYS, row, strict=True))

        def op(cur: Cursor) -> bool:
            retry, tried[0] = tried[0], True
            if expect is not None:
                self._lock_hot(cur, study_id)
                if retry and own(cur):
                    return True
                row = cur.first("one_trial_locked", at)
                if row is None:
                    raise TrialNotFound(f"study has no trial number {number}")
                if not expect(tuple_to_trial(row, self._warned)):
                    return False
            if cur.execute("update_if_state", args).rowcount != 0:
                return True
            return own(cur) and retry  # own() first: no such trial raises

        return self._tx(op, write=True)

    def fail_with_copy(
        self, study_id: int, failed: FrozenTrial, *, claim: str, confirm: Callable[[], bool] | None = None
    ) -> FrozenTrial | None:
        """One transaction: a process killed midway leaves neither the copy nor the failed record;
        ``confirm()`` asked once it holds the write lock."""
        token = uuid.uuid4().hex
        copy = FrozenTrial(number=0, state=TrialState.WAITING, params=dict(failed.params),
                           system=failed.system.copy_of(failed.number))  # fmt: skip
        tried = [False]

        def record(number: int) -> tuple[FrozenTrial, dict[str, Any]]:
            new = failed.replace(system=failed.system.replace(requeued_as=number))
            return new, {**_trial_values(new, self._reports.encode(study_id, new)), "w_sid": study_id,
                         "w_number": failed.number, "w_state": TrialState.RUNNING.value}  # fmt: skip

        def committed(cur: Cursor, args: dict[str, Any]) -> bool:
            row = cur.first("get_stored", {"sid": study_id, "number": failed.number})
            return row is not None and all(a == args[k] for k, a in zip(_STORED_KEYS, row, strict=True))

        def op(cur: Cursor) -> FrozenTrial | None:
            retry, tried[0] = tried[0], True
            self._lock_hot(cur, study_id)
            held = cur.first("claimed", {"sid": study_id, "claim": claim})
            if retry and held is not None:
                new, args = record(held[0])
                if committed(cur, args):  # an earlier attempt committed both, its answer lost: known before
                    return new  # confirm(), which this retry's own wait may have turned (that write got through)
            if confirm is not None and not confirm():
                raise _NotRunning  # judged otherwise with what the write waited for
            number = held[0] if held is not None else self._next_number(cur, study_id)
            if held is not None:  # queued by an earlier call: it must be this trial's copy
                row = cur.first("one_trial", {"sid": study_id, "number": number})
                if tuple_to_trial(row, self._warned).system.retry_of != failed.number:
                    raise copy_missing(failed.number, claim)
            else:
                self._insert(cur, {"sid": study_id, "claim": claim, "token": token, **_trial_values(copy),
                                   "number": number})  # fmt: skip
            new, args = record(number)
            if cur.execute("update_if_beat", args).rowcount != 0:
                return new
            raise _NotRunning  # no longer running, or beat since: the copy is rolled back with the transaction

        try:
            return self._tx(op, write=True)
        except _NotRunning:
            return None
        except IntegrityError as exc:
            raise self._collision(study_id, exc) from exc

    def get_trials(
        self,
        study_id: int,
        *,
        min_number: int = 0,
        state: TrialState | None = None,
        limit: int | None = None,
        exclude: TrialState | None = None,
    ) -> list[FrozenTrial]:
        args: dict[str, Any] = {"sid": study_id, "min_number": min_number}
        if state is not None:
            args["state"] = TrialState(state).value
        elif exclude is not None:
            args["exclude"] = TrialState(exclude).value
        if limit is not None:
            args["limit"] = int(limit)
        kind = "trials_in_state" if state is not None else "trials_from" if exclude is None else "trials_except"
        return self._read(kind + ("" if limit is None else "_head"), args)

    def _read(self, stmt: str, args: dict[str, Any]) -> list[FrozenTrial]:
        return rows_to_trials(self._tx(lambda c: c.all(stmt, args), write=False), self._warned)

    def get_trials_since(
        self, study_id: int, min_number: int, *, also: Collection[int] = (), exclude: TrialState | None = None
    ) -> list[FrozenTrial]:
        if reads_through_get_trials(self, SQLStorage):  # a subclass filtering or counting in get_trials
            return super().get_trials_since(study_id, min_number, also=also, exclude=exclude)
        fixed: dict[str, Any] = {"sid": study_id}
        if exclude is not None:
            fixed["exclude"] = TrialState(exclude).value
        suffix = "" if exclude is None else "_except"
        before = sorted({int(n) for n in also if n < min_number})
        step = SINCE_WIDTHS[-1]
        chunks = [before[i:i + step] for i in range(0, len(before), step)]

        one_array = self.engine.dialect.name == "postgresql"

        def op(cur: Cursor) -> list[Any]:  # one statement (else while at most 512 are listed): one snapshot
            if not chunks:
                return cur.all("trials_from" if exclude is None else "trials_except", {**fixed, "min_number": min_number})
            if one_array:
                return cur.all("since_any" + suffix, {**fixed, "numbers": before, "min_number": min_number})
            rows: list[Any] = []
            for i, chunk in enumerate(chunks):  # the trials from min_number on with the last chunk: in order
                name, args = since_args(chunk, min_number if i == len(chunks) - 1 else None)
                rows += cur.all(name + suffix, {**fixed, **args})
            return rows

        return self._decoded.trials(self._tx(op, write=False), self._warned)

    def get_trial_heads(self, study_id: int) -> list[FrozenTrial]:
        rows = self._tx(lambda c: c.all("trial_heads", {"sid": study_id}), write=False)
        return rows_to_trials(rows, self._warned, head=True)

    def get_last_steps(self, study_id: int) -> list[tuple[TrialState, int]]:
        if reads_through_get_trials(self, SQLStorage) or (self.is_sqlite and not _sqlite_json()):
            return super().get_last_steps(study_id)  # a subclass filtering in get_trials; a SQLite without JSON

        def op(conn: Connection) -> list[Any]:
            trials = qualified(conn, "ts_trials")
            if self.engine.dialect.name == "postgresql":
                return list(conn.execute(sa.text(_LAST_STEPS_PG.format(trials=trials)), {"sid": study_id}))
            # SQLite's last column is the step (an integer; NULL: no report), else the column as stored
            return [(*head, got, None) if got is None or type(got) is int else (*head, None, got)
                    for *head, got in conn.execute(sa.text(_LAST_STEPS_SQLITE.format(trials=trials)), {"sid": study_id})]

        return [row for row in (last_step_row(*r) for r in self._run(op, write=False)) if row is not None]

    def get_held(self, study_id: int) -> list[FrozenTrial]:
        if reads_through_get_trials(self, SQLStorage):  # a subclass filtering or counting in get_trials
            return super().get_held(study_id)
        rows = self._tx(lambda c: c.all("paused_systems", {"sid": study_id}), write=False)
        held = {n for n in (held_number(*r) for r in rows) if n is not None}
        # read at once, 512 a statement (one read each: 20,000 held trials a writer made took 12 s of show's 18)
        return [t for t in self.get_trials_since(study_id, _PAST_EVERY_NUMBER, also=held)
                if t.number in held and t.state is TrialState.PAUSED and t.system.held is not None]  # as read now

    def count_trials(self, study_id: int) -> int:
        return int(self._tx(lambda c: c.first("count_trials", {"sid": study_id}), write=False)[0])

    def get_trial(self, study_id: int, number: int) -> FrozenTrial:
        row = self._tx(lambda c: c.first("one_trial", {"sid": study_id, "number": number}), write=False)
        if row is None:
            raise TrialNotFound(f"study has no trial number {number}")
        return tuple_to_trial(row, self._warned)

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

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- study management ------------------------------------------------------------------
    def rename_study(self, name: str, new_name: str) -> None:
        self._rename([(name, new_name)])

    def rename_studies(self, renames: Sequence[tuple[str, str]]) -> None:
        if len(renames) == 1:  # as rename_study (a subclass's own, too)
            self.rename_study(*renames[0])
        else:
            self._rename(renames)

    def _rename(self, renames: Sequence[tuple[str, str]]) -> None:
        """Each ``(name, new_name)`` in one transaction."""
        for _, new_name in renames:
            check_study_name(new_name)
        sids = [self.get_study(name).study_id for name, _ in renames]
        table = studies_table

        def op(conn: Connection) -> None:
            for sid, (_, new_name) in zip(sids, renames, strict=True):
                if conn.execute(sa.select(table.c.study_id).where(table.c.name == new_name)).first():
                    raise DuplicateStudyError(f"a study named {new_name!r} already exists in {self.display_url}")
                conn.execute(sa.update(table).where(table.c.study_id == sid).values(name=new_name))

        try:
            self._run(op, write=True)
        except IntegrityError:
            taken = " or ".join(repr(new) for _, new in renames)
            raise DuplicateStudyError(f"a study named {taken} already exists in {self.display_url}") from None

    def set_study_config(
        self, study_id: int, config: Mapping[str, Any], *, expect: Mapping[str, Any] | None = None
    ) -> bool:
        stmt = sa.update(studies_table).where(studies_table.c.study_id == study_id).values(config=_dumps(dict(config)))

        def write(conn: Connection) -> bool:
            if expect is not None:  # SQLite's write began IMMEDIATE; PostgreSQL locks the row
                row = conn.execute(sa.select(studies_table).where(studies_table.c.study_id == study_id)
                                   .with_for_update()).first()
                if row is None or self._study(row).config != dict(expect):
                    return False
            conn.execute(stmt)
            return True

        return self._run(write, write=True)
