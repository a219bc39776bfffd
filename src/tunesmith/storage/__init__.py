"""Storages: where studies and trials are recorded."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .base import Storage, StudyRecord, worker_id
from .memory import MemoryStorage

if TYPE_CHECKING:
    from .sql import SCHEMA_VERSION, SQLStorage


def __getattr__(name: str) -> Any:
    """``SQLStorage`` and ``SCHEMA_VERSION`` import SQLAlchemy, on first use: ``import tunesmith``,
    a study in memory and ``tunesmith --help`` do without it."""
    if name in ("SCHEMA_VERSION", "SQLStorage"):
        from . import sql

        return getattr(sql, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def make_storage(spec: str | os.PathLike[str] | Storage | None, *, read_only: bool = False,
                 retry_window: float | None = None, create: bool = True) -> Storage:
    """A storage from ``None``/"memory" (in memory), a database URL, a path
    ending in ``.db`` (SQLite), or an instance (returned as is).

    ``read_only`` opens a SQL database for reading only, ``retry_window`` sets how long it
    rides out an outage (see :class:`SQLStorage`; a storage in memory or an instance takes neither).
    ``create=False`` opens the storage of a study to resume, not to create: a SQLite file that is
    not there is read as empty (the study is then not found, naming the missing file), never made.
    """
    if retry_window is not None and not (isinstance(spec, str) and spec != "memory"):
        raise ValueError(f"retry_window is a setting of a storage opened by database URL, not of {spec!r}")
    if spec is None or spec == "memory":
        return MemoryStorage()
    if isinstance(spec, Storage):
        return spec
    opts = {} if retry_window is None else {"retry_window": retry_window}
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)  # a pathlib.Path to a SQLite file
    if not isinstance(spec, str):
        raise TypeError(f"storage must be a URL string or a Storage, got {type(spec).__name__}")
    if "://" not in spec:
        if spec.lower().startswith("sqlite:"):
            raise ValueError(
                f"storage {spec!r} is not a SQLite URL: write 'sqlite:///relative/path.db' or "
                "'sqlite:////absolute/path.db' (three slashes, then the path)"
            )
        if spec.endswith((".db", ".sqlite", ".sqlite3")):
            return _opened(f"sqlite:///{spec}", read_only, create, opts)
        raise ValueError(
            f"storage {spec!r} is not a database URL; use 'sqlite:///{spec}' for a SQLite file "
            "or 'postgresql+psycopg://user:password@host/dbname'"
        )
    return _opened(spec, read_only, create, opts)


def _opened(url: str, read_only: bool, create: bool, opts: dict[str, Any]) -> Storage:
    """The SQL storage at ``url``; one to open, not to create, whose SQLite file is missing is opened
    read-only (read as empty, never made), unless another process made the file meanwhile."""
    from .sql import SQLStorage, missing_sqlite_file

    if not create and not read_only and missing_sqlite_file(url):
        absent = SQLStorage(url, read_only=True, **opts)
        if missing_sqlite_file(url):  # checked again after opening: a file another worker made meanwhile
            return absent  # is opened to write, not read-only (its study then could not be written)
        absent.close()
    return SQLStorage(url, read_only=read_only, **opts)


__all__ = [
    "SCHEMA_VERSION",
    "MemoryStorage",
    "SQLStorage",
    "Storage",
    "StudyRecord",
    "make_storage",
    "worker_id",
]
