"""ask + tell (or optimize) per trial on a PostgreSQL server and a SQLite file: two tunesmith source
trees and Optuna's RDBStorage, side by side in one run (first written for the cost of pinging the
server's connections; any two trees' per-trial cost on a real server).

    PYTHONPATH=src nice -n 10 python benchmarks/bench_pre_ping.py --trees <main>/src src
    PYTHONPATH=src python benchmarks/bench_pre_ping.py --trees A/src B/src --trials 100 --rounds 2   # a quick look
    PYTHONPATH=src nice -n 10 python benchmarks/bench_pre_ping.py --trees A/src B/src --trials 2000 \
        --optuna-trials 100 --loop optimize     # the history growing to 2,000 trials, study.optimize

A PostgreSQL server of its own (``tests/pg.py``, on 127.0.0.1, stopped at the end) and a fresh
SQLite folder. Each round runs every configuration once, each in a fresh process, in turn: tunesmith
from tree A and from tree B (``PYTHONPATH``) and Optuna (RDBStorage, its defaults: no pre-ping on
PostgreSQL or SQLite), each on a study of its own, ``--trials`` ask + tell after 20 not timed, the
space and loop of ``bench_overhead.py`` (``--loop optimize``: ``study.optimize`` of the same trivial
objective instead; ``--optuna-trials``: fewer trials for Optuna, whose trial takes 10-100x as long,
which favours it: its cost a trial grows with the study). Prints each configuration's median wall and CPU milliseconds
per trial over the rounds, and the median of the per-round ratios against tree A on the same storage.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
WARMUP = 20


def run(lib: str, url: str, trials: int, how: str = "ask") -> dict[str, float]:
    """Wall and CPU seconds per trial of ``trials`` ask + tell (``how="optimize"``: ``study.optimize``)
    on a new study at ``url``."""
    sys.path.insert(0, str(HERE))
    import bench_overhead

    name = f"bench-{uuid.uuid4().hex[:8]}"
    if lib == "tunesmith":
        import tunesmith as ts

        study = ts.Study(bench_overhead._ts_space(), sampler="random", seed=0, storage=url, name=name)

        def loop(n: int) -> None:
            if how == "optimize":
                study.optimize(lambda t: t.params["x"] ** 2, n_trials=n)
                return
            for _ in range(n):
                trial = study.ask()
                study.tell(trial, trial.params["x"] ** 2)
    else:
        import logging

        import optuna

        optuna.logging.set_verbosity(logging.WARNING)
        ostudy = optuna.create_study(storage=url, study_name=name, sampler=optuna.samplers.RandomSampler(seed=0))
        asktell = bench_overhead.optuna_loop(ostudy)

        def loop(n: int) -> None:
            if how == "optimize":
                ostudy.optimize(bench_overhead.optuna_objective, n_trials=n)
            else:
                asktell(n)
    loop(WARMUP)
    wall, cpu = time.perf_counter(), time.process_time()
    loop(trials)
    return {"wall": (time.perf_counter() - wall) / trials, "cpu": (time.process_time() - cpu) / trials}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", nargs=2, required=True, metavar=("A", "B"), help="two tunesmith src folders")
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--optuna-trials", type=int, help="Optuna's trials a process (default: --trials)")
    ap.add_argument("--loop", choices=["ask", "optimize"], default="ask")
    ap.add_argument("--only", choices=["postgresql", "sqlite"], action="append")
    ap.add_argument("--run", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        print(json.dumps(run(args.run[0], args.run[1], int(args.run[2]), args.loop)))
        return
    sys.path.insert(0, str(HERE.parent / "tests"))
    from pg import PostgresServer

    trees = [str(Path(t).resolve()) for t in args.trees]
    configs = [("A", "tunesmith", trees[0]), ("B", "tunesmith", trees[1]), ("optuna", "optuna", trees[1])]
    kinds = args.only or ["postgresql", "sqlite"]
    optuna_trials = args.optuna_trials or args.trials
    print(f"A = {trees[0]}\nB = {trees[1]}\n{args.loop}: {args.trials} trials a process "
          f"(Optuna {optuna_trials}), {args.rounds} rounds")
    with tempfile.TemporaryDirectory(prefix="bench-ping-") as folder, PostgresServer() as server:
        urls = {"postgresql": server.create_database("bench"), "sqlite": f"sqlite:///{folder}/bench.db"}
        print(f"{'storage':>10} {'config':>7} {'wall ms':>8} {'cpu ms':>7} {'wall/A':>7} {'cpu/A':>6}")
        for kind in kinds:
            got: dict[str, list[dict[str, float]]] = {c[0]: [] for c in configs}
            for _ in range(args.rounds):
                for label, lib, tree in configs:
                    env = {**os.environ, "PYTHONPATH": tree, "OMP_NUM_THREADS": "1"}
                    trials = optuna_trials if lib == "optuna" else args.trials
                    out = subprocess.run([sys.executable, __file__, "--trees", *trees, "--loop", args.loop, "--run", lib,
                                          urls[kind], str(trials)], env=env, check=True, capture_output=True, text=True)
                    got[label].append(json.loads(out.stdout.splitlines()[-1]))
            for label, _, _ in configs:
                runs, base = got[label], got["A"]
                ratio = {m: statistics.median(r[m] / a[m] for r, a in zip(runs, base, strict=True)) for m in ("wall", "cpu")}
                print(f"{kind:>10} {label:>7} {statistics.median(r['wall'] for r in runs) * 1e3:8.3f} "
                      f"{statistics.median(r['cpu'] for r in runs) * 1e3:7.3f} {ratio['wall']:7.2f} {ratio['cpu']:6.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
