"""Where the epochs go: how many of a study's 40 trials train to each depth, per row.

For each row (``replay.py``'s method names) and task, over the given study seeds: the mean
number of trials that trained at least 1, 2, 3, 4, 8, 9, 16 epochs and the full 27, and the
share of the row's epochs spent in each segment between those depths.

    PYTHONPATH=src python benchmarks/pruning_replay/depth.py --seeds 0-49 \
        --methods ts-asha optuna-sh-random
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import numpy as np
from replay import (
    METHODS_HELP,
    Counter,
    Stream,
    load_tasks,
    resolve,
    run_optuna,
    run_tunesmith,
    seed_range,
)

DEPTHS = (1, 2, 3, 4, 8, 9, 16, 27)


def depths(task: Any, opts: dict[str, Any], seed: int) -> np.ndarray:
    """Epochs trained by each trial of one study (trial order)."""
    run = run_optuna if opts["lib"] == "optuna" else run_tunesmith
    count: Counter = run(task, Stream.of(task, seed), seed, opts)[0]
    return np.array([count.trained[n] for n in sorted(count.trained)])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", nargs="+", required=True, help=METHODS_HELP)
    ap.add_argument("--tasks", nargs="+")
    ap.add_argument("--seeds", default="0-49")
    args = ap.parse_args(argv)
    import optuna

    import tunesmith as ts

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    ts.set_verbosity(logging.ERROR)
    tasks = load_tasks()
    methods = resolve(args.methods)
    print("| task | row | epochs | " + " | ".join(f">= {d}" for d in DEPTHS)
          + " | epochs in " + " / ".join(f"{a}-{b}" for a, b in zip((0, *DEPTHS), DEPTHS, strict=False)) + " |")
    print("|---|---|---|" + "---|" * (len(DEPTHS) + 1))
    for name in args.tasks or list(tasks):
        for method in args.methods:
            runs = [depths(tasks[name], methods[method], s) for s in seed_range(args.seeds)]
            reach = [np.mean([(d >= x).sum() for d in runs]) for x in DEPTHS]
            seg = [np.mean([np.clip(d, a, b).sum() - a * len(d) for d in runs])
                   for a, b in zip((0, *DEPTHS), DEPTHS, strict=False)]  # fmt: skip
            total = sum(seg)
            print(f"| {name} | {method} | {total / (len(runs[0]) * 27):.3f} | "
                  + " | ".join(f"{r:.1f}" for r in reach) + " | "
                  + " / ".join(f"{s / total:.2f}" for s in seg) + " |")  # fmt: skip


if __name__ == "__main__":
    main()
