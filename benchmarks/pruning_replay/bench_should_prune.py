"""Cost of ``trial.report`` + ``trial.should_prune()`` per epoch, by the number of queued trials.

A study with 5 finished trials of 27 epochs and ``--queued`` waiting (enqueued) trials; then
3 trials report 27 epochs each and ask the pruner after every report (the best trial so far,
so none is stopped). Printed: the median and the mean milliseconds of ``should_prune()`` per
report, for each storage (memory, SQLite file), pruner and queue length.

    PYTHONPATH=src python benchmarks/pruning_replay/bench_should_prune.py
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time

import tunesmith as ts

EPOCHS = 27
SPACE = {"x": ts.Float(0.0, 1.0), "n": ts.Int(1, 100, log=True), "c": ts.Categorical(["a", "b"])}


def run_trial(study: ts.Study, level: float, timings: list[float] | None) -> None:
    trial = study.ask()
    for step in range(1, EPOCHS + 1):
        trial.report(level / step, step)
        start = time.perf_counter()
        trial.should_prune()
        if timings is not None:
            timings.append(time.perf_counter() - start)
    study.tell(trial, level / EPOCHS)


def per_report(storage: str | None, pruner: str, queued: int) -> list[float]:
    study = ts.Study(SPACE, pruner=pruner, sampler="random", seed=0, storage=storage)
    for i in range(5):
        run_trial(study, 2.0 + i, None)
    for _ in range(queued):
        study.enqueue({"x": 0.5, "n": 3, "c": "a"})
    timings: list[float] = []
    for i in range(3):
        run_trial(study, 1.0 - 0.1 * i, timings)
    return timings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queued", type=int, nargs="+", default=[0, 100, 1000])
    ap.add_argument("--pruners", nargs="+", default=["none", "median", "asha"])
    args = ap.parse_args()
    ts.set_verbosity(logging.ERROR)
    folder = tempfile.mkdtemp()
    print("| storage | pruner | " + " | ".join(f"{q} queued" for q in args.queued) + " |")
    print("|---|---|" + "---|" * len(args.queued))
    for kind in ("memory", "sqlite"):
        for pruner in args.pruners:
            cells = []
            for q in args.queued:
                url = None if kind == "memory" else f"sqlite:///{folder}/{pruner}-{q}.db"
                t = per_report(url, pruner, q)
                cells.append(f"{statistics.median(t) * 1e3:.3f} / {statistics.mean(t) * 1e3:.3f}")
            print(f"| {kind} | {pruner} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
