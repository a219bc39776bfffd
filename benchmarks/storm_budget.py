"""A hard kill storm against n_trials: does every optimize call end with exactly n_trials results?

Each run: 4 worker processes on a SQLite study, a random one SIGKILLed every
3-50 ms (seeded; ``--ms LOW HIGH`` for another storm) for the whole call, trials
of 20 ms. Prints one line per run (kills, workers started, results, off by,
running/waiting left, seconds, results per second) and the summary. ``--cap S``
gives each call a timeout of S seconds: a storm the executor cannot keep up
with then ends with fewer results instead of running on.

    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/storm_budget.py --seeds 1 2 3 4
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/storm_budget.py --ms 1 10 --cap 120 --modes fail --trials 100
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from kill_storm import Storm  # noqa: E402

from tunesmith import Float, Study  # noqa: E402


def _objective(trial: Any) -> float:
    time.sleep(0.02)
    return float(trial.params["x"])


class _Started(logging.Handler):
    """The number of replacement workers from the executor's summary warning."""

    replaced = 0

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"(\d+) replacement worker\(s\) started", record.getMessage())
        if found:
            self.replaced = int(found.group(1))


def one(seed: int, requeue: bool, n_trials: int, folder: str, ms: list[float],
        cap: float | None) -> dict[str, Any]:
    beat: dict[str, Any] = {"heartbeat_interval": 5, "requeue_failed": True} if requeue else {}
    url = f"sqlite:///{os.path.join(folder, f'storm-{seed}-{int(requeue)}-{ms[0]:g}-{ms[1]:g}.db')}"
    study = Study({"x": Float(0, 1)}, storage=url, name="s", sampler="random", seed=seed, **beat)
    started = _Started(logging.WARNING)
    logging.getLogger("tunesmith").addHandler(started)
    start = time.monotonic()
    try:
        with Storm(seed=seed, low=ms[0] / 1000, high=ms[1] / 1000) as storm:
            study.optimize(_objective, n_trials=n_trials, n_jobs=4, timeout=cap)
    finally:
        logging.getLogger("tunesmith").removeHandler(started)
    seconds = time.monotonic() - start
    trials = study.trials
    results = sum(t.state.is_finished and t.system.requeued_as is None for t in trials)
    left = Counter(t.state.value for t in trials)
    return {"seed": seed, "requeue": requeue, "ms": ms, "kills": storm.kills, "started": 4 + started.replaced,
            "results": results, "off": results - n_trials, "running": left["running"], "waiting": left["waiting"],
            "seconds": round(seconds, 1), "per_s": round(results / seconds, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--ms", type=float, nargs=2, default=[3, 50], metavar=("LOW", "HIGH"),
                    help="milliseconds between two kills, drawn uniformly from LOW-HIGH")
    ap.add_argument("--cap", type=float, default=None, help="each call's timeout in seconds (default: none)")
    ap.add_argument("--modes", nargs="+", choices=["fail", "requeue"], default=["fail", "requeue"])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            for requeue in (mode == "requeue" for mode in args.modes):
                row = one(seed, requeue, args.trials, folder, args.ms, args.cap)
                rows.append(row)
                print(row, flush=True)
    exact = sum(r["off"] == 0 and r["running"] == r["waiting"] == 0 for r in rows)
    kills = sorted(r["kills"] for r in rows)
    print(f"{exact} of {len(rows)} runs exact; off by {[r['off'] for r in rows]}; kills {kills[0]}-{kills[-1]}")


if __name__ == "__main__":
    main()
