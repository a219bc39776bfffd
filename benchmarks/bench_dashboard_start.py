"""The dashboard's start: reading the studies and building their plots before the server answers.

Builds three SQLite studies of 24 trials (4 parameters, 10 reports each), then times what
``tunesmith dashboard`` does before it answers (``warm``: each study read, every plot of its page
built) on a fresh dashboard ``--rounds`` times in this process: the first round pays the imports, as
a fresh server does. Prints wall and CPU seconds per round and their medians. Run it once per source
tree, alternating, to compare two trees:

    for i in 1 2 3; do for t in OLD NEW; do OMP_NUM_THREADS=1 PYTHONPATH=$t/src nice -n 10 \\
        .venv/bin/python benchmarks/bench_dashboard_start.py; done; done
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Any

import tunesmith as ts


def objective(t: ts.Trial) -> float:
    v = 0.0
    for step in range(10):
        v = (t.params["lr"] - 0.01) ** 2 + t.params["wd"] + 1.0 / (step + 1)
        t.report(v, step)
    return v


def build(url: str) -> None:
    space = ts.Space({"lr": ts.Float(1e-4, 1e-1, log=True), "wd": ts.Float(0.0, 0.1), "layers": ts.Int(1, 4),
                      "opt": ts.Categorical(["adam", "sgd"])})
    for name in ("a", "b", "c"):
        ts.Study(space, storage=url, name=name, sampler="random", seed=1).optimize(objective, n_trials=24)


def check_built(app: Any, records: list[Any]) -> None:
    """Read every plot ``warm`` built back from the cache: ``warm`` passes over a study whose plot
    fails (the page reports it), which would time less work; such a failure stops the run here."""
    from tunesmith.dashboard.figures import STUDY_KINDS, plots_of

    cache = app.state.dashboard.cache
    for r in records:
        view = cache.view(r.name)
        for kind in STUDY_KINDS:
            plots_of(cache, view, kind)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    from tunesmith.dashboard.app import create_app
    from tunesmith.dashboard.server import warm

    with tempfile.TemporaryDirectory(prefix="dash-start-") as folder:
        url = f"sqlite:///{folder}/studies.db"
        build(url)
        walls, cpus = [], []
        for _ in range(args.rounds):
            app = create_app(ts.SQLStorage(url))
            records = app.state.dashboard.cache.records()
            wall, cpu = time.perf_counter(), time.process_time()
            warm(app, records)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            check_built(app, records)
    print(f"load {os.getloadavg()[0]:.1f}; wall s {[round(w, 3) for w in walls]} (first {walls[0]:.3f}, median "
          f"{statistics.median(walls):.3f}); CPU s {[round(c, 3) for c in cpus]} (first {cpus[0]:.3f}, median "
          f"{statistics.median(cpus):.3f})", flush=True)


if __name__ == "__main__":
    main()
