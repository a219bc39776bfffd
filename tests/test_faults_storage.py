"""Faults of the storage: many workers starting at once, a full disk, a damaged or
altered database, an outage past the retry window, read-only media, hostile names
and values. Real SQLite files and a real PostgreSQL server (tests/pg.py); a full
disk and read-only media are real small file systems mounted for the test where
the machine allows it (root with mount rights), else the test skips and says why.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

SPAWN_OPEN = (
    "import sys, time\n"
    "from tunesmith.storage import SQLStorage\n"
    "start = float(sys.argv[2])\n"
    "time.sleep(max(0.0, start - time.time()))\n"
    "st = SQLStorage(sys.argv[1])\n"
    "print(len(st.list_studies()))\n"
)


def _start_together(url: str, n: int, env: dict[str, str]) -> list[tuple[int, str]]:
    """``n`` processes open ``url`` at the same instant; their exit codes and errors."""
    start = time.time() + 2.0  # every interpreter is up and has imported tunesmith by then
    procs = [
        subprocess.Popen([sys.executable, "-c", SPAWN_OPEN, url, repr(start)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    return [(p.wait(60), p.communicate()[1][-400:]) for p in procs]


@pytest.mark.slow
def test_eight_workers_start_at_once_on_an_empty_postgres_database(pg_server, subprocess_env) -> None:  # type: ignore[no-untyped-def]
    # without a lock on schema creation 4-7 of 8 fail (concurrent CREATE TABLE);
    # three fresh databases make a lucky pass without the lock unlikely
    for i in range(3):
        url = pg_server.create_database(f"fresh_start_{os.getpid()}_{i}")
        results = _start_together(url, 8, subprocess_env)
        assert [rc for rc, _ in results] == [0] * 8, [err for rc, err in results if rc]
