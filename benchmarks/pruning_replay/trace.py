"""Where two rows' decisions part: epochs trained per trial, study by study, on the same stream.

For each (task, seed) both rows replay the same study (``replay.py``'s rows; use two rows on
the shared random stream so that only the pruners differ). Prints how many studies differ,
at which trial the first difference lies (a tally), and how many trials each row trains in
full per study.

    PYTHONPATH=src python benchmarks/pruning_replay/trace.py --seeds 0-49 \
        optuna-sh-random ts-asha-eta4-min1-last-qrung-random
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter as Tally

import numpy as np
from depth import depths
from replay import load_tasks, resolve, seed_range


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rows", nargs=2, help="two row names of replay.py")
    ap.add_argument("--seeds", default="0-9")
    args = ap.parse_args(argv)
    import optuna

    import tunesmith as ts

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    ts.set_verbosity(logging.ERROR)
    tasks, methods = load_tasks(), resolve(args.rows)
    first: Tally[int] = Tally()
    full: dict[str, list[int]] = {r: [] for r in args.rows}
    n = 0
    for task in tasks.values():
        for seed in seed_range(args.seeds):
            a, b = (depths(task, methods[r], seed).tolist() for r in args.rows)
            n += 1
            for r, d in zip(args.rows, (a, b), strict=True):
                full[r].append(sum(e == task.epochs for e in d))
            if a != b:
                first[next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)] += 1
    print(f"{sum(first.values())} of {n} studies differ; first differing trial: "
          + ", ".join(f"trial {i}: {c}" for i, c in sorted(first.items())))  # fmt: skip
    for r, f in full.items():
        print(f"{r}: {np.mean(f):.2f} trials trained in full per study")


if __name__ == "__main__":
    main()
