"""Distributed throughput, side by side with the peers, in one run.

Part "storage": trials per second on a trivial objective with the random
sampler, 1/2/4 worker processes sharing one study, on SQLite and on a
throwaway PostgreSQL server; tunesmith and Optuna's RDB storage on the same
database, same mechanism (forked processes, each loading the study and
running its share of the trials), alternated within each repeat.

Part "ray": overhead per trial of the Ray executor on a trivial objective
(wall time / trials, actors' start included) next to Ray Tune's Tuner
(default, and reuse_actors=True) on the same private local Ray instance.

    PYTHONPATH=src python benchmarks/bench_distributed.py --part all --out benchmarks/results/distributed.json
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]
# worker processes (Ray's included) must import this checkout's tunesmith too
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
os.environ.setdefault("OMP_NUM_THREADS", "1")

import tunesmith as ts  # noqa: E402

ts.set_verbosity(logging.WARNING)


# -- storage throughput ------------------------------------------------------------------------
SLEEP = 0.0  # seconds each trial's objective waits (the "scaling" part: a trial that waits on I/O or a GPU)


def _ts_worker(url: str, name: str, n: int) -> None:
    study = ts.Study.load(name, url, sampler="random")

    def objective(t: ts.Trial) -> float:
        if SLEEP:
            time.sleep(SLEEP)
        return float(t.params["x"] ** 2)

    study.optimize(objective, n_trials=n, show_progress=False)


def _optuna_worker(url: str, name: str, n: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=url, sampler=optuna.samplers.RandomSampler())

    def objective(t: Any) -> float:
        x = t.suggest_float("x", -5, 5)
        if SLEEP:
            time.sleep(SLEEP)
        return float(x**2)

    study.optimize(objective, n_trials=n)


def _ts_create(url: str, name: str) -> None:
    ts.Study({"x": ts.Float(-5, 5)}, storage=url, name=name, sampler="random")


def _optuna_create(url: str, name: str) -> None:
    import optuna

    optuna.create_study(study_name=name, storage=url, sampler=optuna.samplers.RandomSampler())


def _timed(work: Callable[[str, str, int], None], url: str, name: str, n_trials: int, workers: int) -> float:
    """Trials per second: ``workers`` forked processes run n_trials/workers each."""
    ctx = mp.get_context("fork")
    share = n_trials // workers
    t0 = time.perf_counter()
    procs = [ctx.Process(target=work, args=(url, name, share)) for _ in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a benchmark worker failed (exit code {p.exitcode})")
    return share * workers / (time.perf_counter() - t0)


def bench_storage(urls: dict[str, str], n_trials: int, repeats: int) -> list[dict[str, Any]]:
    libs = {"tunesmith": (_ts_create, _ts_worker), "optuna": (_optuna_create, _optuna_worker)}
    rows = []
    for db, url in urls.items():
        for workers in (1, 2, 4):
            rates: dict[str, list[float]] = {lib: [] for lib in libs}
            for _ in range(repeats):
                for lib, (create, work) in libs.items():  # alternated: same machine load
                    name = f"{lib}-{uuid.uuid4().hex[:8]}"
                    create(url, name)
                    rates[lib].append(_timed(work, url, name, n_trials, workers))
            row = {"db": db, "workers": workers, "trials": n_trials, "repeats": repeats, "sleep_s": SLEEP}
            for lib in libs:
                row[f"{lib}_trials_per_s"] = round(statistics.median(rates[lib]), 1)
            row["ratio"] = round(row["tunesmith_trials_per_s"] / row["optuna_trials_per_s"], 2)
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


# -- Ray overhead ------------------------------------------------------------------------------
def _ray_start(num_cpus: int) -> Any:
    from ray_util import quiet_home, set_ray_env, short_tmp

    set_ray_env()
    import ray

    temp = short_tmp("tsbench")
    home = os.environ.get("HOME")
    os.environ["HOME"] = quiet_home(temp)  # no cloud-metadata requests from Ray's dashboard
    try:
        ray.init(address="local", num_cpus=num_cpus, num_gpus=0, _temp_dir=str(temp),
                 _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
    finally:
        if home is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = home
    return ray


def _tunesmith_ray(n: int, storage: str | None) -> float:
    return _tunesmith_ray_total(n, storage) / n


def _tunesmith_ray_total(n: int, storage: str | None) -> float:
    study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", storage=storage, name=f"r-{uuid.uuid4().hex[:6]}")
    t0 = time.perf_counter()
    study.optimize(lambda t: t.params["x"], n_trials=n, executor="ray", show_progress=False)
    elapsed = time.perf_counter() - t0
    assert len(study.trials) == n
    return elapsed


def _tunesmith_ray_marginal(n: int, storage: str | None) -> float:
    """Steady-state cost of one more trial: (T(4n) - T(n)) / 3n, actors' start cancelled out."""
    return (_tunesmith_ray_total(4 * n, storage) - _tunesmith_ray_total(n, storage)) / (3 * n)


