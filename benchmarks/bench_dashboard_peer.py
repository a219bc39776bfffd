"""What the loopback dashboard's user check costs a request (Linux): ``peer_uid``, which asks the
kernel (netlink's sock_diag) for the client's socket, and the reading of /proc/net/tcp and tcp6 it
falls back on (``listed_uid``, the lookup's only way before), with many TCP sockets on the machine.

    nice -n 10 python benchmarks/bench_dashboard_peer.py                      # 0, 1,000, 5,000 connections
    python benchmarks/bench_dashboard_peer.py --connections 0 9000 --lookups 50

Each size opens that many loopback connections in this process (two table rows each: needs an
open-file limit above twice the count), then times ``--lookups`` lookups of connections chosen at
random among them and of an IPv6 socket's connection to 127.0.0.1 (listed in tcp6 only), and of
``peer_uid`` for a connection that is not there (``asked none``: a client that reset its connection), and
prints medians in ms, with the rows the tables held.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import random
import socket
import statistics
import time
from collections.abc import Callable
from typing import Any

from tunesmith.dashboard.server import listed_uid, peer_uid

Ends = tuple[tuple[str, int], tuple[str, int]]


def rows() -> int:
    return sum(sum(1 for _ in open(t)) - 1 for t in ("/proc/net/tcp", "/proc/net/tcp6"))


def asked(ends: Ends) -> Any:
    return peer_uid(*ends)


def listed(ends: Ends) -> Any:
    return listed_uid([(ipaddress.ip_address(host), port) for host, port in ends])


def median_ms(lookup: Callable[[Ends], Any], pick: Callable[[], Ends], lookups: int, uid: Any) -> float:
    out = []
    for _ in range(lookups):
        ends = pick()
        start = time.perf_counter()
        assert lookup(ends) == uid
        out.append((time.perf_counter() - start) * 1000)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, nargs="+", default=[0, 1000, 5000])
    ap.add_argument("--lookups", type=int, default=200)
    args = ap.parse_args()
    rng = random.Random(0)
    with socket.create_server(("127.0.0.1", 0), backlog=4096) as listener:
        server = listener.getsockname()
        v6 = socket.create_connection(("::ffff:127.0.0.1", server[1]))
        v6_ends: Ends = (("127.0.0.1", v6.getsockname()[1]), server)
        sockets: list[socket.socket] = [v6, listener.accept()[0]]
        print(f"{'connections':>11} {'rows':>6} {'asked v4':>9} {'asked v6':>9} {'tables v4':>10} {'tables v6':>10} {'asked none':>11}  (median ms)")
        for n in sorted(args.connections):
            while len(sockets) < 2 * n + 2:
                client = socket.create_connection(server)
                sockets += [client, listener.accept()[0]]
            clients = sockets[0::2]  # the IPv6 one's too, named as the server sees it

            def pick(clients: list[socket.socket] = clients) -> Ends:
                return ("127.0.0.1", rng.choice(clients).getsockname()[1]), server

            times = [median_ms(lookup, chosen, args.lookups, os.getuid())
                     for lookup in (asked, listed) for chosen in (pick, lambda: v6_ends)]
            none = median_ms(asked, lambda: (("127.0.0.1", 1), server), args.lookups, None)
            print(f"{n:>11} {rows():>6} {times[0]:>9.3f} {times[1]:>9.3f} {times[2]:>10.3f} {times[3]:>10.3f} {none:>11.3f}")
        for s in sockets:
            s.close()


if __name__ == "__main__":
    main()
