"""The grid's pick with worker processes: throughput and failed claims, side by side.

Four worker processes (``Study.load`` + ``optimize``, trivial objective) share one grid study and
run ``--trials`` trials each. Two picks, alternated within each repeat on the same machine load:

- ``count``: this checkout's grid (the pick a function of the seed and the points taken, so every
  worker asking at once picks the same point; the losers take the points that follow it, in the
  same write: ``Suggestion.then``, ``Storage.create_first_free``);
- ``stream``: the same checkout with the pick drawn from the sampler's own stream (``self.rng``,
  each worker's own), as the grid picked before its pick followed the count.

Trials/s is all workers' trials over the span from the first worker's first ask to the last
worker's end (imports and opening the study left out: the workers start together once all are
ready). Failed claims are the writes (``create_trial``, ``create_first_free``) that returned None.
CPU ms/trial is the workers' CPU time in ``optimize`` (``time.process_time``) over
their trials: what each pick costs, far less moved by the machine's load than trials/s. The two picks take turns
going first (count then stream, then stream then count). ``TS_BENCH_PROFILE=DIR`` writes each
worker's cProfile of its ``optimize`` to ``DIR/<pick>-<pid>.prof``.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_grid_workers.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
os.environ.setdefault("OMP_NUM_THREADS", "1")

import tunesmith as ts  # noqa: E402

GRIDS = {1000: (40, 25), 10000: (100, 100)}
WORKERS = 4

WORKER = r"""
import json, logging, os, sys, time
import tunesmith as ts
from tunesmith.samplers import simple

ts.set_verbosity(logging.WARNING)
url, name, n, go, pick, sleep = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], float(sys.argv[6])
if pick == "stream":  # the pick before it followed the count: the sampler's own stream
    def suggest(self, space, trials, direction):
        configs, keys = self._grid(space)
        taken = self._taken_indices(keys, trials)
        n_left = len(keys) - len(taken)
        if n_left == 0:
            return None
        r = 0 if n_left == 1 else int(self.rng.integers(n_left))
        return simple.Suggestion(dict(configs[simple._nth_left(taken, r)]), unique=True)
    simple.GridSampler.suggest = suggest
study = ts.Study.load(name, url)
failed = 0
def counting(write):
    def counted(*args, **kwargs):
        global failed
        rec = write(*args, **kwargs)
        failed += rec is None
        return rec
    return counted
study._storage.create_trial = counting(study._storage.create_trial)
study._storage.create_first_free = counting(study._storage.create_first_free)  # the count pick's claim
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.002)
t0, c0 = time.time(), time.process_time()
def objective(t):
    time.sleep(sleep)
    return float(t.params["x"] + t.params["y"])
prof_dir = os.environ.get("TS_BENCH_PROFILE")  # a folder: each worker's cProfile of its optimize
if prof_dir:
    import cProfile
    prof = cProfile.Profile()
    prof.enable()
study.optimize(objective, n_trials=n, show_progress=False)
if prof_dir:
    prof.disable()
    prof.dump_stats(os.path.join(prof_dir, f"{pick}-{os.getpid()}.prof"))
print(json.dumps({"start": t0, "end": time.time(), "cpu": time.process_time() - c0, "failed": failed}), flush=True)
"""


def one_run(url: str, grid: int, trials: int, pick: str, tmp: Path, sleep: float) -> dict[str, float]:
    name = f"g{grid}-{pick}-{uuid.uuid4().hex[:8]}"
    nx, ny = GRIDS[grid]
    ts.Study({"x": ts.Int(0, nx - 1), "y": ts.Int(0, ny - 1)}, storage=url, name=name,
             sampler={"name": "grid", "points": {"x": list(range(nx)), "y": list(range(ny))}}, seed=1)
    go = tmp / f"{name}.go"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, name, str(trials), str(go), pick, str(sleep)],
                              stdout=subprocess.PIPE, text=True) for _ in range(WORKERS)]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready", "a worker did not start"
        go.touch()
        outs = [json.loads(p.communicate()[0]) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a worker failed: {[p.returncode for p in procs]}")
    done = len(ts.Study.load(name, url).trials)
    assert done == trials * WORKERS, (done, trials * WORKERS)
    span = max(o["end"] for o in outs) - min(o["start"] for o in outs)
    return {"trials_per_s": done / span, "failed": sum(o["failed"] for o in outs),
            "cpu_ms_per_trial": 1000 * sum(o["cpu"] for o in outs) / done}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--trials", type=int, default=100, help="per worker")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--grids", default="1000,10000")
    ap.add_argument("--sleep", type=float, default=0.0, help="seconds each trial's objective waits")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="tsbench-grid-") as d:
        tmp = Path(d)
        server = None
        urls = {}
        for backend in args.backends.split(","):
            if backend == "sqlite":
                urls[backend] = f"sqlite:///{tmp / 'grid.db'}"
            else:
                from pg import PostgresServer

                server = PostgresServer().__enter__()
                urls[backend] = server.create_database("grid")
        try:
            for backend, url in urls.items():
                for grid in map(int, args.grids.split(",")):
                    got: dict[str, list[dict[str, float]]] = {"count": [], "stream": []}
                    for i in range(args.repeats):
                        # alternated (the same load), each first in every other repeat: no pick always runs first
                        for pick in (("count", "stream") if i % 2 == 0 else ("stream", "count")):
                            got[pick].append(one_run(url, grid, args.trials, pick, tmp, args.sleep))
                    row: dict[str, Any] = {"backend": backend, "grid": grid, "trials": args.trials * WORKERS,
                                           "repeats": args.repeats, "sleep_s": args.sleep}
                    for pick, runs in got.items():
                        row[f"{pick}_trials_per_s"] = round(statistics.median(r["trials_per_s"] for r in runs), 1)
                        row[f"{pick}_all"] = [round(r["trials_per_s"], 1) for r in runs]
                        row[f"{pick}_failed"] = statistics.median(r["failed"] for r in runs)
                        row[f"{pick}_cpu_ms"] = round(statistics.median(r["cpu_ms_per_trial"] for r in runs), 3)
                    row["ratio"] = round(row["count_trials_per_s"] / row["stream_trials_per_s"], 3)
                    row["cpu_ratio"] = round(row["count_cpu_ms"] / row["stream_cpu_ms"], 3)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
        finally:
            if server is not None:
                server.close()
    ratios = [r["ratio"] for r in rows]
    print(json.dumps({"median_ratio": statistics.median(ratios), "cells": len(ratios)}), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
