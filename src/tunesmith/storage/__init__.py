"""Storages: where studies and trials are recorded."""

from __future__ import annotations

import os

from .base import Storage, StudyRecord, worker_id
from .memory import MemoryStorage
from .sql import SCHEMA_VERSION, SQLStorage


def make_storage(spec: str | os.PathLike[str] | Storage | None, *, read_only: bool = False) -> Storage:
    """A storage from ``None``/"memory" (in memory), a database URL, a path
    ending in ``.db`` (SQLite), or an instance (returned as is).

    ``read_only`` opens a SQL database for reading only (see :class:`SQLStorage`).
    """
    if spec is None or spec == "memory":
        return MemoryStorage()
    if isinstance(spec, Storage):
        return spec
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
            return SQLStorage(f"sqlite:///{spec}", read_only=read_only)
        raise ValueError(
            f"storage {spec!r} is not a database URL; use 'sqlite:///{spec}' for a SQLite file "
            "or 'postgresql+psycopg://user:password@host/dbname'"
        )
    return SQLStorage(spec, read_only=read_only)


__all__ = [
    "SCHEMA_VERSION",
    "MemoryStorage",
    "SQLStorage",
    "Storage",
    "StudyRecord",
    "make_storage",
    "worker_id",
]
