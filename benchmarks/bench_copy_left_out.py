"""What ``study.copy(NEW, space=...)`` costs when the new space lacks parameters the trials hold:
every trial is left out, each with the error that names its unknown parameters and the closest
name to each. SQLite, N trials of D float parameters copied into a space of the first K; medians
of 5 copies, in seconds.

    OMP_NUM_THREADS=1 PYTHONPATH=src nice .venv/bin/python benchmarks/bench_copy_left_out.py --trials 2000
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import tunesmith as ts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--params", type=int, default=20)
    parser.add_argument("--kept", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the copy logs the trials it left out
    names = [f"param_{i:02d}" for i in range(args.params)]
    with tempfile.TemporaryDirectory() as tmp:
        study = ts.Study({n: ts.Float(0, 1) for n in names}, storage=f"sqlite:///{Path(tmp) / 's.db'}", name="s",
                         sampler="random", seed=0)
        study.optimize(lambda t: sum(t.params.values()), n_trials=args.trials)
        narrow = {n: ts.Float(0, 1) for n in names[: args.kept]}
        runs = []
        for k in range(args.rounds):
            start = time.perf_counter()
            study.copy(f"copy-{k}", space=narrow)
            runs.append(time.perf_counter() - start)
    print(f"{args.trials} trials, {args.params} -> {args.kept} parameters: copy {statistics.median(runs):.3f} s "
          f"(median of {args.rounds})")


if __name__ == "__main__":
    main()
