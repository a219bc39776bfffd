"""A/B of tunesmith's own cost per trial between two source trees (CPU time, call counts).

Each measurement runs in a fresh process with ``PYTHONPATH`` set to one tree's ``src``; the trees
alternate, so machine load hits both alike. Per tree and mode, in memory and on SQLite, ``--trials``
trials (the history grows from 0), bench_overhead.py's 4-parameter space, ``--sampler`` (``random``, or
``default``: the study's own choice): ``ask``+``tell`` by hand; ``optimize`` with a trivial objective;
``report``: ask, five ``trial.report`` + ``should_prune`` under the median pruner, then ``tell`` (pruned
or complete); ``sklearn``: ``TunedSearchCV`` of bench_sklearn_overhead.py's estimator that learns nothing
(5 folds, 200 samples, ``--trials`` configurations, refit; per trial = per configuration). CPU time is
``time.process_time`` around the loop; calls per trial come from one cProfile run per tree (they do not
depend on load).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/ab_trial_overhead.py \
        --a /path/to/old/src --b src --pairs 8 --trials 1000
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
from typing import Any

MODES = ("memory-ask", "sqlite-ask", "memory-optimize", "sqlite-optimize")
EXTRA = ("memory-report", "sqlite-report", "memory-sklearn", "sqlite-sklearn")


def _loop(mode: str, n: int, folder: str, sampler: str) -> Any:
    from bench_overhead import _ts_space  # this folder is on sys.path: the script's own

    import tunesmith as ts

    url = None if mode.startswith("memory") else f"sqlite:///{folder}/ab.db"
    chosen = None if sampler == "default" else sampler
    if mode.endswith("sklearn"):
        return _search(n, url, chosen)
    pruner = "median" if mode.endswith("report") else None
    study = ts.Study(_ts_space(), sampler=chosen, pruner=pruner, seed=0, storage=url, name="ab")
    if mode.endswith("optimize"):
        return lambda: study.optimize(lambda t: t.params["x"] ** 2, n_trials=n)
    if mode.endswith("report"):
        return lambda: _reports(study, n)

    def asktell() -> None:
        for _ in range(n):
            trial = study.ask()
            study.tell(trial, trial.params["x"] ** 2)

    return asktell


def _reports(study: Any, n: int) -> None:
    for _ in range(n):
        trial = study.ask()
        x = trial.params["x"] ** 2
        for step in range(1, 6):
            trial.report(x + 1.0 / step, step)
            if trial.should_prune():
                study.tell(trial, state="pruned")
                break
        else:
            study.tell(trial, x)


def _search(n: int, url: str | None, sampler: str | None) -> Any:
    import numpy as np
    from bench_sklearn_overhead import Trivial
    from scipy.stats import uniform

    from tunesmith.sklearn import TunedSearchCV

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 3)), rng.integers(0, 2, 200)
    search = TunedSearchCV(Trivial(), {"c": uniform(0, 1)}, n_trials=n, cv=5, random_state=0, storage=url,
                           name=None if url is None else "ab", **({} if sampler is None else {"sampler": sampler}))
    return lambda: search.fit(X, y)


def child(mode: str, n: int, profile: bool, sampler: str = "random") -> dict[str, float]:
    """One measurement in this process: ms CPU per trial, or calls per trial with ``profile``."""
    with tempfile.TemporaryDirectory(prefix="ab-") as folder:
        run = _loop(mode, n, folder, sampler)
        if profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.runcall(run)
            calls = pstats.Stats(prof).total_calls  # type: ignore[attr-defined]
            return {"calls": calls / n}
        cpu, wall = time.process_time(), time.perf_counter()
        run()
        return {"cpu_ms": (time.process_time() - cpu) * 1e3 / n, "wall_ms": (time.perf_counter() - wall) * 1e3 / n}


def _spawn(src: str, mode: str, n: int, profile: bool, sampler: str) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
    cmd = [sys.executable, __file__, "--child", mode, "--trials", str(n), "--sampler", sampler]
    cmd += ["--profile"] if profile else []
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", help="src folder of the old tree")
    p.add_argument("--b", default="src", help="src folder of the new tree")
    p.add_argument("--pairs", type=int, default=8)
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--sampler", default="random", help="random, or default (the study's own choice)")
    p.add_argument("--child", choices=MODES + EXTRA)
    p.add_argument("--profile", action="store_true")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.trials, args.profile, args.sampler)))
        return
    if not args.a:
        p.error("--a (the old tree's src folder) is required")
    modes = args.modes.split(",")
    print(f"load average {os.getloadavg()}; {args.trials} trials, sampler {args.sampler}", flush=True)
    for mode in modes:
        calls = [_spawn(src, mode, args.trials, True, args.sampler)["calls"] for src in (args.a, args.b)]
        cpu: dict[str, list[float]] = {"a": [], "b": []}
        for i in range(args.pairs):
            order = ("a", "b") if i % 2 == 0 else ("b", "a")
            for side in order:
                cpu[side].append(_spawn(getattr(args, side), mode, args.trials, False, args.sampler)["cpu_ms"])
        ratios = [b / a for a, b in zip(cpu["a"], cpu["b"], strict=True)]
        print(
            f"{mode}: calls/trial {calls[0]:.0f} -> {calls[1]:.0f}; CPU ms/trial median "
            f"{statistics.median(cpu['a']):.3f} -> {statistics.median(cpu['b']):.3f}; "
            f"paired ratio median {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})",
            flush=True,
        )
    print(f"load average {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
