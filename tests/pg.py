"""A throwaway PostgreSQL server for tests and benchmarks, on 127.0.0.1 only.

``initdb`` into a temporary folder (owned by the ``postgres`` user when run
as root: PostgreSQL refuses to run as root), then the ``postgres`` server
itself started on a free port with ``listen_addresses=127.0.0.1``; stopped by
its own pid, never by name. A watchdog process stops it and removes its folder
when the process that started it dies without closing it (a test run killed by
a signal would otherwise leave the server running and its folder on disk).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started on this machine."""


def find_bindir() -> Path:
    """The folder holding initdb and postgres (PATH, then Debian's layout)."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if versions:
        return Path(versions[0]).parent
    raise PostgresUnavailable(
        "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin); "
        "install it with: apt-get install -y postgresql"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL instance in a temporary folder; use as a context manager."""

    def __init__(self, *, max_connections: int = 200, port: int | None = None, durable: bool = False) -> None:
        """``durable``: PostgreSQL's own defaults for flushing (fsync, synchronous_commit, full page
        writes) instead of the fast settings, for a test that stops the server as a crash would
        (an immediate shutdown, SIGKILL): without them a commit already answered may be lost."""
        self.bindir = find_bindir()
        self.durable = durable
        self.port = port or free_port()
        self.max_connections = max_connections
        self.root = Path(tempfile.mkdtemp(prefix="tunesmith-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._user = self._run_as()
        self._watchdog: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _run_as() -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root and there is no 'postgres' user to run the server") from None
        return {"user": pw.pw_uid, "group": pw.pw_gid}

    def _chown(self) -> None:
        if self._user:
            for p in [self.root, *self.root.rglob("*")]:
                os.chown(p, self._user["user"], self._user["group"])

    def init(self) -> None:
        self._chown()
        cmd = [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
               "-E", "UTF8", "--no-sync", "--locale=C"]
        res = subprocess.run(cmd, capture_output=True, cwd=self.root, **self._user)
        if res.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {res.stderr.decode(errors='replace')[-2000:]}")

    def start(self, timeout: float = 30.0) -> None:
        """Start (or restart) the server on the same port and data."""
        args = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                "-c", f"max_connections={self.max_connections}", "-c", "shared_buffers=64MB"]
        if not self.durable:
            args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                                         start_new_session=True, **self._user)
        if self._watchdog is None or self._watchdog.poll() is not None:
            self._watchdog = subprocess.Popen(
                [sys.executable, __file__, "--watch", str(os.getpid()), str(self.root)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        end = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise PostgresUnavailable(f"postgres exited at start: {self.log.read_text()[-2000:]}")
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > end:
                    raise PostgresUnavailable(f"postgres did not accept connections: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.1)

    def stop(self, *, mode: int = signal.SIGINT, timeout: float = 30.0) -> None:
        """Stop by pid (SIGINT: PostgreSQL's fast shutdown, closing every session)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(mode)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self, down_for: float = 0.5) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def dsn(self, db: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={db}"

    def create_database(self, name: str) -> str:
        """Create a database; return its SQLAlchemy URL (psycopg 3 driver).

        Without ``durable``, on PostgreSQL 15 and later, the template's files are copied (``STRATEGY
        FILE_COPY``) rather than written through the WAL (the default): a third faster with fsync off, and
        the suite makes a database per PostgreSQL test. Its checkpoints would flush the whole cluster on a
        ``durable`` server."""
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            copy = not self.durable and conn.info.server_version >= 150000
            conn.execute(f'CREATE DATABASE "{name}"' + (" STRATEGY FILE_COPY" if copy else ""))
        return self.url(name)

    def url(self, db: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def password_role(self, role: str, password: str) -> str:
        """A role that must give ``password`` (scram-sha-256 on 127.0.0.1; every other role is still
        trusted), owning a fresh database of its name; the URL to it, without the password."""
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
            conn.execute(f'CREATE DATABASE "{role}" OWNER "{role}"')
            hba = self.data / "pg_hba.conf"  # the first matching line decides: this role's goes first
            hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
            conn.execute("SELECT pg_reload_conf()")
        return f"postgresql+psycopg://{role}@127.0.0.1:{self.port}/{role}"

    def __enter__(self) -> PostgresServer:
        try:
            self.init()
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        if self._watchdog is not None:  # it ends once the folder is gone; waited for, not left a zombie
            try:
                self._watchdog.wait(WATCH_EVERY_S * 5)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait()


#: seconds between the watchdog's looks at the process that started the server
WATCH_EVERY_S = 0.5


def _started(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux's /proc), None where it is gone or unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return started is None or _started(pid) == started  # the same process, not a new one given its id


def _postmaster(root: Path) -> int | None:
    """The pid of the server running on ``root``'s data (its postmaster.pid), if that process serves it."""
    try:
        pid = int((root / "data" / "postmaster.pid").read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    return pid if str(root / "data").encode() in cmdline else None


def watch(owner: int, root: Path) -> None:
    """Wait while ``owner`` lives and ``root`` exists; if the owner dies first, stop the server by its pid
    (SIGINT, then SIGKILL after 10 s) and remove ``root``."""
    started = _started(owner)
    while root.exists() and _alive(owner, started):
        time.sleep(WATCH_EVERY_S)
    if not root.exists():
        return
    pid = _postmaster(root)
    if pid is not None:
        os.kill(pid, signal.SIGINT)
        end = time.monotonic() + 10.0
        while _postmaster(root) == pid and time.monotonic() < end:
            time.sleep(0.1)
        if _postmaster(root) == pid:
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__" and sys.argv[1:2] == ["--watch"]:
    watch(int(sys.argv[2]), Path(sys.argv[3]))
