"""The ``dashboard`` subcommand: serve the live dashboard of a storage."""

from __future__ import annotations

import argparse

from .studyfile import DEFAULT_STORAGE


def add_dashboard_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", default=DEFAULT_STORAGE, help=f"database URL (default: {DEFAULT_STORAGE})")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only and, on Linux, your own user; ::1 or [::1] "
                        "for IPv6; an address other machines can reach, such as 0.0.0.0, prints a warning)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--allow-writes", action="store_true",
                   help="allow adding notes, failing trials, enqueuing configurations and deleting studies "
                        "(each asks for confirmation)")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between a study page's checks for changes (default 2)")


def cmd_dashboard(args: argparse.Namespace) -> int:
    from ..dashboard import serve
    from ..dashboard.app import MAX_POLL

    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be between 1 and 65535, not {args.port}")
    if not 0 < args.poll <= MAX_POLL:  # nan, inf, 3e6: the page's timer fired at once, polling without pause
        raise ValueError(f"--poll must be a positive number of seconds, at most {MAX_POLL:,}, not {args.poll}")
    hung_up = serve(args.storage, host=args.host, port=args.port, allow_writes=args.allow_writes, poll_seconds=args.poll)
    return 0 if hung_up is None else 128 + hung_up  # 129 after SIGHUP, as run and worker
