"""What a long-lived process holds: memory, file descriptors and threads as trials, calls and
requests add up (public API, one process, tracemalloc and /proc/self).

Kinds (each prints a line at each fifth of its run):

* ``trials SAMPLER STORE N [--optuna]``: ``study.optimize`` to N cheap trials (two floats; grid:
  a 150 x 150 grid), bytes per trial (tracemalloc and RSS) after the first 50; ``--optuna`` runs
  the same loop with Optuna (in-memory or RDB storage);
* ``optimize SAMPLER STORE N``: ``study.optimize(n_trials=10)`` called N times on one Study;
* ``load STORE N``: ``Study.load`` + ``.trials`` + ``optimize(n_trials=1)``, N times;
* ``searchcv STORE N``: ``TunedSearchCV.fit`` (a decision tree on iris, 10 trials, 3 folds) N times;
* ``trainer STORE N [PRUNER]``: N trials of ``tunesmith.train.bridge.objective`` (an MLP, 4 epochs),
  the torch tensors alive after each;
* ``dashboard N [--churn]``: N requests of the dashboard's JSON and page endpoints on a study that
  grows by a trial every 10 requests (its cache read again at each); ``--churn``: every 20th
  request, another program makes a 50-trial study, the dashboard shows it, and it is deleted;
* ``pruner NAME N STEPS``: N trials of STEPS reports under a pruner, the bytes it keeps.

STORE is ``memory`` or ``sqlite``. Run from the repository root, e.g.::

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_memory.py trials random memory 20050
    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_memory.py dashboard 2000 --churn
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import tunesmith as ts

logging.getLogger("tunesmith").setLevel(logging.ERROR)
FOLDER = tempfile.mkdtemp()


def rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))


def traced() -> int:
    return tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0


def process() -> str:
    return f"fds={len(os.listdir('/proc/self/fd'))} threads={threading.active_count()} objs={len(gc.get_objects())}"


def url(store: str, name: str = "s") -> str | None:
    return None if store == "memory" else f"sqlite:///{FOLDER}/{name}.db"


def repeat(n: int, step: Callable[[int], None], what: str, per: int = 1) -> None:
    """``step(i)`` for i < n, a line at each fifth: growth since the first (traced, RSS) per ``per``."""
    gc.collect()
    m0, r0, t0 = traced(), rss(), time.time()
    for i in range(n):
        step(i)
        if (i + 1) % max(n // 5, 1) == 0:
            gc.collect()
            dm, dr, k = traced() - m0, rss() - r0, (i + 1) * per
            print(f"{what} {i + 1}: traced +{dm / 1e6:.2f} MB ({dm / k:.0f} B each), RSS +{dr / 1e6:.1f} MB "
                  f"({dr / k:.0f} B each), {process()}, {time.time() - t0:.0f} s", flush=True)


def trials(sampler: str, store: str, n: int, optuna_too: bool) -> None:
    grid = sampler == "grid"
    if optuna_too:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        values = list(range(150))
        smp = {"random": optuna.samplers.RandomSampler(seed=0), "tpe": optuna.samplers.TPESampler(seed=0),
               "grid": optuna.samplers.GridSampler({"x": values, "y": values}, seed=0)}[sampler]
        study: Any = optuna.create_study(sampler=smp, storage=url(store), study_name="m")

        def objective(t: Any) -> float:
            if grid:
                return t.suggest_categorical("x", values) * 0.1 + t.suggest_categorical("y", values)
            return (t.suggest_float("x", -5, 5) - 0.3) ** 2 + (t.suggest_float("y", -5, 5) + 1) ** 2
    else:
        space = ts.Space({"x": ts.Categorical(list(range(150))), "y": ts.Categorical(list(range(150)))} if grid
                         else {"x": ts.Float(-5, 5), "y": ts.Float(-5, 5)})
        study = ts.Study(space, sampler=sampler, seed=0, storage=url(store), name="m")

        def objective(t: Any) -> float:
            p = t.params
            return p["x"] * 0.1 + p["y"] if grid else (p["x"] - 0.3) ** 2 + (p["y"] + 1) ** 2
    study.optimize(objective, n_trials=50)
    chunk = max((n - 50) // 5, 1)
    repeat(5, lambda i: study.optimize(objective, n_trials=chunk), f"{'optuna' if optuna_too else 'tunesmith'} "
           f"{sampler} {store}, trials past 50 x", per=chunk)


def _space() -> ts.Space:
    return ts.Space({"x": ts.Float(-5, 5), "y": ts.Float(-5, 5)})


def _cheap(t: Any) -> float:
    return float(t.params["x"] ** 2 + t.params["y"])


def optimize(sampler: str, store: str, n: int) -> None:
    study = ts.Study(_space(), sampler=sampler, seed=0, storage=url(store), name="m")
    study.optimize(_cheap, n_trials=10)
    repeat(n, lambda i: study.optimize(_cheap, n_trials=10), f"{sampler} {store}, optimize(n_trials=10) x", per=10)


def load(store: str, n: int) -> None:
    storage: Any = url(store) or ts.MemoryStorage()
    ts.Study(_space(), sampler="random", seed=0, storage=storage, name="m").optimize(_cheap, n_trials=20)

    def step(i: int) -> None:
        s = ts.Study.load("m", storage)
        _ = s.trials
        s.optimize(_cheap, n_trials=1)
    repeat(n, step, f"{store}, Study.load x")


def searchcv(store: str, n: int) -> None:
    import warnings

    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    from tunesmith.sklearn import TunedSearchCV

    warnings.simplefilter("ignore")
    x, y = load_iris(return_X_y=True)

    def step(i: int) -> None:
        kw: dict[str, Any] = {} if store == "memory" else {"storage": url(store), "name": f"fit{i}"}
        TunedSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": ts.Int(1, 8), "min_samples_leaf": ts.Int(1, 10)},
                      n_trials=10, sampler="random", cv=3, random_state=0, **kw).fit(x, y)
    step(-1)
    repeat(n, step, f"{store}, TunedSearchCV.fit x")


def trainer(store: str, n: int, pruner: str | None) -> None:
    import torch
    from torch import nn

    from tunesmith.train import TrainConfig
    from tunesmith.train.bridge import objective

    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 16, generator=g)
    y = (x[:, 0] > 0).long()
    space = {"lr": ts.Float(1e-4, 1e-1, log=True), "weight_decay": ts.Float(1e-6, 1e-2, log=True)}
    obj = objective(lambda p: nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 2)),
                    ((x[:384], y[:384]), (x[384:], y[384:])), space,
                    base=TrainConfig(epochs=4, batch_size=64), checkpoint_root=f"{FOLDER}/ck")
    study = ts.Study(space, sampler="random", seed=0, storage=url(store), name="t", pruner=pruner)
    counts: list[int] = []

    def step(i: int) -> None:
        study.optimize(obj, n_trials=1)
        gc.collect()
        counts.append(sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor)))
    repeat(n, step, f"{store}, trainer trials x")
    print("torch tensors alive after each trial: first", counts[:3], "last", counts[-3:])


def dashboard(n: int, churn: bool) -> None:
    from starlette.testclient import TestClient

    from tunesmith.dashboard import cache, create_app, open_storage

    where = url("sqlite")
    assert where is not None

    def obj(t: Any) -> float:
        for s in range(5):
            t.report(t.params["x"] + s, s)
        return float(t.params["x"] ** 2)
    study = ts.Study(_space(), sampler="random", seed=0, storage=where, name="grow")
    study.optimize(obj, n_trials=100)
    client = TestClient(create_app(open_storage(where)))
    cache.MIN_INTERVAL = 0.0  # every request reads the storage again
    paths = ["/api/studies", "/api/studies/grow", "/api/studies/grow/changes?since=0",
             "/api/studies/grow/trials?offset=0&limit=50&order=best", "/api/studies/grow/trials/3",
             "/api/studies/grow/trials/3/curve", "/", "/studies/grow", "/studies/grow/trials/5",
             "/api/studies/grow/plots/history", "/api/studies/grow/trials?order=-number&state=complete"]

    def step(i: int) -> None:
        if churn and i % 20 == 0:
            ts.Study(_space(), storage=where, name=f"tmp{i}", sampler="random").optimize(obj, n_trials=50)
            client.get(f"/studies/tmp{i}")
            ts.load_study(f"tmp{i}", where).delete()
        r = client.get(paths[i % len(paths)])
        assert r.status_code == 200, (paths[i % len(paths)], r.status_code)
        if i % 10 == 0:
            study.optimize(obj, n_trials=1)
    for i in range(len(paths)):  # every endpoint once: imports and first figures before measuring
        step(i)
    repeat(n, step, "dashboard requests x")
    entries = client.app.state.dashboard.cache._entries  # type: ignore[attr-defined]
    print(f"studies the dashboard holds: {len(entries)}; trials of the growing one: {len(study.trials)}")


def pruner(name: str, n: int, steps: int) -> None:
    def obj(t: Any) -> float:
        for s in range(steps):
            t.report(t.params["x"] + 1.0 / (s + 1), s)
            if t.should_prune():
                raise ts.TrialPruned()
        return float(t.params["x"])
    study = ts.Study(ts.Space({"x": ts.Float(0, 1)}), sampler="random", seed=0, pruner=name, name="p")
    study.optimize(obj, n_trials=n)
    gc.collect()
    snap = tracemalloc.take_snapshot()
    kept = sum(s.size for s in snap.statistics("filename") if "pruners" in s.traceback[0].filename)
    print(f"{name}: {n} trials of up to {steps} reports: the pruner keeps {kept / 1e6:.2f} MB; "
          f"all traced {traced() / 1e6:.1f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["trials", "optimize", "load", "searchcv", "trainer", "dashboard", "pruner"])
    ap.add_argument("args", nargs="*")
    ap.add_argument("--optuna", action="store_true")
    ap.add_argument("--churn", action="store_true")
    a = ap.parse_args()
    tracemalloc.start()
    x = a.args
    if a.kind == "trials":
        trials(x[0], x[1], int(x[2]), a.optuna)
    elif a.kind == "optimize":
        optimize(x[0], x[1], int(x[2]))
    elif a.kind == "load":
        load(x[0], int(x[1]))
    elif a.kind == "searchcv":
        searchcv(x[0], int(x[1]))
    elif a.kind == "trainer":
        trainer(x[0], int(x[1]), x[2] if len(x) > 2 else None)
    elif a.kind == "dashboard":
        dashboard(int(x[0]), a.churn)
    else:
        pruner(x[0], int(x[1]), int(x[2]))


if __name__ == "__main__":
    main()
