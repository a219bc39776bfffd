"""The server's cost of the search path tunesmith pins on PostgreSQL connections.

Runs the same prepared pair of statements (a SELECT comparing varchar columns with
parameters, an UPDATE by key, each UPDATE committed) on one connection, first under
PostgreSQL's default path (``"$user", public``), then under tunesmith's
(``pg_catalog, pg_temp``), ``--rounds`` times alternating, on a throwaway server on
127.0.0.1; prints ms per pair per round and the median ratio pinned/default.

    python benchmarks/bench_pg_search_path.py --rounds 6 --pairs 1500
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

PATHS = {"default": '"$user", public', "pinned": "pg_catalog, pg_temp"}


def _pairs_ms(conn: Any, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        conn.execute("SELECT id, name FROM public.t WHERE name = %s AND state <> %s", (f"n{i + 1}", "running")).fetchall()
        conn.execute("UPDATE public.t SET state = %s WHERE id = %s", ("complete", i + 1))
        conn.commit()
    return (time.perf_counter() - t0) / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--pairs", type=int, default=1500)
    args = ap.parse_args()
    import psycopg
    from pg import PostgresServer

    with PostgresServer() as srv:
        srv.create_database("sp")
        with psycopg.connect(srv.dsn("sp")) as conn:
            conn.execute("CREATE TABLE public.t (id int PRIMARY KEY, name varchar(100), state varchar(20))")
            conn.execute("INSERT INTO public.t SELECT g, 'n' || g, 'complete' FROM generate_series(1, %s) g", (args.pairs,))
            conn.commit()
            ms: dict[str, list[float]] = {k: [] for k in PATHS}
            for _ in range(args.rounds):
                for kind, path in PATHS.items():
                    conn.execute(f"SET search_path TO {path}")
                    conn.commit()
                    ms[kind].append(_pairs_ms(conn, args.pairs))
    for kind, v in ms.items():
        print(f"{kind:8s} ms per pair: {', '.join(f'{x:.3f}' for x in v)}")
    ratios = [p / d for p, d in zip(ms["pinned"], ms["default"], strict=True)]
    print(f"pinned/default: median {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