def _tune(n: int, reuse: bool, folder: str) -> float:
    from ray import tune

    def trainable(config: dict[str, float]) -> dict[str, float]:
        return {"score": config["x"]}

    tuner = tune.Tuner(
        trainable, param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(num_samples=n, reuse_actors=reuse, metric="score", mode="min"),
        run_config=tune.RunConfig(storage_path=folder, verbose=0),
    )
    t0 = time.perf_counter()
    results = tuner.fit()
    elapsed = time.perf_counter() - t0
    assert len(results) == n
    return elapsed / n


def bench_ray(n_trials: int, tune_default_trials: int, repeats: int) -> list[dict[str, Any]]:
    ray = _ray_start(2)
    folder = tempfile.mkdtemp(prefix="tsbench-tune-")
    db = Path(folder) / "ray.db"
    cases: dict[str, tuple[Callable[[], float], int]] = {
        "tunesmith ray (in-memory study)": (lambda: _tunesmith_ray(n_trials, None), n_trials),
        "tunesmith ray (SQLite study)": (lambda: _tunesmith_ray(n_trials, f"sqlite:///{db}"), n_trials),
        "tunesmith ray, marginal per trial (in-memory)": (lambda: _tunesmith_ray_marginal(n_trials, None), 4 * n_trials),
        "tunesmith ray, marginal per trial (SQLite)": (
            lambda: _tunesmith_ray_marginal(n_trials, f"sqlite:///{db}"), 4 * n_trials),
        "ray tune Tuner (reuse_actors=True)": (lambda: _tune(n_trials, True, folder), n_trials),
        "ray tune Tuner (default)": (lambda: _tune(tune_default_trials, False, folder), tune_default_trials),
    }
    per: dict[str, list[float]] = {k: [] for k in cases}
    try:
        for _ in range(repeats):
            for name, (fn, _) in cases.items():
                per[name].append(fn())
    finally:
        ray.shutdown()
    rows = []
    for name, (_, n) in cases.items():
        row = {"executor": name, "trials": n, "repeats": repeats,
               "ms_per_trial": round(1000 * statistics.median(per[name]), 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["storage", "scaling", "ray", "all"], default="all")
    ap.add_argument("--sleep", type=float, default=0.02, help="objective's wait in the scaling part (s)")
    ap.add_argument("--trials", type=int, default=200, help="trials per storage measurement")
    ap.add_argument("--ray-trials", type=int, default=100)
    ap.add_argument("--tune-default-trials", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    result: dict[str, Any] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    if args.part in ("storage", "all"):
        from pg import PostgresServer

        with PostgresServer() as pg, tempfile.TemporaryDirectory() as tmp:
            urls = {"sqlite": f"sqlite:///{tmp}/bench.db", "postgresql": pg.create_database("bench")}
            result["storage"] = bench_storage(urls, args.trials, args.repeats)
    if args.part in ("scaling", "all"):
        global SLEEP
        SLEEP = args.sleep
        from pg import PostgresServer

        with PostgresServer() as pg:
            result["scaling"] = bench_storage({"postgresql": pg.create_database("scaling")}, args.trials, args.repeats)
    if args.part in ("ray", "all"):
        result["ray"] = bench_ray(args.ray_trials, args.tune_default_trials, args.repeats)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
