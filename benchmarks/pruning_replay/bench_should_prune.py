"""Cost of ``trial.report`` + ``trial.should_prune()`` per epoch, by the number of queued trials.

A study with 5 finished trials of 27 epochs and ``--queued`` waiting (enqueued) trials; then
3 trials report 27 epochs each and ask the pruner after every report (the best trial so far,
so none is stopped). Printed: the median and the mean milliseconds of ``should_prune()`` per
report, for each storage (memory, SQLite file), pruner and queue length.

    PYTHONPATH=src python benchmarks/pruning_replay/bench_should_prune.py

``--paused N...`` measures the pausing pruners instead: a study of N complete trials (16
reports) and N paused ones (4 reports, at the second rung, behind every complete trial, so
none is promoted) of ``ASHA``, ``SuccessiveHalving`` (one cohort, unsettled) and
``Hyperband`` with ``pause=True`` (``min_resource=1, reduction_factor=4, max_resource=16``),
then ``study.optimize`` of 5 trials that report a worse curve (paused at the first rung).
Before each new trial the study looks for a promotion (``pruner.promotable`` and, for SH,
``abandoned``). Printed: the milliseconds a trial, median of 5, for each storage, pruner,
``calibrate`` and N.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/pruning_replay/bench_should_prune.py --paused 500 1000 2000
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


PAUSING = {
    "asha": lambda n, **kw: ts.pruners.ASHA(**kw),
    "sh": lambda n, **kw: ts.pruners.SuccessiveHalving(cohort_size=4 * n, **kw),
    "hyperband": lambda n, **kw: ts.pruners.Hyperband(n_brackets=2, **kw),
}


def per_trial_paused(storage: str | None, pruner: str, n: int, calibrate: int) -> list[float]:
    """Milliseconds of each of 5 trials of ``study.optimize`` after ``n`` complete and ``n`` paused trials."""
    made = PAUSING[pruner](n, pause=True, min_resource=1, reduction_factor=4, max_resource=16, calibrate=calibrate)
    study = ts.Study(SPACE, pruner=made, sampler="random", seed=0, storage=storage)
    records = [
        ts.FrozenTrial(number=0, state=state, params={"x": i / (2 * n), "n": 3, "c": "a"}, value=value,
                       started=1.0, completed=None if value is None else 2.0,
                       intermediate={s: level + 1.0 / s for s in range(1, last + 1)})
        for i in range(2 * n)
        for state, value, level, last in [(ts.TrialState.COMPLETE, i / n, i / n, 16) if i % 2 == 0
                                          else (ts.TrialState.PAUSED, None, 10.0 + i / n, 4)]
    ]
    study.storage.insert_trials(study._study_id, records)
    _ = study.trials  # read once, as a user's session would have

    def objective(trial: ts.Trial) -> float:
        for step in range(1, 17):
            trial.report(100.0 + 1.0 / step, step)  # behind every trial: stopped at the first rung
            if trial.should_prune():
                raise ts.TrialPruned()
        return 100.0

    timings = []
    for _ in range(5):
        start = time.perf_counter()
        study.optimize(objective, n_trials=1)
        timings.append((time.perf_counter() - start) * 1e3)
    return timings


def main_paused(sizes: list[int]) -> None:
    folder = tempfile.mkdtemp()
    print("| storage | pruner | calibrate | " + " | ".join(f"{n:,} + {n:,} paused" for n in sizes) + " |")
    print("|---|---|---|" + "---|" * len(sizes))
    for kind in ("memory", "sqlite"):
        for pruner in PAUSING:
            for calibrate in (0, 4):
                cells = []
                for n in sizes:
                    url = None if kind == "memory" else f"sqlite:///{folder}/{pruner}-{calibrate}-{n}.db"
                    cells.append(f"{statistics.median(per_trial_paused(url, pruner, n, calibrate)):.1f}")
                print(f"| {kind} | {pruner} | {calibrate} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queued", type=int, nargs="+", default=[0, 100, 1000])
    ap.add_argument("--pruners", nargs="+", default=["none", "median", "asha"])
    ap.add_argument("--paused", type=int, nargs="+", help="measure the pausing pruners at these history sizes")
    args = ap.parse_args()
    ts.set_verbosity(logging.ERROR)
    if args.paused:
        main_paused(args.paused)
        return
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
