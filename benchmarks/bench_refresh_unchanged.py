"""What ``study.trials`` costs on a finished study read again with nothing new: the refresh's own
read, and the count it adds there to tell a study another handle deleted (none stored) from one
with nothing new. SQLite, N finished trials; medians of 9 rounds of 300 calls, in microseconds.

    OMP_NUM_THREADS=1 PYTHONPATH=src nice .venv/bin/python benchmarks/bench_refresh_unchanged.py --trials 200
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import tunesmith as ts


def _median_us(call: Callable[[], object], rounds: int = 9, calls: int = 300) -> float:
    runs = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        runs.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="finished trials in the study")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'b.db'}"
        study = ts.Study({"x": ts.Float(0, 1)}, sampler="random", seed=0, storage=url, name="b")
        study.optimize(lambda t: t.params["x"], n_trials=args.trials)
        handle = ts.load_study("b", url)
        handle.trials  # noqa: B018 - read once: what follows reads nothing new
        storage, sid = handle.storage, handle._study_id
        read = _median_us(lambda: storage.get_trials_since(sid, args.trials))
        count = _median_us(lambda: storage.count_trials(sid))
        whole = _median_us(lambda: handle.trials)
        print(f"{args.trials} finished trials: the refresh's read {read:.0f} us, the added count {count:.0f} us, "
              f"study.trials {whole:.0f} us in all")


if __name__ == "__main__":
    main()
