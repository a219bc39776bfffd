"""A hard kill storm against n_trials: does every optimize call end with exactly n_trials results?

Each run: 4 worker processes on a SQLite study, a random one SIGKILLed every
3-50 ms (seeded) for the whole call, trials of 20 ms. Prints one line per run
(kills, results, off by, running/waiting left, seconds) and the summary.

    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/storm_budget.py --seeds 1 2 3 4
"""

from __future__ import annotations

import argparse
import os
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


def one(seed: int, requeue: bool, n_trials: int, folder: str) -> dict[str, Any]:
    beat: dict[str, Any] = {"heartbeat_interval": 5, "requeue_failed": True} if requeue else {}
    url = f"sqlite:///{os.path.join(folder, f'storm-{seed}-{int(requeue)}.db')}"
    study = Study({"x": Float(0, 1)}, storage=url, name="s", sampler="random", seed=seed, **beat)
    start = time.monotonic()
    with Storm(seed=seed, low=0.003, high=0.05) as storm:
        study.optimize(_objective, n_trials=n_trials, n_jobs=4)
    seconds = time.monotonic() - start
    trials = study.trials
    results = sum(t.state.is_finished and t.system.requeued_as is None for t in trials)
    left = Counter(t.state.value for t in trials)
    return {"seed": seed, "requeue": requeue, "kills": storm.kills, "results": results,
            "off": results - n_trials, "running": left["running"], "waiting": left["waiting"],
            "seconds": round(seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--trials", type=int, default=200)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            for requeue in (False, True):
                row = one(seed, requeue, args.trials, folder)
                rows.append(row)
                print(row, flush=True)
    exact = sum(r["off"] == 0 and r["running"] == r["waiting"] == 0 for r in rows)
    kills = sorted(r["kills"] for r in rows)
    print(f"{exact} of {len(rows)} runs exact; off by {[r['off'] for r in rows]}; kills {kills[0]}-{kills[-1]}")


if __name__ == "__main__":
    main()
