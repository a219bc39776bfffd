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


@pytest.fixture(scope="session")
def ray_local() -> Iterator[object]:
    """A private single-node Ray instance on 127.0.0.1 (2 CPUs), for the session."""
    from ray_util import pids_under, set_ray_env, short_tmp

    set_ray_env()
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI must run the Ray tests: install the extra, pip install 'tunesmith[ray]'")
        pytest.skip("Ray is not installed: pip install 'tunesmith[ray]'")
    temp = short_tmp("tsr")
    ray.init(address="local", num_cpus=2, num_gpus=0, _temp_dir=str(temp), _node_ip_address="127.0.0.1",
             include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    import signal

    for pid in pids_under(temp):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
