"""A trial's cost with a long history and one early trial left unfinished: tunesmith vs Optuna RDB.

A study of N finished trials (each with ``--reports`` intermediate reports) is built, with or
without one unfinished trial ahead of them (number 0: ``running``, a worker that died without
heartbeats, or ``paused``, a trial its pruner never promotes). Then ``study.optimize`` runs
``--trials`` trials of the TPE sampler (whose every ask reads the history) on the public API and
the time per trial is taken; ``--repeats`` rounds, the configurations interleaved in each round so
machine noise hits them alike (the history grows by ``--trials`` a round). Optuna (its RDB storage,
``TPESampler``, ``study.optimize`` with ``suggest_*``) runs the same space on the same database
server, with and without one early ``RUNNING`` trial (it has no paused state).

Storages: ``memory``, ``sqlite`` (a file) and ``postgresql`` (a server started on 127.0.0.1 for the
run, as the tests do, and stopped by its pid). Printed: the median ms per trial over the rounds, the
runs, and each configuration against the same storage without a stale trial and against Optuna.

    OMP_NUM_THREADS=1 PYTHONPATH=src nice .venv/bin/python benchmarks/bench_refresh.py --sizes 2000,5000

``--many-paused N`` measures instead a study of N complete trials (16 reports) and N paused ones (4
reports) interleaved, each refresh reading the N paused trials again: the ms of reading
``study.trials`` and of a pruning decision's read (the queue left out), median of 30, per storage.

    OMP_NUM_THREADS=1 PYTHONPATH=src nice .venv/bin/python benchmarks/bench_refresh.py --many-paused 1000
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
logging.disable(logging.WARNING)
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # pg.py: the throwaway PostgreSQL server of the tests

import numpy as np  # noqa: E402

import tunesmith as ts  # noqa: E402

SPACE = {"x": ts.Float(-5.0, 5.0), "lr": ts.Float(1e-5, 1e-1, log=True), "n": ts.Int(1, 64),
         "act": ts.Categorical(["relu", "tanh", "gelu"])}
STALE = ("none", "running", "paused")


def _value(x: float, n: int) -> float:
    return float(x ** 2 + n / 64)


def _records(n: int, reports: int, stale: str) -> list[ts.FrozenTrial]:
    rng = np.random.default_rng(0)
    space = ts.Space(SPACE)
    out = []
    if stale != "none":
        state = ts.TrialState.RUNNING if stale == "running" else ts.TrialState.PAUSED
        out.append(ts.FrozenTrial(number=0, state=state, params=space.sample(rng), started=1.0, heartbeat=1.0,
                                  worker="gone:1", intermediate={1: 1.0}))
    for _ in range(n):
        p = space.sample(rng)
        v = _value(p["x"], p["n"])
        out.append(ts.FrozenTrial(number=0, state=ts.TrialState.COMPLETE, params=p, value=v, started=1.0,
                                  completed=2.0, intermediate={s: v + 1.0 / s for s in range(1, reports + 1)}))
    return out


def tunesmith_runner(url: str | None, n: int, reports: int, stale: str) -> Callable[[int], None]:
    base = ts.Study(SPACE, sampler="random", seed=0, storage=url, name="h")
    base.storage.insert_trials(base._study_id, _records(n, reports, stale))
    study = ts.Study(storage=base.storage, name="h", sampler="tpe", seed=1)
    objective = lambda t: _value(t.params["x"], t.params["n"])  # noqa: E731
    study.optimize(objective, n_trials=1)  # the first ask reads the whole history: timed apart, not here
    return lambda k: study.optimize(objective, n_trials=k)


def optuna_runner(url: str, n: int, reports: int, stale: str) -> Callable[[int], None]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {"x": optuna.distributions.FloatDistribution(-5.0, 5.0),
             "lr": optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True),
             "n": optuna.distributions.IntDistribution(1, 64),
             "act": optuna.distributions.CategoricalDistribution(["relu", "tanh", "gelu"])}
    study = optuna.create_study(storage=url, study_name="h", sampler=optuna.samplers.TPESampler(seed=1))
    if stale == "running":
        study.ask(dists)  # left RUNNING: a worker that died
    study.add_trials([optuna.trial.create_trial(params=r.params, distributions=dists, value=r.value,
                                                intermediate_values=dict(r.intermediate))
                      for r in _records(n, reports, "none")])

    def objective(trial: Any) -> float:
        trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        trial.suggest_categorical("act", ["relu", "tanh", "gelu"])
        return _value(trial.suggest_float("x", -5.0, 5.0), trial.suggest_int("n", 1, 64))

    study.optimize(objective, n_trials=1)
    return lambda k: study.optimize(objective, n_trials=k)


@contextlib.contextmanager
def databases(storages: list[str]) -> Iterator[Callable[[str], str | None]]:
    """``url(name)``: a fresh database of each storage kind asked for, named ``name``."""
    names = iter(range(10**6))
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        pg = None
        if "postgresql" in storages:
            from pg import PostgresServer

            pg = stack.enter_context(PostgresServer())

        def url(kind: str) -> str | None:
            i = next(names)
            if kind == "memory":
                return None
            if kind == "sqlite":
                return f"sqlite:///{folder}/b{i}.db"
            assert pg is not None
            return pg.create_database(f"b{i}")

        yield url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2000,5000", help="finished trials N, comma-separated")
    ap.add_argument("--storages", default="memory,sqlite,postgresql")
    ap.add_argument("--reports", type=int, default=10, help="intermediate reports of each trial built")
    ap.add_argument("--trials", type=int, default=10, help="tunesmith trials timed a round")
    ap.add_argument("--optuna-trials", type=int, default=3, help="Optuna trials timed a round")
    ap.add_argument("--optuna-sizes", default="2000", help="sizes Optuna runs at ('' for none)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--many-paused", type=int, help="measure reads of N complete + N paused trials instead")
    args = ap.parse_args()
    storages = args.storages.split(",")
    if args.many_paused:
        many_paused(args.many_paused, storages)
        return
    optuna_sizes = {int(s) for s in args.optuna_sizes.split(",") if s}
    runners: dict[tuple[str, int, str, str], tuple[Callable[[int], None], int]] = {}
    with databases(storages) as url:
        for n in map(int, args.sizes.split(",")):
            for kind in storages:
                for stale in STALE:
                    t0 = time.perf_counter()
                    runners[("tunesmith", n, kind, stale)] = (tunesmith_runner(url(kind), n, args.reports, stale),
                                                              args.trials)
                    print(f"built tunesmith {kind} N={n} stale={stale} in {time.perf_counter() - t0:.1f} s", flush=True)
                    if n in optuna_sizes and kind != "memory" and stale != "paused":
                        t0 = time.perf_counter()
                        runners[("optuna", n, kind, stale)] = (optuna_runner(str(url(kind)), n, args.reports, stale),
                                                               args.optuna_trials)
                        print(f"built optuna {kind} N={n} stale={stale} in {time.perf_counter() - t0:.1f} s",
                              flush=True)
        runs: dict[tuple[str, int, str, str], list[float]] = {key: [] for key in runners}
        for _ in range(args.repeats):
            for key, (run, k) in runners.items():
                t0 = time.perf_counter()
                run(k)
                runs[key].append((time.perf_counter() - t0) * 1e3 / k)
    report(runs)


def many_paused(n: int, storages: list[str]) -> None:
    """Reads of a study whose every other trial of 2 * n is paused: ms, median of 30."""
    def timed(read: Callable[[], Any]) -> float:
        read()
        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            read()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    with databases(storages) as url:
        for kind in storages:
            study = ts.Study(SPACE, sampler="random", seed=0, storage=url(kind), name="s")
            records = _records(2 * n, 16, "none")
            for i in range(0, 2 * n, 2):  # every other trial paused at its fourth report
                r = records[i]
                records[i] = r.replace(state=ts.TrialState.PAUSED, value=None, completed=None,
                                       intermediate=dict(list(r.intermediate.items())[:4]))
            study.storage.insert_trials(study._study_id, records)
            whole, decision = timed(lambda s=study: s.trials), timed(lambda s=study: s._history(exclude=ts.TrialState.WAITING))
            print(f"{kind:11s} N={n}: study.trials {whole:.1f} ms, a decision's read {decision:.1f} ms", flush=True)


def report(runs: dict[tuple[str, int, str, str], list[float]]) -> None:
    med = {key: statistics.median(v) for key, v in runs.items()}
    print("\nwho        N     storage     stale    ms/trial (median)  vs no stale  vs Optuna  runs")
    for (who, n, kind, stale), m in med.items():
        clean = med[(who, n, kind, "none")]
        peer = med.get(("optuna", n, kind, "running" if stale == "paused" else stale))
        vs_peer = f"{m / peer:8.3f}x" if peer and who == "tunesmith" else "         "
        print(f"{who:10s} {n:5d} {kind:11s} {stale:8s} {m:12.2f}       {m / clean:8.2f}x  {vs_peer}  "
              f"{[round(r, 2) for r in runs[(who, n, kind, stale)]]}", flush=True)


if __name__ == "__main__":
    main()
