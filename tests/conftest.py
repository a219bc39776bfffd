"""Shared fixtures: a real throwaway PostgreSQL server (session-wide)."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pg import PostgresServer, PostgresUnavailable  # noqa: E402

_db_numbers = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for the whole session.

    Skipped with the reason when none can be started, except in CI (env var
    ``CI`` set), where that is a failure: CI installs PostgreSQL.
    """
    try:
        server = PostgresServer()
        server.__enter__()
    except (PostgresUnavailable, ImportError, OSError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests but no server could be started: {exc}")
        pytest.skip(f"no PostgreSQL server could be started ({exc}); apt-get install -y postgresql")
    yield server
    server.close()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server, as a SQLAlchemy URL."""
    return pg_server.create_database(f"t{os.getpid()}_{next(_db_numbers)}")
