"""The throwaway PostgreSQL server of the tests cleans up after a test run killed by a signal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pg import PostgresUnavailable, find_bindir

HERE = Path(__file__).parent


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_server_whose_starter_was_killed_is_stopped_and_its_folder_removed() -> None:
    """A test process SIGKILLed (no fixture finalizer runs) left its server running and its data folder
    on disk; the watchdog stops the server by its pid and removes the folder."""
    try:
        find_bindir()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs PostgreSQL: {exc}")
        pytest.skip(str(exc))
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); from pg import PostgresServer\n"
            "s = PostgresServer(max_connections=10).__enter__()\n"
            "print(s.root, s.port, s.proc.pid, flush=True); time.sleep(600)\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(HERE)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        root_text, port_text, pid_text = child.stdout.readline().split()
        root, port, server = Path(root_text), int(port_text), int(pid_text)
        assert root.exists() and _accepts(port)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    end = time.monotonic() + 30.0
    while (root.exists() or _accepts(port)) and time.monotonic() < end:
        time.sleep(0.2)
    assert not root.exists(), f"{root} left on disk"
    assert not _accepts(port), f"the server on port {port} (pid {server}) still runs"
