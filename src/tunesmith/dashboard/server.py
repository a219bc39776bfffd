"""Opening the storage (with a clear message when it cannot be read) and serving the app."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import importlib
import ipaddress
import math
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from ..exceptions import StorageError, TunesmithError
from ..space.params import plural
from ..storage import Storage, StudyRecord, make_storage

LOOPBACK = "127.0.0.1"
#: seconds a client has to send a whole request (from its connection, or the last answer on it),
#: and how many connections may be sending one at once (a new one closes the one waiting longest):
#: clients that sent a byte now and then (slowloris) held their connections forever, and a
#: thousand of them used up the server's file descriptors, so it answered nobody. A client that
#: reads nothing of an answer for REQUEST_S seconds is dropped too (the answer was kept in memory)
REQUEST_S = 20.0
MAX_WAITING = 200
#: seconds the server spends reading studies before it starts answering (the rest are read in
#: the background): the first view of those studies is then as fast as any later one
WARM_BUDGET_S = 30.0
#: Linux's netlink protocol that finds a socket by its addresses (linux/sock_diag.h, inet_diag.h)
NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, NO_COOKIE, TCP_LISTEN = 4, 20, (0xFFFFFFFF, 0xFFFFFFFF), 10
NLMSG_ERROR = 2


def open_storage(url: str, *, allow_writes: bool = False) -> Storage:
    """The storage at ``url``, checked readable now (its schema too): a StorageError that
    names the URL and the cause otherwise. Read-only unless ``allow_writes``."""
    if url in ("", "memory"):
        raise ValueError("the dashboard reads a database: pass --storage sqlite:///file.db or a PostgreSQL URL")
    _check_sqlite_file(url)
    try:
        storage = make_storage(url, read_only=not allow_writes)
        storage.list_studies()  # connects and checks the schema version
    except TunesmithError:
        raise
    except Exception as exc:  # noqa: BLE001 - a driver's own error: say which storage and why
        from ..storage.base import mask_url

        raise StorageError(f"cannot open storage {mask_url(url)!r}: {type(exc).__name__}: {exc}") from exc
    return storage


def _check_sqlite_file(url: str) -> None:
    """A StorageError for a SQLite file that is not there (by the path the storage opens: "~" expanded)."""
    from ..storage.sql import missing_sqlite_file, storage_options

    path = url if "://" not in url else url.split(":///", 1)[1] if url.startswith("sqlite:///") else ""
    full = url if "://" in url else f"sqlite:///{url}"
    if missing_sqlite_file(full):
        found = storage_options(full)  # the studies went to boost.db, the dashboard read the default
        raise StorageError(f"no SQLite database at {path!r}: check the path{f' (in its folder: {found})' if found else ''}"
                           f", or start a study there first (tunesmith run STUDY.yaml --storage {url})")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def peer_uid(client: tuple[str, int], server: tuple[str, int]) -> int | None:
    """The user id of the process whose socket connects ``client`` to ``server`` (each (address, port))
    on this machine (Linux), asked of the kernel (netlink's sock_diag: microseconds, :func:`asked_uid`), else
    read from /proc/net/tcp and tcp6 (milliseconds, tens with thousands of sockets on the machine:
    :func:`listed_uid`); None where neither has it as a process's socket: another system, the connection
    gone or closed (a closed socket's row says user 0, root), or ends that are no addresses (a name from a
    proxy's header)."""
    ends = connection_ends(client, server)
    if ends is None:
        return None
    try:
        return asked_uid(ends)
    except LookupError:  # sock_diag cannot be asked here: the tables say
        return listed_uid(ends)


def connection_ends(client: tuple[str, int], server: tuple[str, int]) -> list[tuple[Any, int]] | None:
    """``client`` and ``server`` as (address, port), IPv4 where an IPv6 socket is connected to an IPv4 address
    (sock_diag finds it so, and tcp6 lists it as ::ffff:a.b.c.d; an IPv6 server sees an IPv4 client's so);
    None for ends that are no addresses."""
    try:
        ends: list[tuple[Any, int]] = [(ipaddress.ip_address(host), int(port)) for host, port in (client, server)]
    except (ValueError, TypeError):
        return None
    v4 = [(ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else ip, port) for ip, port in ends]
    return v4 if all(ip for ip, _ in v4) else ends


def asked_uid(ends: list[tuple[Any, int]]) -> int | None:
    """The user id sock_diag gives the socket from ``ends[0]`` to ``ends[1]`` (:func:`connection_ends`), None where the kernel has no
    such socket; LookupError where it cannot be asked (no netlink here, no inet_diag, a port past 65535)."""
    (ip, port), (to, to_port) = ends
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    try:
        request = struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, 0xFFFFFFFF)  # inet_diag_req_v2, any state
        request += struct.pack("!HH16s16s", port, to_port, ip.packed, to.packed) + struct.pack("=III", 0, *NO_COOKIE)
        with socket.socket(getattr(socket, "AF_NETLINK", -1), socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as diag:
            diag.settimeout(1.0)
            diag.send(struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY, 1, 1, 0) + request)
            answer = diag.recv(8192)
    except (OSError, struct.error):  # no netlink here, or a port past 65535
        raise LookupError("sock_diag not asked") from None
    kind, error = struct.unpack_from("=4xH10xi", answer) if len(answer) >= 20 else (None, 0)  # nlmsghdr, nlmsgerr
    if kind == NLMSG_ERROR and error == -errno.ENOENT:
        return None  # no such socket: the tables say so too, after a walk of every socket (tens of ms)
    if len(answer) < 88 or kind != SOCK_DIAG_BY_FAMILY:
        raise LookupError(f"sock_diag answered {errno.errorcode.get(-error, error) if kind == NLMSG_ERROR else kind}")
    uid, inode = struct.unpack_from("=II", answer, 80)  # inet_diag_msg's, after its header, id and queues
    return uid if inode and answer[17] != TCP_LISTEN else None  # no connection there: a listener on its address


@functools.cache
def users_listed(v6: bool = False) -> bool:
    """Whether this machine tells whose a loopback connection is (Linux, with sock_diag, or /proc/net/tcp,
    tcp6 with ``v6``): a connection of this process's own is looked up, over IPv6's loopback ``::1`` with
    ``v6`` (a dashboard served there: its clients' are IPv6 connections), else IPv4's. False elsewhere, and
    where neither can be read (a sandbox without netlink or /proc/net): a loopback dashboard there answers
    every user of the machine, as on other systems, rather than refusing its own user too."""
    if not sys.platform.startswith("linux"):
        return False
    host, family = ("::1", socket.AF_INET6) if v6 else (LOOPBACK, socket.AF_INET)
    try:
        with socket.create_server((host, 0), family=family) as listener, \
                socket.create_connection(listener.getsockname()[:2]) as me:
            return peer_uid(me.getsockname()[:2], listener.getsockname()[:2]) == os.getuid()
    except OSError:  # no such loopback to try: the check stays on
        return True


def listed_uid(ends: list[tuple[Any, int]]) -> int | None:
    """The user id /proc/net/tcp or tcp6 lists for the socket from ``ends[0]`` to ``ends[1]``: every socket of
    the machine is read (tens of ms with thousands), so a server calls it off its event loop."""
    v6 = [(ipaddress.IPv6Address(f"::ffff:{ip}") if ip.version == 4 else ip, port) for ip, port in ends]
    rows = [("/proc/net/tcp", ends)] if ends[0][0].version == 4 else []
    for table, (local, remote) in [*rows, ("/proc/net/tcp6", v6)]:
        want = (_proc_address(*local), _proc_address(*remote))
        try:
            with open(table, encoding="ascii") as f:
                for line in f:
                    fields = line.split()  # sl local remote state queues timer retransmits uid timeout inode
                    if len(fields) > 9 and (fields[1], fields[2]) == want and fields[9] != "0":
                        return int(fields[7])
        except (OSError, ValueError):
            continue
    return None


def _proc_address(ip: Any, port: int) -> str:
    """``host:port`` as /proc/net/tcp writes it: the address's 32-bit words in the machine's order
    (little-endian, as every Linux machine the tables were read on), the port in hex."""
    packed = ip.packed
    words = "".join(packed[i:i + 4][::-1].hex() for i in range(0, len(packed), 4))
    return f"{words.upper()}:{port:04X}"


def serve(storage: str | Storage, *, host: str = LOOPBACK, port: int = 8080, allow_writes: bool = False,
          poll_seconds: float = 2.0, out: TextIO | None = None) -> int | None:
    """Serve the dashboard of ``storage`` on ``host:port`` until interrupted: Ctrl-C or SIGTERM, or
    SIGHUP (the terminal closed), which stops it as SIGTERM does and is returned (under nohup it is
    ignored, and the dashboard keeps serving); None otherwise."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port must be an integer from 1 to 65535, got {port!r}")
    host = check_host(host)
    uvicorn = _require()
    out = sys.stderr if out is None else out
    from .app import create_app

    st = storage if isinstance(storage, Storage) else open_storage(storage, allow_writes=allow_writes)
    if not is_loopback(host):
        print(f"warning: the dashboard listens on {host}, so other machines can reach it; it has no login"
              + (" and --allow-writes lets them change and delete studies" if allow_writes else ""), file=out)
    elif sys.platform.startswith("linux") and not users_listed(":" in host):
        print("warning: this system does not say whose a connection is (no netlink sock_diag, no /proc/net/tcp), "
              "so any user of this machine can read the dashboard", file=out)
    check_port(host, port)  # before reading the studies, which can take a while
    with contextlib.ExitStack() as held:
        for sock in hold_localhost(host, port):  # until the server stops
            held.enter_context(sock)
        app = create_app(st, allow_writes=allow_writes, poll_seconds=poll_seconds, host=host)
        started = time.perf_counter()
        records = app.state.dashboard.cache.records()
        rest = warm(app, records, budget_s=WARM_BUDGET_S)
        print(f"read {len(records) - len(rest)} of {plural(len(records), 'study', 'studies')} in "
              f"{time.perf_counter() - started:.1f} s" + (f"; the other {len(rest)} are read in the background" if rest else ""),
              file=out, flush=True)
        if rest:
            threading.Thread(target=warm, args=(app, rest), daemon=True, name="tunesmith-dashboard-warm").start()
        mode = "writes allowed" if allow_writes else "read-only"
        print(f"tunesmith dashboard of {st.display_url} ({mode}) at http://{_netloc(host, port)}/ ; Ctrl-C stops it",
              file=out, flush=True)
        with _hangup_stops(uvicorn.Server) as hung_up:
            uvicorn.run(app, host=host, port=port, log_level="warning", http=deadline_protocol(),
                        proxy_headers=False)  # a client's X-Forwarded-For would stand for its address
    return hung_up[0] if hung_up else None


#: the addresses a browser connects to for ``http://localhost:PORT/``: IPv6's first where the machine has it
LOCALHOST = ("::1", "127.0.0.1")


def hold_localhost(host: str, port: int) -> list[socket.socket]:
    """Sockets bound (not listening) to ``port`` on the addresses of :data:`LOCALHOST` that a server on ``host``
    does not listen on, where it listens on one of them: another user could otherwise listen there (127.0.0.1
    and ::1 are separate sockets), and a browser opening ``http://localhost:PORT/`` reached their server first; a
    page it served shares the dashboard's origin, so once they closed their socket its requests went on to the
    dashboard and read every study (and, with --allow-writes, the forms' token). Bound without SO_REUSEADDR, no
    other socket can listen there, and a browser's connection there is refused at once, so it goes on to the
    dashboard's address. An OSError naming the address where another program is bound, or where connections a
    server there closed a moment ago still hold it (TIME_WAIT), and what to do; nothing where the machine has no
    such address."""
    try:
        ours = {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)}
    except OSError:
        return []
    if not ours & set(LOCALHOST):  # another loopback address (127.0.0.2): localhost's are not the dashboard's
        return []
    held: list[socket.socket] = []
    for address in (a for a in LOCALHOST if a not in ours):
        try:
            sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
        except OSError:  # no IPv6 here: nobody can listen there either
            continue
        try:
            sock.bind((address, port))
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                continue
            for other in held:
                other.close()
            if exc.errno == errno.EADDRINUSE and _only_closed_connections(address, port):
                raise OSError(f"cannot listen on {_netloc(host, port)} safely yet: nothing listens on "
                              f"{_netloc(address, port)}, where a browser may go for http://localhost:{port}/, but it "
                              "is still taken, most likely by connections a server there closed a moment ago (a "
                              "dashboard that stopped; they go within a minute), and the dashboard must hold it too: "
                              "start it again in a minute, or pass --port N") from None
            raise OSError(f"cannot listen on {_netloc(host, port)} safely: another program is bound to "
                          f"{_netloc(address, port)} ({exc.strerror}), which a browser may reach for "
                          f"http://localhost:{port}/ instead of the dashboard, and a page served there could read "
                          "the dashboard: pass --port N") from None
        held.append(sock)
    return held


def _only_closed_connections(address: str, port: int) -> bool:
    """Whether no socket listens on ``address:port`` (nor is bound there without SO_REUSEADDR), so that what kept
    :func:`hold_localhost` from binding it were connections closed there (TIME_WAIT, up to a minute on Linux): a
    server's that had served on that address and stopped (a dashboard started on ``::1`` after one on 127.0.0.1)."""
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def _hangup_stops(server: type) -> Iterator[list[int]]:
    """SIGHUP (a closed terminal, a dropped ssh session) stops the server as SIGTERM does: uvicorn
    handles SIGINT and SIGTERM only, so the process died of it, mid-request. The handler passes it
    to the SIGTERM handler uvicorn's ``server`` installed (its graceful stop; uvicorn raises the signal again at
    the end, which the list yielded then holds); before uvicorn installed one, it ends the process
    as before. Taken over only from the default (the process dies): left alone where it is ignored
    (nohup) or a program's own handler takes it (one that reloads its settings), and outside the main thread."""
    got: list[int] = []
    hup = getattr(signal, "SIGHUP", None)
    if hup is None or threading.current_thread() is not threading.main_thread() or signal.getsignal(hup) is not signal.SIG_DFL:
        yield got
        return

    def on_hangup(signum: int, frame: Any) -> None:
        if got:  # raised again by uvicorn once it stopped
            return
        got.append(signal.Signals(signum))  # signal.SIGHUP, as the docs say, not a bare 1
        stop = signal.getsignal(signal.SIGTERM)
        if isinstance(getattr(stop, "__self__", None), server) and callable(stop):  # uvicorn's Server.handle_exit
            stop(signum, frame)
            return
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    previous = signal.signal(hup, on_hangup)
    try:
        yield got
    finally:
        signal.signal(hup, previous)


def deadline_protocol() -> type:
    """uvicorn's HTTP/1.1 protocol, each request due within :data:`REQUEST_S` seconds, and at most
    :data:`MAX_WAITING` connections waiting for one (a fresh class each: one per server)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    waiting: dict[Any, asyncio.TimerHandle] = {}  # oldest first

    class Protocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(waiting) >= MAX_WAITING:
                next(iter(waiting)).drop()
            self.check()

        def handle_events(self) -> None:
            super().handle_events()
            self.check()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self.check()

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            self.check()

        def check(self) -> None:
            """Wait for the request while the client sends one (or none yet), not once it is in."""
            receiving = self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing()
            if receiving and self not in waiting:
                waiting[self] = self.loop.call_later(REQUEST_S, self.drop)
            elif not receiving and self in waiting:
                waiting.pop(self).cancel()

        def drop(self) -> None:
            self.transport.close()
            if self in waiting:
                waiting.pop(self).cancel()

        def pause_writing(self) -> None:  # the client reads no more of an answer: after REQUEST_S, drop it
            super().pause_writing()
            self.unread = self.loop.call_later(REQUEST_S, self.transport.abort)  # abort: the buffer too

        def resume_writing(self) -> None:
            super().resume_writing()
            if getattr(self, "unread", None) is not None:
                self.unread.cancel()

    return Protocol


def check_host(host: str, spelt: Callable[[str], str] = "--host {}".format) -> str:
    """``host`` as the server listens on it: an IPv6 address without the brackets a URL writes it in (``[::1]``:
    with them, it was taken for another machine's name, then failed to resolve, and :func:`is_loopback` did not
    take it for loopback). A ValueError for an IPv4 address written as IPv6 (``::ffff:127.0.0.1``): the server's
    IPv6 sockets take IPv6 addresses only, so it failed with "invalid argument" once the studies were read.
    ``spelt``: how the error writes a host given (the command's option, or :func:`~.app.create_app`'s argument)."""
    bare = host[1:-1] if isinstance(host, str) and host.startswith("[") and host.endswith("]") else host
    try:
        v4 = ipaddress.IPv6Address(bare).ipv4_mapped
    except ValueError:
        return host
    if v4 is None:
        return bare
    raise ValueError(f"{spelt(host)} is the IPv4 address {v4} written as IPv6, which the dashboard cannot listen "
                     f"on: pass {spelt(str(v4))}")


def check_port(host: str, port: int) -> None:
    """An OSError naming the address and what to do when ``host:port`` cannot be listened on
    (taken by another program, or an address this machine does not have). Every address ``host`` names is
    tried, as the server binds each: ``localhost`` where /etc/hosts names ::1 too but the machine has no IPv6
    (Docker's hosts file) failed only once the studies were read. An IPv6 address is bound IPv6 only, as asyncio
    binds it: ``--host ::`` was refused where another program listened on 0.0.0.0 of the port, which the server
    does not take."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)  # as asyncio asks
    except OSError as exc:
        raise OSError(f"cannot listen on {_netloc(host, port)}: {exc} (check --host)") from None
    for family, kind, proto, _, address in dict.fromkeys((i[0], i[1], i[2], "", i[4]) for i in infos):
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server sets it
            if family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio's create_server sets it
            try:
                sock.bind(address)
            except OSError as exc:
                raise OSError(_unbound(host, port, str(address[0]), exc)) from None


def _unbound(host: str, port: int, address: str, exc: OSError) -> str:
    """What :func:`check_port` says where ``address``, one of ``host``'s, could not be bound (``exc``)."""
    where = _netloc(host, port) if address == host else f"{_netloc(host, port)} ({host} names {_netloc(address, port)})"
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {where}: {exc.strerror}; another program (another dashboard?) listens there: pass --port N"
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) and address != host:
        others = sorted({a for a in LOCALHOST if a != address}) if host == "localhost" else []
        fix = f"pass --host {others[0]}" if others else "pass --host with an address this machine has"
        return (f"cannot listen on {where}: {exc.strerror}: this machine does not have that address (IPv6 off?), "
                f"and the server listens on every address {host} names; {fix}")
    return f"cannot listen on {where}: {exc.strerror}; check --host and --port"


def warm(app: Any, records: list[StudyRecord], *, budget_s: float = math.inf) -> list[StudyRecord]:
    """Read ``records``' studies once, with their plots, so that even the first view of a large
    study opens fast; stop once ``budget_s`` seconds have passed. The studies not read yet."""
    from .figures import STUDY_KINDS, plots_of

    cache = app.state.dashboard.cache
    deadline = time.monotonic() + budget_s
    for i, r in enumerate(records):
        if time.monotonic() >= deadline:
            return records[i:]
        try:
            view = cache.view(r.name)
            for kind in STUDY_KINDS:
                plots_of(cache, view, kind)
        except Exception:  # noqa: BLE001 - warming is an optimization; the pages report real errors
            continue
    return []


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _require(names: tuple[str, ...] = ("starlette", "uvicorn", "plotly")) -> Any:
    """uvicorn, once the dashboard's packages are there (without plotly it served pages whose
    every plot failed); ``create_app`` needs all but uvicorn."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(f"the dashboard needs {' and '.join(missing)}: pip install 'tunesmith[dashboard]'")
    return importlib.import_module("uvicorn") if "uvicorn" in names else None
