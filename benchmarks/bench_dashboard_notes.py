"""The dashboard's study page of a study holding a note of megabytes (written outside tunesmith,
which keeps 2,000 characters a note): the page's size and the median time to serve it.

    PYTHONPATH=src python benchmarks/bench_dashboard_notes.py --mb 5 --loads 7

The study (20 trials on SQLite) gets 19 short notes and one of ``--mb`` MB written into its
stored settings; each page is asked ``--loads`` times from the dashboard application in process
(starlette's TestClient: the server's own work, no browser).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import tunesmith as ts
from tunesmith.dashboard import create_app, open_storage


def _study(folder: Path, megabytes: float) -> str:
    url = f"sqlite:///{folder / 'notes.db'}"
    ts.Study({"x": ts.Float(0, 1)}, storage=url, name="s", sampler="random", seed=0).optimize(
        lambda t: t.params["x"], n_trials=20)
    notes = [{"time": 1.7e9 + i, "text": f"note {i}"} for i in range(19)]
    notes.insert(10, {"time": 1.7e9 + 100, "text": "x" * int(megabytes * 1_000_000)})
    with sqlite3.connect(folder / "notes.db") as db:
        config = json.loads(db.execute("SELECT config FROM ts_studies WHERE name = 's'").fetchone()[0])
        db.execute("UPDATE ts_studies SET config = ? WHERE name = 's'", (json.dumps({**config, "notes": notes}),))
    return url


def _measure(client: object, path: str, loads: int) -> tuple[int, float]:
    """(bytes, median seconds) of ``loads`` requests of ``path``."""
    times, size = [], 0
    for _ in range(loads):
        start = time.perf_counter()
        r = client.get(path)  # type: ignore[attr-defined]
        times.append(time.perf_counter() - start)
        assert r.status_code == 200, (path, r.status_code)
        size = len(r.content)
    return size, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=5.0, help="size of the long note in MB (default 5)")
    parser.add_argument("--loads", type=int, default=7, help="requests of each page (default 7)")
    args = parser.parse_args()
    from starlette.testclient import TestClient

    with tempfile.TemporaryDirectory() as folder:
        client = TestClient(create_app(open_storage(_study(Path(folder), args.mb))))
        client.get("/studies/s")  # the server reads the study at the first request
        for path in ("/studies/s", "/studies/s?notes=all"):
            size, seconds = _measure(client, path, args.loads)
            print(f"{path:24} {size:>12,} bytes  median {seconds * 1000:8.1f} ms ({args.loads} loads)")


if __name__ == "__main__":
    main()
